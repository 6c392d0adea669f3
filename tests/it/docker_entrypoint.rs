//! `docker/entrypoint.sh` without Docker: the ini and userlist it writes from environment
//! variables (edoburu and bitnami names), checked by `pgsluice --check`; a mounted ini left
//! alone; and a full start through the script against the test cluster.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::harness::files::TempDir;
use crate::harness::pooler::free_port;
use crate::harness::postgres::{PgCluster, password};
use crate::harness::tools::{psql_async, run_with_timeout, wait_child};

const BIN: &str = env!("CARGO_BIN_EXE_pgsluice");

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/entrypoint.sh")
}

/// The directory holding the pgsluice binary, for the script's PATH.
fn bin_dir() -> String {
    Path::new(BIN).parent().unwrap().display().to_string()
}

/// Runs the entrypoint with only `vars` (plus PATH and the output directory) in its
/// environment, generating files only.
fn generate(dir: &TempDir, vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg(script())
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir()))
        .env("PGSLUICE_CONFIG_DIR", dir.path())
        .env("PGSLUICE_GENERATE_ONLY", "1")
        .envs(vars.iter().copied());
    run_with_timeout(cmd, Duration::from_secs(30)).unwrap()
}

/// `pgsluice --check` of the generated ini: its effective configuration.
fn check(dir: &TempDir) -> String {
    let mut cmd = Command::new(BIN);
    cmd.arg("--check").arg(dir.join("pgbouncer.ini"));
    let out = run_with_timeout(cmd, Duration::from_secs(30)).unwrap();
    assert!(
        out.status.success(),
        "--check failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("pgbouncer.ini")).unwrap_or_default()
    );
    String::from_utf8(out.stdout).unwrap()
}

fn assert_lines(text: &str, expected: &[&str]) {
    for line in expected {
        assert!(
            text.lines().any(|l| l == *line),
            "missing {line:?} in:\n{text}"
        );
    }
}

