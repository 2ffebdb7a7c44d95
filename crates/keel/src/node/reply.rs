//! How the loop answers a call: a reply slot per calling thread and reply
//! type, reused by every blocking call that thread makes, so that a call
//! allocates no channel; and a one-message channel per `_async` call.
//!
//! A blocking call usually runs on the calling thread (see
//! [`event_loop`](super::event_loop)) and finds its answer in the slot at
//! once. One queued behind a busy loop spins on the slot for a few
//! microseconds (a caller that never parks is never woken by a system
//! call), then yields, then parks on a condition variable. Answers carry
//! the number of the call they answer, so an answer that comes after its
//! caller gave up (timed out) is never taken for the answer of the caller's
//! next call.

use std::hint::spin_loop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::raftpb::ConfState;
use crate::raw_node::Proposed;
use crate::status::Status;

/// Rounds of `spin_loop` a caller spends before yielding: a few µs on
/// current x86 cores, about what the node's thread takes to run a proposal
/// queued behind a little other work; short, because a caller that spins
/// on the core the answer must be computed on only delays it.
const SPIN_ROUNDS: u32 = 100;

/// `yield_now`s after spinning and before parking: on a machine with more
/// runnable threads than cores they let the other side run.
const YIELD_ROUNDS: u32 = 2;

/// Where one call's answer goes.
pub(super) struct Replier<T: Send + 'static> {
    to: Option<Target<T>>,
}

enum Target<T> {
    /// The calling thread's slot, and the number of the call.
    Slot(Arc<Slot<T>>, u64),
    /// An `_async` call's channel.
    Channel(flume::Sender<T>),
}

impl<T: Send + 'static> Replier<T> {
    /// Answers the call. A caller that gave up (timed out, or dropped its
    /// future) is no longer listening, which is fine.
    pub(super) fn send(mut self, value: T) {
        match self.to.take() {
            Some(Target::Slot(slot, call)) => slot.deliver(call, Some(value)),
            Some(Target::Channel(tx)) => {
                let _ = tx.try_send(value);
            }
            None => {}
        }
    }
}

impl<T: Send + 'static> Drop for Replier<T> {
    /// A request dropped unanswered (the loop stopped) answers its caller
    /// with [`Error::Stopped`]: a slot is told so, a channel disconnects.
    fn drop(&mut self) {
        if let Some(Target::Slot(slot, call)) = self.to.take() {
            slot.deliver(call, None);
        }
    }
}

/// The reply slot of one thread for one reply type.
pub(super) struct Slot<T> {
    /// The number of the latest call answered; read without the lock by a
    /// spinning caller.
    answered: AtomicU64,
    /// The number of the latest call made (only the owning thread calls).
    calls: AtomicU64,
    state: Mutex<SlotState<T>>,
    wake: Condvar,
}

struct SlotState<T> {
    /// The call `value` answers.
    call: u64,
    /// `None`: the request was dropped unanswered.
    value: Option<T>,
    /// The owner is parked on `wake`.
    waiting: bool,
}

