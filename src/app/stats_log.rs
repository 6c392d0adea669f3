//! `log_stats`: one line every `stats_period` with the rates and average times of the period,
//! over all pools, as PgBouncer logs it.
//!
//! Owns: the ticker and the arithmetic of one period.
//! Does not: keep SHOW STATS averages (the admin console computes its own from snapshots).
//! Invariants: reads `log_stats` and `stats_period` from the running config at every tick, so a
//! reload changes both; never holds a pool lock longer than one snapshot.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::pool::Registry;
use crate::stats::StatsSnapshot;

/// The stats line for the counters moving from `before` to `after` in `period`.
pub fn stats_line(before: &StatsSnapshot, after: &StatsSnapshot, period: Duration) -> String {
    let secs = period.as_secs().max(1);
    let delta = |a: u64, b: u64| b.saturating_sub(a);
    let per_sec = |a: u64, b: u64| delta(a, b) / secs;
    let avg = |time: u64, count: u64| time.checked_div(count).unwrap_or(0);
    let xacts = delta(before.xact_count, after.xact_count);
    let queries = delta(before.query_count, after.query_count);
    let assigned = delta(
        before.server_assignment_count,
        after.server_assignment_count,
    );
    format!(
        "stats: {} xacts/s, {} queries/s, in {} B/s, out {} B/s, xact {} us, query {} us, wait {} us",
        per_sec(before.xact_count, after.xact_count),
        per_sec(before.query_count, after.query_count),
        per_sec(before.bytes_received, after.bytes_received),
        per_sec(before.bytes_sent, after.bytes_sent),
        avg(delta(before.xact_time_us, after.xact_time_us), xacts),
        avg(delta(before.query_time_us, after.query_time_us), queries),
        avg(delta(before.wait_time_us, after.wait_time_us), assigned),
    )
}

fn total(registry: &Registry) -> StatsSnapshot {
    registry
        .pools()
        .iter()
        .map(|p| p.stats.snapshot())
        .fold(StatsSnapshot::default(), |a, b| a + b)
}

/// Logs a stats line every `stats_period` until `stop`.
pub(super) async fn run(registry: Arc<Registry>, stop: CancellationToken) {
    let mut before = total(&registry);
    loop {
        let period = registry
            .config()
            .general
            .stats_period
            .max(Duration::from_secs(1));
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        // Pools dropped by a reload take their counters along; saturating deltas hide that.
        let after = total(&registry);
        if registry.config().general.log_stats {
            tracing::info!("{}", stats_line(&before, &after, period));
        }
        before = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_averages() {
        let before = StatsSnapshot::default();
        let after = StatsSnapshot {
            xact_count: 600,
            query_count: 1200,
            bytes_received: 6000,
            bytes_sent: 60_000,
            xact_time_us: 600_000,
            query_time_us: 600_000,
            wait_time_us: 0,
            server_assignment_count: 600,
            client_login_count: 3,
        };
        assert_eq!(
            stats_line(&before, &after, Duration::from_secs(60)),
            "stats: 10 xacts/s, 20 queries/s, in 100 B/s, out 1000 B/s, xact 1000 us, query 500 us, wait 0 us"
        );
        assert!(stats_line(&after, &before, Duration::ZERO).starts_with("stats: 0 xacts/s"));
    }
}
