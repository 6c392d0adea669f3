//! Getting a server from a pool and giving it back: idle reuse, FIFO waiting with
//! `reserve_pool_timeout` and `query_wait_timeout`, launching new servers within the limits, and
//! the direct hand-off of a released server to the first waiting client.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{CloseReason, Inner, Pool, PoolError, PooledServer, Waiter};
use crate::protocol::TxStatus;
use crate::server::{self, ServerConn, ServerError};
use crate::stats::ErrorCounters;
use crate::stats::conn_log::{self, LogPeer};
use crate::stats::conns::{ConnInfo, ConnState, Side};

/// A place in the wait queue. If it is dropped while a server is in flight to it, the server goes
/// back to the pool instead of being lost.
struct WaitTicket {
    pool: Arc<Pool>,
    id: u64,
    rx: oneshot::Receiver<Result<Box<ServerConn>, PoolError>>,
    /// Set once an answer arrived: whoever sent it already took the waiter off the queue.
    answered: bool,
}

impl Drop for WaitTicket {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        self.rx.close();
        if let Ok(Ok(conn)) = self.rx.try_recv() {
            self.pool.checkin(conn);
        }
        let mut inner = self.pool.inner.lock();
        inner.waiters.retain(|w| w.id != self.id);
    }
}

enum Immediate {
    Server(Box<ServerConn>),
    Wait(WaitTicket),
}

impl Pool {
    /// Gets a server for a client: an idle one, or the first one released or opened after every
    /// client that asked earlier got theirs.
    ///
    /// While the last server login failed and no server is open, it fails fast with the cached
    /// reason ([`PoolError::ServerDown`]) and starts one new attempt, as PgBouncer does for a
    /// client that needs a server.
    pub async fn checkout(self: &Arc<Self>) -> Result<PooledServer, PoolError> {
        self.checkout_inner(true).await
    }

    /// A checkout for a client logging in to a pool that has no welcome message yet: it waits
    /// for the first server login without failing fast (PgBouncer's clients waiting for the
    /// welcome), leaves only when that login is refused or a timeout passes, and counts no
    /// server assignment in SHOW STATS (it only fetches a server's parameters to greet with).
    pub async fn checkout_for_welcome(self: &Arc<Self>) -> Result<PooledServer, PoolError> {
        self.checkout_inner(false).await
    }

    /// `for_client`: a checkout for a client's work (fails fast while logins fail, counts an
    /// assignment), not for the welcome.
    async fn checkout_inner(self: &Arc<Self>, for_client: bool) -> Result<PooledServer, PoolError> {
        let (fast_fail, count) = (for_client, for_client);
        let started = Instant::now();
        loop {
            let conn = match self.try_immediate(fast_fail)? {
                Immediate::Server(conn) => conn,
                Immediate::Wait(ticket) => self.wait(ticket, started).await?,
            };
            if let Some(conn) = self.check_before_use(conn).await {
                if count {
                    self.stats.server_assigned(started.elapsed());
                }
                return Ok(PooledServer::new(Arc::clone(self), conn));
            }
        }
    }

    fn try_immediate(self: &Arc<Self>, fast_fail: bool) -> Result<Immediate, PoolError> {
        let mut inner = self.inner.lock();
        if inner.closed {
            return Err(PoolError::Closed);
        }
        // PAUSE: queue the client (counted in cl_waiting) until RESUME.
        let paused = self.control.paused();
        let popped = if paused {
            None
        } else if self.settings().server_round_robin {
            inner.idle.pop_front()
        } else {
            inner.idle.pop_back()
        };
        if let Some(conn) = popped {
            inner.checked_out += 1;
            return Ok(Immediate::Server(conn));
        }
        if let Some(reason) = inner.login_failed.as_ref().filter(|_| fast_fail && !paused) {
            if inner.connected() == 0 {
                let reason = Arc::clone(reason);
                // Nobody may be waiting to trigger a retry: start one attempt (it honours
                // server_login_retry), so the pool recovers once the server does.
                if inner.connecting == 0 && !inner.closed && !Self::retry_pending(&inner) {
                    self.try_open(&mut inner, false);
                }
                return Err(PoolError::ServerDown(reason));
            }
        }
        let (tx, rx) = oneshot::channel();
        let id = inner.next_waiter;
        inner.next_waiter += 1;
        inner.waiters.push_back(Waiter {
            id,
            since: Instant::now(),
            tx,
        });
        self.launch(&mut inner, false);
        Ok(Immediate::Wait(WaitTicket {
            pool: Arc::clone(self),
            id,
            rx,
            answered: false,
        }))
    }

