//! Moving bytes between a client and the server it holds, for one transaction (or one session in
//! session mode), looking at message headers only.
//!
//! Client → server: every complete header is counted — Query, FunctionCall and Sync each expect
//! one ReadyForQuery; other extended-protocol messages mark the server as "unsynced" until the next
//! Sync; Terminate is kept from the server. Server → client: ReadyForQuery and ParameterStatus are
//! read (they are tiny), everything else streams through in whole read-sized batches.
//!
//! The server is released only on a ReadyForQuery `I` with no ReadyForQuery still expected,
//! nothing unsynced, and the client stream at a message boundary: then it is provably idle.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::errors::ClientError;
use super::rewrite::{ClientSide, client_wants_body, server_wants_body};
use super::session::Session;
use crate::config::PoolMode;
use crate::pool::{PooledServer, ServerState};
use crate::protocol::reply;
use crate::protocol::scan::Flow;
use crate::stats::{ErrorCounters, PoolStats};

/// How a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// The server is idle and may go back to the pool; the client stays.
    Released,
    /// The client closed its socket.
    ClientGone(ServerState),
    /// The client sent Terminate.
    ClientTerminated(ServerState),
    /// The server connection broke; the client gets an error.
    ServerGone,
    /// The client must be disconnected with this error.
    Fatal(ClientError, ServerState),
}

/// Protocol position of the server as seen from the relayed stream.
#[derive(Debug)]
struct Tracker {
    /// ReadyForQuery messages still expected.
    pending: usize,
    /// Extended-protocol messages sent since the last Sync.
    unsynced: bool,
    /// Status byte of the last ReadyForQuery.
    tx_status: u8,
    query_start: Option<Instant>,
    xact_start: Option<Instant>,
    last_activity: Instant,
}

impl Tracker {
    fn new() -> Self {
        Self {
            pending: 0,
            unsynced: false,
            tx_status: b'I',
            query_start: None,
            xact_start: None,
            last_activity: Instant::now(),
        }
    }

    fn state(&self, client_at_boundary: bool) -> ServerState {
        if self.pending > 0 || self.unsynced || !client_at_boundary {
            ServerState::Unknown
        } else if self.tx_status == b'I' {
            ServerState::Idle
        } else {
            ServerState::InTransaction
        }
    }

    fn on_client_message(&mut self, tag: u8) -> Flow {
        match tag {
            b'Q' | b'F' | b'S' => {
                if self.pending == 0 {
                    let now = Instant::now();
                    self.query_start = Some(now);
                    self.xact_start.get_or_insert(now);
                }
                self.pending += 1;
                self.unsynced = false;
            }
            b'X' => return Flow::StopBefore,
            // CopyData, CopyDone, CopyFail belong to a command already counted.
            b'd' | b'c' | b'f' => {}
            _ => self.unsynced = true,
        }
        Flow::Continue
    }
}

fn deadline_after(start: Option<Instant>, limit: Duration) -> Option<Instant> {
    if limit.is_zero() {
        None
    } else {
        start.map(|s| s + limit)
    }
}

