//! What the raft loop hears from the transport: incoming messages and
//! reports, through one [`Events`] receiver, async or blocking, one event or
//! every queued one at a time.
//!
//! Messages and reports travel differently. Messages wait in a queue bounded
//! in count and in the memory they hold (`Limits::incoming_msgs_max`,
//! `incoming_bytes_max`); when it is full, new ones are dropped and
//! counted, and raft retransmits (etcd's rafthttp drops on its full receive
//! buffer the same way). Reports must reach raft: a lost snapshot report
//! would leave the leader's progress of that peer in `StateSnapshot` for
//! good. So they are never dropped but coalesced per peer (one unreachable
//! flag, the latest snapshot outcome, one removed flag), which bounds their
//! room by the number of peers raft has addressed. Every report key is an id
//! the local member chose, never one read from the network, except unknown
//! senders' ids, which a handshake carries: at most
//! [`UNKNOWN_PEERS_MAX`] of those wait at once, and more are dropped.
//!
//! Producers (stream readers, snapshot tasks, `send`) push under one mutex,
//! a whole read's worth of messages at a time, and wake the receiver only if
//! it waits; the receiver takes everything queued under one lock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use keel::raftpb::Message;

use crate::Limits;
use crate::stats::{Counters, bump};
use crate::wire::footprint;

/// What the transport hands back to the raft loop.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A message from a peer, to `step` into raft.
    Message(Message),
    /// A peer could not be reached (give to `report_unreachable`).
    Unreachable(u64),
    /// A peer refused this member because the cluster removed it: the
    /// member should stop (the removal is committed, but a removed follower
    /// may never hear of it through raft, since the leader stops sending).
    Removed {
        /// The peer that refused.
        by: u64,
    },
    /// A member this one does not know tried to connect: its handshake was
    /// refused (`Verdict::UnknownSender`), and it listens at `addr` (its
    /// connection's source IP, the port it announced). A member that missed
    /// the sender's addition while down cannot learn of it from the log
    /// while it refuses the leader that would send it (the sender may be
    /// that leader); the application decides whether to
    /// [`add_peer`](crate::Transport::add_peer) it so that the next dial is
    /// accepted and answers reach it. Never reported for a removed sender.
    UnknownPeer {
        /// The sender's id.
        id: u64,
        /// Where it listens, as seen from here.
        addr: std::net::SocketAddr,
    },
    /// A snapshot transfer ended (give to `report_snapshot`).
    SnapshotStatus {
        /// The peer the snapshot was for.
        to: u64,
        /// How it ended.
        status: SnapshotStatus,
    },
}

/// The outcome of a snapshot transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// The peer verified and accepted the snapshot.
    Finished,
    /// The transfer failed.
    Failed,
}

/// Most unknown senders reported and not yet taken (their ids come off the
/// network, so their room is bounded here rather than by raft).
pub(crate) const UNKNOWN_PEERS_MAX: usize = 64;

/// Takes a batch of incoming messages on the reader's task, instead of
/// the queue, or gives it back: see
/// [`Transport::deliver_inline`](crate::Transport::deliver_inline).
pub type DeliverInline = Arc<dyn Fn(Vec<Message>) -> Result<(), Vec<Message>> + Send + Sync>;

/// Where events wait for the raft loop.
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    msgs_max: usize,
    bytes_max: usize,
    deliver: Mutex<Option<DeliverInline>>,
}

#[derive(Default)]
struct InboxState {
    /// Each message with its [`footprint`].
    msgs: VecDeque<(Message, usize)>,
    /// The sum of the queued messages' footprints.
    bytes: usize,
    removed_by: BTreeSet<u64>,
    /// The latest outcome per peer: either one takes raft's progress out of
    /// `StateSnapshot`, and the latest is the one that describes the peer.
    snapshots: BTreeMap<u64, SnapshotStatus>,
    unreachable: BTreeSet<u64>,
    /// The latest address per unknown sender (bounded by the ids that dial:
    /// each is one entry, replaced by its next dial).
    unknown: BTreeMap<u64, std::net::SocketAddr>,
    /// The receiver waiting for the next push, if it waits.
    waker: Option<Waker>,
    transport_gone: bool,
    receiver_gone: bool,
}

