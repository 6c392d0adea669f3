//! Model-based test of the prepared-statement mapping, end to end: several raw-protocol clients
//! send seeded random pipelines of Parse (named and unnamed, the same names and texts across
//! clients), Bind, Describe, Execute, Close, Flush and Sync, with errors in the middle (a Parse of
//! invalid SQL, a division by zero at Execute), plus DISCARD ALL,
//! DEALLOCATE ALL and SQL `DEALLOCATE name` between pipelines, through a transaction-mode pool of two servers that keep at
//! most three statements each. Every reply each client gets is compared, in order, with what a
//! simple model of one PostgreSQL session says it must be: which of ParseComplete, BindComplete,
//! CloseComplete, ParameterDescription/RowDescription (with the types of the client's own
//! statement), DataRow (with the value its statement computes), ErrorResponse (SQLSTATE) and
//! ReadyForQuery, and nothing for the messages PostgreSQL skips after an error until Sync.
//!
//! `PGSLUICE_MODEL_SEED` (first seed) and `PGSLUICE_MODEL_CASES` (how many) rerun or widen it;
//! a failure names its seed, client and pipeline.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw::{error_code, login, message, query, read_message};

const CLIENTS: usize = 4;
const PIPELINES_PER_CLIENT: usize = 60;
const DEFAULT_CASES: u64 = 6;
/// `max_prepared_statements`: fewer than the texts below, so servers evict all the time.
const SERVER_CAPACITY: usize = 3;
/// Statement names every client uses (the same names mean different texts per client).
const NAMES: [&str; 4] = ["s0", "s1", "s2", "__stmt_3__"];

const BOOL: u32 = 16;
const INT8: u32 = 20;
const INT4: u32 = 23;
const TEXT: u32 = 25;

/// A statement text, its declared parameter types, and the types PostgreSQL reports.
struct Text {
    sql: &'static str,
    declared: &'static [u32],
    params: &'static [u32],
    columns: &'static [u32],
}

/// The last two differ only in the declared parameter type: the pooler must keep them apart.
const TEXTS: [Text; 7] = [
    Text {
        sql: "select $1::int4 + 1000",
        declared: &[],
        params: &[INT4],
        columns: &[INT4],
    },
    Text {
        sql: "select $1::int4 + 2000",
        declared: &[],
        params: &[INT4],
        columns: &[INT4],
    },
    Text {
        sql: "select $1::int8 * 3, 'two'::text",
        declared: &[],
        params: &[INT8],
        columns: &[INT8, TEXT],
    },
    Text {
        sql: "select $1::text || '-3'",
        declared: &[],
        params: &[TEXT],
        columns: &[TEXT],
    },
    Text {
        // random() keeps the planner from folding the division at Bind: it fails at Execute.
        sql: "select 10 / ($1::int4 + (random() * 0)::int4)",
        declared: &[],
        params: &[INT4],
        columns: &[INT4],
    },
    Text {
        sql: "select $1",
        declared: &[INT4],
        params: &[INT4],
        columns: &[INT4],
    },
    Text {
        sql: "select $1",
        declared: &[TEXT],
        params: &[TEXT],
        columns: &[TEXT],
    },
];
/// Fails to parse (42601): the server skips to the next Sync.
const BAD_SQL: &str = "select from where";
const DIVISION: usize = 4;

/// What a text computes for the parameter `v`, or the SQLSTATE of its error.
fn outcome(text: usize, v: i64) -> Result<Vec<String>, &'static str> {
    Ok(match text {
        0 => vec![(v + 1000).to_string()],
        1 => vec![(v + 2000).to_string()],
        2 => vec![(v * 3).to_string(), "two".to_owned()],
        3 => vec![format!("{v}-3")],
        DIVISION if v == 0 => return Err("22012"),
        DIVISION => vec![(10 / v).to_string()],
        _ => vec![v.to_string()],
    })
}

/// One reply, as the test compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    ParseComplete,
    BindComplete,
    CloseComplete,
    NoData,
    Params(Vec<u32>),
    Columns(Vec<u32>),
    Row(Vec<Option<String>>),
    Complete(String),
    Error(String),
    Ready(u8),
    Other(u8),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes(b[at..at + 2].try_into().unwrap()))
}

