//! Opening a server connection: socket, SSLRequest per `server_tls_sslmode` (TCP only, as
//! PgBouncer), startup packet, authentication (trust, cleartext, md5, SCRAM-SHA-256, SCRAM
//! pass-through), then ParameterStatus/BackendKeyData up to the first ReadyForQuery, then
//! `connect_query`.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio::time::Instant;

use super::{
    CancelTarget, Learned, ParamSet, PreparedSet, ServerAddr, ServerConn, ServerError, ServerSpec,
};
use crate::auth::{AuthError, ScramClient, md5_response, md5_secret};
use crate::config::Secret;
use crate::net::{MessageReader, Stream, apply_tcp_options};
use crate::protocol::frontend;
use crate::protocol::reply::{self, AuthRequest, ErrorFields};
use crate::protocol::scan::Scanner;
use crate::protocol::sqlstate;
use crate::tls::SslMode;

/// PgBouncer's reason when the secret it has cannot answer the server's authentication request
/// (a SCRAM or md5 hash of the wrong kind, or a SCRAM secret no client has proved yet).
const WRONG_PASSWORD_TYPE: &str = "wrong password type";

impl ServerError {
    /// What the clients waiting for this login are told, as `(SQLSTATE, message)`, or `None`
    /// when they keep waiting for a retry: the server's own ErrorResponse unless it says the
    /// server is starting up or shutting down (57P03), or PgBouncer's "server login failed: ..."
    /// when the pooler could not answer the server. Connection failures and timeouts tell them
    /// nothing (PgBouncer).
    pub fn refusal(&self) -> Option<(String, String)> {
        match self {
            ServerError::Login(fields) if fields.code.as_deref() != Some(CANNOT_CONNECT_NOW) => {
                Some((
                    fields
                        .code
                        .clone()
                        .unwrap_or_else(|| sqlstate::PROTOCOL_VIOLATION.to_owned()),
                    fields.message.clone().unwrap_or_default(),
                ))
            }
            ServerError::AuthUnsupported(_) => {
                Some((sqlstate::PROTOCOL_VIOLATION.to_owned(), self.to_string()))
            }
            _ => None,
        }
    }

    /// PgBouncer's reason for closing a server whose login failed; clients that need a server
    /// while no login succeeds are told it as the "cached error".
    pub fn close_reason(&self) -> String {
        match self {
            ServerError::Connect { .. } => "connect failed".to_owned(),
            ServerError::DnsLookup { .. } => "server DNS lookup failed".to_owned(),
            ServerError::ConnectTimeout => "connect timeout".to_owned(),
            ServerError::Login(fields) => fields
                .message
                .clone()
                .unwrap_or_else(|| "login failed".to_owned()),
            ServerError::AuthUnsupported(_) => "failed to answer authreq".to_owned(),
            ServerError::Io(_) => "server conn crashed?".to_owned(),
            ServerError::Unexpected(_) => "unknown pkt from server".to_owned(),
            ServerError::Tls { reason, .. } => (*reason).to_owned(),
            ServerError::Query(_) => self.to_string(),
        }
    }
}

/// SQLSTATE 57P03: "the database system is starting up" / "is shutting down".
const CANNOT_CONNECT_NOW: &str = "57P03";

/// Connects and logs in, all within `spec.connect_timeout`.
pub async fn connect(spec: &ServerSpec, id: u64) -> Result<ServerConn, ServerError> {
    match tokio::time::timeout(spec.connect_timeout, connect_inner(spec, id)).await {
        Ok(result) => result,
        Err(_) => Err(ServerError::ConnectTimeout),
    }
}

async fn open_socket(spec: &ServerSpec, addr: &ServerAddr) -> Result<Stream, ServerError> {
    let wrap = |source| ServerError::Connect {
        addr: addr.clone(),
        source,
    };
    match addr {
        ServerAddr::Tcp(host, port) => {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|source| ServerError::DnsLookup {
                    host: host.clone(),
                    source,
                })?
                .collect();
            let stream = connect_tcp(&addrs, spec.keepalive.socket_buffer)
                .await
                .map_err(wrap)?;
            apply_tcp_options(&stream, &spec.keepalive);
            Ok(Stream::Tcp(stream))
        }
        ServerAddr::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await.map_err(wrap)?)),
    }
}

