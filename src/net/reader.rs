//! A whole-message reader for where the pooler must see every message: a client's startup and
//! authentication, a server's login, and the admin console's session. The relay does not use
//! it (it streams with `protocol::scan`), and neither do the pooler's own queries on a server
//! (parameter alignment, reset, check, ROLLBACK): `server/query.rs` reads their replies itself.
//!
//! Invariant: the buffer lives in the struct, so a `read_*` raced in `select!` and dropped loses
//! no bytes (cancel-safe).

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::protocol::ProtocolError;
use crate::protocol::frame::{HEADER_LEN, complete_frame, startup_len, tagged_len};

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// A socket error.
    #[error("socket error")]
    Io(#[from] std::io::Error),
    /// Bad framing.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// A read buffer plus the framing rules for one connection.
#[derive(Debug)]
pub struct MessageReader {
    buf: BytesMut,
    max_len: usize,
}

impl MessageReader {
    /// A reader with an initial capacity that refuses messages longer than `max_len`.
    pub fn new(capacity: usize, max_len: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(capacity),
            max_len,
        }
    }

    /// The bytes read but not yet consumed.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Gives up the buffer (to hand unread bytes to the relay).
    pub fn into_buffer(self) -> BytesMut {
        self.buf
    }

    async fn fill<S: AsyncRead + Unpin>(&mut self, stream: &mut S) -> Result<(), ReadError> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        if stream.read_buf(&mut self.buf).await? == 0 {
            return Err(ReadError::Closed);
        }
        Ok(())
    }

    /// Reads one whole startup packet (including its length word).
    pub async fn read_startup<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<BytesMut, ReadError> {
        loop {
            if let Some(len) = startup_len(&self.buf)? {
                if self.buf.len() >= len {
                    return Ok(self.buf.split_to(len));
                }
            }
            self.fill(stream).await?;
        }
    }

    /// Reads one whole tagged message; returns its tag and body.
    pub async fn read_message<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<(u8, BytesMut), ReadError> {
        loop {
            if let Some((tag, total)) = complete_frame(&self.buf, self.max_len)? {
                let mut frame = self.buf.split_to(total);
                frame.advance(HEADER_LEN);
                return Ok((tag, frame));
            }
            // Validate the header early so an absurd length is refused before we buffer it.
            tagged_len(&self.buf, self.max_len)?;
            self.fill(stream).await?;
        }
    }
}
