//! Authentication errors.
//!
//! Owns: the one error type of `auth/`.
//!
//! Does not: map errors to PgBouncer's texts or SQLSTATEs (that is `client/errors.rs`), or decide
//! whether a connection is kept.
//!
//! Invariants: no message carries secret material (passwords, keys, proofs, salts); the only
//! outside text is a SCRAM server's `e=` reason, which is cut to a short printable string.

use thiserror::Error;

/// Why an authentication exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// The peer's message does not follow the grammar; the text names the rule, not the input.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The peer's message is longer than any legitimate one.
    #[error("SCRAM message too long")]
    MessageTooLong,
    /// A message arrived in a state that does not expect it.
    #[error("unexpected SCRAM message in this state")]
    OutOfOrder,
    /// The nonce does not continue the one exchanged before.
    #[error("SCRAM nonce mismatch")]
    NonceMismatch,
    /// The client asked for channel binding (`p=`), which the pooler does not offer.
    #[error("SCRAM channel binding is not supported")]
    ChannelBindingUnsupported,
    /// The `c=` attribute does not repeat the GS2 header of the first message.
    #[error("SCRAM channel binding data does not match")]
    ChannelBindingMismatch,
    /// The client named an authorization identity (`a=`); PostgreSQL supports none.
    #[error("client uses authorization identity, but it is not supported")]
    AuthzidUnsupported,
    /// The client's proof is wrong: wrong password.
    #[error("SCRAM client proof is invalid")]
    InvalidProof,
    /// The server's signature is wrong: the server does not know the secret.
    #[error("SCRAM server signature is invalid")]
    WrongServerSignature,
    /// The server asked for more PBKDF2 iterations than [`crate::auth::MAX_SCRAM_ITERATIONS`]
    /// (PgBouncer 1.26's cap, CVE-2026-6669): deriving the keys would be a CPU denial of service.
    #[error("SCRAM iteration count {count} from the server is over the limit of {limit}")]
    TooManyIterations {
        /// What the server asked for.
        count: u32,
        /// The cap.
        limit: u32,
    },
    /// The server ended the exchange with `e=`; the reason is the server's.
    #[error("SCRAM server error: {0}")]
    ServerError(String),
    /// The stored secret cannot serve this method (an md5 secret for SCRAM).
    #[error("the stored secret cannot be used for {0}")]
    UnsupportedSecret(&'static str),
    /// The server's salt or iteration count differs from the stored SCRAM secret, so the keys
    /// kept for pass-through cannot answer it.
    #[error("the server's SCRAM salt or iteration count differs from the stored secret")]
    SecretMismatch,
}
