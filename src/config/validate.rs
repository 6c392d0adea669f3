//! Cross-field checks on a built [`Config`].
//!
//! Owns: rules that involve more than one value, reported at the `file:line` of the setting
//! that has to change. Single values are checked where they are parsed (ranges, negatives,
//! lookups), so this file only holds what needs the whole picture.
//! Does not: touch the network or the file system.
//! Invariants: only values that cannot work are rejected (each rule says why), so a file
//! PgBouncer runs with keeps loading here.

use std::collections::BTreeMap;

use super::error::{Error, Loc};
use super::types::{AuthType, Config};

/// Runs every check; `locs` maps `[pgbouncer]` keys to where they were set.
pub fn check(cfg: &Config, locs: &BTreeMap<String, Loc>) -> Result<(), Error> {
    let at = |key: &str| locs.get(key).cloned().unwrap_or_default();
    let g = &cfg.general;
    // PgBouncer fails every login when auth_type=hba has no file to read.
    if g.auth_type == AuthType::Hba && g.auth_hba_file.is_none() {
        return Err(at("auth_type").err("auth_type = hba needs auth_hba_file"));
    }
    // chmod(2) takes permission bits only.
    if g.unix_socket_mode > 0o7777 {
        return Err(at("unix_socket_mode").err(format!(
            "invalid unix_socket_mode: {} (must be at most 07777)",
            g.unix_socket_mode
        )));
    }
    if g.verbose > 3 {
        tracing::debug!(verbose = g.verbose, "verbose above 3 behaves as 3");
    }
    Ok(())
}
