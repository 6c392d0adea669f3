//! The admin console: the virtual database `pgbouncer`, with PgBouncer's SHOW and control
//! commands, column for column.
//!
//! Owns: console logins ([`access`]: `admin_users` / `stats_users` / `auth_type = any` rules),
//! the session loop ([`session`]), the command syntax ([`parse`]), result sets declared as data
//! with per-version columns ([`table`], selected by `admin_compat_version` in `[pgsluice]`), one
//! module per command family (`show_*`, including pgsluice's own SHOW ALERTS), the control
//! commands ([`commands`]) and the `stats_period` ticker ([`ticker`]).
//!
//! Does not: reach into pool or client internals. It reads `Pool::snapshot()`, pool stats and
//! settings, the connection directory (`stats::conns`), the alert table (`stats::alert_board`)
//! and the config, and changes the running pooler only through `control::Request`s executed by
//! the app. The password exchange comes in through the [`access::Authenticator`] the app
//! provides, because `client` is a sibling layer.
//! Lower layers it uses: `protocol` (messages), `net` (its own socket), `config`, `stats`,
//! `control`, and `pool`'s read-only registry API.
//!
//! Invariants: every PgBouncer SHOW sends exactly the columns of the emulated version; every
//! command answers with a result, an `ErrorResponse`, or (SHUTDOWN) nothing because the process
//! is going away; no lock is held across an `.await`.

pub mod access;
pub mod commands;
pub mod parse;
pub mod session;
mod show_alerts;
mod show_conns;
mod show_databases;
mod show_misc;
mod show_pools;
mod show_stats;
pub mod table;
#[cfg(test)]
mod tests;
pub mod ticker;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use crate::config::Config;
use crate::control::{ControlHandle, Shutdown};
use crate::pool::Registry;
use crate::stats::PoolStats;
use crate::stats::alert_board::AlertBoard;
use crate::stats::period::StatsPeriods;

pub use access::{Authenticator, Rights};
pub use session::{Login, cancel, serve};
pub use show_misc::version_string;
pub use table::{LATEST as LATEST_VERSION, Version};

/// The name clients connect to for the console.
pub const ADMIN_DB: &str = "pgbouncer";

/// Struct sizes SHOW MEM multiplies by counts; the app fills them in (it knows every layer).
#[derive(Debug, Clone, Copy, Default)]
pub struct MemSizes {
    /// One logged-in client's session state.
    pub client: usize,
    /// One server connection.
    pub server: usize,
}

/// What every console session shares.
#[derive(Debug)]
pub struct AdminContext {
    /// Pools, config and the connection directory.
    pub registry: Arc<Registry>,
    /// Shutdown signals.
    pub shutdown: Shutdown,
    /// Where control commands go.
    pub control: ControlHandle,
    /// `stats_period` snapshots for the averages.
    pub periods: Arc<StatsPeriods>,
    /// The password exchange for console logins.
    pub auth: Arc<dyn Authenticator>,
    /// Connections accepted and not yet closed, all kinds (SHOW LISTS `login_clients`).
    pub connections: Arc<AtomicUsize>,
    /// Counters of the console's own pseudo-pool (its row in SHOW STATS).
    pub stats: PoolStats,
    /// Struct sizes for SHOW MEM.
    pub mem_sizes: MemSizes,
    /// Cancel keys issued to console sessions (a cancel from the console resumes a PAUSE).
    pub cancel_keys: parking_lot::Mutex<std::collections::HashSet<(i32, i32)>>,
    /// The budget alerts as last evaluated (SHOW ALERTS).
    pub alerts: Arc<AlertBoard>,
}

/// The emulated PgBouncer version: `admin_compat_version` from `[pgsluice]`, else the latest
/// (also when the value is invalid; [`check_compat_version`] reports that once per load).
pub fn compat_version(config: &Config) -> Version {
    config
        .pgsluice
        .get("admin_compat_version")
        .and_then(|text| Version::parse(text).ok())
        .unwrap_or(table::LATEST)
}

/// Logs an invalid `admin_compat_version`; the app calls it when a config is loaded.
pub fn check_compat_version(config: &Config) {
    if let Some(Err(e)) = config
        .pgsluice
        .get("admin_compat_version")
        .map(|text| Version::parse(text))
    {
        tracing::warn!(
            "{e}; the admin console emulates PgBouncer {}",
            table::LATEST
        );
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers to read what the console wrote.

    use crate::protocol::frame::complete_frame;

    /// (tag, body) of every message in `buf`.
    pub fn messages(buf: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = buf;
        while let Ok(Some((tag, len))) = complete_frame(rest, 1 << 24) {
            out.push((tag, rest[5..len].to_vec()));
            rest = &rest[len..];
        }
        out
    }

    /// Column names of the first RowDescription.
    pub fn column_names(buf: &[u8]) -> Vec<String> {
        let Some((_, body)) = messages(buf).into_iter().find(|(t, _)| *t == b'T') else {
            return Vec::new();
        };
        let mut names = Vec::new();
        let mut rest = &body[2..];
        while let Some(nul) = rest.iter().position(|&b| b == 0) {
            names.push(String::from_utf8_lossy(&rest[..nul]).into_owned());
            rest = &rest[nul + 1 + 18..];
        }
        names
    }

    /// Every DataRow as text cells (`None` for NULL).
    pub fn rows(buf: &[u8]) -> Vec<Vec<Option<String>>> {
        messages(buf)
            .into_iter()
            .filter(|(t, _)| *t == b'D')
            .map(|(_, body)| {
                crate::protocol::reply::data_row(&body).expect("a well-formed DataRow")
            })
            .collect()
    }
}
