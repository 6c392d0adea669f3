//! Writers for the messages the pooler itself sends to clients (and the admin console's result
//! sets). Each appends one whole message to a `BytesMut`.

use bytes::{BufMut, BytesMut};

/// Writes `tag`, a length placeholder, the body from `body`, then back-fills the length.
pub(crate) fn message(buf: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(tag);
    let start = buf.len();
    buf.put_i32(0);
    body(buf);
    // A message longer than i32::MAX cannot be built from the pooler's own small messages.
    let len = i32::try_from(buf.len() - start).unwrap_or(i32::MAX);
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Appends a NUL-terminated string.
pub(crate) fn put_cstr(buf: &mut BytesMut, s: &str) {
    buf.put_slice(s.as_bytes());
    buf.put_u8(0);
}

/// AuthenticationOk.
pub fn auth_ok(buf: &mut BytesMut) {
    message(buf, b'R', |b| b.put_i32(0));
}

/// AuthenticationCleartextPassword.
pub fn auth_cleartext(buf: &mut BytesMut) {
    message(buf, b'R', |b| b.put_i32(3));
}

/// AuthenticationMD5Password with its salt.
pub fn auth_md5(buf: &mut BytesMut, salt: [u8; 4]) {
    message(buf, b'R', |b| {
        b.put_i32(5);
        b.put_slice(&salt);
    });
}

/// AuthenticationSASL listing the mechanisms offered.
pub fn auth_sasl(buf: &mut BytesMut, mechanisms: &[&str]) {
    message(buf, b'R', |b| {
        b.put_i32(10);
        for m in mechanisms {
            put_cstr(b, m);
        }
        b.put_u8(0);
    });
}

/// AuthenticationSASLContinue.
pub fn auth_sasl_continue(buf: &mut BytesMut, data: &[u8]) {
    message(buf, b'R', |b| {
        b.put_i32(11);
        b.put_slice(data);
    });
}

/// AuthenticationSASLFinal.
pub fn auth_sasl_final(buf: &mut BytesMut, data: &[u8]) {
    message(buf, b'R', |b| {
        b.put_i32(12);
        b.put_slice(data);
    });
}

/// ParameterStatus.
pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    message(buf, b'S', |b| {
        put_cstr(b, name);
        put_cstr(b, value);
    });
}

/// BackendKeyData.
pub fn backend_key_data(buf: &mut BytesMut, pid: i32, key: i32) {
    message(buf, b'K', |b| {
        b.put_i32(pid);
        b.put_i32(key);
    });
}

/// ReadyForQuery with its transaction status.
pub fn ready_for_query(buf: &mut BytesMut, status: super::TxStatus) {
    message(buf, b'Z', |b| b.put_u8(status.byte()));
}

/// NegotiateProtocolVersion: the newest minor version supported and the options not recognised.
pub fn negotiate_protocol_version(buf: &mut BytesMut, minor: i32, unrecognized: &[&str]) {
    message(buf, b'v', |b| {
        b.put_i32(minor);
        b.put_i32(i32::try_from(unrecognized.len()).unwrap_or(i32::MAX));
        for name in unrecognized {
            put_cstr(b, name);
        }
    });
}

/// Severity of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The session ends after this message.
    Fatal,
    /// The statement failed.
    Error,
    /// Information only.
    Notice,
    /// A warning.
    Warning,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "FATAL",
            Severity::Error => "ERROR",
            Severity::Notice => "NOTICE",
            Severity::Warning => "WARNING",
        }
    }
}

fn notice_fields(
    b: &mut BytesMut,
    severity: Severity,
    code: &str,
    text: &str,
    detail: Option<&str>,
) {
    for field in [b'S', b'V'] {
        b.put_u8(field);
        put_cstr(b, severity.as_str());
    }
    b.put_u8(b'C');
    put_cstr(b, code);
    b.put_u8(b'M');
    put_cstr(b, text);
    if let Some(detail) = detail {
        b.put_u8(b'D');
        put_cstr(b, detail);
    }
    b.put_u8(0);
}

