//! The search for one partition: Wing and Gong's algorithm with Lowe's memoization, as in
//! Porcupine.
//!
//! The partition's call and return events form a doubly linked list in real-time order. The
//! search walks it from the front. At a call it tries to linearize that operation now: if the
//! model accepts the step and the pair (set of linearized operations, new state) has not been
//! seen before, the operation is linearized, its two events are unlinked ("lifted"), the pair
//! is remembered and the walk restarts at the front. Reaching a return means the operation
//! that returned there had to be linearized already and was not, so the search backtracks:
//! it undoes the last linearized operation (re-links its events) and tries the call after it.
//! The list empties exactly when every operation is linearized; backtracking with nothing to
//! undo means no linearization exists.
//!
//! Memory stays bounded: the cache of seen pairs (the only part that can grow beyond the
//! history's size) is counted in bytes against a budget shared by all partitions. Every
//! pair's state is stored once in an append-only arena and referred to by index, so the
//! search never clones a state, and read-only steps share the state they read.
//!
//! A search is resumable: [`PartitionSearch::run`] takes a step budget and returns
//! [`Progress::Paused`] when it is spent, so the caller can interleave partitions and one
//! hard partition cannot starve the others.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::mem::size_of;
use std::time::Instant;

use super::Operation;
use super::model::{Model, Step};

/// Node 0 of the event list is a sentinel before the first event.
const HEAD: usize = 0;
/// "No node": the end of the list.
const NIL: usize = usize::MAX;
/// Steps between two reads of the clock.
const DEADLINE_CHECK_INTERVAL: u64 = 1 << 10;
/// Rough per-entry overhead of the hash table (key, value, control byte, load factor).
const TABLE_ENTRY_BYTES: usize = 24;

/// Why a call to [`PartitionSearch::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Every operation of the partition is linearized.
    Linearizable,
    /// No linearization exists.
    NotLinearizable,
    /// The step budget is spent; call `run` again to go on.
    Paused,
    /// The deadline passed.
    TimeUp,
    /// The cache would exceed the shared memory budget.
    CacheFull,
}

/// The cache memory shared by all partitions of one check.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    pub(crate) used_bytes: usize,
    pub(crate) max_bytes: usize,
}

/// An operation undone on backtracking, and the cache entry (state) before it.
#[derive(Debug, Clone, Copy)]
struct Frame {
    op: usize,
    entry_before: u32,
}

/// The longest linearizable prefix seen: its operations and the cache entry of its state.
#[derive(Debug, Default)]
pub(crate) struct BestPrefix {
    pub(crate) ops: Vec<usize>,
    entry: u32,
}

/// One partition's resumable search. Operations are numbered locally `0..n`; `ops[i]` is
/// the index of local operation `i` in the history.
pub(crate) struct PartitionSearch<'h, M: Model> {
    model: &'h M,
    history: &'h [Operation<M::Input, M::Output>],
    ops: Vec<usize>,
    /// Rank of each local operation's call and return in real-time event order.
    call_rank: Vec<usize>,
    return_rank: Vec<usize>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The node the walk is at.
    at: usize,
    linearized: Vec<u64>,
    /// Zobrist hash of `linearized`, updated in O(1) per change.
    linearized_hash: u64,
    cache: Cache<M::State>,
    /// Cache entry of the current (set, state) pair.
    current: u32,
    stack: Vec<Frame>,
    best: BestPrefix,
}

fn call_node(op: usize) -> usize {
    2 * op + 1
}

fn is_call(node: usize) -> bool {
    node % 2 == 1
}

fn op_of(node: usize) -> usize {
    (node - 1) / 2
}

