//! PgBouncer's per-connection log lines: `C-7: app/alice@127.0.0.1:40112 closing because:
//! client close request (age=3s)`, `S-9: app/alice@127.0.0.1:5432 new connection to server (from
//! 127.0.0.1:38220)`.
//!
//! Owns: the prefix that names one connection ([`LogPeer`]) and the wording of the lifecycle
//! events operators grep for and alert on (`closing because:`, `new connection to server`),
//! written at PgBouncer's level (LOG, which is our `info`).
//! Does not: decide whether an event is logged (`log_connections`, `log_disconnections` and
//! `log_pooler_errors` are checked by the caller against the running config), or choose the
//! reason text (each side's typed error or close reason renders it).
//! Invariants: one line per event; the phrases are PgBouncer's, byte for byte, so log-based
//! alert rules written for PgBouncer keep matching; nothing here runs per message.

use std::fmt;

use super::conns::{ConnInfo, Side, now_micros};

/// The part of a log line that names a connection: side and id, database, user and peer.
#[derive(Debug, Clone)]
pub struct LogPeer {
    side: Side,
    id: u64,
    database: String,
    user: String,
    addr: String,
    port: u16,
    connect_time: u64,
}

impl LogPeer {
    /// A connection that is not (or not yet) in the connection directory, such as a client whose
    /// login failed. Its age counts from `connect_time` (µs since the epoch, 0 for "now").
    pub fn new(side: Side, id: u64, database: &str, user: &str, peer: (&str, u16)) -> LogPeer {
        LogPeer {
            side,
            id,
            database: database.to_owned(),
            user: user.to_owned(),
            addr: peer.0.to_owned(),
            port: peer.1,
            connect_time: 0,
        }
    }

    /// A connection from its directory record.
    pub fn of(info: &ConnInfo) -> LogPeer {
        let endpoints = info.endpoints();
        LogPeer {
            side: info.side,
            id: info.id,
            database: info.database.clone(),
            user: info.user.clone(),
            addr: endpoints.addr,
            port: endpoints.port,
            connect_time: info.connect_time,
        }
    }

    /// Seconds since the connection was made, as PgBouncer's `(age=Ns)`.
    fn age_secs(&self) -> u64 {
        if self.connect_time == 0 {
            return 0;
        }
        now_micros().saturating_sub(self.connect_time) / 1_000_000
    }

    /// Logs PgBouncer's disconnect line: `... closing because: REASON (age=Ns)`.
    pub fn closing(&self, reason: &dyn fmt::Display) {
        tracing::info!(
            "{self} closing because: {reason} (age={}s)",
            self.age_secs()
        );
    }

    /// Logs a lifecycle event of this connection in PgBouncer's words (`new connection to
    /// server (from 127.0.0.1:38220)`, `login attempt: ...`).
    pub fn event(&self, what: &dyn fmt::Display) {
        tracing::info!("{self} {what}");
    }
}

/// Logs a warning about a pool as a whole (`taking connection from reserve_pool`), at PgBouncer's
/// WARNING level, prefixed with the pool's `database/user`.
pub fn pool_warning(database: &str, user: &str, what: &dyn fmt::Display) {
    tracing::warn!("{database}/{user} {what}");
}

impl fmt::Display for LogPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Client => 'C',
            Side::Server => 'S',
        };
        write!(f, "{side}-{}: {}/{}@", self.id, self.database, self.user)?;
        if self.addr.contains(':') {
            write!(f, "[{}]:{}", self.addr, self.port)
        } else {
            write!(f, "{}:{}", self.addr, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_names_side_id_pool_and_peer_as_pgbouncer() {
        let c = LogPeer::new(Side::Client, 7, "app", "alice", ("127.0.0.1", 40112));
        assert_eq!(c.to_string(), "C-7: app/alice@127.0.0.1:40112");
        let s = LogPeer::new(Side::Server, 9, "app", "alice", ("::1", 5432));
        assert_eq!(s.to_string(), "S-9: app/alice@[::1]:5432");
        assert_eq!(c.age_secs(), 0);
    }

    #[test]
    fn age_counts_from_the_directory_record() {
        let info = ConnInfo::new(
            3,
            Side::Client,
            "db",
            "u",
            "u",
            super::super::conns::ConnState::ClientIdle,
        );
        let peer = LogPeer::of(&info);
        assert_eq!(peer.age_secs(), 0);
        assert!(peer.to_string().starts_with("C-3: db/u@"));
    }
}
