//! The first packet of a connection: StartupMessage, SSLRequest, GSSENCRequest or CancelRequest,
//! and the client messages read during login (password and SASL responses).

use super::ProtocolError;
use super::frontend::{CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE};
use super::wire::{be_i32, take_cstr};

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

/// The largest whole message (tag and length included) a client may send before it is logged
/// in, whatever `max_packet_size` says: a PasswordMessage with PgBouncer's longest password
/// (65,535 bytes) fits with room to spare, and SASL messages are far smaller. A longer declared
/// length is refused before its body is read, so an unauthenticated client cannot make the
/// pooler buffer up to `max_packet_size` (PgBouncer's CVE-2026-6668 was in this path). The
/// admin console keeps this limit for its queries.
pub const MAX_LOGIN_MESSAGE_LEN: usize = 128 * 1024;

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

/// The `options` startup parameter held something other than `-c name=value` / `--name=value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported options startup parameter: only '-c config=val' and '--config=val' are allowed"
)]
pub struct UnsupportedOptions;

/// Splits the `options` startup parameter into the `name=value` pairs of its `-c name=value`,
/// `-cname=value` and `--name=value` arguments, as PostgreSQL reads them: arguments are separated
/// by whitespace and a backslash makes the next character literal (`-c datestyle=ISO,\ DMY`).
/// Any other argument (`-d 5`, a bare `-c name`) is refused, as PgBouncer refuses it.
pub fn parse_options(options: &str) -> Result<Vec<(String, String)>, UnsupportedOptions> {
    let mut pairs = Vec::new();
    let mut rest = options.trim_start();
    while !rest.is_empty() {
        rest = if let Some(after) = rest.strip_prefix("--") {
            after
        } else if let Some(after) = rest.strip_prefix("-c") {
            after.trim_start()
        } else {
            return Err(UnsupportedOptions);
        };
        let (token, after) = escaped_token(rest);
        let (name, value) = token.split_once('=').ok_or(UnsupportedOptions)?;
        pairs.push((name.to_owned(), value.to_owned()));
        rest = after.trim_start();
    }
    Ok(pairs)
}

/// Reads one whitespace-delimited token, unescaping backslashes; returns it and the rest.
fn escaped_token(s: &str) -> (String, &str) {
    let mut token = String::new();
    let mut chars = s.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped)) => token.push(escaped),
                None => break,
            },
            c if c.is_whitespace() => return (token, s.get(at..).unwrap_or_default()),
            c => token.push(c),
        }
    }
    (token, "")
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

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn options_accept_c_and_double_dash_forms() {
        assert_eq!(
            parse_options("  -c    datestyle=German,\\ YMD").unwrap(),
            pairs(&[("datestyle", "German, YMD")])
        );
        assert_eq!(
            parse_options("-ctimezone=UTC  --datestyle=ISO -c a=b ").unwrap(),
            pairs(&[("timezone", "UTC"), ("datestyle", "ISO"), ("a", "b")])
        );
        assert_eq!(
            parse_options("-c t\\imezone=\\E\\u\\r\\o\\pe/Lisbon -c dat\\estyle\\=\\Ge\\rman")
                .unwrap(),
            pairs(&[("timezone", "Europe/Lisbon"), ("datestyle", "German")])
        );
        assert_eq!(parse_options("").unwrap(), pairs(&[]));
        assert_eq!(parse_options("-c x=").unwrap(), pairs(&[("x", "")]));
    }

    #[test]
    fn options_refuse_other_arguments() {
        for bad in [
            "-d",
            "-c timezone",
            "-d 5",
            "-c",
            "timezone=UTC",
            "-c a=b -B 8",
        ] {
            assert_eq!(parse_options(bad), Err(UnsupportedOptions), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse(&buf);
            let _ = sasl_initial(&buf);
            let _ = password_body(&buf);
            let _ = parse_options(&String::from_utf8_lossy(&buf));
        }
    }
}
