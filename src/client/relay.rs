//! Moving bytes between a client and the server it holds, for one transaction (or one session in
//! session mode), looking at message headers only.
//!
//! Owns: the two directions of one client-server pair, each a bounded read buffer plus the bytes
//! scanned and not yet written to the other side. One hand-written poll loop drives both: per
//! wake-up it writes pending bytes where there are any, scans what was read once its direction
//! has nothing pending, and reads where its buffer has room, until nothing makes progress. So a
//! peer that stops reading stops only its own direction: the other keeps flowing (a COPY IN whose
//! server sends a NOTICE per row, a client that pipelines before it reads).
//!
//! Bounds: a direction reads only while it holds under [`READ_LIMIT`] bytes, or while a message
//! the pooler must see whole (at most `scan::WHOLE_MAX`) is incomplete; a rewritten batch is at
//! most one buffer plus the few messages the prepared-statement rewrite adds. Nothing is buffered
//! because of a declared length: large messages stream.
//!
//! Hot path: reads go through `poll_read`, so a short read clears readiness and no EAGAIN read
//! follows; the kill flag costs one atomic load and one uncontended lock per wake-up; the timer
//! is polled only while a deadline is armed; pool settings
//! are read once per relay; the clock is read at most once per wake-up, and only when something
//! needs it. The release decision is [`super::release::ReleaseRule`], a pure state machine.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

use super::errors::ClientError;
use super::release::{ClientStep, ReleaseRule, Verdict};
use super::rewrite::{ClientSide, client_want, server_wants_body};
use super::session::Session;
use crate::net::Stream;
use crate::pool::{Pool, PoolSettings, PooledServer, ServerState};
use crate::protocol::TxStatus;
use crate::protocol::reply;
use crate::protocol::scan::{Flow, Want};
use crate::stats::conns::{ConnInfo, KillReason};
use crate::stats::{ErrorCounters, PoolStats};

/// A direction reads more only while it holds fewer bytes than this (or a message it must see
/// whole is incomplete).
pub const READ_LIMIT: usize = 64 * 1024;
/// Room made in a buffer before a read, when less than a quarter of it is free.
const SERVER_CHUNK: usize = 16 * 1024;
const CLIENT_CHUNK: usize = 8 * 1024;
const CLIENT_SPARE: usize = 1024;

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

/// An end decided by a scan, taken once the bytes before it are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// ReadyForQuery `I` with nothing owed: once it reached the client.
    Release,
    /// Terminate: once what came before it reached the server.
    Terminate,
    /// Statement mode with a transaction open: once what came before reached the client.
    StatementMode,
}

/// Bytes scanned and waiting to be written to the other side.
#[derive(Debug, Default)]
struct Outgoing {
    /// The first `direct` bytes of the direction's read buffer go as they are.
    direct: usize,
    /// Bytes of the direction's rewrite buffer already written.
    written: usize,
    /// A TLS layer may hold written bytes until flushed.
    flush: bool,
    /// Something is queued, written but not flushed, or partly written.
    busy: bool,
}

impl Outgoing {
    /// Queues the first `n` bytes of the read buffer.
    fn direct(&mut self, n: usize) {
        self.direct = n;
        self.busy = true;
    }

    /// Moves a direct batch into `copy` so more can be appended behind it.
    fn move_to_copy(&mut self, buf: &mut BytesMut, copy: &mut BytesMut) {
        if self.direct > 0 {
            copy.extend_from_slice(buf.get(..self.direct).unwrap_or_default());
            buf.advance(self.direct);
            self.direct = 0;
        }
    }

