//! A lock-free, fixed-bucket latency histogram, its snapshots, and a sliding window over them.
//!
//! Owns: the bucket ladder (50 µs .. 60 s, about five buckets per decade, plus `+Inf`), recording
//! a duration with one relaxed atomic add on its bucket and one on the sum, cumulative snapshots,
//! quantile estimates by linear interpolation inside a bucket (as Prometheus'
//! `histogram_quantile` does), and [`Window`], a ring of snapshots from which a quantile over the
//! last N seconds is computed as the difference of two snapshots.
//!
//! Does not: render anything, take locks, or allocate when recording.
//!
//! Invariants: the count is the sum of the buckets (never a separate atomic), so a snapshot's
//! `+Inf` bucket always equals its count, as the exposition format requires; bucket bounds are
//! strictly increasing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Upper bounds of the finite buckets, in microseconds (the `le` labels, inclusive).
pub const BOUNDS_US: [u64; 30] = [
    50, 100, 200, 300, 500, 750, // µs
    1_000, 2_000, 3_000, 5_000, 7_500, 10_000, 20_000, 30_000, 50_000, 75_000, // ms
    100_000, 200_000, 300_000, 500_000, 750_000, // 100 ms .. 750 ms
    1_000_000, 2_000_000, 3_000_000, 5_000_000, 7_500_000, 10_000_000, 20_000_000, 30_000_000,
    60_000_000, // s
];

/// Number of buckets including `+Inf`.
pub const BUCKETS: usize = BOUNDS_US.len() + 1;

/// A histogram of durations. Recording is wait-free and allocation-free.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

/// The bucket a value of `us` microseconds falls in (the first bound `>= us`, or `+Inf`).
pub fn bucket_index(us: u64) -> usize {
    BOUNDS_US.partition_point(|&bound| bound < us)
}

impl Histogram {
    /// Records one observation.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if let Some(bucket) = self.buckets.get(bucket_index(us)) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The counts now (per bucket, not cumulative; see [`HistogramSnapshot::cumulative`]).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut counts = [0u64; BUCKETS];
        for (out, bucket) in counts.iter_mut().zip(&self.buckets) {
            *out = bucket.load(Ordering::Relaxed);
        }
        HistogramSnapshot {
            counts,
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// A copy of a histogram's buckets at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    pub counts: [u64; BUCKETS],
    /// Sum of all observations in microseconds.
    pub sum_us: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            sum_us: 0,
        }
    }
}

impl HistogramSnapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, &c| a.saturating_add(c))
    }

    /// Cumulative counts per bucket (`le` semantics); the last equals [`Self::count`].
    pub fn cumulative(&self) -> [u64; BUCKETS] {
        let mut out = [0u64; BUCKETS];
        let mut running = 0u64;
        for (o, &c) in out.iter_mut().zip(&self.counts) {
            running = running.saturating_add(c);
            *o = running;
        }
        out
    }

    /// Observations made between `earlier` and `self`, or `None` if any counter went backwards
    /// (the histogram was replaced, e.g. its pool was rebuilt on reload).
    pub fn since(&self, earlier: &HistogramSnapshot) -> Option<HistogramSnapshot> {
        let mut counts = [0u64; BUCKETS];
        for ((o, &now), &then) in counts.iter_mut().zip(&self.counts).zip(&earlier.counts) {
            *o = now.checked_sub(then)?;
        }
        Some(HistogramSnapshot {
            counts,
            sum_us: self.sum_us.checked_sub(earlier.sum_us)?,
        })
    }

    /// Estimates the `q` quantile (0.0 ..= 1.0) in seconds, or `None` with no observations.
    ///
    /// As Prometheus' `histogram_quantile`: find the bucket holding rank `q × count` and
    /// interpolate linearly between its lower and upper bound (the first bucket starts at 0).
    /// A rank in `+Inf` yields the largest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 || !q.is_finite() {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * to_f64(total);
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            let upto = below.saturating_add(c);
            if c > 0 && to_f64(upto) >= rank {
                let Some(&upper) = BOUNDS_US.get(i) else {
                    return Some(secs(BOUNDS_US[BOUNDS_US.len() - 1]));
                };
                let lower = if i == 0 { 0 } else { BOUNDS_US[i - 1] };
                let frac = ((rank - to_f64(below)) / to_f64(c)).clamp(0.0, 1.0);
                return Some(secs(lower) + (secs(upper) - secs(lower)) * frac);
            }
            below = upto;
        }
        Some(secs(BOUNDS_US[BOUNDS_US.len() - 1]))
    }
}

/// `u64` → `f64` for counts and microseconds; exact below 2^53, which counters do not reach.
#[allow(clippy::cast_precision_loss)]
pub fn to_f64(v: u64) -> f64 {
    v as f64
}

/// Microseconds as seconds.
pub fn secs(us: u64) -> f64 {
    to_f64(us) / 1e6
}

/// A sliding window over a cumulative histogram: keeps one snapshot per `step` for `span`, so
/// the observations of roughly the last `span` are `now − oldest snapshot in the span`.
///
/// Owned by one reader (the alert evaluator); the recording side is untouched.
#[derive(Debug, Clone)]
pub struct Window {
    span: Duration,
    step: Duration,
    ring: std::collections::VecDeque<(Instant, HistogramSnapshot)>,
}

