//! Typed errors: everything that can go wrong on a connection, so that bad
//! input from the network ends as a log line and never as a panic.

use crate::wire::Verdict;

/// Why a connection (or a snapshot transfer) was dropped.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The first bytes are not a Keel handshake.
    #[error("bad magic {0:02x?}: not a keel transport peer")]
    BadMagic([u8; 4]),
    /// The handshake names a connection kind this version does not know.
    #[error("unknown connection kind {0}")]
    BadKind(u8),
    /// The reply to a handshake is not a known verdict.
    #[error("unknown handshake verdict {0}")]
    BadVerdict(u8),
    /// A length prefix above the configured maximum (checked before allocating).
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The configured maximum.
        max: u64,
    },
    /// A frame whose message would take more memory once decoded than the
    /// bound (`Limits::incoming_bytes_max`), found before decoding it.
    #[error("frame of {len} bytes would decode to {decoded} bytes; at most {max} allowed")]
    DecodedTooLarge {
        /// The frame's length.
        len: usize,
        /// The memory its message would hold.
        decoded: usize,
        /// The bound.
        max: usize,
    },
    /// The connection closed in the middle of a frame.
    #[error("connection closed inside a frame")]
    Truncated,
    /// A frame's bytes are not a raft message.
    #[error("frame does not decode as a raft message: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A decoded message that does not belong on this connection.
    #[error("message from {from} to {to} on a connection from {peer} to {local}")]
    Misaddressed {
        /// The message's sender.
        from: u64,
        /// The message's recipient.
        to: u64,
        /// The sender named in the handshake.
        peer: u64,
        /// This member.
        local: u64,
    },
    /// A message that carries storage-thread responses, which only a node's
    /// own storage messages have: no peer sends them, and they would escape
    /// the inbox's byte bound.
    #[error("a message from a peer carries {0} local responses")]
    LocalResponses(usize),
    /// A snapshot transfer outlived its deadline (`Limits::snapshot_rate_min`).
    #[error("snapshot of {bytes} bytes not acknowledged within {secs} s")]
    SnapshotTimeout {
        /// The snapshot's data bytes.
        bytes: u64,
        /// The deadline.
        secs: u64,
    },
    /// The snapshot connection carried something other than a `MsgSnap`.
    #[error("snapshot connection carried message type {0}, not a MsgSnap with a snapshot")]
    NotASnapshot(i32),
    /// The other side refused the handshake.
    #[error("handshake refused: {0}")]
    Refused(Verdict),
    /// The handshake did not complete in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// Connecting to the peer did not complete in time.
    #[error("dial timed out")]
    DialTimeout,
    /// A snapshot chunk whose checksum does not match its bytes.
    #[error("snapshot chunk checksum mismatch: sent {sent:08x}, computed {computed:08x}")]
    Checksum {
        /// The checksum the sender wrote.
        sent: u32,
        /// The checksum of the bytes received.
        computed: u32,
    },
    /// A snapshot above the configured maximum.
    #[error("snapshot of {len} bytes exceeds the maximum of {max}")]
    SnapshotTooLarge {
        /// The announced length.
        len: u64,
        /// The configured maximum.
        max: u64,
    },
    /// A second snapshot from a sender while one of its is being received.
    #[error("a snapshot from member {0} is already being received")]
    SnapshotInProgress(u64),
    /// A snapshot that does not fit beside those being received.
    #[error(
        "snapshot of {len} bytes does not fit beside the {receiving} bytes being received \
         (at most {max})"
    )]
    SnapshotBudget {
        /// The announced length.
        len: u64,
        /// What the other incoming snapshots announced.
        receiving: u64,
        /// `Limits::snapshot_receive_bytes_max`.
        max: u64,
    },
    /// A snapshot chunk longer than the chunk maximum or than what remains.
    #[error("snapshot chunk of {len} bytes; at most {max} allowed here")]
    BadChunk {
        /// The announced chunk length.
        len: u64,
        /// The largest length allowed at this point.
        max: u64,
    },
    /// The TLS layer failed.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// A TLS peer's certificate does not name the member its handshake
    /// claims to be (`TlsConfig::with_peer_identity`).
    #[error("certificate does not identify member {claimed}: {source}")]
    PeerIdentity {
        /// The sender the handshake names.
        claimed: u64,
        /// What is wrong with the certificate.
        source: IdentityError,
    },
}

/// Why a peer's certificate does not identify the member it claims to be.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The connection carried no client certificate.
    #[error("no client certificate")]
    NoCertificate,
    /// The claimed member has no known address to compare with.
    #[error("the claimed member has no known address")]
    NoAddress,
    /// The certificate could not be parsed.
    #[error("unparsable certificate: {0}")]
    Unparsable(rustls::Error),
    /// The certificate's names do not cover the required one.
    #[error("its subject alternative names do not cover {name}: {source}")]
    Mismatch {
        /// The IP address or DNS name the certificate had to name.
        name: String,
        /// What the verifier said.
        source: rustls::Error,
    },
}

/// Why a transport could not start, or TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid transport config: {0}")]
    Config(&'static str),
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Building the runtime failed.
    #[error("cannot build a tokio runtime: {0}")]
    Runtime(std::io::Error),
    /// `start` was called outside a tokio runtime.
    #[error("Transport::start needs a tokio runtime; use start_with_runtime from a plain thread")]
    NoRuntime,
    /// TLS material is unreadable or invalid.
    #[error("tls: {0}")]
    Tls(String),
}
