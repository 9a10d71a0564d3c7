//! `bench`: how fast the suite is ready, how fast it stops, how much it carries, measured
//! against the floor of this machine.
//!
//! Graceful must not mean slow. Each figure of the suite is measured next to a minimal
//! program doing the same observable thing (the `floor-*` binaries of this crate), so the
//! report says both "does it meet its target" and "how far is it from what the machine
//! allows". Run it through `scripts/bench`, which builds the release binaries first.
//!
//! # Layout
//! - [`bins`]: the binaries (a private snapshot of them) and the latency scenarios.
//! - [`run`](mod@run): one measured process: spawn, log-line synchronisation, signal, `wait4`, clean-up.
//! - [`latency`]: launch to ready, signal to exit, peak memory; interleaved runs.
//! - [`throughput`]: `complex`'s calls per second, and the bare-pipes floor.
//! - [`shield_cost`]: the shield's enter+leave, uncontended and from 4 threads.
//! - [`http`]: answers per second of examples/http.rs against a bare axum, and the
//!   requests that fail through its stop under that load.
//! - [`stats`]: median and nearest-rank percentiles.
//! - [`tables`]: which figure is compared to which floor and held to which target.
//! - [`report`]: the markdown rendering, the machine, the README splice.
//! - [`plot`]: the latency distributions as an SVG picture (`--plots`).

mod bins;
mod http;
mod latency;
mod plot;
mod report;
mod run;
mod shield_cost;
mod stats;
mod tables;
mod throughput;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};

use bins::Bins;
use stats::Summary;
use tables::{kib_to_mb, note_failures};
use throughput::Load;

/// Benchmarks `simple` and `complex` (release builds, `--time-scale 0`) against minimal
/// programs doing the same observable thing, and prints a markdown report.
#[derive(Parser, Debug)]
#[command(after_help = "Run it through scripts/bench, which builds the release binaries first.")]
struct Args {
    /// Runs of each latency scenario, after the warm-up.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Warm-up rounds, measured and thrown away.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Runs of each throughput load (and of each floor thread count).
    #[arg(long, default_value_t = 5)]
    throughput_runs: usize,
    /// How long each throughput run holds its load.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    hold: Duration,
    /// The `--pool-threads` values tried with 16 busy tasks.
    #[arg(long, value_delimiter = ',', default_value = "2,4,8,16")]
    pool_sweep: Vec<usize>,
    /// Windows of the shield's timed loop (each case runs once per window).
    #[arg(long, default_value_t = 21)]
    shield_windows: usize,
    /// How long each shield window lasts.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    shield_window: Duration,
    /// Runs of each scale configuration (`--workers` 1..1024, `--busy-tasks` 4..4096), after
    /// one warm-up round.
    #[arg(long, default_value_t = 15)]
    scale_runs: usize,
    /// Which parts to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "latency,throughput,shield,scale,http"
    )]
    only: Vec<Section>,
    /// Also put the report between `<!-- bench:start -->` and `<!-- bench:end -->` in this
    /// file (left untouched if it lacks the markers).
    #[arg(long, value_name = "PATH")]
    write_readme: Option<PathBuf>,
    /// Where `simple`, `complex` and the `floor-*` binaries are (default: beside this one).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Also draw the latency distributions against their floors as an SVG plot,
    /// DIR/bench-latency.svg (created if missing; needs the latency part).
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
}