/// Connects to the first of `addrs` (what the host name resolved to) that answers. `tcp_socket_buffer` is set before the
/// handshake, as PgBouncer does: set on an established connection, a small receive buffer
/// leaves the window scale negotiated for the default one, and a bulk transfer (a COPY, a
/// base backup) then crawls on 200 ms window probes.
async fn connect_tcp(addrs: &[std::net::SocketAddr], buffer: u32) -> std::io::Result<TcpStream> {
    let mut last = None;
    for &addr in addrs {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if buffer > 0 {
            socket.set_recv_buffer_size(buffer)?;
            socket.set_send_buffer_size(buffer)?;
        }
        match socket.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "host name resolved to no address",
        )
    }))
}

/// Asks a TCP server for TLS unless `server_tls_sslmode = disable`; `S` starts the handshake, `N`
/// continues in plain text below `require` and fails the connection from `require` up.
async fn negotiate_tls(
    spec: &ServerSpec,
    addr: &ServerAddr,
    stream: Stream,
) -> Result<Stream, ServerError> {
    let Some(connector) = spec.tls.connector() else {
        return Ok(stream);
    };
    let (mut tcp, host) = match (stream, addr) {
        (Stream::Tcp(tcp), ServerAddr::Tcp(host, _)) => (tcp, host),
        (other, _) => return Ok(other),
    };
    let mut out = BytesMut::with_capacity(8);
    frontend::ssl_request(&mut out);
    tcp.write_all(&out).await?;
    // One byte, read straight from the socket: anything the server sent after it belongs to the
    // TLS handshake (or is an attack, which the handshake then rejects).
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    match answer[0] {
        b'S' => {}
        b'N' if spec.tls.mode() < SslMode::Require => return Ok(Stream::Tcp(tcp)),
        b'N' => {
            return Err(ServerError::Tls {
                reason: "server refused SSL",
                source: None,
            });
        }
        _ => {
            return Err(ServerError::Tls {
                reason: "bad sslreq answer",
                source: None,
            });
        }
    }
    // The name is checked only under verify-full; it is also sent as SNI when it is a DNS name.
    // A host rustls cannot name is only tolerable when the name is not checked.
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .or_else(|e| {
            if spec.tls.mode() < SslMode::VerifyFull {
                rustls::pki_types::ServerName::try_from("localhost")
            } else {
                Err(e)
            }
        })
        .map_err(|_| ServerError::Tls {
            reason: "invalid server host name for TLS",
            source: None,
        })?;
    let tls = connector.connect(name, tcp).await.map_err(|e| {
        // The reason is for the log (PgBouncer's phrase first, which operators grep for); the
        // client only learns that TLS startup failed.
        let certificate = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .and_then(|r| match r {
                rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o)) => {
                    Some(o.to_string())
                }
                rustls::Error::InvalidCertificate(c) => Some(c.to_string()),
                _ => None,
            });
        if let Some(why) = certificate {
            tracing::warn!(host = %host, "server TLS handshake: certificate verify failed: {why}");
        } else {
            tracing::warn!(host = %host, "server TLS handshake failed: {e}");
        }
        ServerError::Tls {
            reason: "TLS startup failed",
            source: Some(e),
        }
    })?;
    Ok(Stream::TlsToServer(Box::new(tls)))
}

async fn connect_inner(spec: &ServerSpec, id: u64) -> Result<ServerConn, ServerError> {
    // One host of a host list per connection; a failed one moves `disable` on to the next.
    let (addr, host_index) = spec.hosts.pick(&spec.addr);
    let stream = match open_socket(spec, &addr).await {
        Ok(stream) => stream,
        Err(error) => {
            spec.hosts.failed(host_index);
            return Err(error);
        }
    };
    let mut stream = negotiate_tls(spec, &addr, stream).await?;
    let local = stream.local();
    let mut out = BytesMut::with_capacity(256);
    let params = [
        ("user", spec.user.as_str()),
        ("database", spec.dbname.as_str()),
    ];
    let extra = spec
        .startup_params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    frontend::startup_message(&mut out, params.into_iter().chain(extra));
    stream.write_all(&out).await?;

    let mut reader = MessageReader::new(1024, spec.max_packet_size);
    authenticate(spec, &mut stream, &mut reader).await?;

    let mut server_params = ParamSet::default();
    let mut login_params = Vec::new();
    let mut backend_key = (0, 0);
    loop {
        let (tag, body) = reader.read_message(&mut stream).await?;
        match tag {
            b'S' => {
                let (name, value) =
                    reply::parameter_status(&body).map_err(crate::net::ReadError::from)?;
                server_params.set(name, value);
                login_params.push((name.to_owned(), value.to_owned()));
            }
            b'K' => {
                backend_key =
                    reply::backend_key_data(&body).map_err(crate::net::ReadError::from)?;
            }
            b'N' => {}
            b'E' => return Err(ServerError::Login(ErrorFields::parse(&body))),
            b'Z' => break,
            other => return Err(ServerError::Unexpected(char::from(other))),
        }
    }
    let now = Instant::now();
    let mut conn = ServerConn {
        id,
        stream,
        read_buf: reader.into_buffer(),
        scanner: Scanner::new(spec.max_packet_size),
        cancel: Arc::new(CancelTarget {
            addr,
            pid: backend_key.0,
            key: backend_key.1,
        }),
        params: server_params,
        login_params: Arc::new(login_params),
        created: now,
        last_used: now,
        request_time: now,
        local,
        prepared: PreparedSet::default(),
        entry: None,
    };
    if let Some(sql) = spec.connect_query.as_deref().filter(|q| !q.is_empty()) {
        // PgBouncer only logs connect_query errors; the connection stays usable.
        if let Err(e) = conn.simple_query(sql).await {
            match e {
                ServerError::Query(fields) => {
                    tracing::warn!(server = conn.id, "connect_query failed: {fields}");
                }
                other => return Err(other),
            }
        }
    }
    Ok(conn)
}

