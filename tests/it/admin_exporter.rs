//! Debian's `prometheus-pgbouncer-exporter` (the `apt` package, a Python exporter from the
//! PgBouncer 1.7 era that reads `total_requests` and `reserve_pool`) scraping pgsluice with
//! `admin_compat_version = 1.7`: it must scrape without errors and report the pool numbers of a
//! known load. Skipped, with a message, where the package is not installed.
//!
//! This exporter cannot scrape any PgBouncer from 1.8 on (1.8 removed `total_requests`), the
//! version Debian ships included; emulating 1.7 is what lets it keep working.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line, eventually, free_port};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::tools::required;

const EXPORTER: &str = "/usr/bin/prometheus-pgbouncer-exporter";

struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        // Our own child, by PID.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET /metrics over plain HTTP/1.0; `None` until the exporter answers 200.
fn scrape(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| body.to_owned())
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus-pgbouncer-exporter (scripts/test.sh installs and runs it)"]
async fn debian_exporter_scrapes_the_console_needs_exporter() {
    required(
        "the Debian package prometheus-pgbouncer-exporter",
        if Path::new(EXPORTER).exists() {
            Ok(())
        } else {
            Err(format!("no {EXPORTER}"))
        },
    );
    let db = PgCluster::shared().create_database("admexp");
    let pooler = Pooler::start(
        &db_line("app", &db, "pool_size=1"),
        "pool_mode = transaction\nauth_type = md5\nadmin_users = admin\n\n[pgsluice]\nadmin_compat_version = 1.7",
        &userlist(&[("md5_user", &password("md5_user")), ("admin", "admin_pw")]),
    );
    let pw = password("md5_user");
    let holder = pooler.connect("md5_user", &pw, "app").await.unwrap();
    holder.batch_execute("begin; select 1").await.unwrap();
    let waiter = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let waiting = tokio::spawn(async move { waiter.simple_query("select 2").await.map(drop) });
    let http = free_port();
    let child = Command::new(EXPORTER)
        .args(["--host", "127.0.0.1", "--port", &http.to_string()])
        .args(["--pgbouncer-host", "127.0.0.1", "--pgbouncer-user", "admin"])
        .args(["--pgbouncer-port", &pooler.port.to_string()])
        .env("PGPASSWORD", "admin_pw")
        .env_remove("CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut exporter = Exporter(child);
    let mut metrics = None;
    // Up to about a minute: the exporter is a Python program, and its start-up takes over 10 s
    // when the rest of the suite (JVM, pgbench with 100 clients) loads both cores.
    for _ in 0..600 {
        if let Some(m) = tokio::task::spawn_blocking(move || scrape(http))
            .await
            .unwrap()
        {
            metrics = Some(m);
            break;
        }
        if let Ok(Some(status)) = exporter.0.try_wait() {
            let mut err = String::new();
            let _ = exporter.0.stderr.take().unwrap().read_to_string(&mut err);
            panic!("exporter exited with {status}:\n{err}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = metrics.expect("the exporter serves /metrics");
    let pool = "{database=\"app\",user=\"md5_user\"}";
    assert_eq!(
        sample(&metrics, &format!("pgbouncer_waiting_clients{pool}")),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, &format!("pgbouncer_active_clients{pool}")),
        Some(1.0)
    );
    assert!(
        sample(&metrics, "pgbouncer_requests_total{database=\"app\"}").is_some_and(|v| v >= 1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("pgbouncer_pool_size{{database=\"{db}\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "pgbouncer_used_servers"), Some(1.0));
    assert!(sample(&metrics, "pgbouncer_used_clients").is_some_and(|v| v >= 3.0));
    holder.batch_execute("commit").await.unwrap();
    waiting.await.unwrap().unwrap();
    // The next scrape sees the queue drained.
    let drained = eventually(10, || async move {
        let m = tokio::task::spawn_blocking(move || scrape(http))
            .await
            .unwrap();
        m.and_then(|m| sample(&m, &format!("pgbouncer_waiting_clients{pool}"))) == Some(0.0)
    })
    .await;
    assert!(drained, "waiting clients back to 0");
    drop(exporter);
    pooler.stop().await;
}
