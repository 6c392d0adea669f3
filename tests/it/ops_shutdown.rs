//! Shutdown through the real binary, with PgBouncer's stages: SIGTERM and SHUTDOWN
//! WAIT_FOR_CLIENTS wait for every client, SIGINT waits for the servers in use; during a
//! shutdown TCP is closed and the unix socket still reaches the console (pooled logins there are
//! refused); a second SIGTERM or SIGINT exits at once and clients see the connection close
//! without a message, as when PgBouncer exits.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio_postgres::Client;

use crate::harness::files::{TempDir, userlist};
use crate::harness::pooler::{connect_spawned, eventually, free_port};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::tools::wait_child;

const BIN: &str = env!("CARGO_BIN_EXE_pgsluice");
const USER: &str = "md5_user";

struct Bouncer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl Bouncer {
    /// The binary in front of a fresh database `app`, on TCP and a unix socket in its dir.
    async fn start(prefix: &str, pool_mode: &str) -> Bouncer {
        let pg = PgCluster::shared();
        let db = pg.create_database(prefix);
        let dir = TempDir::new("pgsluice-shutdown");
        let port = free_port();
        let auth = dir.write("userlist.txt", &userlist(&[(USER, &password(USER))]));
        let ini = format!(
            "[databases]\napp = host={} port={} dbname={db}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir = {}\nauth_type = md5\nauth_file = {}\nadmin_users = {USER}\npool_mode = {pool_mode}\n",
            pg.host(),
            pg.port(),
            dir.path().display(),
            auth.display()
        );
        let config = dir.write("pgbouncer.ini", &ini);
        let log = std::fs::File::create(dir.join("pgsluice.log")).unwrap();
        let child = Command::new(BIN)
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let bouncer = Bouncer {
            child: Some(child),
            port,
            dir,
        };
        assert!(
            eventually(30, || async { bouncer.tcp_open() }).await,
            "pgsluice did not start listening"
        );
        bouncer
    }

    fn tcp_open(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgsluice.log")).unwrap_or_default()
    }

