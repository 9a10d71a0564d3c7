//! The harness for the integration tests: run a binary of the suite as a user would, watch
//! its JSON log lines, signal it, and check what the contract (docs/contract.md) promises.
//!
//! **Problem.** A shutdown test is only worth something if it sends a *real* signal at a
//! *known* moment of the lifecycle, and then proves that nothing was lost, nothing ran out
//! of order and nothing was left running. Sleeping "long enough" before the signal makes a
//! test that passes on a quiet laptop and lies on a loaded CI machine.
//!
//! **Fix.** [`Run`] spawns the binary with `--log-format json` in its own process group (so
//! a signal to the group reaches it and its workers, as a terminal's Ctrl+C does, and never
//! the test runner). A reader thread turns each stderr line into an [`Event`]; the test
//! synchronises on those events ([`Run::wait_for`]) and sends its signal right after the
//! one it waited for. Every timeout here is a failure bound, never a synchronisation: when
//! it fires the test panics with the whole log.
//!
//! After [`Run::wait_exit`] the `assert_*` methods read the complete log: order of
//! lifecycle events, reverse stop order, every start matched by a stop, no panic text, the
//! `phase=exit` event last, and no process of the run left alive. [`Drop`] kills the whole
//! process group and reaps the child, so a failing test leaves nothing behind.
//!
//! The harness knows about several processes writing to one stderr (the `complex` binary's
//! workers log with `"process":"worker-N"` and their own `"pid"`), so the same checks serve
//! the tests of both binaries: a replaced worker shares its predecessor's name, so pairings
//! go by name *and* pid, and a worker killed outright is answered for by its parent's
//! `failed` naming its pid. For runs with workers, [`Run::sigkill`] aims at one process and
//! [`Run::wait_gone`] bounds how long a set of pids may outlive what the test did.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};

use spawning::Gate;
use std::time::{Duration, Instant};

/// How long any single wait may take before the test fails: generous, because it only
/// bounds a failure (a hung binary); a passing test never waits anywhere near it.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Text that must never appear in a run's output: a panic, or the hint printed with one.
const PANIC_MARKERS: [&str; 2] = ["panicked at", "RUST_BACKTRACE"];

/// A Unix signal the tests send, named as the logs name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// A terminal's Ctrl+C.
    Int,
    /// `kill PID`, an init system.
    Term,
    /// The terminal went away.
    Hup,
}

impl Signal {
    /// The name the logs use (`SIGINT`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Int => "SIGINT",
            Self::Term => "SIGTERM",
            Self::Hup => "SIGHUP",
        }
    }

    /// The signal's number on this platform.
    pub fn number(self) -> i32 {
        match self {
            Self::Int => libc::SIGINT,
            Self::Term => libc::SIGTERM,
            Self::Hup => libc::SIGHUP,
        }
    }

    /// The status a shell shows for a process ended by this signal: 128 + N.
    pub fn shell_status(self) -> i64 {
        128 + i64::from(self.number())
    }
}

/// One stderr line of a run: a JSON log event, or raw text (clap's messages, or garbage
/// that a test must be able to see and reject). The suite's one reader of the log,
/// shared with tools/torture.
pub use logread::{Event, mentions_pid};

/// `component phase`, the way [`Run::lifecycle`] lists it.
fn lifecycle_label(event: &Event) -> Option<String> {
    Some(format!("{} {}", event.component()?, event.phase()?))
}

/// Something an [`Event`] can be checked against: a [`Pattern`], or any closure
/// `|event: &Event| -> bool`.
pub trait Matcher {
    /// Whether `event` matches.
    fn matches(&self, event: &Event) -> bool;
    /// What is being looked for, for failure messages.
    fn describe(&self) -> String;
}

impl<F: Fn(&Event) -> bool> Matcher for F {
    fn matches(&self, event: &Event) -> bool {
        self(event)
    }
    fn describe(&self) -> String {
        "an event matching the test's predicate".to_owned()
    }
}

