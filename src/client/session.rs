//! A logged-in client: waits idle without a server, checks one out when a message needs it,
//! aligns the server's parameters with what this client was told, relays, and gives the server
//! back per the pool mode. A replication client instead keeps the server opened for it alone
//! (see `pool::dedicated`) for its whole session, relayed as in session mode with no parameter
//! alignment and no prepared-statement rewriting, and the server is closed when it leaves.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::ClientContext;
use super::cancel::CancelRegistration;
use super::errors::ClientError;
use super::relay::{self, RelayEnd};
use super::rewrite::PreparedState;
use crate::config::PoolMode;
use crate::net::Stream;
use crate::pool::{ClientAdmission, ClientSlot, CloseReason, PoolError, PooledServer, ServerState};
use crate::protocol::frame::HEADER_LEN;
use crate::protocol::scan::{MAX_FRONTEND_FRAME, Scanner};
use crate::server::ParamSet;
use crate::stats::conns::{ConnEntry, ConnState, KillReason};

/// Read-buffer size a client gets when it has something to send (none while idle).
const IDLE_BUFFER: usize = 4096;

/// How much a queued client may send ahead before its socket is no longer read (and so no
/// longer watched for EOF) until a server arrives: backpressure, not unbounded buffering.
const QUEUED_READ_LIMIT: usize = 64 * 1024;

/// One client connection after login.
pub struct Session {
    pub(super) ctx: Arc<ClientContext>,
    pub(super) stream: Stream,
    pub(super) buf: BytesMut,
    pub(super) scanner: Scanner,
    pub(super) params: ParamSet,
    pub(super) mode: PoolMode,
    pub(super) id: u64,
    /// Whether protocol-level prepared statements are tracked (transaction/statement mode with
    /// `max_prepared_statements` > 0).
    pub(super) track_prepared: bool,
    pub(super) ps: PreparedState,
    /// This client's record in the connection directory (SHOW CLIENTS, KILL_CLIENT).
    pub(super) conn: ConnEntry,
    slot: ClientSlot,
    /// This client's units of `max_db_client_connections` / `max_user_client_connections`.
    _admission: ClientAdmission,
    pub(super) cancel: CancelRegistration,
    /// A replication client's own server, until its session starts.
    dedicated: Option<PooledServer>,
}

fn tracks_prepared(settings: &crate::pool::PoolSettings) -> bool {
    settings.pool_mode != PoolMode::Session && settings.max_prepared_statements > 0
}

enum Request {
    Work,
    Terminate,
    Eof,
}

