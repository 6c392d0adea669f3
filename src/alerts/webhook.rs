//! The alert webhook: a bounded queue the evaluator drops notifications into, and one sender task
//! that POSTs them as JSON in Alertmanager's `/api/v2/alerts` format, retrying with backoff.
//!
//! Owns: parsing `alert_webhook_url` (`http://host[:port][/path]`; https is not supported yet),
//! the queue (drop-oldest when full, counted), the payload, and a minimal HTTP/1.1 client.
//! Does not: decide what to send (the evaluator does), or run on any pooling task: a slow or dead
//! receiver only delays this task, and a full queue only drops old notifications.
//! Invariants: the queue lock is held for O(1) work and never across an `.await`; every network
//! step has a timeout; retries are bounded.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::stats::alert_board::WebhookCounters;

/// How many notifications may wait; beyond that the oldest are dropped.
pub const QUEUE_CAPACITY: usize = 256;
/// Most notifications sent in one POST.
pub const MAX_BATCH: usize = 64;
/// Tries per batch (the first plus retries).
pub const ATTEMPTS: u32 = 5;
/// Wait before the first retry; doubled for each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Time limit for one POST (connect, send, read the status line).
pub const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// Host name or IP (without brackets).
    pub host: String,
    /// Port (default 80).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// The `Host` header value.
    pub authority: String,
}

impl WebhookUrl {
    /// Parses `http://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<WebhookUrl, String> {
        if url
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case("https:"))
        {
            return Err("https is not supported yet; use http:// (e.g. a local relay)".into());
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http:// URL: {url}"))?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        if authority.is_empty() || authority.contains('@') || url.chars().any(char::is_whitespace) {
            return Err(format!("invalid URL: {url}"));
        }
        let bad = || format!("invalid URL: {url}");
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("invalid port in URL: {url}"))?,
            None => 80,
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(WebhookUrl {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            authority: authority.to_owned(),
        })
    }
}

/// One alert state change (or a periodic repeat of a firing alert) to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Where to send it (the URL in force when it was made).
    pub url: Arc<WebhookUrl>,
    /// Rule name (`pool_utilization`, ...).
    pub alert: &'static str,
    /// Database of the pool.
    pub database: String,
    /// User of the pool.
    pub user: String,
    /// Firing (`true`) or resolved.
    pub firing: bool,
    /// Measured value (ratio or seconds).
    pub value: Option<f64>,
    /// Threshold in the same unit.
    pub threshold: f64,
    /// When it started firing.
    pub starts_at: SystemTime,
    /// When it resolved, or (while firing) when a receiver may consider it over without news.
    pub ends_at: SystemTime,
    /// `instance` label: this host's name.
    pub instance: Arc<str>,
}

