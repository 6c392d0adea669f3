//! Time-based pool duties, run for every pool once a second: close servers past
//! `server_idle_timeout` or `server_lifetime` (keeping `min_pool_size`), open servers up to
//! `min_pool_size`, retry openings that `max_db_connections`/`max_user_connections` held back,
//! and close idle servers above a `pool_size` lowered by a reload.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{CloseReason, Pool, Registry};
use crate::config::PoolMode;
use crate::server::ServerConn;
use crate::stats::conns::{KillReason, Side};

/// Runs until `shutdown` is cancelled. The first round after a drain (SHUTDOWN
/// WAIT_FOR_SERVERS, SIGINT) lets go of the clients still queued for a server
/// (`Shutdown::release_queued`), as PgBouncer's janitor does.
pub async fn run(
    registry: Arc<Registry>,
    shutdown: CancellationToken,
    stages: crate::control::Shutdown,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if stages.drain.is_cancelled() {
                    stages.release_queued.cancel();
                }
                registry.maintain();
            }
        }
    }
}

impl Registry {
    /// `server_fast_close`: a session-mode client whose server is `close_needed` (RECONNECT, a
    /// reload that changed the server) is asked to leave; its relay ends the session as soon as
    /// the server is idle (at once, or when the current transaction ends), closing the server
    /// "database configuration changed", as PgBouncer's janitor does.
    pub(super) fn fast_close_sessions(&self) {
        let session_pools: Vec<(String, String)> = self
            .pools()
            .iter()
            .filter(|p| p.settings().pool_mode == PoolMode::Session)
            .map(|p| (p.database.clone(), p.user.clone()))
            .collect();
        if session_pools.is_empty() {
            return;
        }
        for server in self.conns().all() {
            if server.side != Side::Server || !server.close_needed() || server.link() == 0 {
                continue;
            }
            let in_session_pool = session_pools
                .iter()
                .any(|(db, user)| *db == server.database && *user == server.pool_user);
            if !in_session_pool {
                continue;
            }
            if let Some(client) = self.conns().get(server.link()) {
                if client.side == Side::Client && client.kill_reason() == KillReason::None {
                    client.kill(KillReason::ConfigChanged);
                }
            }
        }
    }
}

impl Pool {
    /// One round of maintenance.
    pub fn maintain(self: &Arc<Self>) {
        if self.paused() {
            // PAUSE: no server stays idle and none is opened until RESUME.
            self.close_idle(CloseReason::Paused);
            return;
        }
        // A pool made smaller by a reload shrinks as its servers come back.
        self.trim_excess();
        let now = Instant::now();
        let settings = self.settings();
        let mut expired: Vec<(Box<ServerConn>, CloseReason)> = Vec::new();
        let mut inner = self.inner.lock();
        let min = settings.min_pool_size;
        let mut open = inner.open();
        let mut kept = std::collections::VecDeque::with_capacity(inner.idle.len());
        // Oldest-used first, so the servers kept above min_pool_size are the most recently used.
        for conn in inner.idle.drain(..) {
            let idle_for = now.duration_since(conn.last_used);
            let too_old =
                !settings.server_lifetime.is_zero() && conn.age() > settings.server_lifetime;
            let too_idle =
                !settings.server_idle_timeout.is_zero() && idle_for > settings.server_idle_timeout;
            let reason = if conn.close_needed() {
                Some(CloseReason::Obsolete)
            } else if too_old {
                Some(CloseReason::LifetimeOver)
            } else if too_idle && open > min {
                Some(CloseReason::IdleTimeout)
            } else {
                None
            };
            if let Some(reason) = reason {
                open -= 1;
                expired.push((conn, reason));
            } else {
                kept.push_back(conn);
            }
        }
        inner.idle = kept;
        self.launch(&mut inner, false);
        // min_pool_size applies to pools that have clients or a forced user (PgBouncer), within
        // pool_size, and not while a failed login waits out server_login_retry. It never evicts.
        let wants_min = inner.clients > 0 || settings.forced_user;
        let cap = if settings.pool_size == 0 {
            min
        } else {
            min.min(settings.pool_size)
        };
        while wants_min && inner.open() < cap && !inner.closed && !Self::retry_pending(&inner) {
            if !self.try_open(&mut inner, false) {
                break;
            }
        }
        drop(inner);
        for (conn, reason) in expired {
            self.forget(conn, reason);
        }
    }
}
