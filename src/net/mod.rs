//! Byte transport: the [`Stream`] a client or server connection runs over (TCP, TLS over TCP
//! either way, or a unix socket),
//! a cancel-safe whole-message reader for the login phases ([`MessageReader`]), and socket options.
//!
//! Does not: interpret messages beyond their framing; that is `protocol`'s job.

mod reader;
mod sockopt;
mod stream;

pub use reader::{MessageReader, ReadError};
pub use sockopt::{KeepaliveSettings, apply_tcp_options};
pub use stream::Stream;
