//! Getting a server from a pool and giving it back: idle reuse, FIFO waiting with
//! `reserve_pool_timeout` and `query_wait_timeout`, launching new servers within the limits, and
//! the direct hand-off of a released server to the first waiting client.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Inner, Pool, PoolError, PooledServer, Waiter};
use crate::server::{self, ServerConn, ServerError};
use crate::stats::ErrorCounters;
use crate::stats::conns::{ConnInfo, ConnState, Endpoints, Side};

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
    pub async fn checkout(self: &Arc<Self>) -> Result<PooledServer, PoolError> {
        let started = Instant::now();
        loop {
            let conn = match self.try_immediate()? {
                Immediate::Server(conn) => conn,
                Immediate::Wait(ticket) => self.wait(ticket, started).await?,
            };
            if let Some(conn) = self.check_before_use(conn).await {
                self.stats.server_assigned(started.elapsed());
                return Ok(PooledServer::new(Arc::clone(self), conn));
            }
        }
    }

    fn try_immediate(self: &Arc<Self>) -> Result<Immediate, PoolError> {
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
        if let Some((at, reason)) = inner.last_failure.as_ref().filter(|_| !paused) {
            if at.elapsed() < self.settings().server_login_retry && inner.open() == 0 {
                return Err(PoolError::ServerDown(Arc::clone(reason)));
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
        let deadline =
            (!settings.query_wait_timeout.is_zero()).then(|| started + settings.query_wait_timeout);
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
            tracing::info!(server = conn.id, "server closed its connection while idle");
            self.discard(conn);
            return None;
        }
        let settings = self.settings();
        let Some(query) = settings.server_check_query.as_deref() else {
            return Some(conn);
        };
        if conn.last_used.elapsed() <= settings.server_check_delay {
            return Some(conn);
        }
        if let Some(entry) = &conn.entry {
            entry.set_state(ConnState::ServerTested);
        }
        if let Ok(b'I') = conn.simple_query(query).await {
            Some(conn)
        } else {
            tracing::info!(
                server = conn.id,
                "server_check_query failed, closing server"
            );
            self.discard(conn);
            None
        }
    }

    /// Opens servers for waiting clients while the limits allow. `reserve` allows going past
    /// `pool_size` by up to `reserve_pool_size`.
    pub(super) fn launch(self: &Arc<Self>, inner: &mut Inner, reserve: bool) {
        if self.control.paused() {
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
        while inner.waiters.len() > inner.connecting && inner.open() < cap && !inner.closed {
            if !self.db_limit.try_acquire() {
                break;
            }
            if !self.user_limit.try_acquire() {
                self.db_limit.release();
                break;
            }
            inner.connecting += 1;
            self.spawn_connect();
        }
    }

    /// Opens one server in the background; used by `launch` and by the janitor for
    /// `min_pool_size`. The caller has counted it in `connecting` and in the limits.
    pub(super) fn spawn_connect(self: &Arc<Self>) {
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
        tokio::spawn(async move {
            let result = server::connect(&pool.spec(), id).await.map(|mut conn| {
                let (addr, port) = conn.io().stream.peer();
                let (local_addr, local_port) = conn.local.clone();
                entry.set_endpoints(Endpoints {
                    addr,
                    port,
                    local_addr,
                    local_port,
                });
                entry.set_remote_pid(conn.cancel_target().pid);
                entry.set_tls(&conn.tls_summary().unwrap_or_default());
                conn.entry = Some(entry);
                conn
            });
            pool.on_connected(result);
        });
    }

    fn on_connected(self: &Arc<Self>, result: Result<ServerConn, ServerError>) {
        match result {
            Ok(conn) => {
                tracing::debug!(server = conn.id, db = %self.database, user = %self.user, "new server connection");
                let mut inner = self.inner.lock();
                inner.connecting -= 1;
                inner.last_failure = None;
                if inner.welcome.is_none() {
                    inner.welcome = Some(Arc::clone(&conn.login_params));
                }
                inner.testing += 1;
                drop(inner);
                self.checkin_from(Box::new(conn), true, |inner| inner.testing -= 1);
            }
            Err(error) => {
                tracing::warn!(db = %self.database, user = %self.user, "server connection failed: {error}");
                ErrorCounters::bump(&self.stats.errors().server_connect_failures);
                self.db_limit.release();
                self.user_limit.release();
                let reason: Arc<str> = Arc::from(error.to_string());
                let mut inner = self.inner.lock();
                inner.connecting -= 1;
                inner.last_failure = Some((Instant::now(), Arc::clone(&reason)));
                // Fail fast rather than make every waiter sit out query_wait_timeout against a
                // server that is down (PgBouncer's server_login_retry behaviour).
                if inner.open() == 0 {
                    for waiter in inner.waiters.drain(..) {
                        let _ = waiter
                            .tx
                            .send(Err(PoolError::ServerDown(Arc::clone(&reason))));
                    }
                }
            }
        }
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
        let close_needed =
            conn.close_needed || conn.entry.as_ref().is_some_and(|e| e.close_needed());
        let expired = close_needed || (!fresh && (lifetime.is_zero() || conn.age() > lifetime));
        let mut inner = self.inner.lock();
        leave_state(&mut inner);
        // PAUSE closes servers as they come back.
        if expired || inner.closed || self.control.paused() {
            let room_wanted = !inner.dedicated.is_empty();
            drop(inner);
            self.forget(conn);
            if room_wanted {
                self.launch(&mut self.inner.lock(), false);
            }
            return;
        }
        if Pool::dedicated_first(&inner) {
            // A replication client asked first: this server makes room for its own.
            self.forget(conn);
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
    pub(super) fn discard(self: &Arc<Self>, conn: Box<ServerConn>) {
        self.inner.lock().checked_out -= 1;
        self.forget(conn);
        // Its slot is free now: a waiter may need a new server.
        self.launch(&mut self.inner.lock(), false);
    }
}