/// For each operation, a rank for its call and its return among events at the same time.
/// A client has one operation open at a time, so one that calls at the instant its
/// previous one returned comes after that return: its call ranks one above the return
/// (and its return, if at the same instant, with its call). Everything else ranks 0, and
/// operations of different clients that touch count as concurrent.
pub(crate) fn client_ties<I, O>(history: &[Operation<I, O>]) -> Vec<(u32, u32)> {
    let mut by_client: Vec<usize> = (0..history.len()).collect();
    by_client.sort_by_key(|&i| (history[i].client_id, history[i].call_time, i));
    let mut ties = vec![(0u32, 0u32); history.len()];
    for pair in by_client.windows(2) {
        let (prev, op) = (&history[pair[0]], &history[pair[1]]);
        if prev.client_id == op.client_id && prev.returned_at() == Some(op.call_time) {
            ties[pair[1]].0 = ties[pair[0]].1.saturating_add(1);
        }
        let call_tie = ties[pair[1]].0;
        if op.returned_at() == Some(op.call_time) {
            ties[pair[1]].1 = call_tie;
        }
    }
    ties
}

impl<'h, M: Model> PartitionSearch<'h, M> {
    /// Prepares the search over `history[i]` for each `i` in `ops`; `ties[i]` orders
    /// `history[i]`'s call and return among events at the same time (see [`client_ties`]).
    pub(crate) fn new(
        model: &'h M,
        history: &'h [Operation<M::Input, M::Output>],
        ties: &[(u32, u32)],
        ops: Vec<usize>,
    ) -> Self {
        let n = ops.len();
        // Sort key: never-returned last, then time, then the tie rank, then calls before
        // returns (as Porcupine, so touching operations of different clients count as
        // concurrent), then input order.
        let mut events: Vec<(bool, u64, u32, bool, usize)> = Vec::with_capacity(2 * n);
        for (local, &global) in ops.iter().enumerate() {
            let op = &history[global];
            let (call_tie, return_tie) = ties[global];
            events.push((false, op.call_time, call_tie, false, local));
            match op.returned_at() {
                Some(t) => events.push((false, t, return_tie, true, local)),
                None => events.push((true, 0, 0, true, local)),
            }
        }
        events.sort_unstable();
        let mut call_rank = vec![0; n];
        let mut return_rank = vec![0; n];
        let mut next = vec![NIL; 2 * n + 1];
        let mut prev = vec![NIL; 2 * n + 1];
        let mut last = HEAD;
        for (rank, &(_, _, _, is_return, local)) in events.iter().enumerate() {
            let node = if is_return {
                return_rank[local] = rank;
                call_node(local) + 1
            } else {
                call_rank[local] = rank;
                call_node(local)
            };
            next[last] = node;
            prev[node] = last;
            last = node;
        }
        let words = n.div_ceil(64).max(1);
        let cache = Cache::new(words, model.init());
        let at = next[HEAD];
        PartitionSearch {
            model,
            history,
            ops,
            call_rank,
            return_rank,
            next,
            prev,
            at,
            linearized: vec![0; words],
            linearized_hash: 0,
            cache,
            current: 0,
            stack: Vec::new(),
            best: BestPrefix::default(),
        }
    }

    /// The number of operations in the partition.
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// The bytes this search's cache counts against the budget.
    pub(crate) fn cache_bytes(&self) -> usize {
        self.cache.bytes
    }

    /// Runs at most `max_steps` steps of the search.
    pub(crate) fn run(
        &mut self,
        max_steps: u64,
        deadline: Option<Instant>,
        memory: &mut MemoryBudget,
    ) -> Progress {
        for step in 0..max_steps {
            if step % DEADLINE_CHECK_INTERVAL == 0 && deadline_passed(deadline) {
                return Progress::TimeUp;
            }
            if self.next[HEAD] == NIL {
                return Progress::Linearizable;
            }
            if is_call(self.at) {
                if !self.try_linearize(self.at, memory) {
                    return Progress::CacheFull;
                }
            } else if !self.backtrack() {
                return Progress::NotLinearizable;
            }
        }
        Progress::Paused
    }

