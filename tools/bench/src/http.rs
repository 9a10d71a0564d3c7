//! Answers per second through examples/http.rs against a bare axum hello-world
//! (`floor-axum`), and the requests that fail through a stop under that load.
//!
//! **The load.** [`CLIENTS`] threads, each looping `GET /healthz` on a keep-alive
//! connection (a new one when the server closes it), with a plain std `TcpStream`: the
//! tool's own client costs the same against both servers. The rate is the answers counted
//! over `hold`, after every client has had its first answer.
//!
//! **The stop (the example only).** After `hold`, SIGINT with the load still on: the
//! example serves on for `--drain-min`, then closes its listener; the clients go on until
//! it refuses them. A request the server took that ends in an error, a truncated answer or
//! a status other than 200 is a failure (the target is zero). A request written on a
//! keep-alive connection the server was just closing as idle gets no byte back: the server
//! never took it, and HTTP clients retry it, so it is counted apart.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use anyhow::Context as _;

use crate::run::{Proc, Status};

/// Client threads, as in tests/http.rs.
pub const CLIENTS: usize = 16;
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The example's drain in these runs: a floor that the load crosses, a short ceiling.
pub const EXAMPLE_ARGS: [&str; 8] = [
    "--listen",
    "127.0.0.1:0",
    "--drain-min",
    "500ms",
    "--drain-max",
    "2s",
    "--log-format",
    "json",
];

/// What the runs of one server measured.
#[derive(Default)]
pub struct Rates {
    /// Answers per second, one per run.
    pub per_second: Vec<f64>,
    /// Requests the server took that failed during the stop, over all runs.
    pub failed: u64,
    /// Requests the server never took (closed idle keep-alive connections), over all runs.
    pub not_taken: u64,
    /// Runs that failed, described.
    pub failures: Vec<String>,
}

/// Runs the example and the floor `runs` times each, interleaved.
pub fn measure(
    example: &Path,
    floor: &Path,
    runs: usize,
    hold: Duration,
    progress: impl Fn(usize),
) -> (Rates, Rates) {
    let (mut suite, mut bare) = (Rates::default(), Rates::default());
    for round in 0..runs {
        if let Err(error) = run(example, &EXAMPLE_ARGS, hold, true, &mut suite) {
            suite.failures.push(format!("run {}: {error:#}", round + 1));
        }
        if let Err(error) = run(floor, &[] as &[&str], hold, false, &mut bare) {
            bare.failures.push(format!("run {}: {error:#}", round + 1));
        }
        progress(round + 1);
    }
    (suite, bare)
}

fn run(
    program: &Path,
    args: &[&str],
    hold: Duration,
    load_through_stop: bool,
    rates: &mut Rates,
) -> anyhow::Result<()> {
    let mut proc = Proc::spawn(program, args)?;
    let listening = proc
        .wait_for(READY_TIMEOUT, |line| line.str_field("event") == Some("listening"))
        .context("waiting for `event=listening`")?;
    let address = proc.lines()[listening]
        .str_field("address")
        .context("no address")?
        .to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let (first, firsts) = std::sync::mpsc::channel();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (address, stop, answered, first) =
                (address.clone(), stop.clone(), answered.clone(), first.clone());
            std::thread::spawn(move || client(&address, &stop, &answered, &first))
        })
        .collect();
    drop(first);
    let loaded = (0..CLIENTS).all(|_| firsts.recv_timeout(READY_TIMEOUT).is_ok());
    let before = answered.load(SeqCst);
    let window = std::time::Instant::now();
    // The measurement window itself.
    std::thread::sleep(hold);
    let rate = (answered.load(SeqCst) - before) as f64 / window.elapsed().as_secs_f64();
    if !load_through_stop {
        stop.store(true, SeqCst);
    }
    let ended = proc.interrupt_and_reap(STOP_TIMEOUT);
    stop.store(true, SeqCst);
    let tallies: Vec<Tally> = clients.into_iter().filter_map(|c| c.join().ok()).collect();
    let ended = ended?;
    proc.finish(DRAIN_TIMEOUT)?;
    anyhow::ensure!(loaded, "not every client was answered");
    anyhow::ensure!(
        ended.status == Status::Signalled(libc::SIGINT),
        "ended by {:?}",
        ended.status
    );
    rates.per_second.push(rate);
    if load_through_stop {
        rates.failed += tallies.iter().map(|t| t.failed).sum::<u64>();
        rates.not_taken += tallies.iter().map(|t| t.not_taken).sum::<u64>();
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    failed: u64,
    not_taken: u64,
}

/// One client: keep-alive requests until told to stop or refused a connection.
fn client(
    address: &str,
    stop: &AtomicBool,
    answered: &AtomicU64,
    first: &std::sync::mpsc::Sender<()>,
) -> Tally {
    let mut tally = Tally::default();
    let mut told = false;
    'connections: while !stop.load(SeqCst) {
        let Ok(stream) = TcpStream::connect(address) else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(STOP_TIMEOUT));
        let mut connection = BufReader::new(stream);
        while !stop.load(SeqCst) {
            match exchange(&mut connection) {
                Exchange::Answered { close } => {
                    answered.fetch_add(1, SeqCst);
                    if !std::mem::replace(&mut told, true) {
                        let _ = first.send(());
                    }
                    if close {
                        continue 'connections;
                    }
                }
                Exchange::NotTaken => {
                    tally.not_taken += 1;
                    continue 'connections;
                }
                Exchange::Failed => {
                    tally.failed += 1;
                    continue 'connections;
                }
            }
        }
    }
    tally
}

enum Exchange {
    /// A whole 200 answer; whether the server said it closes the connection.
    Answered { close: bool },
    /// Not one byte came back.
    NotTaken,
    /// Part of an answer, or another status.
    Failed,
}

fn exchange(connection: &mut BufReader<TcpStream>) -> Exchange {
    let request = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n";
    let mut line = String::new();
    if connection.get_mut().write_all(request).is_err()
        || !matches!(connection.read_line(&mut line), Ok(n) if n > 0)
    {
        return Exchange::NotTaken;
    }
    let ok = line.starts_with("HTTP/1.1 200 ");
    let (mut length, mut close) = (None, false);
    loop {
        line.clear();
        if !matches!(connection.read_line(&mut line), Ok(n) if n > 0) {
            return Exchange::Failed;
        }
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(value) = header.strip_prefix("content-length:") {
            length = value.trim().parse::<usize>().ok();
        }
        close |= header == "connection: close";
    }
    let mut body = vec![0; length.unwrap_or(0)];
    match (ok, length, connection.read_exact(&mut body)) {
        (true, Some(_), Ok(())) => Exchange::Answered { close },
        _ => Exchange::Failed,
    }
}
