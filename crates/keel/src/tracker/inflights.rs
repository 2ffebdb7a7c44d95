//! The flow-control window of one follower: append messages sent but not yet
//! acknowledged, limited by count and by bytes (etcd's `tracker.Inflights`).

use std::fmt;

/// One append message in flight: the index of its last entry and the bytes
/// of its entries' payloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Inflight {
    index: u64,
    bytes: u64,
}

/// The append messages in flight to one follower, each represented by the
/// index of its last entry. The leader checks [`full`](Inflights::full)
/// before sending, adds every append it sends, and frees the prefix a
/// follower acknowledges.
///
/// A ring buffer that grows on demand (doubling, up to the count limit), so
/// that a process hosting thousands of groups does not preallocate every
/// window in full.
#[derive(Clone)]
pub struct Inflights {
    /// Position of the oldest message in `buffer`.
    start: usize,
    /// Number of messages in flight.
    count: usize,
    /// Total payload bytes in flight.
    bytes: u64,
    /// The most messages that may be in flight.
    max_count: usize,
    /// The most bytes that may be in flight; 0 for no limit.
    max_bytes: u64,
    /// The ring; its length only grows, up to `max_count`.
    buffer: Vec<Inflight>,
}

impl Inflights {
    /// A window of at most `max_count` messages and (unless `max_bytes` is
    /// 0) at most `max_bytes` payload bytes. The byte limit is soft: one
    /// message may take the total from below the limit to above it.
    pub(crate) fn new(max_count: usize, max_bytes: u64) -> Inflights {
        Inflights { start: 0, count: 0, bytes: 0, max_count, max_bytes, buffer: Vec::new() }
    }

    /// Records an append message whose last entry is `index`, carrying
    /// `bytes` of payload. Indexes must be added in increasing order.
    ///
    /// # Panics
    /// If the window is [`full`](Inflights::full): the caller must check
    /// first (a programmer error).
    pub(crate) fn add(&mut self, index: u64, bytes: u64) {
        assert!(!self.full(), "cannot add into a Full inflights");
        let mut next = self.start + self.count;
        if next >= self.max_count {
            next -= self.max_count;
        }
        if next >= self.buffer.len() {
            self.grow();
        }
        self.buffer[next] = Inflight { index, bytes };
        self.count += 1;
        self.bytes += bytes;
    }

    /// Doubles the ring (from 1, up to the count limit). Entries keep their
    /// positions: the ring only wraps once it has reached its full length.
    fn grow(&mut self) {
        let len = self.buffer.len();
        let new_len = if len == 0 { 1 } else { (len * 2).min(self.max_count) };
        self.buffer.reserve_exact(new_len - len);
        self.buffer.resize(new_len, Inflight::default());
    }

    /// Frees every message whose last index is at most `to`: the follower
    /// has acknowledged them.
    pub(crate) fn free_le(&mut self, to: u64) {
        if self.count == 0 || to < self.buffer[self.start].index {
            // Out of the left side of the window.
            return;
        }
        let mut idx = self.start;
        let mut freed = 0;
        let mut freed_bytes = 0;
        while freed < self.count {
            let inflight = self.buffer[idx];
            if to < inflight.index {
                break;
            }
            freed += 1;
            freed_bytes += inflight.bytes;
            idx += 1;
            if idx >= self.max_count {
                idx -= self.max_count;
            }
        }
        self.count -= freed;
        self.bytes -= freed_bytes;
        self.start = idx;
        if self.count == 0 {
            // Start over at the front so that the buffer does not grow
            // needlessly.
            self.start = 0;
        }
    }

    /// Whether no more messages may be sent now: the count limit is reached
    /// or the bytes in flight reach the byte limit.
    pub fn full(&self) -> bool {
        self.count == self.max_count || (self.max_bytes != 0 && self.bytes >= self.max_bytes)
    }

    /// The number of messages in flight.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The payload bytes in flight.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The count limit.
    pub fn max_count(&self) -> usize {
        self.max_count
    }

    /// The byte limit (0: none).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Forgets every message in flight (the buffer is kept for reuse).
    pub(crate) fn reset(&mut self) {
        self.start = 0;
        self.count = 0;
        self.bytes = 0;
    }

