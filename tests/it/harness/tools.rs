//! `psql` and `pgbench` as subprocesses, always with a timeout.
//!
//! Owns: running a command to completion within a bounded number of polls, killing it by its PID
//! when the time is up; parsing pgbench's summary.
//!
//! Does not: inherit the developer's libpq environment (`PGPASSWORD`, `~/.pgpass`, `PGHOST`…), which
//! would let a test pass for the wrong reason.
//!
//! The functions block. From a `#[tokio::test]` that also runs the pooler in-process, use the
//! `*_async` wrappers (they move the wait to `spawn_blocking`); a blocking call on a
//! current-thread runtime would starve the pooler the subprocess talks to.

use std::fmt;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use super::postgres::bin;

/// Sends `sig` to `pid` through nix's safe wrapper of kill(2) (no `kill` binary needed).
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) -> nix::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| nix::errno::Errno::ESRCH)?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
}

/// What a `*_needs_TOOL` test does when its tool is missing: it fails, saying what is missing and
/// how to get it. Such tests are `#[ignore = "needs TOOL ..."]`, so a plain `cargo test` reports
/// them as ignored with that reason; `scripts/test.sh` runs every one whose tool it found (and,
/// with `CI=true`, every one: in CI a missing tool is a failure, never a pass).
pub fn required<T>(tool: &str, found: Result<T, String>) -> T {
    found.unwrap_or_else(|why| {
        panic!("this test needs {tool}, which is missing: {why} (scripts/test.sh installs it)")
    })
}

/// How long `psql` may run.
pub const PSQL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `pgbench` (including `-i`) may run.
pub const PGBENCH_TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(10);

/// libpq variables that would change where or how a client connects.
const LIBPQ_ENV: [&str; 12] = [
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
    "PGOPTIONS",
    "PGAPPNAME",
];

/// Removes the caller's libpq settings and points the password file at nothing, so a
/// connection only has what the test passes explicitly.
pub fn clear_libpq_env(cmd: &mut Command) {
    for var in LIBPQ_ENV {
        cmd.env_remove(var);
    }
    cmd.env(
        "PGPASSFILE",
        std::env::temp_dir().join("pgsluice-it-no-such-pgpass"),
    )
    .env("PGCONNECT_TIMEOUT", "10");
}

/// Polls `child` until it exits or `timeout` elapses (a bounded number of polls; no clock, so a
/// paused tokio clock cannot stretch it). `None` means it is still running.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let polls = timeout.as_millis() / POLL.as_millis() + 1;
    for _ in 0..polls {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => std::thread::sleep(POLL),
            // The child was already reaped: treat as gone rather than spin.
            Err(_) => return child.wait().ok(),
        }
    }
    None
}

/// A command that outlived its timeout and was killed; what it printed until then.
#[derive(Debug)]
pub struct TimedOut {
    /// What was run.
    pub command: String,
    /// The PID that was sent SIGKILL.
    pub pid: u32,
    /// The timeout that elapsed.
    pub timeout: Duration,
    /// Output captured before the kill.
    pub output: Output,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (pid {}) timed out after {:?} and was killed\nstdout: {}\nstderr: {}",
            self.command,
            self.pid,
            self.timeout,
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }
}

