//! `graceful::spawn` as a program that runs workers uses it: the child starts with the
//! shutdown signals blocked and SIGPIPE at its default, inherits no descriptor but its
//! pipes, and stays its owner's to kill and reap until the owner reaps it.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use graceful::spawn::{Program, spawn_with_signals_blocked, wait_until_ended};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

fn run(program: &str, args: &[&str], input: &[u8]) -> String {
    let args: Vec<String> = args.iter().map(|&a| a.into()).collect();
    let mut spawned = spawn_with_signals_blocked(&Program::at(program), &args).expect(program);
    spawned.stdin.write_all(input).unwrap();
    drop(spawned.stdin);
    let mut output = String::new();
    spawned.stdout.read_to_string(&mut output).unwrap();
    let status = spawned.process.wait().unwrap();
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{program}: {status:?}"
    );
    output
}

#[test]
fn the_child_starts_with_the_shutdown_signals_blocked_and_sigpipe_default() {
    // No shell in between: a shell may change its own mask as it starts.
    let status = run("/bin/grep", &["-E", "^Sig(Blk|Ign)", "/proc/self/status"], b"");
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).expect(name);
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let bit = |signal: i32| 1u64 << (signal - 1);
    let shutdown = bit(libc::SIGINT) | bit(libc::SIGTERM) | bit(libc::SIGHUP);
    assert_eq!(field("SigBlk:") & shutdown, shutdown, "{status}");
    assert_eq!(field("SigIgn:") & bit(libc::SIGPIPE), 0, "{status}");
}

#[test]
fn the_child_inherits_no_descriptor_but_its_pipes() {
    // Not close-on-exec, as a descriptor handed to this process by its parent may be;
    // numbered high, to be told from the one `ls` opens.
    use nix::fcntl::{FcntlArg, fcntl};
    let (read, _write) = nix::unistd::pipe().unwrap();
    let leaked = fcntl(&read, FcntlArg::F_DUPFD(100)).unwrap();
    // SAFETY: F_DUPFD just made it, and nothing else owns it.
    let _owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(leaked) };
    let listed = run("/bin/ls", &["/proc/self/fd"], b"");
    // 0, 1, 2, and the directory `ls` is reading.
    assert_eq!(listed.split_whitespace().count(), 4, "{listed}");
    assert!(
        !listed.split_whitespace().any(|fd| fd == leaked.to_string()),
        "{listed}"
    );
}

#[test]
fn waiting_for_the_end_leaves_the_pid_ours_to_kill_and_reap() {
    let spawned = spawn_with_signals_blocked(&Program::at("/bin/sleep"), &["60".into()]).unwrap();
    let pid = spawned.process.id();
    let waiter = std::thread::spawn(move || wait_until_ended(pid));
    spawned.process.kill().unwrap();
    waiter.join().unwrap().unwrap();
    // Not reaped by the wait: the owner still reads how it ended.
    let status = spawned.process.wait().unwrap();
    assert!(
        matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "{status:?}"
    );
}

#[test]
fn a_missing_program_is_an_error() {
    assert!(spawn_with_signals_blocked(&Program::at("/nonexistent/worker"), &[]).is_err());
    // posix_spawn does not search PATH: "sleep" is not found either.
    assert!(spawn_with_signals_blocked(&Program::at("sleep"), &["60".into()]).is_err());
}
