//! Which pooler-named prepared statements exist on one server connection, bounded by
//! `max_prepared_statements` with least-recently-used eviction.

use std::collections::HashMap;

/// Prepared statements on one server, by statement id.
#[derive(Debug, Default)]
pub struct PreparedSet {
    last_use: HashMap<u64, u64>,
    tick: u64,
}

impl PreparedSet {
    /// Whether the statement exists on the server; marks it used.
    pub fn touch(&mut self, id: u64) -> bool {
        self.tick += 1;
        match self.last_use.get_mut(&id) {
            Some(t) => {
                *t = self.tick;
                true
            }
            None => false,
        }
    }

    /// Records that the statement is being prepared; the caller made room with `evict_for`.
    pub fn insert(&mut self, id: u64) {
        self.tick += 1;
        self.last_use.insert(id, self.tick);
    }

    /// Makes room for one more statement: removes and returns the least recently used one while
    /// the set holds `capacity` or more.
    pub fn evict_for(&mut self, capacity: usize) -> Option<u64> {
        if self.last_use.len() < capacity.max(1) {
            return None;
        }
        let oldest = self
            .last_use
            .iter()
            .min_by_key(|(_, t)| **t)
            .map(|(id, _)| *id)?;
        self.last_use.remove(&oldest);
        Some(oldest)
    }

    /// Records again a statement whose eviction Close the server skipped (after an error): it is
    /// still there. It becomes the least recently used, so it is the next to go.
    pub fn restore(&mut self, id: u64) {
        self.last_use.entry(id).or_insert(0);
    }

    /// Forgets a statement (its Parse failed or was never executed).
    pub fn remove(&mut self, id: u64) {
        self.last_use.remove(&id);
    }

    /// Forgets everything (after DISCARD ALL / DEALLOCATE ALL or a reset).
    pub fn clear(&mut self) {
        self.last_use.clear();
    }

    /// Number of statements prepared on the server.
    pub fn len(&self) -> usize {
        self.last_use.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.last_use.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut set = PreparedSet::default();
        assert_eq!(set.evict_for(2), None);
        set.insert(1);
        assert_eq!(set.evict_for(2), None);
        set.insert(2);
        assert!(set.touch(1));
        assert_eq!(set.evict_for(2), Some(2));
        set.insert(3);
        assert!(set.touch(1) && set.touch(3) && !set.touch(2));
        set.remove(3);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn restored_statement_goes_first_and_excess_is_evicted() {
        let mut set = PreparedSet::default();
        set.insert(1);
        set.insert(2);
        assert_eq!(set.evict_for(2), Some(1));
        set.insert(3);
        // The Close of 1 was skipped: the server has three statements, one over capacity.
        set.restore(1);
        assert_eq!(set.len(), 3);
        assert_eq!(set.evict_for(2), Some(1));
        assert_eq!(set.evict_for(2), Some(2));
        assert_eq!(set.evict_for(2), None);
        assert!(set.touch(3));
    }
}
