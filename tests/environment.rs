//! The contract when the machine around the process stops cooperating:
//! a stderr nobody reads, no process or thread to spare, thousands of queued calls, a
//! signal ignored by whoever started us, a worker killed during the stop or mid-line or by
//! the kernel's OOM killer, a bad `RUST_LOG`, and the whole run stopped (SIGSTOP, Ctrl+Z)
//! past its deadlines.
//!
//! Like the other integration tests, each one runs the real binaries with `--log-format
//! json`, synchronises on their log events (or, where the point is that nobody reads the
//! log, on the state of the pipe and of the process in `/proc`), and ends with nothing of
//! its own left running (the harness kills and reaps the process group). The only sleeps
//! are the durations a test is about: how long the run stays stopped.
//!
//! Some tests need what only some machines have: root (RLIMIT_NPROC does not bind root, so
//! the limit is applied to uid 65534 through `setpriv`), `setpriv` and `prlimit`
//! (util-linux), and a cgroup v1 memory controller. Without it such a test is marked
//! ignored with the reason (see `build.rs`); CI, which installs everything, refuses to
//! build without. What only a run can tell (uid 65534 unable to execute the binary) still
//! fails the test with the reason under `GRACEFUL_REQUIRE_ALL=1`.

#[allow(
    dead_code,
    reason = "the checks shared with tests/complex.rs; this file uses some of them"
)]
#[path = "complex/checks.rs"]
mod checks;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use checks::*;
use support::{Event, Options, PATIENCE, Run, Signal, event, mentions_pid, phase, signal_event};

const SIMPLE: &str = env!("CARGO_BIN_EXE_simple");

/// Whether `event` is at level warn (the JSON layer may write `WARN` or `warn`).
fn is_warn(event: &Event) -> bool {
    event.str("level").is_some_and(|l| l.eq_ignore_ascii_case("warn"))
}

// ---------------------------------------------------------------------------------------
// What the machine offers.

/// Passes over a test that needs what this machine lacks: says so loudly on stderr and
/// returns `false`, unless `GRACEFUL_REQUIRE_ALL=1`, where a skip fails the test.
#[track_caller]
fn available(test: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    if std::env::var("GRACEFUL_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("{test}: cannot run here ({why}), and GRACEFUL_REQUIRE_ALL=1 forbids skipping it");
    }
    eprintln!(
        "\n!!! SKIPPED {test}: {why}. It passes without having run (set GRACEFUL_REQUIRE_ALL=1 to make this a failure).\n"
    );
    false
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The unprivileged user the process-limit tests run as (`nobody` on Debian).
const NOBODY: &str = "65534";

/// What the process-limit tests lack here, if anything: root, `setpriv`, `prlimit`, and
/// uid 65534 able to run `binary`.
fn process_limit_missing(binary: &str) -> Option<String> {
    if !is_root() {
        return Some(
            "it needs root: RLIMIT_NPROC does not bind root, so the run must switch to uid 65534".into(),
        );
    }
    for tool in ["setpriv", "prlimit"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("`{tool}` (util-linux) is not installed"));
        }
    }
    let runnable = Command::new("setpriv")
        .args(as_nobody())
        .args(["test", "-x", binary])
        .status()
        .is_ok_and(|s| s.success());
    if !runnable {
        return Some(format!(
            "uid {NOBODY} cannot execute {binary} (a directory on its path is closed to others)"
        ));
    }
    None
}

fn as_nobody() -> [String; 3] {
    [
        format!("--reuid={NOBODY}"),
        format!("--regid={NOBODY}"),
        "--clear-groups".into(),
    ]
}

/// This process's own memory cgroup (cgroup v1), where a test may create a child.
fn memory_cgroup() -> Result<PathBuf, String> {
    if !is_root() {
        return Err("it needs root to create a memory cgroup and move a process into it".into());
    }
    let root = Path::new("/sys/fs/cgroup/memory");
    if !root.join("cgroup.procs").exists() {
        return Err("no cgroup v1 memory controller at /sys/fs/cgroup/memory".into());
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let path = own
        .lines()
        .find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then(|| path.to_owned())
        })
        .ok_or("this process is in no v1 memory cgroup")?;
    let dir = root.join(path.trim_start_matches('/'));
    if dir.join("cgroup.procs").exists() {
        Ok(dir)
    } else {
        Err(format!("its memory cgroup {} is not mounted here", dir.display()))
    }
}

/// A child memory cgroup, removed (once empty) when dropped.
struct ChildCgroup(PathBuf);

impl ChildCgroup {
    fn create(parent: &Path, name: &str, limit_bytes: u64) -> std::io::Result<Self> {
        let dir = parent.join(name);
        std::fs::create_dir(&dir)?;
        let cgroup = Self(dir);
        std::fs::write(cgroup.0.join("memory.limit_in_bytes"), limit_bytes.to_string())?;
        Ok(cgroup)
    }

    fn adopt(&self, pid: i32) -> std::io::Result<()> {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string())
    }
}

