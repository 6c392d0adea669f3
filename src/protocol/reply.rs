//! Readers for the server messages the pooler must understand while logging in to a server and
//! while aligning parameters: Authentication requests, ParameterStatus, BackendKeyData, the
//! fields of ErrorResponse/NoticeResponse and the DataRows of its own queries.

use super::ProtocolError;
use super::wire::{be_i16, be_i32, take_cstr};

/// An Authentication request from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest<'a> {
    /// Logged in.
    Ok,
    /// Send the password in clear text.
    Cleartext,
    /// Send md5 with this salt.
    Md5([u8; 4]),
    /// SASL with these mechanisms.
    Sasl(Vec<&'a str>),
    /// SASL continue data.
    SaslContinue(&'a [u8]),
    /// SASL final data.
    SaslFinal(&'a [u8]),
    /// A method the pooler does not implement (Kerberos, GSS, SSPI).
    Unsupported(i32),
}

/// Parses the body of an `R` message.
pub fn auth_request(body: &[u8]) -> Result<AuthRequest<'_>, ProtocolError> {
    let code = be_i32(body, 0).ok_or(ProtocolError::Malformed("Authentication"))?;
    let rest = body.get(4..).unwrap_or_default();
    Ok(match code {
        0 => AuthRequest::Ok,
        3 => AuthRequest::Cleartext,
        5 => {
            let salt = rest
                .get(..4)
                .ok_or(ProtocolError::Malformed("AuthenticationMD5Password"))?;
            AuthRequest::Md5([salt[0], salt[1], salt[2], salt[3]])
        }
        10 => {
            let mut mechanisms = Vec::new();
            let mut rest = rest;
            while let Some((name, tail)) = take_cstr(rest) {
                if name.is_empty() {
                    break;
                }
                mechanisms.push(name);
                rest = tail;
            }
            AuthRequest::Sasl(mechanisms)
        }
        11 => AuthRequest::SaslContinue(rest),
        12 => AuthRequest::SaslFinal(rest),
        other => AuthRequest::Unsupported(other),
    })
}

/// The body of a ParameterStatus message.
pub fn parameter_status(body: &[u8]) -> Result<(&str, &str), ProtocolError> {
    let (name, rest) = take_cstr(body).ok_or(ProtocolError::Malformed("ParameterStatus"))?;
    let (value, _) = take_cstr(rest).ok_or(ProtocolError::Malformed("ParameterStatus"))?;
    Ok((name, value))
}

/// The body of a BackendKeyData message.
pub fn backend_key_data(body: &[u8]) -> Result<(i32, i32), ProtocolError> {
    let pid = be_i32(body, 0).ok_or(ProtocolError::Malformed("BackendKeyData"))?;
    let key = be_i32(body, 4).ok_or(ProtocolError::Malformed("BackendKeyData"))?;
    Ok((pid, key))
}

/// The cells of a DataRow body as text (`None` for NULL); `None` when the body is malformed.
/// Used for the pooler's own queries (`auth_query`), never on the relay path.
pub fn data_row(body: &[u8]) -> Option<Vec<Option<String>>> {
    let count = usize::try_from(be_i16(body, 0)?).ok()?;
    let mut rest = body.get(2..)?;
    let mut row = Vec::with_capacity(count);
    for _ in 0..count {
        let len = be_i32(rest, 0)?;
        rest = rest.get(4..)?;
        let Ok(len) = usize::try_from(len) else {
            row.push(None);
            continue;
        };
        row.push(Some(String::from_utf8_lossy(rest.get(..len)?).into_owned()));
        rest = rest.get(len..)?;
    }
    Some(row)
}

/// The fields of an ErrorResponse or NoticeResponse that the pooler logs or relays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    /// Localized or non-localized severity.
    pub severity: Option<String>,
    /// SQLSTATE.
    pub code: Option<String>,
    /// Primary message.
    pub message: Option<String>,
}

impl ErrorFields {
    /// Parses the body of an `E` or `N` message; unknown fields are skipped.
    pub fn parse(body: &[u8]) -> ErrorFields {
        let mut fields = ErrorFields::default();
        let mut rest = body;
        while let Some((&kind, tail)) = rest.split_first() {
            if kind == 0 {
                break;
            }
            let Some((value, tail)) = take_cstr(tail) else {
                break;
            };
            match kind {
                b'V' => fields.severity = Some(value.to_owned()),
                b'S' if fields.severity.is_none() => fields.severity = Some(value.to_owned()),
                b'C' => fields.code = Some(value.to_owned()),
                b'M' => fields.message = Some(value.to_owned()),
                _ => {}
            }
            rest = tail;
        }
        fields
    }
}

impl std::fmt::Display for ErrorFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} ({})",
            self.severity.as_deref().unwrap_or("ERROR"),
            self.message.as_deref().unwrap_or(""),
            self.code.as_deref().unwrap_or("")
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn data_rows_parse_and_refuse_garbage() {
        let body = [0, 2, 0, 0, 0, 2, b'h', b'i', 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            super::data_row(&body),
            Some(vec![Some("hi".to_owned()), None])
        );
        assert_eq!(super::data_row(&body[..7]), None);
        assert_eq!(super::data_row(&[]), None);
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_auth_requests() {
        assert_eq!(auth_request(&[0, 0, 0, 0]).unwrap(), AuthRequest::Ok);
        assert_eq!(
            auth_request(&[0, 0, 0, 5, 1, 2, 3, 4]).unwrap(),
            AuthRequest::Md5([1, 2, 3, 4])
        );
        assert_eq!(
            auth_request(b"\0\0\0\x0aSCRAM-SHA-256\0\0").unwrap(),
            AuthRequest::Sasl(vec!["SCRAM-SHA-256"])
        );
        assert!(auth_request(&[0, 0, 0, 5, 1]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = auth_request(&buf);
            let _ = parameter_status(&buf);
            let _ = backend_key_data(&buf);
            let _ = ErrorFields::parse(&buf);
        }
    }
}
