//! The driver matrix for prepared statements in transaction mode: real drivers in other languages
//! (programs in `tests/clients/`) and pgbench, each with many concurrent connections through a
//! pool of two servers, so that every client's statements meet servers that never saw them.
//!
//! Each client program checks every result itself and exits non-zero on any mismatch; the tests
//! check its exit status, its `OK` line and the pooler's counters. The drivers are installed by
//! `tests/clients/install.sh` (scripts/test.sh runs it) under `target/`. A driver's test is
//! `*_needs_DRIVER` and `#[ignore]`d, so a plain `cargo test` reports it as ignored with its reason;
//! scripts/test.sh runs each one whose driver it installed (with `CI=true`, every one: a missing
//! driver then fails the test).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::files::{TempDir, userlist};
use crate::harness::pooler::{Pooler, db_line};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::tools::{
    clear_libpq_env, pgbench_async, pgbench_init, required, run_with_timeout,
};

/// Concurrent connections per client program (the pool has two servers).
const CLIENTS: usize = 20;
/// Rounds of each client's query loop; above pgJDBC's default prepareThreshold of 5.
const ROUNDS: usize = 12;
/// How long one client program may run (it takes seconds; this only bounds a hang).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);
const USER: &str = "md5_user";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where tests/clients/install.sh put the drivers (it follows `CARGO_TARGET_DIR` the same way).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

fn clients_dir() -> PathBuf {
    root().join("tests/clients")
}

/// A transaction-mode pooler with two servers in front of a fresh database.
fn start_pooler(db_prefix: &str) -> (Pooler, String) {
    let db = PgCluster::shared().create_database(db_prefix);
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\ndefault_pool_size = 2\nmax_client_conn = 500\n\
         ignore_startup_parameters = extra_float_digits",
        &userlist(&[(USER, &password(USER))]),
    );
    (pooler, db)
}

/// The usual arguments of every client program: HOST PORT USER PASSWORD DBNAME CLIENTS ROUNDS.
fn client_args(pooler: &Pooler) -> Vec<String> {
    vec![
        "127.0.0.1".to_owned(),
        pooler.port.to_string(),
        USER.to_owned(),
        password(USER),
        "app".to_owned(),
        CLIENTS.to_string(),
        ROUNDS.to_string(),
    ]
}

/// Runs `cmd` on a blocking thread (the pooler runs on this test's runtime), bounded in time.
async fn run(mut cmd: Command) -> Output {
    clear_libpq_env(&mut cmd);
    tokio::task::spawn_blocking(move || {
        run_with_timeout(cmd, CLIENT_TIMEOUT).unwrap_or_else(|t| panic!("{t}"))
    })
    .await
    .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn pool_stats(pooler: &Pooler) -> pgsluice::stats::StatsSnapshot {
    pooler
        .app()
        .registry()
        .pools()
        .iter()
        .map(|p| p.stats.snapshot())
        .fold(pgsluice::stats::StatsSnapshot::default(), |a, b| a + b)
}

#[allow(clippy::print_stderr, reason = "shows which driver version ran")]
fn report(stdout: &str) {
    for line in stdout.lines().filter(|l| l.starts_with("OK ")) {
        eprintln!("{line}");
    }
}

/// The program succeeded, said `OK`, and its statements went through the pooler's tracking.
fn assert_clean_run(driver: &str, output: &Output, pooler: &Pooler) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.lines().any(|l| l.starts_with("OK ")),
        "{driver}: {}",
        text(output)
    );
    report(&stdout);
    let stats = pool_stats(pooler);
    // Every client prepared named statements, and they were bound on shared servers.
    assert!(
        stats.client_parse_count >= CLIENTS as u64,
        "{driver}: {stats:?}"
    );
    assert!(
        stats.bind_count >= (CLIENTS * ROUNDS) as u64,
        "{driver}: {stats:?}"
    );
    // Two servers: each statement text is prepared on each server a few times at most, far
    // fewer Parses than the clients sent.
    assert!(
        stats.server_parse_count < stats.client_parse_count,
        "{driver}: {stats:?}"
    );
}

