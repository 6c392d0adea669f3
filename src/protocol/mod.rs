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
    use super::TxStatus;

    #[test]
    fn ready_for_query_status_round_trips_and_doubt_is_never_idle() {
        for status in [TxStatus::Idle, TxStatus::InTransaction, TxStatus::Failed] {
            assert_eq!(TxStatus::of_ready_body(&[status.byte()]), status);
        }
        assert_eq!(TxStatus::of_ready_body(b""), TxStatus::Failed);
        assert_eq!(TxStatus::of_ready_body(b"X"), TxStatus::Failed);
    }
}
