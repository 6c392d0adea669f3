//! The per-client side of prepared-statement tracking in the relay: renaming client statement
//! names to pooler names on the way to the server, adding the Parse (and eviction Close) a server
//! is missing, and on the way back swallowing replies to what the pooler added and inserting the
//! replies the pooler owes (see [`super::prepared`] for the bookkeeping).
//!
//! Only named Parse, Describe and Close from the client, a Query short enough to be `DEALLOCATE
//! name`, and ParseComplete, CloseComplete and CommandComplete from the server, are read whole;
//! of a Bind only its head (portal and statement names) is read, so its parameter values stream;
//! everything else keeps the header-only path. A Query is never buffered for its length: a long
//! one cannot be `DEALLOCATE name` and streams through unseen.

use bytes::BytesMut;

use super::errors::ClientError;
use super::prepared::{
    ClientStatements, DEALLOCATE_REWRITE, Expect, NameChange, Pipeline, ServerAction, Skipped,
    Statement, StatementRegistry, deallocate_target, parse_message, write_close, write_renamed,
    write_renamed_head,
};
use super::splice::Splice;
use crate::protocol::frontend;
use crate::protocol::scan::{Msg, WHOLE_MAX, Want};
use crate::protocol::wire::split_cstr;
use crate::server::PreparedSet;
use crate::stats::PoolStats;

/// A client's prepared-statement state and the buffers its rewrites use.
#[derive(Debug, Default)]
pub struct PreparedState {
    /// The client's statement names.
    pub statements: ClientStatements,
    /// Replies the current server owes.
    pub pipeline: Pipeline,
    /// Edits to the batch being relayed.
    pub splice: Splice,
    /// The rewritten client batch, on its way to the server.
    pub out: BytesMut,
    /// The rewritten server batch (plus replies the pooler owes), on its way to the client.
    pub out_back: BytesMut,
}

/// What the client-side visitor needs besides the state.
pub struct ClientSide<'a> {
    /// Process-wide statements.
    pub registry: &'a StatementRegistry,
    /// Statements on the server the client holds.
    pub server: &'a mut PreparedSet,
    /// `max_prepared_statements`.
    pub capacity: usize,
    /// Counters.
    pub stats: &'a PoolStats,
}

/// How much of a Bind the rewrite reads at least, and how much more it asks for at a time
/// while the portal and statement names are not both there yet.
pub const BIND_HEAD: usize = 1024;

/// The longest Query read whole, to spot `DEALLOCATE name` (see `deallocate_target`).
const DEALLOCATE_MAX: usize = 300;

/// How much of a client message's body the rewrite needs (`head`: what is buffered of it).
pub fn client_want(tag: u8, len: usize, head: &[u8]) -> Want {
    match tag {
        // The unnamed statement goes through as it is; a named one is interned whole.
        b'P' => match head.first() {
            None => Want::Head(1),
            Some(0) => Want::Skip,
            Some(_) => Want::Whole,
        },
        b'B' => bind_want(head),
        b'D' | b'C' => Want::Whole,
        b'Q' if len <= DEALLOCATE_MAX => Want::Whole,
        _ => Want::Skip,
    }
}

/// A Bind's portal and statement names, however long (up to `scan::WHOLE_MAX`); its
/// parameters stream.
fn bind_want(head: &[u8]) -> Want {
    let names_end = split_cstr(head)
        .and_then(|(portal, rest)| Some(portal.len() + split_cstr(rest)?.0.len() + 2));
    match names_end {
        Some(end) => Want::Head(end.max(BIND_HEAD)),
        // Names this long are refused (or, if the whole Bind is shorter, it is read whole).
        None if head.len() >= WHOLE_MAX => Want::Whole,
        None => Want::Head(head.len() + BIND_HEAD),
    }
}

/// Server messages whose bodies the rewrite needs (besides ReadyForQuery and ParameterStatus).
pub fn server_wants_body(tag: u8) -> bool {
    matches!(tag, b'1' | b'3' | b'C')
}

