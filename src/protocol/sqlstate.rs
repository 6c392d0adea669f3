//! SQLSTATE codes the pooler sends, named as in PostgreSQL's errcodes.txt.

/// 08P01 protocol_violation (PgBouncer uses it for most pooler-side failures).
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// 08006 connection_failure.
pub const CONNECTION_FAILURE: &str = "08006";
/// 28P01 invalid_password.
pub const INVALID_PASSWORD: &str = "28P01";
/// 28000 invalid_authorization_specification.
pub const INVALID_AUTHORIZATION: &str = "28000";
/// 3D000 invalid_catalog_name (unknown database).
pub const INVALID_CATALOG_NAME: &str = "3D000";
/// 53300 too_many_connections.
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// 57014 query_canceled.
pub const QUERY_CANCELED: &str = "57014";
/// 57P01 admin_shutdown.
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// 25P03 idle_in_transaction_session_timeout.
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "25P03";
/// 0A000 feature_not_supported.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// 58000 system_error.
pub const SYSTEM_ERROR: &str = "58000";
/// F0000 config_file_error (PgBouncer's failed RELOAD).
pub const CONFIG_FILE_ERROR: &str = "F0000";
