//! The HTTP example (examples/http.rs) through its real binary and real sockets: the drain
//! a load balancer needs, step by step, under load.
//!
//! The client is a plain std `TcpStream` speaking HTTP/1.1, so what is tested is what goes
//! over the wire: a status line, headers, a body of the announced length, or nothing at
//! all. The tests synchronise on the example's log events and on its answers; every
//! timeout only bounds a failure.

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use support::{Event, PATIENCE, Run, Signal, event, example, phase};

/// The example with this drain, and the address it listens on.
fn http(drain_min: &str, drain_max: &str) -> (Run, String) {
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--drain-min",
        drain_min,
        "--drain-max",
        drain_max,
    ];
    let mut run = Run::spawn(&example("http"), &args);
    let listening = run.wait_for(event("listening"), PATIENCE);
    let address = listening
        .str("address")
        .expect("the address listened on")
        .to_owned();
    (run, address)
}

/// How one request went, as the client saw it.
#[derive(Debug)]
enum Answer {
    /// A whole answer: status, body, and whether the server said it closes the connection.
    Complete { status: u16, body: String, close: bool },
    /// Not one byte came back: the server never took the request (a connection it was
    /// closing as idle, or one the kernel held when the listener closed).
    Nothing,
    /// Part of an answer, then the end: what a graceful server must never do.
    Truncated(String),
}

fn connect(address: &str) -> std::io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(address)?;
    // Small requests back to back: without this, Nagle's algorithm meets delayed ACKs.
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;
    Ok(BufReader::new(stream))
}

/// Sends `GET path` on `connection` and reads the answer.
fn request(connection: &mut BufReader<TcpStream>, path: &str) -> Answer {
    match send(connection, path) {
        Ok(()) => answer(connection),
        Err(_) => Answer::Nothing,
    }
}

/// One write, so the request leaves in one segment.
fn send(connection: &mut BufReader<TcpStream>, path: &str) -> std::io::Result<()> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    connection.get_mut().write_all(request.as_bytes())
}

