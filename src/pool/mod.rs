//! Server connection pools, one per (database, user).
//!
//! Owns: the idle list (LIFO, or FIFO with `server_round_robin`), the FIFO queue of waiting
//! clients, the count of servers in each state, opening servers within `pool_size`,
//! `reserve_pool_size`, `max_db_connections` and `max_user_connections`, handing a released server
//! straight to the first waiting client, and the time-based duties of [`janitor`].
//!
//! Does not: know about clients beyond a count, or relay bytes. A client gets a server as a
//! [`PooledServer`] guard and gives it back through the guard, which decides whether it is clean.
//!
//! Invariants: the mutex is never held across an `.await`; when clients wait, the idle list is
//! empty. The counts SHOW POOLS reads (idle / checked out / connecting / tested) are kept under
//! the one mutex, but they are changed at many sites (`checkout.rs`, `janitor.rs`,
//! `control.rs`, `resize.rs`, here), and the state SHOW SERVERS prints is kept apart in the
//! connection directory, so the two can disagree: a server being rolled back or reset in the
//! background is `tested` in SHOW SERVERS and `sv_active` in SHOW POOLS.

mod checkout;
mod close;
pub mod control;
mod dedicated;
mod guard;
pub mod janitor;
mod limit;
pub mod policy;
pub mod registry;
mod resize;
mod settings;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::server::{ServerConn, ServerSpec};
use crate::stats::PoolStats;
use crate::stats::conn_log::LogPeer;

pub use close::CloseReason;
pub use control::{ControlOpError, DbFlags, PoolControl};
pub use dedicated::DedicatedError;
pub use guard::{PooledServer, ServerState};
pub use limit::{ClientAdmission, ClientLimitHit, ConnLimit};
pub use policy::{LoginPolicy, PolicyError};
pub use registry::Registry;
pub use resize::ReloadSummary;
pub use settings::PoolSettings;

/// Why a client could not get a server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// `query_wait_timeout` passed.
    #[error("query_wait_timeout")]
    WaitTimeout,
    /// `query_timeout` passed while the client still waited for a server (PgBouncer's janitor
    /// bounds a queued client, or one waiting at login for the pool's first server, by both).
    #[error("query_timeout")]
    QueryTimeout,
    /// The server refused a login while this client waited for it: the server's own error, or
    /// PgBouncer's text when the pooler could not answer the server's authentication request.
    #[error("{}", .0.message)]
    LoginFailed(LoginFailure),
    /// The last server login failed and no server is open: a client that needs a server fails
    /// fast with the cached reason until a login succeeds (PgBouncer's `server_login_retry`).
    #[error("server login has been failing, cached error: {0} (server_login_retry)")]
    ServerDown(Arc<str>),
    /// The pool is shutting down or was removed.
    #[error("pooler is shutting down")]
    Closed,
}

/// A refused server login as the clients waiting for it are told: SQLSTATE and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailure {
    /// The server's SQLSTATE, or `08P01` for the pooler's own reasons.
    pub sqlstate: Arc<str>,
    /// The message text.
    pub message: Arc<str>,
}

struct Waiter {
    id: u64,
    since: Instant,
    tx: oneshot::Sender<Result<Box<ServerConn>, PoolError>>,
}

#[derive(Default)]
struct Inner {
    idle: VecDeque<Box<ServerConn>>,
    waiters: VecDeque<Waiter>,
    /// Replication clients waiting for room to open their own server (`dedicated.rs`).
    dedicated: VecDeque<dedicated::DedicatedWaiter>,
    checked_out: usize,
    connecting: usize,
    /// Dedicated servers logging in (their clients connect them; kept apart from `connecting`,
    /// which counts servers on their way to the shared waiters).
    dedicated_connecting: usize,
    testing: usize,
    clients: usize,
    next_waiter: u64,
    /// PgBouncer's `last_login_failed` with its reason: set when a login fails, cleared when
    /// one succeeds. While set and no server is open, clients needing a server fail fast.
    login_failed: Option<Arc<str>>,
    /// No new login is attempted before this (the last failed attempt's launch plus
    /// `server_login_retry`); cleared when a login succeeds.
    retry_at: Option<Instant>,
    closed: bool,
    welcome: Option<Arc<Vec<(String, String)>>>,
}

impl Inner {
    fn open(&self) -> usize {
        self.idle.len()
            + self.checked_out
            + self.connecting
            + self.dedicated_connecting
            + self.testing
    }

    /// Servers past their login: the ones that count as usable.
    fn connected(&self) -> usize {
        self.open() - self.connecting
    }

    fn live_waiters(&self) -> usize {
        self.waiters.iter().filter(|w| !w.tx.is_closed()).count()
            + self.dedicated.iter().filter(|w| !w.tx.is_closed()).count()
    }
}