    /// Writes what is pending; `Ok(true)` when nothing is left.
    fn drain(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut Stream,
        buf: &mut BytesMut,
        copy: &mut BytesMut,
        progress: &mut bool,
    ) -> io::Result<bool> {
        if !self.busy {
            return Ok(true);
        }
        loop {
            let chunk = if self.direct > 0 {
                buf.get(..self.direct).unwrap_or_default()
            } else {
                copy.get(self.written..).unwrap_or_default()
            };
            if chunk.is_empty() {
                break;
            }
            match Pin::new(&mut *stream).poll_write(cx, chunk) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    *progress = true;
                    self.flush = stream.is_tls();
                    if self.direct > 0 {
                        buf.advance(n);
                        self.direct -= n;
                    } else {
                        self.written += n;
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(false),
            }
        }
        copy.clear();
        self.written = 0;
        if self.flush {
            match Pin::new(&mut *stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(false),
            }
        }
        self.busy = false;
        Ok(true)
    }
}

/// Reads into `buf` if it holds under `limit` bytes: `Ok(None)` when nothing was read (not
/// polled, or not ready), `Ok(Some(0))` at EOF.
fn fill(
    cx: &mut Context<'_>,
    stream: &mut Stream,
    buf: &mut BytesMut,
    (chunk, spare): (usize, usize),
    limit: usize,
) -> io::Result<Option<usize>> {
    if buf.len() >= limit {
        return Ok(None);
    }
    if buf.capacity() - buf.len() < spare {
        buf.reserve(chunk);
    }
    let read = tokio::io::AsyncReadExt::read_buf(stream, buf);
    match std::future::Future::poll(std::pin::pin!(read), cx) {
        Poll::Ready(Ok(n)) => Ok(Some(n)),
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Ok(None),
    }
}

/// The clock, read at most once per wake-up and only if something needs it.
#[derive(Default)]
struct Now(Option<Instant>);

impl Now {
    fn get(&mut self) -> Instant {
        *self.0.get_or_insert_with(Instant::now)
    }
}

/// Query and transaction clocks, for the stats and the timeouts.
#[derive(Debug, Default)]
struct Timing {
    query_start: Option<Instant>,
    xact_start: Option<Instant>,
    /// Last client read or server ReadyForQuery (for `idle_transaction_timeout`).
    last_activity: Option<Instant>,
    /// Since when the client has not taken what it is sent (for `client_idle_timeout`).
    stalled_since: Option<Instant>,
}

impl Timing {
    fn started(&mut self, now: Instant) {
        self.query_start = Some(now);
        self.xact_start.get_or_insert(now);
    }

    fn ready(&mut self, now: Instant, status: TxStatus, more: bool, stats: &PoolStats) {
        self.last_activity = Some(now);
        if let Some(start) = self.query_start.take() {
            stats.query_done(now - start);
        }
        if more {
            self.query_start = Some(now);
        }
        if status == TxStatus::Idle {
            if let Some(start) = self.xact_start.take() {
                stats.xact_done(now - start);
            }
        }
    }
}

/// Which deadline the timer is armed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    Query,
    IdleTransaction,
    Transaction,
    ClientStalled,
}

fn after(start: Option<Instant>, limit: Duration, kind: Deadline) -> Option<(Instant, Deadline)> {
    if limit.is_zero() {
        None
    } else {
        start.map(|s| (s + limit, kind))
    }
}

/// A timer that exists only once a deadline does, is reset only when the deadline changes and
/// is polled only while armed. (It is polled on every wake-up while armed: a poll refused by
/// the task's coop budget registers nothing, so skipping polls could lose the wake-up.)
#[derive(Debug, Default)]
struct Alarm {
    armed: Option<(Instant, Deadline)>,
}

impl Alarm {
    /// Arms for `next` (if it changed) and says which deadline has passed, if any.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        mut sleep: Pin<&mut Option<Sleep>>,
        next: Option<(Instant, Deadline)>,
    ) -> Option<Deadline> {
        if next != self.armed {
            self.armed = next;
            if let Some((at, _)) = next {
                match sleep.as_mut().as_pin_mut() {
                    Some(s) => s.reset(at),
                    None => sleep.set(Some(tokio::time::sleep_until(at))),
                }
            }
        }
        let (_, kind) = self.armed?;
        let timer = sleep.as_pin_mut()?;
        if std::future::Future::poll(timer, cx).is_ready() {
            self.armed = None;
            return Some(kind);
        }
        None
    }
}

