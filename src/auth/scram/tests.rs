//! SCRAM tests: RFC 7677 vectors, round trips, rejections, a cross-check against
//! `postgres-protocol`, and no-panic properties.

use proptest::prelude::*;

use super::*;
use crate::auth::AuthError;
use crate::config::Secret;

// RFC 7677 section 3: user "user", password "pencil".
const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

// The verifier PostgreSQL stores for "pencil" with the RFC's salt and 4096 iterations
// (computed at dev time with Python's hashlib/hmac, the same derivation PostgreSQL 15 uses).
const PENCIL_SECRET: &str = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$\
                             WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:\
                             wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

fn pencil() -> ScramSecret {
    parse_scram_secret(PENCIL_SECRET).expect("valid secret")
}

/// A server that has answered the RFC's client-first.
fn rfc_server() -> ScramServer {
    let mut server = ScramServer::new(&Secret::Scram(pencil()), "user").unwrap();
    let first = server
        .client_first_with_nonce(RFC_CLIENT_FIRST.as_bytes(), RFC_SERVER_NONCE)
        .unwrap();
    assert_eq!(first, RFC_SERVER_FIRST.as_bytes());
    server
}

/// A client that has sent the RFC's client-first.
fn rfc_client(client: ScramClient) -> ScramClient {
    let mut client = client;
    let first = client.client_first_with_nonce("user", RFC_CLIENT_NONCE);
    assert_eq!(first, RFC_CLIENT_FIRST.as_bytes());
    client
}

#[test]
fn secret_from_password_matches_stored_form() {
    let salt = pencil().salt;
    assert!(scram_secret_from_password("pencil", &salt, 4096) == pencil());
    let other = "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$\
                 THoPhoTAuqyoQsK4dUHncUzgfD8fdmhsgKZhWVqNP5U=:\
                 7YiHMMi2OcXGRogub03Ek06JRZ9bkhTOdCzHa5iPLiQ=";
    let salt: Vec<u8> = (0..16).collect();
    assert!(
        scram_secret_from_password("secret", &salt, 4096) == parse_scram_secret(other).unwrap()
    );
}

#[test]
fn secrets_built_by_postgresql_15() {
    // `CREATE ROLE ... PASSWORD` with password_encryption = scram-sha-256, read from pg_authid
    // at dev time. The second password is non-ASCII but already NFKC, so the raw bytes match.
    let cases = [
        (
            "pencil",
            "SCRAM-SHA-256$4096:emVBk9FVIpZPtG8t6PVibw==$\
             0cF2J3af26iuanb1Tecgzir/ScBHNRPAkZgrjpL1HOg=:\
             CCU+lfZ8hpCPGH6htWCdYV+J/LULr05b10UrRuIM1CU=",
        ),
        (
            "p\u{e4}ssw\u{f6}rd",
            "SCRAM-SHA-256$4096:YsHPjNT/yisTxA11P1UZqA==$\
             AvUOpuCKTvD0vUWY2aQSSLlDmQ6+A5v3zX7WTSM6nAo=:\
             tX7tmC1f9C0gwgDf8wOBFnrQHQDw+TVfLhpOFTK9lvA=",
        ),
    ];
    for (password, text) in cases {
        let stored = parse_scram_secret(text).unwrap();
        let rebuilt = scram_secret_from_password(password, &stored.salt, stored.iterations);
        assert!(rebuilt == stored, "{password}");
        assert!(super::verify_scram_password(&stored, password));
        assert!(!super::verify_scram_password(&stored, "wrong"));
        // Over the iteration cap: refused without deriving anything (4e9 rounds would take
        // an hour).
        let mut costly = stored.clone();
        costly.iterations = 4_000_000_000;
        assert!(!super::verify_scram_password(&costly, password));
    }
}

#[test]
fn parse_secret_rejects_bad_forms() {
    for bad in [
        "",
        "md5abc",
        "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$+1:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkd:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
    ] {
        assert!(parse_scram_secret(bad).is_none(), "{bad}");
    }
}

