//! Fuzzing entry points: one function per parser of outside input, shared by the coverage-guided
//! targets under `fuzz/` and the bounded, seeded random-input test (`fuzzing::tests`), which runs
//! in CI. Not an API: hidden from the docs, and only what the targets need is reached from here.
//!
//! Owns: each target's harness (how raw bytes become the parser's input, how a relay or a login
//! drives it), the invariants checked after every input (an `assert!` that fails is a finding),
//! the seed inputs ([`seeds`]) and the mutator of the CI test ([`mutate`]).
//! Does not: fix anything; a finding is fixed in the parser, with a regression unit test there.
//!
//! Invariants checked by every target: no panic, errors typed, what is kept bounded by what was
//! read, and round trips where a writer exists (startup packet, `options`, console commands,
//! ini items, connection strings, auth_file lines, SCRAM exchanges).
//!
//! Input conventions: targets that need several inputs (files for `%include`, the two messages
//! of a SCRAM exchange) split the bytes on NUL.

pub mod mutate;
pub mod seeds;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use bytes::BytesMut;

use crate::admin::parse as console_parse;
use crate::auth::hba::{Connection, Hba};
use crate::auth::ident::IdentMaps;
use crate::auth::{ScramClient, ScramServer, scram_secret_from_password};
use crate::client::prepared::{MAX_PER_CLIENT, StatementRegistry, deallocate_target};
use crate::client::rewrite::{ClientSide, PreparedState, client_want, server_wants_body};
use crate::config::{Config, ScramSecret, Secret, connstr, ini, userlist};
use crate::protocol::frame::{self, HEADER_LEN, MAX_STARTUP_LEN};
use crate::protocol::reply::{self, AuthRequest, ErrorFields};
use crate::protocol::scan::{Flow, Msg, Scanner, Want};
use crate::protocol::startup::{self, StartupPacket};
use crate::protocol::{ProtocolError, frontend};
use crate::server::PreparedSet;
use crate::stats::PoolStats;

/// One fuzz target: its name (as in `fuzz/fuzz_targets/NAME.rs`) and its harness.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name of the target.
    pub name: &'static str,
    /// Runs one input; panics on a finding.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "startup",
        run: startup,
    },
    Target {
        name: "scan",
        run: scan,
    },
    Target {
        name: "backend",
        run: backend,
    },
    Target {
        name: "rewrite",
        run: rewrite,
    },
    Target {
        name: "scram_server",
        run: scram_server,
    },
    Target {
        name: "scram_client",
        run: scram_client,
    },
    Target {
        name: "console",
        run: console,
    },
    Target {
        name: "ini",
        run: ini,
    },
    Target {
        name: "connstr",
        run: connstr,
    },
    Target {
        name: "userlist",
        run: userlist,
    },
    Target {
        name: "hba",
        run: hba,
    },
    Target {
        name: "ident",
        run: ident,
    },
];

/// The bytes before the first NUL and, if there is one, the bytes after it.
fn split_nul(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], data.get(at + 1..)),
        None => (data, None),
    }
}

/// `text` with every whitespace character and backslash escaped by a backslash.
fn escape_option(text: &str, out: &mut String) {
    for c in text.chars() {
        if c.is_whitespace() || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
}

/// `text` with `quote` doubled, between two `quote`s.
fn quote(text: &str, quote: char) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        if c == quote {
            out.push(quote);
        }
        out.push(c);
    }
    out.push(quote);
    out
}

// ---------------------------------------------------------------------------------------------
// Wire protocol
// ---------------------------------------------------------------------------------------------

