//! The admin console (`pgbouncer` database): column lists per emulated PgBouncer version, true
//! numbers under a controlled load, access rules, and each control command's effect. Driven
//! with tokio-postgres (simple protocol) and with `psql -At`, as shell scripts do.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line, eventually, sqlstate};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::tools::psql_async;

const ADMIN: (&str, &str) = ("admin", "admin_pw");
const STATS: (&str, &str) = ("stats", "stats_pw");

fn users() -> String {
    userlist(&[
        ("md5_user", &password("md5_user")),
        ADMIN,
        STATS,
        ("nobody", "nobody_pw"),
    ])
}

fn settings(extra: &str) -> String {
    format!(
        "pool_mode = transaction\nauth_type = md5\nadmin_users = admin\nstats_users = stats\n{extra}"
    )
}

/// A pooler in front of a fresh database `app` (pool_size 3 unless `db_extra` says otherwise).
fn start(prefix: &str, db_extra: &str, extra: &str) -> Pooler {
    let db = PgCluster::shared().create_database(prefix);
    Pooler::start(&db_line("app", &db, db_extra), &settings(extra), &users())
}

async fn console(pooler: &Pooler, who: (&str, &str)) -> Client {
    pooler
        .connect(who.0, who.1, "pgbouncer")
        .await
        .expect("console login")
}

/// One result set: column names and rows.
#[derive(Debug, Default, Clone)]
struct Set {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

impl Set {
    fn col(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.columns))
    }

    /// The value of `column` in the first row whose first column is `key`.
    fn get(&self, key: &str, column: &str) -> Option<String> {
        let c = self.col(column);
        self.rows
            .iter()
            .find(|r| r[0].as_deref() == Some(key))
            .and_then(|r| r[c].clone())
    }

    fn int(&self, key: &str, column: &str) -> i64 {
        self.get(key, column)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1)
    }
}

/// Runs `sql` (simple protocol) and splits the replies into result sets.
async fn run(client: &Client, sql: &str) -> Result<Vec<Set>, tokio_postgres::Error> {
    let mut sets = Vec::new();
    let mut current = Set::default();
    for m in client.simple_query(sql).await? {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                current.columns = cols.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(r) => {
                current
                    .rows
                    .push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect());
            }
            SimpleQueryMessage::CommandComplete(_) => sets.push(std::mem::take(&mut current)),
            _ => {}
        }
    }
    Ok(sets)
}

/// SHOW STATE's `paused` value (`yes` or `no`).
async fn paused(admin: &Client) -> Option<String> {
    show(admin, "STATE").await.get("paused", "value")
}

async fn show(client: &Client, what: &str) -> Set {
    run(client, &format!("SHOW {what}"))
        .await
        .unwrap_or_else(|e| panic!("SHOW {what}: {e}"))
        .pop()
        .unwrap_or_default()
}

