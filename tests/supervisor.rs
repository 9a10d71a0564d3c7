//! Under a real supervisor's protocols: the test plays the service manager.
//!
//! - **systemd's notify protocol.** The test binds a datagram socket (a path one, then an
//!   abstract one), starts a binary with `NOTIFY_SOCKET` and `WATCHDOG_USEC`, and checks what
//!   arrives and when: `READY=1` not before `app: started` is logged, `STOPPING=1` at the
//!   stop, `EXTEND_TIMEOUT_USEC` re-sent before each promise lapses during a slow stop,
//!   watchdog pings in time, nothing from the workers, and the datagram's format the same as
//!   the system's `systemd-notify` tool sends.
//! - **`KillMode=mixed`.** SIGTERM to the main process only, then SIGKILL to the whole
//!   group when the unit's `TimeoutStopSec` lapses: with the unit's margins the SIGKILL
//!   never has anything left to kill.
//! - **PID 1.** In a fresh PID namespace (`unshare`, root), 100 orphans adopted and reaped,
//!   a worker's own end still reported by its parent, and SIGTERM ending in status 143.
//!
//! Each test synchronises on the datagrams and on the JSON log, never on sleeps; a test that
//! needs what this machine lacks (root, `unshare`, `systemd-notify`) is marked ignored with
//! the reason (see `build.rs`).

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime};

use support::example;

const PATIENCE: Duration = Duration::from_secs(20);

/// A datagram, with when it arrived.
struct Datagram {
    at: SystemTime,
    text: String,
}

/// A log line, read through the suite's one log reader.
type Line = logread::Event;

/// Asserts the contract's end of `log` with the suite's one judge (`logread::contract`): the
/// exit event once, last, and saying `status` and `signal` when given.
#[track_caller]
fn assert_exit_last(log: &[Line], said: Option<(i64, &str)>) {
    let (status, signal) = said.unzip();
    if let Err(why) = logread::contract::exit_as(log, status, signal) {
        panic!("{why}\n{}", logread::excerpt(log, 50, 50));
    }
}

/// When `line` was written; a line without a valid timestamp fails the test.
fn timestamp(line: &Line) -> SystemTime {
    line.timestamp()
        .unwrap_or_else(|| panic!("no valid timestamp: {}", line.raw))
}

/// Kills the run's whole process group when the test ends, passing or failing, so nothing
/// of it is left running.
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group the test created for this run.
        unsafe { libc::kill(-self.0, libc::SIGKILL) };
    }
}

/// The next log line, or a failure once `deadline` passes.
fn next_line(lines: &Receiver<Line>, deadline: Instant, waiting_for: &str) -> Line {
    let left = deadline.saturating_duration_since(Instant::now());
    lines
        .recv_timeout(left)
        .unwrap_or_else(|_| panic!("no log line {waiting_for} in time"))
}

/// Starts `program args` with the signals at their default disposition (a CI job may run
/// us with SIGINT ignored), stderr piped into parsed lines, in its own process group.
fn spawn(program: &str, args: &[&str], env: &[(&str, &str)]) -> (Child, Receiver<Line>) {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    command.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC");
    for (key, value) in env {
        command.env(key, value);
    }
    spawning::default_signal_dispositions(&mut command, &[]);
    let mut child = command.spawn().expect("spawn the binary");
    let stderr = child.stderr.take().expect("piped stderr");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let line = logread::parse(line);
            assert!(line.is_json(), "not a JSON line: {}", line.raw);
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    (child, received)
}

/// Collects datagrams on `socket` until the receiver is dropped.
fn listen(socket: UnixDatagram) -> Receiver<Datagram> {
    let (datagrams, received) = mpsc::channel();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("a read timeout");
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        loop {
            match socket.recv(&mut buffer) {
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                    if datagrams
                        .send(Datagram {
                            at: SystemTime::now(),
                            text,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    // Stop listening once nobody collects.
                    if datagrams
                        .send(Datagram {
                            at: SystemTime::now(),
                            text: String::new(),
                        })
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("recv on the notify socket: {e}"),
            }
        }
    });
    received
}

