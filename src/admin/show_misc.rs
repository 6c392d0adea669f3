//! The small SHOW commands: LISTS, VERSION, STATE, MEM, CONFIG, DNS_HOSTS, DNS_ZONES, HELP, and
//! the faked parameters (`SHOW client_encoding` …) some drivers ask for.
//!
//! Owns: their columns, PgBouncer's row names for LISTS, and SHOW MEM's figures for pgsluice's
//! own structures (struct size × live count; buffers are not counted).
//! Does not: change state.
//! Invariants: SHOW VERSION is one column named `version` whose value starts with
//! `PgBouncer <x.y.z>` (the emulated version) so tools that parse `\d+\.\d+\.\d+` read it.

use bytes::BytesMut;

use super::table::{Col, ResultSet, Version, count, int, n, s, text, v};
use super::{AdminContext, show_databases};
use crate::protocol::backend;
use crate::stats::conns::Side;

const LISTS: &[Col] = &[text("list"), int("items")];
const VERSION: &[Col] = &[text("version")];
const KEY_VALUE: &[Col] = &[text("key"), text("value")];
const MEM: &[Col] = &[
    text("name"),
    int("size"),
    int("used"),
    int("free"),
    int("memtotal"),
];
const CONFIG: &[Col] = &[
    text("key"),
    text("value"),
    text("default").since(v(1, 15)),
    text("changeable"),
];
const DNS_HOSTS: &[Col] = &[
    text("hostname"),
    super::table::col("ttl", super::table::Type::Int8),
    text("addrs"),
];
const DNS_ZONES: &[Col] = &[
    text("zonename"),
    super::table::col("serial", super::table::Type::Int8),
    int("count"),
];

/// SHOW LISTS.
pub(super) fn lists(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let config = ctx.registry.config();
    let pools = ctx.registry.pools();
    let mut dbs: std::collections::BTreeSet<&str> =
        config.databases.iter().map(|d| d.name.as_str()).collect();
    dbs.extend(pools.iter().map(|p| p.database.as_str()));
    dbs.insert(super::ADMIN_DB);
    let conns = ctx.registry.conns();
    let clients = conns.count(Side::Client);
    let accepted = ctx.connections.load(std::sync::atomic::Ordering::Relaxed);
    let since19 = v(1, 19);
    let mut rs = ResultSet::new(LISTS);
    rs.row(vec![s("databases"), count(dbs.len())]);
    rs.row(vec![
        s("users"),
        count(show_databases::user_names(ctx, &config).len()),
    ]);
    rs.row_since(since19, vec![s("peers"), count(config.peers.len())]);
    rs.row(vec![s("pools"), count(pools.len() + 1)]);
    rs.row_since(since19, vec![s("peer_pools"), n(0)]);
    rs.row(vec![s("free_clients"), n(0)]);
    rs.row(vec![s("used_clients"), count(clients)]);
    rs.row(vec![
        s("login_clients"),
        count(accepted.saturating_sub(clients)),
    ]);
    rs.row(vec![s("free_servers"), n(0)]);
    rs.row(vec![s("used_servers"), count(conns.count(Side::Server))]);
    for name in ["dns_names", "dns_zones", "dns_queries", "dns_pending"] {
        rs.row(vec![s(name), n(0)]);
    }
    rs.write(out, version);
}

/// The SHOW VERSION value.
pub fn version_string(version: Version) -> String {
    format!(
        "PgBouncer {} (pgsluice {})",
        version.full(),
        env!("CARGO_PKG_VERSION")
    )
}

/// SHOW VERSION: a one-column result since 1.12; before, a NOTICE `PgBouncer version x.y.z`.
pub(super) fn version(version: Version, out: &mut BytesMut) {
    if version < v(1, 12) {
        let text = format!(
            "PgBouncer version {} (pgsluice {})",
            version.full(),
            env!("CARGO_PKG_VERSION")
        );
        backend::notice_response(out, "00000", &text, None);
        backend::command_complete(out, "SHOW");
        return;
    }
    let mut rs = ResultSet::new(VERSION);
    rs.row(vec![s(version_string(version))]);
    rs.write(out, version);
}

/// SHOW STATE (1.19+).
pub(super) fn state(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let paused = ctx.registry.globally_paused();
    let yes_no = |b: bool| s(if b { "yes" } else { "no" });
    let mut rs = ResultSet::new(KEY_VALUE);
    rs.row(vec![s("active"), yes_no(!paused)]);
    rs.row(vec![s("paused"), yes_no(paused)]);
    rs.row(vec![s("suspended"), yes_no(false)]);
    rs.write(out, version);
}

