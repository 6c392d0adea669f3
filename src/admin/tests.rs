//! Console unit tests without sockets: every SHOW in every emulated version sends rows as wide
//! as its RowDescription, the column counts match the reference, and the dispatcher applies
//! rights and version gates.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use bytes::BytesMut;

use super::access::{AuthFuture, Authenticator, Rights};
use super::commands::{Console, Flow};
use super::table::{Version, v};
use super::testing::{column_names, messages, rows};
use super::{AdminContext, MemSizes};
use crate::config::Config;
use crate::control::{ControlHandle, Shutdown};
use crate::net::{MessageReader, Stream};
use crate::pool::Registry;
use crate::stats::PoolStats;
use crate::stats::conns::{ConnInfo, ConnState, Side};
use crate::stats::period::StatsPeriods;

#[derive(Debug)]
struct NoAuth;

impl Authenticator for NoAuth {
    fn authenticate<'a>(
        &'a self,
        _: &'a Config,
        _: &'a str,
        _: &'a mut Stream,
        _: &'a mut MessageReader,
    ) -> AuthFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

fn context() -> AdminContext {
    let mut config = Config::default();
    config.databases.push(crate::config::DatabaseDef {
        name: "app".into(),
        port: 5432,
        ..Default::default()
    });
    let registry = Arc::new(Registry::new(Arc::new(config)));
    let (control, _) = ControlHandle::channel();
    AdminContext {
        registry,
        shutdown: Shutdown::default(),
        control,
        periods: Arc::new(StatsPeriods::default()),
        auth: Arc::new(NoAuth),
        connections: Arc::new(AtomicUsize::new(0)),
        stats: PoolStats::default(),
        mem_sizes: MemSizes::default(),
        cancel_keys: parking_lot::Mutex::default(),
        alerts: Arc::default(),
    }
}

async fn run(ctx: &AdminContext, rights: Rights, version: Version, query: &str) -> BytesMut {
    let console = Console {
        ctx,
        rights,
        version,
    };
    let mut out = BytesMut::new();
    assert_eq!(console.execute(query, &mut out).await, Flow::Ready);
    out
}

fn error(out: &[u8]) -> Option<String> {
    messages(out)
        .into_iter()
        .find(|(t, _)| *t == b'E')
        .map(|(_, body)| {
            let fields = crate::protocol::reply::ErrorFields::parse(&body);
            fields.message.unwrap_or_default()
        })
}

const VERSIONS: [Version; 11] = [
    v(1, 7),
    v(1, 8),
    v(1, 9),
    v(1, 12),
    v(1, 16),
    v(1, 18),
    v(1, 21),
    v(1, 23),
    v(1, 24),
    v(1, 25),
    v(1, 26),
];

/// (command, [(version, column count)]) from the reference and PgBouncer's sources.
const COUNTS: &[(&str, &[(Version, usize)])] = &[
    (
        "POOLS",
        &[
            (v(1, 7), 11),
            (v(1, 8), 12),
            (v(1, 16), 13),
            (v(1, 18), 16),
            (v(1, 24), 17),
        ],
    ),
    (
        "CLIENTS",
        &[
            (v(1, 7), 14),
            (v(1, 8), 16),
            (v(1, 9), 17),
            (v(1, 18), 18),
            (v(1, 21), 19),
            (v(1, 23), 20),
            (v(1, 24), 21),
        ],
    ),
    (
        "SOCKETS",
        &[
            (v(1, 7), 21),
            (v(1, 8), 23),
            (v(1, 9), 24),
            (v(1, 18), 25),
            (v(1, 21), 26),
            (v(1, 23), 27),
            (v(1, 24), 28),
        ],
    ),
    (
        "ACTIVE_SOCKETS",
        &[
            (v(1, 7), 21),
            (v(1, 8), 23),
            (v(1, 9), 24),
            (v(1, 18), 25),
            (v(1, 21), 26),
            (v(1, 23), 27),
            (v(1, 24), 28),
        ],
    ),
    (
        "STATS",
        &[
            (v(1, 7), 9),
            (v(1, 8), 15),
            (v(1, 23), 17),
            (v(1, 24), 23),
            (v(1, 26), 25),
        ],
    ),
    (
        "STATS_TOTALS",
        &[(v(1, 8), 8), (v(1, 23), 9), (v(1, 24), 12), (v(1, 26), 13)],
    ),
    (
        "STATS_AVERAGES",
        &[(v(1, 8), 8), (v(1, 23), 9), (v(1, 24), 12), (v(1, 26), 13)],
    ),
    (
        "DATABASES",
        &[
            (v(1, 7), 10),
            (v(1, 8), 12),
            (v(1, 16), 13),
            (v(1, 23), 14),
            (v(1, 24), 17),
        ],
    ),
    ("USERS", &[(v(1, 7), 2), (v(1, 23), 5), (v(1, 24), 8)]),
    ("CONFIG", &[(v(1, 7), 3), (v(1, 15), 4)]),
    ("TOTALS", &[(v(1, 7), 2)]),
    ("LISTS", &[(v(1, 7), 2)]),
    ("MEM", &[(v(1, 7), 5)]),
    ("DNS_HOSTS", &[(v(1, 7), 3)]),
];

