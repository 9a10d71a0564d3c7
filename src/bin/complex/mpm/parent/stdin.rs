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
    close_requested: AtomicBool,
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
    /// Writes what waits until the pipe is full. A frame of which nothing went out stays in
    /// its queue (a withdraw may still take it back, a stop still overtake it); one begun is
    /// finished before any other. A broken pipe (the worker is gone, which its monitor
    /// reports) drops it all.
    fn write_queued(&mut self) {
        while let Some(pipe) = &self.pipe {
            let (frame, written) = if let Some((frame, written)) = &self.head {
                (frame, *written)
            } else if let Some(frame) = self.control.front() {
                (frame, 0)
            } else if let Some((_, frame)) = self.commands.front() {
                (frame, 0)
            } else {
                if self.closing {
                    self.pipe = None;
                }
                return;
            };
            let (length, outcome) = (frame.len(), (&*pipe).write(&frame[written..]));
            match outcome {
                Ok(n) if n > 0 => {
                    let frame = match self.head.take() {
                        Some((frame, _)) => frame,
                        None => match self.control.pop_front() {
                            Some(frame) => frame,
                            None => self
                                .commands
                                .pop_front()
                                .map(|(_, frame)| frame)
                                .unwrap_or_default(),
                        },
                    };
                    if written + n < length {
                        self.head = Some((frame, written + n));
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() != io::ErrorKind::WouldBlock => {
                    (self.pipe, self.head) = (None, None);
                    (self.control, self.commands) = (VecDeque::new(), VecDeque::new());
                }
                // Full: what waits stays where it is until the worker makes room.
                _ => return,
            }
        }
    }

    /// Takes the unsent calls out of the queue, for their callers to hear they were withdrawn.
    fn take_back_calls(&mut self) -> Vec<u64> {
        let mut taken_back = Vec::new();
        self.commands.retain(|(id, _)| {
            taken_back.extend(*id);
            id.is_none()
        });
        taken_back
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
            close_requested: AtomicBool::new(false),
        })
    }

    /// Sends one call or update (the control commands have [`withdraw`](Self::withdraw) and
    /// [`close`](Self::close)), never waiting: written now, or queued for when the pipe has
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
            push_control(outbox, &Command::Withdraw);
            outbox.take_back_calls()
        })
    }

    /// Takes call `id` back if it is still queued (its caller gave up on it): a stuck worker
    /// does not pile up calls nobody waits for.
    pub fn take_back(&self, id: u64) {
        self.with_outbox(|outbox| outbox.commands.retain(|(queued, _)| *queued != Some(id)));
    }

    /// Queues the stop command ahead of everything else but a frame half written, then the
    /// end of stdin, and returns the ids of the calls still queued, never to be sent now.
    /// Idempotent, and never blocks: a wedged worker whose pipe is full must not hold up the
    /// stop; the stop's deadline kills it.
    pub fn close(&self) -> Vec<u64> {
        self.close_requested.store(true, SeqCst);
        self.with_outbox(|outbox| {
            push_control(outbox, &Command::Stop);
            outbox.closing = true;
            // Whatever was still queued would follow the stop.
            let taken_back = outbox.take_back_calls();
            outbox.commands.clear();
            taken_back
        })
    }

    /// Has `epoll` report `token` whenever a reader frees room in the full pipe (edge
    /// triggered: our own writes never fire it). Registered once: the pipe leaves the set by
    /// itself once its last copy is closed (a child caught between its spawn and its exec
    /// holds copies), so no number that may have been reused is ever named to it.
    pub fn watch_room(&self, epoll: &Epoll, token: u64) -> nix::Result<()> {
        let outbox = self.outbox.lock_unpoisoned();
        let room = EpollFlags::EPOLLOUT | EpollFlags::EPOLLET;
        outbox
            .pipe
            .as_ref()
            .map_or(Ok(()), |pipe| epoll.add(pipe, EpollEvent::new(room, token)))
    }

    /// Writes what waits, for the monitors' loop once the pipe has room; returns whether
    /// everything is out.
    pub fn try_write_all(&self) -> bool {
        let mut outbox = self.outbox.lock_unpoisoned();
        outbox.write_queued();
        outbox.pipe.is_none() || outbox.is_empty()
    }

    /// Whether [`close`](Self::close) ran: an exit after it is expected.
    pub fn was_closed(&self) -> bool {
        self.close_requested.load(SeqCst)
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
        while stdin.try_write_all() {
            stdin.send(&call(sent, "x".repeat(100))).unwrap();
            sent += 1;
            assert!(sent < 100_000, "a pipe holds far less than 10 MB");
        }
        // A frame of at most PIPE_BUF bytes goes out whole or not at all: the last one sent
        // did not, and waits with the two queued behind it.
        for id in [sent, sent + 1] {
            stdin.send(&call(id, "queued".into())).unwrap();
        }
        assert_eq!(
            stdin.withdraw(),
            [sent - 1, sent, sent + 1],
            "all taken back, unsent"
        );
        stdin.send(&call(sent + 2, "after the withdraw".into())).unwrap();
        assert_eq!(
            stdin.close(),
            [sent + 2],
            "what the stop overtakes comes back too"
        );
        assert!(stdin.send(&call(sent + 3, "late".into())).is_err());
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
        while !stdin.try_write_all() {
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
        assert!(!stdin.try_write_all(), "the rest waits for room");
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
                    7 => queued = !stdin.try_write_all(),
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
