//! Changing a running pool on reload, as PgDog does rather than rebuilding it: new settings and
//! server spec are swapped in, the pool keeps its servers, and the new limits apply live.
//!
//! Owns: [`Pool::apply`], the trimming of idle servers above `pool_size + reserve_pool_size`,
//! marking every server of a pool whose server changed (as RECONNECT does), and the spec
//! comparisons the registry's reload uses.
//! Does not: decide which pools a reload keeps (the registry does).
//! Invariants: a checked-out server is never taken from its client; a smaller pool shrinks as
//! its servers come back idle (here and in the janitor's next round); a bigger pool opens
//! servers for its waiting clients at once.

use std::sync::Arc;

use super::{CloseReason, Pool, PoolSettings};
use crate::server::{ServerConn, ServerSpec};
use crate::stats::conns::Side;

/// What a reload did to the pools, for the log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Pools kept with their servers, whose settings, secret or limits changed.
    pub updated: usize,
    /// Pools whose server changed: their servers are replaced as they are released.
    pub reconnected: usize,
    /// Pools of removed databases, kept until their clients leave.
    pub retired: usize,
}

/// Whether servers opened for `a` can serve `b`: same address, database, login, startup and
/// TLS settings.
pub(super) fn same_server(a: &ServerSpec, b: &ServerSpec) -> bool {
    a.addr == b.addr
        && a.dbname == b.dbname
        && a.user == b.user
        && a.startup_params == b.startup_params
        && a.connect_query == b.connect_query
        // ServerTls prints its mode and a digest of its settings and files.
        && format!("{:?}", a.tls) == format!("{:?}", b.tls)
}

/// Whether anything used only for new servers differs.
pub(super) fn spec_changed(a: &ServerSpec, b: &ServerSpec) -> bool {
    a.secret != b.secret
        || a.connect_timeout != b.connect_timeout
        || a.max_packet_size != b.max_packet_size
        || a.keepalive != b.keepalive
}

impl Pool {
    /// Swaps in reloaded settings and spec, closes idle servers above the new size, and opens
    /// servers for waiting clients if the pool grew.
    pub fn apply(self: &Arc<Self>, settings: PoolSettings, spec: ServerSpec) {
        *self.spec.write() = Arc::new(spec);
        *self.settings.write() = Arc::new(settings);
        self.trim_excess();
        self.launch(&mut self.inner.lock(), false);
    }

    /// Closes idle servers while more are open than `pool_size + reserve_pool_size` (and
    /// `min_pool_size`) allow; the least recently used go first.
    pub(super) fn trim_excess(&self) {
        let settings = self.settings();
        if settings.pool_size == 0 {
            return;
        }
        let cap = (settings.pool_size + settings.reserve_pool_size).max(settings.min_pool_size);
        let excess: Vec<Box<ServerConn>> = {
            let mut inner = self.inner.lock();
            let over = inner.open().saturating_sub(cap).min(inner.idle.len());
            // Check-in pushes to the back, so the front holds the least recently used.
            inner.idle.drain(..over).collect()
        };
        for conn in excess {
            tracing::debug!(
                server = conn.id,
                db = %self.database,
                user = %self.user,
                "closing server: pool_size lowered"
            );
            self.forget(conn, CloseReason::TooMany);
        }
    }

    /// Marks every server of this pool `close_needed` (SHOW SERVERS shows it) and closes the
    /// idle ones; the others close when released, after their transaction.
    pub(super) fn reconnect_all(&self) {
        for info in self.control.conns.all() {
            if info.side == Side::Server
                && info.database == self.database
                && info.pool_user == self.user
            {
                info.set_close_needed();
            }
        }
        self.forget_welcome();
        self.close_idle_if(
            |conn| conn.entry.as_ref().is_some_and(|e| e.close_needed()),
            CloseReason::DatabaseChanged,
        );
    }

    /// The pool's servers are all to be replaced (RECONNECT, a changed server): the parameters
    /// the old ones reported no longer greet new clients, and, as PgBouncer's dirty pool, the
    /// busy old servers no longer count as usable, so a refused login of a new server fails
    /// the clients queued for one at once instead of leaving them waiting.
    pub(super) fn forget_welcome(&self) {
        self.inner.lock().welcome = None;
    }

    /// The server connection settings (address, TLS...) changed: a login failure remembered
    /// from the old ones says nothing about the new, so the next client gets a fresh attempt
    /// instead of the old error for the rest of `server_login_retry`.
    pub(super) fn forget_login_failure(&self) {
        let mut inner = self.inner.lock();
        inner.login_failed = None;
        inner.retry_at = None;
    }

    /// Logged-in clients attached to this pool.
    pub fn client_count(&self) -> usize {
        self.inner.lock().clients
    }

    /// No client, no server (open or opening) and nobody queued: `pool_idle_timeout` may free it.
    pub(super) fn is_unused(&self) -> bool {
        let inner = self.inner.lock();
        inner.clients == 0
            && inner.open() == 0
            && inner.waiters.is_empty()
            && inner.dedicated.is_empty()
    }
}
