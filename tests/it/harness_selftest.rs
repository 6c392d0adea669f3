//! Proves the harness itself: the cluster, its roles and auth methods, per-test databases, and
//! the psql / pgbench / file helpers. If these fail, no other integration test result means
//! anything.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::harness::files::{TempDir, userlist, userlist_line, write_file};
use crate::harness::postgres::{AUTH_ROLES, PgCluster, password};
use crate::harness::tools::{pgbench, pgbench_init, psql, psql_async, run_with_timeout};

#[tokio::test]
async fn cluster_starts_with_harness_settings() {
    let pg = PgCluster::shared();
    assert_eq!(pg.host(), "127.0.0.1");
    assert!(pg.port() > 0);
    assert!(
        pg.socket_dir()
            .join(format!(".s.PGSQL.{}", pg.port()))
            .exists()
    );
    assert!(pg.bin("pgbench").is_file());
    let client = pg.superuser_client().await;
    for (name, want) in [
        ("max_connections", "300"),
        ("listen_addresses", "127.0.0.1"),
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
    ] {
        let row = client
            .query_one("SELECT current_setting($1)", &[&name])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), want, "{name}");
    }
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "postgres");
}

#[tokio::test]
async fn every_role_logs_in_over_tcp_with_its_method() {
    let pg = PgCluster::shared();
    for (role, method) in AUTH_ROLES {
        let client = pg
            .connect(role, "postgres")
            .await
            .unwrap_or_else(|e| panic!("{role} login failed: {e}\n{}", pg.log_tail()));
        let row = client
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), role);
        // The server writes this line before AuthenticationOk, so it is there once connect
        // returns. trust sets no authenticated identity, so it has no such line.
        if method != "trust" {
            let log = std::fs::read_to_string(pg.log_path()).unwrap();
            let needle = format!("identity=\"{role}\" method={method}");
            assert!(log.contains(&needle), "no `{needle}` in the server log");
        }
    }
}

#[tokio::test]
async fn wrong_password_is_rejected_for_password_methods() {
    let pg = PgCluster::shared();
    for role in ["pass_user", "md5_user", "scram_user"] {
        let conn = format!(
            "host={} port={} user={role} password=wrong dbname=postgres",
            pg.host(),
            pg.port()
        );
        let err = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
            .await
            .err()
            .unwrap_or_else(|| panic!("{role} logged in with a wrong password"));
        assert_eq!(
            err.code(),
            Some(&SqlState::INVALID_PASSWORD),
            "{role}: {err}"
        );
    }
}

#[tokio::test]
async fn secrets_are_stored_per_method() {
    let pg = PgCluster::shared();
    assert!(pg.md5_secret("md5_user").starts_with("md5"));
    for role in ["trust_user", "pass_user", "scram_user", "postgres"] {
        assert!(pg.scram_secret(role).starts_with("SCRAM-SHA-256$4096:"));
    }
    // The same value the server holds, so a userlist.txt built from it matches.
    let client = pg.superuser_client().await;
    let row = client
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_user'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), pg.scram_secret("scram_user"));
}

#[tokio::test]
async fn each_database_is_isolated_and_shared_by_all_roles() {
    let pg = PgCluster::shared();
    let a = pg.create_database("selftest iso");
    let b = pg.create_database("selftest iso");
    assert_ne!(a, b);
    assert!(a.starts_with("selftest_iso_"), "{a}");

    let md5 = pg.connect("md5_user", &a).await.unwrap();
    md5.batch_execute(
        "CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) VALUES ('x')",
    )
    .await
    .unwrap();
    // Default privileges let every role use tables another role created.
    let scram = pg.connect("scram_user", &a).await.unwrap();
    scram
        .execute("INSERT INTO t (v) VALUES ('y')", &[])
        .await
        .unwrap();
    let n: i64 = scram
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);

    let other = pg.connect("md5_user", &b).await.unwrap();
    let err = other.query("SELECT * FROM t", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
}

#[tokio::test]
async fn psql_helper_runs_sql_and_reports_failures() {
    let pg = PgCluster::shared();
    let db = pg.create_database("selftest_psql");
    let ok = psql_async(
        pg.host(),
        pg.port(),
        "scram_user",
        &db,
        Some(&password("scram_user")),
        "SELECT 1 + 1",
    )
    .await;
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "2");

    let bad = psql(
        pg.host(),
        pg.port(),
        "md5_user",
        &db,
        Some("nope"),
        "SELECT 1",
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("password authentication failed"),
        "{bad:?}"
    );

    // No password and -w: fails instead of prompting.
    let none = psql(pg.host(), pg.port(), "pass_user", &db, None, "SELECT 1");
    assert!(!none.status.success());

    // The unix socket works too, with the same methods.
    let socket = pg.socket_dir().to_str().unwrap();
    let via_socket = psql(
        socket,
        pg.port(),
        "md5_user",
        &db,
        Some(&password("md5_user")),
        "SELECT current_user",
    );
    assert_eq!(
        String::from_utf8_lossy(&via_socket.stdout).trim(),
        "md5_user"
    );
}