/// One pool of server connections.
pub struct Pool {
    /// Database name as clients use it.
    pub database: String,
    /// User the servers log in as.
    pub user: String,
    // Both swapped whole on reload (`resize.rs`); readers clone the `Arc` and never hold the lock.
    spec: RwLock<Arc<ServerSpec>>,
    settings: RwLock<Arc<PoolSettings>>,
    db_limit: Arc<ConnLimit>,
    user_limit: Arc<ConnLimit>,
    ids: Arc<AtomicU64>,
    control: PoolControl,
    /// An eviction for this pool is under way (one at a time).
    evicting: AtomicBool,
    /// Counters for SHOW STATS.
    pub stats: PoolStats,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("database", &self.database)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Live numbers of one pool, for SHOW POOLS, metrics and alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSnapshot {
    /// Database name.
    pub database: String,
    /// User name.
    pub user: String,
    /// Clients logged in and not waiting.
    pub cl_active: usize,
    /// Clients waiting for a server.
    pub cl_waiting: usize,
    /// Servers checked out by a client.
    pub sv_active: usize,
    /// Idle servers ready right away.
    pub sv_idle: usize,
    /// Idle servers that need `server_check_query` before reuse.
    pub sv_used: usize,
    /// Servers being reset or checked.
    pub sv_tested: usize,
    /// Servers logging in.
    pub sv_login: usize,
    /// How long the oldest waiting client has waited.
    pub maxwait: Duration,
    /// Pool mode in effect.
    pub pool_mode: crate::config::PoolMode,
    /// Configured pool size (0 = unlimited).
    pub pool_size: usize,
    /// Configured reserve pool size.
    pub reserve_pool_size: usize,
}

impl Pool {
    /// A new, empty pool.
    // One more than clippy's default limit: `control` bundles the admin-facing shared state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        database: String,
        user: String,
        spec: ServerSpec,
        settings: PoolSettings,
        db_limit: Arc<ConnLimit>,
        user_limit: Arc<ConnLimit>,
        ids: Arc<AtomicU64>,
        control: PoolControl,
    ) -> Self {
        Self {
            database,
            user,
            spec: RwLock::new(Arc::new(spec)),
            settings: RwLock::new(Arc::new(settings)),
            db_limit,
            user_limit,
            ids,
            control,
            evicting: AtomicBool::new(false),
            stats: PoolStats::default(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The settings in effect (they change on reload).
    pub fn settings(&self) -> Arc<PoolSettings> {
        Arc::clone(&self.settings.read())
    }

    /// The connection directory servers of this pool register in.
    pub fn conns(&self) -> &Arc<crate::stats::conns::ConnDirectory> {
        &self.control.conns
    }

    /// How servers of this pool are reached (the secret and timeouts change on reload).
    pub fn spec(&self) -> Arc<ServerSpec> {
        Arc::clone(&self.spec.read())
    }

    /// The ParameterStatus set of the first server that logged in, for client welcome messages.
    pub fn welcome_params(&self) -> Option<Arc<Vec<(String, String)>>> {
        self.inner.lock().welcome.clone()
    }

    /// Counts a logged-in client; the count drops when the returned guard drops.
    pub fn attach_client(self: &Arc<Self>) -> ClientSlot {
        self.inner.lock().clients += 1;
        ClientSlot {
            pool: Arc::clone(self),
        }
    }

    /// A consistent view of the pool's numbers.
    pub fn snapshot(&self) -> PoolSnapshot {
        let settings = self.settings();
        let inner = self.inner.lock();
        let now = Instant::now();
        let check_delay = settings.server_check_delay;
        let used = inner
            .idle
            .iter()
            .filter(|s| now.duration_since(s.last_used) > check_delay)
            .count();
        let waiting = inner.live_waiters();
        let shared = inner.waiters.iter().filter(|w| !w.tx.is_closed());
        let dedicated = inner.dedicated.iter().filter(|w| !w.tx.is_closed());
        let maxwait = shared
            .map(|w| w.since)
            .chain(dedicated.map(|w| w.since))
            .map(|since| now.duration_since(since))
            .max()
            .unwrap_or_default();
        PoolSnapshot {
            database: self.database.clone(),
            user: self.user.clone(),
            cl_active: inner.clients.saturating_sub(waiting),
            cl_waiting: waiting,
            sv_active: inner.checked_out,
            sv_idle: inner.idle.len() - used,
            sv_used: used,
            sv_tested: inner.testing,
            sv_login: inner.connecting + inner.dedicated_connecting,
            maxwait,
            pool_mode: settings.pool_mode,
            pool_size: settings.pool_size,
            reserve_pool_size: settings.reserve_pool_size,
        }
    }

    /// Closes every idle server and refuses new checkouts; checked-out servers are closed when
    /// they come back.
    pub fn close(&self) {
        let idle: Vec<Box<ServerConn>> = {
            let mut inner = self.inner.lock();
            inner.closed = true;
            for waiter in inner.waiters.drain(..) {
                let _ = waiter.tx.send(Err(PoolError::Closed));
            }
            // A dedicated waiter reads its dropped sender as "closed".
            inner.dedicated.clear();
            inner.idle.drain(..).collect()
        };
        for conn in idle {
            self.forget(conn, CloseReason::PoolClosed);
        }
    }

    /// Whether the pool has no clients and no servers.
    pub fn is_empty(&self) -> bool {
        let inner = self.inner.lock();
        inner.clients == 0 && inner.open() == 0
    }

    /// Stops counting a server that is being closed, and closes it politely in the background.
    fn forget(&self, conn: Box<ServerConn>, reason: CloseReason) {
        if let Some(entry) = conn.entry.as_ref()
            && self.settings().log.disconnections
        {
            LogPeer::of(entry.info()).closing(&reason);
        }
        self.db_limit.release();
        self.user_limit.release();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(conn.terminate());
        }
    }
}

/// A logged-in client's place in a pool's client count.
#[derive(Debug)]
pub struct ClientSlot {
    pool: Arc<Pool>,
}

impl ClientSlot {
    /// The pool this client belongs to.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut inner = self.pool.inner.lock();
        inner.clients = inner.clients.saturating_sub(1);
    }
}
