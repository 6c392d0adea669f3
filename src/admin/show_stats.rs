//! SHOW STATS, SHOW STATS_TOTALS, SHOW STATS_AVERAGES and SHOW TOTALS.
//!
//! Owns: their columns and rows per version. Totals are each pool's live counters added up per
//! database; averages compare them with the "older" period snapshot (`stats::period`) exactly as
//! PgBouncer's `calc_average` does.
//! Does not: count (the relay and pool do) or tick periods (the ticker does).
//! Invariants: one row per database, in name order, including the console's `pgbouncer`; the
//! prepared-statement counters are 0 because pgsluice does not track prepared statements.

use bytes::BytesMut;

use super::table::{Col, ResultSet, Version, n, num, s, text, v};
use super::{ADMIN_DB, AdminContext, access::CONSOLE_USER};
use crate::stats::StatsSnapshot;
use crate::stats::period::{PoolKey, average};

const V23: Version = v(1, 23);
const V24: Version = v(1, 24);
const V26: Version = v(1, 26);

const STATS: &[Col] = &[
    text("database"),
    num("total_server_assignment_count").since(V23),
    num("total_xact_count"),
    num("total_query_count"),
    num("total_received"),
    num("total_sent"),
    num("total_xact_time"),
    num("total_query_time"),
    num("total_wait_time"),
    num("total_client_parse_count").since(V24),
    num("total_server_parse_count").since(V24),
    num("total_bind_count").since(V24),
    num("total_client_login_count").since(V26),
    num("avg_server_assignment_count").since(V23),
    num("avg_xact_count"),
    num("avg_query_count"),
    num("avg_recv"),
    num("avg_sent"),
    num("avg_xact_time"),
    num("avg_query_time"),
    num("avg_wait_time"),
    num("avg_client_parse_count").since(V24),
    num("avg_server_parse_count").since(V24),
    num("avg_bind_count").since(V24),
    num("avg_client_login_count").since(V26),
];

const TOTALS: &[Col] = &[
    text("database"),
    num("server_assignment_count").since(V23),
    num("xact_count"),
    num("query_count"),
    num("bytes_received"),
    num("bytes_sent"),
    num("xact_time"),
    num("query_time"),
    num("wait_time"),
    num("client_parse_count").since(V24),
    num("server_parse_count").since(V24),
    num("bind_count").since(V24),
    num("client_login_count").since(V26),
];

const AVERAGES: &[Col] = &[
    text("database"),
    num("server_assignment_count").since(V23),
    num("xact_count"),
    num("query_count"),
    num("bytes_received"),
    num("bytes_sent"),
    num("xact_time"),
    num("query_time"),
    num("wait_time"),
    num("avg_client_parse_count").since(V24),
    num("avg_server_parse_count").since(V24),
    num("avg_bind_count").since(V24),
    num("avg_client_login_count").since(V26),
];

const NAME_VALUE: &[Col] = &[text("name"), num("value")];

/// The twelve counters in PgBouncer's order, with the version that added each.
fn cells(x: &StatsSnapshot) -> [(super::table::Cell, Version); 12] {
    let old = super::table::OLDEST;
    [
        (n(x.server_assignment_count), V23),
        (n(x.xact_count), old),
        (n(x.query_count), old),
        (n(x.bytes_received), old),
        (n(x.bytes_sent), old),
        (n(x.xact_time_us), old),
        (n(x.query_time_us), old),
        (n(x.wait_time_us), old),
        (n(x.client_parse_count), V24),
        (n(x.server_parse_count), V24),
        (n(x.bind_count), V24),
        (n(x.client_login_count), V26),
    ]
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
        row.extend(cells(&cur).into_iter().map(|(c, _)| c));
        row.extend(cells(&avg).into_iter().map(|(c, _)| c));
        rs.row(row);
    }
    rs.write(out, version);
}

/// SHOW STATS_TOTALS.
pub(super) fn stats_totals(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let mut rs = ResultSet::new(TOTALS);
    for (db, cur, _) in per_database(ctx) {
        let mut row = vec![s(db)];
        row.extend(cells(&cur).into_iter().map(|(c, _)| c));
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
        row.extend(
            cells(&average(&cur, &old, window))
                .into_iter()
                .map(|(c, _)| c),
        );
        rs.row(row);
    }
    rs.write(out, version);
}

/// SHOW TOTALS: name/value rows over every database; names use PgBouncer's internal field names
/// (`client_bytes`, `ps_…`).
pub(super) fn totals(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    const NAMES: [&str; 12] = [
        "server_assignment_count",
        "xact_count",
        "query_count",
        "client_bytes",
        "server_bytes",
        "xact_time",
        "query_time",
        "wait_time",
        "ps_client_parse_count",
        "ps_server_parse_count",
        "ps_bind_count",
        "client_login_count",
    ];
    let (mut cur, mut old) = (StatsSnapshot::default(), StatsSnapshot::default());
    for (_, c, o) in per_database(ctx) {
        cur = cur + c;
        old = old + o;
    }
    let avg = average(&cur, &old, ctx.periods.window_us());
    let mut rs = ResultSet::new(NAME_VALUE);
    for (prefix, values) in [("total_", cells(&cur)), ("avg_", cells(&avg))] {
        for (name, (cell, since)) in NAMES.iter().zip(values) {
            rs.row_since(since, vec![s(format!("{prefix}{name}")), cell]);
        }
    }
    rs.write(out, version);
}
