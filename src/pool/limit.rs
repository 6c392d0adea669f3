//! Shared caps: on server connections (`max_db_connections`, `max_user_connections`), a counter
//! several pools draw from; on client connections (`max_db_client_connections`,
//! `max_user_client_connections`), a counter every client of a database or user holds a unit of
//! through a [`ClientAdmission`] for as long as it is connected.
//!
//! A server-side limit also knows the pools that draw from it, so that a pool held back by a
//! full limit can evict the longest-idle server of a sibling pool (PgBouncer's eviction), and
//! a busy pool is not starved by servers idling in another.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::Pool;

/// A counter with a maximum; 0 means unlimited.
#[derive(Debug, Default)]
pub struct ConnLimit {
    max: AtomicUsize,
    current: AtomicUsize,
    /// The pools whose servers count here (dropped pools are pruned as they are seen).
    members: Mutex<Vec<Weak<Pool>>>,
}

impl ConnLimit {
    /// A limit of `max` (0 = unlimited).
    pub fn new(max: usize) -> Self {
        Self {
            max: AtomicUsize::new(max),
            current: AtomicUsize::new(0),
            members: Mutex::new(Vec::new()),
        }
    }

    /// Records a pool whose servers count against this limit.
    pub(super) fn add_member(&self, pool: &Arc<Pool>) {
        let mut members = self.members.lock();
        members.retain(|w| w.strong_count() > 0);
        members.push(Arc::downgrade(pool));
    }

    /// Closes the longest-idle server among the other pools under this limit, to make room for
    /// `for_pool`; `false` when none of them has an idle server. Each pool is locked on its
    /// own, never two at once.
    pub(super) fn evict_idle(&self, for_pool: &Arc<Pool>, reason: super::CloseReason) -> bool {
        let members: Vec<Arc<Pool>> = self
            .members
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let oldest = members
            .iter()
            .filter(|p| !Arc::ptr_eq(p, for_pool))
            .filter_map(|p| p.oldest_idle().map(|at| (at, p)))
            .min_by_key(|(at, _)| *at);
        oldest.is_some_and(|(_, pool)| pool.evict_one_idle(reason))
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

/// A logged-in client's units of its database's and its user's client limits, given back when
/// the client leaves.
#[derive(Debug)]
pub struct ClientAdmission {
    db: std::sync::Arc<ConnLimit>,
    user: std::sync::Arc<ConnLimit>,
}

/// Which client limit refused a login (the setting's name, for the error text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientLimitHit {
    /// `max_db_client_connections`.
    Database,
    /// `max_user_client_connections`.
    User,
}

impl ClientLimitHit {
    /// The setting's name.
    pub fn setting(self) -> &'static str {
        match self {
            ClientLimitHit::Database => "max_db_client_connections",
            ClientLimitHit::User => "max_user_client_connections",
        }
    }
}

impl ClientAdmission {
    /// Takes a unit of both limits, or neither.
    pub fn take(
        db: std::sync::Arc<ConnLimit>,
        user: std::sync::Arc<ConnLimit>,
    ) -> Result<ClientAdmission, ClientLimitHit> {
        if !db.try_acquire() {
            return Err(ClientLimitHit::Database);
        }
        if !user.try_acquire() {
            db.release();
            return Err(ClientLimitHit::User);
        }
        Ok(ClientAdmission { db, user })
    }
}

impl ClientAdmission {
    /// Counts a unit of both limits without checking them (a client the limits exempt).
    pub fn counted(
        db: std::sync::Arc<ConnLimit>,
        user: std::sync::Arc<ConnLimit>,
    ) -> ClientAdmission {
        db.current.fetch_add(1, Ordering::AcqRel);
        user.current.fetch_add(1, Ordering::AcqRel);
        ClientAdmission { db, user }
    }
}

impl Drop for ClientAdmission {
    fn drop(&mut self) {
        self.db.release();
        self.user.release();
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

    #[test]
    fn an_admission_holds_both_units_or_none() {
        let db = std::sync::Arc::new(ConnLimit::new(2));
        let user = std::sync::Arc::new(ConnLimit::new(1));
        let first = ClientAdmission::take(db.clone(), user.clone()).unwrap();
        assert_eq!((db.current(), user.current()), (1, 1));
        // The user is full: the database unit taken first is given back.
        assert_eq!(
            ClientAdmission::take(db.clone(), user.clone()).unwrap_err(),
            ClientLimitHit::User
        );
        assert_eq!((db.current(), user.current()), (1, 1));
        drop(first);
        assert_eq!((db.current(), user.current()), (0, 0));
        db.set_max(1);
        let _held = ClientAdmission::take(db.clone(), user.clone()).unwrap();
        let other_user = std::sync::Arc::new(ConnLimit::new(0));
        assert_eq!(
            ClientAdmission::take(db.clone(), other_user).unwrap_err(),
            ClientLimitHit::Database
        );
    }
}