fn error_text(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

const POOLS_118: &[&str] = &[
    "database",
    "user",
    "cl_active",
    "cl_waiting",
    "cl_active_cancel_req",
    "cl_waiting_cancel_req",
    "sv_active",
    "sv_active_cancel",
    "sv_being_canceled",
    "sv_idle",
    "sv_used",
    "sv_tested",
    "sv_login",
    "maxwait",
    "maxwait_us",
    "pool_mode",
];

const CLIENTS_118: &[&str] = &[
    "type",
    "user",
    "database",
    "state",
    "addr",
    "port",
    "local_addr",
    "local_port",
    "connect_time",
    "request_time",
    "wait",
    "wait_us",
    "close_needed",
    "ptr",
    "link",
    "remote_pid",
    "tls",
    "application_name",
];

const STATS_118: &[&str] = &[
    "database",
    "total_xact_count",
    "total_query_count",
    "total_received",
    "total_sent",
    "total_xact_time",
    "total_query_time",
    "total_wait_time",
    "avg_xact_count",
    "avg_query_count",
    "avg_recv",
    "avg_sent",
    "avg_xact_time",
    "avg_query_time",
    "avg_wait_time",
];

const STATS_126: &[&str] = &[
    "database",
    "total_server_assignment_count",
    "total_xact_count",
    "total_query_count",
    "total_received",
    "total_sent",
    "total_xact_time",
    "total_query_time",
    "total_wait_time",
    "total_client_parse_count",
    "total_server_parse_count",
    "total_bind_count",
    "total_client_login_count",
    "avg_server_assignment_count",
    "avg_xact_count",
    "avg_query_count",
    "avg_recv",
    "avg_sent",
    "avg_xact_time",
    "avg_query_time",
    "avg_wait_time",
    "avg_client_parse_count",
    "avg_server_parse_count",
    "avg_bind_count",
    "avg_client_login_count",
];

const DATABASES_118: &[&str] = &[
    "name",
    "host",
    "port",
    "database",
    "force_user",
    "pool_size",
    "min_pool_size",
    "reserve_pool",
    "pool_mode",
    "max_connections",
    "current_connections",
    "paused",
    "disabled",
];

const DATABASES_124: &[&str] = &[
    "name",
    "host",
    "port",
    "database",
    "force_user",
    "pool_size",
    "min_pool_size",
    "reserve_pool_size",
    "server_lifetime",
    "pool_mode",
    "load_balance_hosts",
    "max_connections",
    "current_connections",
    "max_client_connections",
    "current_client_connections",
    "paused",
    "disabled",
];

const USERS_124: &[&str] = &[
    "name",
    "pool_size",
    "reserve_pool_size",
    "pool_mode",
    "max_user_connections",
    "current_connections",
    "max_user_client_connections",
    "current_client_connections",
];

const TOTALS_118: &[&str] = &[
    "database",
    "xact_count",
    "query_count",
    "bytes_received",
    "bytes_sent",
    "xact_time",
    "query_time",
    "wait_time",
];

/// The expected column list of `what` in `version`, written out from the reference.
fn expected(what: &str, version: &str) -> Vec<&'static str> {
    let at_least = |v: &str| version_num(version) >= version_num(v);
    let mut cols: Vec<&'static str> = match what {
        "POOLS" => POOLS_118.to_vec(),
        "CLIENTS" | "SERVERS" => CLIENTS_118.to_vec(),
        "STATS" if at_least("1.26") => STATS_126.to_vec(),
        "STATS" if at_least("1.24") => STATS_126
            .iter()
            .filter(|c| !c.contains("login"))
            .copied()
            .collect(),
        "STATS" => STATS_118.to_vec(),
        "DATABASES" if at_least("1.24") => DATABASES_124.to_vec(),
        "DATABASES" => DATABASES_118.to_vec(),
        "USERS" if at_least("1.24") => USERS_124.to_vec(),
        "USERS" => vec!["name", "pool_mode"],
        "STATS_TOTALS" => TOTALS_118.to_vec(),
        "VERSION" => vec!["version"],
        "CONFIG" => vec!["key", "value", "default", "changeable"],
        "LISTS" => vec!["list", "items"],
        "MEM" => vec!["name", "size", "used", "free", "memtotal"],
        "DNS_HOSTS" => vec!["hostname", "ttl", "addrs"],
        "DNS_ZONES" => vec!["zonename", "serial", "count"],
        _ => Vec::new(),
    };
    match what {
        "POOLS" if at_least("1.24") => cols.push("load_balance_hosts"),
        "CLIENTS" | "SERVERS" => {
            if at_least("1.21") {
                cols.push("prepared_statements");
            }
            if at_least("1.23") {
                cols.insert(3, "replication");
            }
            if at_least("1.24") {
                cols.push("id");
            }
        }
        "STATS_TOTALS" => {
            if at_least("1.23") {
                cols.insert(1, "server_assignment_count");
            }
            if at_least("1.24") {
                cols.extend(["client_parse_count", "server_parse_count", "bind_count"]);
            }
            if at_least("1.26") {
                cols.push("client_login_count");
            }
        }
        _ => {}
    }
    cols
}

fn version_num(v: &str) -> u32 {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    parts.next().unwrap_or(0) * 100 + parts.next().unwrap_or(0)
}

/// Every SHOW answers with the exact column list of the emulated version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_follow_admin_compat_version() {
    for version in ["1.18", "1.21", "1.24", "1.26", "1.22"] {
        let pooler = start(
            "admcols",
            "",
            &format!("\n[pgsluice]\nadmin_compat_version = {version}"),
        );
        // A client makes the pool and its server exist.
        let app = pooler
            .connect("md5_user", &password("md5_user"), "app")
            .await
            .unwrap();
        app.simple_query("select 1").await.unwrap();
        let admin = console(&pooler, ADMIN).await;
        for what in [
            "POOLS",
            "CLIENTS",
            "SERVERS",
            "STATS",
            "STATS_TOTALS",
            "DATABASES",
            "USERS",
            "VERSION",
            "CONFIG",
            "LISTS",
            "MEM",
            "DNS_HOSTS",
            "DNS_ZONES",
        ] {
            let set = show(&admin, what).await;
            assert_eq!(
                set.columns,
                expected(what, version),
                "SHOW {what} in {version}"
            );
        }
        let lists = show(&admin, "LISTS").await;
        let has_peers = lists.rows.iter().any(|r| r[0].as_deref() == Some("peers"));
        assert_eq!(has_peers, version != "1.18", "LISTS peers row in {version}");
        let state = run(&admin, "SHOW STATE").await;
        assert_eq!(state.is_ok(), version != "1.18", "SHOW STATE in {version}");
        let v = show(&admin, "VERSION").await.rows[0][0].clone().unwrap();
        assert!(v.starts_with(&format!("PgBouncer {version}.0")), "{v}");
        pooler.stop().await;
    }
}

