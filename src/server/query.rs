//! The pooler's own simple queries on a server: alignment SETs, `server_reset_query`,
//! `server_check_query`, `connect_query`, ROLLBACK. Replies are consumed here, never relayed.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ServerConn, ServerError};
use crate::net::ReadError;
use crate::protocol::TxStatus;
use crate::protocol::frame::{HEADER_LEN, complete_frame, tagged_len};
use crate::protocol::frontend;
use crate::protocol::reply::{self, ErrorFields};
use crate::protocol::scan::WHOLE_MAX;

impl ServerConn {
    /// Runs `sql` with the simple protocol and reads to ReadyForQuery. ParameterStatus updates are
    /// tracked; the first ErrorResponse is returned as [`ServerError::Query`] (after the
    /// ReadyForQuery, so the connection stays in sync).
    pub async fn simple_query(&mut self, sql: &str) -> Result<TxStatus, ServerError> {
        let mut out = BytesMut::with_capacity(sql.len() + 6);
        frontend::query(&mut out, sql);
        self.stream.write_all(&out).await?;
        let mut error = None;
        loop {
            let (tag, body) = self.next_message().await?;
            match tag {
                b'S' => {
                    if let Ok((name, value)) = reply::parameter_status(&body) {
                        self.params.set(name, value);
                    }
                }
                b'E' => error = error.or_else(|| Some(ErrorFields::parse(&body))),
                b'Z' => {
                    let status = TxStatus::of_ready_body(&body);
                    return match error {
                        Some(fields) => Err(ServerError::Query(fields)),
                        None => Ok(status),
                    };
                }
                _ => {}
            }
        }
    }

    /// Reads one whole message from the server's own buffer. The replies to the pooler's own
    /// queries are read whole, so a message declared longer than [`WHOLE_MAX`] (16 MiB, the
    /// relay's cap for what it must see whole) is refused before it is buffered: a broken or
    /// hostile server cannot make the pooler allocate without bound.
    pub(super) async fn next_message(&mut self) -> Result<(u8, BytesMut), ServerError> {
        let max = WHOLE_MAX;
        loop {
            if let Some((tag, total)) =
                complete_frame(&self.read_buf, max).map_err(ReadError::from)?
            {
                let mut frame = self.read_buf.split_to(total);
                frame.advance(HEADER_LEN);
                return Ok((tag, frame));
            }
            tagged_len(&self.read_buf, max).map_err(ReadError::from)?;
            self.read_buf.reserve(4096);
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return Err(ServerError::Io(ReadError::Closed));
            }
        }
    }

    /// Sends Terminate and closes the socket, best effort.
    pub async fn terminate(mut self) {
        let mut out = BytesMut::with_capacity(5);
        frontend::terminate(&mut out);
        self.stream.send_and_close(&out).await;
    }
}
