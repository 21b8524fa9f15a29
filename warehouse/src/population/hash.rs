//! Keyed pseudo-random streams. Every draw about a household or a person comes from a stream keyed by where it
//! lives (seed, district, household, slot), so any resident can be produced alone, in any order, in O(1).

/// SplitMix64's finaliser: a bijection with full avalanche, cheap enough to run for every field of every person.
pub(crate) const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Folds the parts of a key into one word. Each part is mixed with the running value, not XOR-ed in alone, so
/// that (a, b) and (b, a) give unrelated keys.
pub(crate) fn key(parts: &[u64]) -> u64 {
    parts.iter().fold(0x243f_6a88_85a3_08d3, |h, &p| mix(h ^ mix(p.wrapping_add(0x9e37_79b9_7f4a_7c15))))
}

/// A SplitMix64 generator: the draws made from one key, in program order.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    state: u64,
}

impl Stream {
    pub(crate) fn new(key: u64) -> Stream {
        Stream { state: key }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Uniform in `0..n` (n > 0). The multiply-shift bias is below n / 2^64, far under anything a test could see.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi, "{lo} > {hi}");
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// One item of a table of (item, weight); the weights need not sum to anything in particular.
    pub(crate) fn weighted<T: Copy>(&mut self, table: &[(T, u32)]) -> T {
        let total: u64 = table.iter().map(|&(_, w)| u64::from(w)).sum();
        let mut x = self.below(total);
        for &(item, w) in table {
            if x < u64::from(w) {
                return item;
            }
            x -= u64::from(w);
        }
        unreachable!("a draw below the total weight falls in some entry")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_part_and_their_order() {
        let base = key(&[1, 2, 3]);
        assert_eq!(base, key(&[1, 2, 3]));
        for other in [key(&[1, 2, 4]), key(&[2, 1, 3]), key(&[1, 2]), key(&[0, 2, 3])] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn draws_are_uniform_enough() {
        let mut s = Stream::new(key(&[42]));
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[s.below(10) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_500..10_500).contains(&c)), "{counts:?}");
        let mean = (0..100_000).map(|_| s.unit()).sum::<f64>() / 100_000.0;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let mut seen = [false; 5];
        for _ in 0..1_000 {
            seen[(s.between(-2, 2) + 2) as usize] = true;
        }
        assert_eq!(seen, [true; 5]);
    }

    #[test]
    fn weighted_follows_the_weights() {
        let mut s = Stream::new(7);
        let table = [('a', 1), ('b', 0), ('c', 3)];
        let n = 40_000;
        let a = (0..n).filter(|_| s.weighted(&table) == 'a').count();
        assert!((9_000..11_000).contains(&a), "{a}");
        assert!((0..1_000).all(|_| s.weighted(&table) != 'b'));
    }
}
