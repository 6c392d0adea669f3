//! The pure core of alerting: turns one round of pool samples into state changes and the table
//! of current alerts.
//!
//! Owns: the set of (rule, pool) alerts and their [`Machine`]s, measuring each rule from a
//! [`PoolSample`] (utilisation = servers checked out / pool_size; longest client wait; p95 of
//! transaction durations over a sliding [`Window`]), dropping alerts whose pool or rule is gone
//! (a firing one resolves), and deciding when a firing alert is re-announced.
//! Does not: read pools, log, or send (see `mod.rs` and `webhook.rs`); sleep or read a clock:
//! `now` is an argument, so tests drive it with paused tokio time.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::machine::{Machine, Transition};
use super::settings::AlertSettings;
use crate::stats::alert_board::{AlertRow, AlertState};
use crate::stats::histogram::{HistogramSnapshot, Window, to_f64};

/// Rule names.
pub const POOL_UTILIZATION: &str = "pool_utilization";
/// Longest client wait.
pub const CLIENT_WAIT: &str = "client_wait";
/// Transaction p95 over a window.
pub const P95_LATENCY: &str = "p95_latency";

/// Fewer transactions than this in the window give no p95 (it would be the maximum).
pub const MIN_P95_SAMPLES: u64 = 20;
/// A firing alert is announced again this often, so a receiver such as Alertmanager keeps it.
pub const RESEND_EVERY: Duration = Duration::from_secs(300);
/// A firing alert's `endsAt` lies this far ahead (a receiver expires it if pgsluice goes away).
pub const ENDS_AFTER: Duration = Duration::from_secs(900);

/// What the evaluator needs from one pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSample {
    /// Database name.
    pub database: String,
    /// User name.
    pub user: String,
    /// Configured pool size (0 = unlimited: no utilisation).
    pub pool_size: usize,
    /// Servers checked out by clients.
    pub sv_active: usize,
    /// Longest current client wait.
    pub maxwait: Duration,
    /// Transaction duration histogram (cumulative).
    pub xact: HistogramSnapshot,
}

/// What happened to one alert in this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Condition started to hold.
    Pending,
    /// Condition cleared before firing.
    PendingCleared,
    /// Started firing.
    Firing,
    /// Still firing; announce again.
    Repeat,
    /// Stopped firing.
    Resolved,
}

/// One alert's change, for the log and the webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// Rule name.
    pub alert: &'static str,
    /// Database.
    pub database: String,
    /// User.
    pub user: String,
    /// Measured value.
    pub value: Option<f64>,
    /// Threshold.
    pub threshold: f64,
    /// When it started firing (for `Firing`, `Repeat`, `Resolved`).
    pub fired_at: SystemTime,
}

