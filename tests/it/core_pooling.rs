//! Transaction pooling under load, isolation between clients sharing servers, cancel, and the
//! other pool modes.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, backends, db_line, eventually, first_value, sqlstate};
use crate::harness::postgres::{PgCluster, password};

fn md5_users() -> String {
    userlist(&[("md5_user", &password("md5_user"))])
}

/// 500 clients, pool_size 25: every transaction completes, and PostgreSQL never sees more than
/// 25 connections for the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_share_twenty_five_servers() {
    let pg = PgCluster::shared();
    let db = pg.create_database("load500");
    let pw = password("md5_user");
    let pooler = Arc::new(Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\ndefault_pool_size = 25\nmax_client_conn = 600\nquery_wait_timeout = 120",
        &md5_users(),
    ));
    let setup = pooler.connect("md5_user", &pw, "app").await.unwrap();
    setup
        .batch_execute("create table hits (client int, n int)")
        .await
        .unwrap();
    let superuser = pg.superuser_client().await;
    let peak = Arc::new(AtomicI64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (peak, done, db) = (Arc::clone(&peak), Arc::clone(&done), db.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let n = backends(&superuser, &db, None).await;
                peak.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for i in 0..500 {
        let (pooler, pw) = (Arc::clone(&pooler), pw.clone());
        tasks.push(tokio::spawn(async move {
            let client = pooler
                .connect("md5_user", &pw, "app")
                .await
                .expect("connect");
            for n in 0..3 {
                client
                    .batch_execute(&format!(
                        "begin; insert into hits values ({i}, {n}); select pg_sleep(0.002); commit;"
                    ))
                    .await
                    .expect("transaction");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    let count = first_value(&setup, "select count(*) from hits")
        .await
        .unwrap();
    assert_eq!(count.as_deref(), Some("1500"));
    let peak = peak.load(Ordering::Relaxed);
    assert!(peak > 0 && peak <= 25, "peak server connections {peak}");
}

/// A client that disappears inside BEGIN leaves no open transaction and its writes are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_client_inside_transaction_is_rolled_back() {
    let pg = PgCluster::shared();
    let db = pg.create_database("vanish");
    let pw = password("md5_user");
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\ndefault_pool_size = 1",
        &md5_users(),
    );
    let setup = pooler.connect("md5_user", &pw, "app").await.unwrap();
    setup.batch_execute("create table t (x int)").await.unwrap();
    {
        let (client, connection) = tokio_postgres::connect(
            &pooler.conn_string("md5_user", &pw, "app"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        let conn_task = tokio::spawn(connection);
        client
            .batch_execute("begin; insert into t values (1)")
            .await
            .unwrap();
        // Kill the socket without Terminate: the pooler sees EOF mid-transaction.
        conn_task.abort();
        drop(client);
    }
    let superuser = pg.superuser_client().await;
    assert!(
        eventually(10, || async {
            backends(&superuser, &db, Some("idle in transaction")).await == 0
        })
        .await,
        "a transaction was left open"
    );
    // With a pool of one, the next client gets the very server the vanished one used.
    let next = pooler.connect("md5_user", &pw, "app").await.unwrap();
    assert_eq!(
        first_value(&next, "select count(*) from t")
            .await
            .unwrap()
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        first_value(&next, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
}

/// A cancel reaches the query of the client that sent it, and only that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_only_its_own_query() {
    let pg = PgCluster::shared();
    let db = pg.create_database("cancel");
    let pw = password("md5_user");
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\ndefault_pool_size = 4",
        &md5_users(),
    );
    let victim = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let bystander = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let token = victim.cancel_token();
    let slow = tokio::spawn(async move { victim.simple_query("select pg_sleep(30)").await });
    let other = tokio::spawn(async move { bystander.simple_query("select pg_sleep(3)").await });
    // Cancel once both queries run (a cancel that arrives first has nothing to cancel).
    let superuser = pg.superuser_client().await;
    let both_run = format!(
        "select count(*) from pg_stat_activity where datname = '{db}' \
         and state = 'active' and query like 'select pg_sleep(%'"
    );
    assert!(
        eventually(20, || async {
            first_value(&superuser, &both_run)
                .await
                .ok()
                .flatten()
                .as_deref()
                == Some("2")
        })
        .await,
        "the two queries never ran together"
    );
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel sent");
    let err = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .expect("cancel took effect")
        .unwrap()
        .expect_err("canceled");
    assert_eq!(sqlstate(&err).as_deref(), Some("57014"));
    other
        .await
        .unwrap()
        .expect("the other client's query was not canceled");
}

/// TimeZone (and other reported parameters) follow each client across shared servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_do_not_leak_between_clients() {
    let pg = PgCluster::shared();
    let db = pg.create_database("params");
    let pw = password("md5_user");
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\ndefault_pool_size = 1",
        &md5_users(),
    );
    let a = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let b = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let default_tz = first_value(&b, "show timezone").await.unwrap();
    a.batch_execute("set timezone = 'Asia/Tokyo'")
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(first_value(&b, "show timezone").await.unwrap(), default_tz);
        assert_eq!(
            first_value(&a, "show timezone").await.unwrap().as_deref(),
            Some("Asia/Tokyo")
        );
    }
    // Set at startup (psql sends PGTZ's value... via the startup packet as `TimeZone`? no: use the
    // libpq `options`-free path: application_name is a startup parameter).
    let out = crate::harness::tools::psql_async(
        "127.0.0.1",
        pooler.port,
        "md5_user",
        "app",
        Some(&pw),
        "show application_name",
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "psql");
    assert_ne!(
        first_value(&b, "show application_name")
            .await
            .unwrap()
            .as_deref(),
        Some("psql")
    );
}

/// Session mode keeps one server per client and resets it when the client leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_keeps_state_and_resets() {
    let pg = PgCluster::shared();
    let db = pg.create_database("session");
    let pw = password("md5_user");
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = session\ndefault_pool_size = 1",
        &md5_users(),
    );
    let a = pooler.connect("md5_user", &pw, "app").await.unwrap();
    a.batch_execute("create temp table scratch (x int); insert into scratch values (1)")
        .await
        .unwrap();
    assert_eq!(
        first_value(&a, "select count(*) from scratch")
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );
    drop(a);
    let b = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let err = b
        .simple_query("select * from scratch")
        .await
        .expect_err("temp table was reset by DISCARD ALL");
    assert_eq!(sqlstate(&err).as_deref(), Some("42P01"));
}

/// Statement mode refuses transaction blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_mode_refuses_transactions() {
    let pg = PgCluster::shared();
    let db = pg.create_database("statement");
    let pw = password("md5_user");
    let pooler = Pooler::start(
        &db_line("app", &db, "pool_mode=statement"),
        "default_pool_size = 2",
        &md5_users(),
    );
    let a = pooler.connect("md5_user", &pw, "app").await.unwrap();
    assert_eq!(
        first_value(&a, "select 7").await.unwrap().as_deref(),
        Some("7")
    );
    let err = a.batch_execute("begin").await.expect_err("refused");
    // PgBouncer disconnects the client with 08P01 (protocol_violation).
    assert_eq!(sqlstate(&err).as_deref(), Some("08P01"), "{err:?}");
    let superuser = pg.superuser_client().await;
    assert!(
        eventually(10, || async {
            backends(&superuser, &db, Some("idle in transaction")).await == 0
        })
        .await
    );
}

