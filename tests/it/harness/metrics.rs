//! Reading what a pooler reports about itself: its `/metrics` page (raw HTTP/1.1 over loopback)
//! and admin console result sets (simple protocol, rows as column → value maps).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::pooler::Pooler;

/// The bound `metrics_listen` address of a pooler started with metrics on.
pub fn metrics_addr(pooler: &Pooler) -> SocketAddr {
    pooler.app().metrics_addr.expect("metrics_listen is set")
}

/// Fetches `/metrics`; returns the body of a 200 answer (panics on anything else, or after
/// 30 s).
pub async fn scrape(addr: SocketAddr) -> String {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("/metrics answers");
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

/// The value of the sample written exactly as `series` (name plus labels), if present.
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

/// Polls `/metrics` every 100 ms until `done` holds; panics with the last page after `limit`.
pub async fn scrape_until(
    addr: SocketAddr,
    limit: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let polls = limit.as_millis() / 100 + 1;
    let mut page = String::new();
    for _ in 0..polls {
        page = scrape(addr).await;
        if done(&page) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}:\n{page}");
}

/// One console row: column name → value (`None` for NULL).
pub type Row = BTreeMap<String, Option<String>>;

/// Runs one console command (simple protocol) and returns its rows.
pub async fn show(console: &Client, command: &str) -> Vec<Row> {
    let replies = tokio::time::timeout(Duration::from_secs(30), console.simple_query(command))
        .await
        .unwrap_or_else(|_| panic!("{command}: no answer in 30 s"))
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    replies
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_owned(), r.get(i).map(str::to_owned)))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The text of `column` in `row` (panics when the column is missing; `None` for NULL).
pub fn cell<'a>(row: &'a Row, column: &str) -> Option<&'a str> {
    row.get(column)
        .unwrap_or_else(|| panic!("no column {column} in {row:?}"))
        .as_deref()
}

/// `column` of `row` as a number (panics when missing, NULL or not a number).
pub fn number(row: &Row, column: &str) -> f64 {
    cell(row, column)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{column} is not a number in {row:?}"))
}

/// The first row whose `column` is `value`.
pub fn find<'a>(rows: &'a [Row], column: &str, value: &str) -> Option<&'a Row> {
    rows.iter().find(|r| cell(r, column) == Some(value))
}
