//! A throwaway PostgreSQL cluster for the integration tests.
//!
//! Owns: one `initdb`-fresh cluster per test process (`PgCluster::shared()`), listening on a free
//! loopback port and on a unix socket in its own temp dir, with one login role per auth method
//! (as rust-postgres's `docker/sql_setup.sh` does) and a database per test (`create_database`).
//!
//! Does not: touch any system cluster, fixed port or shared directory; use a tokio handle at
//! start-up (every `#[tokio::test]` has its own runtime, so start-up is blocking std code).
//!
//! Invariants: postgres never outlives the test process. Statics are never dropped, so a guardian
//! shell (`GUARDIAN_SCRIPT`) started next to postgres polls the test process and, once it is gone
//! (normal exit, panic, SIGKILL), stops postgres by PID and removes the temp dir. An owned cluster
//! (`PgCluster::start`) is also stopped by `Drop`/`stop`. Every wait is a bounded poll.

use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::tools::{run_with_timeout, wait_child};

/// Where the PostgreSQL 15 server binaries live on Debian/Ubuntu.
pub const DEFAULT_BINDIR: &str = "/usr/lib/postgresql/15/bin";
/// Overrides `DEFAULT_BINDIR` (scripts/test.sh sets it when only another major is installed).
pub const BINDIR_ENV: &str = "PGSLUICE_PG_BINDIR";
/// The superuser: trust over the unix socket and TCP, for set-up only.
pub const SUPERUSER: &str = "postgres";
/// Login roles and the pg_hba.conf method each must pass over TCP and the unix socket.
pub const AUTH_ROLES: [(&str, &str); 4] = [
    ("trust_user", "trust"),
    ("pass_user", "password"),
    ("md5_user", "md5"),
    ("scram_user", "scram-sha-256"),
];

const HOST: &str = "127.0.0.1";
/// How long a cluster may take to accept connections after `postgres` is spawned.
const READY_ATTEMPTS: u32 = 600;
const READY_POLL: Duration = Duration::from_millis(100);
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Port races (another process grabs the probed port first) are retried this many times.
const START_ATTEMPTS: u32 = 3;

/// The watchdog that stops postgres when the test process is gone. Arguments: test PID, postgres
/// PID, temp dir. It ignores INT/TERM/HUP because Ctrl-C on `cargo test` signals the whole
/// foreground process group, and it must outlive the test process to clean up. It stops waiting
/// when the temp dir disappears (the normal stop path ran), and it signals only a PID that
/// `postmaster.pid` still names, so a recycled PID is never hit. (The arguments are copied into
/// named variables because inside a shell function `$1`… are the function's own.)
const GUARDIAN_SCRIPT: &str = r#"
trap '' INT TERM HUP
test_pid=$1 pg_pid=$2 dir=$3
while kill -0 "$test_pid" 2>/dev/null && [ -d "$dir" ]; do sleep 1; done
[ -d "$dir" ] || exit 0
running() {
  [ "$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)" = "$pg_pid" ] && kill -0 "$pg_pid" 2>/dev/null
}
for sig in INT QUIT KILL; do
  running || break
  kill -s "$sig" "$pg_pid" 2>/dev/null
  i=0; while [ "$i" -lt 20 ] && running; do sleep 1; i=$((i+1)); done
done
rm -rf "$dir"
"#;

/// The password of every harness role: `<role>_pw`.
pub fn password(role: &str) -> String {
    format!("{role}_pw")
}

/// The directory holding `initdb`, `postgres`, `pgbench`, `psql`…
pub fn bin_dir() -> PathBuf {
    std::env::var_os(BINDIR_ENV).map_or_else(|| PathBuf::from(DEFAULT_BINDIR), PathBuf::from)
}

/// Path of a PostgreSQL binary, e.g. `bin("pgbench")`.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// The identity postgres runs as when the tests run as root (postgres refuses to run as root).
#[derive(Clone, Copy, Debug)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl RunAs {
    fn apply(self, cmd: &mut Command) {
        // std drops supplementary groups when root switches uid, so no root group leaks through.
        cmd.uid(self.uid).gid(self.gid);
    }
}