/// The kinds of contract events the tests name, all by field.
#[derive(Clone, Copy, Debug)]
pub enum Pattern {
    /// `component=C phase=P`, from any process.
    Phase(&'static str, &'static str),
    /// `signal=S action=A`, from any process.
    Signal(&'static str, &'static str),
    /// `event=E`, a step of the manager, the pool or a worker, from any process.
    Event(&'static str),
    /// `event=E worker=W`: a step the parent logs about one of its workers.
    WorkerEvent(&'static str, &'static str),
}

/// The lifecycle event `component: phase`.
pub fn phase(component: &'static str, phase: &'static str) -> Pattern {
    Pattern::Phase(component, phase)
}

/// The signal event for `signal` (e.g. `SIGINT`) with `action` (e.g. `delayed`).
pub fn signal_event(signal: &'static str, action: &'static str) -> Pattern {
    Pattern::Signal(signal, action)
}

/// The step `name` (`event=update-started`, ...), from any process.
#[allow(
    dead_code,
    reason = "used by some test crates; every test crate compiles this module"
)]
pub fn event(name: &'static str) -> Pattern {
    Pattern::Event(name)
}

/// The step `name` the parent logs about `worker` (`event=spawned worker=worker-1`).
#[allow(
    dead_code,
    reason = "used by some test crates; every test crate compiles this module"
)]
pub fn worker_event(name: &'static str, worker: &'static str) -> Pattern {
    Pattern::WorkerEvent(name, worker)
}

impl Matcher for Pattern {
    fn matches(&self, event: &Event) -> bool {
        match *self {
            Self::Phase(component, phase) => event.is(component, phase),
            Self::Signal(signal, action) => event.is_signal(signal, action),
            Self::Event(name) => event.event() == Some(name),
            Self::WorkerEvent(name, worker) => {
                event.event() == Some(name) && event.str("worker") == Some(worker)
            }
        }
    }
    fn describe(&self) -> String {
        match self {
            Self::Phase(component, phase) => format!("component={component} phase={phase}"),
            Self::Signal(signal, action) => format!("signal={signal} action={action}"),
            Self::Event(name) => format!("event={name}"),
            Self::WorkerEvent(name, worker) => format!("event={name} worker={worker}"),
        }
    }
}

/// A log line with every one of these string fields, from any process: for the steps that
/// a single `event` does not name (`event=cancelled task=update in_hand=finished`).
#[derive(Clone, Copy, Debug)]
#[allow(
    dead_code,
    reason = "used by some test crates; every test crate compiles this module"
)]
pub struct Fields(pub &'static [(&'static str, &'static str)]);

/// A log line with every one of `fields`.
#[allow(
    dead_code,
    reason = "used by some test crates; every test crate compiles this module"
)]
pub fn fields(fields: &'static [(&'static str, &'static str)]) -> Fields {
    assert!(!fields.is_empty(), "no field to match would match every line");
    Fields(fields)
}

impl Matcher for Fields {
    fn matches(&self, event: &Event) -> bool {
        self.0.iter().all(|&(key, value)| event.str(key) == Some(value))
    }
    fn describe(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(" ")
    }
}

/// A running (or finished) binary of the suite, and everything it has logged so far.
///
/// Protocol: `wait_for` consumes the log in order (each call searches after the previous
/// match), `signal`/`signal_group` act at that moment, `wait_exit` reaps the process and
/// reads the log to its end; the `assert_*` methods then check the complete run.
pub struct Run {
    child: Child,
    /// The child's pid, which is also its process group's id (`process_group(0)`).
    pid: i32,
    lines: Receiver<String>,
    log: Vec<Event>,
    /// Index in `log` where the next `wait_for` starts searching.
    cursor: usize,
    /// Set once `wait_exit` has reaped the child and read stderr to its end.
    status: Option<ExitStatus>,
    /// Set once the process group was found empty: then `Drop` must not signal it (its id
    /// may belong to someone else by then).
    group_gone: bool,
    /// Closed by the reader thread between two reads while the test holds it shut
    /// ([`Run::stop_reading`]): stderr then fills up as a stalled pager's would.
    gate: Arc<Gate>,
    /// Bytes a second the reader takes from a stderr pipe; 0 for as fast as it comes.
    pace: Arc<AtomicU64>,
    /// Our own handle on the read end of the stderr pipe (`None` when stderr is a file),
    /// to ask how full it is.
    pipe: Option<OwnedFd>,
    /// How many `event=panic` lines the test planted ([`Run::expect_panics`]); any other
    /// panic fails [`Run::assert_clean_output`].
    panics_planted: usize,
}

