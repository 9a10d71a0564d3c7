//! Draws a JSON log of `simple` or `complex` as a timeline: an SVG picture (the default)
//! or Chrome trace-event JSON for Perfetto (`--format trace`).
//!
//!   timeline RUN.jsonl > run.svg
//!   complex --log-format json 2>&1 >/dev/null | timeline - > run.svg
//!   timeline --format trace RUN.jsonl > run.json
//!
//! Exit status: 0 when drawn; 1 on bad input (not JSON, empty, unreadable); 2 on a bad
//! command line; 3 when the log was cut (no exit event): the output is still written whole.
//! Lines it had to skip are counted and said on stderr; they do not change the status.

mod builder;
mod model;
mod picture;
mod read;
mod trace;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

use crate::builder::Builder;
use crate::model::Run;
use crate::read::Skipped;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// An SVG picture: one lane per component, phases as bars, signals as marks.
    Svg,
    /// Chrome trace-event JSON (Perfetto, chrome://tracing).
    Trace,
}

/// Draws a JSON log of the suite (--log-format json) as a timeline.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The log: one JSON object per line; `-` reads standard input.
    log: PathBuf,
    /// What to write to standard output.
    #[arg(long, value_enum, default_value = "svg")]
    format: Format,
    /// The picture's width in pixels (SVG only).
    #[arg(long, default_value_t = 900.0)]
    width: f64,
    /// A title for the picture (SVG only); by default the main process's pid.
    #[arg(long)]
    title: Option<String>,
}

/// Reads the log once, line by line, into the run (and, for the trace, the lines' events).
enum Output {
    Svg(svg::Document),
    Trace(Run, trace::Lines, SystemTime),
}

fn read_run(args: &Args, input: impl BufRead, name: &str) -> Result<(Output, bool)> {
    let mut skipped = Skipped::default();
    let mut builder = Builder::default();
    let mut lines = trace::Lines::default();
    let keep_lines = matches!(args.format, Format::Trace);
    let read = read::read(input, name, &mut skipped, |line, skipped| {
        builder.line(&line, skipped);
        if keep_lines {
            lines.line(&line);
        }
    })?;
    let run = builder.finish(&read);
    if let Some(report) = skipped.report() {
        eprintln!("timeline: {name}: {report}");
    }
    let whole = !run.cut();
    let out = match args.format {
        Format::Svg => Output::Svg(picture::draw(
            &run,
            args.width,
            args.title.as_deref(),
            skipped.total(),
        )),
        Format::Trace => Output::Trace(run, lines, read.first),
    };
    Ok((out, whole))
}

fn run(args: &Args) -> Result<bool> {
    let name = args.log.display().to_string();
    let (out, whole) = if name == "-" {
        read_run(args, io::stdin().lock(), "stdin")?
    } else {
        let file = File::open(&args.log).with_context(|| format!("cannot open {name}"))?;
        read_run(args, BufReader::new(file), &name)?
    };
    let mut stdout = BufWriter::new(io::stdout().lock());
    match out {
        Output::Svg(document) => writeln!(stdout, "{document}"),
        Output::Trace(run, lines, first) => trace::write(&run, lines, first, &mut stdout),
    }
    .and_then(|()| stdout.flush())
    .context("cannot write to standard output")?;
    Ok(whole)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            // Drawn all the same, and the picture says so; the status tells a script.
            eprintln!(
                "timeline: the log was cut: it ends without the exit event \
                 (component=app phase=exit); drew what it has"
            );
            ExitCode::from(3)
        }
        Err(error) => {
            eprintln!("timeline: {error:#}");
            ExitCode::FAILURE
        }
    }
}