#[test]
fn server_follows_rfc_7677() {
    let mut server = rfc_server();
    assert_eq!(server.client_key(), None);
    let last = server.client_final(RFC_CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(last, RFC_SERVER_FINAL.as_bytes());
    let salted = crypto::hi(b"pencil", &pencil().salt, 4096);
    assert_eq!(server.client_key(), Some(crypto::client_key(&salted)));
}

#[test]
fn client_follows_rfc_7677() {
    for client in [ScramClient::with_password("pencil"), pencil_keys_client()] {
        let mut client = rfc_client(client);
        let last = client.server_first(RFC_SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(last, RFC_CLIENT_FINAL.as_bytes());
        client.server_final(RFC_SERVER_FINAL.as_bytes()).unwrap();
    }
}

/// A client holding "pencil"'s keys: answers the RFC's server without running PBKDF2, which
/// keeps property tests fast in debug builds.
fn pencil_keys_client() -> ScramClient {
    static CLIENT_KEY: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(|| {
        crypto::client_key(&crypto::hi(b"pencil", &pencil().salt, 4096))
    });
    ScramClient::with_keys(*CLIENT_KEY, &pencil())
}

/// Runs a whole exchange; the server's verdict on the client's proof.
fn round_trip(server_secret: &Secret, client: &mut ScramClient) -> Result<ScramServer, AuthError> {
    let mut server = ScramServer::new(server_secret, "alice")?;
    let first = server.client_first(&client.client_first())?;
    let last = server.client_final(&client.server_first(&first)?)?;
    client.server_final(&last)?;
    Ok(server)
}

#[test]
fn round_trip_with_plain_and_scram_secrets() {
    let scram = Secret::Scram(scram_secret_from_password(
        "s3cret",
        b"0123456789abcdef",
        4096,
    ));
    for secret in [Secret::Plain("s3cret".into()), scram] {
        let server = round_trip(&secret, &mut ScramClient::with_password("s3cret")).unwrap();
        assert!(server.client_key().is_some());
    }
}

#[test]
fn pass_through_keys_log_in_to_a_server_with_the_same_secret() {
    let secret = scram_secret_from_password("s3cret", b"0123456789abcdef", 4096);
    // A client proves itself to the pooler...
    let front = round_trip(
        &Secret::Scram(secret.clone()),
        &mut ScramClient::with_password("s3cret"),
    )
    .unwrap();
    let client_key = front.client_key().unwrap();
    // ...and the pooler replays its keys to a server holding the same secret.
    let mut client = ScramClient::with_keys(client_key, &secret);
    round_trip(&Secret::Scram(secret.clone()), &mut client).unwrap();
    // A server with another salt cannot be answered without the password.
    let mut client = ScramClient::with_keys(client_key, &secret);
    let err = round_trip(&Secret::Plain("s3cret".into()), &mut client).unwrap_err();
    assert_eq!(err, AuthError::SecretMismatch);
}

#[test]
fn wrong_password_is_rejected() {
    let secret = Secret::Scram(scram_secret_from_password("right", b"salt", 4096));
    let err = round_trip(&secret, &mut ScramClient::with_password("wrong")).unwrap_err();
    assert_eq!(err, AuthError::InvalidProof);
    let err = round_trip(
        &Secret::Plain("right".into()),
        &mut ScramClient::with_password(""),
    )
    .unwrap_err();
    assert_eq!(err, AuthError::InvalidProof);
}

#[test]
fn doomed_exchange_looks_real_and_always_fails() {
    let nonce = [7u8; 32];
    let salt_of = |user: &str| {
        let mut server = ScramServer::doomed(user, &nonce);
        let first = server.client_first(b"n,,n=,r=abc").unwrap();
        let first = String::from_utf8(first).unwrap();
        first.split(',').nth(1).unwrap().to_owned()
    };
    assert_eq!(salt_of("ghost"), salt_of("ghost"));
    assert_ne!(salt_of("ghost"), salt_of("other"));
    let mut client = ScramClient::with_password("");
    let mut server = ScramServer::doomed("ghost", &nonce);
    let first = server.client_first(&client.client_first()).unwrap();
    let last = client.server_first(&first).unwrap();
    assert_eq!(server.client_final(&last), Err(AuthError::InvalidProof));
}

#[test]
fn md5_secret_cannot_do_scram() {
    let err = ScramServer::new(&Secret::Md5("0".repeat(32)), "u").unwrap_err();
    assert!(matches!(err, AuthError::UnsupportedSecret(_)));
}

#[test]
fn server_rejects_bad_client_first() {
    let cases: [(&str, AuthError); 9] = [
        (
            "p=tls-server-end-point,,n=,r=abc",
            AuthError::ChannelBindingUnsupported,
        ),
        ("n,a=bob,n=,r=abc", AuthError::AuthzidUnsupported),
        ("y,a=alice,n=,r=abc", AuthError::AuthzidUnsupported),
        (
            "x,,n=,r=abc",
            AuthError::Malformed("invalid channel binding flag"),
        ),
        ("n,,r=abc,n=", AuthError::Malformed("missing user name")),
        (
            "n,,m=ext,n=,r=abc",
            AuthError::Malformed("unsupported mandatory extension"),
        ),
        ("n,,n=,r=a b", AuthError::Malformed("invalid nonce")),
        ("n,,n=,r=", AuthError::Malformed("invalid nonce")),
        (
            "n,,n=,r=abc,junk",
            AuthError::Malformed("garbage after the last attribute"),
        ),
    ];
    for (msg, want) in cases {
        let mut server = ScramServer::new(&Secret::Plain("pw".into()), "alice").unwrap();
        assert_eq!(server.client_first(msg.as_bytes()), Err(want), "{msg}");
        // A failed exchange stays failed.
        assert_eq!(
            server.client_first(b"n,,n=,r=abc"),
            Err(AuthError::OutOfOrder)
        );
    }
    let mut server = ScramServer::new(&Secret::Plain("pw".into()), "alice").unwrap();
    assert_eq!(
        server.client_first(&vec![b'a'; 5000]),
        Err(AuthError::MessageTooLong)
    );
}

#[test]
fn server_accepts_y_flag_and_ignores_scram_user_name() {
    for first in ["y,,n=,r=abc", "n,,n=someone-else,r=abc"] {
        let mut server = ScramServer::new(&Secret::Plain("pw".into()), "alice").unwrap();
        assert!(server.client_first(first.as_bytes()).is_ok(), "{first}");
    }
}

#[test]
fn server_rejects_bad_client_final() {
    let bad_final = [
        // Wrong channel binding (base64 of "y,,").
        (
            "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            AuthError::ChannelBindingMismatch,
        ),
        (
            "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            AuthError::NonceMismatch,
        ),
        (
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            AuthError::Malformed("missing channel binding"),
        ),
        (
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            AuthError::Malformed("missing proof"),
        ),
        (
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
            AuthError::Malformed("invalid proof"),
        ),
        (
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            AuthError::InvalidProof,
        ),
    ];
    for (msg, want) in bad_final {
        let mut server = rfc_server();
        assert_eq!(server.client_final(msg.as_bytes()), Err(want), "{msg}");
        assert_eq!(server.client_key(), None);
    }
}

#[test]
fn client_rejects_bad_server_messages() {
    let bad_first = [
        (
            "r=other%hv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            AuthError::NonceMismatch,
        ),
        (
            "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            AuthError::NonceMismatch,
        ),
        (
            "s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqOx,i=4096",
            AuthError::Malformed("missing nonce"),
        ),
        (
            "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
            AuthError::Malformed("invalid iteration count"),
        ),
        (
            "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999",
            AuthError::Malformed("invalid iteration count"),
        ),
        (
            "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001",
            AuthError::TooManyIterations {
                count: 1_000_001,
                limit: 1_000_000,
            },
        ),
        (
            "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=100000000",
            AuthError::TooManyIterations {
                count: 100_000_000,
                limit: 1_000_000,
            },
        ),
        (
            "r=rOprNGfwEbeRWgbNEkqOx,s=,i=4096",
            AuthError::Malformed("empty salt"),
        ),
        (
            "m=x,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            AuthError::Malformed("unsupported mandatory extension"),
        ),
    ];
    for (msg, want) in bad_first {
        let mut client = rfc_client(ScramClient::with_password("pencil"));
        assert_eq!(client.server_first(msg.as_bytes()), Err(want), "{msg}");
    }
    let bad_final = [
        (
            "e=invalid-proof",
            AuthError::ServerError("invalid-proof".into()),
        ),
        (
            "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
            AuthError::WrongServerSignature,
        ),
        ("v=AAAA", AuthError::Malformed("invalid verifier")),
        ("x=1", AuthError::Malformed("missing verifier")),
    ];
    for (msg, want) in bad_final {
        let mut client = rfc_client(ScramClient::with_password("pencil"));
        client.server_first(RFC_SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(client.server_final(msg.as_bytes()), Err(want), "{msg}");
    }
    let mut fresh = ScramClient::with_password("pencil");
    assert_eq!(
        fresh.server_first(RFC_SERVER_FIRST.as_bytes()),
        Err(AuthError::OutOfOrder)
    );
}

#[test]
fn errors_carry_no_secret_material() {
    let err = round_trip(
        &Secret::Plain("hunter2".into()),
        &mut ScramClient::with_password("hunter3"),
    )
    .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter"));
    let server = ScramServer::new(&Secret::Plain("hunter2".into()), "u").unwrap();
    assert!(!format!("{server:?}").contains("hunter"));
}

#[test]
fn our_server_accepts_postgres_protocol_client() {
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    for secret in [
        Secret::Plain("tokio pw".into()),
        Secret::Scram(scram_secret_from_password("tokio pw", b"pp-salt", 4096)),
    ] {
        let mut theirs = ScramSha256::new(b"tokio pw", ChannelBinding::unsupported());
        let mut server = ScramServer::new(&secret, "alice").unwrap();
        let first = server.client_first(theirs.message()).unwrap();
        theirs.update(&first).unwrap();
        let last = server.client_final(theirs.message()).unwrap();
        theirs.finish(&last).unwrap();
    }
}

#[test]
fn our_secret_parser_reads_postgres_protocol_secrets() {
    let text = postgres_protocol::password::scram_sha_256(b"tokio pw");
    let parsed = parse_scram_secret(&text).unwrap();
    let rebuilt = scram_secret_from_password("tokio pw", &parsed.salt, parsed.iterations);
    assert!(rebuilt == parsed);
}

proptest! {
    #[test]
    fn server_never_panics(first in proptest::collection::vec(any::<u8>(), 0..300),
                           last in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut server = ScramServer::new(&Secret::Scram(pencil()), "user").unwrap();
        let _ = server.client_first(&first);
        let _ = server.client_final(&last);
        // And a final message after a valid first.
        let mut server = rfc_server();
        let _ = server.client_final(&last);
    }

    #[test]
    fn server_never_panics_on_near_valid_input(suffix in "[a-z=,$%/+0-9A-Z]{0,80}") {
        let mut server = ScramServer::new(&Secret::Scram(pencil()), "user").unwrap();
        let _ = server.client_first(format!("n,,n=user,r={suffix}").as_bytes());
        let mut server = rfc_server();
        let _ = server.client_final(format!("c=biws,r={suffix}").as_bytes());
    }

    #[test]
    fn client_never_panics(first in proptest::collection::vec(any::<u8>(), 0..300),
                           last in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut client = rfc_client(pencil_keys_client());
        let _ = client.server_first(&first);
        let _ = client.server_final(&last);
        let mut client = rfc_client(pencil_keys_client());
        client.server_first(RFC_SERVER_FIRST.as_bytes()).unwrap();
        let _ = client.server_final(&last);
    }

    #[test]
    fn client_never_panics_on_near_valid_input(salt in "[A-Za-z0-9+/=]{0,40}", i in "[0-9a]{0,12}") {
        let mut client = rfc_client(ScramClient::with_password("pencil"));
        // Small iteration counts only, so a random count cannot make the test slow.
        let i = i.get(..3).unwrap_or(&i);
        let _ = client.server_first(format!("r={RFC_CLIENT_NONCE}x,s={salt},i={i}").as_bytes());
    }

    #[test]
    fn secret_parser_never_panics(text in "\\PC{0,120}") {
        let _ = parse_scram_secret(&text);
    }
}
