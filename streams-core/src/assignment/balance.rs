//! [`Quota`]: how many of n items each slot may take in a balanced split weighted by capacity.
//!
//! Every slot (a client weighted by its threads, or one thread) may take the floor of its
//! exact share; the items left over by the floors go one each to slots whose share has a
//! fraction, first come first served. So every slot ends with the floor or the ceiling of its
//! share, and the placement code is free to decide who gets the ceilings: it gives them to
//! the slots that already hold the items (stickiness) before anyone else.

use std::cmp::Ordering;

/// The balanced shares of `items` over slots with the given capacities.
#[derive(Debug, Clone)]
pub(super) struct Quota {
    floor: Vec<usize>,
    fractional: Vec<bool>,
    extras_left: usize,
}

impl Quota {
    /// Shares of `items` over slots weighted by `capacities` (a capacity of 0 counts as 1).
    pub(super) fn new(items: usize, capacities: &[u64]) -> Self {
        let caps: Vec<u128> = capacities.iter().map(|&c| u128::from(c.max(1))).collect();
        let total: u128 = caps.iter().sum();
        let n = items as u128;
        let mut floor = Vec::with_capacity(caps.len());
        let mut fractional = Vec::with_capacity(caps.len());
        for &cap in &caps {
            floor.push((n * cap / total.max(1)) as usize);
            fractional.push((n * cap) % total.max(1) != 0);
        }
        let extras_left = items.saturating_sub(floor.iter().sum());
        Quota {
            floor,
            fractional,
            extras_left,
        }
    }

    /// Whether slot `slot`, holding `count` items, may take one more.
    pub(super) fn has_room(&self, slot: usize, count: usize) -> bool {
        count < self.floor[slot]
            || (count == self.floor[slot] && self.fractional[slot] && self.extras_left > 0)
    }

    /// Records that slot `slot`, holding `count` items, took one more (after [`Self::has_room`]).
    pub(super) fn take(&mut self, slot: usize, count: usize) {
        if count >= self.floor[slot] {
            self.extras_left = self.extras_left.saturating_sub(1);
        }
    }

    /// Records that slot `slot` already holds `count` items placed by other rules: past its
    /// floor it has used its one extra, which others then cannot take.
    pub(super) fn prefill(&mut self, slot: usize, count: usize) {
        if count > self.floor[slot] {
            self.extras_left = self.extras_left.saturating_sub(1);
        }
    }
}

/// Compares the loads `a_count / a_cap` and `b_count / b_cap` without rounding.
pub(super) fn load_cmp(a_count: usize, a_cap: u64, b_count: usize, b_cap: u64) -> Ordering {
    let a = a_count as u128 * u128::from(b_cap.max(1));
    let b = b_count as u128 * u128::from(a_cap.max(1));
    a.cmp(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills greedily in slot order; returns the counts.
    fn fill(items: usize, caps: &[u64]) -> Vec<usize> {
        let mut q = Quota::new(items, caps);
        let mut counts = vec![0; caps.len()];
        for _ in 0..items {
            let slot = (0..caps.len())
                .find(|&s| q.has_room(s, counts[s]))
                .expect("a slot with room while items remain");
            q.take(slot, counts[slot]);
            counts[slot] += 1;
        }
        counts
    }

    #[test]
    fn shares_are_floor_or_ceiling_and_sum_to_the_items() {
        assert_eq!(fill(4, &[1, 1, 1]), [2, 1, 1]);
        assert_eq!(fill(4, &[1, 3]), [1, 3]);
        assert_eq!(fill(3, &[1, 1, 2]), [1, 1, 1]);
        assert_eq!(fill(2, &[1, 1, 1, 1]), [1, 1, 0, 0]);
        assert_eq!(fill(0, &[2]), [0]);
        for items in 0..40 {
            for caps in [&[1u64, 2, 3][..], &[4, 4], &[1], &[5, 1, 1, 1]] {
                let counts = fill(items, caps);
                assert_eq!(counts.iter().sum::<usize>(), items);
                let total: u64 = caps.iter().sum();
                for (c, &cap) in counts.iter().zip(caps) {
                    let exact = items as f64 * cap as f64 / total as f64;
                    assert!(*c as f64 >= exact.floor() && *c as f64 <= exact.ceil());
                }
            }
        }
    }

    #[test]
    fn loads_compare_as_fractions() {
        assert_eq!(load_cmp(1, 2, 1, 3), Ordering::Greater);
        assert_eq!(load_cmp(2, 4, 1, 2), Ordering::Equal);
        assert_eq!(load_cmp(0, 1, 0, 9), Ordering::Equal);
    }
}
