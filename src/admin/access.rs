//! Who may use the console, and with which rights, following PgBouncer's `admin_pre_login` and
//! `admin_post_login`.
//!
//! Owns: the decision table (pure functions, unit-tested) and the [`Authenticator`] seam through
//! which the app lends the console the client path's password exchange.
//! Does not: run the password exchange itself. `client::auth` does that; `client` is a sibling
//! layer, so the app passes it in as an `Authenticator` instead of `admin` importing it.
//! Invariants: rights never grow after login; a user in neither `admin_users` nor `stats_users`
//! gets in only with `auth_type = any` (with SHOW rights), as in PgBouncer.

use std::future::Future;
use std::pin::Pin;

use crate::config::{AuthType, Config};
use crate::net::{MessageReader, Stream};
use crate::protocol::PoolerError;

/// What a console session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rights {
    /// Every command (`admin_users`).
    Admin,
    /// SHOW and the faked SET/SHOW parameters only (`stats_users`).
    Stats,
}

/// Boxed future of an authentication exchange.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<(), PoolerError>> + Send + 'a>>;

/// The password exchange against `auth_file` for `user` (AuthenticationOk is not sent).
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// Runs the exchange on `stream`.
    fn authenticate<'a>(
        &'a self,
        config: &'a Config,
        user: &'a str,
        stream: &'a mut Stream,
        reader: &'a mut MessageReader,
    ) -> AuthFuture<'a>;
}

/// The outcome of the checks before any password is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreLogin {
    /// In without a password, as `user`, with these rights.
    Granted {
        /// Rights.
        rights: Rights,
        /// The user name SHOW CLIENTS shows (PgBouncer's forced console user `pgbouncer` when
        /// the login did not go through `auth_file`).
        shown_user: String,
    },
    /// Run the password exchange, then [`post_login`].
    Authenticate,
}

/// The console's forced user.
pub const CONSOLE_USER: &str = "pgbouncer";

/// `admin_pre_login`: unix-socket peers with the pooler's own uid logging in as `pgbouncer`, and
/// `auth_type = any` users named in `admin_users` / `stats_users`, need no password.
pub fn pre_login(config: &Config, user: &str, same_uid_unix_peer: bool) -> PreLogin {
    let g = &config.general;
    let listed = |list: &[String]| list.iter().any(|u| u == user);
    let granted = |rights| PreLogin::Granted {
        rights,
        shown_user: CONSOLE_USER.to_owned(),
    };
    if same_uid_unix_peer && user == CONSOLE_USER {
        return granted(Rights::Admin);
    }
    if g.auth_type == AuthType::Any {
        if listed(&g.admin_users) {
            return granted(Rights::Admin);
        }
        if listed(&g.stats_users) {
            return granted(Rights::Stats);
        }
    }
    PreLogin::Authenticate
}

/// `admin_post_login`: after a successful password exchange, `admin_users` get every right,
/// `stats_users` SHOW rights; with `auth_type = any` everyone else gets SHOW rights too; anyone
/// else is refused with PgBouncer's "not allowed".
pub fn post_login(config: &Config, user: &str) -> Result<Rights, PoolerError> {
    let g = &config.general;
    if g.admin_users.iter().any(|u| u == user) {
        return Ok(Rights::Admin);
    }
    if g.stats_users.iter().any(|u| u == user) || g.auth_type == AuthType::Any {
        return Ok(Rights::Stats);
    }
    Err(PoolerError::new("not allowed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(auth: AuthType) -> Config {
        let mut c = Config::default();
        c.general.auth_type = auth;
        c.general.admin_users = vec!["admin".into()];
        c.general.stats_users = vec!["stats".into()];
        c
    }

    #[test]
    fn password_users_by_list() {
        let c = config(AuthType::Md5);
        assert_eq!(pre_login(&c, "admin", false), PreLogin::Authenticate);
        assert_eq!(post_login(&c, "admin"), Ok(Rights::Admin));
        assert_eq!(post_login(&c, "stats"), Ok(Rights::Stats));
        let refused = post_login(&c, "app").unwrap_err();
        assert_eq!(
            (refused.sqlstate, refused.message.as_str()),
            ("08P01", "not allowed")
        );
    }

    #[test]
    fn auth_type_any_and_unix_peer() {
        let c = config(AuthType::Any);
        let granted = |rights| PreLogin::Granted {
            rights,
            shown_user: CONSOLE_USER.to_owned(),
        };
        assert_eq!(pre_login(&c, "admin", false), granted(Rights::Admin));
        assert_eq!(pre_login(&c, "stats", false), granted(Rights::Stats));
        assert_eq!(pre_login(&c, "someone", false), PreLogin::Authenticate);
        assert_eq!(post_login(&c, "someone"), Ok(Rights::Stats));
        let md5 = config(AuthType::Md5);
        assert_eq!(pre_login(&md5, "pgbouncer", true), granted(Rights::Admin));
        assert_eq!(pre_login(&md5, "pgbouncer", false), PreLogin::Authenticate);
    }
}
