//! One run of a binary under test: spawned in its own process group, its output and its end
//! turned into one stream of events the trial waits on.
//!
//! **Problem.** The trial must wait for things to happen (a line, the exit, the end of the
//! output) without sleeping and hoping, never hang, and never signal a pid after it was
//! reaped: with pids reused quickly, `kill(-pgid)` after the leader's reaping may hit
//! another trial's run.
//!
//! **Fix.** Three threads feed one channel: a reader per pipe sends each line as it comes
//! and the end of the pipe; the waiter sends the exit. The waiter first waits *without
//! reaping* (`waitid(WNOWAIT)`: the leader stays a zombie, so its pid and group id cannot be
//! reused), then, under the same lock the senders take, marks the run ended and reaps. A
//! sender holding the lock therefore either sees "ended" and sends nothing, or signals a
//! group whose id is still ours.
//!
//! The stderr pipe is shared by every process of the run (workers inherit it), so its end
//! means that every one of them has exited: the event that "nothing is left".

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::procs::{self, Pidfd};
use crate::scenario::Signal;

pub use logread::contract::Ended;

/// Something that happened to the run.
#[derive(Debug)]
pub enum Event {
    /// A line on stderr (the JSON logs of every process).
    Stderr(Instant, String),
    /// A line on the main process's stdout (there should be none).
    Stdout(Instant, String),
    /// stderr reached its end: every process of the run has closed it (exited).
    StderrEnd(Instant),
    /// stdout reached its end.
    StdoutEnd,
    /// The main process ended and was reaped.
    Exited(Instant, Ended),
    /// The main process could not be waited for (should not happen).
    WaitFailed(String),
}

/// A running binary under test.
pub struct Run {
    /// The main process's pid, also its process group's id.
    pub pid: i32,
    /// When it was spawned.
    pub spawned: Instant,
    /// The main process's start time (`/proc` ticks): later processes are the run's own.
    pub start_time: u64,
    /// Events, in the order they happened per source.
    pub events: Receiver<Event>,
    /// True once the main process has ended (set under the lock, before it is reaped).
    ended: Arc<Mutex<bool>>,
    /// The stderr reader passes it before each read: closed, the pipe fills up.
    gate: Arc<spawning::Gate>,
}

impl Run {
    /// Spawns `program args` in a process group of its own (as a terminal's job control
    /// does), with stdin closed and stdout and stderr piped to the tool. A non-empty
    /// `wrapper` (`setpriv ... prlimit ... --`) runs first and execs the program, so the
    /// main process keeps the spawned pid.
    pub fn spawn(program: &Path, args: &[String], wrapper: &[String]) -> std::io::Result<Self> {
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(program);
                command
            }
            None => Command::new(program),
        };
        spawning::default_signal_dispositions(&mut command, &[]);
        let mut child = command
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // The logs must not depend on the tool's environment.
            .env_remove("RUST_LOG")
            .env_remove("RUST_BACKTRACE")
            .spawn()?;
        let spawned = Instant::now();
        let pid = child.id() as i32;
        // Unreaped, so the pid is still this child's.
        let start_time = procs::stat(pid).map_or(0, |s| s.start_time);
        let (tx, events) = channel();
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("the child's pipes were not created"));
        };
        let gate = Arc::new(spawning::Gate::default());
        spawn_reader(
            "torture-stderr",
            stderr,
            tx.clone(),
            Event::Stderr,
            Event::StderrEnd,
            Some(gate.clone()),
        )?;
        spawn_reader(
            "torture-stdout",
            stdout,
            tx.clone(),
            Event::Stdout,
            |_| Event::StdoutEnd,
            None,
        )?;
        let ended = Arc::new(Mutex::new(false));
        let waiter_ended = ended.clone();
        std::thread::Builder::new()
            .name("torture-waiter".into())
            .spawn(move || wait_and_reap(child, &waiter_ended, &tx))?;
        Ok(Self {
            pid,
            spawned,
            start_time,
            events,
            ended,
            gate,
        })
    }

    /// A handle another thread can act on the run with (the environment's driver).
    pub fn controls(&self) -> Controls {
        Controls {
            pid: self.pid,
            ended: self.ended.clone(),
            gate: self.gate.clone(),
        }
    }

    /// Time since the spawn.
    pub fn elapsed(&self) -> Duration {
        self.spawned.elapsed()
    }

    /// Sends `sig` to the whole group, unless the main process has ended. Returns when it
    /// was sent, or `None` if it was not.
    pub fn signal_group(&self, sig: Signal) -> Option<Instant> {
        self.while_running(|| procs::signal_group(self.pid, sig))
    }

    /// Sends `sig` to the main process alone, unless it has ended.
    pub fn signal_main(&self, sig: Signal) -> Option<Instant> {
        self.while_running(|| procs::signal_pid(self.pid, sig))
    }

    /// SIGKILLs `pid` if it is alive and in this run's group (so a pid from the logs that
    /// was reused by now is left alone). Returns when it was sent.
    pub fn kill_member(&self, pid: i32) -> Option<Instant> {
        let fd = Pidfd::open(pid)?;
        fd.stat_in_group(self.pid).filter(procs::Stat::is_alive)?;
        self.while_running(|| fd.send(Signal::Kill))
    }

    fn while_running(&self, send: impl FnOnce() -> std::io::Result<()>) -> Option<Instant> {
        let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        if *ended {
            return None;
        }
        let at = Instant::now();
        // ESRCH is possible only for a member that ended meanwhile: then nothing was sent.
        send().ok().map(|()| at)
    }
}

