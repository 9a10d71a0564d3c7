//! The suite's real binaries, run as a terminal would run them: each in its own process
//! group with default signal dispositions, its stderr read line by line, and the group
//! killed when the test ends, however it ends.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where cargo put this workspace's binaries: the test runs from `<target>/debug/deps`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from <target>/<profile>/deps")
        .to_path_buf()
}

fn suite_binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the suite's binaries first (cargo build --bins -p graceful-shutdown; \
         cargo test --workspace does it)",
        path.display()
    );
    path
}

/// A binary of the suite, running in its own process group, its stderr read line by line.
pub struct Run {
    child: Child,
    lines: Receiver<String>,
    reader: Option<JoinHandle<()>>,
    log: Vec<String>,
}

impl Run {
    pub fn start(binary: &str, args: &[&str]) -> Run {
        let mut command = Command::new(suite_binary(binary));
        command
            .args(["--log-format", "json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec only async-signal-safe calls are made (signal and
        // setpgid), touching no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                // The test harness may run with signals ignored (a background job, nohup):
                // the binary must see the defaults a shell gives, or it logs them ignored.
                for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                    libc::signal(signal, libc::SIG_DFL);
                }
                // Its own group, so that the whole tree can be signalled and cleaned up.
                if libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("spawn the suite's binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (send, lines) = channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Run {
            child,
            lines,
            reader: Some(reader),
            log: Vec::new(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Reads lines until one satisfies `want`; returns it.
    pub fn wait_for(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line with {what} within 10 s:\n{}", self.log.join("\n")));
            self.log.push(line.clone());
            let value: Value = serde_json::from_str(&line).expect("every line is JSON");
            if want(&value) {
                return value;
            }
        }
    }

    pub fn wait_phase(&mut self, component: &str, phase: &str) -> Value {
        self.wait_for(&format!("{component} {phase}"), |v| {
            v["component"] == component && v["phase"] == phase
        })
    }

    /// Sends `signal` to the main process only.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory effects; the pid is our own child, not yet reaped.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// Sends `signal` to the whole group, as a terminal does for Ctrl+C.
    pub fn signal_group(&self, signal: i32) {
        // SAFETY: as above; the group is the child's own (setpgid in pre_exec).
        unsafe { libc::kill(-self.pid(), signal) };
    }

    /// Waits for the exit; returns the whole log and the shell's status.
    pub fn finish(mut self) -> (String, i32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                break status;
            }
            assert!(Instant::now() < deadline, "the run did not end within 10 s");
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the reader thread");
        }
        self.log.extend(self.lines.try_iter());
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let mut log = self.log.join("\n");
        log.push('\n');
        (log, code)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Nothing may be left running, whatever the test did.
        // SAFETY: as in `signal_group`.
        unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
