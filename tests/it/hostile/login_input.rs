//! What an unauthenticated client sends during the password exchange: passwords of 65,536
//! bytes, SASL messages cut in the middle, lengths that overflow (CVE-2026-6664), a SCRAM
//! client-final without its nonce, for a known and an unknown user (CVE-2026-19888), and
//! declared lengths far beyond what a login needs (CVE-2026-6668: refused before any body is
//! buffered, while other clients log in).

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{USER, assert_closed, assert_refused, errors_then_eof, still_serves};
use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw;

const LONG_USER: &str = "long_user";

fn start(auth_type: &str, settings: &str) -> Pooler {
    let pg = PgCluster::shared();
    let db = pg.create_database("hostilelogin");
    let long = "L".repeat(65_535);
    // long_user is no role of the cluster: its database logs in to the server as md5_user.
    let forced = format!("user={USER} password={}", password(USER));
    Pooler::start(
        &format!(
            "{}{}",
            db_line("app", &db, ""),
            db_line("longapp", &db, &forced)
        ),
        &format!("pool_mode = transaction\nauth_type = {auth_type}\n{settings}"),
        &userlist(&[(USER, &password(USER)), (LONG_USER, &long)]),
    )
}

/// Connects, sends the startup packet for `user` and returns the first auth request code.
async fn begin(port: u16, user: &str) -> (TcpStream, i32, Vec<u8>) {
    let db = if user == LONG_USER { "longapp" } else { "app" };
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(&raw::startup_packet(user, db)).await.unwrap();
    let (tag, body) = raw::read_message(&mut s).await.expect("auth request");
    assert_eq!(tag, b'R');
    let code = i32::from_be_bytes(body[..4].try_into().unwrap());
    (s, code, body[4..].to_vec())
}

/// A SASLInitialResponse for SCRAM-SHA-256 whose inner length field says `declared`.
fn sasl_initial(data: &[u8], declared: i32) -> Vec<u8> {
    let mut body = b"SCRAM-SHA-256\0".to_vec();
    body.extend_from_slice(&declared.to_be_bytes());
    body.extend_from_slice(data);
    raw::message(b'p', &body)
}

