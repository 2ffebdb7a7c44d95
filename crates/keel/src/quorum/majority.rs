//! A set of voters that decides by simple majority (etcd's
//! `quorum.MajorityConfig`).

use std::fmt;
use std::fmt::Write as _;

use super::{AckedIndexer, INDEX_INFINITY, VoteLookup, VoteResult};

/// How many voters [`MajorityConfig::committed_index`] handles without a heap
/// allocation. It runs on every `MsgAppResp`, and real clusters have 3 to 7
/// voters; etcd keeps 7 on the stack, 16 costs 128 bytes of stack and covers
/// the joint configurations of such clusters too.
const STACK_VOTERS: usize = 16;

/// A set of voter ids deciding by simple majority. The ids are kept sorted,
/// so every iteration (and every printed form) is in id order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MajorityConfig {
    /// Sorted, without duplicates.
    ids: Vec<u64>,
}

impl MajorityConfig {
    /// The empty configuration (which commits everything and wins every
    /// vote, see the [module docs](super)).
    pub fn new() -> MajorityConfig {
        MajorityConfig::default()
    }

    /// The number of voters.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no voters.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether `id` is a voter.
    pub fn contains(&self, id: u64) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// Adds a voter; returns whether it was not there before.
    pub fn insert(&mut self, id: u64) -> bool {
        match self.ids.binary_search(&id) {
            Ok(_) => false,
            Err(pos) => {
                self.ids.insert(pos, id);
                true
            }
        }
    }

    /// Removes a voter; returns whether it was there.
    pub fn remove(&mut self, id: u64) -> bool {
        match self.ids.binary_search(&id) {
            Ok(pos) => {
                self.ids.remove(pos);
                true
            }
            Err(_) => false,
        }
    }

    /// Removes every voter.
    pub fn clear(&mut self) {
        self.ids.clear();
    }

