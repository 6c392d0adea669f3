//! The state machine of one alert rule on one pool: ok → pending → firing → resolved.
//!
//! Owns: when a measured value moves the alert from one state to the next.
//! Does not: measure, log or notify; it returns the [`Transition`] for the caller to act on.
//!
//! Hysteresis, so a value hovering at the threshold does not flap:
//! * to fire, the value must be above the threshold at every evaluation for `hold`
//!   (`*_for`); one evaluation at or under it sends a pending alert back where it came from;
//! * to resolve, the value must be at or under [`CLEAR_RATIO`] × threshold at every evaluation
//!   for `min(hold, MAX_CLEAR_HOLD)`; a value between that and the threshold keeps it firing;
//! * after resolving, firing again takes a whole `hold` again.
//!
//! Invariants: time comes in as an argument (tokio's `Instant`, so tests control it with
//! `tokio::time::pause`); a `None` value (nothing to measure) counts as under the threshold.

use std::time::Duration;

use tokio::time::Instant;

use crate::stats::alert_board::AlertState;

/// A firing alert resolves only once the value is at or below this fraction of the threshold.
pub const CLEAR_RATIO: f64 = 0.95;
/// The longest time the value must stay clear before a firing alert resolves.
pub const MAX_CLEAR_HOLD: Duration = Duration::from_secs(60);

/// A change of state the caller must report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The condition started to hold.
    Pending,
    /// A pending alert went back to ok/resolved before its hold passed.
    PendingCleared,
    /// The condition held for the whole hold time.
    Firing,
    /// A firing alert cleared.
    Resolved,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Resting: `Ok` or `Resolved`.
    Rest(AlertState),
    /// Over the threshold since `since`; falls back to `rest` if it clears early.
    Pending { since: Instant, rest: AlertState },
    /// Firing; `clear_since` is when the value last went under the clear line.
    Firing { clear_since: Option<Instant> },
}

/// One (rule, pool) alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Machine {
    phase: Phase,
}

impl Default for Machine {
    fn default() -> Self {
        Self {
            phase: Phase::Rest(AlertState::Ok),
        }
    }
}

impl Machine {
    /// The state to show.
    pub fn state(&self) -> AlertState {
        match self.phase {
            Phase::Rest(s) => s,
            Phase::Pending { .. } => AlertState::Pending,
            Phase::Firing { .. } => AlertState::Firing,
        }
    }