/// Reads one answer, its body of `content-length` bytes.
fn answer(connection: &mut BufReader<TcpStream>) -> Answer {
    let mut head = String::new();
    if !matches!(connection.read_line(&mut head), Ok(n) if n > 0) {
        return Answer::Nothing;
    }
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    let (mut length, mut close) = (None, false);
    loop {
        let mut line = String::new();
        match connection.read_line(&mut line) {
            Ok(n) if n > 0 && line.ends_with('\n') => {}
            _ => return Answer::Truncated(head),
        }
        head.push_str(&line);
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("content-length:") {
            length = value.trim().parse::<usize>().ok();
        }
        close |= line == "connection: close";
    }
    let (Some(status), Some(length)) = (status, length) else {
        return Answer::Truncated(head);
    };
    let mut body = vec![0; length];
    if connection.read_exact(&mut body).is_err() {
        return Answer::Truncated(head);
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    Answer::Complete { status, body, close }
}

/// `GET path` on a connection of its own: the status, or `None` if it was not answered.
fn get(address: &str, path: &str) -> Option<u16> {
    match request(&mut connect(address).ok()?, path) {
        Answer::Complete { status, .. } => Some(status),
        _ => None,
    }
}

/// The checks every run of the example ends with: ended by SIGTERM (as PID 1 the status
/// is 143), the stop report naming the server before the exit event, nothing left.
fn assert_ends_by_sigterm_with_its_report(run: &mut Run) -> Event {
    run.wait_exit();
    run.assert_ended_by(Signal::Term);
    run.assert_last_line_is_exit(Signal::Term.shell_status(), Some(Signal::Term));
    run.assert_every_component_finished();
    run.assert_clean_output();
    run.assert_nothing_left();
    run.assert_order(&[
        phase("HttpServer", "stopping"),
        event("stop-report"),
        phase("app", "exit"),
    ]);
    let report = run.all(&event("stop-report"))[0].clone();
    if !report
        .str("components")
        .is_some_and(|c| c.starts_with("HttpServer "))
    {
        run.fail(&format!("the stop report must name the server: {}", report.raw));
    }
    report
}

/// DRAIN 1: readiness answers 503 within 50 ms of SIGTERM (the balancer's cue), while
/// the server goes on serving.
#[test]
fn readiness_flips_to_503_within_50ms_of_sigterm() {
    let (mut run, address) = http("1s", "2s");
    assert_eq!(get(&address, "/readyz"), Some(200), "ready while serving");
    run.signal(Signal::Term);
    let signalled = Instant::now();
    let flipped = loop {
        match get(&address, "/readyz") {
            Some(503) => break signalled.elapsed(),
            Some(200) if signalled.elapsed() < PATIENCE => {}
            other => run.fail(&format!("/readyz answered {other:?} after SIGTERM")),
        }
    };
    eprintln!("readiness flipped {flipped:?} after SIGTERM");
    if flipped > Duration::from_millis(50) {
        run.fail(&format!(
            "readiness flipped {flipped:?} after SIGTERM, over 50 ms"
        ));
    }
    assert_eq!(get(&address, "/healthz"), Some(200), "alive while draining");
    assert_ends_by_sigterm_with_its_report(&mut run);
}

/// DRAIN 2 and 3: a new connection is served during `--drain-min`, and refused once the
/// listener has closed.
#[test]
fn new_connections_are_served_during_drain_min_and_refused_after() {
    let (mut run, address) = http("2s", "3s");
    run.signal(Signal::Term);
    run.wait_for(event("draining"), PATIENCE);
    assert_eq!(
        get(&address, "/work?ms=1"),
        Some(200),
        "served during --drain-min"
    );
    run.wait_for(event("listener-closed"), PATIENCE);
    match TcpStream::connect(&address) {
        Err(error) if error.kind() == ErrorKind::ConnectionRefused => {}
        other => run.fail(&format!("a connection after the listener closed: {other:?}")),
    }
    assert_ends_by_sigterm_with_its_report(&mut run);
}

/// What one client thread saw through the stop.
#[derive(Debug, Default)]
struct Tally {
    complete: usize,
    unanswered: usize,
    failures: Vec<String>,
}

/// One client: keep-alive requests in a loop, a new connection when the server closes
/// one, until the listener refuses it. Bounded in count and time.
fn client(address: &str, first: mpsc::Sender<()>, answered: &AtomicUsize) -> Tally {
    let mut tally = Tally::default();
    let began = Instant::now();
    'connections: while began.elapsed() < PATIENCE {
        let Ok(mut connection) = connect(address) else {
            break;
        };
        for _ in 0..100_000 {
            match request(&mut connection, "/work?ms=2") {
                Answer::Complete {
                    status: 200, close, ..
                } => {
                    tally.complete += 1;
                    answered.fetch_add(1, SeqCst);
                    let _ = first.send(());
                    if close {
                        continue 'connections;
                    }
                }
                Answer::Complete { status, body, .. } => {
                    tally.failures.push(format!("status {status}: {body}"));
                }
                Answer::Nothing => {
                    tally.unanswered += 1;
                    continue 'connections;
                }
                Answer::Truncated(head) => {
                    tally.failures.push(format!("truncated: {head:?}"));
                    continue 'connections;
                }
            }
        }
    }
    tally
}

/// DRAIN 3 under load: 16 clients loop on keep-alive connections through the whole stop;
/// every request the server took is answered whole, and the clients end because the
/// listener refuses them, not because of an error.
#[test]
fn keep_alive_clients_through_the_stop_get_no_error_and_no_truncated_answer() {
    const CLIENTS: usize = 16;
    let (mut run, address) = http("1s", "3s");
    let answered = Arc::new(AtomicUsize::new(0));
    let (first, firsts) = mpsc::channel();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (address, first, answered) = (address.clone(), first.clone(), answered.clone());
            std::thread::spawn(move || client(&address, first, &answered))
        })
        .collect();
    // Every client has been answered at least once: the load is on.
    for _ in 0..CLIENTS {
        firsts
            .recv_timeout(PATIENCE)
            .expect("a client was never answered");
    }
    run.signal(Signal::Term);
    let at_signal = answered.load(SeqCst);
    run.wait_for(event("listener-closed"), PATIENCE);
    let at_close = answered.load(SeqCst);
    let tallies: Vec<Tally> = clients
        .into_iter()
        .map(|c| c.join().expect("a client panicked"))
        .collect();
    assert_ends_by_sigterm_with_its_report(&mut run);
    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.failures).collect();
    let complete: usize = tallies.iter().map(|t| t.complete).sum();
    let unanswered: usize = tallies.iter().map(|t| t.unanswered).sum();
    eprintln!(
        "{complete} answered ({} during --drain-min), {unanswered} never taken, {} failed",
        at_close - at_signal,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "requests the server took failed: {failures:?}"
    );
    assert!(at_close > at_signal, "nothing was served during --drain-min");
}

