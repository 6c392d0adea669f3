//! Log output of the built binary: syslog datagrams, JSON and text lines in the logfile,
//! `verbose` and `log_connections` changed by a reload, `verbose` by the console's SET; `-u`
//! switching user.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::files::{TempDir, userlist};
use crate::harness::pooler::{eventually, free_port};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::tools::{psql_async, required, wait_child};

const BIN: &str = env!("CARGO_BIN_EXE_pgsluice");

fn write_ini(dir: &TempDir, db: &str, port: u16, extra: &str, pgsluice: &str) {
    let pg = PgCluster::shared();
    let auth = dir.join("userlist.txt");
    let text = format!(
        "[databases]\napp = host={} port={} dbname={db}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_file = {}\npool_mode = transaction\npidfile = {}\nlogfile = {}\n{extra}\n[pgsluice]\n{pgsluice}\n",
        pg.host(),
        pg.port(),
        auth.display(),
        dir.join("pgsluice.pid").display(),
        dir.join("pgsluice.log").display(),
    );
    dir.write("pgbouncer.ini", &text);
}

async fn wait_for(path: &Path, what: &str) {
    let path = path.to_path_buf();
    let text = what.to_owned();
    let found = eventually(30, || {
        let (path, text) = (path.clone(), text.clone());
        async move { std::fs::read_to_string(&path).is_ok_and(|t| t.contains(&text)) }
    })
    .await;
    assert!(
        found,
        "{} never contained {what:?}:\n{}",
        path.display(),
        std::fs::read_to_string(&path).unwrap_or_default()
    );
}

fn kill(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// A database `<prefix>…`, a config dir with md5_user in its userlist, and a free port.
fn setup(prefix: &str) -> (TempDir, String, u16) {
    let db = PgCluster::shared().create_database(prefix);
    let dir = TempDir::new(&format!("pgsluice-{prefix}"));
    dir.write(
        "userlist.txt",
        &userlist(&[("md5_user", &password("md5_user"))]),
    );
    (dir, db, free_port())
}

/// Starts the binary on `dir`'s pgbouncer.ini and waits until its logfile says it listens.
async fn start(dir: &TempDir) -> Child {
    let child = Command::new(BIN)
        .arg(dir.join("pgbouncer.ini"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&dir.join("pgsluice.log"), "listening").await;
    child
}

/// SIGINT, and the process exits cleanly within 30 s.
async fn stop(mut child: Child) {
    kill(child.id(), "INT");
    let status =
        tokio::task::spawn_blocking(move || wait_child(&mut child, Duration::from_secs(30)))
            .await
            .unwrap();
    assert!(status.is_some_and(|s| s.success()));
}

/// JSON lines in the logfile and RFC 3164 datagrams on the syslog socket; a reload switches to
/// text, raises the verbosity and turns `log_connections` off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_json_and_log_settings_on_reload() {
    let (dir, db, port) = setup("logging");
    let pw = password("md5_user");
    let syslog_path = dir.join("log.sock");
    let syslog = UnixDatagram::bind(&syslog_path).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let syslog_lines = "syslog = 1\nsyslog_ident = pgsluice-it\nsyslog_facility = local0";
    let socket_line = format!("syslog_socket = {}", syslog_path.display());
    write_ini(
        &dir,
        &db,
        port,
        syslog_lines,
        &format!("{socket_line}\nlog_format = json"),
    );
    let child = start(&dir).await;
    let pid = child.id();
    let logfile = dir.join("pgsluice.log");
    let first = std::fs::read_to_string(&logfile).unwrap();
    let line = first.lines().next().unwrap();
    assert!(
        line.starts_with('{') && line.contains("\"level\":\"INFO\""),
        "{line}"
    );

    // local0 (16) * 8 + info (6) = 134.
    let mut buf = [0u8; 4096];
    let n = syslog.recv(&mut buf).expect("a syslog datagram");
    let datagram = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(datagram.starts_with("<134>"), "{datagram}");
    assert!(
        datagram.contains(&format!(" pgsluice-it[{pid}]: ")),
        "{datagram}"
    );

    let out = psql_async("127.0.0.1", port, "md5_user", "app", Some(&pw), "select 1").await;
    assert!(out.status.success(), "{out:?}");
    wait_for(&logfile, "login attempt:").await;

    write_ini(
        &dir,
        &db,
        port,
        &format!("{syslog_lines}\nverbose = 1\nlog_connections = 0"),
        &socket_line,
    );
    kill(pid, "HUP");
    wait_for(&logfile, "configuration reloaded").await;
    let before = std::fs::read_to_string(&logfile).unwrap().len();
    let out = psql_async("127.0.0.1", port, "md5_user", "app", Some(&pw), "select 2").await;
    assert!(out.status.success(), "{out:?}");
    wait_for(&logfile, "closing because: client close request").await;
    let text = std::fs::read_to_string(&logfile).unwrap();
    let after = &text[before..];
    assert!(
        !after.contains("login attempt:"),
        "log_connections = 0 ignored:\n{after}"
    );
    assert!(after.contains("DEBUG"), "verbose = 1 ignored:\n{after}");
    assert!(
        !after.lines().any(|l| l.starts_with('{')),
        "still JSON:\n{after}"
    );

    stop(child).await;
}

/// The console's SET applies as a reload does, log output included: `SET verbose = 1` brings
/// DEBUG lines at once, without a RELOAD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_set_verbose_changes_the_log_output() {
    let (dir, db, port) = setup("logset");
    let pw = password("md5_user");
    write_ini(&dir, &db, port, "admin_users = md5_user", "");
    let child = start(&dir).await;
    let logfile = dir.join("pgsluice.log");
    let psql = |db: &'static str, sql: &'static str| {
        psql_async("127.0.0.1", port, "md5_user", db, Some(&pw), sql)
    };
    let out = psql("pgbouncer", "SET verbose = 1").await;
    assert!(out.status.success(), "{out:?}");
    let out = psql("app", "select 2").await;
    assert!(out.status.success(), "{out:?}");
    // verbose = 0 until the SET: the first DEBUG line is the SET's doing.
    wait_for(&logfile, "DEBUG").await;

    stop(child).await;
}

