//! PgBouncer's logic CVEs re-created against pgsluice and the real PostgreSQL:
//!
//! - CVE-2025-12819: a `search_path` in the StartupMessage (or in `options`) reached the
//!   `auth_user` connection, so the unqualified `<` of the default `auth_query` ran an
//!   attacker's operator before the client was authenticated;
//! - CVE-2025-2291: `auth_query` ignored `VALID UNTIL`, so an expired password still worked.
//!
//! The memory-safety and size CVEs are in `login_input` and `hostile_server`; the console
//! authorization one (CVE-2026-6667) is `console_authz`.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{USER, errors_then_eof};
use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line, first_value, sqlstate};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw;

/// Logs in over a raw socket with md5, sending `params` in the startup packet; returns the
/// stream after ReadyForQuery, or the errors and a closed connection.
async fn md5_login(
    port: u16,
    user: &str,
    pw: &str,
    params: &[(&str, &str)],
) -> Result<TcpStream, Vec<(String, String)>> {
    let packet = raw::startup_packet_with(user, "app", params);
    let mut login = raw::login_with(port, &packet, user, pw).await;
    if login.is_ready() {
        return Ok(login.stream);
    }
    let mut errors: Vec<(String, String)> = login.error().into_iter().collect();
    if !errors.is_empty() {
        errors.extend(errors_then_eof(&mut login.stream).await);
    }
    Err(errors)
}

/// The attacker's `evil.<` for timestamps logs every call in `public.hook_log` (it would run as
/// `auth_user`, a superuser here) and answers false, so an expired password would pass.
fn plant_operator(pg: &PgCluster, db: &str) {
    pg.superuser_exec(
        db,
        &[
            "CREATE TABLE hook_log(called_by text, at timestamptz default now())",
            "CREATE SCHEMA evil",
            "CREATE FUNCTION evil.lt_hook(a timestamptz, b timestamptz) RETURNS boolean \
             LANGUAGE plpgsql CALLED ON NULL INPUT AS $$ BEGIN \
               INSERT INTO public.hook_log(called_by) VALUES (current_user); RETURN false; \
             END $$",
            "CREATE OPERATOR evil.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, \
             FUNCTION = evil.lt_hook)",
            "GRANT USAGE ON SCHEMA evil TO PUBLIC",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cve_2025_12819_search_path_never_reaches_auth_query() {
    let pg = PgCluster::shared();
    let db = pg.create_database("cve12819");
    plant_operator(pg, &db);
    // md5_user is not in auth_file: the default auth_query (unqualified `<`) finds it.
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\nauth_type = md5\nauth_user = postgres\n\
         track_extra_parameters = search_path",
        &userlist(&[("postgres", "")]),
    );
    let evil = "evil, pg_catalog, public";
    let options = format!("-c search_path={}", evil.replace(' ', "\\ "));
    let attempts: [&[(&str, &str)]; 3] = [
        &[("search_path", evil)],
        &[("options", &options)],
        &[("search_path", evil), ("application_name", "intruder")],
    ];
    for params in attempts {
        // Wrong password and unknown users too: nothing of theirs may run before the proof.
        for (user, pw) in [(USER, "wrong"), ("ghost", "x")] {
            let errors = md5_login(pooler.port, user, pw, params).await.unwrap_err();
            assert!(!errors.is_empty(), "{user}: closed without an error");
            assert!(
                errors.iter().all(|(c, _)| c == "28P01" || c == "08P01"),
                "{errors:?}"
            );
        }
        let s = md5_login(pooler.port, USER, &password(USER), params).await;
        let mut s = s.unwrap_or_else(|e| panic!("right password refused: {e:?}"));
        // The client's own server does get the client's search_path once it is in.
        s.write_all(&raw::query("select current_setting('search_path')"))
            .await
            .unwrap();
        let mut value = None;
        while let Some((tag, body)) = raw::read_message(&mut s).await {
            if tag == b'D' {
                value = Some(String::from_utf8_lossy(&body[6..]).into_owned());
            }
            if tag == b'Z' {
                break;
            }
        }
        assert_eq!(value.as_deref(), Some(evil), "{params:?}");
    }
    let superuser = pg.connect("postgres", &db).await.unwrap();
    assert_eq!(
        first_value(&superuser, "select count(*) from hook_log")
            .await
            .unwrap()
            .as_deref(),
        Some("0"),
        "the attacker's operator ran during a login"
    );
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cve_2025_2291_expired_passwords_are_refused() {
    let pg = PgCluster::shared();
    let db = pg.create_database("cve2291");
    let role = format!("expired_{db}");
    pg.superuser_exec(
        "postgres",
        &[&format!(
            "CREATE ROLE \"{role}\" LOGIN PASSWORD 'expired_pw' VALID UNTIL '2001-01-01'"
        )],
    );
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\nauth_type = md5\nauth_user = postgres",
        &userlist(&[("postgres", "")]),
    );
    let err = pooler
        .connect(&role, "expired_pw", "app")
        .await
        .expect_err("an expired password is refused");
    assert_eq!(sqlstate(&err).as_deref(), Some("28P01"), "{err:?}");
    // The same query finds a role that has not expired (md5_user is not in auth_file).
    super::still_serves(&pooler).await;
    pg.superuser_exec("postgres", &[&format!("DROP ROLE \"{role}\"")]);
    pooler.stop().await;
}

/// Both attacks at once through the console's `auth_query` path are refused the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cve_2025_12819_console_login_is_not_an_injection_path() {
    let pg = PgCluster::shared();
    let db = pg.create_database("cve12819c");
    plant_operator(pg, &db);
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\nauth_type = md5\nauth_user = postgres\nauth_dbname = app\n\
         stats_users = md5_user",
        &userlist(&[("postgres", "")]),
    );
    let evil = [("search_path", "evil, pg_catalog")];
    let errors = md5_login(pooler.port, "ghost", "x", &evil)
        .await
        .unwrap_err();
    assert!(!errors.is_empty());
    let mut s = TcpStream::connect(("127.0.0.1", pooler.port))
        .await
        .unwrap();
    // Same packet, console database.
    let pkt = raw::startup_packet_with(USER, "pgbouncer", &evil);
    s.write_all(&pkt).await.unwrap();
    let _ = raw::read_message(&mut s).await;
    drop(s);
    let superuser = pg.connect("postgres", &db).await.unwrap();
    assert_eq!(
        first_value(&superuser, "select count(*) from hook_log")
            .await
            .unwrap()
            .as_deref(),
        Some("0")
    );
    assert!(
        errors.iter().all(|(c, _)| c == "28P01" || c == "08P01"),
        "{errors:?}"
    );
    pooler.stop().await;
}
