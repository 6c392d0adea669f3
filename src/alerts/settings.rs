//! The alert settings: global defaults from `[pgsluice]`, overridden per database by the same
//! keys in its `[databases]` connection string (kept raw in `DatabaseDef::extra`).
//!
//! Owns: parsing and checking `alert_*` values, the defaults, and the per-database merge.
//! Does not: evaluate anything.
//! Invariants: times accept plain seconds (PgBouncer's form, fractions allowed) or a number with
//! a unit (`500ms`, `5min`); a threshold of `0` turns a rule off; errors name the key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::webhook::WebhookUrl;
use crate::config::duration::parse_with_unit;
use crate::config::{Config, DatabaseDef};

/// A bad alert setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SettingError {
    /// The key, prefixed with the database name for per-database values.
    pub key: String,
    /// Why.
    pub reason: String,
}

/// One threshold rule: over `threshold` continuously for `hold` fires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Fires above this value (ratio or seconds).
    pub threshold: f64,
    /// How long the condition must hold before firing (`*_for`).
    pub hold: Duration,
}

/// The latency budget rule: transaction p95 over `window` above `budget` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyBudget {
    /// Budget in seconds.
    pub budget: f64,
    /// Sliding window for the p95.
    pub window: Duration,
    /// How long the p95 must stay over budget before firing.
    pub hold: Duration,
}

/// The rules in force for one database (`None` = rule off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// `pool_utilization`.
    pub pool_utilization: Option<Threshold>,
    /// `client_wait`.
    pub client_wait: Option<Threshold>,
    /// `p95_latency`.
    pub p95_latency: Option<LatencyBudget>,
}

/// Every alert setting of one config.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// The `[pgsluice]` values.
    pub global: Rules,
    /// Databases whose connection string overrides an `alert_*` key.
    pub per_database: BTreeMap<String, Rules>,
    /// The `*` fallback's overrides, for databases not listed.
    pub fallback: Option<Rules>,
    /// `alert_webhook_url`, if set.
    pub webhook: Option<Arc<WebhookUrl>>,
}

/// Defaults, as documented.
pub const DEFAULT_UTILIZATION: f64 = 0.80;
/// Default `alert_pool_utilization_for`.
pub const DEFAULT_UTILIZATION_FOR: Duration = Duration::from_secs(300);
/// Default `alert_client_wait`.
pub const DEFAULT_CLIENT_WAIT: Duration = Duration::from_secs(1);
/// Default `alert_client_wait_for`.
pub const DEFAULT_CLIENT_WAIT_FOR: Duration = Duration::from_secs(60);
/// Default `alert_p95_window`.
pub const DEFAULT_P95_WINDOW: Duration = Duration::from_secs(300);

fn err(key: &str, reason: impl Into<String>) -> SettingError {
    SettingError {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn number(key: &str, text: &str) -> Result<f64, SettingError> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| err(key, format!("invalid number: {text}")))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(err(key, format!("must be a number >= 0: {text}")))
    }
}

fn time(key: &str, text: &str) -> Result<Duration, SettingError> {
    parse_with_unit(text).map_err(|reason| err(key, reason))
}

/// Every rule with its values, a threshold of 0 meaning "off" (so a database that turns a rule
/// on inherits the global hold time even where the rule is off globally).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spec {
    util: Threshold,
    wait: Threshold,
    p95: LatencyBudget,
}

impl Spec {
    fn builtin() -> Spec {
        Spec {
            util: Threshold {
                threshold: DEFAULT_UTILIZATION,
                hold: DEFAULT_UTILIZATION_FOR,
            },
            wait: Threshold {
                threshold: DEFAULT_CLIENT_WAIT.as_secs_f64(),
                hold: DEFAULT_CLIENT_WAIT_FOR,
            },
            p95: LatencyBudget {
                budget: 0.0,
                window: DEFAULT_P95_WINDOW,
                hold: Duration::from_secs(60),
            },
        }
    }

