//! Listening sockets (TCP on each `listen_addr`, and the unix socket) and the accept loops:
//! `max_client_conn`, `client_login_timeout`, and routing of each new connection to the client
//! path, the cancel path or the admin console. Nothing slow happens in an accept loop.
//!
//! When shutdown stops accepting, each loop first takes every connection the kernel has
//! already queued on its socket, then closes it: a queued connection would otherwise be reset
//! by the close, which is what a rolling restart with `so_reuseport` must avoid.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
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

/// Runs every accept loop until shutdown stops accepting.
pub(super) async fn accept_loops(
    tcp: Vec<TcpListener>,
    unix: Option<UnixListener>,
    ctx: Arc<ClientContext>,
    admin: Arc<AdminContext>,
    tracker: TaskTracker,
) {
    let clients = Arc::clone(&admin.connections);
    let mut loops = tokio::task::JoinSet::new();
    for listener in tcp {
        let (ctx, tracker, clients) = (Arc::clone(&ctx), tracker.clone(), Arc::clone(&clients));
        let admin = Arc::clone(&admin);
        loops.spawn(async move {
            let admit_tcp = |stream: TcpStream| {
                apply_tcp_options(&stream, &keepalive_settings(&ctx.registry.config()));
                admit(Stream::Tcp(stream), (&ctx, &admin), &tracker, &clients);
            };
            loop {
                let accepted = tokio::select! {
                    r = listener.accept() => r,
                    () = ctx.shutdown.stop_accepting.cancelled() => break,
                };
                match accepted {
                    Ok((stream, _)) => admit_tcp(stream),
                    Err(e) => accept_failed(&e).await,
                }
            }
            if let Ok(listener) = listener.into_std() {
                for stream in drain(|| listener.accept().map(|(s, _)| s)) {
                    match stream
                        .set_nonblocking(true)
                        .and_then(|()| TcpStream::from_std(stream))
                    {
                        Ok(stream) => admit_tcp(stream),
                        Err(e) => tracing::warn!("queued connection lost at shutdown: {e}"),
                    }
                }
            }
        });
    }
    if let Some(listener) = unix {
        let (ctx, tracker, clients) = (Arc::clone(&ctx), tracker.clone(), Arc::clone(&clients));
        let admin = Arc::clone(&admin);
        loops.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    r = listener.accept() => r,
                    () = ctx.shutdown.stop_accepting.cancelled() => break,
                };
                match accepted {
                    Ok((stream, _)) => {
                        admit(Stream::Unix(stream), (&ctx, &admin), &tracker, &clients);
                    }
                    Err(e) => accept_failed(&e).await,
                }
            }
            if let Ok(listener) = listener.into_std() {
                for stream in drain(|| listener.accept().map(|(s, _)| s)) {
                    match stream
                        .set_nonblocking(true)
                        .and_then(|()| UnixStream::from_std(stream))
                    {
                        Ok(stream) => {
                            admit(Stream::Unix(stream), (&ctx, &admin), &tracker, &clients);
                        }
                        Err(e) => tracing::warn!("queued connection lost at shutdown: {e}"),
                    }
                }
            }
        });
    }
    while loops.join_next().await.is_some() {}
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

/// Counts a client against `max_client_conn` and starts its task.
fn admit(
    mut stream: Stream,
    (ctx, admin): (&Arc<ClientContext>, &Arc<AdminContext>),
    tracker: &TaskTracker,
    clients: &Arc<AtomicUsize>,
) {
    let config = ctx.registry.config();
    let max = usize::try_from(config.general.max_client_conn).unwrap_or(usize::MAX);
    let previous = clients.fetch_add(1, Ordering::AcqRel);
    let guard = CountGuard(Arc::clone(clients));
    if previous >= max {
        tracker.spawn(async move {
            let mut out = BytesMut::new();
            ClientError::TooManyClients.write_fatal(&mut out);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(&out))
                .await;
            drop(guard);
        });
        return;
    }
    let (ctx, admin) = (Arc::clone(ctx), Arc::clone(admin));
    tracker.spawn(async move {
        handle_connection(ctx, admin, stream).await;
        drop(guard);
    });
}

struct CountGuard(Arc<AtomicUsize>);

impl Drop for CountGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn handle_connection(ctx: Arc<ClientContext>, admin: Arc<AdminContext>, stream: Stream) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let (addr, port) = stream.peer();
        tracing::debug!(addr = %addr, port, "new connection");
    }
    let config = ctx.registry.config();
    let login_timeout = config.general.client_login_timeout;
    let deadline = (!login_timeout.is_zero()).then(|| Instant::now() + login_timeout);
    let max = usize::try_from(config.general.max_packet_size).unwrap_or(usize::MAX);
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
        Ok(FirstContact::Login(login)) => client::serve(ctx, stream, reader, login, deadline).await,
        Err(error) => {
            let (addr, _) = stream.peer();
            tracing::info!(addr = %addr, "connection refused during startup: {error}");
            let mut out = BytesMut::new();
            error.write_fatal(&mut out);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(&out))
                .await;
        }
    }
}
