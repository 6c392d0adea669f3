//! Client connections: the first packet ([`startup`]), authentication ([`auth`]), the welcome
//! message, then the [`session`] loop that borrows servers and `relay`s bytes. Cancel requests
//! are resolved by [`cancel`]; [`errors`] is the one mapping to PgBouncer's texts and SQLSTATEs.
//!
//! Does not: accept sockets (the app's listener does) or own servers (the pool does).

pub mod auth;
mod auth_query;
pub mod cancel;
pub mod errors;
pub mod prepared;
mod relay;
mod release;
pub(crate) mod rewrite;
pub mod session;
pub(crate) mod splice;
pub mod startup;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::control::Shutdown;
use crate::net::{MessageReader, Stream};
use crate::pool::{Pool, Registry};
use crate::protocol::backend;
use crate::server::ParamSet;
use crate::stats::conn_log::LogPeer;
use crate::stats::conns::{ConnInfo, ConnState, Endpoints, Side};

use cancel::CancelMap;
use errors::ClientError;
use session::Session;
use startup::{LoginRequest, Replication};

/// What every client task shares.
#[derive(Debug)]
pub struct ClientContext {
    /// Pools and config.
    pub registry: Arc<Registry>,
    /// Cancel keys of logged-in clients.
    pub cancels: Arc<CancelMap>,
    /// Shutdown signals.
    pub shutdown: Shutdown,
    /// Prepared statements by text, shared by all clients.
    pub statements: Arc<prepared::StatementRegistry>,
    /// The PgBouncer version reported as `pgbouncer.version` at login (`1.26.0`), or `None`
    /// when the emulated version predates these reports (the app derives it from
    /// `admin_compat_version`).
    pub reported_version: fn(&crate::config::Config) -> Option<String>,
}

/// Logs in a client that asked for a pooled database, then serves it until it leaves.
pub async fn serve(
    ctx: Arc<ClientContext>,
    stream: Stream,
    reader: MessageReader,
    login: LoginRequest,
    login_deadline: Option<Instant>,
) {
    // Boxed: the login phase (authentication, welcome) is large and short-lived, so the task of
    // a logged-in client, which may sit idle for hours, does not carry its state.
    let Some(mut session) = Box::pin(open_session(
        Arc::clone(&ctx),
        stream,
        reader,
        &login,
        login_deadline,
    ))
    .await
    else {
        return;
    };
    let result = session.run().await;
    let config = ctx.registry.config();
    // The log line is made and dropped before any await, so it does not size the task.
    match &result {
        Ok(leave) if config.general.log_disconnections => {
            LogPeer::of(session.conn.info()).closing(leave);
        }
        Ok(_) => {}
        Err(error) => {
            if config.general.log_disconnections || config.general.log_pooler_errors {
                LogPeer::of(session.conn.info()).closing(error);
            }
            Box::pin(session.disconnect_with(error)).await;
        }
    }
}