/// A part of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Section {
    /// Launch to ready, signal to exit, peak memory.
    Latency,
    /// Calls per second through `complex`, and the pipes floor.
    Throughput,
    /// The shield's enter+leave.
    Shield,
    /// Launch to ready and signal to exit as the workers and the busy tasks grow.
    Scale,
    /// Answers per second of examples/http.rs against a bare axum; failures through a stop.
    Http,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.runs > 0 && args.throughput_runs > 0 && args.scale_runs > 0,
        "runs must be at least 1"
    );
    let snapshot = Bins::snapshot(args.bin_dir.as_deref())?;
    let bins = &snapshot.bins;
    if let Some(path) = &args.write_readme {
        // Fail now, not after minutes of measuring.
        anyhow::ensure!(
            path.is_file(),
            "{} does not exist (it is not created here)",
            path.display()
        );
    }
    // The runs are process groups of their own, so a Ctrl+C here does not reach them: kill
    // the one in progress, then leave.
    ctrlc::set_handler(|| {
        run::kill_current_run();
        bins::remove_snapshot();
        eprintln!("bench: interrupted; the run in progress was killed");
        std::process::exit(130);
    })
    .context("failed to install the Ctrl+C handler")?;

    let mut sections = Vec::new();
    let mut notes = vec![
        "Release builds, `--time-scale 0` (only the machinery runs), `--log-format json \
         --log-level warn` (lifecycle events are still logged); SIGINT goes to the main \
         process only (`kill -INT PID`). Ready = the `app started` line read from stderr; \
         exit = the main process reaped by `wait4`."
            .to_owned(),
    ];
    let mut busy16_tree: Option<(usize, Summary)> = None;
    let mut busy16_stop: Option<(usize, Summary)> = None;

    let wants = |section| args.only.contains(&section);
    let mut latency = None;
    if wants(Section::Latency) {
        let scenarios = bins.latency_scenarios();
        let rounds = args.warmup + args.runs;
        eprintln!(
            "bench: latency and memory: {} scenarios × {rounds} rounds, interleaved",
            scenarios.len()
        );
        let samples = latency::measure(&scenarios, args.runs, args.warmup, |round| {
            if round % 20 == 0 || round == rounds {
                eprintln!("bench:   round {round}/{rounds}");
            }
        });
        for (scenario, samples) in scenarios.iter().zip(&samples) {
            note_failures(&mut notes, &scenario.name, &samples.failures);
        }
        if let Some(dir) = &args.plots {
            let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
            let subtitle = format!(
                "{} runs per scenario after {} warm-up rounds, interleaved; release builds, --time-scale 0",
                args.runs, args.warmup
            );
            let path = plot::write(dir, &samples, &names, &subtitle)
                .with_context(|| format!("cannot write the plot into {}", dir.display()))?;
            eprintln!("bench: wrote {}", path.display());
        }
        latency = Some(samples);
    }

    if wants(Section::Throughput) {
        let mut loads = vec![
            Load { busy: 1, pool: 4 },
            Load { busy: 4, pool: 4 },
            Load { busy: 16, pool: 4 },
        ];
        loads.extend(
            args.pool_sweep
                .iter()
                .filter(|&&pool| pool != 4 && pool > 0)
                .map(|&pool| Load { busy: 16, pool }),
        );
        let floor_threads = [1, 4, 16];
        eprintln!(
            "bench: throughput: {} loads + {} floors × {} rounds of {}",
            loads.len(),
            floor_threads.len(),
            args.throughput_runs,
            humantime::format_duration(args.hold)
        );
        let (suite, floor) = throughput::measure(
            &bins.complex,
            &bins.floor_pipes,
            &loads,
            &floor_threads,
            args.throughput_runs,
            args.hold,
            |round| eprintln!("bench:   round {round}/{}", args.throughput_runs),
        );
        let (table, best) = tables::throughput_table(&loads, &suite, &floor_threads, &floor, &mut notes);
        sections.push(table);
        if let Some(best) = best {
            let rates = &suite[best];
            busy16_tree = Summary::of(&kib_to_mb(&rates.tree_kib)).map(|s| (loads[best].pool, s));
            busy16_stop = Summary::of(&rates.stop_ms).map(|s| (loads[best].pool, s));
        }
    }

    if let Some(samples) = &latency {
        sections.insert(0, tables::latency_table(samples, busy16_stop));
        sections.insert(1, tables::memory_table(samples, busy16_tree));
    }

    if wants(Section::Shield) {
        eprintln!(
            "bench: shield: {} windows of {}",
            args.shield_windows,
            humantime::format_duration(args.shield_window)
        );
        let costs = shield_cost::measure(args.shield_windows.max(1), args.shield_window);
        sections.push(tables::shield_table(&costs));
        let overlap = Summary::of(&costs.overlap).map_or(0.0, |s| s.median);
        notes.push(format!(
            "Shield: CPU time of the doing thread per `let g = shield.hold(); drop(g);`, median \
             of {} windows of {}; contended = {} threads on one shield at once, which kept \
             {overlap:.2} cores busy (median; 2.0 is full overlap on this machine). Floor: a \
             bare `fetch_add` + `fetch_sub` on one shared atomic.",
            args.shield_windows,
            humantime::format_duration(args.shield_window),
            shield_cost::THREADS
        ));
    }

    if wants(Section::Scale) {
        let scenarios = bins.scale_scenarios();
        let rounds = 1 + args.scale_runs;
        eprintln!(
            "bench: scale: {} configurations × {rounds} rounds, interleaved",
            scenarios.len()
        );
        let samples = latency::measure(&scenarios, args.scale_runs, 1, |round| {
            eprintln!("bench:   round {round}/{rounds}");
        });
        for (scenario, samples) in scenarios.iter().zip(&samples) {
            note_failures(&mut notes, &scenario.name, &samples.failures);
        }
        sections.extend(tables::scale_tables(&scenarios, &samples));
        notes.push(format!(
            "Scale: `complex --time-scale 0.1 --log-format json --log-level warn`, {} runs per \
             row after one warm-up round, the rows interleaved; SIGINT to the main process at \
             a random point up to 100 ms after ready. At this scale a call takes 30-50 ms, \
             AsyncService2 starts and stops in 100 ms, an update lasts 500 ms. Per extra \
             worker: a run's launch to ready minus the median with 1 worker, over the workers \
             added; its floor is the same for `floor-children --children N`, run interleaved \
             with the rows. Threads: the entries of `/proc/PID/task` of the main process as \
             soon as `app started` is read. PSS: the tree just before the SIGINT.",
            args.scale_runs
        ));
    }

    if wants(Section::Http) {
        eprintln!(
            "bench: http: {} rounds of {} under {} clients",
            args.throughput_runs,
            humantime::format_duration(args.hold),
            http::CLIENTS
        );
        let (suite, floor) = http::measure(
            &bins.http,
            &bins.floor_axum,
            args.throughput_runs,
            args.hold,
            |round| eprintln!("bench:   round {round}/{}", args.throughput_runs),
        );
        sections.push(tables::http_table(&suite, &floor, &mut notes));
    }

    let command = std::env::var("BENCH_COMMAND").unwrap_or_else(|_| {
        let argv: Vec<String> = std::env::args().collect();
        argv.join(" ")
    });
    let report = report::render(&command, &report::Machine::this(), &sections, &notes);
    println!("{report}");
    if let Some(path) = &args.write_readme {
        if report::splice_into(path, &report)? {
            eprintln!("bench: wrote the report into {}", path.display());
        } else {
            eprintln!(
                "bench: {} has no `{}` ... `{}` markers; left it as it was",
                path.display(),
                report::START_MARKER,
                report::END_MARKER
            );
        }
    }
    Ok(())
}