fn expected_count(table: &[(Version, usize)], version: Version) -> usize {
    table
        .iter()
        .rev()
        .find(|(since, _)| *since <= version)
        .map_or(0, |(_, n)| *n)
}

/// The index of `state` in a CLIENTS/SOCKETS row (`replication` comes before it since 1.23).
fn state_col(version: Version) -> usize {
    if version >= v(1, 23) { 4 } else { 3 }
}

#[tokio::test]
async fn every_show_is_consistent_in_every_version() {
    let ctx = context();
    let client = ctx.registry.conns().register(ConnInfo::new(
        42,
        Side::Client,
        "app",
        "u",
        "u",
        ConnState::ClientWaiting,
    ));
    let server = ctx.registry.conns().register(ConnInfo::new(
        43,
        Side::Server,
        "app",
        "u",
        "u",
        ConnState::ServerActive,
    ));
    server.set_link(42);
    for version in VERSIONS {
        for (what, table) in COUNTS {
            if (*what == "STATS_TOTALS" || *what == "STATS_AVERAGES") && version < v(1, 8) {
                continue;
            }
            let out = run(&ctx, Rights::Stats, version, &format!("SHOW {what}")).await;
            assert_eq!(error(&out), None, "SHOW {what} in {version}");
            let width = column_names(&out).len();
            assert_eq!(
                width,
                expected_count(table, version),
                "SHOW {what} in {version}"
            );
            for row in rows(&out) {
                assert_eq!(row.len(), width, "SHOW {what} row width in {version}");
            }
        }
        let servers = run(&ctx, Rights::Stats, version, "SHOW SERVERS").await;
        assert_eq!(rows(&servers).len(), 1);
        // SOCKETS lists both sides, named by PgBouncer's lists, client first.
        let sockets = run(&ctx, Rights::Stats, version, "SHOW SOCKETS").await;
        let states: Vec<_> = rows(&sockets)
            .iter()
            .map(|r| (r[0].clone(), r[state_col(version)].clone()))
            .collect();
        let named = |t: &str, st: &str| (Some(t.to_owned()), Some(st.to_owned()));
        assert_eq!(
            states,
            vec![named("C", "cl_waiting"), named("S", "sv_active")],
            "{version}"
        );
    }
    drop((client, server));
}

#[tokio::test]
async fn rights_and_version_gates() {
    let ctx = context();
    let latest = super::table::LATEST;
    for cmd in [
        "PAUSE",
        "RESUME app",
        "KILL app",
        // CVE-2026-6667 (fixed in 1.25.2): KILL_CLIENT is for admin_users only.
        "KILL_CLIENT 1",
        "RELOAD",
        "SET default_pool_size = 3",
        "SHOW FDS",
    ] {
        let version = if cmd == "SHOW FDS" { v(1, 25) } else { latest };
        let out = run(&ctx, Rights::Stats, version, cmd).await;
        assert_eq!(error(&out).as_deref(), Some("admin access needed"), "{cmd}");
    }
    let state = run(&ctx, Rights::Stats, v(1, 18), "SHOW STATE").await;
    assert_eq!(
        error(&state).as_deref(),
        Some("invalid command 'SHOW STATE', use SHOW HELP;")
    );
    let kill = run(&ctx, Rights::Admin, v(1, 23), "KILL_CLIENT 1").await;
    assert!(error(&kill).is_some_and(|e| e.starts_with("invalid command")));
    let suspend = run(&ctx, Rights::Admin, v(1, 25), "SUSPEND").await;
    assert!(error(&suspend).is_some_and(|e| e.contains("not supported")));
    let suspend = run(&ctx, Rights::Admin, latest, "SUSPEND").await;
    assert!(error(&suspend).is_some_and(|e| e.starts_with("invalid command")));
    let sockets = run(&ctx, Rights::Stats, latest, "show active_sockets").await;
    assert_eq!(error(&sockets), None);
    assert!(rows(&sockets).is_empty(), "no buffered data is reported");
    let fake = run(
        &ctx,
        Rights::Stats,
        latest,
        "set DateStyle to 'ISO'; show DATESTYLE",
    )
    .await;
    assert_eq!(error(&fake), None);
    assert_eq!(rows(&fake), vec![vec![Some("ISO".to_owned())]]);
    let old_efd = run(&ctx, Rights::Admin, v(1, 25), "SET extra_float_digits = 2").await;
    assert_eq!(error(&old_efd).as_deref(), Some("SET failed"));
}

