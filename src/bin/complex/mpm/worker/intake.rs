//! Lesson 6 of the reference: **... or ignore the signal and rely on the stop command; but
//! an orphan then never stops.**
//!
//! A worker that waits for a stop command waits forever once its parent is killed (SIGKILL,
//! the OOM killer). Here the parent holds the only write end of the worker's stdin: however
//! it dies, the next read returns end-of-file, the stop of last resort
//! ([`StopCause::ParentGone`]). No orphan outlives its parent.
//!
//! Speed: after every item the work loop asks whether the parent sent anything, with one
//! `poll` of zero timeout on the same thread: no reader thread to wake per call, which at
//! `--time-scale 0` would be most of a call's cost.

use std::fs::File;
use std::io::{self, BufReader};
use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::lanes::{Lanes, StopCause};
use crate::mpm::shared::protocol::{Command, Frame};

/// The parent's commands, buffered once.
pub struct Intake {
    /// Our own buffer over stdin's descriptor: [`Intake::readable`] must see every byte
    /// already read from the pipe, which std's own stdin buffer would hide.
    input: BufReader<File>,
    line: Vec<u8>,
}

impl Intake {
    /// Reads this process's stdin.
    pub fn stdin() -> io::Result<Self> {
        Ok(Self::new(io::stdin().as_fd().try_clone_to_owned()?))
    }

    /// Reads `fd` (a pipe or a socket: something `poll` reports on).
    pub fn new(fd: OwnedFd) -> Self {
        Self {
            input: BufReader::new(File::from(fd)),
            line: Vec::new(),
        }
    }

    /// Blocks until the parent sends a command (or ends), then takes in everything else
    /// it has already sent.
    pub fn wait_for_one(&mut self, lanes: &mut Lanes) {
        if self.take_one(lanes) {
            self.take_in_everything_sent(lanes);
        }
    }

    /// Sorts into the lanes every command already sent, without blocking.
    pub fn take_in_everything_sent(&mut self, lanes: &mut Lanes) {
        while self.readable() && self.take_one(lanes) {}
    }

    /// Reads one command into the lanes; `false` once the stream ended or broke.
    fn take_one(&mut self, lanes: &mut Lanes) -> bool {
        match Command::read_from(&mut self.input, &mut self.line) {
            Ok(Some(command)) => {
                lanes.push(command);
                true
            }
            Ok(None) => {
                // End-of-file: the parent is gone.
                lanes.stop(StopCause::ParentGone);
                false
            }
            Err(error) => {
                lanes.stop(StopCause::Garbage(error.to_string()));
                false
            }
        }
    }

    /// Whether a read would not block: bytes buffered, or stdin readable (data, end-of-file
    /// or error). A poll interrupted by a signal counts as "not now"; the loop asks again.
    fn readable(&self) -> bool {
        if !self.input.buffer().is_empty() {
            return true;
        }
        let mut input = [PollFd::new(self.input.get_ref().as_fd(), PollFlags::POLLIN)];
        poll(&mut input, PollTimeout::ZERO).is_ok_and(|ready| ready > 0)
    }
}
