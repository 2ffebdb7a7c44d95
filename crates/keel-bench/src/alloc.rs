//! Reading the counting global allocator (`stats_alloc`) that the benchmark
//! binaries install, so that memory and allocation counts come from one place
//! without any unsafe code in this crate.

use stats_alloc::{Stats, StatsAlloc};
use std::alloc::System;

/// A handle on the instrumented allocator: the binary passes its
/// `#[global_allocator]` static so that library code can read it.
#[derive(Clone, Copy)]
pub struct AllocProbe {
    alloc: &'static StatsAlloc<System>,
}

impl AllocProbe {
    /// Wraps the global allocator `alloc` (install it with
    /// `#[global_allocator]` in the binary, or the counts stay zero).
    pub fn new(alloc: &'static StatsAlloc<System>) -> AllocProbe {
        AllocProbe { alloc }
    }

    /// The counters so far (allocations, frees, bytes).
    pub fn stats(&self) -> Stats {
        self.alloc.stats()
    }

    /// Bytes currently allocated on the heap, by everything in the process.
    pub fn live_bytes(&self) -> i64 {
        let s = self.alloc.stats();
        // Reallocations are already split into the allocated and
        // deallocated byte counts by stats_alloc.
        (s.bytes_allocated as i128 - s.bytes_deallocated as i128) as i64
    }

    /// Allocation calls so far (fresh allocations and reallocations: both go
    /// to the allocator and cost about the same).
    pub fn alloc_calls(&self) -> u64 {
        let s = self.alloc.stats();
        (s.allocations + s.reallocations) as u64
    }
}

/// Tracks the high-water mark of live heap bytes above a baseline, sampled
/// by the caller at points of its choosing.
#[derive(Clone, Copy)]
pub struct PeakTracker {
    probe: AllocProbe,
    baseline: i64,
    peak: i64,
}

impl PeakTracker {
    /// Starts tracking from the live bytes now.
    pub fn start(probe: AllocProbe) -> PeakTracker {
        PeakTracker { probe, baseline: probe.live_bytes(), peak: 0 }
    }

    /// Takes one sample.
    pub fn sample(&mut self) {
        let live = self.probe.live_bytes() - self.baseline;
        self.peak = self.peak.max(live);
    }

    /// The largest sample above the baseline, in bytes.
    pub fn peak_bytes(&self) -> u64 {
        self.peak.max(0) as u64
    }
}

/// Heap allocation calls and bytes allocated per call of `op`, over `iters`
/// calls (after `iters / 10` warm-up calls, so buffers reach their steady
/// size). Criterion benches print this next to their timings, as Go's
/// `b.ReportAllocs()` does.
pub fn per_op(probe: AllocProbe, iters: u64, mut op: impl FnMut()) -> (f64, f64) {
    for _ in 0..iters / 10 {
        op();
    }
    let before = probe.stats();
    for _ in 0..iters {
        op();
    }
    let after = probe.stats();
    let calls = (after.allocations + after.reallocations)
        .saturating_sub(before.allocations + before.reallocations);
    let bytes = after.bytes_allocated.saturating_sub(before.bytes_allocated);
    let n = iters.max(1) as f64;
    (calls as f64 / n, bytes as f64 / n)
}