impl InboxState {
    /// Moves up to `limit` events into `out`, reports first; how many.
    fn take(&mut self, out: &mut Vec<Event>, limit: usize) -> usize {
        let mut n = 0;
        while n < limit {
            let Some(report) = self.take_report() else { break };
            out.push(report);
            n += 1;
        }
        let msgs = (limit - n).min(self.msgs.len());
        for (msg, size) in self.msgs.drain(..msgs) {
            self.bytes -= size;
            out.push(Event::Message(msg));
        }
        n + msgs
    }

    fn take_one(&mut self) -> Option<Event> {
        self.take_report().or_else(|| self.pop_message().map(Event::Message))
    }

    fn pop_message(&mut self) -> Option<Message> {
        let (msg, size) = self.msgs.pop_front()?;
        self.bytes -= size;
        Some(msg)
    }

    fn push_message(&mut self, msg: Message, size: usize) {
        self.bytes += size;
        self.msgs.push_back((msg, size));
    }

    fn take_report(&mut self) -> Option<Event> {
        if let Some(by) = self.removed_by.pop_first() {
            return Some(Event::Removed { by });
        }
        if let Some((to, status)) = self.snapshots.pop_first() {
            return Some(Event::SnapshotStatus { to, status });
        }
        if let Some((id, addr)) = self.unknown.pop_first() {
            return Some(Event::UnknownPeer { id, addr });
        }
        self.unreachable.pop_first().map(Event::Unreachable)
    }
}

impl Inbox {
    pub(crate) fn new(limits: &Limits) -> Arc<Inbox> {
        Arc::new(Inbox {
            state: Mutex::new(InboxState::default()),
            msgs_max: limits.incoming_msgs_max,
            bytes_max: limits.incoming_bytes_max,
            deliver: Mutex::new(None),
        })
    }

    pub(crate) fn set_deliver(&self, deliver: Option<DeliverInline>) {
        *self.deliver.lock().unwrap_or_else(|e| e.into_inner()) = deliver;
    }

