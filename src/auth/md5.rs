//! PostgreSQL's md5 password method.
//!
//! Owns: the md5 secret (`md5(password + user)`), the salted challenge response, and checking a
//! client's response against a stored plain or md5 secret.
//!
//! Does not: read or write protocol messages, choose the method (`client/auth.rs` does), or
//! pick the salt (the caller draws 4 random bytes per login).
//!
//! Invariants: responses are compared in constant time; a SCRAM secret never verifies an md5
//! response (it cannot: the md5 secret is not derivable from it).

use std::fmt::Write as _;

use md5::{Digest, Md5};

use super::ct::ct_eq;
use crate::config::Secret;

/// The prefix PostgreSQL puts before the hex digest in md5 secrets and responses.
const MD5_PREFIX: &str = "md5";

/// `hex(md5(password + user))`, lower case, without the `md5` prefix: what `auth_file` stores.
pub fn md5_secret(user: &str, password: &str) -> String {
    let mut hasher = Md5::new();
    hasher.update(password.as_bytes());
    hasher.update(user.as_bytes());
    hex(&hasher.finalize())
}

/// `"md5" + hex(md5(secret_hex + salt))`: what a client answers to an md5 challenge, and what the
/// pooler answers when a server challenges it.
pub fn md5_response(secret_hex: &str, salt: [u8; 4]) -> String {
    let mut hasher = Md5::new();
    hasher.update(secret_hex.as_bytes());
    hasher.update(salt);
    let mut out = String::with_capacity(MD5_PREFIX.len() + 32);
    out.push_str(MD5_PREFIX);
    out.push_str(&hex(&hasher.finalize()));
    out
}

/// Checks a client's md5 response (the password message's bytes, without the terminating NUL)
/// against a stored secret. `false` for SCRAM secrets.
pub fn verify_md5(secret: &Secret, user: &str, salt: [u8; 4], client_response: &[u8]) -> bool {
    let secret_hex = match secret {
        Secret::Plain(password) => md5_secret(user, password),
        // Stored lower case by the config parser; lowering again costs nothing and keeps a
        // hand-built secret from failing for its case alone.
        Secret::Md5(hex) => hex.to_ascii_lowercase(),
        Secret::Scram(_) => return false,
    };
    let expected = md5_response(&secret_hex, salt);
    ct_eq(expected.as_bytes(), client_response)
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing into a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: [u8; 4] = [0x01, 0x02, 0x03, 0x04];

    #[test]
    fn known_secret() {
        // The documented example: user admin, password 1234.
        assert_eq!(
            md5_secret("admin", "1234"),
            "45f2603610af569b6155c45067268c6b"
        );
    }

    #[test]
    fn response_shape() {
        let r = md5_response("45f2603610af569b6155c45067268c6b", SALT);
        assert_eq!(r.len(), 35);
        assert!(r.starts_with("md5"));
        // Computed at dev time with Python's hashlib: md5(b"45f2...6c6b" + bytes([1,2,3,4])).
        assert_eq!(r, "md53db460fcab3fd3a6df7db145a8d8253b");
    }

    #[test]
    fn verify_plain_and_md5_secrets() {
        let response = md5_response(&md5_secret("admin", "1234"), SALT);
        let plain = Secret::Plain("1234".to_owned());
        let md5 = Secret::Md5("45f2603610af569b6155c45067268c6b".to_owned());
        assert!(verify_md5(&plain, "admin", SALT, response.as_bytes()));
        assert!(verify_md5(&md5, "admin", SALT, response.as_bytes()));
        assert!(!verify_md5(
            &md5,
            "admin",
            [0, 0, 0, 0],
            response.as_bytes()
        ));
        assert!(!verify_md5(
            &md5,
            "other",
            SALT,
            md5_response(&md5_secret("other", "x"), SALT).as_bytes()
        ));
        let wrong = md5_response(&md5_secret("admin", "12345"), SALT);
        assert!(!verify_md5(&plain, "admin", SALT, wrong.as_bytes()));
        assert!(!verify_md5(&plain, "admin", SALT, b""));
    }

    #[test]
    fn scram_secret_never_verifies_md5() {
        let scram = Secret::Scram(crate::auth::scram_secret_from_password("1234", b"salt", 1));
        let response = md5_response(&md5_secret("admin", "1234"), SALT);
        assert!(!verify_md5(&scram, "admin", SALT, response.as_bytes()));
    }
}