/// Authenticates the client, sends the welcome and returns its session; `None` when the login
/// failed (the client was told why) or the client left.
async fn open_session(
    ctx: Arc<ClientContext>,
    mut stream: Stream,
    mut reader: MessageReader,
    login: &LoginRequest,
    login_deadline: Option<Instant>,
) -> Option<Session> {
    let (addr, port) = stream.peer();
    let logging_in = log_in(&ctx, &mut stream, &mut reader, login);
    let login_result = match login_deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, logging_in)
            .await
            .unwrap_or(Err(ClientError::LoginTimeout)),
        None => logging_in.await,
    };
    let (slot, params, admission) = match login_result {
        Ok(ok) => ok,
        Err(error) => {
            refuse_login(&ctx, &mut stream, login, (&addr, port), &error).await;
            return None;
        }
    };
    // Waiting for room is not part of the login, as for any client waiting for a server.
    let dedicated = match login.replication {
        Replication::None => None,
        _ => match open_dedicated(slot.pool(), login, &params).await {
            Ok(server) => Some(server),
            Err(error) => {
                refuse_login(&ctx, &mut stream, login, (&addr, port), &error).await;
                return None;
            }
        },
    };
    let config = ctx.registry.config();
    let id = ctx.registry.ids().fetch_add(1, Ordering::Relaxed);
    if config.general.log_connections {
        let tls = login.tls.as_deref().unwrap_or("no");
        LogPeer::new(
            Side::Client,
            id,
            &login.database,
            &login.user,
            (&addr, port),
        )
        .event(&format_args!(
            "login attempt: db={} user={} tls={tls}",
            login.database, login.user
        ));
    }
    let cancel = ctx.cancels.register(config.general.peer_id);
    let mut dedicated = dedicated;
    let welcome = match dedicated.as_mut() {
        Some(server) => Arc::clone(&server.conn().login_params),
        None => slot_welcome(slot.pool()),
    };
    let out = welcome_bytes(&ctx, slot.pool(), &welcome, &params, &cancel);
    if stream.write_all(&out).await.is_err() {
        return None;
    }
    slot.pool().stats.client_login();
    let buf = reader.into_buffer();
    let conn = register(&ctx, &stream, login, &slot, &params, id);
    let mut session = Session::new(
        ctx,
        stream,
        buf,
        params,
        (slot, admission),
        cancel,
        id,
        conn,
    );
    if let Some(server) = dedicated {
        session.dedicate(server);
    }
    Some(session)
}

/// Opens the replication client's own server: the same `replication` value, the parameters the
/// client set and its `options`, as PgBouncer forwards them (a physical walsender accepts no SET,
/// so nothing is aligned later).
async fn open_dedicated(
    pool: &Arc<Pool>,
    login: &LoginRequest,
    params: &ParamSet,
) -> Result<crate::pool::PooledServer, ClientError> {
    // Only what the client set (and application_name_add_host's name): the welcome defaults
    // are not in a replication client's set.
    let mut startup: Vec<(&str, &str)> = params.iter().collect();
    if let Some(value) = login.replication.startup_value() {
        startup.push(("replication", value));
    }
    if let Some(options) = login.options.as_deref() {
        startup.push(("options", options));
    }
    pool.checkout_dedicated(&startup, login.replication.label())
        .await
        .map_err(ClientError::from)
}

/// Logs PgBouncer's `closing because:` line for a client whose login failed and sends it the
/// FATAL error.
async fn refuse_login(
    ctx: &ClientContext,
    stream: &mut Stream,
    login: &LoginRequest,
    peer: (&str, u16),
    error: &ClientError,
) {
    if ctx.registry.config().general.log_disconnections {
        let id = ctx.registry.ids().fetch_add(1, Ordering::Relaxed);
        LogPeer::new(Side::Client, id, &login.database, &login.user, peer).closing(error);
    }
    let mut out = BytesMut::new();
    error.write_fatal(&mut out);
    stream.send_and_close(&out).await;
}

/// The login's last messages: the server's parameters, PgBouncer 1.26's `pgbouncer.*` reports,
/// the cancel key, `login_notify_message` and ReadyForQuery.
fn welcome_bytes(
    ctx: &ClientContext,
    pool: &Pool,
    welcome: &[(String, String)],
    params: &ParamSet,
    cancel: &cancel::CancelRegistration,
) -> BytesMut {
    let config = ctx.registry.config();
    let mut out = BytesMut::with_capacity(512);
    let settings = pool.settings();
    let max_prepared = settings.max_prepared_statements.to_string();
    let version = (ctx.reported_version)(&config);
    // PgBouncer 1.26 tells drivers what they talk to.
    let reports = version.as_deref().map(|version| {
        [
            ("pgbouncer.version", version),
            ("pgbouncer.pool_mode", settings.pool_mode.as_str()),
            ("pgbouncer.max_prepared_statements", max_prepared.as_str()),
        ]
    });
    let notice = &config.general.login_notify_message;
    write_welcome(
        &mut out,
        welcome,
        params,
        reports.as_ref().map_or(&[][..], |r| &r[..]),
        (cancel.pid, cancel.key),
        (!notice.is_empty()).then_some(notice.as_str()),
    );
    out
}

