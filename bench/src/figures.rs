//! How the benchmarks round and summarise the figures they report: three decimals everywhere,
//! medians of timed samples. The lowest module: the CPU accounting, the load generator and the
//! reports all use it, and it uses none of them.

/// `x` rounded to three decimals (µs resolution for ms, 0.001 of a core, 0.1 % of a share).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The middle sample (the upper one of the two middles for an even count); NaN for none.
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round3_keeps_three_decimals() {
        assert_eq!(round3(1.234_56), 1.235);
        assert_eq!(round3(-0.000_4), -0.0);
        assert_eq!(round3(2.0), 2.0);
    }

    #[test]
    fn median_takes_the_middle_sample() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(&[]).is_nan());
    }
}