/// Started as root with `-u postgres`, the process runs as that user and its pidfile and
/// logfile belong to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, for -u (scripts/test.sh runs it as root)"]
async fn dash_u_switches_user_needs_root() {
    required(
        "root (-u switches to another user)",
        if nix::unistd::geteuid().is_root() {
            Ok(())
        } else {
            Err("not running as root".to_owned())
        },
    );
    let pg = PgCluster::shared();
    let db = pg.create_database("dash_u");
    let dir = TempDir::new("pgsluice-dash-u");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir.write(
        "userlist.txt",
        &userlist(&[("md5_user", &password("md5_user"))]),
    );
    let port = free_port();
    write_ini(&dir, &db, port, "", "");
    let mut child = Command::new(BIN)
        .args(["-u", "postgres"])
        .arg(dir.join("pgbouncer.ini"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let logfile = dir.join("pgsluice.log");
    wait_for(&logfile, "listening").await;
    let postgres = nix::unistd::User::from_name("postgres").unwrap().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let uids: Vec<u32> = uid_line
        .split_whitespace()
        .skip(1)
        .map(|u| u.parse().unwrap())
        .collect();
    assert!(
        uids.iter().all(|&u| u == postgres.uid.as_raw()),
        "{uid_line}"
    );
    let owner = std::fs::metadata(&logfile).unwrap().uid();
    assert_eq!(owner, postgres.uid.as_raw());
    wait_for(&dir.join("pgsluice.pid"), &pid.to_string()).await;
    kill(pid, "TERM");
    let status =
        tokio::task::spawn_blocking(move || wait_child(&mut child, Duration::from_secs(30)))
            .await
            .unwrap();
    assert!(status.is_some_and(|s| s.success()));
}
