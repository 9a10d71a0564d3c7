//! Waking a worker's monitor, which sleeps in `poll` on the worker's pipes: a control frame
//! waits for room in the worker's stdin, and only the monitor watches for it.
//!
//! A socket pair polled with the pipes: an idle monitor costs no periodic wake-up, and a
//! wake-up is one byte that never blocks (a full socket already holds a wake-up).

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// The waking end.
pub struct Wake(UnixStream);

/// The monitor's end.
pub struct WakeReceiver(UnixStream);

/// A new pair; fails when no descriptor is left.
pub fn pair() -> io::Result<(Wake, WakeReceiver)> {
    let (wake, receiver) = UnixStream::pair()?;
    wake.set_nonblocking(true)?;
    receiver.set_nonblocking(true)?;
    Ok((Wake(wake), WakeReceiver(receiver)))
}

impl Wake {
    /// Wakes the monitor; never blocks.
    pub fn wake(&self) {
        let _ = (&self.0).write(&[1]);
    }
}

impl WakeReceiver {
    /// The descriptor to poll for reading.
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Empties the socket (wake-ups carry no data; several count as one).
    pub fn drain(&self) {
        let mut sink = [0u8; 64];
        while matches!((&self.0).read(&mut sink), Ok(n) if n > 0) {}
    }
}
