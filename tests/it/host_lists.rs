//! `[databases]` host lists (`host=a,b`) with `load_balance_hosts`, as PgBouncer 1.24: one host
//! per server connection, round-robin by default, `disable` staying on a host until it fails.

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, first_value};
use crate::harness::postgres::{PgCluster, password};

fn users() -> String {
    userlist(&[("md5_user", &password("md5_user"))])
}

/// A list naming the same server twice serves concurrent clients from both entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_list_serves_clients() {
    let pg = PgCluster::shared();
    let db = pg.create_database("hostlist");
    let line = format!(
        "app = host={h},{h} port={} dbname={db} user=trust_user\n",
        pg.port(),
        h = pg.host()
    );
    let pooler = Pooler::start(&line, "auth_type = md5", &users());
    let pw = password("md5_user");
    let a = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let b = pooler.connect("md5_user", &pw, "app").await.unwrap();
    a.batch_execute("begin").await.unwrap();
    b.batch_execute("begin").await.unwrap();
    assert_eq!(
        first_value(&a, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
    assert_eq!(
        first_value(&b, "select 2").await.unwrap().as_deref(),
        Some("2")
    );
    a.batch_execute("commit").await.unwrap();
    b.batch_execute("commit").await.unwrap();
}

/// `load_balance_hosts = disable` with a first host that does not resolve: that connection
/// fails with PgBouncer's `server DNS lookup failed`, the waiting client is not failed, and the
/// retry after `server_login_retry` goes to the next host, which then stays in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_moves_past_a_host_that_fails() {
    let pg = PgCluster::shared();
    let db = pg.create_database("hostlist_bad_first");
    let line = format!(
        "app = host=no-such-host.invalid,{} port={} dbname={db} user=trust_user load_balance_hosts=disable\n",
        pg.host(),
        pg.port()
    );
    let pooler = Pooler::start(&line, "auth_type = md5\nserver_login_retry = 0.2", &users());
    let pw = password("md5_user");
    let client = pooler.connect("md5_user", &pw, "app").await.unwrap();
    assert_eq!(
        first_value(&client, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
    // Later connections stay on the good host: two at once both succeed.
    let other = pooler.connect("md5_user", &pw, "app").await.unwrap();
    client.batch_execute("begin").await.unwrap();
    assert_eq!(
        first_value(&other, "select 2").await.unwrap().as_deref(),
        Some("2")
    );
    client.batch_execute("commit").await.unwrap();
}

/// As PgBouncer, a pool opens one server at a time until one has logged in: two clients that
/// arrive together at a new pool whose first host does not resolve cost one DNS failure, not
/// one each; once the next host has served a login, both are served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pool_tries_a_failing_first_host_once() {
    crate::harness::logs::capture();
    let pg = PgCluster::shared();
    let db = pg.create_database("hostlist_once");
    let line = format!(
        "lb_once = host=no-such-host-once.invalid,{} port={} dbname={db} user=trust_user load_balance_hosts=disable\n",
        pg.host(),
        pg.port()
    );
    let pooler = Pooler::start(&line, "auth_type = md5\nserver_login_retry = 0.2", &users());
    let pw = password("md5_user");
    let (a, b) = tokio::join!(
        pooler.connect("md5_user", &pw, "lb_once"),
        pooler.connect("md5_user", &pw, "lb_once")
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    a.batch_execute("begin").await.unwrap();
    b.batch_execute("begin").await.unwrap();
    assert_eq!(
        first_value(&a, "select 1").await.unwrap().as_deref(),
        Some("1")
    );
    assert_eq!(
        first_value(&b, "select 2").await.unwrap().as_deref(),
        Some("2")
    );
    a.batch_execute("commit").await.unwrap();
    b.batch_execute("commit").await.unwrap();
    let failures =
        crate::harness::logs::matching(&["lb_once/", "closing because: server DNS lookup failed"]);
    assert_eq!(failures.len(), 1, "{failures:?}");
}
