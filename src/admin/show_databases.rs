//! SHOW DATABASES, SHOW USERS and SHOW PEERS.
//!
//! Owns: their columns per version (`reserve_pool` renamed `reserve_pool_size` in 1.24, the
//! 1.23/1.24 additions) and rows from the config, the registry's connection counts and flags,
//! and the connection directory's client counts.
//! Does not: resolve settings differently from the pools: effective values follow PgBouncer's
//! rule (the database's value, else the global one).
//! Invariants: rows are in name order; the console's `pgbouncer` database and user are listed
//! as PgBouncer lists them; databases made from the `*` fallback appear once they have a pool.

use std::collections::{BTreeSet, HashMap};

use bytes::BytesMut;

use super::table::{Cell, Col, ResultSet, Version, count, int, n, s, text, v};
use super::{ADMIN_DB, AdminContext, access::CONSOLE_USER};
use crate::config::{Config, DatabaseDef};
use crate::stats::conns::Side;

const V23: Version = v(1, 23);
const V24: Version = v(1, 24);

const DATABASES: &[Col] = &[
    text("name"),
    text("host"),
    int("port"),
    text("database"),
    text("force_user"),
    int("pool_size"),
    int("min_pool_size").since(v(1, 16)),
    int("reserve_pool").until(V24),
    int("reserve_pool_size").since(V24),
    int("server_lifetime").since(V23),
    text("pool_mode"),
    text("load_balance_hosts").since(V24),
    int("max_connections"),
    int("current_connections"),
    int("max_client_connections").since(V24),
    int("current_client_connections").since(V24),
    int("paused").since(v(1, 8)),
    int("disabled").since(v(1, 8)),
];

const USERS: &[Col] = &[
    text("name"),
    text("pool_size").since(V23),
    text("reserve_pool_size").since(V24),
    text("pool_mode"),
    int("max_user_connections").since(V23),
    int("current_connections").since(V23),
    int("max_user_client_connections").since(V24),
    int("current_client_connections").since(V24),
];

const PEERS: &[Col] = &[int("peer_id"), text("host"), int("port"), int("pool_size")];

/// Logged-in clients per database and per user, counted once per command (not per row).
#[derive(Default)]
struct ClientCounts {
    by_db: HashMap<String, usize>,
    by_user: HashMap<String, usize>,
}

impl ClientCounts {
    fn new(ctx: &AdminContext) -> ClientCounts {
        let mut counts = ClientCounts::default();
        for c in ctx.registry.conns().all() {
            if c.side == Side::Client {
                *counts.by_db.entry(c.database.clone()).or_default() += 1;
                *counts.by_user.entry(c.user.clone()).or_default() += 1;
            }
        }
        counts
    }

    fn db(&self, name: &str) -> usize {
        self.by_db.get(name).copied().unwrap_or(0)
    }

    fn user(&self, name: &str) -> usize {
        self.by_user.get(name).copied().unwrap_or(0)
    }
}

fn all_databases(ctx: &AdminContext, config: &Config) -> Vec<DatabaseDef> {
    let mut names: BTreeSet<String> = config.databases.iter().map(|d| d.name.clone()).collect();
    names.extend(ctx.registry.pools().iter().map(|p| p.database.clone()));
    names
        .iter()
        .filter_map(|name| config.database(name))
        .collect()
}

fn database_row(
    ctx: &AdminContext,
    config: &Config,
    counts: &ClientCounts,
    db: &DatabaseDef,
) -> Vec<Cell> {
    let g = &config.general;
    let flags = ctx.registry.db_flags(&db.name);
    let reserve = db.reserve_pool_size.unwrap_or(g.reserve_pool_size);
    let lifetime = db.server_lifetime.unwrap_or(g.server_lifetime).as_secs();
    let lbh = db
        .host
        .as_deref()
        .filter(|h| h.contains(','))
        .and(db.load_balance_hosts.clone());
    vec![
        s(db.name.clone()),
        db.host.clone(),
        n(db.port),
        s(db.dbname.clone().unwrap_or_else(|| db.name.clone())),
        db.user.clone(),
        n(db.pool_size.unwrap_or(g.default_pool_size)),
        n(db.min_pool_size.unwrap_or(g.min_pool_size)),
        n(reserve),
        n(reserve),
        n(i32::try_from(lifetime).unwrap_or(i32::MAX)),
        db.pool_mode.map(|m| m.as_str().to_owned()),
        lbh,
        n(db.max_db_connections.unwrap_or(g.max_db_connections)),
        count(ctx.registry.db_connections(&db.name)),
        n(db.max_db_client_connections
            .unwrap_or(g.max_db_client_connections)),
        count(counts.db(&db.name)),
        n(i32::from(flags.paused())),
        n(i32::from(flags.disabled())),
    ]
}

