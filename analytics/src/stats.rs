//! Count tests for the analytics stage's rate detectors: how surprising is
//! an observed count of calls in one hour, given the rate an identity's
//! baseline leads us to expect? Pure math on statrs distributions; no IO.

use statrs::distribution::{DiscreteCDF, NegativeBinomial, Poisson};

/// The smallest expected count a test uses. A baseline with no calls at
/// all in some hour still gets a (tiny) rate, so the test is defined and an
/// observed burst there is very surprising rather than a division by zero.
pub const MIN_EXPECTED: f64 = 1e-3;

/// The probability of seeing at least `observed` calls when `expected`
/// are expected, under a Poisson model (`dispersion` <= 1) or a negative
/// binomial with the same mean and variance `dispersion * expected` (an
/// overdispersed baseline, whose hour-to-hour counts vary more than a
/// Poisson process would). Always a finite number in `0..=1`.
pub fn upper_tail(observed: u64, expected: f64, dispersion: f64) -> f64 {
    if observed == 0 {
        return 1.0;
    }
    let mean = if expected.is_finite() {
        expected.max(MIN_EXPECTED)
    } else {
        MIN_EXPECTED
    };
    let below = observed - 1;
    let p = if dispersion.is_finite() && dispersion > 1.0 + 1e-9 {
        // NB(r, p) has mean r(1-p)/p and variance r(1-p)/p^2; p = 1/dispersion
        // and r = mean/(dispersion-1) give the mean and variance wanted.
        NegativeBinomial::new(mean / (dispersion - 1.0), 1.0 / dispersion)
            .map(|nb| nb.sf(below))
            .ok()
    } else {
        Poisson::new(mean).map(|p| p.sf(below)).ok()
    };
    match p {
        Some(p) if p.is_finite() => p.clamp(0.0, 1.0),
        // Only reachable for parameters statrs refuses; treat as "no
        // evidence" rather than as an alarm.
        _ => 1.0,
    }
}

/// Bonferroni: a p-value corrected for `tests` comparisons, capped at 1.
pub fn bonferroni(p: f64, tests: usize) -> f64 {
    (p * tests.max(1) as f64).clamp(0.0, 1.0)
}

/// The dispersion index of hourly counts around their expectations:
/// `sum (c - e)^2 / sum e`, 1 for a Poisson process, larger when counts
/// swing more. Returns at least 1 and 1 when there is nothing to measure.
pub fn dispersion(pairs: impl IntoIterator<Item = (f64, f64)>) -> f64 {
    let (mut squares, mut expected) = (0.0, 0.0);
    for (observed, e) in pairs {
        squares += (observed - e).powi(2);
        expected += e;
    }
    if expected > 0.0 && squares.is_finite() {
        (squares / expected).max(1.0)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_tail_matches_closed_form() {
        // P(X >= 1 | 2) = 1 - e^-2
        let p = upper_tail(1, 2.0, 1.0);
        assert!((p - (1.0 - (-2.0f64).exp())).abs() < 1e-12, "{p}");
        // P(X >= 3 | 1) = 1 - e^-1 (1 + 1 + 1/2)
        let p = upper_tail(3, 1.0, 1.0);
        assert!((p - (1.0 - (-1.0f64).exp() * 2.5)).abs() < 1e-12, "{p}");
        assert_eq!(upper_tail(0, 5.0, 1.0), 1.0);
    }

    #[test]
    fn overdispersion_makes_bursts_less_surprising() {
        let poisson = upper_tail(30, 10.0, 1.0);
        let nb = upper_tail(30, 10.0, 4.0);
        assert!(poisson < nb, "{poisson} < {nb}");
        assert!(poisson < 1e-5);
    }

    #[test]
    fn degenerate_inputs_give_finite_probabilities() {
        for expected in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300, 1e12] {
            for dispersion in [0.0, 1.0, 1.0 + 1e-12, 3.0, f64::NAN, f64::INFINITY] {
                for observed in [0, 1, 2, 1_000, u64::MAX / 2] {
                    let p = upper_tail(observed, expected, dispersion);
                    assert!(
                        (0.0..=1.0).contains(&p),
                        "{observed} {expected} {dispersion}: {p}"
                    );
                }
            }
        }
        assert_eq!(bonferroni(0.2, 10), 1.0);
        assert_eq!(bonferroni(0.001, 0), 0.001);
        assert_eq!(dispersion([]), 1.0);
        assert_eq!(dispersion([(0.0, 0.0)]), 1.0);
        assert!((dispersion([(4.0, 1.0), (0.0, 1.0)]) - 5.0).abs() < 1e-12);
    }
}