fn decode(tag: u8, body: &[u8]) -> Reply {
    match tag {
        b'1' => Reply::ParseComplete,
        b'2' => Reply::BindComplete,
        b'3' => Reply::CloseComplete,
        b'n' => Reply::NoData,
        b't' => Reply::Params(
            (0..u16_at(body, 0))
                .map(|i| u32_at(body, 2 + 4 * i))
                .collect(),
        ),
        b'T' => {
            let mut at = 2;
            let mut types = Vec::new();
            for _ in 0..u16_at(body, 0) {
                at += body[at..].iter().position(|b| *b == 0).unwrap() + 1;
                types.push(u32_at(body, at + 6));
                at += 18;
            }
            Reply::Columns(types)
        }
        b'D' => {
            let mut at = 2;
            let mut values = Vec::new();
            for _ in 0..u16_at(body, 0) {
                let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
                at += 4;
                if let Ok(len) = usize::try_from(len) {
                    values.push(Some(
                        String::from_utf8_lossy(&body[at..at + len]).into_owned(),
                    ));
                    at += len;
                } else {
                    values.push(None);
                }
            }
            Reply::Row(values)
        }
        b'C' => Reply::Complete(
            String::from_utf8_lossy(body.strip_suffix(b"\0").unwrap_or(body)).into_owned(),
        ),
        b'E' => Reply::Error(error_code(body).unwrap_or_default()),
        b'Z' => Reply::Ready(body.first().copied().unwrap_or(0)),
        other => Reply::Other(other),
    }
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn parse_msg(name: &str, sql: &str, types: &[u32]) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, name);
    cstr(&mut b, sql);
    b.extend_from_slice(&u16::try_from(types.len()).unwrap().to_be_bytes());
    for t in types {
        b.extend_from_slice(&t.to_be_bytes());
    }
    message(b'P', &b)
}

/// Bind of the unnamed portal, one text-format parameter, text results.
fn bind_msg(statement: &str, value: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, "");
    cstr(&mut b, statement);
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&1u16.to_be_bytes());
    b.extend_from_slice(&u32::try_from(value.len()).unwrap().to_be_bytes());
    b.extend_from_slice(value.as_bytes());
    b.extend_from_slice(&0u16.to_be_bytes());
    message(b'B', &b)
}

fn named_msg(tag: u8, kind: u8, name: &str) -> Vec<u8> {
    let mut b = vec![kind];
    cstr(&mut b, name);
    message(tag, &b)
}

fn execute_msg() -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, "");
    b.extend_from_slice(&0u32.to_be_bytes());
    message(b'E', &b)
}

/// What one PostgreSQL session would do with the messages, and what it answers.
#[derive(Debug, Default)]
struct Model {
    /// The client's named statements: name → text.
    names: HashMap<String, usize>,
    /// The unnamed statement, only within the current pipeline (drivers re-parse it each time).
    unnamed: Option<usize>,
    /// The unnamed portal's text and parameter, until executed.
    portal: Option<(usize, i64)>,
    /// An error happened: everything up to Sync is skipped and answered with nothing.
    failed: bool,
    /// The last pipeline failed or discarded every name: no further pipeline may go out in the
    /// same write. (The pooler maps names when a message passes, assuming the pipelines before
    /// it succeed; it undoes a failed pipeline's name changes when the error arrives, which is
    /// too late for messages already sent behind it. Drivers wait for such results.)
    barrier: bool,
    /// Names closed in the current pipeline, even by a Close the server skips: the pooler drops
    /// a name when the Close passes, so the client names them no more until Sync. (A Bind or
    /// Describe of a name the client does not hold ends the session, as in PgBouncer; that is
    /// `prepared::bind_of_a_name_never_prepared_closes_the_session`.)
    closed: std::collections::HashSet<String>,
}

/// Messages to write, and the replies the model owes for them.
#[derive(Debug, Default)]
struct Chunk {
    bytes: Vec<u8>,
    expect: Vec<Reply>,
    /// The messages, for a failure report.
    log: String,
}

impl Chunk {
    fn send(&mut self, bytes: &[u8], what: impl std::fmt::Display) {
        self.bytes.extend_from_slice(bytes);
        let _ = write!(self.log, "{what}; ");
    }
}

impl Model {
    fn fail(&mut self, chunk: &mut Chunk, code: &str) {
        chunk.expect.push(Reply::Error(code.to_owned()));
        self.failed = true;
        self.barrier = true;
    }

