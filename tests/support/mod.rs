//! The harness for the integration tests: run a binary of the suite as a user would, watch
//! its JSON log lines, signal it, and hold the run to the contract (docs/contract.md).
//!
//! **Problem.** A shutdown test is only worth something if it sends a *real* signal at a
//! *known* moment of the lifecycle, and then proves that nothing was lost, nothing ran out
//! of order and nothing was left running. Sleeping "long enough" before the signal makes a
//! test that passes on a quiet laptop and lies on a loaded CI machine.
//!
//! **Fix.** [`Run`] spawns the binary with `--log-format json` in its own process group (so
//! a signal to the group reaches it and its workers, as a terminal's Ctrl+C does, and never
//! the test runner). A reader thread hands over each stderr line; the test synchronises on
//! the events ([`Run::wait_for`]) and sends its signal right after the one it waited for.
//! Every timeout here is a failure bound, never a synchronisation: when it fires the test
//! panics with the whole log.
//!
//! After [`Run::wait_exit`] the `assert_*` methods judge the log with the torture tool's
//! own checks (`logread::contract`) and fail with their violations and the log. [`Drop`]
//! kills the whole process group and reaps the child, so a failing test leaves nothing.
#![allow(
    dead_code,
    reason = "every test crate compiles the harness and uses a part of it"
)]

use std::collections::BTreeSet;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use logread::contract::{self, Facts, Violation};
use spawning::{Stderr, is_alive};

// The suite's one reader of the log, its matchers and its signals, shared with
// tools/torture: an `Event` is one stderr line (a JSON log event, or raw text that a test
// must be able to see and reject). Each test crate names a part of them.
#[allow(unused_imports)]
pub use logread::matching::{Fields, Matcher, Pattern, event, fields, phase, signal_event, worker_event};
#[allow(unused_imports)]
pub use logread::{Event, Signal, mentions_pid};
#[allow(unused_imports)]
pub use spawning::wait_exited;

/// How long any single wait may take before the test fails: generous, because it only
/// bounds a failure (a hung binary); a passing test never waits anywhere near it.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The path of an example's binary (`examples/NAME.rs`), which `cargo test` builds beside
/// the tests (a lone `cargo test --test X` does not: `cargo build --examples` first).
pub fn example(name: &str) -> String {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>");
    dir.join("examples").join(name).to_string_lossy().into_owned()
}

/// A running (or finished) binary of the suite, and everything it has logged so far.
///
/// Protocol: `wait_for` consumes the log in order (each call searches after the previous
/// match), `signal`/`signal_group` act at that moment, `wait_exit` reaps the process and
/// reads the log to its end; the `assert_*` methods then check the complete run.
pub struct Run {
    child: Child,
    /// When it was spawned: each line's `at` counts from here.
    spawned: Instant,
    /// The child's pid, which is also its process group's id (`process_group(0)`).
    pid: i32,
    /// The reader thread, which the test may stall or slow.
    stderr: Stderr,
    log: Vec<Event>,
    /// Index in `log` where the next `wait_for` starts searching.
    cursor: usize,
    /// Set once `wait_exit` has reaped the child and read stderr to its end.
    status: Option<ExitStatus>,
    /// Set once the process group was found empty: then `Drop` must not signal it (its id
    /// may belong to someone else by then).
    group_gone: bool,
    /// How many `event=panic` lines the test planted ([`Run::expect_panics`]); any other
    /// panic fails [`Run::assert_clean_output`].
    panics_planted: usize,
}

/// What a test may change about how a binary is started, beyond its arguments.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Signals left ignored at the exec (as `nohup` leaves SIGHUP, or a non-interactive
    /// shell SIGINT for a background job); every other shutdown signal is reset to its
    /// default.
    pub ignored: Vec<Signal>,
    /// Extra environment variables (`RUST_LOG`, ...).
    pub env: Vec<(String, String)>,
    /// A command the binary runs under, each word an argument, ending where the binary's
    /// path goes: `setpriv ... prlimit --nproc=3 --`. It must exec the binary (so the
    /// main process keeps the spawned pid), as `setpriv` and `prlimit` do.
    pub wrapper: Vec<String>,
    /// Stderr goes to this regular file instead of a pipe; the harness reads it as it grows.
    pub stderr_file: Option<PathBuf>,
}

