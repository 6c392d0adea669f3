//! TLS on both legs and the rest of PgBouncer's authentication: client TLS checked with psql's
//! `sslmode=verify-full`, `client_tls_sslmode = require` refusing plain text, server TLS modes
//! against a private cluster with `ssl = on` and `hostssl` rules, certificate reload, HBA rules,
//! `auth_type = cert`, and auth_query with SCRAM pass-through.

use std::fmt::Write as _;

use crate::harness::certs::{Issued, TestCa};
use crate::harness::files::userlist;
use crate::harness::logs;
use crate::harness::pooler::{Pooler, db_line, first_value};
use crate::harness::postgres::{ClusterOptions, PgCluster, password};
use crate::harness::tools::{psql_conninfo, stderr, stdout};

/// Client TLS settings for a pooler presenting `cert`.
fn client_tls(mode: &str, cert: &Issued, ca: Option<&TestCa>) -> String {
    let mut s = format!(
        "client_tls_sslmode = {mode}\nclient_tls_cert_file = {}\nclient_tls_key_file = {}\n",
        cert.cert.display(),
        cert.key.display()
    );
    if let Some(ca) = ca {
        let _ = writeln!(s, "client_tls_ca_file = {}", ca.ca_file().display());
    }
    s
}

fn conninfo(pooler: &Pooler, user: &str, extra: &str) -> String {
    format!(
        "host=localhost hostaddr=127.0.0.1 port={} user={user} password={} dbname=app connect_timeout=10 {extra}",
        pooler.port,
        password(user)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tls_verify_full_and_require() {
    let pg = PgCluster::shared();
    let db = pg.create_database("clienttls");
    let ca = TestCa::new("client-leg");
    let wrong = TestCa::new("client-leg-wrong");
    let cert = ca.issue("pooler", "pgsluice", &["localhost", "127.0.0.1"]);
    let users = userlist(&[("trust_user", "trust_user_pw")]);
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        &format!("auth_type = plain\n{}", client_tls("require", &cert, None)),
        &users,
    );
    let root = format!("sslrootcert={}", ca.ca_file().display());
    let ok = psql_conninfo(
        &conninfo(
            &pooler,
            "trust_user",
            &format!("sslmode=verify-full {root}"),
        ),
        "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
        &[],
    )
    .await;
    assert!(ok.status.success(), "verify-full: {}", stderr(&ok));
    // The pooler-to-server leg is plain (the shared cluster has ssl = off).
    assert_eq!(stdout(&ok), "f");
    let bad = psql_conninfo(
        &conninfo(
            &pooler,
            "trust_user",
            &format!(
                "sslmode=verify-full sslrootcert={}",
                wrong.ca_file().display()
            ),
        ),
        "select 1",
        &[],
    )
    .await;
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("certificate verify failed"),
        "{}",
        stderr(&bad)
    );
    let plain = psql_conninfo(
        &conninfo(&pooler, "trust_user", "sslmode=disable"),
        "select 1",
        &[],
    )
    .await;
    assert!(!plain.status.success());
    assert!(
        stderr(&plain).contains("SSL required"),
        "{}",
        stderr(&plain)
    );
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tls_prefer_allows_plain_and_reload_swaps_certificates() {
    let pg = PgCluster::shared();
    let db = pg.create_database("tlsreload");
    let first = TestCa::new("reload-1");
    let second = TestCa::new("reload-2");
    let cert1 = first.issue("pooler", "pgsluice", &["localhost", "127.0.0.1"]);
    let cert2 = second.issue("pooler", "pgsluice", &["localhost", "127.0.0.1"]);
    // The pooler reads its certificate from fixed paths that the test overwrites.
    let live_dir = crate::harness::files::TempDir::new("tls-live");
    let live = Issued {
        cert: live_dir.write("server.crt", &cert1.cert_pem),
        key: live_dir.write("server.key", &cert1.key_pem),
        ..cert1.clone()
    };
    let users = userlist(&[("trust_user", "trust_user_pw")]);
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        &format!("auth_type = plain\n{}", client_tls("prefer", &live, None)),
        &users,
    );
    // A plain client is fine under `prefer` and must survive the reload.
    let plain = pooler
        .connect("trust_user", "trust_user_pw", "app")
        .await
        .unwrap();
    let verify = |ca: &TestCa| {
        conninfo(
            &pooler,
            "trust_user",
            &format!("sslmode=verify-full sslrootcert={}", ca.ca_file().display()),
        )
    };
    assert!(
        psql_conninfo(&verify(&first), "select 1", &[])
            .await
            .status
            .success()
    );
    assert!(
        !psql_conninfo(&verify(&second), "select 1", &[])
            .await
            .status
            .success()
    );
    live_dir.write("server.crt", &cert2.cert_pem);
    live_dir.write("server.key", &cert2.key_pem);
    let config = pgsluice::config::Config::load(&pooler.ini_path()).unwrap();
    pooler
        .running
        .as_ref()
        .unwrap()
        .reload_with(config)
        .unwrap();
    let after = psql_conninfo(&verify(&second), "select 1", &[]).await;
    assert!(after.status.success(), "{}", stderr(&after));
    assert!(
        !psql_conninfo(&verify(&first), "select 1", &[])
            .await
            .status
            .success()
    );
    assert_eq!(
        first_value(&plain, "select 41 + 1")
            .await
            .unwrap()
            .as_deref(),
        Some("42")
    );
    pooler.stop().await;
}