/// A fresh socket path under the target directory.
fn socket_path(name: &str) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("{name}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

use std::path::Path;

/// Waits for the next datagram that is not a tick.
fn next_datagram(datagrams: &Receiver<Datagram>, deadline: Instant) -> Option<Datagram> {
    while Instant::now() < deadline {
        match datagrams.recv_timeout(Duration::from_millis(200)) {
            Ok(d) if d.text.is_empty() => {}
            Ok(d) => return Some(d),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
        }
    }
    None
}

/// Runs `binary` under a pretend service manager listening at `address` (`bind` binds it);
/// stops it with SIGTERM once ready; returns the datagrams and the log.
/// Also returns the pids of the workers the log named by the time the run was ready, each
/// with whether its environment held `NOTIFY_SOCKET` then.
fn run_under_manager(
    binary: &str,
    extra: &[&str],
    socket: UnixDatagram,
    address: &str,
    watchdog: Duration,
) -> (Vec<Datagram>, Vec<Line>, Vec<(u32, bool)>) {
    let datagrams = listen(socket);
    let usec = watchdog.as_micros().to_string();
    let mut args = vec!["--log-format", "json"];
    args.extend_from_slice(extra);
    let (mut child, lines) = spawn(
        binary,
        &args,
        &[("NOTIFY_SOCKET", address), ("WATCHDOG_USEC", &usec)],
    );
    let _group = Group(child.id() as i32);
    let deadline = Instant::now() + PATIENCE;
    let mut received = Vec::new();
    // Ready first.
    loop {
        let datagram = next_datagram(&datagrams, deadline).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("no READY=1 within {PATIENCE:?}")
        });
        let ready = datagram.text.starts_with("READY=1");
        received.push(datagram);
        if ready {
            break;
        }
    }
    // The workers running now, and whether any of them could speak to the manager.
    let mut log: Vec<Line> = lines.try_iter().collect();
    let workers: Vec<(u32, bool)> = log
        .iter()
        .filter_map(|l| l.int("worker_pid"))
        .map(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let inherited = environ
                .split(|&b| b == 0)
                .any(|var| var.starts_with(b"NOTIFY_SOCKET="));
            (pid as u32, inherited)
        })
        .collect();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait for the binary");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "ended with {status}");
    // Everything sent before the exit has arrived: the socket is local.
    let quiet = Instant::now() + Duration::from_millis(300);
    while let Some(datagram) = next_datagram(&datagrams, quiet) {
        received.push(datagram);
    }
    log.extend(lines.iter());
    (received, log, workers)
}

/// The checks every run under the manager must pass.
fn assert_protocol(datagrams: &[Datagram], log: &[Line], watchdog: Duration) {
    let texts: Vec<&str> = datagrams.iter().map(|d| d.text.as_str()).collect();
    let position = |prefix: &str| texts.iter().position(|t| t.starts_with(prefix));
    let ready = position("READY=1").expect("READY=1");
    let stopping = position("STOPPING=1").unwrap_or_else(|| panic!("no STOPPING=1 in {texts:?}"));
    assert!(ready < stopping, "STOPPING=1 before READY=1: {texts:?}");
    assert_eq!(texts[ready], "READY=1\nSTATUS=running");
    assert!(
        texts.iter().any(|t| t.starts_with("STATUS=starting")),
        "{texts:?}"
    );
    // READY=1 not before `app: started` was logged.
    let started = log
        .iter()
        .find(|l| l.is("app", "started"))
        .expect("app: started logged");
    assert!(
        timestamp(started) <= datagrams[ready].at + Duration::from_millis(1),
        "READY=1 arrived before app: started was logged"
    );
    // Watchdog pings: never a gap the manager would call a hang, while the runtime runs.
    let pings: Vec<SystemTime> = datagrams
        .iter()
        .filter(|d| d.text == "WATCHDOG=1")
        .map(|d| d.at)
        .collect();
    assert!(pings.len() >= 2, "watchdog pings: {texts:?}");
    for pair in pings.windows(2) {
        let gap = pair[1].duration_since(pair[0]).unwrap_or_default();
        assert!(
            gap < watchdog,
            "a {gap:?} gap between pings, watchdog {watchdog:?}"
        );
    }
    // Each extension promises the next message in time, and the stop ends within it.
    let extensions: Vec<(SystemTime, Duration)> = datagrams
        .iter()
        .filter_map(|d| {
            let usec: u64 = d.text.strip_prefix("EXTEND_TIMEOUT_USEC=")?.parse().ok()?;
            Some((d.at, Duration::from_micros(usec)))
        })
        .collect();
    assert!(
        !extensions.is_empty(),
        "no EXTEND_TIMEOUT_USEC during the stop: {texts:?}"
    );
    for pair in extensions.windows(2) {
        let (sent, promise) = pair[0];
        let gap = pair[1].0.duration_since(sent).unwrap_or_default();
        assert!(
            gap <= promise,
            "an extension came {gap:?} after a promise of {promise:?}"
        );
    }
}

