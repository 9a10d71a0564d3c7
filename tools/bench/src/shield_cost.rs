//! The shield's cost: one `let g = shield.hold(); drop(g);`, in nanoseconds.
//!
//! A plain timed loop, no harness: every thread repeats enter+leave pairs for the same
//! wall-clock window, many windows, the median reported (criterion would add a dependency
//! and minutes for a number this simple). Each thread reads its own CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`), so the figure is CPU time per pair on the thread that did
//! it: with 4 threads on 2 cores a wall clock would also count the time a thread sat
//! descheduled, which is not the shield's cost.
//!
//! The contended case is 4 threads entering and leaving the *same* shield at once, so its
//! counters' cache line bounces between the cores. "At once" is the catch on a small busy
//! machine: a fixed iteration count can finish inside one time slice, before the other
//! threads ever run, and then measures no contention at all. So the threads run for a
//! shared window, not a count, and the report gives their measured *overlap* (CPU time of
//! all threads over the window: 2.0 means both cores were busy with them throughout).
//!
//! The floor is the least any shared "held" counter can cost: a `fetch_add` and a
//! `fetch_sub` on one shared atomic, under the same threads and clocks.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use graceful::Shield;

/// Per window, ns per enter+leave (CPU time of the doing thread, averaged over threads).
pub struct Costs {
    /// `Shield`, one thread.
    pub uncontended: Vec<f64>,
    /// `Shield`, 4 threads at once on the same shield.
    pub contended: Vec<f64>,
    /// The bare atomic pair, one thread.
    pub floor_uncontended: Vec<f64>,
    /// The bare atomic pair, 4 threads at once on the same counter.
    pub floor_contended: Vec<f64>,
    /// Per contended `Shield` window: the threads' CPU time over the window's wall time.
    pub overlap: Vec<f64>,
}

/// The thread count of the contended case.
pub const THREADS: usize = 4;
/// Pairs between two looks at the stop flag: keeps the flag out of the measured cost.
const BATCH: u64 = 1024;

/// Runs `windows` rounds of the four cases, interleaved, each case for `window`.
pub fn measure(windows: usize, window: Duration) -> Costs {
    let shield = Shield::new();
    let counter = AtomicUsize::new(0);
    let shield_pair = || {
        let guard = shield.hold();
        drop(std::hint::black_box(guard));
    };
    let floor_pair = || {
        std::hint::black_box(&counter).fetch_add(1, SeqCst);
        std::hint::black_box(&counter).fetch_sub(1, SeqCst);
    };
    // One untimed round: page faults, thread creation and frequency ramps stay out.
    per_pair_ns(THREADS, window / 4, &shield_pair);
    let mut costs = Costs {
        uncontended: Vec::new(),
        contended: Vec::new(),
        floor_uncontended: Vec::new(),
        floor_contended: Vec::new(),
        overlap: Vec::new(),
    };
    for _ in 0..windows {
        costs.uncontended.push(per_pair_ns(1, window, &shield_pair).0);
        costs
            .floor_uncontended
            .push(per_pair_ns(1, window, &floor_pair).0);
        let (ns, overlap) = per_pair_ns(THREADS, window, &shield_pair);
        costs.contended.push(ns);
        costs.overlap.push(overlap);
        costs
            .floor_contended
            .push(per_pair_ns(THREADS, window, &floor_pair).0);
    }
    assert!(!shield.is_held(), "every guard was dropped");
    costs
}

/// `threads` threads run `pair` from a common start until `window` has passed; returns
/// the mean over the threads of each one's CPU ns per pair, and the overlap (the threads'
/// CPU time summed, over the window).
fn per_pair_ns(threads: usize, window: Duration, pair: &(impl Fn() + Sync)) -> (f64, f64) {
    let start = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    let per_thread: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (start, stop) = (&start, &stop);
                scope.spawn(move || {
                    start.wait();
                    let cpu = thread_cpu_ns();
                    let mut pairs = 0u64;
                    while !stop.load(Relaxed) {
                        for _ in 0..BATCH {
                            pair();
                        }
                        pairs += BATCH;
                    }
                    (thread_cpu_ns().saturating_sub(cpu), pairs)
                })
            })
            .collect();
        start.wait();
        std::thread::sleep(window);
        stop.store(true, Relaxed);
        workers.into_iter().map(|w| w.join().unwrap_or((0, 0))).collect()
    });
    let ns_per_pair: Vec<f64> = per_thread
        .iter()
        .filter(|&&(_, pairs)| pairs > 0)
        .map(|&(cpu, pairs)| cpu as f64 / pairs as f64)
        .collect();
    let mean = ns_per_pair.iter().sum::<f64>() / ns_per_pair.len().max(1) as f64;
    let busy: u64 = per_thread.iter().map(|&(cpu, _)| cpu).sum();
    (mean, busy as f64 / window.as_nanos() as f64)
}

/// This thread's CPU time, in ns (0 if the clock is unavailable).
fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a live, writable timespec; the clock id is a constant of libc.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } == 0;
    if !ok {
        return 0;
    }
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}
