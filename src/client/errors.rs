//! The one mapping from why a client is refused or cut off to PgBouncer's message text and the
//! SQLSTATE drivers expect.

use bytes::BytesMut;

use crate::pool::{DedicatedError, PoolError};
use crate::protocol::backend::{Severity, error_response};
use crate::protocol::sqlstate;
use crate::server::ServerError;

/// A reason to send a client an error.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Unknown database name.
    #[error("no such database: {0}")]
    NoSuchDatabase(String),
    /// Bad password or unknown user.
    #[error("password authentication failed for user \"{0}\"")]
    AuthFailed(String),
    /// `trust` for a user that is neither in `auth_file` nor found by `auth_query` (PgBouncer's
    /// mock login).
    #[error("\"trust\" authentication failed")]
    TrustAuthFailed,
    /// The SCRAM exchange failed: a wrong password or an unknown user (PgBouncer's text).
    #[error("SASL authentication failed")]
    SaslAuthFailed,
    /// `auth_type` needs something this build cannot do.
    #[error("authentication method not supported: {0}")]
    AuthUnsupported(&'static str),
    /// `max_client_conn` reached (PgBouncer sends it with 08P01, as its other pooler errors).
    #[error("no more connections allowed (max_client_conn)")]
    TooManyClients,
    /// `max_db_client_connections` or `max_user_client_connections` reached (the setting's name).
    #[error("client connections exceeded ({0})")]
    ClientLimit(&'static str),
    /// A startup parameter not allowed by `ignore_startup_parameters`.
    #[error("unsupported startup parameter: {0}")]
    UnsupportedParameter(String),
    /// A `-c name=value` in the `options` startup parameter that is neither tracked nor ignored.
    #[error("unsupported startup parameter in options: {0}")]
    UnsupportedOption(String),
    /// Bind or Describe of a statement name the client never prepared (tracked prepared
    /// statements); PgBouncer's text.
    #[error("prepared statement did not exist")]
    PreparedStatementMissing,
    /// A named Parse of a name the client already prepared (tracked prepared statements);
    /// PgBouncer's text.
    #[error("prepared statement name is already in use")]
    PreparedNameInUse,
    /// Startup packet without `user`.
    #[error("no username supplied")]
    NoUser,
    /// Malformed input.
    #[error("{0}")]
    Protocol(String),
    /// Could not get a server.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The server broke while the client was using it.
    #[error("server conn crashed?")]
    ServerGone,
    /// `client_idle_timeout`.
    #[error("client_idle_timeout")]
    IdleTimeout,
    /// `query_timeout`: the query ran too long; PgBouncer closes the server and the client.
    #[error("query timeout")]
    QueryTimeout,
    /// `idle_transaction_timeout` (08P01, as PgBouncer's disconnect; drivers report a lost
    /// connection, not PostgreSQL's 25P03).
    #[error("idle transaction timeout")]
    IdleTransactionTimeout,
    /// `transaction_timeout`.
    #[error("transaction timeout")]
    TransactionTimeout,
    /// `client_login_timeout`.
    #[error("client_login_timeout")]
    LoginTimeout,
    /// Statement mode and a transaction block (08P01, as PgBouncer's disconnect).
    #[error("transaction blocks not allowed in statement pooling mode")]
    StatementModeTransaction,
    /// The pooler is shutting down.
    #[error("pooler is shutting down")]
    Shutdown,
    /// SHUTDOWN WAIT_FOR_SERVERS (SIGINT): the client is let go between transactions.
    #[error("server shutting down")]
    ServerShutdown,
    /// The process exits now (a second SIGTERM/SIGINT, SIGQUIT, SHUTDOWN): as PgBouncer, which
    /// exits without a word, the connection is closed and nothing is sent.
    #[error("pooler exiting")]
    Exiting,
    /// A plain-text login under `client_tls_sslmode` `require` or stricter.
    #[error("SSL required")]
    SslRequired,
    /// `auth_type = hba` and no rule matches the connection.
    #[error("no authentication method is found")]
    NoHbaRule,
    /// An HBA `reject` rule matched.
    #[error("login rejected")]
    LoginRejected,
    /// `cert` authentication failed (no TLS, no certificate, or a name mismatch).
    #[error("certificate authentication failed")]
    CertAuthFailed,
    /// HBA `peer` failed (not a unix socket, or the OS user is not the requested user).
    #[error("unix socket login rejected")]
    PeerAuthFailed,
    /// `auth_query` returned no row for the user.
    #[error("no such user")]
    NoSuchUser,
    /// `auth_query` could not be run, or the auth database cannot be used (the reason is
    /// logged; the client gets PgBouncer's generic text).
    #[error("bouncer config error")]
    ConfigError,
    /// The auth database (`auth_dbname`) is disabled.
    #[error("authentication database \"{0}\" is disabled")]
    AuthDbDisabled(String),
    /// A replication client's own server refused the login (PgBouncer's text; the server's
    /// reason, such as a missing `replication` pg_hba.conf line, is in the log).
    #[error("login failed")]
    ReplicationLoginFailed,
    /// A replication client's own server could not be reached.
    #[error("{0}")]
    ReplicationServer(String),
}

impl From<DedicatedError> for ClientError {
    fn from(error: DedicatedError) -> Self {
        match error {
            DedicatedError::Pool(e) => ClientError::Pool(e),
            DedicatedError::Server(ServerError::Login(fields)) => {
                tracing::warn!("replication server login failed: {fields}");
                ClientError::ReplicationLoginFailed
            }
            DedicatedError::Server(e) => ClientError::ReplicationServer(e.to_string()),
        }
    }
}

impl ClientError {
    /// SQLSTATE for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ClientError::NoSuchDatabase(_) => sqlstate::INVALID_CATALOG_NAME,
            ClientError::AuthFailed(_)
            | ClientError::TrustAuthFailed
            | ClientError::SaslAuthFailed => sqlstate::INVALID_PASSWORD,
            ClientError::NoUser | ClientError::AuthUnsupported(_) => {
                sqlstate::INVALID_AUTHORIZATION
            }
            ClientError::Shutdown
            | ClientError::ServerShutdown
            | ClientError::Exiting
            | ClientError::Pool(PoolError::Closed) => sqlstate::ADMIN_SHUTDOWN,
            _ => sqlstate::PROTOCOL_VIOLATION,
        }
    }

    /// The message text; pool errors use PgBouncer's wording.
    pub fn text(&self) -> String {
        match self {
            ClientError::Pool(PoolError::WaitTimeout) => "query_wait_timeout".to_owned(),
            other => other.to_string(),
        }
    }

    /// Appends a FATAL ErrorResponse for this error. A refused server login carries the
    /// server's own SQLSTATE (PgBouncer relays it), which no static code can name.
    pub fn write_fatal(&self, out: &mut BytesMut) {
        if matches!(self, ClientError::Exiting) {
            return;
        }
        let code = match self {
            ClientError::Pool(PoolError::LoginFailed(failure)) => &failure.sqlstate,
            other => other.sqlstate(),
        };
        error_response(out, Severity::Fatal, code, &self.text());
    }
}

#[cfg(test)]
mod tests {
    use super::ClientError;

    /// PgBouncer's texts and SQLSTATEs for the refusals that log alerts and drivers match.
    #[test]
    fn pgbouncer_texts_and_codes() {
        for (error, text, code) in [
            (
                ClientError::TrustAuthFailed,
                "\"trust\" authentication failed",
                "28P01",
            ),
            (
                ClientError::SaslAuthFailed,
                "SASL authentication failed",
                "28P01",
            ),
            (
                ClientError::PreparedNameInUse,
                "prepared statement name is already in use",
                "08P01",
            ),
            // A lost connection for drivers, as PgBouncer's disconnect (not PostgreSQL's 25P03).
            (
                ClientError::IdleTransactionTimeout,
                "idle transaction timeout",
                "08P01",
            ),
        ] {
            assert_eq!(error.text(), text);
            assert_eq!(error.sqlstate(), code, "{text}");
        }
    }
}
