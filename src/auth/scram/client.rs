//! The client side of SCRAM-SHA-256: the pooler logging in to a PostgreSQL server.
//!
//! Owns: client-first, client-final from server-first, and checking server-final; either from
//! a password or, for pass-through, from the ClientKey a client proved plus the stored secret.
//!
//! Does not: frame SASL messages or pick the mechanism; channel binding is not used (`n,,`).
//!
//! Invariants: a server-first asking for more than `MAX_SCRAM_ITERATIONS` is refused before any
//! key is derived (CVE-2026-6669); the server's signature is checked in constant time before the exchange counts
//! as done; a failed step moves the exchange to `Failed` and every later call is refused.

use super::crypto::{self, Key};
use super::parse::{self, Attrs};
use super::{MAX_SCRAM_ITERATIONS, normalize_password};
use crate::auth::AuthError;
use crate::auth::ct::ct_eq;
use crate::config::ScramSecret;

/// GS2 header without channel binding, and its base64 for `c=`.
const GS2_HEADER: &str = "n,,";
const GS2_HEADER_B64: &str = "biws";

/// The most of a server's `e=` reason kept in an error.
const MAX_REASON_LEN: usize = 200;

/// What the pooler knows about the user's password.
enum Credentials {
    /// The password itself (normalised).
    Password(Vec<u8>),
    /// Keys recovered from a client's SCRAM login, usable only with the secret's salt and
    /// iteration count.
    Keys {
        client_key: Key,
        server_key: Key,
        salt: Vec<u8>,
        iterations: u32,
    },
}

/// Where a client-side exchange is.
enum State {
    /// client-first not built yet.
    Initial,
    /// client-first sent; waiting for server-first.
    FirstSent {
        client_nonce: String,
        client_first_bare: String,
    },
    /// client-final sent; waiting for server-final, whose signature must be this.
    FinalSent { server_signature: Key },
    /// The server proved it knows the secret.
    Done,
    /// A step failed; the exchange is over.
    Failed,
}

/// One SCRAM-SHA-256 exchange in which the pooler is the client.
pub struct ScramClient {
    credentials: Credentials,
    state: State,
}

impl std::fmt::Debug for ScramClient {
    // Passwords and keys stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient").finish_non_exhaustive()
    }
}

impl ScramClient {
    /// An exchange using a known password.
    pub fn with_password(password: &str) -> Self {
        Self {
            credentials: Credentials::Password(normalize_password(password).to_vec()),
            state: State::Initial,
        }
    }

    /// A pass-through exchange: the ClientKey a client proved to the pooler and the user's
    /// stored secret (its ServerKey, salt and iteration count). The server must use the same
    /// salt and iteration count, as it does when it holds the same secret.
    pub fn with_keys(client_key: [u8; 32], secret: &ScramSecret) -> Self {
        Self {
            credentials: Credentials::Keys {
                client_key,
                server_key: secret.server_key,
                salt: secret.salt.clone(),
                iterations: secret.iterations,
            },
            state: State::Initial,
        }
    }

    /// client-first-message: `n,,n=,r=<nonce>`. The user name is left empty as libpq does;
    /// the server takes it from the startup packet.
    pub fn client_first(&mut self) -> Vec<u8> {
        self.client_first_with_nonce("", &parse::random_nonce())
    }

    /// [`Self::client_first`] with the user name (already a valid `saslname`) and nonce given;
    /// tests use the RFC's vectors, which name the user; the fuzz targets, a fixed nonce.
    #[doc(hidden)]
    pub fn client_first_with_nonce(&mut self, user: &str, client_nonce: &str) -> Vec<u8> {
        let client_first_bare = format!("n={user},r={client_nonce}");
        let msg = format!("{GS2_HEADER}{client_first_bare}").into_bytes();
        self.state = State::FirstSent {
            client_nonce: client_nonce.to_owned(),
            client_first_bare,
        };
        msg
    }

    /// Reads server-first-message; returns client-final-message.
    pub fn server_first(&mut self, msg: &[u8]) -> Result<Vec<u8>, AuthError> {
        match self.read_server_first(msg) {
            Ok((reply, server_signature)) => {
                self.state = State::FinalSent { server_signature };
                Ok(reply)
            }
            Err(e) => {
                self.state = State::Failed;
                Err(e)
            }
        }
    }

    /// Reads server-final-message: `Ok` when the server's signature is right.
    pub fn server_final(&mut self, msg: &[u8]) -> Result<(), AuthError> {
        let result = self.read_server_final(msg);
        self.state = if result.is_ok() {
            State::Done
        } else {
            State::Failed
        };
        result
    }