#[test]
fn simple_speaks_the_notify_protocol_on_a_path_socket() {
    let path = socket_path("notify-simple");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    let watchdog = Duration::from_millis(800);
    // A 2.5 s stop (two services of 1.25 s): several extensions are due.
    let (datagrams, log, _workers) = run_under_manager(
        env!("CARGO_BIN_EXE_simple"),
        &["--time-scale", "1.25", "--stop-timeout", "10s"],
        socket,
        path.to_str().expect("a UTF-8 path"),
        watchdog,
    );
    assert_protocol(&datagrams, &log, watchdog);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn complex_speaks_the_notify_protocol_on_an_abstract_socket_and_workers_stay_silent() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("graceful-notify-{}", std::process::id());
    let address =
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("an abstract name");
    let socket = UnixDatagram::bind_addr(&address).expect("bind the abstract socket");
    let watchdog = Duration::from_millis(800);
    let (datagrams, log, workers) = run_under_manager(
        env!("CARGO_BIN_EXE_complex"),
        &["--time-scale", "0.5", "--stop-timeout", "10s"],
        socket,
        &format!("@{name}"),
        watchdog,
    );
    assert_protocol(&datagrams, &log, watchdog);
    assert!(!workers.is_empty(), "the log names no worker pid");
    // Workers never had NOTIFY_SOCKET: they are spawned without the manager's variables,
    // so no worker can speak to the manager.
    for (pid, inherited) in workers {
        assert!(!inherited, "worker pid {pid} inherited NOTIFY_SOCKET");
    }
}

/// The echo example embeds the library's edge and gets the whole protocol with it:
/// `READY=1` once it listens, `STOPPING=1` when the stop begins, then the end by SIGTERM.
#[test]
fn the_echo_example_tells_the_manager_it_is_ready_and_stopping() {
    let path = socket_path("notify-echo");
    let datagrams = listen(UnixDatagram::bind(&path).expect("bind the notify socket"));
    let (mut child, lines) = spawn(
        &example("echo"),
        &["--log-format", "json", "--listen", "127.0.0.1:0"],
        &[("NOTIFY_SOCKET", path.to_str().expect("a UTF-8 path"))],
    );
    let _group = Group(child.id() as i32);
    let deadline = Instant::now() + PATIENCE;
    let ready = next_datagram(&datagrams, deadline).expect("a first datagram");
    let mut texts = vec![ready.text];
    while !texts.last().is_some_and(|t| t.starts_with("READY=1")) {
        texts.push(next_datagram(&datagrams, deadline).expect("READY=1").text);
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGTERM));
    let quiet = Instant::now() + Duration::from_millis(300);
    while let Some(datagram) = next_datagram(&datagrams, quiet) {
        texts.push(datagram.text);
    }
    let stopping = texts.iter().position(|t| t.starts_with("STOPPING=1"));
    assert!(stopping.is_some(), "no STOPPING=1: {texts:?}");
    let log: Vec<Line> = lines.iter().collect();
    assert!(
        log.iter().any(|l| l.is("app", "started")),
        "app: started not logged"
    );
    assert_exit_last(&log, None);
    let _ = std::fs::remove_file(&path);
}

