//! Reload (what SIGHUP and RELOAD do): pool sizes change live under load without dropping a
//! transaction, databases appear and disappear, auth_file users change, restart-only settings
//! are kept, and an invalid file keeps the running configuration. Also the other control
//! signals: SIGUSR1 pauses and SIGUSR2 resumes every database, as the console's PAUSE/RESUME.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::files::userlist;
use crate::harness::metrics::{cell, find, show};
use crate::harness::pooler::{
    Pooler, backends, connect_spawned, db_line, eventually, first_value, sqlstate,
};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw::PoolerProcess;
use crate::harness::tools::signal;

fn md5_users() -> String {
    userlist(&[("md5_user", &password("md5_user"))])
}

const TX: &str = "pool_mode = transaction";

/// A client inside BEGIN keeps its server and its transaction across reloads that grow and
/// shrink the pool, while other clients run transactions the whole time; the pool object and
/// its servers are kept, and the smaller size is reached once servers come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_size_changes_live_under_load() {
    let pg = PgCluster::shared();
    let db = pg.create_database("reload_size");
    let pw = password("md5_user");
    let databases = db_line("app", &db, "");
    let pooler = Arc::new(Pooler::start(
        &databases,
        &format!("{TX}\ndefault_pool_size = 2"),
        &md5_users(),
    ));
    let setup = pooler.connect("md5_user", &pw, "app").await.unwrap();
    setup.batch_execute("create table t (n int)").await.unwrap();
    let in_tx = pooler.connect("md5_user", &pw, "app").await.unwrap();
    in_tx
        .batch_execute("begin; insert into t values (1)")
        .await
        .unwrap();
    let backend = first_value(&in_tx, "select pg_backend_pid()")
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (pooler, pw, stop, done) = (
            Arc::clone(&pooler),
            pw.clone(),
            Arc::clone(&stop),
            Arc::clone(&done),
        );
        load.push(tokio::spawn(async move {
            let client = pooler
                .connect("md5_user", &pw, "app")
                .await
                .expect("connect");
            // Bounded: the test stops the load long before this.
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                client
                    .batch_execute("begin; insert into t values (2); commit")
                    .await
                    .expect("transaction during reload");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let registry = Arc::clone(pooler.app().registry());
    let pool = registry.pools().pop().expect("one pool");
    for size in [4, 1, 3] {
        let before = done.load(Ordering::Relaxed);
        pooler.rewrite(
            &databases,
            &format!("{TX}\ndefault_pool_size = {size}"),
            None,
        );
        pooler.app().reload().expect("reload");
        assert_eq!(pool.settings().pool_size, size);
        let pools = registry.pools();
        assert_eq!(pools.len(), 1);
        assert!(Arc::ptr_eq(&pools[0], &pool), "the pool was rebuilt");
        assert!(
            eventually(20, || async { done.load(Ordering::Relaxed) > before + 20 }).await,
            "load stalled after resizing to {size}"
        );
    }
    // The open transaction is still on the same server and commits.
    assert_eq!(
        first_value(&in_tx, "select pg_backend_pid()")
            .await
            .unwrap(),
        backend
    );
    in_tx
        .batch_execute("insert into t values (1); commit")
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("no load client failed");
    }
    let ones = first_value(&setup, "select count(*) from t where n = 1")
        .await
        .unwrap();
    assert_eq!(ones.as_deref(), Some("2"));
    // Shrink to 1 with everything idle: the extra servers are closed.
    pooler.rewrite(&databases, &format!("{TX}\ndefault_pool_size = 1"), None);
    pooler.app().reload().unwrap();
    let superuser = pg.superuser_client().await;
    assert!(
        eventually(20, || async { backends(&superuser, &db, None).await == 1 }).await,
        "servers above the new pool_size were not closed"
    );
}

/// A database added to the file serves new logins after the reload; a removed one keeps
/// serving its connected clients (even inside a transaction) but refuses new logins with
/// 3D000, and its servers close once its last client leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_added_and_removed() {
    let pg = PgCluster::shared();
    let db_a = pg.create_database("reload_a");
    let db_b = pg.create_database("reload_b");
    let pw = password("md5_user");
    let only_a = db_line("a", &db_a, "");
    let both = format!("{only_a}{}", db_line("b", &db_b, ""));
    let pooler = Pooler::start(&only_a, TX, &md5_users());
    let refused = pooler.connect("md5_user", &pw, "b").await.unwrap_err();
    assert_eq!(sqlstate(&refused).as_deref(), Some("3D000"));

    pooler.rewrite(&both, TX, None);
    pooler.app().reload().expect("reload adds b");
    let b = pooler
        .connect("md5_user", &pw, "b")
        .await
        .expect("b after reload");
    b.batch_execute("create table t (n int); begin; insert into t values (1)")
        .await
        .unwrap();

    pooler.rewrite(&only_a, TX, None);
    pooler.app().reload().expect("reload removes b");
    let refused = pooler.connect("md5_user", &pw, "b").await.unwrap_err();
    assert_eq!(sqlstate(&refused).as_deref(), Some("3D000"));
    // The connected client finishes its transaction and goes on working.
    b.batch_execute("insert into t values (2); commit")
        .await
        .unwrap();
    let n = first_value(&b, "select count(*) from t").await.unwrap();
    assert_eq!(n.as_deref(), Some("2"));
    let a = pooler
        .connect("md5_user", &pw, "a")
        .await
        .expect("a still served");
    assert_eq!(
        first_value(&a, "select 1").await.unwrap().as_deref(),
        Some("1")
    );

    drop(b);
    let superuser = pg.superuser_client().await;
    assert!(
        eventually(20, || async {
            backends(&superuser, &db_b, None).await == 0
        })
        .await,
        "the removed database's servers stayed open after its last client left"
    );
}

