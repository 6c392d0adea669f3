//! TLS with certificates made by the `openssl` command line the way many deployments make
//! them: EC keys from `openssl ecparam -genkey` (an `EC PARAMETERS` block before the key), CN-only
//! X.509 v1 certificates issued by `openssl ca` without extensions, CAs of both the v3
//! (basicConstraints) and the v1 (no extensions) kind. PgBouncer (OpenSSL) accepts them; so
//! must the pooler, on both legs, while still refusing an untrusted CA and a wrong host name.

use std::fmt::Write as _;

use crate::harness::certs::{CaShape, Issued, OpensslCa};
use crate::harness::files::userlist;
use crate::harness::logs;
use crate::harness::pooler::{Pooler, db_line, first_value};
use crate::harness::postgres::{ClusterOptions, PgCluster, password};
use crate::harness::tools::{psql_conninfo, stderr, stdout};

fn client_tls(mode: &str, cert: &Issued, ca: &OpensslCa) -> String {
    format!(
        "client_tls_sslmode = {mode}\nclient_tls_cert_file = {}\nclient_tls_key_file = {}\nclient_tls_ca_file = {}\n",
        cert.cert.display(),
        cert.key.display(),
        ca.ca_file().display()
    )
}

/// A psql connection string to the pooler as `user`, TLS-checked against `root`.
fn via_pooler(pooler: &Pooler, host: &str, user: &str, root: &OpensslCa, extra: &str) -> String {
    format!(
        "host={host} hostaddr=127.0.0.1 port={} user={user} password={} dbname=app connect_timeout=10 sslmode=verify-full sslrootcert={} {extra}",
        pooler.port,
        password(user),
        root.ca_file().display()
    )
}

