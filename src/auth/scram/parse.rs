//! SCRAM message grammar helpers (RFC 5802 section 7).
//!
//! Owns: the size limit, splitting a message into `x=value` attributes in a fixed order,
//! nonce and base64 checks.
//!
//! Does not: decide what a message means; `server.rs` and `client.rs` do.
//!
//! Invariants: nothing here indexes or panics; every failure is an [`AuthError`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::super::AuthError;

/// Longer than any legitimate SCRAM message (PostgreSQL's are under 200 bytes); bounds the work
/// a peer can cause before it is rejected.
pub(super) const MAX_MESSAGE_LEN: usize = 4096;

/// Rejects messages over [`MAX_MESSAGE_LEN`].
pub(super) fn check_len(msg: &[u8]) -> Result<(), AuthError> {
    if msg.len() > MAX_MESSAGE_LEN {
        return Err(AuthError::MessageTooLong);
    }
    Ok(())
}

/// The comma-separated attributes of a message, read in order.
pub(super) struct Attrs<'a> {
    /// What is left after the last comma read; `None` once the last part was returned.
    rest: Option<&'a [u8]>,
}

impl<'a> Attrs<'a> {
    pub(super) fn new(msg: &'a [u8]) -> Self {
        Self { rest: Some(msg) }
    }

    /// The next raw part (possibly empty), or `None` at the end.
    pub(super) fn next_raw(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        if let Some(comma) = rest.iter().position(|&b| b == b',') {
            self.rest = rest.get(comma.saturating_add(1)..);
            rest.get(..comma)
        } else {
            self.rest = None;
            Some(rest)
        }
    }

    /// The value of the next attribute, which must be `name=`; `what` names it in the error.
    pub(super) fn expect(&mut self, name: u8, what: &'static str) -> Result<&'a [u8], AuthError> {
        let part = self.next_raw().ok_or(AuthError::Malformed(what))?;
        attr_value(part, name).ok_or(AuthError::Malformed(what))
    }

    /// Accepts only further `x=value` extension attributes (RFC 5802 allows them at the end).
    pub(super) fn rest_are_extensions(&mut self) -> Result<(), AuthError> {
        while let Some(part) = self.next_raw() {
            let is_ext = matches!(part, [name, b'=', ..] if name.is_ascii_alphabetic());
            if !is_ext {
                return Err(AuthError::Malformed("garbage after the last attribute"));
            }
        }
        Ok(())
    }
}

/// `value` if `part` is `name=value`.
pub(super) fn attr_value(part: &[u8], name: u8) -> Option<&[u8]> {
    match part {
        [n, b'=', value @ ..] if *n == name => Some(value),
        _ => None,
    }
}

/// A nonce: printable ASCII except `,` (RFC 5802 `printable`), at least one character.
pub(super) fn nonce(value: &[u8]) -> Result<&str, AuthError> {
    let printable = |b: &u8| (0x21..=0x7e).contains(b) && *b != b',';
    if value.is_empty() || !value.iter().all(printable) {
        return Err(AuthError::Malformed("invalid nonce"));
    }
    std::str::from_utf8(value).map_err(|_| AuthError::Malformed("invalid nonce"))
}

/// Decodes standard, padded base64.
pub(super) fn base64(value: &[u8], what: &'static str) -> Result<Vec<u8>, AuthError> {
    STANDARD
        .decode(value)
        .map_err(|_| AuthError::Malformed(what))
}

/// Decodes base64 that must hold exactly one 32-byte key.
pub(super) fn base64_key(value: &[u8], what: &'static str) -> Result<[u8; 32], AuthError> {
    base64(value, what)?
        .try_into()
        .map_err(|_| AuthError::Malformed(what))
}

/// Encodes standard, padded base64.
pub(super) fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The part of `msg` before its last `,p=` (the client-final-message without proof) and the
/// proof's value.
pub(super) fn split_proof(msg: &[u8]) -> Result<(&[u8], &[u8]), AuthError> {
    let missing = AuthError::Malformed("missing proof");
    let pos = msg
        .windows(3)
        .rposition(|w| w == b",p=")
        .ok_or(missing.clone())?;
    let without = msg.get(..pos).ok_or(missing.clone())?;
    let proof = msg.get(pos.saturating_add(3)..).ok_or(missing)?;
    Ok((without, proof))
}

/// Random bytes, base64-encoded: a nonce part. 18 bytes as PostgreSQL and libpq use.
pub(super) fn random_nonce() -> String {
    let mut raw = [0u8; 18];
    rand::Rng::fill(&mut rand::thread_rng(), &mut raw);
    encode(&raw)
}
