//! Server login failures and limits, as PgBouncer handles them: which client gets the server's
//! own error and which the cached "server login has been failing" one, clients that keep
//! waiting through a refused connection, `max_client_conn` after the SSL answer, the client
//! limits of the console, eviction under `max_db_connections`, user `pool_size` before the
//! database's, and `min_pool_size` for a forced user.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::Client;

use crate::harness::certs::TestCa;
use crate::harness::files::userlist;
use crate::harness::metrics::{Row, cell, show};
use crate::harness::pooler::{Pooler, db_line, eventually, first_value, free_port, sqlstate};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::tools::psql_conninfo;

/// The row of `db` in SHOW POOLS (first user).
async fn pool_row(console: &Client, db: &str) -> Option<Row> {
    show(console, "SHOW POOLS")
        .await
        .into_iter()
        .find(|r| cell(r, "database") == Some(db))
}

async fn pool_number(console: &Client, db: &str, column: &str) -> Option<i64> {
    pool_row(console, db)
        .await
        .and_then(|r| cell(&r, column).and_then(|v| v.parse().ok()))
}

fn text(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

/// A pool that worked, then a server that refuses logins: the client waiting for the new
/// server gets the server's own error and SQLSTATE; a client that needs a server afterwards
/// gets the cached error at once (08P01); once the server accepts again, the pool recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_login_goes_to_the_waiter_then_cached_to_later_clients() {
    let pg = PgCluster::shared();
    let db = pg.create_database("loginfail");
    let users = userlist(&[("trust_user", "")]);
    let pooler = Pooler::start(
        &db_line("app", &db, "user=trust_user"),
        "auth_type = trust\nserver_login_retry = 1\nserver_check_delay = 0",
        &users,
    );
    let first = pooler.connect("trust_user", "", "app").await.unwrap();
    assert_eq!(
        first_value(&first, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
    let superuser = pg.superuser_client().await;
    superuser
        .batch_execute(&format!("alter database {db} allow_connections false"))
        .await
        .unwrap();
    superuser
        .batch_execute(&format!(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = '{db}'"
        ))
        .await
        .unwrap();
    assert!(
        eventually(10, || async {
            crate::harness::pooler::backends(&superuser, &db, None).await == 0
        })
        .await,
        "the pool's server is gone"
    );
    // The health check finds the idle server dead; the client waits for a new one, which the
    // server refuses.
    let waiter = pooler.connect("trust_user", "", "app").await.unwrap();
    let refused = waiter
        .simple_query("select 1")
        .await
        .expect_err("the server refuses the login");
    assert_eq!(sqlstate(&refused).as_deref(), Some("55000"), "{refused:?}");
    assert_eq!(
        text(&refused),
        format!("database \"{db}\" is not currently accepting connections")
    );
    let later = pooler.connect("trust_user", "", "app").await.unwrap();
    let cached = later
        .simple_query("select 1")
        .await
        .expect_err("fails fast");
    assert_eq!(sqlstate(&cached).as_deref(), Some("08P01"));
    assert_eq!(
        text(&cached),
        format!(
            "server login has been failing, cached error: database \"{db}\" is not currently accepting connections (server_login_retry)"
        )
    );
    superuser
        .batch_execute(&format!("alter database {db} allow_connections true"))
        .await
        .unwrap();
    assert!(
        eventually(15, || async {
            match pooler.connect("trust_user", "", "app").await {
                Ok(c) => first_value(&c, "select 2").await.is_ok(),
                Err(_) => false,
            }
        })
        .await,
        "the pool recovers once the server accepts logins"
    );
    pooler.stop().await;
}

/// A forced user whose auth_file secret is a SCRAM hash, against a server asking for SCRAM:
/// the pooler cannot answer, and the waiting client reads PgBouncer's text with 08P01.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_secret_without_keys_is_a_wrong_password_type() {
    let pg = PgCluster::shared();
    let db = pg.create_database("wrongpwtype");
    let users = userlist(&[
        ("trust_user", ""),
        ("scram_user", &pg.scram_secret("scram_user")),
    ]);
    let pooler = Pooler::start(
        &db_line("app", &db, "user=scram_user"),
        "auth_type = trust",
        &users,
    );
    let err = pooler
        .connect("trust_user", "", "app")
        .await
        .expect_err("no password to answer SCRAM with");
    assert_eq!(sqlstate(&err).as_deref(), Some("08P01"), "{err:?}");
    assert_eq!(text(&err), "server login failed: wrong password type");
    pooler.stop().await;
}

/// Forwards every connection accepted on `listener` to `target` (a stand-in for a server that
/// becomes reachable).
async fn forward(listener: TcpListener, target: (String, u16)) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect((target.0.as_str(), target.1)).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// A server that refuses the TCP connection: the client logging in is not failed, it waits
/// (cl_waiting) while the pool retries after server_login_retry, and gets in once the server
/// can be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_wait_through_refused_connections() {
    let pg = PgCluster::shared();
    let db = pg.create_database("connrefused");
    // A port nobody listens on until the forwarder binds it.
    let port = free_port();
    let users = userlist(&[("trust_user", ""), ("stats", "stats_pw")]);
    let pooler = Pooler::start(
        &format!("app = host=127.0.0.1 port={port} dbname={db} user=trust_user\n"),
        "auth_type = trust\nserver_login_retry = 1\nstats_users = stats",
        &users,
    );
    let conn_string = pooler.conn_string("trust_user", "", "app");
    let login = tokio::spawn(async move {
        let (client, connection) = tokio_postgres::connect(
            &format!("{conn_string} connect_timeout=60"),
            tokio_postgres::NoTls,
        )
        .await?;
        tokio::spawn(connection);
        first_value(&client, "select current_user").await
    });
    let console = pooler.connect("stats", "", "pgbouncer").await.unwrap();
    // Waiting, with no server in login: at least one attempt was refused already.
    assert!(
        eventually(10, || async {
            pool_number(&console, "app", "cl_waiting").await == Some(1)
                && pool_number(&console, "app", "sv_login").await == Some(0)
        })
        .await,
        "the client waits after a refused connection"
    );
    assert!(!login.is_finished(), "the login was not failed");
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(forward(listener, (pg.host().to_owned(), pg.port())));
    let user = tokio::time::timeout(Duration::from_secs(30), login)
        .await
        .expect("login completes once the server is reachable")
        .unwrap()
        .expect("logged in");
    assert_eq!(user.as_deref(), Some("trust_user"));
    pooler.stop().await;
}

