//! Unit and property tests of the config module.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;

use super::ini::{self, Item, Source};
use super::settings::{self, Kind, Support};
use super::*;

const MAIN: &str = "[pgbouncer]\n";

fn err_of(text: &str) -> String {
    Config::from_ini_str(text, "t.ini").unwrap_err().to_string()
}

/// In-memory files for `%include`.
struct Mem(HashMap<PathBuf, String>);

impl Source for Mem {
    fn read(&mut self, path: &Path) -> std::io::Result<String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

fn mem(files: &[(&str, &str)]) -> Mem {
    Mem(files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
        .collect())
}

#[test]
fn defaults_match_reference() {
    let g = General::default();
    assert_eq!(g.listen_port, 6432);
    assert_eq!(g.unix_socket_dir, "/tmp");
    assert_eq!(g.unix_socket_mode, 0o777);
    assert_eq!(g.pool_mode, PoolMode::Session);
    assert_eq!(g.max_client_conn, 100);
    assert_eq!(g.default_pool_size, 20);
    assert_eq!(g.reserve_pool_timeout, Duration::from_secs(5));
    assert_eq!(g.server_reset_query, "DISCARD ALL");
    assert_eq!(g.server_check_delay, Duration::from_secs(30));
    assert_eq!(g.server_check_query, "<empty>");
    assert_eq!(g.server_lifetime, Duration::from_secs(3600));
    assert_eq!(g.server_idle_timeout, Duration::from_secs(600));
    assert_eq!(g.server_connect_timeout, Duration::from_secs(15));
    assert_eq!(g.server_login_retry, Duration::from_secs(15));
    assert_eq!(g.client_login_timeout, Duration::from_secs(60));
    assert_eq!(g.query_wait_timeout, Duration::from_secs(120));
    assert_eq!(g.cancel_wait_timeout, Duration::from_secs(10));
    assert_eq!(g.query_wait_notify, Duration::from_secs(5));
    assert_eq!(g.stats_period, Duration::from_secs(60));
    assert_eq!(g.max_prepared_statements, 200);
    assert_eq!(g.auth_type, AuthType::Md5);
    assert!(g.auth_query.starts_with("SELECT rolname"));
    assert!(g.log_connections && g.log_disconnections && g.log_pooler_errors && g.log_stats);
    assert!(g.tcp_keepalive);
    assert_eq!(g.pkt_buf, 4096);
    assert_eq!(g.max_packet_size, 2_147_483_647);
    assert_eq!(g.listen_backlog, 128);
    assert_eq!(g.syslog_ident, "pgbouncer");
    assert_eq!(g.syslog_facility, "daemon");
    assert!(g.listen_addr.is_empty());
    assert!(g.raw.is_empty());
}

#[test]
fn every_default_parses_and_names_are_unique() {
    let mut seen = std::collections::HashSet::new();
    for s in settings::all() {
        assert!(seen.insert(s.name), "duplicate setting {}", s.name);
        let mut g = General::default();
        general::apply(&mut g, s.name, s.default)
            .unwrap_or_else(|e| panic!("default of {} does not parse: {e}", s.name));
    }
}

#[test]
fn examples_load() {
    let ini = Config::load(Path::new("config/pgbouncer.ini")).unwrap();
    let g = &ini.general;
    assert_eq!(g.listen_addr, vec!["127.0.0.1"]);
    assert_eq!(g.pool_mode, PoolMode::Transaction);
    assert_eq!(g.max_client_conn, 500);
    assert_eq!(g.default_pool_size, 25);
    assert_eq!(g.query_timeout, Duration::from_secs(60));
    assert_eq!(g.admin_users, vec!["admin"]);
    assert_eq!(g.ignore_startup_parameters, vec!["extra_float_digits"]);
    let app = ini.database("app").unwrap();
    assert_eq!(app.host.as_deref(), Some("127.0.0.1"));
    assert_eq!(app.port, 5432);
    assert_eq!(app.dbname.as_deref(), Some("app"));
    assert_eq!(
        ini.auth_users.get("app"),
        Some(&Secret::Md5("0e9070b976a76706bb4bc4369e934be1".into()))
    );
    assert_eq!(
        ini.auth_users.get("admin"),
        Some(&Secret::Plain("admin_password".into()))
    );
    assert!(ini.auth_users.contains_key("stats"));
    assert!(not_supported(&ini).is_empty());

    let toml = Config::load(Path::new("config/pgsluice.toml")).unwrap();
    assert_eq!(toml.general, ini.general);
    assert_eq!(toml.databases, ini.databases);
    assert_eq!(toml.users, ini.users);
    assert_eq!(toml.auth_users, ini.auth_users);
}

#[test]
fn bad_lines_name_file_and_line() {
    let cases: &[(&str, &str)] = &[
        (
            "[pgbouncer]\nlisten_port = abc\n",
            "t.ini:2: invalid value \"abc\" for parameter listen_port",
        ),
        (
            "[pgbouncer]\n\nfoo = 1\n",
            "t.ini:3: unknown parameter: pgbouncer/foo",
        ),
        (
            "[pgbouncer]\nListen_Port = 1\n",
            "did you mean listen_port?",
        ),
        (
            "[pgbouncer]\npool_mode = sometimes\n",
            "t.ini:2: invalid value \"sometimes\"",
        ),
        (
            "[pgbouncer]\nserver_lifetime = -1\n",
            "t.ini:2: invalid value \"-1\"",
        ),
        (
            "[pgbouncer]\nserver_lifetime = 5s\n",
            "t.ini:2: invalid value \"5s\"",
        ),
        ("[pgbouncer]\nmax_client_conn = -5\n", "t.ini:2:"),
        ("[pgbouncer]\nlog_stats = on\n", "use 0 or 1"),
        (
            "[pgbouncer]\n[databases]\nx = host=h bogus=1\n",
            "t.ini:3: unrecognized connection parameter: bogus",
        ),
        (
            "[pgbouncer]\n[databases]\nx = host='h\n",
            "t.ini:3: syntax error in connection string",
        ),
        (
            "[pgbouncer]\n[databases]\nx = host=\n",
            "t.ini:3: syntax error in connection string",
        ),
        (
            "[pgbouncer]\n[databases]\nx = port=0\n",
            "t.ini:3: invalid port: 0",
        ),
        (
            "[pgbouncer]\n[databases]\npgbouncer = host=h\n",
            "t.ini:3: database name \"pgbouncer\" is reserved",
        ),
        (
            "[pgbouncer]\n[databases]\nx = pool_mode=foo\n",
            "t.ini:3: invalid pool mode: foo",
        ),
        (
            "[pgbouncer]\n[users]\nbob = speed=3\n",
            "t.ini:3: unrecognized user parameter: speed",
        ),
        (
            "[pgbouncer]\n[users]\nbob = pool_mode\n",
            "t.ini:3: syntax error in user settings",
        ),
        ("[pgbouncer]\n[nope]\n", "t.ini:2: invalid section \"nope\""),
        (
            "listen_port = 1\n",
            "t.ini:1: value without section: listen_port",
        ),
        ("[pgbouncer\n", "t.ini:1: syntax error in configuration"),
        (
            "[pgbouncer]\n = 3\n",
            "t.ini:2: syntax error in configuration",
        ),
        (
            "[pgbouncer]\nlisten_port 6432\n",
            "t.ini:2: syntax error in configuration",
        ),
        (
            "[databases]\n",
            "t.ini:1: main section missing from config file",
        ),
        (
            "[pgbouncer]\nauth_type = hba\n",
            "t.ini:2: auth_type = hba needs auth_hba_file",
        ),
        (
            "[pgbouncer]\nauth_dbname = pgbouncer\n",
            "t.ini:2: invalid value \"pgbouncer\" for parameter auth_dbname: cannot use the reserved \"pgbouncer\" database as an auth_dbname",
        ),
        (
            "[pgbouncer]\n%include nowhere/missing.ini\n",
            "t.ini:2: error processing include file",
        ),
    ];
    for (text, want) in cases {
        let got = err_of(text);
        assert!(
            got.contains(want),
            "for {text:?}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn ini_lexing() {
    let text = "  ; comment\n# also\n[pgbouncer]\n  listen_port   =  7000  \nlogfile = /x/y ; not a comment\nunix_socket_dir =\n";
    let cfg = Config::from_ini_str(text, "t.ini").unwrap();
    assert_eq!(cfg.general.listen_port, 7000);
    assert_eq!(
        cfg.general.logfile.as_deref(),
        Some(Path::new("/x/y ; not a comment"))
    );
    assert_eq!(cfg.general.unix_socket_dir, "");
    let cfg = Config::from_ini_str("[pgbouncer] ; c\n[databases] x = host=h\n", "t").unwrap();
    assert_eq!(cfg.databases[0].name, "x");
    // Later values win; raw keeps what was written.
    let cfg = Config::from_ini_str("[pgbouncer]\nverbose=1\nverbose = 2\n", "t").unwrap();
    assert_eq!(cfg.general.verbose, 2);
    assert_eq!(
        cfg.general.raw.get("verbose").map(String::as_str),
        Some("2")
    );
    // Octal and hex as strtol base 0.
    let cfg = Config::from_ini_str(
        "[pgbouncer]\nunix_socket_mode = 0700\npkt_buf=0x2000\n",
        "t",
    )
    .unwrap();
    assert_eq!(cfg.general.unix_socket_mode, 0o700);
    assert_eq!(cfg.general.pkt_buf, 8192);
    // Fractional times, case-insensitive lookups.
    let cfg = Config::from_ini_str("[pgbouncer]\nquery_wait_timeout = 0.5\npool_mode = Transaction\nauth_type = SCRAM-SHA-256\n", "t").unwrap();
    assert_eq!(cfg.general.query_wait_timeout, Duration::from_millis(500));
    assert_eq!(cfg.general.pool_mode, PoolMode::Transaction);
    assert_eq!(cfg.general.auth_type, AuthType::ScramSha256);
}

#[test]
fn includes() {
    let mut src = mem(&[
        ("a.ini", "[pgbouncer]\n%include b.ini\nlisten_port = 1\n"),
        ("b.ini", "listen_port = 2\nbad line\n"),
        ("loop.ini", "%include loop.ini\n"),
    ]);
    let err = ini::parse_file(Path::new("a.ini"), &mut src).unwrap_err();
    assert_eq!(err.to_string(), "b.ini:2: syntax error in configuration");
    let err = ini::parse_file(Path::new("loop.ini"), &mut src).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("loop.ini:1: include nesting level too deep"),
        "{err}"
    );
    let mut src = mem(&[
        ("a.ini", "[pgbouncer]\n  %include\tb.ini  \nx = 3\n"),
        ("b.ini", "y = 2\n"),
    ]);
    let items = ini::parse_file(Path::new("a.ini"), &mut src).unwrap();
    let keys: Vec<(String, String, usize)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Pair { loc, key, .. } => Some((loc.file.clone(), key.clone(), loc.line)),
            Item::Section { .. } => None,
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            ("b.ini".into(), "y".into(), 1),
            ("a.ini".into(), "x".into(), 3)
        ]
    );
}