impl Run {
    /// Starts `binary` (`env!("CARGO_BIN_EXE_simple")`) with `--log-format json` and `args`,
    /// in a new process group of its own, stdin and stdout null, stderr read line by line.
    #[track_caller]
    pub fn spawn(binary: &str, args: &[&str]) -> Self {
        Self::spawn_with(binary, args, &Options::default())
    }

    /// [`spawn`](Self::spawn) in the environment `options` describes.
    #[track_caller]
    pub fn spawn_with(binary: &str, args: &[&str], options: &Options) -> Self {
        let mut command = match options.wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .arg("--log-format")
            .arg("json")
            .args(args)
            // The logs must not depend on the environment the tests run in.
            .env_remove("RUST_LOG")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            // Its own group: our signals to the group reach it and its workers only, and a
            // Ctrl+C typed at the terminal running `cargo test` reaches the tests, not it.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let ignored: Vec<i32> = options.ignored.iter().map(|s| s.number()).collect();
        spawning::default_signal_dispositions(&mut command, &ignored);
        command.stderr(match &options.stderr_file {
            Some(path) => Stdio::from(
                std::fs::File::create(path)
                    .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display())),
            ),
            None => Stdio::piped(),
        });
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("failed to spawn {binary}: {error}"));
        let pid = i32::try_from(child.id()).expect("a pid fits in i32");
        let stderr = Stderr::read(&mut child, options.stderr_file.as_deref()).unwrap_or_else(|error| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("failed to start reading the run's stderr: {error}");
        });
        Self {
            child,
            spawned: Instant::now(),
            pid,
            stderr,
            log: Vec::new(),
            cursor: 0,
            status: None,
            group_gone: false,
            panics_planted: 0,
        }
    }

    /// The test planted `count` panics (`--inject-fault worker-panics`): exactly that many
    /// `event=panic` lines must appear, and no other.
    pub fn expect_panics(&mut self, count: usize) {
        self.panics_planted = count;
    }

    /// Waits for the main process's next signal event for `signal` (one with an `action`).
    #[track_caller]
    pub fn next_signal_event(&mut self, signal: Signal) -> Event {
        let name = signal.name();
        self.wait_for(
            move |e: &Event| {
                e.process() == Some("main") && e.str("signal") == Some(name) && e.str("action").is_some()
            },
            PATIENCE,
        )
    }

    /// Asserts `event` (a signal event) says `action` and is shutdown signal number `count`.
    #[track_caller]
    pub fn assert_signal_event(&self, event: &Event, action: &str, count: i64) {
        if event.str("action") != Some(action) || event.int("count") != Some(count) {
            self.fail(&format!(
                "expected signal number {count} to be logged action={action}; got {}",
                event.raw
            ));
        }
    }

    /// Waits until an event after the previous match satisfies `matcher`, and returns it.
    /// Panics with the whole log if the process ends first or `timeout` passes.
    #[track_caller]
    pub fn wait_for(&mut self, matcher: impl Matcher, timeout: Duration) -> Event {
        let deadline = Instant::now() + timeout;
        // Each line is looked at once: a run at full speed logs hundreds of thousands.
        let mut scanned = self.cursor;
        loop {
            if let Some(offset) = self.log[scanned..].iter().position(|e| matcher.matches(e)) {
                let index = scanned + offset;
                self.cursor = index + 1;
                return self.log[index].clone();
            }
            scanned = self.log.len();
            match self.receive(deadline) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("waited {timeout:?} for {}", matcher.describe()))
                }
                Err(RecvTimeoutError::Disconnected) => self.fail(&format!(
                    "stderr closed (the run ended) before {} was logged",
                    matcher.describe()
                )),
            }
        }
    }

    /// Sends `signal` to the main process only, as `kill -s SIG PID` does.
    #[track_caller]
    pub fn signal(&self, signal: Signal) {
        self.kill(self.pid, signal.number());
    }

    /// Sends `signal` to the whole process group, as a terminal's Ctrl+C does: the main
    /// process and every worker receive it at once.
    #[track_caller]
    pub fn signal_group(&self, signal: Signal) {
        self.kill(-self.pid, signal.number());
    }

    /// Sends signal number `signal` to `target` (a pid of the run, or minus its group).
    #[track_caller]
    fn kill(&self, target: i32, signal: i32) {
        assert!(
            self.status.is_none(),
            "cannot signal {target}: the run has already been reaped"
        );
        // SAFETY: kill(2) on our unreaped child, its group or a worker the test just saw
        // start: the id cannot have been reused.
        if unsafe { libc::kill(target, signal) } != 0 {
            let error = std::io::Error::last_os_error();
            self.fail(&format!("kill({target}, {signal}) failed: {error}"));
        }
    }

    /// Waits (bounded by [`PATIENCE`]) for the run to end: reads stderr to its end, which
    /// needs every process of the run to have exited, then reaps the main process.
    #[track_caller]
    pub fn wait_exit(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.receive(deadline) {
                Ok(()) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self.fail(&format!(
                    "stderr still open after {PATIENCE:?}: the main process or one of its \
                     children is still running (or an orphan holds the pipe)"
                )),
            }
        }
        // Stderr is closed, so the main process has exited or is exiting: its pidfd says
        // when (no polling), and reaping it is then immediate; still bounded.
        if !wait_exited(self.pid, deadline.saturating_duration_since(Instant::now())) {
            self.fail(&format!(
                "the main process closed stderr but did not exit within {PATIENCE:?}"
            ));
        }
        match self.child.wait() {
            Ok(status) => {
                self.status = Some(status);
                status
            }
            Err(error) => self.fail(&format!("failed to wait for the main process: {error}")),
        }
    }

    /// Every line logged so far.
    pub fn log(&self) -> &[Event] {
        &self.log
    }

    /// The main process's lifecycle events, as `component phase` (`"AsyncService1 started"`),
    /// in the order logged: the shape of a run, for an exact comparison.
    pub fn lifecycle(&self) -> Vec<String> {
        self.log
            .iter()
            .filter(|e| e.is_main())
            .filter_map(|e| Some(format!("{} {}", e.component()?, e.phase()?)))
            .collect()
    }

    /// Asserts the main process's lifecycle events are exactly `expected`, as
    /// [`lifecycle`](Self::lifecycle) lists them.
    #[track_caller]
    pub fn assert_lifecycle(&self, expected: &[&str]) {
        let seen = self.lifecycle();
        if seen != expected {
            self.fail(&format!(
                "lifecycle events differ\n expected: {expected:?}\n     seen: {seen:?}"
            ));
        }
    }

    /// Index of the first event matching `matcher` at or after `from`.
    pub fn position(&self, matcher: &(impl Matcher + ?Sized), from: usize) -> Option<usize> {
        self.log[from..]
            .iter()
            .position(|e| matcher.matches(e))
            .map(|i| from + i)
    }

    /// Every event matching `matcher`.
    pub fn all(&self, matcher: &(impl Matcher + ?Sized)) -> Vec<&Event> {
        self.log.iter().filter(|e| matcher.matches(e)).collect()
    }

    /// Asserts the process ended by `signal` (not by `exit`), as a shell expects after a
    /// signal-initiated stop.
    #[track_caller]
    pub fn assert_ended_by(&self, signal: Signal) {
        let status = self.reaped();
        if status.signal() != Some(signal.number()) || status.core_dumped() {
            self.fail(&format!(
                "expected the process to end by {} ({}), it ended with {status}",
                signal.name(),
                signal.number()
            ));
        }
    }

    /// Asserts the process exited with `code` (and not by a signal).
    #[track_caller]
    pub fn assert_exit_code(&self, code: i32) {
        let status = self.reaped();
        if status.code() != Some(code) {
            self.fail(&format!(
                "expected exit code {code}, the process ended with {status}"
            ));
        }
    }

    /// Asserts each pattern is logged after the previous one (other events may come between).
    #[track_caller]
    pub fn assert_order(&self, patterns: &[Pattern]) {
        let steps: Vec<&dyn Matcher> = patterns.iter().map(|p| p as &dyn Matcher).collect();
        self.assert_sequence(&steps);
    }

    /// [`assert_order`](Self::assert_order) for any mix of matchers: a [`Pattern`],
    /// [`Fields`], a closure.
    #[track_caller]
    pub fn assert_sequence(&self, steps: &[&dyn Matcher]) {
        if let Err(why) = logread::matching::in_sequence(&self.log, steps) {
            self.fail(&why);
        }
    }

    /// Asserts the lifecycle pairing of the contract, per process incarnation: a component
    /// that logged `starting` logged `started` or `failed` later; one that logged `started`
    /// logged `stopped` or `failed` later (a worker killed outright is answered for by its
    /// parent's `failed` naming its pid).
    #[track_caller]
    pub fn assert_every_component_finished(&self) {
        self.judge(contract::pairs(&self.log));
    }

    /// Asserts `services` (in the order the binary starts them) started in that order and
    /// stopped in reverse, and every worker ended before the manager reported stopped.
    #[track_caller]
    pub fn assert_reverse_stop_order(&self, services: &[&str]) {
        self.judge(contract::stop_order(&self.log, services));
    }

    /// Asserts the shield's promise: no service began stopping before the last service's
    /// start had finished (`started` or `failed`).
    #[track_caller]
    pub fn assert_no_stop_before_start_completed(&self) {
        self.judge(contract::no_stop_before_start_completed(&self.log));
    }

    /// Asserts every line is a JSON event with the contract's keys (a run in JSON mode
    /// writes nothing else to stderr, not even from a worker dying noisily), no line carries
    /// panic text, and no panic was logged as an event (`event=panic`) but those the test
    /// planted.
    #[track_caller]
    pub fn assert_clean_output(&self) {
        let facts = Facts {
            main_pid: i64::from(self.pid),
            panics_planted: self.panics_planted,
            ..Facts::default()
        };
        self.judge(contract::clean_output(&self.log, &[], &facts));
    }

    /// Asserts the run's very last line, from any process, is the main process's
    /// `component=app phase=exit` with `status` (and `signal` when it ended by one), and
    /// that it is logged exactly once.
    #[track_caller]
    pub fn assert_last_line_is_exit(&self, status: i64, signal: Option<Signal>) {
        if let Err(why) = contract::exit_as(&self.log, Some(status), signal.map(Signal::name)) {
            self.fail(&why);
        }
    }

    /// Asserts no process of the run outlives it: the process group is empty and every pid
    /// seen in the logs is gone. Call after [`wait_exit`](Self::wait_exit), which reaped the
    /// main process (until then it is a zombie and still "exists").
    #[track_caller]
    pub fn assert_nothing_left(&mut self) {
        self.reaped();
        let pids: BTreeSet<i64> = self.log.iter().filter_map(|e| e.int("pid")).collect();
        let mut alive: Vec<String> = pids
            .iter()
            .filter_map(|&pid| i32::try_from(pid).ok())
            .filter(|&pid| is_alive(pid))
            .map(|pid| format!("pid {pid}"))
            .collect();
        if is_alive(-self.pid) {
            alive.push(format!("a member of process group {}", self.pid));
        } else {
            self.group_gone = true;
        }
        if !alive.is_empty() {
            self.fail(&format!(
                "processes of the run are still alive: {}",
                alive.join(", ")
            ));
        }
    }

    /// Every check that holds for any run ended by `signal` after a complete stop: ended
    /// by it, status 128+N last, every component finished, the services in reverse order,
    /// no stop before the start completed, clean output, nothing left.
    #[track_caller]
    pub fn assert_graceful_end_by(&mut self, signal: Signal, services: &[&str]) {
        self.wait_exit();
        self.assert_ended_by(signal);
        self.assert_last_line_is_exit(signal.shell_status(), Some(signal));
        self.assert_every_component_finished();
        self.assert_reverse_stop_order(services);
        self.assert_no_stop_before_start_completed();
        self.assert_clean_output();
        self.assert_nothing_left();
    }

    /// Fails the test with every violation, if there is one, and the whole log.
    #[track_caller]
    fn judge(&self, violations: Vec<Violation>) {
        if let Err(why) = contract::verdict(violations) {
            self.fail(&why);
        }
    }

    /// Takes the reader's next line into the log, waiting until `deadline` at most.
    fn receive(&mut self, deadline: Instant) -> Result<(), RecvTimeoutError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = self.stderr.lines.recv_timeout(left)?;
        self.log.push(logread::parse_at(line, self.spawned.elapsed()));
        Ok(())
    }

    #[track_caller]
    fn reaped(&self) -> ExitStatus {
        self.status
            .expect("call wait_exit() before asserting on how the run ended")
    }

    /// Fails the test with `message` followed by the whole log.
    #[track_caller]
    pub fn fail(&self, message: &str) -> ! {
        let total = self.log.len();
        let mut text = format!("{message}\n--- the run's stderr ({total} lines) ---\n");
        text += &logread::excerpt(&self.log, 150, 450);
        if let Some(status) = self.status {
            text += &format!("--- ended with {status} ---\n");
        }
        panic!("{text}");
    }
}

