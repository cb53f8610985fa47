//! A small deterministic PRNG (xoshiro256** seeded through SplitMix64) and
//! the distributions the simulator draws from. Written here, not taken from
//! `rand`, so a seed gives byte-identical output whatever the dependency
//! versions.

/// SplitMix64 step: used to seed and to derive independent streams.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256**.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut s = [0; 4];
        for x in &mut s {
            *x = splitmix64(&mut sm);
        }
        Self { s }
    }

    /// An independent stream for `(seed, path...)`, so what one workload
    /// draws in one hour does not depend on the order anything else ran.
    pub fn derive(seed: u64, path: &[u64]) -> Self {
        let mut h = seed ^ 0x5eed_0f0f_a5a5_1234;
        let mut acc = splitmix64(&mut h);
        for &p in path {
            let mut x = acc ^ p.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            acc = splitmix64(&mut x);
        }
        Self::new(acc)
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the tiny bias is irrelevant here.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform integer in [lo, hi] (inclusive).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }

    /// Standard normal (Box-Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64(); // (0, 1]
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Poisson: Knuth's product method for small means, a rounded normal
    /// approximation (continuity-corrected, clamped at 0) from 30 up.
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda.is_nan() || lambda <= 0.0 || !lambda.is_finite() {
            return 0;
        }
        if lambda < 30.0 {
            let limit = (-lambda).exp();
            let mut k = 0;
            let mut p = self.f64();
            while p > limit {
                k += 1;
                p *= self.f64();
            }
            k
        } else {
            let x = lambda + lambda.sqrt() * self.normal() + 0.5;
            if x < 0.0 {
                0
            } else {
                x.floor() as u64
            }
        }
    }

    /// Gamma(shape, scale), Marsaglia and Tsang.
    pub fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        if shape < 1.0 {
            let u = self.f64().max(f64::MIN_POSITIVE);
            return self.gamma(shape + 1.0, scale) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.f64().max(f64::MIN_POSITIVE);
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v * scale;
            }
        }
    }

    /// Gamma-Poisson (negative binomial) with mean `lambda` and dispersion
    /// `k`: variance `lambda + lambda^2 / k`.
    pub fn neg_binomial(&mut self, lambda: f64, k: f64) -> u64 {
        let rate = lambda * self.gamma(k, 1.0 / k);
        self.poisson(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(1).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::derive(1, &[2, 3]);
        let mut y = Rng::derive(1, &[3, 2]);
        assert_ne!(x.next_u64(), y.next_u64());
        assert_eq!(
            Rng::derive(7, &[1]).next_u64(),
            Rng::derive(7, &[1]).next_u64()
        );
    }

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        (m, xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n)
    }

    #[test]
    fn distributions_have_the_right_moments() {
        let mut r = Rng::new(42);
        for lambda in [0.3, 4.0, 25.0, 400.0] {
            let xs: Vec<f64> = (0..20_000).map(|_| r.poisson(lambda) as f64).collect();
            let (m, v) = mean_var(&xs);
            assert!((m - lambda).abs() < 0.05 * lambda + 0.05, "{lambda}: {m}");
            assert!((v - lambda).abs() < 0.1 * lambda + 0.05, "{lambda}: {v}");
        }
        let xs: Vec<f64> = (0..20_000)
            .map(|_| r.neg_binomial(10.0, 2.0) as f64)
            .collect();
        let (m, v) = mean_var(&xs);
        assert!((m - 10.0).abs() < 0.5, "{m}");
        assert!(v > 40.0, "overdispersed: {v}"); // 10 + 100/2 = 60
        let xs: Vec<f64> = (0..20_000).map(|_| r.f64()).collect();
        let (m, _) = mean_var(&xs);
        assert!((m - 0.5).abs() < 0.01);
        assert!((0..1000).all(|_| r.range(3, 5) >= 3 && r.range(3, 5) <= 5));
    }
}
