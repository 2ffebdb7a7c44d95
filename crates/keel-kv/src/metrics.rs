//! The member's Prometheus metrics, served as text on `GET /metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every counter, gauge and histogram of one member. Cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Client writes proposed (puts, deletes, membership changes).
    pub proposals: Counter,
    /// Proposals refused or timed out.
    pub proposals_failed: Counter,
    /// Entries committed (handed to the apply thread).
    pub committed_entries: Counter,
    /// Linearizable reads served.
    pub linearizable_reads: Counter,
    /// Times the known leader changed.
    pub leader_changes: Counter,
    /// Snapshots created here.
    pub snapshots_created: Counter,
    /// Snapshots received and restored.
    pub snapshots_restored: Counter,
    /// The applied index.
    pub applied_index: Gauge,
    /// The commit index.
    pub commit_index: Gauge,
    /// The current term.
    pub term: Gauge,
    /// 1 on the leader.
    pub is_leader: Gauge,
    /// Keys held.
    pub keys: Gauge,
    /// Client connections open, TLS handshakes included.
    pub client_connections: Gauge,
    /// Time of one persist step (WAL write and fdatasync).
    pub fsync_seconds: Histogram,
    /// Time to apply one batch of committed entries.
    pub apply_seconds: Histogram,
}

fn seconds() -> Histogram {
    // 50 µs .. ~3.3 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

impl Metrics {
    /// Registers everything; `transport` reads the transport's counters at
    /// each scrape.
    pub fn new(transport: impl Fn() -> keel_transport::Stats + Send + Sync + 'static) -> Metrics {
        let mut r = Registry::with_prefix("keel");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            proposals: Counter::default(),
            proposals_failed: Counter::default(),
            committed_entries: Counter::default(),
            linearizable_reads: Counter::default(),
            leader_changes: Counter::default(),
            snapshots_created: Counter::default(),
            snapshots_restored: Counter::default(),
            applied_index: Gauge::default(),
            commit_index: Gauge::default(),
            term: Gauge::default(),
            is_leader: Gauge::default(),
            keys: Gauge::default(),
            client_connections: Gauge::default(),
            fsync_seconds: seconds(),
            apply_seconds: seconds(),
        };
        r.register("proposals", "Client writes proposed", m.proposals.clone());
        r.register(
            "proposals_failed",
            "Proposals refused or timed out",
            m.proposals_failed.clone(),
        );
        r.register("committed_entries", "Entries committed", m.committed_entries.clone());
        r.register("linearizable_reads", "ReadIndex reads served", m.linearizable_reads.clone());
        r.register("leader_changes", "Changes of the known leader", m.leader_changes.clone());
        r.register("snapshots_created", "Snapshots created", m.snapshots_created.clone());
        r.register("snapshots_restored", "Snapshots restored", m.snapshots_restored.clone());
        r.register("applied_index", "The applied index", m.applied_index.clone());
        r.register("commit_index", "The commit index", m.commit_index.clone());
        r.register("term", "The current term", m.term.clone());
        r.register("is_leader", "1 if this member leads", m.is_leader.clone());
        r.register("keys", "Keys held", m.keys.clone());
        r.register(
            "client_connections",
            "Client connections open, TLS handshakes included",
            m.client_connections.clone(),
        );
        r.register(
            "fsync_seconds",
            "Persist step (WAL write + fdatasync)",
            m.fsync_seconds.clone(),
        );
        r.register("apply_seconds", "Apply of one committed batch", m.apply_seconds.clone());
        r.register_collector(Box::new(TransportCollector(Box::new(transport))));
        Metrics { registry: Arc::new(r), ..m }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Observes a duration in a histogram.
    pub fn observe(h: &Histogram, d: Duration) {
        h.observe(d.as_secs_f64());
    }
}

type StatsFn = Box<dyn Fn() -> keel_transport::Stats + Send + Sync>;

struct TransportCollector(StatsFn);

impl std::fmt::Debug for TransportCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportCollector")
    }
}

impl Collector for TransportCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = (self.0)();
        type Field = fn(&keel_transport::PeerStats) -> u64;
        let per_peer: [(&str, &str, Field); 10] = [
            ("transport_msgs_sent", "Messages written to a peer", |p| p.msgs_sent),
            ("transport_bytes_sent", "Frame bytes written to a peer", |p| p.bytes_sent),
            ("transport_msgs_received", "Messages received from a peer", |p| p.msgs_received),
            ("transport_bytes_received", "Frame bytes received from a peer", |p| p.bytes_received),
            ("transport_msgs_dropped", "Messages dropped for a peer", |p| p.msgs_dropped),
            (
                "transport_msgs_received_dropped",
                "Messages from a peer dropped because raft's inbox was full",
                |p| p.msgs_received_dropped,
            ),
            ("transport_reconnects", "Reconnects to a peer", |p| p.reconnects),
            ("transport_snapshots_sent", "Snapshots a peer verified", |p| p.snapshots_sent),
            ("transport_snapshots_failed", "Snapshots to a peer that failed", |p| {
                p.snapshots_failed
            }),
            ("transport_snapshots_received", "Snapshots received from a peer", |p| {
                p.snapshots_received
            }),
        ];
        for (name, help, field) in per_peer {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for p in &stats.peers {
                let labels = [("peer", p.id.to_string())];
                ConstCounter::new(field(p)).encode(family.encode_family(&labels)?)?;
            }
        }
        let global = [
            (
                "transport_msgs_dropped_unknown_peer",
                "Messages dropped because their recipient is not a peer",
                stats.msgs_dropped_unknown_peer,
            ),
            (
                "transport_handshakes_refused",
                "Peer connections refused at the handshake",
                stats.handshakes_refused,
            ),
        ];
        for (name, help, value) in global {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
