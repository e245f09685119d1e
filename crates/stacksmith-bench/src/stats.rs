//! Percentiles and medians of measured durations.

use std::time::Duration;

/// The `p`-th percentile (0–100) of `samples` by the nearest-rank method: the smallest sample
/// such that at least `p`% of the samples are at or below it. `None` for no samples.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    // Less a hair, so that a product that should be whole (99.9 % of 1000) is not rounded up by
    // the binary fraction of `p`.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

/// The median: the mean of the two middle samples for an even count.
pub fn median(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        Some((sorted[mid - 1] + sorted[mid]) / 2.0)
    } else {
        Some(sorted[mid])
    }
}

/// Milliseconds of a duration, as a float.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(100.0));
        assert_eq!(percentile(&samples, 99.0), Some(198.0));
        assert_eq!(percentile(&samples, 100.0), Some(200.0));
        assert_eq!(percentile(&samples, 0.0), Some(1.0));
        // Order does not matter.
        let mut reversed = samples.clone();
        reversed.reverse();
        assert_eq!(percentile(&reversed, 99.0), Some(198.0));
        // One outlier in a hundred is the p100, not the p99.
        let mut with_outlier = vec![10.0; 99];
        with_outlier.push(5000.0);
        assert_eq!(percentile(&with_outlier, 99.0), Some(10.0));
        assert_eq!(percentile(&with_outlier, 100.0), Some(5000.0));
        // The p99.9 is the maximum below 1000 samples, and ignores one outlier in 1000.
        assert_eq!(percentile(&with_outlier, 99.9), Some(5000.0));
        let mut thousand = vec![10.0; 999];
        thousand.push(5000.0);
        assert_eq!(percentile(&thousand, 99.9), Some(10.0));
        thousand.push(6000.0);
        assert_eq!(percentile(&thousand, 99.9), Some(5000.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1.0], 101.0), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(ms(Duration::from_micros(1500)), 1.5);
    }
}
