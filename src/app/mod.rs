//! Wiring: binds the listeners, starts the control loop, the janitor, the stats ticker, the alert
//! evaluator and the metrics endpoint, routes each new connection (client, cancel, admin
//! console), relays the shutdown stages to the connection directory, and sequences reload
//! ([`reload`]) and shutdown. Signal handling ([`signals`]) is started by the binary.
//!
//! This is the only module that knows all the others.

pub mod check;
mod console;
pub mod control;
mod listener;
pub mod logging;
pub mod process;
pub mod reload;
pub mod signals;
mod syslog;
mod unix_socket;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tokio_util::task::TaskTracker;

use crate::admin::{self, AdminContext};
use crate::client::ClientContext;
use crate::client::cancel::CancelMap;
use crate::config::Config;
use crate::control::{ControlHandle, Shutdown};
use crate::pool::{LoginPolicy, PolicyError, Registry, janitor};
use crate::stats::PoolStats;
use crate::stats::alert_board::AlertBoard;
use crate::stats::conns::ShutdownStage;
use crate::stats::period::StatsPeriods;
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
    /// TLS or HBA files could not be loaded.
    #[error(transparent)]
    Policy(#[from] PolicyError),
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
    unix_file: Option<unix_socket::SocketFile>,
    alerts: Arc<AlertBoard>,
    ctx: Arc<ClientContext>,
    admin: Arc<AdminContext>,
    reloader: Reloader,
    tracker: TaskTracker,
    janitor_stop: tokio_util::sync::CancellationToken,
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
    crate::alerts::check(&config).map_err(|e| AppError::Pgsluice(e.to_string()))?;
    let dropped = crate::server::params::configure(&config.general.track_extra_parameters);
    if !dropped.is_empty() {
        tracing::warn!(
            "track_extra_parameters: too many parameters, not tracked: {}",
            dropped.join(", ")
        );
    }
    let metrics_listener = match crate::metrics::listen_addr(&config).map_err(AppError::Pgsluice)? {
        Some(addr) => Some(crate::metrics::bind(addr).map_err(|source| AppError::Bind {
            addr: addr.to_string(),
            source,
        })?),
        None => None,
    };
    let config = Arc::new(config);
    let policy = LoginPolicy::load(&config)?;
    let registry = Arc::new(Registry::with_policy(Arc::clone(&config), policy));
    let shutdown = Shutdown::default();
    let ctx = Arc::new(ClientContext {
        registry: Arc::clone(&registry),
        cancels: Arc::new(CancelMap::default()),
        shutdown: shutdown.clone(),
        statements: Arc::default(),
        reported_version: |config| {
            let version = crate::admin::compat_version(config);
            (version >= crate::admin::table::v(1, 26)).then(|| version.full())
        },
    });
    let bound = listener::bind_all(&config)?;
    let (control, requests) = ControlHandle::channel();
    let reloader = Reloader::new(Arc::clone(&registry), options.extra_config, options.logging);
    tokio::spawn(control::run(
        control::ControlEnv {
            registry: Arc::clone(&registry),
            shutdown: shutdown.clone(),
            reloader: reloader.clone(),
        },
        requests,
    ));
    let alerts = Arc::new(AlertBoard::default());
    let admin = Arc::new(AdminContext {
        registry: Arc::clone(&registry),
        shutdown,
        control,
        periods: Arc::new(StatsPeriods::default()),
        auth: Arc::new(console::ClientAuth(Arc::clone(&registry))),
        connections: Arc::new(AtomicUsize::new(0)),
        stats: PoolStats::default(),
        mem_sizes: console::mem_sizes(),
        cancel_keys: parking_lot::Mutex::default(),
        alerts: Arc::clone(&alerts),
    });
    spawn_shutdown_relay(&registry, &admin.shutdown);
    let tracker = TaskTracker::new();
    let tcp_addrs = bound.tcp_addrs();
    let (tcp, unix) = bound.into_parts();
    let unix_socket = unix.as_ref().map(|u| u.display.clone());
    let unix_file = unix.as_ref().and_then(|u| u.file.clone());
    tracker.spawn(listener::accept_loops(
        tcp,
        unix.map(|u| u.listener),
        Arc::clone(&ctx),
        Arc::clone(&admin),
        tracker.clone(),
    ));
    // The janitor and the stats ticker are not tracked: they must keep running while clients
    // drain.
    let janitor_stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(janitor::run(
        Arc::clone(&registry),
        janitor_stop.clone(),
        ctx.shutdown.clone(),
    ));
    tokio::spawn(admin::ticker::run(Arc::clone(&admin), janitor_stop.clone()));
    // Metrics and alerts stop with the janitor: they observe pools until those close.
    let metrics_addr = start_observers(&registry, &alerts, metrics_listener, &janitor_stop)?;
    admin::check_compat_version(&config);
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
        unix_file,
        alerts,
        ctx,
        admin,
        reloader,
        tracker,
        janitor_stop,
    })
}

