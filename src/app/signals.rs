//! Unix signals, with PgBouncer's meanings and log lines: SIGHUP reload; SIGTERM wait for
//! clients; SIGINT wait for servers (running transactions finish); a second SIGINT or SIGTERM
//! during any shutdown, or SIGQUIT, immediate;
//! SIGUSR1 PAUSE and SIGUSR2 RESUME of every database, as the console's commands.
//!
//! SIGHUP goes through the control loop (`ControlHandle`), so it is one reload at a time with
//! the console's RELOAD and SET. The other signals act here directly: SIGUSR1/SIGUSR2 make the
//! same `Registry::pause`/`resume` calls as the console's PAUSE/RESUME (nothing waits for the
//! pause to complete), and the shutdown signals set the same `Shutdown` stages as SHUTDOWN.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use crate::control::{ControlHandle, Request, Shutdown};
use crate::pool::Registry;

/// Installs the handlers; returns once they are registered, and keeps handling in a task.
pub fn spawn(
    shutdown: Shutdown,
    registry: Arc<Registry>,
    control: ControlHandle,
) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("got SIGHUP, reloading configuration");
                    // Through the control loop, as the console's RELOAD: one reload at a time.
                    let control = control.clone();
                    tokio::spawn(async move {
                        let _ = control.request(Request::Reload).await;
                    });
                }
                // A second SIGTERM or SIGINT during any shutdown (signal or console) exits at
                // once, as in PgBouncer.
                _ = term.recv() => {
                    if shutdown.is_started() {
                        tracing::info!("got SIGTERM while shutting down, fast exit");
                        shutdown.immediate();
                    } else {
                        tracing::info!("got SIGTERM, shutting down, waiting for all clients disconnect");
                        shutdown.wait_for_clients();
                    }
                }
                _ = int.recv() => {
                    if shutdown.is_started() {
                        tracing::info!("got SIGINT while shutting down, fast exit");
                        shutdown.immediate();
                    } else {
                        tracing::info!("got SIGINT, shutting down, waiting for all servers connections to be released");
                        shutdown.wait_for_servers();
                    }
                }
                _ = usr1.recv() => {
                    tracing::info!("got SIGUSR1, pausing all activity");
                    if let Err(e) = registry.pause(None) {
                        tracing::info!("PAUSE: {e}");
                    }
                }
                _ = usr2.recv() => {
                    if shutdown.is_started() {
                        tracing::info!("got SIGUSR2 while shutting down, ignoring");
                        continue;
                    }
                    tracing::info!("got SIGUSR2, continuing");
                    if let Err(e) = registry.resume(None) {
                        tracing::info!("RESUME: {e}");
                    }
                }
                _ = quit.recv() => {
                    tracing::info!("got SIGQUIT, fast exit");
                    shutdown.immediate();
                }
            }
        }
    });
    Ok(())
}
