//! The control vocabulary shared by signals, the admin console and the app: how the process is
//! asked to stop, reload, pause, resume, kill or reconfigure.
//!
//! Owns: the shutdown tokens ([`Shutdown`]), the requests the console and signals can make
//! ([`Request`]) and the handle that carries them to the app's control loop with a reply channel
//! ([`ControlHandle`]).
//! Does not: execute anything; the app's control loop does, using pool-level operations.
//! Invariants: every request gets exactly one reply (a dropped loop answers "pooler is shutting
//! down"); error replies carry PgBouncer's message text.

use tokio::sync::{mpsc, oneshot};

pub use crate::protocol::PoolerError;
use tokio_util::sync::CancellationToken;

/// Shutdown signals every task can watch. Each stage implies the ones before it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Stop accepting new connections on TCP; the unix socket stays open for the console, and
    /// new pooled logins there are refused ("pooler is shutting down"); connected clients carry
    /// on until they leave (PgBouncer's SHUTDOWN WAIT_FOR_CLIENTS, SIGTERM).
    pub stop_accepting: CancellationToken,
    /// Also hand out no more servers (WAIT_FOR_SERVERS, SIGINT): running transactions finish;
    /// a client is told "server shutting down" when it next asks for a server, as in PgBouncer,
    /// not while it sits idle.
    pub drain: CancellationToken,
    /// Set by the janitor at its first round after `drain`: clients still queued for a server
    /// are let go then ("server shutting down"), as PgBouncer's janitor lets them go.
    pub release_queued: CancellationToken,
    /// Close everything now (second signal, SIGQUIT, plain SHUTDOWN). Clients are closed
    /// without a message, as when PgBouncer exits.
    pub kill: CancellationToken,
    /// The process is exiting: the unix socket closes too. Set by the app once the stage's
    /// condition holds (no client left, or no server left), or with `kill`.
    pub exit: CancellationToken,
}

impl Shutdown {
    /// Stops accepting and waits for clients to leave.
    pub fn wait_for_clients(&self) {
        self.stop_accepting.cancel();
    }

    /// Stops accepting and disconnects clients once their transactions end.
    pub fn wait_for_servers(&self) {
        self.stop_accepting.cancel();
        self.drain.cancel();
    }

    /// Stops everything now.
    pub fn immediate(&self) {
        self.wait_for_servers();
        self.kill.cancel();
        self.exit.cancel();
    }

    /// Whether any shutdown stage has started.
    pub fn is_started(&self) -> bool {
        self.stop_accepting.is_cancelled()
    }
}

/// How SHUTDOWN should proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Exit now.
    Immediate,
    /// Stop accepting, let running transactions finish, then exit (SIGINT).
    WaitForServers,
    /// Stop accepting and exit once every client has left (SIGTERM).
    WaitForClients,
}

/// A request to change the running pooler. `None` as a database means "every database".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Re-read the configuration file and `auth_file`.
    Reload,
    /// Change one setting at run time (`SET key = value`).
    Set {
        /// Setting name.
        key: String,
        /// New value.
        value: String,
    },
    /// Stop handing out servers and close them as they are released; replies once none is open.
    Pause(Option<String>),
    /// Undo PAUSE (or KILL for a database).
    Resume(Option<String>),
    /// Refuse new client logins to a database.
    Disable(String),
    /// Accept new client logins to a database again.
    Enable(String),
    /// Close servers as soon as they are released.
    Reconnect(Option<String>),
    /// Disconnect every client and server of a database now, and pause it.
    Kill(Option<String>),
    /// Disconnect one client (and the server it holds).
    KillClient(u64),
    /// Reply once no server marked for closing (RECONNECT, reload) is left.
    WaitClose(Option<String>),
    /// Shut down.
    Shutdown(ShutdownMode),
}

/// The reply to a request.
pub type Reply = Result<(), PoolerError>;

/// A request in flight with its reply channel.
pub type Envelope = (Request, oneshot::Sender<Reply>);

/// Sends requests to the app's control loop. Cloneable.
#[derive(Debug, Clone)]
pub struct ControlHandle {
    tx: mpsc::Sender<Envelope>,
}

impl ControlHandle {
    /// A handle and the receiving end the control loop reads.
    pub fn channel() -> (ControlHandle, mpsc::Receiver<Envelope>) {
        let (tx, rx) = mpsc::channel(64);
        (ControlHandle { tx }, rx)
    }

    /// Sends a request and waits for its reply.
    pub async fn request(&self, request: Request) -> Reply {
        let (tx, rx) = oneshot::channel();
        let gone = || PoolerError::new("pooler is shutting down");
        self.tx.send((request, tx)).await.map_err(|_| gone())?;
        rx.await.unwrap_or_else(|_| Err(gone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_get_replies() {
        let (handle, mut rx) = ControlHandle::channel();
        tokio::spawn(async move {
            while let Some((request, reply)) = rx.recv().await {
                let answer = match request {
                    Request::Reload => Ok(()),
                    _ => Err(PoolerError::new("nope")),
                };
                let _ = reply.send(answer);
            }
        });
        assert_eq!(handle.request(Request::Reload).await, Ok(()));
        assert_eq!(
            handle.request(Request::KillClient(1)).await,
            Err(PoolerError::new("nope"))
        );
    }

    #[tokio::test]
    async fn a_dropped_loop_answers_shutting_down() {
        let (handle, rx) = ControlHandle::channel();
        drop(rx);
        let err = handle.request(Request::Reload).await.unwrap_err();
        assert_eq!(err.message, "pooler is shutting down");
    }
}
