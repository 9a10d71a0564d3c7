//! The deployment files (`deploy/`) agree with each other and with the binary.
//!
//! A supervisor's grace period must exceed `--stop-timeout` by the time a forced exit takes
//! (killing the workers, draining the log), or the supervisor's SIGKILL cuts the stop short
//! and the ordered stop this suite teaches never finishes. These numbers live in three
//! files in three syntaxes; this test reads them all, checks the margins, and runs the
//! binary with each file's arguments to prove the flags exist.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What a forced exit may add after `--stop-timeout`: killed workers reaped (1 s), the log
/// drained (1 s), and slack for a loaded machine.
const FORCED_EXIT_MARGIN: Duration = Duration::from_secs(4);

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

fn seconds(text: &str) -> Duration {
    humantime::parse_duration(text.trim()).unwrap_or_else(|e| panic!("not a duration: {text:?}: {e}"))
}

/// The arguments after the binary's path, from a command line written out in a file.
fn stop_timeout(args: &[String]) -> Duration {
    let at = args
        .iter()
        .position(|a| a == "--stop-timeout")
        .unwrap_or_else(|| panic!("no --stop-timeout in {args:?}: the default 30s would apply"));
    seconds(&args[at + 1])
}

/// Runs `complex` with `args` for a moment: the flags must be accepted.
fn assert_flags_accepted(file: &str, args: &[String]) {
    let status = Command::new(env!("CARGO_BIN_EXE_complex"))
        .args(args)
        .args(["--time-scale", "0", "--run-for", "10ms"])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("spawn complex");
    assert!(status.success(), "{file}: complex {args:?} ended with {status}");
}

fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

#[test]
fn the_systemd_unit_outlasts_the_stop() {
    let unit = read("deploy/systemd/graceful-complex.service");
    let exec: Vec<String> = unit_value(&unit, "ExecStart")
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect();
    let stop_timeout = stop_timeout(&exec);
    let timeout_stop = seconds(unit_value(&unit, "TimeoutStopSec"));
    assert!(
        timeout_stop >= stop_timeout + FORCED_EXIT_MARGIN,
        "TimeoutStopSec={timeout_stop:?} leaves no room after --stop-timeout {stop_timeout:?}"
    );
    assert_eq!(unit_value(&unit, "Type"), "notify", "READY=1 is sent: say so");
    assert_eq!(
        unit_value(&unit, "KillMode"),
        "mixed",
        "SIGTERM to main, SIGKILL to all"
    );
    let watchdog = seconds(unit_value(&unit, "WatchdogSec"));
    assert!(
        watchdog >= Duration::from_secs(2),
        "a watchdog that short fires on a busy machine"
    );
    assert_flags_accepted("the systemd unit", &exec);
}