impl<T> Slot<T> {
    fn new() -> Slot<T> {
        Slot {
            answered: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            state: Mutex::new(SlotState { call: 0, value: None, waiting: false }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, call: u64, value: Option<T>) {
        let mut st = self.lock();
        if call < st.call {
            return; // older than an answer already delivered
        }
        st.call = call;
        st.value = value;
        let waiting = st.waiting;
        self.answered.store(call, Ordering::Release);
        drop(st);
        // Only a parked owner needs the (system-call) notification.
        if waiting {
            self.wake.notify_one();
        }
    }

    /// Waits for the answer to `call`: spin, yield, then park, at most
    /// `timeout` in all when one is given.
    fn wait(&self, call: u64, timeout: Option<Duration>) -> Result<T> {
        let answered = || self.answered.load(Ordering::Acquire) >= call;
        let mut done = false;
        for _ in 0..SPIN_ROUNDS {
            if answered() {
                done = true;
                break;
            }
            spin_loop();
        }
        if !done {
            for _ in 0..YIELD_ROUNDS {
                std::thread::yield_now();
                if answered() {
                    break;
                }
            }
        }
        let mut st = self.lock();
        st.waiting = true;
        let pending = |s: &mut SlotState<T>| s.call < call;
        st = match timeout {
            None => self.wake.wait_while(st, pending).unwrap_or_else(PoisonError::into_inner),
            Some(t) => {
                self.wake
                    .wait_timeout_while(st, t, pending)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
        st.waiting = false;
        if st.call != call {
            return Err(Error::Timeout);
        }
        st.value.take().ok_or(Error::Stopped)
    }
}

/// A type the loop answers blocking calls with, and the calling thread's
/// slot for it.
pub(super) trait Reply: Send + Sized + 'static {
    /// This thread's slot for answers of this type.
    fn slot() -> Arc<Slot<Self>>;
}

macro_rules! reply_slots {
    ($($t:ty => $name:ident,)*) => {$(
        thread_local! {
            static $name: Arc<Slot<$t>> = Arc::new(Slot::new());
        }
        impl Reply for $t {
            fn slot() -> Arc<Slot<Self>> {
                // A call from a thread-local destructor gets a slot of its own.
                $name.try_with(Arc::clone).unwrap_or_else(|_| Arc::new(Slot::new()))
            }
        }
    )*};
}

reply_slots! {
    Result<()> => UNIT_SLOT,
    Result<Proposed> => PROPOSED_SLOT,
    Result<ConfState> => CONF_STATE_SLOT,
    Status => STATUS_SLOT,
}

/// A blocking call in progress: the request's replier, and how to wait.
pub(super) struct Pending<T> {
    slot: Arc<Slot<T>>,
    call: u64,
}

impl<T: Reply> Pending<T> {
    /// A new call on this thread's slot, and the replier for its request.
    pub(super) fn new() -> (Pending<T>, Replier<T>) {
        let slot = T::slot();
        let call = slot.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let replier = Replier { to: Some(Target::Slot(Arc::clone(&slot), call)) };
        (Pending { slot, call }, replier)
    }

    /// Waits for the answer (see [`Slot::wait`]).
    pub(super) fn wait(self, timeout: Option<Duration>) -> Result<T> {
        self.slot.wait(self.call, timeout)
    }
}

/// A replier for an `_async` call, and the channel its answer arrives on.
pub(super) fn channel<T: Send + 'static>() -> (flume::Receiver<T>, Replier<T>) {
    let (tx, rx) = flume::bounded(1);
    (rx, Replier { to: Some(Target::Channel(tx)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_answer_is_not_taken_for_the_next_one() {
        let short = Some(Duration::from_millis(1));
        let (first, late) = Pending::<Result<()>>::new();
        assert!(matches!(first.wait(short), Err(Error::Timeout)));
        let (second, replier) = Pending::<Result<()>>::new();
        late.send(Err(Error::Stopped)); // the first call's answer, too late
        assert!(matches!(second.wait(short), Err(Error::Timeout)));
        let (third, replier3) = Pending::<Result<()>>::new();
        replier3.send(Ok(()));
        replier.send(Err(Error::Stopped)); // older than the third call's answer
        assert!(matches!(third.wait(short), Ok(Ok(()))));
    }

    #[test]
    fn answers_reach_the_calling_thread() {
        let (pending, replier) = Pending::<Result<()>>::new();
        let loop_thread = std::thread::spawn(move || replier.send(Ok(())));
        assert!(matches!(pending.wait(None), Ok(Ok(()))));
        loop_thread.join().unwrap();
        let (pending, replier) = Pending::<Result<()>>::new();
        drop(replier);
        assert!(matches!(pending.wait(None), Err(Error::Stopped)));
    }
}
