//! Unit tests of settings, the evaluator (paused tokio time), the run loop and the webhook.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::evaluator::{Evaluator, EventKind, P95_LATENCY, POOL_UTILIZATION, PoolSample};
use super::settings::AlertSettings;
use super::webhook::{Notification, WebhookQueue, WebhookUrl, alert_name, payload};
use super::*;
use crate::stats::alert_board::{AlertBoard, AlertState};
use crate::stats::histogram::Histogram;

fn config(pgsluice: &str, databases: &str) -> Config {
    let text = format!("[databases]\n{databases}\n[pgbouncer]\n[pgsluice]\n{pgsluice}\n");
    Config::from_ini_str(&text, "t").unwrap()
}

fn sample(db: &str, active: usize, size: usize) -> PoolSample {
    PoolSample {
        database: db.into(),
        user: "u".into(),
        pool_size: size,
        sv_active: active,
        maxwait: Duration::ZERO,
        xact: Histogram::default().snapshot(),
    }
}

#[test]
fn settings_defaults_overrides_and_errors() {
    let s = AlertSettings::from_config(&config("", "")).unwrap();
    let util = s.global.pool_utilization.unwrap();
    assert!((util.threshold - 0.8).abs() < 1e-12);
    assert_eq!(util.hold, Duration::from_secs(300));
    let wait = s.global.client_wait.unwrap();
    assert!((wait.threshold - 1.0).abs() < 1e-12);
    assert_eq!(wait.hold, Duration::from_secs(60));
    assert!(s.global.p95_latency.is_none());
    assert!(s.webhook.is_none());

    let s = AlertSettings::from_config(&config(
        "alert_pool_utilization = 0\nalert_pool_utilization_for = 2min\nalert_p95_window = 60\nalert_webhook_url = http://127.0.0.1:9/hook",
        "app = host=h alert_pool_utilization=0.5 alert_p95_budget_ms=215\nother = host=h",
    ))
    .unwrap();
    assert!(s.global.pool_utilization.is_none());
    let app = s.rules_for("app");
    let util = app.pool_utilization.unwrap();
    assert!((util.threshold - 0.5).abs() < 1e-12);
    assert_eq!(
        util.hold,
        Duration::from_secs(120),
        "inherits the global hold"
    );
    let p95 = app.p95_latency.unwrap();
    assert!((p95.budget - 0.215).abs() < 1e-12);
    assert_eq!(p95.window, Duration::from_secs(60));
    assert_eq!(s.rules_for("other"), s.global);
    assert_eq!(s.webhook.as_deref().unwrap().port, 9);

    for (bad, key) in [
        ("alert_pool_utilization = high", "alert_pool_utilization"),
        ("alert_client_wait = -1", "alert_client_wait"),
        ("alert_p95_window = 5 weeks", "alert_p95_window"),
        (
            "alert_webhook_url = https://example.invalid/",
            "alert_webhook_url",
        ),
    ] {
        let e = AlertSettings::from_config(&config(bad, "")).unwrap_err();
        assert_eq!(e.key, key, "{bad}");
    }
    let e = AlertSettings::from_config(&config("", "app = host=h alert_client_wait_for=x"))
        .unwrap_err();
    assert!(
        e.key.contains("app") && e.key.contains("alert_client_wait_for"),
        "{e}"
    );
}

#[test]
fn webhook_urls() {
    let u = WebhookUrl::parse("http://127.0.0.1:9093/api/v2/alerts").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.path.as_str()),
        ("127.0.0.1", 9093, "/api/v2/alerts")
    );
    let u = WebhookUrl::parse("http://hooks.local").unwrap();
    assert_eq!(
        (u.port, u.path.as_str(), u.authority.as_str()),
        (80, "/", "hooks.local")
    );
    let u = WebhookUrl::parse("http://[::1]:8080/x?y=1").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.path.as_str()),
        ("::1", 8080, "/x?y=1")
    );
    for bad in [
        "https://a/",
        "ftp://a",
        "http://",
        "http://a:0/",
        "http://a:x/",
        "http://u@a/",
        "http://[::1/",
        "httpé://x",
    ] {
        assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test(start_paused = true)]
