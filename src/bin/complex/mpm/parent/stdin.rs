//! The worker's stdin as its parent holds it: every command the worker gets, and none of
//! them ever waits for the pipe.
//!
//! **Nothing waits for room.** A worker reads its stdin only between items, and a wedged one
//! never does: a caller on the runtime, an update, and above all the stop must not wait
//! behind it. So the pipe is non-blocking, and what it cannot take now waits in an outbox,
//! in order, which the monitors' loop writes once the pipe has room ([`Stdin::watch_room`]:
//! an edge-triggered `epoll` registration, which fires when a reader frees room in a full
//! pipe, and never for our own writes). In the common case a command is one `write` where it
//! is made: no thread is woken but the worker. One way to send, whoever sends.
//!
//! **Control frames jump the queue.** The withdraw and stop commands go ahead of every call
//! still in the outbox (behind a frame half written, which must be finished), so the stop
//! never waits for a queue. Calls the withdraw overtook are taken back unsent: the manager
//! answers them as withdrawn, as the worker would have. Nothing follows the stop command,
//! and once it is out the pipe is closed, so even a worker that missed it sees end-of-file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::sync::{Mutex, atomic::AtomicBool, atomic::Ordering::SeqCst};

use graceful::sync::LockUnpoisoned;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};

use crate::mpm::shared::protocol::{Command, Frame};

/// The worker's stdin: the one way commands reach it.
pub struct Stdin {
    outbox: Mutex<Outbox>,
    /// [`Stdin::close`] ran: an exit after it is expected.
    stop_sent: AtomicBool,
}

/// The write end of the pipe, while it is open, and what waits for room in it.
struct Outbox {
    pipe: Option<File>,
    /// The frame being written and how much of it is out: it is finished before any other.
    head: Option<(Vec<u8>, usize)>,
    /// The withdraw and stop commands, ahead of every call.
    control: VecDeque<Vec<u8>>,
    /// Calls and updates, with the call's id (a withdraw takes calls back unsent).
    commands: VecDeque<(Option<u64>, Vec<u8>)>,
    /// The stop command is queued: nothing may follow it.
    closing: bool,
}

