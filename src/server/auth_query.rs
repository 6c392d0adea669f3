//! Running `auth_query` on a server: one statement with one text parameter through the extended
//! protocol (unnamed statement and portal), rows returned as text.
//!
//! Does not: decide which pool runs it or cache results (the client login does both).

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;

use super::{ServerConn, ServerError};
use crate::protocol::backend::{message, put_cstr};
use crate::protocol::reply::ErrorFields;

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

/// The columns of a DataRow body; `None` when the body is malformed.
pub(crate) fn data_row(body: &[u8]) -> Option<Vec<Option<String>>> {
    let count = u16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    let mut rest = body.get(2..)?;
    let mut row = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        rest = rest.get(4..)?;
        if len < 0 {
            row.push(None);
            continue;
        }
        let len = usize::try_from(len).ok()?;
        row.push(Some(String::from_utf8_lossy(rest.get(..len)?).into_owned()));
        rest = rest.get(len..)?;
    }
    Some(row)
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
    fn data_rows_parse_and_refuse_garbage() {
        let body = [0, 2, 0, 0, 0, 2, b'h', b'i', 0xff, 0xff, 0xff, 0xff];
        assert_eq!(data_row(&body), Some(vec![Some("hi".to_owned()), None]));
        assert_eq!(data_row(&body[..7]), None);
        assert_eq!(data_row(&[]), None);
        let mut out = BytesMut::new();
        write_query(&mut out, "select $1", "x");
        assert_eq!(out.first(), Some(&b'P'));
        assert_eq!(out.last(), Some(&4));
    }
}