impl Drop for ChildCgroup {
    fn drop(&mut self) {
        // A failing test drops this before its run: the worker moved here may still live.
        // It is this test's own process; kill it, and wait (bounded) until the group is
        // empty, since a cgroup with a task cannot be removed.
        let procs = self.0.join("cgroup.procs");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let pids: Vec<i32> = std::fs::read_to_string(&procs)
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            if pids.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in pids {
                // SAFETY: kill(2) on a process this test moved here itself.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A file under the system's temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!("graceful-{name}-{}.log", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------------------
// A stderr nobody reads.

/// Starts `complex` at full speed (it logs a line per call), reads its log until the app has
/// started, then stops reading and waits until the pipe is full and the main process is
/// blocked writing to it. Returns the run and its workers' pids.
fn complex_behind_a_full_pipe(extra: &[&str]) -> (Run, Vec<i32>) {
    let mut args = vec!["--time-scale", "0"];
    args.extend_from_slice(extra);
    let mut run = complex(&args);
    run.wait_for(phase("app", "started"), PATIENCE);
    let workers: Vec<i32> = workers_running_now(&run).iter().map(Worker::pid).collect();
    if workers.len() != DEFAULTS.workers {
        run.fail(&format!(
            "expected {} workers running, saw pids {workers:?}",
            DEFAULTS.workers
        ));
    }
    run.stop_reading();
    run.wait_stderr_full();
    (run, workers)
}

/// After the main process ended behind a full pipe: read the pipe again (so the run's last
/// writers can finish), reap it, and check that nothing is left and nothing is garbled.
#[track_caller]
fn drain_and_check_nothing_left(run: &mut Run) {
    run.resume_reading();
    run.wait_exit();
    run.assert_clean_output();
    assert_no_pid_left(run);
}

/// Three Ctrl+C while stderr is a full pipe: the force path never waits on a log write, so
/// main ends within the forced exit's bound (3 s from the first signal), by SIGINT.
#[test]
fn three_ctrl_c_with_stderr_a_full_pipe_end_main_within_3_s_by_sigint() {
    let (mut run, _) = complex_behind_a_full_pipe(&[]);
    let sent = Instant::now();
    for _ in 0..3 {
        // Each taken before the next, so that none merges with another.
        run.signal_and_wait_taken(Signal::Int);
    }
    let bound = Duration::from_secs(3);
    if !run.exited_within(bound.saturating_sub(sent.elapsed())) {
        run.fail(&format!(
            "three SIGINT with stderr full: the main process still runs {:?} after the first",
            sent.elapsed()
        ));
    }
    drain_and_check_nothing_left(&mut run);
    run.assert_ended_by(Signal::Int);
}

/// One Ctrl+C with `--stop-timeout 2s` while stderr is a full pipe: the stop (or its
/// watchdog) does not wait on a log write, so main ends within 2 s + the forced exit's 3 s.
#[test]
fn one_ctrl_c_with_stderr_a_full_pipe_ends_within_the_stop_timeout_and_the_force_bound() {
    let (mut run, _) = complex_behind_a_full_pipe(&["--stop-timeout", "2s"]);
    let sent = Instant::now();
    run.signal_and_wait_taken(Signal::Int);
    let bound = Duration::from_secs(2 + 3);
    if !run.exited_within(bound.saturating_sub(sent.elapsed())) {
        run.fail(&format!(
            "one SIGINT, --stop-timeout 2s, stderr full: the main process still runs {:?} later",
            sent.elapsed()
        ));
    }
    drain_and_check_nothing_left(&mut run);
    run.assert_ended_by(Signal::Int);
}

/// `kill -9` of main while stderr is a full pipe: a worker's lifeline (EOF on its stdin)
/// never waits behind a log write, so no worker is alive 1 s later.
#[test]
fn kill_9_of_main_with_stderr_a_full_pipe_leaves_no_worker_after_1_s() {
    let (mut run, workers) = complex_behind_a_full_pipe(&[]);
    run.sigkill(run.pid());
    run.wait_gone(&workers, Duration::from_secs(1));
    drain_and_check_nothing_left(&mut run);
    if run.wait_exit().code().is_some() {
        run.fail("the main process was SIGKILLed, yet it exited by itself");
    }
}

/// A stderr read slowly but steadily (a log shipper that fell behind, 40 KB/s against a
/// run logging megabytes a second): lines are shed lowest level first, the dropped count is
/// written as soon as stderr moves, and the SIGINT line, the whole stop and the exit event
/// still reach the sink, which the end waits for as long as it moves.
#[test]
fn a_slow_stderr_gets_the_dropped_count_the_stop_and_the_exit_event() {
    let mut run = complex(&["--time-scale", "0", "--busy-tasks", "256"]);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.pace_reading(40_000);
    let dropped = run.wait_for(event("log-dropped"), PATIENCE);
    if !is_warn(&dropped) || dropped.int("dropped").is_none_or(|n| n < 1) {
        run.fail(&format!(
            "expected a warn event with a positive integer `dropped`: {}",
            dropped.raw
        ));
    }
    run.signal_group(Signal::Int);
    run.assert_graceful_end_by(Signal::Int, &SERVICES);
    assert_not_forced(&run);
}

// ---------------------------------------------------------------------------------------
// No process or thread to spare.

/// RLIMIT_NPROC counts every process and thread of the user, system-wide: two of these
/// tests at once would take each other's.
static NOBODY_LIMITED: Mutex<()> = Mutex::new(());

/// The words a `cause` may use to say what could not be created: a thread, a process (or
/// its spawn), a pipe or socket, or a descriptor (EMFILE's own text, "Too many open files").
const CREATION_WORDS: [&str; 7] = [
    "thread",
    "process",
    "spawn",
    "pipe",
    "socket",
    "descriptor",
    "open files",
];

/// A run under `prlimit --LIMIT=N`, as uid 65534 when `as_nobody_too`.
fn limited(limit: &str, n: u32, as_nobody_too: bool) -> Options {
    let mut wrapper = Vec::new();
    if as_nobody_too {
        wrapper.push("setpriv".to_owned());
        wrapper.extend(as_nobody());
    }
    wrapper.extend(["prlimit".to_owned(), format!("--{limit}={n}"), "--".to_owned()]);
    Options {
        wrapper,
        ..Options::default()
    }
}

/// Runs `binary args` under `prlimit --LIMIT=N` (as uid 65534 when `as_nobody_too`), for N
/// in `limits` until a run succeeds: each run must end by itself, without a hang, either
/// with status 0 and the exit event last, or with status 1, a `phase=failed` line whose
/// `cause` says what could not be created, and the exit event last; never a panic, never
/// 101, nothing left.
fn under_a_limit(
    test: &str,
    binary: &str,
    args: &[&str],
    limit: &str,
    limits: std::ops::RangeInclusive<u32>,
    as_nobody_too: bool,
) {
    let max = *limits.end();
    for n in limits {
        let mut run = Run::spawn_with(binary, args, &limited(limit, n, as_nobody_too));
        let status = run.wait_exit();
        run.assert_clean_output();
        run.assert_nothing_left();
        match status.code() {
            Some(0) => {
                run.assert_last_line_is_exit(0, None);
                eprintln!("{test}: the first limit that lets the run succeed is --{limit}={n}");
                return;
            }
            Some(1) => {
                let says_what = |e: &Event| {
                    e.phase() == Some("failed")
                        && e.str("cause").is_some_and(|c| {
                            let c = c.to_ascii_lowercase();
                            CREATION_WORDS.iter().any(|w| c.contains(w))
                        })
                };
                if run.position(&says_what, 0).is_none() {
                    run.fail(&format!(
                        "--{limit}={n}: exit 1 without a `phase=failed` line whose cause says what \
                         could not be created (one of {CREATION_WORDS:?})"
                    ));
                }
                run.assert_last_line_is_exit(1, None);
            }
            _ => run.fail(&format!(
                "--{limit}={n}: expected exit 1 (something could not be created) or 0, got {status}"
            )),
        }
    }
    panic!("{test}: no run succeeded with up to --{limit}={max}");
}

/// [`under_a_limit`] with RLIMIT_NPROC, which binds only a user other than root: uid 65534,
/// N from 1.
fn under_a_process_limit(test: &str, binary: &str, args: &[&str], max: u32) {
    if !available(test, process_limit_missing(binary)) {
        return;
    }
    let _alone = NOBODY_LIMITED.lock().unwrap_or_else(|p| p.into_inner());
    under_a_limit(test, binary, args, "nproc", 1..=max, true);
}

/// Pipes and sockets that cannot be created: `complex` under `prlimit --nofile=N` (it binds
/// root too), N from 4 (below that the dynamic loader cannot open the binary's libraries,
/// before `main`) up until the run succeeds.
#[test]
#[cfg_attr(
    any(missing_root, missing_limits),
    ignore = "needs root, setpriv and prlimit (util-linux): RLIMIT_NPROC does not bind root, so the run switches to uid 65534"
)]
fn complex_under_every_open_file_limit_fails_cleanly_or_runs() {
    const TEST: &str = "complex_under_every_open_file_limit_fails_cleanly_or_runs";
    let prlimit = Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available(
        TEST,
        (!prlimit).then(|| "`prlimit` (util-linux) is not installed".to_owned()),
    ) {
        return;
    }
    let args = [
        "--time-scale",
        "0",
        "--run-for",
        "100ms",
        "--workers",
        "2",
        "--busy-tasks",
        "1",
    ];
    under_a_limit(TEST, COMPLEX, &args, "nofile", 4..=64, false);
}

#[test]
#[cfg_attr(
    any(missing_root, missing_limits),
    ignore = "needs root, setpriv and prlimit (util-linux): RLIMIT_NPROC does not bind root, so the run switches to uid 65534"
)]
fn simple_under_every_process_limit_fails_cleanly_or_runs() {
    under_a_process_limit(
        "simple_under_every_process_limit_fails_cleanly_or_runs",
        SIMPLE,
        &["--time-scale", "0", "--run-for", "100ms"],
        64,
    );
}

