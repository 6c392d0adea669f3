//! Faults: the server restarts, stops, kills a backend or refuses connections; a client vanishes
//! mid-transaction, mid-COPY or mid-result; a client reads slowly; a row is huge. Clients get
//! clean errors, the pool recovers by itself, no server is left dirty, memory stays bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use md5::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::files::userlist;
use crate::harness::pooler::{
    Pooler, backends, db_line, eventually, first_value, free_port, sqlstate,
};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw;

const USER: &str = "md5_user";

fn users() -> String {
    userlist(&[(USER, &password(USER))])
}

/// A pooler in front of a private cluster's `postgres` database.
fn pooler_for(pg: &PgCluster, settings: &str) -> Pooler {
    Pooler::start(
        &format!(
            "app = host={} port={} dbname=postgres\n",
            pg.host(),
            pg.port()
        ),
        &format!("pool_mode = transaction\n{settings}"),
        &users(),
    )
}

/// Connects through the pooler and returns the connection task's handle, so that a test can
/// make the client vanish (abort = socket closed without Terminate).
async fn connect_with_handle(
    pooler: &Pooler,
) -> (tokio_postgres::Client, tokio::task::JoinHandle<()>) {
    let (client, connection) = tokio_postgres::connect(
        &pooler.conn_string(USER, &password(USER), "app"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    let handle = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, handle)
}

/// What a load client saw.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    errors: AtomicUsize,
    hung: AtomicUsize,
}

/// `n` clients, each reconnecting after an error, running `select 1` until `stop`. Every call is
/// bounded by a timeout; a timeout counts as a hung client.
fn spawn_load(
    pooler: &Pooler,
    n: usize,
    stop: &Arc<AtomicBool>,
    tally: &Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let conn = pooler.conn_string(USER, &password(USER), "app");
            let (stop, tally) = (Arc::clone(stop), Arc::clone(tally));
            tokio::spawn(async move {
                let mut client: Option<tokio_postgres::Client> = None;
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let step = tokio::time::timeout(Duration::from_secs(15), async {
                        if client
                            .as_ref()
                            .is_none_or(tokio_postgres::Client::is_closed)
                        {
                            let (c, connection) =
                                tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
                            tokio::spawn(async move {
                                let _ = connection.await;
                            });
                            client = Some(c);
                        }
                        client.as_ref().unwrap().simple_query("select 1").await
                    })
                    .await;
                    match step {
                        Ok(Ok(_)) => {
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Err(_)) => {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                            client = None;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(_) => {
                            tally.hung.fetch_add(1, Ordering::Relaxed);
                            client = None;
                        }
                    }
                }
            })
        })
        .collect()
}

async fn query_succeeds(pooler: &Pooler) -> bool {
    let Ok(Ok(client)) = tokio::time::timeout(
        Duration::from_secs(5),
        pooler.connect(USER, &password(USER), "app"),
    )
    .await
    else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), first_value(&client, "select 1")).await,
        Ok(Ok(Some(_)))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_and_outage_under_load() {
    let pg = Arc::new(PgCluster::start());
    let pooler = pooler_for(
        &pg,
        "default_pool_size = 4\nserver_login_retry = 1\nquery_wait_timeout = 4\nserver_connect_timeout = 3",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let load = spawn_load(&pooler, 6, &stop, &tally);
    assert!(eventually(10, || async { tally.ok.load(Ordering::Relaxed) > 20 }).await);

    // 1. pg_ctl restart -m fast under load.
    let p = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || p.restart())
        .await
        .unwrap();
    let before = tally.ok.load(Ordering::Relaxed);
    assert!(
        eventually(15, || async {
            tally.ok.load(Ordering::Relaxed) > before + 20
        })
        .await,
        "load did not recover after a restart"
    );

    // 2. Down for a while: clients get a clean error at once, not a hang.
    let p = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || p.stop_server())
        .await
        .unwrap();
    // At the first query: the cached error when a login already failed and no server is open,
    // else (a client waiting while the connects are refused, as in PgBouncer) query_wait_timeout.
    let err = tokio::time::timeout(Duration::from_secs(10), async {
        let client = pooler.connect(USER, &password(USER), "app").await?;
        client.simple_query("select 1").await
    })
    .await
    .expect("an error, not a hang")
    .expect_err("server is down");
    assert_eq!(sqlstate(&err).as_deref(), Some("08P01"), "{err:?}");
    let text = err.as_db_error().unwrap().message().to_owned();
    assert!(
        text.contains("server_login_retry")
            || text.contains("crashed")
            || text == "query_wait_timeout",
        "{text}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || p.start_again())
        .await
        .unwrap();
    // Recovers by itself within server_login_retry (1 s) plus slack.
    assert!(
        eventually(10, || query_succeeds(&pooler)).await,
        "pool did not recover after the server came back"
    );
    let before = tally.ok.load(Ordering::Relaxed);
    assert!(
        eventually(15, || async {
            tally.ok.load(Ordering::Relaxed) > before + 20
        })
        .await
    );

    stop.store(true, Ordering::Relaxed);
    for h in load {
        tokio::time::timeout(Duration::from_secs(20), h)
            .await
            .expect("load client finished")
            .unwrap();
    }
    assert_eq!(tally.hung.load(Ordering::Relaxed), 0, "a client hung");
    assert!(
        tally.errors.load(Ordering::Relaxed) > 0,
        "the faults were seen"
    );
    pooler.stop().await;
}

