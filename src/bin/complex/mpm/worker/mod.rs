//! Lesson 5 of the reference: **catch KeyboardInterrupt in workers.**
//!
//! The worker process, `complex worker --index N ...`, started by the manager. A terminal's
//! Ctrl+C reaches the whole process group: a worker that dies of it abandons the item in
//! hand and leaves its parent guessing. Here it logs the signal (`action=ignored`) and
//! leaves the decision to its parent, which sends the stop command ([`install_signal_policy`];
//! it was spawned with the signals blocked: lesson 7). Lesson 6 is `intake.rs`, lesson 8 the
//! lanes its work loop ([`serve`]) takes items from, `lanes.rs`. Its log goes through its
//! parent (`graceful::logging::WholeLines`), flushed, bounded, before it exits. Planted faults
//! (`fault.rs`) come in through the choice of the next item, never through the loop.

mod dummy;
mod fault;
mod intake;
mod lanes;

use std::io::{BufWriter, IsTerminal, Write};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use graceful::components::Components;
use graceful::signals;

use crate::mpm::shared::config::WorkerConfig;
use crate::mpm::shared::protocol::{Frame, MAX_WITHDRAWN_PER_FRAME, Report};
use dummy::DummyManager;
use intake::Intake;
use lanes::{Lanes, StopCause, Work};

/// The longest an answer waits in the worker's buffer for others to share its write.
const MAX_BATCH_DELAY: Duration = Duration::from_millis(1);

/// How long a worker on its way out waits for its queued log lines to be written.
const EXIT_FLUSH_BOUND: Duration = Duration::from_millis(500);

/// A worker started by hand from a terminal explains what it is and exits 2, whatever its
/// arguments: it is the process `complex` starts and talks to. (From a pipe it runs: a person
/// may talk to it in JSON lines, see `protocol.rs`.)
pub fn refuse_a_terminal() {
    if std::io::stdin().is_terminal() {
        eprintln!(
            "error: `complex worker` is the worker process that `complex` starts and talks to over \
             stdin/stdout; it is not run by hand. Run `complex` instead (see `complex --help`)."
        );
        std::process::exit(2);
    }
}

/// How long a handshake step waits for the worker's log to reach the parent: the parent
/// reads it continuously, so this only bounds a parent that stopped reading.
const HANDSHAKE_LOG_BOUND: Duration = Duration::from_millis(200);

/// Runs the worker; the exit status is 0 after a stop, 1 after a failed start or a panic.
pub fn run(config: WorkerConfig) -> ! {
    refuse_a_terminal();
    let name = config.name();
    if let Err(error) = graceful::logging::init(&name, config.log_format, config.log_level) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
    graceful::panics::install_hook();
    // A panic (already logged by the hook as `event=panic`) ends the worker like any
    // failure: its component says so, its log is flushed, and it exits 1. Left to unwind
    // out of `main`, it would exit 101 without flushing its log writer.
    let status = std::panic::catch_unwind(|| serve_until_stopped(&config, &name)).unwrap_or_else(|_| {
        Components::new().failed(&name, &"panicked (see the panic event)");
        1
    });
    exit(status)
}

