//! pgsluice: a multi-threaded PostgreSQL connection pooler, drop-in compatible with PgBouncer.

pub mod config;
pub mod protocol;