#[test]
fn openssl_certificates_have_the_legacy_shape() {
    let ca = OpensslCa::new("shape-ca", CaShape::V3BasicConstraints);
    let site = ca.issue("site", "localhost");
    assert!(
        site.key_pem.starts_with("-----BEGIN EC PARAMETERS-----"),
        "{}",
        site.key_pem
    );
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&site.cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Version: 1 (0x0)"), "{text}");
    assert!(!text.contains("Subject Alternative Name"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tls_serves_a_v1_certificate_and_reload_changes_the_ca() {
    let pg = PgCluster::shared();
    let db = pg.create_database("osslclient");
    let ca1 = OpensslCa::new("OsslCA1", CaShape::V3BasicConstraints);
    let ca2 = OpensslCa::new("OsslCA2", CaShape::V1);
    let site1 = ca1.issue("localhost", "localhost");
    let site2 = ca2.issue("localhost", "localhost");
    let users = userlist(&[("trust_user", "trust_user_pw")]);
    let databases = db_line("app", &db, "");
    let pooler = Pooler::start(
        &databases,
        &format!("auth_type = plain\n{}", client_tls("require", &site1, &ca1)),
        &users,
    );
    let ok = psql_conninfo(
        &via_pooler(&pooler, "localhost", "trust_user", &ca1, ""),
        "select 1",
        &[],
    )
    .await;
    assert!(ok.status.success(), "verify-full: {}", stderr(&ok));
    // The client's own checks still bite: another CA, and a name the certificate lacks.
    let untrusted = psql_conninfo(
        &via_pooler(&pooler, "localhost", "trust_user", &ca2, ""),
        "select 1",
        &[],
    )
    .await;
    assert!(!untrusted.status.success());
    assert!(
        stderr(&untrusted).contains("certificate verify failed"),
        "{}",
        stderr(&untrusted)
    );
    let wrong_name = psql_conninfo(
        &via_pooler(&pooler, "127.0.0.1", "trust_user", &ca1, ""),
        "select 1",
        &[],
    )
    .await;
    assert!(!wrong_name.status.success());
    assert!(
        stderr(&wrong_name).contains("does not match host name"),
        "{}",
        stderr(&wrong_name)
    );

    // RELOAD with the other CA's certificate, key and CA file.
    pooler.rewrite(
        &databases,
        &format!("auth_type = plain\n{}", client_tls("require", &site2, &ca2)),
        None,
    );
    let config = pgsluice::config::Config::load(&pooler.ini_path()).unwrap();
    pooler
        .running
        .as_ref()
        .unwrap()
        .reload_with(config)
        .unwrap();
    let after = psql_conninfo(
        &via_pooler(&pooler, "localhost", "trust_user", &ca2, ""),
        "select 1",
        &[],
    )
    .await;
    assert!(after.status.success(), "after reload: {}", stderr(&after));
    let old_root = psql_conninfo(
        &via_pooler(&pooler, "localhost", "trust_user", &ca1, ""),
        "select 1",
        &[],
    )
    .await;
    assert!(!old_root.status.success(), "the old CA must no longer fit");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_auth_accepts_v1_client_certificates_from_a_v1_ca_only() {
    let pg = PgCluster::shared();
    let db = pg.create_database("osslcert");
    let ca = OpensslCa::new("OsslAuthCA", CaShape::V1);
    let other = OpensslCa::new("OsslOtherCA", CaShape::V1);
    let site = ca.issue("localhost", "localhost");
    let alice = ca.issue("trust_user", "trust_user");
    let mallory = ca.issue("mallory", "mallory");
    let forged = other.issue("trust_user", "trust_user");
    let users = userlist(&[("trust_user", "")]);
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        &format!(
            "auth_type = cert\n{}",
            client_tls("verify-full", &site, &ca)
        ),
        &users,
    );
    let with_cert = |c: &Issued| {
        via_pooler(
            &pooler,
            "localhost",
            "trust_user",
            &ca,
            &format!("sslcert={} sslkey={}", c.cert.display(), c.key.display()),
        )
    };
    let ok = psql_conninfo(&with_cert(&alice), "select current_user", &[]).await;
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(stdout(&ok), "trust_user");
    let named_other = psql_conninfo(&with_cert(&mallory), "select 1", &[]).await;
    assert!(!named_other.status.success());
    assert!(
        stderr(&named_other).contains("certificate authentication failed"),
        "{}",
        stderr(&named_other)
    );
    // Same name, same shape, but issued by a CA the pooler does not trust: the handshake fails.
    let untrusted = psql_conninfo(&with_cert(&forged), "select 1", &[]).await;
    assert!(!untrusted.status.success());
    assert!(
        !stderr(&untrusted).contains("certificate authentication failed"),
        "must be refused in the handshake: {}",
        stderr(&untrusted)
    );
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tls_checks_v1_certificates_and_their_common_name() {
    let ca = OpensslCa::new("OsslServerCA", CaShape::V3BasicConstraints);
    let wrong = OpensslCa::new("OsslWrongCA", CaShape::V3BasicConstraints);
    let server = ca.issue("postgres", "localhost");
    let pg = PgCluster::start_with(&ClusterOptions {
        ssl: Some((server.cert_pem.clone(), server.key_pem.clone())),
        hostssl_only: true,
    });
    let users = userlist(&[("scram_user", "scram_user_pw")]);
    let ssl_query = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";
    logs::capture();
    for (case, (mode, host, ca_file, works)) in [
        // The certificate names only CN=localhost, no subjectAltName.
        ("verify-full", "localhost", Some(&ca), true),
        ("verify-full", "127.0.0.1", Some(&ca), false),
        ("verify-ca", "127.0.0.1", Some(&ca), true),
        ("require", "localhost", Some(&ca), true),
        ("require", "localhost", None, true),
        ("verify-full", "localhost", Some(&wrong), false),
        ("verify-ca", "localhost", Some(&wrong), false),
    ]
    .into_iter()
    .enumerate()
    {
        // A refused server fails no waiting client (as in PgBouncer): the one waiting for the
        // pool's first server leaves at client_login_timeout, and the log says why.
        let mut settings =
            format!("auth_type = plain\nserver_tls_sslmode = {mode}\nclient_login_timeout = 1\n");
        if let Some(ca) = ca_file {
            let _ = writeln!(settings, "server_tls_ca_file = {}", ca.ca_file().display());
        }
        let app = format!("ossl_server_{case}");
        let databases = format!("{app} = host={host} port={} dbname=postgres\n", pg.port());
        let pooler = Pooler::start(&databases, &settings, &users);
        let result = pooler.connect("scram_user", "scram_user_pw", &app).await;
        let label = format!("{mode} {host} {:?}", ca_file.map(OpensslCa::name));
        if works {
            let client = result.unwrap_or_else(|e| panic!("{label}: {e:?}"));
            assert_eq!(
                first_value(&client, ssl_query).await.unwrap().as_deref(),
                Some("t"),
                "{label}"
            );
        } else {
            let err = result.expect_err(&label);
            assert!(
                format!("{err:?}").contains("client_login_timeout"),
                "{label}: {err:?}"
            );
            logs::wait_for(
                &[&format!("{app}/"), "closing because: TLS startup failed"],
                std::time::Duration::from_secs(30),
            )
            .await;
        }
        pooler.stop().await;
    }
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_server_tls_forgets_the_old_login_failure() {
    let pg = PgCluster::shared();
    let db = pg.create_database("tlsretry");
    let users = userlist(&[("scram_user", "scram_user_pw")]);
    let databases = db_line("app", &db, "");
    // A long retry window: the old failure would otherwise be repeated to every client.
    // The client waiting for the first server leaves at client_login_timeout (a refused TLS
    // setup fails no waiting client, as in PgBouncer).
    let base = "auth_type = plain\nserver_login_retry = 60\nclient_login_timeout = 1\n";
    let pooler = Pooler::start(
        &databases,
        &format!("{base}server_tls_sslmode = require\n"),
        &users,
    );
    let err = pooler
        .connect("scram_user", "scram_user_pw", "app")
        .await
        .expect_err("the shared cluster has ssl = off");
    assert!(
        format!("{err:?}").contains("client_login_timeout"),
        "{err:?}"
    );
    pooler.rewrite(
        &databases,
        &format!("{base}server_tls_sslmode = disable\n"),
        None,
    );
    let config = pgsluice::config::Config::load(&pooler.ini_path()).unwrap();
    pooler
        .running
        .as_ref()
        .unwrap()
        .reload_with(config)
        .unwrap();
    let client = pooler
        .connect("scram_user", "scram_user_pw", "app")
        .await
        .unwrap_or_else(|e| panic!("new TLS settings get a fresh attempt: {e:?}"));
    assert_eq!(
        first_value(&client, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
    pooler.stop().await;
}
