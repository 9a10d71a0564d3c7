//! Faults planted on purpose (the hidden `--inject-fault`), to prove the torture tool
//! catches what they break. Never part of a normal run, and never inside the work loop:
//! they come in through [`next_work`], the loop's choice of its next item, and
//! [`after_the_start`].

use std::io::Write;
use std::time::Duration;

use graceful::logging::LogFormat;

use super::lanes::{Lanes, StopCause, Work};
use crate::mpm::shared::config::{Fault, WorkerConfig};
use crate::mpm::shared::protocol::Method;

/// The work loop's next item, through the planted fault if there is one.
pub fn next_work(fault: Option<Fault>) -> impl FnMut(&mut Lanes) -> Option<Work> {
    move |lanes| {
        let work = lanes.next()?;
        match (&work, fault) {
            (Work::Stop(cause), Some(Fault::WorkerIgnoresStop)) => ignore_the_stop(cause),
            (Work::Call(_, method), Some(Fault::WorkerPanics)) => panic_on_call_zero(method),
            _ => {}
        }
        Some(work)
    }
}

/// Once the worker has started, before it serves.
pub fn after_the_start(config: &WorkerConfig, flush_bound: Duration) {
    if config.fault == Some(Fault::SlowLogLine) {
        write_slow_log_line(&config.name(), config.log_format, flush_bound);
    }
}

/// [`Fault::WorkerIgnoresStop`]: the orphan the reference warns about. The worker neither
/// stops nor exits; only its parent's kill ends it.
fn ignore_the_stop(cause: &StopCause) -> ! {
    tracing::warn!(
        event = "fault",
        fault = "worker-ignores-stop",
        "injected fault: ignoring the stop ({cause:?}) and idling forever"
    );
    loop {
        std::thread::park();
    }
}

/// [`Fault::SlowLogLine`]: one log line of 8 KiB, well past a pipe's atomic write,
/// written straight to fd 2 in 64-byte pieces over about 2.5 s, so a test can kill the worker
/// in the middle of it. Finished, it is a proper line of the run's format.
fn write_slow_log_line(name: &str, format: LogFormat, flush_bound: Duration) {
    const PIECE: usize = 64;
    tracing::warn!(
        event = "fault",
        fault = "slow-log-line",
        "injected fault: writing an 8 KiB log line slowly to fd 2"
    );
    let filler = "x".repeat(8 * 1024);
    let message = format!("injected fault: a slow log line: {filler}");
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    let line = match format {
        LogFormat::Json => serde_json::json!({
            "timestamp": now.to_string(),
            "level": "WARN",
            "target": "complex::fault",
            "process": name,
            "pid": std::process::id(),
            "thread": "main",
            "message": message,
        })
        .to_string(),
        LogFormat::Text => format!(
            "{now} | {name:<9} | {:<14} | {:<9} | WARN  | {message}",
            "main", "fault"
        ),
    } + "\n";
    graceful::logging::flush(flush_bound);
    // std's stderr is unbuffered: each piece is one write(2) to fd 2.
    let mut stderr = std::io::stderr();
    for piece in line.as_bytes().chunks(PIECE) {
        if stderr.write_all(piece).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`Fault::WorkerPanics`]: `process_number(0)` panics.
fn panic_on_call_zero(method: &Method) {
    if *method == Method::ProcessNumber(0) {
        tracing::warn!(
            event = "fault",
            fault = "worker-panics",
            "injected fault: panicking while handling process_number(0)"
        );
        panic!("injected fault: process_number(0) cannot be handled");
    }
}
