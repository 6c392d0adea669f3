//! Looking up a user missing from `auth_file` with `auth_query`, run as `auth_user` on a server
//! of the pool for (`auth_dbname` or the client's database, `auth_user`), as PgBouncer does.
//! Per-database `auth_user`/`auth_query`/`auth_dbname` override the global ones. Answers are
//! cached briefly (`pool::auth_cache`).
//!
//! Does not: authenticate: the secret found is checked by `auth.rs` like an `auth_file` one.

use super::errors::ClientError;
use crate::config::{DatabaseDef, Secret, userlist};
use crate::pool::{CloseReason, Registry, ServerState};
use crate::server::ServerError;

/// The user's secret from `auth_query`, `None` when no `auth_user` is configured. A user the
/// query does not return is refused with PgBouncer's "no such user".
pub async fn lookup(
    registry: &Registry,
    db: &DatabaseDef,
    user: &str,
) -> Result<Option<Secret>, ClientError> {
    let config = registry.config();
    let g = &config.general;
    let Some(auth_user) = db.auth_user.as_deref().or(g.auth_user.as_deref()) else {
        return Ok(None);
    };
    let query = db.auth_query.as_deref().unwrap_or(&g.auth_query);
    let auth_db = match db.auth_dbname.as_deref().or(g.auth_dbname.as_deref()) {
        Some(name) => registry
            .database(name)
            .ok_or_else(|| ClientError::NoSuchDatabase(name.to_owned()))?,
        None => db.clone(),
    };
    let cached = registry.auth_cache().get(&auth_db.name, user);
    let secret = if let Some(cached) = cached {
        cached
    } else {
        let found = run_query(registry, &auth_db, auth_user, query, user).await?;
        registry
            .auth_cache()
            .put(&auth_db.name, user, found.clone());
        found
    };
    secret.map(Some).ok_or(ClientError::NoSuchUser)
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
            server.release(ServerState::Idle, crate::config::PoolMode::Transaction);
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
            server.release(ServerState::Idle, crate::config::PoolMode::Transaction);
            tracing::warn!("auth_query failed: {fields}");
            Err(ClientError::AuthQueryFailed)
        }
        Err(e) => {
            server.close(CloseReason::Unclean);
            tracing::warn!("auth_query failed: {e}");
            Err(ClientError::AuthQueryFailed)
        }
    }
}
