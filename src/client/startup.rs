//! The first exchange with a new connection: SSLRequest (answered `S` and the TLS handshake when
//! `client_tls_sslmode` is not `disable` and the connection is TCP, else `N`), GSSENCRequest
//! (`N`), each at most once as in PostgreSQL (a repeat is refused with 08P01), protocol version
//! negotiation, CancelRequest, and the startup parameters of a login.
//! From `require` up, a plain-text startup over TCP is refused with "SSL required", as PgBouncer
//! does; unix sockets are exempt.
//!
//! `replication` (PgBouncer 1.23+): `database` asks for a logical replication connection, a
//! true boolean (`true`, `on`, `yes`, `1`...) for a physical one; such a client gets a dedicated
//! server opened with the same `replication` value, its tracked parameters and its `options`
//! verbatim (any `-c` setting, as the server itself accepts them).

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::errors::ClientError;
use crate::config::Config;
use crate::net::{MessageReader, Stream};
use crate::protocol::backend;
use crate::protocol::startup::{self, StartupPacket};
use crate::server::params;
use crate::tls::{ClientTls, SslMode};

/// What a new connection wants.
#[derive(Debug)]
pub enum FirstContact {
    /// A cancel request (the connection carries nothing else).
    Cancel {
        /// Pooler-issued pid.
        pid: i32,
        /// Pooler-issued key.
        key: i32,
    },
    /// A login.
    Login(LoginRequest),
}

/// What the `replication` startup parameter asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Replication {
    /// A normal, pooled connection.
    #[default]
    None,
    /// `replication=database`: logical replication (walsender bound to a database).
    Logical,
    /// `replication=true`: physical replication.
    Physical,
}

impl Replication {
    /// PgBouncer's reading of the value: `database` is logical, a true boolean physical, a false
    /// or unreadable one none.
    pub fn parse(value: &str) -> Replication {
        if value == "database" {
            return Replication::Logical;
        }
        match parse_bool(value) {
            Some(true) => Replication::Physical,
            _ => Replication::None,
        }
    }

    /// The SHOW CLIENTS / SHOW SERVERS `replication` column.
    pub fn label(self) -> &'static str {
        match self {
            Replication::None => "none",
            Replication::Logical => "logical",
            Replication::Physical => "physical",
        }
    }

    /// The value sent to the server in the dedicated server's startup packet.
    pub fn startup_value(self) -> Option<&'static str> {
        match self {
            Replication::None => None,
            Replication::Logical => Some("database"),
            Replication::Physical => Some("yes"),
        }
    }
}

/// PostgreSQL's boolean spelling (`parse_bool`): any unique prefix of `true`, `false`, `yes`, `no`,
/// `on` and `off` (at least two letters for the last two), `1` and `0`, in any case.
fn parse_bool(value: &str) -> Option<bool> {
    let v = value.trim().to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| v.len() >= min && word.starts_with(v.as_str());
    if v == "1" || prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) {
        Some(true)
    } else if v == "0" || prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) {
        Some(false)
    } else {
        None
    }
}

/// A validated StartupMessage.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// `user`.
    pub user: String,
    /// `database` (defaults to the user name).
    pub database: String,
    /// Tracked parameters the client set, with canonical names.
    pub params: Vec<(&'static str, String)>,
    /// The TLS summary for SHOW CLIENTS (`TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519`), or
    /// `None` for a plain connection.
    pub tls: Option<String>,
    /// The `replication` parameter.
    pub replication: Replication,
    /// `options` as sent, kept for replication clients only (their dedicated server gets it).
    pub options: Option<String>,
}

/// How a handshake ended: the connection (gone if TLS failed half-way) and what it wants.
pub type Handshake = (Option<Stream>, Result<FirstContact, ClientError>);

async fn within<T>(
    deadline: Option<Instant>,
    fut: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, fut)
            .await
            .unwrap_or(Err(ClientError::LoginTimeout)),
        None => fut.await,
    }
}

/// Reads the first packet(s) until a startup or cancel packet arrives, answering SSLRequest per
/// `client_tls_sslmode` and GSSENCRequest with `N`; every step must finish by `deadline`.
pub async fn handshake(
    config: &Config,
    tls: &ClientTls,
    mut stream: Stream,
    reader: &mut MessageReader,
    deadline: Option<Instant>,
) -> Handshake {
    // PostgreSQL's rule: one SSLRequest and one GSSENCRequest at most; a client that keeps
    // asking is refused at once instead of being answered until the login timeout.
    let (mut ssl_asked, mut gss_asked) = (false, false);
    loop {
        let packet = within(deadline, async {
            reader
                .read_startup(&mut stream)
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))
        })
        .await;
        let parsed = packet
            .and_then(|p| startup::parse(&p).map_err(|e| ClientError::Protocol(e.to_string())));
        let request = match parsed {
            Ok(request) => request,
            Err(e) => return (Some(stream), Err(e)),
        };
        match request {
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                // Nothing may be pipelined behind an SSLRequest before our answer (CVE-2021-23214).
                if !reader.buffer().is_empty() {
                    let e = ClientError::Protocol(
                        "received unencrypted data after SSL request".to_owned(),
                    );
                    return (Some(stream), Err(e));
                }
                if stream.is_tls() {
                    return (
                        None,
                        Err(ClientError::Protocol("SSL req inside SSL".to_owned())),
                    );
                }
                let asked = if request == StartupPacket::SslRequest {
                    &mut ssl_asked
                } else {
                    &mut gss_asked
                };
                if std::mem::replace(asked, true) {
                    let what = if request == StartupPacket::SslRequest {
                        "SSL"
                    } else {
                        "GSSENC"
                    };
                    let e = ClientError::Protocol(format!("repeated {what} request"));
                    return (Some(stream), Err(e));
                }
                let (StartupPacket::SslRequest, Stream::Tcp(_), Some(acceptor)) =
                    (&request, &stream, tls.acceptor())
                else {
                    if let Err(e) = stream.write_all(b"N").await {
                        return (None, Err(ClientError::Protocol(e.to_string())));
                    }
                    continue;
                };
                let acceptor = acceptor.clone();
                match accept_tls(stream, &acceptor, deadline).await {
                    Ok(upgraded) => stream = upgraded,
                    Err(e) => return (None, Err(e)),
                }
            }
            StartupPacket::Cancel { pid, key } => {
                return (Some(stream), Ok(FirstContact::Cancel { pid, key }));
            }
            StartupPacket::Startup { minor, params } => {
                if tls.mode() >= SslMode::Require && matches!(stream, Stream::Tcp(_)) {
                    return (Some(stream), Err(ClientError::SslRequired));
                }
                let login = within(deadline, validate(config, params, minor, &mut stream)).await;
                let login = login.map(|mut login| {
                    login.tls = stream.tls_summary();
                    FirstContact::Login(login)
                });
                return (Some(stream), login);
            }
        }
    }
}

