//! Wiring: binds the listeners, starts the janitor and signal handling, routes each new
//! connection (client, cancel, admin console), and sequences reload and shutdown.
//!
//! This is the only module that knows all the others.

mod listener;
pub mod signals;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::client::ClientContext;
use crate::client::cancel::CancelMap;
use crate::config::Config;
use crate::control::Shutdown;
use crate::pool::{Registry, janitor};
use crate::stats::alert_board::AlertBoard;

/// Why the pooler could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A listen address could not be bound.
    #[error("could not listen on {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No listen address is configured.
    #[error("no listen_addr and no unix_socket_dir: nothing to listen on")]
    NothingToListenOn,
    /// A `[pgsluice]` (metrics or alert) setting is invalid.
    #[error("[pgsluice] {0}")]
    Pgsluice(String),
}

/// A started pooler.
#[derive(Debug)]
pub struct Running {
    /// Bound TCP addresses (with the real port when `listen_port = 0`).
    pub tcp_addrs: Vec<SocketAddr>,
    /// The unix socket file, if any.
    pub unix_socket: Option<PathBuf>,
    /// The bound `metrics_listen` address, if metrics are on.
    pub metrics_addr: Option<SocketAddr>,
    alerts: Arc<AlertBoard>,
    ctx: Arc<ClientContext>,
    tracker: TaskTracker,
    janitor_stop: tokio_util::sync::CancellationToken,
}

/// Binds the listeners and starts serving in the background on the current tokio runtime.
pub fn start(config: Config) -> Result<Running, AppError> {
    crate::alerts::check(&config).map_err(|e| AppError::Pgsluice(e.to_string()))?;
    let metrics_listener = match crate::metrics::listen_addr(&config).map_err(AppError::Pgsluice)? {
        Some(addr) => Some(crate::metrics::bind(addr).map_err(|source| AppError::Bind {
            addr: addr.to_string(),
            source,
        })?),
        None => None,
    };
    let config = Arc::new(config);
    let registry = Arc::new(Registry::new(Arc::clone(&config)));
    let ctx = Arc::new(ClientContext {
        registry: Arc::clone(&registry),
        cancels: Arc::new(CancelMap::default()),
        shutdown: Shutdown::default(),
    });
    let tracker = TaskTracker::new();
    let bound = listener::bind_all(&config)?;
    let tcp_addrs = bound.tcp_addrs();
    let unix_socket = bound.unix_path.clone();
    tracker.spawn(listener::accept_loops(
        bound,
        Arc::clone(&ctx),
        tracker.clone(),
    ));
    // The janitor is not tracked: it must keep pools healthy while clients drain.
    let janitor_stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(janitor::run(Arc::clone(&registry), janitor_stop.clone()));
    // Metrics and alerts stop with the janitor: they observe pools until those close.
    let (alerts, metrics_addr) = start_observers(&registry, metrics_listener, &janitor_stop)?;
    let not_supported = crate::config::not_supported(&config);
    if !not_supported.is_empty() {
        tracing::warn!(
            "settings accepted but not supported yet (ignored): {}",
            not_supported.join(", ")
        );
    }
    tracing::info!(?tcp_addrs, ?unix_socket, "listening");
    Ok(Running {
        tcp_addrs,
        unix_socket,
        metrics_addr,
        alerts,
        ctx,
        tracker,
        janitor_stop,
    })
}

/// Starts the alert evaluator and, when `metrics_listen` is set, the metrics endpoint.
fn start_observers(
    registry: &Arc<Registry>,
    metrics_listener: Option<std::net::TcpListener>,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<(Arc<AlertBoard>, Option<SocketAddr>), AppError> {
    let board = Arc::new(AlertBoard::default());
    let source: Arc<dyn crate::alerts::Source> = Arc::clone(registry) as _;
    crate::alerts::start(source, Arc::clone(&board), stop)
        .map_err(|e| AppError::Pgsluice(e.to_string()))?;
    let metrics_addr = match metrics_listener {
        Some(listener) => {
            let sources = crate::metrics::Sources {
                registry: Arc::clone(registry),
                board: Arc::clone(&board),
                started: tokio::time::Instant::now(),
                started_wall: std::time::SystemTime::now(),
            };
            let bound = crate::metrics::start(listener, sources, stop).map_err(|source| {
                AppError::Bind {
                    addr: "metrics_listen".to_owned(),
                    source,
                }
            })?;
            Some(bound)
        }
        None => None,
    };
    Ok((board, metrics_addr))
}

impl Running {
    /// The first TCP address (tests bind one).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.tcp_addrs.first().copied()
    }

    /// The shutdown controls.
    pub fn shutdown(&self) -> &Shutdown {
        &self.ctx.shutdown
    }

    /// The alert table (what `SHOW ALERTS` shows).
    pub fn alerts(&self) -> &Arc<AlertBoard> {
        &self.alerts
    }

    /// The pool registry (for inspection and reload).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.ctx.registry
    }

    /// Applies a new configuration without dropping connections.
    pub fn reload(&self, config: Config) {
        self.ctx.registry.reload(&Arc::new(config));
        tracing::info!("configuration reloaded");
    }

    /// Waits until shutdown has been requested and every client is gone, then closes the pools.
    pub async fn wait(self) {
        self.ctx.shutdown.stop_accepting.cancelled().await;
        self.tracker.close();
        tokio::select! {
            () = self.tracker.wait() => {}
            () = self.ctx.shutdown.kill.cancelled() => {
                // Give tasks a moment to send their goodbyes.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.tracker.wait()).await;
            }
        }
        self.janitor_stop.cancel();
        self.ctx.registry.close_all();
        // Let the background Terminate messages go out.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Some(path) = &self.unix_socket {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!("shutdown complete");
    }
}
