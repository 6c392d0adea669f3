//! RELOAD, SIGHUP and the console's SET: re-read the config file and `auth_file` (or change one
//! setting of the running config), keep what cannot change online, apply the rest to the
//! running pools and the log output.
//!
//! Owns: the reload sequence, one at a time: SIGHUP, the console's RELOAD and SET (through the
//! control loop) and `Running::reload`/`reload_with` all take the one lock, so each starts from
//! the config the previous one left and a SET cannot undo a RELOAD that ran meanwhile.
//! Does not: parse (config/), or change pools itself (`Registry::reload`).
//! Invariants: a file that does not load, or whose log settings are invalid, changes nothing;
//! restart-only settings keep their running values and are logged as needing a restart, as
//! PgBouncer does; no connected client or open transaction is dropped.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use super::logging::{LogHandle, LogSettings};
use crate::config::Config;
use crate::config::restart::keep_restart_only;
use crate::pool::{Registry, ReloadSummary};

/// The log line of a reload from the file.
const RELOADED: &str = "configuration reloaded";

/// The outcome of a reload: `Err` carries the reason the running config was kept.
pub type ReloadResult = Result<(), String>;

/// Everything a reload needs.
#[derive(Debug, Clone)]
pub struct Reloader {
    /// The extra `[pgsluice]` file given on the command line.
    extra: Option<PathBuf>,
    /// The pools.
    registry: Arc<Registry>,
    /// The log output, when this process installed one (the binary does; tests do not).
    logging: Option<LogHandle>,
    /// Reloads run one at a time: each compares against the config the previous one left.
    lock: Arc<Mutex<()>>,
}

impl Reloader {
    /// A reloader for `registry`'s config file and `extra`.
    pub fn new(
        registry: Arc<Registry>,
        extra: Option<PathBuf>,
        logging: Option<LogHandle>,
    ) -> Self {
        Reloader {
            extra,
            registry,
            logging,
            lock: Arc::default(),
        }
    }

    /// Re-reads the file the running config came from and applies it.
    pub fn reload(&self) -> ReloadResult {
        let _one_at_a_time = self.lock.lock();
        let running = self.registry.config();
        let Some(path) = running.source.clone() else {
            return Err("the configuration was not read from a file".to_owned());
        };
        match Config::load_with_extra(&path, self.extra.as_deref()) {
            Ok(config) => self.apply_locked(config, RELOADED),
            Err(e) => {
                let reason = format!("reload failed, keeping the running configuration: {e}");
                tracing::error!("{reason}");
                Err(reason)
            }
        }
    }

    /// Applies an already loaded config.
    pub fn apply(&self, config: Config) -> ReloadResult {
        let _one_at_a_time = self.lock.lock();
        self.apply_locked(config, RELOADED)
    }

    /// The console's `SET key = value`: the running config with that one setting changed
    /// (`config::set_online`'s checks and error texts), applied as a reload is.
    pub fn set(&self, key: &str, value: &str) -> ReloadResult {
        let _one_at_a_time = self.lock.lock();
        let next = crate::config::set_online(&self.registry.config(), key, value)?;
        self.apply_locked(next, "setting changed online")
    }

    /// Applies `config`; `done` is the log line's message.
    fn apply_locked(&self, mut config: Config, done: &str) -> ReloadResult {
        crate::admin::check_compat_version(&config);
        let log_settings = LogSettings::from_config(&config).map_err(|e| {
            let reason = format!("reload failed, keeping the running configuration: {e}");
            tracing::error!("{reason}");
            reason
        })?;
        let running = self.registry.config();
        for change in keep_restart_only(&running, &mut config) {
            tracing::warn!(
                setting = %change.name,
                running = %change.running,
                file = %change.file,
                "{} changed in the configuration file but cannot change at run time; it takes effect at the next restart",
                change.name
            );
        }
        let (added, removed) = database_changes(&running, &config);
        let summary = self.registry.reload(&Arc::new(config));
        if let Some(logging) = &self.logging {
            if let Err(e) = logging.apply(&log_settings) {
                tracing::error!("log settings not applied: {e}");
            }
        }
        log_summary(&added, &removed, summary, done);
        Ok(())
    }
}

/// Databases named in `new` but not in `old`, and the reverse.
fn database_changes(old: &Config, new: &Config) -> (Vec<String>, Vec<String>) {
    let names =
        |c: &Config| -> Vec<String> { c.databases.iter().map(|d| d.name.clone()).collect() };
    let (old, new) = (names(old), names(new));
    let added = new.iter().filter(|n| !old.contains(n)).cloned().collect();
    let removed = old.iter().filter(|n| !new.contains(n)).cloned().collect();
    (added, removed)
}

fn log_summary(added: &[String], removed: &[String], summary: ReloadSummary, done: &str) {
    tracing::info!(
        databases_added = ?added,
        databases_removed = ?removed,
        pools_updated = summary.updated,
        pools_reconnected = summary.reconnected,
        pools_retired = summary.retired,
        "{done}"
    );
}