fn venv_python() -> Option<PathBuf> {
    let python = target_dir().join("clients-venv/bin/python");
    python.is_file().then_some(python)
}

/// The venv's python if it can import `module`.
async fn python_with(module: &str) -> Result<PathBuf, String> {
    let python = venv_python().ok_or("no Python venv at target/clients-venv")?;
    let mut cmd = Command::new(&python);
    cmd.args(["-c", &format!("import {module}")]);
    let out = run(cmd).await;
    if out.status.success() {
        Ok(python)
    } else {
        Err(format!("{module} is not importable in target/clients-venv"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs asyncpg (tests/clients/install.sh installs it; scripts/test.sh runs this)"]
async fn asyncpg_default_statement_cache_needs_asyncpg() {
    let python = required("asyncpg", python_with("asyncpg").await);
    let (pooler, _db) = start_pooler("drv_asyncpg");
    let mut cmd = Command::new(python);
    cmd.arg(clients_dir().join("asyncpg_client.py"))
        .args(client_args(&pooler));
    let output = run(cmd).await;
    assert_clean_run("asyncpg", &output, &pooler);
}

/// psycopg's binary wheel brings its own libpq (17 or later: it closes evicted statements with
/// a protocol Close); its pure-Python implementation uses the system's libpq, and before 17
/// psycopg evicts with SQL `DEALLOCATE name` instead. Both are run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs psycopg 3 (tests/clients/install.sh installs it; scripts/test.sh runs this)"]
async fn psycopg3_prepare_threshold_0_and_pipeline_needs_psycopg() {
    let python = required("psycopg 3", python_with("psycopg").await);
    for implementation in ["binary", "python"] {
        let mut probe = Command::new(&python);
        probe
            .env("PSYCOPG_IMPL", implementation)
            .args(["-c", "import psycopg; print(psycopg.pq.version())"]);
        let loaded = run(probe).await;
        required(
            &format!("psycopg's {implementation} implementation"),
            if loaded.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "not loadable (the python one needs the system's libpq): {}",
                    String::from_utf8_lossy(&loaded.stderr)
                ))
            },
        );
        let (pooler, _db) = start_pooler("drv_psycopg");
        let mut cmd = Command::new(&python);
        cmd.env("PSYCOPG_IMPL", implementation)
            .arg(clients_dir().join("psycopg_client.py"))
            .args(client_args(&pooler));
        let output = run(cmd).await;
        assert_clean_run(&format!("psycopg {implementation}"), &output, &pooler);
        pooler.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and node-postgres (tests/clients/install.sh; scripts/test.sh runs this)"]
async fn node_postgres_named_queries_needs_node_pg() {
    let modules = target_dir().join("clients-node/node_modules");
    required(
        "node-postgres",
        if !modules.join("pg/package.json").is_file() {
            Err("no pg package in target/clients-node".to_owned())
        } else if Command::new("node").arg("--version").output().is_err() {
            Err("node not found".to_owned())
        } else {
            Ok(())
        },
    );
    let (pooler, _db) = start_pooler("drv_node");
    let mut cmd = Command::new("node");
    cmd.env("NODE_PATH", &modules)
        .arg(clients_dir().join("node_pg_client.js"))
        .args(client_args(&pooler));
    let output = run(cmd).await;
    assert_clean_run("node-postgres", &output, &pooler);
}

/// tokio-postgres pipelines the queries of one connection that are in flight at once: many
/// Bind/Execute/Sync batches go out before the first reply is read, with statements prepared on
/// one server and run on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_pipelined_prepared_queries() {
    let (pooler, _db) = start_pooler("drv_tokio");
    let pooler = Arc::new(pooler);
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let pooler = Arc::clone(&pooler);
        tasks.push(tokio::spawn(async move {
            let client = Arc::new(pooler.connect(USER, &password(USER), "app").await.unwrap());
            let c = i32::try_from(c).unwrap();
            let add = client.prepare("select $1::int4 + $2::int4").await.unwrap();
            let tag = client.prepare("select $1::text || '!'").await.unwrap();
            for round in 0..3i32 {
                // 20 queries of one connection in flight at once.
                let mut in_flight = Vec::new();
                for n in 0..10i32 {
                    let (client, add, tag) = (Arc::clone(&client), add.clone(), tag.clone());
                    in_flight.push(tokio::spawn(async move {
                        let k = round * 10 + n;
                        let text = format!("{c}-{n}");
                        let sum_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&c, &k];
                        let echo_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&text];
                        let (sum, echo) = tokio::join!(
                            client.query_one(&add, &sum_params),
                            client.query_one(&tag, &echo_params)
                        );
                        assert_eq!(sum.unwrap().get::<_, i32>(0), c + round * 10 + n);
                        assert_eq!(echo.unwrap().get::<_, String>(0), format!("{c}-{n}!"));
                    }));
                }
                for query in in_flight {
                    query.await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = pool_stats(&pooler);
    assert!(stats.bind_count >= (CLIENTS * 60) as u64, "{stats:?}");
    assert!(
        stats.server_parse_count < stats.client_parse_count,
        "{stats:?}"
    );
}

/// Debian's pgJDBC jar (libpostgresql-jdbc-java).
fn pgjdbc_jar() -> Option<PathBuf> {
    let jar = PathBuf::from("/usr/share/java/postgresql.jar");
    jar.is_file().then_some(jar)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a JDK and pgJDBC (tests/clients/install.sh; scripts/test.sh runs this)"]
async fn pgjdbc_default_threshold_and_threshold_1_needs_pgjdbc() {
    let jar = required(
        "pgJDBC",
        pgjdbc_jar().ok_or_else(|| "no /usr/share/java/postgresql.jar".to_owned()),
    );
    required(
        "javac",
        Command::new("javac")
            .arg("-version")
            .output()
            .map_err(|e| format!("javac not found: {e}")),
    );
    let classes = TempDir::new("pgsluice-jdbc");
    let mut javac = Command::new("javac");
    javac
        .arg("-cp")
        .arg(&jar)
        .arg("-d")
        .arg(classes.path())
        .arg(clients_dir().join("PgjdbcClient.java"));
    let compiled = run(javac).await;
    assert!(compiled.status.success(), "javac: {}", text(&compiled));
    let classpath = format!("{}:{}", jar.display(), classes.path().display());
    for threshold in ["default", "1"] {
        let (pooler, _db) = start_pooler("drv_jdbc");
        let mut cmd = Command::new("java");
        cmd.args(["-cp", &classpath, "PgjdbcClient"])
            .args(client_args(&pooler))
            .arg(threshold);
        let output = run(cmd).await;
        assert_clean_run(
            &format!("pgJDBC prepareThreshold={threshold}"),
            &output,
            &pooler,
        );
        pooler.stop().await;
    }
}

/// pgbench's default (TPC-B-like) script, prepared and extended, 100 clients through two
/// servers. `-j` equals `-c`: pgbench prepares with a blocking PQprepare, so a thread driving
/// several clients could deadlock itself against a pool smaller than its client count
/// (docs/prepared-statements.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_prepared_and_extended_100_clients() {
    let pg = PgCluster::shared();
    let (pooler, db) = start_pooler("drv_pgbench");
    let pw = password(USER);
    let init = pgbench_init(pg.host(), pg.port(), USER, &db, Some(&pw), 1);
    assert!(init.status.success(), "pgbench -i: {}", text(&init));
    let port = pooler.port.to_string();
    for mode in ["prepared", "extended"] {
        let run = pgbench_async(
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                USER,
                "-n",
                "-c",
                "100",
                "-j",
                "100",
                "-t",
                "10",
                "-M",
                mode,
                "app",
            ],
            &[("PGPASSWORD", &pw)],
        )
        .await;
        assert!(run.success(), "{mode}: {}", run.text());
        assert_eq!(run.processed, Some(1000), "{mode}: {}", run.text());
        assert_eq!(run.failed.unwrap_or(0), 0, "{mode}: {}", run.text());
    }
    let stats = pool_stats(&pooler);
    // -M prepared: 100 clients each prepare the script's commands; two servers prepare each
    // text a few times at most.
    assert!(stats.client_parse_count >= 100, "{stats:?}");
    assert!(stats.server_parse_count <= 40, "{stats:?}");
}
