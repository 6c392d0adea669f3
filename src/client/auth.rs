//! Authenticating a client against `auth_file` with PgBouncer's `auth_type` rules: trust, any,
//! plain (cleartext), md5 (SCRAM when the stored secret is SCRAM) and scram-sha-256.

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::errors::ClientError;
use crate::auth::{SCRAM_SHA_256, ScramServer, verify_cleartext, verify_md5};
use crate::config::{AuthType, Config, Secret};
use crate::net::{MessageReader, Stream};
use crate::protocol::{backend, startup};

/// Runs the password exchange for `user`; returns once the client has proven it knows the secret
/// (AuthenticationOk is not sent here).
pub async fn authenticate(
    config: &Config,
    user: &str,
    stream: &mut Stream,
    reader: &mut MessageReader,
) -> Result<(), ClientError> {
    let secret = config.auth_users.get(user);
    let failed = || ClientError::AuthFailed(user.to_owned());
    match config.general.auth_type {
        AuthType::Any => Ok(()),
        AuthType::Trust => secret.map(|_| ()).ok_or_else(failed),
        AuthType::Plain => cleartext(user, secret, stream, reader).await,
        AuthType::Md5 => match secret {
            Some(s @ Secret::Scram(_)) => scram(user, Some(s), stream, reader).await,
            other => md5(user, other, stream, reader).await,
        },
        AuthType::ScramSha256 => scram(user, secret, stream, reader).await,
        AuthType::Cert | AuthType::Hba | AuthType::Pam | AuthType::Ldap => Err(
            ClientError::AuthUnsupported(config.general.auth_type.as_str()),
        ),
    }
}

async fn send(stream: &mut Stream, out: &BytesMut) -> Result<(), ClientError> {
    stream
        .write_all(out)
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))
}

async fn read_password(
    stream: &mut Stream,
    reader: &mut MessageReader,
) -> Result<BytesMut, ClientError> {
    match reader.read_message(stream).await {
        Ok((b'p', body)) => Ok(body),
        Ok((tag, _)) => Err(ClientError::Protocol(format!(
            "expected password message, got {:?}",
            char::from(tag)
        ))),
        Err(e) => Err(ClientError::Protocol(e.to_string())),
    }
}

async fn cleartext(
    user: &str,
    secret: Option<&Secret>,
    stream: &mut Stream,
    reader: &mut MessageReader,
) -> Result<(), ClientError> {
    let mut out = BytesMut::new();
    backend::auth_cleartext(&mut out);
    send(stream, &out).await?;
    let body = read_password(stream, reader).await?;
    let given = std::str::from_utf8(startup::password_body(&body)).unwrap_or_default();
    let ok = secret.is_some_and(|secret| verify_cleartext(secret, user, given));
    if ok {
        Ok(())
    } else {
        Err(ClientError::AuthFailed(user.to_owned()))
    }
}

async fn md5(
    user: &str,
    secret: Option<&Secret>,
    stream: &mut Stream,
    reader: &mut MessageReader,
) -> Result<(), ClientError> {
    // An unknown user still gets a challenge, so user names cannot be probed.
    let salt: [u8; 4] = rand::random();
    let mut out = BytesMut::new();
    backend::auth_md5(&mut out, salt);
    send(stream, &out).await?;
    let body = read_password(stream, reader).await?;
    let given = startup::password_body(&body);
    match secret {
        Some(secret) if verify_md5(secret, user, salt, given) => Ok(()),
        _ => Err(ClientError::AuthFailed(user.to_owned())),
    }
}

async fn scram(
    user: &str,
    secret: Option<&Secret>,
    stream: &mut Stream,
    reader: &mut MessageReader,
) -> Result<(), ClientError> {
    let failed = || ClientError::AuthFailed(user.to_owned());
    let mut out = BytesMut::new();
    backend::auth_sasl(&mut out, &[SCRAM_SHA_256]);
    send(stream, &out).await?;
    let body = read_password(stream, reader).await?;
    let (mechanism, data) =
        startup::sasl_initial(&body).map_err(|e| ClientError::Protocol(e.to_string()))?;
    if mechanism != SCRAM_SHA_256 {
        return Err(ClientError::Protocol(format!(
            "unsupported SASL mechanism {mechanism}"
        )));
    }
    // Without a usable secret the exchange still runs against a random one, so the failure looks
    // the same as a wrong password.
    let fallback = Secret::Plain(format!("{:032x}", rand::random::<u128>()));
    let usable = match secret {
        Some(s @ (Secret::Plain(_) | Secret::Scram(_))) => s,
        _ => &fallback,
    };
    let mut server = ScramServer::new(usable, user).map_err(|_| failed())?;
    let server_first = server.client_first(data).map_err(|_| failed())?;
    out.clear();
    backend::auth_sasl_continue(&mut out, &server_first);
    send(stream, &out).await?;
    let body = read_password(stream, reader).await?;
    let server_final = server.client_final(&body).map_err(|_| failed())?;
    if std::ptr::eq(usable, &raw const fallback) {
        return Err(failed());
    }
    out.clear();
    backend::auth_sasl_final(&mut out, &server_final);
    send(stream, &out).await?;
    Ok(())
}
