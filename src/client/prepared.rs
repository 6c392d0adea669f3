//! Protocol-level prepared statements under transaction pooling (`max_prepared_statements`).
//!
//! Owns: the process-wide registry that gives every distinct statement (query text + parameter
//! types) one pooler name, each client's own names for them, and the [`Pipeline`] of responses
//! the server owes — so that a Parse the server does not need is answered by the pooler, a
//! Parse the server needs but the client did not send is swallowed, and Close of a client name
//! never reaches the server.
//!
//! Invariants: a server's `PreparedSet` (`server/prepared.rs`) lists exactly the statements the server really has
//! (entries for Parses that fail or that the server skips after an error are removed, and a
//! statement whose eviction Close the server skipped is listed again); a client's names change
//! only through messages the server carries out, as in PostgreSQL; memory is bounded by
//! `MAX_PER_CLIENT` names per client, and registry entries die with the last client using them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;

use crate::protocol::backend::{message, put_cstr};

/// Names one client may keep prepared at once; beyond it, Parse is refused.
pub const MAX_PER_CLIENT: usize = 10_000;

/// A statement as the servers know it.
#[derive(Debug)]
pub struct Statement {
    /// Process-unique id (the server-side name is derived from it).
    pub id: u64,
    /// The whole Parse message with the pooler's name, ready to send.
    parse_message: Bytes,
    key: Bytes,
}

impl Statement {
    /// The server-side name.
    pub fn server_name(id: u64) -> String {
        format!("pgsluice_{id}")
    }
}

/// Statements by text, shared by every client.
#[derive(Debug, Default)]
pub struct StatementRegistry {
    map: Mutex<HashMap<Bytes, Weak<Statement>>>,
    next_id: AtomicU64,
}

impl StatementRegistry {
    /// The statement for a Parse body's text and parameter types (everything after the name).
    pub fn intern(&self, key: &[u8]) -> Arc<Statement> {
        let mut map = self.map.lock();
        if let Some(existing) = map.get(key).and_then(Weak::upgrade) {
            return existing;
        }
        if map.len() > 1024 && map.len().is_power_of_two() {
            // Amortised clean-up of statements no client uses any more.
            map.retain(|_, w| w.strong_count() > 0);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let key = Bytes::copy_from_slice(key);
        let mut parse = BytesMut::with_capacity(key.len() + 32);
        message(&mut parse, b'P', |b| {
            put_cstr(b, &Statement::server_name(id));
            b.put_slice(&key);
        });
        let statement = Arc::new(Statement {
            id,
            parse_message: parse.freeze(),
            key: key.clone(),
        });
        map.insert(key, Arc::downgrade(&statement));
        statement
    }

    /// Statements alive.
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the server owes for a message sent to it, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A client Parse (with the statement id if it is a pooler-named one).
    Parse(Option<u64>),
    /// A Parse the pooler added: its ParseComplete is not the client's.
    InjectedParse(u64),
    /// A Close the pooler added (eviction of this statement).
    InjectedClose(u64),
    /// Bind.
    Bind,
    /// Describe of a statement: ParameterDescription then RowDescription/NoData.
    DescribeStatement,
    /// Describe of a portal.
    DescribePortal,
    /// Execute.
    Execute,
    /// A client Close.
    Close,
    /// Sync.
    Sync,
    /// Query or FunctionCall: everything up to ReadyForQuery.
    Query,
    /// A client's `DEALLOCATE name` of one of its own names, rewritten by the pooler to
    /// [`DEALLOCATE_REWRITE`]: the first CommandComplete (`PREPARE`) is not the client's.
    Deallocate,
    /// ParseComplete the pooler owes the client (the server already had the statement).
    SyntheticParseComplete,
    /// CloseComplete the pooler owes the client (Close of a client name).
    SyntheticCloseComplete,
}

impl Expect {
    fn completed_by(self, tag: u8) -> bool {
        match self {
            Expect::Parse(_) | Expect::InjectedParse(_) => tag == b'1',
            Expect::Bind => tag == b'2',
            Expect::DescribeStatement | Expect::DescribePortal => tag == b'T' || tag == b'n',
            Expect::Execute => matches!(tag, b'C' | b'I' | b's'),
            Expect::Close | Expect::InjectedClose(_) => tag == b'3',
            Expect::Sync | Expect::Query | Expect::Deallocate => tag == b'Z',
            Expect::SyntheticParseComplete | Expect::SyntheticCloseComplete => false,
        }
    }

