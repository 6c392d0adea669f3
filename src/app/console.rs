//! What the app lends the admin console: the client path's password exchange (the console may
//! not import `client`, a sibling layer) and the struct sizes SHOW MEM reports.

use crate::admin::MemSizes;
use crate::admin::access::{AuthFuture, Authenticator};
use crate::config::Config;
use crate::net::{MessageReader, Stream};
use crate::protocol::PoolerError;

/// `client::auth::authenticate`, as the console's [`Authenticator`]; the registry supplies the
/// HBA rules in force.
#[derive(Debug, Clone)]
pub struct ClientAuth(pub std::sync::Arc<crate::pool::Registry>);

impl Authenticator for ClientAuth {
    fn authenticate<'a>(
        &'a self,
        config: &'a Config,
        user: &'a str,
        stream: &'a mut Stream,
        reader: &'a mut MessageReader,
    ) -> AuthFuture<'a> {
        Box::pin(async move {
            // The registry's config is the one the console passed (both are the current one).
            let _ = config;
            crate::client::auth::authenticate(
                &self.0,
                (
                    crate::admin::ADMIN_DB,
                    crate::client::startup::Replication::None,
                ),
                None,
                user,
                stream,
                reader,
            )
            .await
            .map(drop)
            .map_err(|e| PoolerError::with_state(e.sqlstate(), e.text()))
        })
    }
}

/// Sizes of a client session and a server connection.
pub fn mem_sizes() -> MemSizes {
    MemSizes {
        client: std::mem::size_of::<crate::client::session::Session>(),
        server: std::mem::size_of::<crate::server::ServerConn>(),
    }
}