/// A file that no longer loads, or an invalid `[pgsluice]` log setting, is rejected with the
/// reason and changes nothing; fixing the file makes the next reload work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_file_keeps_the_running_config() {
    let pg = PgCluster::shared();
    let db = pg.create_database("reload_bad");
    let pw = password("md5_user");
    let databases = db_line("app", &db, "");
    let pooler = Pooler::start(
        &databases,
        &format!("{TX}\ndefault_pool_size = 3"),
        &md5_users(),
    );
    let registry = Arc::clone(pooler.app().registry());

    pooler.rewrite(&databases, &format!("{TX}\ndefault_pool_size = lots"), None);
    let err = pooler.app().reload().unwrap_err();
    assert!(err.contains("pgbouncer.ini:"), "{err}");
    assert!(err.contains("default_pool_size"), "{err}");
    assert_eq!(registry.config().general.default_pool_size, 3);

    pooler.rewrite("", &format!("{TX}\n[pgsluice]\nlog_format = xml"), None);
    let err = pooler.app().reload().unwrap_err();
    assert!(err.contains("log_format"), "{err}");
    assert!(registry.config().database("app").is_some());

    // A missing auth_file is an error too: the users are kept.
    std::fs::remove_file(pooler.dir.join("userlist.txt")).unwrap();
    pooler.rewrite(&databases, TX, None);
    assert!(pooler.app().reload().is_err());
    let client = pooler
        .connect("md5_user", &pw, "app")
        .await
        .expect("old config serves");
    assert_eq!(
        first_value(&client, "select 1").await.unwrap().as_deref(),
        Some("1")
    );

    pooler.rewrite(
        &databases,
        &format!("{TX}\ndefault_pool_size = 4"),
        Some(&md5_users()),
    );
    pooler.app().reload().expect("fixed file reloads");
    assert_eq!(registry.config().general.default_pool_size, 4);
}

/// auth_file changes apply to new logins; a restart-only setting changed in the file keeps its
/// running value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_file_users_and_restart_only_settings() {
    let pg = PgCluster::shared();
    let db = pg.create_database("reload_auth");
    let databases = db_line("app", &db, "");
    let pooler = Pooler::start(&databases, TX, &md5_users());
    let scram_pw = password("scram_user");
    assert!(
        pooler
            .connect("scram_user", &scram_pw, "app")
            .await
            .is_err()
    );

    let both = userlist(&[
        ("md5_user", &password("md5_user")),
        ("scram_user", &scram_pw),
    ]);
    // listen_port, unix_socket_dir and so_reuseport need a restart.
    let ini_settings = format!("{TX}\nso_reuseport = 1");
    pooler.rewrite(&databases, &ini_settings, Some(&both));
    let text = std::fs::read_to_string(pooler.ini_path()).unwrap();
    std::fs::write(
        pooler.ini_path(),
        text.replace("listen_port = 0", "listen_port = 7777"),
    )
    .unwrap();
    pooler.app().reload().expect("reload");
    let config = pooler.app().registry().config();
    assert_eq!(config.general.listen_port, 0);
    assert!(!config.general.so_reuseport);
    assert_eq!(
        config.general.raw.get("listen_port").map(String::as_str),
        Some("0")
    );
    let client = pooler
        .connect("scram_user", &scram_pw, "app")
        .await
        .expect("user added to auth_file logs in");
    assert_eq!(
        first_value(&client, "select 1").await.unwrap().as_deref(),
        Some("1")
    );

    // Removing the user refuses new logins and keeps the connected client.
    pooler.rewrite(&databases, &ini_settings, Some(&md5_users()));
    pooler.app().reload().expect("reload");
    assert!(
        pooler
            .connect("scram_user", &scram_pw, "app")
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        first_value(&client, "select 2").await.unwrap().as_deref(),
        Some("2")
    );
}

