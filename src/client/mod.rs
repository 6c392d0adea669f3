//! Client connections: the first packet ([`startup`]), authentication ([`auth`]), the welcome
//! message, then the [`session`] loop that borrows servers and [`relay`]s bytes. Cancel requests
//! are resolved by [`cancel`]; [`errors`] is the one mapping to PgBouncer's texts and SQLSTATEs.
//!
//! Does not: accept sockets (the app's listener does) or own servers (the pool does).

pub mod auth;
pub mod cancel;
pub mod errors;
mod relay;
pub mod session;
pub mod startup;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::control::Shutdown;
use crate::net::{MessageReader, Stream};
use crate::pool::{Pool, Registry, ServerState};
use crate::protocol::backend;
use crate::server::ParamSet;

use cancel::CancelMap;
use errors::ClientError;
use session::Session;
use startup::LoginRequest;

/// What every client task shares.
#[derive(Debug)]
pub struct ClientContext {
    /// Pools and config.
    pub registry: Arc<Registry>,
    /// Cancel keys of logged-in clients.
    pub cancels: Arc<CancelMap>,
    /// Shutdown signals.
    pub shutdown: Shutdown,
}

/// Logs in a client that asked for a pooled database, then serves it until it leaves.
pub async fn serve(
    ctx: Arc<ClientContext>,
    mut stream: Stream,
    mut reader: MessageReader,
    login: LoginRequest,
    login_deadline: Option<Instant>,
) {
    let (addr, port) = stream.peer();
    let login_result = match login_deadline {
        Some(deadline) => {
            tokio::time::timeout_at(deadline, log_in(&ctx, &mut stream, &mut reader, &login))
                .await
                .unwrap_or(Err(ClientError::LoginTimeout))
        }
        None => log_in(&ctx, &mut stream, &mut reader, &login).await,
    };
    let (slot, params) = match login_result {
        Ok(ok) => ok,
        Err(error) => {
            tracing::info!(db = %login.database, user = %login.user, addr = %addr, "login failed: {error}");
            let mut out = BytesMut::new();
            error.write_fatal(&mut out);
            let _ = stream.write_all(&out).await;
            return;
        }
    };
    let config = ctx.registry.config();
    let id = ctx.registry.ids().fetch_add(1, Ordering::Relaxed);
    if config.general.log_connections {
        tracing::info!(client = id, db = %login.database, user = %login.user, addr = %addr, port, "login ok");
    }
    let cancel = ctx.cancels.register();
    let mut out = BytesMut::with_capacity(512);
    write_welcome(
        &mut out,
        &slot_welcome(slot.pool()),
        &params,
        cancel.pid,
        cancel.key,
    );
    if stream.write_all(&out).await.is_err() {
        return;
    }
    slot.pool().stats.client_login();
    let buf = reader.into_buffer();
    let mut session = Session::new(Arc::clone(&ctx), stream, buf, params, slot, cancel, id);
    let result = session.run().await;
    if let Err(error) = &result {
        if config.general.log_pooler_errors {
            tracing::info!(client = id, "closing client: {error}");
        }
        session.disconnect_with(error).await;
    }
    if config.general.log_disconnections {
        tracing::info!(client = id, db = %login.database, user = %login.user, addr = %addr, port, "client disconnected");
    }
}

fn slot_welcome(pool: &Pool) -> Arc<Vec<(String, String)>> {
    pool.welcome_params().unwrap_or_default()
}

async fn log_in(
    ctx: &ClientContext,
    stream: &mut Stream,
    reader: &mut MessageReader,
    login: &LoginRequest,
) -> Result<(crate::pool::ClientSlot, ParamSet), ClientError> {
    if ctx.shutdown.drain.is_cancelled() {
        return Err(ClientError::Shutdown);
    }
    let config = ctx.registry.config();
    let db = ctx
        .registry
        .database(&login.database)
        .ok_or_else(|| ClientError::NoSuchDatabase(login.database.clone()))?;
    auth::authenticate(&config, &login.user, stream, reader).await?;
    let pool = ctx.registry.pool_for(&db, &login.user);
    let slot = pool.attach_client();
    if pool.welcome_params().is_none() {
        // The welcome message repeats what a real server reports, so the first client of a pool
        // waits for the first server login (as in PgBouncer).
        let server = pool.checkout().await?;
        server.release(ServerState::Idle, crate::config::PoolMode::Transaction);
    }
    let mut params = ParamSet::default();
    for (name, value) in slot_welcome(&pool).iter() {
        params.set(name, value);
    }
    for (name, value) in &login.params {
        params.set(name, value);
    }
    if config.general.application_name_add_host {
        let (addr, port) = stream.peer();
        let app = params.get("application_name").unwrap_or_default();
        params.set("application_name", &format!("{app} - {addr}:{port}"));
    }
    Ok((slot, params))
}

fn write_welcome(
    out: &mut BytesMut,
    welcome: &[(String, String)],
    params: &ParamSet,
    pid: i32,
    key: i32,
) {
    backend::auth_ok(out);
    for (name, value) in welcome {
        let value = params.get(name).unwrap_or(value);
        backend::parameter_status(out, name, value);
    }
    for (name, value) in params.iter() {
        if !welcome.iter().any(|(n, _)| n == name) {
            backend::parameter_status(out, name, value);
        }
    }
    backend::backend_key_data(out, pid, key);
    backend::ready_for_query(out, b'I');
}

/// Forwards a cancel request to the server the matching client holds, if any.
pub async fn handle_cancel(ctx: &ClientContext, pid: i32, key: i32) {
    if let Some(target) = ctx.cancels.target(pid, key) {
        if let Err(e) = cancel::send_cancel(&target).await {
            tracing::info!("forwarding cancel request failed: {e}");
        }
    }
}