/// Answers `S` and runs the server side of the TLS handshake.
async fn accept_tls(
    stream: Stream,
    acceptor: &tokio_rustls::TlsAcceptor,
    deadline: Option<Instant>,
) -> Result<Stream, ClientError> {
    let Stream::Tcp(mut tcp) = stream else {
        return Err(ClientError::Protocol(
            "TLS over a non-TCP socket".to_owned(),
        ));
    };
    within(deadline, async {
        tcp.write_all(b"S")
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let tls = acceptor
            .accept(tcp)
            .await
            .map_err(|e| ClientError::Protocol(format!("failed to accept SSL: {e}")))?;
        Ok(Stream::TlsFromClient(Box::new(tls)))
    })
    .await
}

async fn validate(
    config: &Config,
    params: Vec<(String, String)>,
    minor: u16,
    stream: &mut Stream,
) -> Result<LoginRequest, ClientError> {
    let mut user = None;
    let mut database = None;
    let mut tracked = Vec::new();
    let mut protocol_options = Vec::new();
    let ignored = &config.general.ignore_startup_parameters;
    // Read first: it decides how `options` is taken.
    let replication = params
        .iter()
        .find(|(name, _)| name == "replication")
        .map_or(Replication::None, |(_, value)| Replication::parse(value));
    let mut options = None;
    for (name, value) in params {
        if name == "replication" {
            // Read above; the dedicated server gets it from `replication`.
        } else if name == "options" && replication != Replication::None {
            options = Some(value);
        } else if name == "user" {
            user = Some(value);
        } else if name == "database" {
            database = Some(value);
        } else if name.starts_with("_pq_.") {
            protocol_options.push(name);
        } else if name == "options" {
            options_params(&value, ignored, &mut tracked)?;
        } else if let Some(canonical) = params::canonical(&name) {
            tracked.push((canonical, value));
        } else if !ignored.iter().any(|i| i.eq_ignore_ascii_case(&name)) {
            return Err(ClientError::UnsupportedParameter(name));
        }
    }
    if minor > 0 || !protocol_options.is_empty() {
        // We speak 3.0; say so, as PgBouncer does since 1.23.
        let mut out = BytesMut::new();
        let names: Vec<&str> = protocol_options.iter().map(String::as_str).collect();
        backend::negotiate_protocol_version(&mut out, 0, &names);
        stream
            .write_all(&out)
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
    }
    let user = user.filter(|u| !u.is_empty()).ok_or(ClientError::NoUser)?;
    let database = database
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| user.clone());
    Ok(LoginRequest {
        user,
        database,
        params: tracked,
        tls: None,
        replication,
        options,
    })
}

/// The tracked parameters of the `options` startup parameter (`-c name=value`, `--name=value`),
/// as PgBouncer 1.20+ reads it: names in `ignore_startup_parameters` are skipped, any other
/// untracked name is refused unless `options` itself is in that list.
fn options_params(
    options: &str,
    ignored: &[String],
    tracked: &mut Vec<(&'static str, String)>,
) -> Result<(), ClientError> {
    let is_ignored = |name: &str| ignored.iter().any(|i| i.eq_ignore_ascii_case(name));
    let pairs =
        startup::parse_options(options).map_err(|e| ClientError::Protocol(e.to_string()))?;
    for (name, value) in pairs {
        if let Some(canonical) = params::canonical(&name) {
            tracked.push((canonical, value));
        } else if !is_ignored(&name) && !is_ignored("options") {
            return Err(ClientError::UnsupportedOption(name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Replication;

    #[test]
    fn replication_values_read_as_pgbouncer_reads_them() {
        assert_eq!(Replication::parse("database"), Replication::Logical);
        for physical in ["true", "on", "yes", "1", "TRUE", "y", "t"] {
            assert_eq!(
                Replication::parse(physical),
                Replication::Physical,
                "{physical}"
            );
        }
        for none in ["false", "off", "no", "0", "o", "Database", "maybe", ""] {
            assert_eq!(Replication::parse(none), Replication::None, "{none}");
        }
        assert_eq!(Replication::Physical.startup_value(), Some("yes"));
        assert_eq!(Replication::Logical.label(), "logical");
    }
}
