//! The checkout guard: a client holds a server only through a [`PooledServer`], and gives it back
//! by saying what state it is in. The guard decides: reuse, reset first, roll back first, or close.
//! Dropped without a verdict, it closes the server, so an unknown state is never handed on.

use std::sync::Arc;

use super::{CloseReason, Pool};
use crate::config::PoolMode;
use crate::protocol::TxStatus;
use crate::server::ServerConn;

/// What the client side knows about a server it is giving back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// ReadyForQuery `I` with nothing outstanding.
    Idle,
    /// ReadyForQuery `T` or `E` with nothing outstanding: an open transaction to roll back.
    InTransaction,
    /// Anything else: a query running, a partial message, COPY, unread replies.
    Unknown,
}

/// A checked-out server.
#[derive(Debug)]
pub struct PooledServer {
    pool: Arc<Pool>,
    conn: Option<Box<ServerConn>>,
}

impl PooledServer {
    pub(super) fn new(pool: Arc<Pool>, mut conn: Box<ServerConn>) -> Self {
        conn.request_time = tokio::time::Instant::now();
        if let Some(entry) = &conn.entry {
            entry.set_state(crate::stats::conns::ConnState::ServerActive);
        }
        Self {
            pool,
            conn: Some(conn),
        }
    }

    /// The server connection.
    pub fn conn(&mut self) -> &mut ServerConn {
        // The option is only emptied by `release`/`close`, which consume `self`.
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("PooledServer used after release"))
    }

    /// The pool it belongs to.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Gives the server back. Idle servers are reused (after `server_reset_query` when the mode
    /// calls for it); an open transaction is rolled back in the background first; anything else
    /// is closed.
    pub fn release(mut self, state: ServerState, mode: PoolMode) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let pool = Arc::clone(&self.pool);
        if state == ServerState::Unknown || !conn.is_clean() {
            pool.discard(conn, CloseReason::Unclean);
            return;
        }
        let settings = pool.settings();
        let reset = if mode == PoolMode::Session || settings.server_reset_query_always {
            settings.server_reset_query.clone()
        } else {
            None
        };
        if state == ServerState::Idle && reset.is_none() {
            pool.checkin(conn);
            return;
        }
        if let Some(entry) = &conn.entry {
            entry.set_state(crate::stats::conns::ConnState::ServerTested);
        }
        // Rolling back and resetting take a round trip; the client should not wait for them.
        tokio::spawn(async move {
            let clean = async {
                if state == ServerState::InTransaction
                    && conn.simple_query("ROLLBACK").await? != TxStatus::Idle
                {
                    return Ok(false);
                }
                if let Some(sql) = reset.as_deref() {
                    return Ok::<bool, crate::server::ServerError>(
                        conn.simple_query(sql).await? == TxStatus::Idle,
                    );
                }
                Ok(true)
            };
            match tokio::time::timeout(std::time::Duration::from_secs(10), clean).await {
                Ok(Ok(true)) => pool.checkin(conn),
                _ => pool.discard(conn, CloseReason::ResetFailed),
            }
        });
    }

    /// Gives back a server that carried no client traffic (the first login of a pool waits for
    /// one only to learn the welcome message): it stays "never used", so it is not tested
    /// before its first real use.
    pub fn release_untouched(mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.request_time = conn.created;
            self.pool.checkin(conn);
        }
    }

    /// Closes the server (it is in a state nobody else may see).
    pub fn close(mut self, reason: CloseReason) {
        if let Some(conn) = self.conn.take() {
            self.pool.discard(conn, reason);
        }
    }
}

impl Drop for PooledServer {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.discard(conn, CloseReason::ClientGone);
        }
    }
}