#[test]
fn database_url_and_edoburu_variables() {
    let dir = TempDir::new("entrypoint-url");
    let out = generate(
        &dir,
        &[
            (
                "DATABASE_URL",
                "postgresql://app%40corp:p%40ss%20w%3Ard%22@db.internal:5433/app?sslmode=require",
            ),
            ("POOL_MODE", "transaction"),
            ("DEFAULT_POOL_SIZE", "40"),
            ("MAX_CLIENT_CONN", "500"),
            ("LISTEN_PORT", "5432"),
            ("AUTH_TYPE", "scram-sha-256"),
            ("ADMIN_USERS", "admin"),
            ("STATS_USERS", "stats, monitor"),
            ("SERVER_IDLE_TIMEOUT", "120"),
            ("QUERY_WAIT_TIMEOUT", "30"),
            ("TCP_KEEPIDLE", "60"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effective = check(&dir);
    assert_lines(
        &effective,
        &[
            "app = host=db.internal port=5433 dbname=app",
            "pool_mode = transaction",
            "default_pool_size = 40",
            "max_client_conn = 500",
            "listen_addr = *",
            "listen_port = 5432",
            "unix_socket_dir = ",
            "auth_type = scram-sha-256",
            "admin_users = admin",
            "stats_users = stats, monitor",
            "server_tls_sslmode = require",
            "server_idle_timeout = 120",
            "query_wait_timeout = 30",
            "tcp_keepidle = 60",
            "ignore_startup_parameters = extra_float_digits",
            "app@corp",
        ],
    );
    let userlist = std::fs::read_to_string(dir.join("userlist.txt")).unwrap();
    assert_eq!(userlist, "\"app@corp\" \"p@ss w:rd\"\"\"\n");
    let mode = std::fs::metadata(dir.join("userlist.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "userlist.txt readable by others: {mode:o}");
}

#[test]
fn bitnami_variables_and_pgsluice_section() {
    let dir = TempDir::new("entrypoint-bitnami");
    let out = generate(
        &dir,
        &[
            ("POSTGRESQL_HOST", "pg.svc"),
            ("POSTGRESQL_USERNAME", "svc"),
            ("POSTGRESQL_PASSWORD", "pw"),
            ("POSTGRESQL_DATABASE", "orders"),
            ("PGBOUNCER_DATABASE", "orders_pool"),
            ("PGBOUNCER_PORT", "6543"),
            ("PGBOUNCER_POOL_MODE", "session"),
            ("PGBOUNCER_MIN_POOL_SIZE", "2"),
            ("PGSLUICE_LOG_FORMAT", "json"),
            ("PGSLUICE_WORKER_THREADS", "2"),
            // A shell's USER must not become `user =` (only PGBOUNCER_USER does).
            ("USER", "nobody"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_lines(
        &check(&dir),
        &[
            "orders_pool = host=pg.svc port=5432 dbname=orders",
            "listen_port = 6543",
            "pool_mode = session",
            "min_pool_size = 2",
            "log_format = json",
            "worker_threads = 2",
            "user = ",
            "svc",
        ],
    );
}

#[test]
fn fallback_database_mounted_config_and_errors() {
    let dir = TempDir::new("entrypoint-vars");
    let out = generate(
        &dir,
        &[
            ("DB_HOST", "10.0.0.5"),
            ("DB_USER", "u"),
            ("DB_PASSWORD", "p"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_lines(&check(&dir), &["* = host=10.0.0.5 port=5432", "u"]);

    // An existing (mounted) ini is used as it is.
    let mounted = TempDir::new("entrypoint-mounted");
    let ini = "[databases]\nx = host=h\n[pgbouncer]\nlisten_port = 7000\n";
    mounted.write("pgbouncer.ini", ini);
    let out = generate(
        &mounted,
        &[("DB_HOST", "elsewhere"), ("POOL_MODE", "statement")],
    );
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(mounted.join("pgbouncer.ini")).unwrap(),
        ini
    );

    let empty = TempDir::new("entrypoint-empty");
    let out = generate(&empty, &[("POOL_MODE", "transaction")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL or DB_HOST"));
    let out = generate(&empty, &[("DATABASE_URL", "mysql://x@y/z")]);
    assert!(!out.status.success());
    // A bad value is caught by --check before pgsluice would start.
    let bad = TempDir::new("entrypoint-bad");
    let out = generate(&bad, &[("DB_HOST", "h"), ("POOL_MODE", "sometimes")]);
    assert!(out.status.success());
    let mut cmd = Command::new(BIN);
    cmd.arg("--check").arg(bad.join("pgbouncer.ini"));
    assert!(
        !run_with_timeout(cmd, Duration::from_secs(30))
            .unwrap()
            .status
            .success()
    );
}

/// `docker run IMAGE sh`: a command that is not an option runs instead of pgsluice, without any
/// variable set (no config to write, and that is no error), and with the files written when
/// there are variables to write them from.
#[test]
fn another_command_runs_with_or_without_variables() {
    let run = |dir: &TempDir, vars: &[(&str, &str)]| {
        let mut cmd = Command::new("sh");
        cmd.arg(script())
            .args(["sh", "-c", "echo ran:$0", "other"])
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir()))
            .env("PGSLUICE_CONFIG_DIR", dir.path())
            .envs(vars.iter().copied());
        run_with_timeout(cmd, Duration::from_secs(30)).unwrap()
    };
    let bare = TempDir::new("entrypoint-other-bare");
    let out = run(&bare, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran:other\n");
    assert!(!bare.join("pgbouncer.ini").exists());

    let with_vars = TempDir::new("entrypoint-other-vars");
    let out = run(
        &with_vars,
        &[("DATABASE_URL", "postgres://app:pw@db.internal/app")],
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran:other\n");
    assert_lines(
        &check(&with_vars),
        &["app = host=db.internal port=5432 dbname=app"],
    );
}

/// The whole container start without a container: the script writes the files, checks them,
/// and execs pgsluice, which serves psql, answers `--probe`, and stops on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entrypoint_starts_a_working_pooler() {
    let pg = PgCluster::shared();
    let db = pg.create_database("entrypoint");
    let pw = password("md5_user");
    let dir = TempDir::new("entrypoint-live");
    let port = free_port().to_string();
    let mut child = Command::new("sh")
        .arg(script())
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir()))
        .env("PGSLUICE_CONFIG_DIR", dir.path())
        .env(
            "DATABASE_URL",
            format!("postgres://md5_user:{pw}@{}:{}/{db}", pg.host(), pg.port()),
        )
        .env("LISTEN_ADDR", "127.0.0.1")
        .env("LISTEN_PORT", &port)
        .env("POOL_MODE", "transaction")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let port: u16 = port.parse().unwrap();
    let ini = dir.join("pgbouncer.ini");
    let probe = move || {
        let mut cmd = Command::new(BIN);
        cmd.arg("--probe").arg(&ini);
        run_with_timeout(cmd, Duration::from_secs(10))
            .unwrap()
            .status
            .success()
    };
    let mut up = false;
    for _ in 0..200 {
        if tokio::task::spawn_blocking(probe.clone()).await.unwrap() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        up,
        "the pooler started by the entrypoint never answered --probe"
    );
    let out = psql_async("127.0.0.1", port, "md5_user", &db, Some(&pw), "select 11").await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "11", "{out:?}");
    // exec: the script's pid is pgsluice's.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status =
        tokio::task::spawn_blocking(move || wait_child(&mut child, Duration::from_secs(30)))
            .await
            .unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// The Dockerfile's contract, read from the file (scripts/docker-test.sh builds and runs the
/// image with podman): the same build command as CI, a Debian bookworm-slim runtime, a prebuilt
/// binary as the alternative to the build stage, a non-root user, the entrypoint and the probe
/// health check.
#[test]
fn dockerfile_contract() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("docker/Dockerfile")).unwrap();
    for needle in [
        "RUN cargo build --release --locked",
        "ARG RUNTIME_IMAGE=debian:bookworm-slim",
        "FROM ${RUNTIME_IMAGE} AS runtime",
        "ARG PGSLUICE_BINARY=source",
        "FROM build-${PGSLUICE_BINARY} AS build",
        "COPY dist/pgsluice /usr/local/bin/pgsluice",
        "USER 10001:10001",
        "COPY docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh",
        "ENTRYPOINT [\"docker-entrypoint.sh\"]",
        "\"pgsluice\", \"--probe\", \"/etc/pgbouncer/pgbouncer.ini\"",
    ] {
        assert!(
            dockerfile.contains(needle),
            "docker/Dockerfile lacks {needle:?}"
        );
    }
    let toolchain = std::fs::read_to_string(root.join("rust-toolchain.toml")).unwrap();
    let pinned = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        dockerfile.contains(&format!("ARG RUST_VERSION={pinned}")),
        "docker/Dockerfile's RUST_VERSION differs from rust-toolchain.toml ({pinned})"
    );
    let compose = std::fs::read_to_string(root.join("docker/docker-compose.yml")).unwrap();
    assert!(compose.contains("dockerfile: docker/Dockerfile"));
}
