//! Running `auth_query` on a server: one statement with one text parameter through the extended
//! protocol (unnamed statement and portal), rows returned as text.
//!
//! Does not: decide which pool runs it or cache results (the client login does both).

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;

use super::{ServerConn, ServerError};
use crate::protocol::backend::{message, put_cstr};
use crate::protocol::reply::{ErrorFields, data_row};

/// Rows of text columns; `None` is SQL NULL.
pub type Rows = Vec<Vec<Option<String>>>;

/// Parse + Bind + Execute + Sync for `sql` with one text parameter.
fn write_query(out: &mut BytesMut, sql: &str, param: &str) {
    message(out, b'P', |b| {
        put_cstr(b, "");
        put_cstr(b, sql);
        b.put_i16(0);
    });
    message(out, b'B', |b| {
        put_cstr(b, "");
        put_cstr(b, "");
        b.put_i16(0);
        b.put_i16(1);
        b.put_i32(i32::try_from(param.len()).unwrap_or(i32::MAX));
        b.put_slice(param.as_bytes());
        b.put_i16(0);
    });
    message(out, b'E', |b| {
        put_cstr(b, "");
        b.put_i32(0);
    });
    message(out, b'S', |_| {});
}

impl ServerConn {
    /// Runs `sql` with `$1 = param` and reads to ReadyForQuery; the first ErrorResponse is
    /// returned as [`ServerError::Query`] after the ReadyForQuery, so the server stays in sync.
    pub async fn query_with_param(&mut self, sql: &str, param: &str) -> Result<Rows, ServerError> {
        let mut out = BytesMut::with_capacity(sql.len() + param.len() + 64);
        write_query(&mut out, sql, param);
        self.stream.write_all(&out).await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, body) = self.next_message().await?;
            match tag {
                b'D' => rows.push(data_row(&body).ok_or(ServerError::Unexpected('D'))?),
                b'E' => error = error.or_else(|| Some(ErrorFields::parse(&body))),
                b'Z' => {
                    return match error {
                        Some(fields) => Err(ServerError::Query(fields)),
                        None => Ok(rows),
                    };
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_parse_bind_execute_sync() {
        let mut out = BytesMut::new();
        write_query(&mut out, "select $1", "x");
        assert_eq!(out.first(), Some(&b'P'));
        assert_eq!(out.last(), Some(&4));
    }
}
