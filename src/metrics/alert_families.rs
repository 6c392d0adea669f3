//! The `pgsluice_alert_*` metric families, from the table the alert evaluator publishes.
//!
//! Owns: their names, help texts and labels (`alert`, `database`, `user`, and `state` for the
//! one-hot state gauge). Does not: evaluate alerts (`alerts/` does; this module only reads
//! `stats::alert_board`, which keeps the sibling modules apart).

use std::sync::atomic::Ordering;

use super::text::{Kind, Page, Value};
use crate::stats::alert_board::{AlertBoard, AlertRow, AlertState};

fn label(r: &AlertRow) -> [(&'static str, &str); 3] {
    [
        ("alert", r.alert),
        ("database", r.database.as_str()),
        ("user", r.user.as_str()),
    ]
}

/// Writes the `pgsluice_alert_*` families.
pub fn render(page: &mut Page, board: &AlertBoard) {
    let rows = board.rows();
    page.family(
        "pgsluice_alert_firing",
        Kind::Gauge,
        "1 while the alert fires, else 0.",
    );
    for r in rows.iter() {
        let v = u64::from(r.state == AlertState::Firing);
        page.sample("pgsluice_alert_firing", &label(r), Value::Int(v));
    }
    page.family(
        "pgsluice_alert_state",
        Kind::Gauge,
        "1 for the alert's current state (ok, pending, firing, resolved).",
    );
    for r in rows.iter() {
        for s in AlertState::ALL {
            let [a, d, u] = label(r);
            let v = u64::from(r.state == s);
            page.sample(
                "pgsluice_alert_state",
                &[a, d, u, ("state", s.as_str())],
                Value::Int(v),
            );
        }
    }
    page.family(
        "pgsluice_alert_value",
        Kind::Gauge,
        "Last measured value of the alert's rule (ratio or seconds).",
    );
    for r in rows.iter() {
        if let Some(v) = r.value {
            page.sample("pgsluice_alert_value", &label(r), Value::Float(v));
        }
    }
    page.family(
        "pgsluice_alert_threshold",
        Kind::Gauge,
        "Threshold of the alert's rule (ratio or seconds).",
    );
    for r in rows.iter() {
        page.sample(
            "pgsluice_alert_threshold",
            &label(r),
            Value::Float(r.threshold),
        );
    }
    let w = board.webhook();
    let counters = [
        (
            "pgsluice_alert_webhook_sent_total",
            "Alert notifications delivered to the webhook.",
            &w.sent,
        ),
        (
            "pgsluice_alert_webhook_failed_total",
            "Alert notifications given up on after all retries.",
            &w.failed,
        ),
        (
            "pgsluice_alert_webhook_dropped_total",
            "Alert notifications dropped because the webhook queue was full.",
            &w.dropped,
        ),
    ];
    for (name, help, c) in counters {
        page.family(name, Kind::Counter, help);
        page.sample(name, &[], Value::Int(c.load(Ordering::Relaxed)));
    }
}
