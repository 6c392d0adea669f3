//! Protocol behaviour PgBouncer clients rely on: the `options` startup parameter, Bind/Describe
//! of a statement the client never prepared, `max_prepared_statements` changed while clients are
//! connected, a cancel that must not land on the next client of the same server, cancels
//! forwarded between `[peers]`, and `login_notify_message`.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line, eventually, first_value, sqlstate};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw::{
    error_code, login, login_with, message, read_message, send_cancel, startup_packet,
    startup_packet_version,
};

const USER: &str = "md5_user";

fn users() -> String {
    userlist(&[(USER, &password(USER))])
}

/// Waits until `sql` runs on a backend of `db`.
async fn wait_active(superuser: &Arc<tokio_postgres::Client>, db: &str, sql: &str) {
    let check = format!(
        "select count(*) from pg_stat_activity where datname = '{db}' \
         and query = '{sql}' and state = 'active'"
    );
    let running = eventually(20, || {
        let su = Arc::clone(superuser);
        let check = check.clone();
        async move { first_value(&su, &check).await.ok().flatten().as_deref() == Some("1") }
    })
    .await;
    assert!(running, "{sql} never ran");
}

fn message_of(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_startup_parameter() {
    let pg = PgCluster::shared();
    let db = pg.create_database("proto_options");
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\nignore_startup_parameters = extra_float_digits",
        &users(),
    );
    for (options, sql, want) in [
        (
            "  -c    datestyle=German,\\ YMD",
            "show datestyle",
            "German, YMD",
        ),
        (
            "-ctimezone=Europe/Lisbon  --datestyle=German,\\ YMD",
            "show timezone",
            "Europe/Lisbon",
        ),
        ("-c t\\imezone=\\Asia/Tokyo", "show timezone", "Asia/Tokyo"),
        // Ignored names are skipped, whatever their size.
        (
            &format!("-c extra_float_digits={}", "1".repeat(5000)),
            "show extra_float_digits",
            "1",
        ),
    ] {
        let client = pooler
            .connect_with_options(USER, &password(USER), "app", options)
            .await
            .unwrap_or_else(|e| panic!("{options}: {e}"));
        assert_eq!(
            first_value(&client, sql).await.unwrap().as_deref(),
            Some(want),
            "{options}"
        );
    }
    for (options, text) in [
        (
            "-d",
            "unsupported options startup parameter: only '-c config=val' and '--config=val' are allowed",
        ),
        (
            "-c timezone",
            "unsupported options startup parameter: only '-c config=val' and '--config=val' are allowed",
        ),
        (
            "-c enable_seqscan=false",
            "unsupported startup parameter in options: enable_seqscan",
        ),
    ] {
        let e = pooler
            .connect_with_options(USER, &password(USER), "app", options)
            .await
            .expect_err(options);
        assert_eq!(message_of(&e), text);
        assert_eq!(sqlstate(&e).as_deref(), Some("08P01"));
    }
    pooler.stop().await;

    // With `options` itself ignored, unknown pairs are skipped and tracked ones still apply.
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\nignore_startup_parameters = options",
        &users(),
    );
    let client = pooler
        .connect_with_options(
            USER,
            &password(USER),
            "app",
            "-c enable_seqscan=false -c timezone=Asia/Tokyo",
        )
        .await
        .unwrap();
    assert_eq!(
        first_value(&client, "show enable_seqscan")
            .await
            .unwrap()
            .as_deref(),
        Some("on")
    );
    assert_eq!(
        first_value(&client, "show timezone")
            .await
            .unwrap()
            .as_deref(),
        Some("Asia/Tokyo")
    );
    pooler.stop().await;
}

/// A Bind or Describe of a name this client never prepared ends the session with PgBouncer's
/// FATAL; the unnamed statement still goes to the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_or_bind_of_a_name_never_prepared_closes_the_session() {
    let pg = PgCluster::shared();
    let db = pg.create_database("proto_nostmt");
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\nmax_prepared_statements = 10",
        &users(),
    );
    let bind_body = b"\0nope\0\0\0\0\0\0\0".to_vec();
    for (tag, body) in [(b'D', b"Snope\0".to_vec()), (b'B', bind_body)] {
        let (mut s, _) = login(pooler.port, USER, &password(USER), "app").await;
        // The unnamed statement is the server's business: an ordinary error, session goes on.
        let mut batch = message(b'D', b"S\0");
        batch.extend(message(b'S', &[]));
        s.write_all(&batch).await.unwrap();
        let (t, body0) = read_message(&mut s).await.unwrap();
        assert_eq!((t, error_code(&body0).as_deref()), (b'E', Some("26000")));
        assert_eq!(read_message(&mut s).await.map(|m| m.0), Some(b'Z'));

        let mut batch = message(tag, &body);
        batch.extend(message(b'S', &[]));
        s.write_all(&batch).await.unwrap();
        let (t, err) = read_message(&mut s).await.expect("an error first");
        assert_eq!(t, b'E');
        assert_eq!(error_code(&err).as_deref(), Some("08P01"));
        let text = String::from_utf8_lossy(&err).into_owned();
        assert!(text.contains("SFATAL"), "{text}");
        assert!(text.contains("Mprepared statement did not exist"), "{text}");
        assert!(read_message(&mut s).await.is_none(), "connection closed");
    }
    pooler.stop().await;
}

