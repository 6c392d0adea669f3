//! The typed configuration. Durations are `Duration` (zero means "off" where PgBouncer says 0
//! disables a timeout), ports are `u16`, modes are enums.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The whole configuration, as loaded from a `pgbouncer.ini` (or `pgsluice.toml`) and its
/// `auth_file`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from (`conffile`), if any.
    pub source: Option<PathBuf>,
    /// The `[pgbouncer]` section.
    pub general: General,
    /// The `[databases]` section in file order, without the `*` fallback.
    pub databases: Vec<DatabaseDef>,
    /// The `*` fallback entry of `[databases]`, if present.
    pub fallback_database: Option<DatabaseDef>,
    /// The `[users]` section, by user name.
    pub users: BTreeMap<String, UserDef>,
    /// The users and secrets from `auth_file`, by user name.
    pub auth_users: BTreeMap<String, Secret>,
    /// Raw `[pgsluice]` settings (metrics, alerts, ...), keyed by name, kept for the modules
    /// that own them.
    pub pgsluice: BTreeMap<String, String>,
    /// The `[peers]` section, by peer id.
    pub peers: BTreeMap<u16, super::peers::PeerDef>,
}

/// `pool_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolMode {
    /// A server is held until the client disconnects.
    #[default]
    Session,
    /// A server is held for one transaction.
    Transaction,
    /// A server is held for one statement; multi-statement transactions are refused.
    Statement,
}

impl PoolMode {
    /// The name PgBouncer uses in its config and admin console.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        }
    }
}

/// `auth_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthType {
    /// No password asked; the user must still be in `auth_file`.
    Trust,
    /// No password asked; any user name accepted.
    Any,
    /// Cleartext password.
    Plain,
    /// MD5 challenge, or SCRAM when the stored secret is a SCRAM secret.
    #[default]
    Md5,
    /// SCRAM-SHA-256.
    ScramSha256,
    /// Client certificate (needs TLS).
    Cert,
    /// Rules from `auth_hba_file`.
    Hba,
    /// PAM (not supported).
    Pam,
    /// LDAP (not supported).
    Ldap,
}

impl AuthType {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Trust => "trust",
            AuthType::Any => "any",
            AuthType::Plain => "plain",
            AuthType::Md5 => "md5",
            AuthType::ScramSha256 => "scram-sha-256",
            AuthType::Cert => "cert",
            AuthType::Hba => "hba",
            AuthType::Pam => "pam",
            AuthType::Ldap => "ldap",
        }
    }
}

/// A secret from `auth_file` or a `password=` in `[databases]`.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// A plain-text password.
    Plain(String),
    /// `md5` + hex(md5(password + user)); stored without the `md5` prefix, lower-case hex.
    Md5(String),
    /// A SCRAM-SHA-256 verifier.
    Scram(ScramSecret),
}

impl std::fmt::Debug for Secret {
    // Never print secret material, not even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Plain(_) => f.write_str("Secret::Plain(..)"),
            Secret::Md5(_) => f.write_str("Secret::Md5(..)"),
            Secret::Scram(_) => f.write_str("Secret::Scram(..)"),
        }
    }
}

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// The salt (decoded from base64).
    pub salt: Vec<u8>,
    /// StoredKey = H(ClientKey).
    pub stored_key: [u8; 32],
    /// ServerKey = HMAC(SaltedPassword, "Server Key").
    pub server_key: [u8; 32],
}

/// One entry of `[databases]`. `Debug` hides `password`.
#[derive(Clone, Default, PartialEq)]
pub struct DatabaseDef {
    /// The name clients connect to.
    pub name: String,
    /// `host`: a host name, an IP, or a unix socket directory (starts with `/`). `None` means
    /// the default unix socket directory.
    pub host: Option<String>,
    /// `port` (default 5432).
    pub port: u16,
    /// `dbname` on the server; `None` means the same as `name`.
    pub dbname: Option<String>,
    /// `user`: a forced user; all clients share one pool logged in as this user.
    pub user: Option<String>,
    /// `password` for the forced user (or for any user when set).
    pub password: Option<String>,
    /// `pool_size` override.
    pub pool_size: Option<u32>,
    /// `min_pool_size` override.
    pub min_pool_size: Option<u32>,
    /// `reserve_pool_size` (alias `reserve_pool`) override.
    pub reserve_pool_size: Option<u32>,
    /// `pool_mode` override.
    pub pool_mode: Option<PoolMode>,
    /// `max_db_connections` override.
    pub max_db_connections: Option<u32>,
    /// `max_db_client_connections` override.
    pub max_db_client_connections: Option<u32>,
    /// `server_lifetime` override.
    pub server_lifetime: Option<Duration>,
    /// `query_wait_timeout` override.
    pub query_wait_timeout: Option<Duration>,
    /// `connect_query`: run on every new server connection.
    pub connect_query: Option<String>,
    /// `client_encoding` sent in the server startup packet.
    pub client_encoding: Option<String>,
    /// `datestyle` sent in the server startup packet.
    pub datestyle: Option<String>,
    /// `timezone` sent in the server startup packet.
    pub timezone: Option<String>,
    /// `application_name` sent in the server startup packet.
    pub application_name: Option<String>,
    /// `auth_user` override.
    pub auth_user: Option<String>,
    /// `auth_query` override.
    pub auth_query: Option<String>,
    /// `auth_dbname` override.
    pub auth_dbname: Option<String>,
    /// `load_balance_hosts`.
    pub load_balance_hosts: Option<String>,
    /// Keys this implementation accepts but does not act on yet, and keys owned by other
    /// modules (per-database alert budgets): name → raw value.
    pub extra: BTreeMap<String, String>,
}