    /// Whether the message changed one of the client's names (named Parse, Close of a name):
    /// such changes are undone when the server skips or fails the message.
    fn changes_name(self) -> bool {
        matches!(
            self,
            Expect::Parse(Some(_))
                | Expect::SyntheticParseComplete
                | Expect::SyntheticCloseComplete
        )
    }

    /// The bytes of a pooler-made response.
    pub fn synthetic_bytes(self) -> Option<&'static [u8]> {
        match self {
            Expect::SyntheticParseComplete => Some(b"1\0\0\0\x04"),
            Expect::SyntheticCloseComplete => Some(b"3\0\0\0\x04"),
            _ => None,
        }
    }
}

/// What to do with one server message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerAction {
    /// Relay it.
    Forward,
    /// Swallow it (the reply to a pooler-added message).
    Drop,
}

/// A change to one of the client's names, kept until the server has carried out (or skipped)
/// the message that made it.
#[derive(Debug)]
pub struct NameChange {
    /// The client's name.
    pub name: String,
    /// What the name meant before (restored if the message is skipped or fails).
    pub previous: Option<Arc<Statement>>,
}

/// What an error made the server skip, for the caller to undo; reported newest first, so that
/// undoing them in that order restores the state before the first skipped message.
#[derive(Debug)]
pub enum Skipped {
    /// A Parse of this statement was not carried out: the server does not have it.
    Parse(u64),
    /// An eviction Close of this statement was not carried out: the server still has it.
    Close(u64),
    /// A client's name change that PostgreSQL would not have made.
    Name(NameChange),
}

/// The responses owed by the server, and the server's error-skip state.
#[derive(Debug, Default)]
pub struct Pipeline {
    queue: VecDeque<Expect>,
    /// One entry per queued message that [`Expect::changes_name`], in the same order.
    changes: VecDeque<NameChange>,
    /// After an ErrorResponse the server ignores everything up to the next Sync.
    skipping: bool,
}

impl Pipeline {
    /// Whether the server is discarding messages until a Sync.
    pub fn skipping(&self) -> bool {
        self.skipping
    }

    /// Records a message sent to the server (or a synthetic reply owed to the client).
    pub fn push(&mut self, expect: Expect) {
        debug_assert!(!expect.changes_name(), "use push_change");
        if expect == Expect::Sync {
            self.skipping = false;
        }
        self.queue.push_back(expect);
    }

    /// Records a message that changed a client name (see [`Expect::changes_name`]).
    pub fn push_change(&mut self, expect: Expect, change: NameChange) {
        debug_assert!(expect.changes_name());
        self.queue.push_back(expect);
        self.changes.push_back(change);
    }

    /// Removes the head of the queue; a name change it carried is now final.
    fn pop_front(&mut self) -> Option<Expect> {
        let head = self.queue.pop_front()?;
        if head.changes_name() {
            self.changes.pop_front();
        }
        Some(head)
    }

