//! CVE-2026-6667 and the whole console rights matrix: every command that changes anything is
//! refused to a `stats_users` user with PgBouncer's `admin access needed` (08P01), every SHOW is
//! served; a user in neither list is refused at login with `not allowed`, an unknown one with
//! 28P01. Afterwards nothing was paused, disabled, killed, reloaded or set, and the same
//! commands work for an `admin_users` user (so the refusals are about rights).

use std::collections::HashMap;

use tokio_postgres::{Client, SimpleQueryMessage};

use super::USER;
use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line, first_value, sqlstate};
use crate::harness::postgres::{PgCluster, password};

type Row = HashMap<String, Option<String>>;

async fn rows(client: &Client, sql: &str) -> Vec<Row> {
    let mut out = Vec::new();
    for m in client.simple_query(sql).await.unwrap() {
        if let SimpleQueryMessage::Row(r) = m {
            out.push(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_owned(), r.get(i).map(str::to_owned)))
                    .collect(),
            );
        }
    }
    out
}

fn field<'a>(row: &'a Row, name: &str) -> &'a str {
    row.get(name)
        .and_then(Option::as_deref)
        .unwrap_or_else(|| panic!("no {name} in {row:?}"))
}

/// The SHOW DATABASES row of `app`.
async fn app_row(console: &Client) -> Row {
    rows(console, "show databases")
        .await
        .into_iter()
        .find(|r| field(r, "name") == "app")
        .expect("app in SHOW DATABASES")
}

/// Every command that changes anything (PgBouncer's admin-only list).
const MUTATING: [&str; 22] = [
    "RELOAD",
    "PAUSE",
    "PAUSE app",
    "RESUME",
    "RESUME app",
    "DISABLE app",
    "ENABLE app",
    "RECONNECT",
    "RECONNECT app",
    "KILL",
    "KILL app",
    "WAIT_CLOSE",
    "WAIT_CLOSE app",
    "SET default_pool_size = 1",
    "SET max_client_conn = 1",
    "SET auth_type = 'trust'",
    "SHUTDOWN",
    "SHUTDOWN WAIT_FOR_CLIENTS",
    "SHUTDOWN WAIT_FOR_SERVERS",
    "show pools; pause app",
    "kill_client 1",
    "Pause   app",
];

/// Each command is refused to the stats session with `admin access needed`.
async fn refused_to_stats(stats: &Client, commands: impl IntoIterator<Item = &str>) {
    for command in commands {
        let err = stats
            .simple_query(command)
            .await
            .expect_err(&format!("{command} refused to a stats user"));
        let db_err = err
            .as_db_error()
            .unwrap_or_else(|| panic!("{command}: {err:?}"));
        assert_eq!(
            (db_err.code().code(), db_err.message()),
            ("08P01", "admin access needed"),
            "{command}"
        );
    }
}

/// The stats user's session survived every refusal, and every SHOW is its to run.
async fn shows_served(stats: &Client) {
    for what in [
        "help",
        "config",
        "databases",
        "users",
        "pools",
        "clients",
        "servers",
        "stats",
        "stats_totals",
        "stats_averages",
        "totals",
        "lists",
        "version",
        "state",
        "mem",
        "dns_hosts",
        "dns_zones",
        "sockets",
        "active_sockets",
        "peers",
        "peer_pools",
    ] {
        stats
            .simple_query(&format!("show {what}"))
            .await
            .unwrap_or_else(|e| panic!("SHOW {what} for a stats user: {e:?}"));
    }
}

