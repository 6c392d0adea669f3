//! Authentication both ways: clients to pgsluice with every `auth_type`, and pgsluice to
//! PostgreSQL with every server method.

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line, first_value, sqlstate};
use crate::harness::postgres::{PgCluster, password};

/// Client side: every auth_type against plain, md5 and SCRAM secrets in auth_file. The server
/// side uses trust_user (no password needed) via a forced user, so only the client leg varies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_auth_types() {
    let pg = PgCluster::shared();
    let db = pg.create_database("clientauth");
    let md5 = pgsluice::auth::md5_secret("alice_md5", "secret-a");
    let salt = b"0123456789abcdef";
    let scram = pgsluice::auth::scram_secret_from_password("secret-s", salt, 4096);
    let scram_text = format!(
        "SCRAM-SHA-256${}:{}${}:{}",
        scram.iterations,
        base64_encode(&scram.salt),
        base64_encode(&scram.stored_key),
        base64_encode(&scram.server_key)
    );
    let users = userlist(&[
        ("alice_plain", "secret-p"),
        ("alice_md5", &format!("md5{md5}")),
        ("alice_scram", &scram_text),
    ]);
    let dbs = db_line("app", &db, "user=trust_user");
    for (auth_type, user, good, works) in [
        ("plain", "alice_plain", "secret-p", true),
        ("plain", "alice_md5", "secret-a", true),
        ("plain", "alice_scram", "secret-s", true),
        ("md5", "alice_plain", "secret-p", true),
        ("md5", "alice_md5", "secret-a", true),
        ("md5", "alice_scram", "secret-s", true),
        ("scram-sha-256", "alice_plain", "secret-p", true),
        ("scram-sha-256", "alice_scram", "secret-s", true),
        ("scram-sha-256", "alice_md5", "secret-a", false),
    ] {
        let pooler = Pooler::start(&dbs, &format!("auth_type = {auth_type}"), &users);
        let result = pooler.connect(user, good, "app").await;
        if works {
            let client = result.unwrap_or_else(|e| panic!("{auth_type}/{user}: {e:?}"));
            assert_eq!(
                first_value(&client, "select current_user")
                    .await
                    .unwrap()
                    .as_deref(),
                Some("trust_user")
            );
        } else {
            assert_eq!(
                sqlstate(&result.expect_err("md5 secret cannot do SCRAM")).as_deref(),
                Some("28P01")
            );
        }
        let wrong = pooler
            .connect(user, "not-the-password", "app")
            .await
            .expect_err("wrong password refused");
        assert_eq!(
            sqlstate(&wrong).as_deref(),
            Some("28P01"),
            "{auth_type}/{user}"
        );
        let unknown = pooler
            .connect("mallory", "x", "app")
            .await
            .expect_err("unknown user refused");
        assert_eq!(sqlstate(&unknown).as_deref(), Some("28P01"), "{auth_type}");
        pooler.stop().await;
    }
    // trust: no password asked, but the user must be in auth_file.
    let pooler = Pooler::start(&dbs, "auth_type = trust", &users);
    let client = pooler
        .connect("alice_md5", "anything", "app")
        .await
        .expect("trust login");
    assert!(first_value(&client, "select 1").await.is_ok());
    assert!(pooler.connect("mallory", "", "app").await.is_err());
    pooler.stop().await;
    // any: any user name.
    let pooler = Pooler::start(&dbs, "auth_type = any", &users);
    assert!(pooler.connect("whoever", "", "app").await.is_ok());
    pooler.stop().await;
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Server side: pgsluice logs in to PostgreSQL with trust, cleartext, md5 and SCRAM, using the
/// password from auth_file (plain text, or the md5 hash for md5) and from `[databases]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_auth_methods() {
    let pg = PgCluster::shared();
    let db = pg.create_database("serverauth");
    let md5_hash = pg.md5_secret("md5_user");
    let users = userlist(&[
        ("trust_user", ""),
        ("pass_user", &password("pass_user")),
        ("md5_user", &md5_hash),
        ("scram_user", &password("scram_user")),
    ]);
    let mut dbs = db_line("app", &db, "");
    dbs.push_str(&db_line(
        "forced",
        &db,
        &format!("user=scram_user password={}", password("scram_user")),
    ));
    let pooler = Pooler::start(&dbs, "auth_type = trust", &users);
    for user in ["trust_user", "pass_user", "md5_user", "scram_user"] {
        let client = pooler
            .connect(user, "", "app")
            .await
            .unwrap_or_else(|e| panic!("{user}: {e:?}"));
        assert_eq!(
            first_value(&client, "select current_user")
                .await
                .unwrap()
                .as_deref(),
            Some(user)
        );
    }
    let client = pooler
        .connect("trust_user", "", "forced")
        .await
        .expect("forced user");
    assert_eq!(
        first_value(&client, "select current_user")
            .await
            .unwrap()
            .as_deref(),
        Some("scram_user")
    );
    pooler.stop().await;
}

/// A server that rejects the login: the client gets an error, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_login_failure_reaches_client() {
    let pg = PgCluster::shared();
    let db = pg.create_database("badserver");
    let users = userlist(&[("md5_user", "wrong-server-password")]);
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "auth_type = trust\nserver_login_retry = 1",
        &users,
    );
    let err = pooler
        .connect("md5_user", "", "app")
        .await
        .expect_err("server refuses");
    assert!(
        err.to_string().contains("password authentication failed") || sqlstate(&err).is_some(),
        "{err:?}"
    );
    pooler.stop().await;
}

/// PgBouncer 1.26 accepts passwords up to 65535 bytes: such a password in `auth_file` logs a
/// client in with each password auth type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_of_65535_bytes_logs_in() {
    let pg = PgCluster::shared();
    let db = pg.create_database("longpw");
    let long: String = (0..65_535u32)
        .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap_or(0)))
        .collect();
    let users = userlist(&[("long_pw", &long)]);
    let dbs = db_line("app", &db, "user=trust_user");
    for auth_type in ["plain", "md5", "scram-sha-256"] {
        let pooler = Pooler::start(&dbs, &format!("auth_type = {auth_type}"), &users);
        let client = pooler
            .connect("long_pw", &long, "app")
            .await
            .unwrap_or_else(|e| panic!("{auth_type}: {e}"));
        assert_eq!(
            first_value(&client, "select 1").await.unwrap().as_deref(),
            Some("1"),
            "{auth_type}"
        );
        let wrong = format!("{}b", &long[..65_534]);
        assert!(
            pooler.connect("long_pw", &wrong, "app").await.is_err(),
            "{auth_type}: a wrong long password is refused"
        );
    }
}
