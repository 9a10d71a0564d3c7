//! The tool can fail: a planted fault is reported, under the invariant it breaks, with the
//! files to debug it; and clean trials pass.
//!
//! The main fault: `complex --inject-fault worker-ignores-stop` makes every worker ignore the stop
//! command and its parent's death, the orphan the reference warns about. The manager waits
//! 10 s before killing them, so with `--stop-timeout 1s` the stop is forced by the timeout
//! (a breach), and with the main process SIGKILLed nobody kills them at all (leftovers).
//! And `--inject-fault worker-panics` plants a panic that the suite logs as a JSON event.
//!
//! The suite's binaries: these tests build them (`cargo build --bins -p graceful-shutdown`,
//! the test profile, a no-op after `cargo test` compiled them) and pass `--bin-dir`, so a
//! stale release build can never stand in for the current code.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The suite's freshly built binaries (debug profile), built once per test process.
fn bin_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--bins", "-p", "graceful-shutdown"])
            .current_dir(&workspace)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the suite's binaries failed");
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
        target.join("debug")
    })
}

/// Runs the tool with `args`, failures kept in a fresh directory; returns its output and
/// that directory.
fn torture(name: &str, args: &[&str]) -> (Output, PathBuf) {
    let failures = std::env::temp_dir().join(format!("torture-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&failures);
    let output = Command::new(env!("CARGO_BIN_EXE_torture"))
        .args(args)
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--failures-dir")
        .arg(&failures)
        .output()
        .expect("the tool runs");
    (output, failures)
}

/// The "failing trials" count of `invariant` in the summary's table.
fn failures_of(stdout: &str, invariant: &str) -> usize {
    let row = stdout
        .lines()
        .find(|l| l.starts_with(&format!("| {invariant} |")))
        .unwrap_or_else(|| panic!("no row for {invariant} in:\n{stdout}"));
    row.split('|')
        .nth(3)
        .and_then(|cell| cell.trim().parse().ok())
        .unwrap_or_else(|| panic!("bad row {row}"))
}

/// The pids in the `no-leftovers` lines of the excerpts: "pid 123 (S) `...`".
fn leftover_pids(stderr: &str) -> Vec<u32> {
    stderr
        .lines()
        .filter(|l| l.starts_with("no-leftovers:"))
        .flat_map(|l| l.split("pid ").skip(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Workers that ignore the stop command make the stop outlive --stop-timeout: every
/// `run-for` trial (no signal involved, so nothing random about it) must fail with
/// `stop-timeout`, exit 1, print the failing log, and keep a report that replays it.
#[test]
fn a_stop_forced_by_the_timeout_is_reported() {
    let (output, failures) = torture(
        "timeout",
        &[
            "--seed",
            "11",
            "--trials",
            "2",
            "--binary",
            "complex",
            "--scenario",
            "run-for",
            "--stop-timeout",
            "1s",
            "--inject-fault",
            "worker-ignores-stop",
            // The fault alone: a process limit could fail the start before the stop.
            "--environment",
            "plain",
        ],
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(failures_of(&stdout, "stop-timeout"), 2, "{stdout}");
    assert!(
        stderr.contains("---- failing trial"),
        "no excerpt on stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("stop did not finish within --stop-timeout"),
        "{stderr}"
    );
    let trial = failures.join("11-complex-run-for");
    let report = std::fs::read_to_string(trial.join("report.md")).expect("report.md kept");
    assert!(
        report.contains("scripts/torture --seed 11 --trials 1 --binary complex --scenario run-for --stop-timeout 1s --inject-fault worker-ignores-stop"),
        "{report}"
    );
    assert!(
        std::fs::read_to_string(trial.join("stderr.log"))
            .expect("log kept")
            .contains("\"phase\":\"exit\"")
    );
    let _ = std::fs::remove_dir_all(failures);
}

/// A worker that panics (`--inject-fault worker-panics`: the one given busy task 0's first
/// call) writes its panic as one JSON line, `event=panic`, with none of the usual panic
/// text; it is still a panic, and every trial fails `clean-output`.
#[test]
fn a_panic_logged_as_a_json_event_is_reported() {
    let (output, failures) = torture(
        "panic",
        &[
            "--seed",
            "11",
            "--trials",
            "2",
            "--binary",
            "complex",
            "--scenario",
            "run-for",
            "--inject-fault",
            "worker-panics",
            "--environment",
            "plain",
        ],
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(failures_of(&stdout, "clean-output"), 2, "{stdout}");
    assert!(
        stderr.contains("\"event\":\"panic\""),
        "the panic line is quoted:\n{stderr}"
    );
    let _ = std::fs::remove_dir_all(failures);
}

/// With the main process SIGKILLed mid-run, workers that ignore their parent's death are
/// left behind: `no-leftovers`. (Their lifecycle cannot be seen after the kill: their lines
/// travel through the main process.) The tool kills them.
#[test]
fn orphans_of_a_killed_main_process_are_reported_and_cleaned_up() {
    let (output, failures) = torture(
        "orphans",
        &[
            "--seed",
            "21",
            "--trials",
            "2",
            "--binary",
            "complex",
            "--scenario",
            "kill-main",
            "--moment",
            "0.5",
            "--stop-timeout",
            "1s",
            "--inject-fault",
            "worker-ignores-stop",
            // The fault alone: a process limit could fail the start before the stop.
            "--environment",
            "plain",
        ],
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(failures_of(&stdout, "no-leftovers"), 2, "{stdout}");
    assert!(
        stderr.contains("inject-fault worker-ignores-stop"),
        "leftovers named:\n{stderr}"
    );
    // The leftovers the tool named must be gone (killed and reaped) once it returns.
    let pids = leftover_pids(&stderr);
    assert!(!pids.is_empty(), "no leftover named:\n{stderr}");
    for pid in pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !text(&cmdline).contains("worker-ignores-stop"),
            "leftover {pid} still there after the tool ended"
        );
    }
    let _ = std::fs::remove_dir_all(failures);
}

/// Without a fault, a mix of every scenario on both binaries passes, in every environment
/// the machine offers (the process limit needs root).
#[test]
fn clean_trials_pass() {
    let (output, failures) = torture(
        "clean",
        &[
            "--seed",
            "42",
            "--trials",
            "12",
            "--binary",
            "both",
            "--environment",
            "stall-reader,process-limit,cpu-hog,stop-main,stop-group,plain",
        ],
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("## Torture round: 12 trials, 0 failed"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(failures);
}
