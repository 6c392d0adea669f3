//! Which runtime worker the current thread is.
//!
//! Owns: the worker index of the calling thread and the number of workers. State kept per
//! worker (a pool's server affinity, statistics shards, settings snapshots) is indexed by
//! [`current`]. Does not own the runtimes themselves (`main.rs` and `app` start them).
//!
//! Invariants: `current() < count()` on every thread; a thread that is not a worker (the main
//! thread, a test's runtime, a blocking-pool thread) is worker 0, so per-worker state always has
//! a valid slot. The count is set once, before any worker starts.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most workers per-worker state is sized for; more threads share slots modulo this.
pub const MAX_WORKERS: usize = 64;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

static COUNT: AtomicUsize = AtomicUsize::new(1);

/// The index of the worker running on this thread (0 outside any worker).
#[inline]
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// How many workers there are (at least 1, at most [`MAX_WORKERS`]).
#[inline]
pub fn count() -> usize {
    COUNT.load(Ordering::Relaxed)
}

/// Sets the number of workers; called once before the workers start.
pub fn set_count(n: usize) {
    COUNT.store(n.clamp(1, MAX_WORKERS), Ordering::Relaxed);
}

/// Marks the calling thread as worker `index` (taken modulo [`count`]).
pub fn enter(index: usize) {
    INDEX.with(|cell| cell.set(index % count()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_is_no_worker_is_worker_zero_and_indices_stay_below_the_count() {
        assert_eq!(std::thread::spawn(current).join().unwrap(), 0);
        set_count(2);
        let seen = std::thread::spawn(|| {
            enter(5);
            current()
        })
        .join()
        .unwrap();
        assert_eq!(seen, 1);
        set_count(1);
    }
}