/// max_client_conn is checked after the SSLRequest is answered: a TLS client past the limit
/// reads PgBouncer's error in its TLS session, and the console stays reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_client_conn_reaches_a_tls_client() {
    let pg = PgCluster::shared();
    let db = pg.create_database("maxconntls");
    let ca = TestCa::new("max-client-conn");
    let cert = ca.issue("pooler", "pgsluice", &["localhost", "127.0.0.1"]);
    let users = userlist(&[("trust_user", ""), ("admin", "admin_pw")]);
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        &format!(
            "auth_type = trust\nmax_client_conn = 1\nadmin_users = admin\nclient_tls_sslmode = allow\nclient_tls_cert_file = {}\nclient_tls_key_file = {}",
            cert.cert.display(),
            cert.key.display()
        ),
        &users,
    );
    let holder = pooler.connect("trust_user", "", "app").await.unwrap();
    assert!(first_value(&holder, "select 1").await.is_ok());
    let conninfo = format!(
        "{} sslmode=require",
        pooler.conn_string("trust_user", "", "app")
    );
    let out = psql_conninfo(&conninfo, "select 1", &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no more connections allowed (max_client_conn)"),
        "{stderr}"
    );
    // The console is exempt.
    let console = pooler.connect("admin", "admin_pw", "pgbouncer").await;
    assert!(console.is_ok(), "{console:?}");
    pooler.stop().await;
}

/// The console database counts its clients too: a stats user past
/// max_user_client_connections is refused, an admin user never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_logins_count_against_client_limits() {
    let pg = PgCluster::shared();
    let db = pg.create_database("consolelimits");
    let users = userlist(&[("admin", "admin_pw"), ("stats", "stats_pw")]);
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "auth_type = plain\nmax_user_client_connections = 1\nadmin_users = admin\nstats_users = stats",
        &users,
    );
    let _stats = pooler
        .connect("stats", "stats_pw", "pgbouncer")
        .await
        .unwrap();
    let refused = pooler
        .connect("stats", "stats_pw", "pgbouncer")
        .await
        .expect_err("second stats session");
    assert_eq!(
        text(&refused),
        "client connections exceeded (max_user_client_connections)"
    );
    assert_eq!(sqlstate(&refused).as_deref(), Some("08P01"));
    let _a = pooler
        .connect("admin", "admin_pw", "pgbouncer")
        .await
        .unwrap();
    let second_admin = pooler.connect("admin", "admin_pw", "pgbouncer").await;
    assert!(second_admin.is_ok(), "admins are exempt: {second_admin:?}");
    pooler.stop().await;
}

