//! `graceful::logging::WholeLines`, as a parent reading a worker's stderr uses it: whole
//! lines only, however the bytes arrive; a cut-off last line and an overlong one are never
//! passed on, and their lengths come back.

use graceful::logging::WholeLines;

const MAX_LINE: usize = 64 * 1024;

fn feed(lines: &mut WholeLines, bytes: &[u8], out: &mut Vec<String>) -> Vec<usize> {
    lines.push(bytes, |l| out.push(String::from_utf8_lossy(l).into_owned()))
}

#[test]
fn whole_lines_only_however_the_bytes_arrive() {
    let mut lines = WholeLines::new(MAX_LINE);
    let mut out = Vec::new();
    feed(&mut lines, b"one\ntw", &mut out);
    feed(&mut lines, b"o\n", &mut out);
    feed(&mut lines, b"", &mut out);
    feed(&mut lines, b"\nthree\nfour", &mut out);
    assert_eq!(out, ["one", "two", "", "three"]);
    assert_eq!(
        lines.finish(),
        Some(4),
        "the cut-off `four` is reported, not forwarded"
    );
    assert_eq!(lines.finish(), None);
}

#[test]
fn an_overlong_line_is_dropped_up_to_its_newline() {
    let mut lines = WholeLines::new(MAX_LINE);
    let mut out = Vec::new();
    let long = vec![b'x'; MAX_LINE];
    assert!(
        feed(&mut lines, &long, &mut out).is_empty(),
        "exactly MAX_LINE fits"
    );
    assert_eq!(feed(&mut lines, b"yy", &mut out), [MAX_LINE + 2]);
    feed(&mut lines, b"zz\nnext\n", &mut out);
    assert_eq!(out, ["next"]);
    assert_eq!(lines.finish(), None);
}
