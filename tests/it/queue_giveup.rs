//! Clients that give up while queued for a server: their place in the queue (SHOW POOLS
//! `cl_waiting`), their record (SHOW LISTS `used_clients`) and their `max_client_conn` slot are
//! freed as soon as they close their sockets, not when a server finally comes.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line, eventually, first_value};
use crate::harness::postgres::{PgCluster, password};
use crate::harness::raw;

/// Clients that queue and then give up.
const QUEUED: i64 = 1000;

/// The value of `column` in the row of SHOW `what` whose first column is `key`.
async fn show_value(console: &Client, what: &str, key: &str, column: &str) -> i64 {
    let mut index = None;
    for message in console.simple_query(&format!("SHOW {what}")).await.unwrap() {
        match message {
            SimpleQueryMessage::RowDescription(cols) => {
                index = cols.iter().position(|c| c.name() == column);
            }
            SimpleQueryMessage::Row(row) if row.get(0) == Some(key) => {
                let i = index.unwrap_or_else(|| panic!("no column {column} in SHOW {what}"));
                return row.get(i).and_then(|v| v.parse().ok()).unwrap_or(-1);
            }
            _ => {}
        }
    }
    panic!("no row {key} in SHOW {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_give_up_while_queued_leave_the_queue_at_once() {
    let db = PgCluster::shared().create_database("giveup");
    let pw = password("md5_user");
    // Room for the holder, the console and the queued clients, no more.
    let settings = format!(
        "pool_mode = transaction\nauth_type = md5\nadmin_users = admin\nmax_client_conn = {}\nlisten_backlog = 2048\n",
        QUEUED + 2
    );
    let pooler = Pooler::start(
        &db_line("app", &db, "pool_size=1"),
        &settings,
        &userlist(&[("md5_user", &pw), ("admin", "admin_pw")]),
    );
    let console = pooler
        .connect("admin", "admin_pw", "pgbouncer")
        .await
        .unwrap();
    let holder = pooler.connect("md5_user", &pw, "app").await.unwrap();
    // The pool's one server stays busy for the whole test.
    holder.simple_query("begin").await.unwrap();

    let used = || async { show_value(&console, "LISTS", "used_clients", "items").await };
    let before = used().await;
    let port = pooler.port;
    let mut logins = tokio::task::JoinSet::new();
    let mut queued: Vec<TcpStream> = Vec::new();
    for _ in 0..QUEUED {
        if logins.len() >= 64 {
            queued.push(logins.join_next().await.unwrap().unwrap());
        }
        logins.spawn(async move {
            let (mut s, _) = raw::login(port, "md5_user", &pw_of(), "app").await;
            s.write_all(&raw::query("select 1")).await.unwrap();
            s
        });
    }
    while let Some(s) = logins.join_next().await {
        queued.push(s.unwrap());
    }
    let waiting = || async { show_value(&console, "POOLS", "app", "cl_waiting").await };
    assert!(
        eventually(60, || async { waiting().await == QUEUED }).await,
        "cl_waiting = {}",
        waiting().await
    );
    // Every max_client_conn slot is taken now (whether the console counts or not, at most one
    // more login fits).
    let mut extra = Vec::new();
    let mut refused = false;
    for _ in 0..3 {
        if let Ok(client) = pooler.connect("md5_user", &pw, "app").await {
            extra.push(client);
        } else {
            refused = true;
            break;
        }
    }
    assert!(
        refused && extra.len() <= 1,
        "logins past max_client_conn were let in"
    );

    drop(queued);
    assert!(
        eventually(30, || async { waiting().await == 0 }).await,
        "cl_waiting = {} after the queued clients left",
        waiting().await
    );
    assert!(
        eventually(30, || async {
            used().await == before + i64::from(u8::from(!extra.is_empty()))
        })
        .await,
        "used_clients = {} after the queued clients left, {before} before they came",
        used().await
    );
    // Their max_client_conn slots are free again while the server is still held.
    let late = pooler.connect("md5_user", &pw, "app").await;
    assert!(late.is_ok(), "login refused after the queue emptied");
    // The server still works for the holder, and then for the newcomer.
    holder.simple_query("commit").await.unwrap();
    assert_eq!(
        first_value(&late.unwrap(), "select 42")
            .await
            .unwrap()
            .as_deref(),
        Some("42")
    );
    pooler.stop().await;
}

fn pw_of() -> String {
    password("md5_user")
}
