//! Authenticating a client with PgBouncer's `auth_type` rules: trust, any, plain (cleartext), md5
//! (SCRAM when the stored secret is SCRAM), scram-sha-256, cert (the TLS client certificate names
//! the user), and hba (the first matching `auth_hba_file` rule picks one of those, or reject, or
//! peer on the unix socket; a `cert` or `peer` rule with `map=` checks the identity through the
//! `auth_ident_file` map instead). Secrets come from `auth_file`, else from `auth_query`.
//!
//! Does not: send AuthenticationOk, or touch pools beyond the auth_query lookup: what a login
//! proved (the secret, and a SCRAM ClientKey for pass-through) is returned to the caller.

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::errors::ClientError;
use super::startup::Replication;
use crate::auth::hba::{Connection, HbaMethod};
use crate::auth::{SCRAM_SHA_256, ScramServer, verify_cleartext, verify_md5};
use crate::config::{AuthType, DatabaseDef, Secret};
use crate::net::{MessageReader, Stream};
use crate::pool::Registry;
use crate::protocol::{backend, startup};
use crate::server::Learned;

/// How this login is checked, after `auth_type` and any HBA rule are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Any,
    Trust,
    Reject,
    Cleartext,
    Md5,
    Scram,
    Cert,
    Peer,
}

fn flow_of(method: HbaMethod) -> Flow {
    match method {
        HbaMethod::Trust => Flow::Trust,
        HbaMethod::Reject => Flow::Reject,
        HbaMethod::Md5 => Flow::Md5,
        HbaMethod::ScramSha256 => Flow::Scram,
        HbaMethod::Password => Flow::Cleartext,
        HbaMethod::Cert => Flow::Cert,
        HbaMethod::Peer => Flow::Peer,
    }
}

/// The flow for this login, and the `map=` of the HBA rule that chose it (`cert`/`peer` only).
fn choose_flow(
    registry: &Registry,
    (database, replication): (&str, Replication),
    user: &str,
    stream: &Stream,
) -> Result<(Flow, Option<String>), ClientError> {
    let config = registry.config();
    let flow = match config.general.auth_type {
        AuthType::Any => Flow::Any,
        AuthType::Trust => Flow::Trust,
        AuthType::Plain => Flow::Cleartext,
        AuthType::Md5 => Flow::Md5,
        AuthType::ScramSha256 => Flow::Scram,
        AuthType::Cert => Flow::Cert,
        AuthType::Hba => {
            let policy = registry.policy();
            let hba = policy.hba.as_ref().ok_or(ClientError::NoHbaRule)?;
            let conn = Connection {
                addr: stream.peer_ip(),
                tls: stream.is_tls(),
                database,
                user,
                physical_replication: replication == Replication::Physical,
            };
            let rule = hba.find(&conn).ok_or(ClientError::NoHbaRule)?;
            tracing::debug!(line = rule.line, "HBA rule matched");
            return Ok((flow_of(rule.method), rule.map.clone()));
        }
        other @ (AuthType::Pam | AuthType::Ldap) => {
            return Err(ClientError::AuthUnsupported(other.as_str()));
        }
    };
    Ok((flow, None))
}

/// Whether `map` of `auth_ident_file` lets an identity that `is_identity` recognises log in as
/// `user`; PgBouncer's log line names the map when none does.
fn map_allows(
    registry: &Registry,
    map: &str,
    is_identity: impl Fn(&str) -> bool,
    user: &str,
    unmatched: &str,
) -> bool {
    let allowed = registry.policy().ident.allows(map, is_identity, user);
    if allowed {
        tracing::debug!("ident map '{map}' is applied");
    } else {
        tracing::error!(user, "{unmatched}");
    }
    allowed
}

/// `cert`: the client certificate must name the user, or, with `map=`, name a system user
/// that the map lets log in as the user.
fn cert_login(
    registry: &Registry,
    stream: &Stream,
    map: Option<&str>,
    user: &str,
) -> Result<(), ClientError> {
    let Some(cert) = stream.client_certificate() else {
        return Err(ClientError::CertAuthFailed);
    };
    let names = |name: &str| crate::tls::peer::cert_names_user(cert, name);
    let ok = match map {
        Some(map) => map_allows(
            registry,
            map,
            names,
            user,
            &format!("ident map: {map} does not have a match"),
        ),
        None => names(user),
    };
    ok.then_some(()).ok_or(ClientError::CertAuthFailed)
}

/// `peer`: the unix-socket peer's OS user must be the user, or, with `map=`, a system user
/// that the map lets log in as the user.
fn peer_login(
    registry: &Registry,
    stream: &Stream,
    map: Option<&str>,
    user: &str,
) -> Result<(), ClientError> {
    let Some(os_user) = stream.peer_user_name() else {
        return Err(ClientError::PeerAuthFailed);
    };
    let ok = match map {
        Some(map) => map_allows(
            registry,
            map,
            |system| system == os_user,
            user,
            &format!("ident map {map} cannot be matched"),
        ),
        None => os_user == user,
    };
    ok.then_some(()).ok_or(ClientError::PeerAuthFailed)
}

