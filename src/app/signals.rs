//! Unix signals, with PgBouncer's meanings: SIGHUP reload; SIGTERM wait for clients; SIGINT wait
//! for servers (running transactions finish); a second SIGINT/SIGTERM, or SIGQUIT, immediate.

use tokio::signal::unix::{SignalKind, signal};

use crate::control::{ReloadHandle, Shutdown};

/// Installs the handlers; returns once they are registered, and keeps handling in a task.
pub fn spawn(shutdown: Shutdown, reloads: ReloadHandle) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("got SIGHUP, reloading configuration");
                    reloads.request();
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
