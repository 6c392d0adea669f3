//! The log lines of the in-process poolers ([`super::pooler::Pooler`]), for tests that check
//! what pgsluice logs.
//!
//! [`capture`] installs, once per test process, a global `tracing` subscriber that formats
//! events as the binary's text log does (level, target, message, fields; no colours, no time)
//! and keeps them in memory. Only the targets in [`TARGETS`] are recorded, so every other
//! event of every other test stays disabled and costs nothing. Every in-process pooler of the
//! process logs into the same buffer, so a test tells its own lines apart by something unique
//! to it, such as its `[databases]` name (`database=alerts_fire`).
//!
//! Invariants: the buffer keeps at most [`MAX_LINES`] lines (the oldest are dropped); the
//! subprocess tests (`CARGO_BIN_EXE_pgsluice`) are not affected: they read their `logfile`.

use std::collections::VecDeque;
use std::io;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Targets recorded, at INFO and above (a prefix covers its submodules).
pub const TARGETS: &[&str] = &[
    "pgsluice::alerts",
    "pgsluice::stats::conn_log",
    "pgsluice::client::rewrite",
    "pgsluice::pool::registry",
];
/// Lines kept.
pub const MAX_LINES: usize = 100_000;

static LINES: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();

fn lines() -> &'static Mutex<VecDeque<String>> {
    LINES.get_or_init(|| Mutex::new(VecDeque::new()))
}

/// One event's text, stored as a line when the formatter drops it.
struct LineWriter(Vec<u8>);

impl io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let mut kept = lines().lock().unwrap_or_else(PoisonError::into_inner);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if kept.len() >= MAX_LINES {
                kept.pop_front();
            }
            kept.push_back(line.to_owned());
        }
    }
}

struct Sink;

impl<'a> MakeWriter<'a> for Sink {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter(Vec::with_capacity(256))
    }
}

/// Starts recording (idempotent). Call it before the pooler whose lines the test reads starts.
pub fn capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let targets = TARGETS.iter().fold(Targets::new(), |t, name| {
            t.with_target(*name, tracing::Level::INFO)
        });
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_writer(Sink)
            .with_filter(targets);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global tracing subscriber in the test process");
    });
}

/// Recorded lines that contain every one of `parts`, oldest first.
pub fn matching(parts: &[&str]) -> Vec<String> {
    lines()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .cloned()
        .collect()
}

/// Waits (polling every 50 ms, at most `limit`) for a line containing every one of `parts`;
/// panics with the recorded lines that share the first part when none comes.
pub async fn wait_for(parts: &[&str], limit: Duration) -> String {
    let polls = limit.as_millis() / 50 + 1;
    for _ in 0..polls {
        if let Some(line) = matching(parts).into_iter().next() {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let near = matching(&parts[..1.min(parts.len())]);
    panic!(
        "no log line with {parts:?}; lines with {:?}:\n{}",
        parts.first(),
        near.join("\n")
    );
}
