//! SHOW POOLS and SHOW PEER_POOLS.
//!
//! Owns: their column lists per version and rows from `Pool::snapshot()`, plus the console's
//! own `pgbouncer` pool row (PgBouncer lists its admin pool like any other, mode `statement`).
//! Does not: count anything itself; the pool's one mutex makes the numbers consistent.
//! Invariants: rows are ordered by (database, user); the cancel columns are 0 because pgsluice
//! forwards a cancel request at once instead of queueing it.

use bytes::BytesMut;

use super::table::{Col, ResultSet, Version, count, int, n, s, text, v};
use super::{ADMIN_DB, AdminContext, access::CONSOLE_USER};
use crate::stats::conns::Side;

const POOLS: &[Col] = &[
    text("database"),
    text("user"),
    int("cl_active"),
    int("cl_waiting"),
    int("cl_cancel_req").since(v(1, 16)).until(v(1, 18)),
    int("cl_active_cancel_req").since(v(1, 18)),
    int("cl_waiting_cancel_req").since(v(1, 18)),
    int("sv_active"),
    int("sv_active_cancel").since(v(1, 18)),
    int("sv_being_canceled").since(v(1, 18)),
    int("sv_idle"),
    int("sv_used"),
    int("sv_tested"),
    int("sv_login"),
    int("maxwait"),
    int("maxwait_us").since(v(1, 8)),
    text("pool_mode"),
    text("load_balance_hosts").since(v(1, 24)),
];

const PEER_POOLS: &[Col] = &[
    int("peer_id"),
    int("cl_active_cancel_req"),
    int("cl_waiting_cancel_req"),
    int("sv_active_cancel"),
    int("sv_login"),
];

/// Number of console sessions now.
pub(super) fn console_sessions(ctx: &AdminContext) -> usize {
    ctx.registry
        .conns()
        .all()
        .iter()
        .filter(|c| c.side == Side::Client && c.database == ADMIN_DB)
        .count()
}

/// SHOW POOLS.
pub(super) fn pools(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let config = ctx.registry.config();
    let mut rows: Vec<((String, String), Vec<super::table::Cell>)> = Vec::new();
    for pool in ctx.registry.pools() {
        let snap = pool.snapshot();
        let lbh = config
            .database(&pool.database)
            .filter(|d| d.host.as_deref().is_some_and(|h| h.contains(',')))
            .and_then(|d| d.load_balance_hosts);
        let wait = snap.maxwait;
        rows.push((
            (snap.database.clone(), snap.user.clone()),
            vec![
                s(snap.database),
                s(snap.user),
                count(snap.cl_active),
                count(snap.cl_waiting),
                n(0),
                n(0),
                n(0),
                count(snap.sv_active),
                n(0),
                n(0),
                count(snap.sv_idle),
                count(snap.sv_used),
                count(snap.sv_tested),
                count(snap.sv_login),
                n(i32::try_from(wait.as_secs()).unwrap_or(i32::MAX)),
                n(wait.subsec_micros()),
                s(snap.pool_mode.as_str()),
                lbh,
            ],
        ));
    }
    let admin = console_sessions(ctx);
    let mut admin_row = vec![s(ADMIN_DB), s(CONSOLE_USER), count(admin)];
    admin_row.extend((0..13).map(|_| n(0)));
    admin_row.extend([s("statement"), None]);
    rows.push(((ADMIN_DB.to_owned(), CONSOLE_USER.to_owned()), admin_row));
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rs = ResultSet::new(POOLS);
    for (_, row) in rows {
        rs.row(row);
    }
    rs.write(out, version);
}

/// SHOW PEER_POOLS: pgsluice has no peers, so no rows.
pub(super) fn peer_pools(version: Version, out: &mut BytesMut) {
    ResultSet::new(PEER_POOLS).write(out, version);
}