/// SHOW MEM: one row per kind of pgsluice structure, `size` bytes each, `used` live ones.
pub(super) fn mem(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let config = ctx.registry.config();
    let conns = ctx.registry.conns();
    let clients = conns.count(Side::Client);
    let servers = conns.count(Side::Server);
    let rows = [
        (
            "user_cache",
            std::mem::size_of::<crate::config::UserDef>(),
            show_databases::user_names(ctx, &config).len(),
        ),
        (
            "db_cache",
            std::mem::size_of::<crate::config::DatabaseDef>(),
            config.databases.len(),
        ),
        (
            "pool_cache",
            std::mem::size_of::<crate::pool::Pool>(),
            ctx.registry.pools().len(),
        ),
        ("server_cache", ctx.mem_sizes.server, servers),
        ("client_cache", ctx.mem_sizes.client, clients),
        (
            "conn_info_cache",
            std::mem::size_of::<crate::stats::conns::ConnInfo>(),
            clients + servers,
        ),
    ];
    let mut rs = ResultSet::new(MEM);
    for (name, size, used) in rows {
        rs.row(vec![
            s(name),
            count(size),
            count(used),
            n(0),
            count(size.saturating_mul(used)),
        ]);
    }
    rs.write(out, version);
}

/// SHOW CONFIG.
pub(super) fn config(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let config = ctx.registry.config();
    let mut rs = ResultSet::new(CONFIG);
    for row in crate::config::show_config(&config) {
        rs.row(vec![
            s(row.key),
            s(row.value),
            s(row.default),
            s(if row.changeable { "yes" } else { "no" }),
        ]);
    }
    rs.write(out, version);
}

/// SHOW DNS_HOSTS: pgsluice keeps no DNS cache (it resolves at connect time), so no rows.
pub(super) fn dns_hosts(version: Version, out: &mut BytesMut) {
    ResultSet::new(DNS_HOSTS).write(out, version);
}

/// SHOW DNS_ZONES: no rows, as above.
pub(super) fn dns_zones(version: Version, out: &mut BytesMut) {
    ResultSet::new(DNS_ZONES).write(out, version);
}

/// SHOW HELP: a NOTICE listing the commands of the emulated version (plus pgsluice's SHOW
/// ALERTS), then `SHOW`.
pub(super) fn help(version: Version, out: &mut BytesMut) {
    let mut lines = vec!["SHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION"];
    if version >= v(1, 19) {
        lines.push("SHOW PEERS|PEER_POOLS");
        lines.push("SHOW SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE");
    } else {
        lines.push("SHOW SOCKETS|ACTIVE_SOCKETS|LISTS|MEM");
    }
    lines.extend([
        "SHOW DNS_HOSTS|DNS_ZONES",
        "SHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS",
        "SHOW ALERTS",
        "SET key = arg",
        "RELOAD",
        "PAUSE [<db>]",
        "RESUME [<db>]",
        "DISABLE <db>",
        "ENABLE <db>",
        "RECONNECT [<db>]",
        "KILL [<db>]",
    ]);
    if version >= v(1, 24) {
        lines.push("KILL_CLIENT <client_id>");
    }
    lines.extend([
        "SHUTDOWN",
        "SHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS",
        "WAIT_CLOSE [<db>]",
    ]);
    let detail = lines.iter().fold(String::new(), |mut acc, l| {
        acc.push_str("\n\t");
        acc.push_str(l);
        acc
    });
    backend::notice_response(out, "00000", "Console usage", Some(&detail));
    backend::command_complete(out, "SHOW");
}

/// Parameters some drivers SET or SHOW on connect; the console fakes them (PgBouncer's
/// `fake_param_list`; `extra_float_digits` since 1.26, for JDBC).
pub(super) fn fake_param(name: &str, version: Version) -> Option<(&'static str, &'static str)> {
    const FAKE: &[(&str, &str)] = &[
        ("client_encoding", "UTF-8"),
        ("default_transaction_isolation", "read committed"),
        ("standard_conforming_strings", "on"),
        ("datestyle", "ISO"),
        ("timezone", "GMT"),
    ];
    FAKE.iter()
        .copied()
        .chain((version >= v(1, 26)).then_some(("extra_float_digits", "1")))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// SHOW of a faked parameter: one column named after it.
pub(super) fn show_fake(name: &'static str, value: &'static str, out: &mut BytesMut) {
    let columns = [text(name)];
    let mut rs = ResultSet::new(&columns);
    rs.row(vec![s(value)]);
    rs.write(out, super::table::LATEST);
}
