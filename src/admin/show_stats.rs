//! SHOW STATS, SHOW STATS_TOTALS, SHOW STATS_AVERAGES and SHOW TOTALS.
//!
//! Owns: their columns and rows per version. Totals are each pool's live counters added up per
//! database; averages compare them with the "older" period snapshot (`stats::period`) exactly as
//! PgBouncer's `calc_average` does.
//! Does not: count (the relay and pool do) or tick periods (the ticker does).
//! Invariants: one row per database, in name order, including the console's `pgbouncer`.

use bytes::BytesMut;

use super::table::{Cell, Col, OLDEST, ResultSet, Version, counter, n, s, text, v};
use super::{ADMIN_DB, AdminContext, access::CONSOLE_USER};
use crate::stats::StatsSnapshot;
use crate::stats::period::{PoolKey, average};

const V8: Version = v(1, 8);
const V23: Version = v(1, 23);
const V24: Version = v(1, 24);
const V26: Version = v(1, 26);

/// PgBouncer 1.7's `total_requests` block became the transaction/query counters in 1.8.
const STATS: &[Col] = &[
    text("database"),
    counter("total_server_assignment_count").since(V23),
    counter("total_requests").until(V8),
    counter("total_xact_count").since(V8),
    counter("total_query_count").since(V8),
    counter("total_received"),
    counter("total_sent"),
    counter("total_xact_time").since(V8),
    counter("total_query_time"),
    counter("total_wait_time").since(V8),
    counter("total_client_parse_count").since(V24),
    counter("total_server_parse_count").since(V24),
    counter("total_bind_count").since(V24),
    counter("total_client_login_count").since(V26),
    counter("avg_server_assignment_count").since(V23),
    counter("avg_req").until(V8),
    counter("avg_xact_count").since(V8),
    counter("avg_query_count").since(V8),
    counter("avg_recv"),
    counter("avg_sent"),
    counter("avg_query").until(V8),
    counter("avg_xact_time").since(V8),
    counter("avg_query_time").since(V8),
    counter("avg_wait_time").since(V8),
    counter("avg_client_parse_count").since(V24),
    counter("avg_server_parse_count").since(V24),
    counter("avg_bind_count").since(V24),
    counter("avg_client_login_count").since(V26),
];

/// STATS_TOTALS (since 1.8).
const TOTALS: &[Col] = &[
    text("database"),
    counter("server_assignment_count").since(V23),
    counter("xact_count"),
    counter("query_count"),
    counter("bytes_received"),
    counter("bytes_sent"),
    counter("xact_time"),
    counter("query_time"),
    counter("wait_time"),
    counter("client_parse_count").since(V24),
    counter("server_parse_count").since(V24),
    counter("bind_count").since(V24),
    counter("client_login_count").since(V26),
];

/// STATS_AVERAGES (since 1.8); the later columns really are `avg_`-prefixed.
const AVERAGES: &[Col] = &[
    text("database"),
    counter("server_assignment_count").since(V23),
    counter("xact_count"),
    counter("query_count"),
    counter("bytes_received"),
    counter("bytes_sent"),
    counter("xact_time"),
    counter("query_time"),
    counter("wait_time"),
    counter("avg_client_parse_count").since(V24),
    counter("avg_server_parse_count").since(V24),
    counter("avg_bind_count").since(V24),
    counter("avg_client_login_count").since(V26),
];

const NAME_VALUE: &[Col] = &[text("name"), counter("value")];

/// The counters in PgBouncer's order, as SHOW TOTALS names them (its internal field names:
/// `client_bytes`, `ps_…`), with the versions that send each.
const COUNTERS: [(&str, Version, Option<Version>); 13] = [
    ("server_assignment_count", V23, None),
    ("request_count", OLDEST, Some(V8)),
    ("xact_count", V8, None),
    ("query_count", V8, None),
    ("client_bytes", OLDEST, None),
    ("server_bytes", OLDEST, None),
    ("xact_time", V8, None),
    ("query_time", OLDEST, None),
    ("wait_time", V8, None),
    ("ps_client_parse_count", V24, None),
    ("ps_server_parse_count", V24, None),
    ("ps_bind_count", V24, None),
    ("client_login_count", V26, None),
];

