//! SHOW ALERTS (a pgsluice command, in every emulated version): one row per budget alert rule
//! applied to one pool, as the alert evaluator last published it.
//!
//! Owns: the columns and the text of each cell. Values are plain numbers in the rule's unit
//! (a ratio for `pool_utilization`, seconds for `client_wait` and `p95_latency`), `for` is the
//! rule's hold time in seconds, and `since` (when the current state began) uses the timestamp
//! text of the other SHOW commands.
//! Does not: evaluate anything; it reads `AlertBoard::snapshot()` (one `Arc` clone under a lock
//! the evaluator holds only to swap the table).
//! Invariants: rows come sorted by (name, database, user); a value with nothing to measure is
//! NULL.

use std::time::SystemTime;

use bytes::BytesMut;

use super::AdminContext;
use super::table::{Cell, Col, ResultSet, Version, n, num, s, text, timestamp};
use crate::stats::alert_board::AlertRow;

const ALERTS: &[Col] = &[
    text("name"),
    text("database"),
    text("user"),
    text("state"),
    num("value"),
    num("threshold"),
    num("for"),
    text("since"),
];

/// A number with at most six decimals and no trailing zeros (`0.84`, `1`, `0.000125`).
fn decimal(v: f64) -> String {
    let text = format!("{v:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

fn micros_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The cells of one alert, in column order.
pub(super) fn cells(row: &AlertRow) -> Vec<Cell> {
    vec![
        s(row.alert),
        s(row.database.as_str()),
        s(row.user.as_str()),
        s(row.state.as_str()),
        row.value.map(decimal),
        n(decimal(row.threshold)),
        n(decimal(row.hold.as_secs_f64())),
        s(timestamp(micros_since_epoch(row.since))),
    ]
}

/// SHOW ALERTS.
pub(super) fn alerts(ctx: &AdminContext, version: Version, out: &mut BytesMut) {
    let mut rs = ResultSet::new(ALERTS);
    for row in ctx.alerts.snapshot() {
        rs.row(cells(&row));
    }
    rs.write(out, version);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::alert_board::AlertState;

    fn row(state: AlertState, value: Option<f64>) -> AlertRow {
        AlertRow {
            alert: "pool_utilization",
            database: "app".into(),
            user: "u".into(),
            state,
            value,
            threshold: 0.8,
            hold: Duration::from_millis(1500),
            since: SystemTime::UNIX_EPOCH + Duration::from_secs(86_400),
        }
    }

    #[test]
    fn numbers_are_short_decimals() {
        assert_eq!(decimal(0.84), "0.84");
        assert_eq!(decimal(21.0 / 25.0), "0.84");
        assert_eq!(decimal(1.0), "1");
        assert_eq!(decimal(0.0), "0");
        assert_eq!(decimal(300.0), "300");
        assert_eq!(decimal(0.000_125), "0.000125");
        assert_eq!(decimal(1e-9), "0");
        assert_eq!(decimal(-1e-9), "0");
    }

    #[test]
    fn a_row_has_one_cell_per_column() {
        let cells = cells(&row(AlertState::Firing, Some(0.84)));
        assert_eq!(cells.len(), ALERTS.len());
        let text: Vec<Option<&str>> = cells.iter().map(Option::as_deref).collect();
        assert_eq!(
            text[..7],
            [
                Some("pool_utilization"),
                Some("app"),
                Some("u"),
                Some("firing"),
                Some("0.84"),
                Some("0.8"),
                Some("1.5"),
            ]
        );
        // The same text as SHOW CLIENTS' connect_time for the same moment.
        assert_eq!(text[7], Some(timestamp(86_400 * 1_000_000).as_str()));
    }

    #[test]
    fn nothing_measured_is_null_and_every_state_has_its_name() {
        let names: Vec<Option<String>> = AlertState::ALL
            .iter()
            .map(|&state| cells(&row(state, None))[3].clone())
            .collect();
        assert_eq!(names, [s("ok"), s("pending"), s("firing"), s("resolved")]);
        assert_eq!(cells(&row(AlertState::Ok, None))[4], None);
    }
}
