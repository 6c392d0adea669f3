//! The first exchange with a new connection: SSLRequest/GSSENCRequest (answered `N`), protocol
//! version negotiation, CancelRequest, and the startup parameters of a login.

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::errors::ClientError;
use crate::config::Config;
use crate::net::{MessageReader, Stream};
use crate::protocol::backend;
use crate::protocol::startup::{self, StartupPacket};
use crate::server::params;

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

/// A validated StartupMessage.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// `user`.
    pub user: String,
    /// `database` (defaults to the user name).
    pub database: String,
    /// Tracked parameters the client set, with canonical names.
    pub params: Vec<(&'static str, String)>,
}

/// Reads the first packet(s): answers SSL/GSSENC requests with `N` until a startup or cancel
/// packet arrives.
pub async fn handshake(
    config: &Config,
    stream: &mut Stream,
    reader: &mut MessageReader,
) -> Result<FirstContact, ClientError> {
    loop {
        let packet = reader
            .read_startup(stream)
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        match startup::parse(&packet).map_err(|e| ClientError::Protocol(e.to_string()))? {
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                // Nothing may be pipelined behind an SSLRequest before our answer (CVE-2021-23214).
                if !reader.buffer().is_empty() {
                    return Err(ClientError::Protocol(
                        "unexpected data after SSL request".to_owned(),
                    ));
                }
                stream
                    .write_all(b"N")
                    .await
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
            }
            StartupPacket::Cancel { pid, key } => return Ok(FirstContact::Cancel { pid, key }),
            StartupPacket::Startup { minor, params } => {
                let login = validate(config, params, minor, stream).await?;
                return Ok(FirstContact::Login(login));
            }
        }
    }
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
    for (name, value) in params {
        if name == "user" {
            user = Some(value);
        } else if name == "database" {
            database = Some(value);
        } else if name.starts_with("_pq_.") {
            protocol_options.push(name);
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
    })
}
