//! The built binary as an operator runs it: a zero-downtime rolling restart of two processes
//! sharing the port with `so_reuseport` under a pgbench load; daemon mode with a pidfile;
//! logfile rotation on SIGHUP; `--probe`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::files::{TempDir, userlist};
use crate::harness::pooler::{backends, eventually, free_port};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::tools::{
    pgbench_async, pgbench_init, psql_async, run_with_timeout, wait_child,
};

const BIN: &str = env!("CARGO_BIN_EXE_pgsluice");

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid}");
}

/// An ini for the shared cluster's database `db`, with `extra` lines in `[pgbouncer]`.
fn ini(dir: &TempDir, db: &str, port: u16, extra: &str) -> PathBuf {
    let pg = PgCluster::shared();
    let auth = dir.write(
        "userlist.txt",
        &userlist(&[("md5_user", &password("md5_user"))]),
    );
    let text = format!(
        "[databases]\nbench = host={} port={} dbname={db}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir = {}\nauth_type = md5\nauth_file = {}\npool_mode = transaction\ndefault_pool_size = 10\nmax_client_conn = 200\npidfile = {}\n{extra}\n",
        pg.host(),
        pg.port(),
        dir.path().display(),
        auth.display(),
        dir.join("pgsluice.pid").display(),
    );
    dir.write("pgbouncer.ini", &text)
}

/// Starts the binary in the foreground, its stderr into `log`.
fn spawn(config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(BIN)
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap()
}

async fn wait_for_pidfile(pidfile: &Path, pid: u32) {
    let pidfile = pidfile.to_path_buf();
    assert!(
        eventually(30, || {
            let pidfile = pidfile.clone();
            async move { read_pid(&pidfile) == Some(pid) }
        })
        .await,
        "pid {pid} did not write {}",
        pidfile.display()
    );
}