/// Setting `max_prepared_statements = 0` and reloading stops the renaming for clients already
/// connected: their statement names then reach the server as sent (as in PgBouncer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_prepared_statements_applies_to_connected_clients() {
    let pg = PgCluster::shared();
    let db = pg.create_database("proto_psoff");
    let dbs = db_line("app", &db, "");
    let pooler = Pooler::start(
        &dbs,
        "pool_mode = transaction\nmax_prepared_statements = 5",
        &users(),
    );
    let client = pooler.connect(USER, &password(USER), "app").await.unwrap();
    let statement = client.prepare("select 41 + 1").await.unwrap();
    let row = client.query_one(&statement, &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    pooler.rewrite(
        &dbs,
        "pool_mode = transaction\nmax_prepared_statements = 0",
        None,
    );
    pooler.app().reload().expect("reload");
    let e = client
        .query_one(&statement, &[])
        .await
        .expect_err("the server never saw the client's name");
    assert_eq!(sqlstate(&e).as_deref(), Some("26000"));
    pooler.stop().await;
}

/// Many cancels for client A while client B waits for A's only server: A's query is cancelled
/// and B's, which gets the server next, is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_in_flight_never_reach_the_next_client() {
    let pg = PgCluster::shared();
    let db = pg.create_database("proto_cancelrace");
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\ndefault_pool_size = 1",
        &users(),
    );
    let superuser = Arc::new(pg.superuser_client().await);
    let (mut a, (pid, key)) = login(pooler.port, USER, &password(USER), "app").await;
    let b = pooler.connect(USER, &password(USER), "app").await.unwrap();
    a.write_all(&crate::harness::raw::query("select pg_sleep(60)"))
        .await
        .unwrap();
    wait_active(&superuser, &db, "select pg_sleep(60)").await;
    // B queues behind A for the single server.
    let b_query = tokio::spawn(async move { b.simple_query("select pg_sleep(0.5)").await });
    let port = pooler.port;
    let cancels: Vec<_> = (0..50)
        .map(|_| tokio::spawn(send_cancel(port, pid, key)))
        .collect();
    let mut a_error = None;
    for _ in 0..10 {
        let (tag, body) = read_message(&mut a).await.expect("A's reply");
        if tag == b'E' {
            a_error = error_code(&body);
        }
        if tag == b'Z' {
            break;
        }
    }
    assert_eq!(a_error.as_deref(), Some("57014"), "A's query was cancelled");
    for c in cancels {
        c.await.unwrap();
    }
    b_query
        .await
        .unwrap()
        .expect("B's query is not cancelled by A's cancels");
    pooler.stop().await;
}

/// Two processes of a peer group: a cancel for a client of peer 1 that arrives at peer 2 is
/// forwarded to peer 1 and cancels the query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_forwarded_to_the_peer_that_owns_the_key() {
    let pg = PgCluster::shared();
    let db = pg.create_database("proto_peers");
    let dbs = db_line("app", &db, "");
    let one = Pooler::start(&dbs, "pool_mode = transaction\npeer_id = 1", &users());
    let two = Pooler::start(
        &dbs,
        &format!(
            "pool_mode = transaction\nadmin_users = {USER}\npeer_id = 2\n[peers]\n1 = host=127.0.0.1 port={} pool_size=3\n2 = host=127.0.0.1 port=1\n",
            one.port
        ),
        &users(),
    );
    let superuser = Arc::new(pg.superuser_client().await);
    let (mut s, (pid, key)) = login(one.port, USER, &password(USER), "app").await;
    let peer_bytes = pid.to_be_bytes();
    assert_eq!((peer_bytes[1], peer_bytes[2]), (1, 0), "peer id in the key");
    assert_eq!(key & 3, 3, "TTL bits set");
    s.write_all(&crate::harness::raw::query("select pg_sleep(60)"))
        .await
        .unwrap();
    wait_active(&superuser, &db, "select pg_sleep(60)").await;
    send_cancel(two.port, pid, key).await;
    let mut error = None;
    while let Some((tag, body)) = read_message(&mut s).await {
        match tag {
            b'E' => error = error_code(&body),
            b'Z' => break,
            _ => {}
        }
    }
    assert_eq!(
        error.as_deref(),
        Some("57014"),
        "the cancel sent to peer 2 reached peer 1's query"
    );
    // The console lists the section.
    let console = two
        .connect(USER, &password(USER), "pgbouncer")
        .await
        .unwrap();
    let rows: Vec<Vec<String>> = console
        .simple_query("SHOW PEERS")
        .await
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..4)
                    .map(|i| r.get(i).unwrap_or_default().to_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            vec![
                "1".to_owned(),
                "127.0.0.1".into(),
                one.port.to_string(),
                "3".into()
            ],
            vec!["2".to_owned(), "127.0.0.1".into(), "1".into(), "20".into()],
        ]
    );
    two.stop().await;
    one.stop().await;
}