/// How a private cluster differs from the shared one.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// `ssl = on` with this server certificate and key (PEM text).
    pub ssl: Option<(String, String)>,
    /// The harness roles may log in over TCP only with TLS (`hostssl` lines).
    pub hostssl_only: bool,
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    pid: u32,
    /// `None` once stopped; a mutex because `stop` takes `&self` (the shared cluster is `&'static`).
    server: Mutex<Option<Server>>,
    /// `(role, rolpassword)` read from pg_authid after set-up.
    secrets: Vec<(String, String)>,
}

impl PgCluster {
    /// The cluster shared by every test in this process, started on first use.
    ///
    /// Thread-safe: concurrent first callers block until one start-up finishes. A failed start-up
    /// is remembered, so every test reports the same log tail instead of retrying `initdb`.
    pub fn shared() -> &'static PgCluster {
        static SHARED: OnceLock<Result<PgCluster, String>> = OnceLock::new();
        match SHARED.get_or_init(|| PgCluster::try_start(&ClusterOptions::default())) {
            Ok(cluster) => cluster,
            Err(msg) => panic!("{msg}"),
        }
    }

    /// Starts a private cluster, stopped when the value is dropped. For tests that stop or
    /// restart the server; everything else should use `shared()`.
    pub fn start() -> PgCluster {
        PgCluster::start_with(&ClusterOptions::default())
    }

    /// Starts a private cluster with `options` (TLS, hostssl), stopped when dropped.
    pub fn start_with(options: &ClusterOptions) -> PgCluster {
        PgCluster::try_start(options).unwrap_or_else(|msg| panic!("{msg}"))
    }

    fn try_start(options: &ClusterOptions) -> Result<PgCluster, String> {
        for name in ["initdb", "postgres", "pg_isready", "psql"] {
            if !bin(name).is_file() {
                return Err(format!(
                    "{} not found: install PostgreSQL 15 (scripts/test.sh does) or set {BINDIR_ENV}",
                    bin(name).display()
                ));
            }
        }
        let run_as = run_as()?;
        let dir = make_temp_dir(run_as)?;
        let attempt =
            initdb(&dir, run_as, options).and_then(|()| start_postgres(dir.clone(), run_as));
        if attempt.is_err() {
            // Nothing is running; the log tail is already in the error.
            let _ = fs::remove_dir_all(&dir);
        }
        attempt
    }

    /// The TCP port (on `host()`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The loopback address the cluster listens on.
    #[allow(
        clippy::unused_self,
        reason = "a method like port(), so call sites need not know the address is fixed"
    )]
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// The directory holding the unix socket `.s.PGSQL.<port>` (usable as libpq `host=`).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The postmaster PID at start-up (a `restart` starts a new postmaster with another PID).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Stops the server like `pg_ctl stop -m fast` (SIGINT by PID, escalating), keeping the data
    /// dir, so that `start_again` can bring it back on the same port. Private clusters only.
    pub fn stop_server(&self) {
        let server = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            server.stop();
        }
    }

    /// Starts a server stopped by `stop_server` again on the same port and waits until it
    /// accepts connections. Panics with the log tail if it does not come up.
    pub fn start_again(&self) {
        let mut guard = self.server.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(guard.is_none(), "start_again on a running cluster");
        let run_as = run_as().unwrap_or_else(|e| panic!("{e}"));
        let mut server =
            Server::spawn(&self.dir, self.port, run_as).unwrap_or_else(|e| panic!("{e}"));
        if let Err(e) = wait_ready(&mut server, &self.dir, self.port) {
            server.stop();
            panic!("restart failed: {e}");
        }
        *guard = Some(server);
    }

    /// `pg_ctl restart -m fast`: fast shutdown (every backend terminated), then start-up on the
    /// same port and data dir. Blocking; call it from `spawn_blocking` in async tests.
    pub fn restart(&self) {
        self.stop_server();
        self.start_again();
    }

    /// `pg_ctl restart -m immediate`: SIGQUIT by PID (every backend quits at once, no
    /// checkpoint; start-up runs crash recovery), then start-up on the same port and data dir.
    /// Blocking, like `restart`.
    pub fn restart_immediate(&self) {
        let server = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            server.stop_with(&["QUIT"]);
        }
        self.start_again();
    }

    /// The running postmaster's PID (changes with every restart), `None` when stopped.
    pub fn postmaster_pid(&self) -> Option<u32> {
        self.server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|s| s.postgres.id())
    }

    /// Path of a PostgreSQL binary of the same installation.
    #[allow(
        clippy::unused_self,
        reason = "ties the binary to the cluster's installation at call sites"
    )]
    pub fn bin(&self, name: &str) -> PathBuf {
        bin(name)
    }

    /// The server log (stderr of postgres; `log_connections` is on).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// A libpq / tokio-postgres key=value connection string over TCP, with `<user>_pw`.
    pub fn conn_string(&self, user: &str, db: &str) -> String {
        format!(
            "host={HOST} port={} user={user} password={} dbname={db} connect_timeout=10",
            self.port,
            password(user)
        )
    }

    /// Connects over TCP as `user` with its harness password; the connection task runs on the
    /// caller's runtime.
    pub async fn connect(
        &self,
        user: &str,
        db: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) =
            tokio_postgres::connect(&self.conn_string(user, db), tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            // The error surfaces on the client side too; nothing to add here.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// A client connected as the superuser to database `postgres`.
    pub async fn superuser_client(&self) -> tokio_postgres::Client {
        self.connect(SUPERUSER, "postgres")
            .await
            .unwrap_or_else(|e| panic!("superuser connect failed: {e}\n{}", self.log_tail()))
    }

    /// Runs SQL as the superuser through psql (blocking; one `-c` per statement, so statements
    /// that refuse transaction blocks such as CREATE DATABASE work). Returns stdout (`-At`).
    pub fn superuser_exec(&self, db: &str, statements: &[&str]) -> String {
        superuser_psql(self.port, db, statements).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates a fresh database `<prefix>_<n>` owned by trust_user, usable by every harness role:
    /// all of them may create tables in `public` and use each other's tables.
    pub fn create_database(&self, prefix: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let clean: String = prefix
            .chars()
            .take(40)
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!("{clean}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let others = "pass_user, md5_user, scram_user";
        let all = "trust_user, pass_user, md5_user, scram_user";
        self.superuser_exec(
            "postgres",
            &[
                &format!("CREATE DATABASE \"{name}\" OWNER trust_user"),
                &format!("GRANT ALL ON DATABASE \"{name}\" TO {others}"),
            ],
        );
        self.superuser_exec(
            &name,
            &[
                &format!("GRANT ALL ON SCHEMA public TO {others}"),
                &format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {all} IN SCHEMA public \
                     GRANT ALL ON TABLES TO PUBLIC"
                ),
                &format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {all} IN SCHEMA public \
                     GRANT ALL ON SEQUENCES TO PUBLIC"
                ),
            ],
        );
        name
    }

    /// `rolpassword` of a role as stored in pg_authid. Read once at start-up: tests must not
    /// change the harness roles' passwords on the shared cluster (other tests rely on them).
    pub fn secret(&self, role: &str) -> &str {
        self.secrets.iter().find(|(r, _)| r == role).map_or_else(
            || panic!("role {role} has no stored password"),
            |(_, s)| s.as_str(),
        )
    }

    /// The stored `SCRAM-SHA-256$…` secret of a role (for userlist.txt).
    pub fn scram_secret(&self, role: &str) -> String {
        let secret = self.secret(role);
        assert!(
            secret.starts_with("SCRAM-SHA-256$"),
            "{role} is not stored as SCRAM: {secret}"
        );
        secret.to_owned()
    }

    /// The stored `md5…` secret of a role (for userlist.txt); only md5_user is stored this way.
    pub fn md5_secret(&self, role: &str) -> String {
        let secret = self.secret(role);
        assert!(
            secret.starts_with("md5") && secret.len() == 35,
            "{role} is not stored as md5: {secret}"
        );
        secret.to_owned()
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path())
    }

    /// Stops postgres by PID (fast shutdown, escalating to immediate, then SIGKILL), ends the
    /// guardian and removes the temp dir. Idempotent.
    pub fn stop(&self) {
        let server = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            server.stop();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `Some(postgres user)` when running as root, `None` otherwise.
fn run_as() -> Result<Option<RunAs>, String> {
    let id = |args: &[&str]| -> Result<u32, String> {
        let out = Command::new("id")
            .args(args)
            .output()
            .map_err(|e| format!("running id: {e}"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| {
                format!(
                    "`id {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            })
    };
    if id(&["-u"])? != 0 {
        return Ok(None);
    }
    let uid = id(&["-u", SUPERUSER])
        .map_err(|e| format!("running as root needs the `postgres` system user: {e}"))?;
    let gid = id(&["-g", SUPERUSER])?;
    Ok(Some(RunAs { uid, gid }))
}

/// A fresh, uniquely named dir under the system temp dir, owned by the user postgres runs as.
fn make_temp_dir(run_as: Option<RunAs>) -> Result<PathBuf, String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir =
        std::env::temp_dir().join(format!("pgsluice-it-pg-{}-{nanos:09}", std::process::id()));
    fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
    if let Some(ids) = run_as {
        std::os::unix::fs::chown(&dir, Some(ids.uid), Some(ids.gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        // A TMPDIR under /root would be unreachable for postgres; say so instead of failing later.
        let mut probe = Command::new("test");
        probe.arg("-w").arg(&dir).current_dir("/");
        ids.apply(&mut probe);
        if !probe.status().is_ok_and(|s| s.success()) {
            let _ = fs::remove_dir_all(&dir);
            return Err(format!(
                "user postgres cannot write {}; point TMPDIR at a world-traversable dir",
                dir.display()
            ));
        }
    }
    Ok(dir)
}

fn initdb(dir: &Path, run_as: Option<RunAs>, options: &ClusterOptions) -> Result<(), String> {
    let log_path = dir.join("initdb.log");
    let log = fs::File::create(&log_path).map_err(|e| format!("initdb log: {e}"))?;
    let log2 = log.try_clone().map_err(|e| format!("initdb log: {e}"))?;
    let mut cmd = Command::new(bin("initdb"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])
        .arg("--no-sync")
        .current_dir(dir)
        .stdin(Stdio::null())
        // A file, not a pipe: initdb's own postgres children must not hold our pipes open.
        .stdout(log)
        .stderr(log2)
        .process_group(0);
    if let Some(ids) = run_as {
        ids.apply(&mut cmd);
    }
    let mut child = cmd.spawn().map_err(|e| format!("spawning initdb: {e}"))?;
    match wait_child(&mut child, SETUP_TIMEOUT) {
        Some(status) if status.success() => {}
        Some(status) => {
            return Err(format!(
                "initdb failed ({status}):\n{}",
                log_tail(&log_path)
            ));
        }
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("initdb timed out:\n{}", log_tail(&log_path)));
        }
    }
    write_config(dir, run_as, options)
}

/// Writes the server certificate and key where postgres can read them (the key private to it).
fn write_ssl_files(
    data: &Path,
    run_as: Option<RunAs>,
    cert: &str,
    key: &str,
) -> Result<(), String> {
    for (name, text, mode) in [("server.crt", cert, 0o644), ("server.key", key, 0o600)] {
        let path = data.join(name);
        fs::write(&path, text).map_err(|e| format!("writing {name}: {e}"))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {name}: {e}"))?;
        if let Some(ids) = run_as {
            std::os::unix::fs::chown(&path, Some(ids.uid), Some(ids.gid))
                .map_err(|e| format!("chown {name}: {e}"))?;
        }
    }
    append(
        &data.join("postgresql.conf"),
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
    )
}

fn write_config(dir: &Path, run_as: Option<RunAs>, options: &ClusterOptions) -> Result<(), String> {
    let data = dir.join("data");
    if let Some((cert, key)) = &options.ssl {
        write_ssl_files(&data, run_as, cert, key)?;
    }
    let conf = format!(
        "\n# pgsluice test harness\n\
         listen_addresses = '{HOST}'\n\
         unix_socket_directories = '{}'\n\
         max_connections = 300\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n\
         password_encryption = 'scram-sha-256'\n\
         # Containers often cap /dev/shm at 64MB; file-backed DSM avoids spurious failures.\n\
         dynamic_shared_memory_type = mmap\n\
         logging_collector = off\n\
         log_connections = on\n\
         log_line_prefix = '%m [%p] %q%u@%d '\n\
         # Replication through the pooler (tests/it/replication.rs): walsenders and slots.\n\
         wal_level = logical\n\
         max_wal_senders = 10\n\
         max_replication_slots = 10\n",
        dir.display()
    );
    append(&data.join("postgresql.conf"), &conf)?;
    // Overwrite initdb's trust-for-all: the harness roles must pass their method on both the
    // socket and TCP; the superuser is trusted for set-up. No match means reject.
    let mut hba = String::from(
        "# pgsluice test harness\n\
         local all postgres trust\n\
         host  all postgres 127.0.0.1/32 trust\n\
         local replication postgres trust\n\
         host  replication postgres 127.0.0.1/32 trust\n",
    );
    let host = if options.hostssl_only {
        "hostssl"
    } else {
        "host "
    };
    for (role, method) in AUTH_ROLES {
        let _ = writeln!(hba, "local all {role} {method}");
        let _ = writeln!(hba, "{host} all {role} 127.0.0.1/32 {method}");
    }
    fs::write(data.join("pg_hba.conf"), hba).map_err(|e| format!("writing pg_hba.conf: {e}"))
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("appending to {}: {e}", path.display()))
}

/// Spawns postgres on a free port, retrying if another process takes the port first.
fn start_postgres(dir: PathBuf, run_as: Option<RunAs>) -> Result<PgCluster, String> {
    let mut last_error = String::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        let mut server = Server::spawn(&dir, port, run_as)?;
        match wait_ready(&mut server, &dir, port) {
            Ok(()) => {
                let mut cluster = PgCluster {
                    pid: server.postgres.id(),
                    dir,
                    port,
                    server: Mutex::new(Some(server)),
                    secrets: Vec::new(),
                };
                // On error `cluster` is dropped, which stops postgres and removes the dir.
                cluster.secrets =
                    setup_roles(port).map_err(|e| format!("{e}\n{}", cluster.log_tail()))?;
                return Ok(cluster);
            }
            Err(e) => {
                let port_taken = e.contains("could not bind") || e.contains("already in use");
                last_error = e;
                // The dir is kept so that a retry does not repeat initdb.
                server.stop();
                if !port_taken {
                    break;
                }
            }
        }
    }
    Err(last_error)
}

fn free_port() -> Result<u16, String> {
    // The listener is dropped before postgres binds; a race is caught by the retry above.
    TcpListener::bind((HOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// A running postmaster and the guardian watching it.
#[derive(Debug)]
struct Server {
    postgres: Child,
    guardian: Child,
}

impl Server {
    fn spawn(dir: &Path, port: u16, run_as: Option<RunAs>) -> Result<Server, String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("postgres.log"))
            .map_err(|e| format!("postgres log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("postgres log: {e}"))?;
        let mut cmd = Command::new(bin("postgres"));
        cmd.arg("-D")
            .arg(dir.join("data"))
            .arg("-p")
            .arg(port.to_string())
            .current_dir(dir)
            .stdin(Stdio::null())
            // Never our stdout/stderr: whoever reads cargo's output would wait for postgres.
            .stdout(log)
            .stderr(log2)
            // Own process group: Ctrl-C on cargo must not race the orderly stop.
            .process_group(0);
        if let Some(ids) = run_as {
            ids.apply(&mut cmd);
        }
        let mut postgres = cmd.spawn().map_err(|e| format!("spawning postgres: {e}"))?;
        let guardian = Command::new("sh")
            .arg("-c")
            .arg(GUARDIAN_SCRIPT)
            .arg("pgsluice-pg-guardian")
            .arg(std::process::id().to_string())
            .arg(postgres.id().to_string())
            .arg(dir)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        match guardian {
            Ok(guardian) => Ok(Server { postgres, guardian }),
            Err(e) => {
                let _ = postgres.kill();
                let _ = postgres.wait();
                Err(format!("spawning the guardian: {e}"))
            }
        }
    }

    /// Fast shutdown by PID, escalating to immediate shutdown, then SIGKILL; then the guardian,
    /// no longer needed, is killed by its PID and reaped.
    fn stop(self) {
        self.stop_with(&["INT", "QUIT"]);
    }

    /// Sends each of `signals` in turn until postgres exits, then SIGKILL; reaps the guardian.
    fn stop_with(mut self, signals: &[&str]) {
        let pid = self.postgres.id();
        for &sig in signals {
            send_signal(pid, sig);
            if wait_child(&mut self.postgres, Duration::from_secs(20)).is_some() {
                break;
            }
        }
        // Child::kill sends SIGKILL to this PID; a no-op error once the child was reaped.
        let _ = self.postgres.kill();
        let _ = self.postgres.wait();
        let _ = self.guardian.kill();
        let _ = self.guardian.wait();
    }
}

/// Polls `pg_isready` until the server accepts connections, postgres exits, or the deadline.
fn wait_ready(server: &mut Server, dir: &Path, port: u16) -> Result<(), String> {
    let log = dir.join("postgres.log");
    for _ in 0..READY_ATTEMPTS {
        if let Ok(Some(status)) = server.postgres.try_wait() {
            return Err(format!(
                "postgres exited during start-up ({status}):\n{}",
                log_tail(&log)
            ));
        }
        let ready = Command::new(bin("pg_isready"))
            .args(["-q", "-h", HOST, "-p", &port.to_string()])
            .args(["-U", SUPERUSER, "-d", "postgres", "-t", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Ok(());
        }
        std::thread::sleep(READY_POLL);
    }
    Err(format!(
        "postgres not ready after {}s:\n{}",
        READY_POLL.as_secs_f64() * f64::from(READY_ATTEMPTS),
        log_tail(&log)
    ))
}

/// Creates the harness roles and returns every stored `(role, rolpassword)`.
fn setup_roles(port: u16) -> Result<Vec<(String, String)>, String> {
    let mut statements = Vec::new();
    for (role, _) in AUTH_ROLES {
        // password_encryption decides how the secret is stored; md5 auth needs an md5 secret.
        let encryption = if role == "md5_user" {
            "md5"
        } else {
            "scram-sha-256"
        };
        statements.push(format!("SET password_encryption = '{encryption}'"));
        statements.push(format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{}'",
            password(role)
        ));
    }
    statements.push("SET password_encryption = 'scram-sha-256'".to_owned());
    statements.push(format!(
        "ALTER ROLE {SUPERUSER} PASSWORD '{}'",
        password(SUPERUSER)
    ));
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    superuser_psql(port, "postgres", &refs)?;
    let rows = superuser_psql(
        port,
        "postgres",
        &["SELECT rolname, rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL"],
    )?;
    Ok(rows
        .lines()
        .filter_map(|line| line.split_once('|'))
        .map(|(r, s)| (r.to_owned(), s.to_owned()))
        .collect())
}

/// One psql session as the superuser over TCP; one `-c` per statement; `-At` output.
fn superuser_psql(port: u16, db: &str, statements: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(bin("psql"));
    cmd.args(["-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-h",
            HOST,
            "-p",
            &port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            db,
        ]);
    for sql in statements {
        cmd.arg("-c").arg(sql);
    }
    super::tools::clear_libpq_env(&mut cmd);
    let out = run_with_timeout(cmd, SETUP_TIMEOUT).map_err(|t| format!("psql: {t}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "psql as {SUPERUSER} on {db} failed ({}): {}\nstatements: {statements:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn send_signal(pid: u32, sig: &str) {
    // std can only SIGKILL a child; `kill` is always present and needs no unsafe libc call.
    let _ = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn log_tail(path: &Path) -> String {
    const LINES: usize = 60;
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LINES);
            format!(
                "--- last lines of {} ---\n{}",
                path.display(),
                lines.get(start..).unwrap_or_default().join("\n")
            )
        }
        Err(e) => format!("(no log at {}: {e})", path.display()),
    }
}