impl PreparedState {
    /// Makes sure the server has `statement`, adding Close (eviction) and Parse before `at`.
    fn ensure(&mut self, side: &mut ClientSide<'_>, statement: &Statement, at: usize) {
        if side.server.touch(statement.id) {
            return;
        }
        self.prepare_on_server(side, statement, at);
        self.pipeline.push(Expect::InjectedParse(statement.id));
    }

    fn prepare_on_server(&mut self, side: &mut ClientSide<'_>, statement: &Statement, at: usize) {
        // Usually one eviction at most; more after the server skipped an eviction Close.
        while let Some(evicted) = side.server.evict_for(side.capacity) {
            self.splice.insert_with(at, |b| write_close(b, evicted));
            self.pipeline.push(Expect::InjectedClose(evicted));
        }
        side.server.insert(statement.id);
        self.splice
            .insert_with(at, |b| b.extend_from_slice(parse_message(statement)));
        side.stats.server_parse();
    }

    /// Accounts for (and maybe rewrites) one client message at offset `msg.at` of the batch.
    pub fn on_client_message(
        &mut self,
        side: &mut ClientSide<'_>,
        msg: Msg<'_>,
    ) -> Result<(), ClientError> {
        let Msg { tag, body, at, .. } = msg;
        if self.pipeline.skipping() && tag != b'S' {
            // The server discards everything up to Sync after an error, and answers nothing.
            return Ok(());
        }
        let whole = body.len() + 5;
        match tag {
            b'P' => self.on_parse(side, body, at, whole)?,
            b'B' => {
                self.on_bind(side, msg)?;
                self.pipeline.push(Expect::Bind);
            }
            b'D' => {
                let expect = match body.split_first() {
                    Some((b'S', rest)) => {
                        let name = split_cstr(rest).map_or(&[][..], |(name, _)| name);
                        if let Some(statement) = self.lookup(name)? {
                            self.ensure(side, &statement, at);
                            self.splice.insert_with(at, |b| {
                                write_renamed(b, b'D', b"S", statement.id, &[]);
                            });
                            self.splice.drop_range(at, whole);
                        }
                        Expect::DescribeStatement
                    }
                    _ => Expect::DescribePortal,
                };
                self.pipeline.push(expect);
            }
            b'C' => {
                let client_name = match body.split_first() {
                    Some((b'S', rest)) => split_cstr(rest)
                        .map(|(name, _)| name)
                        .filter(|n| !n.is_empty()),
                    _ => None,
                };
                match client_name
                    .and_then(|n| std::str::from_utf8(n).ok())
                    .filter(|n| self.statements.get(n).is_some())
                {
                    Some(name) => {
                        // The server keeps the statement for other clients; only this name goes.
                        let previous = self.statements.remove(name);
                        self.splice.drop_range(at, whole);
                        self.pipeline.push_change(
                            Expect::SyntheticCloseComplete,
                            NameChange {
                                name: name.to_owned(),
                                previous,
                            },
                        );
                    }
                    None => self.pipeline.push(Expect::Close),
                }
            }
            b'E' => self.pipeline.push(Expect::Execute),
            b'S' => self.pipeline.push(Expect::Sync),
            b'Q' => {
                match Some(body)
                    .filter(|_| msg.is_whole())
                    .and_then(deallocate_target)
                    .filter(|n| self.statements.get(n).is_some())
                {
                    Some(name) => {
                        // SQL DEALLOCATE of a protocol-level name (psycopg with libpq < 17
                        // evicts this way): only this client's name goes, as with Close.
                        self.statements.remove(&name);
                        self.splice
                            .insert_with(at, |b| frontend::query(b, DEALLOCATE_REWRITE));
                        self.splice.drop_range(at, whole);
                        self.pipeline.push(Expect::Deallocate);
                    }
                    None => self.pipeline.push(Expect::Query),
                }
            }
            b'F' => self.pipeline.push(Expect::Query),
            _ => {}
        }
        Ok(())
    }

