//! Replication connections through the pooler (PgBouncer 1.23+): `replication=true` (physical)
//! and `replication=database` (logical) logins get a server of their own, opened with the same
//! startup parameters, relayed untouched (CopyBoth, replication commands) and closed when the
//! client leaves; such servers count against `pool_size`.
//!
//! The shared cluster runs with `wal_level = logical` and trusts `postgres` for replication.

use std::process::Output;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use tokio_postgres::SimpleQueryMessage;

use crate::harness::files::{TempDir, userlist};
use crate::harness::pooler::{Pooler, db_line, eventually, first_value};
use crate::harness::postgres::{PgCluster, SUPERUSER};
use crate::harness::raw::{login_with, query, read_value, startup_packet_with};
use crate::harness::tools::{libpq_command, run_with_timeout};

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

fn users() -> String {
    userlist(&[(SUPERUSER, "")])
}

/// Runs a PostgreSQL client tool against the pooler on a blocking thread.
async fn tool(program: &'static str, port: u16, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = libpq_command(program, "127.0.0.1", port, SUPERUSER, None);
        cmd.args(&args);
        run_with_timeout(cmd, TOOL_TIMEOUT).unwrap_or_else(|t| panic!("{t}"))
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// pg_basebackup (physical walsender: BASE_BACKUP's COPY OUT, and a second connection
/// streaming WAL over CopyBoth) through a pool whose mode is transaction: replication ignores
/// the pool mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_basebackup_through_the_pooler() {
    let dbs = db_line("replication", "postgres", "pool_mode=transaction");
    // Small socket buffers make both sides hit EAGAIN often, mid-message.
    let pooler = Pooler::start(
        &dbs,
        "auth_type = trust\ntcp_socket_buffer = 4096",
        &users(),
    );
    let dir = TempDir::new("pgsluice-it-basebackup");
    let target = dir.join("backup");
    let out = tool(
        "pg_basebackup",
        pooler.port,
        vec![
            "-D".into(),
            target.display().to_string(),
            "--checkpoint=fast".into(),
            "-X".into(),
            "stream".into(),
            "--no-sync".into(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(target.join("PG_VERSION").is_file(), "{}", text(&out));
    assert!(target.join("backup_manifest").is_file(), "{}", text(&out));
    pooler.stop().await;
}

/// pg_receivewal on a physical slot, up to an end position: START_REPLICATION's CopyBoth both
/// ways (WAL out, standby status in), then CopyDone from both sides and a clean exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_receivewal_streams_a_slot() {
    let pg = PgCluster::shared();
    let db = pg.create_database("receivewal");
    let slot = format!("it_receivewal_{}", std::process::id());
    pg.superuser_exec(
        &db,
        &[
            &format!("SELECT pg_create_physical_replication_slot('{slot}', true)"),
            "CREATE TABLE t(a int)",
            "INSERT INTO t SELECT generate_series(1, 1000)",
        ],
    );
    let end = pg
        .superuser_exec(&db, &["SELECT pg_current_wal_lsn()"])
        .trim()
        .to_owned();
    let dbs = db_line("replication", "postgres", "pool_mode=statement");
    let pooler = Pooler::start(&dbs, "auth_type = trust", &users());
    let dir = TempDir::new("pgsluice-it-receivewal");
    let out = tool(
        "pg_receivewal",
        pooler.port,
        vec![
            "-D".into(),
            dir.path().display().to_string(),
            format!("--slot={slot}"),
            format!("--endpos={end}"),
            "--no-loop".into(),
            "--no-sync".into(),
        ],
    )
    .await;
    pg.superuser_exec(
        "postgres",
        &[&format!("SELECT pg_drop_replication_slot('{slot}')")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(files > 0, "no WAL received\n{}", text(&out));
    pooler.stop().await;
}

/// pg_recvlogical through a logical replication connection (`replication=database`): the
/// change made before the end position comes out decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_recvlogical_decodes_changes() {
    let pg = PgCluster::shared();
    let db = pg.create_database("recvlogical");
    let slot = format!("it_recvlogical_{}", std::process::id());
    pg.superuser_exec(
        &db,
        &[
            "CREATE TABLE t(a int)",
            &format!("SELECT pg_create_logical_replication_slot('{slot}', 'test_decoding')"),
            // The harness runs with synchronous_commit = off, and decoding reads only flushed
            // WAL: this commit must be on disk before the end position is taken.
            "SET synchronous_commit = on",
            "INSERT INTO t VALUES (42)",
        ],
    );
    let end = pg
        .superuser_exec(&db, &["SELECT pg_current_wal_lsn()"])
        .trim()
        .to_owned();
    let dbs = db_line("app", &db, "pool_mode=transaction");
    let pooler = Pooler::start(&dbs, "auth_type = trust", &users());
    let out = tool(
        "pg_recvlogical",
        pooler.port,
        vec![
            "-d".into(),
            "app".into(),
            format!("--slot={slot}"),
            "--start".into(),
            "--file=-".into(),
            format!("--endpos={end}"),
            "--no-loop".into(),
        ],
    )
    .await;
    pg.superuser_exec(
        &db,
        &[&format!("SELECT pg_drop_replication_slot('{slot}')")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let decoded = String::from_utf8_lossy(&out.stdout);
    assert!(
        decoded.contains("table public.t: INSERT: a[integer]:42"),
        "{}",
        text(&out)
    );
    pooler.stop().await;
}

/// Logs in with `replication=database` (trust) and reads up to ReadyForQuery; the
/// ParameterStatus values of the welcome are returned, or the SQLSTATE of the refusal.
async fn logical_login(port: u16, db: &str) -> Result<(TcpStream, Vec<(String, String)>), String> {
    let packet = startup_packet_with(
        SUPERUSER,
        db,
        &[
            ("replication", "database"),
            ("application_name", "it-logical"),
            ("options", "-c enable_seqscan=off"),
        ],
    );
    let login = login_with(port, &packet, SUPERUSER, "").await;
    let params = login.parameters();
    match login.ready() {
        Ok(stream) => Ok((stream, params)),
        Err((code, message)) if code.is_empty() => Err(message),
        Err((code, _)) => Err(code),
    }
}

/// Rows of an admin SHOW as (column → value) maps.
async fn show(admin: &tokio_postgres::Client, what: &str) -> Vec<Vec<(String, String)>> {
    let mut rows = Vec::new();
    for m in admin.simple_query(&format!("SHOW {what}")).await.unwrap() {
        if let SimpleQueryMessage::Row(r) = m {
            let cols = r.columns();
            rows.push(
                (0..r.len())
                    .map(|i| {
                        (
                            cols[i].name().to_owned(),
                            r.get(i).unwrap_or_default().to_owned(),
                        )
                    })
                    .collect(),
            );
        }
    }
    rows
}

fn col<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    row.iter()
        .find(|(c, _)| c == name)
        .map_or("", |(_, v)| v.as_str())
}

async fn walsenders(pg: &PgCluster, db: &str) -> i64 {
    let su = pg.superuser_client().await;
    first_value(
        &su,
        &format!(
            "select count(*) from pg_stat_activity where backend_type = 'walsender' and datname = '{db}'"
        ),
    )
    .await
    .unwrap()
    .unwrap()
    .parse()
    .unwrap()
}

/// A replication client's server is its own: with pool_size = 1 a second replication client
/// waits (cl_waiting) until the first leaves, the server is never reused, and none is left
/// open afterwards. Its startup parameters (application_name, options) reach the server, and
/// SHOW CLIENTS / SHOW SERVERS say `logical`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_servers_are_dedicated_and_count_against_pool_size() {
    let pg = PgCluster::shared();
    let db = pg.create_database("replpool");
    let dbs = db_line("app", &db, "pool_size=1");
    let pooler = Pooler::start(
        &dbs,
        "auth_type = trust\nadmin_users = postgres\npool_mode = transaction",
        &users(),
    );
    let admin = pooler.connect(SUPERUSER, "", "pgbouncer").await.unwrap();
    let (mut first, welcome) = logical_login(pooler.port, "app").await.unwrap();
    assert!(
        welcome
            .iter()
            .any(|(k, v)| k == "application_name" && v == "it-logical"),
        "{welcome:?}"
    );
    // SQL on a logical walsender, with the client's options in effect on its own server.
    first
        .write_all(&query("SHOW enable_seqscan"))
        .await
        .unwrap();
    let seen = read_value(&mut first).await.expect("SHOW enable_seqscan");
    assert_eq!(seen.as_deref(), Some("off"));
    first.write_all(&query("IDENTIFY_SYSTEM")).await.unwrap();
    read_value(&mut first).await.expect("IDENTIFY_SYSTEM");
    let clients = show(&admin, "CLIENTS").await;
    assert!(
        clients
            .iter()
            .any(|r| col(r, "database") == "app" && col(r, "replication") == "logical"),
        "{clients:?}"
    );
    let servers = show(&admin, "SERVERS").await;
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_eq!(col(&servers[0], "replication"), "logical");
    let port = pooler.port;
    let second = tokio::spawn(async move { logical_login(port, "app").await });
    let waiting = eventually(20, || async {
        show(&admin, "POOLS")
            .await
            .iter()
            .any(|r| col(r, "database") == "app" && col(r, "cl_waiting") == "1")
    })
    .await;
    assert!(waiting, "second replication client should wait for room");
    assert!(!second.is_finished());
    drop(first);
    let (second, _) = tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("second client got the room")
        .unwrap()
        .unwrap();
    drop(second);
    assert!(
        eventually(20, || async { walsenders(pg, &db).await == 0 }).await,
        "replication servers are closed when their clients leave"
    );
    assert!(show(&admin, "SERVERS").await.is_empty());
    pooler.stop().await;
}

/// A replication login the server refuses (its forced user has no REPLICATION): the client
/// gets PgBouncer's `login failed` (08P01), and both sides are logged as PgBouncer logs them,
/// `closing because: login failed (age=...)` for the server and for the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_replication_login_is_logged_for_both_sides() {
    crate::harness::logs::capture();
    let pg = PgCluster::shared();
    let db = pg.create_database("replrefused");
    let pooler = Pooler::start(
        &db_line("repl_refused", &db, "user=trust_user"),
        "auth_type = trust",
        &users(),
    );
    let code = logical_login(pooler.port, "repl_refused")
        .await
        .expect_err("the server refuses a replication login for trust_user");
    assert_eq!(code, "08P01");
    for side in ["S-", "C-"] {
        crate::harness::logs::wait_for(
            &[side, "repl_refused/", "closing because: login failed (age="],
            Duration::from_secs(10),
        )
        .await;
    }
}
