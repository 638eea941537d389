//! The Poisson upper tail that LT-09 compares against its threshold.

/// P(X ≥ k) for X ~ Poisson(λ).
///
/// Summed upward from k in log space so that tiny tails (1e-6 and below) are
/// exact rather than the difference of two numbers close to 1.
pub fn poisson_tail(lambda: f64, k: u32) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    let kf = f64::from(k);
    if kf <= lambda {
        // Not a tail: 1 − P(X < k), with at most k terms.
        let mut term = (-lambda).exp();
        let mut below = 0.0;
        for i in 0..k {
            below += term;
            term *= lambda / f64::from(i + 1);
        }
        return (1.0 - below).clamp(0.0, 1.0);
    }
    let ln_k_fact: f64 = (2..=k).map(|i| f64::from(i).ln()).sum();
    let mut term = (-lambda + kf * lambda.ln() - ln_k_fact).exp();
    let mut sum = term;
    let mut i = kf;
    // Terms fall geometrically once i > λ; stop when they no longer change the sum.
    while term > sum * 1e-17 {
        i += 1.0;
        term *= lambda / i;
        sum += term;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::poisson_tail;

    #[test]
    fn matches_known_values() {
        // P(X ≥ 1) = 1 − e^−λ
        assert!((poisson_tail(0.5, 1) - (1.0 - (-0.5f64).exp())).abs() < 1e-12);
        // P(X ≥ 3 | λ = 0.03) ≈ λ³/6 · e^−λ
        let expect = 0.03f64.powi(3) / 6.0 * (-0.03f64).exp();
        assert!((poisson_tail(0.03, 3) / expect - 1.0).abs() < 0.02);
        assert_eq!(poisson_tail(2.0, 0), 1.0);
        assert!(poisson_tail(5.0, 2) > 0.9);
    }
}