/// Passes the shutdown stages to the clients' own stop flags (each client waits on its record
/// only, not on the shared tokens): a drain, then an immediate shutdown.
fn spawn_shutdown_relay(registry: &Arc<Registry>, shutdown: &Shutdown) {
    let conns = Arc::clone(registry.conns());
    let (drain, kill) = (shutdown.drain.clone(), shutdown.kill.clone());
    tokio::spawn(async move {
        drain.cancelled().await;
        conns.stop_followers(ShutdownStage::Drain);
        kill.cancelled().await;
        conns.stop_followers(ShutdownStage::Immediate);
    });
}

/// Starts the alert evaluator (publishing to `board`) and, when `metrics_listen` is set, the
/// metrics endpoint; returns the endpoint's bound address.
fn start_observers(
    registry: &Arc<Registry>,
    board: &Arc<AlertBoard>,
    metrics_listener: Option<std::net::TcpListener>,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Option<SocketAddr>, AppError> {
    let source: Arc<dyn crate::alerts::Source> = Arc::clone(registry) as _;
    crate::alerts::start(source, Arc::clone(board), stop)
        .map_err(|e| AppError::Pgsluice(e.to_string()))?;
    let metrics_addr = match metrics_listener {
        Some(listener) => {
            let sources = crate::metrics::Sources {
                registry: Arc::clone(registry),
                board: Arc::clone(board),
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
    Ok(metrics_addr)
}

impl Running {
    /// Whether the shutdown stage that started is complete, with PgBouncer's log reason.
    fn stage_done(&self) -> Option<&'static str> {
        let shutdown = &self.ctx.shutdown;
        if shutdown.exit.is_cancelled() {
            Some("shutdown requested")
        } else if shutdown.drain.is_cancelled() {
            let in_use: usize = self
                .ctx
                .registry
                .pools()
                .iter()
                .map(|p| p.snapshot().sv_active)
                .sum();
            (in_use == 0).then_some("server connections dropped")
        } else {
            let open = self
                .admin
                .connections
                .load(std::sync::atomic::Ordering::Acquire);
            (open == 0).then_some("client connections dropped")
        }
    }

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

    /// The admin console's shared state (for tests and embedding).
    pub fn admin(&self) -> &Arc<AdminContext> {
        &self.admin
    }

    /// The handle SIGHUP and the console use for RELOAD and the other control requests.
    pub fn control(&self) -> &ControlHandle {
        &self.admin.control
    }

    /// Re-reads the config file and `auth_file` and applies them without dropping a connected
    /// client or an open transaction; an invalid file changes nothing, and the reason is
    /// returned (what SIGHUP and RELOAD do).
    pub fn reload(&self) -> Result<(), String> {
        self.reloader.reload()
    }

    /// Applies an already loaded config, as a reload would.
    pub fn reload_with(&self, config: Config) -> Result<(), String> {
        self.reloader.apply(config)
    }

    /// Waits until shutdown has been requested and its stage is complete, then closes every
    /// connection and the pools: WAIT_FOR_CLIENTS (SIGTERM) exits once no connection is left,
    /// console sessions included; WAIT_FOR_SERVERS (SIGINT) once no server is in use; an
    /// immediate shutdown at once. As in PgBouncer, clients still connected then are closed
    /// without a message.
    pub async fn wait(self) {
        let shutdown = &self.ctx.shutdown;
        shutdown.stop_accepting.cancelled().await;
        loop {
            if let Some(why) = self.stage_done() {
                tracing::info!("{why}, exiting");
                break;
            }
            // PgBouncer's janitor checks the same conditions on its timer.
            tokio::select! {
                () = shutdown.exit.cancelled() => break,
                () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            }
        }
        shutdown.immediate();
        self.tracker.close();
        // Give tasks a moment to close their sockets.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.tracker.wait()).await;
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
