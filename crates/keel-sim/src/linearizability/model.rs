//! The [`Model`] trait: the sequential specification a history is checked against.
//!
//! A model says what one operation does to the state of an ideal, single-copy object, and
//! whether the output the client saw is possible from that state. The checker asks whether the
//! operations of a concurrent history can be put in one order, consistent with real time, in
//! which every step is legal.

use std::fmt;
use std::hash::Hash;

/// The outcome of applying one operation to a model state.
///
/// `Unchanged` exists so that read-only operations do not have to clone the state: the checker
/// then reuses the stored state instead of storing a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<S> {
    /// The output is impossible from this state: the operation cannot go here.
    Illegal,
    /// Legal, and the state stays as it was.
    Unchanged,
    /// Legal, and the state becomes the given one.
    To(S),
}

/// A sequential specification, generic over its input, output and state types.
///
/// Implementations must be pure: `step` may depend only on its arguments. The checker
/// memoizes on `(set of linearized operations, state)`, which is why states are `Eq + Hash`.
pub trait Model {
    /// What the client asked for (e.g. `put(k, v)`).
    type Input;
    /// What the client was told (e.g. the value read). The checker passes `None` when the
    /// output is unknown: the operation never returned (crash, timeout), or returned without
    /// a usable result. The model must then accept every possible output and apply the
    /// operation's effect, as Porcupine's models do for their "unknown" outputs.
    type Output;
    /// The state of the object; compared and hashed to prune repeated search states.
    type State: Eq + Hash;
    /// The partition key. Operations with different keys never affect one another, so each
    /// key is checked alone; this is what makes large key-value histories checkable. Models
    /// of a single object use a unit type.
    type Key: Ord + Clone + fmt::Display;

    /// The partition an operation belongs to.
    fn key(&self, input: &Self::Input) -> Self::Key;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state`, given that the client observed `output` (`None`: unknown).
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Step<Self::State>;

    /// A short human-readable form of an operation, for counterexamples
    /// (e.g. `put("k", "v") -> ok`).
    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String;

    /// A short human-readable form of a state, for counterexamples.
    fn describe_state(&self, state: &Self::State) -> String;

    /// Heap memory owned by `state`, in bytes, so the search cache's memory budget counts it.
    /// The default (0) suits states without heap data.
    fn state_heap_bytes(&self, _state: &Self::State) -> usize {
        0
    }
}