    /// The voter ids, sorted.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// The voter ids in increasing order.
    pub fn iter(&self) -> std::iter::Copied<std::slice::Iter<'_, u64>> {
        self.ids.iter().copied()
    }

    /// The highest index acknowledged by a majority of the voters. Voters
    /// the indexer knows nothing about count as having acknowledged 0. The
    /// empty configuration returns [`INDEX_INFINITY`].
    ///
    /// Allocation-free for up to 16 voters: this runs on every append
    /// response the leader receives.
    pub fn committed_index(&self, acked: &dyn AckedIndexer) -> u64 {
        let n = self.ids.len();
        let acked_or_zero = |id: u64| acked.acked_index(id).unwrap_or(0);
        match *self.ids.as_slice() {
            [] => return INDEX_INFINITY,
            // The common sizes, without the general selection below.
            [a] => return acked_or_zero(a),
            [a, b, c] => {
                let (a, b, c) = (acked_or_zero(a), acked_or_zero(b), acked_or_zero(c));
                // The median: what two of the three have acknowledged.
                return a.min(b).max(c.min(a.max(b)));
            }
            _ => {}
        }
        let mut on_stack = [0u64; STACK_VOTERS];
        let mut on_heap;
        let indexes: &mut [u64] = if n <= STACK_VOTERS {
            &mut on_stack[..n]
        } else {
            on_heap = vec![0u64; n];
            &mut on_heap
        };
        for (slot, &id) in indexes.iter_mut().zip(&self.ids) {
            *slot = acked.acked_index(id).unwrap_or(0);
        }
        // In increasing order, the index at `pos` and everything right of it
        // is acknowledged by n/2+1 voters, a majority.
        let pos = n - (n / 2 + 1);
        *indexes.select_nth_unstable(pos).1
    }

    /// Whether the voters have granted (a majority said yes), lost (a
    /// majority can no longer say yes) or are still deciding. The empty
    /// configuration wins.
    pub fn vote_result(&self, votes: &dyn VoteLookup) -> VoteResult {
        if self.ids.is_empty() {
            return VoteResult::Won;
        }
        let (mut granted, mut missing) = (0usize, 0usize);
        for &id in &self.ids {
            match votes.vote(id) {
                Some(true) => granted += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let quorum = self.ids.len() / 2 + 1;
        if granted >= quorum {
            VoteResult::Won
        } else if granted + missing >= quorum {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }

    /// etcd's multi-line picture of the acknowledged indexes: one row per
    /// voter in id order, with a bar whose length is the number of voters
    /// with a smaller index (equal indexes get equal bars), `?` for voters
    /// with nothing known. Used by tests and debugging output.
    pub fn describe(&self, acked: &dyn AckedIndexer) -> String {
        if self.ids.is_empty() {
            return "<empty majority quorum>".to_string();
        }
        struct Row {
            id: u64,
            index: u64,
            known: bool,
            bar: usize,
        }
        let n = self.ids.len();
        let mut rows: Vec<Row> = self
            .ids
            .iter()
            .map(|&id| {
                let found = acked.acked_index(id);
                Row { id, index: found.unwrap_or(0), known: found.is_some(), bar: 0 }
            })
            .collect();
        rows.sort_by_key(|r| (r.index, r.id));
        for i in 1..n {
            rows[i].bar = if rows[i - 1].index < rows[i].index { i } else { rows[i - 1].bar };
        }
        rows.sort_by_key(|r| r.id);

        let mut out = String::new();
        out.push_str(&" ".repeat(n));
        out.push_str("    idx\n");
        for row in &rows {
            if row.known {
                out.push_str(&"x".repeat(row.bar));
                out.push('>');
                out.push_str(&" ".repeat(n - row.bar));
            } else {
                out.push('?');
                out.push_str(&" ".repeat(n));
            }
            // Writing to a String cannot fail.
            let _ = writeln!(out, " {:>5}    (id={})", row.index, row.id);
        }
        out
    }
}

impl FromIterator<u64> for MajorityConfig {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> MajorityConfig {
        let mut ids: Vec<u64> = iter.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        MajorityConfig { ids }
    }
}

impl<'a> IntoIterator for &'a MajorityConfig {
    type Item = u64;
    type IntoIter = std::iter::Copied<std::slice::Iter<'a, u64>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// `(1 2 3)`: the ids in increasing order, `()` when empty.
impl fmt::Display for MajorityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, id) in self.ids.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{id}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn acked(pairs: &[(u64, u64)]) -> BTreeMap<u64, u64> {
        pairs.iter().copied().collect()
    }

    /// The obvious definition: sort the known indexes (unknown = 0) and take
    /// the one a majority has reached.
    fn reference_committed(ids: &[u64], acked: &BTreeMap<u64, u64>) -> u64 {
        if ids.is_empty() {
            return INDEX_INFINITY;
        }
        let mut v: Vec<u64> = ids.iter().map(|id| acked.get(id).copied().unwrap_or(0)).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v[ids.len() / 2]
    }

    /// etcd's alternative computation: the largest index that at least a
    /// majority has acknowledged.
    fn alternative_committed(ids: &[u64], acked: &BTreeMap<u64, u64>) -> u64 {
        if ids.is_empty() {
            return INDEX_INFINITY;
        }
        let known: Vec<u64> = ids.iter().filter_map(|id| acked.get(id).copied()).collect();
        let quorum = ids.len() / 2 + 1;
        known
            .iter()
            .copied()
            .filter(|&candidate| known.iter().filter(|&&i| i >= candidate).count() >= quorum)
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn set_operations_keep_ids_sorted() {
        let mut c: MajorityConfig = [5, 1, 3, 1].into_iter().collect();
        assert_eq!(c.ids(), &[1, 3, 5]);
        assert_eq!(c.len(), 3);
        assert!(c.contains(3));
        assert!(!c.contains(2));
        assert!(c.insert(2));
        assert!(!c.insert(2));
        assert_eq!(c.to_string(), "(1 2 3 5)");
        assert!(c.remove(1));
        assert!(!c.remove(1));
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![2, 3, 5]);
        assert_eq!((&c).into_iter().sum::<u64>(), 10);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.to_string(), "()");
        assert_eq!(MajorityConfig::new(), c);
    }

    #[test]
    fn display_is_decimal() {
        let c: MajorityConfig = [10, 255, 16].into_iter().collect();
        assert_eq!(c.to_string(), "(10 16 255)");
    }

    #[test]
    fn empty_config_commits_everything_and_wins() {
        let c = MajorityConfig::new();
        assert_eq!(c.committed_index(&acked(&[(1, 5)])), INDEX_INFINITY);
        assert_eq!(c.vote_result(&BTreeMap::new()), VoteResult::Won);
        assert_eq!(c.describe(&acked(&[])), "<empty majority quorum>");
    }

    #[test]
    fn committed_index_cases() {
        let c: MajorityConfig = [1, 2, 3].into_iter().collect();
        assert_eq!(c.committed_index(&acked(&[])), 0);
        assert_eq!(c.committed_index(&acked(&[(1, 5)])), 0);
        assert_eq!(c.committed_index(&acked(&[(1, 5), (2, 7)])), 5);
        assert_eq!(c.committed_index(&acked(&[(1, 5), (2, 7), (3, 9)])), 7);
        // Acks from non-voters do not count.
        assert_eq!(c.committed_index(&acked(&[(1, 5), (4, 7), (5, 9)])), 0);
        let c: MajorityConfig = [1, 2].into_iter().collect();
        assert_eq!(c.committed_index(&acked(&[(1, 12), (2, 5)])), 5);
    }

    #[test]
    fn committed_index_of_one_and_three_voters_is_exhaustively_right() {
        // These sizes take a shortcut; compare it with the reference for
        // every order of every mix of equal, distinct and unknown indexes.
        let values = [None, Some(0), Some(3), Some(5), Some(9)];
        for ids in [&[7u64][..], &[2, 4, 6][..]] {
            let c: MajorityConfig = ids.iter().copied().collect();
            let n = ids.len() as u32;
            for code in 0..values.len().pow(n) {
                let mut a = BTreeMap::new();
                let mut rest = code;
                for &id in ids {
                    if let Some(v) = values[rest % values.len()] {
                        a.insert(id, v);
                    }
                    rest /= values.len();
                }
                assert_eq!(c.committed_index(&a), reference_committed(ids, &a), "{a:?}");
            }
        }
    }

    #[test]
    fn committed_index_beyond_the_stack_buffer() {
        let ids: Vec<u64> = (1..=21).collect();
        let c: MajorityConfig = ids.iter().copied().collect();
        let a: BTreeMap<u64, u64> = ids.iter().map(|&id| (id, id * 10)).collect();
        // 11 of 21 voters have acked 110 or more.
        assert_eq!(c.committed_index(&a), 110);
        assert_eq!(c.committed_index(&a), reference_committed(&ids, &a));
    }

    #[test]
    fn vote_result_cases() {
        let votes = |pairs: &[(u64, bool)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        let c: MajorityConfig = [1].into_iter().collect();
        assert_eq!(c.vote_result(&votes(&[])), VoteResult::Pending);
        assert_eq!(c.vote_result(&votes(&[(1, false)])), VoteResult::Lost);
        assert_eq!(c.vote_result(&votes(&[(1, true)])), VoteResult::Won);
        let c: MajorityConfig = [4, 8].into_iter().collect();
        assert_eq!(c.vote_result(&votes(&[(4, false)])), VoteResult::Lost);
        assert_eq!(c.vote_result(&votes(&[(4, true)])), VoteResult::Pending);
        assert_eq!(c.vote_result(&votes(&[(4, true), (8, true)])), VoteResult::Won);
        let c: MajorityConfig = [2, 4, 7].into_iter().collect();
        assert_eq!(c.vote_result(&votes(&[(2, false)])), VoteResult::Pending);
        assert_eq!(c.vote_result(&votes(&[(2, false), (4, false)])), VoteResult::Lost);
        assert_eq!(c.vote_result(&votes(&[(2, true), (7, true)])), VoteResult::Won);
        // Votes from non-voters do not count.
        assert_eq!(c.vote_result(&votes(&[(1, true), (3, true)])), VoteResult::Pending);
    }

    #[test]
    fn describe_matches_etcd() {
        let c: MajorityConfig = [1, 2, 3].into_iter().collect();
        let want = "       idx\n\
                    x>     100    (id=1)\n\
                    xx>    101    (id=2)\n\
                    >       99    (id=3)\n";
        assert_eq!(c.describe(&acked(&[(1, 100), (2, 101), (3, 99)])), want);
        // Equal indexes get equal bars; unknown voters get a `?`.
        let want = "       idx\n\
                    x>       5    (id=1)\n\
                    x>       5    (id=2)\n\
                    ?        0    (id=3)\n";
        assert_eq!(c.describe(&acked(&[(1, 5), (2, 5)])), want);
    }

    proptest! {
        #[test]
        fn committed_index_matches_references(
            ids in proptest::collection::btree_set(1u64..40, 0..24),
            indexes in proptest::collection::btree_map(1u64..40, 0u64..20, 0..40),
        ) {
            let ids: Vec<u64> = ids.into_iter().collect();
            let c: MajorityConfig = ids.iter().copied().collect();
            let got = c.committed_index(&indexes);
            prop_assert_eq!(got, reference_committed(&ids, &indexes));
            prop_assert_eq!(got, alternative_committed(&ids, &indexes));
        }

        #[test]
        fn vote_result_matches_counting(
            ids in proptest::collection::btree_set(1u64..20, 0..12),
            votes in proptest::collection::btree_map(1u64..20, any::<bool>(), 0..20),
        ) {
            let c: MajorityConfig = ids.iter().copied().collect();
            let yes = ids.iter().filter(|id| votes.get(id) == Some(&true)).count();
            let no = ids.iter().filter(|id| votes.get(id) == Some(&false)).count();
            let quorum = ids.len() / 2 + 1;
            let want = if ids.is_empty() || yes >= quorum {
                VoteResult::Won
            } else if ids.len() - no >= quorum {
                VoteResult::Pending
            } else {
                VoteResult::Lost
            };
            prop_assert_eq!(c.vote_result(&votes), want);
        }
    }
}
