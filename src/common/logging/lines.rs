//! A child's output cut into whole lines, for [`forward`](super::forward) or any line
//! protocol read as its bytes arrive.
//!
//! A worker killed in the middle of a write to a shared stderr leaves a fragment that the
//! next line of another process is glued onto: a JSON reader loses exactly the line that
//! reports the death. So a worker's stderr is a pipe to its parent, which cuts it into whole
//! lines for `forward`. A fragment left at the end (the worker died mid-line), or a line
//! over the bound, is never passed on: its length comes back, for the caller to report.

/// Cuts a byte stream into lines of at most `max` bytes.
pub struct WholeLines {
    max: usize,
    partial: Vec<u8>,
    /// Dropping the rest of an overlong line, up to its newline.
    skipping: bool,
}

impl WholeLines {
    /// Lines of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            partial: Vec::new(),
            skipping: false,
        }
    }

    /// Takes in `bytes`; calls `line` with each complete line (without its newline).
    /// Returns the lengths of the overlong lines dropped on the way (as much of each as was
    /// seen).
    pub fn push(&mut self, mut bytes: &[u8], mut line: impl FnMut(&[u8])) -> Vec<usize> {
        let mut dropped = Vec::new();
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|&b| b == b'\n');
            let (chunk, rest) = match newline {
                Some(at) => (&bytes[..at], Some(&bytes[at + 1..])),
                None => (bytes, None),
            };
            if !self.skipping {
                if self.partial.len() + chunk.len() > self.max {
                    dropped.push(self.partial.len() + chunk.len());
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
