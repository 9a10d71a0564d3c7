//! Panics: one log line and exit status 1, never a backtrace on stderr and never status 101.
//!
//! **Problem.** Rust's default panic hook prints plain text to stderr (breaking a JSON log
//! stream), and a panic that unwinds out of `main` ends the process with status 101, which
//! no shell script or supervisor of this suite expects. A panic in a service's start or
//! stop would unwind through the runner and skip the ordered stop of everything else.
//!
//! **Fix.** [`install_hook`] replaces the hook with one that logs the panic as one error
//! event (`event=panic`, with where and which thread) and remembers it, so the run ends
//! with status 1 ([`happened`]). [`CatchPanic`] turns a panic inside a future into an
//! error, so the runner can mark that service `failed` and go on stopping the others.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Context, Poll};

static PANICKED: AtomicBool = AtomicBool::new(false);

/// Replaces the panic hook: a panic becomes one `event=panic` error line. Before logging
/// is set up (and in a process without it) the default hook still prints.
pub fn install_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, SeqCst);
        if !crate::logging::is_initialised() {
            return default_hook(info);
        }
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = payload_text(info.payload());
        tracing::error!(event = "panic", location, "panic in thread {thread}: {message}");
    }));
}

/// Whether any thread of this process panicked: the run then exits 1.
pub fn happened() -> bool {
    PANICKED.load(SeqCst)
}

/// The text a panic was raised with, when it was text.
pub fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a value that is not text)".into())
}

/// A future whose panic becomes `Err(message)` instead of unwinding into its caller.
pub struct CatchPanic<F>(pub F);

impl<F: Future + Unpin> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        // The future is not polled again after a panic, so no broken state is observed.
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload_text(payload.as_ref()))),
        }
    }
}
