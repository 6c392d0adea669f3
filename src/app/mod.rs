//! Wiring: binds the listeners, starts the janitor and signal handling, routes each new
//! connection (client, cancel, admin console), and sequences reload and shutdown.
//!
//! This is the only module that knows all the others.

pub mod check;
mod listener;
pub mod logging;
pub mod process;
pub mod reload;
pub mod signals;
mod stats_log;
mod syslog;
mod unix_socket;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::client::ClientContext;
use crate::client::cancel::CancelMap;
use crate::config::Config;
use crate::control::{ReloadHandle, ReloadResult, Shutdown};
use crate::pool::{Registry, janitor};
use reload::Reloader;

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
    unix_file: Option<unix_socket::SocketFile>,
    ctx: Arc<ClientContext>,
    tracker: TaskTracker,
    janitor_stop: tokio_util::sync::CancellationToken,
    reloader: Reloader,
    reloads: ReloadHandle,
}

/// How the binary starts the app beyond the config itself.
#[derive(Debug, Default)]
pub struct StartOptions {
    /// `--extra-config FILE`, read again on reload.
    pub extra_config: Option<PathBuf>,
    /// The installed log output, changed on reload.
    pub logging: Option<logging::LogHandle>,
}

/// Binds the listeners and starts serving in the background on the current tokio runtime.
pub fn start(config: Config) -> Result<Running, AppError> {
    start_with(config, StartOptions::default())
}

/// [`start`], with the binary's options.
pub fn start_with(config: Config, options: StartOptions) -> Result<Running, AppError> {
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
    let (tcp, unix) = bound.into_parts();
    let unix_socket = unix.as_ref().map(|u| u.display.clone());
    let unix_file = unix.as_ref().and_then(|u| u.file.clone());
    tracker.spawn(listener::accept_loops(
        tcp,
        unix.map(|u| u.listener),
        Arc::clone(&ctx),
        tracker.clone(),
    ));
    // The janitor is not tracked: it must keep pools healthy while clients drain.
    let janitor_stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(janitor::run(Arc::clone(&registry), janitor_stop.clone()));
    tokio::spawn(stats_log::run(Arc::clone(&registry), janitor_stop.clone()));
    let reloader = Reloader {
        extra: options.extra_config,
        registry,
        logging: options.logging,
    };
    let (reloads, requests) = ReloadHandle::new();
    tokio::spawn(reload::serve(reloader.clone(), requests));
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
        unix_file,
        ctx,
        tracker,
        janitor_stop,
        reloader,
        reloads,
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

    /// Asks for reloads (SIGHUP, the admin console's RELOAD).
    pub fn reload_handle(&self) -> &ReloadHandle {
        &self.reloads
    }

    /// Re-reads the config file and `auth_file` and applies them without dropping a connected
    /// client or an open transaction; an invalid file changes nothing and is reported.
    pub async fn reload(&self) -> ReloadResult {
        self.reloads.reload().await
    }

    /// Applies an already loaded config, as a reload would.
    pub fn reload_with(&self, config: Config) -> ReloadResult {
        self.reloader.apply(config)
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
        if let Some(file) = &self.unix_file {
            file.remove_if_ours();
        }
        tracing::info!("shutdown complete");
    }
}
