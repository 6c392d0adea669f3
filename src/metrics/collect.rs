//! The `/metrics` page: every metric family, rendered from snapshots at scrape time.
//!
//! Owns: metric names, help texts, labels, and the order of families. Per pool it reads
//! `Pool::snapshot()` (the SHOW POOLS numbers, one short lock), the stats atomics and the
//! histograms; then the alert table ([`super::alert_families`]) and `/proc/self`
//! ([`super::process`]).
//!
//! Does not: keep state between scrapes or touch the pooling path (recording stays in
//! `stats`, which knows nothing about Prometheus).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use tokio::time::Instant;

use super::process;
use super::text::{Kind, Page, Value};
use crate::pool::{PoolSnapshot, Registry};
use crate::stats::StatsSnapshot;
use crate::stats::alert_board::AlertBoard;
use crate::stats::histogram::{HistogramSnapshot, to_f64};

/// What a scrape reads.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The pools.
    pub registry: Arc<Registry>,
    /// The alert table.
    pub board: Arc<AlertBoard>,
    /// When the process started serving (monotonic).
    pub started: Instant,
    /// The same moment on the wall clock.
    pub started_wall: SystemTime,
}

struct PoolData {
    pool: PoolSnapshot,
    stats: StatsSnapshot,
    errors: [(&'static str, u64); 4],
    xact: HistogramSnapshot,
    query: HistogramSnapshot,
    wait: HistogramSnapshot,
}

/// Name, type, help, and the value of one pool (or `None` to leave the pool out).
type PoolFamily = (
    &'static str,
    Kind,
    &'static str,
    fn(&PoolData) -> Option<Value>,
);
/// Name, help, and the counter of one pool.
type CounterFamily = (&'static str, &'static str, fn(&StatsSnapshot) -> u64);
/// Name, help, and the histogram of one pool.
type HistogramFamily = (
    &'static str,
    &'static str,
    fn(&PoolData) -> &HistogramSnapshot,
);

fn usize_value(n: usize) -> Value {
    Value::Int(u64::try_from(n).unwrap_or(u64::MAX))
}

fn gather(registry: &Registry) -> Vec<PoolData> {
    registry
        .pools()
        .iter()
        .map(|pool| {
            let e = pool.stats.errors();
            let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            PoolData {
                pool: pool.snapshot(),
                stats: pool.stats.snapshot(),
                errors: [
                    ("auth_failure", get(&e.auth_failures)),
                    ("query_wait_timeout", get(&e.query_wait_timeouts)),
                    ("server_connect_failure", get(&e.server_connect_failures)),
                    ("query_timeout", get(&e.query_timeouts)),
                ],
                xact: pool.stats.xact_histogram().snapshot(),
                query: pool.stats.query_histogram().snapshot(),
                wait: pool.stats.wait_histogram().snapshot(),
            }
        })
        .collect()
}

/// One gauge or counter family with a value per pool (`None` leaves the pool out).
fn per_pool(
    page: &mut Page,
    pools: &[PoolData],
    (name, kind, help): (&str, Kind, &str),
    value: impl Fn(&PoolData) -> Option<Value>,
) {
    page.family(name, kind, help);
    for p in pools {
        if let Some(v) = value(p) {
            page.sample(
                name,
                &[("database", &p.pool.database), ("user", &p.pool.user)],
                v,
            );
        }
    }
}

/// One family with a `state`/`kind` label per pool.
fn per_pool_by(
    page: &mut Page,
    pools: &[PoolData],
    (name, help, label): (&str, &str, &str),
    values: impl Fn(&PoolData) -> Vec<(&'static str, Value)>,
) {
    let kind = if name.ends_with("_total") {
        Kind::Counter
    } else {
        Kind::Gauge
    };
    page.family(name, kind, help);
    for p in pools {
        for (state, v) in values(p) {
            let labels = [
                ("database", p.pool.database.as_str()),
                ("user", p.pool.user.as_str()),
                (label, state),
            ];
            page.sample(name, &labels, v);
        }
    }
}

fn pool_families(page: &mut Page, pools: &[PoolData]) {
    per_pool_by(
        page,
        pools,
        (
            "pgsluice_pool_client_connections",
            "Client connections of the pool by state (SHOW POOLS cl_active, cl_waiting).",
            "state",
        ),
        |p| {
            vec![
                ("active", usize_value(p.pool.cl_active)),
                ("waiting", usize_value(p.pool.cl_waiting)),
            ]
        },
    );
    per_pool_by(
        page,
        pools,
        (
            "pgsluice_pool_server_connections",
            "Server connections of the pool by state (SHOW POOLS sv_active, sv_idle, sv_used, sv_tested, sv_login).",
            "state",
        ),
        |p| {
            vec![
                ("active", usize_value(p.pool.sv_active)),
                ("idle", usize_value(p.pool.sv_idle)),
                ("used", usize_value(p.pool.sv_used)),
                ("tested", usize_value(p.pool.sv_tested)),
                ("login", usize_value(p.pool.sv_login)),
            ]
        },
    );
    let gauge = Kind::Gauge;
    let families: [PoolFamily; 4] = [
        (
            "pgsluice_pool_size",
            gauge,
            "Configured pool size (0 = unlimited).",
            |p| Some(usize_value(p.pool.pool_size)),
        ),
        (
            "pgsluice_pool_reserve_size",
            gauge,
            "Configured reserve pool size.",
            |p| Some(usize_value(p.pool.reserve_pool_size)),
        ),
        (
            "pgsluice_pool_utilization_ratio",
            gauge,
            "Server connections in use by clients divided by pool size (absent when the pool size is unlimited).",
            |p| {
                let size = u64::try_from(p.pool.pool_size).ok().filter(|&s| s > 0)?;
                let active = u64::try_from(p.pool.sv_active).unwrap_or(u64::MAX);
                Some(Value::Float(to_f64(active) / to_f64(size)))
            },
        ),
        (
            "pgsluice_pool_client_maxwait_seconds",
            gauge,
            "How long the oldest waiting client of the pool has waited.",
            |p| Some(Value::Float(p.pool.maxwait.as_secs_f64())),
        ),
    ];
    for (name, kind, help, f) in families {
        per_pool(page, pools, (name, kind, help), f);
    }
}

fn counter_families(page: &mut Page, pools: &[PoolData]) {
    let counter = Kind::Counter;
    let families: [CounterFamily; 6] = [
        (
            "pgsluice_transactions_total",
            "Transactions pooled (SHOW STATS total_xact_count).",
            |s| s.xact_count,
        ),
        (
            "pgsluice_queries_total",
            "Queries pooled (SHOW STATS total_query_count).",
            |s| s.query_count,
        ),
        (
            "pgsluice_received_bytes_total",
            "Bytes received from clients.",
            |s| s.bytes_received,
        ),
        ("pgsluice_sent_bytes_total", "Bytes sent to clients.", |s| {
            s.bytes_sent
        }),
        (
            "pgsluice_server_assignments_total",
            "Times a server was assigned to a client.",
            |s| s.server_assignment_count,
        ),
        (
            "pgsluice_client_logins_total",
            "Successful client logins.",
            |s| s.client_login_count,
        ),
    ];
    for (name, help, f) in families {
        per_pool(page, pools, (name, counter, help), |p| {
            Some(Value::Int(f(&p.stats)))
        });
    }
    per_pool_by(
        page,
        pools,
        (
            "pgsluice_errors_total",
            "Failures by kind: auth_failure, query_wait_timeout, server_connect_failure, query_timeout.",
            "kind",
        ),
        |p| p.errors.iter().map(|&(k, n)| (k, Value::Int(n))).collect(),
    );
    let hists: [HistogramFamily; 3] = [
        (
            "pgsluice_transaction_duration_seconds",
            "Transaction durations (first query to idle).",
            |p| &p.xact,
        ),
        (
            "pgsluice_query_duration_seconds",
            "Query durations (query to ReadyForQuery).",
            |p| &p.query,
        ),
        (
            "pgsluice_client_wait_seconds",
            "Time clients waited for a server, per assignment.",
            |p| &p.wait,
        ),
    ];
    for (name, help, f) in hists {
        page.family(name, Kind::Histogram, help);
        for p in pools {
            let labels = [
                ("database", p.pool.database.as_str()),
                ("user", p.pool.user.as_str()),
            ];
            page.histogram(name, &labels, f(p));
        }
    }
}

/// Renders the whole page.
pub fn render(src: &Sources) -> String {
    let pools = gather(&src.registry);
    let mut page = Page::new();
    pool_families(&mut page, &pools);
    counter_families(&mut page, &pools);
    super::alert_families::render(&mut page, &src.board);
    process::render(&mut page, src.started, src.started_wall);
    page.finish()
}