/// What a test may change about how a binary is started, beyond its arguments.
#[derive(Clone, Debug, Default)]
#[allow(
    dead_code,
    reason = "used by tests/environment.rs; every test crate compiles this module"
)]
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
        match &options.stderr_file {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
                command.stderr(file);
            }
            None => {
                command.stderr(Stdio::piped());
            }
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("failed to spawn {binary}: {error}"));
        let pid = i32::try_from(child.id()).expect("a pid fits in i32");
        let gate = Arc::new(Gate::default());
        let pace = Arc::new(AtomicU64::new(0));
        let (sender, lines) = mpsc::channel();
        let mut pipe = None;
        // The thread ends at EOF, i.e. once every process holding the pipe has exited (or,
        // for a file, once the main process has exited and the file is read to its end); it
        // is not joined: `wait_exit` observes that as the channel's disconnection, with a
        // bound.
        let reader = std::thread::Builder::new().name(format!("stderr-of-{pid}"));
        let spawned = match &options.stderr_file {
            Some(path) => {
                let file = std::fs::File::open(path)
                    .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
                reader.spawn(move || tail_file(file, pid, &sender))
            }
            None => {
                let stderr = child.stderr.take().expect("stderr is piped");
                pipe = stderr.as_fd().try_clone_to_owned().ok();
                let (gate, pace) = (gate.clone(), pace.clone());
                reader.spawn(move || read_pipe(stderr, &gate, &pace, &sender))
            }
        };
        if let Err(error) = spawned {
            let _ = child.kill();
            let _ = child.wait();
            panic!("failed to start the stderr reader thread: {error}");
        }
        Self {
            child,
            pid,
            lines,
            log: Vec::new(),
            cursor: 0,
            status: None,
            group_gone: false,
            gate,
            pace,
            pipe,
            panics_planted: 0,
        }
    }

    /// The test planted `count` panics (`--inject-fault worker-panics`): exactly that many
    /// `event=panic` lines must appear, and no other.
    #[allow(
        dead_code,
        reason = "used by some test crates; every test crate compiles this module"
    )]
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
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(logread::parse(line)),
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
        self.kill(self.pid, signal, "the main process");
    }

    /// Sends `signal` to the whole process group, as a terminal's Ctrl+C does: the main
    /// process and every worker receive it at once.
    #[track_caller]
    pub fn signal_group(&self, signal: Signal) {
        self.kill(-self.pid, signal, "the process group");
    }

    #[track_caller]
    fn kill(&self, target: i32, signal: Signal, whom: &str) {
        assert!(
            self.status.is_none(),
            "cannot signal {whom}: the run has already been reaped"
        );
        // SAFETY: kill(2) with a valid signal number; the target is our unreaped child or
        // its group, so the id cannot have been reused by another process.
        let rc = unsafe { libc::kill(target, signal.number()) };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            self.fail(&format!(
                "kill({target}, {}) to {whom} failed: {error}",
                signal.name()
            ));
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
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(logread::parse(line)),
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
            .filter(|e| e.process() == Some("main"))
            .filter_map(lifecycle_label)
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

    /// [`assert_order`](Self::assert_order) for any mix of matchers: a [`Pattern`], a
    /// [`Message`], a closure.
    #[track_caller]
    pub fn assert_sequence(&self, steps: &[&dyn Matcher]) {
        let mut from = 0;
        let mut previous = "the start of the log".to_owned();
        for step in steps {
            match self.position(*step, from) {
                Some(index) => {
                    from = index + 1;
                    previous = format!("{} (line {})", step.describe(), index + 1);
                }
                None => {
                    let anywhere = self.position(*step, 0).map_or_else(
                        || "it is not logged at all".to_owned(),
                        |i| format!("it is logged at line {}, too early", i + 1),
                    );
                    self.fail(&format!(
                        "expected {} after {previous}; {anywhere}",
                        step.describe()
                    ))
                }
            }
        }
    }

    /// Asserts the lifecycle pairing of the contract, per process: a component that logged
    /// `starting` logged `started` or `failed` later; one that logged `started` logged
    /// `stopped` or `failed` later.
    ///
    /// "Per process" means per *incarnation*: a replacement worker takes its predecessor's
    /// name (`worker-2`), so the answer must come from the same name *and* pid, or else the
    /// replacement's `stopped` would vouch for the worker that was killed. A worker killed by
    /// SIGKILL cannot speak for itself: then its parent's `component=worker-N phase=failed`,
    /// whose cause names the worker's pid, is the answer.
    #[track_caller]
    pub fn assert_every_component_finished(&self) {
        let mut problems = Vec::new();
        for (index, event) in self.log.iter().enumerate() {
            let (Some(component), Some(phase)) = (event.component(), event.phase()) else {
                continue;
            };
            let needed: &[&str] = match phase {
                "starting" => &["started", "failed"],
                "started" => &["stopped", "failed"],
                _ => continue,
            };
            let answered = self.log[index + 1..].iter().any(|later| {
                later.component() == Some(component)
                    && later.phase().is_some_and(|p| needed.contains(&p))
                    && (same_incarnation(event, later) || reported_by_parent(event, later))
            });
            if !answered {
                problems.push(format!(
                    "{component} ({}, pid {}) logged {phase} at line {} and never {}",
                    event.process().unwrap_or("?"),
                    event.int("pid").unwrap_or(-1),
                    index + 1,
                    needed.join(" or ")
                ));
            }
        }
        if !problems.is_empty() {
            self.fail(&problems.join("\n"));
        }
    }

    /// Asserts `services` (in the order the binary starts them) started in that order, and
    /// stopped in reverse: each service's `stopped` (or `failed`) comes before the
    /// `stopping` of the one started before it. A service that never logged `stopping`
    /// (a forced exit) only has to come after the later ones.
    #[track_caller]
    pub fn assert_reverse_stop_order(&self, services: &[&str]) {
        let first = |component: &str, phases: &[&str]| {
            self.log.iter().position(|e| {
                e.process() == Some("main")
                    && e.component() == Some(component)
                    && e.phase().is_some_and(|p| phases.contains(&p))
            })
        };
        let started: Vec<(&str, usize)> = services
            .iter()
            .filter_map(|&s| first(s, &["started"]).map(|i| (s, i)))
            .collect();
        if started.windows(2).any(|pair| pair[0].1 > pair[1].1) {
            self.fail(&format!(
                "expected {services:?} to start in that order; got {started:?}"
            ));
        }
        for pair in started.windows(2) {
            let (earlier, later) = (pair[0].0, pair[1].0);
            let Some(earlier_stopping) = first(earlier, &["stopping"]) else {
                continue;
            };
            match first(later, &["stopped", "failed"]) {
                Some(later_done) if later_done < earlier_stopping => {}
                _ => self.fail(&format!(
                    "{earlier} began stopping (line {}) before {later}, started after it, had \
                     stopped or failed",
                    earlier_stopping + 1
                )),
            }
        }
    }

    /// Asserts the shield's promise: no service began stopping before the last service's
    /// start had finished (`started` or `failed`): a request during start is acted on only
    /// once the start is complete.
    #[track_caller]
    pub fn assert_no_stop_before_start_completed(&self) {
        let in_main = |e: &Event| e.process() == Some("main");
        // Where each service's start ended: the first `started` or `failed` after its
        // `starting` (a `failed` logged by a forced exit later does not count).
        let start_ends = self.log.iter().enumerate().filter_map(|(index, event)| {
            let component = event.component().filter(|&c| c != "app" && in_main(event))?;
            if event.phase() != Some("starting") {
                return None;
            }
            let offset = self.log[index + 1..].iter().position(|e| {
                in_main(e)
                    && e.component() == Some(component)
                    && matches!(e.phase(), Some("started" | "failed"))
            })?;
            Some(index + 1 + offset)
        });
        let last_start = start_ends.max();
        let first_stop = self
            .log
            .iter()
            .position(|e| in_main(e) && e.phase() == Some("stopping"));
        if let (Some(last_start), Some(first_stop)) = (last_start, first_stop) {
            if first_stop < last_start {
                self.fail(&format!(
                    "a stop began (line {}) before the start had completed (line {})",
                    first_stop + 1,
                    last_start + 1
                ));
            }
        }
    }

    /// Asserts no line carries panic text, every line is a JSON object (a run in JSON mode
    /// writes nothing else to stderr, not even from a worker dying noisily), and no panic
    /// was logged as an event (`event=panic`) but those the test planted.
    #[track_caller]
    pub fn assert_clean_output(&self) {
        let panics = self.log.iter().filter(|e| e.event() == Some("panic")).count();
        if panics != self.panics_planted {
            self.fail(&format!(
                "{panics} panic(s) logged (`event=panic`), {} planted",
                self.panics_planted
            ));
        }
        for (index, event) in self.log.iter().enumerate() {
            if let Some(marker) = PANIC_MARKERS.iter().find(|m| event.raw.contains(*m)) {
                self.fail(&format!("line {} carries panic text ({marker:?})", index + 1));
            }
            if !event.is_json() {
                self.fail(&format!(
                    "line {} is not a JSON log event: {:?}",
                    index + 1,
                    event.raw
                ));
            }
        }
    }

    /// Asserts the run's very last line, from any process, is the main process's
    /// `component=app phase=exit` with `status` (and `signal` when it ended by one), and
    /// that it is logged exactly once.
    #[track_caller]
    pub fn assert_last_line_is_exit(&self, status: i64, signal: Option<Signal>) {
        let exits = self.log.iter().filter(|e| e.is_exit()).count();
        if exits != 1 {
            self.fail(&format!("expected exactly one app exit event, found {exits}"));
        }
        let Some(last) = self.log.last() else {
            self.fail("the run logged nothing")
        };
        if !last.is_exit() {
            self.fail("the last line is not the main process's component=app phase=exit event");
        }
        if last.int("status") != Some(status) {
            self.fail(&format!("expected the exit event's status to be {status}"));
        }
        if last.str("signal") != signal.map(Signal::name) {
            self.fail(&format!(
                "expected the exit event's signal to be {:?}",
                signal.map(Signal::name)
            ));
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

    #[track_caller]
    fn reaped(&self) -> ExitStatus {
        self.status
            .expect("call wait_exit() before asserting on how the run ended")
    }

    /// Fails the test with `message` followed by the whole log.
    #[track_caller]
    pub fn fail(&self, message: &str) -> ! {
        // A run at full speed logs hundreds of thousands of lines: show its two ends.
        const HEAD: usize = 150;
        const TAIL: usize = 450;
        let total = self.log.len();
        let mut text = format!("{message}\n--- the run's stderr ({total} lines) ---\n");
        for (index, event) in self.log.iter().enumerate() {
            if total > HEAD + TAIL && index == HEAD {
                let _ = writeln!(text, "     ... {} lines left out ...", total - HEAD - TAIL);
            }
            if total <= HEAD + TAIL || index < HEAD || index >= total - TAIL {
                let _ = writeln!(text, "{:>4} {}", index + 1, event.raw);
            }
        }
        if let Some(status) = self.status {
            let _ = writeln!(text, "--- ended with {status} ---");
        }
        panic!("{text}");
    }
}

/// What runs with worker processes need (tests/complex.rs): the pids to aim at and to
/// watch, beyond the main process and its group.
#[allow(
    dead_code,
    reason = "used by tests/complex.rs; tests/simple.rs has no workers"
)]
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
        assert!(
            self.status.is_none(),
            "cannot kill pid {pid}: the run has already been reaped"
        );
        // SAFETY: kill(2) with a valid signal number on a single pid (never 0 or -1).
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            self.fail(&format!("kill({pid}, SIGKILL) failed: {error}"));
        }
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
#[allow(
    dead_code,
    reason = "used by tests/environment.rs; every test crate compiles this module"
)]
impl Run {
    /// Stops reading stderr after the line being read: from now on the pipe fills up and
    /// stays full, as behind a pager nobody scrolls. The lines read so far stay readable.
    pub fn stop_reading(&self) {
        self.gate.set(true);
    }

