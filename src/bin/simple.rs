//! `simple`: the counterpart of the reference's simple.py.
//!
//! Two async services whose start and stop each take a second. Press Ctrl+C at any moment:
//! during a start (the request is delayed until start completes, then the stop runs),
//! while running, or during a stop (counted; the third forces the exit).

use std::time::Duration;

use clap::Parser;
use graceful::cli::CommonArgs;
use graceful::service::{BoxFuture, Service, ServiceContext};

/// The lifecycle of two async services: shielded start, wait, shielded stop.
///
/// Try: run it and press Ctrl+C during "AsyncService1: starting" (the stop waits for the start
/// to finish), while running, or two and three times during the stop (the third forces the
/// exit). `--fail-start AsyncService2` shows a failed start stopping what had started;
/// `--run-for 3s` stops by itself (exit 0); `--log-format json` prints what tools read.
#[derive(Parser, Debug)]
#[command(version, about, long_about, after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

const AFTER_HELP: &str = "\
Exit status: 0 after --run-for; after a signal, the process ends by that same signal \
(a shell shows 128+N: 130 for Ctrl+C); 1 when a start fails; 2 on a bad command line.";

/// The two services: AsyncService1 and AsyncService2 are the same dummy, as in the reference.
struct AsyncService {
    name: &'static str,
}

impl Service for AsyncService {
    fn name(&self) -> &'static str {
        self.name
    }

    fn start<'a>(&'a mut self, ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            ctx.time_scale.sleep(Duration::from_secs(1)).await;
            if ctx.should_fail_start(self.name) {
                anyhow::bail!("start failed on purpose (--fail-start {})", self.name);
            }
            Ok(())
        })
    }

    fn stop<'a>(&'a mut self, ctx: &'a ServiceContext) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            ctx.time_scale.sleep(Duration::from_secs(1)).await;
            Ok(())
        })
    }
}

const SERVICES: [&str; 2] = ["AsyncService1", "AsyncService2"];

fn main() {
    let cli = Cli::parse();
    if let Some(component) = &cli.common.fail_start {
        if !SERVICES.contains(&component.as_str()) {
            use clap::CommandFactory;
            Cli::command()
                .error(
                    clap::error::ErrorKind::InvalidValue,
                    format!(
                        "--fail-start: unknown component `{component}` (expected one of: {})",
                        SERVICES.join(", ")
                    ),
                )
                .exit();
        }
    }
    let services: Vec<Box<dyn Service>> = SERVICES
        .iter()
        .map(|&name| Box::new(AsyncService { name }) as Box<dyn Service>)
        .collect();
    graceful::app::run_main(&cli.common, services)
}
