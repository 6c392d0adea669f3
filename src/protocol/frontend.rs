//! Writers for what the pooler sends to a PostgreSQL server as a client: the startup packet,
//! password and SASL messages, simple queries, Terminate, SSLRequest and CancelRequest.

use bytes::{BufMut, BytesMut};

use super::backend::{message, put_cstr};

/// Protocol 3.0 as a startup version word.
pub const PROTOCOL_3_0: i32 = 196_608;
/// The CancelRequest code.
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
/// The SSLRequest code.
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
/// The GSSENCRequest code.
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;

/// StartupMessage with the given parameters.
pub fn startup_message<'a>(
    buf: &mut BytesMut,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    let start = buf.len();
    buf.put_i32(0);
    buf.put_i32(PROTOCOL_3_0);
    for (k, v) in params {
        put_cstr(buf, k);
        put_cstr(buf, v);
    }
    buf.put_u8(0);
    let len = i32::try_from(buf.len() - start).unwrap_or(i32::MAX);
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// SSLRequest: asks the server to start TLS.
pub fn ssl_request(buf: &mut BytesMut) {
    buf.put_i32(8);
    buf.put_i32(SSL_REQUEST_CODE);
}

/// CancelRequest for a backend's pid and secret key.
pub fn cancel_request(buf: &mut BytesMut, pid: i32, key: i32) {
    buf.put_i32(16);
    buf.put_i32(CANCEL_REQUEST_CODE);
    buf.put_i32(pid);
    buf.put_i32(key);
}

/// PasswordMessage carrying a cleartext or md5 password (NUL-terminated).
pub fn password_message(buf: &mut BytesMut, password: &[u8]) {
    message(buf, b'p', |b| {
        b.put_slice(password);
        b.put_u8(0);
    });
}

/// SASLInitialResponse.
pub fn sasl_initial_response(buf: &mut BytesMut, mechanism: &str, data: &[u8]) {
    message(buf, b'p', |b| {
        put_cstr(b, mechanism);
        b.put_i32(i32::try_from(data.len()).unwrap_or(i32::MAX));
        b.put_slice(data);
    });
}

/// SASLResponse.
pub fn sasl_response(buf: &mut BytesMut, data: &[u8]) {
    message(buf, b'p', |b| b.put_slice(data));
}

/// Query (simple protocol).
pub fn query(buf: &mut BytesMut, sql: &str) {
    message(buf, b'Q', |b| put_cstr(b, sql));
}

/// Terminate.
pub fn terminate(buf: &mut BytesMut) {
    message(buf, b'X', |_| {});
}
