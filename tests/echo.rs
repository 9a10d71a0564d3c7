//! The echo example, which embeds the library's edge, through its real binary: a drain
//! that cannot finish is still ended by the third signal, as in every program of the suite.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use support::{PATIENCE, Run, Signal, event, example, fields, phase};

/// A client that sends and never reads: the server's echoes fill the socket, so its
/// connection cannot drain. Two more Ctrl+C force the exit, which ends by SIGINT.
#[test]
fn a_stuck_drain_is_forced_out_by_the_third_signal() {
    let mut run = Run::spawn(&example("echo"), &["--listen", "127.0.0.1:0", "--drain", "60s"]);
    let listening = run.wait_for(event("listening"), PATIENCE);
    let address = listening
        .str("address")
        .expect("the address listened on")
        .to_owned();
    let mut client = TcpStream::connect(&address).expect("connect to the example");
    client
        .set_write_timeout(Some(Duration::from_millis(200)))
        .expect("a write timeout");
    // Write until the kernel's buffers both ways are full: the server is then stuck
    // writing an echo nobody reads.
    let line = [b'x'; 1023].iter().chain(b"\n").copied().collect::<Vec<u8>>();
    while client.write_all(&line).is_ok() {}
    run.signal(Signal::Int);
    run.wait_for(event("listener-closed"), PATIENCE);
    run.signal(Signal::Int);
    run.next_signal_event(Signal::Int);
    run.signal(Signal::Int);
    run.wait_exit();
    run.assert_ended_by(Signal::Int);
    run.assert_order(&[phase("EchoServer", "stopping"), phase("EchoServer", "failed")]);
    assert!(
        !run.all(&fields(&[("action", "forced")])).is_empty(),
        "no forced exit logged"
    );
    run.assert_nothing_left();
    drop(client);
}
