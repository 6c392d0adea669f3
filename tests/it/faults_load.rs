//! Faults under load (issue #15.6): while client load and pgbench run through the real pgsluice
//! binary, PostgreSQL is restarted (`-m fast`, `-m immediate`), its backends are killed with
//! `pg_terminate_backend`, it is frozen with SIGSTOP for longer than `query_timeout` and
//! `server_connect_timeout`, or pgsluice is held at its fd limit. After each fault, every test
//! checks the same things (`Run::finish`):
//! - no panic in pgsluice's stderr, and the process is still running;
//! - no hung pool: a new client's query succeeds by itself, within a bound; no load call hung;
//! - no server handed on dirty: every transaction-mode result carries its own client's marker,
//!   and session-mode clients (pool `sess`) never find another client's `SET`, SQL `PREPARE` or
//!   temp table (each one leaves all three behind when it disconnects);
//! - clients got PostgreSQL-style errors: every failure has one of the SQLSTATEs the test allows;
//! - throughput comes back: the load makes progress again and a fresh pgbench run succeeds;
//! - nothing lost: every insert whose COMMIT was acknowledged is in the table.
//!
//! Each test prints what the clients saw (`-- --nocapture`), the figures of docs/reliability.md.
#![allow(
    clippy::print_stderr,
    reason = "the figures go to stderr for docs/reliability.md"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::harness::files::{TempDir, userlist};
use crate::harness::pooler::{eventually, first_value, free_port};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::tools::{pgbench_async, pgbench_init, signal};
use nix::sys::signal::Signal;

const USER: &str = "md5_user";
/// Transaction-mode load clients (pool `app`).
const TX_WORKERS: i32 = 6;
/// Session-mode clients checking for another client's session state (pool `sess`).
const SESSION_WORKERS: i32 = 2;
/// Bound on one load call (connect plus query); longer counts as hung.
const CALL_BOUND: Duration = Duration::from_secs(20);

/// pgsluice as its own process, its stderr kept in its config dir.
struct Proc {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Proc {
    /// `nofile`: the process's fd limit (soft and hard, set by `ulimit -n` before `exec`).
    fn start(pg: &PgCluster, settings: &str, nofile: Option<u32>) -> Proc {
        let dir = TempDir::new("faults-load");
        let port = free_port();
        let auth = dir.write("userlist.txt", &userlist(&[(USER, &password(USER))]));
        let server = format!("host={} port={} dbname=bench", pg.host(), pg.port());
        let ini = dir.write(
            "pgbouncer.ini",
            &format!(
                "[databases]\napp = {server}\nsess = {server} pool_mode=session\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = md5\nauth_file = {}\npool_mode = transaction\ndefault_pool_size = 4\n\
                 server_login_retry = 1\n{settings}\n",
                auth.display()
            ),
        );
        let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(match nofile {
                Some(n) => format!("ulimit -n {n} && exec \"$0\" \"$@\""),
                None => "exec \"$0\" \"$@\"".to_owned(),
            })
            .arg(env!("CARGO_BIN_EXE_pgsluice"))
            .arg("-q")
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let mut child = cmd.spawn().expect("pgsluice starts");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Proc { child, port, dir };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("pgsluice did not listen on {port}");
    }