    /// Pops pooler-made replies that are due now, i.e. at the head of the queue.
    pub fn pop_synthetic(&mut self) -> Option<&'static [u8]> {
        let bytes = self.queue.front().and_then(|e| e.synthetic_bytes())?;
        self.pop_front();
        Some(bytes)
    }

    /// Forgets the first `n` Syncs queued behind the head (Syncs a server in copy-in mode
    /// ignores: see `release::ReleaseRule::on_server`).
    pub fn forget_syncs(&mut self, mut n: usize) {
        let mut i = 1;
        while n > 0 && i < self.queue.len() {
            if self.queue.get(i) == Some(&Expect::Sync) {
                self.queue.remove(i);
                n -= 1;
            } else {
                i += 1;
            }
        }
    }

    /// Whether a pooler-made reply is due now.
    pub fn has_synthetic(&self) -> bool {
        self.queue
            .front()
            .is_some_and(|e| e.synthetic_bytes().is_some())
    }

    /// Accounts for one server message; after an error, `undo` is called with what the server
    /// did not carry out, newest first.
    pub fn on_server_message(&mut self, tag: u8, mut undo: impl FnMut(Skipped)) -> ServerAction {
        let Some(&head) = self.queue.front() else {
            return ServerAction::Forward;
        };
        if head == Expect::Deallocate && tag == b'C' {
            // `PREPARE`; the `DEALLOCATE` that follows is the client's.
            if let Some(front) = self.queue.front_mut() {
                *front = Expect::Query;
            }
            return ServerAction::Drop;
        }
        if tag == b'E' && !matches!(head, Expect::Query | Expect::Deallocate) {
            let mut skipped = self.skip_to_sync();
            while let Some(s) = skipped.pop() {
                undo(s);
            }
            return ServerAction::Forward;
        }
        if !head.completed_by(tag) {
            return ServerAction::Forward;
        }
        self.pop_front();
        match head {
            Expect::InjectedParse(_) | Expect::InjectedClose(_) => ServerAction::Drop,
            _ => ServerAction::Forward,
        }
    }

    fn skip_to_sync(&mut self) -> Vec<Skipped> {
        let mut skipped = Vec::new();
        while let Some(&head) = self.queue.front() {
            if head == Expect::Sync {
                return skipped;
            }
            self.queue.pop_front();
            match head {
                Expect::Parse(Some(id)) | Expect::InjectedParse(id) => {
                    skipped.push(Skipped::Parse(id));
                }
                Expect::InjectedClose(id) => skipped.push(Skipped::Close(id)),
                _ => {}
            }
            if head.changes_name() {
                if let Some(change) = self.changes.pop_front() {
                    skipped.push(Skipped::Name(change));
                }
            }
        }
        self.skipping = true;
        skipped
    }

    /// Whether nothing is owed.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drops all state (the server was released or replaced).
    pub fn reset(&mut self) {
        self.queue.clear();
        self.changes.clear();
        self.skipping = false;
    }
}

/// A client holds [`MAX_PER_CLIENT`] names already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitReached;

/// One client's statement names.
#[derive(Debug, Default)]
pub struct ClientStatements {
    map: HashMap<String, Arc<Statement>>,
}

impl ClientStatements {
    /// The statement behind a client name.
    pub fn get(&self, name: &str) -> Option<&Arc<Statement>> {
        self.map.get(name)
    }

    /// Binds a client name to a statement; `Err` if the client is at its limit, else what the
    /// name meant before.
    pub fn insert(
        &mut self,
        name: &str,
        statement: Arc<Statement>,
    ) -> Result<Option<Arc<Statement>>, LimitReached> {
        if self.map.len() >= MAX_PER_CLIENT && !self.map.contains_key(name) {
            return Err(LimitReached);
        }
        Ok(self.map.insert(name.to_owned(), statement))
    }

    /// Forgets a client name; returns what it meant.
    pub fn remove(&mut self, name: &str) -> Option<Arc<Statement>> {
        self.map.remove(name)
    }

    /// Undoes a change the server did not carry out.
    pub fn undo(&mut self, change: NameChange) {
        match change.previous {
            Some(statement) => {
                self.map.insert(change.name, statement);
            }
            None => {
                self.map.remove(&change.name);
            }
        }
    }