fn admin_database_row(config: &Config, counts: &ClientCounts) -> Vec<Cell> {
    let g = &config.general;
    vec![
        s(ADMIN_DB),
        None,
        n(g.listen_port),
        s(ADMIN_DB),
        s(CONSOLE_USER),
        n(2),
        n(g.min_pool_size),
        n(g.reserve_pool_size),
        n(g.reserve_pool_size),
        n(i32::try_from(g.server_lifetime.as_secs()).unwrap_or(i32::MAX)),
        s("statement"),
        None,
        n(g.max_db_connections),
        n(0),
        n(g.max_db_client_connections),
        count(counts.db(ADMIN_DB)),
        n(0),
        n(0),
    ]
}

/// SHOW DATABASES.
pub(super) fn databases(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let config = ctx.registry.config();
    let counts = ClientCounts::new(ctx);
    let mut rows: Vec<(String, Vec<Cell>)> = all_databases(ctx, &config)
        .iter()
        .map(|db| (db.name.clone(), database_row(ctx, &config, &counts, db)))
        .collect();
    if !rows.iter().any(|(name, _)| name == ADMIN_DB) {
        rows.push((ADMIN_DB.to_owned(), admin_database_row(&config, &counts)));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rs = ResultSet::new(DATABASES);
    for (_, row) in rows {
        rs.row(row);
    }
    rs.write(out, version);
}

/// Every user PgBouncer would have in its user list: `auth_file`, `[users]`, the console user,
/// and users with pools or connected clients.
pub(super) fn user_names(ctx: &AdminContext, config: &Config) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = config.auth_users.keys().cloned().collect();
    names.extend(config.users.keys().cloned());
    names.insert(CONSOLE_USER.to_owned());
    names.extend(ctx.registry.pools().iter().map(|p| p.user.clone()));
    names.extend(
        ctx.registry
            .conns()
            .all()
            .iter()
            .filter(|c| c.side == Side::Client)
            .map(|c| c.user.clone()),
    );
    names
}

/// PgBouncer prints per-user sizes with `%9d`, or an empty string when not set.
fn padded(value: Option<u32>) -> String {
    value.map(|v| format!("{v:9}")).unwrap_or_default()
}

/// SHOW USERS.
pub(super) fn users(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let config = ctx.registry.config();
    let g = &config.general;
    let counts = ClientCounts::new(ctx);
    let mut rs = ResultSet::new(USERS);
    for name in user_names(ctx, &config) {
        let u = config.users.get(&name);
        rs.row(vec![
            s(name.clone()),
            s(padded(u.and_then(|u| u.pool_size))),
            s(padded(u.and_then(|u| u.reserve_pool_size))),
            u.and_then(|u| u.pool_mode).map(|m| m.as_str().to_owned()),
            n(u.and_then(|u| u.max_user_connections)
                .unwrap_or(g.max_user_connections)),
            count(ctx.registry.user_connections(&name)),
            n(u.and_then(|u| u.max_user_client_connections)
                .unwrap_or(g.max_user_client_connections)),
            count(counts.user(&name)),
        ]);
    }
    rs.write(out, version);
}

/// SHOW PEERS: the `[peers]` section, by peer id (`pool_size` defaults to `default_pool_size`).
pub(super) fn peers(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let config = ctx.registry.config();
    let mut rs = ResultSet::new(PEERS);
    for peer in config.peers.values() {
        rs.row(vec![
            n(peer.id),
            s(peer.host.clone()),
            n(peer.port),
            n(peer.pool_size.unwrap_or(config.general.default_pool_size)),
        ]);
    }
    rs.write(out, version);
}
