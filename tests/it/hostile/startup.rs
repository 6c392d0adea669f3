//! The first packet: 10,000 parameters, 64 KiB names, missing terminators, repeated
//! SSLRequest/GSSENCRequest, and garbage where TLS should start. Each is refused with FATAL
//! 08P01 (or a plain close when the connection is already unusable), never after waiting for
//! the login timeout (set to a minute, so a hang shows as an open connection), and a normal
//! client logs in afterwards.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{assert_closed, assert_refused, errors_then_eof, start, still_serves};
use crate::harness::certs::TestCa;
use crate::harness::raw;

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const GSSENC_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];

/// A v3.0 startup packet around `body` (parameters and terminators as given).
fn startup_with(body: &[u8]) -> Vec<u8> {
    let mut out = i32::try_from(body.len() + 8)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(&196_608_i32.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn params(pairs: impl IntoIterator<Item = (String, String)>) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in pairs {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body
}

async fn send(port: u16, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // The pooler may close before reading everything; a failed write is part of the outcome.
    let _ = s.write_all(bytes).await;
    s
}

async fn read_byte(s: &mut TcpStream) -> u8 {
    let mut b = [0u8; 1];
    tokio::time::timeout(
        raw::READ_TIMEOUT,
        tokio::io::AsyncReadExt::read_exact(s, &mut b),
    )
    .await
    .expect("answer in time")
    .expect("one byte");
    b[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_parameter_lists_names_and_missing_terminators_are_refused() {
    let pooler = start("client_login_timeout = 60");
    let user = || ("user".to_owned(), super::USER.to_owned());
    let mut ten_thousand = params(std::iter::once(user()));
    ten_thousand.extend(params(
        (0..10_000).map(|i| (format!("p{i}"), "v".to_owned())),
    ));
    ten_thousand.push(0);
    let mut long_name = params([user(), ("n".repeat(65_536), "v".to_owned())]);
    long_name.push(0);
    let mut long_value = params([user(), ("application_name".to_owned(), "v".repeat(65_536))]);
    long_value.push(0);
    // Under the 10,000-byte limit but with 1,000 parameters nobody tracks.
    let mut many_small = params(std::iter::once(user()));
    many_small.extend(params((0..1_000).map(|i| (format!("x{i}"), String::new()))));
    many_small.push(0);
    let no_final_nul = params([user(), ("database".to_owned(), "app".to_owned())]);
    let mut name_unterminated = params(std::iter::once(user()));
    name_unterminated.extend_from_slice(b"database");
    let mut value_unterminated = params(std::iter::once(user()));
    value_unterminated.extend_from_slice(b"database\0app");
    let mut not_utf8 = params(std::iter::once(user()));
    not_utf8.extend_from_slice(b"application_name\0\xff\xfe\0\0");
    let cases: [(&str, Vec<u8>, Option<&str>); 8] = [
        ("10,000 parameters", startup_with(&ten_thousand), None),
        ("64 KiB name", startup_with(&long_name), None),
        ("64 KiB value", startup_with(&long_value), None),
        (
            "1,000 unknown parameters",
            startup_with(&many_small),
            Some("unsupported startup parameter: x0"),
        ),
        ("no final terminator", startup_with(&no_final_nul), None),
        ("unterminated name", startup_with(&name_unterminated), None),
        (
            "unterminated value",
            startup_with(&value_unterminated),
            None,
        ),
        ("value not UTF-8", startup_with(&not_utf8), None),
    ];
    for (name, bytes, text) in cases {
        let mut s = send(pooler.port, &bytes).await;
        let errors = errors_then_eof(&mut s).await;
        assert_refused(name, &errors, "08P01", text);
        if text.is_some() || bytes.len() <= 10_000 {
            assert!(!errors.is_empty(), "{name}: closed without an error");
        }
    }
    still_serves(&pooler).await;
    pooler.stop().await;
}

/// One SSLRequest and one GSSENCRequest are answered (`N` here: TLS is off); asking again is
/// refused at once, as PostgreSQL does, instead of being answered until the login timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_ssl_and_gssenc_requests_are_refused() {
    let pooler = start("client_login_timeout = 60");
    for (first, again, text) in [
        (SSL_REQUEST, SSL_REQUEST, "repeated SSL request"),
        (GSSENC_REQUEST, GSSENC_REQUEST, "repeated GSSENC request"),
    ] {
        let mut s = send(pooler.port, &first).await;
        assert_eq!(read_byte(&mut s).await, b'N');
        let mut also = if first == SSL_REQUEST {
            GSSENC_REQUEST
        } else {
            SSL_REQUEST
        };
        s.write_all(&also).await.unwrap();
        assert_eq!(
            read_byte(&mut s).await,
            b'N',
            "the other request once is fine"
        );
        also = again;
        s.write_all(&also).await.unwrap();
        let errors = errors_then_eof(&mut s).await;
        assert_refused(text, &errors, "08P01", Some(text));
    }
    // A flood of 10,000 SSLRequests in one write: refused after the first, not answered 10,000
    // times.
    let flood: Vec<u8> = SSL_REQUEST.repeat(10_000);
    let mut s = send(pooler.port, &flood).await;
    let errors = errors_then_eof(&mut s).await;
    assert_refused("SSLRequest flood", &errors, "08P01", None);
    // libpq's own sequence (GSSENC, then SSL, then the startup packet) still logs in.
    let mut s = send(pooler.port, &GSSENC_REQUEST).await;
    assert_eq!(read_byte(&mut s).await, b'N');
    s.write_all(&SSL_REQUEST).await.unwrap();
    assert_eq!(read_byte(&mut s).await, b'N');
    s.write_all(&raw::startup_packet(super::USER, "app"))
        .await
        .unwrap();
    let (tag, body) = raw::read_message(&mut s).await.expect("auth request");
    assert_eq!(
        (tag, &body[..4]),
        (b'R', &5_i32.to_be_bytes()[..]),
        "md5 challenge"
    );
    still_serves(&pooler).await;
    pooler.stop().await;
}

/// Garbage where the TLS handshake should be: the TLS accept fails and the connection closes;
/// bytes pipelined behind the SSLRequest itself are refused in plain text (CVE-2021-23214);
/// garbage after an `N` is read as a (bad) startup packet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_garbage_after_ssl_request_closes_the_connection() {
    let ca = TestCa::new("hostile-tls");
    let cert = ca.issue("pooler", "pgsluice", &["localhost", "127.0.0.1"]);
    let pooler = start(&format!(
        "client_login_timeout = 60\nclient_tls_sslmode = allow\nclient_tls_cert_file = {}\nclient_tls_key_file = {}",
        cert.cert.display(),
        cert.key.display()
    ));
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| u8::try_from((i * 7 + 3) % 256).unwrap())
        .collect();
    // A handshake record holding a ClientHello header that claims 16 MiB, then junk. (A record
    // that is merely incomplete is a slow client, which the login timeout ends.)
    let mut fake_hello = vec![0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0xff, 0xff, 0xff, 0xff];
    fake_hello.extend_from_slice(&garbage);
    for (name, after) in [("garbage", &garbage), ("broken ClientHello", &fake_hello)] {
        let mut s = send(pooler.port, &SSL_REQUEST).await;
        assert_eq!(read_byte(&mut s).await, b'S', "{name}");
        let _ = s.write_all(after).await;
        assert_closed(&mut s).await;
    }
    // An SSLRequest, then the client closes instead of starting TLS.
    let mut s = send(pooler.port, &SSL_REQUEST).await;
    assert_eq!(read_byte(&mut s).await, b'S');
    s.shutdown().await.unwrap();
    assert_closed(&mut s).await;
    // Pipelined behind the SSLRequest, before the answer.
    let mut pipelined = SSL_REQUEST.to_vec();
    pipelined.extend_from_slice(&raw::startup_packet(super::USER, "app"));
    let mut s = send(pooler.port, &pipelined).await;
    let errors = errors_then_eof(&mut s).await;
    assert_refused(
        "pipelined",
        &errors,
        "08P01",
        Some("received unencrypted data after SSL request"),
    );
    still_serves(&pooler).await;
    pooler.stop().await;

    let plain = start("client_login_timeout = 60");
    let mut s = send(plain.port, &SSL_REQUEST).await;
    assert_eq!(read_byte(&mut s).await, b'N');
    let _ = s.write_all(&fake_hello).await;
    let errors = errors_then_eof(&mut s).await;
    assert_refused("TLS after N", &errors, "08P01", None);
    still_serves(&plain).await;
    plain.stop().await;
}
