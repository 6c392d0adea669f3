//! One PostgreSQL server connection: connecting and logging in ([`login`]), the parameters the
//! server reported ([`params`]), running the pooler's own simple queries on it ([`query`]:
//! reset, check, SET alignment, ROLLBACK), and what a cancel needs to reach it.
//!
//! Does not: know about pools or clients. The pool owns `ServerConn`s; a client task borrows one
//! through the pool's guard and relays bytes over [`ServerConn::io`].
//!
//! Invariant: `idle` is true only after a ReadyForQuery `I` with nothing outstanding; anything
//! else is a dirty server that must be reset or closed, never handed on.

mod auth_query;
pub mod credentials;
mod login;
pub mod params;
pub mod prepared;
mod query;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;

use crate::config::Secret;
use crate::net::{KeepaliveSettings, Stream};
use crate::protocol::reply::ErrorFields;
use crate::protocol::scan::Scanner;

pub use auth_query::Rows;
pub use credentials::{Learned, LearnedCredentials};
pub use login::connect;
pub use params::ParamSet;
pub use prepared::PreparedSet;

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerAddr {
    /// TCP host (name or IP) and port.
    Tcp(String, u16),
    /// A unix socket file path (`<dir>/.s.PGSQL.<port>`).
    Unix(String),
}

impl ServerAddr {
    /// From a `[databases]` host (a name, an IP, or a socket directory starting with `/`).
    pub fn new(host: Option<&str>, port: u16) -> ServerAddr {
        match host {
            Some(h) if !h.starts_with('/') && !h.is_empty() => ServerAddr::Tcp(h.to_owned(), port),
            other => {
                let dir = other
                    .filter(|h| !h.is_empty())
                    .unwrap_or("/var/run/postgresql");
                ServerAddr::Unix(format!("{dir}/.s.PGSQL.{port}"))
            }
        }
    }
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAddr::Tcp(h, p) => write!(f, "{h}:{p}"),
            ServerAddr::Unix(path) => f.write_str(path),
        }
    }
}

/// Everything needed to open a server connection for one pool.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Address.
    pub addr: ServerAddr,
    /// Database name on the server.
    pub dbname: String,
    /// User to log in as.
    pub user: String,
    /// Secret to log in with, if any.
    pub secret: Option<Secret>,
    /// Extra startup parameters (client_encoding, datestyle, timezone, application_name).
    pub startup_params: Vec<(String, String)>,
    /// `connect_query`, run once after login.
    pub connect_query: Option<String>,
    /// `server_connect_timeout`, covering connect and login.
    pub connect_timeout: Duration,
    /// Socket options.
    pub keepalive: KeepaliveSettings,
    /// `max_packet_size`.
    pub max_packet_size: usize,
    /// `server_tls_sslmode` and the connector (TCP servers only).
    pub tls: crate::tls::ServerTls,
    /// What client logins proved (auth_query secrets, SCRAM keys), used when `secret` cannot
    /// answer the server.
    pub learned: Arc<LearnedCredentials>,
}

/// What a cancel request needs to reach the backend running a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelTarget {
    /// Server address.
    pub addr: ServerAddr,
    /// Backend pid.
    pub pid: i32,
    /// Backend secret key.
    pub key: i32,
}