/// What another thread may do to a run: stall its reader, signal it while it runs.
#[derive(Clone)]
pub struct Controls {
    pid: i32,
    ended: Arc<Mutex<bool>>,
    gate: Arc<spawning::Gate>,
}

impl Controls {
    /// Stops (`true`) or resumes reading stderr: stopped, the pipe fills up and the run's
    /// writes to it block, as behind a pager nobody scrolls.
    pub fn stall_reading(&self, stalled: bool) {
        self.gate.set(stalled);
    }

    /// Sends `sig` to the whole group or the main process, unless the main process has
    /// ended (the same guard as [`Run::signal_group`]). Returns when it was sent.
    pub fn signal(&self, sig: Signal, group: bool) -> Option<Instant> {
        let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        if *ended {
            return None;
        }
        let at = Instant::now();
        let sent = if group {
            procs::signal_group(self.pid, sig)
        } else {
            procs::signal_pid(self.pid, sig)
        };
        sent.ok().map(|()| at)
    }
}

fn spawn_reader<R: Read + Send + 'static>(
    name: &str,
    pipe: R,
    tx: Sender<Event>,
    line: fn(Instant, String) -> Event,
    end: fn(Instant) -> Event,
    gate: Option<Arc<spawning::Gate>>,
) -> std::io::Result<()> {
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            if let Some(gate) = &gate {
                gate.pass();
            }
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buffer);
                    let text = text.strip_suffix('\n').unwrap_or(&text).to_owned();
                    if tx.send(line(Instant::now(), text)).is_err() {
                        // The trial is over and gone: drain the pipe so no writer blocks.
                        let _ = std::io::copy(&mut reader, &mut std::io::sink());
                        return;
                    }
                }
            }
        }
        let _ = tx.send(end(Instant::now()));
    })?;
    Ok(())
}

fn wait_and_reap(mut child: Child, ended: &Mutex<bool>, tx: &Sender<Event>) {
    let pid = child.id();
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid(2).
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child's pid, WNOWAIT: it is left waitable (a zombie).
        let result = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if result == 0 {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            let _ = tx.send(Event::WaitFailed(format!("waitid: {error}")));
            return;
        }
    }
    let mut ended = ended.lock().unwrap_or_else(|p| p.into_inner());
    *ended = true;
    let status = child.wait();
    drop(ended);
    let event = match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => Event::Exited(Instant::now(), Ended::Code(code)),
            (None, Some(signal)) => Event::Exited(Instant::now(), Ended::Signal(signal)),
            (None, None) => Event::WaitFailed(format!("unexpected wait status {status}")),
        },
        Err(error) => Event::WaitFailed(format!("wait: {error}")),
    };
    let _ = tx.send(event);
}
