//! Listening sockets (TCP on each `listen_addr`, and the unix socket) and the accept loops:
//! `max_client_conn`, `client_login_timeout`, and routing of each new connection to the client
//! path, the cancel path or the admin console. Nothing slow happens in an accept loop.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::AppError;
use crate::client::errors::ClientError;
use crate::client::startup::{FirstContact, handshake};
use crate::client::{self, ClientContext};
use crate::config::Config;
use crate::net::{MessageReader, Stream, apply_tcp_options};
use crate::pool::registry::keepalive_settings;

/// The bound sockets, before their accept loops start.
pub(super) struct Bound {
    tcp: Vec<TcpListener>,
    unix: Option<UnixListener>,
    pub(super) unix_path: Option<PathBuf>,
}

impl Bound {
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
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(config.general.listen_backlog).unwrap_or(128))?;
    TcpListener::from_std(socket.into())
}

fn bind_unix(config: &Config, port: u16) -> Result<(UnixListener, PathBuf), AppError> {
    let dir = &config.general.unix_socket_dir;
    let path = PathBuf::from(format!("{dir}/.s.PGSQL.{port}"));
    let wrap = |source| AppError::Bind {
        addr: path.display().to_string(),
        source,
    };
    // A socket file left by a process that is gone would block the bind; a live one answers.
    if path.exists() && std::os::unix::net::UnixStream::connect(&path).is_err() {
        let _ = std::fs::remove_file(&path);
    }
    let listener = UnixListener::bind(&path).map_err(wrap)?;
    std::fs::set_permissions(
        &path,
        std::fs::Permissions::from_mode(config.general.unix_socket_mode),
    )
    .map_err(wrap)?;
    Ok((listener, path))
}

/// Binds every configured listener.
pub(super) fn bind_all(config: &Config) -> Result<Bound, AppError> {
    let g = &config.general;
    let mut tcp = Vec::new();
    let mut port = g.listen_port;
    let addrs: Vec<SocketAddr> = g
        .listen_addr
        .iter()
        .flat_map(|a| resolve(a, port))
        .collect();
    for addr in addrs {
        // With listen_port = 0 (tests), every address shares the port the first one got.
        let addr = SocketAddr::new(addr.ip(), port);
        let listener = bind_tcp(addr, config).map_err(|source| AppError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        if port == 0 {
            port = listener.local_addr().map_or(0, |a| a.port());
        }
        tcp.push(listener);
    }
    let (unix, unix_path) = if g.unix_socket_dir.is_empty() {
        (None, None)
    } else {
        let (l, p) = bind_unix(config, port)?;
        (Some(l), Some(p))
    };
    if tcp.is_empty() && unix.is_none() {
        return Err(AppError::NothingToListenOn);
    }
    Ok(Bound {
        tcp,
        unix,
        unix_path,
    })
}

/// Runs every accept loop until shutdown stops accepting.
pub(super) async fn accept_loops(bound: Bound, ctx: Arc<ClientContext>, tracker: TaskTracker) {
    let clients = Arc::new(AtomicUsize::new(0));
    let mut loops = tokio::task::JoinSet::new();
    for listener in bound.tcp {
        let (ctx, tracker, clients) = (Arc::clone(&ctx), tracker.clone(), Arc::clone(&clients));
        loops.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    r = listener.accept() => r,
                    () = ctx.shutdown.stop_accepting.cancelled() => return,
                };
                match accepted {
                    Ok((stream, _)) => {
                        apply_tcp_options(&stream, &keepalive_settings(&ctx.registry.config()));
                        admit(Stream::Tcp(stream), &ctx, &tracker, &clients);
                    }
                    Err(e) => accept_failed(&e).await,
                }
            }
        });
    }
    if let Some(listener) = bound.unix {
        let (ctx, tracker, clients) = (Arc::clone(&ctx), tracker.clone(), Arc::clone(&clients));
        loops.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    r = listener.accept() => r,
                    () = ctx.shutdown.stop_accepting.cancelled() => return,
                };
                match accepted {
                    Ok((stream, _)) => admit(Stream::Unix(stream), &ctx, &tracker, &clients),
                    Err(e) => accept_failed(&e).await,
                }
            }
        });
    }
    while loops.join_next().await.is_some() {}
}

/// Out of file descriptors or similar: back off instead of spinning (PgBouncer pauses accept too).
async fn accept_failed(e: &std::io::Error) {
    tracing::warn!("accept failed: {e}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

/// Counts a client against `max_client_conn` and starts its task.
fn admit(
    mut stream: Stream,
    ctx: &Arc<ClientContext>,
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
    let ctx = Arc::clone(ctx);
    tracker.spawn(async move {
        handle_connection(ctx, stream).await;
        drop(guard);
    });
}

struct CountGuard(Arc<AtomicUsize>);

impl Drop for CountGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn handle_connection(ctx: Arc<ClientContext>, mut stream: Stream) {
    let config = ctx.registry.config();
    let login_timeout = config.general.client_login_timeout;
    let deadline = (!login_timeout.is_zero()).then(|| Instant::now() + login_timeout);
    let max = usize::try_from(config.general.max_packet_size).unwrap_or(usize::MAX);
    let mut reader = MessageReader::new(1024, max);
    let first = match deadline {
        Some(d) => tokio::time::timeout_at(d, handshake(&config, &mut stream, &mut reader))
            .await
            .unwrap_or(Err(ClientError::LoginTimeout)),
        None => handshake(&config, &mut stream, &mut reader).await,
    };
    match first {
        Ok(FirstContact::Cancel { pid, key }) => client::handle_cancel(&ctx, pid, key).await,
        Ok(FirstContact::Login(login)) if login.database == "pgbouncer" => {
            let mut out = BytesMut::new();
            let error = ClientError::Protocol(
                "the admin console is not available in this build".to_owned(),
            );
            error.write_fatal(&mut out);
            let _ = stream.write_all(&out).await;
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