fn password_message(password: &[u8]) -> Vec<u8> {
    let mut body = password.to_vec();
    body.push(0);
    raw::message(b'p', &body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_of_65536_bytes() {
    let pooler = start("plain", "client_login_timeout = 60");
    // PgBouncer 1.26's longest password (65,535 bytes) is accepted...
    let (mut s, code, _) = begin(pooler.port, LONG_USER).await;
    assert_eq!(code, 3, "cleartext request");
    s.write_all(&password_message("L".repeat(65_535).as_bytes()))
        .await
        .unwrap();
    let (tag, body) = raw::read_message(&mut s).await.expect("reply");
    assert_eq!(
        (tag, &body[..4]),
        (b'R', &[0u8; 4][..]),
        "AuthenticationOk, not {:?}",
        raw::error_message(&body)
    );
    raw::read_until_ready(&mut s).await.expect("logged in");
    s.write_all(&raw::query("select 1")).await.unwrap();
    raw::read_until_ready(&mut s).await.expect("and served");
    drop(s);
    // ... one more byte is just a wrong password, and so is 65,536 bytes for anyone else.
    for user in [LONG_USER, USER, "ghost"] {
        let (mut s, _, _) = begin(pooler.port, user).await;
        s.write_all(&password_message("L".repeat(65_536).as_bytes()))
            .await
            .unwrap();
        let errors = errors_then_eof(&mut s).await;
        let text = format!("password authentication failed for user \"{user}\"");
        assert_refused(user, &errors, "28P01", Some(&text));
    }
    still_serves(&pooler).await;
    pooler.stop().await;
}

/// Lengths that overflow or lie, inside and around the SASL messages, and lengths a login never
/// needs: each is refused with 08P01 at once (the login timeout is a minute, so waiting for a
/// body that never comes would show as an open connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_lengths_that_overflow_or_lie() {
    let pooler = start("scram-sha-256", "client_login_timeout = 60");
    let first = b"n,,n=,r=abcdefghijklmnopqrstuvwx";
    let mut negative_outer = vec![b'p'];
    negative_outer.extend_from_slice(&(-1_i32).to_be_bytes());
    let mut huge_outer = vec![b'p'];
    huge_outer.extend_from_slice(&0x7fff_fff0_i32.to_be_bytes());
    let mut hundred_mb = vec![b'p'];
    hundred_mb.extend_from_slice(&100_000_000_i32.to_be_bytes());
    let cases: [(&str, Vec<u8>, &str); 7] = [
        (
            "inner length 0x7fffffff",
            sasl_initial(first, i32::MAX),
            "08P01",
        ),
        ("inner length -1", sasl_initial(first, -1), "08P01"),
        (
            "inner length i32::MIN",
            sasl_initial(first, i32::MIN),
            "08P01",
        ),
        ("inner length too short", sasl_initial(first, 3), "08P01"),
        ("outer length -1", negative_outer, "08P01"),
        ("outer length 0x7ffffff0", huge_outer, "08P01"),
        ("outer length 100 MB", hundred_mb, "08P01"),
    ];
    for user in [USER, "ghost"] {
        for (name, bytes, code) in &cases {
            let (mut s, auth, _) = begin(pooler.port, user).await;
            assert_eq!(auth, 10, "SASL request");
            let _ = s.write_all(bytes).await;
            let errors = errors_then_eof(&mut s).await;
            assert_refused(name, &errors, code, None);
            assert!(!errors.is_empty(), "{user} {name}: closed without an error");
        }
        // A 65,536-byte client-first is a failed SCRAM exchange, not a crash.
        let (mut s, _, _) = begin(pooler.port, user).await;
        let mut long = b"n,,n=,r=".to_vec();
        long.extend(std::iter::repeat_n(b'r', 65_536));
        s.write_all(&sasl_initial(&long, i32::try_from(long.len()).unwrap()))
            .await
            .unwrap();
        let errors = errors_then_eof(&mut s).await;
        assert_refused(
            "65 KiB client-first",
            &errors,
            "28P01",
            Some("SASL authentication failed"),
        );
    }
    still_serves(&pooler).await;
    pooler.stop().await;
}

/// CVE-2026-19888: a client-final without `r=` (and other broken client-finals) after a valid
/// client-first, for a known user and for one the pooler does not know (the mock exchange).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_client_final_without_nonce() {
    let pooler = start("scram-sha-256", "client_login_timeout = 60");
    let proof = "p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let finals = [
        format!("c=biws,{proof}"),
        "c=biws".to_owned(),
        format!("c=biws,r=,{proof}"),
        format!("r=abcdefghijklmnopqrstuvwx,{proof}"),
        String::new(),
        ",,,,".to_owned(),
    ];
    for user in [USER, "ghost"] {
        for last in &finals {
            let (mut s, _, _) = begin(pooler.port, user).await;
            let first = b"n,,n=,r=abcdefghijklmnopqrstuvwx";
            s.write_all(&sasl_initial(first, i32::try_from(first.len()).unwrap()))
                .await
                .unwrap();
            let (tag, body) = raw::read_message(&mut s).await.expect("server-first");
            assert_eq!((tag, &body[..4]), (b'R', &11_i32.to_be_bytes()[..]));
            s.write_all(&raw::message(b'p', last.as_bytes()))
                .await
                .unwrap();
            let errors = errors_then_eof(&mut s).await;
            assert_refused(last, &errors, "28P01", Some("SASL authentication failed"));
            assert!(!errors.is_empty(), "{user} {last:?}: no error");
        }
    }
    still_serves(&pooler).await;
    pooler.stop().await;
}

/// SASL messages cut in the middle: a client that then closes is dropped at once; one that
/// stalls is dropped by `client_login_timeout`, with PgBouncer's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_messages_cut_in_the_middle() {
    let pooler = start("scram-sha-256", "client_login_timeout = 2");
    let first = b"n,,n=,r=abcdefghijklmnopqrstuvwx";
    let whole = sasl_initial(first, i32::try_from(first.len()).unwrap());
    for cut in [1, 3, 5, 12, whole.len() - 1] {
        // Cut, then the client closes its side.
        let (mut s, _, _) = begin(pooler.port, USER).await;
        s.write_all(&whole[..cut]).await.unwrap();
        s.shutdown().await.unwrap();
        assert_closed(&mut s).await;
        // Cut, then silence: the login timeout ends it.
        let (mut s, _, _) = begin(pooler.port, "ghost").await;
        s.write_all(&whole[..cut]).await.unwrap();
        let errors = errors_then_eof(&mut s).await;
        assert_refused("stalled", &errors, "08P01", Some("client_login_timeout"));
    }
    // Cut in the middle of the client-final.
    let (mut s, _, _) = begin(pooler.port, USER).await;
    s.write_all(&whole).await.unwrap();
    let (tag, _) = raw::read_message(&mut s).await.expect("server-first");
    assert_eq!(tag, b'R');
    let last = raw::message(b'p', b"c=biws,r=abcdefghijklmnopqrstuvwx,p=AAAA");
    s.write_all(&last[..last.len() / 2]).await.unwrap();
    let errors = errors_then_eof(&mut s).await;
    assert_refused(
        "client-final cut",
        &errors,
        "08P01",
        Some("client_login_timeout"),
    );
    still_serves(&pooler).await;
    pooler.stop().await;
}
