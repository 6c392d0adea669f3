//! Criterion micro-benchmarks of the pure protocol code on the relay's hot path.
//!
//! - `frame`: `complete_frame` walking a client stream of pgbench-like messages (simple Query, and
//!   the extended protocol's Parse/Bind/Describe/Execute/Sync).
//! - `scan`: `Scanner::scan` over realistic server replies fed in 16 KiB reads, as the relay sees
//!   them: a large result (RowDescription, 1,000 DataRows, CommandComplete, ReadyForQuery) and
//!   many small select-only replies (one row each). The visitor asks for the bodies of the tags the
//!   relay reads (ReadyForQuery, ParameterStatus) and skips everything else.
//! - `write`: the message writers the pooler uses for its own replies (admin console result sets,
//!   errors, the login welcome), into a reused buffer, with the values built beforehand.
//!
//! Run: `cargo bench --bench protocol` (add `-- --quick` for a fast pass). Throughput is reported
//! in bytes, so MiB/s figures can be compared across message mixes.

#![allow(
    missing_docs,
    reason = "criterion_group! generates undocumented public items"
)]
#![allow(
    clippy::expect_used,
    reason = "benchmark set-up: a failure is a bug in the bench itself"
)]

use std::hint::black_box;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pgsluice::protocol::backend::{self, Column, Severity};
use pgsluice::protocol::frame::complete_frame;
use pgsluice::protocol::scan::{Flow, Scanner, Want};

/// Largest message the relay accepts in these benches (PgBouncer's default pkt_buf is far below).
const MAX_LEN: usize = 1 << 30;
/// The relay's read size.
const CHUNK: usize = 16 * 1024;

/// Appends a tagged message with a raw body.
fn put_msg(buf: &mut BytesMut, tag: u8, body: &[u8]) {
    buf.put_u8(tag);
    buf.put_i32(i32::try_from(body.len() + 4).expect("small message"));
    buf.put_slice(body);
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// pgbench's select-only transaction in the simple protocol, `n` times.
fn simple_queries(n: usize) -> BytesMut {
    let mut buf = BytesMut::new();
    for i in 0..n {
        let sql = format!(
            "SELECT abalance FROM pgbench_accounts WHERE aid = {};",
            1 + i * 7919
        );
        put_msg(&mut buf, b'Q', &cstr(&sql));
    }
    buf
}

/// pgbench's select-only transaction in `-M extended`, `n` times: Parse/Bind/Describe/Execute/Sync.
fn extended_queries(n: usize) -> BytesMut {
    let mut buf = BytesMut::new();
    for i in 0..n {
        let mut parse = cstr("");
        parse.extend(cstr(
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
        ));
        parse.extend(0i16.to_be_bytes());
        put_msg(&mut buf, b'P', &parse);
        let value = (1 + i * 7919).to_string();
        let mut bind = cstr("");
        bind.extend(cstr(""));
        bind.extend(0i16.to_be_bytes());
        bind.extend(1i16.to_be_bytes());
        bind.extend(i32::try_from(value.len()).expect("short").to_be_bytes());
        bind.extend(value.as_bytes());
        bind.extend(0i16.to_be_bytes());
        put_msg(&mut buf, b'B', &bind);
        let mut describe = vec![b'P'];
        describe.extend(cstr(""));
        put_msg(&mut buf, b'D', &describe);
        let mut execute = cstr("");
        execute.extend(0i32.to_be_bytes());
        put_msg(&mut buf, b'E', &execute);
        put_msg(&mut buf, b'S', &[]);
    }
    buf
}

const ACCOUNT_COLUMNS: [Column; 4] = [
    Column {
        name: "aid",
        type_oid: 23,
    },
    Column {
        name: "bid",
        type_oid: 23,
    },
    Column {
        name: "abalance",
        type_oid: 23,
    },
    Column {
        name: "filler",
        type_oid: 25,
    },
];

/// `rows` pgbench_accounts rows as text values (aid, bid, abalance, filler).
fn account_rows(rows: usize) -> Vec<[String; 4]> {
    let filler = " ".repeat(84);
    (0..rows)
        .map(|i| {
            [
                (i + 1).to_string(),
                (i / 100_000 + 1).to_string(),
                ((i * 37) % 5000).to_string(),
                filler.clone(),
            ]
        })
        .collect()
}

/// One result set: RowDescription, a DataRow per row, CommandComplete, ReadyForQuery.
fn write_result_set(buf: &mut BytesMut, rows: &[[String; 4]], command_tag: &str) {
    backend::row_description(buf, &ACCOUNT_COLUMNS);
    for row in rows {
        backend::data_row(buf, row.iter().map(|v| Some(v.as_str())));
    }
    backend::command_complete(buf, command_tag);
    backend::ready_for_query(buf, pgsluice::protocol::TxStatus::Idle);
}

/// One result set of `rows` pgbench_accounts rows, then CommandComplete and ReadyForQuery.
fn result_set(buf: &mut BytesMut, rows: usize) {
    write_result_set(buf, &account_rows(rows), &format!("SELECT {rows}"));
}

/// Large results: `sets` result sets of 1,000 rows (about 120 KiB each).
fn large_replies(sets: usize) -> BytesMut {
    let mut buf = BytesMut::new();
    for _ in 0..sets {
        result_set(&mut buf, 1000);
    }
    buf
}

/// Select-only replies: `n` result sets of one `abalance` row.
fn small_replies(n: usize) -> BytesMut {
    let mut buf = BytesMut::new();
    for i in 0..n {
        backend::row_description(
            &mut buf,
            &[Column {
                name: "abalance",
                type_oid: 23,
            }],
        );
        let balance = ((i * 37) % 5000).to_string();
        backend::data_row(&mut buf, [Some(balance.as_str())]);
        backend::command_complete(&mut buf, "SELECT 1");
        backend::ready_for_query(&mut buf, pgsluice::protocol::TxStatus::Idle);
    }
    buf
}

/// Walks whole frames the way a reader does; returns the number of frames.
fn walk_frames(mut buf: &[u8]) -> usize {
    let mut frames = 0;
    while let Ok(Some((_tag, total))) = complete_frame(buf, MAX_LEN) {
        frames += 1;
        buf = buf.get(total..).unwrap_or_default();
    }
    frames
}

fn bench_frame(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for (name, stream) in [
        ("simple_query_x1000", simple_queries(1000)),
        ("extended_x1000", extended_queries(1000)),
    ] {
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_with_input(BenchmarkId::new("complete_frame", name), &stream, |b, s| {
            b.iter(|| walk_frames(black_box(s)));
        });
    }
    group.finish();
}

/// Feeds `stream` to a fresh scanner in `CHUNK`-sized reads, keeping the unconsumed tail as the
/// relay's buffer does. Returns the number of ReadyForQuery messages seen.
fn relay_scan(stream: &[u8], pending: &mut Vec<u8>) -> usize {
    let mut scanner = Scanner::new(MAX_LEN);
    let mut ready = 0;
    pending.clear();
    for chunk in stream.chunks(CHUNK) {
        pending.extend_from_slice(chunk);
        let scanned = scanner
            .scan(
                pending,
                |tag, _, _| {
                    if tag == b'Z' || tag == b'S' {
                        Want::Whole
                    } else {
                        Want::Skip
                    }
                },
                |m| {
                    if m.tag == b'Z' && m.body.first() == Some(&b'I') {
                        ready += 1;
                    }
                    Flow::Continue
                },
            )
            .expect("well-formed stream");
        pending.drain(..scanned.consumed);
    }
    ready
}

fn bench_scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan");
    for (name, stream) in [
        ("large_results_16k_reads", large_replies(8)),
        ("select_only_replies_16k_reads", small_replies(10_000)),
    ] {
        group.throughput(Throughput::Bytes(stream.len() as u64));
        let mut pending = Vec::with_capacity(2 * CHUNK);
        group.bench_with_input(BenchmarkId::new("scanner", name), &stream, |b, s| {
            b.iter(|| relay_scan(black_box(s), &mut pending));
        });
    }
    group.finish();
}