/// The first packet of a connection (`frame::startup_len`, `startup::parse`), the `options`
/// parameter, and the two login messages a client sends (PasswordMessage, SASLInitialResponse).
pub fn startup(data: &[u8]) {
    match frame::startup_len(data) {
        Ok(Some(len)) => assert!((8..=MAX_STARTUP_LEN).contains(&len)),
        Ok(None) => assert!(data.len() < 4),
        Err(e) => assert!(matches!(e, ProtocolError::BadLength(_))),
    }
    // The reader never hands over more than a startup packet may hold.
    let packet = data.get(..MAX_STARTUP_LEN).unwrap_or(data);
    match startup::parse(packet) {
        Ok(StartupPacket::Startup { params, .. }) => {
            let kept: usize = params.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
            assert!(kept + 8 <= packet.len());
            assert!(params.iter().all(|(k, _)| !k.is_empty()));
            // Round trip through the writer the pooler uses towards servers.
            let mut buf = BytesMut::new();
            frontend::startup_message(&mut buf, params.iter().map(|(k, v)| (&**k, &**v)));
            let again = startup::parse(&buf);
            assert!(
                matches!(&again, Ok(StartupPacket::Startup { params: p, .. }) if *p == params),
                "round trip: {again:?}"
            );
            for (_, value) in params.iter().filter(|(k, _)| k == "options") {
                options(value);
            }
        }
        Ok(StartupPacket::Cancel { .. }) => assert!(packet.len() >= 16),
        Ok(StartupPacket::SslRequest | StartupPacket::GssEncRequest) => {}
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    options(&String::from_utf8_lossy(data));
    let password = startup::password_body(data);
    assert!(data.starts_with(password) && password.len() + 1 >= data.len());
    if let Ok((mechanism, initial)) = startup::sasl_initial(data) {
        assert_eq!(mechanism.len() + 1 + 4 + initial.len(), data.len());
    }
}

/// `startup::parse_options`: what it accepts renders back to `-c name=value` arguments that
/// parse to the same pairs.
fn options(text: &str) {
    let Ok(pairs) = startup::parse_options(text) else {
        return;
    };
    let mut rendered = String::new();
    for (name, value) in &pairs {
        rendered.push_str(" -c ");
        escape_option(name, &mut rendered);
        rendered.push('=');
        escape_option(value, &mut rendered);
    }
    assert_eq!(startup::parse_options(&rendered), Ok(pairs), "{rendered:?}");
}

/// One message as the scanner showed it: tag, body (for wanted tags) and absolute offset.
type Visit = (u8, Vec<u8>, usize);

/// Feeds `stream` to a scanner in chunks of the sizes given (cycled), as the relay does: keep
/// the unconsumed tail, append the next read. Returns the messages seen and whether the
/// scanner refused a header.
fn scan_in_chunks(
    stream: &[u8],
    chunks: &[usize],
    max_len: usize,
    wants: impl Fn(u8) -> bool + Copy,
) -> (Vec<Visit>, bool) {
    let mut scanner = Scanner::new(max_len);
    let mut pending: Vec<u8> = Vec::new();
    let mut base = 0;
    let mut fed = 0;
    let mut seen = Vec::new();
    let mut sizes = chunks.iter().copied().cycle();
    while fed < stream.len() {
        let n = sizes.next().unwrap_or(1).clamp(1, stream.len() - fed);
        pending.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        let want = |tag, _len, _head: &[u8]| if wants(tag) { Want::Whole } else { Want::Skip };
        let result = scanner.scan(&pending, want, |m: Msg<'_>| {
            seen.push((m.tag, m.body.to_vec(), base + m.at));
            Flow::Continue
        });
        let Ok(scanned) = result else {
            return (seen, true);
        };
        assert!(scanned.consumed <= pending.len());
        pending.drain(..scanned.consumed);
        base += scanned.consumed;
        // What stays buffered: at most one wanted message (bounded by `max_len`) and one read.
        assert!(pending.len() <= max_len.max(HEADER_LEN) + n);
    }
    (seen, false)
}

/// The relay's streaming scanner: the same messages whatever the read sizes, wanted bodies
/// whole, memory bounded by `max_len` plus one read.
pub fn scan(data: &[u8]) {
    let Some((&[len_hi, len_lo, wanted, pattern], stream)) = data.split_first_chunk::<4>() else {
        return;
    };
    let max_len = usize::from(u16::from_be_bytes([len_hi, len_lo])) % 4096;
    let wants = move |tag: u8| tag == wanted || tag == b'Z' || tag == b'1';
    let (whole, whole_err) = scan_in_chunks(stream, &[stream.len().max(1)], max_len, wants);
    let chunks = [
        usize::from(pattern % 7) + 1,
        usize::from(pattern / 7 % 13) + 1,
        1,
    ];
    let (chunked, chunked_err) = scan_in_chunks(stream, &chunks, max_len, wants);
    assert_eq!(whole_err, chunked_err);
    assert_eq!(whole, chunked);
    for (tag, body, at) in &whole {
        let header = frame::tagged_len(&stream[*at..], max_len);
        assert!(matches!(header, Ok(Some((seen, _))) if seen == *tag));
        if wants(*tag) {
            assert!(matches!(header, Ok(Some((_, total))) if total == body.len() + HEADER_LEN));
        } else {
            assert!(body.is_empty());
        }
    }
}

