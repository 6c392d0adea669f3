//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it.
//!
//! Owns: the server side ([`ScramServer`], the pooler checking a client), the client side
//! ([`ScramClient`], the pooler logging in to a server, by password or by pass-through keys),
//! the stored-secret text format, and password normalisation.
//!
//! Does not: frame SASL protocol messages (AuthenticationSASL*, SASLInitialResponse,
//! SASLResponse are `protocol/`'s), choose the method, or offer channel binding
//! (`SCRAM-SHA-256-PLUS`).
//!
//! Invariants: every message is size-capped and parsed with attributes in the RFC's order;
//! no input panics; proofs and signatures are compared in constant time; no error carries key
//! material.
//!
//! Password normalisation: PostgreSQL runs SASLprep (RFC 4013) over the password and, when
//! that fails (prohibited characters), uses the raw bytes. For ASCII passwords the outcome is
//! always the raw bytes (SASLprep maps no ASCII character, NFKC leaves ASCII unchanged, and
//! ASCII control characters make SASLprep fail), so the fast path is exact. Non-ASCII passwords
//! are used as raw UTF-8 bytes: this matches PostgreSQL when the password is already in NFKC
//! form and has no characters SASLprep maps (non-ASCII spaces, soft hyphens, zero-width
//! characters…), or when it has prohibited ones; otherwise the verifier differs from the one
//! PostgreSQL would build and the login fails. Full SASLprep is not done here.

mod client;
mod crypto;
mod parse;
mod server;
#[cfg(test)]
mod tests;

pub use client::ScramClient;
pub use server::ScramServer;

use crate::config::ScramSecret;

/// The SASL mechanism name the pooler offers and uses.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// The most PBKDF2 iterations a server may ask the pooler to compute in one SCRAM login, as in
/// PgBouncer 1.26 (CVE-2026-6669). PostgreSQL's default is 4096; a server asking for more than
/// this is refused before any key is derived.
pub const MAX_SCRAM_ITERATIONS: u32 = 1_000_000;

/// Iteration count for verifiers built from plain passwords (PostgreSQL's default).
const DEFAULT_ITERATIONS: u32 = 4096;

/// Salt length for verifiers built from plain passwords (PostgreSQL's default).
const DEFAULT_SALT_LEN: usize = 16;

/// The bytes SCRAM hashes for `password`; see the module docs for what is not normalised.
fn normalize_password(password: &str) -> &[u8] {
    password.as_bytes()
}

/// Builds the verifier PostgreSQL would store for `password` with this salt and count.
pub fn scram_secret_from_password(password: &str, salt: &[u8], iterations: u32) -> ScramSecret {
    let salted = crypto::hi(normalize_password(password), salt, iterations);
    let client_key = crypto::client_key(&salted);
    ScramSecret {
        iterations,
        salt: salt.to_vec(),
        stored_key: crypto::h(&client_key),
        server_key: crypto::server_key(&salted),
    }
}

/// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 fields), as in
/// `pg_authid.rolpassword` and `auth_file`. `None` when it is not exactly that.
pub fn parse_scram_secret(text: &str) -> Option<ScramSecret> {
    let rest = text.strip_prefix("SCRAM-SHA-256$")?;
    let (params, keys) = rest.split_once('$')?;
    let (iterations, salt) = params.split_once(':')?;
    let (stored_key, server_key) = keys.split_once(':')?;
    if !iterations.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let iterations: u32 = iterations.parse().ok().filter(|&i| i > 0)?;
    let salt = parse::base64(salt.as_bytes(), "salt").ok()?;
    if salt.is_empty() {
        return None;
    }
    Some(ScramSecret {
        iterations,
        salt,
        stored_key: parse::base64_key(stored_key.as_bytes(), "stored key").ok()?,
        server_key: parse::base64_key(server_key.as_bytes(), "server key").ok()?,
    })
}

/// Whether a cleartext password matches a stored SCRAM secret (for `auth_type = plain`). A
/// secret with more than [`MAX_SCRAM_ITERATIONS`] (one an `auth_query` server could return) is
/// matched by nothing: deriving it would let one login burn minutes of CPU.
pub(super) fn verify_scram_password(secret: &ScramSecret, password: &str) -> bool {
    if secret.iterations > MAX_SCRAM_ITERATIONS {
        return false;
    }
    let derived = scram_secret_from_password(password, &secret.salt, secret.iterations);
    super::ct::ct_eq(&derived.stored_key, &secret.stored_key)
}