    /// A Bind of a client's named statement: its head (portal and name) is replaced by one with
    /// the pooler's name; the parameters behind it stream through unchanged.
    fn on_bind(&mut self, side: &mut ClientSide<'_>, msg: Msg<'_>) -> Result<(), ClientError> {
        let names =
            split_cstr(msg.body).and_then(|(portal, rest)| Some((portal, split_cstr(rest)?.0)));
        let Some((portal, name)) = names else {
            if msg.is_whole() {
                // Malformed: the server answers it.
                return Ok(());
            }
            return Err(ClientError::Protocol(
                "Bind message names too long".to_owned(),
            ));
        };
        let Some(statement) = self.lookup(name)? else {
            return Ok(());
        };
        self.ensure(side, &statement, msg.at);
        let head = portal.len() + name.len() + 2;
        let rest = msg.len - head;
        self.splice.insert_with(msg.at, |b| {
            write_renamed_head(b, b'B', portal, statement.id, rest);
        });
        self.splice.drop_range(msg.at, 5 + head);
        side.stats.bind();
        Ok(())
    }

    /// The statement a Bind or Describe names: `None` for the unnamed statement (it goes to the
    /// server as it is). A name this client never prepared ends the session, as in PgBouncer:
    /// the pooler cannot answer it in place without breaking a pipeline behind it.
    fn lookup(&self, name: &[u8]) -> Result<Option<std::sync::Arc<Statement>>, ClientError> {
        if name.is_empty() {
            return Ok(None);
        }
        let found = std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.statements.get(n));
        if let Some(statement) = found {
            return Ok(Some(std::sync::Arc::clone(statement)));
        }
        tracing::info!(
            "prepared statement '{}' not found",
            String::from_utf8_lossy(name)
        );
        Err(ClientError::PreparedStatementMissing)
    }

    fn on_parse(
        &mut self,
        side: &mut ClientSide<'_>,
        body: &[u8],
        at: usize,
        whole: usize,
    ) -> Result<(), ClientError> {
        let Some((name, key)) = split_cstr(body) else {
            self.pipeline.push(Expect::Parse(None));
            return Ok(());
        };
        let Some(name) = std::str::from_utf8(name).ok().filter(|n| !n.is_empty()) else {
            self.pipeline.push(Expect::Parse(None));
            return Ok(());
        };
        // As PgBouncer: a name the client still holds (or whose Parse is still on its way) is
        // not redefined; the session ends, since an error in place would break a pipeline.
        if self.statements.get(name).is_some() {
            tracing::error!("prepared statement '{name}' was already prepared");
            return Err(ClientError::PreparedNameInUse);
        }
        let statement = side.registry.intern(key);
        let Ok(previous) = self
            .statements
            .insert(name, std::sync::Arc::clone(&statement))
        else {
            return Err(ClientError::Protocol(format!(
                "too many prepared statements (more than {})",
                super::prepared::MAX_PER_CLIENT
            )));
        };
        side.stats.client_parse();
        let change = NameChange {
            name: name.to_owned(),
            previous,
        };
        if side.server.touch(statement.id) {
            self.pipeline
                .push_change(Expect::SyntheticParseComplete, change);
        } else {
            self.prepare_on_server(side, &statement, at);
            self.pipeline
                .push_change(Expect::Parse(Some(statement.id)), change);
        }
        self.splice.drop_range(at, whole);
        Ok(())
    }

    /// Accounts for one server message at offset `at` of the batch: inserts the replies the
    /// pooler owes before it, and swallows it if it answers something the pooler added.
    pub fn on_server_message(&mut self, server: &mut PreparedSet, tag: u8, body: &[u8], at: usize) {
        while let Some(bytes) = self.pipeline.pop_synthetic() {
            self.splice.insert_with(at, |b| b.extend_from_slice(bytes));
        }
        let statements = &mut self.statements;
        let action = self
            .pipeline
            .on_server_message(tag, |skipped| match skipped {
                Skipped::Parse(id) => server.remove(id),
                Skipped::Close(id) => server.restore(id),
                // PostgreSQL does not change a name in a message it skips or fails.
                Skipped::Name(change) => statements.undo(change),
            });
        if action == ServerAction::Drop {
            self.splice.drop_range(at, body.len() + 5);
        }
        if tag == b'C' && (body.starts_with(b"DISCARD ALL") || body.starts_with(b"DEALLOCATE ALL"))
        {
            // The server dropped every statement, and the client believes its names are gone.
            server.clear();
            self.statements.clear();
        }
    }

    /// After a batch of server messages ending at `end`: inserts there the replies the pooler
    /// owes that are due after the last message. Only when the server's stream is at a message
    /// boundary there (`at_boundary`): when the last message is cut (a RowDescription longer
    /// than one read), a reply inserted at `end` would land inside it; the replies then wait
    /// for the next message or batch.
    pub fn insert_due_replies(&mut self, end: usize, at_boundary: bool) {
        if !at_boundary {
            return;
        }
        while let Some(bytes) = self.pipeline.pop_synthetic() {
            self.splice.insert_with(end, |b| b.extend_from_slice(bytes));
        }
    }

    /// Appends the replies the pooler owes that are due now to `out_back`; returns whether
    /// there were any. `server_at_boundary` says whether the stream from the server to the
    /// client is between messages: if it is not (a message is half relayed), nothing is taken,
    /// and the replies go out with the server's next messages.
    pub fn take_due_replies(&mut self, server_at_boundary: bool) -> bool {
        if !server_at_boundary {
            return false;
        }
        let mut any = false;
        while let Some(bytes) = self.pipeline.pop_synthetic() {
            self.out_back.extend_from_slice(bytes);
            any = true;
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a [`PreparedState`] the way the relay does, one batch at a time.
    #[derive(Default)]
    struct Relay {
        registry: StatementRegistry,
        server: PreparedSet,
        stats: PoolStats,
        ps: PreparedState,
    }

    fn msg(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = parts.concat();
        let mut out = vec![tag];
        out.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn whole(m: &[u8], at: usize) -> Msg<'_> {
        Msg {
            tag: m[0],
            body: &m[5..],
            len: m.len() - 5,
            at,
        }
    }

    fn parse(name: &str, sql: &str) -> Vec<u8> {
        msg(
            b'P',
            &[name.as_bytes(), b"\0", sql.as_bytes(), b"\0", &[0, 0]],
        )
    }

    fn id_of(relay: &Relay, sql: &str) -> u64 {
        relay.registry.intern(format!("{sql}\0\0\0").as_bytes()).id
    }

    impl Relay {
        /// Client messages in one batch; returns what goes to the server.
        fn client(&mut self, capacity: usize, messages: &[Vec<u8>]) -> Vec<u8> {
            let batch = messages.concat();
            self.ps.splice.clear();
            let mut side = ClientSide {
                registry: &self.registry,
                server: &mut self.server,
                capacity,
                stats: &self.stats,
            };
            let mut at = 0;
            for m in messages {
                self.ps.on_client_message(&mut side, whole(m, at)).unwrap();
                at += m.len();
            }
            let mut out = BytesMut::new();
            self.ps.splice.apply(&batch, batch.len(), &mut out);
            out.to_vec()
        }

        /// Server messages in one batch; returns the tags that reach the client.
        fn server(&mut self, messages: &[Vec<u8>]) -> Vec<u8> {
            let batch = messages.concat();
            self.ps.splice.clear();
            let mut at = 0;
            for m in messages {
                self.ps
                    .on_server_message(&mut self.server, m[0], &m[5..], at);
                at += m.len();
            }
            let mut out = BytesMut::new();
            self.ps.splice.apply(&batch, batch.len(), &mut out);
            let mut tags = Vec::new();
            let mut rest = &out[..];
            while rest.len() >= 5 {
                tags.push(rest[0]);
                let len = u32::from_be_bytes(rest[1..5].try_into().unwrap());
                rest = &rest[1 + usize::try_from(len).unwrap()..];
            }
            tags
        }
    }

    fn sync() -> Vec<u8> {
        msg(b'S', &[])
    }

    fn ready() -> Vec<u8> {
        msg(b'Z', &[b"I"])
    }

    #[test]
    fn skipped_parse_and_close_leave_names_as_they_were() {
        let mut r = Relay::default();
        r.client(10, &[parse("s0", "select 1"), sync()]);
        assert_eq!(r.server(&[msg(b'1', &[]), ready()]), b"1Z");
        // Describe of the (absent) unnamed statement fails; the Close and Parse behind it are
        // skipped.
        r.client(
            10,
            &[
                msg(b'D', &[b"S\0"]),
                msg(b'C', &[b"Ss0\0"]),
                parse("s1", "select 2"),
                parse("s0", "select 3"),
                sync(),
            ],
        );
        assert_eq!(r.server(&[msg(b'E', &[b"C26000\0\0"]), ready()]), b"EZ");
        assert_eq!(
            r.ps.statements.get("s0").map(|s| s.id),
            Some(id_of(&r, "select 1"))
        );
        assert!(r.ps.statements.get("s1").is_none());
        assert_eq!(r.server.len(), 1);
        assert!(r.server.touch(id_of(&r, "select 1")));
        assert!(!r.server.touch(id_of(&r, "select 2")));
        assert!(!r.server.touch(id_of(&r, "select 3")));
    }

    #[test]
    fn skipped_eviction_close_keeps_the_statement_listed() {
        let mut r = Relay::default();
        r.client(1, &[parse("s0", "select 1"), sync()]);
        r.server(&[msg(b'1', &[]), ready()]);
        // A Bind of the (absent) unnamed statement fails; the eviction of "select 1" behind it
        // is skipped.
        let sent = r.client(
            1,
            &[
                msg(b'B', &[b"\0\0", &[0, 0, 0, 0, 0, 0]]),
                parse("s1", "select 2"),
                sync(),
            ],
        );
        let mut close = BytesMut::new();
        write_close(&mut close, id_of(&r, "select 1"));
        assert!(
            sent.windows(close.len()).any(|w| w == &close[..]),
            "{sent:?}"
        );
        r.server(&[msg(b'E', &[b"C26000\0\0"]), ready()]);
        assert_eq!(r.server.len(), 1);
        assert!(r.server.touch(id_of(&r, "select 1")));
        assert!(!r.server.touch(id_of(&r, "select 2")));
        // The next statement evicts it for real.
        r.client(1, &[parse("s2", "select 4"), sync()]);
        assert_eq!(r.server(&[msg(b'3', &[]), msg(b'1', &[]), ready()]), b"1Z");
        assert_eq!(r.server.len(), 1);
    }

    #[test]
    fn bind_or_describe_of_a_name_never_prepared_ends_the_session() {
        let mut r = Relay::default();
        r.client(10, &[parse("s0", "select 1"), sync()]);
        r.server(&[msg(b'1', &[]), ready()]);
        let mut side = ClientSide {
            registry: &r.registry,
            server: &mut r.server,
            capacity: 10,
            stats: &r.stats,
        };
        for m in [
            msg(b'D', &[b"Snope\0"]),
            msg(b'B', &[b"\0nope\0", &[0, 0, 0, 0, 0, 0]]),
        ] {
            let result = r.ps.on_client_message(&mut side, whole(&m, 0));
            assert!(
                matches!(result, Err(ClientError::PreparedStatementMissing)),
                "{result:?}"
            );
        }
        // A known name and the unnamed statement still pass.
        for m in [msg(b'D', &[b"Ss0\0"]), msg(b'D', &[b"S\0"])] {
            assert!(r.ps.on_client_message(&mut side, whole(&m, 0)).is_ok());
        }
    }

    /// The tags of a well-formed message stream; panics on broken framing.
    fn tags_of(mut rest: &[u8]) -> Vec<u8> {
        let mut tags = Vec::new();
        while !rest.is_empty() {
            let (tag, total) = crate::protocol::frame::complete_frame(rest, 1 << 20)
                .unwrap()
                .expect("whole messages");
            tags.push(tag);
            rest = &rest[total..];
        }
        tags
    }

    /// Found by the `rewrite` fuzz target: a reply the pooler owed after a RowDescription was
    /// inserted where the read ended, inside the RowDescription, when that was longer than one
    /// read.
    #[test]
    fn a_due_reply_waits_while_the_servers_last_message_is_cut() {
        use crate::protocol::scan::{Flow, Scanner};
        let mut r = Relay::default();
        r.client(10, &[parse("s0", "select 1"), sync()]);
        r.server(&[msg(b'1', &[]), ready()]);
        // Describe s0, then the same text under a new name: the server has it, so the pooler
        // owes a ParseComplete right after the RowDescription.
        r.client(
            10,
            &[msg(b'D', &[b"Ss0\0"]), parse("s1", "select 1"), sync()],
        );
        let columns = [&[0, 1][..], "x".repeat(3000).as_bytes(), &[0; 19]].concat();
        let stream = [msg(b't', &[&[0, 0]]), msg(b'T', &[&columns]), ready()].concat();
        let mut scanner = Scanner::new(1 << 20);
        let (mut pending, mut to_client) = (Vec::new(), Vec::new());
        for chunk in stream.chunks(1000) {
            pending.extend_from_slice(chunk);
            r.ps.splice.clear();
            let scanned = scanner
                .scan(
                    &pending,
                    |t, _, _| {
                        if t == b'Z' || server_wants_body(t) {
                            Want::Whole
                        } else {
                            Want::Skip
                        }
                    },
                    |m| {
                        r.ps.on_server_message(&mut r.server, m.tag, m.body, m.at);
                        Flow::Continue
                    },
                )
                .unwrap();
            r.ps.insert_due_replies(scanned.consumed, scanner.at_boundary());
            let mut out = BytesMut::new();
            r.ps.splice
                .apply(&pending[..scanned.consumed], scanned.consumed, &mut out);
            to_client.extend_from_slice(&out);
            pending.drain(..scanned.consumed);
        }
        assert_eq!(tags_of(&to_client), b"tT1Z");
    }

    /// The same for a reply due at once after a client batch: while a server message is half
    /// relayed to the client, it waits.
    #[test]
    fn a_reply_due_after_a_client_batch_waits_for_a_server_message_boundary() {
        let mut r = Relay::default();
        r.client(10, &[parse("s0", "select 1"), sync()]);
        r.server(&[msg(b'1', &[]), ready()]);
        r.client(10, &[parse("s1", "select 1")]);
        assert!(!r.ps.take_due_replies(false));
        assert!(r.ps.take_due_replies(true));
        assert_eq!(&r.ps.out_back[..], b"1\0\0\0\x04");
    }

    #[test]
    fn bind_of_a_named_statement_gets_the_pooler_name() {
        let mut r = Relay::default();
        r.client(10, &[parse("s0", "select $1"), sync()]);
        r.server(&[msg(b'1', &[]), ready()]);
        let params: &[u8] = &[0, 0, 0, 1, 0, 0, 0, 3, b'a', b'b', b'c', 0, 0];
        let sent = r.client(10, &[msg(b'B', &[b"p\0s0\0", params]), sync()]);
        let id = id_of(&r, "select $1");
        let mut expected = BytesMut::new();
        write_renamed(&mut expected, b'B', b"p\0", id, params);
        expected.extend_from_slice(&sync());
        assert_eq!(sent, expected.to_vec());
    }

    #[test]
    fn a_bind_is_read_as_far_as_its_names_however_long() {
        let name = vec![b'a'; 16 * 1024];
        let mut body = b"\0".to_vec();
        body.extend_from_slice(&name);
        body.push(0);
        // Names incomplete: ask for more, a chunk at a time.
        assert_eq!(bind_want(&body[..5000]), Want::Head(5000 + BIND_HEAD));
        assert_eq!(bind_want(&body), Want::Head(body.len()));
        assert_eq!(bind_want(b"\0s0\0"), Want::Head(BIND_HEAD));
    }

    #[test]
    fn sql_deallocate_of_a_protocol_name_is_rewritten() {
        let mut r = Relay::default();
        r.client(10, &[parse("_pg3_0", "select 1"), sync()]);
        r.server(&[msg(b'1', &[]), ready()]);
        let sent = r.client(10, &[msg(b'Q', &[b"DEALLOCATE _pg3_0\0"])]);
        assert_eq!(&sent[5..sent.len() - 1], DEALLOCATE_REWRITE.as_bytes());
        assert!(r.ps.statements.is_empty());
        let tags = r.server(&[
            msg(b'C', &[b"PREPARE\0"]),
            msg(b'C', &[b"DEALLOCATE\0"]),
            ready(),
        ]);
        assert_eq!(tags, b"CZ");
        // Any other DEALLOCATE goes to the server as it is.
        let other = msg(b'Q', &[b"DEALLOCATE _pg3_0\0"]);
        assert_eq!(r.client(10, std::slice::from_ref(&other)), other);
    }
}
