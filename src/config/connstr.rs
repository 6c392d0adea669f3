//! The `[databases]` section: `name = key=value ...` connection strings.
//!
//! Owns: splitting a connection string into pairs (PgBouncer's `cstr_get_pair`: blanks separate
//! pairs, values may be `'single quoted'` with `''` as an escaped quote, empty values are a
//! syntax error), and turning pairs into a [`DatabaseDef`]. The TOML form hands its
//! `[databases.<name>]` tables to [`build`] as pairs, so both forms share these rules.
//! Does not: resolve hosts or check that `auth_dbname` names a configured database.
//! Invariants: keys are case-sensitive as in PgBouncer; an unknown key fails with
//! "unrecognized connection parameter: KEY"; numbers follow `atoi` (see `duration.rs`), with
//! `-1` meaning "not set"; `port` defaults to 5432; never panics on any input.

use super::duration::{atoi, atoi_opt_secs, atoi_opt_u32};
use super::types::{DatabaseDef, PoolMode};

/// Per-database keys owned by pgsluice's alerting, kept raw in [`DatabaseDef::extra`].
pub const ALERT_KEYS: &[&str] = &[
    "alert_pool_utilization",
    "alert_pool_utilization_for",
    "alert_client_wait",
    "alert_client_wait_for",
    "alert_p95_budget_ms",
    "alert_p95_window",
];

/// Every key a `[databases]` entry accepts, for documentation.
pub const KEYS: &[(&str, &str)] = &[
    (
        "dbname",
        "database name on the server (default: the name clients use)",
    ),
    (
        "host",
        "host name, IP, or unix socket directory (starts with `/`); may be a comma-separated list",
    ),
    ("port", "server port (default 5432)"),
    (
        "user",
        "forced user: every client shares one pool logged in as this user",
    ),
    ("password", "password for the forced user"),
    ("auth_user", "overrides the global auth_user"),
    ("auth_query", "overrides the global auth_query"),
    ("auth_dbname", "overrides the global auth_dbname"),
    ("pool_size", "pool size for this database"),
    ("min_pool_size", "minimum pool size for this database"),
    (
        "reserve_pool_size",
        "reserve pool for this database; `reserve_pool` is an alias",
    ),
    ("connect_query", "query run on every new server connection"),
    ("pool_mode", "session, transaction or statement"),
    (
        "query_wait_timeout",
        "per-database query_wait_timeout in whole seconds; -1 means not set",
    ),
    ("load_balance_hosts", "round-robin (default) or disable"),
    (
        "max_db_connections",
        "server connection cap for this database",
    ),
    (
        "max_db_client_connections",
        "client connection cap for this database",
    ),
    (
        "server_lifetime",
        "per-database server_lifetime in whole seconds",
    ),
    (
        "client_encoding",
        "sent to the server in the startup packet",
    ),
    ("datestyle", "sent to the server in the startup packet"),
    ("timezone", "sent to the server in the startup packet"),
    (
        "application_name",
        "sent to the server in the startup packet",
    ),
];

/// Splits a connection string into `(key, value)` pairs.
pub fn split_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    const SYNTAX: &str = "syntax error in connection string";
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let key_end = rest.find(['=', ' ', '\t']).unwrap_or(rest.len());
        let key = &rest[..key_end];
        let after = rest[key_end..].trim_start();
        let Some(after) = after.strip_prefix('=') else {
            return Err(SYNTAX.to_owned());
        };
        if key.is_empty() {
            return Err(SYNTAX.to_owned());
        }
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('\'') {
            let (v, tail) = unquote(q).ok_or(SYNTAX)?;
            // PgBouncer silently eats the character after a closing quote; demand a blank.
            if !(tail.is_empty() || tail.starts_with([' ', '\t'])) {
                return Err(SYNTAX.to_owned());
            }
            (v, tail)
        } else {
            let end = after.find([' ', '\t']).unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        if value.is_empty() {
            return Err(SYNTAX.to_owned());
        }
        pairs.push((key.to_owned(), value));
        rest = tail.trim_start();
    }
    Ok(pairs)
}

