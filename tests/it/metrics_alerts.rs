//! The metrics endpoint and budget alerts against a real Postgres: `/metrics` numbers agree with
//! the traffic driven through the pooler and with the console's SHOW POOLS / SHOW STATS, the
//! page and the shipped rules pass `promtool check` (the `*_needs_promtool` tests), a held pool
//! fires the
//! `pool_utilization` alert (pending, firing, resolved) in SHOW ALERTS, `/metrics`, the log and
//! at a loopback webhook, and a pool held under the threshold fires nothing. Webhook receivers
//! that are down or slow are in `metrics_alerts_webhook.rs`.

#![allow(clippy::float_cmp, reason = "compared samples are whole numbers")]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::Client;

use crate::harness::files::userlist;
use crate::harness::logs;
use crate::harness::metrics::{
    Row, cell, find, metrics_addr, number, sample, scrape, scrape_until, show,
};
use crate::harness::pooler::{Pooler, db_line};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::tools::required;
use crate::harness::webhook;

pub(crate) const USER: &str = "md5_user";
const ADMIN: (&str, &str) = ("admin", "admin_pw");
const AUTH: &str = ",kind=\"auth_failure\"";

/// userlist.txt with the pool user and the console's admin.
pub(crate) fn users() -> String {
    userlist(&[(USER, &password(USER)), ADMIN])
}

/// `[pgbouncer]` lines (transaction mode, md5, an admin) and a `[pgsluice]` section with
/// metrics on plus `pgsluice`.
pub(crate) fn settings(pgsluice: &str) -> String {
    format!(
        "pool_mode = transaction\nauth_type = md5\nadmin_users = {}\n[pgsluice]\n\
         metrics_listen = 127.0.0.1:0\n{pgsluice}",
        ADMIN.0
    )
}

/// An admin console session.
pub(crate) async fn console(pooler: &Pooler) -> Client {
    pooler
        .connect(ADMIN.0, ADMIN.1, "pgbouncer")
        .await
        .expect("console login")
}

/// `n` clients of `db`, each inside a transaction that holds a server.
pub(crate) async fn hold(pooler: &Pooler, db: &str, n: usize) -> Vec<Client> {
    let pw = password(USER);
    let mut holders = Vec::with_capacity(n);
    for _ in 0..n {
        let c = pooler.connect(USER, &pw, db).await.unwrap();
        c.batch_execute("begin; select 1").await.unwrap();
        holders.push(c);
    }
    holders
}

/// Ends the holders' transactions.
pub(crate) async fn release(holders: &[Client]) {
    for c in holders {
        c.batch_execute("commit").await.unwrap();
    }
}

/// The `series` of a pool metric for `USER`.
fn pool_series(name: &str, db: &str, extra: &str) -> String {
    format!("{name}{{database=\"{db}\",user=\"{USER}\"{extra}}}")
}

/// The series of an alert gauge (`pgsluice_alert_firing`, ...) for `rule` on pool `db`/`USER`.
pub(crate) fn alert_series(name: &str, rule: &str, db: &str, extra: &str) -> String {
    format!("{name}{{alert=\"{rule}\",database=\"{db}\",user=\"{USER}\"{extra}}}")
}

fn metric(page: &str, name: &str, db: &str, extra: &str) -> f64 {
    let series = pool_series(name, db, extra);
    sample(page, &series).unwrap_or_else(|| panic!("no {series} in:\n{page}"))
}

/// The SHOW ALERTS row of `rule` on pool `db`/`USER`, if there is one.
pub(crate) async fn alert_row(console: &Client, rule: &str, db: &str) -> Option<Row> {
    show(console, "SHOW ALERTS").await.into_iter().find(|r| {
        cell(r, "name") == Some(rule)
            && cell(r, "database") == Some(db)
            && cell(r, "user") == Some(USER)
    })
}