    /// Feeds one evaluation: `value` measured at `now` against `threshold` held for `hold`.
    pub fn step(
        &mut self,
        now: Instant,
        value: Option<f64>,
        threshold: f64,
        hold: Duration,
    ) -> Option<Transition> {
        let over = value.is_some_and(|v| v > threshold);
        let clear = value.is_none_or(|v| v <= threshold * CLEAR_RATIO);
        let (next, transition) = match self.phase {
            Phase::Rest(rest) if over => {
                if hold.is_zero() {
                    (
                        Phase::Firing { clear_since: None },
                        Some(Transition::Firing),
                    )
                } else {
                    let pending = Phase::Pending { since: now, rest };
                    (pending, Some(Transition::Pending))
                }
            }
            Phase::Pending { rest, .. } if !over => {
                (Phase::Rest(rest), Some(Transition::PendingCleared))
            }
            Phase::Pending { since, .. } if now.saturating_duration_since(since) >= hold => (
                Phase::Firing { clear_since: None },
                Some(Transition::Firing),
            ),
            Phase::Firing { .. } if !clear => (Phase::Firing { clear_since: None }, None),
            Phase::Firing { clear_since } => {
                let since = clear_since.unwrap_or(now);
                if now.saturating_duration_since(since) >= hold.min(MAX_CLEAR_HOLD) {
                    (
                        Phase::Rest(AlertState::Resolved),
                        Some(Transition::Resolved),
                    )
                } else {
                    let firing = Phase::Firing {
                        clear_since: Some(since),
                    };
                    (firing, None)
                }
            }
            Phase::Rest(_) | Phase::Pending { .. } => (self.phase, None),
        };
        self.phase = next;
        transition
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(10);

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[tokio::test(start_paused = true)]
    async fn fires_after_hold_and_resolves_after_clear_hold() {
        let t0 = Instant::now();
        let mut m = Machine::default();
        assert_eq!(m.step(t0, Some(0.5), 0.8, HOLD), None);
        assert_eq!(m.state(), AlertState::Ok);
        assert_eq!(
            m.step(at(t0, 1), Some(0.9), 0.8, HOLD),
            Some(Transition::Pending)
        );
        assert_eq!(m.step(at(t0, 5), Some(0.9), 0.8, HOLD), None);
        assert_eq!(m.state(), AlertState::Pending);
        assert_eq!(
            m.step(at(t0, 11), Some(0.9), 0.8, HOLD),
            Some(Transition::Firing)
        );
        // Inside the hysteresis band (0.76 .. 0.8]: still firing, however long.
        assert_eq!(m.step(at(t0, 12), Some(0.8), 0.8, HOLD), None);
        assert_eq!(m.step(at(t0, 100), Some(0.78), 0.8, HOLD), None);
        assert_eq!(m.state(), AlertState::Firing);
        // Clear, but not for long enough; then over again resets the clear timer.
        assert_eq!(m.step(at(t0, 101), Some(0.1), 0.8, HOLD), None);
        assert_eq!(m.step(at(t0, 105), Some(0.9), 0.8, HOLD), None);
        assert_eq!(m.step(at(t0, 106), Some(0.1), 0.8, HOLD), None);
        assert_eq!(m.step(at(t0, 115), None, 0.8, HOLD), None);
        assert_eq!(
            m.step(at(t0, 116), Some(0.0), 0.8, HOLD),
            Some(Transition::Resolved)
        );
        assert_eq!(m.state(), AlertState::Resolved);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dip_cancels_pending_and_restarts_the_hold() {
        let t0 = Instant::now();
        let mut m = Machine::default();
        m.step(t0, Some(2.0), 1.0, HOLD);
        assert_eq!(
            m.step(at(t0, 9), Some(1.0), 1.0, HOLD),
            Some(Transition::PendingCleared)
        );
        assert_eq!(m.state(), AlertState::Ok);
        assert_eq!(
            m.step(at(t0, 10), Some(2.0), 1.0, HOLD),
            Some(Transition::Pending)
        );
        assert_eq!(m.step(at(t0, 19), Some(2.0), 1.0, HOLD), None);
        assert_eq!(
            m.step(at(t0, 20), Some(2.0), 1.0, HOLD),
            Some(Transition::Firing)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn resolved_goes_pending_again_and_back_to_resolved() {
        let t0 = Instant::now();
        let mut m = Machine::default();
        let hold = Duration::ZERO;
        assert_eq!(m.step(t0, Some(2.0), 1.0, hold), Some(Transition::Firing));
        assert_eq!(m.step(t0, Some(0.0), 1.0, hold), Some(Transition::Resolved));
        let mut m2 = m;
        assert_eq!(
            m2.step(at(t0, 1), Some(2.0), 1.0, HOLD),
            Some(Transition::Pending)
        );
        assert_eq!(
            m2.step(at(t0, 2), None, 1.0, HOLD),
            Some(Transition::PendingCleared)
        );
        assert_eq!(m2.state(), AlertState::Resolved);
    }

    #[tokio::test(start_paused = true)]
    async fn long_holds_clear_within_a_minute() {
        let t0 = Instant::now();
        let mut m = Machine::default();
        let hold = Duration::from_secs(300);
        m.step(t0, Some(1.0), 0.8, hold);
        assert_eq!(
            m.step(at(t0, 300), Some(1.0), 0.8, hold),
            Some(Transition::Firing)
        );
        assert_eq!(m.step(at(t0, 301), Some(0.0), 0.8, hold), None);
        tokio::time::advance(Duration::from_secs(361)).await;
        assert_eq!(
            m.step(Instant::now(), Some(0.0), 0.8, hold),
            Some(Transition::Resolved)
        );
    }
}