/// The fixed SCRAM secret of the fuzz targets and the ClientKey that proves it.
fn scram_fixture() -> &'static (ScramSecret, [u8; 32]) {
    static FIXTURE: OnceLock<(ScramSecret, [u8; 32])> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let secret = scram_secret_from_password("fuzz password", b"fuzz salt 16 byt", 4096);
        // A full exchange recovers the ClientKey, as a pass-through login does.
        let mut client = ScramClient::with_password("fuzz password");
        let mut server = ScramServer::new(&Secret::Scram(secret.clone()), "fuzz").ok();
        let key = server.as_mut().and_then(|server| {
            let first = client.client_first_with_nonce("", CLIENT_NONCE);
            let server_first = server.client_first_with_nonce(&first, SERVER_NONCE).ok()?;
            let client_final = client.server_first(&server_first).ok()?;
            server.client_final(&client_final).ok()?;
            server.client_key()
        });
        (secret, key.unwrap_or_default())
    })
}

/// The client's nonce in the SCRAM targets.
pub const CLIENT_NONCE: &str = "fuzzclientnonce0123456789";
/// The server's nonce part in the SCRAM targets.
pub const SERVER_NONCE: &str = "fuzzservernonce9876543210";

/// What a server sends during login and `auth_query` (`reply::*`, `ErrorFields`, DataRow),
/// framed as `server/login.rs` reads it, with SASL continue/final driving a SCRAM client.
pub fn backend(data: &[u8]) {
    let (secret, key) = scram_fixture();
    let mut scram: Option<ScramClient> = None;
    let mut rest = data;
    while let Ok(Some((tag, total))) = frame::complete_frame(rest, 1 << 16) {
        let body = &rest[HEADER_LEN..total];
        rest = &rest[total..];
        // Every reader on every body: none may panic, whatever the tag said.
        if let Ok((name, value)) = reply::parameter_status(body) {
            assert!(name.len() + value.len() + 2 <= body.len());
        }
        assert_eq!(reply::backend_key_data(body).is_ok(), body.len() >= 8);
        let fields = ErrorFields::parse(body);
        let kept = [&fields.severity, &fields.code, &fields.message]
            .iter()
            .filter_map(|f| f.as_ref().map(String::len))
            .sum::<usize>();
        assert!(kept <= body.len());
        assert!(!fields.to_string().is_empty());
        if let Some(row) = crate::protocol::reply::data_row(body) {
            assert!(row.len() * 4 + 2 <= body.len());
            assert!(row.iter().flatten().map(String::len).sum::<usize>() <= body.len() * 3);
        }
        if tag != b'R' {
            continue;
        }
        match reply::auth_request(body) {
            Ok(AuthRequest::Md5(salt)) => assert_eq!(body.get(4..8), Some(&salt[..])),
            Ok(AuthRequest::Sasl(mechanisms)) => {
                assert!(mechanisms.iter().all(|m| !m.is_empty()));
                if mechanisms.contains(&"SCRAM-SHA-256") {
                    let mut client = ScramClient::with_keys(*key, secret);
                    client.client_first_with_nonce("", CLIENT_NONCE);
                    scram = Some(client);
                }
            }
            Ok(AuthRequest::SaslContinue(msg)) => {
                if let Some(client) = scram.as_mut() {
                    if let Ok(reply) = client.server_first(msg) {
                        assert!(reply.starts_with(b"c=biws,r="));
                    }
                }
            }
            Ok(AuthRequest::SaslFinal(msg)) => {
                if let Some(client) = scram.as_mut() {
                    let _ = client.server_final(msg);
                }
            }
            Ok(_) => {}
            Err(e) => assert!(body.len() < 8 && !e.to_string().is_empty()),
        }
    }
}