    /// Forgets all names (DISCARD ALL / DEALLOCATE ALL).
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Names held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// What a client's `DEALLOCATE name` becomes when `name` is one of its protocol-level names (the
/// server knows the statement by another name, and keeps it for other clients): a statement
/// that answers `DEALLOCATE` the same way, in or out of a transaction, preceded by one whose
/// CommandComplete the pooler swallows.
pub const DEALLOCATE_REWRITE: &str =
    "PREPARE pgsluice_deallocate AS SELECT; DEALLOCATE pgsluice_deallocate";

/// The statement name of a simple-query body (NUL included) that is exactly
/// `DEALLOCATE [PREPARE] name` (any case, optional `;`), as PostgreSQL resolves it: unquoted
/// names fold to lower case. `None` for anything else, including `DEALLOCATE ALL`.
pub fn deallocate_target(body: &[u8]) -> Option<String> {
    // Cheap refusal of every other query before any UTF-8 check: names are at most 63 bytes.
    let head = body.trim_ascii_start();
    if head.len() > 256 || !head.get(..10)?.eq_ignore_ascii_case(b"deallocate") {
        return None;
    }
    let sql = std::str::from_utf8(head.strip_suffix(b"\0")?).ok()?.trim();
    let sql = sql.strip_suffix(';').unwrap_or(sql).trim_end();
    let rest = strip_keyword(sql, "deallocate")?;
    let rest = strip_keyword(rest, "prepare").unwrap_or(rest);
    let name = if let Some(quoted) = rest.strip_prefix('"') {
        let inner = quoted.strip_suffix('"')?;
        // Inside quotes, a doubled quote is one quote; a lone one ends the name early.
        if inner.replace("\"\"", "").contains('"') {
            return None;
        }
        inner.replace("\"\"", "\"")
    } else {
        let mut chars = rest.chars();
        let first = chars.next()?;
        if !(first.is_alphabetic() || first == '_')
            || !chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
            || rest.eq_ignore_ascii_case("all")
        {
            return None;
        }
        // PostgreSQL folds unquoted identifiers to lower case in ASCII only.
        rest.to_ascii_lowercase()
    };
    (!name.is_empty()).then_some(name)
}

/// `text` after a leading keyword (any case) and the whitespace that must follow it.
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    let rest = text.get(keyword.len()..)?;
    (head.eq_ignore_ascii_case(keyword) && rest.starts_with(char::is_whitespace))
        .then(|| rest.trim_start())
}

/// The whole Parse message for `statement`.
pub fn parse_message(statement: &Statement) -> &[u8] {
    &statement.parse_message
}

/// The text key of `statement` (query and parameter types).
pub fn statement_key(statement: &Statement) -> &[u8] {
    &statement.key
}

/// Writes a Bind/Describe/Close whose statement name is replaced: `prefix` (portal name for Bind,
/// kind byte for Describe/Close), the pooler name, then `rest`.
pub fn write_renamed(out: &mut BytesMut, tag: u8, prefix: &[u8], id: u64, rest: &[u8]) {
    message(out, tag, |b| {
        b.put_slice(prefix);
        put_cstr(b, &Statement::server_name(id));
        b.put_slice(rest);
    });
}

/// Writes the head of a Bind (or other message) whose statement name is replaced: the header,
/// `prefix` and its NUL, the pooler name; `rest` more body bytes follow, as they are.
pub fn write_renamed_head(out: &mut BytesMut, tag: u8, prefix: &[u8], id: u64, rest: usize) {
    let name = Statement::server_name(id);
    let len = 4 + prefix.len() + 1 + name.len() + 1 + rest;
    out.put_u8(tag);
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    out.put_slice(prefix);
    out.put_u8(0);
    put_cstr(out, &name);
}

