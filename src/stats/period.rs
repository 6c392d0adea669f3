//! Per-period averages, computed the way PgBouncer's SHOW STATS does.
//!
//! Owns: the two most recent period snapshots of every pool ("newer" taken at the last tick,
//! "older" at the tick before) and their timestamps, and the arithmetic: rates are
//! `1e6 * Δcount / Δµs`, `xact_time`/`query_time` are `Δtime / Δcount` of their own kind, and
//! `wait_time` is `Δwait / Δserver_assignment_count` (1.23+: the clients that got a server in
//! the period). All integer division, as PgBouncer.
//!
//! Does not: run the timer (the app's stats ticker calls [`StatsPeriods::tick`] every
//! `stats_period`) or know what a pool is (pools are `(database, user)` keys).
//!
//! Invariants: SHOW STATS compares the live counters with the "older" snapshot over the time
//! since the "older" stamp, so its window is one to two periods long, exactly as PgBouncer's;
//! the log line compares "newer" with "older" over exactly one period. Counters that went
//! backwards (a pool rebuilt by a reload) count as zero, never as a wrapped huge number.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::StatsSnapshot;
use super::conns::now_micros;

const USEC: u64 = 1_000_000;

/// Pool key: (database, user).
pub type PoolKey = (String, String);

/// Averages over `dur_us` between `old` and `cur`, as PgBouncer's `calc_average`.
pub fn average(cur: &StatsSnapshot, old: &StatsSnapshot, dur_us: u64) -> StatsSnapshot {
    if dur_us == 0 {
        return StatsSnapshot::default();
    }
    let d = |c: u64, o: u64| c.saturating_sub(o);
    let rate = |n: u64| {
        u64::try_from(u128::from(USEC) * u128::from(n) / u128::from(dur_us)).unwrap_or(u64::MAX)
    };
    let per = |total: u64, n: u64| total.checked_div(n).unwrap_or(0);
    let queries = d(cur.query_count, old.query_count);
    let xacts = d(cur.xact_count, old.xact_count);
    let assignments = d(cur.server_assignment_count, old.server_assignment_count);
    StatsSnapshot {
        server_assignment_count: rate(assignments),
        xact_count: rate(xacts),
        query_count: rate(queries),
        bytes_received: rate(d(cur.bytes_received, old.bytes_received)),
        bytes_sent: rate(d(cur.bytes_sent, old.bytes_sent)),
        xact_time_us: per(d(cur.xact_time_us, old.xact_time_us), xacts),
        query_time_us: per(d(cur.query_time_us, old.query_time_us), queries),
        wait_time_us: per(d(cur.wait_time_us, old.wait_time_us), assignments),
        client_login_count: rate(d(cur.client_login_count, old.client_login_count)),
        client_parse_count: rate(d(cur.client_parse_count, old.client_parse_count)),
        server_parse_count: rate(d(cur.server_parse_count, old.server_parse_count)),
        bind_count: rate(d(cur.bind_count, old.bind_count)),
    }
}

#[derive(Debug)]
struct State {
    old_stamp: u64,
    new_stamp: u64,
    older: HashMap<PoolKey, StatsSnapshot>,
    newer: HashMap<PoolKey, StatsSnapshot>,
}

/// The period snapshots of every pool.
#[derive(Debug)]
pub struct StatsPeriods {
    state: Mutex<State>,
}

impl Default for StatsPeriods {
    fn default() -> Self {
        let now = now_micros();
        // As PgBouncer at start: the previous period "ended" one second ago.
        StatsPeriods {
            state: Mutex::new(State {
                old_stamp: now.saturating_sub(USEC),
                new_stamp: now,
                older: HashMap::new(),
                newer: HashMap::new(),
            }),
        }
    }
}