    /// Reads stderr again after [`stop_reading`](Self::stop_reading).
    pub fn resume_reading(&self) {
        self.gate.set(false);
    }

    /// Reads stderr at about `bytes_per_second`, a slow but moving sink (a log shipper that
    /// fell behind); 0 reads as fast as it comes again.
    #[allow(
        dead_code,
        reason = "used by tests/environment.rs; every test crate compiles this module"
    )]
    pub fn pace_reading(&self, bytes_per_second: u64) {
        self.pace.store(bytes_per_second, Ordering::Relaxed);
    }

    /// Waits until stderr is a full pipe that the main process is blocked writing to: the
    /// pipe holds at least half its capacity (`FIONREAD` against `F_GETPIPE_SZ`; a pipe's
    /// last page of each slot is never filled to the byte) and a thread of the main process
    /// sits in `write(2)` on it. This watches the pipe's state, bounded by [`PATIENCE`]; it
    /// synchronises on no time. Returns the bytes held.
    #[track_caller]
    pub fn wait_stderr_full(&self) -> usize {
        let Some(pipe) = &self.pipe else {
            self.fail("stderr is not a pipe")
        };
        let fd = pipe.as_raw_fd();
        // SAFETY: F_GETPIPE_SZ on a pipe descriptor we own.
        let capacity = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
        if capacity <= 0 {
            self.fail(&format!(
                "F_GETPIPE_SZ failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        let ours = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut held: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int, the bytes readable now.
            let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut held) };
            if rc != 0 {
                self.fail(&format!("FIONREAD failed: {}", std::io::Error::last_os_error()));
            }
            let held = usize::try_from(held).unwrap_or(0);
            if 2 * held >= capacity as usize && blocked_writing(self.pid, ours.as_deref()) {
                return held;
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "stderr never filled up ({held} of {capacity} bytes held) within {PATIENCE:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends signal number `signal` (SIGSTOP, SIGCONT, ...) to the main process alone, or to
    /// the whole process group (as the terminal's Ctrl+Z and `fg` do).
    #[track_caller]
    pub fn send_raw(&self, signal: i32, to_group: bool) {
        assert!(
            self.status.is_none(),
            "cannot signal the run: it has already been reaped"
        );
        let target = if to_group { -self.pid } else { self.pid };
        // SAFETY: kill(2) on our unreaped child or its group: the id cannot have been reused.
        if unsafe { libc::kill(target, signal) } != 0 {
            let error = std::io::Error::last_os_error();
            self.fail(&format!("kill({target}, {signal}) failed: {error}"));
        }
    }

    /// Sends `signal` to the main process and returns once the kernel has handed it over
    /// (it is no longer pending: a handler took it, or its disposition discarded it), so
    /// that the next signal sent cannot merge with it. Watches `/proc`, bounded by
    /// [`PATIENCE`]; needed when the test cannot read the log to see it handled.
    #[track_caller]
    pub fn signal_and_wait_taken(&self, signal: Signal) {
        self.signal(signal);
        let deadline = Instant::now() + PATIENCE;
        while signal_pending(self.pid, signal.number()) {
            if Instant::now() >= deadline {
                self.fail(&format!("{} stayed pending for {PATIENCE:?}", signal.name()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Whether the main process has exited (a zombie counts), waiting up to `timeout`.
    pub fn exited_within(&self, timeout: Duration) -> bool {
        self.status.is_some() || wait_exited(self.pid, timeout)
    }
}

/// Whether a thread of process `pid` is blocked in `write(2)` (or `writev`) on the pipe
/// whose `/proc/*/fd` link is `pipe` (any descriptor when `None`).
fn blocked_writing(pid: i32, pipe: Option<&std::path::Path>) -> bool {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    threads.flatten().any(|thread| {
        let Ok(syscall) = std::fs::read_to_string(thread.path().join("syscall")) else {
            return false;
        };
        let mut fields = syscall.split_whitespace();
        let number = fields.next().and_then(|n| n.parse::<i64>().ok());
        if !matches!(number, Some(n) if n == libc::SYS_write || n == libc::SYS_writev) {
            return false;
        }
        let Some(fd) = fields
            .next()
            .and_then(|a| i64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        else {
            return false;
        };
        match pipe {
            Some(pipe) => std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).is_ok_and(|l| l == pipe),
            None => true,
        }
    })
}

/// Whether `signal` is pending for process `pid` (shared or for its main thread).
fn signal_pending(pid: i32, signal: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = 1_u64 << (signal - 1);
    status.lines().any(|line| {
        let Some((key, value)) = line.split_once(':') else {
            return false;
        };
        matches!(key, "SigPnd" | "ShdPnd")
            && u64::from_str_radix(value.trim(), 16).is_ok_and(|mask| mask & bit != 0)
    })
}

impl Drop for Run {
    /// The last line of defence: whatever the test did, kill every process of the run and
    /// reap the main one, so a failing test leaves nothing running.
    fn drop(&mut self) {
        // A reader held at its gate would never see the end of the pipe.
        self.gate.set(false);
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

/// Whether `a` and `b` come from the same process incarnation. There is one main process per
/// run, so its name is enough; a worker's name is shared by its replacements, so its pid is
/// needed too.
fn same_incarnation(a: &Event, b: &Event) -> bool {
    a.process() == b.process() && (a.process() == Some("main") || a.int("pid") == b.int("pid"))
}

/// Whether `report` is the main process saying `event`'s worker process failed: a
/// `phase=failed` from `main` whose cause (or message) names that worker's pid.
fn reported_by_parent(event: &Event, report: &Event) -> bool {
    let Some(pid) = event.int("pid") else {
        return false;
    };
    event.process() != Some("main")
        && report.process() == Some("main")
        && report.phase() == Some("failed")
        && [report.str("cause"), report.str("message")]
            .into_iter()
            .flatten()
            .any(|text| mentions_pid(text, pid))
}

/// Waits until process `pid` has exited (a zombie counts) or `timeout` passes; returns
/// whether it exited. A Linux pidfd becomes readable when its process ends, so this is an
/// event wait, not a poll of the process table. A pid already gone (ESRCH) has exited.
pub fn wait_exited(pid: i32, timeout: Duration) -> bool {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open(2) takes a pid and no flags; it returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ESRCH) => true,
            // No pidfds here (an old kernel, a strict sandbox): watch the process table.
            _ => poll_until_gone(pid, timeout),
        };
    }
    // SAFETY: `raw` was just returned by pidfd_open and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut exited = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for a descriptor we own.
        match unsafe { libc::poll(&mut exited, 1, millis) } {
            0 => return false,
            n if n > 0 => return true,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
            _ => return false,
        }
    }
}

/// The fallback of [`wait_exited`] where pidfds are unavailable.
fn poll_until_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Whether `target` (a pid, or minus a process group id) names a live process.
///
/// kill(2) with signal 0 checks without sending (EPERM: it exists but is not ours). A
/// zombie also "exists" for kill(2): a worker that died after its parent is reparented to
/// PID 1, which in a container may be slow to reap it, or never do. It is dead all the
/// same, so on Linux `/proc` is asked whether every match is a zombie (or dead).
fn is_alive(target: i32) -> bool {
    // SAFETY: signal 0 performs the existence and permission checks only.
    let rc = unsafe { libc::kill(target, 0) };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return false;
    }
    match proc_states() {
        Some(states) => states.iter().any(|&(pid, pgrp, state)| {
            !matches!(state, 'Z' | 'X')
                && if target > 0 {
                    pid == target
                } else {
                    pgrp == -target
                }
        }),
        // No /proc: trust kill(2).
        None => true,
    }
}

/// `(pid, process group, state)` of every process, from `/proc/*/stat`; `None` without
/// a readable `/proc`.
fn proc_states() -> Option<Vec<(i32, i32, char)>> {
    let mut states = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // The process may vanish between read_dir and read: then it is not alive anyway.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so parse
        // from the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next());
        let pgrp = fields.nth(1).and_then(|s| s.parse().ok());
        if let (Some(state), Some(pgrp)) = (state, pgrp) {
            states.push((pid, pgrp, state));
        }
    }
    Some(states)
}

/// The reader of a piped stderr: one line at a time, each read after passing `gate`.
fn read_pipe(stderr: impl Read, gate: &Gate, pace: &AtomicU64, sender: &Sender<String>) {
    // A small buffer, so that a paced reader takes from the pipe no faster than its pace.
    let mut reader = BufReader::with_capacity(512, stderr);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        gate.pass();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let rate = pace.load(Ordering::Relaxed);
                if rate > 0 {
                    // A rate limit of the sink being simulated, not a synchronisation.
                    std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
                }
                let line = String::from_utf8_lossy(&buffer);
                let line = line.strip_suffix('\n').unwrap_or(&line).to_owned();
                if sender.send(line).is_err() {
                    break;
                }
            }
        }
    }
}

/// The reader of a stderr that is a regular file: whole lines as they are completed; at
/// the file's end it waits (on the main process's pidfd, a few ms at a time) for more, and
/// once the main process has exited it reads to the end and stops. A last line without its
/// newline (a writer killed mid-line) is passed on as it is.
fn tail_file(mut file: std::fs::File, pid: i32, sender: &Sender<String>) {
    let mut pending = Vec::new();
    let mut chunk = [0_u8; 8192];
    let mut exited = false;
    loop {
        match file.read(&mut chunk) {
            Ok(0) if exited => break,
            Ok(0) => exited = wait_exited(pid, Duration::from_millis(10)),
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            if sender.send(line).is_err() {
                return;
            }
        }
    }
    if !pending.is_empty() {
        let _ = sender.send(String::from_utf8_lossy(&pending).into_owned());
    }
}
