//! A webhook receiver that is down (connection refused) or slow (accepts, answers after a
//! minute) does not slow pooling: while the alert fires and the sender retries, 200 queries and
//! new logins go through, the console and `/metrics` answer, the alert still resolves on time,
//! and the pooler stops promptly.
//!
//! The only time limits are hang guards (200 queries within 30 s while the receiver blocks for
//! 60 s), never ratios.

#![allow(clippy::float_cmp, reason = "compared samples are whole numbers")]

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::harness::logs;
use crate::harness::metrics::{cell, metrics_addr, sample, scrape, scrape_until};
use crate::harness::pooler::{Pooler, db_line};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::webhook;
use crate::metrics_alerts::{
    USER, alert_row, alert_series, console, hold, release, settings, users,
};

const RULE: &str = "pool_utilization";
const LIMIT: Duration = Duration::from_secs(30);

/// A pool of 4 whose `pool_utilization` alert (over 0.5 for 1 s) posts to `url`.
fn start(db_name: &str, url: &str) -> Pooler {
    let db = PgCluster::shared().create_database(db_name);
    Pooler::start(
        &db_line(db_name, &db, "pool_size=4"),
        &settings(&format!(
            "alert_pool_utilization = 0.5\nalert_pool_utilization_for = 1\n\
             alert_webhook_url = {url}"
        )),
        &users(),
    )
}

/// Holds 3 of the 4 servers until the alert fires (75 % > 50 %).
async fn fire(pooler: &Pooler, db: &str) -> Vec<tokio_postgres::Client> {
    let holders = hold(pooler, db, 3).await;
    let firing = alert_series("pgsluice_alert_firing", RULE, db, "");
    scrape_until(metrics_addr(pooler), LIMIT, "the alert to fire", |p| {
        sample(p, &firing) == Some(1.0)
    })
    .await;
    holders
}

/// 200 simple queries on one client, then a new login and a query, each within 30 s; the
/// console still answers and shows the alert firing.
async fn queries_keep_flowing(pooler: &Pooler, db: &str) {
    let pw = password(USER);
    let client = pooler.connect(USER, &pw, db).await.unwrap();
    let run = async {
        for i in 0..200 {
            let rows = client.simple_query(&format!("select {i}")).await.unwrap();
            assert!(!rows.is_empty());
        }
    };
    tokio::time::timeout(LIMIT, run)
        .await
        .expect("200 queries complete within 30 s while the webhook is failing");
    let fresh = async {
        let c = pooler.connect(USER, &pw, db).await.unwrap();
        c.simple_query("select 1").await.unwrap();
    };
    tokio::time::timeout(LIMIT, fresh)
        .await
        .expect("a new client logs in and gets a server");
    let admin = console(pooler).await;
    let row = alert_row(&admin, RULE, db).await.expect("SHOW ALERTS row");
    assert_eq!(cell(&row, "state"), Some("firing"), "{row:?}");
}

/// Releases the holders and waits for the alert to resolve, then stops the pooler; neither may
/// wait on the webhook.
async fn resolve_and_stop(pooler: Pooler, holders: &[tokio_postgres::Client], db: &str) {
    release(holders).await;
    let firing = alert_series("pgsluice_alert_firing", RULE, db, "");
    scrape_until(metrics_addr(&pooler), LIMIT, "the alert to resolve", |p| {
        sample(p, &firing) == Some(0.0)
    })
    .await;
    tokio::time::timeout(LIMIT, pooler.stop())
        .await
        .expect("the pooler stops while the webhook hangs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_webhook_does_not_slow_queries() {
    logs::capture();
    let db = "alerts_hook_down";
    let port = webhook::closed_port();
    let pooler = start(db, &format!("http://127.0.0.1:{port}/api/v2/alerts"));
    let holders = fire(&pooler, db).await;
    // The sender is now retrying (0.5 s, 1 s, 2 s, 4 s apart) against a refused port.
    queries_keep_flowing(&pooler, db).await;
    // It gives up on that batch, counts it and says so at WARN, and pooling never noticed.
    scrape_until(
        metrics_addr(&pooler),
        Duration::from_secs(60),
        "the webhook to give up",
        |p| sample(p, "pgsluice_alert_webhook_failed_total").is_some_and(|n| n >= 1.0),
    )
    .await;
    let host = format!("host=127.0.0.1:{port}");
    let line = logs::wait_for(&["alert webhook failed, giving up", &host], LIMIT).await;
    assert!(line.contains("WARN"), "{line}");
    let page = scrape(metrics_addr(&pooler)).await;
    assert_eq!(
        sample(&page, "pgsluice_alert_webhook_sent_total"),
        Some(0.0)
    );
    queries_keep_flowing(&pooler, db).await;
    resolve_and_stop(pooler, &holders, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_webhook_does_not_slow_queries() {
    let db = "alerts_hook_slow";
    let (port, accepted) = webhook::slow(Duration::from_secs(60)).await;
    let pooler = start(db, &format!("http://127.0.0.1:{port}/api/v2/alerts"));
    let holders = fire(&pooler, db).await;
    // Wait until a POST is stuck at the receiver, then drive queries while it hangs.
    let stuck = crate::harness::pooler::eventually(30, || {
        let n = accepted.load(Ordering::SeqCst);
        async move { n >= 1 }
    })
    .await;
    assert!(stuck, "the webhook never connected to the slow receiver");
    queries_keep_flowing(&pooler, db).await;
    let page = scrape(metrics_addr(&pooler)).await;
    assert_eq!(
        sample(&page, "pgsluice_alert_webhook_sent_total"),
        Some(0.0)
    );
    // The evaluator does not wait for the sender: the alert resolves while the POST hangs.
    resolve_and_stop(pooler, &holders, db).await;
}
