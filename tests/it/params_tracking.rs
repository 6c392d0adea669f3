//! Session parameters as PgBouncer 1.26 tracks them: every writable reported parameter by
//! default (`search_path`, `default_transaction_read_only`, ...) plus `track_extra_parameters`,
//! carried to whichever server a client gets in transaction mode, also when the server does not
//! report the parameter; untracked startup parameters are refused.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line, first_value, sqlstate};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw::{PoolerProcess, login_with, query, read_value, startup_packet_with};

const USER: &str = "md5_user";

fn users() -> String {
    userlist(&[(USER, &password(USER))])
}

/// A database with schemas `s_a` and `s_b`, each with a table `t` holding its own name.
fn schemas_db(prefix: &str) -> String {
    let pg = PgCluster::shared();
    let db = pg.create_database(prefix);
    pg.superuser_exec(
        &db,
        &[
            "create schema s_a",
            "create schema s_b",
            "create table s_a.t (v text)",
            "create table s_b.t (v text)",
            "insert into s_a.t values ('a')",
            "insert into s_b.t values ('b')",
            &format!("grant usage on schema s_a, s_b to {USER}"),
            &format!("grant select on all tables in schema s_a, s_b to {USER}"),
        ],
    );
    db
}

/// Logs in (trust) with extra startup `params`: the stream, or the error's (SQLSTATE, message).
async fn raw_login(port: u16, params: &[(&str, &str)]) -> Result<TcpStream, (String, String)> {
    let packet = startup_packet_with(USER, "app", params);
    login_with(port, &packet, USER, "").await.ready()
}

/// Runs `sql` (one statement) and returns the first column of its first row.
async fn raw_value(s: &mut TcpStream, sql: &str) -> String {
    s.write_all(&query(sql)).await.unwrap();
    match read_value(s).await {
        Ok(Some(value)) => value,
        Ok(None) => panic!("{sql}: no row"),
        Err(e) => panic!("{sql}: {e:?}"),
    }
}

/// Two clients on one shared server, each with its own `search_path` from `options`, each keep
/// seeing their own schema in transaction mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_path_from_options_follows_each_client() {
    let db = schemas_db("params_sp_opts");
    let pooler = Pooler::start(
        &db_line("app", &db, "pool_size=1"),
        "pool_mode = transaction\ntrack_extra_parameters = search_path",
        &users(),
    );
    let a = pooler
        .connect_with_options(USER, &password(USER), "app", "-c search_path=s_a,public")
        .await
        .unwrap();
    let b = pooler
        .connect_with_options(USER, &password(USER), "app", "-c search_path=s_b,public")
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            first_value(&a, "select v from t").await.unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(
            first_value(&b, "select v from t").await.unwrap().as_deref(),
            Some("b")
        );
    }
    // SHOW reports the client's own value, as the server normalised it.
    assert_eq!(
        first_value(&b, "show search_path")
            .await
            .unwrap()
            .as_deref(),
        Some("s_b, public")
    );
    pooler.stop().await;
}

/// `search_path` in the startup packet itself (tracked by default, PostgreSQL 15 does not
/// report it) is carried to the shared server for each client; an untracked startup parameter
/// is refused with PgBouncer's error, unless `track_extra_parameters` lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_parameters_tracked_or_refused() {
    let db = schemas_db("params_sp_startup");
    let dbs = db_line("app", &db, "pool_size=1");
    let pooler = PoolerProcess::start(
        &dbs,
        "auth_type = trust\npool_mode = transaction\ntrack_extra_parameters = work_mem",
        &users(),
    );
    let mut a = raw_login(
        pooler.port,
        &[("search_path", "s_a"), ("work_mem", "1234kB")],
    )
    .await
    .unwrap();
    let mut b = raw_login(pooler.port, &[("search_path", "s_b")])
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(raw_value(&mut a, "select v from t").await, "a");
        assert_eq!(raw_value(&mut b, "select v from t").await, "b");
    }
    assert_eq!(raw_value(&mut a, "show work_mem").await, "1234kB");

    let e = raw_login(pooler.port, &[("enable_seqscan", "off")])
        .await
        .expect_err("untracked parameter");
    assert_eq!(
        e,
        (
            "08P01".to_owned(),
            "unsupported startup parameter: enable_seqscan".to_owned()
        )
    );
    drop(pooler);

    // Without track_extra_parameters listing it, work_mem is refused too.
    let pooler = PoolerProcess::start(&dbs, "auth_type = trust\npool_mode = transaction", &users());
    let e = raw_login(pooler.port, &[("work_mem", "1234kB")])
        .await
        .expect_err("untracked parameter");
    assert_eq!(e.1, "unsupported startup parameter: work_mem");
}

/// `default_transaction_read_only` is tracked by default: a client's SET follows it and never
/// reaches the next client of the same server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_transaction_read_only_is_tracked() {
    let pg = PgCluster::shared();
    let db = pg.create_database("params_ro");
    let pooler = Pooler::start(
        &db_line("app", &db, "pool_size=1"),
        "pool_mode = transaction",
        &users(),
    );
    let a = pooler.connect(USER, &password(USER), "app").await.unwrap();
    let b = pooler.connect(USER, &password(USER), "app").await.unwrap();
    a.batch_execute("set default_transaction_read_only = on")
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            first_value(&b, "show default_transaction_read_only")
                .await
                .unwrap()
                .as_deref(),
            Some("off")
        );
        let e = a
            .batch_execute("create table x (i int)")
            .await
            .expect_err("read-only transaction");
        assert_eq!(sqlstate(&e).as_deref(), Some("25006"));
    }
    pooler.stop().await;
}
