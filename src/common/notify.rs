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
//! `NOTIFY_SOCKET` unset: nothing is sent and nothing logged. A socket that cannot be used:
//! one warning, then silence; the run goes on.
//!
//! **Why these few lines are ours.** The protocol is one datagram of `KEY=value` lines to a
//! path socket or an abstract one (`@name`), both of which std addresses directly. The
//! variables must also leave the environment before any thread starts (workers must not
//! inherit `NOTIFY_SOCKET`), which [`take_from_env`] does as the first thing in `main`; a
//! crate would add dependencies without removing any of that care.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

/// Where to send, and the watchdog the manager asked for.
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
    /// `NOTIFY_SOCKET` as given, for the one warning.
    named: String,
    watchdog: Option<Duration>,
    broken: AtomicBool,
}

static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();

/// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`, and removes them from the
/// environment so that no child process inherits them. Call it first in `main`, before any
/// thread exists (changing the environment is only sound then).
pub fn take_from_env() {
    let socket = std::env::var("NOTIFY_SOCKET").ok();
    let watchdog_usec = std::env::var("WATCHDOG_USEC").ok();
    let watchdog_pid = std::env::var("WATCHDOG_PID").ok();
    for variable in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        // SAFETY: called first in `main`, while this is the process's only thread, so no
        // other thread can read the environment at the same time.
        unsafe { std::env::remove_var(variable) };
    }
    let watchdog = watchdog_interval(watchdog_usec.as_deref(), watchdog_pid.as_deref());
    let notifier = socket.and_then(|named| Notifier::new(named, watchdog));
    let _ = NOTIFIER.set(notifier);
}

/// The watchdog interval, when one was asked for this process: `WATCHDOG_USEC` set and
/// non-zero, and `WATCHDOG_PID` (if set) our own pid.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    let ours = pid.is_none_or(|pid| pid.trim().parse() == Ok(std::process::id()));
    ours.then(|| Duration::from_micros(usec))
}

impl Notifier {
    fn new(named: String, watchdog: Option<Duration>) -> Option<Self> {
        let address = match address_of(&named) {
            Ok(address) => address,
            Err(error) => {
                warn_once(&named, &error);
                return None;
            }
        };
        let socket = match UnixDatagram::unbound() {
            Ok(socket) => socket,
            Err(error) => {
                warn_once(&named, &error);
                return None;
            }
        };
        Some(Self {
            socket,
            address,
            named,
            watchdog,
            broken: AtomicBool::new(false),
        })
    }

    fn send(&self, state: &str) {
        if self.broken.load(SeqCst) {
            return;
        }
        if let Err(error) = self.socket.send_to_addr(state.as_bytes(), &self.address) {
            if !self.broken.swap(true, SeqCst) {
                warn_once(&self.named, &error);
            }
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
        SocketAddr::from_pathname(named)
    } else {
        Err(std::io::Error::other(
            "neither a path (/...) nor an abstract name (@...)",
        ))
    }
}

fn warn_once(named: &str, error: &std::io::Error) {
    tracing::warn!(
        event = "notify-unusable",
        socket = named,
        cause = %error,
        "NOTIFY_SOCKET={named} cannot be used ({error}); the service manager will not be told of this run's state"
    );
}

fn notifier() -> Option<&'static Notifier> {
    NOTIFIER.get().and_then(Option::as_ref)
}

/// Sends `state` (newline-separated `KEY=value` lines) to the service manager, if any.
pub fn send(state: &str) {
    if let Some(notifier) = notifier() {
        notifier.send(state);
    }
}

/// Whether a service manager listens (so callers skip building messages otherwise).
pub fn is_enabled() -> bool {
    notifier().is_some()
}

/// The interval at which `WATCHDOG=1` must be sent (half of `WATCHDOG_USEC`), if asked.
pub fn watchdog_ping_interval() -> Option<Duration> {
    notifier().and_then(|n| n.watchdog).map(|interval| interval / 2)
}

/// Sends `WATCHDOG=1` every half watchdog interval, forever; run it as a task on the
/// runtime, so that a runtime that stops running stops the pings too.
pub async fn watchdog_pings(interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        send("WATCHDOG=1");
    }
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
    fn an_extension_never_promises_past_the_deadline() {
        assert_eq!(
            extend_message(Duration::from_secs(30)),
            "EXTEND_TIMEOUT_USEC=2000000"
        );
        assert_eq!(
            extend_message(Duration::from_millis(300)),
            "EXTEND_TIMEOUT_USEC=300000"
        );
    }

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        assert!(address_of("/run/notify").is_ok());
        assert!(address_of("@abstract").is_ok());
        assert!(address_of("relative").is_err());
    }
}
