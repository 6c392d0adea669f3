//! A shared cap on server connections (`max_db_connections`, `max_user_connections`): a counter
//! several pools draw from.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A counter with a maximum; 0 means unlimited.
#[derive(Debug, Default)]
pub struct ConnLimit {
    max: AtomicUsize,
    current: AtomicUsize,
}

impl ConnLimit {
    /// A limit of `max` (0 = unlimited).
    pub fn new(max: usize) -> Self {
        Self {
            max: AtomicUsize::new(max),
            current: AtomicUsize::new(0),
        }
    }

    /// Changes the maximum (on reload); connections above it are not closed, only new ones refused.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// The configured maximum (0 = unlimited).
    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// Connections currently counted.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// Takes one unit if under the maximum.
    pub fn try_acquire(&self) -> bool {
        let max = self.max();
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |c| {
                (max == 0 || c < max).then_some(c + 1)
            })
            .is_ok()
    }

    /// Gives one unit back.
    pub fn release(&self) {
        let _ = self
            .current
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |c| c.checked_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_releases() {
        let l = ConnLimit::new(2);
        assert!(l.try_acquire() && l.try_acquire());
        assert!(!l.try_acquire());
        l.release();
        assert!(l.try_acquire());
        let unlimited = ConnLimit::new(0);
        assert!((0..100).all(|_| unlimited.try_acquire()));
    }
}
