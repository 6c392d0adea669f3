//! What the app lends the admin console: the client path's password exchange (the console may
//! not import `client`, a sibling layer) and the struct sizes SHOW MEM reports.

use crate::admin::MemSizes;
use crate::admin::access::{AuthFuture, Authenticator, Refusal};
use crate::config::Config;
use crate::net::{MessageReader, Stream};

/// `client::auth::authenticate`, as the console's [`Authenticator`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientAuth;

impl Authenticator for ClientAuth {
    fn authenticate<'a>(
        &'a self,
        config: &'a Config,
        user: &'a str,
        stream: &'a mut Stream,
        reader: &'a mut MessageReader,
    ) -> AuthFuture<'a> {
        Box::pin(async move {
            crate::client::auth::authenticate(config, user, stream, reader)
                .await
                .map_err(|e| Refusal {
                    sqlstate: e.sqlstate(),
                    message: e.text(),
                })
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
