//! Dedicated servers, for replication clients (PgBouncer 1.23+): such a client is never given a
//! shared server; it gets one opened for it alone, with its own startup parameters (the
//! `replication` value, its `options`, its tracked parameters), for its whole session, and the
//! server is closed when the client leaves.
//!
//! Owns: the queue of replication clients waiting for room, granting room (a unit of
//! `pool_size`, `max_db_connections` and `max_user_connections`, as any server of the pool
//! counts), evicting an idle shared server of the pool when it is full, and opening the server.
//!
//! Does not: relay or close the server (the client's session does, through the guard, whose
//! `close` gives the room back).
//!
//! Invariants: a granted waiter is counted in `dedicated_connecting` and in both limits until its
//! server is checked out (then in `checked_out`) or the grant is undone; a grant is undone
//! exactly once, by whoever holds it when the client gives up ([`Reservation`]'s drop).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{CloseReason, Inner, Pool, PoolError, PooledServer};
use crate::server::{self, ServerError};
use crate::stats::ErrorCounters;
use crate::stats::conn_log::LogPeer;
use crate::stats::conns::{ConnInfo, ConnState, Side};

/// A replication client waiting for room in the pool.
pub(super) struct DedicatedWaiter {
    pub(super) id: u64,
    pub(super) since: Instant,
    /// Sent once the room is granted (counted for this waiter); dropped when the pool closes.
    pub(super) tx: oneshot::Sender<()>,
}

/// Why a dedicated server could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DedicatedError {
    /// No room in time, or the pool closed.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The server could not be reached or refused the login.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Granted room, given back on drop unless a server took it.
struct Reservation {
    pool: Arc<Pool>,
    held: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held {
            self.pool.undo_grant();
        }
    }
}

/// A place in the dedicated queue; leaving it, granted or not, gives everything back.
struct DedicatedTicket {
    pool: Arc<Pool>,
    id: u64,
    rx: oneshot::Receiver<()>,
    answered: bool,
}

impl Drop for DedicatedTicket {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        self.rx.close();
        if self.rx.try_recv().is_ok() {
            // Granted just as the client gave up.
            self.pool.undo_grant();
        }
        self.pool.inner.lock().dedicated.retain(|w| w.id != self.id);
    }
}

