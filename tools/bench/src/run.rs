//! One measured process: spawned, synchronised on its log lines, signalled, reaped, gone.
//!
//! **Problem.** A benchmark of "how fast does it start and stop" is only as good as its
//! clocks and its clean-up. Sleeping "long enough" before signalling measures the sleep;
//! polling for the exit quantises it; a child killed and never reaped, or a worker that
//! outlived its parent, poisons every later run on a 2-core machine.
//!
//! **Fix.**
//! - Every line of the child's stderr is read on a thread that timestamps it the moment
//!   `read` returns, so "ready" is the instant the `app started` line arrived, not when the
//!   measuring thread got round to it.
//! - The exit is a blocking `wait4` on the pid: the kernel wakes it at the child's end, and
//!   it returns the child's rusage (`ru_maxrss`, its peak memory) with the status.
//! - Each run is its own process group (the suite's workers inherit it), so whatever is
//!   left of a run can be killed as one. A watchdog kills the group if the stop hangs;
//!   `Drop` kills and reaps a run that was abandoned half-way; and after the main process
//!   is reaped the group must be empty: stderr reaching end-of-file proves every process
//!   that held it (the workers too) has ended, and a group still alive is killed and
//!   reported as a broken contract.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// The process group of the run in progress (0: none), for the tool's own Ctrl+C handler.
static CURRENT_GROUP: AtomicI32 = AtomicI32::new(0);

/// Kills whatever run is in progress: for the tool's Ctrl+C handler, before it exits.
pub fn kill_current_run() {
    let group = CURRENT_GROUP.load(SeqCst);
    if group > 0 {
        kill_group(group);
    }
}

/// One line of the child's stderr: when it was read, and what it said.
pub struct Line {
    /// The moment the tool read it.
    pub at: Instant,
    /// The parsed JSON object, or the raw text as a JSON string if it was not JSON.
    pub json: Value,
}

impl Line {
    /// Whether this is the lifecycle event `component`/`phase`.
    pub fn is_event(&self, component: &str, phase: &str) -> bool {
        self.str_field("component") == Some(component) && self.str_field("phase") == Some(phase)
    }

    /// A string field of the event.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.json.get(key).and_then(Value::as_str)
    }

    /// An unsigned integer field of the event.
    pub fn u64_field(&self, key: &str) -> Option<u64> {
        self.json.get(key).and_then(Value::as_u64)
    }

    /// The event's own `timestamp` (milliseconds in the suite's logs), when it has one.
    pub fn timestamp(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(self.str_field("timestamp")?).ok()
    }
}

/// How a reaped process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `exit(code)`.
    Exited(i32),
    /// Ended by this signal.
    Signalled(i32),
}

/// What `wait4` said when the process was reaped.
pub struct Ended {
    /// When the signal was sent (or the wait began, for a process that ends by itself).
    pub signalled_at: Instant,
    /// When `wait4` returned.
    pub at: Instant,
    /// How it ended.
    pub status: Status,
    /// `ru_maxrss` in KiB: the peak RSS of the process, or of a reaped descendant if larger.
    pub max_rss_kib: u64,
    /// Whether the watchdog had to kill it.
    pub killed_by_watchdog: bool,
}

/// A spawned process under measurement. Dropping it kills and reaps what is left of it.
pub struct Proc {
    pid: i32,
    /// The instant just before the spawn.
    pub spawned_at: Instant,
    lines: Receiver<Line>,
    seen: Vec<Line>,
    reaped: bool,
    reader: Option<JoinHandle<()>>,
}

