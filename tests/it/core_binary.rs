//! The `pgsluice` binary: PgBouncer's command line, a bad config, real traffic from pgbench and
//! psql through the built binary, and a clean SIGINT shutdown.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::files::{TempDir, userlist};
use crate::harness::pooler::free_port;
use crate::harness::postgres::{PgCluster, password};
use crate::harness::tools::{
    pgbench_async, pgbench_init, psql_async, run_with_timeout, wait_child,
};

const BIN: &str = env!("CARGO_BIN_EXE_pgsluice");

fn run(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    run_with_timeout(cmd, Duration::from_secs(30)).expect("finishes")
}

#[test]
fn version_help_and_check() {
    // The first line is what SHOW VERSION answers (PgBouncer prints `PgBouncer x.y.z` there),
    // for the default emulated version without a config file.
    let v = run(&["-V"]);
    assert!(v.status.success());
    let text = String::from_utf8_lossy(&v.stdout).into_owned();
    let mut lines = text.lines();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        lines.next(),
        Some(format!("PgBouncer 1.26.0 (pgsluice {version})").as_str())
    );
    assert_eq!(lines.next(), Some(format!("pgsluice {version}").as_str()));
    // With a config file, for its admin_compat_version.
    let dir = TempDir::new("pgsluice-version");
    let ini = dir.write(
        "pgbouncer.ini",
        "[pgbouncer]\nlisten_port = 6432\n[pgsluice]\nadmin_compat_version = 1.18\n",
    );
    let v = run(&["--version", ini.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&v.stdout)
            .starts_with(&format!("PgBouncer 1.18.0 (pgsluice {version})\n"))
    );
    let h = run(&["--help"]);
    assert!(h.status.success());
    for flag in [
        "-d, --daemon",
        "-q, --quiet",
        "-v, --verbose",
        "-u, --user",
        "-R, --reboot",
    ] {
        assert!(String::from_utf8_lossy(&h.stdout).contains(flag), "{flag}");
    }
    // The shipped examples load (cargo runs tests from the package root, as the examples expect).
    assert!(run(&["--check", "config/pgbouncer.ini"]).status.success());
    assert!(run(&["--check", "config/pgsluice.toml"]).status.success());
}

#[test]
fn bad_config_fails_with_file_line_and_reason() {
    let dir = TempDir::new("pgsluice-badcfg");
    let path = dir.write(
        "pgbouncer.ini",
        "[pgbouncer]\nlisten_port = 6432\npool_mode = sometimes\n",
    );
    let out = run(&["--check", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pgbouncer.ini:3"), "{err}");
    assert!(err.contains("pool_mode"), "{err}");
    assert!(!run(&["--no-such-flag"]).status.success());
}

/// pgbench and psql through the real binary, then SIGINT: the process exits by itself and
/// leaves no server connection behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, easier to read whole"
)]
async fn binary_serves_pgbench_and_stops_on_sigint() {
    let pg = PgCluster::shared();
    let db = pg.create_database("binary");
    let pw = password("md5_user");
    let init = pgbench_init(pg.host(), pg.port(), "md5_user", &db, Some(&pw), 1);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let dir = TempDir::new("pgsluice-bin");
    let port = free_port();
    let auth = dir.write("userlist.txt", &userlist(&[("md5_user", &pw)]));
    let ini = format!(
        "[databases]\nbench = host={} port={} dbname={db}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir = {}\nauth_type = md5\nauth_file = {}\npool_mode = transaction\ndefault_pool_size = 5\nmax_client_conn = 100\n",
        pg.host(),
        pg.port(),
        dir.path().display(),
        auth.display()
    );
    let config = dir.write("pgbouncer.ini", &ini);
    let mut child = Command::new(BIN)
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "pgsluice did not start listening");
    let port_s = port.to_string();
    let run = pgbench_async(
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port_s,
            "-U",
            "md5_user",
            "-c",
            "20",
            "-j",
            "2",
            "-t",
            "50",
            "-M",
            "simple",
            "bench",
        ],
        &[("PGPASSWORD", &pw)],
    )
    .await;
    assert!(run.success(), "{}", run.text());
    assert_eq!(run.processed, Some(1000));
    assert_eq!(run.failed.unwrap_or(0), 0);
    let out = psql_async(
        "127.0.0.1",
        port,
        "md5_user",
        "bench",
        Some(&pw),
        "select count(*) from pgbench_branches",
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    // Over the unix socket too, as psql's default connection method.
    let out = psql_async(
        &dir.path().display().to_string(),
        port,
        "md5_user",
        "bench",
        Some(&pw),
        "select 5",
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "5",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || {
        wait_child(&mut child, Duration::from_secs(20)).map(|s| (s, child))
    })
    .await
    .unwrap();
    let (status, _child) = status.expect("pgsluice exits after SIGINT");
    assert!(status.success(), "{status:?}");
    let superuser = pg.superuser_client().await;
    assert!(
        crate::harness::pooler::eventually(10, || async {
            crate::harness::pooler::backends(&superuser, &db, None).await == 0
        })
        .await,
        "server connections left behind"
    );
}