/// A private cluster with `ssl = on` whose harness roles may log in over TCP only with TLS.
fn ssl_cluster(ca: &TestCa) -> PgCluster {
    let server = ca.issue("postgres", "localhost", &["localhost", "127.0.0.1"]);
    PgCluster::start_with(&ClusterOptions {
        ssl: Some((server.cert_pem, server.key_pem)),
        hostssl_only: true,
    })
}

fn db_on(pg: &PgCluster, name: &str, host: &str) -> String {
    format!("{name} = host={host} port={} dbname=postgres\n", pg.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tls_modes_against_hostssl() {
    let ca = TestCa::new("server-leg");
    let wrong = TestCa::new("server-leg-wrong");
    let pg = ssl_cluster(&ca);
    let users = userlist(&[("scram_user", "scram_user_pw")]);
    let ssl_query = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";
    for (mode, host, ca_file, works) in [
        ("verify-full", "localhost", Some(&ca), true),
        ("verify-full", "127.0.0.1", Some(&ca), true),
        ("verify-ca", "localhost", Some(&ca), true),
        ("require", "localhost", None, true),
        ("prefer", "localhost", None, true),
        ("verify-ca", "localhost", Some(&wrong), false),
        ("require", "localhost", Some(&wrong), false),
        ("disable", "localhost", None, false),
    ] {
        let mut settings =
            format!("auth_type = plain\nadmin_users = scram_user\nserver_tls_sslmode = {mode}\n");
        if let Some(ca) = ca_file {
            let _ = writeln!(settings, "server_tls_ca_file = {}", ca.ca_file().display());
        }
        let pooler = Pooler::start(&db_on(&pg, "app", host), &settings, &users);
        let result = pooler.connect("scram_user", "scram_user_pw", "app").await;
        if works {
            let client = result.unwrap_or_else(|e| panic!("{mode} {host}: {e:?}"));
            assert_eq!(
                first_value(&client, ssl_query).await.unwrap().as_deref(),
                Some("t"),
                "{mode}"
            );
            // SHOW SERVERS reports the TLS summary in PgBouncer's format.
            let console = pooler
                .connect("scram_user", "scram_user_pw", "pgbouncer")
                .await
                .unwrap();
            let tls: Vec<String> = console
                .simple_query("SHOW SERVERS")
                .await
                .unwrap()
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get("tls").map(str::to_owned),
                    _ => None,
                })
                .collect();
            assert!(
                !tls.is_empty() && tls.iter().all(|t| t.starts_with("TLSv1.3/TLS_")),
                "{mode}: {tls:?}"
            );
        } else {
            assert!(result.is_err(), "{mode} with {host} must fail");
        }
        pooler.stop().await;
    }
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tls_require_fails_and_prefer_falls_back_without_ssl() {
    let pg = PgCluster::shared();
    let db = pg.create_database("tlsprefer");
    let users = userlist(&[("scram_user", "scram_user_pw")]);
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "auth_type = plain\nserver_tls_sslmode = prefer",
        &users,
    );
    let client = pooler
        .connect("scram_user", "scram_user_pw", "app")
        .await
        .unwrap();
    assert_eq!(
        first_value(&client, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
    pooler.stop().await;
    // As in PgBouncer, the refusal fails no waiting client: the client that waits for the
    // pool's first server leaves at client_login_timeout, and the log says why.
    logs::capture();
    let pooler = Pooler::start(
        &db_line("tls_require_app", &db, ""),
        "auth_type = plain\nserver_tls_sslmode = require\nclient_login_timeout = 1",
        &users,
    );
    let err = pooler
        .connect("scram_user", "scram_user_pw", "tls_require_app")
        .await
        .expect_err("the shared cluster has ssl = off");
    assert!(
        format!("{err:?}").contains("client_login_timeout"),
        "{err:?}"
    );
    logs::wait_for(
        &["tls_require_app/", "closing because: server refused SSL"],
        std::time::Duration::from_secs(30),
    )
    .await;
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hba_rules_pick_the_method_per_user_and_address() {
    let pg = PgCluster::shared();
    let db = pg.create_database("hba");
    let users = userlist(&[
        ("trust_user", "trust_user_pw"),
        ("md5_user", "md5_user_pw"),
        ("pass_user", "pass_user_pw"),
        ("scram_user", "scram_user_pw"),
    ]);
    let dir = crate::harness::files::TempDir::new("hba");
    dir.write("rejected.txt", "pass_user\n");
    let hba = dir.write(
        "hba.conf",
        "# pgsluice test\n\
         host app @rejected.txt 127.0.0.1/32 reject\n\
         host app md5_user      127.0.0.1/32 md5\n\
         host app trust_user    127.0.0.0/8  trust\n\
         host app scram_user    10.0.0.0/8   md5\n",
    );
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        &format!("auth_type = hba\nauth_hba_file = {}", hba.display()),
        &users,
    );
    let md5 = pooler
        .connect("md5_user", "md5_user_pw", "app")
        .await
        .unwrap();
    assert_eq!(
        first_value(&md5, "select current_user")
            .await
            .unwrap()
            .as_deref(),
        Some("md5_user")
    );
    let wrong = pooler.connect("md5_user", "nope", "app").await.unwrap_err();
    assert_eq!(
        crate::harness::pooler::sqlstate(&wrong).as_deref(),
        Some("28P01")
    );
    // trust: any password, even a wrong one, is never asked for.
    let trust = pooler
        .connect("trust_user", "whatever", "app")
        .await
        .unwrap();
    assert_eq!(
        first_value(&trust, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
    let rejected = pooler
        .connect("pass_user", "pass_user_pw", "app")
        .await
        .unwrap_err();
    assert!(
        format!("{rejected:?}").contains("login rejected"),
        "{rejected:?}"
    );
    let unmatched = pooler
        .connect("scram_user", "scram_user_pw", "app")
        .await
        .unwrap_err();
    assert!(
        format!("{unmatched:?}").contains("no authentication method is found"),
        "{unmatched:?}"
    );
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_auth_uses_the_client_certificate_name() {
    let pg = PgCluster::shared();
    let db = pg.create_database("certauth");
    let ca = TestCa::new("cert-auth");
    let cert = ca.issue("pooler", "pgsluice", &["localhost", "127.0.0.1"]);
    let alice = ca.issue("trust_user", "trust_user", &[]);
    let mallory = ca.issue("mallory", "mallory", &[]);
    let users = userlist(&[("trust_user", "")]);
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        &format!(
            "auth_type = cert\n{}",
            client_tls("verify-full", &cert, Some(&ca))
        ),
        &users,
    );
    let with_cert = |c: &Issued| {
        conninfo(
            &pooler,
            "trust_user",
            &format!(
                "sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
                ca.ca_file().display(),
                c.cert.display(),
                c.key.display()
            ),
        )
    };
    let ok = psql_conninfo(&with_cert(&alice), "select current_user", &[]).await;
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(stdout(&ok), "trust_user");
    let bad = psql_conninfo(&with_cert(&mallory), "select 1", &[]).await;
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("certificate authentication failed"),
        "{}",
        stderr(&bad)
    );
    // No certificate at all: the TLS handshake itself is refused under verify-full.
    let none = psql_conninfo(
        &conninfo(
            &pooler,
            "trust_user",
            &format!("sslmode=verify-full sslrootcert={}", ca.ca_file().display()),
        ),
        "select 1",
        &[],
    )
    .await;
    assert!(!none.status.success());
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_query_finds_users_and_scram_passes_through() {
    let pg = PgCluster::shared();
    let db = pg.create_database("authquery");
    // Only the auth_user is in auth_file; the server trusts it over TCP.
    let users = userlist(&[("postgres", "")]);
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "auth_type = md5\nauth_user = postgres",
        &users,
    );
    // scram_user: SCRAM secret from pg_authid; the client's SCRAM proof opens the server login.
    let scram = pooler
        .connect("scram_user", "scram_user_pw", "app")
        .await
        .unwrap();
    assert_eq!(
        first_value(&scram, "select current_user")
            .await
            .unwrap()
            .as_deref(),
        Some("scram_user")
    );
    // A second server for the same pool logs in with the kept keys.
    let (a, b) = tokio::join!(first_value(&scram, "select pg_sleep(0.2)::text"), async {
        let other = pooler
            .connect("scram_user", "scram_user_pw", "app")
            .await
            .unwrap();
        first_value(&other, "select pg_backend_pid()::text").await
    });
    a.unwrap();
    b.unwrap();
    // md5_user: md5 secret, md5 on both legs.
    let md5 = pooler
        .connect("md5_user", "md5_user_pw", "app")
        .await
        .unwrap();
    assert_eq!(
        first_value(&md5, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
    let wrong = pooler
        .connect("scram_user", "nope", "app")
        .await
        .unwrap_err();
    assert_eq!(
        crate::harness::pooler::sqlstate(&wrong).as_deref(),
        Some("28P01")
    );
    let ghost = pooler
        .connect("no_such_role", "x", "app")
        .await
        .unwrap_err();
    assert!(format!("{ghost:?}").contains("no such user"), "{ghost:?}");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_pass_through_from_auth_file_without_password_in_ini() {
    let pg = PgCluster::shared();
    let db = pg.create_database("passthrough");
    let users = userlist(&[("scram_user", &pg.scram_secret("scram_user"))]);
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "auth_type = scram-sha-256",
        &users,
    );
    let client = pooler
        .connect("scram_user", "scram_user_pw", "app")
        .await
        .unwrap();
    assert_eq!(
        first_value(&client, "select current_user")
            .await
            .unwrap()
            .as_deref(),
        Some("scram_user")
    );
    pooler.stop().await;
}
