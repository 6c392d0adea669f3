//! A short-lived cache of `auth_query` answers, so a burst of logins for one user costs one
//! query. Entries expire after [`TTL`]; a RELOAD empties the cache.
//!
//! Invariants: secrets are never logged (`Debug` shows only the entry count); the mutex is held
//! for map operations only, never across an `.await`.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::config::Secret;

/// How long an answer is reused.
pub const TTL: Duration = Duration::from_secs(30);

/// (auth database, user).
type Key = (String, String);
/// When it was fetched, and the secret (`None`: no such user).
type Entry = (Instant, Option<Secret>);

/// Recent answers by (auth database, user).
#[derive(Default)]
pub struct AuthCache(Mutex<HashMap<Key, Entry>>);

impl AuthCache {
    /// A fresh cached answer: `Some(None)` means "known not to exist".
    pub fn get(&self, db: &str, user: &str) -> Option<Option<Secret>> {
        let map = self.0.lock();
        map.get(&(db.to_owned(), user.to_owned()))
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, secret)| secret.clone())
    }

    /// Stores an answer, dropping expired ones.
    pub fn put(&self, db: &str, user: &str, secret: Option<Secret>) {
        let mut map = self.0.lock();
        map.retain(|_, (at, _)| at.elapsed() < TTL);
        map.insert((db.to_owned(), user.to_owned()), (Instant::now(), secret));
    }

    /// Forgets everything (reload).
    pub fn clear(&self) {
        self.0.lock().clear();
    }
}

impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthCache({} entries)", self.0.lock().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_kept_and_cleared() {
        let cache = AuthCache::default();
        cache.put("db", "u", Some(Secret::Plain("pw".into())));
        cache.put("db", "ghost", None);
        assert_eq!(cache.get("db", "u"), Some(Some(Secret::Plain("pw".into()))));
        assert_eq!(cache.get("db", "ghost"), Some(None));
        assert_eq!(cache.get("other", "u"), None);
        cache.clear();
        assert_eq!(cache.get("db", "u"), None);
        assert!(!format!("{cache:?}").contains("pw"));
    }
}
