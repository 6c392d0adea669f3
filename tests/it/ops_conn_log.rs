//! PgBouncer's per-connection log lines, which operators' log alerts match: `login attempt`,
//! `new connection to server (from ...)`, `closing because: REASON (age=Ns)` for clients and
//! servers, and `taking connection from reserve_pool`.

use std::time::Duration;

use crate::harness::files::userlist;
use crate::harness::logs;
use crate::harness::pooler::{Pooler, db_line, eventually, first_value, free_port};
use crate::harness::postgres::PgCluster;
use crate::harness::raw;
use crate::harness::tools::psql_async;
use tokio::io::AsyncWriteExt;

const LIMIT: Duration = Duration::from_secs(30);

/// One pooler, one database name unique to this test, every event in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_server_lifecycle_lines() {
    logs::capture();
    let pg = PgCluster::shared();
    let db = pg.create_database("connlog");
    let users = userlist(&[("connlog_user", "pw-connlog")]);
    let dbs = db_line("connlog_app", &db, "user=trust_user");
    let pooler = Pooler::start(
        &dbs,
        "auth_type = md5\nserver_idle_timeout = 1\nlog_connections = 1\nlog_disconnections = 1",
        &users,
    );
    let pool = "connlog_app/connlog_user@127.0.0.1:";

    // A wrong password: the client's line with PgBouncer's reason.
    assert!(
        pooler
            .connect("connlog_user", "wrong", "connlog_app")
            .await
            .is_err()
    );
    let line = logs::wait_for(
        &[pool, "closing because: password authentication failed"],
        LIMIT,
    )
    .await;
    assert!(line.contains("C-"), "{line}");
    assert!(line.contains("(age=0s)"), "{line}");

    // A login, a query (a new server), a Terminate.
    let client = pooler
        .connect("connlog_user", "pw-connlog", "connlog_app")
        .await
        .unwrap();
    assert_eq!(
        first_value(&client, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
    logs::wait_for(
        &[
            pool,
            "login attempt: db=connlog_app user=connlog_user tls=no",
        ],
        LIMIT,
    )
    .await;
    let server = logs::wait_for(
        &[
            "connlog_app/trust_user@",
            "new connection to server (from 127.0.0.1:",
        ],
        LIMIT,
    )
    .await;
    assert!(server.contains("S-"), "{server}");
    // tokio-postgres and psql send Terminate when they close.
    drop(client);
    logs::wait_for(&[pool, "closing because: client close request"], LIMIT).await;
    let out = psql_async(
        "127.0.0.1",
        pooler.port,
        "connlog_user",
        "connlog_app",
        Some("pw-connlog"),
        "select 1",
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        logs::matching(&[pool, "closing because: client close request"]).len(),
        2
    );
    // The idle server goes after server_idle_timeout, with its reason.
    logs::wait_for(
        &[
            "connlog_app/trust_user@",
            "closing because: server idle timeout",
        ],
        LIMIT,
    )
    .await;

    // A database that does not exist.
    assert!(
        pooler
            .connect("connlog_user", "pw-connlog", "connlog_nosuchdb")
            .await
            .is_err()
    );
    logs::wait_for(
        &[
            "connlog_nosuchdb/connlog_user@",
            "closing because: no such database: connlog_nosuchdb",
        ],
        LIMIT,
    )
    .await;
    pooler.stop().await;
}

/// A client that waits past `reserve_pool_timeout` gets a reserve server, and the pool says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_pool_use_is_logged() {
    logs::capture();
    let pg = PgCluster::shared();
    let db = pg.create_database("connlog_reserve");
    let users = userlist(&[("reserve_user", "pw-reserve")]);
    let dbs = db_line(
        "connlog_reserve_app",
        &db,
        "user=trust_user pool_size=1 reserve_pool=1",
    );
    let pooler = Pooler::start(&dbs, "auth_type = md5\nreserve_pool_timeout = 0.2", &users);
    let holder = pooler
        .connect("reserve_user", "pw-reserve", "connlog_reserve_app")
        .await
        .unwrap();
    holder.batch_execute("begin; select 1").await.unwrap();
    let second = pooler
        .connect("reserve_user", "pw-reserve", "connlog_reserve_app")
        .await
        .unwrap();
    assert_eq!(
        first_value(&second, "select 2").await.unwrap().as_deref(),
        Some("2")
    );
    logs::wait_for(
        &[
            "connlog_reserve_app/trust_user",
            "taking connection from reserve_pool",
        ],
        LIMIT,
    )
    .await;
    holder.batch_execute("commit").await.unwrap();
    pooler.stop().await;
}

/// A client that closes its socket without a Terminate, idle or inside a transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unexpected_eof_is_named() {
    logs::capture();
    let pg = PgCluster::shared();
    let db = pg.create_database("connlog_eof");
    let users = userlist(&[("connlog_user", "pw-connlog")]);
    let dbs = db_line("connlog_eof_app", &db, "user=trust_user");
    let pooler = Pooler::start(&dbs, "auth_type = md5", &users);
    let pool = "connlog_eof_app/connlog_user@127.0.0.1:";
    // A socket closed without one, idle and in the middle of a transaction.
    let (stream, _) =
        raw::login(pooler.port, "connlog_user", "pw-connlog", "connlog_eof_app").await;
    drop(stream);
    let (mut stream, _) =
        raw::login(pooler.port, "connlog_user", "pw-connlog", "connlog_eof_app").await;
    stream.write_all(&raw::query("begin")).await.unwrap();
    raw::read_until_ready(&mut stream).await.unwrap();
    drop(stream);
    for n in 1..=2 {
        let found = eventually(30, || async move {
            logs::matching(&[pool, "closing because: client unexpected eof"]).len() >= n
        })
        .await;
        assert!(
            found,
            "{n} unexpected eof lines: {:#?}",
            logs::matching(&[pool])
        );
    }

    pooler.stop().await;
}

