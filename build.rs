//! What this machine offers the environment tests, as `cfg`s the tests read.
//!
//! A few integration tests need what not every machine has: root, tmux, a container
//! engine, util-linux's namespace and limit tools, systemd's notify client, a cgroup v1
//! memory controller, ptrace. Without them such a test is marked ignored, with the reason,
//! so `cargo test`'s normal output lists what did not run and why, instead of a test
//! passing without having run. With `GRACEFUL_REQUIRE_ALL=1` (CI, which installs everything) a
//! missing need fails the build instead, naming it. Nothing here affects the library or
//! the binaries: the `cfg`s are read only under `tests/`.

use std::path::Path;
use std::process::{Command, Stdio};

/// Each need: its `cfg` (set when it is missing), and how to tell whether it is there.
const NEEDS: [(&str, &[&str]); 6] = [
    ("missing_tmux", &["tmux"]),
    ("missing_podman", &["podman", "runc"]),
    ("missing_namespaces", &["unshare", "nsenter"]),
    ("missing_limits", &["setpriv", "prlimit"]),
    ("missing_systemd_notify", &["systemd-notify"]),
    ("missing_root", &[]),
];

fn main() {
    println!("cargo::rerun-if-env-changed=GRACEFUL_REQUIRE_ALL");
    println!("cargo::rerun-if-env-changed=PATH");
    // A package installed later changes these directories: probe again then.
    for dir in ["/usr/bin", "/usr/sbin", "/sys/fs/cgroup"] {
        if Path::new(dir).exists() {
            println!("cargo::rerun-if-changed={dir}");
        }
    }
    let mut missing = Vec::new();
    for (cfg, programs) in NEEDS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let there = match cfg {
            "missing_root" => is_root(),
            _ => programs.iter().all(|program| found(program)),
        };
        if !there {
            println!("cargo::rustc-cfg={cfg}");
            missing.push(cfg);
        }
    }
    println!("cargo::rustc-check-cfg=cfg(missing_memory_cgroup)");
    if !Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        println!("cargo::rustc-cfg=missing_memory_cgroup");
        missing.push("missing_memory_cgroup");
    }
    println!("cargo::rustc-check-cfg=cfg(missing_ptrace)");
    if !ptrace_allowed() {
        println!("cargo::rustc-cfg=missing_ptrace");
        missing.push("missing_ptrace");
    }
    if std::env::var("GRACEFUL_REQUIRE_ALL").as_deref() == Ok("1") && !missing.is_empty() {
        panic!("GRACEFUL_REQUIRE_ALL=1, but this machine lacks what some tests need: {missing:?}");
    }
}

fn found(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// Whether a process may trace its own child, as far as Yama says (`kernel.yama.ptrace_scope`):
/// 0 and 1 allow it, 2 only to root (CAP_SYS_PTRACE), 3 to nobody; without Yama, allowed. A
/// seccomp profile that forbids ptrace (some container engines') is not probed: the test
/// then fails, saying so.
fn ptrace_allowed() -> bool {
    match std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope") {
        Ok(scope) => match scope.trim() {
            "0" | "1" => true,
            "2" => is_root(),
            _ => false,
        },
        Err(_) => true,
    }
}