#[test]
fn include_from_disk_relative_to_cwd() {
    let text = "%include config/pgbouncer.ini\n[pgbouncer]\nlisten_port = 7777\n";
    let cfg = Config::from_ini_str(text, "inline").unwrap();
    assert_eq!(cfg.general.listen_port, 7777);
    assert_eq!(cfg.general.default_pool_size, 25);
}

#[test]
fn connstr_quoting_and_keys() {
    let db = connstr::parse("x", "host='my host' password='it''s' dbname=d  port=6000 reserve_pool=3 pool_size=-1 query_wait_timeout=1.9 alert_p95_budget_ms=50").unwrap();
    assert_eq!(db.host.as_deref(), Some("my host"));
    assert_eq!(db.password.as_deref(), Some("it's"));
    assert_eq!(db.port, 6000);
    assert_eq!(db.reserve_pool_size, Some(3));
    assert_eq!(db.pool_size, None);
    assert_eq!(db.query_wait_timeout, Some(Duration::from_secs(1)));
    assert_eq!(
        db.extra.get("alert_p95_budget_ms").map(String::as_str),
        Some("50")
    );
    assert_eq!(connstr::parse("x", "").unwrap().port, 5432);
    assert!(connstr::parse("x", "host='a'port=1").is_err());
    for (key, _) in connstr::KEYS {
        let val = match *key {
            "pool_mode" => "session",
            "load_balance_hosts" => "disable",
            _ => "5",
        };
        connstr::parse("x", &format!("{key}={val}")).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    for (key, _) in users::KEYS {
        let val = if *key == "pool_mode" {
            "statement"
        } else {
            "7"
        };
        users::parse("u", &format!("{key}={val}")).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
}

#[test]
fn databases_fallback_and_quoted_names() {
    let text = "[pgbouncer]\n[databases]\n\"my db\" = dbname=real\n* = host=fb\nplain-name.x = host=h\n[users]\nbob = pool_size=3 pool_mode=statement query_timeout=2.7\n";
    let cfg = Config::from_ini_str(text, "t").unwrap();
    assert_eq!(cfg.databases[0].name, "my db");
    let fb = cfg.database("other").unwrap();
    assert_eq!(fb.name, "other");
    assert_eq!(fb.host.as_deref(), Some("fb"));
    assert!(cfg.database("plain-name.x").is_some());
    let bob = &cfg.users["bob"];
    assert_eq!(bob.query_timeout, Some(Duration::from_secs(2)));
}

#[test]
fn userlist_secrets() {
    let text = concat!(
        "; comment\n",
        "\"a\" \"md50e9070b976a76706bb4bc4369e934be1\" extra junk\n",
        "  \"b\"\"q\" \"pa\"\"ss\"\n",
        "\"c\" \"md50E9070B976A76706BB4BC4369E934BE1\"\n",
        "\"d\" \"SCRAM-SHA-256$4096:c2FsdDEyMzRzYWx0$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=\"\n",
        "\"e\" \"SCRAM-SHA-256$4096:c2FsdA==$AAEC:AAEC\"\n",
        "broken line\n",
        "\"f\" \"never read\"\n",
    );
    let list = userlist::parse(text);
    assert_eq!(list.broken, Some((7, "broken auth file")));
    assert_eq!(list.users.len(), 5);
    assert!(!list.users.contains_key("f"));
    assert!(matches!(&list.users["a"], Secret::Md5(h) if h == "0e9070b976a76706bb4bc4369e934be1"));
    assert_eq!(list.users["b\"q"], Secret::Plain("pa\"ss".into()));
    assert!(
        matches!(list.users["c"], Secret::Plain(_)),
        "upper-case hex is not MD5"
    );
    let Secret::Scram(s) = &list.users["d"] else {
        panic!("not scram")
    };
    assert_eq!(s.iterations, 4096);
    assert_eq!(s.salt, b"salt1234salt");
    assert_eq!(s.stored_key[31], 31);
    assert_eq!(s.server_key[0], 100);
    assert!(
        matches!(list.users["e"], Secret::Plain(_)),
        "short keys are plain text"
    );
    let long = format!("\"{}\" \"x\"\n", "u".repeat(128));
    assert_eq!(
        userlist::parse(&long).broken,
        Some((1, "username too long in auth file"))
    );
}

#[test]
fn toml_units_and_errors() {
    let text = "[pgbouncer]\nquery_wait_timeout = \"500ms\"\nlog_stats = false\nadmin_users = [\"a\", \"b\"]\nauth_file = \"config/userlist.txt\"\n[databases.\"*\"]\nhost = \"h\"\n[users.bob]\npool_size = 4\n[pgsluice]\nmetrics_listen = \"127.0.0.1:9127\"\n";
    let cfg = Config::from_toml_str(text, "t.toml").unwrap();
    assert_eq!(cfg.general.query_wait_timeout, Duration::from_millis(500));
    assert!(!cfg.general.log_stats);
    assert_eq!(cfg.general.admin_users, vec!["a", "b"]);
    assert!(cfg.fallback_database.is_some());
    assert_eq!(cfg.users["bob"].pool_size, Some(4));
    assert_eq!(cfg.pgsluice["metrics_listen"], "127.0.0.1:9127");
    assert_eq!(cfg.auth_users.len(), 3);

    let err = Config::from_toml_str("[pgbouncer]\n\nlisten_port = \"x\"\n", "t.toml").unwrap_err();
    assert!(
        err.to_string().starts_with("t.toml:3: invalid value"),
        "{err}"
    );
    let err =
        Config::from_toml_str("[pgbouncer]\n[databases.x]\nbogus = 1\n", "t.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.toml:3: unrecognized connection parameter: bogus"
    );
    let err = Config::from_toml_str("[pgbouncer]\nx = \n", "t.toml").unwrap_err();
    assert_eq!(err.line(), Some(2), "{err}");
    let err = Config::from_toml_str("[other]\n", "t.toml").unwrap_err();
    assert_eq!(err.line(), Some(1), "{err}");
}

#[test]
fn pgsluice_section_and_extra_file() {
    let cfg =
        Config::from_ini_str("[pgbouncer]\n[pgsluice]\nmetrics_listen = :9127\n", "t").unwrap();
    assert_eq!(cfg.pgsluice["metrics_listen"], ":9127");
    let cfg = Config::load_with_extra(
        Path::new("config/pgbouncer.ini"),
        Some(Path::new("config/pgsluice.toml")),
    );
    // The TOML example has a [pgbouncer] table, which the extra file may not hold.
    assert!(
        cfg.unwrap_err()
            .to_string()
            .contains("invalid section \"pgbouncer\"")
    );
}

#[test]
fn rr_keys_warn_and_not_supported_lists() {
    let text = "[pgbouncer]\nrouting_rules_py_module_file = /x.py\nclient_tls_sslmode = require\nserver_tls_sslmode = disable\nauth_user = pgb\nauth_ident_file = /m\n[peers]\n1 = host=h\n";
    let cfg = Config::from_ini_str(text, "t").unwrap();
    let ns = not_supported(&cfg);
    assert!(!ns.contains(&"client_tls_sslmode"));
    assert!(!ns.contains(&"server_tls_sslmode"));
    assert!(!ns.contains(&"auth_user"));
    assert!(!ns.contains(&"auth_ident_file"));
    assert!(!ns.contains(&"[peers]"));
    assert_eq!(cfg.peers.get(&1).map(|p| p.host.as_str()), Some("h"));
    for s in settings::all() {
        if let Support::Ignored(why) = s.support {
            assert!(!why.is_empty());
        }
        if s.kind == Kind::Time {
            assert!(duration::parse_secs(s.default).is_ok());
        }
    }
}

#[test]
fn docs_are_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let rendered = docs::render();
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == rendered,
        "docs/configuration.md is stale; run UPDATE_DOCS=1 cargo test --lib config::tests::docs_are_current"
    );
}