/// The server's message text of a refused login.
fn refusal(result: Result<tokio_postgres::Client, tokio_postgres::Error>) -> String {
    let Err(err) = result else {
        panic!("the login must be refused");
    };
    err.as_db_error()
        .map_or_else(|| err.to_string(), |e| e.message().to_owned())
}

/// A client of a database that is not configured proves its password first (PgBouncer's fake
/// database): a wrong one is refused as a wrong password, a right one learns the database is
/// unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_database_checks_the_password_first() {
    logs::capture();
    let pg = PgCluster::shared();
    let db = pg.create_database("connlog_fakedb");
    let users = userlist(&[("fakedb_user", "pw-fakedb")]);
    let dbs = db_line("connlog_fakedb_app", &db, "user=trust_user");
    let pooler = Pooler::start(&dbs, "auth_type = md5", &users);
    let text = refusal(
        pooler
            .connect("fakedb_user", "wrong", "connlog_fakedb_none")
            .await,
    );
    assert!(text.contains("password authentication failed"), "{text}");
    logs::wait_for(
        &[
            "connlog_fakedb_none/fakedb_user@",
            "closing because: password authentication failed",
        ],
        LIMIT,
    )
    .await;
    let text = refusal(
        pooler
            .connect("fakedb_user", "pw-fakedb", "connlog_fakedb_none")
            .await,
    );
    assert_eq!(text, "no such database: connlog_fakedb_none");
    pooler.stop().await;
}

/// A user the pooler does not know fails as PgBouncer's mock login does: `trust` says so, SCRAM
/// fails its exchange.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_fails_with_the_methods_words() {
    logs::capture();
    let pg = PgCluster::shared();
    let db = pg.create_database("connlog_nouser");
    let users = userlist(&[("nouser_known", "pw-nouser")]);
    for (auth_type, name, words) in [
        (
            "trust",
            "connlog_nouser_trust",
            "\"trust\" authentication failed",
        ),
        (
            "scram-sha-256",
            "connlog_nouser_scram",
            "SASL authentication failed",
        ),
    ] {
        let dbs = db_line(name, &db, "user=trust_user");
        let pooler = Pooler::start(&dbs, &format!("auth_type = {auth_type}"), &users);
        let text = refusal(pooler.connect("nouser_nobody", "whatever", name).await);
        assert_eq!(text, words);
        let closing = format!("closing because: {words}");
        logs::wait_for(&[&format!("{name}/nouser_nobody@"), &closing], LIMIT).await;
        // A known user still logs in.
        let client = pooler.connect("nouser_known", "pw-nouser", name).await;
        assert!(client.is_ok(), "{auth_type}: {:?}", client.err());
        pooler.stop().await;
    }
}

/// A server that refuses the login is logged in PgBouncer's words, and the client is closed
/// with the server's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_login_refusal_is_logged() {
    logs::capture();
    let users = userlist(&[("refused_user", "pw-refused")]);
    let dbs = db_line(
        "connlog_refused_app",
        "connlog_refused_missing",
        "user=trust_user",
    );
    let pooler = Pooler::start(&dbs, "auth_type = md5", &users);
    let text = refusal(
        pooler
            .connect("refused_user", "pw-refused", "connlog_refused_app")
            .await,
    );
    let missing = "database \"connlog_refused_missing\" does not exist";
    assert_eq!(text, missing);
    logs::wait_for(&[&format!("server login failed: FATAL {missing}")], LIMIT).await;
    logs::wait_for(
        &[
            "connlog_refused_app/refused_user@",
            &format!("closing because: {missing}"),
        ],
        LIMIT,
    )
    .await;
    pooler.stop().await;
}

/// A server that cannot be reached is logged as PgBouncer closes it: `connect failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_logged() {
    logs::capture();
    // A port nothing listens on.
    let port = free_port();
    let users = userlist(&[("unreach_user", "pw-unreach")]);
    let dbs =
        format!("connlog_unreach_app = host=127.0.0.1 port={port} dbname=x user=trust_user\n");
    let pooler = Pooler::start(
        &dbs,
        "auth_type = md5\nlog_disconnections = 1\nquery_wait_timeout = 2",
        &users,
    );
    assert!(
        pooler
            .connect("unreach_user", "pw-unreach", "connlog_unreach_app")
            .await
            .is_err()
    );
    let line = logs::wait_for(
        &[
            "connlog_unreach_app/trust_user@127.0.0.1:",
            "closing because: connect failed",
        ],
        LIMIT,
    )
    .await;
    assert!(line.contains("S-"), "{line}");
    pooler.stop().await;
}

/// The first use of a name the `*` entry stands in for is logged once, in PgBouncer's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_database_registration_is_logged_once() {
    logs::capture();
    let pg = PgCluster::shared();
    let db = pg.create_database("connlog_auto");
    let users = userlist(&[("connlog_user", "pw-connlog")]);
    let dbs = db_line("*", &db, "user=trust_user");
    let pooler = Pooler::start(&dbs, "auth_type = md5", &users);
    for _ in 0..2 {
        let client = pooler
            .connect("connlog_user", "pw-connlog", "connlog_auto_name")
            .await
            .unwrap();
        assert_eq!(
            first_value(&client, "select 1").await.unwrap().as_deref(),
            Some("1")
        );
    }
    logs::wait_for(&["registered new auto-database: connlog_auto_name"], LIMIT).await;
    assert_eq!(
        logs::matching(&["registered new auto-database: connlog_auto_name"]).len(),
        1
    );
    pooler.stop().await;
}