    async fn wait(
        self: &Arc<Self>,
        mut ticket: WaitTicket,
        started: Instant,
    ) -> Result<Box<ServerConn>, PoolError> {
        let settings = self.settings();
        // PgBouncer bounds a waiting client by query_timeout as well as query_wait_timeout.
        let query_limit =
            (!settings.query_timeout.is_zero()).then(|| started + settings.query_timeout);
        let wait_limit =
            (!settings.query_wait_timeout.is_zero()).then(|| started + settings.query_wait_timeout);
        let deadline = match (query_limit, wait_limit) {
            (Some(q), Some(w)) => Some(q.min(w)),
            (q, w) => q.or(w),
        };
        let mut reserve_at =
            (settings.reserve_pool_size > 0).then(|| started + settings.reserve_pool_timeout);
        loop {
            let wake = match (deadline, reserve_at) {
                (Some(d), Some(r)) => Some(d.min(r)),
                (d, r) => d.or(r),
            };
            let received = match wake {
                Some(at) => {
                    if let Ok(r) = tokio::time::timeout_at(at, &mut ticket.rx).await {
                        r
                    } else {
                        if reserve_at.is_some_and(|r| Instant::now() >= r) {
                            reserve_at = None;
                            self.launch(&mut self.inner.lock(), true);
                            continue;
                        }
                        if query_limit.is_some_and(|q| Instant::now() >= q) {
                            ErrorCounters::bump(&self.stats.errors().query_timeouts);
                            return Err(PoolError::QueryTimeout);
                        }
                        ErrorCounters::bump(&self.stats.errors().query_wait_timeouts);
                        return Err(PoolError::WaitTimeout);
                    }
                }
                None => (&mut ticket.rx).await,
            };
            ticket.answered = received.is_ok();
            return received.unwrap_or(Err(PoolError::Closed));
        }
    }

    /// Runs `server_check_query` on a server idle longer than `server_check_delay`; `None` if it
    /// failed (the server is then closed).
    async fn check_before_use(
        self: &Arc<Self>,
        mut conn: Box<ServerConn>,
    ) -> Option<Box<ServerConn>> {
        if !conn.looks_alive() {
            self.discard(conn, CloseReason::Crashed);
            return None;
        }
        let settings = self.settings();
        let Some(query) = settings.server_check_query.as_deref() else {
            return Some(conn);
        };
        // A server no client has used yet is tested only once it has idled past the delay (and
        // at least a second, the janitor's round in which PgBouncer notices it): one opened for
        // a waiting client goes to it untested, as in PgBouncer.
        let fresh = conn.request_time == conn.created;
        let delay = if fresh {
            settings
                .server_check_delay
                .max(std::time::Duration::from_secs(1))
        } else {
            settings.server_check_delay
        };
        if conn.last_used.elapsed() <= delay {
            return Some(conn);
        }
        if let Some(entry) = &conn.entry {
            entry.set_state(ConnState::ServerTested);
        }
        if let Ok(TxStatus::Idle) = conn.simple_query(query).await {
            Some(conn)
        } else {
            self.discard(conn, CloseReason::CheckFailed);
            None
        }
    }

    /// Opens servers for waiting clients while the limits allow. `reserve` allows going past
    /// `pool_size` by up to `reserve_pool_size`.
    pub(super) fn launch(self: &Arc<Self>, inner: &mut Inner, reserve: bool) {
        if self.control.paused() || Self::retry_pending(inner) {
            return;
        }
        let size = self.settings().pool_size;
        let cap = if size == 0 {
            usize::MAX
        } else if reserve {
            size + self.settings().reserve_pool_size
        } else {
            size
        };
        self.grant_dedicated(inner, cap);
        // `waiters.len()`, not a scan for live ones: a waiter that gave up leaves the queue in
        // its own drop, so a dead entry lives only for that moment, and at worst opens one server
        // the pool may use anyway.
        // Until a login has succeeded (a new pool, after RECONNECT, after a failure), one login
        // at a time, as PgBouncer: a down or unresolvable server is not hit by every queued
        // client at once, and a host list is walked by one attempt. Then the pool opens what
        // its queue needs in parallel.
        let unproven = inner.welcome.is_none() || inner.login_failed.is_some();
        while inner.waiters.len() > inner.connecting
            && inner.open() < cap
            && !inner.closed
            && !(unproven && inner.connecting > 0)
        {
            if !self.try_open(inner, true) {
                break;
            }
            if size > 0 && inner.open() > size {
                conn_log::pool_warning(
                    &self.database,
                    &self.user,
                    &"taking connection from reserve_pool",
                );
            }
        }
    }

    /// Whether a failed login is too recent to try again (`server_login_retry`).
    pub(super) fn retry_pending(inner: &Inner) -> bool {
        inner.retry_at.is_some_and(|at| Instant::now() < at)
    }

