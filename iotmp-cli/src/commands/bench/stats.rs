//! Latency histograms and the figures the summaries print.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies in microseconds, 1 µs to 10 min at 3 significant digits (a fixed ~200 KiB).
#[allow(
    clippy::expect_used,
    reason = "hdrhistogram refuses only invalid bounds, and these are valid constants"
)]
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles of one histogram, microseconds. `p50 ≤ p99 ≤ max` by construction.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct Latency {
    /// Samples recorded.
    pub(crate) count: u64,
    /// Median.
    pub(crate) p50_us: u64,
    /// 99th percentile.
    pub(crate) p99_us: u64,
    /// 99.9th percentile.
    pub(crate) p999_us: u64,
    /// Largest.
    pub(crate) max_us: u64,
    /// Mean.
    pub(crate) mean_us: f64,
}

impl Latency {
    /// The figures of `h` (all zero when it is empty).
    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency {
                count: 0,
                p50_us: 0,
                p99_us: 0,
                p999_us: 0,
                max_us: 0,
                mean_us: 0.0,
            };
        }
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
        }
    }

    /// `p50 / p99 / max` in milliseconds, for the text summary.
    pub(crate) fn text(&self) -> String {
        format!(
            "p50 {} / p99 {} / p99.9 {} / max {} ms ({} samples)",
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.p999_us),
            ms(self.max_us),
            self.count
        )
    }
}

/// Microseconds as milliseconds with three decimals.
pub(crate) fn ms(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// `count / seconds`, rounded to one decimal (0 for an empty span).
pub(crate) fn per_sec(count: u64, micros: u64) -> f64 {
    if micros == 0 {
        return 0.0;
    }
    let rate = count as f64 * 1e6 / micros as f64;
    (rate * 10.0).round() / 10.0
}

/// Server CPU microseconds per item, two decimals (`None` without items or a pid).
pub(crate) fn cpu_per_item(cpu_us: Option<u64>, items: u64) -> Option<f64> {
    let cpu = cpu_us?;
    (items > 0).then(|| (cpu as f64 / items as f64 * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered() {
        let mut h = latency_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert!(l.p50_us <= l.p99_us && l.p99_us <= l.max_us);
        assert!((499..=501).contains(&l.p50_us), "{l:?}");
        assert_eq!(Latency::of(&latency_histogram()).count, 0);
    }

    #[test]
    fn rates() {
        assert_eq!(per_sec(500, 2_000_000), 250.0);
        assert_eq!(per_sec(1, 0), 0.0);
        assert_eq!(cpu_per_item(Some(1000), 400), Some(2.5));
        assert_eq!(cpu_per_item(None, 400), None);
        assert_eq!(cpu_per_item(Some(10), 0), None);
        assert_eq!(ms(1_234), "1.234");
    }
}
