//! The current state of every budget alert, published by the alert evaluator and read by the
//! metrics endpoint and the admin console (`SHOW ALERTS`), plus the webhook sender's counters.
//!
//! Owns: the row type [`AlertRow`], the [`AlertState`] names, and [`AlertBoard`], a table that is
//! replaced whole on each evaluation (readers clone an `Arc`, never wait on the evaluator).
//!
//! Does not: evaluate rules or send anything (that is `alerts/`). It lives in `stats` because
//! `metrics`, `admin` and `alerts` are siblings that may not use each other.
//!
//! Invariants: the lock is held only to swap or clone an `Arc`; nothing on the pooling path
//! touches this type.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Where an alert is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    /// The condition does not hold (and has never fired since start or since the rule changed).
    Ok,
    /// The condition holds, but not yet for the rule's duration.
    Pending,
    /// The condition has held for the rule's duration.
    Firing,
    /// It fired, then the condition cleared.
    Resolved,
}

impl AlertState {
    /// Lower-case name, as shown in SHOW ALERTS, logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Ok => "ok",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }

    /// Every state, for rendering one gauge per state.
    pub const ALL: [AlertState; 4] = [
        AlertState::Ok,
        AlertState::Pending,
        AlertState::Firing,
        AlertState::Resolved,
    ];
}

/// One alert rule applied to one pool.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    /// Rule name: `pool_utilization`, `client_wait` or `p95_latency`.
    pub alert: &'static str,
    /// Database of the pool.
    pub database: String,
    /// User of the pool.
    pub user: String,
    /// Current state.
    pub state: AlertState,
    /// The last measured value, in the rule's unit (a ratio for `pool_utilization`, seconds for
    /// the others); `None` when there was nothing to measure (no transactions in the window).
    pub value: Option<f64>,
    /// The threshold in the same unit.
    pub threshold: f64,
    /// How long the value must stay over the threshold before the alert fires (`*_for`).
    pub hold: Duration,
    /// When the current state began (wall clock).
    pub since: SystemTime,
}

/// Counters of the alert webhook sender.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    /// POSTs answered with a 2xx status.
    pub sent: AtomicU64,
    /// Notifications given up on after every retry failed.
    pub failed: AtomicU64,
    /// Notifications dropped because the queue was full (the oldest go first).
    pub dropped: AtomicU64,
}

/// The published alert table.
#[derive(Debug, Default)]
pub struct AlertBoard {
    rows: Mutex<Arc<Vec<AlertRow>>>,
    webhook: WebhookCounters,
}

impl AlertBoard {
    /// Replaces the table (called by the evaluator after each evaluation).
    pub fn publish(&self, rows: Vec<AlertRow>) {
        *self.rows.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(rows);
    }

    /// The table as last published, sorted by alert, database, user.
    pub fn rows(&self) -> Arc<Vec<AlertRow>> {
        Arc::clone(&self.rows.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A copy of the table (for SHOW ALERTS).
    pub fn snapshot(&self) -> Vec<AlertRow> {
        self.rows().as_ref().clone()
    }

    /// The webhook sender's counters.
    pub fn webhook(&self) -> &WebhookCounters {
        &self.webhook
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_replaces_rows() {
        let board = AlertBoard::default();
        assert!(board.snapshot().is_empty());
        let row = AlertRow {
            alert: "client_wait",
            database: "d".into(),
            user: "u".into(),
            state: AlertState::Firing,
            value: Some(2.0),
            threshold: 1.0,
            hold: Duration::from_secs(60),
            since: SystemTime::UNIX_EPOCH,
        };
        board.publish(vec![row.clone()]);
        let held = board.rows();
        board.publish(Vec::new());
        assert_eq!(held.as_slice(), &[row]);
        assert!(board.snapshot().is_empty());
        assert_eq!(AlertState::Firing.as_str(), "firing");
    }
}