    fn statement(&self, name: &str) -> Option<usize> {
        if name.is_empty() {
            self.unnamed
        } else {
            self.names.get(name).copied()
        }
    }

    fn parse(&mut self, chunk: &mut Chunk, name: &str, text: Option<usize>) {
        let (sql, declared) =
            text.map_or((BAD_SQL, &[][..]), |t| (TEXTS[t].sql, TEXTS[t].declared));
        chunk.send(
            &parse_msg(name, sql, declared),
            format_args!("Parse {name:?} {sql:?} {declared:?}"),
        );
        if self.failed {
            return;
        }
        match text {
            None => self.fail(chunk, "42601"),
            Some(t) => {
                chunk.expect.push(Reply::ParseComplete);
                if name.is_empty() {
                    self.unnamed = Some(t);
                } else {
                    self.names.insert(name.to_owned(), t);
                }
            }
        }
    }

    fn bind_execute(&mut self, chunk: &mut Chunk, name: &str, v: i64, describe: bool) {
        chunk.send(
            &bind_msg(name, &v.to_string()),
            format_args!("Bind {name:?} {v}"),
        );
        if !self.failed {
            match self.statement(name) {
                None => self.fail(chunk, "26000"),
                Some(t) => {
                    chunk.expect.push(Reply::BindComplete);
                    self.portal = Some((t, v));
                }
            }
        }
        if describe {
            chunk.send(&named_msg(b'D', b'P', ""), "Describe portal");
            if !self.failed {
                let (t, _) = self.portal.expect("bound");
                chunk.expect.push(Reply::Columns(TEXTS[t].columns.to_vec()));
            }
        }
        chunk.send(&execute_msg(), "Execute");
        if !self.failed {
            let (t, v) = self.portal.take().expect("bound");
            match outcome(t, v) {
                Ok(values) => {
                    chunk
                        .expect
                        .push(Reply::Row(values.into_iter().map(Some).collect()));
                    chunk.expect.push(Reply::Complete("SELECT 1".to_owned()));
                }
                Err(code) => self.fail(chunk, code),
            }
        }
    }

    fn describe(&mut self, chunk: &mut Chunk, name: &str) {
        chunk.send(
            &named_msg(b'D', b'S', name),
            format_args!("Describe statement {name:?}"),
        );
        if self.failed {
            return;
        }
        match self.statement(name) {
            None => self.fail(chunk, "26000"),
            Some(t) => {
                chunk.expect.push(Reply::Params(TEXTS[t].params.to_vec()));
                chunk.expect.push(Reply::Columns(TEXTS[t].columns.to_vec()));
            }
        }
    }

    fn close(&mut self, chunk: &mut Chunk, name: &str) {
        chunk.send(&named_msg(b'C', b'S', name), format_args!("Close {name:?}"));
        if !self.failed {
            chunk.expect.push(Reply::CloseComplete);
            self.names.remove(name);
        }
        self.closed.insert(name.to_owned());
    }

    fn sync(&mut self, chunk: &mut Chunk) {
        chunk.send(&message(b'S', &[]), "Sync");
        chunk.expect.push(Reply::Ready(b'I'));
        self.failed = false;
        self.unnamed = None;
        self.portal = None;
        self.closed.clear();
    }

    fn simple(chunk: &mut Chunk, sql: &str, replies: Vec<Reply>) {
        chunk.send(&query(sql), format_args!("Query {sql:?}"));
        chunk.expect.extend(replies);
        chunk.expect.push(Reply::Ready(b'I'));
    }

    /// A random name: usually one this client has (if any), sometimes any name at all.
    fn some_name(&self, rng: &mut StdRng) -> String {
        let mut known: Vec<&String> = self.names.keys().collect();
        known.sort();
        if !known.is_empty() && rng.gen_bool(0.85) {
            known[rng.gen_range(0..known.len())].clone()
        } else {
            NAMES[rng.gen_range(0..NAMES.len())].to_owned()
        }
    }

    /// A name to Bind or Describe: one this client holds (and has not closed in this pipeline),
    /// or sometimes the unnamed statement while this pipeline has one; `None` if there is none.
    fn held_name(&self, rng: &mut StdRng) -> Option<String> {
        let mut held: Vec<&String> = self
            .names
            .keys()
            .filter(|n| !self.closed.contains(*n))
            .collect();
        held.sort();
        if self.unnamed.is_some() && (held.is_empty() || rng.gen_bool(0.15)) {
            return Some(String::new());
        }
        (!held.is_empty()).then(|| held[rng.gen_range(0..held.len())].clone())
    }