async fn utilization_fires_after_hold_and_resolves() {
    let settings =
        AlertSettings::from_config(&config("alert_pool_utilization_for = 10", "")).unwrap();
    let mut ev = Evaluator::default();
    let wall = SystemTime::now();
    let busy = [sample("app", 9, 10)];
    let calm = [sample("app", 2, 10)];
    let kinds = |events: Vec<super::evaluator::Event>| -> Vec<EventKind> {
        events
            .iter()
            .filter(|e| e.alert == POOL_UTILIZATION)
            .map(|e| e.kind)
            .collect()
    };
    assert_eq!(
        kinds(ev.evaluate(Instant::now(), wall, &busy, &settings)),
        [EventKind::Pending]
    );
    tokio::time::advance(Duration::from_secs(9)).await;
    assert!(kinds(ev.evaluate(Instant::now(), wall, &busy, &settings)).is_empty());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        kinds(ev.evaluate(Instant::now(), wall, &busy, &settings)),
        [EventKind::Firing]
    );
    let row = ev
        .rows()
        .into_iter()
        .find(|r| r.alert == POOL_UTILIZATION)
        .unwrap();
    assert_eq!(row.state, AlertState::Firing);
    assert!((row.value.unwrap() - 0.9).abs() < 1e-12);
    assert_eq!(row.hold, Duration::from_secs(10));
    // Still firing after the resend period: announced again.
    tokio::time::advance(evaluator::RESEND_EVERY).await;
    assert_eq!(
        kinds(ev.evaluate(Instant::now(), wall, &busy, &settings)),
        [EventKind::Repeat]
    );
    // Clears: needs min(hold, 60 s) = 10 s of calm.
    assert!(kinds(ev.evaluate(Instant::now(), wall, &calm, &settings)).is_empty());
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        kinds(ev.evaluate(Instant::now(), wall, &calm, &settings)),
        [EventKind::Resolved]
    );
    // Exactly at 80 %: not over the threshold.
    let at = [sample("app", 8, 10)];
    assert!(kinds(ev.evaluate(Instant::now(), wall, &at, &settings)).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_vanished_pool_resolves_and_unlimited_pools_are_skipped() {
    let settings =
        AlertSettings::from_config(&config("alert_pool_utilization_for = 0", "")).unwrap();
    let mut ev = Evaluator::default();
    let wall = SystemTime::now();
    let events = ev.evaluate(
        Instant::now(),
        wall,
        &[sample("a", 5, 5), sample("b", 50, 0)],
        &settings,
    );
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind, events[0].database.as_str()),
        (EventKind::Firing, "a")
    );
    assert!(
        ev.rows()
            .iter()
            .all(|r| r.database != "b" || r.alert != POOL_UTILIZATION)
    );
    let events = ev.evaluate(Instant::now(), wall, &[], &settings);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Resolved);
    assert!(ev.rows().is_empty());
}

#[tokio::test(start_paused = true)]
async fn p95_budget_over_a_sliding_window() {
    let settings = AlertSettings::from_config(&config(
        "alert_p95_budget_ms = 100\nalert_p95_window = 10",
        "",
    ))
    .unwrap();
    let hist = Histogram::default();
    let mut ev = Evaluator::default();
    let wall = SystemTime::now();
    let mut s = sample("app", 0, 10);
    let step = |ev: &mut Evaluator, s: &mut PoolSample, hist: &Histogram| {
        s.xact = hist.snapshot();
        ev.evaluate(Instant::now(), wall, std::slice::from_ref(s), &settings)
            .into_iter()
            .filter(|e| e.alert == P95_LATENCY)
            .map(|e| e.kind)
            .collect::<Vec<_>>()
    };
    assert!(step(&mut ev, &mut s, &hist).is_empty());
    // Slow traffic: p95 well over 100 ms for longer than the hold (window / 5 = 2 s).
    let mut seen = Vec::new();
    for _ in 0..8 {
        for _ in 0..10 {
            hist.record(Duration::from_millis(400));
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        seen.extend(step(&mut ev, &mut s, &hist));
    }
    assert_eq!(seen, [EventKind::Pending, EventKind::Firing]);
    // Fast traffic: once the slow observations leave the window, it resolves.
    let mut seen = Vec::new();
    for _ in 0..20 {
        for _ in 0..10 {
            hist.record(Duration::from_millis(2));
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        seen.extend(step(&mut ev, &mut s, &hist));
    }
    assert_eq!(seen, [EventKind::Resolved]);
    let row = ev
        .rows()
        .into_iter()
        .find(|r| r.alert == P95_LATENCY)
        .unwrap();
    assert!(row.value.unwrap() <= 0.002);
}

struct FakeSource {
    config: Arc<Config>,
    samples: Mutex<Vec<PoolSample>>,
}

impl Source for FakeSource {
    fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config)
    }
    fn samples(&self) -> Vec<PoolSample> {
        self.samples.lock().unwrap().clone()
    }
}

