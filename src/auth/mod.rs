//! Client and server authentication: md5, SCRAM-SHA-256, and the `auth_type` policy.
//!
//! Owns: pure functions over authentication messages and secrets — md5 responses
//! (`md5.rs`), both sides of SCRAM (`scram.rs`), checking a cleartext password
//! ([`verify_cleartext`]), the HBA file subset PgBouncer supports ([`hba`]) and its user-name
//! maps ([`ident`]), and constant-time comparison.
//!
//! Does not: touch sockets, run async code, frame protocol messages, log, or look users up; nor
//! choose the method a client login uses: `client/auth.rs` does.
//! Callers (`client/auth.rs` for clients, `server/login.rs` for servers) move the bytes and map
//! [`AuthError`] to PgBouncer's error texts.
//!
//! Invariants: secrets and derived keys never appear in errors or `Debug` output; every
//! comparison of secret-derived bytes is constant-time; no input panics.

mod ct;
mod error;
pub mod hba;
pub mod ident;
mod md5;
mod scram;

pub use error::AuthError;
pub use md5::{md5_response, md5_secret, verify_md5};
pub use scram::{
    MAX_SCRAM_ITERATIONS, SCRAM_SHA_256, ScramClient, ScramServer, parse_scram_secret,
    scram_secret_from_password,
};

use sha2::{Digest as _, Sha256};

use crate::config::Secret;

/// Whether a cleartext password (from `auth_type = plain`) matches the stored secret, whatever
/// its kind. Constant-time in the comparison.
pub fn verify_cleartext(secret: &Secret, user: &str, password: &str) -> bool {
    match secret {
        // Compared as digests so the time does not depend on the stored password's length.
        Secret::Plain(stored) => ct::ct_eq(
            &Sha256::digest(stored.as_bytes()),
            &Sha256::digest(password.as_bytes()),
        ),
        Secret::Md5(stored) => ct::ct_eq(
            stored.to_ascii_lowercase().as_bytes(),
            md5_secret(user, password).as_bytes(),
        ),
        Secret::Scram(stored) => scram::verify_scram_password(stored, password),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scram() -> Secret {
        Secret::Scram(scram_secret_from_password("pw", b"salt", 1))
    }

    #[test]
    fn cleartext_against_each_secret_kind() {
        let plain = Secret::Plain("pw".into());
        let md5 = Secret::Md5(md5_secret("u", "pw"));
        for secret in [&plain, &md5, &scram()] {
            assert!(verify_cleartext(secret, "u", "pw"));
            assert!(!verify_cleartext(secret, "u", "pw2"));
        }
    }
}
