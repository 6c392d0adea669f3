//! The PostgreSQL v3 wire protocol, as far as a pooler needs it.
//!
//! Owns: frame boundaries ([`frame`]), the startup packet ([`startup`]), writers for every message
//! the pooler itself emits ([`backend`] towards clients, [`frontend`] towards servers), the
//! streaming header scanner the relay uses ([`scan`]), readers for the few server messages the
//! pooler must understand during login ([`reply`]), the primitive field readers they share
//! ([`wire`]) and SQLSTATE codes ([`sqlstate`]).
//!
//! Does not: touch sockets or keep connection state. Everything here is pure and bounds-checked;
//! a length from the wire is validated before anything is reserved for it.

pub mod backend;
pub mod frame;
pub mod frontend;
pub mod reply;
pub mod scan;
pub mod sqlstate;
pub mod startup;
pub mod wire;

/// The transaction status a ReadyForQuery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block (queries are refused until it ends).
    Failed,
}

impl TxStatus {
    /// The status of a ReadyForQuery body. A body that is empty or carries an unknown byte
    /// counts as [`TxStatus::Failed`]: never idle, so a server in doubt is not handed on.
    pub fn of_ready_body(body: &[u8]) -> Self {
        match body.first() {
            Some(b'I') => Self::Idle,
            Some(b'T') => Self::InTransaction,
            _ => Self::Failed,
        }
    }

    /// The byte on the wire.
    pub const fn byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InTransaction => b'T',
            Self::Failed => b'E',
        }
    }
}

/// An error the pooler itself answers with, as an ErrorResponse: PgBouncer's text and its
/// SQLSTATE (08P01, PgBouncer's default, unless said otherwise). The console's command errors
/// and login refusals and the control loop's replies are all this one type; a client login's
/// own failures are `client::errors::ClientError`, which maps to its SQLSTATE exhaustively, and
/// a server's error is relayed with the server's fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PoolerError {
    /// SQLSTATE.
    pub sqlstate: &'static str,
    /// Message text.
    pub message: String,
}

impl PoolerError {
    /// An error with PgBouncer's default SQLSTATE, 08P01.
    pub fn new(message: impl Into<String>) -> PoolerError {
        PoolerError::with_state(sqlstate::PROTOCOL_VIOLATION, message)
    }

    /// An error with `sqlstate`.
    pub fn with_state(sqlstate: &'static str, message: impl Into<String>) -> PoolerError {
        PoolerError {
            sqlstate,
            message: message.into(),
        }
    }

    /// Appends it as an ErrorResponse of `severity`.
    pub fn write(&self, out: &mut bytes::BytesMut, severity: backend::Severity) {
        backend::error_response(out, severity, self.sqlstate, &self.message);
    }
}

/// A malformed message from either side.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// A length field outside the allowed range.
    #[error("invalid message length {0}")]
    BadLength(i64),
    /// A message the pooler must read whole, declared longer than it buffers.
    #[error("message too long to read whole ({0} bytes)")]
    TooLongToRead(usize),
    /// A message body that does not have the shape its tag requires.
    #[error("malformed {0} message")]
    Malformed(&'static str),
    /// A startup packet with a protocol version we do not speak.
    #[error("unsupported frontend protocol {major}.{minor}")]
    UnsupportedProtocol {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
}

#[cfg(test)]
mod tests {
    use super::{PoolerError, TxStatus, backend, reply, sqlstate};

    #[test]
    fn a_pooler_error_defaults_to_08p01_and_writes_its_fields() {
        let e = PoolerError::new("not allowed");
        assert_eq!(
            (e.sqlstate, e.to_string().as_str()),
            ("08P01", "not allowed")
        );
        let e = PoolerError::with_state(sqlstate::FEATURE_NOT_SUPPORTED, "nope");
        let mut out = bytes::BytesMut::new();
        e.write(&mut out, backend::Severity::Fatal);
        assert_eq!(out[0], b'E');
        let fields = reply::ErrorFields::parse(&out[5..]);
        assert_eq!(fields.severity.as_deref(), Some("FATAL"));
        assert_eq!(fields.code.as_deref(), Some("0A000"));
        assert_eq!(fields.message.as_deref(), Some("nope"));
    }

    #[test]
    fn ready_for_query_status_round_trips_and_doubt_is_never_idle() {
        for status in [TxStatus::Idle, TxStatus::InTransaction, TxStatus::Failed] {
            assert_eq!(TxStatus::of_ready_body(&[status.byte()]), status);
        }
        assert_eq!(TxStatus::of_ready_body(b""), TxStatus::Failed);
        assert_eq!(TxStatus::of_ready_body(b"X"), TxStatus::Failed);
    }
}