/// max_db_connections = 1 and two users: the second user's pool evicts the first pool's idle
/// server instead of waiting for it to time out, logged with PgBouncer 1.26's reason
/// (`evicted for max_db_connections`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_database_evicts_another_pools_idle_server() {
    crate::harness::logs::capture();
    let pg = PgCluster::shared();
    let db = pg.create_database("evict");
    let users = userlist(&[
        ("pass_user", &password("pass_user")),
        ("md5_user", &password("md5_user")),
    ]);
    let pooler = Pooler::start(
        &db_line("app", &db, "max_db_connections=1"),
        "auth_type = plain\npool_mode = transaction\nquery_wait_timeout = 20\nserver_idle_timeout = 600",
        &users,
    );
    let a = pooler
        .connect("pass_user", &password("pass_user"), "app")
        .await
        .unwrap();
    assert!(first_value(&a, "select 1").await.is_ok());
    let b = pooler
        .connect("md5_user", &password("md5_user"), "app")
        .await
        .expect("the second pool gets a server");
    assert_eq!(
        first_value(&b, "select current_user")
            .await
            .unwrap()
            .as_deref(),
        Some("md5_user")
    );
    let superuser = pg.superuser_client().await;
    assert_eq!(
        crate::harness::pooler::backends(&superuser, &db, None).await,
        1
    );
    crate::harness::logs::wait_for(
        &[
            "app/pass_user@",
            "closing because: evicted for max_db_connections",
        ],
        Duration::from_secs(10),
    )
    .await;
    pooler.stop().await;
}

/// A user's pool_size wins over the database's (PgBouncer's order): with pool_size=1 for the
/// user, a second transaction waits. A forced user keeps min_pool_size servers open before any
/// client comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_pool_size_and_forced_user_min_pool_size() {
    let pg = PgCluster::shared();
    let db = pg.create_database("poolsizes");
    let users = userlist(&[
        ("trust_user", ""),
        ("stats", ""),
        ("pass_user", &password("pass_user")),
    ]);
    let mut dbs = db_line("app", &db, "pool_size=3");
    dbs.push_str(&db_line("warm", &db, "user=pass_user min_pool_size=2"));
    let pooler = Pooler::start(
        &dbs,
        "auth_type = trust\npool_mode = transaction\nstats_users = stats\n\n[users]\ntrust_user = pool_size=1",
        &users,
    );
    let console = pooler.connect("stats", "", "pgbouncer").await.unwrap();
    assert!(
        eventually(10, || async {
            pool_number(&console, "warm", "sv_idle").await == Some(2)
        })
        .await,
        "min_pool_size servers open with no client"
    );
    let holder = pooler.connect("trust_user", "", "app").await.unwrap();
    holder.batch_execute("begin; select 1").await.unwrap();
    let second = pooler.connect("trust_user", "", "app").await.unwrap();
    let waiting = tokio::spawn(async move { first_value(&second, "select 2").await });
    assert!(
        eventually(10, || async {
            pool_number(&console, "app", "cl_waiting").await == Some(1)
        })
        .await,
        "the second transaction waits for the user's one server"
    );
    assert_eq!(pool_number(&console, "app", "sv_active").await, Some(1));
    holder.batch_execute("commit").await.unwrap();
    let value = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served after the first transaction")
        .unwrap()
        .unwrap();
    assert_eq!(value.as_deref(), Some("2"));
    pooler.stop().await;
}

/// After RECONNECT a pool's busy old servers no longer count as usable (PgBouncer's dirty
/// pool): when the login of a new server is refused, the client queued for one gets the
/// server's error at once instead of waiting behind the old server's transaction, and the
/// refused server's `closing because:` line carries the server's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_reconnect_a_refused_login_fails_the_queued_clients() {
    crate::harness::logs::capture();
    let pg = PgCluster::shared();
    let db = pg.create_database("reconnfail");
    let users = userlist(&[("trust_user", "")]);
    let pooler = Pooler::start(
        &db_line("app", &db, "user=trust_user"),
        "auth_type = trust\nadmin_users = trust_user\ndefault_pool_size = 1\nserver_login_retry = 1",
        &users,
    );
    let busy = pooler.connect("trust_user", "", "app").await.unwrap();
    busy.batch_execute("begin; select 1").await.unwrap();
    let superuser = pg.superuser_client().await;
    superuser
        .batch_execute(&format!("alter database {db} allow_connections false"))
        .await
        .unwrap();
    let queued = pooler.connect("trust_user", "", "app").await.unwrap();
    let queued = tokio::spawn(async move { queued.simple_query("select 2").await.map(drop) });
    let console = pooler.connect("trust_user", "", "pgbouncer").await.unwrap();
    assert!(
        eventually(30, || async {
            pool_number(&console, "app", "cl_waiting").await == Some(1)
        })
        .await,
        "the second client is queued"
    );
    console.simple_query("RECONNECT app").await.unwrap();
    console
        .simple_query("SET default_pool_size = 2")
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), queued)
        .await
        .expect("the queued client is answered")
        .unwrap()
        .expect_err("the new server refuses the login");
    let refusal = format!("database \"{db}\" is not currently accepting connections");
    assert_eq!(text(&err), refusal);
    crate::harness::logs::wait_for(
        &["app/trust_user@", &format!("closing because: {refusal}")],
        Duration::from_secs(10),
    )
    .await;
    busy.batch_execute("commit")
        .await
        .expect("the old server's transaction ends normally");
    superuser
        .batch_execute(&format!("alter database {db} allow_connections true"))
        .await
        .unwrap();
    pooler.stop().await;
}
