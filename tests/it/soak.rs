//! The 60-second soak (the long one is `scripts/soak.sh`): pgbench loads in every protocol mode
//! plus connect churn through pgsluice run as its own process, with faults injected — backends
//! killed with pg_terminate_backend, one PostgreSQL restart. Asserts no hung client (every
//! pgbench round ends within its duration plus a margin), the pool serves a clean round at the
//! end, and pgsluice's fd count and RSS (from /proc) do not grow beyond a generous bound.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::files::userlist;
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw::{PoolerProcess, fd_count, proc_status_kb};
use crate::harness::tools::{PgbenchRun, pgbench_async, pgbench_init};

const USER: &str = "md5_user";
const SOAK: Duration = Duration::from_secs(45);
const ROUND_SECONDS: &str = "4";

/// Error kinds from pgbench's stderr, by the text that identifies them.
fn classify(text: &str, kinds: &mut BTreeMap<&'static str, u64>) {
    for line in text.lines() {
        let kind = if line.contains("server conn crashed") {
            "server conn crashed (08P01)"
        } else if line.contains("terminating connection") {
            "terminated by administrator (57P01)"
        } else if line.contains("server_login_retry") {
            "server down (08P01 server_login_retry)"
        } else if line.contains("query_wait_timeout") {
            "query_wait_timeout"
        } else if line.contains("shutting down") || line.contains("57P03") {
            "server starting/shutting down"
        } else if line.contains("Run was aborted") {
            continue;
        } else if line.contains("aborted") || line.contains("error") || line.contains("failed") {
            "other"
        } else {
            continue;
        };
        *kinds.entry(kind).or_default() += 1;
    }
}

async fn round(port: u16, mode: &str, clients: &str, churn: bool) -> PgbenchRun {
    let port = port.to_string();
    let mut args = vec![
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        USER,
        "-n",
        "-M",
        mode,
        "-c",
        clients,
        // One thread per client: pgbench's blocking PQprepare (see prepared.rs).
        "-j",
        clients,
        "-T",
        ROUND_SECONDS,
        "-S",
    ];
    if churn {
        args.push("-C");
    }
    args.push("soak");
    let pw = password(USER);
    pgbench_async(&args, &[("PGPASSWORD", &pw)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    clippy::print_stderr,
    reason = "one scenario; the figures go to stderr for docs/reliability.md"
)]
async fn soak_60s_with_faults() {
    let pg = Arc::new(PgCluster::start());
    pg.superuser_exec("postgres", &[&format!("CREATE DATABASE soak OWNER {USER}")]);
    let init = pgbench_init(pg.host(), pg.port(), USER, "soak", Some(&password(USER)), 1);
    assert!(init.status.success(), "{init:?}");
    let pooler = PoolerProcess::start(
        &format!("soak = host={} port={} dbname=soak\n", pg.host(), pg.port()),
        "pool_mode = transaction\nauth_type = md5\ndefault_pool_size = 6\nmax_client_conn = 200\n\
         max_prepared_statements = 100\nserver_login_retry = 1\nquery_wait_timeout = 20",
        &userlist(&[(USER, &password(USER))]),
    );
    let pid = pooler.pid();
    // Warm-up round, then the baseline.
    let warm = round(pooler.port, "simple", "4", false).await;
    assert!(warm.success(), "{}", warm.text());
    let (fd_before, rss_before) = (fd_count(pid), proc_status_kb(pid, "VmRSS"));

    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = [
        ("simple", "4", false),
        ("extended", "2", false),
        ("prepared", "2", false),
        ("simple", "2", true),
    ]
    .into_iter()
    .map(|(mode, clients, churn)| {
        let stop = Arc::clone(&stop);
        let port = pooler.port;
        tokio::spawn(async move {
            let (mut tx, mut failed_rounds) = (0u64, 0u64);
            let mut kinds = BTreeMap::new();
            for _ in 0..100 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                // No hung client: a 4 s round ends well within 40 s.
                let run = tokio::time::timeout(
                    Duration::from_secs(40),
                    round(port, mode, clients, churn),
                )
                .await
                .expect("a pgbench round hung");
                tx += run.processed.unwrap_or(0);
                if !run.success() || run.failed.unwrap_or(0) > 0 {
                    failed_rounds += 1;
                }
                classify(&String::from_utf8_lossy(&run.output.stderr), &mut kinds);
            }
            (tx, failed_rounds, kinds)
        })
    })
    .collect();

    // Faults: a backend killed every ~5 s, one restart in the middle.
    let superuser_sql = "select count(pg_terminate_backend(pid)) from \
         (select pid from pg_stat_activity where datname = 'soak' and usename = 'md5_user' \
         order by random() limit 1) victims";
    let started = Instant::now();
    let mut restarted = false;
    let mut kills = 0;
    while started.elapsed() < SOAK {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let p = Arc::clone(&pg);
        if !restarted && started.elapsed() > SOAK / 2 {
            tokio::task::spawn_blocking(move || p.restart())
                .await
                .unwrap();
            restarted = true;
        } else {
            tokio::task::spawn_blocking(move || p.superuser_exec("soak", &[superuser_sql]))
                .await
                .unwrap();
            kills += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (mut tx, mut failed_rounds) = (0, 0);
    let mut kinds = BTreeMap::new();
    for load in loads {
        let (t, f, k) = tokio::time::timeout(Duration::from_secs(60), load)
            .await
            .expect("load finished")
            .unwrap();
        tx += t;
        failed_rounds += f;
        for (kind, n) in k {
            *kinds.entry(kind).or_insert(0) += n;
        }
    }
    // The pool serves a clean round after all of that.
    let last = round(pooler.port, "prepared", "4", false).await;
    assert!(last.success() && last.failed == Some(0), "{}", last.text());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (fd_after, rss_after) = (fd_count(pid), proc_status_kb(pid, "VmRSS"));
    eprintln!(
        "soak: {tx} transactions, {failed_rounds} rounds with errors, {kills} backends killed, \
         1 restart; errors by kind: {kinds:?}; fds {fd_before} -> {fd_after}; \
         RSS {rss_before} kB -> {rss_after} kB"
    );
    assert!(tx > 1000, "too little work done: {tx}");
    // Servers: at most default_pool_size (+ a few in flight); clients are all gone.
    assert!(
        fd_after <= fd_before + 12,
        "fd leak: {fd_before} -> {fd_after}"
    );
    assert!(
        rss_after <= rss_before + 64 * 1024,
        "RSS grew: {rss_before} kB -> {rss_after} kB"
    );
}
