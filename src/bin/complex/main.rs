//! `complex`: the counterpart of the reference's complex.py.
//!
//! ```text
//! Application ─ AsyncService1 ─ pool (rayon) ─ MPM ─ worker-1 … worker-N (processes)
//!             └ AsyncService2
//! ```
//! Services start in that order and stop in reverse; inside AsyncService1 the update task,
//! the busy tasks, the manager and the pool stop in that order. The same executable is the
//! worker, run as the hidden `complex worker` subcommand.

mod cli;
mod mpm;
mod pool;
mod services;

use std::time::Duration;

use clap::{CommandFactory, Parser};
use graceful::demo::{Dummy, check_fail_start};
use graceful::{Edge, Service};

use cli::{Cli, Subcommands};
use services::{AsyncService1, Settings};

fn main() {
    // First of all: a Ctrl+C while the arguments are parsed is kept pending, not fatal.
    let edge = Edge::begin();
    if std::env::args_os().nth(1).is_some_and(|first| first == "worker") {
        // Before clap: from a terminal, the explanation, whatever the arguments.
        mpm::worker::refuse_a_terminal();
    }
    let cli = Cli::parse();
    if let Some(Subcommands::Worker(args)) = &cli.command {
        mpm::worker::run(args.clone());
    }
    let workers = usize::from(cli.complex.workers);
    let known = |component: &str| {
        matches!(component, "AsyncService1" | "AsyncService2")
            || component
                .strip_prefix("worker-")
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| (1..=workers).contains(&n))
    };
    let expected = format!("AsyncService1, AsyncService2, worker-1 … worker-{workers}");
    if let Err(message) = check_fail_start(&cli.common, known, &expected) {
        Cli::command()
            .error(clap::error::ErrorKind::InvalidValue, message)
            .exit();
    }
    let settings = Settings {
        mpm: cli.mpm_config(),
        pool_threads: usize::from(cli.complex.pool_threads),
        busy_tasks: usize::from(cli.complex.busy_tasks),
        shielded: !cli.complex.unshielded,
        blocking_calls: cli.complex.blocking_calls,
        time_scale: cli.common.time_scale,
        fail_start: cli.common.fails("AsyncService1"),
    };
    let services: Vec<Box<dyn Service>> = vec![
        Box::new(AsyncService1::new(settings)),
        Box::new(Dummy::new(
            "AsyncService2",
            Duration::from_secs(1),
            cli.common.time_scale,
            cli.common.fails("AsyncService2"),
        )),
    ];
    edge.log(cli.common.log_format, cli.common.log_level())
        .settings(cli.common.settings())
        .run(services)
}
