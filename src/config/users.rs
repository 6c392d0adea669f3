//! The `[users]` section: `name = key=value ...` per-user overrides.
//!
//! Owns: turning one `[users]` line (or a TOML `[users.<name>]` table, as pairs) into a
//! [`UserDef`].
//! Does not: look users up in `auth_file`; a user may be in `[users]` and not in the file.
//! Invariants: same pair syntax as `[databases]` (`connstr::split_pairs`); keys are
//! case-sensitive; timeouts are whole seconds read with `atoi` as PgBouncer does (`1.5` is 1);
//! `-1` means "not set"; an unknown key fails with "unrecognized user parameter: KEY".

use super::connstr::{parse_pool_mode, split_pairs};
use super::duration::{atoi_opt_secs, atoi_opt_u32};
use super::types::UserDef;

/// Every key a `[users]` entry accepts, for documentation.
pub const KEYS: &[(&str, &str)] = &[
    ("pool_size", "pool size for every pool of this user"),
    (
        "reserve_pool_size",
        "reserve pool size for every pool of this user",
    ),
    ("pool_mode", "session, transaction or statement"),
    (
        "max_user_connections",
        "server connection cap for this user",
    ),
    (
        "max_user_client_connections",
        "client connection cap for this user",
    ),
    ("query_timeout", "whole seconds"),
    ("query_wait_timeout", "whole seconds"),
    ("idle_transaction_timeout", "whole seconds"),
    ("transaction_timeout", "whole seconds"),
    ("client_idle_timeout", "whole seconds"),
];

/// Parses one `[users]` line.
pub fn parse(name: &str, text: &str) -> Result<UserDef, String> {
    let pairs = split_pairs(text).map_err(|_| "syntax error in user settings".to_owned())?;
    build(name, pairs)
}

/// Builds a [`UserDef`] from pairs.
pub fn build(name: &str, pairs: Vec<(String, String)>) -> Result<UserDef, String> {
    let mut u = UserDef {
        name: name.to_owned(),
        ..UserDef::default()
    };
    for (key, val) in pairs {
        let num = |v: &str| atoi_opt_u32(v).map_err(|e| format!("{key}: {e}"));
        let secs = |v: &str| atoi_opt_secs(v).map_err(|e| format!("{key}: {e}"));
        match key.as_str() {
            "pool_size" => u.pool_size = num(&val)?,
            "reserve_pool_size" => u.reserve_pool_size = num(&val)?,
            "max_user_connections" => u.max_user_connections = num(&val)?,
            "max_user_client_connections" => u.max_user_client_connections = num(&val)?,
            "query_timeout" => u.query_timeout = secs(&val)?,
            "query_wait_timeout" => u.query_wait_timeout = secs(&val)?,
            "idle_transaction_timeout" => u.idle_transaction_timeout = secs(&val)?,
            "transaction_timeout" => u.transaction_timeout = secs(&val)?,
            "client_idle_timeout" => u.client_idle_timeout = secs(&val)?,
            "pool_mode" => {
                u.pool_mode =
                    Some(parse_pool_mode(&val).ok_or_else(|| format!("invalid pool mode: {val}"))?);
            }
            other => return Err(format!("unrecognized user parameter: {other}")),
        }
    }
    Ok(u)
}