/// The worker's life once its log is set up: the handshake, the work loop, the stop.
/// Returns the exit status; a failed handshake exits 1 on its own.
fn serve_until_stopped(config: &WorkerConfig, name: &str) -> i32 {
    let name = name.to_owned();
    install_signal_policy(&name);

    // Lesson 7, the worker's half: bootstrapped (handlers in place), then started.
    // Each step is logged, and the log flushed to the parent, before the report goes out:
    // the parent reads this stderr before the report, so `worker-N: started` always comes
    // before the parent's own `MPM: started` in the run's log.
    let components = Components::new();
    components.starting(&name);
    graceful::logging::flush(HANDSHAKE_LOG_BOUND);
    let mut out = BufWriter::new(std::io::stdout().lock());
    if report(&mut out, &Report::Bootstrapped).is_err() {
        exit_parent_gone(&components, &name);
    }
    if config.fail_start {
        let reason = format!("start failed on purpose (--fail-start {name})");
        // Logged and flushed before the refusal, like every step: the parent kills every
        // worker as soon as it reads the refusal, and this line must be out by then.
        components.failed(&name, &reason);
        graceful::logging::flush(HANDSHAKE_LOG_BOUND);
        let _ = report(&mut out, &Report::StartFailed { reason });
        exit(1);
    }
    // The worker's own start: between `bootstrapped` and `started`, as a real one would load.
    let mut manager = DummyManager::load(config.time_scale);
    components.started(&name);
    graceful::logging::flush(HANDSHAKE_LOG_BOUND);
    if report(&mut out, &Report::Started).is_err() {
        exit_parent_gone(&components, &name);
    }
    fault::after_the_start(config, EXIT_FLUSH_BOUND);

    let cause = match Intake::stdin() {
        Ok(intake) => serve(intake, &mut manager, &mut out, fault::next_work(config.fault)),
        Err(error) => StopCause::Garbage(format!("cannot read stdin: {error}")),
    };
    match &cause {
        StopCause::Command => {
            tracing::debug!(event = "stop-command", "{name}: stop command received");
        }
        StopCause::ParentGone => {
            tracing::warn!(event = "parent-gone", "{name}: the parent is gone; stopping");
        }
        StopCause::Garbage(what) => tracing::error!(
            event = "garbage",
            cause = %what,
            "{name}: unreadable command stream ({what}); stopping"
        ),
    }
    components.stopping(&name);
    let _ = out.flush();
    components.stopped(&name);
    0
}

/// Lesson 5: shutdown signals are logged and ignored; the parent decides when this worker
/// stops. Installing the handlers unblocks the signals blocked at spawn: one that arrived in
/// the meantime is delivered now, and ignored like any other.
fn install_signal_policy(name: &str) {
    let name = name.to_owned();
    let count = AtomicU32::new(0);
    let installed = signals::install(move |signal| {
        let count = count.fetch_add(1, Relaxed) + 1;
        tracing::warn!(
            target: "lifecycle",
            signal = signal.name(),
            // The worker's whole signal policy: log it, leave the decision to the parent.
            action = "ignored",
            count,
            "{signal} received; ignored: {name} stops on its parent's stop command, or when the parent is gone"
        );
    });
    if let Err(error) = installed {
        // Without handlers the signals stay blocked (see `graceful::spawn`), so it is still safe.
        tracing::error!(cause = %error, "cannot install the signal handlers; shutdown signals stay blocked");
    }
}

/// The work loop, until a stop: the stop command, the parent gone (end-of-file on stdin,
/// or stdout broken), or garbage from it. `next` takes the next item from the lanes: a
/// run without a planted fault passes [`Lanes::next`].
fn serve(
    mut intake: Intake,
    manager: &mut DummyManager,
    out: &mut impl Write,
    mut next: impl FnMut(&mut Lanes) -> Option<Work>,
) -> StopCause {
    let mut lanes = Lanes::default();
    let mut answers = Answers::new(out);
    loop {
        let Some(work) = next(&mut lanes) else {
            // Idle: wait for the parent's next command, or its end.
            intake.wait_for_one(&mut lanes);
            continue;
        };
        let answer = match work {
            Work::Stop(cause) => return cause,
            Work::Withdraw(ids) => {
                if !ids.is_empty() {
                    let calls = if ids.len() == 1 { "call" } else { "calls" };
                    tracing::debug!("withdrawing {} {calls} not begun: the stop has begun", ids.len());
                }
                // Several lines only past MAX_WITHDRAWN_PER_FRAME; the last (maybe empty:
                // nothing was queued) is also the acknowledgement of the withdraw command.
                let mut chunks: Vec<Vec<u64>> =
                    ids.chunks(MAX_WITHDRAWN_PER_FRAME).map(<[u64]>::to_vec).collect();
                let last = chunks.pop().unwrap_or_default();
                for ids in chunks {
                    if answers.send(&Report::Withdrawn { ids }, false).is_err() {
                        return StopCause::ParentGone;
                    }
                }
                Report::Withdrawn { ids: last }
            }
            Work::Update(id) => Report::Updated {
                id,
                version: manager.update(),
            },
            Work::Call(id, parameter) => Report::Result {
                id,
                version: manager.process(&parameter),
                parameter,
            },
        };
        // Stop outranks every queued call: everything the parent sent while this item ran
        // is sorted into the lanes before the next item is chosen.
        intake.take_in_everything_sent(&mut lanes);
        if answers.send(&answer, lanes.is_empty()).is_err() {
            // stdout broke: nobody reads our answers any more.
            return StopCause::ParentGone;
        }
    }
}