/// The password to answer a cleartext or SCRAM request with, if the secret is plain text.
fn plain_password(secret: Option<&Secret>) -> Option<&str> {
    match secret {
        Some(Secret::Plain(p)) => Some(p),
        _ => None,
    }
}

/// The configured secret, else the one a client login proved (auth_query users).
fn effective_secret(spec: &ServerSpec, learned: Option<&Learned>) -> Option<Secret> {
    spec.secret
        .clone()
        .or_else(|| learned.map(|l| l.secret.clone()))
}

/// A SCRAM exchange: by password when one is known, else by pass-through of the ClientKey a
/// client proved against the same SCRAM secret.
fn scram_client(
    secret: Option<&Secret>,
    learned: Option<&Learned>,
) -> Result<ScramClient, ServerError> {
    if let Some(password) = plain_password(secret) {
        return Ok(ScramClient::with_password(password));
    }
    match (secret, learned) {
        (Some(Secret::Scram(stored)), Some(l)) if matches!(&l.secret, Secret::Scram(kept) if kept == stored) => {
            l.client_key
                .map(|key| ScramClient::with_keys(key, stored))
                .ok_or(ServerError::AuthUnsupported(WRONG_PASSWORD_TYPE))
        }
        _ => Err(ServerError::AuthUnsupported(WRONG_PASSWORD_TYPE)),
    }
}

/// Reads server-first on a blocking thread: deriving the keys from a password costs as many
/// PBKDF2 rounds as the server asks for (up to `MAX_SCRAM_ITERATIONS`), which must not stall the
/// I/O threads that serve every other client.
async fn server_first(
    mut client: ScramClient,
    data: &[u8],
) -> (Option<ScramClient>, Result<Vec<u8>, AuthError>) {
    let data = data.to_vec();
    match tokio::task::spawn_blocking(move || {
        let reply = client.server_first(&data);
        (client, reply)
    })
    .await
    {
        Ok((client, reply)) => (Some(client), reply),
        Err(_) => (None, Err(AuthError::OutOfOrder)),
    }
}

/// Logs why a server's SCRAM exchange failed and gives the clients' reason (`server login
/// failed: ...`). A refused iteration count says which limit it broke.
fn scram_failed(spec: &ServerSpec, e: &AuthError) -> ServerError {
    tracing::warn!(
        user = %spec.user,
        database = %spec.dbname,
        "server SCRAM exchange failed: {e}"
    );
    ServerError::AuthUnsupported(scram_reason(e))
}

/// The client-visible reason for a failed server SCRAM exchange.
fn scram_reason(e: &AuthError) -> &'static str {
    match e {
        AuthError::TooManyIterations { .. } => {
            "SCRAM iteration count from the server is over the limit of 1000000"
        }
        AuthError::MessageTooLong => "SCRAM message from the server too long",
        AuthError::NonceMismatch => "invalid SCRAM response (nonce mismatch)",
        AuthError::Malformed(_) => "malformed SCRAM message from the server",
        AuthError::WrongServerSignature => "invalid server signature",
        AuthError::ServerError(_) => "error received from server in SCRAM exchange",
        _ => "SCRAM exchange failed",
    }
}