#[tokio::test]
async fn pgbench_helper_runs_and_parses_the_summary() {
    let pg = PgCluster::shared();
    let db = pg.create_database("selftest_pgbench");
    let port = pg.port().to_string();
    let init = pgbench_init(pg.host(), pg.port(), "trust_user", &db, None, 1);
    assert!(init.status.success(), "{init:?}");

    let pw = password("md5_user");
    let run = pgbench(
        &[
            "-h",
            pg.host(),
            "-p",
            &port,
            "-U",
            "md5_user",
            "-c",
            "2",
            "-t",
            "20",
            "-n",
            &db,
        ],
        &[("PGPASSWORD", &pw)],
    );
    assert!(run.success(), "{}", run.text());
    assert_eq!(run.processed, Some(40), "{}", run.text());
    assert_eq!(run.failed, Some(0), "{}", run.text());
    assert!(run.tps.is_some_and(|t| t > 0.0), "{}", run.text());
    assert!(
        run.latency_avg_ms.is_some_and(|l| l > 0.0),
        "{}",
        run.text()
    );
}

#[test]
fn run_with_timeout_kills_a_hung_child() {
    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("30");
    let err = run_with_timeout(cmd, Duration::from_millis(200)).unwrap_err();
    assert!(!err.output.status.success());
    // The PID was reaped: signalling it now fails.
    let alive = std::process::Command::new("kill")
        .args(["-0", &err.pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!alive.success());
}

#[test]
fn temp_dir_files_and_userlist_quoting() {
    let dir = TempDir::new("selftest");
    let path = dir.path().to_path_buf();
    let ini = write_file(dir.path(), "conf/pgbouncer.ini", "[pgbouncer]\n");
    assert_eq!(std::fs::read_to_string(&ini).unwrap(), "[pgbouncer]\n");
    dir.write("userlist.txt", &userlist(&[("a", "b")]));
    assert_eq!(
        std::fs::read_to_string(dir.join("userlist.txt")).unwrap(),
        "\"a\" \"b\"\n"
    );
    assert_eq!(
        userlist_line("md5_user", "md5abc"),
        r#""md5_user" "md5abc""#
    );
    assert_eq!(userlist_line(r#"we"ird"#, r#"p"w"#), r#""we""ird" "p""w""#);
    drop(dir);
    assert!(!path.exists());
}

#[test]
fn owned_cluster_stops_by_pid_on_drop() {
    let pg = PgCluster::start();
    let dir = pg.socket_dir().to_path_buf();
    let pid = pg.pid();
    assert!(process_alive(pid));
    drop(pg);
    assert!(!process_alive(pid), "postgres {pid} survived drop");
    assert!(!dir.exists(), "{} survived drop", dir.display());
}

/// Env var that turns `guardian_child_process` from a no-op into the victim of
/// `guardian_stops_postgres_when_the_test_process_is_killed`; its value is where to report.
const GUARDIAN_CHILD_ENV: &str = "PGSLUICE_IT_GUARDIAN_CHILD";

#[test]
#[ignore = "helper process for guardian_stops_postgres_when_the_test_process_is_killed"]
fn guardian_child_process() {
    let Some(report) = std::env::var_os(GUARDIAN_CHILD_ENV) else {
        return;
    };
    let pg = PgCluster::shared();
    let info = format!("{} {}", pg.pid(), pg.socket_dir().display());
    // Written under a temp name and renamed, so the parent never reads half a line.
    let tmp = std::path::PathBuf::from(&report).with_extension("tmp");
    std::fs::write(&tmp, info).unwrap();
    std::fs::rename(&tmp, &report).unwrap();
    // Wait to be SIGKILLed; bounded so a broken parent cannot leave this running forever.
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn guardian_stops_postgres_when_the_test_process_is_killed() {
    let tmp = TempDir::new("guardian");
    let report = tmp.join("report");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "harness_selftest::guardian_child_process",
            "--ignored",
            "--test-threads=1",
        ])
        .env(GUARDIAN_CHILD_ENV, &report)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut info = None;
    for _ in 0..1200 {
        if let Ok(text) = std::fs::read_to_string(&report) {
            info = Some(text);
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("guardian child exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(info) = info else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("guardian child never reported its cluster");
    };
    let (pid, dir) = info.split_once(' ').unwrap();
    let pid: u32 = pid.parse().unwrap();
    let dir = std::path::PathBuf::from(dir);
    assert!(process_alive(pid));

    // SIGKILL: no unwinding, no destructors, no atexit; only the guardian can clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut cleaned = false;
    for _ in 0..600 {
        if !process_alive(pid) && !dir.exists() {
            cleaned = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        cleaned,
        "postgres {pid} alive: {}, {} exists: {}",
        process_alive(pid),
        dir.display(),
        dir.exists()
    );
}

/// Whether `pid` is a live process (a zombie waiting for a reaper counts as dead).
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state is the first field after the parenthesised command name.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}