    /// The messages in flight, oldest first, as (last index, bytes).
    fn iter(&self) -> impl Iterator<Item = Inflight> + '_ {
        (0..self.count).map(move |i| {
            let mut idx = self.start + i;
            if idx >= self.max_count {
                idx -= self.max_count;
            }
            self.buffer[idx]
        })
    }

    /// The last indexes of the messages in flight, oldest first.
    pub fn indexes(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|inflight| inflight.index)
    }
}

/// Two windows are equal when they have the same limits and the same
/// messages in flight, wherever those sit in the ring.
impl PartialEq for Inflights {
    fn eq(&self, other: &Inflights) -> bool {
        self.max_count == other.max_count
            && self.max_bytes == other.max_bytes
            && self.count == other.count
            && self.bytes == other.bytes
            && self.iter().eq(other.iter())
    }
}

impl Eq for Inflights {}

impl fmt::Debug for Inflights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflights")
            .field("max_count", &self.max_count)
            .field("max_bytes", &self.max_bytes)
            .field("bytes", &self.bytes)
            .field("in_flight", &self.iter().map(|i| (i.index, i.bytes)).collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    /// The ring's raw slots (last indexes), in buffer order.
    fn slots(ins: &Inflights) -> Vec<u64> {
        ins.buffer.iter().map(|i| i.index).collect()
    }

    #[test]
    fn add_fills_then_wraps() {
        let mut ins = Inflights::new(10, 0);
        for i in 0..5 {
            ins.add(i, 100 + i);
        }
        assert_eq!((ins.start, ins.count, ins.bytes), (0, 5, 510));
        // Grown lazily: 1, 2, 4, 8 slots.
        assert_eq!(slots(&ins), vec![0, 1, 2, 3, 4, 0, 0, 0]);
        for i in 5..10 {
            ins.add(i, 100 + i);
        }
        assert_eq!((ins.start, ins.count, ins.bytes), (0, 10, 1045));
        assert_eq!(slots(&ins), (0..10).collect::<Vec<_>>());
        assert!(ins.full());

        // Rotating case: start in the middle, add wraps around.
        let mut ins = Inflights::new(10, 0);
        for i in 0..5 {
            ins.add(i, 0);
        }
        for i in 5..10 {
            ins.add(i, 0);
        }
        ins.free_le(4);
        assert_eq!((ins.start, ins.count), (5, 5));
        for i in 10..15 {
            ins.add(i, 0);
        }
        assert_eq!((ins.start, ins.count), (5, 10));
        assert_eq!(slots(&ins), vec![10, 11, 12, 13, 14, 5, 6, 7, 8, 9]);
        assert_eq!(ins.indexes().collect::<Vec<_>>(), (5..15).collect::<Vec<_>>());
    }

    #[test]
    fn free_le_frees_the_acknowledged_prefix() {
        let mut ins = Inflights::new(10, 0);
        for i in 0..10 {
            ins.add(i, 100 + i);
        }
        ins.free_le(0);
        assert_eq!((ins.start, ins.count, ins.bytes), (1, 9, 945));
        ins.free_le(4);
        assert_eq!((ins.start, ins.count, ins.bytes), (5, 5, 535));
        ins.free_le(8);
        assert_eq!((ins.start, ins.count, ins.bytes), (9, 1, 109));
        // Wrap around the ring.
        for i in 10..15 {
            ins.add(i, 100 + i);
        }
        ins.free_le(12);
        assert_eq!((ins.start, ins.count, ins.bytes), (3, 2, 227));
        // Below the window: nothing happens.
        ins.free_le(5);
        assert_eq!((ins.start, ins.count), (3, 2));
        // Everything: start goes back to the front.
        ins.free_le(14);
        assert_eq!((ins.start, ins.count, ins.bytes), (0, 0, 0));
        // Freeing an empty window is a no-op.
        ins.free_le(100);
        assert_eq!(ins.count(), 0);
    }

    #[test]
    fn full_by_count_or_bytes() {
        // (count limit, byte limit, sizes added, full after each add)
        let cases: &[(usize, u64, &[u64], &[bool])] = &[
            (3, 0, &[100, 100, 100], &[false, false, true]),
            (10, 1000, &[100, 200, 300, 400], &[false, false, false, true]),
            // The byte limit is soft: one message may overshoot it.
            (10, 1000, &[100, 1000], &[false, true]),
            (5, 1000, &[0, 0, 0, 0, 0], &[false, false, false, false, true]),
        ];
        for (i, (max_count, max_bytes, sizes, want)) in cases.iter().enumerate() {
            let mut ins = Inflights::new(*max_count, *max_bytes);
            for (j, (&size, &full)) in sizes.iter().zip(want.iter()).enumerate() {
                ins.add(j as u64, size);
                assert_eq!(ins.full(), full, "case {i}, add {j}");
            }
        }
        let mut ins = Inflights::new(10, 1000);
        ins.add(1, 500);
        ins.add(2, 500);
        assert!(ins.full());
        ins.free_le(1);
        assert!(!ins.full());
        assert_eq!(ins.bytes(), 500);
    }

    #[test]
    fn add_into_full_window_panics() {
        let result = std::panic::catch_unwind(|| {
            let mut ins = Inflights::new(1, 0);
            ins.add(1, 0);
            ins.add(2, 0);
        });
        assert!(result.is_err());
    }

    #[test]
    fn reset_and_clone() {
        let mut ins = Inflights::new(4, 100);
        ins.add(1, 10);
        ins.add(2, 20);
        let copy = ins.clone();
        ins.reset();
        assert_eq!((ins.count(), ins.bytes()), (0, 0));
        assert_eq!((copy.count(), copy.bytes()), (2, 30));
        assert_ne!(ins, copy);
        assert_eq!((ins.max_count(), ins.max_bytes()), (4, 100));
        // Equality looks at what is in flight, not where it sits.
        let mut a = Inflights::new(4, 0);
        let mut b = Inflights::new(4, 0);
        a.add(1, 1);
        a.add(2, 1);
        a.free_le(1);
        b.add(2, 1);
        assert_eq!(a, b);
        assert_eq!(
            format!("{a:?}"),
            "Inflights { max_count: 4, max_bytes: 0, bytes: 1, in_flight: [(2, 1)] }"
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(u64, u64),
        FreeLe(u64),
        Reset,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u64..5, 0u64..300).prop_map(|(step, bytes)| Op::Add(step, bytes)),
            2 => (0u64..40).prop_map(Op::FreeLe),
            1 => Just(Op::Reset),
        ]
    }

    proptest! {
        /// The ring behaves like a plain queue with the same limits.
        #[test]
        fn matches_a_queue(
            max_count in 1usize..9,
            max_bytes in prop_oneof![Just(0u64), 1u64..1000],
            ops in proptest::collection::vec(op(), 0..80),
        ) {
            let mut ins = Inflights::new(max_count, max_bytes);
            let mut model: VecDeque<(u64, u64)> = VecDeque::new();
            let mut last = 0u64;
            for op in ops {
                match op {
                    Op::Add(step, bytes) => {
                        let model_bytes: u64 = model.iter().map(|&(_, b)| b).sum();
                        let full = model.len() == max_count
                            || (max_bytes != 0 && model_bytes >= max_bytes);
                        prop_assert_eq!(ins.full(), full);
                        if !full {
                            last += step;
                            ins.add(last, bytes);
                            model.push_back((last, bytes));
                        }
                    }
                    Op::FreeLe(to) => {
                        ins.free_le(to);
                        while model.front().is_some_and(|&(i, _)| i <= to) {
                            model.pop_front();
                        }
                    }
                    Op::Reset => {
                        ins.reset();
                        model.clear();
                    }
                }
                prop_assert_eq!(ins.count(), model.len());
                prop_assert_eq!(ins.bytes(), model.iter().map(|&(_, b)| b).sum::<u64>());
                let got: Vec<u64> = ins.indexes().collect();
                let want: Vec<u64> = model.iter().map(|&(i, _)| i).collect();
                prop_assert_eq!(got, want);
                prop_assert!(ins.buffer.len() <= max_count);
            }
        }
    }
}
