//! A malicious or compromised server (a tiny fake one: see `fake_server`) against the pooler's
//! server logins: SCRAM with 100 million iterations (CVE-2026-6669: refused before any key is
//! derived, naming the 1,000,000 cap), malformed server-first and server-final messages, a
//! 100 KB nonce (CVE-2026-6665), and ErrorResponses without SQLSTATE at login and after it
//! (CVE-2026-6666). Each client gets an 08P01 error that says what went wrong, the pooler keeps
//! serving the real database next to it, and no hang is hidden by a timeout (the connect and
//! wait timeouts are a minute, the test's bound 30 s).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::USER;
use super::fake_server::{FakeServer, Script};
use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw;

fn pooler_for(fakes: &[&FakeServer]) -> Pooler {
    pooler_with(fakes, "")
}

/// The pooler with the real database `app` and `fake{i}` for each fake server, each with
/// `fake_options` on its `[databases]` line.
fn pooler_with(fakes: &[&FakeServer], fake_options: &str) -> Pooler {
    let db = PgCluster::shared().create_database("hostileserver");
    let mut dbs = db_line("app", &db, "");
    for (i, fake) in fakes.iter().enumerate() {
        let _ = writeln!(
            dbs,
            "fake{i} = host=127.0.0.1 port={} dbname=fake {fake_options}",
            fake.port
        );
    }
    Pooler::start(
        &dbs,
        "pool_mode = transaction\nauth_type = md5\nserver_connect_timeout = 60\n\
         query_wait_timeout = 60\nserver_tls_sslmode = disable",
        &userlist(&[(USER, &password(USER))]),
    )
}

