//! Oversized and garbage startup packets, absurd message lengths, connection floods beyond
//! max_client_conn and bad-password floods. The pooler answers with an error
//! and closes, never allocates what a length field claims, and keeps serving everyone else.
//! (Arbitrary bytes through the parsers are proptests in src/protocol, src/auth and src/config.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{USER, errors_then_eof, start, still_serves};
use crate::harness::pooler::{first_value, sqlstate};
use crate::harness::postgres::password;
use crate::harness::raw;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_startup_packets_are_refused() {
    let pooler = start("client_login_timeout = 5");
    let mut oversized = 20_000_i32.to_be_bytes().to_vec();
    oversized.extend_from_slice(&196_608_i32.to_be_bytes());
    oversized.extend(std::iter::repeat_n(b'a', 19_992));
    let mut absurd = 0x7fff_ffff_i32.to_be_bytes().to_vec();
    absurd.extend_from_slice(&196_608_i32.to_be_bytes());
    let mut negative = (-8_i32).to_be_bytes().to_vec();
    negative.extend_from_slice(&196_608_i32.to_be_bytes());
    let mut unterminated = 40_i32.to_be_bytes().to_vec();
    unterminated.extend_from_slice(&196_608_i32.to_be_bytes());
    unterminated.extend(std::iter::repeat_n(b'u', 32));
    let cases: [(&str, Vec<u8>); 6] = [
        ("oversized", oversized),
        ("absurd length", absurd),
        ("negative length", negative),
        ("unterminated parameters", unterminated),
        ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("garbage", (0..=255u8).cycle().take(4096).collect()),
    ];
    for (name, bytes) in cases {
        let mut s = TcpStream::connect(("127.0.0.1", pooler.port))
            .await
            .unwrap();
        // The pooler may close before reading everything; a failed write is fine.
        let _ = s.write_all(&bytes).await;
        // Refused by what it read, not by `client_login_timeout` (60 s here).
        let errors = tokio::time::timeout(Duration::from_secs(30), errors_then_eof(&mut s))
            .await
            .unwrap_or_else(|_| panic!("{name}: not refused before client_login_timeout"));
        super::assert_refused(name, &errors, "08P01", None);
    }
    still_serves(&pooler).await;
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_message_lengths_after_login() {
    let pooler = start("");
    let pw = password(USER);
    for len in [0x7fff_ffff_i32, -1, i32::MIN, 0, 3] {
        let (mut s, _) = raw::login(pooler.port, USER, &pw, "app").await;
        let mut msg = vec![b'Q'];
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(b"select 1\0");
        let _ = s.write_all(&msg).await;
        let codes: Vec<String> = errors_then_eof(&mut s)
            .await
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(codes, ["08P01"], "length {len}");
    }
    // Also once a server is attached: a valid query, then a bogus header mid-stream.
    let (mut s, _) = raw::login(pooler.port, USER, &pw, "app").await;
    s.write_all(&raw::query("select 1")).await.unwrap();
    raw::read_until_ready(&mut s).await.unwrap();
    let mut msg = raw::query("select pg_sleep(0.2)");
    msg.extend_from_slice(&[b'Q', 0x7f, 0xff, 0xff, 0xff]);
    let _ = s.write_all(&msg).await;
    let errors = errors_then_eof(&mut s).await;
    assert!(errors.iter().any(|(c, _)| c == "08P01"), "{errors:?}");
    still_serves(&pooler).await;
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_client_conn_refuses_fast_and_spares_existing_clients() {
    let pooler = start("max_client_conn = 8\ndefault_pool_size = 2");
    let pw = password(USER);
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(pooler.connect(USER, &pw, "app").await.unwrap());
    }
    for _ in 0..20 {
        // Refused at once, not left waiting for `client_login_timeout` (60 s here).
        let err = tokio::time::timeout(Duration::from_secs(30), pooler.connect(USER, &pw, "app"))
            .await
            .expect("refused before client_login_timeout")
            .expect_err("beyond max_client_conn");
        assert_eq!(sqlstate(&err).as_deref(), Some("08P01"), "{err:?}");
    }
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(
            first_value(c, &format!("select {i}"))
                .await
                .unwrap()
                .as_deref(),
            Some(i.to_string().as_str())
        );
    }
    // A slot freed is a slot usable again.
    drop(clients.pop());
    let mut ok = false;
    for _ in 0..100 {
        if let Ok(c) = pooler.connect(USER, &pw, "app").await {
            ok = first_value(&c, "select 1").await.is_ok();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "a freed slot is reusable");
    pooler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_password_flood_refuses_all_and_good_user_gets_in() {
    const TASKS: usize = 20;
    const PER_TASK: usize = 15;
    let pooler = Arc::new(start("max_client_conn = 100"));
    let refused = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..TASKS)
        .map(|t| {
            let (pooler, refused) = (Arc::clone(&pooler), Arc::clone(&refused));
            tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let err = pooler
                        .connect(USER, &format!("wrong{t}_{i}"), "app")
                        .await
                        .expect_err("bad password refused");
                    assert_eq!(sqlstate(&err).as_deref(), Some("28P01"), "{err:?}");
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // During the flood, the right password works, every time.
    for _ in 0..10 {
        let client = tokio::time::timeout(
            Duration::from_secs(10),
            pooler.connect(USER, &password(USER), "app"),
        )
        .await
        .expect("good login not starved")
        .expect("good login accepted during the flood");
        assert_eq!(
            first_value(&client, "select 1").await.unwrap().as_deref(),
            Some("1")
        );
    }
    for task in flood {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("flood finished")
            .unwrap();
    }
    assert_eq!(refused.load(Ordering::Relaxed), TASKS * PER_TASK);
    let pooler = Arc::into_inner(pooler).unwrap();
    pooler.stop().await;
}
