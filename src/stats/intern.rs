//! Shared copies of values that many connections hold alike: parameter values, parameter sets,
//! `application_name`, addresses, TLS summaries. Ten thousand clients of one application hold
//! one copy of each, not ten thousand.
//!
//! Owns: [`Interner`] (a set of `Arc`s, looked up by value) and the process-wide string table
//! behind [`intern_str`].
//!
//! Does not: decide what is shared (the callers do) or free a value still held: an entry leaves
//! the table only when the table holds its last reference.
//!
//! Invariants: the table never grows past twice the number of distinct values still held by
//! someone (plus a floor of [`MIN_PURGE`]): when it reaches its purge mark, entries nobody else
//! holds are dropped, and the mark becomes twice what is left, so the sweeps cost O(1) amortised
//! per insert. Values a client controls (`application_name`, `search_path`) are hashed with std's
//! keyed SipHash, so nobody can aim collisions at the table. Used at login, on ParameterStatus
//! and on SET, never per message.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

/// The table size below which no sweep happens.
pub const MIN_PURGE: usize = 1024;

/// A set of shared values, looked up by value.
#[derive(Debug)]
pub struct Interner<T: ?Sized + Eq + Hash> {
    set: HashSet<Arc<T>>,
    purge_at: usize,
}

impl<T: ?Sized + Eq + Hash> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            set: HashSet::new(),
            purge_at: MIN_PURGE,
        }
    }
}

impl<T: ?Sized + Eq + Hash> Interner<T> {
    /// The shared copy equal to `value`, if there is one.
    pub fn get<Q>(&self, value: &Q) -> Option<Arc<T>>
    where
        Arc<T>: Borrow<Q>,
        Q: ?Sized + Eq + Hash,
    {
        self.set.get(value).cloned()
    }

    /// The shared copy equal to `value`: the one already in the table, or `value` itself, which
    /// is added.
    pub fn share(&mut self, value: Arc<T>) -> Arc<T> {
        if let Some(found) = self.set.get(&value) {
            return Arc::clone(found);
        }
        self.insert(Arc::clone(&value));
        value
    }

    fn insert(&mut self, value: Arc<T>) {
        if self.set.len() >= self.purge_at {
            self.set.retain(|v| Arc::strong_count(v) > 1);
            self.purge_at = (self.set.len() * 2).max(MIN_PURGE);
        }
        self.set.insert(value);
    }

    /// Entries in the table (held by someone or not yet swept).
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

impl Interner<str> {
    /// The shared copy of `value`, made on first use.
    pub fn intern(&mut self, value: &str) -> Arc<str> {
        if let Some(found) = self.set.get(value) {
            return Arc::clone(found);
        }
        let shared: Arc<str> = Arc::from(value);
        self.insert(Arc::clone(&shared));
        shared
    }
}

static STRINGS: LazyLock<Mutex<Interner<str>>> = LazyLock::new(Mutex::default);

/// The process-wide shared copy of `value`.
pub fn intern_str(value: &str) -> Arc<str> {
    STRINGS.lock().intern(value)
}

/// The shared empty string (no allocation after the first call).
pub fn empty_str() -> Arc<str> {
    static EMPTY: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));
    Arc::clone(&EMPTY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy() {
        let mut table = Interner::<str>::default();
        let a = table.intern("psql");
        let b = table.intern(&String::from("psql"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(table.len(), 1);
        let c = table.share(Arc::from("psql"));
        assert!(Arc::ptr_eq(&a, &c));
        assert_eq!(table.get("psql").as_deref(), Some("psql"));
        assert!(table.get("other").is_none());
    }

    #[test]
    fn values_nobody_holds_are_swept_and_the_table_stays_bounded() {
        let mut table = Interner::<str>::default();
        let kept = table.intern("kept");
        // Client-chosen values that come and go: the table never holds more than twice what is
        // live, whatever the number of distinct values seen.
        for i in 0..20 * MIN_PURGE {
            drop(table.intern(&format!("app-{i}")));
            assert!(table.len() <= MIN_PURGE + 1, "{} entries", table.len());
        }
        assert!(Arc::ptr_eq(&kept, &table.intern("kept")));
        // Values still held are never swept.
        let held: Vec<Arc<str>> = (0..3 * MIN_PURGE)
            .map(|i| table.intern(&format!("held-{i}")))
            .collect();
        for v in &held {
            assert!(Arc::ptr_eq(v, &table.intern(v)));
        }
        assert!(table.len() <= 2 * (held.len() + 1) + MIN_PURGE);
    }
}