    /// Hands `batch` to the delivery hook if there is one and the receiver
    /// waits with nothing in hand (its waker is registered only once it
    /// found the queue empty, and every push takes it), so that the batch
    /// comes after everything the receiver took. `true` if the hook took
    /// it; what it gives back stays in `batch`, for the queue.
    pub(crate) fn deliver_inline(
        &self,
        batch: &mut Vec<Message>,
        frame_bytes: usize,
        counters: &Counters,
    ) -> bool {
        let Some(deliver) = self.deliver.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return false;
        };
        {
            let state = self.lock();
            if state.waker.is_none() || state.receiver_gone {
                return false;
            }
        }
        let n = batch.len();
        match deliver(std::mem::take(batch)) {
            Ok(()) => {
                // Counted under the queue's lock, as queued messages are.
                let _state = self.lock();
                bump(&counters.msgs_received, n as u64);
                bump(&counters.bytes_received, frame_bytes as u64);
                true
            }
            Err(back) => {
                *batch = back;
                false
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues as many of `batch` (`frame_bytes` on the wire) as fit, in order,
    /// and drops the rest, leaving `batch` empty (a message too large for the
    /// byte bound still goes into an empty queue, or it could never be
    /// delivered); how many were dropped, or `None` once
    /// the receiver is gone. The peer's counters move under the same lock, so
    /// a reader of the stats finds in `Events` everything counted as received
    /// and not dropped, and vice versa.
    pub(crate) fn push_messages(
        &self,
        batch: &mut Vec<Message>,
        frame_bytes: usize,
        counters: &Counters,
    ) -> Option<usize> {
        let mut state = self.lock();
        if state.receiver_gone {
            return None;
        }
        let (mut n, mut bytes) = (0, state.bytes);
        for msg in batch.iter() {
            let size = footprint(msg);
            let empty = n == 0 && state.msgs.is_empty();
            if state.msgs.len() + n >= self.msgs_max || (bytes + size > self.bytes_max && !empty) {
                break;
            }
            bytes += size;
            n += 1;
        }
        for msg in batch.drain(..n) {
            let size = footprint(&msg);
            state.push_message(msg, size);
        }
        let dropped = batch.len();
        bump(&counters.msgs_received, (n + dropped) as u64);
        bump(&counters.bytes_received, frame_bytes as u64);
        bump(&counters.msgs_received_dropped, dropped as u64);
        let waker = state.waker.take();
        drop(state);
        batch.clear(); // Outside the lock: dropping messages frees memory.
        if let Some(waker) = waker {
            waker.wake();
        }
        Some(dropped)
    }

    /// Queues a verified snapshot even past the bound (at most one per
    /// snapshot connection): the sender has spent the transfer, and will be
    /// told the peer holds it. `false` once the receiver is gone.
    pub(crate) fn push_snapshot(&self, msg: Message) -> bool {
        let mut state = self.lock();
        if state.receiver_gone {
            return false;
        }
        let size = footprint(&msg);
        state.push_message(msg, size);
        notify(state);
        true
    }

    pub(crate) fn report_unreachable(&self, id: u64) {
        let mut state = self.lock();
        if state.unreachable.insert(id) {
            notify(state);
        }
    }

    pub(crate) fn report_snapshot(&self, to: u64, status: SnapshotStatus) {
        let mut state = self.lock();
        state.snapshots.insert(to, status);
        notify(state);
    }

    pub(crate) fn report_unknown_peer(&self, id: u64, addr: std::net::SocketAddr) {
        let mut state = self.lock();
        if state.unknown.len() >= UNKNOWN_PEERS_MAX && !state.unknown.contains_key(&id) {
            return;
        }
        if state.unknown.insert(id, addr) != Some(addr) {
            notify(state);
        }
    }

    pub(crate) fn report_removed(&self, by: u64) {
        let mut state = self.lock();
        if state.removed_by.insert(by) {
            notify(state);
        }
    }

    /// The transport is gone: the receiver gets what is queued, then `None`.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.transport_gone = true;
        notify(state);
    }

    /// Runs `take` on the queued events; if it finds nothing, registers
    /// `cx`'s waker for the next push (under the same lock, so no push is
    /// missed). `Ready(None)` once the transport is gone and nothing is left.
    fn poll_take<T>(
        &self,
        cx: &Context<'_>,
        take: impl FnOnce(&mut InboxState) -> Option<T>,
    ) -> Poll<Option<T>> {
        let mut state = self.lock();
        if let Some(got) = take(&mut state) {
            return Poll::Ready(Some(got));
        }
        if state.transport_gone {
            return Poll::Ready(None);
        }
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            state.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Wakes the waiting receiver, after releasing the lock.
fn notify(mut state: MutexGuard<'_, InboxState>) {
    let waker = state.waker.take();
    drop(state);
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// The receiving end of a transport's [`Event`]s: async or blocking, one at a
/// time or every queued one at once (the `_many` calls, one lock for the lot).
/// Reports come before messages queued with them.
pub struct Events {
    inbox: Arc<Inbox>,
}

impl Drop for Events {
    fn drop(&mut self) {
        self.inbox.lock().receiver_gone = true;
    }
}

impl Events {
    pub(crate) fn new(inbox: Arc<Inbox>) -> Events {
        Events { inbox }
    }

    /// The next event; `None` once the transport is gone and nothing is left.
    pub async fn recv(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.inbox.poll_take(cx, InboxState::take_one)).await
    }

    /// Waits for at least one event, then appends up to `limit` queued events
    /// to `out`; how many (0: the transport is gone, or `limit` is 0).
    pub async fn recv_many(&mut self, out: &mut Vec<Event>, limit: usize) -> usize {
        if limit == 0 {
            return 0;
        }
        let mut take = |state: &mut InboxState| Some(state.take(out, limit)).filter(|n| *n > 0);
        std::future::poll_fn(|cx| self.inbox.poll_take(cx, &mut take)).await.unwrap_or(0)
    }

    /// The next event, blocking the thread (never call from async code).
    pub fn blocking_recv(&mut self) -> Option<Event> {
        block_on(|cx| self.inbox.poll_take(cx, InboxState::take_one))
    }

    /// [`Events::recv_many`], blocking the thread (never call from async code).
    pub fn blocking_recv_many(&mut self, out: &mut Vec<Event>, limit: usize) -> usize {
        if limit == 0 {
            return 0;
        }
        block_on(|cx| self.inbox.poll_take(cx, |s| Some(s.take(out, limit)).filter(|n| *n > 0)))
            .unwrap_or(0)
    }

    /// An event if one is queued.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.inbox.lock().take_one()
    }

    /// Appends up to `limit` queued events to `out` without waiting; how many.
    pub fn try_recv_many(&mut self, out: &mut Vec<Event>, limit: usize) -> usize {
        self.inbox.lock().take(out, limit)
    }
}

/// Wakes a thread parked in [`block_on`].
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls until ready, parking the thread in between (a spurious unpark only
/// costs another poll). The first poll needs no waker of its own.
fn block_on<T>(mut poll: impl FnMut(&Context<'_>) -> Poll<T>) -> T {
    if let Poll::Ready(got) = poll(&Context::from_waker(Waker::noop())) {
        return got;
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(got) = poll(&cx) {
            return got;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel::raftpb::Entry;

    fn inbox(msgs_max: usize) -> Arc<Inbox> {
        Inbox::new(&Limits { incoming_msgs_max: msgs_max, ..Limits::default() })
    }

    fn push(inbox: &Inbox, batch: &mut Vec<Message>) -> Option<usize> {
        inbox.push_messages(batch, 0, &Counters::default())
    }

    fn msg(index: u64) -> Message {
        Message { from: 2, to: 1, index, ..Default::default() }
    }

    fn indexes(events: &[Event]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.index),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_full_queue_drops_new_messages_and_says_how_many() {
        let inbox = inbox(3);
        let mut events = Events::new(Arc::clone(&inbox));
        let mut batch = vec![msg(1), msg(2)];
        assert_eq!(push(&inbox, &mut batch), Some(0));
        let mut batch = vec![msg(3), msg(4), msg(5)];
        let counters = Counters::default();
        assert_eq!(inbox.push_messages(&mut batch, 99, &counters), Some(2));
        assert!(batch.is_empty());
        let stats = counters.read(2);
        assert_eq!((stats.msgs_received, stats.bytes_received), (3, 99));
        assert_eq!(stats.msgs_received_dropped, 2);
        let mut out = Vec::new();
        assert_eq!(events.try_recv_many(&mut out, 10), 3);
        assert_eq!(indexes(&out), [1, 2, 3]);
        // Room again once taken.
        assert_eq!(push(&inbox, &mut vec![msg(6)]), Some(0));
        assert_eq!(events.try_recv(), Some(Event::Message(msg(6))));
    }

    /// An append of three 1 KB entries.
    fn append(index: u64) -> Message {
        let entry = Entry { data: vec![7; 1000].into(), ..Default::default() };
        Message { entries: vec![entry; 3], ..msg(index) }
    }

    #[test]
    fn the_queue_is_bounded_by_the_memory_its_messages_hold() {
        let size = footprint(&append(1));
        assert!(size > 3000 && footprint(&msg(1)) < 200, "{size}");
        let limits = Limits { incoming_bytes_max: 2 * size + 1000, ..Limits::default() };
        let inbox = Inbox::new(&limits);
        let mut events = Events::new(Arc::clone(&inbox));
        let counters = Counters::default();
        let mut batch = vec![append(1), append(2), append(3), msg(4)];
        // In order: the third append does not fit, and nothing after it goes.
        assert_eq!(inbox.push_messages(&mut batch, 0, &counters), Some(2));
        assert_eq!(counters.read(2).msgs_received_dropped, 2);
        assert_eq!(inbox.lock().bytes, 2 * size);
        assert_eq!(indexes(&[events.try_recv().unwrap()]), [1]);
        assert_eq!(push(&inbox, &mut vec![append(5), msg(6)]), Some(0));
        let mut out = Vec::new();
        assert_eq!(events.try_recv_many(&mut out, 10), 3);
        assert_eq!(indexes(&out), [2, 5, 6]);
        assert_eq!(inbox.lock().bytes, 0);

        // A message larger than the whole bound still goes into an empty queue.
        let inbox = Inbox::new(&Limits { incoming_bytes_max: 100, ..Limits::default() });
        let mut events = Events::new(Arc::clone(&inbox));
        assert_eq!(push(&inbox, &mut vec![append(7), msg(8)]), Some(1));
        assert!(inbox.push_snapshot(append(9)), "a snapshot goes past the bound");
        assert_eq!(inbox.lock().bytes, 2 * size);
        let mut out = Vec::new();
        assert_eq!(events.try_recv_many(&mut out, 10), 2);
        assert_eq!(indexes(&out), [7, 9]);
        assert_eq!(push(&inbox, &mut vec![append(10)]), Some(0));
    }

    #[test]
    fn reports_are_coalesced_per_peer_come_first_and_are_never_dropped() {
        let inbox = inbox(1);
        let mut events = Events::new(Arc::clone(&inbox));
        assert_eq!(push(&inbox, &mut vec![msg(1), msg(2)]), Some(1));
        for _ in 0..1000 {
            inbox.report_unreachable(3);
        }
        inbox.report_snapshot(3, SnapshotStatus::Failed);
        inbox.report_snapshot(3, SnapshotStatus::Finished);
        inbox.report_snapshot(4, SnapshotStatus::Failed);
        inbox.report_removed(5);
        inbox.report_removed(5);
        let mut out = Vec::new();
        assert_eq!(events.try_recv_many(&mut out, 2), 2, "the limit holds");
        assert_eq!(events.try_recv_many(&mut out, 100), 3);
        assert_eq!(
            out,
            [
                Event::Removed { by: 5 },
                Event::SnapshotStatus { to: 3, status: SnapshotStatus::Finished },
                Event::SnapshotStatus { to: 4, status: SnapshotStatus::Failed },
                Event::Unreachable(3),
                Event::Message(msg(1)),
            ]
        );
        assert_eq!(events.try_recv(), None);
    }

    #[test]
    fn a_verified_snapshot_is_queued_past_the_bound() {
        let inbox = inbox(1);
        let mut events = Events::new(Arc::clone(&inbox));
        assert_eq!(push(&inbox, &mut vec![msg(1)]), Some(0));
        assert!(inbox.push_snapshot(msg(2)));
        let mut out = Vec::new();
        assert_eq!(events.try_recv_many(&mut out, 10), 2);
        assert_eq!(indexes(&out), [1, 2]);
    }

    #[test]
    fn close_hands_out_what_is_left_then_none() {
        let inbox = inbox(4);
        let mut events = Events::new(Arc::clone(&inbox));
        assert_eq!(push(&inbox, &mut vec![msg(1)]), Some(0));
        inbox.report_unreachable(2);
        inbox.close();
        let mut out = Vec::new();
        assert_eq!(events.blocking_recv_many(&mut out, 10), 2);
        assert_eq!(events.blocking_recv_many(&mut out, 10), 0);
        assert_eq!(events.blocking_recv(), None);
        assert_eq!(events.blocking_recv_many(&mut out, 0), 0);
    }

    #[test]
    fn pushes_stop_once_the_receiver_is_gone() {
        let inbox = inbox(4);
        drop(Events::new(Arc::clone(&inbox)));
        assert_eq!(push(&inbox, &mut vec![msg(1)]), None);
        assert!(!inbox.push_snapshot(msg(2)));
    }

    #[test]
    fn a_blocked_receiver_wakes_for_messages_and_for_reports() {
        let inbox = inbox(64);
        let mut events = Events::new(Arc::clone(&inbox));
        let receiver = std::thread::spawn(move || {
            let mut out = Vec::new();
            while indexes(&out).len() < 20 || !out.contains(&Event::Unreachable(7)) {
                assert!(events.blocking_recv_many(&mut out, 64) > 0);
            }
            out
        });
        for i in 1..=20 {
            assert_eq!(push(&inbox, &mut vec![msg(i)]), Some(0));
            if i == 10 {
                inbox.report_unreachable(7);
            }
        }
        let out = receiver.join().expect("receiver thread");
        assert_eq!(indexes(&out), (1..=20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn recv_many_waits_for_the_first_event_then_takes_all_queued() {
        let inbox = inbox(64);
        let mut events = Events::new(Arc::clone(&inbox));
        let producer = {
            let inbox = Arc::clone(&inbox);
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                assert_eq!(push(&inbox, &mut (1..=5).map(msg).collect()), Some(0));
            })
        };
        let mut out = Vec::new();
        assert_eq!(events.recv_many(&mut out, 64).await, 5);
        assert_eq!(indexes(&out), [1, 2, 3, 4, 5]);
        producer.await.expect("producer");
        inbox.close();
        assert_eq!(events.recv_many(&mut out, 64).await, 0);
        assert_eq!(events.recv().await, None);
    }
}
