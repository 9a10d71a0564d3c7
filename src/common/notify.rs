//! The systemd notify protocol (`sd_notify(3)`): tell a service manager when the run is
//! ready, what it is doing, that it is stopping, that a long stop still makes progress, and
//! that its runtime is alive.
//!
//! **Problem.** Under systemd (or any manager speaking the protocol) nobody presses Ctrl+C:
//! the manager sends SIGTERM, waits `TimeoutStopSec`, then SIGKILLs the whole group. A
//! service that says nothing is "ready" the moment it is forked (too early), and a long but
//! healthy stop looks exactly like a hung one.
//!
//! **Fix.** From the main process only: `READY=1` once `app: started` is logged, `STATUS=`
//! at each application phase, `STOPPING=1` when the stop begins, `EXTEND_TIMEOUT_USEC=`
//! re-sent during the stop (never promising past `--stop-timeout`), and `WATCHDOG=1` every
//! half `WATCHDOG_USEC` from a task on the runtime, so a frozen runtime stops the pings.
//! `NOTIFY_SOCKET` unset: nothing is sent and nothing logged. A socket that cannot be used
//! (not a path nor an abstract name, empty, too long, refused): one warning, then silence;
//! the run goes on. The variables are read first thing in `main` but judged once logging
//! runs, so that warning is never lost. A `WATCHDOG_USEC` too small to honour is raised to
//! [`WATCHDOG_FLOOR`] and said once: a manager asking for a ping every microsecond gets one
//! every few milliseconds, not 200,000 a second.
//!
//! **Why these few lines are ours.** The protocol is one datagram of `KEY=value` lines to a
//! path socket or an abstract one (`@name`), both of which std addresses directly; a crate
//! would add dependencies without removing any of the care above.
//!
//! The variables stay in this process's environment: removing them is sound only while no
//! other thread exists, which a library cannot promise. A program that spawns children
//! leaves [`VARIABLES`] out of their environment instead (`complex`'s workers do).

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

/// The variables a service manager sets for its main process only.
pub const VARIABLES: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// The shortest watchdog ping interval honoured, whatever `WATCHDOG_USEC` asks.
pub const WATCHDOG_FLOOR: Duration = Duration::from_millis(10);

/// The service manager's variables, as `main` found them.
#[derive(Clone, Debug, Default)]
pub(crate) struct NotifyEnv {
    socket: Option<String>,
    watchdog_usec: Option<String>,
    watchdog_pid: Option<String>,
}

impl NotifyEnv {
    /// Reads the variables (see [`VARIABLES`]); judged later by [`Notifier::from_env`].
    pub(crate) fn read() -> Self {
        let var = |name| std::env::var(name).ok();
        Self {
            socket: var("NOTIFY_SOCKET"),
            watchdog_usec: var("WATCHDOG_USEC"),
            watchdog_pid: var("WATCHDOG_PID"),
        }
    }
}

/// Where to send, and the watchdog the manager asked for.
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
    /// `NOTIFY_SOCKET` as given, for the one warning.
    named: String,
    watchdog: Option<Duration>,
    broken: AtomicBool,
}

/// The watchdog interval, when one was asked for this process: `WATCHDOG_USEC` set and
/// non-zero, and `WATCHDOG_PID` (if set) our own pid.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    let ours = pid.is_none_or(|pid| pid.trim().parse() == Ok(std::process::id()));
    ours.then(|| Duration::from_micros(usec))
}

impl Notifier {
    /// The notifier `env` asks for, if any. Logs one warning when `NOTIFY_SOCKET` is set but
    /// unusable, and one when the watchdog interval had to be raised: call it once logging
    /// runs.
    pub(crate) fn from_env(env: NotifyEnv) -> Option<Arc<Self>> {
        let named = env.socket?;
        let watchdog = watchdog_interval(env.watchdog_usec.as_deref(), env.watchdog_pid.as_deref());
        let (address, socket) = address_of(&named)
            .and_then(|address| Ok((address, UnixDatagram::unbound()?)))
            .inspect_err(|error| warn_unusable(&named, error))
            .ok()?;
        Some(Arc::new(Self {
            socket,
            address,
            named,
            watchdog,
            broken: AtomicBool::new(false),
        }))
    }