/// A server that refuses connections from the start: the client is not failed at login, it
/// waits for the retry (PgBouncer); `login_failures::clients_wait_through_refused_connections`
/// shows it getting in once the server is reachable. Here `client_login_timeout` ends the wait
/// with a clean error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_server_ends_in_client_login_timeout() {
    // A port nobody listens on: connection refused.
    let port = free_port();
    let pooler = Pooler::start(
        &format!("app = host=127.0.0.1 port={port} dbname=postgres\n"),
        "pool_mode = transaction\nserver_login_retry = 1\nclient_login_timeout = 2",
        &users(),
    );
    let err = tokio::time::timeout(Duration::from_secs(10), async {
        pooler.connect(USER, &password(USER), "app").await
    })
    .await
    .expect("an error, not a hang")
    .expect_err("refused");
    assert_eq!(sqlstate(&err).as_deref(), Some("08P01"));
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "client_login_timeout",
        "{err:?}"
    );
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_idle_and_mid_query() {
    let pg = PgCluster::shared();
    let db = pg.create_database("fault_term");
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\ndefault_pool_size = 2",
        &users(),
    );
    let superuser = pg.superuser_client().await;
    let pw = password(USER);

    // Idle in the pool: the next query runs on a fresh server.
    let a = pooler.connect(USER, &pw, "app").await.unwrap();
    let pid = first_value(&a, "select pg_backend_pid()")
        .await
        .unwrap()
        .unwrap();
    superuser
        .simple_query(&format!("select pg_terminate_backend({pid})"))
        .await
        .unwrap();
    assert!(
        eventually(10, || async {
            first_value(
                &superuser,
                &format!("select count(*) from pg_stat_activity where pid = {pid}"),
            )
            .await
            .unwrap()
            .as_deref()
                == Some("0")
        })
        .await
    );
    let pid2 = first_value(&a, "select pg_backend_pid()")
        .await
        .expect("a killed idle server is replaced transparently")
        .unwrap();
    assert_ne!(pid, pid2);

    // Mid-query: that client gets an error, another client is unaffected.
    let b = pooler.connect(USER, &pw, "app").await.unwrap();
    let sleeper = tokio::spawn(async move { a.simple_query("select pg_sleep(30)").await });
    let sql = format!(
        "select pid from pg_stat_activity where datname = '{db}' and query = 'select pg_sleep(30)'"
    );
    let mut victim = None;
    for _ in 0..200 {
        victim = first_value(&superuser, &sql).await.unwrap();
        if victim.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let victim = victim.expect("the sleep is running");
    superuser
        .simple_query(&format!("select pg_terminate_backend({victim})"))
        .await
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the killed query returns")
        .unwrap();
    let err = result.expect_err("killed mid-query");
    assert!(
        sqlstate(&err).as_deref() == Some("57P01") || sqlstate(&err).as_deref() == Some("08P01"),
        "{err:?}"
    );
    for _ in 0..5 {
        assert_eq!(
            first_value(&b, "select 7").await.unwrap().as_deref(),
            Some("7")
        );
    }
    let c = pooler.connect(USER, &pw, "app").await.unwrap();
    assert_eq!(
        first_value(&c, "select 8").await.unwrap().as_deref(),
        Some("8")
    );
    pooler.stop().await;
}