impl Window {
    /// A window of `span`, sampled about 30 times over the span (at least every 100 ms).
    pub fn new(span: Duration) -> Self {
        let step = (span / 30).max(Duration::from_millis(100));
        Self {
            span,
            step,
            ring: std::collections::VecDeque::new(),
        }
    }

    /// The span this window covers.
    pub fn span(&self) -> Duration {
        self.span
    }

    /// Feeds the cumulative snapshot taken at `now` and returns the observations of the last
    /// `span` (or of the time observed so far, while the window fills up). A counter reset starts
    /// the window afresh.
    pub fn observe(&mut self, now: Instant, current: HistogramSnapshot) -> HistogramSnapshot {
        if self
            .ring
            .back()
            .is_some_and(|(_, last)| current.since(last).is_none())
        {
            self.ring.clear();
        }
        let due = self
            .ring
            .back()
            .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= self.step);
        if due {
            self.ring.push_back((now, current));
        }
        // Keep the newest snapshot that is at least `span` old as the baseline; drop older ones.
        while self
            .ring
            .get(1)
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= self.span)
        {
            self.ring.pop_front();
        }
        self.ring
            .front()
            .and_then(|(_, base)| current.since(base))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_increase_and_buckets_are_inclusive() {
        assert!(BOUNDS_US.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(50), 0);
        assert_eq!(bucket_index(51), 1);
        assert_eq!(bucket_index(60_000_000), BOUNDS_US.len() - 1);
        assert_eq!(bucket_index(60_000_001), BOUNDS_US.len());
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn record_counts_and_sums() {
        let h = Histogram::default();
        h.record(Duration::from_micros(40));
        h.record(Duration::from_millis(1));
        h.record(Duration::from_secs(120));
        let s = h.snapshot();
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum_us, 40 + 1_000 + 120_000_000);
        let c = s.cumulative();
        assert_eq!(c[0], 1);
        assert_eq!(c[bucket_index(1_000)], 2);
        assert_eq!(c[BUCKETS - 2], 2);
        assert_eq!(c[BUCKETS - 1], 3);
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let h = Histogram::default();
        assert_eq!(h.snapshot().quantile(0.5), None);
        // 100 values in (100ms, 200ms]: every quantile lies in that bucket, linearly spread.
        for _ in 0..100 {
            h.record(Duration::from_millis(150));
        }
        let s = h.snapshot();
        let p50 = s.quantile(0.5).unwrap();
        let p95 = s.quantile(0.95).unwrap();
        assert!((p50 - 0.15).abs() < 1e-9, "{p50}");
        assert!((p95 - 0.195).abs() < 1e-9, "{p95}");
        // Add 900 fast ones: p50 drops to the first bucket, p99 stays in the slow bucket.
        for _ in 0..900 {
            h.record(Duration::from_micros(10));
        }
        let s = h.snapshot();
        assert!(s.quantile(0.5).unwrap() <= 0.000_05);
        let p99 = s.quantile(0.99).unwrap();
        assert!(p99 > 0.1 && p99 <= 0.2, "{p99}");
        assert!((s.quantile(1.0).unwrap() - 0.2).abs() < 1e-9);
    }

    #[test]
    fn quantile_in_inf_bucket_is_largest_bound() {
        let h = Histogram::default();
        h.record(Duration::from_secs(100));
        assert_eq!(h.snapshot().quantile(0.99), Some(60.0));
    }

    #[test]
    fn since_detects_resets() {
        let h = Histogram::default();
        h.record(Duration::from_millis(5));
        let a = h.snapshot();
        h.record(Duration::from_millis(5));
        let b = h.snapshot();
        assert_eq!(b.since(&a).unwrap().count(), 1);
        assert!(a.since(&b).is_none());
    }

    #[test]
    fn window_forgets_old_observations() {
        let h = Histogram::default();
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(30));
        assert_eq!(w.observe(t0, h.snapshot()).count(), 0);
        for _ in 0..10 {
            h.record(Duration::from_secs(1));
        }
        // Within the span, the slow observations count.
        let d = w.observe(t0 + Duration::from_secs(10), h.snapshot());
        assert_eq!(d.count(), 10);
        for i in 11..=60 {
            h.record(Duration::from_millis(1));
            let d = w.observe(t0 + Duration::from_secs(i), h.snapshot());
            assert!(d.count() >= 1);
        }
        // 50 s after the slow burst, only fast observations of the last ~30 s remain.
        let d = w.observe(t0 + Duration::from_secs(61), h.snapshot());
        assert!(d.count() >= 29 && d.count() <= 32, "{}", d.count());
        assert!(d.quantile(0.95).unwrap() <= 0.001);
        assert!(w.ring.len() <= 32, "{}", w.ring.len());
    }

    #[test]
    fn window_restarts_after_reset() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(10));
        let old = Histogram::default();
        for _ in 0..5 {
            old.record(Duration::from_millis(1));
        }
        w.observe(t0, Histogram::default().snapshot());
        assert_eq!(
            w.observe(t0 + Duration::from_secs(1), old.snapshot())
                .count(),
            5
        );
        let fresh = Histogram::default();
        fresh.record(Duration::from_millis(1));
        assert_eq!(
            w.observe(t0 + Duration::from_secs(2), fresh.snapshot())
                .count(),
            0
        );
    }
}
