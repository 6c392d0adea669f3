//! The server side of SCRAM-SHA-256: the pooler checking a client's password.
//!
//! Owns: the two-step exchange after the client picked `SCRAM-SHA-256` — client-first →
//! server-first, client-final → server-final — and the ClientKey recovered from a valid proof.
//!
//! Does not: frame SASL messages, pick the user (the startup packet's user is authoritative,
//! as in PostgreSQL: the SCRAM `n=` name is ignored), or offer channel binding.
//!
//! Invariants: a failed step moves the exchange to `Failed` and every later call is refused;
//! the proof is checked in constant time; the ClientKey is exposed only after a valid proof.

use std::fmt::Write as _;

use super::crypto::{self, Key};
use super::parse::{self, Attrs};
use super::{DEFAULT_ITERATIONS, DEFAULT_SALT_LEN, scram_secret_from_password};
use crate::auth::AuthError;
use crate::auth::ct::ct_eq;
use crate::config::{ScramSecret, Secret};

/// Where a server-side exchange is.
enum State {
    /// Waiting for client-first-message.
    Initial,
    /// server-first-message sent; waiting for client-final-message.
    FirstSent {
        gs2_header: Vec<u8>,
        client_first_bare: Vec<u8>,
        server_first: Vec<u8>,
        nonce: String,
    },
    /// The client proved it knows the password.
    Done { client_key: Key },
    /// A step failed; the exchange is over.
    Failed,
}

/// One SCRAM-SHA-256 exchange in which the pooler is the server.
pub struct ScramServer {
    user: String,
    secret: ScramSecret,
    state: State,
}

impl std::fmt::Debug for ScramServer {
    // Keys stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramServer")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    /// Starts an exchange for `user` against its stored secret. A plain password gets a fresh
    /// verifier (random salt, 4096 iterations, as PostgreSQL's default); an md5 secret cannot
    /// serve SCRAM.
    pub fn new(secret: &Secret, user: &str) -> Result<Self, AuthError> {
        let secret = match secret {
            Secret::Scram(s) => s.clone(),
            Secret::Plain(password) => {
                let mut salt = [0u8; DEFAULT_SALT_LEN];
                rand::Rng::fill(&mut rand::thread_rng(), &mut salt);
                scram_secret_from_password(password, &salt, DEFAULT_ITERATIONS)
            }
            Secret::Md5(_) => return Err(AuthError::UnsupportedSecret("SCRAM-SHA-256")),
        };
        Ok(Self {
            user: user.to_owned(),
            secret,
            state: State::Initial,
        })
    }

    /// An exchange for a user that does not exist (or whose login must fail), indistinguishable
    /// on the wire from a real one: it answers with a salt that is stable per user name — derived
    /// from `H(user || mock_nonce)`, as PostgreSQL does — and 4096 iterations, and then rejects
    /// every proof. `mock_nonce` is drawn once per process by the caller and kept secret, so the
    /// salt reveals nothing; a changing salt would tell a prober the user is unknown.
    pub fn doomed(user: &str, mock_nonce: &[u8; 32]) -> Self {
        let digest = crypto::h(&[user.as_bytes(), mock_nonce.as_slice()].concat());
        let salt: Vec<u8> = digest.iter().copied().take(DEFAULT_SALT_LEN).collect();
        // Random keys: no password's ClientKey hashes to this StoredKey.
        let mut rng = rand::thread_rng();
        let mut stored_key = [0u8; 32];
        let mut server_key = [0u8; 32];
        rand::Rng::fill(&mut rng, &mut stored_key);
        rand::Rng::fill(&mut rng, &mut server_key);
        let secret = ScramSecret {
            iterations: DEFAULT_ITERATIONS,
            salt,
            stored_key,
            server_key,
        };
        Self {
            user: user.to_owned(),
            secret,
            state: State::Initial,
        }
    }

    /// Reads client-first-message; returns server-first-message.
    pub fn client_first(&mut self, msg: &[u8]) -> Result<Vec<u8>, AuthError> {
        self.client_first_with_nonce(msg, &parse::random_nonce())
    }

