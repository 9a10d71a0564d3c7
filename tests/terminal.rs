//! Ctrl+C typed into a real terminal, the way a person stops `simple`.
//!
//! The other tests send SIGINT with kill(2). Here tmux gives `simple` a real pseudo-terminal
//! under an interactive bash with job control: the key is turned into SIGINT by the
//! terminal's line discipline and sent to the foreground process group, the text log is
//! what a person sees, and bash reacts to how the program ended exactly as it would for a
//! person. tmux runs on a private server (`tmux -L <unique socket>`), so it never touches
//! anyone's sessions, and the server is killed at the end even when the test fails.
//!
//! Polling the screen is this test's event synchronisation: each wait looks for a line to
//! appear and is bounded; none sleeps "long enough".

use std::process::{Command, Output};
use std::time::{Duration, Instant};

const SIMPLE: &str = env!("CARGO_BIN_EXE_simple");

/// A failure bound, never a synchronisation.
const PATIENCE: Duration = Duration::from_secs(20);

/// The shell's prompt: no log line can start with it. (tmux trims the trailing space.)
const PROMPT: &str = "READY>";

/// How often the screen is read while waiting for a line to appear.
const POLL: Duration = Duration::from_millis(20);

/// A tmux server of our own; dropping it kills the server and everything it runs.
struct Tmux {
    socket: String,
    /// The socket file, which tmux leaves behind when its server is killed.
    socket_path: Option<String>,
}

impl Tmux {
    /// Starts a private server with one detached 220x50 session running `shell`.
    fn start(shell: &str) -> Self {
        let socket = format!(
            "graceful-terminal-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let mut tmux = Self {
            socket,
            socket_path: None,
        };
        // `-f /dev/null`: no user configuration can change keys, sizes or the shell.
        #[rustfmt::skip]
        tmux.run(&["-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "220", "-y", "50", shell]);
        let path = tmux.run(&["display-message", "-p", "#{socket_path}"]).stdout;
        tmux.socket_path = Some(String::from_utf8_lossy(&path).trim().to_owned());
        tmux
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        spawning::default_signal_dispositions(&mut command, &[]);
        command.arg("-L").arg(&self.socket);
        // Run from inside a developer's tmux session, stay out of that session.
        command.env_remove("TMUX");
        command
    }

    #[track_caller]
    fn run(&self, args: &[&str]) -> Output {
        let output = self.command().args(args).output().unwrap_or_else(|error| {
            panic!(
                "failed to run tmux ({error}). This test types Ctrl+C into a real terminal and \
                 needs tmux: install it (Debian/Ubuntu: `sudo apt-get install tmux`; macOS: \
                 `brew install tmux`); .ci/run installs it."
            )
        });
        assert!(
            output.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Types `keys` (tmux key names: `Enter`, `C-c`, or literal text).
    fn send_keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// The pane's whole content, scrollback included, wrapped lines joined.
    fn screen(&self) -> String {
        let output = self.run(&["capture-pane", "-p", "-J", "-S", "-", "-t", "t"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Polls the screen until `done` holds; panics with the screen after [`PATIENCE`].
    #[track_caller]
    fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("waited {PATIENCE:?} for {what}; the terminal shows:\n{screen}");
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Kills the shell and whatever it still runs; an error means it is already gone.
        let _ = self.command().arg("kill-server").output();
        if let Some(path) = self.socket_path.as_deref().filter(|p| !p.is_empty()) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The index of the first line at or after `from` that contains `text`.
fn line_index(lines: &[&str], from: usize, text: &str) -> Option<usize> {
    lines[from..]
        .iter()
        .position(|l| l.contains(text))
        .map(|i| from + i)
}

/// Lesson 5 (a terminal's Ctrl+C) and the exit contract: Ctrl+C typed into a terminal stops
/// `simple` in reverse order, and it ends *by SIGINT*, not by `exit(130)`: the interactive
/// bash therefore drops the rest of the command line (as it would break out of a `while`
/// loop), and `$?` is 130.
#[test]
#[cfg_attr(missing_tmux, ignore = "needs tmux (Debian package tmux)")]
fn ctrl_c_in_a_real_terminal_stops_simple_and_ends_by_sigint() {
    // `--norc --noprofile`: no user setup can interfere.
    let tmux = Tmux::start(&format!("env PS1='{PROMPT} ' bash --norc --noprofile -i"));
    tmux.wait_until("the shell's prompt", |screen| {
        screen.lines().any(|l| l.starts_with(PROMPT))
    });

    // If `simple` merely exited with 130, bash would go on and print `after=2`; a process
    // killed by SIGINT makes an interactive bash drop the rest of the line. The typed
    // command shows `after=$((1+1))`, so `after=2` on screen can only be its output.
    let command = format!("'{SIMPLE}' --time-scale 0.3; echo after=$((1+1))");
    tmux.send_keys(&["-l", &command]);
    tmux.send_keys(&["Enter"]);
    tmux.wait_until("`app: started`", |screen| screen.contains("app: started"));

    tmux.send_keys(&["C-c"]);
    let screen = tmux.wait_until("the stop to end and the prompt to return", |screen| {
        let lines: Vec<&str> = screen.lines().collect();
        let ended = line_index(&lines, 0, "app: ends by SIGINT");
        ended.is_some_and(|i| lines[i + 1..].iter().any(|l| l.starts_with(PROMPT)))
    });

    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut from = 0;
    for expected in [
        "app: started",
        "SIGINT received",
        "AsyncService2: stopping",
        "AsyncService2: stopped",
        "AsyncService1: stopping",
        "AsyncService1: stopped",
        "app: ends by SIGINT, status 130",
    ] {
        match line_index(&lines, from, expected) {
            Some(index) => from = index + 1,
            None => panic!("expected {expected:?} after line {from}; the terminal shows:\n{screen}"),
        }
    }
    assert!(
        !screen.contains("panicked at") && !screen.contains("RUST_BACKTRACE"),
        "panic text on the terminal:\n{screen}"
    );
    assert!(
        !lines.iter().any(|l| l.trim() == "after=2"),
        "bash went on after `simple`: it exited instead of ending by SIGINT:\n{screen}"
    );

    // `$?` as the shell saw it. The typed line shows `rc=$?`, its output `rc=130`.
    tmux.send_keys(&["-l", "echo rc=$?"]);
    tmux.send_keys(&["Enter"]);
    let screen = tmux.wait_until("`echo rc=$?` to print", |screen| {
        screen
            .lines()
            .any(|l| l.trim().starts_with("rc=") && !l.contains('$'))
    });
    assert!(
        screen.lines().any(|l| l.trim() == "rc=130"),
        "expected the shell to see status 130 (128 + SIGINT):\n{screen}"
    );
}
