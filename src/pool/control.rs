//! Pool-level operations behind the console's control commands: PAUSE / RESUME, DISABLE /
//! ENABLE, RECONNECT, KILL, KILL_CLIENT, and the counts WAIT_CLOSE and PAUSE wait on.
//!
//! Owns: the per-database flags ([`DbFlags`]: paused, disabled) and the global pause flag,
//! shared by every pool of a database through [`PoolControl`] and surviving reloads (they are
//! keyed by database name in the registry, like the connection limits); the error texts of these
//! commands, worded as PgBouncer's.
//! Does not: decide who may run them (the console does) or wait (callers poll the counts).
//! Invariants: while a pool is paused it hands out no server, opens none, and closes every server
//! that comes back or sits idle; waiting clients stay queued (and counted in `cl_waiting`) until
//! RESUME. A flag is read with one relaxed atomic load per checkout.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::{CloseReason, Pool, Registry};
use crate::server::ServerConn;
use crate::stats::conns::{ConnDirectory, KillReason, Side};

/// Flags of one database.
#[derive(Debug, Default)]
pub struct DbFlags {
    paused: AtomicBool,
    disabled: AtomicBool,
}

impl DbFlags {
    /// PAUSE db / KILL db in effect.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// DISABLE db in effect.
    pub fn disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }
}

/// What a pool shares with the registry for control and the connection directory.
#[derive(Debug, Clone)]
pub struct PoolControl {
    /// This pool's database flags.
    pub db: Arc<DbFlags>,
    /// The global PAUSE flag.
    pub global_pause: Arc<AtomicBool>,
    /// The connection directory (SHOW CLIENTS / SERVERS).
    pub conns: Arc<ConnDirectory>,
}

impl PoolControl {
    /// Whether the pool must not hand out servers now.
    pub fn paused(&self) -> bool {
        self.global_pause.load(Ordering::Relaxed) || self.db.paused()
    }
}

/// A refused control operation, with PgBouncer's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlOpError {
    /// PAUSE or KILL while the whole pooler is paused.
    #[error("already suspended/paused")]
    AlreadyPaused,
    /// Unknown database.
    #[error("no such database: {0}")]
    NoSuchDatabase(String),
    /// RESUME without a database while not paused.
    #[error("pooler is not paused/suspended")]
    NotPaused,
    /// RESUME of a database that is not paused.
    #[error("database {0} is not paused")]
    DatabaseNotPaused(String),
    /// KILL_CLIENT of an unknown id.
    #[error("client not found")]
    ClientNotFound,
}

/// Per-database flags, keyed by name.
#[derive(Debug, Default)]
pub(super) struct FlagMap {
    map: Mutex<HashMap<String, Arc<DbFlags>>>,
    pub(super) global_pause: Arc<AtomicBool>,
}

impl FlagMap {
    pub(super) fn get(&self, db: &str) -> Arc<DbFlags> {
        Arc::clone(self.map.lock().entry(db.to_owned()).or_default())
    }
}

impl Registry {
    /// Whether `db` is a database clients may use (configured, or served by the `*` fallback).
    pub fn check_database(&self, db: &str) -> Result<(), ControlOpError> {
        self.database(db)
            .map(drop)
            .ok_or_else(|| ControlOpError::NoSuchDatabase(db.to_owned()))
    }

    fn pools_of(&self, db: Option<&str>) -> Vec<Arc<Pool>> {
        let mut pools = self.pools();
        pools.retain(|p| db.is_none_or(|d| p.database == d));
        pools
    }

    /// The flags of a database (created on first use).
    pub fn db_flags(&self, db: &str) -> Arc<DbFlags> {
        self.flags.get(db)
    }

    /// Whether a global PAUSE is in effect.
    pub fn globally_paused(&self) -> bool {
        self.flags.global_pause.load(Ordering::Relaxed)
    }

    /// PAUSE: stop handing out servers of `db` (or of every database) and close them as they
    /// come back.
    pub fn pause(&self, db: Option<&str>) -> Result<(), ControlOpError> {
        if self.globally_paused() {
            return Err(ControlOpError::AlreadyPaused);
        }
        match db {
            None => self.flags.global_pause.store(true, Ordering::Relaxed),
            Some(name) => {
                self.check_database(name)?;
                self.db_flags(name).paused.store(true, Ordering::Relaxed);
            }
        }
        for pool in self.pools_of(db) {
            pool.close_idle(CloseReason::Paused);
        }
        Ok(())
    }