/// The values of [`COUNTERS`] (1.7's requests are queries).
fn values(x: &StatsSnapshot) -> [Cell; 13] {
    [
        n(x.server_assignment_count),
        n(x.query_count),
        n(x.xact_count),
        n(x.query_count),
        n(x.bytes_received),
        n(x.bytes_sent),
        n(x.xact_time_us),
        n(x.query_time_us),
        n(x.wait_time_us),
        n(x.client_parse_count),
        n(x.server_parse_count),
        n(x.bind_count),
        n(x.client_login_count),
    ]
}

/// STATS_TOTALS/AVERAGES cells: [`values`] without 1.7's request count.
fn values_since_1_8(x: &StatsSnapshot) -> impl Iterator<Item = Cell> {
    values(x)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, c)| c)
}

/// Per database: (name, live totals, "older" totals).
fn per_database(ctx: &AdminContext) -> Vec<(String, StatsSnapshot, StatsSnapshot)> {
    let mut out: Vec<(String, StatsSnapshot, StatsSnapshot)> = Vec::new();
    let mut add = |db: &str, cur: StatsSnapshot, old: StatsSnapshot| match out
        .iter_mut()
        .find(|(name, _, _)| name == db)
    {
        Some(entry) => {
            entry.1 = entry.1 + cur;
            entry.2 = entry.2 + old;
        }
        None => out.push((db.to_owned(), cur, old)),
    };
    for pool in ctx.registry.pools() {
        let key: PoolKey = (pool.database.clone(), pool.user.clone());
        add(
            &pool.database,
            pool.stats.snapshot(),
            ctx.periods.older(&key),
        );
    }
    let admin_key: PoolKey = (ADMIN_DB.to_owned(), CONSOLE_USER.to_owned());
    add(
        ADMIN_DB,
        ctx.stats.snapshot(),
        ctx.periods.older(&admin_key),
    );
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// SHOW STATS.
pub(super) fn stats(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let window = ctx.periods.window_us();
    let mut rs = ResultSet::new(STATS);
    for (db, cur, old) in per_database(ctx) {
        let avg = average(&cur, &old, window);
        let mut row = vec![s(db)];
        row.extend(values(&cur));
        let mut avgs = values(&avg).to_vec();
        // 1.7's `avg_query` (average query time) sits after `avg_sent`.
        avgs.insert(6, n(avg.query_time_us));
        row.extend(avgs);
        rs.row(row);
    }
    rs.write(out, version);
}

/// SHOW STATS_TOTALS.
pub(super) fn stats_totals(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let mut rs = ResultSet::new(TOTALS);
    for (db, cur, _) in per_database(ctx) {
        let mut row = vec![s(db)];
        row.extend(values_since_1_8(&cur));
        rs.row(row);
    }
    rs.write(out, version);
}

/// SHOW STATS_AVERAGES.
pub(super) fn stats_averages(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let window = ctx.periods.window_us();
    let mut rs = ResultSet::new(AVERAGES);
    for (db, cur, old) in per_database(ctx) {
        let mut row = vec![s(db)];
        row.extend(values_since_1_8(&average(&cur, &old, window)));
        rs.row(row);
    }
    rs.write(out, version);
}

/// SHOW TOTALS: name/value rows over every database.
pub(super) fn totals(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let (mut cur, mut old) = (StatsSnapshot::default(), StatsSnapshot::default());
    for (_, c, o) in per_database(ctx) {
        cur = cur + c;
        old = old + o;
    }
    let avg = average(&cur, &old, ctx.periods.window_us());
    let mut rs = ResultSet::new(NAME_VALUE);
    for (prefix, cells) in [("total_", values(&cur)), ("avg_", values(&avg))] {
        for ((name, since, until), cell) in COUNTERS.iter().zip(cells) {
            rs.row_between(*since, *until, vec![s(format!("{prefix}{name}")), cell]);
        }
    }
    rs.write(out, version);
}
