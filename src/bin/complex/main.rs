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
use graceful::service::{Dummy, Service};

use cli::Cli;
use mpm::MpmConfig;
use services::{AsyncService1, Settings};

fn main() {
    // First of all: a Ctrl+C while the arguments are parsed is kept pending, not fatal.
    graceful::signals::block_until_intake();
    // Still the only thread: the service manager's variables leave the environment here,
    // so no worker inherits them.
    graceful::notify::take_from_env();
    if std::env::args_os()
        .nth(1)
        .is_some_and(|first| first == cli::WORKER_SUBCOMMAND)
    {
        // Lossy, never panicking: these arguments come from the manager, so they are UTF-8.
        mpm::worker::run_from_command_line(
            std::env::args_os()
                .skip(2)
                .map(|a| a.to_string_lossy().into_owned()),
        );
    }
    let cli = Cli::parse();
    let workers = usize::from(cli.complex.workers);
    let fail_worker = cli
        .common
        .fail_start
        .as_deref()
        .and_then(|c| c.strip_prefix("worker-"))
        .and_then(|n| n.parse().ok());
    let known = |component: &str| {
        matches!(component, "AsyncService1" | "AsyncService2")
            || component
                .strip_prefix("worker-")
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| (1..=workers).contains(&n))
    };
    let expected = format!("AsyncService1, AsyncService2, worker-1 … worker-{workers}");
    if let Err(message) = graceful::cli::check_fail_start(&cli.common, known, &expected) {
        Cli::command()
            .error(clap::error::ErrorKind::InvalidValue, message)
            .exit();
    }
    let settings = Settings {
        mpm: MpmConfig {
            workers,
            time_scale: cli.common.time_scale,
            log_format: cli.common.log_format,
            log_level: cli.common.log_level,
            fail_start: fail_worker,
            fault: cli.complex.inject_fault,
            restart_limit: cli.complex.restart_limit,
            restart_window: cli.complex.restart_window,
        },
        pool_threads: usize::from(cli.complex.pool_threads),
        busy_tasks: usize::from(cli.complex.busy_tasks),
        shielded: !cli.complex.unshielded,
        blocking_calls: cli.complex.blocking_calls,
    };
    let services: Vec<Box<dyn Service>> = vec![
        Box::new(AsyncService1::new(settings)),
        Box::new(Dummy::new("AsyncService2", Duration::from_secs(1))),
    ];
    graceful::app::run_main(&cli.common, services)
}
