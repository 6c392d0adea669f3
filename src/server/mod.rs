//! One PostgreSQL server connection: connecting and logging in (`login`), the parameters the
//! server reported ([`params`]), running the pooler's own simple queries on it (`query`:
//! reset, check, SET alignment, ROLLBACK), and what a cancel needs to reach it.
//!
//! Does not: know about pools or clients. The pool owns `ServerConn`s; a client task borrows one
//! through the pool's guard and relays bytes over [`ServerConn::io`].
//!
//! Invariant: a `ServerConn` goes back to an idle list only when its client's relay ended at a
//! ReadyForQuery `I` with nothing outstanding (`ServerState::Idle`, decided by
//! `client::release::ReleaseRule`) and [`ServerConn::is_clean`] holds, or after the guard's
//! ROLLBACK or `server_reset_query` brought it back to `I`; anything else is a dirty server that
//! is closed, never handed on (`pool::PooledServer::release`).

pub(crate) mod auth_query;
pub mod credentials;
mod login;
pub mod params;
pub mod prepared;
mod query;

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// Which host of a `host=a,b,c` list the next connection uses (`load_balance_hosts`).
    pub hosts: Arc<HostRotation>,
}

/// The choice among the hosts of a `[databases]` host list, as PgBouncer 1.24 makes it:
/// `round-robin` (the default) moves to the next host for every new connection; `disable`
/// keeps using one host and moves to the next only when a connection to it fails.
#[derive(Debug, Default)]
pub struct HostRotation {
    round_robin: bool,
    next: AtomicUsize,
}

impl HostRotation {
    /// `load_balance_hosts = round-robin` when `round_robin`, else `disable`.
    pub fn new(round_robin: bool) -> HostRotation {
        HostRotation {
            round_robin,
            next: AtomicUsize::new(0),
        }
    }

    /// The address this connection uses: one host of `addr`'s comma-separated list (the
    /// address itself when it names one host), and its index in the list.
    pub fn pick(&self, addr: &ServerAddr) -> (ServerAddr, usize) {
        let ServerAddr::Tcp(list, port) = addr else {
            return (addr.clone(), 0);
        };
        let hosts: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        if hosts.len() <= 1 {
            return (addr.clone(), 0);
        }
        let turn = if self.round_robin {
            self.next.fetch_add(1, Ordering::Relaxed)
        } else {
            self.next.load(Ordering::Relaxed)
        };
        let index = turn % hosts.len();
        (ServerAddr::Tcp(hosts[index].to_owned(), *port), index)
    }

    /// A connection to host `index` failed: with `disable`, the next connection tries the next
    /// host (unless another connection already moved on).
    pub fn failed(&self, index: usize) {
        if !self.round_robin {
            let _ = self.next.compare_exchange(
                index,
                index.wrapping_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
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
    /// The server's host name did not resolve.
    #[error("server DNS lookup failed: {host}")]
    DnsLookup {
        /// The name.
        host: String,
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
    /// Pooler-named prepared statements that exist on this server.
    pub prepared: PreparedSet,
    /// This server's record in the connection directory (SHOW SERVERS); the pool registers it
    /// and reports state changes through it; dropping the connection removes the record.
    pub entry: Option<crate::stats::conns::ConnEntry>,
}

impl ServerConn {
    /// Whether the server must be closed instead of reused (RECONNECT, a reload that changed
    /// its database): the one flag lives in its connection-directory record, where SHOW
    /// SERVERS reads it too.
    pub fn close_needed(&self) -> bool {
        self.entry.as_ref().is_some_and(|e| e.close_needed())
    }

    /// Files this logged-in connection in the connection directory: its endpoints, backend pid
    /// and TLS summary, as SHOW SERVERS prints them.
    pub fn attach_entry(&mut self, entry: crate::stats::conns::ConnEntry) {
        let (addr, port) = self.io().stream.peer();
        let (local_addr, local_port) = self.local.clone();
        entry.set_endpoints(crate::stats::conns::Endpoints {
            addr,
            port,
            local_addr,
            local_port,
        });
        entry.set_remote_pid(self.cancel_target().pid);
        entry.set_tls(&self.tls_summary().unwrap_or_default());
        self.entry = Some(entry);
    }

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

#[cfg(test)]
mod host_rotation_tests {
    use super::{HostRotation, ServerAddr};

    fn host(addr: &ServerAddr) -> &str {
        match addr {
            ServerAddr::Tcp(h, _) => h,
            ServerAddr::Unix(p) => p,
        }
    }

    #[test]
    fn round_robin_takes_each_host_in_turn() {
        let list = ServerAddr::Tcp("a, b,c".into(), 5432);
        let rotation = HostRotation::new(true);
        let picked: Vec<String> = (0..4)
            .map(|_| host(&rotation.pick(&list).0).to_owned())
            .collect();
        assert_eq!(picked, ["a", "b", "c", "a"]);
        // A failure changes nothing: the next connection goes to the next host anyway.
        rotation.failed(0);
        assert_eq!(host(&rotation.pick(&list).0), "b");
    }

    #[test]
    fn disable_keeps_one_host_until_it_fails() {
        let list = ServerAddr::Tcp("a,b".into(), 5432);
        let rotation = HostRotation::new(false);
        let (first, index) = rotation.pick(&list);
        assert_eq!((host(&first), index), ("a", 0));
        assert_eq!(host(&rotation.pick(&list).0), "a");
        rotation.failed(0);
        assert_eq!(host(&rotation.pick(&list).0), "b");
        // A second report of the old host's failure does not skip the good one.
        rotation.failed(0);
        assert_eq!(host(&rotation.pick(&list).0), "b");
        rotation.failed(1);
        assert_eq!(host(&rotation.pick(&list).0), "a");
    }

    #[test]
    fn single_hosts_and_sockets_are_used_as_they_are() {
        let rotation = HostRotation::new(true);
        let one = ServerAddr::Tcp("db.example".into(), 6432);
        assert_eq!(rotation.pick(&one), (one.clone(), 0));
        let unix = ServerAddr::Unix("/run/.s.PGSQL.5432".into());
        assert_eq!(rotation.pick(&unix), (unix.clone(), 0));
    }
}