impl StatsPeriods {
    /// Ends a period: the last snapshots become "older", `current` becomes "newer". Returns the
    /// averages of the period just ended over all pools, for the `log_stats` line.
    pub fn tick(&self, current: Vec<(PoolKey, StatsSnapshot)>) -> StatsSnapshot {
        let now = now_micros();
        let mut state = self.state.lock();
        state.old_stamp = state.new_stamp;
        state.new_stamp = now;
        let newer: HashMap<PoolKey, StatsSnapshot> = current.into_iter().collect();
        state.older = std::mem::replace(&mut state.newer, newer);
        let mut cur_total = StatsSnapshot::default();
        let mut old_total = StatsSnapshot::default();
        for (key, snap) in &state.newer {
            cur_total = cur_total + *snap;
            old_total = old_total + state.older.get(key).copied().unwrap_or_default();
        }
        average(
            &cur_total,
            &old_total,
            state.new_stamp.saturating_sub(state.old_stamp),
        )
    }

    /// The "older" snapshot of a pool (zeros for a pool that did not exist then) and the time
    /// in µs since it was taken: the inputs of SHOW STATS's averages.
    pub fn older(&self, key: &PoolKey) -> StatsSnapshot {
        self.state
            .lock()
            .older
            .get(key)
            .copied()
            .unwrap_or_default()
    }

    /// Microseconds since the "older" snapshot was taken.
    pub fn window_us(&self) -> u64 {
        now_micros().saturating_sub(self.state.lock().old_stamp)
    }
}

/// PgBouncer's `log_stats` line for the averages of one period.
pub fn log_line(avg: &StatsSnapshot) -> String {
    format!(
        "stats: {} xacts/s, {} queries/s, {} client parses/s, {} server parses/s, {} binds/s, \
         {} client logins/s, in {} B/s, out {} B/s, xact {} us, query {} us, wait {} us",
        avg.xact_count,
        avg.query_count,
        avg.client_parse_count,
        avg.server_parse_count,
        avg.bind_count,
        avg.client_login_count,
        avg.bytes_received,
        avg.bytes_sent,
        avg.xact_time_us,
        avg.query_time_us,
        avg.wait_time_us
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(xacts: u64, xact_time: u64, assignments: u64, wait: u64) -> StatsSnapshot {
        StatsSnapshot {
            xact_count: xacts,
            query_count: xacts * 2,
            xact_time_us: xact_time,
            query_time_us: xact_time / 2,
            server_assignment_count: assignments,
            wait_time_us: wait,
            bytes_received: 1000,
            ..StatsSnapshot::default()
        }
    }

    #[test]
    fn averages_follow_pgbouncer_formulas() {
        let old = snap(10, 1_000, 10, 100);
        let cur = snap(70, 7_000, 40, 3_100);
        let avg = average(&cur, &old, 2 * USEC);
        assert_eq!(avg.xact_count, 30); // 60 xacts in 2 s
        assert_eq!(avg.query_count, 60);
        assert_eq!(avg.xact_time_us, 100); // 6000 µs / 60 xacts
        assert_eq!(avg.query_time_us, 25); // 3000 µs / 120 queries
        assert_eq!(avg.wait_time_us, 100); // 3000 µs / 30 assignments
        assert_eq!(avg.server_assignment_count, 15);
        assert_eq!(avg.bytes_received, 0);
    }

    #[test]
    fn zero_duration_and_backwards_counters_are_zero() {
        let cur = snap(5, 50, 5, 5);
        assert_eq!(average(&cur, &cur, 0), StatsSnapshot::default());
        let bigger = snap(50, 500, 50, 50);
        assert_eq!(average(&cur, &bigger, USEC), StatsSnapshot::default());
    }

    #[test]
    fn ticks_rotate_snapshots() {
        let periods = StatsPeriods::default();
        let key: PoolKey = ("db".into(), "u".into());
        periods.tick(vec![(key.clone(), snap(1, 1, 1, 1))]);
        assert_eq!(periods.older(&key), StatsSnapshot::default());
        periods.tick(vec![(key.clone(), snap(5, 5, 5, 5))]);
        assert_eq!(periods.older(&key), snap(1, 1, 1, 1));
        assert!(log_line(&StatsSnapshot::default()).starts_with("stats: 0 xacts/s"));
    }
}