/// pool_size 3, three transactions held open, a fourth client waiting: SHOW POOLS, CLIENTS
/// and SERVERS report exactly that, and maxwait grows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_true_under_load() {
    let pooler = Arc::new(start("admload", "pool_size=3", ""));
    let pw = password("md5_user");
    let mut holders = Vec::new();
    for _ in 0..3 {
        let c = pooler.connect("md5_user", &pw, "app").await.unwrap();
        c.batch_execute("begin; select 1").await.unwrap();
        holders.push(c);
    }
    let waiter = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let waiting = tokio::spawn(async move { waiter.simple_query("select 42").await.map(drop) });
    let admin = console(&pooler, STATS).await;
    assert!(
        eventually(10, || async {
            show(&admin, "POOLS").await.int("app", "cl_waiting") == 1
        })
        .await,
        "one client waits"
    );
    let pools = show(&admin, "POOLS").await;
    assert_eq!(pools.int("app", "sv_active"), 3);
    assert_eq!(pools.int("app", "cl_active"), 3);
    assert_eq!(pools.int("app", "sv_idle"), 0);
    assert_eq!(pools.int("pgbouncer", "cl_active"), 1, "the console itself");
    // maxwait (whole seconds) reaches 1 once the client has waited a second.
    assert!(
        eventually(10, || async {
            show(&admin, "POOLS").await.int("app", "maxwait") >= 1
        })
        .await,
        "maxwait grows: {:?}",
        show(&admin, "POOLS").await
    );
    let clients = show(&admin, "CLIENTS").await;
    let state = clients.col("state");
    let db = clients.col("database");
    let app_states: Vec<&str> = clients
        .rows
        .iter()
        .filter(|r| r[db].as_deref() == Some("app"))
        .filter_map(|r| r[state].as_deref())
        .collect();
    assert_eq!(app_states, ["active", "active", "active", "waiting"]);
    let servers = show(&admin, "SERVERS").await;
    assert_eq!(servers.rows.len(), 3);
    let (ptr, link) = (clients.col("ptr"), servers.col("link"));
    for server in &servers.rows {
        assert!(
            clients.rows.iter().any(|c| c[ptr] == server[link]),
            "server link points at a client ptr"
        );
    }
    for h in &holders {
        h.batch_execute("commit").await.unwrap();
    }
    waiting.await.unwrap().unwrap();
    // The client has its reply a moment before the relay hands the server back to the pool.
    assert!(
        eventually(10, || async {
            let pools = show(&admin, "POOLS").await;
            pools.int("app", "cl_waiting") == 0 && pools.int("app", "sv_active") == 0
        })
        .await,
        "every server back in the pool: {:?}",
        show(&admin, "POOLS").await
    );
}

/// SHOW STATS_TOTALS counts exactly the transactions and queries the test ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_what_ran() {
    let pooler = start("admstats", "", "");
    let app = pooler
        .connect("md5_user", &password("md5_user"), "app")
        .await
        .unwrap();
    for _ in 0..7 {
        app.simple_query("select 1").await.unwrap();
    }
    app.batch_execute("begin; select 1; select 2; commit")
        .await
        .unwrap();
    let admin = console(&pooler, ADMIN).await;
    let totals = show(&admin, "STATS_TOTALS").await;
    assert_eq!(totals.int("app", "xact_count"), 8);
    assert_eq!(totals.int("app", "query_count"), 8);
    assert_eq!(totals.int("app", "client_login_count"), 1);
    assert!(totals.int("app", "bytes_received") > 0 && totals.int("app", "bytes_sent") > 0);
    let stats = show(&admin, "STATS").await;
    assert_eq!(stats.int("app", "total_xact_count"), 8);
    assert!(stats.int("app", "avg_query_count") >= 0);
    let totals = show(&admin, "TOTALS").await;
    // And the three console commands, SHOW TOTALS included (PgBouncer counts them).
    assert_eq!(totals.int("total_xact_count", "value"), 8 + 3);
}

/// Console access: admins, stats users, and everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules() {
    let pooler = start("admaccess", "", "");
    let stats = console(&pooler, STATS).await;
    show(&stats, "POOLS").await;
    for cmd in [
        "PAUSE",
        "RELOAD",
        "KILL app",
        "SET default_pool_size = 5",
        "SHUTDOWN",
    ] {
        let err = run(&stats, cmd).await.expect_err(cmd);
        assert_eq!(error_text(&err), "admin access needed", "{cmd}");
    }
    let err = pooler
        .connect("nobody", "nobody_pw", "pgbouncer")
        .await
        .expect_err("not listed");
    assert_eq!(error_text(&err), "not allowed");
    let err = pooler
        .connect("admin", "wrong", "pgbouncer")
        .await
        .expect_err("bad password");
    assert_eq!(sqlstate(&err).as_deref(), Some("28P01"));
    let admin = console(&pooler, ADMIN).await;
    let err = admin.query("SHOW POOLS", &[]).await.expect_err("extended");
    assert_eq!(
        error_text(&err),
        "extended query protocol not supported by admin console"
    );
}