    fn conn(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={USER} password={} dbname={db} connect_timeout=10",
            self.port,
            password(USER)
        )
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the load saw.
#[derive(Default)]
struct Seen {
    ok: AtomicUsize,
    /// Successful calls of the transaction-mode clients alone.
    tx_ok: AtomicUsize,
    hung: AtomicUsize,
    /// What each hung call was doing.
    hung_what: Mutex<Vec<String>>,
    /// Results or session state that belonged to another client.
    foreign: Mutex<Vec<String>>,
    /// Failures by SQLSTATE (or `no sqlstate: <error>`).
    errors: Mutex<BTreeMap<String, usize>>,
    /// `SQLSTATE message` of every failure.
    messages: Mutex<BTreeSet<String>>,
    /// `(worker, seq)` of every insert whose COMMIT succeeded.
    acked: Mutex<Vec<(i32, i32)>>,
}

impl Seen {
    fn error(&self, e: &tokio_postgres::Error, closed: &Closed) {
        let ended = closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let message = match (e.as_db_error(), ended) {
            (Some(d), _) => format!("{} {}", d.code().code(), d.message()),
            (None, Some(ended)) if e.is_closed() => format!("{ended} (while idle)"),
            (None, _) => format!("no sqlstate: {e}"),
        };
        let kind = if message.starts_with("no sqlstate") {
            message.clone()
        } else {
            message.split(' ').next().unwrap_or_default().to_owned()
        };
        self.messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(message);
        *self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(kind)
            .or_default() += 1;
    }

    fn foreign(&self, what: String) {
        self.foreign
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(what);
    }

    fn hung(&self, what: String) {
        self.hung.fetch_add(1, Ordering::Relaxed);
        self.hung_what
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(what);
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }
}

/// `SQLSTATE message` of the error that ended a connection, when it was not the answer to a
/// call: an ErrorResponse that arrives while no query is pending (a session client whose server
/// died between two queries) ends tokio-postgres's connection task, and the next call only says
/// "connection closed". The task records it before the connection is dropped.
type Closed = Arc<Mutex<Option<String>>>;

async fn connect(
    conn: &str,
    closed: &Closed,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls).await?;
    let closed = Arc::clone(closed);
    tokio::spawn(async move {
        let end = std::future::poll_fn(|cx| std::pin::Pin::new(&mut connection).poll(cx)).await;
        if let Err(e) = end
            && let Some(db) = e.as_db_error()
        {
            *closed.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(format!("{} {}", db.code().code(), db.message()));
        }
        drop(connection);
    });
    Ok(client)
}

/// One transaction-mode client: `begin; insert; select marker; commit` in a loop, reconnecting
/// after a failure.
async fn tx_worker(conn: String, worker: i32, stop: Arc<AtomicBool>, seen: Arc<Seen>) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut closed = Closed::default();
    for seq in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let marker = i64::from(worker) * 1_000_000 + i64::from(seq);
        let sql = format!(
            "begin; insert into ledger values ({worker}, {seq}); \
             select {marker}, txid_current_if_assigned() is not null; commit"
        );
        let phase = AtomicUsize::new(0);
        let step = tokio::time::timeout(CALL_BOUND, async {
            if client
                .as_ref()
                .is_none_or(tokio_postgres::Client::is_closed)
            {
                closed = Closed::default();
                client = Some(connect(&conn, &closed).await?);
            }
            phase.store(1, Ordering::Relaxed);
            client.as_ref().unwrap().simple_query(&sql).await
        })
        .await;
        match step {
            Ok(Ok(messages)) => {
                let row = messages.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                    _ => None,
                });
                let values = row.map(|r| (r.get(0).map(str::to_owned), r.get(1) == Some("t")));
                if values == Some((Some(marker.to_string()), true)) {
                    seen.acked
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((worker, seq));
                    seen.ok.fetch_add(1, Ordering::Relaxed);
                    seen.tx_ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    seen.foreign(format!("worker {worker} expected {marker}, got {values:?}"));
                }
            }
            Ok(Err(e)) => {
                seen.error(&e, &closed);
                client = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => {
                seen.hung(format!(
                    "tx worker {worker} seq {seq} in {}",
                    ["connect", "query"][phase.load(Ordering::Relaxed)]
                ));
                client = None;
            }
        }
    }
}