/// Answers go out in batches: flushed when the worker is idle, or once the oldest unsent
/// one has waited [`MAX_BATCH_DELAY`]. Batching saves a write per answer when calls cost
/// nothing (`--time-scale 0`); without the bound, a worker with calls queued would hold
/// every answer (an update's too) until its queue ran dry.
struct Answers<'a, W: Write> {
    out: &'a mut W,
    unsent_since: Option<Instant>,
}

impl<'a, W: Write> Answers<'a, W> {
    fn new(out: &'a mut W) -> Self {
        Self {
            out,
            unsent_since: None,
        }
    }

    fn send(&mut self, report: &Report, idle: bool) -> std::io::Result<()> {
        report.write_to(self.out)?;
        let oldest = *self.unsent_since.get_or_insert_with(Instant::now);
        if idle || oldest.elapsed() >= MAX_BATCH_DELAY {
            self.unsent_since = None;
            self.out.flush()?;
        }
        Ok(())
    }
}

/// A handshake report goes out at once: the parent is waiting for it.
fn report(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    report.write_to(out)?;
    out.flush()
}

/// Ends the worker once its queued log lines are written (at most [`EXIT_FLUSH_BOUND`]).
fn exit(code: i32) -> ! {
    graceful::logging::flush(EXIT_FLUSH_BOUND);
    std::process::exit(code)
}

fn exit_parent_gone(components: &Components, name: &str) -> ! {
    components.failed(
        name,
        &"the parent is gone (stdout closed) before the handshake completed",
    );
    exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpm::shared::protocol::{Command, test_call as call};
    use graceful::demo::TimeScale;
    use std::os::unix::net::UnixStream;

    /// Sends `commands` to a worker's work loop all at once, then `end` (the stream's end
    /// when true), and returns why it stopped and what it answered.
    fn serve_these(commands: &[Command], end: bool) -> (StopCause, Vec<Report>) {
        let (mut parent, child) = UnixStream::pair().unwrap();
        for command in commands {
            command.write_to(&mut parent).unwrap();
        }
        parent.flush().unwrap();
        if end {
            drop(parent);
        } else {
            // Kept open: the worker must stop on the command, not on the end of the stream.
            std::mem::forget(parent);
        }
        let mut manager = DummyManager::load(TimeScale::new(0.0));
        let mut out = Vec::new();
        let cause = serve(Intake::new(child.into()), &mut manager, &mut out, Lanes::next);
        let reports = out
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| Report::from_line(line).unwrap())
            .collect();
        (cause, reports)
    }

    #[test]
    fn a_stop_sent_behind_queued_calls_is_honoured_before_them() {
        let (cause, answers) = serve_these(&[call(1), call(2), call(3), Command::Stop], false);
        assert_eq!(cause, StopCause::Command);
        // The first call may have been taken as the item in hand before the rest arrived;
        // none after it ran.
        assert!(answers.len() <= 1, "{answers:?}");
    }

    #[test]
    fn the_end_of_stdin_is_the_parent_gone() {
        let (cause, _) = serve_these(&[call(1)], true);
        assert_eq!(cause, StopCause::ParentGone);
    }

    #[test]
    fn calls_withdrawn_at_the_stop_are_answered_before_the_worker_stops() {
        let (cause, answers) = serve_these(&[call(1), call(2), Command::Withdraw, Command::Stop], false);
        assert_eq!(cause, StopCause::Command);
        let withdrawn: Vec<u64> = answers
            .iter()
            .flat_map(|a| match a {
                Report::Withdrawn { ids } => ids.clone(),
                _ => vec![],
            })
            .collect();
        let ran = answers
            .iter()
            .filter(|a| matches!(a, Report::Result { .. }))
            .count();
        assert_eq!(
            withdrawn.len() + ran,
            2,
            "every call is run or withdrawn: {answers:?}"
        );
    }
}