/// What runs with worker processes need (tests/complex.rs): the pids to aim at and to
/// watch, beyond the main process and its group.
impl Run {
    /// The main process's pid, which is also the run's process group id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends SIGKILL to one process of the run (the main process, or a worker whose pid
    /// its own log lines gave): a crash nothing can catch or log.
    ///
    /// A worker's pid could only be reused once the worker has died *and* been reaped by
    /// the main process; the tests aim at workers they have just seen start.
    #[track_caller]
    pub fn sigkill(&self, pid: i32) {
        assert!(pid > 0, "sigkill takes one process's pid, got {pid}");
        self.kill(pid, libc::SIGKILL);
    }

    /// Waits (on pidfds, not by polling) until none of `pids` is alive (a zombie counts as
    /// gone), and returns how long that took; fails, naming the survivors, once `bound` has
    /// passed. The bound is the contract's promise being tested ("gone within 5 s"), not
    /// a synchronisation: a passing run returns as soon as the last one is gone.
    #[track_caller]
    pub fn wait_gone(&self, pids: &[i32], bound: Duration) -> Duration {
        let began = Instant::now();
        let deadline = began + bound;
        let alive: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|&pid| !wait_exited(pid, deadline.saturating_duration_since(Instant::now())))
            .collect();
        if !alive.is_empty() {
            self.fail(&format!("still alive {bound:?} later: pids {alive:?}"));
        }
        began.elapsed()
    }
}