/// Why a server connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Could not open the socket.
    #[error("could not connect to server {addr}")]
    Connect {
        /// Where.
        addr: ServerAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `server_connect_timeout` passed.
    #[error("server connect timeout")]
    ConnectTimeout,
    /// The server refused the login.
    #[error("server login failed: {0}")]
    Login(ErrorFields),
    /// The server asked for an authentication method or secret we cannot provide.
    #[error("server login failed: {0}")]
    AuthUnsupported(&'static str),
    /// Socket or framing error after login.
    #[error("server connection broken")]
    Io(#[from] crate::net::ReadError),
    /// A pooler-issued query (reset, check, SET) failed.
    #[error("server query failed: {0}")]
    Query(ErrorFields),
    /// The server sent something that makes no sense here.
    #[error("unexpected message {0:?} from server")]
    Unexpected(char),
    /// TLS could not be set up as `server_tls_sslmode` demands (PgBouncer's reasons: "server
    /// refused SSL", "bad sslreq answer", "TLS startup failed").
    #[error("{reason}")]
    Tls {
        /// PgBouncer's wording.
        reason: &'static str,
        /// The handshake error, if any.
        #[source]
        source: Option<std::io::Error>,
    },
}

impl From<std::io::Error> for ServerError {
    fn from(e: std::io::Error) -> Self {
        ServerError::Io(crate::net::ReadError::Io(e))
    }
}

/// Mutable views of a server connection's parts, for the relay.
#[derive(Debug)]
pub struct ServerIo<'a> {
    /// The socket.
    pub stream: &'a mut Stream,
    /// Bytes read and not yet relayed.
    pub read_buf: &'a mut BytesMut,
    /// Where the current message ends.
    pub scanner: &'a mut Scanner,
    /// Pooler-named prepared statements on the server.
    pub prepared: &'a mut PreparedSet,
    /// Reported parameters.
    pub params: &'a mut ParamSet,
}

/// An open, logged-in server connection.
#[derive(Debug)]
pub struct ServerConn {
    /// Unique id (SHOW SERVERS `id`).
    pub id: u64,
    stream: Stream,
    read_buf: BytesMut,
    scanner: Scanner,
    cancel: Arc<CancelTarget>,
    /// Values the server reported with ParameterStatus.
    pub params: ParamSet,
    /// All ParameterStatus values from login (for the pool's welcome message).
    pub login_params: Arc<Vec<(String, String)>>,
    /// When the connection was opened.
    pub created: Instant,
    /// When it was last returned to the pool.
    pub last_used: Instant,
    /// When it was last checked out.
    pub request_time: Instant,
    /// Local address and port (SHOW SERVERS).
    pub local: (String, u16),
    /// Set when the server must be closed instead of reused (RECONNECT, reload).
    pub close_needed: bool,
    /// Pooler-named prepared statements that exist on this server.
    pub prepared: PreparedSet,
    /// This server's record in the connection directory (SHOW SERVERS); the pool registers it
    /// and reports state changes through it; dropping the connection removes the record.
    pub entry: Option<crate::stats::conns::ConnEntry>,
}

impl ServerConn {
    /// The parts the relay works with, borrowed separately.
    pub fn io(&mut self) -> ServerIo<'_> {
        ServerIo {
            stream: &mut self.stream,
            read_buf: &mut self.read_buf,
            scanner: &mut self.scanner,
            prepared: &mut self.prepared,
            params: &mut self.params,
        }
    }

    /// What a cancel request for this server's running query needs.
    pub fn cancel_target(&self) -> &Arc<CancelTarget> {
        &self.cancel
    }

    /// Whether the connection is at a message boundary with nothing unread, i.e. safe to reuse.
    pub fn is_clean(&self) -> bool {
        self.scanner.at_boundary() && self.read_buf.is_empty()
    }

    /// Whether the idle socket still looks usable: nothing unread and no EOF. An idle server sends
    /// nothing unless it is going away (shutdown, `pg_terminate_backend`), so one non-blocking
    /// read at checkout catches servers that died while pooled, before a client's query is lost.
    pub fn looks_alive(&self) -> bool {
        let mut probe = [0u8; 1];
        let result = self.stream.try_read_raw(&mut probe);
        matches!(result, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// The TLS summary for SHOW SERVERS, or `None` for a plain connection.
    pub fn tls_summary(&self) -> Option<String> {
        self.stream.tls_summary()
    }

    /// How long ago the connection was opened.
    pub fn age(&self) -> Duration {
        self.created.elapsed()
    }
}