#[tokio::test]
async fn several_commands_stop_at_the_first_error() {
    let ctx = context();
    let out = run(
        &ctx,
        Rights::Admin,
        super::table::LATEST,
        "SHOW VERSION; SHOW NOPE; SHOW LISTS",
    )
    .await;
    let tags: Vec<u8> = messages(&out).into_iter().map(|(t, _)| t).collect();
    assert_eq!(tags, [b'T', b'D', b'C', b'E']);
    assert_eq!(
        error(&out).as_deref(),
        Some("invalid command ' SHOW NOPE', use SHOW HELP;")
    );
    let old = run(&ctx, Rights::Admin, v(1, 11), "SHOW VERSION").await;
    let tags: Vec<u8> = messages(&old).into_iter().map(|(t, _)| t).collect();
    assert_eq!(tags, [b'N', b'C'], "a NOTICE before 1.12");
}

#[tokio::test]
async fn show_alerts_lists_the_published_table_in_every_version() {
    use crate::stats::alert_board::{AlertRow, AlertState};
    use std::time::{Duration, SystemTime};
    let ctx = context();
    let empty = run(&ctx, Rights::Stats, super::table::LATEST, "SHOW ALERTS").await;
    assert_eq!(error(&empty), None);
    assert!(rows(&empty).is_empty());
    let alert = |name: &'static str, state, value| AlertRow {
        alert: name,
        database: "app".into(),
        user: "u".into(),
        state,
        value,
        threshold: 0.8,
        hold: Duration::from_secs(300),
        since: SystemTime::now(),
    };
    ctx.alerts.publish(vec![
        alert("client_wait", AlertState::Ok, Some(0.0)),
        alert("p95_latency", AlertState::Pending, None),
        alert("pool_utilization", AlertState::Firing, Some(0.84)),
    ]);
    for version in VERSIONS {
        let out = run(&ctx, Rights::Stats, version, "show alerts").await;
        assert_eq!(error(&out), None, "{version}");
        assert_eq!(
            column_names(&out),
            [
                "name",
                "database",
                "user",
                "state",
                "value",
                "threshold",
                "for",
                "since"
            ]
        );
        let table = rows(&out);
        let brief: Vec<[Option<&str>; 5]> = table
            .iter()
            .map(|r| {
                [
                    r[0].as_deref(),
                    r[3].as_deref(),
                    r[4].as_deref(),
                    r[5].as_deref(),
                    r[6].as_deref(),
                ]
            })
            .collect();
        assert_eq!(
            brief,
            [
                [
                    Some("client_wait"),
                    Some("ok"),
                    Some("0"),
                    Some("0.8"),
                    Some("300")
                ],
                [
                    Some("p95_latency"),
                    Some("pending"),
                    None,
                    Some("0.8"),
                    Some("300")
                ],
                [
                    Some("pool_utilization"),
                    Some("firing"),
                    Some("0.84"),
                    Some("0.8"),
                    Some("300")
                ],
            ]
        );
        assert!(
            table
                .iter()
                .all(|r| r[7].as_deref().is_some_and(|t| t.len() >= 20))
        );
    }
    let help = run(&ctx, Rights::Stats, v(1, 7), "SHOW HELP").await;
    let notice = messages(&help)
        .into_iter()
        .find(|(t, _)| *t == b'N')
        .map(|(_, body)| String::from_utf8_lossy(&body).into_owned())
        .unwrap_or_default();
    assert!(notice.contains("\tSHOW ALERTS\n"), "{notice}");
}