impl Outbox {
    /// Writes what waits until the pipe is full. A broken pipe (the worker is gone, which its
    /// monitor reports) drops it all.
    fn write_queued(&mut self) {
        while let Some(pipe) = &self.pipe {
            let (frame, written) = match self.head.take() {
                Some(head) => head,
                None => match self.control.pop_front() {
                    Some(control) => (control, 0),
                    None => match self.commands.pop_front() {
                        Some((_, command)) => (command, 0),
                        None => {
                            if self.closing {
                                self.pipe = None;
                            }
                            return;
                        }
                    },
                },
            };
            match (&*pipe).write(&frame[written..]) {
                Ok(n) if written + n == frame.len() => {}
                Ok(n) if n > 0 => self.head = Some((frame, written + n)),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {
                    self.head = Some((frame, written))
                }
                Err(error) if error.kind() != io::ErrorKind::WouldBlock => {
                    (self.pipe, self.control, self.commands) = (None, VecDeque::new(), VecDeque::new());
                }
                // Full: the rest waits for room.
                _ => {
                    self.head = Some((frame, written));
                    return;
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.head.is_none() && self.control.is_empty() && self.commands.is_empty()
    }
}

impl Stdin {
    /// The write end of a worker's stdin.
    pub fn new(pipe: File) -> io::Result<Self> {
        fcntl(&pipe, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        Ok(Self {
            outbox: Mutex::new(Outbox {
                pipe: Some(pipe),
                head: None,
                control: VecDeque::new(),
                commands: VecDeque::new(),
                closing: false,
            }),
            stop_sent: AtomicBool::new(false),
        })
    }

    /// Sends one call or update, never waiting: written now, or queued for when the pipe has
    /// room. Fails once the stop command is on its way or the pipe broke.
    pub fn send(&self, command: &Command) -> io::Result<()> {
        let id = match command {
            Command::Call { id, .. } => Some(*id),
            _ => None,
        };
        let frame = encode(command)?;
        self.with_outbox(|outbox| {
            if outbox.closing || outbox.pipe.is_none() {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            outbox.commands.push_back((id, frame));
            Ok(())
        })
    }

    /// Queues the withdraw command ahead of every call not yet written, and returns the ids
    /// of those calls, taken back: the worker never sees them. Never blocks.
    pub fn withdraw(&self) -> Vec<u64> {
        self.with_outbox(|outbox| {
            let mut taken_back = Vec::new();
            outbox.commands.retain(|(id, _)| {
                taken_back.extend(*id);
                id.is_none()
            });
            push_control(outbox, &Command::Withdraw);
            taken_back
        })
    }

    /// Queues the stop command ahead of everything else but a frame half written, then the
    /// end of stdin. Idempotent, and never blocks: a wedged worker whose pipe is full must not
    /// hold up the stop; the stop's deadline kills it.
    pub fn close(&self) {
        self.stop_sent.store(true, SeqCst);
        self.with_outbox(|outbox| {
            if !outbox.closing {
                push_control(outbox, &Command::Stop);
                // Whatever was still queued would follow the stop: never sent. Its callers are
                // released when the worker ends.
                outbox.commands.clear();
                outbox.closing = true;
            }
        });
    }

    /// Has `epoll` report `token` whenever a reader frees room in the full pipe (edge
    /// triggered: our own writes never fire it). Registered once: the pipe leaves the set by
    /// itself when it is closed, so no number that may have been reused is ever named to it.
    pub fn watch_room(&self, epoll: &Epoll, token: u64) -> nix::Result<()> {
        let outbox = self.outbox.lock_unpoisoned();
        let room = EpollFlags::EPOLLOUT | EpollFlags::EPOLLET;
        outbox
            .pipe
            .as_ref()
            .map_or(Ok(()), |pipe| epoll.add(pipe, EpollEvent::new(room, token)))
    }

    /// Writes what waits, for the monitors' loop once the pipe has room; returns whether
    /// something still waits.
    pub fn write_queued(&self) -> bool {
        let mut outbox = self.outbox.lock_unpoisoned();
        outbox.write_queued();
        outbox.pipe.is_some() && !outbox.is_empty()
    }

    /// Whether [`close`](Self::close) ran: an exit after it is expected.
    pub fn was_closed(&self) -> bool {
        self.stop_sent.load(SeqCst)
    }

    /// Runs `change` on the outbox and writes what it can. What is left waits for the
    /// monitors' loop, woken by the room a reader makes.
    fn with_outbox<T>(&self, change: impl FnOnce(&mut Outbox) -> T) -> T {
        let mut outbox = self.outbox.lock_unpoisoned();
        let result = change(&mut outbox);
        outbox.write_queued();
        result
    }
}

fn push_control(outbox: &mut Outbox, command: &Command) {
    if !outbox.closing {
        outbox.control.extend(encode(command).ok());
    }
}

fn encode(command: &Command) -> io::Result<Vec<u8>> {
    let mut frame = Vec::with_capacity(64);
    command.write_to(&mut frame)?;
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpm::shared::protocol::Method;
    use graceful::spawn::{Process, Program, Spawned, spawn_with_signals_blocked};
    use std::io::Read;

    /// A process whose stdin is held as a worker's is (no monitors' loop: the test writes
    /// what waits itself).
    fn spawn(program: &str, args: &[String]) -> (Stdin, Process, File) {
        let Spawned {
            process,
            stdin,
            stdout,
            ..
        } = spawn_with_signals_blocked(&Program::at(program), args).unwrap();
        (Stdin::new(stdin).unwrap(), process, stdout)
    }

    fn call(id: u64, parameter: String) -> Command {
        Command::Call {
            id,
            method: Method::ProcessString(parameter),
        }
    }

    #[test]
    fn nothing_waits_for_a_full_pipe_and_the_withdraw_takes_back_what_did_not_go_out() {
        // A "worker" that never reads its stdin.
        let (stdin, process, _stdout) = spawn("/bin/sleep", &["60".into()]);
        let mut sent = 0;
        while !stdin.write_queued() {
            stdin.send(&call(sent, "x".repeat(100))).unwrap();
            sent += 1;
            assert!(sent < 100_000, "a pipe holds far less than 10 MB");
        }
        let queued = [sent, sent + 1];
        for id in queued {
            stdin.send(&call(id, "queued".into())).unwrap();
        }
        // The half-written frame stays (it must be finished); the two whole ones come back.
        assert_eq!(stdin.withdraw(), queued);
        stdin.close();
        assert!(stdin.send(&call(sent + 2, "late".into())).is_err());
        process.kill().unwrap();
        process.wait().unwrap();
    }

    #[test]
    fn frames_go_out_whole_and_in_order_the_stop_last() {
        let (stdin, process, mut stdout) = spawn("/bin/cat", &[]);
        // Longer than the pipe holds: written in parts, each as room appears.
        let long = call(2, "y".repeat(200_000));
        for command in [call(1, "short".into()), long.clone()] {
            stdin.send(&command).unwrap();
        }
        stdin.close();
        // No monitor here: write what the pipe could not take yet, until the stop is out.
        let mut echoed = Vec::new();
        let mut chunk = [0; 4096];
        while stdin.write_queued() {
            let n = stdout.read(&mut chunk).unwrap();
            echoed.extend_from_slice(&chunk[..n]);
        }
        stdout.read_to_end(&mut echoed).unwrap();
        let mut expected = Vec::new();
        for command in [call(1, "short".into()), long, Command::Stop] {
            command.write_to(&mut expected).unwrap();
        }
        assert_eq!(echoed, expected, "the frames in order, each whole");
        process.wait().unwrap();
    }

    #[test]
    fn epoll_reports_the_room_a_reader_makes_in_a_full_pipe_and_not_our_writes() {
        use nix::sys::epoll::{EpollCreateFlags, EpollTimeout};
        let (stdin, process, mut stdout) = spawn("/bin/cat", &[]);
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        stdin.watch_room(&epoll, 7).unwrap();
        let mut events = [EpollEvent::empty(); 4];
        let mut wait = || epoll.wait(&mut events, EpollTimeout::ZERO).unwrap();
        assert_eq!(wait(), 1, "an empty pipe has room: said once, when registered");
        stdin.send(&call(1, "x".into())).unwrap();
        assert_eq!(wait(), 0, "our own write is no news");
        // More than cat's stdout pipe and its stdin pipe hold together: ours fills.
        stdin.send(&call(2, "y".repeat(400_000))).unwrap();
        assert!(stdin.write_queued(), "the rest waits for room");
        assert_eq!(wait(), 0);
        // Reading cat's output lets it read more of its input, which makes room.
        epoll
            .add(&stdout, EpollEvent::new(EpollFlags::EPOLLIN, 8))
            .unwrap();
        let (mut chunk, mut echoed, mut queued) = ([0; 65536], 0, true);
        while queued {
            let ready = epoll.wait(&mut events, EpollTimeout::from(5000_u16)).unwrap();
            assert!(ready > 0, "cat makes room, and the room is reported");
            for event in &events[..ready] {
                match event.data() {
                    // Written only when room is reported: a missed report stalls this loop.
                    7 => queued = stdin.write_queued(),
                    _ => echoed += stdout.read(&mut chunk).unwrap(),
                }
            }
        }
        stdin.close();
        echoed += stdout.read_to_end(&mut Vec::new()).unwrap();
        assert!(echoed > 400_000);
        process.wait().unwrap();
    }
}
