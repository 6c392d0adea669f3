//! Isolation: clients sharing server connections never see each other's state. A randomized
//! test runs many clients with per-client markers through a small pool; deterministic tests pin
//! down what session-level `SET` does in transaction mode and what `server_reset_query` resets
//! in session mode (see docs/reliability.md).

use std::time::Duration;

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, connect_spawned, db_line, first_value, sqlstate};
use crate::harness::postgres::{PgCluster, password};

const USER: &str = "md5_user";

fn start(db: &str, settings: &str) -> Pooler {
    Pooler::start(
        &db_line("app", db, ""),
        settings,
        &userlist(&[(USER, &password(USER))]),
    )
}

/// xorshift64: a tiny deterministic PRNG, so a failure names a reproducible seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Berlin",
    "Asia/Tokyo",
    "America/New_York",
    "Australia/Sydney",
];

#[allow(
    clippy::too_many_lines,
    reason = "one match arm per random operation reads best in one place"
)]
async fn one_client(pooler_conn: String, id: u64, seed: u64) -> Result<usize, String> {
    let config = pooler_conn
        .parse()
        .map_err(|e| format!("client {id}: {e}"))?;
    let client = connect_spawned(&config)
        .await
        .map_err(|e| format!("client {id}: connect: {e}"))?;
    let marker = format!("m{id}x{seed}");
    let zone = ZONES[usize::try_from(id).unwrap() % ZONES.len()];
    let fail = |what: &str, got: &dyn std::fmt::Debug| format!("client {id} {what}: got {got:?}");
    client
        .batch_execute(&format!(
            "set application_name = '{marker}'; set timezone = '{zone}'"
        ))
        .await
        .map_err(|e| fail("set", &e))?;
    // Per-client statement text, so statements are not shared by accident either.
    let stmt = client
        .prepare(&format!("select $1::text || '/{marker}'"))
        .await
        .map_err(|e| fail("prepare", &e))?;
    let shared = client
        .prepare("select $1::text")
        .await
        .map_err(|e| fail("prepare shared", &e))?;
    let mut rng = Rng(seed ^ (id + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut checks = 0;
    for step in 0..12 {
        let token = format!("{marker}s{step}");
        match rng.next(7) {
            0 => {
                let v = first_value(&client, &format!("select '{token}'")).await;
                if v.as_ref().ok().and_then(Option::as_deref) != Some(token.as_str()) {
                    return Err(fail("echo", &v));
                }
            }
            1 => {
                let v = first_value(
                    &client,
                    &format!(
                        "begin; set local statement_timeout = '{}s'; \
                         select current_setting('statement_timeout') || '/{token}'; commit",
                        id + 1
                    ),
                )
                .await;
                let want = format!("{}s/{token}", id + 1);
                if v.as_ref().ok().and_then(Option::as_deref) != Some(want.as_str()) {
                    return Err(fail("set local", &v));
                }
            }
            2 => {
                let e = client.batch_execute("begin; select 1/0").await;
                if e.as_ref().err().and_then(sqlstate).as_deref() != Some("22012") {
                    return Err(fail("failed tx", &e));
                }
                // Still our (aborted) transaction: the server stayed with us.
                let e = client.simple_query(&format!("select '{token}'")).await;
                if e.as_ref().err().and_then(sqlstate).as_deref() != Some("25P02") {
                    return Err(fail("aborted tx", &e));
                }
                client
                    .batch_execute("rollback")
                    .await
                    .map_err(|e| fail("rollback", &e))?;
            }
            3 => {
                let row = client
                    .query_one(&stmt, &[&token])
                    .await
                    .map_err(|e| fail("prepared", &e))?;
                let got: String = row.get(0);
                if got != format!("{token}/{marker}") {
                    return Err(fail("prepared value", &got));
                }
                let row = client
                    .query_one(&shared, &[&token])
                    .await
                    .map_err(|e| fail("shared prepared", &e))?;
                let got: String = row.get(0);
                if got != token {
                    return Err(fail("shared prepared value", &got));
                }
            }
            4 => {
                client
                    .batch_execute(&format!("begin; insert into marks values ('{token}')"))
                    .await
                    .map_err(|e| fail("insert", &e))?;
                let mine = first_value(
                    &client,
                    &format!("select count(*) from marks where m = '{token}'"),
                )
                .await;
                let others = first_value(&client, "select count(*) from marks where m <> ''").await;
                client
                    .batch_execute("rollback")
                    .await
                    .map_err(|e| fail("rollback", &e))?;
                if mine.as_ref().ok().and_then(Option::as_deref) != Some("1")
                    || others.as_ref().ok().and_then(Option::as_deref) != Some("1")
                {
                    return Err(fail("uncommitted rows", &(mine, others)));
                }
            }
            5 => {
                let v = first_value(&client, "show application_name").await;
                if v.as_ref().ok().and_then(Option::as_deref) != Some(marker.as_str()) {
                    return Err(fail("application_name follows the client", &v));
                }
                let v = first_value(&client, "show timezone").await;
                if v.as_ref().ok().and_then(Option::as_deref) != Some(zone) {
                    return Err(fail("TimeZone follows the client", &v));
                }
            }
            _ => {
                let k = id * 100 + step;
                let v = first_value(
                    &client,
                    &format!("select coalesce(sum(x), 0) from generate_series(1, {k}) x"),
                )
                .await;
                let want = (k * (k + 1) / 2).to_string();
                if v.as_ref().ok().and_then(Option::as_deref) != Some(want.as_str()) {
                    return Err(fail("work", &v));
                }
            }
        }
        checks += 1;
    }
    Ok(checks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_clients_only_ever_see_their_own_data() {
    const CLIENTS: u64 = 50;
    let pg = PgCluster::shared();
    let db = pg.create_database("iso_random");
    let pooler = start(
        &db,
        "pool_mode = transaction\ndefault_pool_size = 5\nmax_prepared_statements = 200\n\
         max_client_conn = 200\nquery_wait_timeout = 60",
    );
    let setup = pooler.connect(USER, &password(USER), "app").await.unwrap();
    setup
        .batch_execute("create table marks (m text)")
        .await
        .unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs())
        | 1;
    let conn = pooler.conn_string(USER, &password(USER), "app");
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(one_client(conn.clone(), id, seed)))
        .collect();
    let mut total = 0;
    for task in tasks {
        let r = tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("client finished in time")
            .unwrap();
        total += r.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
    assert_eq!(total, 12 * 50);
    pooler.stop().await;
}

/// Transaction mode: `SET` of a tracked parameter (TimeZone, application_name, DateStyle,
/// IntervalStyle, client_encoding, standard_conforming_strings) follows the client to every
/// server; `SET` of any other parameter stays on the server it ran on and leaks to whichever
/// client gets that server next — exactly as in PgBouncer. `SET LOCAL` never leaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_set_in_transaction_mode() {
    let pg = PgCluster::shared();
    let db = pg.create_database("iso_set");
    let pooler = start(&db, "pool_mode = transaction\ndefault_pool_size = 1");
    let pw = password(USER);
    let a = pooler.connect(USER, &pw, "app").await.unwrap();
    let b = pooler.connect(USER, &pw, "app").await.unwrap();
    let b_zone = first_value(&b, "show timezone").await.unwrap();
    a.batch_execute(
        "set timezone = 'Asia/Tokyo'; set application_name = 'client_a'; \
         set statement_timeout = '77s'; set search_path = a_schema, public",
    )
    .await
    .unwrap();
    a.batch_execute("begin; set local work_mem = '7MB'; commit")
        .await
        .unwrap();
    // Tracked: b keeps its own values on the same (only) server.
    assert_eq!(first_value(&b, "show timezone").await.unwrap(), b_zone);
    assert_eq!(
        first_value(&b, "show application_name")
            .await
            .unwrap()
            .as_deref(),
        Some("")
    );
    // SET LOCAL ended with a's transaction.
    assert_ne!(
        first_value(&b, "show work_mem").await.unwrap().as_deref(),
        Some("7MB")
    );
    // Untracked: leaks to the next client of that server (documented caveat).
    assert_eq!(
        first_value(&b, "show statement_timeout")
            .await
            .unwrap()
            .as_deref(),
        Some("77s")
    );
    assert_eq!(
        first_value(&b, "show search_path")
            .await
            .unwrap()
            .as_deref(),
        Some("a_schema, public")
    );
    // And a still sees its own tracked values.
    assert_eq!(
        first_value(&a, "show timezone").await.unwrap().as_deref(),
        Some("Asia/Tokyo")
    );
    pooler.stop().await;
}

/// Session mode: `server_reset_query` (DISCARD ALL) drops temp tables, advisory locks, session
/// SETs and prepared statements before the server goes to the next client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_reset_clears_session_state() {
    let pg = PgCluster::shared();
    let db = pg.create_database("iso_reset");
    let pooler = start(&db, "pool_mode = session\ndefault_pool_size = 1");
    let pw = password(USER);
    let a = pooler.connect(USER, &pw, "app").await.unwrap();
    let pid_a = first_value(&a, "select pg_backend_pid()").await.unwrap();
    a.batch_execute(
        "select pg_advisory_lock(4242); create temp table tt (x int); \
         set statement_timeout = '66s'; prepare p as select 1; listen chan",
    )
    .await
    .unwrap();
    drop(a);
    let b = pooler.connect(USER, &pw, "app").await.unwrap();
    let pid_b = tokio::time::timeout(
        Duration::from_secs(10),
        first_value(&b, "select pg_backend_pid()"),
    )
    .await
    .expect("the only server comes back")
    .unwrap();
    assert_eq!(pid_a, pid_b, "same server reused");
    let checks = [
        (
            "select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()",
            "0",
        ),
        (
            "select count(*) from pg_class where relname = 'tt' and relpersistence = 't'",
            "0",
        ),
        ("show statement_timeout", "0"),
        ("select count(*) from pg_prepared_statements", "0"),
        ("select count(*) from pg_listening_channels()", "0"),
    ];
    for (sql, want) in checks {
        assert_eq!(
            first_value(&b, sql).await.unwrap().as_deref(),
            Some(want),
            "{sql}"
        );
    }
    // The lock is really free for anyone else.
    let direct = pg.connect(USER, &db).await.unwrap();
    assert_eq!(
        first_value(&direct, "select pg_try_advisory_lock(4242)")
            .await
            .unwrap()
            .as_deref(),
        Some("t")
    );
    pooler.stop().await;
}