    /// Connects over TCP, or over the unix socket.
    async fn connect(&self, db: &str, unix: bool) -> Result<Client, tokio_postgres::Error> {
        let host = if unix {
            self.dir.path().display().to_string()
        } else {
            "127.0.0.1".to_owned()
        };
        let conn = format!(
            "host={host} port={} user={USER} password={} dbname={db} connect_timeout=10",
            self.port,
            password(USER)
        );
        connect_spawned(&conn.parse()?).await
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} {pid}");
    }

    fn running(&mut self) -> bool {
        matches!(self.child.as_mut().unwrap().try_wait(), Ok(None))
    }

    /// Waits for the process to exit by itself.
    async fn exited(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let log = self.log();
        tokio::task::spawn_blocking(move || wait_child(&mut child, Duration::from_secs(30)))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("pgsluice still running\n{log}"))
    }

    /// Once TCP is closed (the shutdown began): the console still answers on the unix socket,
    /// and a pooled login there is refused.
    async fn console_only_on_unix(&self) {
        assert!(
            eventually(30, || async { !self.tcp_open() }).await,
            "TCP still open during shutdown"
        );
        assert!(self.connect("app", false).await.is_err());
        let console = self
            .connect("pgbouncer", true)
            .await
            .expect("console on unix");
        console
            .simple_query("SHOW VERSION")
            .await
            .expect("SHOW VERSION");
        let err = self.connect("app", true).await.unwrap_err();
        assert_eq!(
            err.as_db_error().map(|e| e.message().to_owned()).as_deref(),
            Some("pooler is shutting down"),
            "{err}"
        );
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The connection was closed without an ErrorResponse.
fn closed_silently(result: Result<Vec<tokio_postgres::SimpleQueryMessage>, tokio_postgres::Error>) {
    let err = result.expect_err("the connection is gone");
    assert!(err.as_db_error().is_none(), "got a message: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_clients_and_a_second_one_exits_at_once() {
    let mut bouncer = Bouncer::start("shutterm", "transaction").await;
    let client = bouncer.connect("app", false).await.unwrap();
    client.simple_query("select 1").await.unwrap();
    bouncer.signal("TERM");
    bouncer.console_only_on_unix().await;
    client
        .simple_query("select 2")
        .await
        .expect("a connected client goes on");
    assert!(bouncer.running());
    bouncer.signal("TERM");
    assert!(bouncer.exited().await.success());
    closed_silently(client.simple_query("select 3").await);
    assert!(
        bouncer
            .log()
            .contains("got SIGTERM while shutting down, fast exit"),
        "{}",
        bouncer.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_waits_for_the_servers_in_use() {
    let mut bouncer = Bouncer::start("shutint", "session").await;
    let client = bouncer.connect("app", false).await.unwrap();
    client.simple_query("select 1").await.unwrap();
    bouncer.signal("INT");
    bouncer.console_only_on_unix().await;
    // In session mode the client holds its server: the process waits for it.
    client
        .simple_query("select 2")
        .await
        .expect("the session goes on");
    assert!(bouncer.running());
    drop(client);
    assert!(bouncer.exited().await.success());
    assert!(
        bouncer
            .log()
            .contains("server connections dropped, exiting"),
        "{}",
        bouncer.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_wait_for_clients_counts_console_sessions() {
    let mut bouncer = Bouncer::start("shutcmd", "transaction").await;
    let client = bouncer.connect("app", false).await.unwrap();
    client.simple_query("select 1").await.unwrap();
    let console = bouncer.connect("pgbouncer", true).await.unwrap();
    console
        .simple_query("SHUTDOWN WAIT_FOR_CLIENTS")
        .await
        .expect("SHUTDOWN answers");
    bouncer.console_only_on_unix().await;
    drop(client);
    // The console session still holds the process.
    console.simple_query("SHOW VERSION").await.unwrap();
    assert!(bouncer.running());
    drop(console);
    assert!(bouncer.exited().await.success());
    let socket = bouncer.dir.join(&format!(".s.PGSQL.{}", bouncer.port));
    assert!(!socket.exists(), "the socket file is removed at exit");
}

/// SHUTDOWN WAIT_FOR_SERVERS, as PgBouncer: a running transaction goes on; a client queued for
/// a server is let go ("server shutting down") while it runs; an idle client is not closed at
/// once but told "server shutting down" when it next asks for a server; the process exits
/// once the transaction has given its server back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_servers_lets_clients_go_when_they_need_a_server() {
    let mut bouncer = Bouncer::start("shutwfs", "transaction\ndefault_pool_size = 1").await;
    let busy = bouncer.connect("app", false).await.unwrap();
    busy.batch_execute("begin; select 1").await.unwrap();
    let idle = bouncer.connect("app", false).await.unwrap();
    let queued = bouncer.connect("app", false).await.unwrap();
    let queued = tokio::spawn(async move { queued.simple_query("select 2").await.map(drop) });
    let console = bouncer.connect("pgbouncer", true).await.unwrap();
    let waiting = eventually(30, || async {
        console
            .simple_query("SHOW POOLS")
            .await
            .unwrap()
            .iter()
            .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get("cl_waiting") == Some("1")))
    })
    .await;
    assert!(waiting, "the third client is queued");
    console
        .simple_query("SHUTDOWN WAIT_FOR_SERVERS")
        .await
        .expect("SHUTDOWN answers");
    let err = tokio::time::timeout(Duration::from_secs(10), queued)
        .await
        .expect("the queued client is let go")
        .unwrap()
        .expect_err("no server for it");
    assert_eq!(
        err.as_db_error()
            .map(tokio_postgres::error::DbError::message),
        Some("server shutting down"),
        "{err:?}"
    );
    busy.simple_query("select 3")
        .await
        .expect("the transaction goes on");
    let err = idle
        .simple_query("select 4")
        .await
        .expect_err("no server for it");
    assert_eq!(
        err.as_db_error()
            .map(tokio_postgres::error::DbError::message),
        Some("server shutting down"),
        "told at its query, not closed before: {err:?}"
    );
    busy.batch_execute("commit").await.unwrap();
    assert!(bouncer.exited().await.success());
    assert!(
        bouncer
            .log()
            .contains("closing because: server shutting down"),
        "{}",
        bouncer.log()
    );
}
