//! The `auth_file` (userlist.txt) reader and secret decoding.
//!
//! Owns: `"user" "secret"` lines (`""` inside a field is one quote, `;` starts a comment line,
//! anything after the second field is ignored), and classifying a secret the way PgBouncer
//! (and PostgreSQL's `get_password_type`) does: `md5` + exactly 32 lower-case hex digits is
//! MD5; a well-formed `SCRAM-SHA-256$iter:salt$stored:server` is SCRAM; anything else, including
//! a malformed SCRAM string or upper-case MD5 hex, is a plain-text password.
//! Does not: log (the loader logs [`Userlist::broken`]), or verify passwords.
//! Invariants: like PgBouncer, a malformed line stops the reading there and the entries before
//! it are kept; user names must be shorter than 128 bytes and secrets at most 65535 bytes; a
//! later line for the same user wins. Never panics on any input.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::types::{ScramSecret, Secret};

/// PgBouncer's `MAX_USERNAME`.
const MAX_USERNAME: usize = 128;
/// PgBouncer 1.26's password limit.
const MAX_PASSWORD: usize = 65535;

/// The result of reading an auth file.
#[derive(Debug, Default)]
pub struct Userlist {
    /// Users and their secrets.
    pub users: BTreeMap<String, Secret>,
    /// If reading stopped early: the 1-based line and PgBouncer's reason.
    pub broken: Option<(usize, &'static str)>,
}

/// Parses the text of an auth file.
pub fn parse(text: &str) -> Userlist {
    let mut out = Userlist::default();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        match parse_line(line) {
            Ok((user, secret)) => {
                out.users.insert(user, decode_secret(&secret));
            }
            Err(reason) => {
                out.broken = Some((idx + 1, reason));
                break;
            }
        }
    }
    out
}

fn parse_line(line: &str) -> Result<(String, String), &'static str> {
    const BROKEN: &str = "broken auth file";
    let rest = line.strip_prefix('"').ok_or(BROKEN)?;
    let (user, rest) = quoted_field(rest).ok_or(BROKEN)?;
    if user.len() >= MAX_USERNAME {
        return Err("username too long in auth file");
    }
    // PgBouncer skips any characters up to the next quote; we keep that, within the line.
    let start = rest.find('"').ok_or(BROKEN)?;
    let (secret, _ignored) = quoted_field(&rest[start + 1..]).ok_or(BROKEN)?;
    if secret.len() > MAX_PASSWORD {
        return Err("password too long in auth file");
    }
    Ok((user, secret))
}

/// Reads a field after its opening quote: up to the closing quote, `""` being one quote.
fn quoted_field(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            if chars.peek().is_some_and(|&(_, n)| n == '"') {
                chars.next();
                out.push('"');
                continue;
            }
            return Some((out, &text[i + 1..]));
        }
        out.push(c);
    }
    None
}

/// Classifies a stored secret.
pub fn decode_secret(s: &str) -> Secret {
    if let Some(hex) = s.strip_prefix("md5") {
        if hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Secret::Md5(hex.to_owned());
        }
    }
    match parse_scram(s) {
        Some(scram) => Secret::Scram(scram),
        None => Secret::Plain(s.to_owned()),
    }
}

/// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
pub fn parse_scram(s: &str) -> Option<ScramSecret> {
    let rest = s.strip_prefix("SCRAM-SHA-256$")?;
    let (iter_salt, keys) = rest.split_once('$')?;
    let (iter, salt) = iter_salt.split_once(':')?;
    let (stored, server) = keys.split_once(':')?;
    let iterations: u32 = iter.parse().ok().filter(|&i| i > 0)?;
    let salt = STANDARD.decode(salt).ok()?;
    let stored_key: [u8; 32] = STANDARD.decode(stored).ok()?.try_into().ok()?;
    let server_key: [u8; 32] = STANDARD.decode(server).ok()?.try_into().ok()?;
    Some(ScramSecret {
        iterations,
        salt,
        stored_key,
        server_key,
    })
}
