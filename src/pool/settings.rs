//! The settings one pool runs with, resolved once from the global, per-database and per-user
//! config so the hot path never looks them up.

use std::time::Duration;

use crate::config::{Config, DatabaseDef, PoolMode};

/// Effective settings of one (database, user) pool. Zero durations mean "off".
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    /// Pool mode.
    pub pool_mode: PoolMode,
    /// Servers allowed (0 = unlimited).
    pub pool_size: usize,
    /// Servers kept open at least.
    pub min_pool_size: usize,
    /// Extra servers after `reserve_pool_timeout`.
    pub reserve_pool_size: usize,
    /// Wait before the reserve is used.
    pub reserve_pool_timeout: Duration,
    /// Give up waiting for a server after this (0 = never).
    pub query_wait_timeout: Duration,
    /// Close servers older than this when released (0 = use once).
    pub server_lifetime: Duration,
    /// Close servers idle this long.
    pub server_idle_timeout: Duration,
    /// Check servers idle longer than this before reuse.
    pub server_check_delay: Duration,
    /// The check query (`None` = no check; `Some("")` = an empty query).
    pub server_check_query: Option<String>,
    /// Run on release in session mode (or always, with `server_reset_query_always`).
    pub server_reset_query: Option<String>,
    /// Run the reset query in every mode.
    pub server_reset_query_always: bool,
    /// After a failed login, fail clients fast for this long.
    pub server_login_retry: Duration,
    /// Reuse idle servers FIFO instead of LIFO.
    pub server_round_robin: bool,
    /// Cancel queries running longer than this.
    pub query_timeout: Duration,
    /// Disconnect clients idle in a transaction this long.
    pub idle_transaction_timeout: Duration,
    /// Disconnect clients idle this long.
    pub client_idle_timeout: Duration,
    /// Disconnect clients whose transaction has been open this long.
    pub transaction_timeout: Duration,
    /// Prepared statements kept per server (0 = no tracking).
    pub max_prepared_statements: usize,
    /// Which server lifecycle events are logged.
    pub log: LogEvents,
    /// The database forces its server user: `min_pool_size` is kept even with no clients.
    pub forced_user: bool,
}

/// `log_connections` / `log_disconnections`, as they apply to a pool's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogEvents {
    /// Log each new server connection (`new connection to server`).
    pub connections: bool,
    /// Log each closed server connection with its reason (`closing because: ...`).
    pub disconnections: bool,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_owned())
}

fn to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl PoolSettings {
    /// Resolves the settings for `db` and `user`: user overrides, then database, then global.
    pub fn resolve(config: &Config, db: &DatabaseDef, user: &str) -> PoolSettings {
        let g = &config.general;
        let u = config.users.get(user);
        let check_query = match g.server_check_query.trim() {
            "" => None,
            "<empty>" => Some(String::new()),
            q => Some(q.to_owned()),
        };
        PoolSettings {
            pool_mode: u
                .and_then(|u| u.pool_mode)
                .or(db.pool_mode)
                .unwrap_or(g.pool_mode),
            // PgBouncer's order: the pool user's pool_size, then the database's, then the
            // default (with a forced user, the pool user is the forced one).
            pool_size: to_usize(
                u.and_then(|u| u.pool_size)
                    .or(db.pool_size)
                    .unwrap_or(g.default_pool_size),
            ),
            min_pool_size: to_usize(db.min_pool_size.unwrap_or(g.min_pool_size)),
            reserve_pool_size: to_usize(
                u.and_then(|u| u.reserve_pool_size)
                    .or(db.reserve_pool_size)
                    .unwrap_or(g.reserve_pool_size),
            ),
            reserve_pool_timeout: g.reserve_pool_timeout,
            query_wait_timeout: u
                .and_then(|u| u.query_wait_timeout)
                .or(db.query_wait_timeout)
                .unwrap_or(g.query_wait_timeout),
            server_lifetime: db.server_lifetime.unwrap_or(g.server_lifetime),
            server_idle_timeout: g.server_idle_timeout,
            server_check_delay: g.server_check_delay,
            server_check_query: check_query,
            server_reset_query: non_empty(&g.server_reset_query),
            server_reset_query_always: g.server_reset_query_always,
            server_login_retry: g.server_login_retry,
            server_round_robin: g.server_round_robin,
            query_timeout: u.and_then(|u| u.query_timeout).unwrap_or(g.query_timeout),
            idle_transaction_timeout: u
                .and_then(|u| u.idle_transaction_timeout)
                .unwrap_or(g.idle_transaction_timeout),
            client_idle_timeout: u
                .and_then(|u| u.client_idle_timeout)
                .unwrap_or(g.client_idle_timeout),
            transaction_timeout: u
                .and_then(|u| u.transaction_timeout)
                .unwrap_or(g.transaction_timeout),
            max_prepared_statements: to_usize(g.max_prepared_statements),
            log: LogEvents {
                connections: g.log_connections,
                disconnections: g.log_disconnections,
            },
            forced_user: db.user.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str, db: &str, user: &str) -> PoolSettings {
        let config = Config::from_ini_str(text, "t").unwrap();
        let def = config.database(db).unwrap();
        PoolSettings::resolve(&config, &def, user)
    }

    #[test]
    fn user_sizes_before_database_sizes() {
        let text = "[databases]\napp = pool_size=3 reserve_pool_size=4\nforced = user=bob min_pool_size=2\n\
                    [pgbouncer]\n[users]\nbob = pool_size=1 reserve_pool_size=2\n";
        let bob = resolve(text, "app", "bob");
        assert_eq!((bob.pool_size, bob.reserve_pool_size), (1, 2));
        let alice = resolve(text, "app", "alice");
        assert_eq!((alice.pool_size, alice.reserve_pool_size), (3, 4));
        assert!(!alice.forced_user);
        assert!(resolve(text, "forced", "bob").forced_user);
    }

    #[test]
    fn user_then_database_then_global_for_size_and_mode() {
        let text = "[pgbouncer]\n[databases]\n* = host=fb\n[users]\nbob = pool_size=3 pool_mode=statement\n";
        let bob = resolve(text, "other", "bob");
        assert_eq!((bob.pool_size, bob.pool_mode), (3, PoolMode::Statement));
        let alice = resolve(text, "other", "alice");
        assert_eq!((alice.pool_size, alice.pool_mode), (20, PoolMode::Session));
        let text = text.replace(
            "* = host=fb",
            "* = host=fb pool_size=9 pool_mode=transaction",
        );
        let bob = resolve(&text, "other", "bob");
        assert_eq!(
            (bob.pool_size, bob.pool_mode),
            (3, PoolMode::Statement),
            "the user's first"
        );
        let alice = resolve(&text, "other", "alice");
        assert_eq!(
            (alice.pool_size, alice.pool_mode),
            (9, PoolMode::Transaction)
        );
    }

    #[test]
    fn check_query_default_is_an_empty_query_and_empty_disables() {
        let default = resolve("[databases]\napp = host=h\n[pgbouncer]\n", "app", "u");
        assert_eq!(default.server_check_query.as_deref(), Some(""));
        let off = resolve(
            "[databases]\napp = host=h\n[pgbouncer]\nserver_check_query =\n",
            "app",
            "u",
        );
        assert_eq!(off.server_check_query, None);
        let custom = resolve(
            "[databases]\napp = host=h\n[pgbouncer]\nserver_check_query = select 2\n",
            "app",
            "u",
        );
        assert_eq!(custom.server_check_query.as_deref(), Some("select 2"));
    }
}