#[test]
fn the_container_outlasts_the_stop() {
    let recipe = read("deploy/container/Containerfile");
    let entry = recipe
        .lines()
        .find_map(|line| line.strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    let entry: Vec<String> =
        serde_json::from_str(entry).expect("ENTRYPOINT in exec form (JSON), so the binary is PID 1");
    assert_eq!(
        entry[0], "/usr/local/bin/complex",
        "the binary itself is the entry point"
    );
    let args = &entry[1..];
    let stop_timeout = stop_timeout(args);
    // The engines' default grace (docker stop, podman stop: 10 s), which the recipe's usage
    // line spells out with -t.
    let grace = recipe
        .lines()
        .find_map(|line| line.split("podman stop -t ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(|n| Duration::from_secs(n.parse().expect("podman stop -t N")))
        .expect("the recipe shows `podman stop -t N`");
    assert!(
        grace >= stop_timeout + FORCED_EXIT_MARGIN / 2,
        "a {grace:?} grace leaves no room after --stop-timeout {stop_timeout:?}"
    );
    assert!(recipe.contains("STOPSIGNAL SIGTERM"));
    assert_flags_accepted("the Containerfile", args);
}

/// The pod of `deploy/kubernetes/pod.yaml` whose command is `command`.
fn pod(command: &str) -> String {
    let pods = read("deploy/kubernetes/pod.yaml");
    let wanted = format!("command: [\"{command}\"]");
    pods.split("\n---\n")
        .find(|pod| pod.contains(&wanted))
        .unwrap_or_else(|| panic!("no pod runs {command}"))
        .to_owned()
}

/// A pod's `key: value`, the first one.
fn pod_value<'a>(pod: &'a str, key: &str) -> &'a str {
    pod.lines()
        .find_map(|line| line.trim().strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("the pod has no {key}:"))
        .trim()
}

/// A pod's grace period and arguments.
fn grace_and_args(pod: &str) -> (Duration, Vec<String>) {
    let grace = pod_value(pod, "terminationGracePeriodSeconds");
    let grace = Duration::from_secs(grace.parse().expect("a number of seconds"));
    let args = serde_json::from_str(pod_value(pod, "args")).expect("args as a flow list");
    (grace, args)
}

#[test]
fn the_kubernetes_pod_outlasts_the_stop() {
    let (grace, args) = grace_and_args(&pod("/usr/local/bin/complex"));
    let stop_timeout = stop_timeout(&args);
    assert!(
        grace >= stop_timeout + FORCED_EXIT_MARGIN,
        "terminationGracePeriodSeconds {grace:?} leaves no room after --stop-timeout {stop_timeout:?}"
    );
    assert_flags_accepted("the pod", &args);
}

/// How long examples/http.rs's stop may run past `--drain-max`: its server's own stop
/// deadline (`--drain-max` + 1 s) and a second for the rest (its `stop_timeout`).
const HTTP_STOP_PAST_DRAIN_MAX: Duration = Duration::from_secs(2);

/// The HTTP example's pod: a readiness probe on `/readyz` that notices the 503 within the
/// drain's floor, and a grace period past the whole stop and a forced exit.
#[test]
fn the_http_pod_outlasts_its_drain() {
    let pod = pod("/usr/local/bin/http");
    let (grace, args) = grace_and_args(&pod);
    let flag = |name: &str| {
        let at = args
            .iter()
            .position(|a| a == name)
            .unwrap_or_else(|| panic!("no {name} in {args:?}"));
        seconds(&args[at + 1])
    };
    let (drain_min, drain_max) = (flag("--drain-min"), flag("--drain-max"));
    assert!(
        grace >= drain_max + HTTP_STOP_PAST_DRAIN_MAX + FORCED_EXIT_MARGIN,
        "terminationGracePeriodSeconds {grace:?} leaves no room after --drain-max {drain_max:?}"
    );
    assert_eq!(
        pod_value(&pod, "path"),
        "/readyz",
        "the first probe is the readiness probe"
    );
    let period = Duration::from_secs(pod_value(&pod, "periodSeconds").parse().expect("seconds"));
    let failures: u32 = pod_value(&pod, "failureThreshold").parse().expect("a count");
    assert!(
        period * failures < drain_min,
        "the probe notices the 503 after {:?}, past --drain-min {drain_min:?}",
        period * failures
    );
    assert_http_flags_accepted(&args);
}

/// Starts the HTTP example with the pod's arguments (on a free local port): it must get as
/// far as its first log line, which comes after the command line is parsed.
fn assert_http_flags_accepted(args: &[String]) {
    use std::io::BufRead;
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let mut args = args.to_vec();
    if let Some(at) = args.iter().position(|a| a == "--listen") {
        args[at + 1] = "127.0.0.1:0".into();
    }
    let mut child = Command::new(dir.join("examples").join("http"))
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the http example (cargo build --examples)");
    let mut first = String::new();
    let stderr = child.stderr.take().expect("piped");
    let read = std::io::BufReader::new(stderr).read_line(&mut first);
    let _ = child.kill();
    let _ = child.wait();
    read.expect("read the example's stderr");
    assert!(first.starts_with('{'), "the pod's args were refused: {first}");
}
