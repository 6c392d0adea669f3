//! Changing a running pool on reload, as PgDog does rather than rebuilding it: new settings and
//! server spec are swapped in, the pool keeps its servers, and the new limits apply live.
//!
//! Owns: [`Pool::apply`] and the trimming of idle servers above `pool_size + reserve_pool_size`.
//! Does not: decide whether a pool can be kept (the registry compares server identities).
//! Invariants: a checked-out server is never taken from its client; a smaller pool shrinks as
//! its servers come back idle (here and in the janitor's next round); a bigger pool opens
//! servers for its waiting clients at once.

use std::sync::Arc;

use super::{Pool, PoolSettings};
use crate::server::{ServerConn, ServerSpec};

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
        let excess: Vec<ServerConn> = {
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
            self.forget(conn);
        }
    }

    /// Logged-in clients attached to this pool.
    pub fn client_count(&self) -> usize {
        self.inner.lock().clients
    }
}