async fn authenticate(
    spec: &ServerSpec,
    stream: &mut Stream,
    reader: &mut MessageReader,
) -> Result<(), ServerError> {
    let mut out = BytesMut::with_capacity(256);
    let mut scram: Option<ScramClient> = None;
    let learned = spec.learned.get();
    let secret = effective_secret(spec, learned.as_ref());
    loop {
        let (tag, body) = reader.read_message(stream).await?;
        match tag {
            b'R' => {}
            b'E' => return Err(ServerError::Login(ErrorFields::parse(&body))),
            b'N' => continue,
            other => return Err(ServerError::Unexpected(char::from(other))),
        }
        out.clear();
        match reply::auth_request(&body).map_err(crate::net::ReadError::from)? {
            AuthRequest::Ok => return Ok(()),
            AuthRequest::Cleartext => {
                let password = plain_password(secret.as_ref())
                    .ok_or(ServerError::AuthUnsupported(WRONG_PASSWORD_TYPE))?;
                frontend::password_message(&mut out, password.as_bytes());
            }
            AuthRequest::Md5(salt) => {
                let secret_hex = match secret.as_ref() {
                    Some(Secret::Plain(p)) => md5_secret(&spec.user, p),
                    Some(Secret::Md5(hex)) => hex.clone(),
                    _ => {
                        return Err(ServerError::AuthUnsupported(WRONG_PASSWORD_TYPE));
                    }
                };
                frontend::password_message(&mut out, md5_response(&secret_hex, salt).as_bytes());
            }
            AuthRequest::Sasl(mechanisms) => {
                if !mechanisms.contains(&"SCRAM-SHA-256") {
                    return Err(ServerError::AuthUnsupported(
                        "none of the server's SASL authentication mechanisms are supported",
                    ));
                }
                let mut client = scram_client(secret.as_ref(), learned.as_ref())?;
                frontend::sasl_initial_response(&mut out, "SCRAM-SHA-256", &client.client_first());
                scram = Some(client);
            }
            AuthRequest::SaslContinue(data) => {
                let client = scram.take().ok_or(ServerError::Unexpected('R'))?;
                let (client, reply) = server_first(client, data).await;
                scram = client;
                let reply = reply.map_err(|e| scram_failed(spec, &e))?;
                frontend::sasl_response(&mut out, &reply);
            }
            AuthRequest::SaslFinal(data) => {
                let client = scram.as_mut().ok_or(ServerError::Unexpected('R'))?;
                client
                    .server_final(data)
                    .map_err(|e| scram_failed(spec, &e))?;
                continue;
            }
            AuthRequest::Unsupported(_) => {
                return Err(ServerError::AuthUnsupported(
                    "server asks for an unsupported authentication method",
                ));
            }
        }
        stream.write_all(&out).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::MAX_SCRAM_ITERATIONS;

    fn refused(code: &str, message: &str) -> ServerError {
        ServerError::Login(ErrorFields {
            severity: Some("FATAL".to_owned()),
            code: Some(code.to_owned()),
            message: Some(message.to_owned()),
        })
    }

    #[test]
    fn waiters_get_the_servers_error_or_pgbouncers_text() {
        let e = refused("28P01", "password authentication failed for user \"u\"");
        assert_eq!(
            e.refusal(),
            Some((
                "28P01".to_owned(),
                "password authentication failed for user \"u\"".to_owned()
            ))
        );
        assert_eq!(
            e.close_reason(),
            "password authentication failed for user \"u\""
        );
        let e = ServerError::AuthUnsupported(WRONG_PASSWORD_TYPE);
        assert_eq!(
            e.refusal(),
            Some((
                "08P01".to_owned(),
                "server login failed: wrong password type".to_owned()
            ))
        );
        assert_eq!(e.close_reason(), "failed to answer authreq");
    }

    #[test]
    fn the_iteration_cap_is_named_in_the_reason() {
        let e = AuthError::TooManyIterations {
            count: 100_000_000,
            limit: MAX_SCRAM_ITERATIONS,
        };
        assert!(scram_reason(&e).ends_with(&MAX_SCRAM_ITERATIONS.to_string()));
        assert_eq!(
            ServerError::AuthUnsupported(scram_reason(&e)).to_string(),
            "server login failed: SCRAM iteration count from the server is over the limit of 1000000"
        );
    }

    #[test]
    fn starting_up_and_unreachable_servers_fail_no_waiter() {
        let e = refused("57P03", "the database system is starting up");
        assert_eq!(e.refusal(), None);
        assert_eq!(e.close_reason(), "the database system is starting up");
        let e = ServerError::Connect {
            addr: ServerAddr::Tcp("127.0.0.1".to_owned(), 1),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(e.refusal(), None);
        assert_eq!(e.close_reason(), "connect failed");
        assert_eq!(
            ServerError::ConnectTimeout.close_reason(),
            "connect timeout"
        );
    }
}
