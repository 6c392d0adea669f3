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
}

/// A started pooler.
#[derive(Debug)]
pub struct Running {
    /// Bound TCP addresses (with the real port when `listen_port = 0`).
    pub tcp_addrs: Vec<SocketAddr>,
    /// The unix socket file, if any.
    pub unix_socket: Option<PathBuf>,
    ctx: Arc<ClientContext>,
    tracker: TaskTracker,
    janitor_stop: tokio_util::sync::CancellationToken,
}

/// Binds the listeners and starts serving in the background on the current tokio runtime.
pub fn start(config: Config) -> Result<Running, AppError> {
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
    tokio::spawn(janitor::run(registry, janitor_stop.clone()));
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
        ctx,
        tracker,
        janitor_stop,
    })
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