/// What the environment tests need: a stalled reader, job-control signals, raw signals.
impl Run {
    /// Stops reading stderr after the line being read: from now on the pipe fills up and
    /// stays full, as behind a pager nobody scrolls. The lines read so far stay readable.
    pub fn stop_reading(&self) {
        self.stderr.gate.set(true);
    }

    /// Reads stderr again after [`stop_reading`](Self::stop_reading).
    pub fn resume_reading(&self) {
        self.stderr.gate.set(false);
    }

    /// Reads stderr at about `bytes_per_second`, a slow but moving sink (a log shipper that
    /// fell behind); 0 reads as fast as it comes again.
    pub fn pace_reading(&self, bytes_per_second: u64) {
        self.stderr.pace.store(bytes_per_second, Ordering::Relaxed);
    }

    /// Waits (bounded by [`PATIENCE`]) until stderr is a full pipe the main process is
    /// blocked writing to; returns the bytes it holds.
    #[track_caller]
    pub fn wait_stderr_full(&self) -> usize {
        self.stderr
            .wait_full(self.pid, PATIENCE)
            .unwrap_or_else(|why| self.fail(&why))
    }

    /// Sends signal number `signal` (SIGSTOP, SIGCONT, ...) to the main process alone, or to
    /// the whole process group (as the terminal's Ctrl+Z and `fg` do).
    #[track_caller]
    pub fn send_raw(&self, signal: i32, to_group: bool) {
        self.kill(if to_group { -self.pid } else { self.pid }, signal);
    }