/// A changed server definition (here `connect_query`) keeps the pool and its clients: the
/// servers are marked close_needed, a transaction in progress finishes on its old server, and
/// the next transaction gets a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_server_reconnects_after_the_transaction() {
    let pg = PgCluster::shared();
    let db = pg.create_database("reload_server");
    let pw = password("md5_user");
    let pooler = Pooler::start(&db_line("app", &db, ""), TX, &md5_users());
    let client = pooler.connect("md5_user", &pw, "app").await.unwrap();
    client.batch_execute("begin").await.unwrap();
    let old = first_value(&client, "select pg_backend_pid()")
        .await
        .unwrap();
    let registry = Arc::clone(pooler.app().registry());
    let pool = registry.pools().pop().expect("one pool");

    pooler.rewrite(&db_line("app", &db, "connect_query='select 1'"), TX, None);
    pooler.app().reload().expect("reload");
    assert!(
        Arc::ptr_eq(&registry.pools()[0], &pool),
        "the pool was rebuilt"
    );
    assert_eq!(registry.close_needed_servers(Some("app")), 1);
    assert_eq!(
        first_value(&client, "select pg_backend_pid()")
            .await
            .unwrap(),
        old,
        "the open transaction lost its server"
    );
    client.batch_execute("commit").await.unwrap();
    let new = first_value(&client, "select pg_backend_pid()")
        .await
        .unwrap();
    assert_ne!(new, old, "a close_needed server was reused");
    assert!(
        eventually(10, || async {
            registry.close_needed_servers(Some("app")) == 0
        })
        .await,
        "the old server was not closed"
    );
}

/// A client of the pooler process `port` (md5_user, database `db`).
async fn process_client(port: u16, db: &str) -> tokio_postgres::Client {
    let conn = format!(
        "host=127.0.0.1 port={port} user=md5_user password={} dbname={db}",
        password("md5_user")
    );
    connect_spawned(&conn.parse().unwrap())
        .await
        .unwrap_or_else(|e| panic!("connect to {db}: {e}"))
}

/// SIGUSR1 pauses every database (SHOW STATE says so, a query waits in the queue), SIGUSR2
/// resumes them (the waiting query runs), as the console's PAUSE and RESUME.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_pauses_and_sigusr2_resumes() {
    let pg = PgCluster::shared();
    let db = pg.create_database("signal_pause");
    let pooler = PoolerProcess::start(
        &db_line("app", &db, ""),
        &format!(
            "{TX}
auth_type = md5
admin_users = md5_user"
        ),
        &md5_users(),
    );
    let admin = process_client(pooler.port, "pgbouncer").await;
    let client = process_client(pooler.port, "app").await;
    assert_eq!(
        first_value(&client, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
    let paused = |want: &'static str| {
        let admin = &admin;
        async move {
            let rows = show(admin, "SHOW STATE").await;
            find(&rows, "key", "paused").and_then(|r| cell(r, "value")) == Some(want)
        }
    };
    signal(pooler.pid(), Signal::SIGUSR1).expect("SIGUSR1");
    assert!(
        eventually(20, || paused("yes")).await,
        "SIGUSR1 did not pause"
    );
    let waiting = tokio::spawn(async move { first_value(&client, "select 2").await });
    assert!(
        eventually(20, || async {
            let pools = show(&admin, "SHOW POOLS").await;
            find(&pools, "database", "app").and_then(|r| cell(r, "cl_waiting")) == Some("1")
        })
        .await,
        "the query does not wait while paused"
    );
    assert!(!waiting.is_finished(), "a query ran while paused");
    signal(pooler.pid(), Signal::SIGUSR2).expect("SIGUSR2");
    let value = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the query runs after SIGUSR2")
        .unwrap()
        .unwrap();
    assert_eq!(value.as_deref(), Some("2"));
    assert!(
        eventually(20, || paused("no")).await,
        "SIGUSR2 did not resume"
    );
}