/// Reads a single-quoted value after its opening quote; returns it and the text after the
/// closing quote.
fn unquote(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|&(_, n)| n == '\'') {
                chars.next();
                out.push('\'');
                continue;
            }
            return Some((out, &text[i + 1..]));
        }
        out.push(c);
    }
    None
}

/// Parses a pool mode the way PgBouncer's lookup does (case-insensitive).
pub fn parse_pool_mode(text: &str) -> Option<PoolMode> {
    [
        PoolMode::Session,
        PoolMode::Transaction,
        PoolMode::Statement,
    ]
    .into_iter()
    .find(|m| m.as_str().eq_ignore_ascii_case(text))
}

/// Checks a database name: `pgbouncer` is reserved.
pub fn check_name(name: &str) -> Result<(), String> {
    if name == "pgbouncer" {
        return Err(format!("database name \"{name}\" is reserved"));
    }
    if name.is_empty() {
        return Err("empty database name".to_owned());
    }
    Ok(())
}

/// Parses one `[databases]` line.
pub fn parse(name: &str, text: &str) -> Result<DatabaseDef, String> {
    build(name, split_pairs(text)?)
}

/// Builds a [`DatabaseDef`] from pairs (from the ini string or a TOML table).
pub fn build(name: &str, pairs: Vec<(String, String)>) -> Result<DatabaseDef, String> {
    check_name(name)?;
    let mut db = DatabaseDef {
        name: name.to_owned(),
        port: 5432,
        ..DatabaseDef::default()
    };
    for (key, val) in pairs {
        apply(&mut db, &key, val)?;
    }
    Ok(db)
}

fn apply(db: &mut DatabaseDef, key: &str, val: String) -> Result<(), String> {
    let num = |v: &str| atoi_opt_u32(v).map_err(|e| format!("{key}: {e}"));
    let secs = |v: &str| atoi_opt_secs(v).map_err(|e| format!("{key}: {e}"));
    match key {
        "dbname" => db.dbname = Some(val),
        "host" => db.host = Some(val),
        "port" => db.port = parse_port(&val)?,
        "user" => db.user = Some(val),
        "password" => db.password = Some(val),
        "auth_user" => db.auth_user = Some(val),
        "auth_query" => db.auth_query = Some(val),
        "auth_dbname" => db.auth_dbname = Some(val),
        "client_encoding" => db.client_encoding = Some(val),
        "datestyle" => db.datestyle = Some(val),
        "timezone" => db.timezone = Some(val),
        "application_name" => db.application_name = Some(val),
        "connect_query" => db.connect_query = Some(val),
        "pool_size" => db.pool_size = num(&val)?,
        "min_pool_size" => db.min_pool_size = num(&val)?,
        "reserve_pool" | "reserve_pool_size" => db.reserve_pool_size = num(&val)?,
        "max_db_connections" => db.max_db_connections = num(&val)?,
        "max_db_client_connections" => db.max_db_client_connections = num(&val)?,
        "server_lifetime" => db.server_lifetime = secs(&val)?,
        "query_wait_timeout" => db.query_wait_timeout = secs(&val)?,
        "pool_mode" => {
            db.pool_mode =
                Some(parse_pool_mode(&val).ok_or_else(|| format!("invalid pool mode: {val}"))?);
        }
        "load_balance_hosts" => {
            if !["round-robin", "disable"].contains(&val.as_str()) {
                return Err(format!("invalid load_balance_hosts value: {val}"));
            }
            db.load_balance_hosts = Some(val);
        }
        k if ALERT_KEYS.contains(&k) => {
            db.extra.insert(k.to_owned(), val);
        }
        other => return Err(format!("unrecognized connection parameter: {other}")),
    }
    Ok(())
}

fn parse_port(val: &str) -> Result<u16, String> {
    match atoi(val) {
        Ok(p) if p != 0 => u16::try_from(p).map_err(|_| format!("invalid port: {val}")),
        _ => Err(format!("invalid port: {val}")),
    }
}
