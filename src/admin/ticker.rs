//! The `stats_period` ticker: every period it rotates the period snapshots SHOW STATS averages
//! over, and writes PgBouncer's `log_stats` line.
//!
//! Owns: when a period ends (re-reading `stats_period` each time, so a reload applies).
//! Does not: compute averages (`stats::period`) or keep counters.
//! Invariants: one snapshot of every pool (and of the console's pseudo-pool) per tick; started by
//! the app and stopped with its token.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::access::CONSOLE_USER;
use super::{ADMIN_DB, AdminContext};
use crate::stats::period::{self, PoolKey};

/// Ends one period now; returns the log line of its averages.
pub fn tick(ctx: &AdminContext) -> String {
    let mut current: Vec<(PoolKey, crate::stats::StatsSnapshot)> = ctx
        .registry
        .pools()
        .iter()
        .map(|p| ((p.database.clone(), p.user.clone()), p.stats.snapshot()))
        .collect();
    current.push((
        (ADMIN_DB.to_owned(), CONSOLE_USER.to_owned()),
        ctx.stats.snapshot(),
    ));
    period::log_line(&ctx.periods.tick(current))
}

/// Runs until `stop` is cancelled.
pub async fn run(ctx: Arc<AdminContext>, stop: CancellationToken) {
    loop {
        let config = ctx.registry.config();
        let every = config.general.stats_period.max(Duration::from_secs(1));
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let line = tick(&ctx);
        if ctx.registry.config().general.log_stats {
            tracing::info!("{line}");
        }
    }
}