/// The client's kill signal (console KILL, immediate shutdown). The one place that knows how a
/// kill is signalled. Polled on every wake-up, not only when this task's waker changes: any
/// stop flag raised (a drain too) takes the stored waker, so a poll that skipped re-registering
/// would sleep through a later kill.
struct Kill<'c> {
    conn: &'c ConnInfo,
}

impl Kill<'_> {
    fn requested(&mut self, cx: &mut Context<'_>) -> bool {
        self.conn.poll_killed(cx).is_ready()
    }
}

/// Relays until the server can be released or either side leaves.
pub async fn run(session: &mut Session, server: &mut PooledServer) -> RelayEnd {
    let conn = Arc::clone(session.conn.info());
    let sleep: Option<Sleep> = None;
    tokio::pin!(sleep);
    let mut kill = Kill { conn: &conn };
    let pool = Arc::clone(server.pool());
    let mut relay = Relay {
        settings: pool.settings(),
        pool,
        session,
        server,
        rule: ReleaseRule::new(),
        timing: Timing::default(),
        up: Outgoing::default(),
        down: Outgoing::default(),
        ending: None,
        server_eof: false,
        alarm: Alarm::default(),
        close_when_idle: false,
    };
    relay.session.ps.pipeline.reset();
    poll_fn(|cx| relay.poll(cx, &mut kill, sleep.as_mut())).await
}

struct Relay<'a> {
    session: &'a mut Session,
    server: &'a mut PooledServer,
    pool: Arc<Pool>,
    settings: Arc<PoolSettings>,
    rule: ReleaseRule,
    timing: Timing,
    /// Client to server.
    up: Outgoing,
    /// Server to client.
    down: Outgoing,
    ending: Option<Ending>,
    server_eof: bool,
    alarm: Alarm,
    /// `server_fast_close` asked this session to end once its transaction has.
    close_when_idle: bool,
}

