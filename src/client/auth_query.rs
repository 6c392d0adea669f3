//! Looking up a user missing from `auth_file` with `auth_query`, run as `auth_user` on a server
//! of the pool for (`auth_dbname` or the client's database, `auth_user`), as PgBouncer does.
//! Per-database `auth_user`/`auth_query`/`auth_dbname` override the global ones; the admin
//! console (`pgbouncer`) uses the global ones and needs `auth_dbname`, since the console itself
//! cannot run a query.
//!
//! The query runs on every login, as in PgBouncer: an answer is never reused, so a changed
//! password, a `VALID UNTIL` that has passed (CVE-2025-2291) or a dropped role takes effect at
//! the next login. The server runs it exactly as its pool left it: none of the client's startup
//! parameters are applied to it, because the client is not authenticated yet (CVE-2025-12819).
//!
//! Does not: authenticate: the secret found is checked by `auth.rs` like an `auth_file` one.

use super::errors::ClientError;
use crate::config::{DatabaseDef, PoolMode, Secret, userlist};
use crate::pool::{CloseReason, Registry, ServerState};
use crate::server::ServerError;

/// The reserved name of the admin console database.
const ADMIN_DB: &str = "pgbouncer";

/// The user's secret from `auth_query`, `None` when no `auth_user` applies. `db` is the
/// client's `[databases]` entry, `None` for the admin console. A user the query does not return
/// is refused with PgBouncer's "no such user".
pub async fn lookup(
    registry: &Registry,
    db: Option<&DatabaseDef>,
    user: &str,
) -> Result<Option<Secret>, ClientError> {
    let config = registry.config();
    let g = &config.general;
    let db_auth_user = db.and_then(|d| d.auth_user.as_deref());
    let Some(auth_user) = db_auth_user.or(g.auth_user.as_deref()) else {
        return Ok(None);
    };
    let query = db
        .and_then(|d| d.auth_query.as_deref())
        .unwrap_or(&g.auth_query);
    let auth_db = auth_database(registry, db)?;
    let found = run_query(registry, &auth_db, auth_user, query, user).await?;
    found.map(Some).ok_or(ClientError::NoSuchUser)
}

/// PgBouncer's `prepare_auth_database`: the database's `auth_dbname`, else the global one, else
/// the client's own database; it must be configured (or match `*`), enabled, and not the
/// console. The pool is (auth database, `auth_user`), whatever user the entry forces.
fn auth_database(
    registry: &Registry,
    db: Option<&DatabaseDef>,
) -> Result<DatabaseDef, ClientError> {
    let config = registry.config();
    let named = db
        .and_then(|d| d.auth_dbname.as_deref())
        .or(config.general.auth_dbname.as_deref());
    let reserved = || {
        tracing::error!("cannot use the reserved \"{ADMIN_DB}\" database as an auth_dbname");
        ClientError::ConfigError
    };
    let mut auth_db = match (named, db) {
        (Some(ADMIN_DB), _) | (None, None) => return Err(reserved()),
        (Some(name), _) => registry.database(name).ok_or_else(|| {
            tracing::error!("authentication database \"{name}\" is not configured.");
            ClientError::ConfigError
        })?,
        (None, Some(db)) => db.clone(),
    };
    if registry.db_flags(&auth_db.name).disabled() {
        return Err(ClientError::AuthDbDisabled(auth_db.name));
    }
    auth_db.user = None;
    auth_db.password = None;
    Ok(auth_db)
}

async fn run_query(
    registry: &Registry,
    auth_db: &DatabaseDef,
    auth_user: &str,
    query: &str,
    user: &str,
) -> Result<Option<Secret>, ClientError> {
    let pool = registry.pool_for(auth_db, auth_user);
    let mut server = pool.checkout().await?;
    match server.conn().query_with_param(query, user).await {
        Ok(rows) => {
            server.release(ServerState::Idle, PoolMode::Transaction);
            // PgBouncer reads the first row; a NULL password can match nothing.
            Ok(rows
                .into_iter()
                .next()
                .map(|row| match row.get(1).cloned().flatten() {
                    Some(text) => userlist::decode_secret(&text),
                    None => Secret::Md5(String::new()),
                }))
        }
        Err(ServerError::Query(fields)) => {
            server.release(ServerState::Idle, PoolMode::Transaction);
            tracing::error!("S: error in auth_query: {fields}");
            Err(ClientError::ConfigError)
        }
        Err(e) => {
            server.close(CloseReason::Unclean);
            tracing::error!("auth_query failed: {e}");
            Err(ClientError::ConfigError)
        }
    }
}