/// psql -At output, as shell scripts parse it; several commands in one query string; the
/// faked parameters; errors keep PgBouncer's texts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_and_parser_quirks() {
    let pooler = start("admpsql", "", "");
    let out = psql_async(
        "127.0.0.1",
        pooler.port,
        ADMIN.0,
        "pgbouncer",
        Some(ADMIN.1),
        "show lists",
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l == "databases|2"), "{text}");
    let admin = console(&pooler, ADMIN).await;
    let sets = run(&admin, "show version; SHOW state;;").await.unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[1].get("paused", "value").as_deref(), Some("no"));
    let enc = run(&admin, "SHOW client_encoding").await.unwrap();
    assert_eq!(enc[0].columns, ["client_encoding"]);
    admin
        .simple_query("SET client_encoding = 'UTF8'")
        .await
        .expect("faked SET");
    admin
        .simple_query("SET extra_float_digits = 3")
        .await
        .expect("JDBC's SET");
    let err = run(&admin, "SHOW nonsense").await.unwrap_err();
    assert_eq!(
        error_text(&err),
        "invalid command 'SHOW nonsense', use SHOW HELP;"
    );
    let err = run(&admin, "PAUSE pgbouncer").await.unwrap_err();
    assert_eq!(error_text(&err), "cannot pause admin db: pgbouncer");
    let err = run(&admin, "RESUME").await.unwrap_err();
    assert_eq!(error_text(&err), "pooler is not paused/suspended");
    let err = run(&admin, "DISABLE").await.unwrap_err();
    assert_eq!(error_text(&err), "a database is required");
    let err = run(&admin, "PAUSE nosuchdb").await.unwrap_err();
    assert_eq!(error_text(&err), "no such database: nosuchdb");
    run(&admin, "SHOW HELP").await.expect("help");
}

/// PAUSE makes new queries wait (counted in cl_waiting) and closes idle servers; RESUME
/// releases the waiting query. SHOW STATE and SHOW DATABASES report the pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume() {
    let pooler = start("admpause", "", "");
    let app = pooler
        .connect("md5_user", &password("md5_user"), "app")
        .await
        .unwrap();
    app.simple_query("select 1").await.unwrap();
    let admin = console(&pooler, ADMIN).await;
    run(&admin, "PAUSE app").await.expect("pause completes");
    let dbs = show(&admin, "DATABASES").await;
    assert_eq!(dbs.int("app", "paused"), 1);
    assert_eq!(show(&admin, "POOLS").await.int("app", "sv_idle"), 0);
    let query = tokio::spawn(async move { app.simple_query("select 2").await.map(drop) });
    assert!(
        eventually(10, || async {
            show(&admin, "POOLS").await.int("app", "cl_waiting") == 1
        })
        .await,
        "the query waits while paused"
    );
    assert!(!query.is_finished());
    run(&admin, "RESUME app").await.expect("resume");
    tokio::time::timeout(Duration::from_secs(10), query)
        .await
        .expect("query runs after RESUME")
        .unwrap()
        .unwrap();
    let err = run(&admin, "RESUME app").await.unwrap_err();
    assert_eq!(error_text(&err), "database app is not paused");
    // Global PAUSE waits for the running transaction to end.
    let holder = pooler
        .connect("md5_user", &password("md5_user"), "app")
        .await
        .unwrap();
    holder.batch_execute("begin; select 1").await.unwrap();
    let admin2 = console(&pooler, ADMIN).await;
    let pausing = tokio::spawn(async move { run(&admin2, "PAUSE").await.map(drop) });
    // The pooler took the PAUSE (the state says paused) and has not answered it yet.
    assert!(
        eventually(10, || async {
            paused(&admin).await.as_deref() == Some("yes")
        })
        .await,
        "PAUSE never reached the pooler"
    );
    assert!(
        !pausing.is_finished(),
        "PAUSE waits for the open transaction"
    );
    holder.batch_execute("commit").await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), pausing)
        .await
        .expect("PAUSE completes once the server is released")
        .unwrap()
        .unwrap();
    let err = run(&admin, "PAUSE").await.unwrap_err();
    assert_eq!(error_text(&err), "already suspended/paused");
    run(&admin, "RESUME").await.expect("resume all");
    holder.simple_query("select 3").await.expect("served again");
}