/// Polls SHOW ALERTS every 50 ms until the row of `rule` on `db` satisfies `done`; panics with
/// the last row after `limit`.
pub(crate) async fn wait_alert(
    console: &Client,
    rule: &str,
    db: &str,
    limit: Duration,
    done: impl Fn(&Row) -> bool,
) -> Row {
    let mut last = None;
    for _ in 0..=limit.as_millis() / 50 {
        last = alert_row(console, rule, db).await;
        if let Some(row) = last.as_ref().filter(|r| done(r)) {
            return row.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("SHOW ALERTS: {rule} on {db} never got there; last row: {last:?}");
}

fn state_is(state: &'static str) -> impl Fn(&Row) -> bool {
    move |r| cell(r, "state") == Some(state)
}

/// Runs `promtool check metrics` on the page; fails the test without promtool.
fn promtool_check(page: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = required(
        "promtool (Debian package prometheus)",
        Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run promtool: {e}")),
    );
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

/// Every family on the page at once passes `promtool check metrics`: pool gauges and counters,
/// the wait, query and transaction histograms with samples in them, an error counter, alert
/// gauges while a transaction holds a server, and the process metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool (scripts/test.sh unpacks it and runs this)"]
async fn metrics_page_passes_promtool_needs_promtool() {
    let db = PgCluster::shared().create_database("promtool");
    let pw = password(USER);
    let pooler = Pooler::start(
        &db_line("app", &db, "pool_size=2"),
        &settings("alert_pool_utilization = 0.4\nalert_pool_utilization_for = 60"),
        &users(),
    );
    let addr = metrics_addr(&pooler);
    let client = pooler.connect(USER, &pw, "app").await.unwrap();
    for i in 0..5 {
        client.simple_query(&format!("select {i}")).await.unwrap();
    }
    assert!(pooler.connect(USER, "wrong", "app").await.is_err());
    let holder = hold(&pooler, "app", 1).await;
    let page = scrape_until(
        addr,
        Duration::from_secs(10),
        "the alert to go pending",
        |p| p.contains("pgsluice_alert_"),
    )
    .await;
    assert_eq!(metric(&page, "pgsluice_errors_total", "app", AUTH), 1.0);
    promtool_check(&page);
    release(&holder).await;
    pooler.stop().await;
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
    let pools = pooler.app().registry().pools();
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

/// Runs `transactions` single-statement transactions on each of `clients` new clients at once;
/// returns the clients, idle and still connected.
async fn concurrent_load(pooler: &Pooler, clients: usize, transactions: usize) -> Vec<Client> {
    let pw = password(USER);
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let c = pooler.connect(USER, &pw, "app").await.unwrap();
        tasks.push(tokio::spawn(async move {
            for i in 0..transactions {
                c.simple_query(&format!("select {i}")).await.unwrap();
            }
            c
        }));
    }
    let mut done = Vec::with_capacity(clients);
    for t in tasks {
        let c = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("the load finishes")
            .unwrap();
        done.push(c);
    }
    done
}

/// SHOW POOLS' row of `app` against the pool gauges of `page`.
fn pools_agree(pool: &Row, page: &str) {
    let pairs = [
        ("cl_active", "pgsluice_pool_client_connections", "active"),
        ("cl_waiting", "pgsluice_pool_client_connections", "waiting"),
        ("sv_active", "pgsluice_pool_server_connections", "active"),
        ("sv_idle", "pgsluice_pool_server_connections", "idle"),
        ("sv_used", "pgsluice_pool_server_connections", "used"),
        ("sv_tested", "pgsluice_pool_server_connections", "tested"),
        ("sv_login", "pgsluice_pool_server_connections", "login"),
    ];
    for (column, name, state) in pairs {
        let extra = format!(",state=\"{state}\"");
        assert_eq!(
            number(pool, column),
            metric(page, name, "app", &extra),
            "SHOW POOLS {column} vs {name}{extra}"
        );
    }
    let maxwait = number(pool, "maxwait") + number(pool, "maxwait_us") / 1e6;
    let name = "pgsluice_pool_client_maxwait_seconds";
    assert_eq!(maxwait, metric(page, name, "app", ""));
}

/// SHOW STATS' row of `app` against the counters and histograms of `page`.
fn stats_agree(stat: &Row, page: &str) {
    let pairs = [
        ("total_xact_count", "pgsluice_transactions_total"),
        ("total_query_count", "pgsluice_queries_total"),
        ("total_received", "pgsluice_received_bytes_total"),
        ("total_sent", "pgsluice_sent_bytes_total"),
        (
            "total_server_assignment_count",
            "pgsluice_server_assignments_total",
        ),
        ("total_client_login_count", "pgsluice_client_logins_total"),
        // One histogram observation per transaction, query and assignment.
        (
            "total_xact_count",
            "pgsluice_transaction_duration_seconds_count",
        ),
        ("total_query_count", "pgsluice_query_duration_seconds_count"),
        (
            "total_server_assignment_count",
            "pgsluice_client_wait_seconds_count",
        ),
    ];
    for (column, name) in pairs {
        assert_eq!(
            number(stat, column),
            metric(page, name, "app", ""),
            "SHOW STATS {column} vs {name}"
        );
    }
    // The histogram sums are the same microseconds, in seconds.
    let sums = [
        (
            "total_xact_time",
            "pgsluice_transaction_duration_seconds_sum",
        ),
        ("total_query_time", "pgsluice_query_duration_seconds_sum"),
        ("total_wait_time", "pgsluice_client_wait_seconds_sum"),
    ];
    for (column, name) in sums {
        let micros = number(stat, column);
        let seconds = metric(page, name, "app", "");
        assert!(
            (seconds * 1e6 - micros).abs() < 1.0,
            "SHOW STATS {column} = {micros} µs vs {name} = {seconds} s"
        );
    }
}

/// Once `xacts` transactions are counted (the load is over, so nothing moves), every SHOW POOLS
/// and SHOW STATS number of pool `app` equals its `/metrics` counterpart; returns the page.
async fn console_agrees_with_metrics(pooler: &Pooler, admin: &Client, xacts: u32) -> String {
    let addr = metrics_addr(pooler);
    let series = pool_series("pgsluice_transactions_total", "app", "");
    let counted = format!("{series} {xacts}");
    let limit = Duration::from_secs(30);
    scrape_until(addr, limit, "the load to be counted", |p| {
        p.lines().any(|l| l == counted)
    })
    .await;
    let pools = show(admin, "SHOW POOLS").await;
    let stats = show(admin, "SHOW STATS").await;
    let page = scrape(addr).await;
    pools_agree(
        find(&pools, "database", "app").expect("SHOW POOLS row"),
        &page,
    );
    let stat = find(&stats, "database", "app").expect("SHOW STATS row");
    stats_agree(stat, &page);
    assert_eq!(number(stat, "total_xact_count"), f64::from(xacts));
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_the_traffic() {
    let pg = PgCluster::shared();
    let db = pg.create_database("metrics");
    let pw = password(USER);
    let pooler = Pooler::start(&db_line("app", &db, "pool_size=4"), &settings(""), &users());
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
    let pools = pooler.app().registry().pools();
    let stats = pools[0].stats.snapshot();
    assert_eq!(stats.xact_count, 16);
    assert_eq!(stats.query_count, 26);
    shipped_files_name_real_metrics(&page);

    held_transaction_gauges(&pooler, &pw).await;

    // Driven load: 8 clients at once on a pool of 4 (so some wait), 25 transactions each. Then,
    // at rest, the console and the page must give the same numbers.
    let admin = console(&pooler).await;
    let load = concurrent_load(&pooler, 8, 25).await;
    // 16 above, 1 in held_transaction_gauges, 200 now.
    let page = console_agrees_with_metrics(&pooler, &admin, 17 + 8 * 25).await;
    assert_eq!(metric(&page, "pgsluice_queries_total", "app", ""), 229.0);
    assert_eq!(
        metric(
            &page,
            "pgsluice_pool_client_connections",
            "app",
            ",state=\"active\""
        ),
        9.0,
        "the first client and the 8 load clients, idle"
    );
    drop(load);

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

/// Pool names of the alert tests: the log buffer is shared by every in-process pooler, so each
/// test's lines are told apart by its database name.
const FIRE_DB: &str = "alerts_fire";
const CALM_DB: &str = "alerts_calm";

/// Hold 21 of 25 servers (84 % > 80 % for 2 s): pending, then firing, in SHOW ALERTS, in
/// `/metrics`, in the log and at the webhook; released: resolved everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_utilization_alert_fires_and_resolves() {
    logs::capture();
    let pg = PgCluster::shared();
    let db = pg.create_database("alerts");
    let (hook_port, bodies) = webhook::recording().await;
    let pooler = Pooler::start(
        &db_line(FIRE_DB, &db, "pool_size=25"),
        &settings(&format!(
            "alert_pool_utilization = 0.8\nalert_pool_utilization_for = 2\n\
             alert_webhook_url = http://127.0.0.1:{hook_port}/api/v2/alerts"
        )),
        &users(),
    );
    let addr = metrics_addr(&pooler);
    let admin = console(&pooler).await;
    let rule = "pool_utilization";
    let firing = alert_series("pgsluice_alert_firing", rule, FIRE_DB, "");
    let limit = Duration::from_secs(30);

    let holders = hold(&pooler, FIRE_DB, 21).await;
    let pending = wait_alert(&admin, rule, FIRE_DB, limit, state_is("pending")).await;
    assert_eq!(cell(&pending, "value"), Some("0.84"), "{pending:?}");
    assert_eq!(cell(&pending, "threshold"), Some("0.8"));
    assert_eq!(cell(&pending, "for"), Some("2"));
    let since = |r: &Row| cell(r, "since").unwrap().to_owned();
    // `YYYY-MM-DD HH:MM:SS ZONE`, as SHOW CLIENTS' timestamps.
    let parts: Vec<usize> = since(&pending).split(' ').map(str::len).collect();
    assert!(parts.len() == 3 && parts[..2] == [10, 8], "{pending:?}");

    let firing_row = wait_alert(&admin, rule, FIRE_DB, limit, state_is("firing")).await;
    assert_eq!(cell(&firing_row, "value"), Some("0.84"));
    assert!(since(&firing_row) >= since(&pending), "{firing_row:?}");
    scrape_until(addr, limit, "the alert to fire", |p| {
        sample(p, &firing) == Some(1.0)
    })
    .await;
    // The other rule on the pool is there, quiet.
    let rows = show(&admin, "SHOW ALERTS").await;
    let names: Vec<&str> = rows
        .iter()
        .filter(|r| cell(r, "database") == Some(FIRE_DB))
        .filter_map(|r| cell(r, "name"))
        .collect();
    assert_eq!(names, ["client_wait", "pool_utilization"]);
    let wait = find(&rows, "name", "client_wait").unwrap();
    assert_eq!(cell(wait, "state"), Some("ok"));
    // The app's own handle sees the same table.
    let board = pooler.app().alerts().snapshot();
    let row = board
        .iter()
        .find(|r| r.alert == rule && r.database == FIRE_DB)
        .unwrap();
    assert_eq!(row.state.as_str(), "firing");
    assert_eq!(row.value, Some(0.84));

    let alert = webhook::wait_for_post(&bodies, rule, FIRE_DB, "firing").await;
    assert_eq!(alert["labels"]["alertname"], "PgsluicePoolUtilization");
    assert_eq!(alert["labels"]["user"], USER);
    assert!(alert["startsAt"].as_str().is_some_and(|s| s.ends_with('Z')));
    let db_field = format!("database={FIRE_DB}");
    let pending_line = logs::wait_for(&["alert pending", &db_field, rule], limit).await;
    let firing_line = logs::wait_for(&["alert firing", &db_field, rule], limit).await;
    assert!(pending_line.contains("INFO"), "{pending_line}");
    assert!(firing_line.contains("WARN"), "{firing_line}");
    assert!(firing_line.contains("value=0.84"), "{firing_line}");

    release(&holders).await;
    let resolved = wait_alert(&admin, rule, FIRE_DB, limit, state_is("resolved")).await;
    assert_eq!(cell(&resolved, "value"), Some("0"));
    assert!(since(&resolved) >= since(&firing_row));
    scrape_until(addr, limit, "the alert to resolve", |p| {
        sample(p, &firing) == Some(0.0)
            && sample(
                p,
                &alert_series("pgsluice_alert_state", rule, FIRE_DB, ",state=\"resolved\""),
            ) == Some(1.0)
    })
    .await;
    webhook::wait_for_post(&bodies, rule, FIRE_DB, "resolved").await;
    let resolved_line = logs::wait_for(&["alert resolved", &db_field, rule], limit).await;
    assert!(resolved_line.contains("INFO"), "{resolved_line}");
    // One line per transition, in order.
    let lines = logs::matching(&[&db_field, rule]);
    let kinds: Vec<&str> = lines
        .iter()
        .filter_map(|l| {
            ["alert pending", "alert firing", "alert resolved"]
                .into_iter()
                .find(|k| l.contains(k))
        })
        .collect();
    assert_eq!(
        kinds,
        ["alert pending", "alert firing", "alert resolved"],
        "{lines:#?}"
    );
    let page = scrape(addr).await;
    assert!(sample(&page, "pgsluice_alert_webhook_sent_total").unwrap() >= 2.0);
    assert_eq!(
        sample(&page, "pgsluice_alert_webhook_dropped_total"),
        Some(0.0)
    );
    pooler.stop().await;
}

/// Hold 19 of 25 servers (76 %) for several times the 1 s `for`: nothing goes pending or fires,
/// nothing is posted or logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_threshold_nothing_fires() {
    logs::capture();
    let pg = PgCluster::shared();
    let db = pg.create_database("alertcalm");
    let (hook_port, bodies) = webhook::recording().await;
    let pooler = Pooler::start(
        &db_line(CALM_DB, &db, "pool_size=25"),
        &settings(&format!(
            "alert_pool_utilization = 0.8\nalert_pool_utilization_for = 1\n\
             alert_webhook_url = http://127.0.0.1:{hook_port}/api/v2/alerts"
        )),
        &users(),
    );
    let addr = metrics_addr(&pooler);
    let admin = console(&pooler).await;
    let rule = "pool_utilization";
    let holders = hold(&pooler, CALM_DB, 19).await;
    // The evaluator has seen all 19.
    wait_alert(&admin, rule, CALM_DB, Duration::from_secs(30), |r| {
        cell(r, "value") == Some("0.76")
    })
    .await;
    let firing = alert_series("pgsluice_alert_firing", rule, CALM_DB, "");
    let pending = alert_series("pgsluice_alert_state", rule, CALM_DB, ",state=\"pending\"");
    // 4 s: four times the hold, about 16 evaluations.
    for _ in 0..20 {
        for row in show(&admin, "SHOW ALERTS").await {
            if cell(&row, "database") == Some(CALM_DB) {
                assert_eq!(cell(&row, "state"), Some("ok"), "{row:?}");
            }
        }
        let page = scrape(addr).await;
        assert_eq!(sample(&page, &firing), Some(0.0));
        assert_eq!(sample(&page, &pending), Some(0.0));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = alert_row(&admin, rule, CALM_DB).await.unwrap();
    assert_eq!(cell(&row, "value"), Some("0.76"));
    assert!(
        bodies.lock().unwrap().is_empty(),
        "{:?}",
        bodies.lock().unwrap()
    );
    let page = scrape(addr).await;
    assert_eq!(
        sample(&page, "pgsluice_alert_webhook_sent_total"),
        Some(0.0)
    );
    let lines = logs::matching(&[&format!("database={CALM_DB}")]);
    assert!(lines.is_empty(), "{lines:#?}");
    release(&holders).await;
    pooler.stop().await;
}

#[test]
#[ignore = "needs promtool (scripts/test.sh unpacks it and runs this)"]
fn prometheus_rules_file_is_valid_needs_promtool() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus-alerts.yml");
    let out = required(
        "promtool (Debian package prometheus)",
        std::process::Command::new("promtool")
            .args(["check", "rules", path])
            .output()
            .map_err(|e| format!("cannot run promtool: {e}")),
    );
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