/// Checks that `stream` is a sequence of well-formed tagged messages (the last may be cut).
fn assert_framed(stream: &[u8]) {
    let mut rest = stream;
    while rest.len() >= HEADER_LEN {
        let header = frame::tagged_len(rest, usize::MAX);
        let at = stream.len() - rest.len();
        let Ok(Some((_, total))) = header else {
            return assert!(header.is_ok(), "broken framing at {at}: {header:?}");
        };
        let Some(next) = rest.get(total..) else {
            return;
        };
        rest = next;
    }
}

/// Prepared-statement tracking in the relay (`client/rewrite.rs`, `client/prepared.rs`):
/// client Parse/Bind/Describe/Close/Query and server replies, driven batch by batch as
/// `client/relay.rs` drives them. Input: a capacity byte, then records of a direction byte
/// (even: client, odd: server), a length byte and that many bytes of stream.
pub fn rewrite(data: &[u8]) {
    let Some((&cap, mut rest)) = data.split_first() else {
        return;
    };
    let capacity = usize::from(cap % 8) + 1;
    let registry = StatementRegistry::default();
    let stats = PoolStats::default();
    let mut server = PreparedSet::default();
    let mut ps = PreparedState::default();
    let max_len = 1 << 16;
    let (mut client_scanner, mut server_scanner) = (Scanner::new(max_len), Scanner::new(max_len));
    let (mut from_client, mut from_server) = (Vec::new(), Vec::new());
    let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
    while let [dir, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        rest = tail;
        ps.splice.clear();
        if dir % 2 == 0 {
            from_client.extend_from_slice(chunk);
            let mut failed = false;
            let mut side = ClientSide {
                registry: &registry,
                server: &mut server,
                capacity,
                stats: &stats,
            };
            let scanned = client_scanner.scan(&from_client, client_want, |m: Msg<'_>| {
                if m.tag == b'Q' {
                    if let Some(name) = deallocate_target(m.body) {
                        assert!(!name.is_empty() && name.len() <= 256);
                    }
                }
                if ps.on_client_message(&mut side, m).is_err() {
                    failed = true;
                    return Flow::StopBefore;
                }
                Flow::Continue
            });
            let Ok(scanned) = scanned else { break };
            let batch = &from_client[..scanned.consumed];
            if ps.splice.is_empty() {
                to_server.extend_from_slice(batch);
            } else {
                ps.splice.apply(batch, batch.len(), &mut to_server);
            }
            from_client.drain(..scanned.consumed);
            if failed {
                // The session ends here, as in the relay.
                break;
            }
            if ps.take_due_replies(server_scanner.at_boundary()) {
                to_client.extend_from_slice(&ps.out_back);
                ps.out_back.clear();
            }
        } else {
            from_server.extend_from_slice(chunk);
            let wants = |tag, _len, _head: &[u8]| {
                if tag == b'Z' || tag == b'S' || server_wants_body(tag) {
                    Want::Whole
                } else {
                    Want::Skip
                }
            };
            let scanned = server_scanner.scan(&from_server, wants, |m: Msg<'_>| {
                ps.on_server_message(&mut server, m.tag, m.body, m.at);
                Flow::Continue
            });
            let Ok(scanned) = scanned else { break };
            ps.insert_due_replies(scanned.consumed, server_scanner.at_boundary());
            let batch = &from_server[..scanned.consumed];
            ps.splice.apply(batch, batch.len(), &mut to_client);
            from_server.drain(..scanned.consumed);
        }
        assert!(ps.statements.len() <= MAX_PER_CLIENT);
    }
    assert_framed(&to_server);
    assert_framed(&to_client);
}

// ---------------------------------------------------------------------------------------------
// SCRAM
// ---------------------------------------------------------------------------------------------

/// The pooler as SCRAM server (a client logging in): client-first NUL client-final. The
/// ClientKey is only ever exposed after a valid proof, and is then the real one.
pub fn scram_server(data: &[u8]) {
    let (secret, key) = scram_fixture();
    let Ok(mut server) = ScramServer::new(&Secret::Scram(secret.clone()), "fuzz") else {
        return;
    };
    let (first, last) = split_nul(data);
    match server.client_first_with_nonce(first, SERVER_NONCE) {
        Ok(reply) => {
            assert!(reply.starts_with(b"r=") && reply.ends_with(b",i=4096"));
            assert!(
                reply
                    .windows(SERVER_NONCE.len())
                    .any(|w| w == SERVER_NONCE.as_bytes())
            );
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(server.client_final(last.unwrap_or_default()).is_err());
            assert!(server.client_key().is_none());
            return;
        }
    }
    assert!(server.client_key().is_none());
    let Some(last) = last else { return };
    match server.client_final(last) {
        Ok(reply) => {
            assert!(reply.starts_with(b"v="));
            assert_eq!(server.client_key(), Some(*key));
        }
        Err(_) => assert!(server.client_key().is_none()),
    }
    // A finished exchange takes nothing more.
    assert!(server.client_final(last).is_err());
}