/// KILL drops the database's clients at once and keeps it paused until RESUME; KILL_CLIENT
/// drops one client by its SHOW CLIENTS id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_kill_client() {
    let pooler = start("admkill", "", "");
    let pw = password("md5_user");
    let victim = pooler.connect("md5_user", &pw, "app").await.unwrap();
    victim.simple_query("select 1").await.unwrap();
    let admin = console(&pooler, ADMIN).await;
    run(&admin, "KILL app").await.expect("kill");
    let err = victim.simple_query("select 1").await.unwrap_err();
    assert!(
        victim.is_closed() || error_text(&err).contains("database removed"),
        "{err}"
    );
    assert_eq!(show(&admin, "DATABASES").await.int("app", "paused"), 1);
    run(&admin, "RESUME app").await.expect("resume after kill");
    let a = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let b = pooler.connect("md5_user", &pw, "app").await.unwrap();
    a.simple_query("select 1").await.unwrap();
    b.simple_query("select 1").await.unwrap();
    let clients = show(&admin, "CLIENTS").await;
    let (db, id) = (clients.col("database"), clients.col("id"));
    let ids: Vec<String> = clients
        .rows
        .iter()
        .filter(|r| r[db].as_deref() == Some("app"))
        .filter_map(|r| r[id].clone())
        .collect();
    assert_eq!(ids.len(), 2);
    run(&admin, &format!("KILL_CLIENT {}", ids[0]))
        .await
        .expect("kill_client");
    assert!(
        a.simple_query("select 1").await.is_err(),
        "first client is gone"
    );
    b.simple_query("select 1")
        .await
        .expect("second client stays");
    let err = run(&admin, "KILL_CLIENT 999999").await.unwrap_err();
    assert_eq!(error_text(&err), "client not found");
    let err = run(&admin, "KILL_CLIENT x").await.unwrap_err();
    assert_eq!(error_text(&err), "invalid client pointer supplied");
}

/// DISABLE refuses new logins with PgBouncer's text; ENABLE lets them in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_and_enable() {
    let pooler = start("admdisable", "", "");
    let pw = password("md5_user");
    let admin = console(&pooler, ADMIN).await;
    run(&admin, "DISABLE app").await.expect("disable");
    assert_eq!(show(&admin, "DATABASES").await.int("app", "disabled"), 1);
    let err = pooler
        .connect("md5_user", &pw, "app")
        .await
        .expect_err("disabled");
    assert_eq!(error_text(&err), "database \"app\" is disabled");
    run(&admin, "ENABLE app").await.expect("enable");
    pooler
        .connect("md5_user", &pw, "app")
        .await
        .expect("enabled again");
}

/// RECONNECT marks servers close_needed and they are replaced; WAIT_CLOSE returns once none is
/// left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_and_wait_close() {
    let pooler = start("admreconn", "", "");
    let app = pooler
        .connect("md5_user", &password("md5_user"), "app")
        .await
        .unwrap();
    app.batch_execute("begin; select 1").await.unwrap();
    let admin = console(&pooler, ADMIN).await;
    let before = show(&admin, "SERVERS").await;
    let pid = before.get("S", "remote_pid");
    run(&admin, "RECONNECT app").await.expect("reconnect");
    assert_eq!(
        show(&admin, "SERVERS").await.int("S", "close_needed"),
        1,
        "the server in use is marked"
    );
    let admin2 = console(&pooler, ADMIN).await;
    let waiting = tokio::spawn(async move { run(&admin2, "WAIT_CLOSE app").await.map(drop) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "WAIT_CLOSE waits for the marked server"
    );
    app.batch_execute("commit").await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("WAIT_CLOSE returns")
        .unwrap()
        .unwrap();
    app.simple_query("select 1").await.unwrap();
    let after = show(&admin, "SERVERS").await;
    assert_ne!(after.get("S", "remote_pid"), pid, "a new server connection");
}

/// RELOAD re-reads the file (SHOW CONFIG and the pool size change); SET changes a setting
/// online; a broken file gives PgBouncer's RELOAD error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_and_set() {
    let pooler = start("admreload", "", "default_pool_size = 20");
    let admin = console(&pooler, ADMIN).await;
    let config = show(&admin, "CONFIG").await;
    assert_eq!(
        config.get("default_pool_size", "value").as_deref(),
        Some("20")
    );
    let ini = std::fs::read_to_string(pooler.ini_path()).unwrap();
    std::fs::write(
        pooler.ini_path(),
        ini.replace("default_pool_size = 20", "default_pool_size = 4"),
    )
    .unwrap();
    run(&admin, "RELOAD").await.expect("reload");
    let config = show(&admin, "CONFIG").await;
    assert_eq!(
        config.get("default_pool_size", "value").as_deref(),
        Some("4")
    );
    let app = pooler
        .connect("md5_user", &password("md5_user"), "app")
        .await
        .unwrap();
    app.simple_query("select 1").await.unwrap();
    assert_eq!(show(&admin, "DATABASES").await.int("app", "pool_size"), 4);
    let sets = run(&admin, "SET default_pool_size = 6").await.expect("set");
    assert!(sets.len() == 1 && sets[0].columns.is_empty(), "{sets:?}");
    let config = show(&admin, "CONFIG").await;
    assert_eq!(
        config.get("default_pool_size", "value").as_deref(),
        Some("6")
    );
    for bad in [
        "SET listen_port = 1",
        "SET no_such = 1",
        "SET default_pool_size = abc",
    ] {
        let err = run(&admin, bad).await.unwrap_err();
        assert_eq!(error_text(&err), "SET failed", "{bad}");
    }
    std::fs::write(pooler.ini_path(), "[pgbouncer]\nno_such_setting = 1\n").unwrap();
    let err = run(&admin, "RELOAD").await.unwrap_err();
    assert_eq!(
        error_text(&err),
        "RELOAD failed, see logs for additional details"
    );
    assert_eq!(sqlstate(&err).as_deref(), Some("F0000"));
}