    /// One pipeline ending in Sync (or one simple query), as chunks: each chunk but the last ends
    /// with Flush, after which the client reads what is owed so far.
    fn pipeline(&mut self, rng: &mut StdRng) -> Vec<Chunk> {
        let mut chunks = vec![Chunk::default()];
        let roll = rng.gen_range(0..100);
        let chunk = chunks.last_mut().unwrap();
        self.barrier = roll < 9;
        if roll < 6 {
            Self::simple(
                chunk,
                "DISCARD ALL",
                vec![Reply::Complete("DISCARD ALL".to_owned())],
            );
            self.names.clear();
            return chunks;
        }
        if roll < 9 {
            Self::simple(
                chunk,
                "DEALLOCATE ALL",
                vec![Reply::Complete("DEALLOCATE ALL".to_owned())],
            );
            self.names.clear();
            return chunks;
        }
        if roll < 13 {
            // SQL DEALLOCATE of a protocol-level name (psycopg does this with libpq < 17).
            let name = self.some_name(rng);
            let sql = if rng.gen_bool(0.5) {
                format!("DEALLOCATE {name}")
            } else {
                format!("deallocate prepare \"{name}\";")
            };
            let reply = if self.names.remove(&name).is_some() {
                Reply::Complete("DEALLOCATE".to_owned())
            } else {
                Reply::Error("26000".to_owned())
            };
            Self::simple(chunk, &sql, vec![reply]);
            return chunks;
        }
        if roll < 17 {
            // The server this lands on holds no client names and at most the capacity.
            let sql = format!(
                "select count(*) filter (where name not like 'pgsluice\\_%') = 0 \
                 and count(*) <= {SERVER_CAPACITY} from pg_prepared_statements"
            );
            Self::simple(
                chunk,
                &sql,
                vec![
                    Reply::Columns(vec![BOOL]),
                    Reply::Row(vec![Some("t".to_owned())]),
                    Reply::Complete("SELECT 1".to_owned()),
                ],
            );
            return chunks;
        }
        for _ in 0..rng.gen_range(1..8) {
            let chunk = chunks.last_mut().unwrap();
            let v = rng.gen_range(0..1000);
            match rng.gen_range(0..100) {
                0..=29 => {
                    let text = (!rng.gen_bool(0.1)).then(|| rng.gen_range(0..TEXTS.len()));
                    let name = NAMES[rng.gen_range(0..NAMES.len())];
                    if self.names.contains_key(name) || self.failed {
                        // PostgreSQL refuses a second Parse of a live name (42P05) and the
                        // pooler, as PgBouncer, ends the session on a name it still maps (even
                        // one whose Parse failed or is skipped in this pipeline); drivers close
                        // first, and so does this client.
                        self.close(chunk, name);
                    }
                    self.parse(chunk, name, text);
                }
                30..=39 => {
                    let text = (!rng.gen_bool(0.1)).then(|| rng.gen_range(0..TEXTS.len()));
                    self.parse(chunk, "", text);
                    if self.unnamed.is_some() && rng.gen_bool(0.7) {
                        self.bind_execute(chunk, "", v, rng.gen_bool(0.3));
                    }
                }
                roll @ 40..=84 => {
                    let Some(name) = self.held_name(rng) else {
                        continue;
                    };
                    if roll >= 75 {
                        self.describe(chunk, &name);
                        continue;
                    }
                    let v = if self.names.get(&name) == Some(&DIVISION) {
                        v % 3
                    } else {
                        v
                    };
                    self.bind_execute(chunk, &name, v, rng.gen_bool(0.3));
                }
                85..=94 => {
                    let name = self.some_name(rng);
                    self.close(chunk, &name);
                }
                _ => {
                    chunk.send(&message(b'H', &[]), "Flush");
                    chunks.push(Chunk::default());
                }
            }
        }
        self.sync(chunks.last_mut().unwrap());
        chunks
    }
}

/// Reads one reply, skipping notices and parameter reports.
async fn next_reply(stream: &mut TcpStream) -> Option<Reply> {
    for _ in 0..100 {
        let (tag, body) = read_message(stream).await?;
        if tag != b'N' && tag != b'S' {
            return Some(decode(tag, &body));
        }
    }
    None
}