    /// RESUME: undo PAUSE (or KILL for a database) and serve the clients that queued meanwhile.
    pub fn resume(&self, db: Option<&str>) -> Result<(), ControlOpError> {
        match db {
            None => {
                if !self.flags.global_pause.swap(false, Ordering::Relaxed) {
                    return Err(ControlOpError::NotPaused);
                }
            }
            Some(name) => {
                self.check_database(name)?;
                if !self.db_flags(name).paused.swap(false, Ordering::Relaxed) {
                    return Err(ControlOpError::DatabaseNotPaused(name.to_owned()));
                }
            }
        }
        for pool in self.pools_of(db) {
            pool.wake();
        }
        Ok(())
    }

    /// DISABLE (`true`) or ENABLE (`false`) new client logins to `db`.
    pub fn set_disabled(&self, db: &str, disabled: bool) -> Result<(), ControlOpError> {
        self.check_database(db)?;
        self.db_flags(db)
            .disabled
            .store(disabled, Ordering::Relaxed);
        Ok(())
    }

    /// RECONNECT: every server of `db` (or of all) is closed instead of reused once released.
    pub fn reconnect(&self, db: Option<&str>) -> Result<(), ControlOpError> {
        if let Some(name) = db {
            self.check_database(name)?;
        }
        for info in self.conns.all() {
            if info.side == Side::Server && db.is_none_or(|d| info.database == d) {
                info.set_close_needed();
            }
        }
        for pool in self.pools_of(db) {
            pool.forget_welcome();
            pool.close_idle_if(
                |conn| conn.entry.as_ref().is_some_and(|e| e.close_needed()),
                CloseReason::Obsolete,
            );
        }
        Ok(())
    }

    /// KILL: pause `db` (or every database) and disconnect its clients and servers now.
    pub fn kill(&self, db: Option<&str>) -> Result<(), ControlOpError> {
        if self.globally_paused() {
            return Err(ControlOpError::AlreadyPaused);
        }
        let names: Vec<String> = match db {
            Some(name) => {
                self.check_database(name)?;
                vec![name.to_owned()]
            }
            None => self.pools().iter().map(|p| p.database.clone()).collect(),
        };
        for name in &names {
            self.db_flags(name).paused.store(true, Ordering::Relaxed);
        }
        for info in self.conns.all() {
            if info.side == Side::Client && names.contains(&info.database) {
                info.kill(KillReason::DatabaseKilled);
            }
        }
        for pool in self.pools_of(db) {
            pool.close_idle(CloseReason::DatabaseChanged);
        }
        Ok(())
    }

    /// KILL_CLIENT: disconnect one client (its server is closed, never reused).
    pub fn kill_client(&self, id: u64) -> Result<(), ControlOpError> {
        match self.conns.get(id) {
            Some(info) if info.side == Side::Client => {
                info.kill(KillReason::AdminForced);
                Ok(())
            }
            _ => Err(ControlOpError::ClientNotFound),
        }
    }

    /// Servers open (in any state) for `db`, or for every database.
    pub fn open_servers(&self, db: Option<&str>) -> usize {
        self.pools_of(db)
            .iter()
            .map(|p| {
                let s = p.snapshot();
                s.sv_active + s.sv_idle + s.sv_used + s.sv_tested + s.sv_login
            })
            .sum()
    }

    /// Servers of `db` (or of all) still marked to be closed.
    pub fn close_needed_servers(&self, db: Option<&str>) -> usize {
        self.conns
            .all()
            .iter()
            .filter(|c| c.side == Side::Server && c.close_needed())
            .filter(|c| db.is_none_or(|d| c.database == d))
            .count()
    }
}

impl Pool {
    /// Closes every idle server.
    pub(super) fn close_idle(&self, reason: CloseReason) {
        self.close_idle_if(|_| true, reason);
    }

    /// Closes the idle servers `pred` selects.
    pub(super) fn close_idle_if(&self, pred: impl Fn(&ServerConn) -> bool, reason: CloseReason) {
        let closing = {
            let mut inner = self.inner.lock();
            let (close, keep): (VecDeque<Box<ServerConn>>, VecDeque<Box<ServerConn>>) =
                inner.idle.drain(..).partition(|c| pred(c));
            inner.idle = keep;
            close
        };
        for conn in closing {
            self.forget(conn, reason);
        }
    }

    /// After RESUME: open servers for the clients that queued while paused.
    pub(super) fn wake(self: &Arc<Self>) {
        self.launch(&mut self.inner.lock(), false);
    }

    /// Whether this pool must not hand out servers now.
    pub fn paused(&self) -> bool {
        self.control.paused()
    }
}