async fn wait_exit(mut child: Child) -> std::process::ExitStatus {
    tokio::task::spawn_blocking(move || wait_child(&mut child, Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("process exits")
}

/// Process A serves a pgbench load (a new connection per transaction, over TCP and over the
/// unix socket); process B starts beside it on the same port and socket (so_reuseport); A gets
/// SIGTERM and leaves once its clients are gone. pgbench sees no failed transaction and no
/// failed connection, and B serves alone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_with_so_reuseport_loses_nothing() {
    let pg = PgCluster::shared();
    let db = pg.create_database("rolling");
    let pw = password("md5_user");
    let init = pgbench_init(pg.host(), pg.port(), "md5_user", &db, Some(&pw), 1);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let dir = TempDir::new("pgsluice-rolling");
    let port = free_port();
    let config = ini(&dir, &db, port, "so_reuseport = 1");
    let pidfile = dir.join("pgsluice.pid");
    let a = spawn(&config, &dir.join("a.log"));
    let a_pid = a.id();
    wait_for_pidfile(&pidfile, a_pid).await;

    let port_s = port.to_string();
    let socket_dir = dir.path().display().to_string();
    let bench = |host: String| {
        let (port_s, pw) = (port_s.clone(), pw.clone());
        async move {
            let env = [("PGPASSWORD", pw.as_str())];
            let args = [
                "-h", &host, "-p", &port_s, "-U", "md5_user", "-C", "-c", "4", "-j", "2", "-T",
                "12", "-M", "simple", "-n", "bench",
            ];
            pgbench_async(&args, &env).await
        }
    };
    let tcp_load = tokio::spawn(bench("127.0.0.1".to_owned()));
    let unix_load = tokio::spawn(bench(socket_dir.clone()));

    // B starts while A serves the load (A has opened servers for it).
    let superuser = pg.superuser_client().await;
    assert!(
        eventually(20, || async { backends(&superuser, &db, None).await > 0 }).await,
        "the load never reached A's servers"
    );
    let b = spawn(&config, &dir.join("b.log"));
    let b_pid = b.id();
    wait_for_pidfile(&pidfile, b_pid).await;
    // A leaves only once B listens on the unix socket too.
    let b_log = dir.join("b.log");
    assert!(
        eventually(20, || async {
            std::fs::read_to_string(&b_log)
                .unwrap_or_default()
                .contains("took over the unix socket")
        })
        .await,
        "B did not take over the unix socket"
    );
    signal(a_pid, "TERM");
    let status = wait_exit(a).await;
    assert!(status.success(), "A: {status:?}");
    assert!(alive(b_pid), "B stopped");
    // A left B's pidfile and socket alone.
    assert_eq!(read_pid(&pidfile), Some(b_pid));
    assert!(dir.join(&format!(".s.PGSQL.{port}")).exists());

    for load in [tcp_load, unix_load] {
        let run = load.await.unwrap();
        assert!(run.success(), "{}", run.text());
        assert_eq!(run.failed.unwrap_or(0), 0, "{}", run.text());
        assert!(run.processed.unwrap_or(0) > 50, "{}", run.text());
    }
    let a_log = std::fs::read_to_string(dir.join("a.log")).unwrap();
    assert!(a_log.contains("shutdown complete"), "{a_log}");
    let b_log = std::fs::read_to_string(dir.join("b.log")).unwrap();
    assert!(b_log.contains("taking it over"), "{b_log}");
    assert!(b_log.contains("took over the unix socket"), "{b_log}");
    let out = psql_async(
        "127.0.0.1",
        port,
        "md5_user",
        "bench",
        Some(&pw),
        "select 7",
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7");

    signal(b_pid, "TERM");
    assert!(wait_exit(b).await.success());
    assert!(!pidfile.exists(), "B left its pidfile");
    assert!(!dir.join(&format!(".s.PGSQL.{port}")).exists());
    assert!(eventually(10, || async { backends(&superuser, &db, None).await == 0 }).await);
}

/// `-d` returns once the daemon listens and has written its pidfile; a second start is refused
/// while it runs; the logfile is reopened on SIGHUP (rotation); `--probe` answers; SIGTERM stops
/// the daemon and removes its pidfile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_mode_pidfile_logfile_rotation_and_probe() {
    let pg = PgCluster::shared();
    let db = pg.create_database("daemon");
    let pw = password("md5_user");
    let dir = TempDir::new("pgsluice-daemon");
    let port = free_port();
    let logfile = dir.join("pgsluice.log");
    let config = ini(&dir, &db, port, &format!("logfile = {}", logfile.display()));
    let config_s = config.to_str().unwrap();
    let probe = |config: &str| {
        let mut cmd = Command::new(BIN);
        cmd.args(["--probe", config]);
        run_with_timeout(cmd, Duration::from_secs(20)).unwrap()
    };
    assert!(
        !probe(config_s).status.success(),
        "probe answered with nothing running"
    );

    let mut cmd = Command::new(BIN);
    cmd.args(["-d", config_s]);
    let out = run_with_timeout(cmd, Duration::from_secs(40)).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pidfile = dir.join("pgsluice.pid");
    let pid = read_pid(&pidfile).expect("pidfile written before -d returns");
    assert!(alive(pid));
    assert!(probe(config_s).status.success());
    let out = psql_async(
        "127.0.0.1",
        port,
        "md5_user",
        "bench",
        Some(&pw),
        "select 3",
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");

    let mut cmd = Command::new(BIN);
    cmd.arg(config_s);
    let second = run_with_timeout(cmd, Duration::from_secs(20)).unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("names a running process"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(
        read_pid(&pidfile),
        Some(pid),
        "the refused start touched the pidfile"
    );

    let rotated = dir.join("pgsluice.log.1");
    std::fs::rename(&logfile, &rotated).unwrap();
    signal(pid, "HUP");
    let reopened = logfile.clone();
    assert!(
        eventually(20, || {
            let path = reopened.clone();
            async move {
                std::fs::read_to_string(&path).is_ok_and(|t| t.contains("configuration reloaded"))
            }
        })
        .await,
        "logfile not reopened after SIGHUP"
    );
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("listening"), "{old}");

    signal(pid, "TERM");
    assert!(
        eventually(30, || async move { !alive(pid) }).await,
        "daemon still running after SIGTERM"
    );
    assert!(!pidfile.exists());
    let log = std::fs::read_to_string(&logfile).unwrap();
    assert!(log.contains("shutdown complete"), "{log}");
}
