//! Every timeout fires with PgBouncer's meaning.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::files::userlist;
use crate::harness::logs;
use crate::harness::pooler::{Pooler, backends, db_line, eventually, first_value, sqlstate};
use crate::harness::postgres::{PgCluster, password};

fn md5_users() -> String {
    userlist(&[("md5_user", &password("md5_user"))])
}

fn start(db: &str, settings: &str) -> Pooler {
    Pooler::start(
        &db_line("app", db, ""),
        &format!("pool_mode = transaction\n{settings}"),
        &md5_users(),
    )
}

/// As PgBouncer: a query past `query_timeout` costs the client its connection ("query timeout")
/// and the server its connection; the backend's query is canceled, not left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeout_disconnects_client_and_server() {
    let pg = PgCluster::shared();
    let db = pg.create_database("qtimeout");
    let pooler = start(&db, "query_timeout = 0.5");
    let client = pooler
        .connect("md5_user", &password("md5_user"), "app")
        .await
        .unwrap();
    let err = client
        .simple_query("select pg_sleep(20)")
        .await
        .expect_err("timed out");
    assert_eq!(
        err.as_db_error()
            .map(tokio_postgres::error::DbError::message),
        Some("query timeout"),
        "{err:?}"
    );
    assert_eq!(sqlstate(&err).as_deref(), Some("08P01"));
    assert!(client.is_closed() || client.simple_query("select 1").await.is_err());
    // The backend does not go on sleeping for nobody.
    let superuser = pg.superuser_client().await;
    let gone = eventually(30, || {
        let superuser = &superuser;
        async move {
            let rows = superuser
                .query(
                    "select count(*) from pg_stat_activity where query = 'select pg_sleep(20)' and state = 'active'",
                    &[],
                )
                .await
                .unwrap();
            rows[0].get::<_, i64>(0) == 0
        }
    })
    .await;
    assert!(gone, "the timed-out query still runs");
    // A new client is served.
    let next = pooler
        .connect("md5_user", &password("md5_user"), "app")
        .await
        .unwrap();
    assert_eq!(
        first_value(&next, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_wait_timeout_disconnects_a_waiting_client() {
    let pg = PgCluster::shared();
    let db = pg.create_database("qwait");
    let pooler = start(&db, "default_pool_size = 1\nquery_wait_timeout = 0.5");
    let pw = password("md5_user");
    let holder = pooler.connect("md5_user", &pw, "app").await.unwrap();
    holder.batch_execute("begin").await.unwrap();
    let waiter = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let err = waiter
        .simple_query("select 1")
        .await
        .expect_err("no server within query_wait_timeout");
    assert_eq!(
        err.as_db_error()
            .map(tokio_postgres::error::DbError::message),
        Some("query_wait_timeout")
    );
    holder.batch_execute("commit").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_idle_timeout_closes_idle_clients() {
    let pg = PgCluster::shared();
    let db = pg.create_database("cidle");
    let pooler = start(&db, "client_idle_timeout = 0.5");
    let client = pooler
        .connect("md5_user", &password("md5_user"), "app")
        .await
        .unwrap();
    // The pooler closes the idle client: its connection task ends.
    assert!(
        eventually(10, || async { client.is_closed() }).await,
        "the idle client was not closed"
    );
    assert!(client.simple_query("select 1").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_transaction_timeout_ends_the_transaction() {
    let pg = PgCluster::shared();
    let db = pg.create_database("itx");
    let pooler = start(&db, "idle_transaction_timeout = 0.5\ndefault_pool_size = 1");
    let pw = password("md5_user");
    let client = pooler.connect("md5_user", &pw, "app").await.unwrap();
    client
        .batch_execute("create table t (x int)")
        .await
        .unwrap();
    client
        .batch_execute("begin; insert into t values (1)")
        .await
        .unwrap();
    assert!(
        eventually(10, || async { client.is_closed() }).await,
        "the client idle in its transaction was not closed"
    );
    assert!(client.simple_query("commit").await.is_err());
    let superuser = pg.superuser_client().await;
    assert!(
        eventually(10, || async {
            backends(&superuser, &db, Some("idle in transaction")).await == 0
        })
        .await
    );
    let next = pooler.connect("md5_user", &pw, "app").await.unwrap();
    assert_eq!(
        first_value(&next, "select count(*) from t")
            .await
            .unwrap()
            .as_deref(),
        Some("0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_login_timeout_drops_silent_connections() {
    let pg = PgCluster::shared();
    let db = pg.create_database("login");
    let pooler = start(&db, "client_login_timeout = 0.5");
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", pooler.port))
        .await
        .unwrap();
    // Half a startup packet, then silence (a slowloris client).
    sock.write_all(&[0, 0, 0, 40, 0, 3]).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the pooler kept a silent client past client_login_timeout"
    );
    assert!(String::from_utf8_lossy(&buf).contains("client_login_timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_idle_timeout_and_lifetime_close_servers() {
    let pg = PgCluster::shared();
    let superuser = pg.superuser_client().await;
    for (prefix, setting) in [
        ("sidle", "server_idle_timeout = 1"),
        ("slife", "server_lifetime = 1"),
    ] {
        let db = pg.create_database(prefix);
        let pooler = start(&db, setting);
        let client = pooler
            .connect("md5_user", &password("md5_user"), "app")
            .await
            .unwrap();
        first_value(&client, "select 1").await.unwrap();
        assert_eq!(backends(&superuser, &db, None).await, 1);
        assert!(
            eventually(10, || async { backends(&superuser, &db, None).await == 0 }).await,
            "{setting}: server not closed"
        );
        // The client is unaffected: the next transaction opens a new server.
        assert_eq!(
            first_value(&client, "select 2").await.unwrap().as_deref(),
            Some("2")
        );
    }
}

/// A server that accepts TCP but never answers: each login attempt gives up after
/// server_connect_timeout and is logged as PgBouncer's `connect timeout`; the clients waiting
/// for the pool's first server are not failed by it (as in PgBouncer) but by
/// client_login_timeout; and within server_login_retry no new attempt is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_connect_timeout_and_login_retry() {
    logs::capture();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&attempts);
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(s);
        }
    });
    let dbs = format!("silent_app = host=127.0.0.1 port={port} dbname=x\n");
    let pooler = Pooler::start(
        &dbs,
        "server_connect_timeout = 0.5\nserver_login_retry = 30\nclient_login_timeout = 1.5\nauth_type = trust",
        &md5_users(),
    );
    for _ in 0..2 {
        let err = pooler
            .connect("md5_user", "", "silent_app")
            .await
            .expect_err("server never answers");
        assert_eq!(
            err.as_db_error().map(|e| e.message().to_owned()).as_deref(),
            Some("client_login_timeout"),
            "{err:?}"
        );
    }
    logs::wait_for(
        &[
            "silent_app/md5_user@127.0.0.1:",
            "closing because: connect timeout",
        ],
        Duration::from_secs(30),
    )
    .await;
    // Two clients waited about 3 s in all, yet server_login_retry allowed one attempt only.
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 1);
    hold.abort();
}

/// As PgBouncer's janitor: a client waiting at login for its pool's first server is bounded by
/// `query_timeout` too (it is a queued client), and is told "query_timeout".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeout_bounds_the_wait_for_the_first_server() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let dbs = format!("silent_qt = host=127.0.0.1 port={port} dbname=x\n");
    let pooler = Pooler::start(
        &dbs,
        "server_connect_timeout = 0.5\nquery_timeout = 1\nclient_login_timeout = 30\nauth_type = trust",
        &md5_users(),
    );
    let err = pooler
        .connect("md5_user", "", "silent_qt")
        .await
        .expect_err("server never answers");
    assert_eq!(
        err.as_db_error().map(|e| e.message().to_owned()).as_deref(),
        Some("query_timeout"),
        "{err:?}"
    );
    hold.abort();
}
