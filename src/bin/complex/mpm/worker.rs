//! The worker process: `complex worker --index N ...`, started by the manager, never by hand.
//!
//! Lessons of the reference this answers:
//! - *Catch or ignore KeyboardInterrupt in workers*: a terminal's Ctrl+C reaches the whole
//!   process group; the worker logs it (`action=ignored`) and leaves the decision to its
//!   parent, which will send the stop command. It never dies abruptly or prints junk.
//! - *...but an orphan then never stops*: the worker also stops when its stdin reaches
//!   end-of-file, which happens whenever the parent is gone, even killed by SIGKILL: the
//!   parent holds the only write end of that pipe. It finishes the item in hand and exits.
//! - *Synchronise worker start*: `bootstrapped` once its handlers are in place (it was
//!   spawned with the signals blocked, see `spawn.rs`), `started` once initialised.
//!
//! Its log goes to its stderr, a pipe its parent reads and forwards line by line (see
//! `worker_logs.rs`); before it exits it flushes what its log writer still holds, bounded,
//! so a stalled log never keeps an orphan alive.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use graceful::components::Components;
use graceful::signals;

use super::dummy::DummyManager;
use super::lanes::{Lanes, StopCause, Work};
use super::protocol::{Command, MAX_WITHDRAWN_PER_FRAME, Report};
use super::worker_logs;
use crate::cli::{Fault, WorkerArgs};
use graceful::logging::LogFormat;

/// The longest an answer waits in the worker's buffer for others to share its write.
const MAX_BATCH_DELAY: Duration = Duration::from_millis(1);

/// How long a worker on its way out waits for its queued log lines to be written.
const EXIT_FLUSH_BOUND: Duration = Duration::from_millis(500);

/// Runs the worker from its command line (the arguments after `worker`); the exit status
/// is 0 after a stop, 1 after a failed start, 2 when started by hand or with bad arguments.
pub fn run_from_command_line(args: impl Iterator<Item = String>) -> ! {
    if std::io::stdin().is_terminal() {
        eprintln!(
            "error: `complex worker` is the worker process that `complex` starts and talks to over \
             stdin/stdout; it is not run by hand. Run `complex` instead (see `complex --help`)."
        );
        std::process::exit(2);
    }
    match WorkerArgs::parse(args) {
        Ok(args) => run(args),
        Err(error) => {
            eprintln!("error: complex worker: {error}");
            std::process::exit(2);
        }
    }
}

fn run(args: WorkerArgs) -> ! {
    let name = format!("worker-{}", args.index);
    if let Err(error) = graceful::logging::init(&name, args.log_format, args.log_level) {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
    graceful::panics::install_hook();
    // Once the handlers are in place, a signal that arrived since spawn is delivered (and
    // ignored) now: `install` unblocks them.
    install_signal_intake(&name);

    let components = Components::new();
    components.starting(&name);
    let mut out = BufWriter::new(std::io::stdout().lock());
    if send(&mut out, &Report::Bootstrapped).is_err() {
        exit_parent_gone(&components, &name);
    }
    if args.fail_start {
        let reason = format!("start failed on purpose (--fail-start {name})");
        let _ = send(&mut out, &Report::StartFailed(reason.clone()));
        components.failed(&name, &reason);
        exit(1);
    }
    let mut manager = DummyManager::new(args.time_scale);
    if send(&mut out, &Report::Started).is_err() {
        exit_parent_gone(&components, &name);
    }
    components.started(&name);
    if args.inject_fault == Some(Fault::SlowLogLine) {
        write_slow_log_line(&name, args.log_format);
    }

    // One buffer, ours, over stdin's descriptor: `readable` must see every byte already read
    // from the pipe, which std's own stdin buffer would hide.
    let cause = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => work_loop(
            &mut BufReader::new(File::from(fd)),
            &mut manager,
            &mut out,
            args.inject_fault,
        ),
        Err(error) => StopCause::Garbage(format!("cannot read stdin: {error}")),
    };
    match &cause {
        StopCause::Command => tracing::debug!("{name}: stop command received"),
        StopCause::ParentGone => tracing::warn!("{name}: the parent is gone; stopping"),
        StopCause::Garbage(what) => tracing::error!("{name}: unreadable command stream ({what}); stopping"),
    }
    components.stopping(&name);
    let _ = out.flush();
    components.stopped(&name);
    exit(0)
}

/// Ends the worker once its queued log lines are written (at most [`EXIT_FLUSH_BOUND`]).
fn exit(code: i32) -> ! {
    worker_logs::flush(EXIT_FLUSH_BOUND);
    std::process::exit(code)
}