    /// Reads the `alert_*` keys of `raw` on top of `self`.
    fn apply(mut self, raw: &BTreeMap<String, String>) -> Result<Spec, SettingError> {
        let get = |k: &str| raw.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        if let Some(v) = get("alert_pool_utilization") {
            self.util.threshold = number("alert_pool_utilization", v)?;
        }
        if let Some(v) = get("alert_pool_utilization_for") {
            self.util.hold = time("alert_pool_utilization_for", v)?;
        }
        if let Some(v) = get("alert_client_wait") {
            self.wait.threshold = time("alert_client_wait", v)?.as_secs_f64();
        }
        if let Some(v) = get("alert_client_wait_for") {
            self.wait.hold = time("alert_client_wait_for", v)?;
        }
        if let Some(v) = get("alert_p95_budget_ms") {
            self.p95.budget = number("alert_p95_budget_ms", v)? / 1000.0;
        }
        if let Some(v) = get("alert_p95_window") {
            self.p95.window = time("alert_p95_window", v)?;
            if self.p95.window < Duration::from_millis(100) {
                return Err(err("alert_p95_window", "must be at least 100ms"));
            }
        }
        // The window already smooths the p95; a short hold (a fifth of it, at most a minute)
        // only keeps a single slow burst at a window's edge from firing.
        self.p95.hold = (self.p95.window / 5).min(Duration::from_secs(60));
        Ok(self)
    }

    fn rules(self) -> Rules {
        Rules {
            pool_utilization: Some(self.util).filter(|r| r.threshold > 0.0),
            client_wait: Some(self.wait).filter(|r| r.threshold > 0.0),
            p95_latency: Some(self.p95).filter(|r| r.budget > 0.0),
        }
    }
}

impl Rules {
    /// The shortest hold of any rule that is on (the evaluator ticks a few times within it).
    pub fn shortest_hold(&self) -> Option<Duration> {
        [
            self.pool_utilization.map(|r| r.hold),
            self.client_wait.map(|r| r.hold),
            self.p95_latency.map(|r| r.hold),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

fn db_rules(global: Spec, db: &DatabaseDef) -> Result<Option<Rules>, SettingError> {
    if db.extra.keys().all(|k| !k.starts_with("alert_")) {
        return Ok(None);
    }
    global
        .apply(&db.extra)
        .map(|s| Some(s.rules()))
        .map_err(|e| SettingError {
            key: format!("[databases] {}: {}", db.name, e.key),
            reason: e.reason,
        })
}

impl AlertSettings {
    /// Reads every alert setting of `config`.
    pub fn from_config(config: &Config) -> Result<AlertSettings, SettingError> {
        let spec = Spec::builtin().apply(&config.pgsluice)?;
        let global = spec.rules();
        let mut per_database = BTreeMap::new();
        for db in &config.databases {
            if let Some(rules) = db_rules(spec, db)? {
                per_database.insert(db.name.clone(), rules);
            }
        }
        let fallback = match &config.fallback_database {
            Some(db) => db_rules(spec, db)?,
            None => None,
        };
        let webhook = match config.pgsluice.get("alert_webhook_url").map(|s| s.trim()) {
            None | Some("") => None,
            Some(url) => Some(Arc::new(
                WebhookUrl::parse(url).map_err(|reason| err("alert_webhook_url", reason))?,
            )),
        };
        Ok(AlertSettings {
            global,
            per_database,
            fallback,
            webhook,
        })
    }

    /// The rules for a pool of `database`.
    pub fn rules_for(&self, database: &str) -> Rules {
        self.per_database
            .get(database)
            .copied()
            .or(self.fallback)
            .unwrap_or(self.global)
    }

    /// The shortest hold of any rule in force anywhere.
    pub fn shortest_hold(&self) -> Option<Duration> {
        std::iter::once(&self.global)
            .chain(self.per_database.values())
            .chain(&self.fallback)
            .filter_map(Rules::shortest_hold)
            .min()
    }
}
