//! Per-pool counters, as PgBouncer's SHOW STATS reports them, and their per-period averages.
//!
//! Owns: relaxed atomic counters added to by the client tasks (per read/write batch for bytes, per
//! query/transaction for the rest) and the arithmetic of averages. The counters never take a
//! lock; the modules below do, briefly and never per message: the period snapshots
//! ([`period`]) a mutex per tick and per SHOW STATS, the connection directory ([`conns`]) a
//! shard lock per login and logout, the alert table ([`alert_board`]) a mutex to swap or clone
//! an `Arc`.
//!
//! Does not: decide when a transaction starts or ends (the relay does) or render anything.
//!
//! Also here, because every layer above reads them: the connection directory ([`conns`]) behind
//! SHOW CLIENTS / SHOW SERVERS, the `stats_period` averages ([`period`]), latency
//! [`histogram`]s (recorded inside `xact_done`, `query_done` and `server_assigned`, so the hot
//! path makes no extra calls), PgBouncer's per-connection log lines ([`conn_log`]: `closing
//! because: ...`) and the [`alert_board`] the alert evaluator writes and the metrics
//! endpoint and admin console read.

pub mod alert_board;
pub mod conn_log;
pub mod conns;
pub mod histogram;
pub mod intern;
pub mod period;

use std::sync::atomic::{AtomicU64, Ordering};

use histogram::Histogram;

/// Counters of one pool since process start. Times are microseconds.
#[derive(Debug, Default)]
pub struct PoolStats {
    server_assignment_count: AtomicU64,
    xact_count: AtomicU64,
    query_count: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    xact_time_us: AtomicU64,
    query_time_us: AtomicU64,
    wait_time_us: AtomicU64,
    client_login_count: AtomicU64,
    client_parse_count: AtomicU64,
    server_parse_count: AtomicU64,
    bind_count: AtomicU64,
    errors: ErrorCounters,
    xact_hist: Histogram,
    query_hist: Histogram,
    wait_hist: Histogram,
}

/// Failures by kind, for metrics and alerts.
#[derive(Debug, Default)]
pub struct ErrorCounters {
    /// Client logins refused for a bad password or unknown user.
    pub auth_failures: AtomicU64,
    /// Clients disconnected by `query_wait_timeout`.
    pub query_wait_timeouts: AtomicU64,
    /// Server connections that failed to connect or log in.
    pub server_connect_failures: AtomicU64,
    /// Queries canceled by `query_timeout`.
    pub query_timeouts: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Times a server was handed to a client.
    pub server_assignment_count: u64,
    /// Transactions pooled.
    pub xact_count: u64,
    /// Queries pooled.
    pub query_count: u64,
    /// Bytes received from clients.
    pub bytes_received: u64,
    /// Bytes sent to clients.
    pub bytes_sent: u64,
    /// Microseconds spent in transactions.
    pub xact_time_us: u64,
    /// Microseconds spent in queries.
    pub query_time_us: u64,
    /// Microseconds clients waited for a server.
    pub wait_time_us: u64,
    /// Successful client logins.
    pub client_login_count: u64,
    /// Named Parse messages from clients.
    pub client_parse_count: u64,
    /// Parse messages the pooler sent to servers.
    pub server_parse_count: u64,
    /// Bind messages for named prepared statements.
    pub bind_count: u64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl PoolStats {
    /// A server was handed to a client after waiting `waited`.
    pub fn server_assigned(&self, waited: std::time::Duration) {
        bump(&self.server_assignment_count, 1);
        bump(&self.wait_time_us, micros(waited));
        self.wait_hist.record(waited);
    }

    /// A query (one ReadyForQuery) finished after `elapsed`.
    pub fn query_done(&self, elapsed: std::time::Duration) {
        bump(&self.query_count, 1);
        bump(&self.query_time_us, micros(elapsed));
        self.query_hist.record(elapsed);
    }

    /// A transaction finished after `elapsed`.
    pub fn xact_done(&self, elapsed: std::time::Duration) {
        bump(&self.xact_count, 1);
        bump(&self.xact_time_us, micros(elapsed));
        self.xact_hist.record(elapsed);
    }

    /// Bytes read from a client.
    pub fn received(&self, n: usize) {
        bump(&self.bytes_received, u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Bytes written to a client.
    pub fn sent(&self, n: usize) {
        bump(&self.bytes_sent, u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// A client logged in.
    pub fn client_login(&self) {
        bump(&self.client_login_count, 1);
    }

    /// A client prepared a named statement.
    pub fn client_parse(&self) {
        bump(&self.client_parse_count, 1);
    }

    /// The pooler prepared a statement on a server.
    pub fn server_parse(&self) {
        bump(&self.server_parse_count, 1);
    }

    /// A client bound a named prepared statement.
    pub fn bind(&self) {
        bump(&self.bind_count, 1);
    }

    /// Failure counters.
    pub fn errors(&self) -> &ErrorCounters {
        &self.errors
    }

    /// Transaction durations.
    pub fn xact_histogram(&self) -> &Histogram {
        &self.xact_hist
    }

    /// Query durations (one per ReadyForQuery).
    pub fn query_histogram(&self) -> &Histogram {
        &self.query_hist
    }

    /// Client wait times for a server (one per checkout).
    pub fn wait_histogram(&self) -> &Histogram {
        &self.wait_hist
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            server_assignment_count: get(&self.server_assignment_count),
            xact_count: get(&self.xact_count),
            query_count: get(&self.query_count),
            bytes_received: get(&self.bytes_received),
            bytes_sent: get(&self.bytes_sent),
            xact_time_us: get(&self.xact_time_us),
            query_time_us: get(&self.query_time_us),
            wait_time_us: get(&self.wait_time_us),
            client_login_count: get(&self.client_login_count),
            client_parse_count: get(&self.client_parse_count),
            server_parse_count: get(&self.server_parse_count),
            bind_count: get(&self.bind_count),
        }
    }
}

impl ErrorCounters {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        bump(counter, 1);
    }
}

impl std::ops::Add for StatsSnapshot {
    type Output = StatsSnapshot;
    fn add(self, o: StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            server_assignment_count: self.server_assignment_count + o.server_assignment_count,
            xact_count: self.xact_count + o.xact_count,
            query_count: self.query_count + o.query_count,
            bytes_received: self.bytes_received + o.bytes_received,
            bytes_sent: self.bytes_sent + o.bytes_sent,
            xact_time_us: self.xact_time_us + o.xact_time_us,
            query_time_us: self.query_time_us + o.query_time_us,
            wait_time_us: self.wait_time_us + o.wait_time_us,
            client_login_count: self.client_login_count + o.client_login_count,
            client_parse_count: self.client_parse_count + o.client_parse_count,
            server_parse_count: self.server_parse_count + o.server_parse_count,
            bind_count: self.bind_count + o.bind_count,
        }
    }
}
