//! One console connection: login (rights, password exchange, welcome), then the query loop over
//! the simple query protocol.
//!
//! Owns: the console's welcome (AuthenticationOk, PgBouncer's fixed ParameterStatus set with
//! `server_version = <emulated version>/bouncer`, a BackendKeyData, ReadyForQuery), the session's
//! entry in the connection directory (database `pgbouncer`), and PgBouncer's handling of
//! extended-protocol and unknown messages (error, then disconnect).
//! Does not: parse or run commands (`commands.rs`).
//! Invariants: the session ends on Terminate, EOF, KILL_CLIENT of its id, or shutdown; a query's
//! replies and its ReadyForQuery go out in one write.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::access::{self, CONSOLE_USER, PreLogin, Rights};
use super::commands::{Console, Flow, write_error};
use super::{ADMIN_DB, AdminContext, compat_version};
use crate::config::AuthType;
use crate::net::{MessageReader, Stream};
use crate::pool::ClientAdmission;
use crate::protocol::PoolerError;
use crate::protocol::backend::{self, Severity};
use crate::stats::conns::{ConnInfo, ConnState, Endpoints, Side};

/// The startup values a console login needs.
#[derive(Debug, Clone)]
pub struct Login {
    /// `user` from the startup packet.
    pub user: String,
    /// `application_name` from the startup packet (empty when none).
    pub application_name: String,
}

fn same_uid_unix_peer(stream: &Stream) -> bool {
    match stream {
        Stream::Unix(s) => s
            .peer_cred()
            .is_ok_and(|cred| cred.uid() == nix::unistd::getuid().as_raw()),
        _ => false,
    }
}

async fn log_in(
    ctx: &AdminContext,
    stream: &mut Stream,
    reader: &mut MessageReader,
    login: &Login,
) -> Result<(Rights, String, Option<ClientAdmission>), PoolerError> {
    let config = ctx.registry.config();
    match access::pre_login(&config, &login.user, same_uid_unix_peer(stream)) {
        PreLogin::Granted { rights, shown_user } => Ok((rights, shown_user, None)),
        PreLogin::Authenticate => {
            // The client limits apply before the password exchange, as for pooled databases
            // in PgBouncer; a console login trusted before that (PreLogin::Granted) skips them.
            let admission = ctx
                .registry
                .admit_console_client(ADMIN_DB, &login.user)
                .map_err(|hit| {
                    PoolerError::new(format!("client connections exceeded ({})", hit.setting()))
                })?;
            ctx.auth
                .authenticate(&config, &login.user, stream, reader)
                .await?;
            let rights = access::post_login(&config, &login.user)?;
            // auth_type = any logs everyone in as the console's forced user.
            let shown = if config.general.auth_type == AuthType::Any {
                CONSOLE_USER.to_owned()
            } else {
                login.user.clone()
            };
            Ok((rights, shown, Some(admission)))
        }
    }
}

/// A console session's cancel key, registered while the session lives.
struct CancelKey<'a> {
    ctx: &'a AdminContext,
    key: (i32, i32),
}

impl<'a> CancelKey<'a> {
    fn issue(ctx: &'a AdminContext) -> CancelKey<'a> {
        let mut keys = ctx.cancel_keys.lock();
        loop {
            let key = (rand::random::<i32>() & 0x7fff_ffff, rand::random::<i32>());
            if keys.insert(key) {
                return CancelKey { ctx, key };
            }
        }
    }
}

impl Drop for CancelKey<'_> {
    fn drop(&mut self) {
        self.ctx.cancel_keys.lock().remove(&self.key);
    }
}

/// A cancel request: if it carries a console session's key, PgBouncer's answer to Ctrl-C in the
/// console applies (a global PAUSE is lifted) and `true` is returned; otherwise it is a client's.
pub async fn cancel(ctx: &AdminContext, pid: i32, key: i32) -> bool {
    if !ctx.cancel_keys.lock().contains(&(pid, key)) {
        return false;
    }
    if ctx.registry.globally_paused() && !ctx.shutdown.is_started() {
        tracing::info!("console cancel request: resuming");
        if let Err(e) = ctx
            .control
            .request(crate::control::Request::Resume(None))
            .await
        {
            tracing::info!("RESUME after console cancel: {e}");
        }
    }
    true
}

fn welcome(out: &mut BytesMut, ctx: &AdminContext, key: (i32, i32)) {
    let version = compat_version(&ctx.registry.config());
    backend::auth_ok(out);
    let server_version = format!("{}/bouncer", version.full());
    for (name, value) in [
        ("server_version", server_version.as_str()),
        ("client_encoding", "UTF8"),
        ("server_encoding", "UTF8"),
        ("DateStyle", "ISO"),
        ("TimeZone", "GMT"),
        ("standard_conforming_strings", "on"),
        ("is_superuser", "on"),
    ] {
        backend::parameter_status(out, name, value);
    }
    backend::backend_key_data(out, key.0, key.1);
    backend::ready_for_query(out, crate::protocol::TxStatus::Idle);
}

