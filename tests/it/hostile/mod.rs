//! Hostile input, one module per attack class, each on the real pooler in front of the real
//! PostgreSQL (a tiny hostile *server* stands in only where the attacker is the server). Every
//! test asserts the outcome (an ErrorResponse with PgBouncer's SQLSTATE and text, or a clean
//! disconnect) and that the pooler still serves a normal client afterwards. The classes and
//! their results are the "Hostile input" table of docs/reliability.md; the CVE mapping is in
//! docs/security.md.
//!
//! - `startup`: malformed first packets (sizes, 10,000 parameters, 64 KiB names, missing
//!   terminators, repeated SSLRequest/GSSENCRequest, TLS garbage after SSLRequest);
//! - `login_input`: passwords of 65,536 bytes, SASL messages cut in the middle or with
//!   overflowing lengths (CVE-2026-6664, CVE-2026-19888, CVE-2026-6668);
//! - `cves`: the logic CVEs against real Postgres (CVE-2025-12819, CVE-2025-2291);
//! - `console_authz`: every console command from a stats user and a normal user (CVE-2026-6667);
//! - `hostile_server`: a server that sends SCRAM with 100 million iterations, malformed SCRAM
//!   messages or an ErrorResponse without SQLSTATE (CVE-2026-6669, -6665, -6666);
//! - `slowloris`: half-open connections and slow logins, bounded by `client_login_timeout`;
//! - `cancel_flood`: cancel requests with random keys;
//! - `fd_exhaustion`: the pooler at its RLIMIT_NOFILE;
//! - `messages`: absurd lengths after login, connection and bad-password floods, cancel keys.

mod cancel_flood;
mod console_authz;
mod cves;
mod fake_server;
mod fd_exhaustion;
mod hostile_server;
mod login_input;
mod messages;
mod slowloris;
mod startup;

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, assert_serves, db_line};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw::{assert_closed, errors_then_eof};

/// The login role every module uses (md5 in the shared cluster).
const USER: &str = "md5_user";

/// A pooler in front of a fresh database `app`, md5 logins, transaction mode.
fn start(settings: &str) -> Pooler {
    let pg = PgCluster::shared();
    let db = pg.create_database("hostile");
    Pooler::start(
        &db_line("app", &db, ""),
        &format!("pool_mode = transaction\nauth_type = md5\n{settings}"),
        &userlist(&[(USER, &password(USER))]),
    )
}

/// The only errors are `code` (there may be none when the pooler just closes), and at least
/// one of them says `text` when `text` is given.
fn assert_refused(name: &str, errors: &[(String, String)], code: &str, text: Option<&str>) {
    assert!(
        errors.iter().all(|(c, _)| c == code),
        "{name}: unexpected errors {errors:?}"
    );
    if let Some(text) = text {
        assert!(
            errors.iter().any(|(_, m)| m.contains(text)),
            "{name}: no error saying {text:?}: {errors:?}"
        );
    }
}

/// A normal client logs in and runs a query.
async fn still_serves(pooler: &Pooler) {
    assert_serves(pooler, USER, &password(USER), "app").await;
}

/// The console still answers its admin.
async fn still_serves_as_admin(admin: &tokio_postgres::Client) {
    admin
        .simple_query("show version")
        .await
        .expect("the console still answers");
}