/// One session-mode client per iteration: finds no session state, leaves some behind.
async fn session_worker(conn: String, worker: i32, stop: Arc<AtomicBool>, seen: Arc<Seen>) {
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let owner = format!("s{worker}_{i}");
        let closed = Closed::default();
        let phase = AtomicUsize::new(0);
        let step = tokio::time::timeout(CALL_BOUND, async {
            let client = connect(&conn, &closed).await?;
            phase.store(1, Ordering::Relaxed);
            let rows = client
                .simple_query(
                    "select coalesce(current_setting('app.owner', true), ''), \
                     (select count(*) from pg_prepared_statements), \
                     (select count(*) from pg_class where relnamespace = pg_my_temp_schema())",
                )
                .await?;
            phase.store(2, Ordering::Relaxed);
            client
                .batch_execute(&format!(
                    "set app.owner = '{owner}'; prepare leftover as select 1; \
                     create temp table leftover (x int)"
                ))
                .await?;
            Ok::<_, tokio_postgres::Error>(rows)
        })
        .await;
        match step {
            Ok(Ok(messages)) => {
                let row = messages.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some((r.get(0), r.get(1), r.get(2)))
                    }
                    _ => None,
                });
                if row == Some((Some(""), Some("0"), Some("0"))) {
                    seen.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    seen.foreign(format!("session {owner} found state {row:?}"));
                }
            }
            Ok(Err(e)) => {
                seen.error(&e, &closed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => {
                seen.hung(format!(
                    "session {owner} in {}",
                    ["connect", "check", "leave state"][phase.load(Ordering::Relaxed)]
                ));
            }
        }
    }
}

/// A private cluster, pgsluice in front of it, the load running.
struct Run {
    pg: Arc<PgCluster>,
    proc: Proc,
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
    load: Vec<tokio::task::JoinHandle<()>>,
    bench: Option<tokio::task::JoinHandle<crate::harness::tools::PgbenchRun>>,
}

