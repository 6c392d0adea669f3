//! The relay's two directions are independent and bounded: a COPY IN whose server answers every
//! row with a NOTICE, a client that pipelines 10,000 queries before it reads, a client that never
//! reads, a Query whose header declares an absurd length, and a 100 MB Query that streams through
//! in bounded memory (VmHWM of the pgsluice process).
//!
//! Every wait is bounded by a generous guard so a deadlock fails the test instead of hanging it;
//! nothing asserts how fast anything is.

use std::time::Duration;

use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, assert_serves, db_line, first_value};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw;
use crate::harness::tools::signal;
use nix::sys::signal::Signal;

const USER: &str = "md5_user";

/// A guard against a deadlock, far above what the step needs.
const GUARD: Duration = Duration::from_secs(120);

fn users() -> String {
    userlist(&[(USER, &password(USER))])
}

fn start(db: &str, settings: &str) -> Pooler {
    Pooler::start(
        &db_line("app", db, ""),
        &format!("pool_mode = transaction\nauth_type = md5\n{settings}"),
        &users(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_of_100_mb_while_the_server_sends_a_notice_per_row() {
    let pg = PgCluster::shared();
    let db = pg.create_database("relay_copy_notice");
    pg.superuser_exec(
        &db,
        &[
            "CREATE TABLE t (v text)",
            "GRANT ALL ON t TO PUBLIC",
            "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS \
             $$BEGIN RAISE NOTICE 'row of % bytes arrived', length(NEW.v); RETURN NULL; END$$",
            "CREATE TRIGGER shout BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION shout()",
        ],
    );
    // Prepared-statement tracking on (the default 200 of PgBouncer 1.25 is set explicitly):
    // tokio-postgres sends Execute+Sync before the data, a Sync the server ignores in copy-in
    // mode, and the pipeline must not wait for its answer.
    let pooler = start(&db, "max_prepared_statements = 200");
    let client = pooler.connect(USER, &password(USER), "app").await.unwrap();
    // 100 MB in 1 KiB rows: 102,400 NOTICEs (about 8 MB) come back while the rows go in, far
    // more than socket buffers hold, so a relay that stops reading one side while it writes the
    // other deadlocks here.
    let row = format!("{}\n", "x".repeat(1023));
    let rows = 100 * 1024;
    let mut chunk = String::with_capacity(64 * 1024);
    for _ in 0..64 {
        chunk.push_str(&row);
    }
    let chunk = bytes::Bytes::from(chunk);
    let copied = tokio::time::timeout(GUARD, async {
        let sink = client.copy_in("copy t from stdin").await?;
        let mut sink = Box::pin(sink);
        for _ in 0..rows / 64 {
            sink.send(chunk.clone()).await?;
        }
        sink.as_mut().finish().await
    })
    .await
    .expect("COPY IN finished instead of deadlocking")
    .unwrap();
    assert_eq!(copied, 0, "the trigger returns NULL: no row is stored");
    // The connection is still in step: the next query gets its own answer.
    assert_eq!(
        first_value(&client, "select 'after copy'")
            .await
            .unwrap()
            .as_deref(),
        Some("after copy")
    );
    // Released: a second COPY and query on the same client work the same way.
    let sink = client.copy_in("copy t from stdin").await.unwrap();
    let mut sink = Box::pin(sink);
    sink.send(chunk.clone()).await.unwrap();
    assert_eq!(sink.as_mut().finish().await.unwrap(), 0);
    assert_eq!(
        first_value(&client, "select 'again'")
            .await
            .unwrap()
            .as_deref(),
        Some("again")
    );
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_queries_pipelined_before_any_result_is_read() {
    let pg = PgCluster::shared();
    let db = pg.create_database("relay_pipeline");
    let pooler = start(&db, "");
    let (mut s, _) = raw::login(pooler.port, USER, &password(USER), "app").await;
    let mut burst = Vec::new();
    for i in 0..10_000 {
        burst.extend_from_slice(&raw::query(&format!("select {i}")));
    }
    tokio::time::timeout(GUARD, s.write_all(&burst))
        .await
        .expect("the pooler keeps reading while results pile up")
        .unwrap();
    let results = tokio::time::timeout(GUARD, async {
        let mut seen = Vec::new();
        while seen.len() < 10_000 {
            match raw::read_message(&mut s).await {
                Some((b'D', body)) => {
                    // One column: int16 count, int32 length, the text.
                    seen.push(String::from_utf8_lossy(&body[6..]).into_owned());
                }
                Some((b'E', body)) => panic!("error {:?}", raw::error_code(&body)),
                Some(_) => {}
                None => break,
            }
        }
        seen
    })
    .await
    .expect("all results arrive");
    assert_eq!(results.len(), 10_000);
    // In order, each its own.
    assert!(
        results.iter().enumerate().all(|(i, v)| *v == i.to_string()),
        "results out of order"
    );
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_let_go_and_its_server_freed() {
    let pg = PgCluster::shared();
    let db = pg.create_database("relay_never_reads");
    let pooler = start(&db, "default_pool_size = 1\nclient_idle_timeout = 1");
    let (mut stuck, _) = raw::login(pooler.port, USER, &password(USER), "app").await;
    // About 200 MB of result that the client never reads.
    stuck
        .write_all(&raw::query(
            "select repeat('x', 1000000) from generate_series(1, 200)",
        ))
        .await
        .unwrap();
    // The only server is held by the stuck client; this one queues until the pooler gives up
    // on the stuck one (client_idle_timeout with nothing taken) and closes its server.
    let other = pooler.connect(USER, &password(USER), "app").await.unwrap();
    let value = tokio::time::timeout(GUARD, first_value(&other, "select 'served'"))
        .await
        .expect("the pool is usable again")
        .unwrap();
    assert_eq!(value.as_deref(), Some("served"));
    // The stuck client's connection was closed: reading drains what was in flight, then EOF.
    let closed = tokio::time::timeout(GUARD, async {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match stuck.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the stuck client's connection ends");
    assert!(closed);
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_declaring_0x7ffffff0_bytes_gets_08p01_at_once() {
    let pg = PgCluster::shared();
    let db = pg.create_database("relay_absurd");
    // Prepared-statement tracking on (it used to wait for the whole Query to spot DEALLOCATE).
    let pooler = start(&db, "max_prepared_statements = 100\ndefault_pool_size = 1");
    let pw = password(USER);
    // The only server is taken, so an answer that needed a server would never come.
    let holder = pooler.connect(USER, &pw, "app").await.unwrap();
    holder.batch_execute("begin").await.unwrap();
    for attached in [false, true] {
        let (mut s, _) = raw::login(pooler.port, USER, &pw, "app").await;
        if attached {
            holder.batch_execute("commit").await.unwrap();
            s.write_all(&raw::query("begin")).await.unwrap();
            raw::read_until_ready(&mut s).await.unwrap();
        }
        let mut msg = vec![b'Q'];
        msg.extend_from_slice(&0x7FFF_FFF0_i32.to_be_bytes());
        msg.extend_from_slice(b"select 1");
        s.write_all(&msg).await.unwrap();
        let errors = tokio::time::timeout(GUARD, raw::errors_then_eof(&mut s))
            .await
            .expect("an answer, not a wait for 2 GB");
        let codes: Vec<&str> = errors.iter().map(|(code, _)| code.as_str()).collect();
        assert_eq!(codes, ["08P01"], "server attached: {attached}");
        if attached {
            // The server that was mid-transaction went back clean (rolled back or closed).
            holder.batch_execute("begin").await.unwrap();
        }
    }
    drop(holder);
    assert_serves(&pooler, USER, &pw, "app").await;
    pooler.stop().await;
}

/// The literal of the big query: 100 MB of `x`, written in 1 MB blocks.
const BIG_QUERY_BYTES: usize = 100 << 20;
const BIG_QUERY_HEAD: &[u8] = b"select length('";
const BIG_QUERY_TAIL: &[u8] = b"')\0";

/// The start of the Query message `select length('xxx…')` (its length covers the whole literal).
fn big_query_header() -> Vec<u8> {
    let len = 4 + BIG_QUERY_HEAD.len() + BIG_QUERY_BYTES + BIG_QUERY_TAIL.len();
    let mut header = vec![b'Q'];
    header.extend_from_slice(&i32::try_from(len).unwrap().to_be_bytes());
    header.extend_from_slice(BIG_QUERY_HEAD);
    header
}

/// Writes the literal from byte `written` on and the query's end, then reads the answer: the
/// length PostgreSQL counted, `None` if the connection closed. An error fails the test.
async fn finish_big_query(s: &mut TcpStream, written: usize) -> Option<String> {
    let block = vec![b'x'; 1 << 20];
    let mut rest = BIG_QUERY_BYTES - written;
    while rest > 0 {
        let n = rest.min(block.len());
        s.write_all(&block[..n]).await.unwrap();
        rest -= n;
    }
    s.write_all(BIG_QUERY_TAIL).await.unwrap();
    match raw::read_value(s).await {
        Ok(value) => value,
        Err((code, _)) if code.is_empty() => None,
        Err(e) => panic!("error {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_query_streams_in_bounded_memory() {
    let pg = PgCluster::shared();
    let db = pg.create_database("relay_big_query");
    let pooler = raw::PoolerProcess::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\nauth_type = md5\nmax_prepared_statements = 100",
        &users(),
    );
    let pid = pooler.pid();
    let pw = password(USER);
    let (mut s, _) = raw::login(pooler.port, USER, &pw, "app").await;
    s.write_all(&raw::query("select 1")).await.unwrap();
    raw::read_until_ready(&mut s).await.unwrap();
    let before = raw::proc_status_kb(pid, "VmHWM");
    assert!(before > 0, "VmHWM readable");
    let reply = tokio::time::timeout(GUARD, async {
        s.write_all(&big_query_header()).await.unwrap();
        finish_big_query(&mut s, 0).await
    })
    .await
    .expect("the query went through");
    assert_eq!(reply.as_deref(), Some("104857600"));
    let after = raw::proc_status_kb(pid, "VmHWM");
    let growth_mb = after.saturating_sub(before) / 1024;
    assert!(
        growth_mb < 64,
        "peak RSS grew by {growth_mb} MB for a 100 MB query ({before} kB -> {after} kB)"
    );
}

/// SIGSTOP/SIGCONT to one process (a backend here), SIGCONT again on drop, so a failing test
/// never leaves a backend of the shared cluster stopped.
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        signal(pid, Signal::SIGSTOP).expect("SIGSTOP to the backend");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = signal(self.0, Signal::SIGCONT);
    }
}

/// The slow reader on the other side: the server stops reading in the middle of a 100 MB query
/// (its backend is stopped). pgsluice stops reading the client once its bounded buffer is full,
/// so the client's writes block (backpressure reaches the client) while the pooler's peak RSS
/// stays bounded; once the backend runs again the query completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_holds_the_client_back_in_bounded_memory() {
    let pg = PgCluster::shared();
    let db = pg.create_database("relay_slow_server");
    let pooler = raw::PoolerProcess::start(
        &db_line("app", &db, "pool_size=1"),
        "pool_mode = session\nauth_type = md5",
        &users(),
    );
    let pid = pooler.pid();
    let pw = password(USER);
    let (mut s, _) = raw::login(pooler.port, USER, &pw, "app").await;
    s.write_all(&raw::query("select pg_backend_pid()"))
        .await
        .unwrap();
    let backend: u32 = raw::read_value(&mut s)
        .await
        .expect("an answer to pg_backend_pid()")
        .and_then(|v| v.parse().ok())
        .expect("a backend pid");
    let before = raw::proc_status_kb(pid, "VmHWM");
    let size = BIG_QUERY_BYTES;
    let block = vec![b'x'; 1 << 20];
    let stopped = Stopped::stop(backend);
    s.write_all(&big_query_header()).await.unwrap();
    // Write until a write makes no progress for 2 s: every buffer between the client and the
    // stopped backend is full. (A `write` that times out wrote nothing: it is cancel-safe.)
    // Bounded: a pooler that buffered without limit would take all 100 MB, and the loop would
    // end with the whole body written.
    let mut written = 0;
    while written < size {
        let n = (size - written).min(block.len());
        match tokio::time::timeout(Duration::from_secs(2), s.write(&block[..n])).await {
            Ok(result) => written += result.unwrap(),
            Err(_) => break,
        }
    }
    assert!(
        written < size,
        "all {written} bytes were taken while the server read nothing"
    );
    let held = raw::proc_status_kb(pid, "VmHWM");
    let growth_mb = held.saturating_sub(before) / 1024;
    assert!(
        growth_mb < 32,
        "peak RSS grew by {growth_mb} MB while the server did not read ({before} kB -> {held} kB)"
    );
    drop(stopped);
    // The rest of the body, then its end.
    let reply = tokio::time::timeout(GUARD, finish_big_query(&mut s, written))
        .await
        .expect("the query went through once the server read again");
    assert_eq!(reply.as_deref(), Some("104857600"));
}