    fn read_server_first(&self, msg: &[u8]) -> Result<(Vec<u8>, Key), AuthError> {
        parse::check_len(msg)?;
        let State::FirstSent {
            client_nonce,
            client_first_bare,
        } = &self.state
        else {
            return Err(AuthError::OutOfOrder);
        };
        let first = ServerFirst::parse(msg)?;
        // The server must extend our nonce with one of its own.
        if first.nonce.len() <= client_nonce.len()
            || !first.nonce.starts_with(client_nonce.as_str())
        {
            return Err(AuthError::NonceMismatch);
        }
        let (client_key, server_key) = self.keys(&first.salt, first.iterations)?;
        let stored_key = crypto::h(&client_key);
        let without_proof = format!("c={GS2_HEADER_B64},r={}", first.nonce);
        let auth_message =
            crypto::auth_message(client_first_bare.as_bytes(), msg, without_proof.as_bytes());
        let client_signature = crypto::hmac(&stored_key, &auth_message);
        let proof = crypto::xor(&client_key, &client_signature);
        let server_signature = crypto::hmac(&server_key, &auth_message);
        let reply = format!("{without_proof},p={}", parse::encode(&proof)).into_bytes();
        Ok((reply, server_signature))
    }

    /// ClientKey and ServerKey for the server's salt and iteration count.
    fn keys(&self, salt: &[u8], iterations: u32) -> Result<(Key, Key), AuthError> {
        match &self.credentials {
            Credentials::Password(password) => {
                let salted = crypto::hi(password, salt, iterations);
                Ok((crypto::client_key(&salted), crypto::server_key(&salted)))
            }
            Credentials::Keys {
                client_key,
                server_key,
                salt: stored_salt,
                iterations: stored_iterations,
            } => {
                // The keys derive from one salt and count; any other would need the password.
                if salt != stored_salt.as_slice() || iterations != *stored_iterations {
                    return Err(AuthError::SecretMismatch);
                }
                Ok((*client_key, *server_key))
            }
        }
    }

    fn read_server_final(&self, msg: &[u8]) -> Result<(), AuthError> {
        parse::check_len(msg)?;
        let State::FinalSent { server_signature } = &self.state else {
            return Err(AuthError::OutOfOrder);
        };
        let mut attrs = Attrs::new(msg);
        let first = attrs.next_raw().unwrap_or_default();
        if let Some(reason) = parse::attr_value(first, b'e') {
            return Err(AuthError::ServerError(printable_reason(reason)));
        }
        let verifier =
            parse::attr_value(first, b'v').ok_or(AuthError::Malformed("missing verifier"))?;
        let verifier = parse::base64_key(verifier, "invalid verifier")?;
        attrs.rest_are_extensions()?;
        if !ct_eq(&verifier, server_signature) {
            return Err(AuthError::WrongServerSignature);
        }
        Ok(())
    }
}

/// The fields of server-first-message.
struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

impl<'a> ServerFirst<'a> {
    fn parse(msg: &'a [u8]) -> Result<Self, AuthError> {
        if parse::attr_value(msg, b'm').is_some() {
            return Err(AuthError::Malformed("unsupported mandatory extension"));
        }
        let mut attrs = Attrs::new(msg);
        let nonce = parse::nonce(attrs.expect(b'r', "missing nonce")?)?;
        let salt = parse::base64(attrs.expect(b's', "missing salt")?, "invalid salt")?;
        if salt.is_empty() {
            return Err(AuthError::Malformed("empty salt"));
        }
        let iterations = iteration_count(attrs.expect(b'i', "missing iteration count")?)?;
        attrs.rest_are_extensions()?;
        Ok(Self {
            nonce,
            salt,
            iterations,
        })
    }
}

/// A positive decimal iteration count, at most [`MAX_SCRAM_ITERATIONS`].
fn iteration_count(value: &[u8]) -> Result<u32, AuthError> {
    let invalid = AuthError::Malformed("invalid iteration count");
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(invalid);
    }
    let count: u32 = std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(invalid.clone())?;
    if count == 0 {
        return Err(invalid);
    }
    if count > MAX_SCRAM_ITERATIONS {
        return Err(AuthError::TooManyIterations {
            count,
            limit: MAX_SCRAM_ITERATIONS,
        });
    }
    Ok(count)
}

/// The server's reason, kept printable and short for logs and client errors.
fn printable_reason(reason: &[u8]) -> String {
    reason
        .iter()
        .take(MAX_REASON_LEN)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}
