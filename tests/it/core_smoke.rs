//! The basic path: log in through the pooler, run queries, see transaction pooling at work.

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line, sqlstate};
use crate::harness::postgres::{PgCluster, password};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_queries_through_the_pooler() {
    let pg = PgCluster::shared();
    let db = pg.create_database("smoke");
    let pw = password("md5_user");
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\nauth_type = md5",
        &userlist(&[("md5_user", &pw)]),
    );
    let client = pooler.connect("md5_user", &pw, "app").await.expect("login");
    let rows = client.simple_query("select 40 + 2").await.unwrap();
    let value = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("42"));
    client
        .batch_execute("create table t(x int); begin; insert into t values (1); commit;")
        .await
        .unwrap();
    let err = pooler
        .connect("md5_user", "wrong", "app")
        .await
        .expect_err("wrong password refused");
    assert_eq!(sqlstate(&err).as_deref(), Some("28P01"));
    let err = pooler
        .connect("md5_user", &pw, "nosuchdb")
        .await
        .expect_err("unknown db refused");
    assert_eq!(sqlstate(&err).as_deref(), Some("3D000"));
    pooler.stop().await;
}