/// Runs the login exchange for `user` of `database`; returns once the client has proven who it
/// is, with what the proof teaches the pool's server logins (AuthenticationOk is not sent here).
/// `db` is the `[databases]` entry, whose `auth_user` settings allow an `auth_query` lookup;
/// the admin console passes `None` (its lookups use the global `auth_user` and `auth_dbname`).
/// `replication` decides which HBA rules apply.
pub async fn authenticate(
    registry: &Registry,
    (database, replication): (&str, Replication),
    db: Option<&DatabaseDef>,
    user: &str,
    stream: &mut Stream,
    reader: &mut MessageReader,
) -> Result<Option<Learned>, ClientError> {
    run(
        registry,
        (database, replication),
        Lookup::AuthQuery(db),
        user,
        stream,
        reader,
    )
    .await
}

/// Authenticates a client of a database that is not configured, as PgBouncer does against its
/// fake database: the same exchange with `auth_file` secrets only (no `auth_query` runs), so a
/// wrong password is refused as such and only a proven client learns the database is unknown.
pub async fn authenticate_unknown_database(
    registry: &Registry,
    (database, replication): (&str, Replication),
    user: &str,
    stream: &mut Stream,
    reader: &mut MessageReader,
) -> Result<(), ClientError> {
    run(
        registry,
        (database, replication),
        Lookup::AuthFileOnly,
        user,
        stream,
        reader,
    )
    .await
    .map(drop)
}

/// Where a user missing from `auth_file` is looked up.
#[derive(Clone, Copy)]
enum Lookup<'a> {
    /// `auth_query`, with the settings of this `[databases]` entry (`None`: the global ones).
    AuthQuery(Option<&'a DatabaseDef>),
    /// Nowhere: the user is unknown (PgBouncer's fake database runs no `auth_query`).
    AuthFileOnly,
}

/// The login exchange.
async fn run(
    registry: &Registry,
    (database, replication): (&str, Replication),
    lookup: Lookup<'_>,
    user: &str,
    stream: &mut Stream,
    reader: &mut MessageReader,
) -> Result<Option<Learned>, ClientError> {
    let (flow, map) = choose_flow(registry, (database, replication), user, stream)?;
    match flow {
        Flow::Any => return Ok(None),
        Flow::Reject => return Err(ClientError::LoginRejected),
        _ => {}
    }
    let config = registry.config();
    let secret = match (config.auth_users.get(user), lookup) {
        (Some(secret), _) => Some(secret.clone()),
        (None, Lookup::AuthQuery(db)) => super::auth_query::lookup(registry, db, user).await?,
        (None, Lookup::AuthFileOnly) => None,
    };
    let learned = |client_key| secret.clone().map(|secret| Learned { secret, client_key });
    match flow {
        // PgBouncer's mock login for a user it does not know.
        Flow::Trust => secret
            .as_ref()
            .map(|_| learned(None))
            .ok_or(ClientError::TrustAuthFailed),
        Flow::Cleartext => {
            cleartext(user, secret.as_ref(), stream, reader).await?;
            Ok(learned(None))
        }
        Flow::Md5 => match &secret {
            Some(s @ Secret::Scram(_)) => Ok(learned(scram(user, Some(s), stream, reader).await?)),
            other => {
                md5(user, other.as_ref(), stream, reader).await?;
                Ok(learned(None))
            }
        },
        Flow::Scram => Ok(learned(scram(user, secret.as_ref(), stream, reader).await?)),
        // An unknown user fails before any map is consulted, as PgBouncer's mock login does.
        Flow::Cert => {
            secret.as_ref().ok_or(ClientError::CertAuthFailed)?;
            cert_login(registry, stream, map.as_deref(), user)?;
            Ok(learned(None))
        }
        Flow::Peer => {
            secret.as_ref().ok_or(ClientError::PeerAuthFailed)?;
            peer_login(registry, stream, map.as_deref(), user)?;
            Ok(learned(None))
        }
        Flow::Any | Flow::Reject => Ok(None),
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

/// The SCRAM exchange; returns the ClientKey when the stored secret is a SCRAM secret (the key
/// then opens pass-through logins to servers holding the same secret).
async fn scram(
    user: &str,
    secret: Option<&Secret>,
    stream: &mut Stream,
    reader: &mut MessageReader,
) -> Result<Option<[u8; 32]>, ClientError> {
    let failed = || ClientError::SaslAuthFailed;
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
    // An md5 secret cannot answer SCRAM: PgBouncer fails such a login at the client-first
    // message, before it sends server-first.
    if matches!(secret, Some(Secret::Md5(_))) {
        return Err(failed());
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
    Ok(match usable {
        Secret::Scram(_) => server.client_key(),
        _ => None,
    })
}