impl Proc {
    /// Spawns `program args` in a process group of its own, stdin and stdout closed to it,
    /// stderr read line by line. `RUST_LOG` is removed: it would override `--log-level`.
    pub fn spawn(program: &Path, args: &[impl AsRef<OsStr>]) -> anyhow::Result<Proc> {
        use std::os::unix::process::CommandExt as _;
        let mut command = Command::new(program);
        spawning::default_signal_dispositions(&mut command, &[]);
        command
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let spawned_at = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("failed to spawn {}", program.display()))?;
        let pid = i32::try_from(child.id()).context("failed to use the child's pid")?;
        CURRENT_GROUP.store(pid, SeqCst);
        // From here the pid is ours to reap with wait4: `child` is dropped without waiting
        // (std neither kills nor reaps on drop), and only its stderr is kept. Until `Proc`
        // exists to do it on drop, a failure here must kill and reap by hand.
        let abandon = |error: anyhow::Error| {
            kill_group(pid);
            let _ = wait4(pid);
            CURRENT_GROUP.store(0, SeqCst);
            error
        };
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| abandon(anyhow::anyhow!("failed to open the child's stderr")))?;
        let (send, lines) = channel();
        let reader = std::thread::Builder::new()
            .name(format!("read-{pid}"))
            .spawn(move || read_lines(stderr, send))
            .map_err(|e| {
                abandon(anyhow::Error::new(e).context("failed to start the stderr reader thread"))
            })?;
        Ok(Proc {
            pid,
            spawned_at,
            lines,
            seen: Vec::new(),
            reaped: false,
            reader: Some(reader),
        })
    }

    /// The main process's pid.
    pub fn main_pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// Every line read so far.
    pub fn lines(&self) -> &[Line] {
        &self.seen
    }

    /// Waits for the first line (from now on) that `wanted` accepts; returns its index in
    /// [`lines`](Self::lines).
    pub fn wait_for(&mut self, timeout: Duration, wanted: impl Fn(&Line) -> bool) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = wanted(&line);
                    self.seen.push(line);
                    if found {
                        return Ok(self.seen.len() - 1);
                    }
                }
                Err(RecvTimeoutError::Timeout) => bail!("no such line within {timeout:?}"),
                Err(RecvTimeoutError::Disconnected) => bail!("stderr ended first"),
            }
        }
    }

    /// Sends SIGINT to the main process (not its group: like `kill -INT PID`) and reaps it.
    /// A stop that takes longer than `timeout` is ended by SIGKILL to the whole group.
    pub fn interrupt_and_reap(&mut self, timeout: Duration) -> anyhow::Result<Ended> {
        self.reap_after(timeout, |pid| {
            // SAFETY: kill(2) on a pid we spawned and have not reaped: it cannot have been
            // reused by another process.
            unsafe { libc::kill(pid, libc::SIGINT) };
        })
    }

    /// Reaps a process that ends by itself, killing its group after `timeout`.
    pub fn reap(&mut self, timeout: Duration) -> anyhow::Result<Ended> {
        self.reap_after(timeout, |_| {})
    }

    fn reap_after(&mut self, timeout: Duration, act: impl FnOnce(i32)) -> anyhow::Result<Ended> {
        let (disarm, disarmed) = channel::<()>();
        let group = self.pid;
        let watchdog = std::thread::spawn(move || match disarmed.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => {
                kill_group(group);
                true
            }
            _ => false,
        });
        let signalled_at = Instant::now();
        act(self.pid);
        let waited = wait4(self.pid);
        let at = Instant::now();
        self.reaped = waited.is_ok();
        drop(disarm);
        let killed_by_watchdog = watchdog.join().unwrap_or(false);
        let (status, usage) = waited.context("failed to reap the process")?;
        let status = if libc::WIFSIGNALED(status) {
            Status::Signalled(libc::WTERMSIG(status))
        } else {
            Status::Exited(libc::WEXITSTATUS(status))
        };
        Ok(Ended {
            signalled_at,
            at,
            status,
            max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
            killed_by_watchdog,
        })
    }

    /// After the reap: reads the rest of stderr up to its end, which proves that every
    /// process of the run (workers included) has ended. If it does not end within
    /// `timeout`, the survivors are killed and this is an error (a broken contract).
    pub fn finish(mut self, timeout: Duration) -> anyhow::Result<Vec<Line>> {
        let deadline = Instant::now() + timeout;
        let mut outlived = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    // Someone still holds stderr after the main process ended: a worker
                    // outlived it. Kill the group; the reader then sees end-of-file.
                    outlived = true;
                    kill_group(self.pid);
                    if self.lines.recv_timeout(Duration::from_secs(5)).is_err() {
                        break;
                    }
                }
            }
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        CURRENT_GROUP.store(0, SeqCst);
        if outlived {
            bail!("a process of the run outlived its main process (killed)");
        }
        Ok(std::mem::take(&mut self.seen))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.reaped {
            kill_group(self.pid);
            let _ = wait4(self.pid);
        }
        CURRENT_GROUP.store(0, SeqCst);
    }
}

/// The reader thread: timestamps each line of `stderr` as it is read and sends it on.
/// It reads to the end even once nobody listens, so the child never blocks on a full pipe.
fn read_lines(stderr: ChildStderr, send: Sender<Line>) {
    let mut stderr = BufReader::new(stderr);
    let mut text = String::new();
    let mut listening = true;
    loop {
        text.clear();
        match stderr.read_line(&mut text) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let at = Instant::now();
        if listening {
            let line = text.trim_end();
            let json = serde_json::from_str(line).unwrap_or_else(|_| Value::String(line.to_owned()));
            listening = send.send(Line { at, json }).is_ok();
        }
    }
}

/// SIGKILL to a whole process group; a group already empty is no error.
fn kill_group(group: i32) {
    // SAFETY: kill(2) with a negative pid signals the group; the group id is that of a
    // process we spawned, so it names no stranger's group while any member of ours lives.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}

/// Blocking `wait4` for `pid`: its raw status and its rusage.
fn wait4(pid: i32) -> std::io::Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value that wait4 overwrites.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            return Ok((status, usage));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// The peak RSS so far of a running process (`VmHWM` in `/proc/PID/status`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// How many threads a running process has now (the entries of `/proc/PID/task`).
pub fn thread_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.count())
}

/// The proportional set size of a running process now (`Pss` in `/proc/PID/smaps_rollup`),
/// in KiB: its resident pages, each shared page divided among the processes sharing it, so
/// a tree's PSS adds up to what the tree really occupies.
pub fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup
        .lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Line {
        Line {
            at: Instant::now(),
            json: serde_json::from_str(text).unwrap(),
        }
    }

    #[test]
    fn events_and_fields_read_as_the_suite_writes_them() {
        let started = line(
            r#"{"timestamp":"2026-11-25T16:02:23.520Z","level":"INFO","target":"lifecycle",
               "process":"main","pid":7,"message":"app: started","component":"app","phase":"started"}"#,
        );
        assert!(started.is_event("app", "started"));
        assert!(!started.is_event("app", "exit"));
        assert_eq!(started.u64_field("pid"), Some(7));
        let stopping =
            line(r#"{"timestamp":"2026-11-25T16:02:24.521Z","component":"MPM","phase":"stopping"}"#);
        let window = stopping
            .timestamp()
            .unwrap()
            .duration_since(started.timestamp().unwrap());
        assert_eq!(
            window.unwrap(),
            Duration::from_millis(1001),
            "millisecond timestamps"
        );
    }
}