/// Adds the client to the connection directory (SHOW CLIENTS); it leaves when the entry drops.
fn register(
    ctx: &ClientContext,
    stream: &Stream,
    login: &LoginRequest,
    slot: &crate::pool::ClientSlot,
    params: &ParamSet,
    id: u64,
) -> crate::stats::conns::ConnEntry {
    let info = ConnInfo::new(
        id,
        Side::Client,
        &login.database,
        &login.user,
        &slot.pool().user,
        ConnState::ClientIdle,
    )
    .with_application_name(params.get("application_name").unwrap_or_default())
    .with_replication(login.replication.label())
    .with_shutdown();
    let ((addr, port), (local_addr, local_port)) = (stream.peer(), stream.local());
    info.set_endpoints(Endpoints {
        addr,
        port,
        local_addr,
        local_port,
    });
    info.set_remote_pid(stream.peer_pid());
    info.set_tls(login.tls.as_deref().unwrap_or_default());
    ctx.registry.conns().register(info)
}

fn slot_welcome(pool: &Pool) -> Arc<Vec<(String, String)>> {
    pool.welcome_params().unwrap_or_default()
}

async fn log_in(
    ctx: &ClientContext,
    stream: &mut Stream,
    reader: &mut MessageReader,
    login: &LoginRequest,
) -> Result<
    (
        crate::pool::ClientSlot,
        ParamSet,
        crate::pool::ClientAdmission,
    ),
    ClientError,
> {
    if ctx.shutdown.drain.is_cancelled() {
        return Err(ClientError::Shutdown);
    }
    let config = ctx.registry.config();
    let Some(db) = ctx.registry.database(&login.database) else {
        // As PgBouncer's fake database: the client proves who it is first, so a wrong password
        // reads as one, and only then learns that the database does not exist.
        auth::authenticate_unknown_database(
            &ctx.registry,
            (&login.database, login.replication),
            &login.user,
            stream,
            reader,
        )
        .await?;
        return Err(ClientError::NoSuchDatabase(login.database.clone()));
    };
    let authenticated = auth::authenticate(
        &ctx.registry,
        (&login.database, login.replication),
        Some(&db),
        &login.user,
        stream,
        reader,
    )
    .await;
    let learned = match authenticated {
        Ok(learned) => learned,
        Err(error) => {
            // Counted per pool for metrics. Only users that can have a pool get one (as PgBouncer
            // assigns the pool before the password check), so unknown names cannot grow the map.
            let known = db.user.is_some() || config.auth_users.contains_key(&login.user);
            let failed = matches!(
                error,
                ClientError::AuthFailed(_) | ClientError::SaslAuthFailed
            );
            if failed && known {
                let pool = ctx.registry.pool_for(&db, &login.user);
                crate::stats::ErrorCounters::bump(&pool.stats.errors().auth_failures);
            }
            return Err(error);
        }
    };
    if ctx.registry.db_flags(&db.name).disabled() {
        return Err(ClientError::Protocol(format!(
            "database \"{}\" is disabled",
            db.name
        )));
    }
    // PgBouncer 1.24's per-database and per-user client caps, counted from here until the
    // client leaves.
    let admission = ctx
        .registry
        .admit_client(&db, &login.user)
        .map_err(|hit| ClientError::ClientLimit(hit.setting()))?;
    let pool = ctx.registry.pool_for(&db, &login.user);
    // A forced user logs in with its own secret, never with what this client proved.
    if let (Some(learned), None) = (learned, &db.user) {
        pool.spec().learned.set(learned);
    }
    let slot = pool.attach_client();
    // A replication client's welcome is what its own server reports (`open_dedicated`).
    if login.replication == Replication::None && pool.welcome_params().is_none() {
        // The welcome message repeats what a real server reports, so the first client of a pool
        // waits for the first server login (as in PgBouncer).
        pool.checkout_for_welcome().await?.release_untouched();
    }
    let mut params = ParamSet::default();
    if login.replication == Replication::None {
        for (name, value) in slot_welcome(&pool).iter() {
            params.set(name, value);
        }
    }
    for (name, value) in &login.params {
        params.set(name, value);
    }
    if config.general.application_name_add_host {
        let (addr, port) = stream.peer();
        let app = params.get("application_name").unwrap_or_default();
        params.set("application_name", &format!("{app} - {addr}:{port}"));
    }
    // Shared with every client that has the same values: an idle client holds one pointer.
    Ok((slot, params.shared(), admission))
}

