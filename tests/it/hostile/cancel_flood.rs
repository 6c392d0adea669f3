//! Cancel requests: a flood of 2,000 with random keys (and with a real client's pid and wrong
//! keys) while a query runs cancels nothing; a real key cancels only its own client's query.
//! The pooler's keys are random; a request is looked up by its whole (pid, key) pair in a
//! randomly seeded hash map, so there is no byte-by-byte comparison whose timing could leak a
//! key (see docs/security.md).

use std::time::Duration;

use super::{USER, start, still_serves};
use crate::harness::pooler::{eventually, first_value, sqlstate};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw;

/// Waits until a backend runs `pg_sleep` with `marker` in its query text.
async fn running(marker: &str) {
    let superuser = PgCluster::shared().superuser_client().await;
    let sql = format!(
        "select count(*) from pg_stat_activity where state = 'active' and query like '%{marker}%' and pid <> pg_backend_pid()"
    );
    assert!(
        eventually(20, || async {
            first_value(&superuser, &sql).await.unwrap().as_deref() == Some("1")
        })
        .await,
        "{marker} never ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_guessed_cancel_keys_cancels_nothing() {
    let pooler = start("default_pool_size = 4");
    let pw = password(USER);
    let a = pooler.connect(USER, &pw, "app").await.unwrap();
    let b = pooler.connect(USER, &pw, "app").await.unwrap();
    let b_cancel = b.cancel_token();
    let (_raw_client, real_key) = raw::login(pooler.port, USER, &pw, "app").await;

    let a_sleep = tokio::spawn(async move {
        let r = a.simple_query("select pg_sleep(3) /* flood_a */").await;
        (a, r)
    });
    running("flood_a").await;
    let port = pooler.port;
    let senders: Vec<_> = (0..20)
        .map(|t| {
            tokio::spawn(async move {
                for i in 0..100 {
                    let (pid, key): (i32, i32) = if (t + i) % 2 == 0 {
                        (rand::random(), rand::random())
                    } else {
                        (real_key.0, real_key.1.wrapping_add(1 + i))
                    };
                    raw::send_cancel(port, pid, key).await;
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    let (a, r) = tokio::time::timeout(Duration::from_secs(30), a_sleep)
        .await
        .unwrap()
        .unwrap();
    r.expect("2,000 guessed cancel keys cancelled nothing");

    // A real key cancels only its own client's query.
    let a_sleep =
        tokio::spawn(async move { a.simple_query("select pg_sleep(2) /* own_a */").await });
    let b_sleep =
        tokio::spawn(async move { b.simple_query("select pg_sleep(30) /* own_b */").await });
    running("own_b").await;
    b_cancel
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel sent");
    let b_result = tokio::time::timeout(Duration::from_secs(20), b_sleep)
        .await
        .expect("b canceled")
        .unwrap();
    assert_eq!(
        b_result.err().as_ref().and_then(sqlstate).as_deref(),
        Some("57014")
    );
    tokio::time::timeout(Duration::from_secs(30), a_sleep)
        .await
        .unwrap()
        .unwrap()
        .expect("a's query was not canceled");
    still_serves(&pooler).await;
    pooler.stop().await;
}