fn bench_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("write");
    let mut buf = BytesMut::with_capacity(256 * 1024);
    // The values are built once: this measures the writers, not integer formatting.
    let rows = account_rows(100);
    group.bench_function("result_set_100_rows", |b| {
        b.iter(|| {
            buf.clear();
            write_result_set(&mut buf, black_box(&rows), "SELECT 100");
            buf.len()
        });
    });
    group.bench_function("error_response", |b| {
        b.iter(|| {
            buf.clear();
            backend::error_response(
                &mut buf,
                Severity::Error,
                black_box("53300"),
                black_box("no more connections allowed (max_client_conn)"),
            );
            buf.len()
        });
    });
    group.bench_function("login_welcome", |b| {
        let params = [
            ("application_name", "pgbench"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("integer_datetimes", "on"),
            ("IntervalStyle", "postgres"),
            ("is_superuser", "off"),
            ("server_encoding", "UTF8"),
            ("server_version", "15.18"),
            ("session_authorization", "bench_md5"),
            ("standard_conforming_strings", "on"),
            ("TimeZone", "Etc/UTC"),
        ];
        b.iter(|| {
            buf.clear();
            backend::auth_ok(&mut buf);
            for (name, value) in black_box(&params) {
                backend::parameter_status(&mut buf, name, value);
            }
            backend::backend_key_data(&mut buf, 4242, 0x5eed);
            backend::ready_for_query(&mut buf, pgsluice::protocol::TxStatus::Idle);
            buf.len()
        });
    });
    group.finish();
}

fn config() -> Criterion {
    // Short runs: the machines are small and shared; `cargo bench` stays within a minute or two.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_frame, bench_scan, bench_write
}
criterion_main!(benches);