/// AuthenticationOk, the ParameterStatus set (the pool's, overridden by the client's own, then
/// the pooler's own `reports`), BackendKeyData, the `login_notify_message` NOTICE, and
/// ReadyForQuery.
fn write_welcome(
    out: &mut BytesMut,
    welcome: &[(String, String)],
    params: &ParamSet,
    reports: &[(&str, &str)],
    (pid, key): (i32, i32),
    notice: Option<&str>,
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
    for (name, value) in reports {
        backend::parameter_status(out, name, value);
    }
    backend::backend_key_data(out, pid, key);
    if let Some(text) = notice {
        backend::notice_response(out, "00000", text, None);
    }
    backend::ready_for_query(out, crate::protocol::TxStatus::Idle);
}

/// Forwards a cancel request to the server the matching client holds, if any, or, with
/// `peer_id` set, to the peer process whose key it is.
pub async fn handle_cancel(ctx: &ClientContext, pid: i32, key: i32) {
    let config = ctx.registry.config();
    let timeout = config.general.cancel_wait_timeout;
    match cancel::route(config.general.peer_id, pid, key) {
        cancel::Route::Local { key } => {
            let Some(ticket) = ctx.cancels.ticket(pid, key) else {
                tracing::debug!("cancel request for an unknown or idle client");
                return;
            };
            let t = &ticket.target;
            if let Err(e) = cancel::send_cancel(&t.addr, t.pid, t.key, timeout).await {
                tracing::info!("forwarding cancel request failed: {e}");
            }
        }
        cancel::Route::Peer { peer, key } => {
            let Some(def) = config.peers.get(&peer) else {
                tracing::info!(peer, "could not find peer to forward request to");
                return;
            };
            tracing::debug!(peer, "forwarding cancellation request to peer");
            let addr = crate::server::ServerAddr::new(Some(&def.host), def.port);
            let pool_size = def.pool_size.unwrap_or(config.general.default_pool_size);
            let forward = async {
                // At most `pool_size` cancels in flight to one peer; the others queue.
                let _slot = ctx
                    .cancels
                    .peer_slot(
                        peer,
                        usize::try_from(pool_size).unwrap_or(usize::MAX).max(1),
                    )
                    .await;
                cancel::send_cancel(&addr, pid, key, Duration::ZERO).await
            };
            let result = if timeout.is_zero() {
                forward.await
            } else {
                tokio::time::timeout(timeout, forward)
                    .await
                    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
            };
            if let Err(e) = result {
                tracing::info!(peer, "forwarding cancel request to peer failed: {e}");
            }
        }
        cancel::Route::Expired => {
            tracing::info!("failed to forward cancel request because its TTL was exhausted");
        }
    }
}

#[cfg(test)]
mod tests {
    /// The size of the future an async fn returns, without calling it.
    fn future_size<F, A, B, C, D, E, R>(_: F) -> usize
    where
        F: FnOnce(A, B, C, D, E) -> R,
    {
        std::mem::size_of::<R>()
    }

    /// Every logged-in client is one task holding this future for as long as it stays connected,
    /// idle or not; 10,000 idle clients cost 10,000 of them. Login and transaction state are
    /// boxed and freed when their phase ends, so a change that pulls them back in shows up here.
    #[test]
    fn an_idle_client_task_stays_small() {
        let size = future_size(super::serve);
        assert!(size <= 1536, "client task future grew to {size} bytes");
    }
}