    /// Sends `signal` to the main process and returns once the kernel has handed it over
    /// (it is no longer pending: a handler took it, or its disposition discarded it), so
    /// that the next signal sent cannot merge with it. Watches `/proc`, bounded by
    /// [`PATIENCE`]; needed when the test cannot read the log to see it handled.
    #[track_caller]
    pub fn signal_and_wait_taken(&self, signal: Signal) {
        self.signal(signal);
        if !spawning::wait_signal_taken(self.pid, signal.number(), PATIENCE) {
            self.fail(&format!("{} stayed pending for {PATIENCE:?}", signal.name()));
        }
    }

    /// Whether the main process has exited (a zombie counts), waiting up to `timeout`.
    pub fn exited_within(&self, timeout: Duration) -> bool {
        self.status.is_some() || wait_exited(self.pid, timeout)
    }
}

impl Drop for Run {
    /// The last line of defence: whatever the test did, kill every process of the run and
    /// reap the main one, so a failing test leaves nothing running.
    fn drop(&mut self) {
        // A reader held at its gate would never see the end of the pipe.
        self.stderr.gate.set(false);
        if !self.group_gone {
            // SAFETY: kill(2) on our own child's process group. ESRCH (already empty) is fine.
            unsafe {
                libc::kill(-self.pid, libc::SIGKILL);
            }
        }
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
