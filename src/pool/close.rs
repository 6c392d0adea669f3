//! Why the pool closes a server, in PgBouncer's words.
//!
//! Owns: [`CloseReason`], the one list of reasons a server connection is closed by the pooler,
//! and its text for the `closing because: ...` log line (PgBouncer's phrases, which operators'
//! log alerts match).
//! Does not: close anything or decide when to (the pool, the janitor and the guard do, and name
//! their reason here).
//! Invariants: every path that closes a server passes through `Pool::forget` with one of these.

/// Why a server connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// Idle for longer than `server_idle_timeout` (above `min_pool_size`).
    #[error("server idle timeout")]
    IdleTimeout,
    /// Older than `server_lifetime` when it came back or while idle.
    #[error("server lifetime over")]
    LifetimeOver,
    /// Marked by RECONNECT (or a reload that changed its connection settings).
    #[error("obsolete connection")]
    Obsolete,
    /// Its database was changed or removed by a reload.
    #[error("database configuration changed")]
    DatabaseChanged,
    /// `pool_size` was lowered and this server is past it.
    #[error("too many servers in the pool")]
    TooMany,
    /// It closed its connection (or broke) while idle.
    #[error("server conn crashed?")]
    Crashed,
    /// `server_check_query` failed before reuse.
    #[error("test query failed")]
    CheckFailed,
    /// It came back in a state that cannot be reused (unknown protocol state, a broken reply).
    #[error("unclean server")]
    Unclean,
    /// The background ROLLBACK or `server_reset_query` failed or took too long.
    #[error("reset query failed")]
    ResetFailed,
    /// Its client left while it was busy, so its state is unknown.
    #[error("client disconnect while server was not ready")]
    ClientGone,
    /// Aligning its parameters with a client's failed.
    #[error("var change failed")]
    AlignmentFailed,
    /// PAUSE is in force: servers close as they come back.
    #[error("pause mode")]
    Paused,
    /// Closed while idle to make room in its full pool for a replication client's own server
    /// (PgBouncer 1.26's wording names the limit).
    #[error("evicted for pool_size")]
    EvictedForPoolSize,
    /// Closed while idle to make room under `max_db_connections` for another pool's client.
    #[error("evicted for max_db_connections")]
    EvictedForDbLimit,
    /// Closed while idle to make room under `max_user_connections` for another pool's client.
    #[error("evicted for max_user_connections")]
    EvictedForUserLimit,
    /// A replication client's dedicated server, closed when its client left.
    #[error("replication client disconnected")]
    ReplicationDone,
    /// The pool was closed (shutdown, or its database removed).
    #[error("server shutting down")]
    PoolClosed,
}

#[cfg(test)]
mod tests {
    use super::CloseReason;

    /// The texts are PgBouncer's: log-based alert rules written for it must keep matching.
    #[test]
    fn reasons_read_as_pgbouncer_writes_them() {
        for (reason, text) in [
            (CloseReason::IdleTimeout, "server idle timeout"),
            (CloseReason::LifetimeOver, "server lifetime over"),
            (CloseReason::Obsolete, "obsolete connection"),
            (
                CloseReason::DatabaseChanged,
                "database configuration changed",
            ),
            (CloseReason::TooMany, "too many servers in the pool"),
            (CloseReason::Crashed, "server conn crashed?"),
            (CloseReason::CheckFailed, "test query failed"),
            (CloseReason::Unclean, "unclean server"),
            (CloseReason::ResetFailed, "reset query failed"),
            (
                CloseReason::ClientGone,
                "client disconnect while server was not ready",
            ),
            (CloseReason::AlignmentFailed, "var change failed"),
            (CloseReason::Paused, "pause mode"),
            (CloseReason::EvictedForPoolSize, "evicted for pool_size"),
            (
                CloseReason::EvictedForDbLimit,
                "evicted for max_db_connections",
            ),
            (
                CloseReason::EvictedForUserLimit,
                "evicted for max_user_connections",
            ),
            (
                CloseReason::ReplicationDone,
                "replication client disconnected",
            ),
            (CloseReason::PoolClosed, "server shutting down"),
        ] {
            assert_eq!(reason.to_string(), text);
        }
    }
}
