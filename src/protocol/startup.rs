//! The first packet of a connection: StartupMessage, SSLRequest, GSSENCRequest or CancelRequest,
//! and the client messages read during login (password and SASL responses).

use super::ProtocolError;
use super::frontend::{CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE};

/// What the first packet asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// SSLRequest: answer `S` or `N`, then read another first packet.
    SslRequest,
    /// GSSENCRequest: answer `N`, then read another first packet.
    GssEncRequest,
    /// CancelRequest with the key the client was given.
    Cancel {
        /// Backend pid as issued.
        pid: i32,
        /// Secret key as issued.
        key: i32,
    },
    /// StartupMessage.
    Startup {
        /// Minor protocol version requested (major is always 3 here).
        minor: u16,
        /// Parameters in the order sent.
        params: Vec<(String, String)>,
    },
}

fn be_i32(bytes: &[u8], at: usize) -> Option<i32> {
    let b = bytes.get(at..at + 4)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses a whole startup packet, including its 4-byte length.
pub fn parse(packet: &[u8]) -> Result<StartupPacket, ProtocolError> {
    let code = be_i32(packet, 4).ok_or(ProtocolError::Malformed("startup"))?;
    match code {
        SSL_REQUEST_CODE => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            let pid = be_i32(packet, 8).ok_or(ProtocolError::Malformed("cancel request"))?;
            let key = be_i32(packet, 12).ok_or(ProtocolError::Malformed("cancel request"))?;
            Ok(StartupPacket::Cancel { pid, key })
        }
        _ => {
            let major = u16::try_from(code >> 16).unwrap_or(u16::MAX);
            let minor = u16::try_from(code & 0xffff).unwrap_or(u16::MAX);
            if major != 3 {
                return Err(ProtocolError::UnsupportedProtocol { major, minor });
            }
            let params = parse_params(packet.get(8..).unwrap_or_default())?;
            Ok(StartupPacket::Startup { minor, params })
        }
    }
}

fn parse_params(mut body: &[u8]) -> Result<Vec<(String, String)>, ProtocolError> {
    let mut params = Vec::new();
    loop {
        let (name, rest) = take_cstr(body).ok_or(ProtocolError::Malformed("startup"))?;
        if name.is_empty() {
            return Ok(params);
        }
        let (value, rest) = take_cstr(rest).ok_or(ProtocolError::Malformed("startup"))?;
        params.push((name.to_owned(), value.to_owned()));
        body = rest;
    }
}

/// Splits off a NUL-terminated UTF-8 string.
pub fn take_cstr(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let nul = bytes.iter().position(|&b| b == 0)?;
    let s = std::str::from_utf8(bytes.get(..nul)?).ok()?;
    Some((s, bytes.get(nul + 1..)?))
}

/// The body of a PasswordMessage: the password without its terminating NUL.
pub fn password_body(body: &[u8]) -> &[u8] {
    match body.split_last() {
        Some((0, rest)) => rest,
        _ => body,
    }
}

/// The body of a SASLInitialResponse: mechanism name and initial data.
pub fn sasl_initial(body: &[u8]) -> Result<(&str, &[u8]), ProtocolError> {
    let (mechanism, rest) =
        take_cstr(body).ok_or(ProtocolError::Malformed("SASLInitialResponse"))?;
    let len = be_i32(rest, 0).ok_or(ProtocolError::Malformed("SASLInitialResponse"))?;
    let data = rest.get(4..).unwrap_or_default();
    match usize::try_from(len) {
        Ok(n) if n == data.len() => Ok((mechanism, data)),
        _ => Err(ProtocolError::Malformed("SASLInitialResponse")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use proptest::prelude::*;

    #[test]
    fn parses_startup_params() {
        let mut buf = BytesMut::new();
        crate::protocol::frontend::startup_message(&mut buf, [("user", "app"), ("database", "db")]);
        let parsed = parse(&buf).unwrap();
        assert_eq!(
            parsed,
            StartupPacket::Startup {
                minor: 0,
                params: vec![
                    ("user".into(), "app".into()),
                    ("database".into(), "db".into())
                ]
            }
        );
    }

    #[test]
    fn parses_cancel_and_ssl() {
        let mut buf = BytesMut::new();
        crate::protocol::frontend::cancel_request(&mut buf, 7, -3);
        assert_eq!(
            parse(&buf).unwrap(),
            StartupPacket::Cancel { pid: 7, key: -3 }
        );
        let ssl = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        assert_eq!(parse(&ssl).unwrap(), StartupPacket::SslRequest);
    }

    #[test]
    fn rejects_protocol_2() {
        let packet = [0, 0, 0, 9, 0, 2, 0, 0, 0];
        assert!(matches!(
            parse(&packet),
            Err(ProtocolError::UnsupportedProtocol { major: 2, .. })
        ));
    }

    #[test]
    fn sasl_initial_checks_length() {
        let body = b"SCRAM-SHA-256\0\0\0\0\x03abc";
        assert_eq!(sasl_initial(body).unwrap(), ("SCRAM-SHA-256", &b"abc"[..]));
        assert!(sasl_initial(b"SCRAM-SHA-256\0\0\0\0\x09abc").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse(&buf);
            let _ = sasl_initial(&buf);
            let _ = password_body(&buf);
        }
    }
}
