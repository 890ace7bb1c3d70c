//! Latency histograms the layers record into and the server's `/metrics` reads.
//!
//! Recording is a few relaxed atomic adds (no lock, no allocation), so it may sit on the token
//! and scoring paths. Buckets are fixed (100 us to 10 s), which is what makes a histogram a
//! plain array of counters; the snapshot turns them into Prometheus' cumulative buckets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (Prometheus' `le`), ascending.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The same bounds in nanoseconds, for the comparison on the recording path.
const BOUNDS_NANOS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A latency histogram over [`LATENCY_BUCKETS`]: one counter per bucket (the last one past
/// the largest bound) and the sum in nanoseconds.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; 17],
    sum_nanos: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

/// What a scrape reads from a histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub sum_seconds: f64,
    pub count: u64,
    /// `(le, observations <= le)`, cumulative, without `+Inf` (whose count is `count`).
    pub buckets: Vec<(f64, u64)>,
}

impl LatencyHistogram {
    pub const fn new() -> Self {
        Self { buckets: [const { AtomicU64::new(0) }; 17], sum_nanos: AtomicU64::new(0) }
    }

    pub fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NANOS.partition_point(|&b| b < nanos);
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The count is the sum of the buckets read, so it always agrees with them.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len());
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            buckets.push((*le, cumulative));
        }
        let count = cumulative + self.buckets[16].load(Ordering::Relaxed);
        let sum_seconds = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        HistogramSnapshot { sum_seconds, count, buckets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = LatencyHistogram::new();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (0.0001, 2));
        assert_eq!(s.buckets[4], (0.0025, 2));
        assert_eq!(s.buckets[5], (0.005, 3));
        assert_eq!(s.buckets[15], (10.0, 3));
        assert!((s.sum_seconds - 60.00315).abs() < 1e-9);
    }
}