/// A `NOTIFY_SOCKET` that cannot be used is said once, whatever is wrong with it, and the
/// run goes on; a watchdog asked every microsecond is honoured at a rate a manager can take.
#[test]
fn a_hostile_service_manager_environment_is_said_once_and_survived() {
    let too_long = format!("/{}", "x".repeat(120));
    for socket in ["garbage", "relative/path", "", too_long.as_str()] {
        let (mut child, lines) = spawn(
            env!("CARGO_BIN_EXE_simple"),
            &["--log-format", "json", "--time-scale", "0", "--run-for", "100ms"],
            &[("NOTIFY_SOCKET", socket)],
        );
        let _group = Group(child.id() as i32);
        let log: Vec<Line> = lines.iter().collect();
        assert!(child.wait().expect("wait").success(), "NOTIFY_SOCKET={socket:?}");
        let warnings = log
            .iter()
            .filter(|l| l.event() == Some("notify-unusable"))
            .count();
        assert_eq!(warnings, 1, "NOTIFY_SOCKET={socket:?}: {warnings} warnings");
    }
    let path = socket_path("notify-flood");
    let datagrams = listen(UnixDatagram::bind(&path).expect("bind the notify socket"));
    let (mut child, lines) = spawn(
        env!("CARGO_BIN_EXE_simple"),
        &["--log-format", "json", "--time-scale", "0", "--run-for", "500ms"],
        &[
            ("NOTIFY_SOCKET", path.to_str().expect("a UTF-8 path")),
            ("WATCHDOG_USEC", "1"),
        ],
    );
    let _group = Group(child.id() as i32);
    let log: Vec<Line> = lines.iter().collect();
    assert!(child.wait().expect("wait").success());
    let quiet = Instant::now() + Duration::from_millis(300);
    let mut pings = 0;
    while let Some(datagram) = next_datagram(&datagrams, quiet) {
        pings += usize::from(datagram.text == "WATCHDOG=1");
    }
    // 500 ms at the floor's 10 ms is about 50 pings; unclamped it was about 100,000.
    assert!(
        (2..=200).contains(&pings),
        "{pings} watchdog pings in about 500 ms"
    );
    assert_eq!(
        log.iter()
            .filter(|l| l.event() == Some("watchdog-clamped"))
            .count(),
        1,
        "the clamp is said once"
    );
    let _ = std::fs::remove_file(&path);
}

/// The datagram sockets `pid` holds: the notifier's is one; signal-hook's self-pipe is a
/// stream socket pair, so it does not count.
fn datagram_sockets(pid: u32) -> usize {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let datagram_inodes: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let columns: Vec<&str> = row.split_whitespace().collect();
            // Num RefCount Protocol Flags Type St Inode [Path]; Type 0002 is SOCK_DGRAM.
            (columns.get(4) == Some(&"0002"))
                .then(|| columns.get(6).copied())
                .flatten()
        })
        .collect();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    let inode = target.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned();
                    Some(inode)
                })
                .filter(|inode| datagram_inodes.contains(&inode.as_str()))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn without_notify_socket_nothing_is_sent() {
    let (mut child, lines) = spawn(
        env!("CARGO_BIN_EXE_simple"),
        &["--log-format", "json", "--time-scale", "0", "--run-for", "300ms"],
        &[],
    );
    let pid = child.id();
    let _group = Group(pid as i32);
    let mut sockets = None;
    for line in lines.iter() {
        if line.is("app", "started") {
            sockets = Some(datagram_sockets(pid));
        }
        assert!(
            line.event() != Some("notify-unusable"),
            "a warning about a socket never named"
        );
    }
    assert!(child.wait().expect("wait").success());
    assert_eq!(
        sockets,
        Some(0),
        "simple opened a datagram socket without NOTIFY_SOCKET"
    );
}