impl Relay<'_> {
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        kill: &mut Kill<'_>,
        sleep: Pin<&mut Option<Sleep>>,
    ) -> Poll<RelayEnd> {
        let mut now = Now::default();
        loop {
            let mut progress = false;
            if let Err(end) = self.client_to_server(cx, &mut progress, &mut now) {
                return Poll::Ready(end);
            }
            if let Err(end) = self.server_to_client(cx, &mut progress, &mut now) {
                return Poll::Ready(end);
            }
            if let Some(end) = self.finished() {
                return Poll::Ready(end);
            }
            if !progress {
                break;
            }
        }
        if let Some(end) = self.stop_if_asked(cx, kill) {
            return Poll::Ready(end);
        }
        match self.alarm.poll(cx, sleep, self.next_deadline()) {
            Some(kind) => Poll::Ready(self.timed_out(kind)),
            None => Poll::Pending,
        }
    }

    /// A kill ends the relay at once, except the one `server_fast_close` sends (a RECONNECT or a
    /// reload changed the server's database): that one waits until the server is idle, so the
    /// transaction in flight ends first, as in PgBouncer.
    fn stop_if_asked(&mut self, cx: &mut Context<'_>, kill: &mut Kill<'_>) -> Option<RelayEnd> {
        let state = self.rule.state(self.client_done());
        if self.close_when_idle {
            return (state == ServerState::Idle && !self.down.busy)
                .then(|| RelayEnd::Fatal(self.session.stopped(), state));
        }
        if !kill.requested(cx) {
            return None;
        }
        let fast_close = self.session.conn.kill_reason() == KillReason::ConfigChanged
            && !self.session.ctx.shutdown.kill.is_cancelled();
        if !fast_close {
            return Some(RelayEnd::Fatal(
                self.session.stopped(),
                ServerState::Unknown,
            ));
        }
        if state == ServerState::Idle && !self.down.busy {
            return Some(RelayEnd::Fatal(self.session.stopped(), state));
        }
        self.close_when_idle = true;
        None
    }

    /// Whether the client stream is at a message boundary with everything scanned sent.
    fn client_done(&self) -> bool {
        self.session.scanner.at_boundary() && !self.up.busy
    }

    fn finished(&self) -> Option<RelayEnd> {
        match self.ending? {
            Ending::Release if !self.up.busy && !self.down.busy => Some(RelayEnd::Released),
            Ending::Terminate if !self.up.busy => Some(RelayEnd::ClientTerminated(
                self.rule.state(self.session.scanner.at_boundary()),
            )),
            Ending::StatementMode if !self.down.busy => Some(RelayEnd::Fatal(
                ClientError::StatementModeTransaction,
                ServerState::Unknown,
            )),
            _ => None,
        }
    }

    fn client_to_server(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
        now: &mut Now,
    ) -> Result<(), RelayEnd> {
        let io = self.server.conn().io();
        let s = &mut *self.session;
        let drained = self
            .up
            .drain(cx, io.stream, &mut s.buf, &mut s.ps.out, progress)
            .map_err(|_| RelayEnd::ServerGone)?;
        if self.ending.is_some() {
            return Ok(());
        }
        if drained && !s.buf.is_empty() {
            *progress |= scan_client(self, now)?;
            if self.ending.is_some() {
                // A Terminate ends the client's stream: reading on would only find its EOF
                // and mistake a close request for an unexpected one.
                return Ok(());
            }
        }
        let s = &mut *self.session;
        let track = s.track_prepared;
        let limit = if s.buf.len() >= READ_LIMIT {
            let tail = s.buf.get(self.up.direct..).unwrap_or_default();
            let want = |tag, len, head: &[u8]| want_client(track, tag, len, head);
            READ_LIMIT.max(s.scanner.needed(tail, want).unwrap_or(0) + self.up.direct)
        } else {
            READ_LIMIT
        };
        match fill(
            cx,
            &mut s.stream,
            &mut s.buf,
            (CLIENT_CHUNK, CLIENT_SPARE),
            limit,
        ) {
            Ok(Some(0)) | Err(_) => Err(RelayEnd::ClientGone(self.rule.state(self.client_done()))),
            Ok(Some(n)) => {
                *progress = true;
                self.pool.stats.received(n);
                if !self.settings.idle_transaction_timeout.is_zero() {
                    self.timing.last_activity = Some(now.get());
                }
                Ok(())
            }
            Ok(None) => Ok(()),
        }
    }

    fn server_to_client(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
        now: &mut Now,
    ) -> Result<(), RelayEnd> {
        let io = self.server.conn().io();
        let s = &mut *self.session;
        let before = *progress;
        *progress = false;
        let drained = self
            .down
            .drain(cx, &mut s.stream, io.read_buf, &mut s.ps.out_back, progress)
            .map_err(|_| RelayEnd::ClientGone(ServerState::Unknown))?;
        if !self.settings.client_idle_timeout.is_zero() {
            if drained || *progress {
                self.timing.stalled_since = None;
            }
            if !drained && self.timing.stalled_since.is_none() {
                self.timing.stalled_since = Some(now.get());
            }
        }
        *progress |= before;
        if self.ending.is_some() {
            return Ok(());
        }
        if drained && (!io.read_buf.is_empty() || self.server_eof) {
            let scanned = scan_server(self, now)?;
            *progress |= scanned;
            if self.server_eof && !scanned {
                // Whatever came before the end is with the client now.
                return Err(RelayEnd::ServerGone);
            }
        }
        if self.server_eof {
            return Ok(());
        }
        let io = self.server.conn().io();
        let limit = if io.read_buf.len() >= READ_LIMIT {
            let tail = io.read_buf.get(self.down.direct..).unwrap_or_default();
            let track = self.session.track_prepared;
            let want = |tag, _, _: &[u8]| want_server(track, tag);
            READ_LIMIT.max(io.scanner.needed(tail, want).unwrap_or(0) + self.down.direct)
        } else {
            READ_LIMIT
        };
        match fill(
            cx,
            io.stream,
            io.read_buf,
            (SERVER_CHUNK, SERVER_CHUNK / 4),
            limit,
        ) {
            Ok(Some(0)) | Err(_) => {
                self.server_eof = true;
                *progress = true;
            }
            Ok(Some(_)) => *progress = true,
            Ok(None) => {}
        }
        Ok(())
    }

    fn next_deadline(&self) -> Option<(Instant, Deadline)> {
        let (t, s) = (&self.timing, &self.settings);
        let running = t.query_start.filter(|_| self.rule.pending() > 0);
        let idle_tx = t.last_activity.filter(|_| self.rule.idle_in_transaction());
        [
            after(running, s.query_timeout, Deadline::Query),
            after(
                idle_tx,
                s.idle_transaction_timeout,
                Deadline::IdleTransaction,
            ),
            after(t.xact_start, s.transaction_timeout, Deadline::Transaction),
            after(
                t.stalled_since,
                s.client_idle_timeout,
                Deadline::ClientStalled,
            ),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(at, _)| *at)
    }

    fn timed_out(&mut self, kind: Deadline) -> RelayEnd {
        let state = self.rule.state(self.client_done());
        match kind {
            Deadline::Query => {
                // As PgBouncer: the client is told "query timeout" and the server is closed.
                // The cancel makes the backend stop the query instead of running it to its end
                // for nobody.
                ErrorCounters::bump(&self.pool.stats.errors().query_timeouts);
                if let Some(ticket) = self.session.cancel.ticket() {
                    let timeout = self
                        .session
                        .ctx
                        .registry
                        .config()
                        .general
                        .cancel_wait_timeout;
                    tokio::spawn(async move {
                        let t = &ticket.target;
                        let _ = super::cancel::send_cancel(&t.addr, t.pid, t.key, timeout).await;
                    });
                }
                RelayEnd::Fatal(ClientError::QueryTimeout, ServerState::Unknown)
            }
            Deadline::IdleTransaction => {
                RelayEnd::Fatal(ClientError::IdleTransactionTimeout, state)
            }
            Deadline::Transaction => RelayEnd::Fatal(ClientError::TransactionTimeout, state),
            // A client that takes nothing it is sent for `client_idle_timeout` is idle too; the
            // server, cut off mid-reply, is closed.
            Deadline::ClientStalled => {
                RelayEnd::Fatal(ClientError::IdleTimeout, ServerState::Unknown)
            }
        }
    }
}