/// Relays until the server can be released or either side leaves.
pub async fn run(session: &mut Session, server: &mut PooledServer) -> RelayEnd {
    let mut t = Tracker::new();
    session.ps.pipeline.reset();
    let pool = std::sync::Arc::clone(server.pool());
    let (settings, stats) = (pool.settings(), &pool.stats);
    // Futures that live for the whole relay, so a loop turn registers no new waiters or timers.
    // The client's own kill token also fires on an immediate shutdown (`with_shutdown`).
    let killed = session.conn.kill_token().clone();
    let killed = killed.cancelled();
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(killed, timer);
    let mut armed: Option<Instant> = None;
    loop {
        if let Err(end) = forward_client(session, server, &mut t).await {
            return end;
        }
        let in_tx_idle = t.pending == 0 && t.tx_status != b'I';
        let query_deadline = deadline_after(
            t.query_start.filter(|_| t.pending > 0),
            settings.query_timeout,
        );
        let idle_tx_deadline = if in_tx_idle {
            deadline_after(Some(t.last_activity), settings.idle_transaction_timeout)
        } else {
            None
        };
        let xact_deadline = deadline_after(t.xact_start, settings.transaction_timeout);
        let next = [query_deadline, idle_tx_deadline, xact_deadline]
            .into_iter()
            .flatten()
            .min();
        if next != armed {
            if let Some(at) = next {
                timer.as_mut().reset(at);
            }
            armed = next;
        }
        let io = server.conn().io();
        let (sstream, sbuf) = (io.stream, io.read_buf);
        if sbuf.capacity() - sbuf.len() < 4096 {
            sbuf.reserve(16 * 1024);
        }
        session.reserve_read();
        tokio::select! {
            read = session.stream.read_buf(&mut session.buf) => match read {
                Ok(0) | Err(_) => return RelayEnd::ClientGone(t.state(session.scanner.at_boundary())),
                Ok(n) => {
                    stats.received(n);
                    t.last_activity = Instant::now();
                }
            },
            read = sstream.read_buf(sbuf) => match read {
                Ok(0) | Err(_) => return RelayEnd::ServerGone,
                Ok(_) => {
                    if let Some(end) = forward_server(session, server, &mut t).await {
                        return end;
                    }
                }
            },
            () = &mut timer, if armed.is_some() => {
                armed = None;
                let now = Instant::now();
                if query_deadline.is_some_and(|d| now >= d) {
                    // As PgBouncer: the client is told "query timeout" and the server is closed.
                    // The cancel makes the backend stop the query instead of running it to its
                    // end for nobody.
                    ErrorCounters::bump(&stats.errors().query_timeouts);
                    if let Some(ticket) = session.cancel.ticket() {
                        let timeout = session.ctx.registry.config().general.cancel_wait_timeout;
                        tokio::spawn(async move {
                            let t = &ticket.target;
                            let _ = super::cancel::send_cancel(&t.addr, t.pid, t.key, timeout).await;
                        });
                    }
                    return RelayEnd::Fatal(ClientError::QueryTimeout, ServerState::Unknown);
                } else if idle_tx_deadline.is_some_and(|d| now >= d) {
                    return RelayEnd::Fatal(ClientError::IdleTransactionTimeout, t.state(session.scanner.at_boundary()));
                } else if xact_deadline.is_some_and(|d| now >= d) {
                    return RelayEnd::Fatal(ClientError::TransactionTimeout, t.state(session.scanner.at_boundary()));
                }
            }
            () = &mut killed => {
                return RelayEnd::Fatal(session.stopped(), ServerState::Unknown);
            }
        }
    }
}

/// Sends the client's buffered complete messages (and any partial body) to the server.
async fn forward_client(
    session: &mut Session,
    server: &mut PooledServer,
    t: &mut Tracker,
) -> Result<(), RelayEnd> {
    if session.buf.is_empty() {
        return Ok(());
    }
    let track = session.track_prepared;
    let pool = std::sync::Arc::clone(server.pool());
    let capacity = pool.settings().max_prepared_statements;
    let io = server.conn().io();
    let ps = &mut session.ps;
    ps.splice.clear();
    let mut rewrite_error = None;
    let mut side = ClientSide {
        registry: &session.ctx.statements,
        server: io.prepared,
        capacity,
        stats: &pool.stats,
    };
    let scanned = session.scanner.scan(
        &session.buf,
        |tag| track && client_wants_body(tag),
        |tag, body, at| {
            let flow = t.on_client_message(tag);
            if track && flow == Flow::Continue {
                if let Err(e) = ps.on_client_message(&mut side, tag, body, at) {
                    rewrite_error = Some(e);
                    return Flow::StopBefore;
                }
            }
            flow
        },
    );
    let scanned = match scanned {
        Ok(s) => s,
        Err(e) => {
            return Err(RelayEnd::Fatal(
                ClientError::Protocol(e.to_string()),
                ServerState::Unknown,
            ));
        }
    };
    if scanned.consumed > 0 {
        let batch = &session.buf[..scanned.consumed];
        let written = if ps.splice.is_empty() {
            io.stream.write_all(batch).await
        } else {
            ps.out.clear();
            ps.splice.apply(batch, batch.len(), &mut ps.out);
            io.stream.write_all(&ps.out).await
        };
        if written.is_err() {
            return Err(RelayEnd::ServerGone);
        }
        bytes::Buf::advance(&mut session.buf, scanned.consumed);
    }
    if let Some(error) = rewrite_error {
        return Err(RelayEnd::Fatal(error, ServerState::Unknown));
    }
    let server_at_boundary = io.scanner.at_boundary();
    if track
        && ps.take_due_replies(server_at_boundary)
        && session.stream.write_all(&ps.out).await.is_err()
    {
        return Err(RelayEnd::ClientGone(ServerState::Unknown));
    }
    if scanned.stopped {
        // Terminate: the client is leaving; the server never sees it.
        return Err(RelayEnd::ClientTerminated(
            t.state(session.scanner.at_boundary()),
        ));
    }
    Ok(())
}