/// The replies that arrive within a short while, for a failure report.
async fn drain(stream: &mut TcpStream) -> Vec<Reply> {
    let mut after = Vec::new();
    for _ in 0..10 {
        match tokio::time::timeout(std::time::Duration::from_millis(500), next_reply(stream)).await
        {
            Ok(Some(reply)) => after.push(reply),
            _ => break,
        }
    }
    after
}

/// One client's whole run; `Err` describes the first reply that differs from the model.
async fn client_run(port: u16, seed: u64, client: usize) -> Result<usize, String> {
    let pw = password("md5_user");
    let (mut stream, _) = login(port, "md5_user", &pw, "app").await;
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(client as u64));
    let mut model = Model::default();
    let mut checked = 0;
    let mut pipeline = 0;
    // The last few writes, for a failure report.
    let mut history: Vec<String> = Vec::new();
    while pipeline < PIPELINES_PER_CLIENT {
        // Sometimes several pipelines go out in one write before any reply is read.
        let batch = if rng.gen_bool(0.2) {
            rng.gen_range(2..4)
        } else {
            1
        };
        let mut chunks = Vec::new();
        for _ in 0..batch {
            chunks.extend(model.pipeline(&mut rng));
            pipeline += 1;
            if model.barrier {
                break;
            }
        }
        // Write up to (and including) each Flush, or everything; then read what is owed.
        let mut pending = Chunk::default();
        let count = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let flush_point = chunk.bytes.ends_with(&message(b'H', &[]));
            pending.bytes.extend_from_slice(&chunk.bytes);
            pending.expect.extend(chunk.expect);
            pending.log.push_str(&chunk.log);
            if !flush_point && i + 1 < count {
                continue;
            }
            history.push(pending.log.clone());
            if history.len() > 4 {
                history.remove(0);
            }
            stream
                .write_all(&pending.bytes)
                .await
                .map_err(|e| format!("write: {e}"))?;
            for (at, want) in pending.expect.iter().enumerate() {
                let got = next_reply(&mut stream).await;
                if got.as_ref() != Some(want) {
                    let after = drain(&mut stream).await;
                    return Err(format!(
                        "seed {seed} client {client} pipeline {pipeline}: reply {at}: got {got:?}, \
                         want {want:?}\n  then: {after:?}\n  sent: {}\n  all expected: {:?}\n  \
                         model names: {:?}\n  last writes: {history:#?}",
                        pending.log, pending.expect, model.names
                    ));
                }
                checked += 1;
            }
            pending = Chunk::default();
        }
    }
    // Nothing more may arrive: the next reply is the final query's.
    stream.write_all(&query("select 'end'")).await.unwrap();
    let tail = [
        Reply::Columns(vec![TEXT]),
        Reply::Row(vec![Some("end".to_owned())]),
        Reply::Complete("SELECT 1".to_owned()),
        Reply::Ready(b'I'),
    ];
    for want in tail {
        let got = next_reply(&mut stream).await;
        if got.as_ref() != Some(&want) {
            return Err(format!(
                "seed {seed} client {client} at the end: got {got:?}, want {want:?}"
            ));
        }
    }
    let _ = stream.write_all(&message(b'X', &[])).await;
    Ok(checked)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_pipelines_match_the_model() {
    let db = PgCluster::shared().create_database("prepmodel");
    let first = env_u64("PGSLUICE_MODEL_SEED").unwrap_or(1);
    let cases = env_u64("PGSLUICE_MODEL_CASES").unwrap_or(DEFAULT_CASES);
    let mut checked = 0;
    for seed in first..first + cases {
        let pooler = Arc::new(Pooler::start(
            &db_line("app", &db, ""),
            &format!(
                "pool_mode = transaction\ndefault_pool_size = 2\n\
                 max_prepared_statements = {SERVER_CAPACITY}"
            ),
            &userlist(&[("md5_user", &password("md5_user"))]),
        ));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|client| tokio::spawn(client_run(pooler.port, seed, client)))
            .collect();
        for task in tasks {
            match task.await.unwrap() {
                Ok(n) => checked += n,
                Err(report) => panic!("{report}"),
            }
        }
        Arc::into_inner(pooler).unwrap().stop().await;
    }
    // The model owed replies and every one of them was checked.
    assert!(
        checked > usize::try_from(cases).unwrap() * CLIENTS * PIPELINES_PER_CLIENT,
        "{checked}"
    );
}
