//! Applying `[pgbouncer]` values to [`General`].
//!
//! Owns: `General::default()` (built by applying every default from the settings table, so the
//! table is the only copy of the defaults) and [`apply`], the one place a `[pgbouncer]` value
//! becomes a typed field, used by both the ini and the TOML paths.
//! Does not: record `raw` (the loader does, with locations) or cross-check fields
//! (`validate.rs`).
//! Invariants: a value is first checked against its table [`Kind`], so settings pgsluice does
//! not act on are still validated as PgBouncer would; unknown names are an error here, the
//! loader decides about forks' keys.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::connstr::parse_pool_mode;
use super::duration::{parse_bool, parse_c_long, parse_secs, parse_u32};
use super::settings::{self, Kind};
use super::types::{AuthType, General, PoolMode};

impl Default for General {
    fn default() -> Self {
        let mut g = zero();
        for s in settings::all() {
            // Every default parses (unit-tested), so an error here cannot happen; ignoring it
            // keeps the zero value rather than panicking.
            let _ = apply(&mut g, s.name, s.default);
        }
        g
    }
}

/// Checks `value` against the table kind of `name` and stores it in `g`.
pub fn apply(g: &mut General, name: &str, value: &str) -> Result<(), String> {
    let setting =
        settings::find(name).ok_or_else(|| format!("unknown parameter: pgbouncer/{name}"))?;
    check_kind(setting.kind, value)?;
    if apply_main(g, name, value)? || apply_times(g, name, value)? {
        return Ok(());
    }
    // Settings without a field are kept in `raw` only.
    Ok(())
}

fn check_kind(kind: Kind, value: &str) -> Result<(), String> {
    match kind {
        Kind::Int => parse_c_long(value).and_then(|v| {
            (v >= 0)
                .then_some(())
                .ok_or_else(|| format!("negative value: {value}"))
        }),
        Kind::Bool => parse_bool(value).map(drop),
        Kind::Time => parse_secs(value).map(drop),
        Kind::Str | Kind::List | Kind::Path => Ok(()),
        Kind::Choice(words) => words
            .iter()
            .any(|w| w.eq_ignore_ascii_case(value))
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "invalid value: {value} (expected one of: {})",
                    words.join(", ")
                )
            }),
    }
}