type Key = (&'static str, String, String);

#[derive(Debug, Clone)]
struct Entry {
    machine: Machine,
    value: Option<f64>,
    threshold: f64,
    hold: Duration,
    since: SystemTime,
    fired_at: SystemTime,
    announced: Instant,
    seen: bool,
}

/// The alerts of the whole process.
#[derive(Debug, Default)]
pub struct Evaluator {
    entries: BTreeMap<Key, Entry>,
    windows: HashMap<(String, String), Window>,
}

/// One rule measured on one pool: (name, value, threshold, hold).
type Measure = (&'static str, Option<f64>, f64, Duration);

impl Evaluator {
    fn measure(&mut self, now: Instant, s: &PoolSample, set: &AlertSettings) -> Vec<Measure> {
        let rules = set.rules_for(&s.database);
        let mut out = Vec::with_capacity(3);
        if let Some(r) = rules.pool_utilization.filter(|_| s.pool_size > 0) {
            let as_f64 = |n: usize| to_f64(u64::try_from(n).unwrap_or(u64::MAX));
            let ratio = as_f64(s.sv_active) / as_f64(s.pool_size);
            out.push((POOL_UTILIZATION, Some(ratio), r.threshold, r.hold));
        }
        if let Some(r) = rules.client_wait {
            let wait = s.maxwait.as_secs_f64();
            out.push((CLIENT_WAIT, Some(wait), r.threshold, r.hold));
        }
        let pool = (s.database.clone(), s.user.clone());
        if let Some(r) = rules.p95_latency {
            let window = self
                .windows
                .entry(pool)
                .and_modify(|w| {
                    if w.span() != r.window {
                        *w = Window::new(r.window);
                    }
                })
                .or_insert_with(|| Window::new(r.window));
            let recent = window.observe(now, s.xact);
            let p95 = (recent.count() >= MIN_P95_SAMPLES)
                .then(|| recent.quantile(0.95))
                .flatten();
            out.push((P95_LATENCY, p95, r.budget, r.hold));
        } else {
            self.windows.remove(&pool);
        }
        out
    }

    /// Evaluates every rule on every sampled pool at `now` (`wall` is the same moment on the
    /// wall clock, for display). Returns what changed.
    pub fn evaluate(
        &mut self,
        now: Instant,
        wall: SystemTime,
        samples: &[PoolSample],
        settings: &AlertSettings,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        for entry in self.entries.values_mut() {
            entry.seen = false;
        }
        for sample in samples {
            for (alert, value, threshold, hold) in self.measure(now, sample, settings) {
                let key = (alert, sample.database.clone(), sample.user.clone());
                let entry = self.entries.entry(key).or_insert_with(|| Entry {
                    machine: Machine::default(),
                    value,
                    threshold,
                    hold,
                    since: wall,
                    fired_at: wall,
                    announced: now,
                    seen: true,
                });
                entry.seen = true;
                entry.value = value;
                entry.threshold = threshold;
                entry.hold = hold;
                let kind = match entry.machine.step(now, value, threshold, hold) {
                    Some(t) => {
                        entry.since = wall;
                        Some(match t {
                            Transition::Pending => EventKind::Pending,
                            Transition::PendingCleared => EventKind::PendingCleared,
                            Transition::Firing => {
                                entry.fired_at = wall;
                                entry.announced = now;
                                EventKind::Firing
                            }
                            Transition::Resolved => EventKind::Resolved,
                        })
                    }
                    None if entry.machine.state() == AlertState::Firing
                        && now.saturating_duration_since(entry.announced) >= RESEND_EVERY =>
                    {
                        entry.announced = now;
                        Some(EventKind::Repeat)
                    }
                    None => None,
                };
                if let Some(kind) = kind {
                    events.push(event(kind, (alert, &sample.database, &sample.user), entry));
                }
            }
        }
        // Pools that are gone and rules turned off: a firing alert resolves on its way out.
        self.entries.retain(|(alert, database, user), entry| {
            if !entry.seen && entry.machine.state() == AlertState::Firing {
                entry.value = None;
                events.push(event(EventKind::Resolved, (alert, database, user), entry));
            }
            entry.seen
        });
        let live: std::collections::HashSet<(&str, &str)> = samples
            .iter()
            .map(|s| (s.database.as_str(), s.user.as_str()))
            .collect();
        self.windows
            .retain(|(d, u), _| live.contains(&(d.as_str(), u.as_str())));
        events
    }

    /// The current table, sorted by alert, database, user.
    pub fn rows(&self) -> Vec<AlertRow> {
        self.entries
            .iter()
            .map(|((alert, database, user), e)| AlertRow {
                alert,
                database: database.clone(),
                user: user.clone(),
                state: e.machine.state(),
                value: e.value,
                threshold: e.threshold,
                hold: e.hold,
                since: e.since,
            })
            .collect()
    }
}

fn event(kind: EventKind, (alert, database, user): (&'static str, &str, &str), e: &Entry) -> Event {
    Event {
        kind,
        alert,
        database: database.to_owned(),
        user: user.to_owned(),
        value: e.value,
        threshold: e.threshold,
        fired_at: e.fired_at,
    }
}
