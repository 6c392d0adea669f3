//! The metrics endpoint and budget alerts against a real Postgres: `/metrics` numbers agree with
//! the traffic driven through the pooler and with the pools' own snapshots, the page passes
//! `promtool check metrics` (where promtool is installed), and a held pool fires the
//! `pool_utilization` alert in `/metrics`, in the alert table and at a loopback webhook, then
//! resolves once released.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::float_cmp,
    clippy::print_stderr,
    reason = "test helpers report failures by panicking; compared samples are whole numbers; \
              a skipped check says so on stderr"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line};
use crate::harness::postgres::{PgCluster, password};

const USER: &str = "md5_user";
const AUTH: &str = ",kind=\"auth_failure\"";

/// Fetches `/metrics` with a raw HTTP/1.1 request; returns the body of a 200 answer.
async fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

/// The value of the sample written exactly as `series` (name plus labels), if present.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

fn pool_series(name: &str, db: &str, extra: &str) -> String {
    format!("{name}{{database=\"{db}\",user=\"{USER}\"{extra}}}")
}

fn metric(page: &str, name: &str, db: &str, extra: &str) -> f64 {
    let series = pool_series(name, db, extra);
    sample(page, &series).unwrap_or_else(|| panic!("no {series} in:\n{page}"))
}

/// Polls `/metrics` until `done` holds, or fails after `limit`.
async fn scrape_until(addr: SocketAddr, limit: Duration, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        let page = scrape(addr).await;
        if done(&page) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn metrics_addr(pooler: &Pooler) -> SocketAddr {
    pooler
        .running
        .as_ref()
        .unwrap()
        .metrics_addr
        .expect("metrics on")
}

/// Runs `promtool check metrics` on the page when promtool is installed.
fn promtool_check(page: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("SKIPPED promtool check: promtool not installed (Debian package `prometheus`)");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool: {report}\n{page}"
    );
}

/// A held transaction: one server in use, a quarter of the pool; released, none.
async fn held_transaction_gauges(pooler: &Pooler, pw: &str) {
    let addr = metrics_addr(pooler);
    let holder = pooler.connect(USER, pw, "app").await.unwrap();
    holder.simple_query("begin").await.unwrap();
    holder.simple_query("select 1").await.unwrap();
    let page = scrape(addr).await;
    let state = |s: &str| format!(",state=\"{s}\"");
    assert_eq!(
        metric(
            &page,
            "pgsluice_pool_server_connections",
            "app",
            &state("active")
        ),
        1.0
    );
    assert_eq!(
        metric(
            &page,
            "pgsluice_pool_client_connections",
            "app",
            &state("active")
        ),
        2.0
    );
    assert_eq!(
        metric(
            &page,
            "pgsluice_pool_client_connections",
            "app",
            &state("waiting")
        ),
        0.0
    );
    assert_eq!(
        metric(&page, "pgsluice_pool_utilization_ratio", "app", ""),
        0.25
    );
    let pools = pooler.running.as_ref().unwrap().registry().pools();
    let snap = pools[0].snapshot();
    assert_eq!((snap.sv_active, snap.cl_active), (1, 2));
    holder.simple_query("commit").await.unwrap();
    let page = scrape(addr).await;
    assert_eq!(
        metric(
            &page,
            "pgsluice_pool_server_connections",
            "app",
            &state("active")
        ),
        0.0
    );
}

/// Every `pgsluice_*` name in the shipped rules file and Grafana dashboard is on the page.
fn shipped_files_name_real_metrics(page: &str) {
    for file in [
        "config/prometheus-alerts.yml",
        "config/grafana-dashboard.json",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("pgsluice_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            let series_start = format!("\n{name}");
            let on_page = format!("\n{page}").contains(&series_start)
                || page.contains(&format!("# TYPE {name} "));
            assert!(on_page, "{file} uses {name}, which /metrics does not have");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_the_traffic() {
    let pg = PgCluster::shared();
    let db = pg.create_database("metrics");
    let pw = password(USER);
    let pooler = Pooler::start(
        &db_line("app", &db, "pool_size=4"),
        "pool_mode = transaction\nauth_type = md5\n[pgsluice]\nmetrics_listen = 127.0.0.1:0",
        &userlist(&[(USER, &pw)]),
    );
    let addr = metrics_addr(&pooler);
    let client = pooler.connect(USER, &pw, "app").await.unwrap();
    client.simple_query("create table t(x int)").await.unwrap();
    // 1 + 10 single-statement transactions, 5 explicit ones of 3 queries each.
    for i in 0..10 {
        client.simple_query(&format!("select {i}")).await.unwrap();
    }
    for i in 0..5 {
        client.simple_query("begin").await.unwrap();
        client
            .simple_query(&format!("insert into t values ({i})"))
            .await
            .unwrap();
        client.simple_query("commit").await.unwrap();
    }
    let (xacts, queries) = (16.0, 26.0);
    let page = scrape(addr).await;
    assert_eq!(
        metric(&page, "pgsluice_transactions_total", "app", ""),
        xacts
    );
    assert_eq!(metric(&page, "pgsluice_queries_total", "app", ""), queries);
    let count = |name: &str| metric(&page, name, "app", "");
    assert_eq!(count("pgsluice_transaction_duration_seconds_count"), xacts);
    assert_eq!(
        metric(
            &page,
            "pgsluice_transaction_duration_seconds_bucket",
            "app",
            ",le=\"+Inf\""
        ),
        xacts
    );
    assert_eq!(count("pgsluice_query_duration_seconds_count"), queries);
    assert_eq!(
        count("pgsluice_client_wait_seconds_count"),
        count("pgsluice_server_assignments_total")
    );
    assert!(count("pgsluice_received_bytes_total") > 0.0);
    assert!(count("pgsluice_sent_bytes_total") > 0.0);
    assert_eq!(count("pgsluice_pool_size"), 4.0);
    assert_eq!(metric(&page, "pgsluice_errors_total", "app", AUTH), 0.0);
    assert!(sample(&page, "pgsluice_process_open_fds").unwrap() > 0.0);
    assert!(sample(&page, "pgsluice_process_resident_memory_bytes").unwrap() > 0.0);
    // The registry's own numbers agree with the page.
    let pools = pooler.running.as_ref().unwrap().registry().pools();
    let stats = pools[0].stats.snapshot();
    assert_eq!(stats.xact_count, 16);
    assert_eq!(stats.query_count, 26);
    promtool_check(&page);
    shipped_files_name_real_metrics(&page);

    held_transaction_gauges(&pooler, &pw).await;

    // A wrong password counts as an auth failure of the pool.
    assert!(pooler.connect(USER, "wrong", "app").await.is_err());
    let page = scrape(addr).await;
    assert_eq!(metric(&page, "pgsluice_errors_total", "app", AUTH), 1.0);

    // Other paths are 404.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    pooler.stop().await;
}

/// A loopback webhook receiver: answers 200 to every POST and keeps the bodies.
async fn webhook_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                let body = loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            break body.to_owned();
                        }
                    }
                };
                seen.lock().unwrap().push(body);
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, bodies)
}

