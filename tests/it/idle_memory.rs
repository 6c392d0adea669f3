//! Memory per idle client: pgsluice run as its own process holds 1,500 logged-in idle clients,
//! and its RSS (from /proc) may grow by at most [`BOUND_BYTES`] per client. The CI-sized form of
//! `benches/idle_clients.py` (10,000 clients, docs/benchmarks.md); a memory bound, not a timing.

use crate::harness::files::userlist;
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw::{PoolerProcess, login, proc_status_kb};

const USER: &str = "md5_user";
const CLIENTS: usize = 1_500;
/// Logins in flight at once.
const BATCH: usize = 50;
/// The bound on RSS growth per idle client, in bytes. Measured on 2026-12-02: 3,323-3,435 B per
/// client with this test's debug build; 3,471 B with a release build holding 10,000 clients in
/// `benches/compare.sh` (4,087 B before parameter sets and `ConnInfo` strings were shared);
/// PgBouncer 1.18 holds 823 B. About 14 % of margin for allocator noise;
/// lower the bound when the per-client cost drops (docs/performance.md, "Idle memory").
const BOUND_BYTES: u64 = 3_900;

/// The soft limit on open files of this process (the pooler inherits it).
fn nofile_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(0)
}

async fn log_in_many(port: u16, count: usize, held: &mut Vec<tokio::net::TcpStream>) {
    let secret = password(USER);
    let mut left = count;
    while left > 0 {
        let n = left.min(BATCH);
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..n {
            let secret = secret.clone();
            batch.spawn(async move { login(port, USER, &secret, "idle_memory").await.0 });
        }
        while let Some(stream) = batch.join_next().await {
            held.push(stream.expect("login task"));
        }
        left -= n;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_logged_in_client_costs_less_than_the_bound() {
    // Both ends of every connection live on this machine: the test's sockets and the pooler's.
    let needed = u64::try_from(2 * CLIENTS + 300).unwrap();
    let limit = nofile_limit();
    assert!(
        limit >= needed,
        "ulimit -n is {limit}; this test needs {needed} open files (raise it to run it)"
    );
    let pg = PgCluster::shared();
    let db = pg.create_database("idle_memory");
    let pooler = PoolerProcess::start(
        &format!(
            "idle_memory = host={} port={} dbname={db}\n",
            pg.host(),
            pg.port()
        ),
        &format!(
            "pool_mode = transaction\nauth_type = md5\ndefault_pool_size = 2\n\
             max_client_conn = {}\nlog_connections = 0\nlog_disconnections = 0",
            CLIENTS + 200
        ),
        &userlist(&[(USER, &password(USER))]),
    );
    let pid = pooler.pid();
    let mut held = Vec::with_capacity(CLIENTS + BATCH);
    // Warm-up: the first logins fill the pool, the allocator's arenas and the runtime's tables;
    // they stay connected so that only the clients after the baseline are counted.
    log_in_many(pooler.port, BATCH, &mut held).await;
    let before = proc_status_kb(pid, "VmRSS");
    log_in_many(pooler.port, CLIENTS, &mut held).await;
    // Every login above got its ReadyForQuery: each client is registered and idle.
    let after = proc_status_kb(pid, "VmRSS");
    assert_eq!(held.len(), CLIENTS + BATCH);
    assert!(before > 0 && after > 0, "no VmRSS for pid {pid}");
    let per_client = after.saturating_sub(before) * 1024 / u64::try_from(CLIENTS).unwrap();
    assert!(
        per_client <= BOUND_BYTES,
        "an idle client costs {per_client} bytes of RSS (bound {BOUND_BYTES}): \
         VmRSS {before} kB -> {after} kB for {CLIENTS} clients"
    );
    drop(held);
}