fn opt_string(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

fn opt_path(v: &str) -> Option<PathBuf> {
    (!v.is_empty()).then(|| PathBuf::from(v))
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_auth_type(v: &str) -> Result<AuthType, String> {
    [
        AuthType::Trust,
        AuthType::Any,
        AuthType::Plain,
        AuthType::Md5,
        AuthType::ScramSha256,
        AuthType::Cert,
        AuthType::Hba,
        AuthType::Pam,
        AuthType::Ldap,
    ]
    .into_iter()
    .find(|a| a.as_str().eq_ignore_ascii_case(v))
    .ok_or_else(|| format!("invalid auth_type: {v}"))
}

/// The largest `peer_id`: it travels in 14 bits of the cancel key.
pub const MAX_PEER_ID: u16 = 16383;

fn u16_of(v: &str) -> Result<u16, String> {
    u16::try_from(parse_c_long(v)?).map_err(|_| format!("value out of range: {v}"))
}

fn u8_of(v: &str) -> Result<u8, String> {
    u8::try_from(parse_c_long(v)?).map_err(|_| format!("value out of range: {v}"))
}

/// Non-time settings. Returns whether `name` has a field.
fn apply_main(g: &mut General, name: &str, v: &str) -> Result<bool, String> {
    match name {
        "logfile" => g.logfile = opt_path(v),
        "pidfile" => g.pidfile = opt_path(v),
        "listen_addr" => g.listen_addr = list(v),
        "listen_port" => g.listen_port = u16_of(v)?,
        "unix_socket_dir" => v.clone_into(&mut g.unix_socket_dir),
        "unix_socket_mode" => g.unix_socket_mode = parse_u32(v)?,
        "unix_socket_group" => g.unix_socket_group = opt_string(v),
        "user" => g.user = opt_string(v),
        "pool_mode" => {
            g.pool_mode = parse_pool_mode(v).ok_or_else(|| format!("invalid pool mode: {v}"))?;
        }
        "max_client_conn" => g.max_client_conn = parse_u32(v)?,
        "default_pool_size" => g.default_pool_size = parse_u32(v)?,
        "min_pool_size" => g.min_pool_size = parse_u32(v)?,
        "reserve_pool_size" => g.reserve_pool_size = parse_u32(v)?,
        "max_db_connections" => g.max_db_connections = parse_u32(v)?,
        "max_db_client_connections" => g.max_db_client_connections = parse_u32(v)?,
        "max_user_connections" => g.max_user_connections = parse_u32(v)?,
        "max_user_client_connections" => g.max_user_client_connections = parse_u32(v)?,
        "server_round_robin" => g.server_round_robin = parse_bool(v)?,
        "ignore_startup_parameters" => g.ignore_startup_parameters = list(v),
        "track_extra_parameters" => g.track_extra_parameters = list(v),
        "application_name_add_host" => g.application_name_add_host = parse_bool(v)?,
        "stats_period" => g.stats_period = Duration::from_secs(u64::from(parse_u32(v)?)),
        "max_prepared_statements" => g.max_prepared_statements = parse_u32(v)?,
        "peer_id" => {
            g.peer_id = u16_of(v)
                .ok()
                .filter(|id| *id <= MAX_PEER_ID)
                .ok_or_else(|| format!("peer_id must be between 0 and {MAX_PEER_ID}: {v}"))?;
        }
        "login_notify_message" => v.clone_into(&mut g.login_notify_message),
        "auth_type" => g.auth_type = parse_auth_type(v)?,
        "auth_hba_file" => g.auth_hba_file = opt_path(v),
        "auth_ident_file" => g.auth_ident_file = opt_path(v),
        "auth_file" => g.auth_file = opt_path(v),
        "auth_user" => g.auth_user = opt_string(v),
        "auth_query" => v.clone_into(&mut g.auth_query),
        // PgBouncer's cf_set_authdb: the console cannot run auth_query.
        "auth_dbname" if v == "pgbouncer" => {
            return Err("cannot use the reserved \"pgbouncer\" database as an auth_dbname".into());
        }
        "auth_dbname" => g.auth_dbname = opt_string(v),
        "syslog" => g.syslog = parse_bool(v)?,
        "syslog_ident" => v.clone_into(&mut g.syslog_ident),
        "syslog_facility" => v.clone_into(&mut g.syslog_facility),
        "log_connections" => g.log_connections = parse_bool(v)?,
        "log_disconnections" => g.log_disconnections = parse_bool(v)?,
        "log_pooler_errors" => g.log_pooler_errors = parse_bool(v)?,
        "log_stats" => g.log_stats = parse_bool(v)?,
        "verbose" => g.verbose = u8_of(v)?,
        "admin_users" => g.admin_users = list(v),
        "stats_users" => g.stats_users = list(v),
        "server_reset_query" => v.clone_into(&mut g.server_reset_query),
        "server_reset_query_always" => g.server_reset_query_always = parse_bool(v)?,
        "server_check_query" => v.clone_into(&mut g.server_check_query),
        "server_fast_close" => g.server_fast_close = parse_bool(v)?,
        "pkt_buf" => g.pkt_buf = parse_u32(v)?,
        "max_packet_size" => g.max_packet_size = parse_u32(v)?,
        "listen_backlog" => g.listen_backlog = parse_u32(v)?,
        "so_reuseport" => g.so_reuseport = parse_bool(v)?,
        "tcp_keepalive" => g.tcp_keepalive = parse_bool(v)?,
        "tcp_keepcnt" => g.tcp_keepcnt = parse_u32(v)?,
        "tcp_keepidle" => g.tcp_keepidle = parse_u32(v)?,
        "tcp_keepintvl" => g.tcp_keepintvl = parse_u32(v)?,
        "tcp_user_timeout" => g.tcp_user_timeout = parse_u32(v)?,
        "tcp_socket_buffer" => g.tcp_socket_buffer = parse_u32(v)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Time settings. Returns whether `name` has a field.
fn apply_times(g: &mut General, name: &str, v: &str) -> Result<bool, String> {
    let slot = match name {
        "reserve_pool_timeout" => &mut g.reserve_pool_timeout,
        "server_check_delay" => &mut g.server_check_delay,
        "server_lifetime" => &mut g.server_lifetime,
        "server_idle_timeout" => &mut g.server_idle_timeout,
        "server_connect_timeout" => &mut g.server_connect_timeout,
        "server_login_retry" => &mut g.server_login_retry,
        "client_login_timeout" => &mut g.client_login_timeout,
        "autodb_idle_timeout" => &mut g.autodb_idle_timeout,
        "pool_idle_timeout" => &mut g.pool_idle_timeout,
        "query_wait_notify" => &mut g.query_wait_notify,
        "query_timeout" => &mut g.query_timeout,
        "query_wait_timeout" => &mut g.query_wait_timeout,
        "cancel_wait_timeout" => &mut g.cancel_wait_timeout,
        "client_idle_timeout" => &mut g.client_idle_timeout,
        "idle_transaction_timeout" => &mut g.idle_transaction_timeout,
        "transaction_timeout" => &mut g.transaction_timeout,
        _ => return Ok(false),
    };
    *slot = parse_secs(v)?;
    Ok(true)
}

/// Every field at its zero value, before the table's defaults are applied.
fn zero() -> General {
    General {
        logfile: None,
        pidfile: None,
        listen_addr: Vec::new(),
        listen_port: 0,
        unix_socket_dir: String::new(),
        unix_socket_mode: 0,
        unix_socket_group: None,
        user: None,
        pool_mode: PoolMode::Session,
        max_client_conn: 0,
        default_pool_size: 0,
        min_pool_size: 0,
        reserve_pool_size: 0,
        reserve_pool_timeout: Duration::ZERO,
        max_db_connections: 0,
        max_db_client_connections: 0,
        max_user_connections: 0,
        max_user_client_connections: 0,
        server_round_robin: false,
        ignore_startup_parameters: Vec::new(),
        track_extra_parameters: vec!["IntervalStyle".to_owned()],
        application_name_add_host: false,
        stats_period: Duration::ZERO,
        max_prepared_statements: 0,
        peer_id: 0,
        login_notify_message: String::new(),
        auth_type: AuthType::Md5,
        auth_hba_file: None,
        auth_ident_file: None,
        auth_file: None,
        auth_user: None,
        auth_query: String::new(),
        auth_dbname: None,
        syslog: false,
        syslog_ident: String::new(),
        syslog_facility: String::new(),
        log_connections: false,
        log_disconnections: false,
        log_pooler_errors: false,
        log_stats: false,
        verbose: 0,
        admin_users: Vec::new(),
        stats_users: Vec::new(),
        server_reset_query: String::new(),
        server_reset_query_always: false,
        server_check_delay: Duration::ZERO,
        server_check_query: String::new(),
        server_fast_close: false,
        server_lifetime: Duration::ZERO,
        server_idle_timeout: Duration::ZERO,
        server_connect_timeout: Duration::ZERO,
        server_login_retry: Duration::ZERO,
        client_login_timeout: Duration::ZERO,
        autodb_idle_timeout: Duration::ZERO,
        pool_idle_timeout: Duration::ZERO,
        query_wait_notify: Duration::ZERO,
        query_timeout: Duration::ZERO,
        query_wait_timeout: Duration::ZERO,
        cancel_wait_timeout: Duration::ZERO,
        client_idle_timeout: Duration::ZERO,
        idle_transaction_timeout: Duration::ZERO,
        transaction_timeout: Duration::ZERO,
        pkt_buf: 0,
        max_packet_size: 0,
        listen_backlog: 0,
        so_reuseport: false,
        tcp_keepalive: false,
        tcp_keepcnt: 0,
        tcp_keepidle: 0,
        tcp_keepintvl: 0,
        tcp_user_timeout: 0,
        tcp_socket_buffer: 0,
        raw: BTreeMap::new(),
    }
}