/// `max_db_client_connections` (per database) and `max_user_client_connections` (global here):
/// logins past a cap get PgBouncer's error with 08P01 (as PgBouncer sends it), other databases are unaffected, and a
/// client that leaves gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_caps_per_database_and_per_user() {
    let pg = PgCluster::shared();
    let db = pg.create_database("client_caps");
    let pw = password("md5_user");
    let databases = format!(
        "{}\n{}",
        db_line("capped", &db, "max_db_client_connections=2"),
        db_line("open", &db, "")
    );
    let pooler = Pooler::start(
        &databases,
        "pool_mode = transaction\ndefault_pool_size = 2\nmax_user_client_connections = 3",
        &md5_users(),
    );
    let first = pooler.connect("md5_user", &pw, "capped").await.unwrap();
    let _second = pooler.connect("md5_user", &pw, "capped").await.unwrap();
    let refused = pooler.connect("md5_user", &pw, "capped").await.unwrap_err();
    assert_eq!(sqlstate(&refused).as_deref(), Some("08P01"), "{refused}");
    assert_eq!(
        refused
            .as_db_error()
            .map(tokio_postgres::error::DbError::message),
        Some("client connections exceeded (max_db_client_connections)")
    );
    // Another database of the same user: the database cap does not apply, the user cap (3) does.
    let third = pooler.connect("md5_user", &pw, "open").await.unwrap();
    assert_eq!(
        first_value(&third, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
    let refused = pooler.connect("md5_user", &pw, "open").await.unwrap_err();
    assert_eq!(sqlstate(&refused).as_deref(), Some("08P01"), "{refused}");
    assert_eq!(
        refused
            .as_db_error()
            .map(tokio_postgres::error::DbError::message),
        Some("client connections exceeded (max_user_client_connections)")
    );
    // A client that leaves frees its place in both counts (the pooler notices the close
    // asynchronously, hence the retries).
    drop(first);
    let mut replacement = None;
    for _ in 0..100 {
        if let Ok(client) = pooler.connect("md5_user", &pw, "capped").await {
            replacement = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let replacement = replacement.expect("a freed place is given to a new client");
    assert_eq!(
        first_value(&replacement, "select 2")
            .await
            .unwrap()
            .as_deref(),
        Some("2")
    );
}