impl std::fmt::Debug for DatabaseDef {
    // The password must never reach a log line or a panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseDef")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| ".."))
            .field("pool_size", &self.pool_size)
            .field("min_pool_size", &self.min_pool_size)
            .field("reserve_pool_size", &self.reserve_pool_size)
            .field("pool_mode", &self.pool_mode)
            .field("max_db_connections", &self.max_db_connections)
            .field("max_db_client_connections", &self.max_db_client_connections)
            .field("server_lifetime", &self.server_lifetime)
            .field("query_wait_timeout", &self.query_wait_timeout)
            .field("connect_query", &self.connect_query)
            .field("client_encoding", &self.client_encoding)
            .field("datestyle", &self.datestyle)
            .field("timezone", &self.timezone)
            .field("application_name", &self.application_name)
            .field("auth_user", &self.auth_user)
            .field("auth_query", &self.auth_query)
            .field("auth_dbname", &self.auth_dbname)
            .field("load_balance_hosts", &self.load_balance_hosts)
            .field("extra", &self.extra)
            .finish()
    }
}

/// One entry of `[users]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserDef {
    /// The user name.
    pub name: String,
    /// `pool_size` for every pool of this user.
    pub pool_size: Option<u32>,
    /// `reserve_pool_size`.
    pub reserve_pool_size: Option<u32>,
    /// `pool_mode`.
    pub pool_mode: Option<PoolMode>,
    /// `max_user_connections`.
    pub max_user_connections: Option<u32>,
    /// `max_user_client_connections`.
    pub max_user_client_connections: Option<u32>,
    /// `query_timeout`.
    pub query_timeout: Option<Duration>,
    /// `query_wait_timeout`.
    pub query_wait_timeout: Option<Duration>,
    /// `idle_transaction_timeout`.
    pub idle_transaction_timeout: Option<Duration>,
    /// `transaction_timeout`.
    pub transaction_timeout: Option<Duration>,
    /// `client_idle_timeout`.
    pub client_idle_timeout: Option<Duration>,
}

