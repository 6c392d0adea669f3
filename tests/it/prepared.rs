//! Protocol-level prepared statements under transaction pooling: drivers that prepare by default
//! (tokio-postgres here, pgbench -M prepared) work unchanged across shared servers.

use std::sync::Arc;

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line, first_value, sqlstate};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::tools::{pgbench_async, pgbench_init};

fn start(db: &str, settings: &str) -> Pooler {
    Pooler::start(
        &db_line("app", db, ""),
        &format!("pool_mode = transaction\n{settings}"),
        &userlist(&[("md5_user", &password("md5_user"))]),
    )
}

fn pool_stats(pooler: &Pooler) -> pgsluice::stats::StatsSnapshot {
    let running = pooler.running.as_ref().unwrap();
    running
        .registry()
        .pools()
        .iter()
        .map(|p| p.stats.snapshot())
        .fold(pgsluice::stats::StatsSnapshot::default(), |a, b| a + b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_clients_share_servers() {
    let pg = PgCluster::shared();
    let db = pg.create_database("prep");
    let pooler = Arc::new(start(&db, "default_pool_size = 2"));
    let pw = password("md5_user");
    let mut tasks = Vec::new();
    for i in 0..20i32 {
        let (pooler, pw) = (Arc::clone(&pooler), pw.clone());
        tasks.push(tokio::spawn(async move {
            let client = pooler.connect("md5_user", &pw, "app").await.unwrap();
            let add = client.prepare("select $1::int4 + 1").await.unwrap();
            let echo = client
                .prepare("select $1::text || '-' || $2::text")
                .await
                .unwrap();
            for n in 0..25i32 {
                let row = client.query_one(&add, &[&(i * 100 + n)]).await.unwrap();
                assert_eq!(row.get::<_, i32>(0), i * 100 + n + 1);
                let row = client
                    .query_one(&echo, &[&i.to_string(), &n.to_string()])
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, String>(0), format!("{i}-{n}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = pool_stats(&pooler);
    assert!(stats.client_parse_count >= 40, "{stats:?}");
    // Two servers, two statement texts: each server prepares each text at most a few times
    // (only re-prepared if evicted, which max_prepared_statements = 200 does not do here).
    assert!(stats.server_parse_count <= 4, "{stats:?}");
    assert!(stats.bind_count >= 1000, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_close_and_errors_keep_names_consistent() {
    let pg = PgCluster::shared();
    let db = pg.create_database("prepevict");
    let pooler = start(&db, "default_pool_size = 1\nmax_prepared_statements = 2");
    let pw = password("md5_user");
    let client = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let other = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let mut statements = Vec::new();
    for k in 0..5i32 {
        statements.push((
            k,
            client
                .prepare(&format!("select $1::int4 * {k}"))
                .await
                .unwrap(),
        ));
    }
    for round in 0..3i32 {
        for (k, st) in &statements {
            let row = client.query_one(st, &[&round]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), round * k);
            // Another client on the same single server in between.
            assert_eq!(
                first_value(&other, "select 1").await.unwrap().as_deref(),
                Some("1")
            );
        }
    }
    // A statement that fails to parse leaves everything else usable.
    let err = client
        .prepare("select * from no_such_table")
        .await
        .expect_err("bad statement");
    assert_eq!(sqlstate(&err).as_deref(), Some("42P01"));
    let row = client.query_one(&statements[3].1, &[&7]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 21);
    // Dropping a statement closes the client's name only; the text can be prepared again.
    let (_, st) = statements.remove(2);
    drop(st);
    let again = client.prepare("select $1::int4 * 2").await.unwrap();
    assert_eq!(
        client
            .query_one(&again, &[&4])
            .await
            .unwrap()
            .get::<_, i32>(0),
        8
    );
    // DISCARD ALL from the client forgets names on both sides; preparing again works.
    client.batch_execute("discard all").await.unwrap();
    let fresh = client.prepare("select $1::int4 - 1").await.unwrap();
    assert_eq!(
        client
            .query_one(&fresh, &[&4])
            .await
            .unwrap()
            .get::<_, i32>(0),
        3
    );
    // Errors inside a pipeline: the failed execution does not poison the next one.
    let div = client.prepare("select 10 / $1::int4").await.unwrap();
    let err = client
        .query_one(&div, &[&0])
        .await
        .expect_err("division by zero");
    assert_eq!(sqlstate(&err).as_deref(), Some("22012"));
    assert_eq!(
        client
            .query_one(&div, &[&5])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_prepared_mode_through_the_pooler() {
    let pg = PgCluster::shared();
    let db = pg.create_database("prepbench");
    let pw = password("md5_user");
    let init = pgbench_init(pg.host(), pg.port(), "md5_user", &db, Some(&pw), 1);
    assert!(init.status.success());
    let pooler = start(&db, "default_pool_size = 4");
    let port = pooler.port.to_string();
    for mode in ["prepared", "extended"] {
        let run = pgbench_async(
            // One client per pgbench thread: pgbench prepares with a blocking PQprepare, so a
            // thread that runs several clients can deadlock itself against any pool smaller than
            // its client count (PgBouncer behaves the same).
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "md5_user",
                "-c",
                "8",
                "-j",
                "8",
                "-t",
                "50",
                "-M",
                mode,
                "app",
            ],
            &[("PGPASSWORD", &pw)],
        )
        .await;
        assert!(run.success(), "{mode}: {}", run.text());
        assert_eq!(run.processed, Some(400), "{mode}");
        assert_eq!(run.failed.unwrap_or(0), 0, "{mode}");
    }
}

/// A named Parse of a name the client already holds ends the session with PgBouncer's error,
/// and the error log names the statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_statement_name_ends_the_session() {
    use crate::harness::{logs, raw};
    use tokio::io::AsyncWriteExt;
    logs::capture();
    let pg = PgCluster::shared();
    let db = pg.create_database("prepreuse");
    let pooler = start(&db, "max_prepared_statements = 10");
    let pw = password("md5_user");
    let (mut stream, _) = raw::login(pooler.port, "md5_user", &pw, "app").await;
    let parse = raw::message(b'P', b"prepreuse_stmt\0select 1\0\0\0");
    let sync = raw::message(b'S', b"");
    let batch = [parse.as_slice(), sync.as_slice()].concat();
    stream.write_all(&batch).await.unwrap();
    assert_eq!(raw::read_until_ready(&mut stream).await, Ok(()));
    // The same name again, even for the same text.
    stream.write_all(&batch).await.unwrap();
    let mut error = None;
    while let Some((tag, body)) = raw::read_message(&mut stream).await {
        if tag == b'E' {
            error = Some(String::from_utf8_lossy(&body).into_owned());
        }
    }
    let error = error.expect("an ErrorResponse before the connection closes");
    assert!(
        error.contains("prepared statement name is already in use"),
        "{error}"
    );
    logs::wait_for(
        &["prepared statement 'prepreuse_stmt' was already prepared"],
        std::time::Duration::from_secs(30),
    )
    .await;
    pooler.stop().await;
}

/// Found by the `rewrite` fuzz target: a ParseComplete the pooler answers itself, owed right
/// after a RowDescription longer than one read, was inserted where the read ended, inside the
/// RowDescription. The client must get whole messages, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_the_pooler_owes_after_a_long_row_description_arrives_whole() {
    use crate::harness::raw;
    use tokio::io::AsyncWriteExt;

    let pg = PgCluster::shared();
    let db = pg.create_database("prep_long_rowdesc");
    let pooler = start(&db, "default_pool_size = 1\nmax_prepared_statements = 10");
    let (mut s, _) = raw::login(pooler.port, "md5_user", &password("md5_user"), "app").await;
    // About 110 kB of RowDescription: many reads of the server socket.
    let columns: Vec<String> = (0..1500).map(|i| format!("1 as c{i:0>55}")).collect();
    let sql = format!("select {}", columns.join(", "));
    let parse = |name: &str| {
        raw::message(
            b'P',
            &[name.as_bytes(), b"\0", sql.as_bytes(), b"\0\0\0"].concat(),
        )
    };
    let sync = raw::message(b'S', b"");
    s.write_all(&[parse("a"), sync.clone()].concat())
        .await
        .unwrap();
    raw::read_until_ready(&mut s).await.unwrap();
    for round in 0..5 {
        // Describe, then the same text under a new name: the server has it, so the pooler
        // answers that Parse itself, right after the RowDescription.
        let batch = [
            raw::message(b'D', b"Sa\0"),
            parse(&format!("b{round}")),
            sync.clone(),
        ]
        .concat();
        s.write_all(&batch).await.unwrap();
        let mut tags = Vec::new();
        while tags.last() != Some(&b'Z') && tags.len() < 10 {
            let (tag, body) = raw::read_message(&mut s).await.expect("a whole message");
            if tag == b'T' {
                assert_eq!(body[..2], 1500u16.to_be_bytes(), "round {round}");
            }
            tags.push(tag);
        }
        assert_eq!(tags, b"tT1Z", "round {round}");
    }
}
