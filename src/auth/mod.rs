//! Client and server authentication: md5, SCRAM-SHA-256, and the `auth_type` policy.
//!
//! Owns: pure functions over authentication messages and secrets — md5 responses
//! (`md5.rs`), both sides of SCRAM (`scram.rs`), checking a cleartext password
//! ([`verify_cleartext`]), the HBA file subset PgBouncer supports ([`hba`]) and its user-name
//! maps ([`ident`]), and constant-time comparison.
//!
//! Does not: touch sockets, run async code, frame protocol messages, log, or look users up; nor
//! choose the method a client login uses: `client/auth.rs` does (`method_for` and `Method` here
//! are an older copy of that choice which the login does not call).
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

use crate::config::{AuthType, Secret};

/// How a client login asks for the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// No password asked.
    Trust,
    /// AuthenticationCleartextPassword.
    Cleartext,
    /// AuthenticationMD5Password with a random salt.
    Md5,
    /// AuthenticationSASL offering SCRAM-SHA-256.
    ScramSha256,
}

/// PgBouncer's choice of method for a client login under `auth_type`, given the user's stored
/// secret. `secret` is `None` for an unknown user: the method is then the one a known user would
/// get, so the caller can run an exchange that is bound to fail without revealing which users
/// exist.
///
/// - `md5`: an md5 challenge, unless the stored secret is SCRAM (md5 cannot be checked against
///   it), then SCRAM.
/// - `scram-sha-256`: SCRAM, from a plain or SCRAM secret; an md5 secret fails the login.
/// - `plain`: cleartext.
/// - `trust`, `any`: no password.
/// - `cert`, `hba`, `pam`, `ldap`: not decided here (`hba` is resolved to a rule's method by
///   the caller first).
pub fn method_for(auth_type: AuthType, secret: Option<&Secret>) -> Result<Method, AuthError> {
    match auth_type {
        AuthType::Trust | AuthType::Any => Ok(Method::Trust),
        AuthType::Plain => Ok(Method::Cleartext),
        AuthType::Md5 => match secret {
            Some(Secret::Scram(_)) => Ok(Method::ScramSha256),
            _ => Ok(Method::Md5),
        },
        AuthType::ScramSha256 => match secret {
            Some(Secret::Md5(_)) => Err(AuthError::UnsupportedSecret(SCRAM_SHA_256)),
            _ => Ok(Method::ScramSha256),
        },
        AuthType::Cert | AuthType::Hba | AuthType::Pam | AuthType::Ldap => {
            Err(AuthError::UnsupportedAuthType(auth_type.as_str()))
        }
    }
}

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
    fn policy_follows_pgbouncer() {
        let plain = Secret::Plain("pw".into());
        let md5 = Secret::Md5(md5_secret("u", "pw"));
        assert_eq!(method_for(AuthType::Md5, Some(&plain)), Ok(Method::Md5));
        assert_eq!(method_for(AuthType::Md5, Some(&md5)), Ok(Method::Md5));
        assert_eq!(
            method_for(AuthType::Md5, Some(&scram())),
            Ok(Method::ScramSha256)
        );
        assert_eq!(method_for(AuthType::Md5, None), Ok(Method::Md5));
        assert_eq!(
            method_for(AuthType::ScramSha256, Some(&plain)),
            Ok(Method::ScramSha256)
        );
        assert_eq!(
            method_for(AuthType::ScramSha256, Some(&scram())),
            Ok(Method::ScramSha256)
        );
        assert!(method_for(AuthType::ScramSha256, Some(&md5)).is_err());
        assert_eq!(
            method_for(AuthType::Plain, Some(&md5)),
            Ok(Method::Cleartext)
        );
        assert_eq!(method_for(AuthType::Trust, None), Ok(Method::Trust));
        assert_eq!(method_for(AuthType::Any, Some(&plain)), Ok(Method::Trust));
        assert!(method_for(AuthType::Pam, Some(&plain)).is_err());
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