/// DRAIN 3 for a stream: an open event stream gets its last `shutdown` event, then a
/// proper end. The second signal skips the 60 s floor: the stop is over in no time.
#[test]
fn an_event_stream_gets_its_shutdown_event_and_a_second_signal_skips_drain_min() {
    let (mut run, address) = http("60s", "60s");
    let mut stream = connect(&address).expect("connect");
    send(&mut stream, "/events").expect("send");
    let mut line = String::new();
    while !line.starts_with("data:") {
        line.clear();
        assert!(
            stream.read_line(&mut line).expect("an event") > 0,
            "the stream ended early"
        );
    }
    run.signal(Signal::Term);
    run.next_signal_event(Signal::Term);
    run.signal(Signal::Term);
    run.wait_for(event("drain-min-skipped"), PATIENCE);
    let mut rest = String::new();
    stream.read_to_string(&mut rest).expect("the stream to its end");
    // The last event, then the chunked body's proper end: nothing cut off.
    let last = rest
        .trim_end()
        .rsplit("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    if !rest.contains("event: shutdown\ndata: server stopping\n") || !rest.ends_with("0\r\n\r\n") {
        run.fail(&format!(
            "the stream ended without its shutdown event: {rest:?} (last: {last:?})"
        ));
    }
    assert_ends_by_sigterm_with_its_report(&mut run);
}

/// DRAIN 4: a 60-second request is cut at `--drain-max` after the signal, answered 503,
/// and named in `event=request-cut`.
#[test]
fn a_long_request_is_cut_at_drain_max_and_named() {
    let (mut run, address) = http("200ms", "1s");
    let mut connection = connect(&address).expect("connect");
    // Sent before the signal; taken then, or at the latest during --drain-min.
    send(&mut connection, "/work?ms=60000").expect("send");
    let client = std::thread::spawn(move || (answer(&mut connection), Instant::now()));
    run.signal(Signal::Term);
    let signalled = Instant::now();
    let cut = run.wait_for(event("request-cut"), PATIENCE);
    let (answer, answered_at) = client.join().expect("the client panicked");
    let waited = answered_at.duration_since(signalled);
    if cut.str("path") != Some("/work?ms=60000") || cut.int("ran_ms").is_none() {
        run.fail(&format!(
            "the cut must name the request and its time: {}",
            cut.raw
        ));
    }
    if !matches!(answer, Answer::Complete { status: 503, .. }) {
        run.fail(&format!("the cut request was answered {answer:?}"));
    }
    if waited < Duration::from_millis(900) || waited > Duration::from_secs(10) {
        run.fail(&format!("cut {waited:?} after the signal, not at --drain-max 1s"));
    }
    assert_ends_by_sigterm_with_its_report(&mut run);
}

/// The server's own stop deadline: a client that never finishes sending its request holds
/// its connection past any cut (hyper waits for the headers); at `--drain-max` + 1 s the
/// runner gives the server up, marks it failed, and the stop report names it `cut`.
#[test]
fn a_connection_stuck_mid_request_is_given_up_at_the_servers_own_deadline() {
    let (mut run, address) = http("200ms", "1s");
    let mut stalled = connect(&address).expect("connect");
    // Taken while running, or at the latest during --drain-min; its headers never end.
    let partial = b"GET /work?ms=1 HTTP/1.1\r\nHost: test\r\n";
    stalled.get_mut().write_all(partial).expect("send");
    run.signal(Signal::Term);
    let report = assert_ends_by_sigterm_with_its_report(&mut run);
    let cut = report
        .str("components")
        .is_some_and(|c| c.starts_with("HttpServer cut "));
    if !cut || report.str("timed_out") != Some("HttpServer") {
        run.fail(&format!("the report must name the server cut: {}", report.raw));
    }
    let failed = run.all(&phase("HttpServer", "failed"));
    if !failed
        .iter()
        .any(|e| e.str("cause").is_some_and(|c| c.contains("stop deadline (2s)")))
    {
        run.fail("the server's failure must name its stop deadline");
    }
    drop(stalled);
}

/// A drain that cannot be kept (a floor above its ceiling, a ceiling past an hour) is a
/// bad command line: exit 2 with clap's message, nothing started.
#[test]
fn an_impossible_drain_is_refused_with_exit_2() {
    for (args, message) in [
        (
            ["--drain-min", "2s", "--drain-max", "1s"],
            "--drain-min must not exceed --drain-max",
        ),
        (
            ["--drain-min", "1s", "--drain-max", "2h"],
            "--drain-max must not exceed 1h",
        ),
    ] {
        let output = std::process::Command::new(example("http"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run the example");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
