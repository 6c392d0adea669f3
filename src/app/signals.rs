//! Unix signals, with PgBouncer's meanings: SIGHUP reload; SIGTERM wait for clients; SIGINT wait
//! for servers (running transactions finish); a second SIGINT/SIGTERM, or SIGQUIT, immediate.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::control::Shutdown;
use crate::pool::Registry;

/// Where a reload reads the configuration from.
#[derive(Debug, Clone)]
pub struct ReloadSource {
    /// The main config file.
    pub config: PathBuf,
    /// An extra file with the `[pgsluice]` section, if given on the command line.
    pub extra: Option<PathBuf>,
}

impl ReloadSource {
    /// Loads the config again; an invalid file is reported and the running config kept.
    pub fn load(&self) -> Option<Config> {
        match Config::load_with_extra(&self.config, self.extra.as_deref()) {
            Ok(config) => Some(config),
            Err(e) => {
                tracing::error!("reload failed, keeping the running configuration: {e}");
                None
            }
        }
    }
}

/// Installs the handlers; returns once they are registered, and keeps handling in a task.
pub fn spawn(
    shutdown: Shutdown,
    registry: Arc<Registry>,
    source: Option<ReloadSource>,
) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("got SIGHUP, reloading configuration");
                    if let Some(config) = source.as_ref().and_then(ReloadSource::load) {
                        registry.reload(&Arc::new(config));
                    }
                }
                _ = term.recv() => {
                    if shutdown.is_started() {
                        tracing::info!("got SIGTERM again, shutting down immediately");
                        shutdown.immediate();
                    } else {
                        tracing::info!("got SIGTERM, waiting for clients to disconnect (SHUTDOWN WAIT_FOR_CLIENTS)");
                        shutdown.wait_for_clients();
                    }
                }
                _ = int.recv() => {
                    if shutdown.drain.is_cancelled() {
                        tracing::info!("got SIGINT again, shutting down immediately");
                        shutdown.immediate();
                    } else {
                        tracing::info!("got SIGINT, finishing running transactions (SHUTDOWN WAIT_FOR_SERVERS)");
                        shutdown.wait_for_servers();
                    }
                }
                _ = quit.recv() => {
                    tracing::info!("got SIGQUIT, shutting down immediately");
                    shutdown.immediate();
                }
            }
        }
    });
    Ok(())
}