/// Alertmanager's `alertname` for a rule (Prometheus' PascalCase convention).
pub fn alert_name(rule: &str) -> String {
    let mut out = String::from("Pgsluice");
    for word in rule.split('_') {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    out
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn value_text(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| format!("{v:.6}"))
}

/// The JSON body: an array of Alertmanager v2 `postableAlert` objects.
pub fn payload(batch: &[Notification]) -> String {
    let alerts: Vec<serde_json::Value> = batch
        .iter()
        .map(|n| {
            let state = if n.firing { "firing" } else { "resolved" };
            serde_json::json!({
                "labels": {
                    "alertname": alert_name(n.alert),
                    "rule": n.alert,
                    "service": "pgsluice",
                    "severity": "warning",
                    "database": n.database,
                    "user": n.user,
                    "instance": &*n.instance,
                },
                "annotations": {
                    "summary": format!("pgsluice {} {state} for pool {}/{}", n.alert, n.database, n.user),
                    "state": state,
                    "value": value_text(n.value),
                    "threshold": value_text(Some(n.threshold)),
                },
                "startsAt": rfc3339(n.starts_at),
                "endsAt": rfc3339(n.ends_at),
            })
        })
        .collect();
    serde_json::Value::Array(alerts).to_string()
}

/// The bounded queue between the evaluator and the sender.
#[derive(Debug)]
pub struct WebhookQueue {
    items: Mutex<VecDeque<Notification>>,
    capacity: usize,
    ready: Notify,
    counters: Arc<crate::stats::alert_board::AlertBoard>,
}

impl WebhookQueue {
    /// An empty queue of `capacity`, counting into `board`'s webhook counters.
    pub fn new(capacity: usize, board: Arc<crate::stats::alert_board::AlertBoard>) -> Self {
        Self {
            items: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity: capacity.max(1),
            ready: Notify::new(),
            counters: board,
        }
    }

    fn counters(&self) -> &WebhookCounters {
        self.counters.webhook()
    }

    /// Adds a notification; when full, the oldest is dropped (and counted). Never waits.
    pub fn push(&self, n: Notification) {
        {
            let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
            while items.len() >= self.capacity {
                items.pop_front();
                self.counters().dropped.fetch_add(1, Ordering::Relaxed);
            }
            items.push_back(n);
        }
        self.ready.notify_one();
    }

    /// Number of queued notifications.
    pub fn len(&self) -> usize {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes up to [`MAX_BATCH`] queued notifications for the same URL as the first.
    fn take_batch(&self) -> Vec<Notification> {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(url) = items.front().map(|n| Arc::clone(&n.url)) else {
            return Vec::new();
        };
        let mut batch = Vec::new();
        while batch.len() < MAX_BATCH && items.front().is_some_and(|n| n.url == url) {
            batch.extend(items.pop_front());
        }
        batch
    }

    /// Waits for a batch (cancel-safe: nothing is taken until a batch is returned).
    async fn next_batch(&self) -> Vec<Notification> {
        loop {
            let batch = self.take_batch();
            if !batch.is_empty() {
                return batch;
            }
            self.ready.notified().await;
        }
    }
}

/// Why one POST failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// Connect, write or read failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// The receiver answered with a non-2xx status (or no valid status line).
    #[error("receiver answered {0}")]
    Status(String),
}

/// POSTs `body` to `url` and returns once a 2xx status line has been read.
pub async fn post(url: &WebhookUrl, body: &str) -> Result<(), PostError> {
    let exchange = async {
        let mut stream = TcpStream::connect((url.host.as_str(), url.port)).await?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: pgsluice/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            url.path,
            url.authority,
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.flush().await?;
        let mut buf = vec![0u8; 1024];
        let mut filled = 0;
        while filled < buf.len() && !buf[..filled].contains(&b'\n') {
            let n = stream.read(&mut buf[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        let line = String::from_utf8_lossy(&buf[..filled]);
        let line = line.lines().next().unwrap_or_default().trim().to_owned();
        let status = line.split(' ').nth(1).unwrap_or_default();
        if line.starts_with("HTTP/1.") && status.len() == 3 && status.starts_with('2') {
            Ok(())
        } else {
            Err(PostError::Status(if line.is_empty() {
                "nothing".to_owned()
            } else {
                line
            }))
        }
    };
    tokio::time::timeout(POST_TIMEOUT, exchange)
        .await
        .map_err(|_| PostError::Timeout)?
}

/// Delivers one batch: up to [`ATTEMPTS`] tries with doubling backoff. `false` if stopped (also
/// in the middle of a POST, so a hung receiver cannot keep the task alive past shutdown).
async fn deliver(queue: &WebhookQueue, batch: &[Notification], stop: &CancellationToken) -> bool {
    let Some(url) = batch.first().map(|n| Arc::clone(&n.url)) else {
        return true;
    };
    let body = payload(batch);
    let count = u64::try_from(batch.len()).unwrap_or(u64::MAX);
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let result = tokio::select! {
            () = stop.cancelled() => return false,
            result = post(&url, &body) => result,
        };
        match result {
            Ok(()) => {
                queue.counters().sent.fetch_add(count, Ordering::Relaxed);
                return true;
            }
            Err(error) if attempt == ATTEMPTS => {
                tracing::warn!(host = %url.authority, %error, alerts = count, "alert webhook failed, giving up");
                queue.counters().failed.fetch_add(count, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::debug!(host = %url.authority, %error, attempt, "alert webhook failed, retrying");
                tokio::select! {
                    () = stop.cancelled() => return false,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = backoff.saturating_mul(2);
            }
        }
    }
    true
}

/// The sender task: delivers batches one after another until `stop`.
pub async fn run(queue: Arc<WebhookQueue>, stop: CancellationToken) {
    loop {
        let batch = tokio::select! {
            () = stop.cancelled() => return,
            batch = queue.next_batch() => batch,
        };
        if !deliver(&queue, &batch, &stop).await {
            return;
        }
    }
}