/// Runs `cmd` with stdin closed and stdout/stderr captured; kills it by its PID after `timeout`.
///
/// Panics if the program cannot be spawned (a broken test environment, not a test result).
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Output, TimedOut> {
    let command = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {command}: {e}"));
    // Pipes are drained on threads so a chatty child cannot block on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let finished = wait_child(&mut child, timeout);
    let timed_out = finished.is_none();
    let status = finished.unwrap_or_else(|| {
        // Child::kill is SIGKILL to exactly this PID.
        let _ = child.kill();
        child
            .wait()
            .unwrap_or_else(|e| panic!("waiting for killed {command}: {e}"))
    });
    let output = Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    };
    if timed_out {
        Err(TimedOut {
            command,
            pid: child.id(),
            timeout,
            output,
        })
    } else {
        Ok(output)
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error just truncates what the test sees; the exit status still tells.
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

fn join(handle: JoinHandle<Vec<u8>>) -> Vec<u8> {
    handle.join().unwrap_or_default()
}

/// `program` (a PostgreSQL client binary) aimed at `host:port` as `user`, with a clean libpq
/// environment.
pub fn libpq_command(
    program: &str,
    host: &str,
    port: u16,
    user: &str,
    password: Option<&str>,
) -> Command {
    let mut cmd = Command::new(bin(program));
    clear_libpq_env(&mut cmd);
    cmd.args(["-h", host, "-p", &port.to_string(), "-U", user]);
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    cmd
}

/// Runs `sql` through `psql -X -A -t -w -v ON_ERROR_STOP=1` (unaligned, tuples only, never
/// prompts for a password). Check `status` yourself: a failed login is a result, not a panic.
/// `host` may be a unix socket directory.
pub fn psql(
    host: &str,
    port: u16,
    user: &str,
    db: &str,
    password: Option<&str>,
    sql: &str,
) -> Output {
    let mut cmd = libpq_command("psql", host, port, user, password);
    cmd.args(PSQL_OPTIONS).args(["-d", db, "-c", sql]);
    run_with_timeout(cmd, PSQL_TIMEOUT).unwrap_or_else(|t| panic!("{t}"))
}

/// psql's options in every test: no psqlrc, unaligned, tuples only, never prompt for a
/// password, stop at the first error.
const PSQL_OPTIONS: [&str; 6] = ["-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1"];

/// Runs `sql` through psql (options as [`psql`]) with a libpq connection string and extra
/// environment, on a blocking thread.
pub async fn psql_conninfo(conninfo: &str, sql: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin("psql"));
    clear_libpq_env(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(PSQL_OPTIONS).args(["-d", conninfo, "-c", sql]);
    tokio::task::spawn_blocking(move || {
        run_with_timeout(cmd, PSQL_TIMEOUT).unwrap_or_else(|t| panic!("{t}"))
    })
    .await
    .unwrap()
}

/// A command's stdout, trimmed.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A command's stderr, trimmed.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

/// `psql` on a blocking thread, for tests whose runtime also drives the pooler.
pub async fn psql_async(
    host: &str,
    port: u16,
    user: &str,
    db: &str,
    password: Option<&str>,
    sql: &str,
) -> Output {
    let (host, user, db, sql) = (
        host.to_owned(),
        user.to_owned(),
        db.to_owned(),
        sql.to_owned(),
    );
    let password = password.map(str::to_owned);
    tokio::task::spawn_blocking(move || psql(&host, port, &user, &db, password.as_deref(), &sql))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// `pgbench -i -q -s <scale>` into `db`. Check `status` yourself.
pub fn pgbench_init(
    host: &str,
    port: u16,
    user: &str,
    db: &str,
    password: Option<&str>,
    scale: u32,
) -> Output {
    let mut cmd = libpq_command("pgbench", host, port, user, password);
    cmd.args(["-i", "-q", "-s", &scale.to_string(), db]);
    run_with_timeout(cmd, PGBENCH_TIMEOUT).unwrap_or_else(|t| panic!("{t}"))
}

/// A finished pgbench run and the figures parsed from its summary (`None` when absent, e.g.
/// when the run failed before printing it).
#[derive(Debug)]
pub struct PgbenchRun {
    /// Exit status and raw output.
    pub output: Output,
    /// `tps = …` (without initial connection time).
    pub tps: Option<f64>,
    /// `latency average = … ms`.
    pub latency_avg_ms: Option<f64>,
    /// `number of transactions actually processed: N[/M]`.
    pub processed: Option<u64>,
    /// `number of failed transactions: N` (printed since PostgreSQL 15).
    pub failed: Option<u64>,
}

impl PgbenchRun {
    /// Whether pgbench exited 0.
    pub fn success(&self) -> bool {
        self.output.status.success()
    }

    /// stdout and stderr, for assertion messages.
    pub fn text(&self) -> String {
        format!(
            "status: {}\nstdout:\n{}\nstderr:\n{}",
            self.output.status,
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }
}

/// Runs pgbench with exactly `args` (connection options included) and extra environment `env`
/// (e.g. `PGPASSWORD`); the caller's libpq environment is cleared first.
pub fn pgbench(args: &[&str], env: &[(&str, &str)]) -> PgbenchRun {
    let mut cmd = Command::new(bin("pgbench"));
    clear_libpq_env(&mut cmd);
    cmd.args(args).envs(env.iter().copied());
    let output = run_with_timeout(cmd, PGBENCH_TIMEOUT).unwrap_or_else(|t| panic!("{t}"));
    parse_pgbench(output)
}

/// `pgbench` on a blocking thread, for tests whose runtime also drives the pooler.
pub async fn pgbench_async(args: &[&str], env: &[(&str, &str)]) -> PgbenchRun {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pgbench(&args, &env)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Extracts the summary figures from pgbench's stdout.
pub fn parse_pgbench(output: Output) -> PgbenchRun {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut run = PgbenchRun {
        output,
        tps: None,
        latency_avg_ms: None,
        processed: None,
        failed: None,
    };
    for line in stdout.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("tps = ") {
            run.tps = first_word(rest).and_then(|w| w.parse().ok());
        } else if let Some(rest) = line.strip_prefix("latency average = ") {
            run.latency_avg_ms = first_word(rest).and_then(|w| w.parse().ok());
        } else if let Some(rest) = line.strip_prefix("number of transactions actually processed: ")
        {
            run.processed = rest.split('/').next().and_then(|n| n.trim().parse().ok());
        } else if let Some(rest) = line.strip_prefix("number of failed transactions: ") {
            run.failed = first_word(rest).and_then(|w| w.parse().ok());
        }
    }
    run
}

fn first_word(text: &str) -> Option<&str> {
    text.split_whitespace().next()
}