#[test]
#[cfg_attr(
    any(missing_root, missing_limits),
    ignore = "needs root, setpriv and prlimit (util-linux): RLIMIT_NPROC does not bind root, so the run switches to uid 65534"
)]
fn complex_under_every_process_limit_fails_cleanly_or_runs() {
    under_a_process_limit(
        "complex_under_every_process_limit_fails_cleanly_or_runs",
        COMPLEX,
        &[
            "--time-scale",
            "0",
            "--run-for",
            "100ms",
            "--workers",
            "2",
            "--pool-threads",
            "1",
            "--busy-tasks",
            "1",
        ],
        128,
    );
}

/// A stop short of threads, after a Ctrl+C: `complex` as uid 65534 under `prlimit
/// --nproc=N`, N from 1 up. Whenever the start succeeds, SIGINT goes to the main process.
/// The manager's stop wants a thread of its own; when the OS refuses it, the stop runs on
/// the runtime's thread instead (`event=stop-inline`), so the workers are still stopped by
/// command: every run ends by SIGINT with nothing failed, every worker `stopped`, every line
/// JSON, the exit event last, nothing left. It goes on until a stop needs no fallback, and
/// at least one N must have needed it: that path is what this test is for.
#[test]
#[cfg_attr(
    any(missing_root, missing_limits),
    ignore = "needs root, setpriv and prlimit (util-linux): RLIMIT_NPROC does not bind root, so the run switches to uid 65534"
)]
fn a_stop_refused_its_thread_after_ctrl_c_still_stops_the_workers_by_command() {
    const TEST: &str = "a_stop_refused_its_thread_after_ctrl_c_still_stops_the_workers_by_command";
    if !available(TEST, process_limit_missing(COMPLEX)) {
        return;
    }
    let _alone = NOBODY_LIMITED.lock().unwrap_or_else(|p| p.into_inner());
    let mut inline = 0;
    for n in 1..=128 {
        let mut run = Run::spawn_with(COMPLEX, &["--time-scale", "0.1"], &limited("nproc", n, true));
        let first = run.wait_for(|e: &Event| e.is("app", "started") || e.is_exit(), PATIENCE);
        if first.is_exit() {
            // The start itself was short: the other process-limit tests' case.
            run.wait_exit();
            run.assert_nothing_left();
            continue;
        }
        run.signal(Signal::Int);
        run.wait_exit();
        run.assert_graceful_end_by(Signal::Int, &SERVICES);
        assert_workers_stopped(&run, 4, &[]);
        assert_no_failures_but(&run, &[]);
        if run.position(&event("stop-inline"), 0).is_some() {
            inline += 1;
            continue;
        }
        if inline == 0 {
            run.fail(&format!(
                "--nproc={n} is the first limit the start fits in, and its stop had its thread: \
                 no stop was refused its thread"
            ));
        }
        eprintln!("{TEST}: {inline} stops ran inline; the first with its own thread at --nproc={n}");
        return;
    }
    panic!("{TEST}: no stop had its own thread with up to --nproc=128");
}