/// The pooler as SCRAM client (logging in to a server, pass-through keys): server-first NUL
/// server-final. When the server-first is the real server's, the whole exchange round-trips.
pub fn scram_client(data: &[u8]) {
    let (secret, key) = scram_fixture();
    let mut client = ScramClient::with_keys(*key, secret);
    let first = client.client_first_with_nonce("", CLIENT_NONCE);
    let (server_first, server_final) = split_nul(data);
    let reply = match client.server_first(server_first) {
        Ok(reply) => reply,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(
                client
                    .server_final(server_final.unwrap_or_default())
                    .is_err()
            );
            return;
        }
    };
    let mut prefix = b"c=biws,r=".to_vec();
    prefix.extend_from_slice(CLIENT_NONCE.as_bytes());
    assert!(reply.starts_with(&prefix));
    // The real server, given the same client-first and nonce, must accept this client-final.
    let mut real = ScramServer::new(&Secret::Scram(secret.clone()), "fuzz").ok();
    let real_final = real.as_mut().and_then(|real| {
        let real_first = real.client_first_with_nonce(&first, SERVER_NONCE).ok()?;
        (real_first == server_first).then(|| real.client_final(&reply))
    });
    if let Some(real_final) = &real_final {
        assert!(real_final.is_ok(), "a real server refused our client-final");
    }
    if let Some(server_final) = server_final {
        let accepted = client.server_final(server_final).is_ok();
        if let Some(Ok(real_final)) = &real_final {
            // The real verifier is accepted; RFC 5802 allows extensions after it, nothing else.
            assert!(accepted || server_final != &real_final[..]);
            assert!(!accepted || server_final.starts_with(real_final));
        }
        assert!(client.server_final(server_final).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Console and configuration
// ---------------------------------------------------------------------------------------------

/// Renders a console command so that it parses back to itself.
fn render_command(command: &console_parse::Command) -> String {
    match command {
        console_parse::Command::Word { cmd, arg } if arg.is_empty() => quote(cmd, '"'),
        console_parse::Command::Word { cmd, arg } => {
            format!("{} {}", quote(cmd, '"'), quote(arg, '"'))
        }
        console_parse::Command::Set { key, value } => {
            format!("SET {} = {}", quote(key, '"'), quote(value, '\''))
        }
    }
}

/// The console's command parser (`admin/parse.rs`) on a query string.
pub fn console(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let span = text.as_ptr() as usize..text.as_ptr() as usize + text.len() + 1;
    for piece in console_parse::split(text) {
        assert!(!piece.trim().is_empty());
        assert!(span.contains(&(piece.as_ptr() as usize)));
        match console_parse::parse(piece) {
            Ok(command) => {
                match &command {
                    console_parse::Command::Word { cmd, arg } => {
                        assert!(!cmd.is_empty() && cmd.len() < 16 && arg.len() < 64);
                        assert_eq!(*cmd, cmd.to_ascii_lowercase());
                    }
                    console_parse::Command::Set { key, value } => {
                        assert!(!key.is_empty() && key.len() < 64 && value.len() < 256);
                    }
                }
                let rendered = render_command(&command);
                assert_eq!(console_parse::split(&rendered), [rendered.as_str()]);
                assert_eq!(console_parse::parse(&rendered), Ok(command), "{rendered:?}");
            }
            Err(console_parse::ParseError::Syntax(shown)) => assert_eq!(shown, piece),
            Err(console_parse::ParseError::BadArguments) => {}
        }
    }
}

/// In-memory files for `%include`, counting reads.
struct MemFiles {
    files: BTreeMap<String, String>,
    reads: usize,
}

impl ini::Source for MemFiles {
    fn read(&mut self, path: &Path) -> std::io::Result<String> {
        self.reads += 1;
        path.to_str()
            .and_then(|p| self.files.get(p))
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

/// Names of the extra files the `ini` and `hba` targets make from NUL-separated input.
pub const FILE_NAMES: [&str; 3] = ["a.ini", "b.ini", "c.ini"];

/// The first NUL-separated part as the main text, the next ones as [`FILE_NAMES`].
fn mem_files(data: &[u8]) -> Option<(&str, BTreeMap<String, String>)> {
    let mut parts = data.split(|&b| b == 0);
    let main = std::str::from_utf8(parts.next()?).ok()?;
    let files = FILE_NAMES
        .iter()
        .zip(parts)
        .filter_map(|(name, text)| {
            Some(((*name).to_owned(), String::from_utf8(text.to_vec()).ok()?))
        })
        .collect();
    Some((main, files))
}

/// Renders ini items as lines that parse back to the same items.
fn render_ini(items: &[ini::Item]) -> String {
    let bare = |k: &str| {
        k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-*".contains(c))
    };
    let mut out = String::new();
    for item in items {
        match item {
            ini::Item::Section { name, .. } => {
                let _ = writeln!(out, "[{name}]");
            }
            ini::Item::Pair { key, value, .. } if bare(key) => {
                let _ = writeln!(out, "{key} = {value}");
            }
            ini::Item::Pair { key, value, .. } => {
                let _ = writeln!(out, "{} = {value}", quote(key, '"'));
            }
        }
    }
    out
}

/// Items without their locations.
fn unlocated(items: &[ini::Item]) -> Vec<(bool, &str, &str)> {
    items
        .iter()
        .map(|item| match item {
            ini::Item::Section { name, .. } => (true, name.as_str(), ""),
            ini::Item::Pair { key, value, .. } => (false, key.as_str(), value.as_str()),
        })
        .collect()
}

/// `pgbouncer.ini` with `%include` (`config/ini.rs`), then the whole load (`config/load.rs`:
/// sections, every `[pgbouncer]` setting, `[databases]`, `[users]`, `[peers]`, validation).
pub fn ini(data: &[u8]) {
    let Some((main, files)) = mem_files(data) else {
        return;
    };
    let mut src = MemFiles { files, reads: 0 };
    match ini::parse(main, "main.ini", &mut src) {
        Ok(items) => {
            for item in &items {
                match item {
                    ini::Item::Section { name, .. } => assert!(!name.contains(']')),
                    ini::Item::Pair { key, value, .. } => {
                        assert!(!key.is_empty() && value.trim() == value);
                    }
                }
            }
            let rendered = render_ini(&items);
            let mut none = MemFiles {
                files: BTreeMap::new(),
                reads: 0,
            };
            let again = ini::parse(&rendered, "rendered.ini", &mut none);
            assert!(
                matches!(&again, Ok(a) if unlocated(a) == unlocated(&items)),
                "{rendered:?}"
            );
        }
        Err(e) => assert!(e.line().is_some_and(|l| l >= 1) && !e.to_string().is_empty()),
    }
    src.reads = 0;
    if let Err(e) = Config::from_ini_source(main, "main.ini", &mut src) {
        assert!(!e.to_string().is_empty());
    }
}

/// `[databases]` connection strings (`config/connstr.rs`): pairs round-trip through quoting.
pub fn connstr(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match connstr::split_pairs(text) {
        Ok(pairs) => {
            assert!(pairs.iter().all(|(k, v)| !k.is_empty() && !v.is_empty()));
            let rendered: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{k}={}", quote(v, '\'')))
                .collect();
            let rendered = rendered.join(" ");
            assert_eq!(
                connstr::split_pairs(&rendered).as_ref(),
                Ok(&pairs),
                "{rendered:?}"
            );
            if let Err(e) = connstr::build("db", pairs) {
                assert!(!e.is_empty());
            }
        }
        Err(e) => assert_eq!(e, "syntax error in connection string"),
    }
    let _ = connstr::check_name(text);
    let _ = connstr::parse_pool_mode(text);
}

/// The text of a secret as `auth_file` holds it.
fn secret_text(secret: &Secret) -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match secret {
        Secret::Plain(p) => p.clone(),
        Secret::Md5(hex) => format!("md5{hex}"),
        Secret::Scram(s) => format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            s.iterations,
            b64(&s.salt),
            b64(&s.stored_key),
            b64(&s.server_key)
        ),
    }
}

/// `auth_file` / userlist.txt (`config/userlist.rs`): limits hold, entries round-trip.
pub fn userlist(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let list = userlist::parse(text);
    if let Some((line, reason)) = list.broken {
        assert!(line >= 1 && line <= text.lines().count() && !reason.is_empty());
    }
    let mut rendered = String::new();
    for (user, secret) in &list.users {
        assert!(user.len() < 128);
        match secret {
            Secret::Plain(p) => assert!(p.len() <= 65535),
            Secret::Md5(hex) => assert!(hex.len() == 32 && !hex.contains(char::is_uppercase)),
            Secret::Scram(s) => assert!(s.iterations > 0),
        }
        let _ = writeln!(
            rendered,
            "{} {}",
            quote(user, '"'),
            quote(&secret_text(secret), '"')
        );
    }
    let again = userlist::parse(&rendered);
    assert!(
        again.broken.is_none() && again.users == list.users,
        "{rendered:?}"
    );
    let _ = crate::auth::parse_scram_secret(text);
}

/// The words of `text` (for names to look up), at most `n`.
fn words(text: &str, n: usize) -> Vec<&str> {
    text.split_whitespace().take(n).collect()
}

/// `auth_hba_file` (`auth/hba.rs`) with `@file` lists; then rule lookup.
pub fn hba(data: &[u8]) {
    let Some((main, files)) = mem_files(data) else {
        return;
    };
    let lines = main.lines().count();
    let mut include = |name: &str| {
        files
            .get(name)
            .cloned()
            .ok_or_else(|| format!("could not open {name}"))
    };
    let hba = match Hba::parse(main, "hba.conf", &mut include) {
        Ok(hba) => hba,
        Err(e) => {
            assert!(e.line >= 1 && e.line <= lines && e.file == "hba.conf");
            return;
        }
    };
    assert!(hba.len() <= lines);
    let names = words(main, 8);
    let mut addrs: Vec<Option<IpAddr>> = vec![
        None,
        Some(IpAddr::from([127, 0, 0, 1])),
        Some(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
        Some(IpAddr::from([10, 1, 2, 3])),
    ];
    addrs.extend(
        names
            .iter()
            .filter_map(|w| w.split('/').next()?.parse().ok().map(Some)),
    );
    for addr in addrs {
        for (database, user) in names.iter().zip(names.iter().rev()) {
            for (tls, physical_replication) in [(false, false), (true, false), (false, true)] {
                let c = Connection {
                    addr,
                    tls,
                    database,
                    user,
                    physical_replication,
                };
                if let Some(rule) = hba.find(&c) {
                    assert!(rule.matches(&c) && rule.line >= 1 && rule.line <= lines);
                }
            }
        }
    }
    if hba.check_maps(&IdentMaps::default(), "ident").is_ok() {
        let c = Connection {
            addr: None,
            tls: false,
            database: "db",
            user: "user",
            physical_replication: false,
        };
        assert!(hba.find(&c).is_none_or(|r| r.map.is_none()));
    }
}

/// `auth_ident_file` (`auth/ident.rs`): first text NUL more lines. Adding lines never takes a
/// permission away (a skipped line can only refuse, never allow).
pub fn ident(data: &[u8]) {
    let (first, more) = split_nul(data);
    let Ok(text) = std::str::from_utf8(first) else {
        return;
    };
    let (maps, warnings) = IdentMaps::parse(text, "ident.conf");
    let lines = text.lines().count();
    assert!(maps.len() <= lines);
    assert!(warnings.iter().all(|w| w.line >= 1 && w.line <= lines));
    assert!(warnings.windows(2).all(|w| w[0].line < w[1].line));
    let Some(more) = more.and_then(|m| std::str::from_utf8(m).ok()) else {
        return;
    };
    let (bigger, _) = IdentMaps::parse(&format!("{text}\n{more}"), "ident.conf");
    let names = words(text, 6);
    for map in &names {
        for system in &names {
            for user in &names {
                if maps.allows(map, |s| s == *system, user) {
                    assert!(bigger.allows(map, |s| s == *system, user));
                }
            }
        }
        assert!(!maps.contains(map) || bigger.contains(map));
    }
}