    /// [`Self::client_first`] with the server's nonce part given (tests use RFC vectors; the
    /// fuzz targets need a fixed nonce to be deterministic).
    #[doc(hidden)]
    pub fn client_first_with_nonce(
        &mut self,
        msg: &[u8],
        server_nonce: &str,
    ) -> Result<Vec<u8>, AuthError> {
        let result = self.read_client_first(msg, server_nonce);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// Reads client-final-message; on a valid proof returns server-final-message.
    pub fn client_final(&mut self, msg: &[u8]) -> Result<Vec<u8>, AuthError> {
        let result = self.read_client_final(msg);
        match result {
            Ok((reply, client_key)) => {
                self.state = State::Done { client_key };
                Ok(reply)
            }
            Err(e) => {
                self.state = State::Failed;
                Err(e)
            }
        }
    }

    /// The client's ClientKey, known only after a valid proof: with the stored ServerKey it
    /// lets the pooler log in to a server as this user without knowing the password.
    pub fn client_key(&self) -> Option<[u8; 32]> {
        match self.state {
            State::Done { client_key } => Some(client_key),
            _ => None,
        }
    }

    fn read_client_first(&mut self, msg: &[u8], server_nonce: &str) -> Result<Vec<u8>, AuthError> {
        parse::check_len(msg)?;
        if !matches!(self.state, State::Initial) {
            return Err(AuthError::OutOfOrder);
        }
        let (gs2_header, bare) = gs2_header(msg)?;
        let client_nonce = client_first_bare(bare)?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let mut server_first = String::with_capacity(nonce.len() + 64);
        // Writing into a String cannot fail.
        let _ = write!(
            server_first,
            "r={nonce},s={},i={}",
            parse::encode(&self.secret.salt),
            self.secret.iterations
        );
        let server_first = server_first.into_bytes();
        self.state = State::FirstSent {
            gs2_header: gs2_header.to_vec(),
            client_first_bare: bare.to_vec(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok(server_first)
    }

    fn read_client_final(&self, msg: &[u8]) -> Result<(Vec<u8>, Key), AuthError> {
        parse::check_len(msg)?;
        let State::FirstSent {
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
        } = &self.state
        else {
            return Err(AuthError::OutOfOrder);
        };
        let (without_proof, proof) = parse::split_proof(msg)?;
        let mut attrs = Attrs::new(without_proof);
        let binding = attrs.expect(b'c', "missing channel binding")?;
        if parse::base64(binding, "invalid channel binding")? != *gs2_header {
            return Err(AuthError::ChannelBindingMismatch);
        }
        if attrs.expect(b'r', "missing nonce")? != nonce.as_bytes() {
            return Err(AuthError::NonceMismatch);
        }
        attrs.rest_are_extensions()?;
        let proof = parse::base64_key(proof, "invalid proof")?;
        let auth_message = crypto::auth_message(client_first_bare, server_first, without_proof);
        let client_signature = crypto::hmac(&self.secret.stored_key, &auth_message);
        let client_key = crypto::xor(&proof, &client_signature);
        if !ct_eq(&crypto::h(&client_key), &self.secret.stored_key) {
            return Err(AuthError::InvalidProof);
        }
        let server_signature = crypto::hmac(&self.secret.server_key, &auth_message);
        let reply = format!("v={}", parse::encode(&server_signature)).into_bytes();
        Ok((reply, client_key))
    }
}

/// Reads client-first-message-bare; returns the client's nonce.
fn client_first_bare(bare: &[u8]) -> Result<&str, AuthError> {
    let mut attrs = Attrs::new(bare);
    let first = attrs.next_raw().unwrap_or_default();
    if parse::attr_value(first, b'm').is_some() {
        return Err(AuthError::Malformed("unsupported mandatory extension"));
    }
    // The user name is ignored: the startup packet's user is the one authenticated, and libpq
    // sends an empty name.
    if parse::attr_value(first, b'n').is_none() {
        return Err(AuthError::Malformed("missing user name"));
    }
    let nonce = parse::nonce(attrs.expect(b'r', "missing nonce")?)?;
    attrs.rest_are_extensions()?;
    Ok(nonce)
}

/// Splits client-first-message into its GS2 header (with both commas) and the bare part,
/// checking the channel-binding flag and that no authorization identity is named.
fn gs2_header(msg: &[u8]) -> Result<(&[u8], &[u8]), AuthError> {
    let mut attrs = Attrs::new(msg);
    let flag = attrs.next_raw().unwrap_or_default();
    match flag {
        // `y`: the client could bind but believes we cannot; true, since only the non-PLUS
        // mechanism is offered, so this is no downgrade.
        b"n" | b"y" => {}
        [b'p', b'=', ..] => return Err(AuthError::ChannelBindingUnsupported),
        _ => return Err(AuthError::Malformed("invalid channel binding flag")),
    }
    let authzid = attrs
        .next_raw()
        .ok_or(AuthError::Malformed("missing authorization identity"))?;
    // PostgreSQL and PgBouncer refuse any authorization identity, even the user's own.
    if !authzid.is_empty() {
        return Err(AuthError::AuthzidUnsupported);
    }
    let header_len = flag.len().saturating_add(authzid.len()).saturating_add(2);
    let header = msg
        .get(..header_len)
        .ok_or(AuthError::Malformed("truncated"))?;
    let bare = msg
        .get(header_len..)
        .ok_or(AuthError::Malformed("truncated"))?;
    Ok((header, bare))
}
