//! Listening sockets (TCP on each `listen_addr`, and the unix socket) and the accept loops:
//! `max_client_conn`, `client_login_timeout`, and routing of each new connection to the client
//! path, the cancel path or the admin console. Nothing slow happens in an accept loop.
//!
//! One accept loop serves every listener of either kind ([`Listener`]). When shutdown stops
//! accepting, each loop first takes every connection the kernel has already queued on its
//! socket; a TCP listener then closes: a queued connection would otherwise be reset by the
//! close, which is what a rolling restart with `so_reuseport` must avoid. The unix socket
//! stays open until the process exits (PgBouncer's `cleanup_tcp_sockets`), so the
//! console can still be reached during a shutdown.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::AppError;
use super::unix_socket::{self, UnixBound};
use crate::admin::{self, AdminContext};
use crate::client::errors::ClientError;
use crate::client::startup::{FirstContact, handshake};
use crate::client::{self, ClientContext};
use crate::config::Config;
use crate::net::{MessageReader, Stream, apply_tcp_options};
use crate::pool::registry::keepalive_settings;
use crate::stats::conn_log::LogPeer;
use crate::stats::conns::Side;

/// The bound sockets, before their accept loops start.
pub(super) struct Bound {
    tcp: Vec<TcpListener>,
    pub(super) unix: Option<UnixBound>,
}

impl Bound {
    pub(super) fn into_parts(self) -> (Vec<TcpListener>, Option<UnixBound>) {
        (self.tcp, self.unix)
    }

    pub(super) fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }
}

fn resolve(addr: &str, port: u16) -> Vec<SocketAddr> {
    match addr {
        "*" => vec![
            SocketAddr::from(([0, 0, 0, 0], port)),
            SocketAddr::from(([0u16; 8], port)),
        ],
        a => (a.trim_matches(['[', ']']), port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default(),
    }
}

fn bind_tcp(addr: SocketAddr, config: &Config) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if config.general.so_reuseport {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    // tcp_socket_buffer before listen(), as PgBouncer does: accepted sockets inherit it, and the
    // window scale offered in the handshake then fits it. Shrinking the receive buffer of an
    // established loopback connection afterwards stalls it on 200 ms window probes.
    if config.general.tcp_socket_buffer > 0 {
        let size = usize::try_from(config.general.tcp_socket_buffer).unwrap_or(usize::MAX);
        socket.set_recv_buffer_size(size)?;
        socket.set_send_buffer_size(size)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(config.general.listen_backlog).unwrap_or(128))?;
    TcpListener::from_std(socket.into())
}

/// Binds every configured listener.
pub(super) fn bind_all(config: &Config) -> Result<Bound, AppError> {
    let g = &config.general;
    let mut tcp = Vec::new();
    let mut port = g.listen_port;
    for listen_addr in &g.listen_addr {
        let wildcard = listen_addr == "*";
        let addrs = resolve(listen_addr, port);
        if addrs.is_empty() {
            return Err(AppError::Bind {
                addr: listen_addr.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "listen_addr does not resolve",
                ),
            });
        }
        for addr in addrs {
            // With listen_port = 0 (tests), every address shares the port the first one got.
            let addr = SocketAddr::new(addr.ip(), port);
            let listener = match bind_tcp(addr, config) {
                Ok(listener) => listener,
                // `*` on a host without IPv6 still listens on IPv4, as PgBouncer does.
                Err(e) if wildcard && addr.is_ipv6() => {
                    tracing::warn!(%addr, "cannot listen on IPv6, skipping it: {e}");
                    continue;
                }
                Err(source) => {
                    return Err(AppError::Bind {
                        addr: addr.to_string(),
                        source,
                    });
                }
            };
            if port == 0 {
                port = listener.local_addr().map_or(0, |a| a.port());
            }
            tcp.push(listener);
        }
    }
    let unix = if g.unix_socket_dir.is_empty() {
        None
    } else {
        Some(unix_socket::bind(config, port)?)
    };
    if tcp.is_empty() && unix.is_none() {
        return Err(AppError::NothingToListenOn);
    }
    Ok(Bound { tcp, unix })
}

