//! `simple`: the counterpart of the reference's simple.py.
//!
//! Two async services whose start and stop each take a second. Press Ctrl+C at any moment:
//! during a start (the request is delayed until start completes, then the stop runs),
//! while running, or during a stop (counted; the third forces the exit).

use std::time::Duration;

use clap::{CommandFactory, Parser};
use graceful::demo::{CommonArgs, Dummy, EXIT_STATUS_HELP, check_fail_start};
use graceful::{Edge, Service};

/// Two async services: shielded start, wait, shielded stop.
///
/// Try: press Ctrl+C during "AsyncService1: starting" (the stop waits for the start to
/// finish), while running, or two and three times during the stop (the third forces the
/// exit). `--fail-start AsyncService2` shows a failed start stopping what had started;
/// `--run-for 3s` stops by itself (exit 0); `--log-format json` prints what tools read.
#[derive(Parser, Debug)]
#[command(name = "simple", version, after_help = EXIT_STATUS_HELP)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

const SERVICES: [&str; 2] = ["AsyncService1", "AsyncService2"];

fn main() {
    let edge = Edge::begin();
    let cli = Cli::parse();
    let args = &cli.common;
    if let Err(message) = check_fail_start(args, |c| SERVICES.contains(&c), &SERVICES.join(", ")) {
        Cli::command()
            .error(clap::error::ErrorKind::InvalidValue, message)
            .exit();
    }
    let services: Vec<Box<dyn Service>> = SERVICES
        .iter()
        .map(|&name| {
            let dummy = Dummy::new(name, Duration::from_secs(1), args.time_scale, args.fails(name));
            Box::new(dummy) as Box<dyn Service>
        })
        .collect();
    edge.log(args.log_format, args.log_level())
        .settings(args.settings())
        .run(services)
}
