//! The event trace: one status line per event. A run keeps the last lines in
//! a ring (printed when it fails); a replay (`keel-sim --seed S`) streams
//! every line to a sink.
//!
//! Records are small values formatted only when shown, so that keeping the
//! ring costs little in a soak.

use std::collections::VecDeque;
use std::fmt;

use keel::StateType;
use keel::describe::message_type_name;
use keel::raftpb::{HardState, Message};

/// The interesting fields of a network message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgSummary {
    /// `MessageType` as i32.
    pub msg_type: i32,
    /// Sender.
    pub from: u64,
    /// Recipient.
    pub to: u64,
    /// Sender's term.
    pub term: u64,
    /// `log_term` field.
    pub log_term: u64,
    /// `index` field.
    pub index: u64,
    /// `commit` field.
    pub commit: u64,
    /// Number of entries carried.
    pub entries: usize,
    /// `reject` field.
    pub reject: bool,
    /// Snapshot index carried (0: none).
    pub snapshot: u64,
}

impl MsgSummary {
    /// Summarizes `m`.
    pub fn of(m: &Message) -> MsgSummary {
        MsgSummary {
            msg_type: m.msg_type,
            from: m.from,
            to: m.to,
            term: m.term,
            log_term: m.log_term,
            index: m.index,
            commit: m.commit,
            entries: m.entries.len(),
            reject: m.reject,
            snapshot: m.snapshot.as_ref().map_or(0, |s| s.metadata.index),
        }
    }
}

impl fmt::Display for MsgSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}->{} {} term={} logterm={} index={} commit={}",
            self.from,
            self.to,
            message_type_name(self.msg_type),
            self.term,
            self.log_term,
            self.index,
            self.commit
        )?;
        if self.entries > 0 {
            write!(f, " entries={}", self.entries)?;
        }
        if self.reject {
            f.write_str(" rejected")?;
        }
        if self.snapshot > 0 {
            write!(f, " snapshot={}", self.snapshot)?;
        }
        Ok(())
    }
}

/// What happened in one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEvent {
    /// A node ticked.
    Tick,
    /// A message was stepped into its recipient.
    Deliver(MsgSummary),
    /// A message was lost (why).
    Lost(MsgSummary, &'static str),
    /// A node handed out a `Ready`.
    Ready {
        /// Entries to persist.
        entries: usize,
        /// Committed entries to apply.
        committed: usize,
        /// Messages (including storage-thread messages).
        messages: usize,
        /// Hard state, if changed.
        hard_state: Option<HardState>,
        /// Snapshot index (0: none).
        snapshot: u64,
        /// Read states.
        read_states: usize,
    },
    /// A write reached the disk (synchronous `Ready` or append thread).
    Persisted {
        /// Entries written.
        entries: usize,
        /// Snapshot index written (0: none).
        snapshot: u64,
    },
    /// Committed entries were applied to the state machine.
    Applied {
        /// First index applied.
        first: u64,
        /// Last index applied.
        last: u64,
    },
    /// Anything else, already formatted (rare events: clients, faults,
    /// membership, snapshots, phases).
    Note(String),
}

/// A node's state after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLine {
    /// Role.
    pub role: StateType,
    /// Term.
    pub term: u64,
    /// Vote.
    pub vote: u64,
    /// Known leader.
    pub lead: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index (core's).
    pub applied: u64,
    /// Last log index (as far as handed out).
    pub last: u64,
}

/// One line of the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRecord {
    /// Simulated time in microseconds.
    pub time_us: u64,
    /// Event number.
    pub step: u64,
    /// The node the event happened at (0: none).
    pub node: u64,
    /// What happened.
    pub event: TraceEvent,
    /// The node's state afterwards, if it is up.
    pub status: Option<NodeLine>,
}

fn role_name(role: StateType) -> &'static str {
    match role {
        StateType::Follower => "follower",
        StateType::Candidate => "candidate",
        StateType::Leader => "LEADER",
        StateType::PreCandidate => "pre-candidate",
    }
}

impl fmt::Display for TraceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>10.3}ms #{:<6} ", self.time_us as f64 / 1000.0, self.step)?;
        if self.node != 0 {
            write!(f, "n{} ", self.node)?;
        }
        match &self.event {
            TraceEvent::Tick => f.write_str("tick")?,
            TraceEvent::Deliver(m) => write!(f, "recv {m}")?,
            TraceEvent::Lost(m, why) => write!(f, "lost ({why}) {m}")?,
            TraceEvent::Ready {
                entries,
                committed,
                messages,
                hard_state,
                snapshot,
                read_states,
            } => {
                write!(f, "ready entries={entries} committed={committed} msgs={messages}")?;
                if let Some(hs) = hard_state {
                    write!(f, " hs=(term {} vote {} commit {})", hs.term, hs.vote, hs.commit)?;
                }
                if *snapshot > 0 {
                    write!(f, " snapshot={snapshot}")?;
                }
                if *read_states > 0 {
                    write!(f, " read_states={read_states}")?;
                }
            }
            TraceEvent::Persisted { entries, snapshot } => {
                write!(f, "persisted entries={entries}")?;
                if *snapshot > 0 {
                    write!(f, " snapshot={snapshot}")?;
                }
            }
            TraceEvent::Applied { first, last } => write!(f, "applied {first}..={last}")?,
            TraceEvent::Note(s) => f.write_str(s)?,
        }
        if let Some(s) = &self.status {
            write!(
                f,
                "  | {} term={} vote={} lead={} commit={} applied={} last={}",
                role_name(s.role),
                s.term,
                s.vote,
                s.lead,
                s.commit,
                s.applied,
                s.last
            )?;
        }
        Ok(())
    }
}

/// Where streamed trace lines go.
pub type TraceSink = Box<dyn FnMut(&TraceRecord)>;

/// The trace of a run.
pub struct Trace {
    ring: VecDeque<TraceRecord>,
    capacity: usize,
    sink: Option<TraceSink>,
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace").field("records", &self.ring.len()).finish_non_exhaustive()
    }
}

impl Trace {
    /// Keeps the last `capacity` records; streams every record to `sink`.
    pub fn new(capacity: usize, sink: Option<TraceSink>) -> Trace {
        Trace { ring: VecDeque::with_capacity(capacity), capacity, sink }
    }

    /// Whether every record is streamed (then callers may afford detail).
    pub fn is_streaming(&self) -> bool {
        self.sink.is_some()
    }

    /// Adds a record.
    pub fn push(&mut self, record: TraceRecord) {
        if let Some(sink) = &mut self.sink {
            sink(&record);
        }
        if self.capacity == 0 {
            return;
        }
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(record);
    }

    /// The last records, oldest first.
    pub fn tail(&self) -> Vec<String> {
        self.ring.iter().map(ToString::to_string).collect()
    }
}
