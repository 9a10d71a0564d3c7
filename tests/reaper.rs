//! The reaper's promise to a child's owner, through the public [`graceful::reaper`]
//! functions: a child spawned with [`spawn_owned`] is left to its owner, zombie or not.

use std::process::Command;

use graceful::reaper::{forget, reap_orphans, spawn_owned};

#[test]
fn an_owned_child_is_left_to_its_owner() {
    let mut child = spawn_owned(Command::new("true").stdin(std::process::Stdio::null())).expect("spawn true");
    let pid = child.id();
    // Wait until it is a zombie, then let the reaper look: it must not take it.
    while std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z"))
        .unwrap_or(false)
    {
        std::thread::yield_now();
    }
    reap_orphans();
    let status = child.wait().expect("the owner still reaps its child");
    assert!(status.success());
    forget(pid);
}
