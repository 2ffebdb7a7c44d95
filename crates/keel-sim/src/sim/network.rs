//! The simulated network between nodes: per-message drops, duplicates and
//! delays (which reorder messages), and partitions, symmetric or one way.
//!
//! A partition is a set of blocked directed links, checked when a message
//! would be delivered: a message in flight when a partition starts is lost.
//! Clients are not on this network (they reach any live node).

use std::collections::BTreeSet;

use super::rng::Rng;

/// The faults the network currently injects.
#[derive(Debug, Clone)]
pub struct Network {
    /// Blocked `(from, to)` links.
    blocked: BTreeSet<(u64, u64)>,
    /// Probability in thousandths of dropping a message.
    pub drop_per_mille: u32,
    /// Probability in thousandths of delivering a message twice.
    pub dup_per_mille: u32,
    /// Delay bounds.
    pub delay_min_us: u64,
    /// See `delay_min_us`.
    pub delay_max_us: u64,
}

/// What the network does with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Lost at random.
    Dropped,
    /// Delivered after each of these delays (two for a duplicate).
    Delivered(Vec<u64>),
}

impl Network {
    /// A network without partitions.
    pub fn new(
        drop_per_mille: u32,
        dup_per_mille: u32,
        delay_min_us: u64,
        delay_max_us: u64,
    ) -> Network {
        Network {
            blocked: BTreeSet::new(),
            drop_per_mille,
            dup_per_mille,
            delay_min_us,
            delay_max_us,
        }
    }

    /// Decides the fate of a message when it is sent.
    pub fn send(&self, rng: &mut Rng) -> Fate {
        if rng.chance(self.drop_per_mille) {
            return Fate::Dropped;
        }
        let mut delays = vec![rng.range(self.delay_min_us, self.delay_max_us)];
        if rng.chance(self.dup_per_mille) {
            delays.push(rng.range(self.delay_min_us, self.delay_max_us));
        }
        Fate::Delivered(delays)
    }

    /// Whether `from` cannot currently reach `to`.
    pub fn is_blocked(&self, from: u64, to: u64) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Whether any link is blocked.
    pub fn is_partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Splits `nodes` into `side` and the rest, both ways.
    pub fn partition_symmetric(&mut self, side: &[u64], nodes: &[u64]) {
        for &a in side {
            for &b in nodes.iter().filter(|b| !side.contains(b)) {
                self.blocked.insert((a, b));
                self.blocked.insert((b, a));
            }
        }
    }

    /// Blocks the messages from `side` to the others (they still hear the
    /// others).
    pub fn partition_one_way(&mut self, side: &[u64], nodes: &[u64]) {
        for &a in side {
            for &b in nodes.iter().filter(|b| !side.contains(b)) {
                self.blocked.insert((a, b));
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// A short description of the blocked links, for the trace.
    pub fn describe(&self) -> String {
        if self.blocked.is_empty() {
            return "none".to_owned();
        }
        let links: Vec<String> = self.blocked.iter().map(|(a, b)| format!("{a}->{b}")).collect();
        links.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_block_links() {
        let mut n = Network::new(0, 0, 1, 1);
        let nodes = [1, 2, 3];
        n.partition_one_way(&[1], &nodes);
        assert!(n.is_blocked(1, 2) && n.is_blocked(1, 3));
        assert!(!n.is_blocked(2, 1));
        n.partition_symmetric(&[3], &nodes);
        assert!(n.is_blocked(2, 3) && n.is_blocked(3, 2));
        n.heal();
        assert!(!n.is_partitioned());
        assert_eq!(n.send(&mut Rng::new(1)), Fate::Delivered(vec![1]));
    }
}
