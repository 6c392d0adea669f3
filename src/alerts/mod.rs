//! Budget alerts evaluated inside pgsluice: `pool_utilization`, `client_wait`, `p95_latency`.
//!
//! Owns: the one evaluation task (samples every pool a few times per shortest `*_for`, runs the
//! [`evaluator`], publishes the table to the [`AlertBoard`], logs transitions: pending at INFO,
//! firing at WARN, resolved at INFO), and the webhook sender task fed through a bounded queue.
//! Settings come from `[pgsluice]` with per-database overrides ([`settings`]); a reload is seen
//! at the next tick (an invalid reloaded value is logged and the previous settings kept).
//!
//! Does not: touch the pooling path. It reads `Pool::snapshot()` and the stats atomics, exactly
//! as `SHOW POOLS` does, and nothing it does (or a slow webhook receiver does) can block a client.
//!
//! The admin console reads the current alerts with [`AlertBoard::snapshot`] (`stats` layer, so
//! sibling modules may use it); [`snapshot`] is the same call.

pub mod evaluator;
pub mod machine;
pub mod settings;
pub mod webhook;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::pool::Registry;
use crate::stats::alert_board::{AlertBoard, AlertRow};
use evaluator::{Evaluator, Event, EventKind, PoolSample};
use settings::AlertSettings;
use webhook::{Notification, WebhookQueue};

pub use settings::SettingError;

/// Fastest and slowest evaluation period.
pub const MIN_TICK: Duration = Duration::from_millis(100);
/// See [`MIN_TICK`].
pub const MAX_TICK: Duration = Duration::from_secs(5);

/// The current alerts, as last evaluated (for `SHOW ALERTS`).
pub fn snapshot(board: &AlertBoard) -> Vec<AlertRow> {
    board.snapshot()
}

/// Where the evaluator gets its inputs: the registry in the app, a fake in tests.
pub trait Source: Send + Sync + 'static {
    /// The configuration in effect.
    fn config(&self) -> Arc<Config>;
    /// One sample per pool.
    fn samples(&self) -> Vec<PoolSample>;
}

impl Source for Registry {
    fn config(&self) -> Arc<Config> {
        Registry::config(self)
    }

    fn samples(&self) -> Vec<PoolSample> {
        self.pools()
            .iter()
            .map(|pool| {
                let snap = pool.snapshot();
                PoolSample {
                    database: snap.database,
                    user: snap.user,
                    pool_size: snap.pool_size,
                    sv_active: snap.sv_active,
                    maxwait: snap.maxwait,
                    xact: pool.stats.xact_histogram().snapshot(),
                }
            })
            .collect()
    }
}

/// How often to evaluate: four times per shortest hold, within [`MIN_TICK`] ..= [`MAX_TICK`].
pub fn tick_period(settings: &AlertSettings) -> Duration {
    settings
        .shortest_hold()
        .map_or(MAX_TICK, |h| (h / 4).clamp(MIN_TICK, MAX_TICK))
}

/// This host's name, for the webhook's `instance` label.
fn instance_name() -> Arc<str> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "pgsluice".to_owned())
        .into()
}

/// Checks the alert settings of `config` (the app calls this before starting anything).
pub fn check(config: &Config) -> Result<(), SettingError> {
    AlertSettings::from_config(config).map(|_| ())
}

/// Starts the evaluation task and the webhook sender; both stop on `stop`.
pub fn start(
    source: Arc<dyn Source>,
    board: Arc<AlertBoard>,
    stop: &CancellationToken,
) -> Result<(), SettingError> {
    let settings = AlertSettings::from_config(&source.config())?;
    let queue = Arc::new(WebhookQueue::new(
        webhook::QUEUE_CAPACITY,
        Arc::clone(&board),
    ));
    tokio::spawn(webhook::run(Arc::clone(&queue), stop.clone()));
    tokio::spawn(run(source, settings, board, queue, stop.clone()));
    Ok(())
}

/// The evaluation loop.
pub async fn run(
    source: Arc<dyn Source>,
    mut settings: AlertSettings,
    board: Arc<AlertBoard>,
    queue: Arc<WebhookQueue>,
    stop: CancellationToken,
) {
    let mut config = source.config();
    let mut evaluator = Evaluator::default();
    let instance = instance_name();
    loop {
        let latest = source.config();
        if !Arc::ptr_eq(&latest, &config) {
            match AlertSettings::from_config(&latest) {
                Ok(s) => settings = s,
                Err(error) => tracing::warn!(%error, "alert settings not reloaded"),
            }
            config = latest;
        }
        let now = Instant::now();
        let wall = SystemTime::now();
        let events = evaluator.evaluate(now, wall, &source.samples(), &settings);
        board.publish(evaluator.rows());
        for event in &events {
            log(event);
            if let (Some(url), Some(firing)) = (&settings.webhook, notifies(event.kind)) {
                queue.push(Notification {
                    url: Arc::clone(url),
                    alert: event.alert,
                    database: event.database.clone(),
                    user: event.user.clone(),
                    firing,
                    value: event.value,
                    threshold: event.threshold,
                    starts_at: event.fired_at,
                    ends_at: if firing {
                        wall + evaluator::ENDS_AFTER
                    } else {
                        wall
                    },
                    instance: Arc::clone(&instance),
                });
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(tick_period(&settings)) => {}
        }
    }
}

/// Whether an event is sent to the webhook, and as firing (`true`) or resolved.
fn notifies(kind: EventKind) -> Option<bool> {
    match kind {
        EventKind::Firing | EventKind::Repeat => Some(true),
        EventKind::Resolved => Some(false),
        EventKind::Pending | EventKind::PendingCleared => None,
    }
}

fn log(e: &Event) {
    let value = e.value.unwrap_or(f64::NAN);
    let (alert, db, user, threshold) = (e.alert, &e.database, &e.user, e.threshold);
    match e.kind {
        EventKind::Pending => {
            tracing::info!(alert, database = %db, user = %user, value, threshold, "alert pending");
        }
        EventKind::PendingCleared => {
            tracing::debug!(alert, database = %db, user = %user, value, threshold, "alert pending cleared");
        }
        EventKind::Firing => {
            tracing::warn!(alert, database = %db, user = %user, value, threshold, "alert firing");
        }
        EventKind::Repeat => {
            tracing::debug!(alert, database = %db, user = %user, value, threshold, "alert still firing");
        }
        EventKind::Resolved => {
            tracing::info!(alert, database = %db, user = %user, value, threshold, "alert resolved");
        }
    }
}