/// What a server message means for the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerVerdict {
    Continue,
    Release,
    StatementModeViolation,
}

impl Tracker {
    /// Accounts for a ReadyForQuery from the server and says whether the relay ends here.
    fn on_ready_for_query(
        &mut self,
        status: u8,
        mode: PoolMode,
        client_at_boundary: bool,
        stats: &PoolStats,
    ) -> ServerVerdict {
        let now = Instant::now();
        self.pending = self.pending.saturating_sub(1);
        self.tx_status = status;
        self.last_activity = now;
        if let Some(start) = self.query_start.take() {
            stats.query_done(now - start);
        }
        if self.pending > 0 {
            self.query_start = Some(now);
        }
        if status == b'I' {
            if let Some(start) = self.xact_start.take() {
                stats.xact_done(now - start);
            }
        }
        if self.pending > 0 || self.unsynced {
            return ServerVerdict::Continue;
        }
        if mode == PoolMode::Statement && status != b'I' {
            return ServerVerdict::StatementModeViolation;
        }
        if mode != PoolMode::Session && status == b'I' && client_at_boundary {
            return ServerVerdict::Release;
        }
        ServerVerdict::Continue
    }
}

/// Forwards what the server sent; returns how the relay ends if it does.
async fn forward_server(
    session: &mut Session,
    server: &mut PooledServer,
    t: &mut Tracker,
) -> Option<RelayEnd> {
    let mode = session.mode;
    let track = session.track_prepared;
    let client_at_boundary = session.scanner.at_boundary();
    let pool = std::sync::Arc::clone(server.pool());
    let io = server.conn().io();
    let ps = &mut session.ps;
    ps.splice.clear();
    let mut verdict = ServerVerdict::Continue;
    let mut param_updates: Vec<(String, String)> = Vec::new();
    let scanned = io.scanner.scan(
        io.read_buf,
        |tag| tag == b'Z' || tag == b'S' || (track && server_wants_body(tag)),
        |tag, body, at| {
            if track {
                ps.on_server_message(io.prepared, tag, body, at);
            }
            match tag {
                b'Z' => {
                    let status = body.first().copied().unwrap_or(b'E');
                    verdict = t.on_ready_for_query(status, mode, client_at_boundary, &pool.stats);
                    match verdict {
                        ServerVerdict::Continue => {}
                        ServerVerdict::Release => return Flow::StopAfter,
                        // The client gets the error in place of this ReadyForQuery; the server,
                        // left with it unread, is closed rather than reused.
                        ServerVerdict::StatementModeViolation => return Flow::StopBefore,
                    }
                }
                b'S' => {
                    if let Ok((name, value)) = reply::parameter_status(body) {
                        param_updates.push((name.to_owned(), value.to_owned()));
                    }
                }
                _ => {}
            }
            Flow::Continue
        },
    );
    let Ok(scanned) = scanned else {
        return Some(RelayEnd::ServerGone);
    };
    for (name, value) in &param_updates {
        // The client is told this value, so the server and the client now agree on it.
        session.params.set(name, value);
        io.params.set(name, value);
    }
    if track && verdict == ServerVerdict::Continue {
        ps.insert_due_replies(scanned.consumed, io.scanner.at_boundary());
    }
    if scanned.consumed > 0 || !ps.splice.is_empty() {
        let batch = &io.read_buf[..scanned.consumed];
        let written = if ps.splice.is_empty() {
            session.stream.write_all(batch).await.map(|()| batch.len())
        } else {
            ps.out.clear();
            ps.splice.apply(batch, batch.len(), &mut ps.out);
            session
                .stream
                .write_all(&ps.out)
                .await
                .map(|()| ps.out.len())
        };
        match written {
            Ok(n) => pool.stats.sent(n),
            Err(_) => return Some(RelayEnd::ClientGone(ServerState::Unknown)),
        }
        bytes::Buf::advance(io.read_buf, scanned.consumed);
    }
    match verdict {
        ServerVerdict::Continue => None,
        ServerVerdict::Release => Some(RelayEnd::Released),
        ServerVerdict::StatementModeViolation => Some(RelayEnd::Fatal(
            ClientError::StatementModeTransaction,
            ServerState::Unknown,
        )),
    }
}