fn want_client(track: bool, tag: u8, len: usize, head: &[u8]) -> Want {
    if track {
        client_want(tag, len, head)
    } else {
        Want::Skip
    }
}

fn want_server(track: bool, tag: u8) -> Want {
    if tag == b'Z' || tag == b'S' || (track && server_wants_body(tag)) {
        Want::Whole
    } else {
        Want::Skip
    }
}

/// Scans the client's buffered bytes (nothing is pending for the server) and queues what may go;
/// returns whether anything changed.
fn scan_client(r: &mut Relay<'_>, now: &mut Now) -> Result<bool, RelayEnd> {
    let s = &mut *r.session;
    let io = r.server.conn().io();
    let track = s.track_prepared;
    let ps = &mut s.ps;
    ps.splice.clear();
    let mut rewrite_error = None;
    let mut side = ClientSide {
        registry: &s.ctx.statements,
        server: io.prepared,
        capacity: r.settings.max_prepared_statements,
        stats: &r.pool.stats,
    };
    let (rule, timing) = (&mut r.rule, &mut r.timing);
    let scanned = s.scanner.scan(
        &s.buf,
        |tag, len, head| want_client(track, tag, len, head),
        |msg| {
            match rule.on_client(msg.tag) {
                ClientStep::Terminate => return Flow::StopBefore,
                ClientStep::Started => timing.started(now.get()),
                ClientStep::Continue => {}
            }
            if track {
                if let Err(e) = ps.on_client_message(&mut side, msg) {
                    rewrite_error = Some(e);
                    return Flow::StopBefore;
                }
            }
            Flow::Continue
        },
    );
    let scanned = scanned
        .map_err(|e| RelayEnd::Fatal(ClientError::Protocol(e.to_string()), ServerState::Unknown))?;
    if let Some(error) = rewrite_error {
        return Err(RelayEnd::Fatal(error, ServerState::Unknown));
    }
    if scanned.consumed > 0 {
        if ps.splice.is_empty() {
            r.up.direct(scanned.consumed);
        } else {
            let batch = s.buf.get(..scanned.consumed).unwrap_or_default();
            ps.splice.apply(batch, batch.len(), &mut ps.out);
            s.buf.advance(scanned.consumed);
            r.up.busy = true;
        }
    }
    let mut changed = scanned.consumed > 0;
    if track && ps.pipeline.has_synthetic() {
        // Replies the pooler owes now go behind what the client was already sent.
        r.down.move_to_copy(io.read_buf, &mut ps.out_back);
        if ps.take_due_replies(io.scanner.at_boundary()) {
            r.down.busy = true;
            changed = true;
        }
    }
    if scanned.stopped {
        r.ending = Some(Ending::Terminate);
        changed = true;
    }
    Ok(changed)
}