/// After a client vanished, nothing is left running or in a transaction, and the (single) pooled
/// server serves the next client cleanly.
async fn assert_clean(pg: &PgCluster, pooler: &Pooler, db: &str) {
    let superuser = pg.superuser_client().await;
    assert!(
        eventually(15, || async {
            backends(&superuser, db, Some("idle in transaction")).await == 0
                && backends(&superuser, db, Some("idle in transaction (aborted)")).await == 0
                && backends(&superuser, db, Some("active")).await == 0
        })
        .await,
        "a server was left dirty"
    );
    let next = pooler.connect(USER, &password(USER), "app").await.unwrap();
    let value = tokio::time::timeout(
        Duration::from_secs(10),
        first_value(&next, "select count(*) from t"),
    )
    .await
    .expect("next client served")
    .unwrap();
    assert_eq!(value.as_deref(), Some("0"), "uncommitted rows are gone");
    assert_eq!(
        first_value(&next, "select txid_current_if_assigned() is null")
            .await
            .unwrap()
            .as_deref(),
        Some("t")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanishing_clients_leave_no_dirty_server() {
    let pg = PgCluster::shared();
    let db = pg.create_database("fault_vanish");
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\ndefault_pool_size = 1\nquery_wait_timeout = 20",
        &users(),
    );
    let setup = pooler.connect(USER, &password(USER), "app").await.unwrap();
    setup
        .batch_execute("create table t (x text)")
        .await
        .unwrap();
    drop(setup);

    // Mid-transaction.
    let (client, handle) = connect_with_handle(&pooler).await;
    client
        .batch_execute("begin; insert into t values ('tx')")
        .await
        .unwrap();
    handle.abort();
    drop(client);
    assert_clean(pg, &pooler, &db).await;

    // Mid-COPY FROM STDIN.
    let (client, handle) = connect_with_handle(&pooler).await;
    let sink = client.copy_in("copy t from stdin").await.unwrap();
    let mut sink = Box::pin(sink);
    for i in 0..100 {
        sink.send(bytes::Bytes::from(format!("row{i}\n")))
            .await
            .unwrap();
    }
    handle.abort();
    drop(sink);
    drop(client);
    assert_clean(pg, &pooler, &db).await;

    // Mid-large-result: a few rows read, then gone.
    let (client, handle) = connect_with_handle(&pooler).await;
    let stream = client
        .query_raw(
            "select repeat('x', 1000) from generate_series(1, 2000000)",
            std::iter::empty::<i32>(),
        )
        .await
        .unwrap();
    let mut stream = Box::pin(stream);
    for _ in 0..10 {
        stream.next().await.unwrap().unwrap();
    }
    handle.abort();
    drop(stream);
    drop(client);
    assert_clean(pg, &pooler, &db).await;
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_of_a_large_result_keeps_memory_bounded() {
    const ROWS: u64 = 200_000; // x 1000 bytes = 200 MB
    let pg = PgCluster::shared();
    let db = pg.create_database("fault_slow");
    let pooler = raw::PoolerProcess::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\ndefault_pool_size = 4\nauth_type = md5",
        &users(),
    );
    let pid = pooler.pid();
    let pw = password(USER);
    // Warm up: one login and query, so the baseline includes the runtime's steady state.
    let (mut warm, _) = raw::login(pooler.port, USER, &pw, "app").await;
    warm.write_all(&raw::query("select 1")).await.unwrap();
    raw::read_until_ready(&mut warm).await.unwrap();
    let rss_before = raw::proc_status_kb(pid, "VmRSS");

    let (mut slow, _) = raw::login(pooler.port, USER, &pw, "app").await;
    slow.write_all(&raw::query(&format!(
        "select repeat('x', 1000) from generate_series(1, {ROWS})"
    )))
    .await
    .unwrap();
    // Do not read for a while: the server keeps producing, pgsluice must not buffer it.
    let other = format!(
        "host=127.0.0.1 port={} user={USER} password={pw} dbname=app connect_timeout=10",
        pooler.port
    );
    let (client, connection) = tokio_postgres::connect(&other, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut peak = 0;
    for i in 0..20 {
        let v = tokio::time::timeout(
            Duration::from_secs(10),
            first_value(&client, &format!("select {i}")),
        )
        .await
        .expect("another client is not blocked")
        .unwrap();
        assert_eq!(v, Some(i.to_string()));
        peak = peak.max(raw::proc_status_kb(pid, "VmRSS"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Now read it all, slowly (a pause per MB), sampling RSS.
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    let mut next_pause = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "result not read in time");
        let n = tokio::time::timeout(Duration::from_secs(20), slow.read(&mut buf))
            .await
            .expect("data keeps coming")
            .unwrap();
        assert!(n > 0, "eof before the end of the result");
        total += n as u64;
        if total >= next_pause {
            next_pause += 4 << 20;
            peak = peak.max(raw::proc_status_kb(pid, "VmRSS"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // ReadyForQuery 'Z' 0 0 0 5 'I' ends the reply.
        if buf[..n].ends_with(&[b'Z', 0, 0, 0, 5, b'I']) {
            break;
        }
    }
    assert!(total > ROWS * 1000, "read {total} bytes");
    let growth_kb = peak.saturating_sub(rss_before);
    assert!(
        growth_kb < 48 * 1024,
        "pgsluice RSS grew by {growth_kb} kB while relaying {total} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_row_passes_intact_both_ways() {
    let pg = PgCluster::shared();
    let db = pg.create_database("fault_huge");
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\ndefault_pool_size = 1",
        &users(),
    );
    let client = pooler.connect(USER, &password(USER), "app").await.unwrap();
    let rows = client
        .query("select repeat('abcde', 10000000) as v", &[])
        .await
        .unwrap();
    let v: &str = rows[0].get(0);
    assert_eq!(v.len(), 50_000_000);
    assert!(v.as_bytes().chunks(5).all(|c| c == b"abcde"));
    // Client to server: a 50 MB parameter.
    let big = "z".repeat(50_000_000);
    let row = client
        .query_one("select length($1::text), md5($1::text)", &[&big])
        .await
        .unwrap();
    let len: i32 = row.get(0);
    assert_eq!(len, 50_000_000);
    let md5: &str = row.get(1);
    let expected = md5::Md5::digest(big.as_bytes());
    assert_eq!(md5, raw::hex(&expected));
    assert_eq!(
        first_value(&client, "select 'after'")
            .await
            .unwrap()
            .as_deref(),
        Some("after")
    );
    pooler.stop().await;
}