/// `--inject-fault slow-log-line`: one log line of 8 KiB, well past a pipe's atomic write,
/// written straight to fd 2 in 64-byte pieces over about 2.5 s, so a test can kill the worker
/// in the middle of it. Finished, it is a proper line of the run's format.
fn write_slow_log_line(name: &str, format: LogFormat) {
    const PIECE: usize = 64;
    tracing::warn!("injected fault: writing an 8 KiB log line slowly to fd 2");
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
    worker_logs::flush(EXIT_FLUSH_BOUND);
    // std's stderr is unbuffered: each piece is one write(2) to fd 2.
    let mut stderr = std::io::stderr();
    for piece in line.as_bytes().chunks(PIECE) {
        if stderr.write_all(piece).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The parent's commands, buffered once.
type Commands = BufReader<File>;

/// Runs work until a stop. Before each item it takes in every command already sent (so a
/// stop outranks the calls queued before it); it waits for the parent only when idle.
/// Answers go out in batches: flushed when nothing more is queued or readable, or once the
/// oldest unsent answer has waited [`MAX_BATCH_DELAY`]. Batching saves a write per answer
/// when calls cost nothing (`--time-scale 0`); without the bound, a worker with calls
/// queued would hold every answer (an update's too) until its queue ran dry.
fn work_loop(
    input: &mut Commands,
    manager: &mut DummyManager,
    out: &mut impl Write,
    fault: Option<Fault>,
) -> StopCause {
    let mut lanes = Lanes::default();
    // Whether the pipe may hold unread commands; after an idle check found it empty, the
    // next read may as well block (it returns at once if something came meanwhile).
    let mut maybe_more = true;
    let mut unsent_since: Option<Instant> = None;
    loop {
        if maybe_more {
            take_in(input, &mut lanes, false);
        }
        if lanes.is_empty() {
            take_in(input, &mut lanes, true);
        }
        let Some(work) = lanes.next() else { continue };
        let answer = match work {
            Work::Withdraw(ids) => {
                if !ids.is_empty() {
                    tracing::debug!("withdrawing {} calls not begun: the stop has begun", ids.len());
                }
                // Several frames only past MAX_WITHDRAWN_PER_FRAME; the last (maybe empty:
                // nothing was queued) is also the acknowledgement of the withdraw command.
                let mut frames: Vec<Vec<u64>> =
                    ids.chunks(MAX_WITHDRAWN_PER_FRAME).map(<[u64]>::to_vec).collect();
                let last = frames.pop().unwrap_or_default();
                for ids in frames {
                    if (Report::Withdrawn { ids }).write_to(out).is_err() {
                        return StopCause::ParentGone;
                    }
                }
                Report::Withdrawn { ids: last }
            }
            Work::Stop(cause) if fault == Some(Fault::WorkerIgnoresStop) => {
                tracing::warn!("injected fault: ignoring the stop ({cause:?}) and idling forever");
                loop {
                    std::thread::park();
                }
            }
            Work::Stop(cause) => return cause,
            Work::Update(id) => Report::Updated {
                id,
                version: manager.update(),
            },
            Work::Call(id, parameter) => {
                let version = manager.process(&parameter);
                Report::Result {
                    id,
                    version,
                    parameter,
                }
            }
        };
        let idle = lanes.is_empty() && !readable(input);
        maybe_more = !idle;
        let oldest = *unsent_since.get_or_insert_with(Instant::now);
        let flush = idle || oldest.elapsed() >= MAX_BATCH_DELAY;
        if flush {
            unsent_since = None;
        }
        let written = answer
            .write_to(out)
            .and_then(|()| if flush { out.flush() } else { Ok(()) });
        if written.is_err() {
            // stdout broke: nobody reads our answers any more.
            return StopCause::ParentGone;
        }
    }
}

/// Reads commands into the lanes: everything already readable, or (with `wait`) at least
/// one. End-of-file means the parent is gone; unreadable bytes stop the worker too.
fn take_in(input: &mut Commands, lanes: &mut Lanes, mut wait: bool) {
    while wait || readable(input) {
        wait = false;
        match Command::read_from(input) {
            Ok(Some(command)) => lanes.push(command),
            Ok(None) => return lanes.stop(StopCause::ParentGone),
            Err(error) => return lanes.stop(StopCause::Garbage(error.to_string())),
        }
    }
}

/// Whether a read would not block: bytes buffered, or stdin readable (data, end-of-file or
/// error). A poll interrupted by a signal counts as "not now"; the loop asks again.
fn readable(input: &Commands) -> bool {
    if !input.buffer().is_empty() {
        return true;
    }
    let mut stdin = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout: poll only reports on the descriptor.
    let ready = unsafe { libc::poll(&mut stdin, 1, 0) };
    ready > 0 && stdin.revents != 0
}

fn send(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    report.write_to(out)?;
    out.flush()
}

/// Shutdown signals are logged and ignored: the parent decides when this worker stops.
fn install_signal_intake(name: &str) {
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
        // Without handlers the signals stay blocked (spawn.rs), so the worker is still safe.
        tracing::error!(cause = %error, "cannot install the signal handlers; shutdown signals stay blocked");
    }
}

fn exit_parent_gone(components: &Components, name: &str) -> ! {
    components.failed(
        name,
        &"the parent is gone (stdout closed) before the handshake completed",
    );
    exit(1)
}
