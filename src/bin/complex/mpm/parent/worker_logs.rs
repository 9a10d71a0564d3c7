//! A worker's log lines, carried whole to the main process's one log writer.
//!
//! A worker killed in the middle of a write to a shared stderr leaves a fragment that the
//! next line of another process is glued onto: a JSON reader loses exactly the line that
//! reports the death. So a worker's stderr is a pipe to its parent, which cuts it into whole
//! lines ([`Lines`]) for `graceful::logging::forward`. A fragment left at the end (the worker
//! died mid-line), or a line over [`MAX_LINE`], is dropped and reported (`truncated`). Its
//! reports on stdout are cut by the same [`Lines`], with the protocol's bound.

/// The longest line carried; anything longer is dropped (worker lines are far shorter).
pub const MAX_LINE: usize = 64 * 1024;

/// What [`Lines::push`] found besides whole lines.
#[derive(Debug, PartialEq, Eq)]
pub enum Dropped {
    /// A line longer than the bound; this many bytes of it were dropped so far.
    TooLong(usize),
}

/// Cuts a byte stream into lines of at most `max` bytes.
pub struct Lines {
    max: usize,
    partial: Vec<u8>,
    /// Dropping the rest of an overlong line, up to its newline.
    skipping: bool,
}

impl Lines {
    /// Lines of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            partial: Vec::new(),
            skipping: false,
        }
    }

    /// Takes in `bytes`; calls `line` with each complete line (without its newline).
    /// Returns the overlong lines dropped on the way.
    pub fn push(&mut self, mut bytes: &[u8], mut line: impl FnMut(&[u8])) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|&b| b == b'\n');
            let (chunk, rest) = match newline {
                Some(at) => (&bytes[..at], Some(&bytes[at + 1..])),
                None => (bytes, None),
            };
            if !self.skipping {
                if self.partial.len() + chunk.len() > self.max {
                    dropped.push(Dropped::TooLong(self.partial.len() + chunk.len()));
                    self.partial.clear();
                    self.skipping = true;
                } else {
                    self.partial.extend_from_slice(chunk);
                }
            }
            match rest {
                Some(rest) => {
                    if !self.skipping {
                        line(&self.partial);
                    }
                    self.partial.clear();
                    self.skipping = false;
                    bytes = rest;
                }
                None => bytes = &[],
            }
        }
        dropped
    }

    /// At the end of the stream: the length of an unfinished last line (never forwarded),
    /// if there is one.
    pub fn finish(&mut self) -> Option<usize> {
        let cut = (!self.partial.is_empty()).then_some(self.partial.len());
        self.partial.clear();
        self.skipping = false;
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &mut Lines, bytes: &[u8], out: &mut Vec<String>) -> Vec<Dropped> {
        lines.push(bytes, |l| out.push(String::from_utf8_lossy(l).into_owned()))
    }

    #[test]
    fn whole_lines_only_however_the_bytes_arrive() {
        let mut lines = Lines::new(MAX_LINE);
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
        let mut lines = Lines::new(MAX_LINE);
        let mut out = Vec::new();
        let long = vec![b'x'; MAX_LINE];
        assert!(
            feed(&mut lines, &long, &mut out).is_empty(),
            "exactly MAX_LINE fits"
        );
        assert_eq!(
            feed(&mut lines, b"yy", &mut out),
            [Dropped::TooLong(MAX_LINE + 2)]
        );
        feed(&mut lines, b"zz\nnext\n", &mut out);
        assert_eq!(out, ["next"]);
        assert_eq!(lines.finish(), None);
    }
}