/// How a client left of its own accord, in PgBouncer's words for the disconnect log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Leave {
    /// It sent Terminate.
    #[error("client close request")]
    CloseRequest,
    /// Its connection ended without a Terminate (including in the middle of a transaction).
    #[error("client unexpected eof")]
    UnexpectedEof,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        ctx: Arc<ClientContext>,
        stream: Stream,
        buf: BytesMut,
        params: ParamSet,
        (slot, admission): (ClientSlot, ClientAdmission),
        cancel: CancelRegistration,
        id: u64,
        conn: ConnEntry,
    ) -> Self {
        let settings = slot.pool().settings();
        let max =
            usize::try_from(ctx.registry.config().general.max_packet_size).unwrap_or(usize::MAX);
        Self {
            mode: settings.pool_mode,
            track_prepared: tracks_prepared(&settings),
            ps: PreparedState::default(),
            ctx,
            stream,
            buf,
            // PostgreSQL refuses longer client messages; so does the relay, before the body.
            scanner: Scanner::new(max.min(MAX_FRONTEND_FRAME)),
            params,
            id,
            conn,
            slot,
            _admission: admission,
            cancel,
            dedicated: None,
        }
    }

    /// Makes this a replication session on its own server.
    pub(super) fn dedicate(&mut self, server: PooledServer) {
        self.mode = PoolMode::Session;
        self.track_prepared = false;
        self.dedicated = Some(server);
    }

    /// Serves the client until it leaves or must be disconnected.
    pub async fn run(&mut self) -> Result<Leave, ClientError> {
        if let Some(server) = self.dedicated.take() {
            return Box::pin(self.replication(server)).await;
        }
        loop {
            match self.wait_for_request().await? {
                Request::Terminate => return Ok(Leave::CloseRequest),
                Request::Eof => return Ok(Leave::UnexpectedEof),
                Request::Work => {}
            }
            // Boxed: the checkout and relay futures exist only while a transaction runs, so the
            // task of an idle client stays small.
            if let Some(leave) = Box::pin(self.transaction()).await? {
                return Ok(leave);
            }
        }
    }

    /// Checks out a server, relays one transaction (or session) and gives the server back.
    /// `Ok(Some(_))`: the client left.
    async fn transaction(&mut self) -> Result<Option<Leave>, ClientError> {
        let mut server = match self.checkout().await? {
            Ok(server) => server,
            Err(leave) => return Ok(Some(leave)),
        };
        let end = relay::run(self, &mut server).await;
        // No cancel aimed at this client may reach the server once another client has it.
        self.cancel.detach().await;
        self.unlink(&mut server);
        match end {
            RelayEnd::Released => server.release(ServerState::Idle, self.mode),
            RelayEnd::ClientGone(state) => {
                server.release(state, self.mode);
                return Ok(Some(Leave::UnexpectedEof));
            }
            RelayEnd::ClientTerminated(state) => {
                server.release(state, self.mode);
                return Ok(Some(Leave::CloseRequest));
            }
            RelayEnd::ServerGone => {
                server.close(CloseReason::Crashed);
                return Err(ClientError::ServerGone);
            }
            // server_fast_close: the session ends and its server closes with it.
            RelayEnd::Fatal(error, _) if self.conn.kill_reason() == KillReason::ConfigChanged => {
                server.close(CloseReason::DatabaseChanged);
                return Err(error);
            }
            RelayEnd::Fatal(error, state) => {
                server.release(state, self.mode);
                return Err(error);
            }
        }
        Ok(None)
    }

    /// Relays a replication session (CopyBoth streams, replication commands, SQL on a logical
    /// walsender) until either side leaves; the server is never reused.
    async fn replication(&mut self, mut server: PooledServer) -> Result<Leave, ClientError> {
        self.cancel
            .set_target(server.conn().cancel_target().clone());
        self.link(&mut server);
        let end = relay::run(self, &mut server).await;
        self.cancel.detach().await;
        self.unlink(&mut server);
        server.close(CloseReason::ReplicationDone);
        match end {
            RelayEnd::Released | RelayEnd::ClientTerminated(_) => Ok(Leave::CloseRequest),
            RelayEnd::ClientGone(_) => Ok(Leave::UnexpectedEof),
            RelayEnd::ServerGone => Err(ClientError::ServerGone),
            RelayEnd::Fatal(error, _) => Err(error),
        }
    }

    /// Waits, without a server, for a message that needs one. While nothing is buffered the
    /// read buffer is given back, so an idle client holds no buffer at all.
    async fn wait_for_request(&mut self) -> Result<Request, ClientError> {
        let idle_timeout = self.slot.pool().settings().client_idle_timeout;
        let deadline = (!idle_timeout.is_zero()).then(|| Instant::now() + idle_timeout);
        loop {
            if let Some(&tag) = self.buf.first() {
                if self.scanner.at_boundary() && tag == b'X' {
                    return Ok(Request::Terminate);
                }
                if self.buf.len() >= HEADER_LEN || !self.scanner.at_boundary() {
                    // A length PostgreSQL would refuse: 08P01 now, without waiting for a server.
                    self.scanner
                        .check_header(&self.buf)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    return Ok(Request::Work);
                }
            } else if self.buf.capacity() > 0 {
                self.buf = BytesMut::new();
            }
            tokio::select! {
                read = self.stream.read_when_ready(&mut self.buf, IDLE_BUFFER) => match read {
                    Ok(0) | Err(_) => return Ok(Request::Eof),
                    Ok(n) => self.slot.pool().stats.received(n),
                },
                () = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    return Err(ClientError::IdleTimeout);
                }
                // A kill from the console or an immediate shutdown. A drain (SIGINT, SHUTDOWN
                // WAIT_FOR_SERVERS) leaves an idle client be until it asks for a server.
                () = self.conn.killed() => return Err(self.stopped()),
            }
        }
    }

    /// Checks out a server, following the pool to its replacement after a reload, and aligns
    /// its parameters with this client's. `Ok(Err(_))`: the client left while it waited; its
    /// place in the queue is given up at once (the socket is watched while queued, and what it
    /// sends meanwhile is kept, up to [`QUEUED_READ_LIMIT`], for the server to come).
    async fn checkout(&mut self) -> Result<Result<PooledServer, Leave>, ClientError> {
        self.conn.set_state(ConnState::ClientWaiting);
        // SHUTDOWN WAIT_FOR_SERVERS (SIGINT) hands out no more servers: a client that needs
        // one, or already waits for one, is let go ("server shutting down"), as in PgBouncer.
        if self.conn.is_stopping() {
            return Err(self.stopped());
        }
        let pool = Arc::clone(self.slot.pool());
        let checkout = pool.checkout();
        tokio::pin!(checkout);
        let notify = self.ctx.registry.config().general.query_wait_notify;
        // Timers start only when first polled, so a checkout that finds an idle server (the
        // biased first branch) arms none.
        let notice_at = tokio::time::sleep(notify);
        tokio::pin!(notice_at);
        let mut notified = notify.is_zero();
        let checked_out = loop {
            let watch = self.buf.len() < QUEUED_READ_LIMIT;
            tokio::select! {
                biased;
                r = &mut checkout => break r,
                () = self.conn.killed() => return Err(self.stopped()),
                // A drain lets a queued client go at the janitor's next round.
                () = self.ctx.shutdown.release_queued.cancelled() => return Err(self.stopped()),
                read = self.stream.read_when_ready(&mut self.buf, IDLE_BUFFER), if watch => match read {
                    // Gone while queued: dropping the checkout leaves the queue now.
                    Ok(0) | Err(_) => return Ok(Err(self.left_while_queued())),
                    Ok(n) => pool.stats.received(n),
                },
                () = &mut notice_at, if !notified => {
                    notified = true;
                    self.notify_queued().await;
                }
            }
        };
        let mut server = match checked_out {
            Ok(server) => server,
            Err(PoolError::Closed) if !self.ctx.shutdown.drain.is_cancelled() => {
                let pool = Arc::clone(self.slot.pool());
                let db = self
                    .ctx
                    .registry
                    .database(&pool.database)
                    .ok_or(PoolError::Closed)?;
                let replacement = self.ctx.registry.pool_for(&db, &pool.user);
                self.slot = replacement.attach_client();
                self.mode = replacement.settings().pool_mode;
                replacement.checkout().await?
            }
            Err(e) => return Err(e.into()),
        };
        // `max_prepared_statements` applies live (SET, RELOAD); between transactions nothing is
        // owed, so tracking can start or stop here.
        self.track_prepared = tracks_prepared(&self.slot.pool().settings());
        let conn = server.conn();
        if let Some(sql) = conn.params.alignment_sql(&self.params) {
            let before = conn.params.clone();
            // PgBouncer sends the SETs in front of the query, so `query_timeout` bounds them: a
            // server that stopped answering must not hold the client past it.
            let limit = self.slot.pool().settings().query_timeout;
            let aligned = if limit.is_zero() {
                Ok(conn.simple_query(&sql).await)
            } else {
                tokio::time::timeout(limit, conn.simple_query(&sql)).await
            };
            match aligned {
                Ok(Ok(_)) => conn.params.adopt(&self.params, &before),
                Err(_) => {
                    tracing::warn!(
                        client = self.id,
                        server = conn.id,
                        "parameter alignment: query timeout"
                    );
                    server.close(CloseReason::AlignmentFailed);
                    return Err(ClientError::QueryTimeout);
                }
                Ok(Err(e)) => {
                    tracing::warn!(
                        client = self.id,
                        server = conn.id,
                        "parameter alignment failed: {e}"
                    );
                    server.close(CloseReason::AlignmentFailed);
                    return Err(ClientError::ServerGone);
                }
            }
        }
        self.cancel
            .set_target(Arc::clone(server.conn().cancel_target()));
        self.link(&mut server);
        Ok(Ok(server))
    }

    /// How a client that closed its socket while queued left: a Terminate first is a close
    /// request, anything else an unexpected EOF.
    fn left_while_queued(&self) -> Leave {
        let mut rest = &self.buf[..];
        while rest.len() >= HEADER_LEN {
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            if rest[0] == b'X' {
                return Leave::CloseRequest;
            }
            let Some(next) = rest.get(1 + len..) else {
                break;
            };
            rest = next;
        }
        Leave::UnexpectedEof
    }

    /// `query_wait_notify`: tells a client queued that long that it waits for a server, once
    /// per wait, with PgBouncer's NOTICE. Best effort: a client not reading is not waited for.
    async fn notify_queued(&mut self) {
        let mut out = BytesMut::new();
        crate::protocol::backend::notice_response(
            &mut out,
            "00000",
            "No server connection available in postgres backend, client being queued",
            None,
        );
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            self.stream.write_all(&out),
        )
        .await;
    }

    /// Records the client-server link in the connection directory.
    fn link(&self, server: &mut PooledServer) {
        let conn = server.conn();
        self.conn.set_state(ConnState::ClientActive);
        self.conn.set_link(conn.id);
        if let Some(entry) = &conn.entry {
            entry.set_link(self.id);
        }
    }

    /// Records the end of a transaction in the connection directory.
    fn unlink(&self, server: &mut PooledServer) {
        self.conn.set_state(ConnState::ClientIdle);
        self.conn
            .set_application_name(self.params.get("application_name").unwrap_or_default());
        self.conn.set_prepared(self.ps.statements.len());
        let conn = server.conn();
        if let Some(entry) = &conn.entry {
            entry.set_prepared(conn.prepared.len());
        }
    }

    /// The error a client stopped by its kill tokens gets: PgBouncer's reason text for a kill
    /// from the console; nothing when the process exits now; else (a drain between
    /// transactions) "server shutting down".
    pub(super) fn stopped(&self) -> ClientError {
        match self.conn.kill_reason() {
            KillReason::None if self.ctx.shutdown.kill.is_cancelled() => ClientError::Exiting,
            KillReason::None => ClientError::ServerShutdown,
            reason => ClientError::Protocol(reason.text().to_owned()),
        }
    }

    /// Sends a FATAL error and closes the connection, best effort.
    pub async fn disconnect_with(&mut self, error: &ClientError) {
        let mut out = BytesMut::new();
        error.write_fatal(&mut out);
        self.stream.send_and_close(&out).await;
    }
}