/// Waits until the receiver got an alert with `state` (`firing`/`resolved`) for `rule`.
async fn wait_for_post(bodies: &Mutex<Vec<String>>, rule: &str, state: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = bodies.lock().unwrap().iter().find_map(|b| {
            let v: serde_json::Value = serde_json::from_str(b).ok()?;
            v.as_array()?
                .iter()
                .find(|a| a["labels"]["rule"] == rule && a["annotations"]["state"] == state)
                .cloned()
        });
        if let Some(alert) = found {
            return alert;
        }
        assert!(
            Instant::now() < deadline,
            "no {state} POST for {rule}; got {:?}",
            bodies.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_utilization_alert_fires_and_resolves() {
    let pg = PgCluster::shared();
    let db = pg.create_database("alerts");
    let pw = password(USER);
    let (hook_port, bodies) = webhook_receiver().await;
    let pooler = Pooler::start(
        &db_line("app", &db, "pool_size=2"),
        &format!(
            "pool_mode = transaction\nauth_type = md5\n[pgsluice]\nmetrics_listen = 127.0.0.1:0\n\
             alert_pool_utilization = 0.8\nalert_pool_utilization_for = 1\n\
             alert_webhook_url = http://127.0.0.1:{hook_port}/api/v2/alerts"
        ),
        &userlist(&[(USER, &pw)]),
    );
    let addr = metrics_addr(&pooler);
    let firing = pool_series("pgsluice_alert_firing", "app", "")
        .replace("{database", "{alert=\"pool_utilization\",database");
    // Hold every server of the pool inside a transaction.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let c = pooler.connect(USER, &pw, "app").await.unwrap();
        c.simple_query("begin").await.unwrap();
        c.simple_query("select 1").await.unwrap();
        holders.push(c);
    }
    scrape_until(addr, Duration::from_secs(30), "the alert to fire", |p| {
        sample(p, &firing) == Some(1.0)
    })
    .await;
    let rows = pooler.running.as_ref().unwrap().alerts().snapshot();
    let row = rows
        .iter()
        .find(|r| r.alert == "pool_utilization" && r.database == "app")
        .unwrap();
    assert_eq!(row.state.as_str(), "firing");
    assert_eq!(row.value, Some(1.0));
    let alert = wait_for_post(&bodies, "pool_utilization", "firing").await;
    assert_eq!(alert["labels"]["alertname"], "PgsluicePoolUtilization");
    assert_eq!(alert["labels"]["database"], "app");
    assert_eq!(alert["labels"]["user"], USER);
    assert!(alert["startsAt"].as_str().is_some_and(|s| s.ends_with('Z')));

    for c in &holders {
        c.simple_query("commit").await.unwrap();
    }
    scrape_until(addr, Duration::from_secs(30), "the alert to resolve", |p| {
        sample(p, &firing) == Some(0.0)
            && p.contains("pgsluice_alert_state{alert=\"pool_utilization\",database=\"app\",user=\"md5_user\",state=\"resolved\"} 1")
    })
    .await;
    wait_for_post(&bodies, "pool_utilization", "resolved").await;
    let page = scrape(addr).await;
    assert!(sample(&page, "pgsluice_alert_webhook_sent_total").unwrap() >= 2.0);
    assert_eq!(
        sample(&page, "pgsluice_alert_webhook_dropped_total"),
        Some(0.0)
    );
    promtool_check(&page);
    pooler.stop().await;
}

#[test]
fn prometheus_rules_file_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus-alerts.yml");
    match std::process::Command::new("promtool")
        .args(["check", "rules", path])
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool check rules: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("SKIPPED promtool check rules: promtool not installed"),
    }
}