/// ErrorResponse with severity, SQLSTATE and message.
pub fn error_response(buf: &mut BytesMut, severity: Severity, code: &str, text: &str) {
    message(buf, b'E', |b| notice_fields(b, severity, code, text, None));
}

/// NoticeResponse with an optional detail line.
pub fn notice_response(buf: &mut BytesMut, code: &str, text: &str, detail: Option<&str>) {
    message(buf, b'N', |b| {
        notice_fields(b, Severity::Notice, code, text, detail);
    });
}

/// A column of a result set: name and type OID (always text format).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name.
    pub name: &'static str,
    /// Type OID (25 text, 23 int4, 20 int8, 1700 numeric).
    pub type_oid: u32,
}

/// RowDescription for text-format columns.
pub fn row_description(buf: &mut BytesMut, columns: &[Column]) {
    message(buf, b'T', |b| {
        b.put_i16(i16::try_from(columns.len()).unwrap_or(i16::MAX));
        for col in columns {
            put_cstr(b, col.name);
            b.put_i32(0); // table OID
            b.put_i16(0); // column number
            b.put_u32(col.type_oid);
            b.put_i16(type_size(col.type_oid));
            b.put_i32(-1); // type modifier
            b.put_i16(0); // text format
        }
    });
}

fn type_size(oid: u32) -> i16 {
    match oid {
        23 => 4,
        20 => 8,
        _ => -1,
    }
}

/// DataRow; `None` is SQL NULL.
pub fn data_row<'a>(buf: &mut BytesMut, values: impl IntoIterator<Item = Option<&'a str>>) {
    message(buf, b'D', |b| {
        let count_at = b.len();
        b.put_i16(0);
        let mut count: i16 = 0;
        for value in values {
            count = count.saturating_add(1);
            match value {
                Some(v) => {
                    b.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
                    b.put_slice(v.as_bytes());
                }
                None => b.put_i32(-1),
            }
        }
        b[count_at..count_at + 2].copy_from_slice(&count.to_be_bytes());
    });
}

/// CommandComplete with its tag.
pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    message(buf, b'C', |b| put_cstr(b, tag));
}

/// EmptyQueryResponse.
pub fn empty_query_response(buf: &mut BytesMut) {
    message(buf, b'I', |_| {});
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::complete_frame;

    #[test]
    fn lengths_are_back_filled() {
        let mut buf = BytesMut::new();
        ready_for_query(&mut buf, crate::protocol::TxStatus::Idle);
        assert_eq!(&buf[..], b"Z\0\0\0\x05I");
        let mut buf = BytesMut::new();
        parameter_status(&mut buf, "TimeZone", "UTC");
        assert_eq!(complete_frame(&buf, 1 << 20), Ok(Some((b'S', buf.len()))));
    }

    #[test]
    fn error_response_carries_code_and_message() {
        let mut buf = BytesMut::new();
        error_response(
            &mut buf,
            Severity::Fatal,
            "28P01",
            "password authentication failed",
        );
        let fields = crate::protocol::reply::ErrorFields::parse(&buf[5..]);
        assert_eq!(fields.code.as_deref(), Some("28P01"));
        assert_eq!(fields.severity.as_deref(), Some("FATAL"));
        assert_eq!(
            fields.message.as_deref(),
            Some("password authentication failed")
        );
    }

    #[test]
    fn data_row_counts_and_nulls() {
        let mut buf = BytesMut::new();
        data_row(&mut buf, [Some("a"), None]);
        assert_eq!(&buf[5..7], &[0, 2]);
        assert_eq!(&buf[7..12], &[0, 0, 0, 1, b'a']);
        assert_eq!(&buf[12..16], &[0xff, 0xff, 0xff, 0xff]);
    }
}