/// The `[pgbouncer]` section. Field names are the setting names.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::struct_excessive_bools)]
pub struct General {
    /// `logfile`.
    pub logfile: Option<PathBuf>,
    /// `pidfile`.
    pub pidfile: Option<PathBuf>,
    /// `listen_addr`, split on commas; empty means unix socket only; `*` means all.
    pub listen_addr: Vec<String>,
    /// `listen_port`.
    pub listen_port: u16,
    /// `unix_socket_dir`; empty disables the unix socket.
    pub unix_socket_dir: String,
    /// `unix_socket_mode`.
    pub unix_socket_mode: u32,
    /// `unix_socket_group`.
    pub unix_socket_group: Option<String>,
    /// `user` to switch to.
    pub user: Option<String>,
    /// `pool_mode`.
    pub pool_mode: PoolMode,
    /// `max_client_conn`.
    pub max_client_conn: u32,
    /// `default_pool_size` (0 = unlimited).
    pub default_pool_size: u32,
    /// `min_pool_size`.
    pub min_pool_size: u32,
    /// `reserve_pool_size`.
    pub reserve_pool_size: u32,
    /// `reserve_pool_timeout`.
    pub reserve_pool_timeout: Duration,
    /// `max_db_connections` (0 = unlimited).
    pub max_db_connections: u32,
    /// `max_db_client_connections` (0 = unlimited).
    pub max_db_client_connections: u32,
    /// `max_user_connections` (0 = unlimited).
    pub max_user_connections: u32,
    /// `max_user_client_connections` (0 = unlimited).
    pub max_user_client_connections: u32,
    /// `server_round_robin`.
    pub server_round_robin: bool,
    /// `ignore_startup_parameters`, split on commas.
    pub ignore_startup_parameters: Vec<String>,
    /// `track_extra_parameters`, split on commas (added to the tracked defaults at start).
    pub track_extra_parameters: Vec<String>,
    /// `application_name_add_host`.
    pub application_name_add_host: bool,
    /// `stats_period`.
    pub stats_period: Duration,
    /// `max_prepared_statements`.
    pub max_prepared_statements: u32,
    /// `peer_id` (0: peering off).
    pub peer_id: u16,
    /// `login_notify_message` (empty: none).
    pub login_notify_message: String,
    /// `auth_type`.
    pub auth_type: AuthType,
    /// `auth_hba_file`.
    pub auth_hba_file: Option<PathBuf>,
    /// `auth_ident_file` (user-name maps for HBA `map=`).
    pub auth_ident_file: Option<PathBuf>,
    /// `auth_file`.
    pub auth_file: Option<PathBuf>,
    /// `auth_user`.
    pub auth_user: Option<String>,
    /// `auth_query`.
    pub auth_query: String,
    /// `auth_dbname`.
    pub auth_dbname: Option<String>,
    /// `syslog`.
    pub syslog: bool,
    /// `syslog_ident`.
    pub syslog_ident: String,
    /// `syslog_facility`.
    pub syslog_facility: String,
    /// `log_connections`.
    pub log_connections: bool,
    /// `log_disconnections`.
    pub log_disconnections: bool,
    /// `log_pooler_errors`.
    pub log_pooler_errors: bool,
    /// `log_stats`.
    pub log_stats: bool,
    /// `verbose`.
    pub verbose: u8,
    /// `admin_users`, split on commas.
    pub admin_users: Vec<String>,
    /// `stats_users`, split on commas.
    pub stats_users: Vec<String>,
    /// `server_reset_query`.
    pub server_reset_query: String,
    /// `server_reset_query_always`.
    pub server_reset_query_always: bool,
    /// `server_check_delay`.
    pub server_check_delay: Duration,
    /// `server_check_query` (empty = no check).
    pub server_check_query: String,
    /// `server_fast_close`.
    pub server_fast_close: bool,
    /// `server_lifetime` (0 = use once).
    pub server_lifetime: Duration,
    /// `server_idle_timeout` (0 = off).
    pub server_idle_timeout: Duration,
    /// `server_connect_timeout`.
    pub server_connect_timeout: Duration,
    /// `server_login_retry`.
    pub server_login_retry: Duration,
    /// `client_login_timeout` (0 = off).
    pub client_login_timeout: Duration,
    /// `autodb_idle_timeout`.
    pub autodb_idle_timeout: Duration,
    /// `pool_idle_timeout` (PgBouncer 1.26; 0 = off): free a pool with no client and no
    /// server after this long.
    pub pool_idle_timeout: Duration,
    /// `query_wait_notify` (0 = off).
    pub query_wait_notify: Duration,
    /// `query_timeout` (0 = off).
    pub query_timeout: Duration,
    /// `query_wait_timeout` (0 = wait forever).
    pub query_wait_timeout: Duration,
    /// `cancel_wait_timeout`.
    pub cancel_wait_timeout: Duration,
    /// `client_idle_timeout` (0 = off).
    pub client_idle_timeout: Duration,
    /// `idle_transaction_timeout` (0 = off).
    pub idle_transaction_timeout: Duration,
    /// `transaction_timeout` (0 = off).
    pub transaction_timeout: Duration,
    /// `pkt_buf`.
    pub pkt_buf: u32,
    /// `max_packet_size`.
    pub max_packet_size: u32,
    /// `listen_backlog`.
    pub listen_backlog: u32,
    /// `so_reuseport`.
    pub so_reuseport: bool,
    /// `tcp_keepalive`.
    pub tcp_keepalive: bool,
    /// `tcp_keepcnt` (0 = OS default).
    pub tcp_keepcnt: u32,
    /// `tcp_keepidle` (0 = OS default).
    pub tcp_keepidle: u32,
    /// `tcp_keepintvl` (0 = OS default).
    pub tcp_keepintvl: u32,
    /// `tcp_user_timeout` in milliseconds (0 = off).
    pub tcp_user_timeout: u32,
    /// `tcp_socket_buffer` (0 = OS default).
    pub tcp_socket_buffer: u32,
    /// Every `[pgbouncer]` key exactly as written (after `%include`), for SHOW CONFIG and for
    /// settings accepted but not acted on.
    pub raw: BTreeMap<String, String>,
}
