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

use crate::harness::files::{TempDir, userlist};
use crate::harness::pooler::{Pooler, db_line, eventually, first_value};
use crate::harness::postgres::{PgCluster, SUPERUSER};
use crate::harness::raw::{error_code, message, read_message};
use crate::harness::tools::{libpq_command, run_with_timeout};

const TOOL_TIMEOUT: Duration = Duration::from_secs(40);

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
