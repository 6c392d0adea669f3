//! Criterion micro-benchmark of the pool's checkout/checkin path under contention.
//!
//! A pool of 25 real, logged-in PostgreSQL connections (a throwaway cluster started by the
//! integration-test harness); 1, 25, 50 or 500 tasks on a 2-worker multi-thread runtime each take a
//! server and give it back idle, as a transaction-mode client does around every transaction. No
//! bytes go to the servers: this measures the pool itself: the lock, the idle list, the FIFO wait
//! queue, the direct hand-off of a released server to the first waiter, and the wake-ups. With
//! more tasks than servers, most checkouts wait in the queue.
//!
//! Run: `cargo bench --bench pool` (needs PostgreSQL 15 binaries, as the tests do; as root the
//! cluster runs as the `postgres` user). Throughput is in checkouts per second.

#![allow(
    missing_docs,
    reason = "criterion_group! generates undocumented public items"
)]
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "benchmark set-up: a failure is a bug in the bench itself"
)]

// The integration tests' throwaway-cluster harness; `postgres` and `tools` refer to each other
// as `super::`, so both sit at the crate root here as they sit side by side in the harness.
#[allow(
    dead_code,
    reason = "the harness is shared with the tests; the bench uses a part"
)]
#[path = "../tests/it/harness/postgres.rs"]
mod postgres;
#[allow(
    dead_code,
    reason = "the harness is shared with the tests; the bench uses a part"
)]
#[path = "../tests/it/harness/tools.rs"]
mod tools;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pgsluice::config::{Config, DatabaseDef, PoolMode};
use pgsluice::pool::{Pool, Registry, ServerState};

const POOL_SIZE: usize = 25;

fn pool(runtime: &tokio::runtime::Runtime) -> Arc<Pool> {
    let cluster = postgres::PgCluster::shared();
    let mut config = Config::default();
    config.general.default_pool_size = u32::try_from(POOL_SIZE).unwrap();
    config.databases.push(DatabaseDef {
        name: "bench".into(),
        host: Some(cluster.host().into()),
        port: cluster.port(),
        dbname: Some("postgres".into()),
        user: Some("trust_user".into()),
        ..Default::default()
    });
    let registry = Registry::new(Arc::new(config));
    let db = registry.database("bench").expect("database bench");
    let pool = registry.pool_for(&db, "trust_user");
    // Open every server before measuring: take POOL_SIZE at once, then give them all back.
    runtime.block_on(async {
        let mut held = Vec::new();
        for _ in 0..POOL_SIZE {
            held.push(pool.checkout().await.expect("server login"));
        }
        for server in held {
            server.release(ServerState::Idle, PoolMode::Transaction);
        }
    });
    pool
}

/// `tasks` tasks sharing `rounds` checkouts; returns the wall time.
async fn cycle(pool: &Arc<Pool>, tasks: usize, rounds: u64) -> Duration {
    let per_task = rounds.div_ceil(tasks as u64);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = Arc::clone(pool);
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let server = pool.checkout().await.expect("checkout");
                    server.release(ServerState::Idle, PoolMode::Transaction);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("task");
    }
    start.elapsed()
}

fn bench_checkout(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pool = pool(&runtime);
    let mut group = c.benchmark_group("pool");
    group.throughput(Throughput::Elements(1));
    for tasks in [1, POOL_SIZE, 2 * POOL_SIZE, 20 * POOL_SIZE] {
        group.bench_function(BenchmarkId::new("checkout_checkin_tasks", tasks), |b| {
            b.iter_custom(|rounds| runtime.block_on(cycle(&pool, tasks, rounds)));
        });
    }
    group.finish();
}

fn config() -> Criterion {
    // Short runs: the machines are small and shared.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_checkout
}
criterion_main!(benches);
