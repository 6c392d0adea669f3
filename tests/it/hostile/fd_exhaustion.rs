//! File-descriptor exhaustion: pgsluice (its own process) is held at a low RLIMIT_NOFILE with
//! `prlimit` while connections keep arriving. The accept loop must back off on EMFILE instead of
//! spinning: over a 3 s window at the limit, the time its threads spend on a CPU or waiting for
//! one (/proc/PID/task/*/schedstat; utime + stime from /proc/PID/stat is printed too) stays under
//! half of the window, a bound generous enough for a loaded machine and far below the whole
//! window a spinning loop is runnable for. A client that was in before keeps working, and once
//! descriptors are free again new logins succeed.

use std::process::Command;
use std::time::Duration;

use tokio::net::TcpStream;

use super::USER;
use crate::harness::files::userlist;
use crate::harness::pooler::{db_line, eventually, first_value};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw::{PoolerProcess, fd_count};

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Time on a CPU plus time runnable but waiting for one, summed over the threads, in ns
/// (/proc/PID/task/*/schedstat). Unlike CPU time alone this does not shrink when other
/// processes load the machine: a busy loop is runnable either way.
fn cpu_demand_ns(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let mut fields = text
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        total += fields.next().unwrap_or(0) + fields.next().unwrap_or(0);
    }
    total
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

fn set_nofile(pid: u32, limit: usize) {
    let status = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("prlimit (util-linux) is needed for this test");
    assert!(status.success(), "prlimit failed: {status}");
}

async fn connect(port: u16) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let conn = format!(
        "host=127.0.0.1 port={port} user={USER} password={} dbname=app connect_timeout=10",
        password(USER)
    );
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stderr,
    reason = "the measured figures go in docs/reliability.md"
)]
async fn accept_backs_off_at_the_fd_limit_and_existing_clients_keep_working() {
    let db = PgCluster::shared().create_database("hostilefds");
    let pooler = PoolerProcess::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\nauth_type = md5\nclient_login_timeout = 60\nlisten_backlog = 128",
        &userlist(&[(USER, &password(USER))]),
    );
    let pid = pooler.pid();
    let early = connect(pooler.port).await.expect("login before the limit");
    assert_eq!(
        first_value(&early, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
    let limit = fd_count(pid) + 5;
    set_nofile(pid, limit);
    // More connections than descriptors left: the rest wait in the backlog, and every accept
    // of them fails with EMFILE.
    let mut held = Vec::new();
    for _ in 0..30 {
        held.push(
            TcpStream::connect(("127.0.0.1", pooler.port))
                .await
                .unwrap(),
        );
    }
    assert!(
        eventually(20, || async { fd_count(pid) >= limit }).await,
        "the pooler never reached its fd limit ({} of {limit})",
        fd_count(pid)
    );
    let hz = clock_ticks_per_second();
    let (ticks_before, demand_before) = (cpu_ticks(pid), cpu_demand_ns(pid));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ticks = cpu_ticks(pid) - ticks_before;
    let demand = cpu_demand_ns(pid) - demand_before;
    eprintln!(
        "pgsluice at its fd limit, over 3 s: {ticks} ticks of CPU ({hz}/s), {} ms on a CPU or \
         waiting for one",
        demand / 1_000_000
    );
    // A spinning accept loop is runnable all the time: 3 s of CPU, or of waiting for one on a
    // loaded machine. A loop that backs off sleeps nearly all of it.
    assert!(
        demand < 1_500_000_000,
        "pgsluice wanted {} ms of CPU in 3 s at its fd limit: accept is spinning",
        demand / 1_000_000
    );
    // The client that was in keeps working (its server is open already).
    assert_eq!(
        first_value(&early, "select 'still working'")
            .await
            .unwrap()
            .as_deref(),
        Some("still working")
    );
    // Free the descriptors: the pooler sees the closes, and new logins get in again.
    drop(held);
    let mut ok = false;
    for _ in 0..100 {
        if let Ok(client) = connect(pooler.port).await {
            ok = first_value(&client, "select 2").await.is_ok();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "no login after descriptors were freed");
}