    /// Tries to linearize the operation called at `node` next; returns false when the cache
    /// is over budget.
    fn try_linearize(&mut self, node: usize, memory: &mut MemoryBudget) -> bool {
        let op = op_of(node);
        let operation = &self.history[self.ops[op]];
        let state_index = self.cache.state_of[self.current as usize];
        let new_state = match self.model.step(
            &self.cache.states[state_index as usize],
            &operation.input,
            operation.output.as_ref(),
        ) {
            Step::Illegal => {
                self.at = self.next[node];
                return true;
            }
            Step::Unchanged => NewState::Stored(state_index),
            Step::To(state) => NewState::Fresh(state),
        };
        if self.cache.is_full() {
            return false;
        }
        set_bit(&mut self.linearized, op);
        let linearized_hash = self.linearized_hash ^ zobrist(op);
        match self.cache.insert(self.model, &self.linearized, linearized_hash, new_state) {
            Some((entry, bytes)) => {
                memory.used_bytes += bytes;
                self.stack.push(Frame { op, entry_before: self.current });
                self.current = entry;
                self.linearized_hash = linearized_hash;
                self.lift(node);
                self.at = self.next[HEAD];
                memory.used_bytes <= memory.max_bytes
            }
            None => {
                clear_bit(&mut self.linearized, op);
                self.at = self.next[node];
                true
            }
        }
    }

    /// Undoes the last linearized operation; false if there is none.
    fn backtrack(&mut self) -> bool {
        let Some(frame) = self.stack.pop() else {
            return false;
        };
        if self.stack.len() + 1 > self.best.ops.len() {
            self.best.ops.clear();
            self.best.ops.extend(self.stack.iter().map(|f| f.op));
            self.best.ops.push(frame.op);
            self.best.entry = self.current;
        }
        let node = call_node(frame.op);
        self.unlift(node);
        clear_bit(&mut self.linearized, frame.op);
        self.linearized_hash ^= zobrist(frame.op);
        self.current = frame.entry_before;
        self.at = self.next[node];
        true
    }

    /// Unlinks a call node and its return node (which follows it).
    fn lift(&mut self, call: usize) {
        for node in [call, call + 1] {
            let (prev, next) = (self.prev[node], self.next[node]);
            self.next[prev] = next;
            if next != NIL {
                self.prev[next] = prev;
            }
        }
    }

    /// Re-links what [`Self::lift`] unlinked, in the reverse order.
    fn unlift(&mut self, call: usize) {
        for node in [call + 1, call] {
            let (prev, next) = (self.prev[node], self.next[node]);
            self.next[prev] = node;
            if next != NIL {
                self.prev[next] = node;
            }
        }
    }

    /// The longest linearizable prefix found, as history indices in linearization order.
    pub(crate) fn best_prefix(&self) -> Vec<usize> {
        self.best.ops.iter().map(|&op| self.ops[op]).collect()
    }

    /// The state after the longest prefix.
    pub(crate) fn best_state(&self) -> &M::State {
        let state_index = self.cache.state_of[self.best.entry as usize];
        &self.cache.states[state_index as usize]
    }

    /// The operations that could go right after the longest prefix in real time: those
    /// called before the first return among the rest. As history indices, in call order.
    pub(crate) fn stuck_after_best(&self) -> Vec<usize> {
        let n = self.ops.len();
        let mut in_prefix = vec![false; n];
        for &op in &self.best.ops {
            in_prefix[op] = true;
        }
        let first_return = (0..n).filter(|&op| !in_prefix[op]).map(|op| self.return_rank[op]).min();
        let Some(first_return) = first_return else {
            return Vec::new();
        };
        let mut stuck: Vec<usize> =
            (0..n).filter(|&op| !in_prefix[op] && self.call_rank[op] < first_return).collect();
        stuck.sort_by_key(|&op| self.call_rank[op]);
        // Any that the model accepted would have made a longer prefix.
        debug_assert!(stuck.iter().all(|&op| {
            let operation = &self.history[self.ops[op]];
            self.model.step(self.best_state(), &operation.input, operation.output.as_ref())
                == Step::Illegal
        }));
        stuck.into_iter().map(|op| self.ops[op]).collect()
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the checker's time budget is wall-clock by design; it never affects a verdict \
              other than turning it into Unknown"
)]
fn deadline_passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|deadline| Instant::now() >= deadline)
}

fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

fn clear_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] &= !(1 << (i % 64));
}