proptest! {
    #[test]
    fn ini_never_panics_and_errors_have_lines(text in "(\\PC|\n|\\[|=|%include |;|#|\"|')*") {
        let mut src = mem(&[]);
        if let Err(e) = ini::parse(&text, "p", &mut src) {
            prop_assert!(e.line().is_some());
        }
        if let Err(e) = Config::from_ini_str(&format!("{MAIN}{text}"), "p") {
            // Only a missing auth_file could lack a line; the input cannot name a real one
            // reliably, so accept I/O errors.
            let is_io = matches!(e, Error::Io { .. });
            prop_assert!(e.line().is_some() || is_io);
        }
    }

    #[test]
    fn connstr_never_panics(text in "(\\PC|'|=| )*") {
        let _ = connstr::parse("x", &text);
        let _ = users::parse("x", &text);
    }

    #[test]
    fn userlist_never_panics(text in "(\\PC|\"|\n|;| )*") {
        let list = userlist::parse(&text);
        if let Some((line, _)) = list.broken {
            prop_assert!(line >= 1);
        }
    }

    #[test]
    fn secrets_never_panic(text in "(SCRAM-SHA-256\\$|md5|\\PC|\\$|:)*") {
        let _ = userlist::decode_secret(&text);
    }
}

#[test]
fn show_config_rows() {
    let text = "[pgbouncer]\nunix_socket_mode = 0700\nquery_wait_timeout = 0.50\npool_mode = Transaction\n";
    let cfg = Config::from_ini_str(text, "t").unwrap();
    let rows = show_config(&cfg);
    let get = |k: &str| rows.iter().find(|r| r.key == k).unwrap().value.clone();
    assert_eq!(get("unix_socket_mode"), "448");
    assert_eq!(get("query_wait_timeout"), "0.5");
    assert_eq!(get("pool_mode"), "transaction");
    assert_eq!(get("server_lifetime"), "3600");
    assert!(rows.windows(2).all(|w| w[0].key < w[1].key));
    assert!(rows.iter().all(|r| r.key != "service_name"));
}

#[test]
fn database_debug_hides_the_password() {
    let cfg = Config::from_ini_str(
        "[databases]\napp = host=h password=s3cr3t-value user=u\n[pgbouncer]\n",
        "t",
    )
    .unwrap();
    let text = format!("{:?}", cfg.databases);
    assert!(!text.contains("s3cr3t-value"), "{text}");
    assert!(text.contains("password: Some(\"..\")"), "{text}");
    assert!(!format!("{cfg:?}").contains("s3cr3t-value"));
}