/// Writes Close of a pooler-named statement.
pub fn write_close(out: &mut BytesMut, id: u64) {
    message(out, b'C', |b| {
        b.put_u8(b'S');
        put_cstr(b, &Statement::server_name(id));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_shares_and_frees() {
        let registry = StatementRegistry::default();
        let a = registry.intern(b"select 1\0\0\0");
        let b = registry.intern(b"select 1\0\0\0");
        let c = registry.intern(b"select 2\0\0\0");
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert!(parse_message(&a).starts_with(b"P"));
        drop((a, b, c));
        assert!(registry.is_empty());
    }

    #[test]
    fn pipeline_swallows_injected_and_emits_synthetic_in_order() {
        let mut p = Pipeline::default();
        p.push_change(Expect::SyntheticParseComplete, change("a"));
        p.push(Expect::InjectedParse(7));
        p.push(Expect::Bind);
        p.push(Expect::Execute);
        p.push(Expect::Sync);
        assert_eq!(p.pop_synthetic(), Some(&b"1\0\0\0\x04"[..]));
        assert_eq!(p.pop_synthetic(), None);
        assert_eq!(p.on_server_message(b'1', |_| {}), ServerAction::Drop);
        assert_eq!(p.on_server_message(b'2', |_| {}), ServerAction::Forward);
        assert_eq!(p.on_server_message(b'D', |_| {}), ServerAction::Forward);
        assert_eq!(p.on_server_message(b'C', |_| {}), ServerAction::Forward);
        assert_eq!(p.on_server_message(b'Z', |_| {}), ServerAction::Forward);
        assert!(p.is_empty());
    }

    #[test]
    fn deallocate_statements_are_recognised() {
        let target = |sql: &str| deallocate_target(format!("{sql}\0").as_bytes());
        assert_eq!(target("DEALLOCATE _pg3_2").as_deref(), Some("_pg3_2"));
        assert_eq!(target("  deallocate prepare S_1 ;").as_deref(), Some("s_1"));
        assert_eq!(target("DEALLOCATE \"S_1\"").as_deref(), Some("S_1"));
        assert_eq!(target("DEALLOCATE \"a\"\"b\"").as_deref(), Some("a\"b"));
        assert_eq!(target("DEALLOCATE prepare").as_deref(), Some("prepare"));
        assert_eq!(target("DEALLOCATE Ä_x$1").as_deref(), Some("Ä_x$1"));
        for other in [
            "DEALLOCATE ALL",
            "deallocate prepare all;",
            "DEALLOCATE a; select 1",
            "DEALLOCATE \"a\" b",
            "DEALLOCATEx a",
            "select 1",
            "DEALLOCATE",
            "DEALLOCATE \"\"",
            "DEALLOCATE 1a",
            "DEALLOCATE $1",
        ] {
            assert_eq!(target(other), None, "{other}");
        }
    }

    #[test]
    fn deallocate_rewrite_swallows_the_prepare_reply() {
        let mut p = Pipeline::default();
        p.push(Expect::Deallocate);
        assert_eq!(p.on_server_message(b'C', |_| {}), ServerAction::Drop);
        assert_eq!(p.on_server_message(b'C', |_| {}), ServerAction::Forward);
        assert_eq!(p.on_server_message(b'Z', |_| {}), ServerAction::Forward);
        assert!(p.is_empty());
        // In a failed transaction the PREPARE fails: the error is the client's, as is the rest.
        p.push(Expect::Deallocate);
        assert_eq!(p.on_server_message(b'E', |_| {}), ServerAction::Forward);
        assert_eq!(p.on_server_message(b'Z', |_| {}), ServerAction::Forward);
        assert!(p.is_empty());
    }

    fn change(name: &str) -> NameChange {
        NameChange {
            name: name.to_owned(),
            previous: None,
        }
    }

    #[test]
    fn completed_changes_are_final() {
        let mut p = Pipeline::default();
        p.push_change(Expect::SyntheticCloseComplete, change("a"));
        p.push_change(Expect::Parse(Some(1)), change("b"));
        p.push(Expect::Sync);
        assert!(p.pop_synthetic().is_some());
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.on_server_message(b'1', |_| {}), ServerAction::Forward);
        assert!(p.changes.is_empty());
        let mut undone = 0;
        p.on_server_message(b'E', |_| undone += 1);
        assert_eq!(undone, 0);
    }

    #[test]
    fn error_skips_to_sync_and_forgets_unexecuted_parses() {
        let mut p = Pipeline::default();
        p.push_change(Expect::Parse(Some(1)), change("a"));
        p.push(Expect::Bind);
        p.push(Expect::InjectedClose(3));
        p.push(Expect::InjectedParse(2));
        p.push_change(Expect::SyntheticParseComplete, change("b"));
        p.push(Expect::Sync);
        let mut undone = Vec::new();
        assert_eq!(
            p.on_server_message(b'E', |s| undone.push(format!("{s:?}"))),
            ServerAction::Forward
        );
        // Newest first.
        let names: Vec<&str> = undone.iter().map(|s| &s[..s.find('(').unwrap()]).collect();
        assert_eq!(names, ["Name", "Parse", "Close", "Name", "Parse"]);
        assert!(undone[0].contains("\"b\"") && undone[3].contains("\"a\""));
        assert!(undone[1].contains("Parse(2)") && undone[2].contains("Close(3)"));
        assert!(p.changes.is_empty());
        assert_eq!(p.pop_synthetic(), None);
        assert_eq!(p.on_server_message(b'Z', |_| {}), ServerAction::Forward);
        assert!(p.is_empty() && !p.skipping());
        // An error before the Sync is sent: the server skips until it arrives.
        p.push(Expect::Bind);
        p.on_server_message(b'E', |_| {});
        assert!(p.skipping());
        p.push(Expect::Sync);
        assert!(!p.skipping());
    }
}