/// A fixed pseudo-random value per operation; the hash of a set is the XOR of its members'.
fn zobrist(op: usize) -> u64 {
    mix(op as u64 ^ 0x9e37_79b9_7f4a_7c15)
}

/// SplitMix64's finalizer: a cheap, well-spread 64-bit mix.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The state of a pair about to be cached: one already stored, or a new one.
enum NewState<S> {
    Stored(u32),
    Fresh(S),
}

/// The set of seen (linearized set, state) pairs. Entries live in flat arenas: entry `i` has
/// bitset words `bits[i*words..(i+1)*words]`, state `states[state_of[i]]`, and `chain[i]`
/// links entries whose keys share a hash. Entry 0 is the initial pair and is not in `table`.
struct Cache<S> {
    words: usize,
    table: HashMap<u64, u32, BuildHasherDefault<PassThroughHasher>>,
    bits: Vec<u64>,
    state_of: Vec<u32>,
    chain: Vec<u32>,
    states: Vec<S>,
    state_hashes: Vec<u64>,
    bytes: usize,
}

impl<S: Eq + Hash> Cache<S> {
    fn new(words: usize, init: S) -> Self {
        let hash = hash_state(&init);
        Cache {
            words,
            table: HashMap::default(),
            bits: vec![0; words],
            state_of: vec![0],
            chain: vec![u32::MAX],
            states: vec![init],
            state_hashes: vec![hash],
            bytes: 0,
        }
    }

    /// Whether the entry or state indices would overflow `u32` (a budget of tens of GiB).
    fn is_full(&self) -> bool {
        self.state_of.len() >= u32::MAX as usize || self.states.len() >= u32::MAX as usize
    }

    /// Adds the pair unless present; the caller checks [`Self::is_full`] first. Returns the
    /// new entry and the bytes it added.
    fn insert<M: Model<State = S>>(
        &mut self,
        model: &M,
        linearized: &[u64],
        linearized_hash: u64,
        state: NewState<S>,
    ) -> Option<(u32, usize)> {
        let state_hash = match &state {
            NewState::Stored(index) => self.state_hashes[*index as usize],
            NewState::Fresh(state) => hash_state(state),
        };
        let key = mix(linearized_hash ^ state_hash.rotate_left(32));
        let head = self.table.get(&key).copied().unwrap_or(u32::MAX);
        let mut entry = head;
        while entry != u32::MAX {
            let e = entry as usize;
            let stored = self.state_of[e] as usize;
            let same = self.state_hashes[stored] == state_hash
                && self.bits[e * self.words..(e + 1) * self.words] == *linearized
                && match &state {
                    NewState::Stored(index) => {
                        stored == *index as usize
                            || self.states[stored] == self.states[*index as usize]
                    }
                    NewState::Fresh(state) => self.states[stored] == *state,
                };
            if same {
                return None;
            }
            entry = self.chain[e];
        }
        let mut bytes = self.words * size_of::<u64>() + 2 * size_of::<u32>() + TABLE_ENTRY_BYTES;
        let state_index = match state {
            NewState::Stored(index) => index,
            NewState::Fresh(state) => {
                bytes += size_of::<S>() + size_of::<u64>() + model.state_heap_bytes(&state);
                self.states.push(state);
                self.state_hashes.push(state_hash);
                u32::try_from(self.states.len() - 1).expect("checked by is_full")
            }
        };
        let new_entry = u32::try_from(self.state_of.len()).expect("checked by is_full");
        self.bits.extend_from_slice(linearized);
        self.state_of.push(state_index);
        self.chain.push(head);
        self.table.insert(key, new_entry);
        self.bytes += bytes;
        Some((new_entry, bytes))
    }
}

fn hash_state<S: Hash>(state: &S) -> u64 {
    let mut hasher = FxHasher::default();
    state.hash(&mut hasher);
    hasher.finish()
}

/// Hasher for keys that are already well-mixed 64-bit hashes.
#[derive(Default)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// The multiply-rotate hash of rustc (FxHash): fast for the small states models use; the
/// result is mixed again before it reaches the table.
#[derive(Default)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }
}