    /// Sends `state` (newline-separated `KEY=value` lines). After a failed send, one
    /// warning and nothing more.
    pub fn send(&self, state: &str) {
        if self.broken.load(SeqCst) {
            return;
        }
        if let Err(error) = self.socket.send_to_addr(state.as_bytes(), &self.address) {
            if !self.broken.swap(true, SeqCst) {
                warn_unusable(&self.named, &error);
            }
        }
    }

    /// The interval at which `WATCHDOG=1` must be sent (half of `WATCHDOG_USEC`, never less
    /// than [`WATCHDOG_FLOOR`]), if asked.
    pub fn watchdog_ping_interval(&self) -> Option<Duration> {
        let asked = self.watchdog? / 2;
        if asked < WATCHDOG_FLOOR {
            tracing::warn!(
                event = "watchdog-clamped",
                asked_us = asked.as_micros() as u64,
                "WATCHDOG_USEC asks for a ping every {asked:?}; pinging every {WATCHDOG_FLOOR:?} instead"
            );
        }
        Some(asked.max(WATCHDOG_FLOOR))
    }

    /// Sends `WATCHDOG=1` every `interval`, forever; run it as a task on the runtime, so
    /// that a runtime that stops running stops the pings too.
    pub async fn watchdog_pings(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.send("WATCHDOG=1");
        }
    }
}

/// `/path` is a path socket, `@name` an abstract one (Linux).
fn address_of(named: &str) -> std::io::Result<SocketAddr> {
    if let Some(name) = named.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            return SocketAddr::from_abstract_name(name.as_bytes());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(std::io::Error::other("abstract sockets exist only on Linux"));
        }
    }
    if named.starts_with('/') {
        // Refuses a path longer than a socket address holds (108 bytes on Linux).
        SocketAddr::from_pathname(named)
    } else {
        Err(std::io::Error::other(
            "neither a path (/...) nor an abstract name (@...)",
        ))
    }
}

fn warn_unusable(named: &str, error: &std::io::Error) {
    tracing::warn!(
        event = "notify-unusable",
        socket = named,
        cause = %error,
        "NOTIFY_SOCKET={named:?} cannot be used ({error}); the service manager will not be told of this run's state"
    );
}

/// How often a stop in progress re-tells the manager it is still making progress, and how
/// far each message promises the next: one interval of slack.
pub const EXTEND_INTERVAL: Duration = Duration::from_secs(1);

/// The `EXTEND_TIMEOUT_USEC=` message for a stop with `remaining` time until its deadline:
/// the next message is promised within two intervals, but never past the deadline.
pub fn extend_message(remaining: Duration) -> String {
    let promise = remaining.min(EXTEND_INTERVAL * 2);
    format!("EXTEND_TIMEOUT_USEC={}", promise.as_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_ours_only_when_the_pid_matches() {
        let ours = std::process::id().to_string();
        assert_ne!(ours, "1");
        assert_eq!(
            watchdog_interval(Some("2000000"), None),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_interval(Some("2000000"), Some(&ours)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_interval(Some("2000000"), Some("1")),
            None,
            "pid 1 is not a test"
        );
        assert_eq!(watchdog_interval(Some("0"), None), None);
        assert_eq!(watchdog_interval(Some("soon"), None), None);
        assert_eq!(watchdog_interval(None, None), None);
    }

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        assert!(address_of("/run/notify").is_ok());
        assert!(address_of("@abstract").is_ok());
        assert!(address_of("relative").is_err());
        assert!(address_of("").is_err());
        assert!(address_of(&format!("/{}", "x".repeat(120))).is_err());
    }
}