// ---------------------------------------------------------------------------------------
// The stop is bounded by the calls in hand, never by the queue.

/// 4,096 busy tasks at full time scale: Ctrl+C while they call. Every call not begun is
/// withdrawn (`event=withdrawn`, integer `count`), so the stop waits only for the calls in
/// hand and is never forced (`--stop-timeout 10s`). How long it takes is the bench's
/// business (its scale table); this is the logical check.
#[test]
fn ctrl_c_with_4096_busy_tasks_withdraws_the_calls_not_begun_and_is_not_forced() {
    let mut run = complex(&[
        "--busy-tasks",
        "4096",
        "--time-scale",
        "1",
        "--stop-timeout",
        "10s",
    ]);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.wait_for(worker_processing, PATIENCE);
    run.signal_group(Signal::Int);
    run.assert_graceful_end_by(Signal::Int, &SERVICES);
    assert_not_forced(&run);
    // The forced exit, by its fields: the runner's event, or a signal that forces it.
    let forcing = |e: &Event| e.is_forced_exit() || (e.is_main() && e.action() == Some("forced"));
    if let Some(at) = run.position(&forcing, 0) {
        run.fail(&format!("line {} forces the exit", at + 1));
    }
    let withdrawn: Vec<i64> = run
        .all(&event("withdrawn"))
        .iter()
        .map(|e| {
            e.int("count")
                .unwrap_or_else(|| run.fail(&format!("`withdrawn` without an integer count: {}", e.raw)))
        })
        .collect();
    if withdrawn.iter().sum::<i64>() < 1 {
        run.fail(&format!(
            "with 4096 callers and {} workers, calls not begun must be withdrawn at the stop; \
             withdrawn events' counts: {withdrawn:?}",
            DEFAULTS.workers
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Signals ignored at start stay ignored.

/// Starts `binary` with `ignored` ignored (as `nohup` or a non-interactive shell's
/// background job would), waits for the one warning saying so and for the app's start,
/// sends `ignored` to the main process (nothing happens), then SIGTERM, which stops it as
/// usual. Returns the run, ended and checked as a graceful end by SIGTERM.
fn ignored_at_start(binary: &str, ignored: Signal, args: &[&str]) -> Run {
    let options = Options {
        ignored: vec![ignored],
        ..Options::default()
    };
    let mut run = Run::spawn_with(binary, args, &options);
    let name = ignored.name();
    let warning = run.wait_for(
        move |e: &Event| {
            e.process() == Some("main")
                && e.str("event") == Some("signal-ignored-at-start")
                && e.str("signal") == Some(name)
        },
        PATIENCE,
    );
    if !is_warn(&warning) {
        run.fail(&format!("expected a warn event: {}", warning.raw));
    }
    run.wait_for(phase("app", "started"), PATIENCE);
    // Ignored: the kernel discards it on the spot, so it is not pending once sent.
    run.signal_and_wait_taken(ignored);
    run.signal(Signal::Term);
    let received = run.next_signal_event(Signal::Term);
    run.assert_signal_event(&received, "shutdown", 1);
    run.assert_graceful_end_by(Signal::Term, &SERVICES);
    let warnings = run
        .all(&|e: &Event| e.process() == Some("main") && e.str("event") == Some("signal-ignored-at-start"));
    if warnings.len() != 1 {
        run.fail(&format!(
            "expected one signal-ignored-at-start warning, saw {}",
            warnings.len()
        ));
    }
    run.assert_sequence(&[&event("signal-ignored-at-start"), &phase("app", "started")]);
    run.assert_order(&[signal_event("SIGTERM", "shutdown"), phase("app", "stopping")]);
    if let Some(acted) = run
        .log()
        .iter()
        .find(|e| e.process() == Some("main") && e.str("signal") == Some(name) && e.str("action").is_some())
    {
        run.fail(&format!(
            "{name} was ignored at start, yet the run acted on it: {}",
            acted.raw
        ));
    }
    run
}

/// `nohup simple &`, then `kill -HUP`: SIGHUP stays ignored, SIGTERM still stops it.
#[test]
fn sighup_ignored_at_start_stays_ignored_and_sigterm_still_stops_simple() {
    ignored_at_start(SIMPLE, Signal::Hup, &["--time-scale", "0"]);
}

/// A background job of a non-interactive shell (SIGINT ignored): a SIGINT does nothing,
/// SIGTERM stops `complex` in order.
#[test]
fn sigint_ignored_at_start_stays_ignored_and_sigterm_still_stops_complex() {
    let mut run = ignored_at_start(COMPLEX, Signal::Int, &["--time-scale", FAST]);
    assert_orderly_run(&mut run, DEFAULTS, &[]);
}

// ---------------------------------------------------------------------------------------
// No restart once the stop has begun.

/// A worker `kill -9`ed after `app: stopping` (AsyncService2's stop lasts 300 ms, so every
/// worker is still running): reported `failed`, never restarted, and the stop completes
/// with the usual status (by SIGINT), the exit event last.
#[test]
fn a_worker_killed_during_the_stop_is_reported_failed_and_not_restarted() {
    let mut run = complex(&["--time-scale", "0.3"]);
    run.wait_for(phase("app", "started"), PATIENCE);
    let worker = workers_running_now(&run)
        .into_iter()
        .find(|w| w.name == "worker-1")
        .unwrap_or_else(|| run.fail("worker-1 must be running once the app has started"));
    run.signal_group(Signal::Int);
    run.wait_for(phase("app", "stopping"), PATIENCE);
    run.sigkill(worker.pid());
    let pid = worker.pid;
    run.wait_for(
        move |e: &Event| {
            e.process() == Some("main")
                && e.is("worker-1", "failed")
                && e.str("cause").is_some_and(|c| mentions_pid(c, pid))
        },
        PATIENCE,
    );
    run.assert_graceful_end_by(Signal::Int, &SERVICES);
    if let Some(at) = run.position(&event("restarting"), 0) {
        run.fail(&format!(
            "nothing is restarted once the stop has begun; line {}",
            at + 1
        ));
    }
    assert_not_forced(&run);
    run.assert_sequence(&[
        &phase("app", "stopping"),
        &phase("worker-1", "failed"),
        &phase("MPM", "stopped"),
    ]);
}

// ---------------------------------------------------------------------------------------
// Every line of a JSON stream is JSON.

/// `RUST_LOG='info,=x'`: the bad directive is a warn event (`event=invalid-rust-log`), the
/// run goes on with the default filter, and every line, from every process, is JSON.
fn invalid_rust_log(binary: &str, args: &[&str]) {
    let options = Options {
        env: vec![("RUST_LOG".into(), "info,=x".into())],
        ..Options::default()
    };
    let mut run = Run::spawn_with(binary, args, &options);
    run.wait_exit();
    run.assert_exit_code(0);
    run.assert_clean_output();
    run.assert_last_line_is_exit(0, None);
    run.assert_nothing_left();
    let warning = run
        .all(&event("invalid-rust-log"))
        .into_iter()
        .find(|e| e.process() == Some("main"))
        .cloned()
        .unwrap_or_else(|| run.fail("no `event=invalid-rust-log` from the main process"));
    if !is_warn(&warning) {
        run.fail(&format!("expected a warn event: {}", warning.raw));
    }
}

#[test]
fn an_invalid_rust_log_is_a_json_warning_in_simple() {
    invalid_rust_log(SIMPLE, &["--time-scale", "0", "--run-for", "100ms"]);
}

#[test]
fn an_invalid_rust_log_is_a_json_warning_in_complex() {
    invalid_rust_log(COMPLEX, &["--time-scale", "0", "--run-for", "100ms"]);
}

/// A worker OOM-killed by the kernel (a child memory cgroup of 8 KiB) while stderr is a
/// regular file: whatever it was writing, no line of the file is torn or glued to another,
/// and its parent's report of the kill is intact.
#[test]
#[cfg_attr(
    any(missing_root, missing_memory_cgroup),
    ignore = "needs root and a cgroup v1 memory controller at /sys/fs/cgroup/memory"
)]
fn a_worker_oom_killed_with_stderr_a_file_leaves_every_line_json() {
    const TEST: &str = "a_worker_oom_killed_with_stderr_a_file_leaves_every_line_json";
    let parent = match memory_cgroup() {
        Ok(parent) => parent,
        Err(why) => {
            available(TEST, Some(why));
            return;
        }
    };
    let file = TempFile::new("oom");
    let options = Options {
        stderr_file: Some(file.0.clone()),
        ..Options::default()
    };
    // Debug level: the worker formats and writes many more lines, so it soon needs a page it
    // does not have and the kernel kills it; at info level it may run on for many seconds on
    // the pages it had before it was moved (charged to its old cgroup).
    let args = ["--time-scale", "0", "--busy-tasks", "64"];
    let mut run = Run::spawn_with(COMPLEX, &args, &options);
    let started = run.wait_for(
        |e: &Event| e.process() == Some("worker-1") && e.is("worker-1", "started"),
        PATIENCE,
    );
    let victim = worker_from(&run, &started);
    let cgroup =
        ChildCgroup::create(&parent, &format!("graceful-oom-{}", run.pid()), 8192).unwrap_or_else(|e| {
            run.fail(&format!(
                "cannot create a memory cgroup under {}: {e}",
                parent.display()
            ))
        });
    cgroup
        .adopt(victim.pid())
        .unwrap_or_else(|e| run.fail(&format!("cannot move worker-1 into {}: {e}", cgroup.0.display())));
    let pid = victim.pid;
    run.wait_for(
        move |e: &Event| {
            e.process() == Some("main")
                && e.is("worker-1", "failed")
                && e.str("cause").is_some_and(|c| mentions_pid(c, pid))
        },
        PATIENCE,
    );
    run.signal_group(Signal::Int);
    run.wait_exit();
    run.assert_clean_output();
    run.assert_ended_by(Signal::Int);
    run.assert_last_line_is_exit(Signal::Int.shell_status(), Some(Signal::Int));
    run.assert_every_component_finished();
    assert_no_pid_left(&mut run);
    drop(cgroup);
}

/// A worker SIGKILLed in the middle of a long line (`--inject-fault slow-log-line`: once
/// started, every worker writes one 8 KiB line straight to its stderr, 64 bytes every 20 ms,
/// after saying so): its unfinished line never reaches stderr half-written, the main process
/// reports it (`event=truncated`, `component=worker-N`, integer `bytes`), and every line is
/// JSON.
///
/// "In the middle" is seen, not slept for: the worker's `wchar` (`/proc/PID/io`, bytes it
/// wrote) grows past its value at the announcement by at least one piece.
#[test]
fn a_worker_killed_mid_line_is_reported_truncated_and_every_line_is_json() {
    let mut run = complex(&["--time-scale", FAST, "--inject-fault", "slow-log-line"]);
    let announced = run.wait_for(
        |e: &Event| {
            e.process().is_some_and(|p| p.starts_with("worker-"))
                && e.event() == Some("fault")
                && e.str("fault") == Some("slow-log-line")
        },
        PATIENCE,
    );
    let worker = worker_from(&run, &announced);
    wait_mid_line(&run, worker.pid());
    run.sigkill(worker.pid());
    let name = worker.name.clone();
    let truncated = run.wait_for(
        move |e: &Event| {
            e.process() == Some("main")
                && e.str("event") == Some("truncated")
                && e.component() == Some(name.as_str())
        },
        PATIENCE,
    );
    if !is_warn(&truncated) || truncated.int("bytes").is_none_or(|b| b < 1) {
        run.fail(&format!(
            "expected a warn event with a positive integer `bytes`: {}",
            truncated.raw
        ));
    }
    // To the main process alone: the fault writes its line straight to fd 2, beside the
    // worker's own log writer, so a worker logging "SIGINT ignored" while the other workers
    // are still in their slow lines would have the fault, not the suite, glue two lines.
    run.signal(Signal::Int);
    run.wait_exit();
    run.assert_clean_output();
    run.assert_ended_by(Signal::Int);
    run.assert_last_line_is_exit(Signal::Int.shell_status(), Some(Signal::Int));
    run.assert_every_component_finished();
    assert_no_pid_left(&mut run);
    // The raw text, not a field: a cut line glued to another would reach the log wrapped as
    // stray output, with only its text left to find.
    if let Some(at) = run.position(
        &|e: &Event| {
            e.process() == Some(worker.name.as_str())
                && e.int("pid") == Some(worker.pid)
                && e.raw.contains("a slow log line")
        },
        0,
    ) {
        run.fail(&format!(
            "line {}: the killed worker's unfinished line reached stderr",
            at + 1
        ));
    }
}

/// Bytes process `pid` has written (`wchar` of `/proc/PID/io`), if readable.
fn bytes_written(pid: i32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until worker `pid` has written at least one more piece (64 bytes) of its slow line
/// than it had when the test saw the announcement (bounded by the line's own 2.5 s).
#[track_caller]
fn wait_mid_line(run: &Run, pid: i32) {
    let Some(before) = bytes_written(pid) else {
        run.fail(&format!(
            "cannot read /proc/{pid}/io to see the slow line being written"
        ));
    };
    let deadline = Instant::now() + Duration::from_millis(2_000);
    while bytes_written(pid).is_some_and(|now| now < before + 64) {
        if Instant::now() >= deadline {
            run.fail("the worker wrote no piece of its slow line within 2 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------
// Deadlines judge what arrived.
//
// The main process (or the whole group) is stopped at a step and continued later; the run
// must complete as if nothing had happened: ended by the later Ctrl+C, nothing `failed`,
// nothing forced. The handshake's `bootstrapped` step has a 5 s deadline, affordable here:
// the stop outlasts it (main alone, and the whole group). The others are not (`started`
// 30 s, an update 30 s, a worker's stop 10 s): there the stop lasts 1 s, past the step's
// own work but not its deadline.

/// Past the handshake's 5 s `bootstrapped` deadline.
const BOOTSTRAPPED_PAST: Duration = Duration::from_millis(5_500);

/// How long a step's stop lasts when its deadline is too long to outlast.
const SHORT_STOP: Duration = Duration::from_secs(1);

/// Stops the main process (or the group) for `stopped`, then continues it.
fn stop_and_continue(run: &Run, to_group: bool, stopped: Duration) {
    run.send_raw(libc::SIGSTOP, to_group);
    // The duration under test, not a synchronisation.
    std::thread::sleep(stopped);
    run.send_raw(libc::SIGCONT, to_group);
}

/// A handshake step with main (or the whole group) stopped: SIGSTOP right after main says it
/// waits for `step`, SIGCONT `stopped` later; the start completes, and a Ctrl+C then stops
/// it in order.
fn stopped_during_the_handshake(step: &'static str, stopped: Duration, to_group: bool) {
    let mut run = complex(&["--time-scale", FAST]);
    run.wait_for(
        move |e: &Event| {
            e.process() == Some("main") && e.event() == Some("handshake") && e.str("step") == Some(step)
        },
        PATIENCE,
    );
    stop_and_continue(&run, to_group, stopped);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.signal_group(Signal::Int);
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, &[]);
}

/// Stopped past the 5 s `bootstrapped` deadline: what the workers reported meanwhile counts.
#[test]
fn main_stopped_past_the_bootstrapped_deadline_still_starts() {
    stopped_during_the_handshake("bootstrapped", BOOTSTRAPPED_PAST, false);
}

/// Ctrl+Z during the handshake, `fg` past the `bootstrapped` deadline: every process was
/// stopped, so whatever a worker had not yet reported it reports once continued; a stop of
/// the whole run at any moment, for any time, never fails a healthy start.
#[test]
fn the_whole_group_stopped_past_the_bootstrapped_deadline_still_starts() {
    stopped_during_the_handshake("bootstrapped", BOOTSTRAPPED_PAST, true);
}

#[test]
fn main_stopped_while_waiting_for_started_still_starts() {
    stopped_during_the_handshake("started", SHORT_STOP, false);
}

/// Main stopped in the middle of an update (every worker busy with it), continued after the
/// update's own work is long done: the update completes, and so does the run.
#[test]
fn main_stopped_during_an_update_still_completes_it() {
    let mut run = complex(&["--time-scale", UPDATE_SCALE]);
    run.wait_for(event("update-started"), PATIENCE);
    stop_and_continue(&run, false, SHORT_STOP);
    run.wait_for(event("update-finished"), PATIENCE);
    run.signal_group(Signal::Int);
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, &[]);
}

/// Main stopped during MPM's stop, while every worker finishes and reports: the stop
/// completes as usual, by the Ctrl+C that began it.
#[test]
fn main_stopped_during_the_stop_still_stops_in_order() {
    let mut run = complex(&["--time-scale", FAST]);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.signal_group(Signal::Int);
    run.wait_for(phase("MPM", "stopping"), PATIENCE);
    stop_and_continue(&run, false, SHORT_STOP);
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, &[]);
}

/// Ctrl+Z and `fg`: the whole group stopped during an update (calls in flight), continued
/// later; the run goes on and a Ctrl+C stops it in order.
#[test]
fn the_whole_group_stopped_and_continued_goes_on_as_before() {
    let mut run = complex(&["--time-scale", UPDATE_SCALE]);
    run.wait_for(event("update-started"), PATIENCE);
    stop_and_continue(&run, true, SHORT_STOP);
    run.wait_for(event("update-finished"), PATIENCE);
    run.signal_group(Signal::Int);
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, &[]);
}

/// Ctrl+Z as MPM's stop begins, `fg` after longer than the whole `--stop-timeout`: the
/// time every process spent stopped is not held against the stop, which completes
/// unforced, by the Ctrl+C that began it.
#[test]
fn the_whole_group_stopped_past_the_stop_timeout_forces_nothing() {
    let mut run = complex(&["--time-scale", FAST, "--stop-timeout", "3s"]);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.signal_group(Signal::Int);
    run.wait_for(phase("MPM", "stopping"), PATIENCE);
    stop_and_continue(&run, true, Duration::from_secs(4));
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, &[]);
    assert_not_forced(&run);
}

/// The worker's stop deadline (`mpm/parent/mod.rs`), and how far past it a stuck worker may
/// be killed: a tenth, plus the moments before the stop reaches the manager.
const WORKER_STOP_DEADLINE: Duration = Duration::from_secs(10);
const LATE_AT_MOST: Duration = Duration::from_millis(1_500);

/// Ctrl+Z as MPM's stop begins, `fg` past every worker's stop deadline: every process was
/// stopped, so no worker is judged late; nothing is killed, nothing fails.
#[test]
fn the_whole_group_stopped_past_the_worker_stop_deadline_still_stops_in_order() {
    let mut run = complex(&["--time-scale", FAST]);
    run.wait_for(phase("app", "started"), PATIENCE);
    run.signal_group(Signal::Int);
    run.wait_for(phase("MPM", "stopping"), PATIENCE);
    stop_and_continue(&run, true, WORKER_STOP_DEADLINE + Duration::from_millis(500));
    assert_graceful_end(&mut run, Signal::Int, DEFAULTS, &[]);
}

/// One worker stopped alone (SIGSTOP) with a call in hand, then Ctrl+C to the main process,
/// which is sent SIGCONT every 100 ms meanwhile: no signal extends a deadline. The call in
/// hand waits no longer than the worker's stop deadline: the worker is killed and named
/// then, and the stop completes, by SIGINT, unforced.
#[test]
fn a_worker_stopped_alone_is_killed_at_its_stop_deadline_however_often_main_is_continued() {
    let shape = Shape {
        workers: 1,
        ..DEFAULTS
    };
    let mut run = complex(&["--time-scale", FAST, "--workers", "1"]);
    let started = run.wait_for(
        |e: &Event| e.process() == Some("worker-1") && e.is("worker-1", "started"),
        PATIENCE,
    );
    let worker = worker_from(&run, &started);
    // Every call goes to the one worker: once it is stopped, the busy tasks' calls are stuck.
    run.wait_for(phase("app", "started"), PATIENCE);
    // SAFETY: kill(2) on a worker of the run, alive (it has not stopped yet).
    assert_eq!(unsafe { libc::kill(worker.pid(), libc::SIGSTOP) }, 0);
    run.signal(Signal::Int);
    let sent = Instant::now();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let continues = {
        let (done, main) = (done.clone(), run.pid());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                // SAFETY: kill(2) on the run's main process, reaped only after this ends.
                unsafe { libc::kill(main, libc::SIGCONT) };
                // The pace of the SIGCONTs under test, not a synchronisation.
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let killing = run.wait_for(
        |e: &Event| {
            e.process() == Some("main") && e.event() == Some("killing") && e.str("worker") == Some("worker-1")
        },
        PATIENCE,
    );
    let waited = sent.elapsed();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    continues.join().unwrap();
    if waited < WORKER_STOP_DEADLINE || waited > WORKER_STOP_DEADLINE + LATE_AT_MOST {
        run.fail(&format!(
            "worker-1 must be killed at its {WORKER_STOP_DEADLINE:?} stop deadline, not after {waited:?}: {}",
            killing.raw
        ));
    }
    assert_graceful_end(&mut run, Signal::Int, shape, &[worker]);
}
