//! Unit tests of the HBA parser and the first-match rule choice.

use std::net::IpAddr;

use super::*;

fn parse(text: &str) -> Result<Hba, HbaError> {
    Hba::parse(text, "hba.conf", &mut |name| match name {
        "admins.txt" => Ok("carol, dave\n# comment\nerin\n".to_owned()),
        other => Err(format!("no such file: {other}")),
    })
}

fn conn<'a>(addr: Option<&str>, tls: bool, database: &'a str, user: &'a str) -> Connection<'a> {
    Connection {
        addr: addr.map(|a| a.parse::<IpAddr>().unwrap()),
        tls,
        database,
        user,
        physical_replication: false,
    }
}

fn method(hba: &Hba, c: &Connection<'_>) -> Option<HbaMethod> {
    hba.find(c).map(|r| r.method)
}

const FILE: &str = r#"
# TYPE    DATABASE        USER        ADDRESS            METHOD
local     all             all                            peer
hostssl   all             @admins.txt 0.0.0.0/0          cert map=certmap
host      app             bob         10.0.0.0/8         reject
host      app,reports     bob,alice   10.0.0.0 255.0.0.0 md5
hostnossl sameuser        all         192.168.1.0/24     password
host      "all"           all         ::1/128            trust
host      all             all         2001:db8::/32      scram-sha-256
host      all             all         all                reject
"#;

#[test]
fn first_matching_rule_wins() {
    let hba = parse(FILE).unwrap();
    assert_eq!(hba.len(), 8);
    assert_eq!(
        method(&hba, &conn(None, false, "x", "y")),
        Some(HbaMethod::Peer)
    );
    let cert = hba
        .find(&conn(Some("1.2.3.4"), true, "x", "carol"))
        .unwrap();
    assert_eq!(
        (cert.method, cert.map.as_deref()),
        (HbaMethod::Cert, Some("certmap"))
    );
    assert_eq!(cert.line, 4);
    // Without TLS the hostssl line does not apply.
    assert_eq!(
        method(&hba, &conn(Some("1.2.3.4"), false, "x", "carol")),
        Some(HbaMethod::Reject)
    );
    assert_eq!(
        method(&hba, &conn(Some("10.1.2.3"), false, "app", "bob")),
        Some(HbaMethod::Reject)
    );
    assert_eq!(
        method(&hba, &conn(Some("10.1.2.3"), true, "reports", "alice")),
        Some(HbaMethod::Md5)
    );
    assert_eq!(
        method(&hba, &conn(Some("11.1.2.3"), false, "reports", "alice")),
        Some(HbaMethod::Reject)
    );
    assert_eq!(
        method(&hba, &conn(Some("192.168.1.9"), false, "eve", "eve")),
        Some(HbaMethod::Password)
    );
    assert_eq!(
        method(&hba, &conn(Some("192.168.1.9"), true, "eve", "eve")),
        Some(HbaMethod::Reject)
    );
    // A quoted "all" is a database named all.
    assert_eq!(
        method(&hba, &conn(Some("::1"), false, "all", "u")),
        Some(HbaMethod::Trust)
    );
    assert_eq!(
        method(&hba, &conn(Some("::1"), false, "db", "u")),
        Some(HbaMethod::Reject)
    );
    assert_eq!(
        method(&hba, &conn(Some("2001:db8::5"), false, "db", "u")),
        Some(HbaMethod::ScramSha256)
    );
}

#[test]
fn no_match_means_none() {
    let hba = parse("host app alice 127.0.0.1/32 trust\n").unwrap();
    assert!(
        hba.find(&conn(Some("127.0.0.1"), false, "app", "bob"))
            .is_none()
    );
    assert!(hba.find(&conn(None, false, "app", "alice")).is_none());
    assert!(parse("# only comments\n\n").unwrap().is_empty());
}

#[test]
fn errors_name_the_line() {
    for (text, needle) in [
        (
            "host all all 127.0.0.1/32 ldap",
            "unsupported authentication method",
        ),
        (
            "host all all db.example trust",
            "host names are not supported",
        ),
        ("host all all 127.0.0.1/33 trust", "invalid CIDR mask"),
        (
            "host all all 127.0.0.1 255.0.255.0 trust",
            "invalid netmask",
        ),
        ("host all all samenet trust", "unsupported address keyword"),
        ("host samerole all all trust", "unsupported keyword"),
        ("host all +admins all trust", "group membership"),
        (
            "hostgssenc all all all trust",
            "unsupported connection type",
        ),
        ("host all all all", "missing authentication method"),
        ("host all @missing.txt all trust", "no such file"),
        ("host all all all md5 map=x", "unsupported option"),
        ("host \"all all all trust", "unterminated"),
    ] {
        let err = parse(&format!("# header\n{text}\n")).unwrap_err();
        assert_eq!(err.line, 2, "{text}");
        assert!(err.to_string().starts_with("hba.conf:2: "), "{err}");
        assert!(err.reason.contains(needle), "{text}: {err}");
    }
}

#[test]
fn masks_and_prefixes() {
    assert_eq!(prefix_of_mask("255.255.255.0".parse().unwrap()), Some(24));
    assert_eq!(prefix_of_mask("0.0.0.0".parse().unwrap()), Some(0));
    assert_eq!(prefix_of_mask("255.255.255.255".parse().unwrap()), Some(32));
    assert_eq!(prefix_of_mask("ffff:ffff::".parse().unwrap()), Some(32));
    assert_eq!(prefix_of_mask("255.0.255.0".parse().unwrap()), None);
    let any4 = parse("host all all 0.0.0.0/0 trust").unwrap();
    assert!(any4.find(&conn(Some("8.8.8.8"), false, "d", "u")).is_some());
    assert!(any4.find(&conn(Some("::1"), false, "d", "u")).is_none());
}

#[test]
fn maps_must_exist_in_the_ident_file() {
    let hba = parse(FILE).unwrap();
    let (none, _) = IdentMaps::parse("", "ident.conf");
    let err = hba.check_maps(&none, "hba.conf").unwrap_err();
    assert_eq!(
        err.to_string(),
        "hba.conf:4: ident map certmap is not found in auth_ident_file"
    );
    let (maps, _) = IdentMaps::parse("certmap alice bob\n", "ident.conf");
    assert_eq!(hba.check_maps(&maps, "hba.conf"), Ok(()));
}

proptest::proptest! {
    #[test]
    fn never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }
}

#[test]
fn physical_replication_matches_only_the_replication_keyword() {
    let hba = parse(
        "host replication repl 127.0.0.1/32 md5\n\
         host all          all  127.0.0.1/32 trust\n",
    )
    .unwrap();
    let mut c = conn(Some("127.0.0.1"), false, "replication", "repl");
    // A normal login to a database called "replication" does not take the keyword's rule.
    assert_eq!(method(&hba, &c), Some(HbaMethod::Trust));
    c.physical_replication = true;
    assert_eq!(method(&hba, &c), Some(HbaMethod::Md5));
    // Physical replication never falls through to `all`.
    c.user = "other";
    assert_eq!(method(&hba, &c), None);
}