/// The server's startup parameters: the pool's, less those the client sets itself, then the
/// client's (its tracked parameters, `replication`, `options`).
fn merge_startup(
    pool_params: &[(String, String)],
    client: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut merged: Vec<(String, String)> = pool_params
        .iter()
        .filter(|(k, _)| !client.iter().any(|(c, _)| c.eq_ignore_ascii_case(k)))
        .cloned()
        .collect();
    merged.extend(
        client
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    merged
}

impl Pool {
    /// Opens a server for one client alone, with `startup` added to its startup packet, once
    /// the pool has room (waiting up to `query_wait_timeout`). `label` is its SHOW SERVERS
    /// `replication` value. The server must be given back with `close`.
    pub async fn checkout_dedicated(
        self: &Arc<Self>,
        startup: &[(&str, &str)],
        label: &'static str,
    ) -> Result<PooledServer, DedicatedError> {
        let started = Instant::now();
        let mut reservation = self.reserve_dedicated(started).await?;
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let entry = self.control.conns.register(
            ConnInfo::new(
                id,
                Side::Server,
                &self.database,
                &self.spec().user,
                &self.user,
                ConnState::ServerLogin,
            )
            .with_replication(label),
        );
        let mut spec = (*self.spec()).clone();
        spec.startup_params = merge_startup(&spec.startup_params, startup);
        let mut conn = match server::connect(&spec, id).await {
            Ok(conn) => conn,
            Err(error) => {
                ErrorCounters::bump(&self.stats.errors().server_connect_failures);
                self.log_dedicated_failure(&spec, id, &error);
                return Err(error.into());
            }
        };
        conn.attach_entry(entry);
        {
            let mut inner = self.inner.lock();
            inner.dedicated_connecting -= 1;
            inner.checked_out += 1;
        }
        reservation.held = false;
        self.stats.server_assigned(started.elapsed());
        Ok(PooledServer::new(Arc::clone(self), Box::new(conn)))
    }

    /// PgBouncer's `closing because:` line for a dedicated server that never logged in. A
    /// refusal reads `login failed` (the server's words are in the client's warning): for a
    /// replication connection PgBouncer does not take them as the pool's reason.
    fn log_dedicated_failure(&self, spec: &server::ServerSpec, id: u64, error: &ServerError) {
        if !self.settings().log.disconnections {
            return;
        }
        let (host, port) = match &spec.addr {
            server::ServerAddr::Tcp(host, port) => (host.as_str(), *port),
            server::ServerAddr::Unix(path) => (path.as_str(), 0),
        };
        let peer = LogPeer::new(Side::Server, id, &self.database, &spec.user, (host, port));
        if matches!(error, ServerError::Login(_)) {
            peer.closing(&"login failed");
        } else {
            peer.closing(&error.close_reason());
        }
    }

    async fn reserve_dedicated(
        self: &Arc<Self>,
        started: Instant,
    ) -> Result<Reservation, PoolError> {
        let mut ticket = {
            let mut inner = self.inner.lock();
            if inner.closed {
                return Err(PoolError::Closed);
            }
            let (tx, rx) = oneshot::channel();
            let id = inner.next_waiter;
            inner.next_waiter += 1;
            inner.dedicated.push_back(DedicatedWaiter {
                id,
                since: Instant::now(),
                tx,
            });
            self.launch(&mut inner, false);
            DedicatedTicket {
                pool: Arc::clone(self),
                id,
                rx,
                answered: false,
            }
        };
        let wait = self.settings().query_wait_timeout;
        let granted = if wait.is_zero() {
            (&mut ticket.rx).await
        } else if let Ok(r) = tokio::time::timeout_at(started + wait, &mut ticket.rx).await {
            r
        } else {
            ErrorCounters::bump(&self.stats.errors().query_wait_timeouts);
            return Err(PoolError::WaitTimeout);
        };
        // Answered either way: a grant is ours now, a dropped sender means the queue is gone.
        ticket.answered = true;
        granted.map_err(|_| PoolError::Closed)?;
        Ok(Reservation {
            pool: Arc::clone(self),
            held: true,
        })
    }

    /// Gives back the room of a grant whose server was never checked out.
    fn undo_grant(self: &Arc<Self>) {
        self.db_limit.release();
        self.user_limit.release();
        let mut inner = self.inner.lock();
        inner.dedicated_connecting -= 1;
        self.launch(&mut inner, false);
    }

    /// Grants room to waiting replication clients, oldest first, while `cap` and the limits
    /// allow; an idle shared server of this pool is closed to make room when they do not.
    pub(super) fn grant_dedicated(self: &Arc<Self>, inner: &mut Inner, cap: usize) {
        while let Some(front) = inner.dedicated.front() {
            if front.tx.is_closed() {
                inner.dedicated.pop_front();
                continue;
            }
            if inner.open() >= cap {
                if self.evict_idle(inner, CloseReason::EvictedForPoolSize) {
                    continue;
                }
                return;
            }
            if !self.db_limit.try_acquire() {
                if self.evict_idle(inner, CloseReason::EvictedForDbLimit) {
                    continue;
                }
                return;
            }
            if !self.user_limit.try_acquire() {
                self.db_limit.release();
                if self.evict_idle(inner, CloseReason::EvictedForUserLimit) {
                    continue;
                }
                return;
            }
            let Some(waiter) = inner.dedicated.pop_front() else {
                return;
            };
            inner.dedicated_connecting += 1;
            if waiter.tx.send(()).is_err() {
                inner.dedicated_connecting -= 1;
                self.db_limit.release();
                self.user_limit.release();
            }
        }
    }

    /// Closes the least recently used idle server, saying which limit it made room under;
    /// false if none is idle.
    fn evict_idle(&self, inner: &mut Inner, reason: CloseReason) -> bool {
        let Some(conn) = inner.idle.pop_front() else {
            return false;
        };
        self.forget(conn, reason);
        true
    }

    /// Whether a replication client has waited longer than every client waiting for a shared
    /// server: a server coming back then makes room for it instead of being handed on.
    pub(super) fn dedicated_first(inner: &Inner) -> bool {
        let Some(oldest) = inner.dedicated.iter().find(|w| !w.tx.is_closed()) else {
            return false;
        };
        inner
            .waiters
            .iter()
            .find(|w| !w.tx.is_closed())
            .is_none_or(|w| oldest.since <= w.since)
    }
}

#[cfg(test)]
mod tests {
    use super::merge_startup;

    #[test]
    fn client_startup_values_replace_the_pools() {
        let pool = vec![
            ("application_name".to_owned(), "db-default".to_owned()),
            ("timezone".to_owned(), "UTC".to_owned()),
        ];
        let merged = merge_startup(
            &pool,
            &[("application_name", "abc"), ("replication", "database")],
        );
        let names: Vec<(&str, &str)> = merged
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("timezone", "UTC"),
                ("application_name", "abc"),
                ("replication", "database")
            ]
        );
    }
}
