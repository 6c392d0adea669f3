//! RELOAD and SIGHUP: re-read the config file and `auth_file`, keep what cannot change online,
//! apply the rest to the running pools and the log output.
//!
//! Owns: the reload sequence and the task that serves [`ReloadHandle`] requests one at a time.
//! Does not: parse (config/), or change pools itself (`Registry::reload`).
//! Invariants: a file that does not load, or whose log settings are invalid, changes nothing;
//! restart-only settings keep their running values and are logged as needing a restart, as
//! PgBouncer does; no connected client or open transaction is dropped.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::logging::{LogHandle, LogSettings};
use crate::config::Config;
use crate::config::restart::keep_restart_only;
use crate::control::{ReloadRequest, ReloadResult};
use crate::pool::Registry;
use crate::pool::registry::ReloadSummary;

/// Everything a reload needs.
#[derive(Debug, Clone)]
pub struct Reloader {
    /// The extra `[pgsluice]` file given on the command line.
    pub extra: Option<PathBuf>,
    /// The pools.
    pub registry: Arc<Registry>,
    /// The log output, when this process installed one (the binary does; tests do not).
    pub logging: Option<LogHandle>,
}

impl Reloader {
    /// Re-reads the file the running config came from and applies it.
    pub fn reload(&self) -> ReloadResult {
        let running = self.registry.config();
        let Some(path) = running.source.clone() else {
            return Err("the configuration was not read from a file".to_owned());
        };
        match Config::load_with_extra(&path, self.extra.as_deref()) {
            Ok(config) => self.apply(config),
            Err(e) => {
                let reason = format!("reload failed, keeping the running configuration: {e}");
                tracing::error!("{reason}");
                Err(reason)
            }
        }
    }

    /// Applies an already loaded config.
    pub fn apply(&self, mut config: Config) -> ReloadResult {
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
        log_summary(&added, &removed, summary);
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

fn log_summary(added: &[String], removed: &[String], summary: ReloadSummary) {
    tracing::info!(
        databases_added = ?added,
        databases_removed = ?removed,
        pools_updated = summary.updated,
        pools_replaced = summary.replaced,
        pools_retired = summary.retired,
        "configuration reloaded"
    );
}

/// Serves reload requests until every handle is gone.
pub(super) async fn serve(reloader: Reloader, mut requests: mpsc::Receiver<ReloadRequest>) {
    while let Some(request) = requests.recv().await {
        let reloader = reloader.clone();
        // Reading files blocks; a reload is rare, so a blocking thread is the simple answer.
        let outcome = tokio::task::spawn_blocking(move || reloader.reload())
            .await
            .unwrap_or_else(|e| Err(format!("reload failed: {e}")));
        if let Some(reply) = request.reply {
            let _ = reply.send(outcome);
        }
    }
}
