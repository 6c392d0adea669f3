//! The control vocabulary shared by signals, the admin console and the app: how the process is
//! asked to stop.

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