#[tokio::test(start_paused = true)]
async fn run_loop_publishes_and_queues_notifications() {
    let cfg = config(
        "alert_pool_utilization_for = 2\nalert_webhook_url = http://127.0.0.1:9/",
        "",
    );
    let source = Arc::new(FakeSource {
        config: Arc::new(cfg),
        samples: Mutex::new(vec![sample("app", 10, 10)]),
    });
    let settings = AlertSettings::from_config(&source.config).unwrap();
    assert_eq!(tick_period(&settings), Duration::from_millis(500));
    let board = Arc::new(AlertBoard::default());
    let queue = Arc::new(WebhookQueue::new(8, Arc::clone(&board)));
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(
        source.clone(),
        settings,
        Arc::clone(&board),
        Arc::clone(&queue),
        stop.clone(),
    ));
    let state = |board: &AlertBoard| {
        board
            .snapshot()
            .into_iter()
            .find(|r| r.alert == POOL_UTILIZATION)
            .map(|r| r.state)
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(state(&board), Some(AlertState::Pending));
    assert!(queue.is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(state(&board), Some(AlertState::Firing));
    assert_eq!(queue.len(), 1);
    *source.samples.lock().unwrap() = vec![sample("app", 0, 10)];
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(state(&board), Some(AlertState::Resolved));
    assert_eq!(queue.len(), 2);
    stop.cancel();
    task.await.unwrap();
}

fn notification(i: u32) -> Notification {
    Notification {
        url: Arc::new(WebhookUrl::parse("http://127.0.0.1:9/").unwrap()),
        alert: POOL_UTILIZATION,
        database: format!("db{i}"),
        user: "u".into(),
        firing: true,
        value: Some(0.9),
        threshold: 0.8,
        starts_at: SystemTime::UNIX_EPOCH,
        ends_at: SystemTime::UNIX_EPOCH + Duration::from_secs(60),
        instance: Arc::from("host"),
    }
}

#[test]
fn queue_drops_oldest_when_full() {
    let board = Arc::new(AlertBoard::default());
    let queue = WebhookQueue::new(4, Arc::clone(&board));
    for i in 0..7 {
        queue.push(notification(i));
    }
    assert_eq!(queue.len(), 4);
    assert_eq!(board.webhook().dropped.load(Ordering::Relaxed), 3);
}

#[test]
fn payload_is_alertmanager_v2() {
    let mut resolved = notification(1);
    resolved.firing = false;
    resolved.database = "we\"ird".into();
    let body = payload(&[notification(0), resolved]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let alerts = v.as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["labels"]["alertname"], "PgsluicePoolUtilization");
    assert_eq!(alerts[0]["labels"]["database"], "db0");
    assert_eq!(alerts[0]["labels"]["instance"], "host");
    assert_eq!(alerts[0]["annotations"]["value"], "0.900000");
    assert_eq!(alerts[0]["startsAt"], "1970-01-01T00:00:00Z");
    assert_eq!(alerts[0]["endsAt"], "1970-01-01T00:01:00Z");
    assert_eq!(alerts[1]["labels"]["database"], "we\"ird");
    assert_eq!(alerts[1]["annotations"]["state"], "resolved");
    assert_eq!(alert_name("p95_latency"), "PgsluiceP95Latency");
}

/// A receiver that answers each request with the next status of `statuses` and records bodies.
async fn receiver(statuses: Vec<&'static str>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    tokio::spawn(async move {
        for status in statuses {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if body.len() >= len {
                        seen.lock().unwrap().push(body.to_owned());
                        break;
                    }
                }
            }
            let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            s.write_all(reply.as_bytes()).await.unwrap();
        }
    });
    (port, bodies)
}

#[tokio::test]
async fn sender_retries_until_accepted() {
    let (port, bodies) = receiver(vec!["503 Busy", "202 Accepted"]).await;
    let board = Arc::new(AlertBoard::default());
    let queue = Arc::new(WebhookQueue::new(8, Arc::clone(&board)));
    let mut n = notification(0);
    n.url = Arc::new(WebhookUrl::parse(&format!("http://127.0.0.1:{port}/hook")).unwrap());
    queue.push(n.clone());
    queue.push(n);
    let stop = CancellationToken::new();
    let task = tokio::spawn(webhook::run(Arc::clone(&queue), stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while board.webhook().sent.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "webhook never delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(
        bodies.len(),
        2,
        "one failed try, one accepted, both with the batch of two"
    );
    let v: serde_json::Value = serde_json::from_str(&bodies[1]).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(board.webhook().failed.load(Ordering::Relaxed), 0);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn sender_gives_up_on_a_dead_receiver() {
    // Bind and drop to get a port where nothing listens.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let board = Arc::new(AlertBoard::default());
    let queue = Arc::new(WebhookQueue::new(8, Arc::clone(&board)));
    let mut n = notification(0);
    n.url = Arc::new(WebhookUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap());
    queue.push(n);
    let stop = CancellationToken::new();
    let task = tokio::spawn(webhook::run(Arc::clone(&queue), stop.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while board.webhook().failed.load(Ordering::Relaxed) < 1 {
        assert!(std::time::Instant::now() < deadline, "never gave up");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(board.webhook().sent.load(Ordering::Relaxed), 0);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn sender_stops_in_the_middle_of_a_hung_post() {
    // A receiver that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted_tx, accepted) = tokio::sync::oneshot::channel();
    let hold = tokio::spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        let _ = accepted_tx.send(());
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(conn);
    });
    let board = Arc::new(AlertBoard::default());
    let queue = Arc::new(WebhookQueue::new(8, Arc::clone(&board)));
    let mut n = notification(0);
    n.url = Arc::new(WebhookUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap());
    queue.push(n);
    let stop = CancellationToken::new();
    let task = tokio::spawn(webhook::run(Arc::clone(&queue), stop.clone()));
    tokio::time::timeout(Duration::from_secs(20), accepted)
        .await
        .expect("the sender connects")
        .unwrap();
    stop.cancel();
    // Well under POST_TIMEOUT: the stop does not wait for the receiver.
    tokio::time::timeout(webhook::POST_TIMEOUT / 2, task)
        .await
        .expect("the sender stops at once")
        .unwrap();
    assert_eq!(board.webhook().sent.load(Ordering::Relaxed), 0);
    hold.abort();
}
