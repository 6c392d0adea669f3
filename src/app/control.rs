//! The control loop: executes `control::Request`s from the console (and anyone else holding a
//! `ControlHandle`) with pool-level operations, the reload path and the shutdown tokens.
//!
//! Owns: turning a request into effects and a reply: waiting for PAUSE and WAIT_CLOSE to
//! complete; RELOAD and SET go to the [`Reloader`] (one at a time).
//! Does not: check rights or argument syntax (the console does) or know about sockets.
//! Invariants: each request runs on its own task, so a PAUSE that waits for transactions to end
//! never holds up a RESUME; every request gets one reply.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::reload::Reloader;
use crate::control::{Envelope, Reply, Request, Shutdown, ShutdownMode};
use crate::pool::Registry;
use crate::protocol::PoolerError;
use crate::protocol::sqlstate;
use crate::stats::conns::Side;

/// What the control loop works with.
#[derive(Debug, Clone)]
pub struct ControlEnv {
    /// Pools and config.
    pub registry: Arc<Registry>,
    /// Shutdown tokens.
    pub shutdown: Shutdown,
    /// Re-reads the config file the running config came from (with `--extra-config`).
    pub reloader: Reloader,
}

/// Runs until every handle is dropped.
pub async fn run(env: ControlEnv, mut rx: mpsc::Receiver<Envelope>) {
    while let Some((request, reply)) = rx.recv().await {
        let env = env.clone();
        tokio::spawn(async move {
            let answer = execute(&env, request).await;
            let _ = reply.send(answer);
        });
    }
}

fn op(result: Result<(), crate::pool::ControlOpError>) -> Reply {
    result.map_err(|e| PoolerError::new(e.to_string()))
}

/// Polls `done` every 50 ms until it holds.
async fn wait_until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long KILL and KILL_CLIENT wait for the killed clients' tasks to leave the connection
/// directory; a client stuck writing to a full socket does not hold the answer longer.
const KILL_WAIT: Duration = Duration::from_secs(2);

async fn until_gone(done: impl FnMut() -> bool) {
    if tokio::time::timeout(KILL_WAIT, wait_until(done))
        .await
        .is_err()
    {
        tracing::warn!("killed clients still closing after {KILL_WAIT:?}; answering anyway");
    }
}

async fn execute(env: &ControlEnv, request: Request) -> Reply {
    let registry = &env.registry;
    match request {
        Request::Reload => reload(env),
        // Through the reloader, one at a time with RELOAD, and to the log output too.
        Request::Set { key, value } => env.reloader.set(&key, &value).map_err(PoolerError::new),
        Request::Pause(db) => {
            op(registry.pause(db.as_deref()))?;
            let db = db.as_deref();
            // Done when no server is left, or when a RESUME came first.
            wait_until(|| {
                let still = match db {
                    None => registry.globally_paused(),
                    Some(name) => registry.db_flags(name).paused(),
                };
                !still || registry.open_servers(db) == 0
            })
            .await;
            Ok(())
        }
        Request::Resume(db) => {
            if db.is_none() && env.shutdown.is_started() {
                return Err(PoolerError::new("pooler is shutting down"));
            }
            op(registry.resume(db.as_deref()))
        }
        Request::Disable(db) => op(registry.set_disabled(&db, true)),
        Request::Enable(db) => op(registry.set_disabled(&db, false)),
        Request::Reconnect(db) => op(registry.reconnect(db.as_deref())),
        Request::Kill(db) => {
            op(registry.kill(db.as_deref()))?;
            // PgBouncer closes the clients before it answers: a SHOW CLIENTS right after
            // KILL must not list them.
            let db = db.as_deref();
            until_gone(|| {
                !registry.conns().all().iter().any(|c| {
                    c.side == Side::Client
                        && c.database != crate::admin::ADMIN_DB
                        && db.is_none_or(|name| c.database == name)
                })
            })
            .await;
            Ok(())
        }
        Request::KillClient(id) => {
            op(registry.kill_client(id))?;
            until_gone(|| registry.conns().get(id).is_none()).await;
            Ok(())
        }
        Request::WaitClose(db) => {
            if let Some(name) = db.as_deref() {
                op(registry.check_database(name))?;
            }
            wait_until(|| registry.close_needed_servers(db.as_deref()) == 0).await;
            Ok(())
        }
        Request::Shutdown(mode) => {
            match mode {
                ShutdownMode::Immediate => env.shutdown.immediate(),
                ShutdownMode::WaitForServers => env.shutdown.wait_for_servers(),
                ShutdownMode::WaitForClients => env.shutdown.wait_for_clients(),
            }
            tracing::info!(?mode, "SHUTDOWN command issued");
            Ok(())
        }
    }
}

fn reload(env: &ControlEnv) -> Reply {
    tracing::info!("RELOAD command issued");
    // The reason is logged by the reloader; the console gets PgBouncer's text.
    env.reloader.reload().map_err(|_| {
        PoolerError::with_state(
            sqlstate::CONFIG_FILE_ERROR,
            "RELOAD failed, see logs for additional details",
        )
    })
}