fn bench_args(port: u16, seconds: u32) -> Vec<String> {
    [
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        USER,
        "-n",
        "-S",
        "-c",
        "2",
        "-j",
        "2",
        "-T",
        &seconds.to_string(),
        "app",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

async fn pgbench_through(port: u16, seconds: u32) -> crate::harness::tools::PgbenchRun {
    let args = bench_args(port, seconds);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let pw = password(USER);
    pgbench_async(&refs, &[("PGPASSWORD", &pw)]).await
}

impl Run {
    /// Starts everything and waits until the load is flowing. `settings`: extra `[pgbouncer]`
    /// lines; `bench_seconds`: a pgbench -S run in the background for that long.
    async fn start(settings: &str, nofile: Option<u32>, bench_seconds: u32) -> Run {
        let pg = Arc::new(tokio::task::spawn_blocking(PgCluster::start).await.unwrap());
        let pw = password(USER);
        pg.superuser_exec(
            "postgres",
            &[&format!("create database bench owner {USER}")],
        );
        let out = pgbench_init(pg.host(), pg.port(), USER, "bench", Some(&pw), 1);
        assert!(out.status.success(), "pgbench -i: {out:?}");
        pg.superuser_exec(
            "bench",
            &[&format!(
                "create table ledger (worker int, seq int, primary key (worker, seq)); \
                 alter table ledger owner to {USER}"
            )],
        );
        // The harness cluster runs with synchronous_commit = off, which may lose the last
        // acknowledged commits in a crash (an immediate shutdown is one): not here.
        pg.superuser_exec(
            "postgres",
            &["alter database bench set synchronous_commit = on"],
        );
        let proc = Proc::start(&pg, settings, nofile);
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Seen::default());
        let mut load = Vec::new();
        for w in 0..TX_WORKERS {
            load.push(tokio::spawn(tx_worker(
                proc.conn("app"),
                w,
                Arc::clone(&stop),
                Arc::clone(&seen),
            )));
        }
        for w in 0..SESSION_WORKERS {
            load.push(tokio::spawn(session_worker(
                proc.conn("sess"),
                w,
                Arc::clone(&stop),
                Arc::clone(&seen),
            )));
        }
        let port = proc.port;
        let bench = (bench_seconds > 0)
            .then(|| tokio::spawn(async move { pgbench_through(port, bench_seconds).await }));
        let run = Run {
            pg,
            proc,
            stop,
            seen,
            load,
            bench,
        };
        assert!(
            eventually(20, || async { run.seen.ok() > 30 }).await,
            "the load did not start flowing"
        );
        run
    }

    /// Waits until the load has made `n` more successful calls (throughput is back).
    async fn progress(&self, n: usize, what: &str) {
        let before = self.seen.ok();
        assert!(
            eventually(30, || async { self.seen.ok() >= before + n }).await,
            "no throughput after {what}: {:?}\n{}",
            self.seen
                .errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            self.proc.stderr()
        );
    }

    /// Stops the load and checks what every fault must leave behind; returns the failures by
    /// kind. Every failure must have one of the `allowed` SQLSTATEs.
    async fn finish(mut self, allowed: &[&str]) -> BTreeMap<String, usize> {
        self.progress(30, "the fault").await;
        // A new client is served by itself, within a bound.
        let conn = self.proc.conn("app");
        let fresh = tokio::time::timeout(Duration::from_secs(15), async {
            let c = connect(&conn, &Closed::default()).await?;
            first_value(&c, "select 41 + 1").await
        })
        .await;
        assert!(
            matches!(fresh, Ok(Ok(Some(ref v))) if v == "42"),
            "a new client was not served: {fresh:?}"
        );
        if let Some(bench) = self.bench.take() {
            // It ends (no hang); clients it lost to the fault are reported, not asserted.
            let run = tokio::time::timeout(Duration::from_secs(120), bench)
                .await
                .expect("background pgbench ended")
                .unwrap();
            eprintln!(
                "background pgbench: {:?} transactions, {}",
                run.processed, run.output.status
            );
        }
        let after = pgbench_through(self.proc.port, 2).await;
        assert!(
            after.success() && after.processed.unwrap_or(0) > 0,
            "pgbench after the fault: {}",
            after.text()
        );
        self.stop.store(true, Ordering::Relaxed);
        for h in std::mem::take(&mut self.load) {
            tokio::time::timeout(CALL_BOUND * 2, h)
                .await
                .expect("a load client finished")
                .unwrap();
        }
        let seen = &self.seen;
        assert_eq!(
            seen.hung.load(Ordering::Relaxed),
            0,
            "a load call hung: {:?}\n{}",
            seen.hung_what
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            self.proc.stderr()
        );
        let foreign = seen
            .foreign
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert!(foreign.is_empty(), "another client's state: {foreign:?}");
        let errors = seen
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        eprintln!(
            "load: {} ok, failures by kind: {errors:?}\nmessages: {:?}",
            seen.ok.load(Ordering::Relaxed),
            seen.messages.lock().unwrap_or_else(PoisonError::into_inner)
        );
        for kind in errors.keys() {
            assert!(
                allowed.contains(&kind.as_str()),
                "failure {kind:?} is not one of {allowed:?}: {errors:?}"
            );
        }
        self.nothing_lost().await;
        let log = self.proc.stderr();
        assert!(!log.contains("panicked"), "pgsluice panicked:\n{log}");
        assert!(
            self.proc.child.try_wait().unwrap().is_none(),
            "pgsluice exited:\n{log}"
        );
        errors
    }

    /// Every acknowledged COMMIT's row is in the table (read directly from PostgreSQL).
    async fn nothing_lost(&self) {
        let direct = self.pg.connect(USER, "bench").await.unwrap();
        let rows = direct
            .query("select worker, seq from ledger", &[])
            .await
            .unwrap();
        let stored: BTreeSet<(i32, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let acked = self
            .seen
            .acked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let lost: Vec<_> = acked.iter().filter(|a| !stored.contains(a)).collect();
        assert!(
            lost.is_empty(),
            "{} of {} committed inserts lost: {lost:?}",
            lost.len(),
            acked.len()
        );
        eprintln!(
            "committed inserts acknowledged: {}, rows stored: {}",
            acked.len(),
            stored.len()
        );
    }
}

/// What a client whose server went away may see: the server's FATAL (57P01 admin shutdown or
/// terminate, 57P02 crash of another backend, 57P03 starting up or shutting down), pgsluice's
/// own 08P01 (`server conn crashed?`, `server_login_retry` cached error, `query_wait_timeout`).
const SERVER_GONE: &[&str] = &["57P01", "57P02", "57P03", "08P01"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_fast_under_load() {
    let run = Run::start("query_wait_timeout = 10", None, 6).await;
    let pg = Arc::clone(&run.pg);
    tokio::task::spawn_blocking(move || pg.restart())
        .await
        .unwrap();
    let errors = run.finish(SERVER_GONE).await;
    eprintln!("restart -m fast: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_immediate_under_load() {
    let run = Run::start("query_wait_timeout = 10", None, 6).await;
    let pg = Arc::clone(&run.pg);
    tokio::task::spawn_blocking(move || pg.restart_immediate())
        .await
        .unwrap();
    let errors = run.finish(SERVER_GONE).await;
    eprintln!("restart -m immediate: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_under_load() {
    let run = Run::start("query_wait_timeout = 10", None, 6).await;
    let superuser = run.pg.superuser_client().await;
    let mut killed = 0;
    for _ in 0..5 {
        let n = first_value(
            &superuser,
            "select count(pg_terminate_backend(pid)) from pg_stat_activity \
             where datname = 'bench' and usename = 'md5_user'",
        )
        .await
        .unwrap()
        .unwrap();
        killed += n.parse::<u32>().unwrap();
        run.progress(10, "pg_terminate_backend").await;
    }
    assert!(killed > 0, "no backend was killed");
    let errors = run.finish(SERVER_GONE).await;
    eprintln!("pg_terminate_backend: {killed} backends, {errors:?}");
}

/// SIGSTOP to the postmaster and every process it started, SIGCONT on drop (also when the test
/// fails: a postmaster killed while its children are stopped would leave them stopped).
struct Frozen(Vec<u32>);

impl Frozen {
    fn freeze(postmaster: u32) -> Frozen {
        let mut pids = vec![postmaster];
        let _ = signal(postmaster, Signal::SIGSTOP);
        // The postmaster is stopped, so it starts no new child after this scan.
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(postmaster) {
                let _ = signal(pid, Signal::SIGSTOP);
                pids.push(pid);
            }
        }
        Frozen(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for &pid in self.0.iter().rev() {
            let _ = signal(pid, Signal::SIGCONT);
        }
    }
}

/// PostgreSQL frozen for longer than `query_timeout` and `server_connect_timeout`: the running
/// queries end with `query_timeout`, new server logins with `server_connect_timeout`, and once
/// it is resumed the pool serves again, with no stale result handed to anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_postgres_under_load() {
    let run = Run::start(
        "query_timeout = 2\nserver_connect_timeout = 2\nquery_wait_timeout = 3",
        None,
        8,
    )
    .await;
    let frozen = Frozen::freeze(run.pg.postmaster_pid().unwrap());
    // Frozen until both timeouts have fired: a query that ran into the freeze ends with
    // query_timeout (the server is closed), and the new server the pool then opens cannot log
    // in within server_connect_timeout (the clients asking next get the cached error).
    let seen_message = |part: &str| {
        run.seen
            .messages
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains(part))
    };
    assert!(
        eventually(30, || async {
            seen_message("08P01 query timeout") && seen_message("connect timeout")
        })
        .await,
        "both timeouts did not fire while PostgreSQL was frozen: {:?}",
        run.seen.messages.lock().unwrap()
    );
    drop(frozen);
    let errors = run.finish(&["08P01", "57014", "57P01"]).await;
    eprintln!("SIGSTOP/SIGCONT: {errors:?}");
}

/// pgsluice at its fd limit: idle connections take every descriptor it may open. The clients
/// it already serves keep working meanwhile. Then every backend is killed, so that the pool
/// must open new servers with no descriptor to open them: the clients get a clean error or
/// wait. Once the descriptors are free, new clients get in and the pool fills again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooler_at_its_fd_limit_under_load() {
    let run = Run::start("query_wait_timeout = 5", Some(64), 0).await;
    let mut hogs = Vec::new();
    // More than the limit: pgsluice accepts until it is out of descriptors, the rest wait in
    // the kernel's backlog.
    for _ in 0..80 {
        match tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(("127.0.0.1", run.proc.port)),
        )
        .await
        {
            Ok(Ok(s)) => hogs.push(s),
            _ => break,
        }
    }
    let pid = run.proc.child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 64 ")),
        "{limits}"
    );
    let fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    assert!(
        eventually(10, || async { fds() >= 62 }).await,
        "pgsluice holds only {} fds",
        fds()
    );
    // The transaction-mode clients already logged in keep being served.
    let before = run.seen.tx_ok.load(Ordering::Relaxed);
    assert!(
        eventually(20, || async {
            run.seen.tx_ok.load(Ordering::Relaxed) > before + 30
        })
        .await,
        "logged-in clients were not served at the fd limit"
    );
    // Servers die; new ones cannot be opened while the limit holds.
    let superuser = run.pg.superuser_client().await;
    let killed = superuser
        .query(
            // Materialized, so that only these rows reach pg_terminate_backend.
            "with v as materialized (select pid from pg_stat_activity \
             where datname = 'bench' and usename = 'md5_user') \
             select pid from v where pg_terminate_backend(pid)",
            &[],
        )
        .await
        .unwrap();
    assert!(!killed.is_empty(), "no backend to kill");
    let pids: Vec<i32> = killed.iter().map(|r| r.get(0)).collect();
    assert!(
        eventually(20, || async {
            superuser
                .query_one(
                    "select count(*) from pg_stat_activity where pid = any($1)",
                    &[&pids],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 0
        })
        .await,
        "the killed backends did not exit"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = fds();
    drop(hogs);
    let errors = run.finish(&["08P01", "57P01"]).await;
    eprintln!("fd limit: {held} fds held, {errors:?}");
}

/// A server that stops answering while pgsluice aligns its parameters to the client (the SETs
/// sent before the client's query, here `application_name`) holds that client no longer than
/// `query_timeout`: it gets PgBouncer's `08P01 query timeout`, and the pool recovers once
/// PostgreSQL runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_server_during_parameter_alignment() {
    let pg = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    pg.superuser_exec(
        "postgres",
        &[&format!("create database bench owner {USER}")],
    );
    let proc = Proc::start(
        &pg,
        "default_pool_size = 1\nquery_timeout = 2\nserver_connect_timeout = 2",
        None,
    );
    let closed = Closed::default();
    let a = connect(&format!("{} application_name=a", proc.conn("app")), &closed)
        .await
        .unwrap();
    assert_eq!(
        first_value(&a, "select current_setting('application_name')")
            .await
            .unwrap()
            .as_deref(),
        Some("a")
    );
    // The one server is idle in the pool, set to application_name = a.
    let b = connect(&format!("{} application_name=b", proc.conn("app")), &closed)
        .await
        .unwrap();
    let frozen = Frozen::freeze(pg.postmaster_pid().unwrap());
    let err = tokio::time::timeout(Duration::from_secs(15), first_value(&b, "select 1"))
        .await
        .expect("an error within query_timeout, not a hang")
        .expect_err("the server is frozen");
    drop(frozen);
    let db = err.as_db_error().expect("an ErrorResponse");
    assert_eq!(
        (db.code().code(), db.message()),
        ("08P01", "query timeout"),
        "{err:?}"
    );
    let c = connect(&proc.conn("app"), &closed).await.unwrap();
    assert!(
        eventually(15, || async {
            first_value(&c, "select 5").await.ok().flatten().as_deref() == Some("5")
        })
        .await,
        "the pool did not recover"
    );
    let log = proc.stderr();
    assert!(!log.contains("panicked"), "{log}");
}
