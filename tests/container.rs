//! A real container engine, as users run it: podman (runc runtime) starts `complex` as PID 1
//! of a container, `podman stop` sends SIGTERM and waits its grace period.
//!
//! No registry is reachable from CI, so the image is a root filesystem made here: the
//! binary and the libraries `ldd` names. The test waits for `app: started` in `podman logs`,
//! stops the container, and checks what a user would: the exit code `podman inspect`
//! reports (143: PID 1 cannot die by its own signal, so it exits 128+15 itself), the exit
//! event as the last line of `podman logs`, and a stop well inside the grace period. A
//! second run kills a worker first: its parent reports it by its signal and replaces it.
//!
//! Needs root, podman and runc (Debian packages; `.ci/run` installs them). Without them the
//! tests are marked ignored with that reason (see `build.rs`), and CI refuses to run without.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use logread::Event;

const PATIENCE: Duration = Duration::from_secs(30);
/// `podman stop -t 10`, the engines' default grace; the stop must end well inside it.
const GRACE: u64 = 10;

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(["--runtime", "runc", "--cgroup-manager=cgroupfs"])
        .args(args)
        .output()
        .expect("run podman")
}

/// A root filesystem holding the binary and the shared libraries it links.
fn rootfs(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("rootfs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("create the rootfs");
    let binary = env!("CARGO_BIN_EXE_complex");
    std::fs::copy(binary, root.join("complex")).expect("copy the binary");
    let ldd = Command::new("ldd").arg(binary).output().expect("run ldd");
    let listing = String::from_utf8_lossy(&ldd.stdout);
    for library in listing.split_whitespace().filter(|w| w.starts_with('/')) {
        let target = root.join(library.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().expect("a parent")).expect("library dir");
        std::fs::copy(library, &target).unwrap_or_else(|e| panic!("copy {library}: {e}"));
    }
    root
}

/// The container's log lines, parsed (every line must be JSON).
fn logs(name: &str) -> Vec<Event> {
    let output = podman(&["logs", name]);
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let line = logread::parse(l);
            assert!(line.is_json(), "not JSON: {l}");
            line
        })
        .collect()
}

/// Polls `podman logs` until a line matches; the bound only catches a hang.
fn wait_for_log(name: &str, what: &str, matches: impl Fn(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let lines = logs(name);
        if lines.iter().any(&matches) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} in the container's log: {:#?}",
            lines.iter().map(|l| &l.raw).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes the container whatever happens.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.0]);
    }
}

fn run_and_stop(label: &str, kill_a_worker: bool) {
    let root = rootfs(label);
    let name = format!("graceful-{label}-{}", std::process::id());
    let _container = Container(name.clone());
    let started = podman(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network=none",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=4096:4096",
        "--rootfs",
        root.to_str().expect("a UTF-8 path"),
        "/complex",
        "--log-format",
        "json",
        "--time-scale",
        "0.1",
        "--stop-timeout",
        "8s",
    ]);
    assert!(
        started.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    let lines = wait_for_log(&name, "app: started", |l| l.is("app", "started"));
    assert!(
        lines.iter().all(|l| !l.is_main() || l.pid() == Some(1)),
        "complex is not PID 1"
    );
    if kill_a_worker {
        let pid = podman(&["inspect", &name, "--format", "{{.State.Pid}}"]);
        let init: u32 = String::from_utf8_lossy(&pid.stdout)
            .trim()
            .parse()
            .expect("the container's pid");
        let worker = std::fs::read_dir(format!("/proc/{init}/task"))
            .expect("the init's tasks")
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
            .flat_map(|list| {
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                    .collect::<Vec<_>>()
            })
            .next()
            .expect("a worker under the container's init");
        // SAFETY: kill(2) on a worker of the container under test.
        unsafe { libc::kill(worker, libc::SIGKILL) };
        wait_for_log(&name, "the worker's failure by SIGKILL", |l| {
            l.phase() == Some("failed") && l.str("cause").is_some_and(|c| c.contains("killed by SIGKILL"))
        });
        wait_for_log(&name, "the worker's replacement", |l| {
            l.event() == Some("replaced")
        });
    }
    let asked = Instant::now();
    let stopped = podman(&["stop", "-t", &GRACE.to_string(), &name]);
    let took = asked.elapsed();
    assert!(
        stopped.status.success(),
        "podman stop: {}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(
        took < Duration::from_secs(GRACE / 2),
        "the stop took {took:?} of a {GRACE} s grace"
    );
    let code = podman(&["inspect", &name, "--format", "{{.State.ExitCode}}"]);
    assert_eq!(
        String::from_utf8_lossy(&code.stdout).trim(),
        "143",
        "the exit code podman saw"
    );
    let lines = logs(&name);
    if let Err(why) = logread::contract::exit_as(&lines, Some(143), Some("SIGTERM")) {
        panic!("{why}\n{}", logread::excerpt(&lines, 50, 50));
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
#[cfg_attr(
    any(missing_root, missing_podman),
    ignore = "needs root, podman and runc (Debian packages podman, runc)"
)]
fn podman_stop_ends_complex_as_pid_1_with_143() {
    run_and_stop("clean", false);
}

#[test]
#[cfg_attr(
    any(missing_root, missing_podman),
    ignore = "needs root, podman and runc (Debian packages podman, runc)"
)]
fn podman_stop_after_a_worker_was_killed_and_replaced() {
    run_and_stop("killed", true);
}