/// SHUTDOWN WAIT_FOR_CLIENTS stops accepting but lets connected clients finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_wait_for_clients() {
    let pooler = start("admshut", "", "");
    let app = pooler
        .connect("md5_user", &password("md5_user"), "app")
        .await
        .unwrap();
    let admin = console(&pooler, ADMIN).await;
    run(&admin, "SHUTDOWN WAIT_FOR_CLIENTS")
        .await
        .expect("shutdown");
    app.simple_query("select 1")
        .await
        .expect("connected clients are still served");
    assert!(
        pooler
            .connect("md5_user", &password("md5_user"), "app")
            .await
            .is_err(),
        "no new connections"
    );
    let err = run(&admin, "SHUTDOWN NOW").await.unwrap_err();
    assert!(error_text(&err).starts_with("invalid command"));
}

/// Averages cover the last one to two `stats_period`s, as PgBouncer's: non-zero right after a
/// burst, back to zero once two quiet periods have passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_averages_follow_stats_period() {
    let pooler = start("admavg", "", "stats_period = 1");
    let app = pooler
        .connect("md5_user", &password("md5_user"), "app")
        .await
        .unwrap();
    for _ in 0..20 {
        app.simple_query("select pg_sleep(0.001)").await.unwrap();
    }
    let admin = console(&pooler, ADMIN).await;
    let stats = show(&admin, "STATS").await;
    assert!(stats.int("app", "avg_xact_count") > 0, "{stats:?}");
    assert!(stats.int("app", "avg_query_count") > 0);
    assert!(
        stats.int("app", "avg_xact_time") >= 1000,
        "each took >= 1 ms"
    );
    assert!(stats.int("app", "avg_recv") > 0);
    let averages = show(&admin, "STATS_AVERAGES").await;
    assert!(averages.int("app", "xact_count") > 0);
    assert!(
        eventually(6, || async {
            show(&admin, "STATS").await.int("app", "avg_xact_count") == 0
        })
        .await,
        "quiet periods bring the averages back to zero"
    );
    assert_eq!(
        show(&admin, "STATS").await.int("app", "total_xact_count"),
        20
    );
}

/// Ctrl-C in the console (a cancel request with the console's key) lifts a global PAUSE, as in
/// PgBouncer; a stats user's console key is recognised the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_cancel_resumes() {
    let pooler = start("admcancel", "", "");
    let admin = console(&pooler, ADMIN).await;
    run(&admin, "PAUSE").await.expect("pause");
    assert_eq!(paused(&admin).await.as_deref(), Some("yes"));
    admin
        .cancel_token()
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel request sent");
    assert!(
        eventually(5, || async {
            paused(&admin).await.as_deref() == Some("no")
        })
        .await,
        "the cancel request resumed the pooler"
    );
}

/// SHOW SOCKETS lists clients and servers with PgBouncer's columns (CLIENTS' 21 and the 7
/// buffer positions) and list names; SHOW ACTIVE_SOCKETS has the same columns and, as pgsluice
/// reports no buffered bytes, no row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_sockets_and_active_sockets() {
    let pooler = start("admsockets", "", "pool_mode = session");
    let pw = password("md5_user");
    let holder = pooler.connect("md5_user", &pw, "app").await.unwrap();
    holder.simple_query("select 1").await.unwrap();
    let admin = console(&pooler, ADMIN).await;
    let sockets = show(&admin, "SOCKETS").await;
    assert_eq!(sockets.columns.len(), 28, "{:?}", sockets.columns);
    assert_eq!(
        &sockets.columns[21..],
        &[
            "recv_pos",
            "pkt_pos",
            "pkt_remain",
            "send_pos",
            "send_remain",
            "pkt_avail",
            "send_avail"
        ]
    );
    let (db, state) = (sockets.col("database"), sockets.col("state"));
    let mut app: Vec<(String, String)> = sockets
        .rows
        .iter()
        .filter(|r| r[db].as_deref() == Some("app"))
        .map(|r| (r[0].clone().unwrap(), r[state].clone().unwrap()))
        .collect();
    app.sort();
    assert_eq!(
        app,
        vec![
            ("C".to_owned(), "cl_active".to_owned()),
            ("S".to_owned(), "sv_active".to_owned())
        ]
    );
    let active = show(&admin, "ACTIVE_SOCKETS").await;
    assert_eq!(active.columns, sockets.columns);
    assert!(active.rows.is_empty(), "{:?}", active.rows);
}