/// Serves one console connection until it ends.
pub async fn serve(
    ctx: Arc<AdminContext>,
    mut stream: Stream,
    mut reader: MessageReader,
    login: Login,
    login_deadline: Option<Instant>,
) {
    let (addr, port) = stream.peer();
    let attempt = log_in(&ctx, &mut stream, &mut reader, &login);
    let result = match login_deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, attempt)
            .await
            .unwrap_or_else(|_| Err(PoolerError::new("client_login_timeout"))),
        None => attempt.await,
    };
    // The admission, if any, is held until the session ends.
    let (rights, shown_user, _admission) = match result {
        Ok(ok) => ok,
        Err(refusal) => {
            tracing::info!(user = %login.user, addr = %addr, "console login refused: {}", refusal.message);
            let mut out = BytesMut::new();
            refusal.write(&mut out, Severity::Fatal);
            stream.send_and_close(&out).await;
            return;
        }
    };
    let id = ctx
        .registry
        .ids()
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let info = ConnInfo::new(
        id,
        Side::Client,
        ADMIN_DB,
        &shown_user,
        CONSOLE_USER,
        ConnState::ClientIdle,
    )
    .with_application_name(&login.application_name);
    let (local_addr, local_port) = stream.local();
    info.set_endpoints(Endpoints {
        addr: addr.clone(),
        port,
        local_addr,
        local_port,
    });
    info.set_remote_pid(stream.peer_pid());
    let entry = ctx.registry.conns().register(info);
    if ctx.registry.config().general.log_connections {
        tracing::info!(client = id, user = %shown_user, addr = %addr, port, ?rights, "console login");
    }
    let cancel_key = CancelKey::issue(&ctx);
    let mut out = BytesMut::with_capacity(256);
    welcome(&mut out, &ctx, cancel_key.key);
    if stream.write_all(&out).await.is_err() {
        return;
    }
    ctx.stats.client_login();
    let end = run(&ctx, &mut stream, &mut reader, rights, &entry).await;
    if let Some(failure) = end {
        let mut out = BytesMut::new();
        failure.write(&mut out, Severity::Fatal);
        stream.send_and_close(&out).await;
    }
    if ctx.registry.config().general.log_disconnections {
        tracing::info!(client = id, user = %shown_user, addr = %addr, port, "console disconnected");
    }
}

/// The query loop; returns the FATAL error to send when the session is cut off.
async fn run(
    ctx: &AdminContext,
    stream: &mut Stream,
    reader: &mut MessageReader,
    rights: Rights,
    entry: &ConnInfo,
) -> Option<PoolerError> {
    loop {
        let message = tokio::select! {
            m = reader.read_message(stream) => m,
            () = entry.killed() => {
                return Some(PoolerError::new(entry.kill_reason().text()));
            }
            () = ctx.shutdown.kill.cancelled() => return None,
        };
        let Ok((tag, body)) = message else {
            return None;
        };
        let mut out = BytesMut::with_capacity(1024);
        match tag {
            b'Q' => {
                let query = crate::protocol::wire::take_cstr(&body).map_or("", |(q, _)| q);
                let console = Console {
                    ctx,
                    rights,
                    version: compat_version(&ctx.registry.config()),
                };
                // A console session never holds a server: it stays `idle`, as in PgBouncer.
                entry.touch();
                // Each query string counts as one query and one transaction of the console's
                // pseudo-pool before it runs, as in PgBouncer: SHOW TOTALS includes itself.
                ctx.stats.query_done(std::time::Duration::ZERO);
                ctx.stats.xact_done(std::time::Duration::ZERO);
                let flow = console.execute(query, &mut out).await;
                if flow == Flow::Hold {
                    let _ = stream.write_all(&out).await;
                    ctx.shutdown.kill.cancelled().await;
                    return None;
                }
                backend::ready_for_query(&mut out, crate::protocol::TxStatus::Idle);
                ctx.stats.received(body.len() + 5);
                ctx.stats.sent(out.len());
            }
            b'X' => return None,
            b'P' | b'B' | b'E' => {
                return refuse_packet(
                    stream,
                    out,
                    "extended query protocol not supported by admin console".to_owned(),
                )
                .await;
            }
            other => {
                return refuse_packet(
                    stream,
                    out,
                    format!("unsupported packet type for admin console: {other}"),
                )
                .await;
            }
        }
        if stream.write_all(&out).await.is_err() {
            return None;
        }
    }
}

/// PgBouncer's answer to a message the console does not take: an ERROR and ReadyForQuery, then
/// the connection is closed with FATAL "bad packet".
async fn refuse_packet(
    stream: &mut Stream,
    mut out: BytesMut,
    message: String,
) -> Option<PoolerError> {
    write_error(&mut out, &PoolerError::new(message));
    backend::ready_for_query(&mut out, crate::protocol::TxStatus::Idle);
    let _ = stream.write_all(&out).await;
    Some(PoolerError::new("bad packet"))
}