/// Users in neither list, and unknown ones, do not get in at all.
async fn not_on_console(pooler: &Pooler) {
    let err = pooler
        .connect(USER, &password(USER), "pgbouncer")
        .await
        .expect_err("a normal user is not allowed on the console");
    let db_err = err.as_db_error().expect("an ErrorResponse");
    assert_eq!(
        (db_err.code().code(), db_err.message()),
        ("08P01", "not allowed")
    );
    let err = pooler
        .connect("ghost", "x", "pgbouncer")
        .await
        .expect_err("unknown user");
    assert_eq!(sqlstate(&err).as_deref(), Some("28P01"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cve_2026_6667_console_commands_by_role() {
    let db = PgCluster::shared().create_database("consoleauthz");
    let users = userlist(&[
        (USER, &password(USER)),
        ("admin", "admin_pw"),
        ("stats", "stats_pw"),
    ]);
    let pooler = Pooler::start(
        &db_line("app", &db, ""),
        "pool_mode = transaction\nauth_type = md5\nadmin_users = admin\nstats_users = stats",
        &users,
    );
    let app = pooler.connect(USER, &password(USER), "app").await.unwrap();
    assert!(first_value(&app, "select 1").await.is_ok());
    let stats = pooler
        .connect("stats", "stats_pw", "pgbouncer")
        .await
        .unwrap();
    let admin = pooler
        .connect("admin", "admin_pw", "pgbouncer")
        .await
        .unwrap();
    let app_id = rows(&admin, "show clients")
        .await
        .into_iter()
        .find(|r| field(r, "user") == USER && field(r, "database") == "app")
        .map(|r| field(&r, "id").to_owned())
        .expect("the app client in SHOW CLIENTS");
    let before = app_row(&admin).await;

    let kill_client = format!("KILL_CLIENT {app_id}");
    refused_to_stats(
        &stats,
        MUTATING.iter().copied().chain([kill_client.as_str()]),
    )
    .await;
    // The stats user's session survived every refusal, and every SHOW is its to run.
    shows_served(&stats).await;

    // Users in neither list, and unknown ones, do not get in at all.
    not_on_console(&pooler).await;

    // Nothing changed: the app client lives, the database is neither paused nor disabled,
    // and the settings are as configured.
    assert_eq!(
        first_value(&app, "select 'still here'")
            .await
            .unwrap()
            .as_deref(),
        Some("still here")
    );
    let after = app_row(&admin).await;
    for column in ["paused", "disabled", "pool_size"] {
        assert_eq!(after.get(column), before.get(column), "{column}");
    }
    let config = rows(&admin, "show config").await;
    let setting = |key: &str| {
        config
            .iter()
            .find(|r| field(r, "key") == key)
            .map(|r| field(r, "value").to_owned())
    };
    assert_eq!(setting("default_pool_size").as_deref(), Some("20"));
    assert_eq!(setting("auth_type").as_deref(), Some("md5"));
    super::still_serves(&pooler).await;

    // The admin may: the same commands work for it.
    for command in [
        "PAUSE app",
        "RESUME app",
        "RELOAD",
        "SET default_pool_size = 19",
    ] {
        admin
            .simple_query(command)
            .await
            .unwrap_or_else(|e| panic!("{command} for an admin: {e:?}"));
    }
    admin.simple_query(&kill_client).await.unwrap();
    assert!(
        crate::harness::pooler::eventually(10, || async {
            app.is_closed() || first_value(&app, "select 1").await.is_err()
        })
        .await,
        "KILL_CLIENT from the admin kills the client"
    );
    pooler.stop().await;
}

/// The commands older PgBouncer versions still had (SUSPEND, SHOW FDS) are admin-only too when
/// pgsluice emulates those versions; a command the emulated version lacks is unknown to
/// everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_console_versions_keep_the_same_rights() {
    let db = PgCluster::shared().create_database("consoleauthzold");
    let users = userlist(&[("admin", "admin_pw"), ("stats", "stats_pw")]);
    for version in ["1.25", "1.23"] {
        let pooler = Pooler::start(
            &db_line("app", &db, ""),
            &format!(
                "pool_mode = transaction\nauth_type = md5\nadmin_users = admin\n\
                 stats_users = stats\n\n[pgsluice]\nadmin_compat_version = {version}"
            ),
            &users,
        );
        let stats = pooler
            .connect("stats", "stats_pw", "pgbouncer")
            .await
            .unwrap();
        refused_to_stats(&stats, ["SUSPEND", "SHOW FDS", "PAUSE app", "RELOAD"]).await;
        let err = stats
            .simple_query("KILL_CLIENT 1")
            .await
            .expect_err("KILL_CLIENT refused");
        let message = err.as_db_error().unwrap().message().to_owned();
        if version == "1.25" {
            assert_eq!(message, "admin access needed");
        } else {
            assert!(message.starts_with("invalid command"), "{message}");
        }
        let admin = pooler
            .connect("admin", "admin_pw", "pgbouncer")
            .await
            .unwrap();
        let err = admin
            .simple_query("SUSPEND")
            .await
            .expect_err("no online restart");
        assert_eq!(sqlstate(&err).as_deref(), Some("0A000"), "{err:?}");
        super::still_serves_as_admin(&admin).await;
        pooler.stop().await;
    }
}