#[test]
#[cfg_attr(
    missing_systemd_notify,
    ignore = "needs systemd-notify (Debian package systemd)"
)]
fn the_datagram_format_matches_systemd_notify() {
    let path = socket_path("notify-format");
    let socket = UnixDatagram::bind(&path).expect("bind");
    socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let status = Command::new("systemd-notify")
        .args(["--no-block", "--ready", "--status=running"])
        .env("NOTIFY_SOCKET", &path)
        .status()
        .expect("run systemd-notify");
    assert!(status.success(), "systemd-notify failed: {status}");
    let mut buffer = [0u8; 512];
    let n = socket.recv(&mut buffer).expect("systemd-notify's datagram");
    // What `app: started` sends (see tell_the_service_manager in src/common/app.rs).
    assert_eq!(&buffer[..n], b"READY=1\nSTATUS=running");
    let _ = std::fs::remove_file(&path);
}

/// systemd's `KillMode=mixed` with the unit's margin: SIGTERM to main only; when the stop
/// timeout (scaled down here) lapses, SIGKILL to the whole group finds nobody.
#[test]
fn kill_mode_mixed_leaves_nothing_for_the_final_sigkill() {
    let stop_timeout = Duration::from_secs(2);
    // The unit's margin over --stop-timeout (deploy/systemd: 8 s and 15 s).
    let timeout_stop_sec = stop_timeout + Duration::from_secs(4);
    let (mut child, lines) = spawn(
        env!("CARGO_BIN_EXE_complex"),
        &[
            "--log-format",
            "json",
            "--time-scale",
            "0.2",
            "--stop-timeout",
            "2s",
        ],
        &[],
    );
    let _group = Group(child.id() as i32);
    let deadline = Instant::now() + PATIENCE;
    while !next_line(&lines, deadline, "app: started").is("app", "started") {}
    let group = child.id() as i32;
    let sent = Instant::now();
    // SAFETY: kill(2) on our own child only.
    unsafe { libc::kill(group, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    // The unit's SIGKILL to the group, at TimeoutStopSec: nothing may be left by then.
    while sent.elapsed() < timeout_stop_sec {
        // SAFETY: signal 0 only probes whether the group has members.
        if unsafe { libc::kill(-group, 0) } != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: SIGKILL to the test's own process group of the binary.
    let left = unsafe { libc::kill(-group, libc::SIGKILL) } == 0;
    assert!(
        !left,
        "processes of the run were still there for KillMode=mixed's SIGKILL"
    );
}

/// Every child of `pid`, from all its threads' lists (a worker is the child of the pool
/// thread that spawned it).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
                .flat_map(|list| {
                    list.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<u32>>()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the log of a binary run as PID 1 under `unshare` until `app: started`; returns
/// the binary's pid outside the namespace (unshare's only child) and the lines so far.
fn pid_1_started(unshare: &Child, lines: &Receiver<Line>, deadline: Instant) -> (u32, Vec<Line>) {
    let mut log = Vec::new();
    while !log.last().is_some_and(|l: &Line| l.is("app", "started")) {
        log.push(next_line(lines, deadline, "app: started"));
    }
    assert!(log.iter().any(|l| l.pid() == Some(1)), "the binary is not PID 1");
    let id = unshare.id();
    let init = std::fs::read_to_string(format!("/proc/{id}/task/{id}/children"))
        .expect("unshare's children")
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the namespace's init");
    (init, log)
}

/// Enters 100 orphans into `init`'s namespace and checks that `init` reaps them all.
fn reaps_100_orphans(init: u32) {
    let orphans = Command::new("nsenter")
        .args([
            "-t",
            &init.to_string(),
            "-p",
            "-m",
            "sh",
            "-c",
            "for i in $(seq 100); do (sleep 0.1 &); done",
        ])
        .status()
        .expect("nsenter");
    assert!(orphans.success());
    // Their subshells have exited, so the 100 orphans are init's children now; each ends
    // 0.1 s later and must then be reaped. Wait for that, not for a guessed while: until
    // none is left, alive or zombie (a zombie keeps its name). Nothing notifies a reaping,
    // so /proc is read; the bound only catches a failure.
    let orphans_left = || {
        let named_sleep = |pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        };
        children_of(init).iter().filter(|pid| named_sleep(pid)).count()
    };
    let settle = Instant::now();
    while orphans_left() > 0 {
        assert!(
            settle.elapsed() < Duration::from_secs(5),
            "{} orphans left unreaped",
            orphans_left()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let zombie =
        |pid: &u32| std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"));
    assert!(
        !children_of(init).iter().any(zombie),
        "a zombie is left under init"
    );
}

/// PID 1 of a fresh PID namespace: 100 orphans entered into it are reaped; a worker killed
/// from outside is still reported by its parent, by its signal; SIGTERM ends it by 143.
#[test]
#[cfg_attr(
    any(missing_root, missing_namespaces),
    ignore = "PID 1 of a PID namespace needs root, unshare and nsenter (util-linux)"
)]
fn as_pid_1_orphans_are_reaped_and_workers_still_reported() {
    let (mut child, lines) = spawn(
        "unshare",
        &[
            "--pid",
            "--fork",
            "--mount-proc",
            env!("CARGO_BIN_EXE_complex"),
            "--log-format",
            "json",
            "--time-scale",
            "0.1",
        ],
        &[],
    );
    let _group = Group(child.id() as i32);
    let deadline = Instant::now() + PATIENCE;
    let mut worker_host_pid = None;
    let (init, mut log) = pid_1_started(&child, &lines, deadline);
    reaps_100_orphans(init);
    // A worker killed from outside: its parent still reads its status.
    let workers: Vec<u32> = children_of(init)
        .into_iter()
        .filter(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.contains("worker")))
        .collect();
    if let Some(&worker) = workers.first() {
        worker_host_pid = Some(worker);
        // SAFETY: kill(2) on a worker of the run under test.
        unsafe { libc::kill(worker as i32, libc::SIGKILL) };
    }
    assert!(
        worker_host_pid.is_some(),
        "no worker found under the namespace's init"
    );
    loop {
        let line = next_line(&lines, deadline, "reporting the worker killed by SIGKILL");
        let cause = line.str("cause").unwrap_or_default().to_owned();
        log.push(line);
        if cause.contains("killed by SIGKILL") {
            break;
        }
    }
    // SAFETY: kill(2) on the namespace's init, our grandchild.
    unsafe { libc::kill(init as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait for unshare");
    log.extend(lines.iter());
    assert_eq!(
        status.code(),
        Some(143),
        "as PID 1 it exits 128+15 itself: {status}"
    );
    assert_exit_last(&log, Some((143, "SIGTERM")));
}

/// The echo example as PID 1 of a fresh PID namespace: it gets the reaper with the edge, so
/// 100 adopted orphans leave no zombie, and SIGTERM still ends it by 143 (exit event last).
#[test]
#[cfg_attr(
    any(missing_root, missing_namespaces),
    ignore = "PID 1 of a PID namespace needs root, unshare and nsenter (util-linux)"
)]
fn the_echo_example_as_pid_1_reaps_orphans() {
    let echo = example("echo");
    let (mut child, lines) = spawn(
        "unshare",
        &[
            "--pid",
            "--fork",
            "--mount-proc",
            &echo,
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let _group = Group(child.id() as i32);
    let (init, mut log) = pid_1_started(&child, &lines, Instant::now() + PATIENCE);
    reaps_100_orphans(init);
    // SAFETY: kill(2) on the namespace's init, our grandchild.
    unsafe { libc::kill(init as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait for unshare");
    log.extend(lines.iter());
    assert_eq!(
        status.code(),
        Some(143),
        "as PID 1 it exits 128+15 itself: {status}"
    );
    assert_exit_last(&log, None);
}