/// A listening socket of either kind, as the one accept loop sees it.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Stream> {
        match self {
            Self::Tcp(l) => l.accept().await.map(|(s, _)| Stream::Tcp(s)),
            Self::Unix(l) => l.accept().await.map(|(s, _)| Stream::Unix(s)),
        }
    }

    /// What the kernel has queued, and the listener if it stays open: a TCP listener closes
    /// right after (a rolling restart with `so_reuseport` hands new connections to the next
    /// process), the unix socket stays open until the process exits, as in PgBouncer, so the
    /// console stays reachable during a shutdown.
    fn take_queued(self) -> std::io::Result<(Vec<Stream>, Option<Self>)> {
        fn adopt<S>(queued: Vec<S>, wrap: impl Fn(S) -> std::io::Result<Stream>) -> Vec<Stream> {
            queued
                .into_iter()
                .filter_map(|s| {
                    wrap(s)
                        .inspect_err(|e| tracing::warn!("queued connection lost at shutdown: {e}"))
                        .ok()
                })
                .collect()
        }
        match self {
            Self::Tcp(l) => {
                let l = l.into_std()?;
                let queued = adopt(drain(|| l.accept().map(|(s, _)| s)), |s| {
                    s.set_nonblocking(true)?;
                    TcpStream::from_std(s).map(Stream::Tcp)
                });
                Ok((queued, None))
            }
            Self::Unix(l) => {
                let l = l.into_std()?;
                let queued = adopt(drain(|| l.accept().map(|(s, _)| s)), |s| {
                    s.set_nonblocking(true)?;
                    tokio::net::UnixStream::from_std(s).map(Stream::Unix)
                });
                Ok((queued, Some(Self::Unix(UnixListener::from_std(l)?))))
            }
        }
    }
}

/// Runs every accept loop until shutdown stops accepting (TCP) or the process exits (unix).
pub(super) async fn accept_loops(
    tcp: Vec<TcpListener>,
    unix: Option<UnixListener>,
    ctx: Arc<ClientContext>,
    admin: Arc<AdminContext>,
    tracker: TaskTracker,
) {
    let mut loops = tokio::task::JoinSet::new();
    let listeners = tcp.into_iter().map(Listener::Tcp);
    for listener in listeners.chain(unix.map(Listener::Unix)) {
        let (ctx, admin, tracker) = (Arc::clone(&ctx), Arc::clone(&admin), tracker.clone());
        loops.spawn(accept_loop(listener, ctx, admin, tracker));
    }
    while loops.join_next().await.is_some() {}
}

/// The one accept loop. When shutdown stops accepting, what the kernel queued before is served
/// as usual (a rolling restart loses nothing); a listener that stays open (the unix socket)
/// then admits only console logins.
async fn accept_loop(
    mut listener: Listener,
    ctx: Arc<ClientContext>,
    admin: Arc<AdminContext>,
    tracker: TaskTracker,
) {
    let clients = Arc::clone(&admin.connections);
    let admit_one = |stream: Stream, late: bool| {
        if let Stream::Tcp(tcp) = &stream {
            apply_tcp_options(tcp, &keepalive_settings(&ctx.registry.config()));
        }
        admit(stream, (&ctx, &admin), &tracker, &clients, late);
    };
    let mut late = false;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = ctx.shutdown.stop_accepting.cancelled(), if !late => {
                late = true;
                match listener.take_queued() {
                    Ok((queued, back)) => {
                        for stream in queued {
                            admit_one(stream, false);
                        }
                        match back {
                            Some(open) => listener = open,
                            None => break,
                        }
                    }
                    Err(e) => {
                        tracing::warn!("listener closed at shutdown: {e}");
                        break;
                    }
                }
                continue;
            }
            () = ctx.shutdown.exit.cancelled() => break,
        };
        match accepted {
            Ok(stream) => admit_one(stream, late),
            Err(e) => accept_failed(&e).await,
        }
    }
}

