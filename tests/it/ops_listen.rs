//! Listening as PgBouncer does: `listen_addr` lists, `*`, IPv6, the unix socket with its mode
//! and group, psql's default socket directory, and the abstract namespace.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use pgsluice::app::{self, Running};
use pgsluice::config::Config;

use crate::harness::files::{TempDir, userlist};
use crate::harness::pooler::{connect_spawned, db_line, first_value, free_port};
use crate::harness::postgres::{PgCluster, bin, password};
use crate::harness::tools::{clear_libpq_env, psql_async, required, run_with_timeout};

/// Starts a pooler in-process with `[pgbouncer]` lines `listen` (listen_addr, unix_socket_*).
fn start(dir: &TempDir, db: &str, port: u16, listen: &str) -> Running {
    let auth = dir.write(
        "userlist.txt",
        &userlist(&[("md5_user", &password("md5_user"))]),
    );
    let ini = format!(
        "[databases]\n{}[pgbouncer]\nlisten_port = {port}\nauth_file = {}\npool_mode = transaction\n{listen}\n",
        db_line("app", db, ""),
        auth.display()
    );
    let config = Config::load(&dir.write("pgbouncer.ini", &ini)).unwrap();
    app::start(config).expect("pooler starts")
}

async fn select_via(host: &str, port: u16) -> String {
    let pw = password("md5_user");
    let conn = format!(
        "host={host} port={port} user=md5_user password={pw} dbname=app connect_timeout=10"
    );
    let client = connect_spawned(&conn.parse().unwrap())
        .await
        .unwrap_or_else(|e| panic!("connect via {host}: {e}"));
    first_value(&client, "select 42").await.unwrap().unwrap()
}

async fn stop(running: Running) {
    running.shutdown().immediate();
    running.wait().await;
}

/// A list with IPv4 and IPv6 addresses, and a unix socket with mode 0770 and group `postgres`
/// that psql connects through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_list_ipv6_and_unix_socket_mode_and_group() {
    let pg = PgCluster::shared();
    let db = pg.create_database("listen_list");
    let dir = TempDir::new("pgsluice-listen");
    let port = free_port();
    let root = nix::unistd::geteuid().is_root();
    let group = if root {
        "unix_socket_group = postgres"
    } else {
        ""
    };
    let running = start(
        &dir,
        &db,
        port,
        &format!(
            "listen_addr = 127.0.0.1, ::1\nunix_socket_dir = {}\nunix_socket_mode = 0770\n{group}",
            dir.path().display()
        ),
    );
    assert_eq!(running.tcp_addrs.len(), 2, "{:?}", running.tcp_addrs);
    assert_eq!(select_via("127.0.0.1", port).await, "42");
    assert_eq!(select_via("::1", port).await, "42");
    let socket = dir.join(&format!(".s.PGSQL.{port}"));
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o770);
    if root {
        let postgres = nix::unistd::Group::from_name("postgres").unwrap().unwrap();
        assert_eq!(meta.gid(), postgres.gid.as_raw());
    }
    let pw = password("md5_user");
    let host = dir.path().display().to_string();
    let out = psql_async(&host, port, "md5_user", "app", Some(&pw), "select 5").await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5", "{out:?}");
    stop(running).await;
    assert!(!socket.exists(), "socket file left behind");
}

/// `listen_addr = *` listens on every IPv4 and IPv6 address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_listens_on_ipv4_and_ipv6() {
    let pg = PgCluster::shared();
    let db = pg.create_database("listen_star");
    let dir = TempDir::new("pgsluice-star");
    let port = free_port();
    let running = start(&dir, &db, port, "listen_addr = *\nunix_socket_dir =");
    assert_eq!(select_via("127.0.0.1", port).await, "42");
    assert_eq!(select_via("::1", port).await, "42");
    stop(running).await;
}

/// With `unix_socket_dir = /var/run/postgresql`, a bare `psql -p PORT` (no host) reaches the
/// pooler through libpq's default socket, as with PgBouncer; `@name` listens in the abstract
/// namespace, which libpq reaches as `host=@name`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, to listen in /var/run/postgresql (scripts/test.sh runs it as root)"]
async fn psql_default_socket_and_abstract_namespace_needs_root() {
    let default_dir = std::path::Path::new("/var/run/postgresql");
    let probe = default_dir.join(format!(".pgsluice-it-{}", std::process::id()));
    let written = std::fs::write(&probe, "");
    let _ = std::fs::remove_file(&probe);
    required(
        "a writable /var/run/postgresql (root)",
        written.map_err(|e| format!("cannot write there: {e}")),
    );
    let pg = PgCluster::shared();
    let db = pg.create_database("listen_default");
    let dir = TempDir::new("pgsluice-default-socket");
    let port = free_port();
    let running = start(&dir, &db, port, "unix_socket_dir = /var/run/postgresql");
    let pw = password("md5_user");
    let bare_psql = |host: Option<String>| {
        let pw = pw.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(bin("psql"));
            clear_libpq_env(&mut cmd);
            if let Some(host) = host {
                cmd.args(["-h", &host]);
            }
            cmd.env("PGPASSWORD", pw).args([
                "-X",
                "-A",
                "-t",
                "-w",
                "-p",
                &port.to_string(),
                "-U",
                "md5_user",
                "-d",
                "app",
                "-c",
                "select 9",
            ]);
            run_with_timeout(cmd, std::time::Duration::from_secs(60)).unwrap()
        })
    };
    let out = bare_psql(None).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "9", "{out:?}");
    stop(running).await;
    assert!(!default_dir.join(format!(".s.PGSQL.{port}")).exists());

    let name = format!("pgsluice-it-{}", std::process::id());
    let running = start(&dir, &db, port, &format!("unix_socket_dir = @{name}"));
    let out = bare_psql(Some(format!("@{name}"))).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "9", "{out:?}");
    stop(running).await;
}