    /// Takes a unit of `max_db_connections` and `max_user_connections` and starts a login;
    /// `false` when a limit is full. With `evict`, a full limit also closes the longest-idle
    /// server of another pool under it (PgBouncer's eviction), and this pool tries again once
    /// that server is gone.
    pub(super) fn try_open(self: &Arc<Self>, inner: &mut Inner, evict: bool) -> bool {
        if !self.db_limit.try_acquire() {
            if evict {
                self.evict_then_launch(&self.db_limit);
            }
            return false;
        }
        if !self.user_limit.try_acquire() {
            self.db_limit.release();
            if evict {
                self.evict_then_launch(&self.user_limit);
            }
            return false;
        }
        inner.connecting += 1;
        self.spawn_connect();
        true
    }

    /// Evicts an idle server of a sibling pool off the background of the caller's lock (pools
    /// lock one at a time, so two pools evicting from each other cannot deadlock), then
    /// launches again for this pool's waiters.
    fn evict_then_launch(self: &Arc<Self>, limit: &Arc<super::ConnLimit>) {
        if self.evicting.swap(true, Ordering::AcqRel) {
            return;
        }
        let reason = if Arc::ptr_eq(limit, &self.db_limit) {
            CloseReason::EvictedForDbLimit
        } else {
            CloseReason::EvictedForUserLimit
        };
        let (pool, limit) = (Arc::clone(self), Arc::clone(limit));
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.evicting.store(false, Ordering::Release);
            return;
        };
        handle.spawn(async move {
            let evicted = limit.evict_idle(&pool, reason);
            pool.evicting.store(false, Ordering::Release);
            if evicted {
                pool.launch(&mut pool.inner.lock(), false);
            }
        });
    }

    /// Closes this pool's longest-idle server to make room under a shared limit; `false` when
    /// it has none.
    pub(super) fn evict_one_idle(&self, reason: CloseReason) -> bool {
        let Some(conn) = self.inner.lock().idle.pop_front() else {
            return false;
        };
        self.forget(conn, reason);
        true
    }

    /// When this pool's longest-idle server was last used, if it has an idle server.
    pub(super) fn oldest_idle(&self) -> Option<Instant> {
        self.inner.lock().idle.front().map(|c| c.last_used)
    }

    /// Opens one server in the background; used by `try_open`. The caller has counted it in
    /// `connecting` and in the limits.
    fn spawn_connect(self: &Arc<Self>) {
        let pool = Arc::clone(self);
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let entry = self.control.conns.register(ConnInfo::new(
            id,
            Side::Server,
            &self.database,
            &self.spec().user,
            &self.user,
            ConnState::ServerLogin,
        ));
        let launched = Instant::now();
        tokio::spawn(async move {
            let spec = pool.spec();
            let result = server::connect(&spec, id).await;
            // PgBouncer's `closing because: REASON` for a server that failed before it was
            // logged in (`connect failed`, `connect timeout`, `server DNS lookup failed`,
            // `server refused SSL`..., or the server's own refusal, whose warning
            // `on_login_failed` logs too).
            if let Err(error) = &result
                && pool.settings().log.disconnections
            {
                let (host, port) = match &spec.addr {
                    server::ServerAddr::Tcp(host, port) => (host.as_str(), *port),
                    server::ServerAddr::Unix(path) => (path.as_str(), 0),
                };
                LogPeer::new(Side::Server, id, &pool.database, &spec.user, (host, port))
                    .closing(&error.close_reason());
            }
            let result = result.map(|mut conn| {
                conn.attach_entry(entry);
                conn
            });
            pool.on_connected(result, launched);
        });
    }

    fn on_connected(self: &Arc<Self>, result: Result<ServerConn, ServerError>, launched: Instant) {
        match result {
            Ok(conn) => {
                if let Some(entry) = conn.entry.as_ref()
                    && self.settings().log.connections
                {
                    let info = entry.info();
                    let peer = LogPeer::of(info);
                    let local = info.endpoints();
                    if local.local_addr == "unix" || local.local_addr.is_empty() {
                        peer.event(&"new connection to server");
                    } else if local.local_addr.contains(':') {
                        peer.event(&format_args!(
                            "new connection to server (from [{}]:{})",
                            local.local_addr, local.local_port
                        ));
                    } else {
                        peer.event(&format_args!(
                            "new connection to server (from {}:{})",
                            local.local_addr, local.local_port
                        ));
                    }
                }
                let mut inner = self.inner.lock();
                inner.connecting -= 1;
                inner.login_failed = None;
                inner.retry_at = None;
                if inner.welcome.is_none() {
                    inner.welcome = Some(Arc::clone(&conn.login_params));
                }
                inner.testing += 1;
                drop(inner);
                self.checkin_from(Box::new(conn), true, |inner| inner.testing -= 1);
                // The login proved the server: the rest of the queue may open in parallel.
                self.launch(&mut self.inner.lock(), false);
            }
            Err(error) => self.on_login_failed(&error, launched),
        }
    }

    /// PgBouncer's handling of a failed server login: the reason is cached for fast failures
    /// and no new attempt starts before `server_login_retry`. When the server refused the login
    /// (other than "starting up or shutting down", 57P03) or the pooler could not answer its
    /// authentication request, every client waiting for a server is disconnected with that
    /// error, unless the pool still has usable servers; otherwise they keep waiting for the
    /// retry.
    fn on_login_failed(self: &Arc<Self>, error: &ServerError, launched: Instant) {
        match error {
            // PgBouncer's words, which log alerts match: `server login failed: FATAL database
            // "x" does not exist`.
            ServerError::Login(fields) => conn_log::pool_warning(
                &self.database,
                &self.user,
                &format_args!(
                    "server login failed: {} {}",
                    fields.severity.as_deref().unwrap_or("ERROR"),
                    fields.message.as_deref().unwrap_or_default()
                ),
            ),
            other => {
                tracing::warn!(db = %self.database, user = %self.user, "server connection failed: {other}");
            }
        }
        ErrorCounters::bump(&self.stats.errors().server_connect_failures);
        self.db_limit.release();
        self.user_limit.release();
        let retry_at = launched + self.settings().server_login_retry;
        let mut inner = self.inner.lock();
        inner.connecting -= 1;
        inner.login_failed = Some(Arc::from(error.close_reason()));
        inner.retry_at = Some(retry_at);
        let usable = inner.connected() > 0 && inner.welcome.is_some();
        if let (Some((sqlstate, message)), false) = (error.refusal(), usable) {
            let failure = super::LoginFailure {
                sqlstate: Arc::from(sqlstate),
                message: Arc::from(message),
            };
            for waiter in inner.waiters.drain(..) {
                let _ = waiter.tx.send(Err(PoolError::LoginFailed(failure.clone())));
            }
        }
        if inner.waiters.is_empty() {
            return;
        }
        drop(inner);
        // The clients still waiting get the retry as soon as server_login_retry allows.
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(retry_at).await;
            pool.launch(&mut pool.inner.lock(), false);
        });
    }

    /// Returns a clean, idle server: to the first live waiter, else to the idle list.
    pub(super) fn checkin(self: &Arc<Self>, conn: Box<ServerConn>) {
        self.checkin_from(conn, false, |inner| inner.checked_out -= 1);
    }

    fn checkin_from(
        self: &Arc<Self>,
        mut conn: Box<ServerConn>,
        fresh: bool,
        leave_state: impl FnOnce(&mut Inner),
    ) {
        // server_lifetime = 0 means "use once" (PgBouncer), which a fresh server has not been yet.
        let lifetime = self.settings().server_lifetime;
        let close_needed = conn.close_needed();
        let expired = !fresh && (lifetime.is_zero() || conn.age() > lifetime);
        let mut inner = self.inner.lock();
        leave_state(&mut inner);
        // PAUSE closes servers as they come back.
        let reason = if close_needed {
            Some(CloseReason::Obsolete)
        } else if inner.closed {
            Some(CloseReason::PoolClosed)
        } else if expired {
            Some(CloseReason::LifetimeOver)
        } else if self.control.paused() {
            Some(CloseReason::Paused)
        } else {
            None
        };
        if let Some(reason) = reason {
            let room_wanted = !inner.dedicated.is_empty();
            drop(inner);
            self.forget(conn, reason);
            if room_wanted {
                self.launch(&mut self.inner.lock(), false);
            }
            return;
        }
        if Pool::dedicated_first(&inner) {
            // A replication client asked first: this server makes room for its own.
            self.forget(conn, CloseReason::EvictedForPoolSize);
            self.launch(&mut inner, false);
            return;
        }
        conn.last_used = Instant::now();
        while let Some(waiter) = inner.waiters.pop_front() {
            match waiter.tx.send(Ok(conn)) {
                Ok(()) => {
                    inner.checked_out += 1;
                    return;
                }
                Err(Ok(returned)) => conn = returned,
                Err(Err(_)) => return,
            }
        }
        if let Some(entry) = &conn.entry {
            entry.set_state(ConnState::ServerIdle);
        }
        inner.idle.push_back(conn);
    }

    /// Closes a checked-out server that cannot be reused.
    pub(super) fn discard(self: &Arc<Self>, conn: Box<ServerConn>, reason: CloseReason) {
        self.inner.lock().checked_out -= 1;
        self.forget(conn, reason);
        // Its slot is free now: a waiter may need a new server.
        self.launch(&mut self.inner.lock(), false);
    }
}