/// Accepts what the kernel has queued on a non-blocking listener, up to a bound; the caller
/// closes the listener right after.
fn drain<S>(mut accept: impl FnMut() -> std::io::Result<S>) -> Vec<S> {
    let mut queued = Vec::new();
    // Bounded by the largest backlog Linux allows by default (somaxconn).
    for _ in 0..4096 {
        match accept() {
            Ok(stream) => queued.push(stream),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if !queued.is_empty() {
        tracing::info!(
            connections = queued.len(),
            "accepted connections queued before the listener closed"
        );
    }
    queued
}

/// Out of file descriptors or similar: back off instead of spinning (PgBouncer pauses accept too).
async fn accept_failed(e: &std::io::Error) {
    tracing::warn!("accept failed: {e}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

/// Counts a connection and starts its task. Every open connection counts against
/// `max_client_conn`, console ones included; the count is compared with the limit when the
/// startup packet arrives, and only for a pooled database, after the SSLRequest was answered
/// (PgBouncer): a client that asked for TLS reads the error in the session it negotiated, and
/// connections that closed meanwhile no longer count.
/// `late`: accepted after shutdown started, so only a console login is served.
fn admit(
    stream: Stream,
    (ctx, admin): (&Arc<ClientContext>, &Arc<AdminContext>),
    tracker: &TaskTracker,
    clients: &Arc<AtomicUsize>,
    late: bool,
) {
    clients.fetch_add(1, Ordering::AcqRel);
    let guard = CountGuard(Arc::clone(clients));
    let (ctx, admin) = (Arc::clone(ctx), Arc::clone(admin));
    tracker.spawn(async move {
        handle_connection(ctx, admin, stream, &guard, late).await;
        drop(guard);
    });
}

struct CountGuard(Arc<AtomicUsize>);

impl CountGuard {
    /// Whether the open connections, this one included, are more than `max_client_conn`.
    fn over(&self, config: &Config) -> bool {
        let max = usize::try_from(config.general.max_client_conn).unwrap_or(usize::MAX);
        self.0.load(Ordering::Acquire) > max
    }
}

impl Drop for CountGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn handle_connection(
    ctx: Arc<ClientContext>,
    admin: Arc<AdminContext>,
    stream: Stream,
    count: &CountGuard,
    late: bool,
) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let (addr, port) = stream.peer();
        tracing::debug!(addr = %addr, port, "new connection");
    }
    let config = ctx.registry.config();
    let login_timeout = config.general.client_login_timeout;
    let deadline = (!login_timeout.is_zero()).then(|| Instant::now() + login_timeout);
    let max = usize::try_from(config.general.max_packet_size).unwrap_or(usize::MAX);
    // Until login is over nobody is trusted with max_packet_size (CVE-2026-6668's class).
    let max = max.min(crate::protocol::startup::MAX_LOGIN_MESSAGE_LEN);
    let mut reader = MessageReader::new(1024, max);
    let tls = ctx.registry.policy().tls;
    // The handshake, the console and cancel requests are boxed so that their futures do not
    // size the task of every pooled client.
    let (stream, first) = Box::pin(handshake(
        &config,
        &tls.client,
        stream,
        &mut reader,
        deadline,
    ))
    .await;
    // A TLS handshake that failed half-way leaves nothing to answer on.
    let Some(mut stream) = stream else {
        if let Err(error) = first {
            tracing::info!("connection refused during startup: {error}");
        }
        return;
    };
    match first {
        Ok(FirstContact::Cancel { pid, key }) => {
            if !Box::pin(admin::cancel(&admin, pid, key)).await {
                Box::pin(client::handle_cancel(&ctx, pid, key)).await;
            }
        }
        Ok(FirstContact::Login(login)) if login.database == admin::ADMIN_DB => {
            let application_name = login
                .params
                .iter()
                .find(|(name, _)| *name == "application_name")
                .map(|(_, value)| value.clone())
                .unwrap_or_default();
            let console_login = admin::Login {
                user: login.user,
                application_name,
            };
            Box::pin(admin::serve(admin, stream, reader, console_login, deadline)).await;
        }
        Ok(FirstContact::Login(_)) if count.over(&ctx.registry.config()) => {
            refuse(&ctx, &mut stream, &ClientError::TooManyClients).await;
        }
        Ok(FirstContact::Login(login)) if !late => {
            client::serve(ctx, stream, reader, login, deadline).await;
        }
        Ok(FirstContact::Login(_)) => refuse(&ctx, &mut stream, &ClientError::Shutdown).await,
        Err(error) => refuse(&ctx, &mut stream, &error).await,
    }
}

/// Logs why a connection is refused (PgBouncer's `closing because:` line), sends it a FATAL
/// error and gives the client a second to read it.
async fn refuse(ctx: &ClientContext, stream: &mut Stream, error: &ClientError) {
    let (addr, port) = stream.peer();
    let id = ctx.registry.ids().fetch_add(1, Ordering::Relaxed);
    LogPeer::new(Side::Client, id, "(nodb)", "(nouser)", (&addr, port)).closing(error);
    let mut out = BytesMut::new();
    error.write_fatal(&mut out);
    stream.send_and_close(&out).await;
}
