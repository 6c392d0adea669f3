//! The control vocabulary shared by signals, the admin console and the app: how the process is
//! asked to stop, and to reload its configuration.

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Shutdown signals every task can watch. Each stage implies the ones before it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Stop accepting new connections; connected clients carry on until they leave
    /// (PgBouncer's SHUTDOWN WAIT_FOR_CLIENTS, SIGTERM).
    pub stop_accepting: CancellationToken,
    /// Also disconnect clients at their next moment without a server: running transactions
    /// finish, then the client is told the pooler is shutting down (WAIT_FOR_SERVERS, SIGINT).
    pub drain: CancellationToken,
    /// Close everything now (second signal, SIGQUIT, plain SHUTDOWN).
    pub kill: CancellationToken,
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
    }

    /// Whether any shutdown stage has started.
    pub fn is_started(&self) -> bool {
        self.stop_accepting.is_cancelled()
    }
}

/// The answer to a reload request: `Err` carries the reason the running config was kept.
pub type ReloadResult = Result<(), String>;

/// A reload request, with where to send its outcome (if anyone waits for it).
#[derive(Debug)]
pub struct ReloadRequest {
    /// Gets the outcome.
    pub reply: Option<oneshot::Sender<ReloadResult>>,
}

/// Asks the app to re-read its configuration (SIGHUP, the admin console's RELOAD). Requests
/// are carried out one at a time, in order.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    tx: mpsc::Sender<ReloadRequest>,
}

impl ReloadHandle {
    /// A handle and the queue the app serves.
    pub fn new() -> (ReloadHandle, mpsc::Receiver<ReloadRequest>) {
        // A few requests queued are plenty: each one re-reads the files anyway.
        let (tx, rx) = mpsc::channel(8);
        (ReloadHandle { tx }, rx)
    }

    /// Requests a reload and waits for its outcome.
    pub async fn reload(&self) -> ReloadResult {
        let (reply, outcome) = oneshot::channel();
        self.tx
            .send(ReloadRequest { reply: Some(reply) })
            .await
            .map_err(|_| "the pooler is shutting down".to_owned())?;
        outcome
            .await
            .unwrap_or_else(|_| Err("the pooler is shutting down".to_owned()))
    }

    /// Requests a reload without waiting (a signal handler). A full queue already holds a
    /// reload that will read the newest files, so the request is dropped.
    pub fn request(&self) {
        let _ = self.tx.try_send(ReloadRequest { reply: None });
    }
}