/// KILL answers once the database's clients are gone: SHOW CLIENTS right after it lists none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_answers_once_the_clients_are_gone() {
    let pooler = start("admkillsync", "", "");
    let pw = password("md5_user");
    let mut clients = Vec::new();
    for _ in 0..3 {
        let c = pooler.connect("md5_user", &pw, "app").await.unwrap();
        c.simple_query("select 1").await.unwrap();
        clients.push(c);
    }
    let admin = console(&pooler, ADMIN).await;
    let count = |set: &Set| {
        let db = set.col("database");
        set.rows
            .iter()
            .filter(|r| r[db].as_deref() == Some("app"))
            .count()
    };
    assert_eq!(count(&show(&admin, "CLIENTS").await), 3);
    run(&admin, "KILL app").await.expect("kill");
    assert_eq!(count(&show(&admin, "CLIENTS").await), 0);
    let err = clients[0].simple_query("select 1").await.unwrap_err();
    assert!(
        clients[0].is_closed() || error_text(&err).contains("database removed"),
        "{err}"
    );
}

/// Server assignments count each time a client gets a server, the first login of a pool
/// (which waits for a server's parameters) included only once; console commands count as a
/// query and a transaction of the `pgbouncer` row before they run, as in PgBouncer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignments_and_console_commands_are_counted() {
    let pooler = start("admassign", "", "pool_mode = session");
    let pw = password("md5_user");
    for _ in 0..3 {
        let c = pooler.connect("md5_user", &pw, "app").await.unwrap();
        c.simple_query("select 1").await.unwrap();
        c.simple_query("select 2").await.unwrap();
    }
    let admin = console(&pooler, ADMIN).await;
    let stats = show(&admin, "STATS").await;
    assert_eq!(stats.int("app", "total_server_assignment_count"), 3);
    assert_eq!(stats.int("app", "total_xact_count"), 6);
    // SHOW STATS was the first console command; SHOW TOTALS, the second, counts itself.
    assert_eq!(stats.int("pgbouncer", "total_query_count"), 1);
    let totals = show(&admin, "TOTALS").await;
    assert_eq!(totals.int("total_query_count", "value"), 6 + 2);
    assert_eq!(totals.int("total_server_assignment_count", "value"), 3);
}

/// `query_wait_notify`: a client queued that long gets PgBouncer's NOTICE, once per wait, and
/// then its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_wait_notify_tells_a_queued_client() {
    use futures_util::StreamExt as _;
    let pooler = start("admnotify", "pool_size=1", "query_wait_notify = 1");
    let pw = password("md5_user");
    let holder = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let (waiter, mut connection) = tokio_postgres::connect(
        &pooler.conn_string("md5_user", &pw, "app"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    let waiter = Arc::new(waiter);
    let (notices, mut received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notice(n) = message {
                let _ = notices.send(n.message().to_owned());
            }
        }
    });
    let admin = console(&pooler, ADMIN).await;
    for round in 0..2 {
        holder.simple_query("begin").await.unwrap();
        let query = tokio::spawn({
            let waiter = Arc::clone(&waiter);
            async move { waiter.simple_query("select 7").await.map(|_| ()) }
        });
        // The NOTICE arrives while the client still waits.
        let notice = tokio::time::timeout(Duration::from_secs(20), received.recv())
            .await
            .expect("a NOTICE while queued")
            .unwrap();
        assert_eq!(
            notice,
            "No server connection available in postgres backend, client being queued"
        );
        assert_eq!(
            show(&admin, "POOLS").await.int("app", "cl_waiting"),
            1,
            "{round}"
        );
        holder.simple_query("commit").await.unwrap();
        query.await.unwrap().expect("served after the wait");
        assert!(received.try_recv().is_err(), "one NOTICE per wait");
    }
}