/// A server-first built from the client's nonce, and the reason the client must be told.
type FirstCase = (fn(&str) -> String, &'static str);

/// What a client of `db` is told: (SQLSTATE, message).
async fn refusal(pooler: &Pooler, db: &str) -> (String, String) {
    let attempt = async {
        match pooler.connect(USER, &password(USER), db).await {
            Err(e) => e,
            Ok(client) => client
                .simple_query("select 1")
                .await
                .expect_err("no server can be had"),
        }
    };
    let err = tokio::time::timeout(Duration::from_secs(30), attempt)
        .await
        .unwrap_or_else(|_| panic!("{db}: not refused within 30 s"));
    let db_err = err
        .as_db_error()
        .unwrap_or_else(|| panic!("{db}: no ErrorResponse: {err:?}"));
    (db_err.code().code().to_owned(), db_err.message().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_scram_servers_are_refused_fast_with_a_clear_error() {
    let firsts: [FirstCase; 8] = [
        (
            |n| format!("r={n}srv,s=c2FsdHNhbHRzYWx0,i=100000000"),
            "SCRAM iteration count from the server is over the limit of 1000000",
        ),
        (
            |n| format!("r={n}srv,s=c2FsdHNhbHRzYWx0,i=1000001"),
            "over the limit of 1000000",
        ),
        (
            |n| format!("r={n}srv,s=c2FsdHNhbHRzYWx0,i=4294967296"),
            "malformed SCRAM message from the server",
        ),
        (
            |n| format!("r={n}srv,s=c2FsdHNhbHRzYWx0,i=0"),
            "malformed SCRAM message from the server",
        ),
        (
            |_| "r=someone-elses-nonce,s=c2FsdHNhbHRzYWx0,i=4096".to_owned(),
            "invalid SCRAM response (nonce mismatch)",
        ),
        // CVE-2026-6665: a nonce far longer than any buffer PgBouncer had.
        (
            |n| format!("r={n}{},s=c2FsdHNhbHRzYWx0,i=4096", "x".repeat(100_000)),
            "SCRAM message from the server too long",
        ),
        (
            |n| format!("r={n}srv,i=4096"),
            "malformed SCRAM message from the server",
        ),
        (|_| String::new(), "malformed SCRAM message from the server"),
    ];
    let too_long = vec![b'v'; 70_000];
    let finals: [(&[u8], &str); 4] = [
        (
            b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "invalid server signature",
        ),
        (
            b"e=other-error",
            "error received from server in SCRAM exchange",
        ),
        (b"v=not base64!", "malformed SCRAM message from the server"),
        (&too_long, "SCRAM message from the server too long"),
    ];
    let mut fakes = Vec::new();
    for (first, _) in firsts {
        fakes.push(FakeServer::start(Script::ServerFirst(first)).await);
    }
    for (last, _) in finals {
        fakes.push(FakeServer::start(Script::ServerFinal(last.to_vec())).await);
    }
    let pooler = pooler_for(&fakes.iter().collect::<Vec<_>>());
    let reasons = firsts.iter().map(|f| f.1).chain(finals.iter().map(|f| f.1));
    for (i, reason) in reasons.enumerate() {
        let (code, message) = refusal(&pooler, &format!("fake{i}")).await;
        assert_eq!(code, "08P01", "fake{i}: {message}");
        assert!(
            message.contains(reason),
            "fake{i}: {message:?} lacks {reason:?}"
        );
    }
    // No key was derived for a server-first the pooler refused: it never sent a client-final.
    for (i, fake) in fakes.iter().take(firsts.len()).enumerate() {
        assert_eq!(fake.client_finals.load(Ordering::Relaxed), 0, "fake{i}");
    }
    super::still_serves(&pooler).await;
    pooler.stop().await;
}

/// CVE-2026-6666: ErrorResponses without SQLSTATE (or without any field) at login are refusals
/// with 08P01; after login they are relayed as they are, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_responses_without_sqlstate() {
    let at_login = FakeServer::start(Script::LoginError(vec![
        (b'S', "FATAL"),
        (b'M', "no sqlstate at login"),
    ]))
    .await;
    let empty = FakeServer::start(Script::LoginError(Vec::new())).await;
    let in_query = FakeServer::start(Script::QueryError(vec![
        (b'S', "ERROR"),
        (b'M', "no sqlstate here"),
    ]))
    .await;
    let bare = FakeServer::start(Script::QueryError(Vec::new())).await;
    let pooler = pooler_for(&[&at_login, &empty, &in_query, &bare]);
    let (code, message) = refusal(&pooler, "fake0").await;
    assert_eq!(code, "08P01");
    assert!(message.contains("no sqlstate at login"), "{message}");
    let (code, _) = refusal(&pooler, "fake1").await;
    assert_eq!(code, "08P01");
    for (db, text) in [("fake2", "no sqlstate here"), ("fake3", "")] {
        let (mut s, _) = raw::login(pooler.port, USER, &password(USER), db).await;
        for _ in 0..3 {
            s.write_all(&raw::query("select 1")).await.unwrap();
            let mut errors = Vec::new();
            loop {
                let (tag, body) = raw::read_message(&mut s).await.expect("reply");
                match tag {
                    b'E' => errors.push(body),
                    b'Z' => break,
                    _ => {}
                }
            }
            assert_eq!(errors.len(), 1, "{db}");
            assert_eq!(raw::error_code(&errors[0]), None, "{db}");
            assert_eq!(raw::error_message(&errors[0]), text, "{db}");
        }
    }
    super::still_serves(&pooler).await;
    pooler.stop().await;
}

/// The replies to the pooler's own queries (here `connect_query`) are read whole; a message
/// declared at 1 GiB is refused at its header (the cap is 16 MiB): the pooler hangs up on that
/// server at once instead of reserving the gigabyte and waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_reply_to_the_poolers_own_query_is_refused_at_its_header() {
    let fake = FakeServer::start(Script::OversizedReply).await;
    let pooler = pooler_with(&[&fake], "connect_query='select 1'");
    // The login waits for a server (query_wait_timeout is a minute); it only starts one.
    let waiting = tokio::spawn({
        let port = pooler.port;
        async move { raw::login(port, USER, &password(USER), "fake0").await }
    });
    let hung_up = crate::harness::pooler::eventually(30, || async {
        fake.hung_up_on.load(Ordering::Relaxed) > 0
    })
    .await;
    waiting.abort();
    assert!(
        hung_up,
        "the pooler kept the server that declared a 1 GiB message"
    );
    super::still_serves(&pooler).await;
    pooler.stop().await;
}