/// Scans the server's buffered bytes (nothing is pending for the client) and queues what may go;
/// returns whether anything was.
fn scan_server(r: &mut Relay<'_>, now: &mut Now) -> Result<bool, RelayEnd> {
    let mode = r.session.mode;
    let client_done = r.client_done();
    let s = &mut *r.session;
    let io = r.server.conn().io();
    let track = s.track_prepared;
    let ps = &mut s.ps;
    ps.splice.clear();
    let mut verdict = Verdict::Continue;
    let (rule, timing, stats) = (&mut r.rule, &mut r.timing, &r.pool.stats);
    let (client_params, server_params) = (&mut s.params, &mut *io.params);
    let prepared = &mut *io.prepared;
    let scanned = io.scanner.scan(
        io.read_buf,
        |tag, _, _| want_server(track, tag),
        |msg| {
            if track {
                ps.on_server_message(prepared, msg.tag, msg.body, msg.at);
            }
            if msg.tag != b'Z' {
                let ignored = rule.on_server(msg.tag);
                if track && ignored > 0 {
                    ps.pipeline.forget_syncs(ignored);
                }
            }
            match msg.tag {
                b'Z' => {
                    let status = TxStatus::of_ready_body(msg.body);
                    verdict = rule.on_ready(status, mode, client_done);
                    timing.ready(now.get(), status, rule.pending() > 0, stats);
                    match verdict {
                        Verdict::Continue => {}
                        Verdict::Release => return Flow::StopAfter,
                        // The client gets the error in place of this ReadyForQuery; the server,
                        // left with it unread, is closed rather than reused.
                        Verdict::StatementModeViolation => return Flow::StopBefore,
                    }
                }
                b'S' => {
                    if let Ok((name, value)) = reply::parameter_status(msg.body) {
                        // The client is told this value, so the server and the client now
                        // agree on it.
                        client_params.set(name, value);
                        server_params.set(name, value);
                    }
                }
                _ => {}
            }
            Flow::Continue
        },
    );
    let scanned = scanned.map_err(|_| RelayEnd::ServerGone)?;
    if track && verdict == Verdict::Continue {
        ps.insert_due_replies(scanned.consumed, io.scanner.at_boundary());
    }
    let queued = scanned.consumed > 0 || !ps.splice.is_empty();
    if ps.splice.is_empty() {
        if scanned.consumed > 0 {
            r.down.direct(scanned.consumed);
            stats.sent(scanned.consumed);
        }
    } else {
        let batch = io.read_buf.get(..scanned.consumed).unwrap_or_default();
        let before = ps.out_back.len();
        ps.splice.apply(batch, batch.len(), &mut ps.out_back);
        stats.sent(ps.out_back.len() - before);
        io.read_buf.advance(scanned.consumed);
        r.down.busy = true;
    }
    r.ending = match verdict {
        Verdict::Continue => None,
        Verdict::Release => Some(Ending::Release),
        Verdict::StatementModeViolation => Some(Ending::StatementMode),
    };
    Ok(queued)
}