/// SHUTDOWN WAIT_FOR_SERVERS hands out no more servers: a client waiting for one is let go with
/// PgBouncer's `server shutting down`, while the running transaction finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_servers_lets_waiting_clients_go() {
    let pooler = start("admdrain", "pool_size=1", "");
    let pw = password("md5_user");
    let holder = pooler.connect("md5_user", &pw, "app").await.unwrap();
    holder.simple_query("begin").await.unwrap();
    let waiter = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let query = tokio::spawn(async move { waiter.simple_query("select 1").await.map(|_| ()) });
    let admin = console(&pooler, ADMIN).await;
    assert!(
        eventually(20, || async {
            show(&admin, "POOLS").await.int("app", "cl_waiting") == 1
        })
        .await,
        "the second client queues"
    );
    run(&admin, "SHUTDOWN WAIT_FOR_SERVERS")
        .await
        .expect("SHUTDOWN answers");
    let err = query.await.unwrap().unwrap_err();
    assert_eq!(error_text(&err), "server shutting down");
    assert_eq!(sqlstate(&err).as_deref(), Some("57P01"));
    holder
        .simple_query("select 2")
        .await
        .expect("the running transaction goes on");
    holder.simple_query("commit").await.expect("and ends");
}

/// A kill after a drain still reaches a client in the middle of a transaction: the drain's stop
/// flag takes the relay's stored waker, and the relay must register again, or it sleeps through
/// the KILL_CLIENT until its client next sends something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_client_after_a_drain_reaches_a_client_in_a_transaction() {
    let pooler = start("admdrainkill", "pool_size=1", "");
    let pw = password("md5_user");
    let holder = pooler.connect("md5_user", &pw, "app").await.unwrap();
    holder.simple_query("begin").await.unwrap();
    let admin = console(&pooler, ADMIN).await;
    run(&admin, "SHUTDOWN WAIT_FOR_SERVERS")
        .await
        .expect("SHUTDOWN answers");
    let clients = show(&admin, "CLIENTS").await;
    let (db, id) = (clients.col("database"), clients.col("id"));
    let ids: Vec<String> = clients
        .rows
        .iter()
        .filter(|r| r[db].as_deref() == Some("app"))
        .filter_map(|r| r[id].clone())
        .collect();
    assert_eq!(ids.len(), 1, "{:?}", clients.rows);
    run(&admin, &format!("KILL_CLIENT {}", ids[0]))
        .await
        .expect("kill_client");
    // The client sends nothing: only the kill can end its connection.
    assert!(
        eventually(10, || async { holder.is_closed() }).await,
        "the killed client in a transaction was not disconnected"
    );
}

/// `server_fast_close` in session mode: after RECONNECT the session's server is not closed in
/// the middle of its transaction, but as soon as that transaction has ended (the janitor's
/// round), closing the client with it: "database configuration changed", in the log as
/// PgBouncer writes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_fast_close_ends_a_session_after_its_transaction() {
    crate::harness::logs::capture();
    let pooler = start("admfastclose", "pool_mode=session", "server_fast_close = 1");
    let app = pooler
        .connect("md5_user", &password("md5_user"), "app")
        .await
        .unwrap();
    app.batch_execute("begin; select 1").await.unwrap();
    let admin = console(&pooler, ADMIN).await;
    run(&admin, "RECONNECT app").await.expect("reconnect");
    // Past a janitor round the transaction still runs on its server.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.simple_query("select 2")
        .await
        .expect("the transaction goes on");
    app.batch_execute("commit").await.unwrap();
    crate::harness::logs::wait_for(
        &["app/", "closing because: database configuration changed"],
        Duration::from_secs(10),
    )
    .await;
    let closed = eventually(10, || async {
        app.is_closed() || app.simple_query("select 3").await.is_err()
    })
    .await;
    assert!(closed, "the session ended with its server");
    assert_eq!(
        show(&admin, "SERVERS").await.rows.len(),
        0,
        "the close_needed server is gone"
    );
}

/// `pool_idle_timeout` (PgBouncer 1.26): once a pool has had no client and no server for that
/// long it is freed (gone from SHOW POOLS, with PgBouncer's log line); a new client makes it
/// again and is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_idle_timeout_frees_an_unused_pool() {
    crate::harness::logs::capture();
    let pooler = start(
        "admpoolidle",
        "",
        "pool_idle_timeout = 1\nserver_idle_timeout = 1",
    );
    let pw = password("md5_user");
    let app = pooler.connect("md5_user", &pw, "app").await.unwrap();
    app.simple_query("select 1").await.unwrap();
    let admin = console(&pooler, ADMIN).await;
    assert!(show(&admin, "POOLS").await.get("app", "user").is_some());
    drop(app);
    let admin = &admin;
    let freed = eventually(30, || async move {
        show(admin, "POOLS").await.get("app", "user").is_none()
    })
    .await;
    assert!(freed, "the unused pool is freed");
    crate::harness::logs::wait_for(
        &[
            "cleaning up idle pool for user md5_user on db app",
            "because: pool idle timeout (age=",
        ],
        Duration::from_secs(10),
    )
    .await;
    let again = pooler.connect("md5_user", &pw, "app").await.unwrap();
    again.simple_query("select 2").await.unwrap();
    assert!(show(admin, "POOLS").await.get("app", "user").is_some());
}