/// `login_notify_message` arrives as a NOTICE between BackendKeyData and the first
/// ReadyForQuery; PgBouncer 1.26's `pgbouncer.*` reports come with the other parameters, and
/// not when an older PgBouncer is emulated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_notice_and_pgbouncer_reports() {
    let pg = PgCluster::shared();
    let db = pg.create_database("proto_notify");
    let dbs = db_line("app", &db, "");
    let pooler = Pooler::start(
        &dbs,
        "auth_type = trust\npool_mode = transaction\nmax_prepared_statements = 17\nlogin_notify_message = welcome to the pool",
        &users(),
    );
    let login = login_with(pooler.port, &startup_packet(USER, "app"), USER, "").await;
    let messages = &login.messages;
    let tags: Vec<u8> = messages.iter().map(|m| m.0).collect();
    assert_eq!(&tags[tags.len() - 3..], b"KNZ", "{tags:?}");
    let notice = String::from_utf8_lossy(&messages[messages.len() - 2].1).into_owned();
    assert!(notice.contains("SNOTICE"), "{notice}");
    assert!(notice.contains("C00000"), "{notice}");
    assert!(notice.contains("Mwelcome to the pool"), "{notice}");
    let params = login.parameters();
    for (name, value) in [
        ("pgbouncer.version", "1.26.0"),
        ("pgbouncer.pool_mode", "transaction"),
        ("pgbouncer.max_prepared_statements", "17"),
    ] {
        assert!(
            params.iter().any(|(n, v)| n == name && v == value),
            "{name}={value} in {params:?}"
        );
    }
    pooler.stop().await;

    let pooler = Pooler::start(
        &dbs,
        "auth_type = trust\n[pgsluice]\nadmin_compat_version = 1.25",
        &users(),
    );
    let login = login_with(pooler.port, &startup_packet(USER, "app"), USER, "").await;
    let messages = &login.messages;
    assert_eq!(messages.last().map(|m| m.0), Some(b'Z'));
    assert!(!messages.iter().any(|m| m.0 == b'N'));
    let params = login.parameters();
    assert!(
        !params.iter().any(|(n, _)| n.starts_with("pgbouncer.")),
        "{params:?}"
    );
    pooler.stop().await;
}

/// A client that asks for a newer minor version and `_pq_.` options (the "grease" of
/// PostgreSQL 19's libpq) is told 3.0 and which options were not recognised, and logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_minor_version_and_protocol_options_are_negotiated_down() {
    let pg = PgCluster::shared();
    let db = pg.create_database("proto_grease");
    let pooler = Pooler::start(&db_line("app", &db, ""), "auth_type = trust", &users());
    let packet = startup_packet_version(
        (3 << 16) + 9999,
        &[
            ("user", USER),
            ("database", "app"),
            ("_pq_.test_protocol_negotiation", "1"),
        ],
    );
    let messages = login_with(pooler.port, &packet, USER, "").await.messages;
    let (tag, body) = &messages[0];
    assert_eq!(*tag, b'v', "NegotiateProtocolVersion first: {messages:?}");
    assert_eq!(&body[..8], &[0, 0, 0, 0, 0, 0, 0, 1], "3.0, one option");
    assert_eq!(&body[8..], b"_pq_.test_protocol_negotiation\0");
    assert_eq!(messages.iter().filter(|m| m.0 == b'v').count(), 1);
    assert_eq!(messages.last().map(|m| m.0), Some(b'Z'), "{messages:?}");
    // A plain 3.2 request without options is negotiated the same way.
    let packet = startup_packet_version((3 << 16) + 2, &[("user", USER), ("database", "app")]);
    let messages = login_with(pooler.port, &packet, USER, "").await.messages;
    assert_eq!(messages[0].0, b'v');
    assert_eq!(&messages[0].1[..8], &[0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(messages.last().map(|m| m.0), Some(b'Z'));
    pooler.stop().await;
}
