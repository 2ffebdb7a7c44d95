//! `kv-load`: a closed-loop HTTP load generator for keel-kv and for etcd's v3
//! JSON gateway, so that both systems run under the same tool.
//!
//! Each of `--clients` clients owns one keep-alive HTTP/1.1 connection and has
//! exactly one request in flight; a new request starts when the previous one
//! answers. Latencies of the requests that complete inside the measured window
//! (after `--warmup`) go into an hdrhistogram; the tool prints ok requests per
//! second, p50/p90/p99/max and errors by kind (`--json` for one line a script
//! can read). `--probe` instead measures the machine's floor: fdatasync latency
//! and a loopback TCP round trip. `bench/kv-vs-etcd.sh` drives it; see
//! `docs/benchmarks.md`.

#![allow(clippy::print_stdout, reason = "the tool prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a load generator measures wall-clock latency")]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest response body read (etcd's range answers carry the value, base64).
const MAX_BODY: usize = 4 << 20;
/// Pause before reconnecting after a failed connect, so a dead endpoint is
/// not hammered in a hot loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);
/// Histogram range: 1 µs to 60 s, 3 significant digits.
const HIST_MAX_US: u64 = 60_000_000;

/// Which server's API to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    /// keel-kv: `PUT /kv/{key}` with the raw value, `GET /kv/{key}`.
    Keel,
    /// etcd's v3 JSON gateway: `POST /v3/kv/put`, `POST /v3/kv/range`.
    Etcd,
}

/// What each request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Op {
    /// Write `--value-size` bytes to a random key.
    Put,
    /// Read a random key (a missing key counts as ok, reported apart).
    Get,
}

/// Closed-loop HTTP load against keel-kv or etcd (one request in flight per client).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Server API to speak.
    #[arg(long, value_enum, default_value_t = Target::Keel)]
    target: Target,
    /// Comma-separated base URLs (http://host:port); clients are spread over
    /// them round-robin.
    #[arg(long, value_delimiter = ',', required_unless_present = "probe")]
    endpoints: Vec<String>,
    /// Concurrent clients, each with one connection and one request in flight.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Measured time, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured time before it, in seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Size of the key space (keys `key-0000000000` ...).
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Bytes per value written.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Request kind.
    #[arg(long, value_enum, default_value_t = Op::Put)]
    op: Op,
    /// A request that takes longer fails as `timeout` (and its connection is
    /// replaced), in seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Print one JSON line instead of the text summary.
    #[arg(long)]
    json: bool,
    /// Measure fdatasync latency and loopback TCP round trip instead of
    /// loading a server.
    #[arg(long)]
    probe: bool,
    /// Directory for --probe's scratch files (defaults to the system temp dir);
    /// use the disk the servers write to.
    #[arg(long)]
    probe_dir: Option<PathBuf>,
}

/// Why kv-load could not run.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error("bad endpoint {0:?}: {1}")]
    Endpoint(String, &'static str),
    #[error("{0} must be positive and finite")]
    Seconds(&'static str),
    #[error("--clients and --keys must be at least 1")]
    Zero,
    #[error("probe: {0}: {1}")]
    Probe(String, #[source] io::Error),
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] io::Error),
}

/// A server's address and the path prefix requests go under.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Endpoint {
    /// `host:port`, for connecting and for the Host header.
    authority: String,
    /// Path prefix without a trailing slash (usually empty).
    prefix: String,
}

impl Endpoint {
    /// Parses `http://host:port[/prefix]` (the scheme may be left out).
    fn parse(text: &str) -> Result<Self, LoadError> {
        let bad = |why| LoadError::Endpoint(text.to_owned(), why);
        let full = if text.contains("://") { text.to_owned() } else { format!("http://{text}") };
        let uri: Uri = full.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// is supported"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.port_u16().is_none() {
            return Err(bad("no port"));
        }
        if uri.query().is_some() {
            return Err(bad("a query is not allowed"));
        }
        Ok(Endpoint {
            authority: authority.as_str().to_owned(),
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// Builds one request of the workload; the value body is built once per client.
#[derive(Clone, Debug)]
struct RequestMaker {
    target: Target,
    op: Op,
    endpoint: Endpoint,
    /// Raw value (keel) or its base64 form (etcd).
    value: Bytes,
}

impl RequestMaker {
    fn new(target: Target, op: Op, endpoint: Endpoint, value_size: usize) -> Self {
        // Printable, not all one byte, the same for every client and target.
        let raw: Vec<u8> = (0..value_size).map(|i| b'a' + (i % 26) as u8).collect();
        let value = match target {
            Target::Keel => Bytes::from(raw),
            Target::Etcd => Bytes::from(BASE64.encode(raw)),
        };
        RequestMaker { target, op, endpoint, value }
    }

    fn key(index: u64) -> String {
        format!("key-{index:010}")
    }

    fn build(&self, index: u64) -> Request<Full<Bytes>> {
        let key = Self::key(index);
        let prefix = &self.endpoint.prefix;
        let (method, path, body) = match (self.target, self.op) {
            (Target::Keel, Op::Put) => {
                (Method::PUT, format!("{prefix}/kv/{key}"), self.value.clone())
            }
            (Target::Keel, Op::Get) => (Method::GET, format!("{prefix}/kv/{key}"), Bytes::new()),
            (Target::Etcd, op) => {
                let key = BASE64.encode(key);
                let (path, body) = match op {
                    Op::Put => {
                        // The base64 alphabet needs no JSON escaping.
                        let value = String::from_utf8_lossy(&self.value);
                        ("put", format!(r#"{{"key":"{key}","value":"{value}"}}"#))
                    }
                    Op::Get => ("range", format!(r#"{{"key":"{key}"}}"#)),
                };
                (Method::POST, format!("{prefix}/v3/kv/{path}"), Bytes::from(body))
            }
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        // Key, prefix and authority come from validated parts; a URI that
        // still fails to parse leaves "/" and the server answers an error.
        *request.uri_mut() = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
        let headers = request.headers_mut();
        if let Ok(host) = header::HeaderValue::from_str(&self.endpoint.authority) {
            headers.insert(header::HOST, host);
        }
        if self.target == Target::Etcd {
            headers
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        }
        request
    }

    /// Whether a status means the operation succeeded; `Some(true)` marks a
    /// keel read of a missing key.
    fn classify(&self, status: StatusCode) -> Option<bool> {
        match (self.target, self.op, status) {
            (_, _, StatusCode::OK) => Some(false),
            (Target::Keel, Op::Put, StatusCode::NO_CONTENT) => Some(false),
            (Target::Keel, Op::Get, StatusCode::NOT_FOUND) => Some(true),
            _ => None,
        }
    }
}

/// SplitMix64: a tiny seeded generator for key choice (no crate needed).
#[derive(Debug)]
struct KeyRng(u64);

impl KeyRng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % below
    }
}

/// What one client (or, merged, the whole run) saw in the measured window.
#[derive(Debug)]
struct Tally {
    latency_us: Histogram<u64>,
    ok: u64,
    not_found: u64,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            latency_us: Histogram::new_with_bounds(1, HIST_MAX_US, 3)
                .expect("constant bounds inside hdrhistogram's range"),
            ok: 0,
            not_found: 0,
            errors: BTreeMap::new(),
        }
    }

    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        self.ok += other.ok;
        self.not_found += other.not_found;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }
}

/// The figures printed for a run.
#[derive(Debug, PartialEq)]
struct Summary {
    target: Target,
    op: Op,
    clients: usize,
    seconds: f64,
    ok: u64,
    not_found: u64,
    ops_per_s: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: BTreeMap<String, u64>,
}

impl Summary {
    fn new(args: &Args, tally: Tally) -> Self {
        let h = &tally.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let (p50, p90, p99, max) = if h.is_empty() {
            (0, 0, 0, 0)
        } else {
            (
                h.value_at_quantile(0.50),
                h.value_at_quantile(0.90),
                h.value_at_quantile(0.99),
                h.max(),
            )
        };
        Summary {
            target: args.target,
            op: args.op,
            clients: args.clients,
            seconds: args.duration,
            ok: tally.ok,
            not_found: tally.not_found,
            ops_per_s: tally.ok as f64 / args.duration,
            p50_ms: ms(p50),
            p90_ms: ms(p90),
            p99_ms: ms(p99),
            max_ms: ms(max),
            errors: tally.errors,
        }
    }

    fn text(&self) -> String {
        let target = match self.target {
            Target::Keel => "keel",
            Target::Etcd => "etcd",
        };
        let rate = match self.op {
            Op::Put => "writes/s",
            Op::Get => "reads/s",
        };
        let mut out = format!(
            "{target} {clients} clients {seconds:.1} s: {ok} ok, {ops:.0} {rate}, \
             p50 {p50:.3} ms, p90 {p90:.3} ms, p99 {p99:.3} ms, max {max:.3} ms",
            clients = self.clients,
            seconds = self.seconds,
            ok = self.ok,
            ops = self.ops_per_s,
            p50 = self.p50_ms,
            p90 = self.p90_ms,
            p99 = self.p99_ms,
            max = self.max_ms,
        );
        if self.op == Op::Get {
            out += &format!(", {} not found", self.not_found);
        }
        if self.errors.is_empty() {
            out += ", no errors";
        } else {
            let kinds: Vec<String> = self.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            out += &format!(", errors: {}", kinds.join(", "));
        }
        out
    }

    fn json(&self) -> String {
        serde_json::json!({
            "target": match self.target { Target::Keel => "keel", Target::Etcd => "etcd" },
            "op": match self.op { Op::Put => "put", Op::Get => "get" },
            "clients": self.clients,
            "seconds": self.seconds,
            "ok": self.ok,
            "not_found": self.not_found,
            "ops_per_s": round3(self.ops_per_s),
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "errors": self.errors,
        })
        .to_string()
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The shared clock marks of a run.
#[derive(Clone, Copy, Debug)]
struct Window {
    measure_from: Instant,
    measure_until: Instant,
    timeout: Duration,
}

/// One closed-loop client: connect, send, wait, repeat until the window ends.
async fn client(maker: RequestMaker, keys: u64, seed: u64, window: Window) -> Tally {
    let mut tally = Tally::new();
    let mut rng = KeyRng(seed);
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        let started = Instant::now();
        if started >= window.measure_until {
            return tally;
        }
        let sender = match conn.as_mut() {
            Some(sender) => sender,
            None => match connect(&maker.endpoint.authority).await {
                Ok(sender) => conn.insert(sender),
                Err(kind) => {
                    if Instant::now() >= window.measure_from {
                        tally.error(kind);
                    }
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            },
        };
        let request = maker.build(rng.next(keys));
        let outcome = tokio::time::timeout(window.timeout, exchange(sender, request)).await;
        let done = Instant::now();
        let counted = done >= window.measure_from && done <= window.measure_until;
        let result = match outcome {
            Ok(result) => result,
            Err(_) => Err("timeout".to_owned()),
        };
        match result.map(|status| (status, maker.classify(status))) {
            Ok((_, Some(missing))) => {
                if counted {
                    let us = u64::try_from((done - started).as_micros()).unwrap_or(u64::MAX);
                    tally.latency_us.saturating_record(us.clamp(1, HIST_MAX_US));
                    tally.ok += 1;
                    tally.not_found += u64::from(missing);
                }
            }
            Ok((status, None)) => {
                if counted {
                    tally.error(format!("status {}", status.as_u16()));
                }
            }
            Err(kind) => {
                // The connection's state is unknown: start a fresh one.
                conn = None;
                if counted {
                    tally.error(kind);
                }
            }
        }
    }
}

/// Opens one keep-alive HTTP/1.1 connection; the error is its kind's name.
async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream =
        tokio::net::TcpStream::connect(authority).await.map_err(|_| "connect".to_owned())?;
    stream.set_nodelay(true).map_err(|_| "connect".to_owned())?;
    let (sender, connection) =
        http1::handshake(TokioIo::new(stream)).await.map_err(|_| "handshake".to_owned())?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the peer closes; the client sees
        // the latter as an error on its next request.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole answer (bounded), so the connection
/// can carry the next one.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<StatusCode, String> {
    sender.ready().await.map_err(|_| "closed".to_owned())?;
    let response = sender.send_request(request).await.map_err(|e| {
        if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
            "closed".to_owned()
        } else {
            "http".to_owned()
        }
    })?;
    let status = response.status();
    Limited::new(response.into_body(), MAX_BODY).collect().await.map_err(|_| "body".to_owned())?;
    Ok(status)
}

fn seconds(value: f64, name: &'static str) -> Result<Duration, LoadError> {
    if value.is_finite() && value > 0.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(LoadError::Seconds(name))
    }
}

fn run_load(args: &Args) -> Result<Summary, LoadError> {
    if args.clients == 0 || args.keys == 0 {
        return Err(LoadError::Zero);
    }
    let duration = seconds(args.duration, "--duration")?;
    let warmup =
        if args.warmup == 0.0 { Duration::ZERO } else { seconds(args.warmup, "--warmup")? };
    let timeout = seconds(args.timeout, "--timeout")?;
    let endpoints =
        args.endpoints.iter().map(|e| Endpoint::parse(e)).collect::<Result<Vec<_>, _>>()?;
    if endpoints.is_empty() {
        return Err(LoadError::Endpoint(String::new(), "no endpoints given"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(LoadError::Runtime)?;
    let tally = runtime.block_on(async {
        let start = Instant::now();
        let window = Window {
            measure_from: start + warmup,
            measure_until: start + warmup + duration,
            timeout,
        };
        let tasks: Vec<_> = (0..args.clients)
            .map(|i| {
                let endpoint = endpoints[i % endpoints.len()].clone();
                let maker = RequestMaker::new(args.target, args.op, endpoint, args.value_size);
                tokio::spawn(client(maker, args.keys, i as u64 + 1, window))
            })
            .collect();
        let mut total = Tally::new();
        for task in tasks {
            match task.await {
                Ok(tally) => total.merge(tally),
                Err(_) => total.error("client task failed"),
            }
        }
        total
    });
    Ok(Summary::new(args, tally))
}

/// The machine's floor for one replicated write.
#[derive(Debug)]
struct Probe {
    /// fdatasync after a small write into a preallocated (set_len) file, as
    /// keel-wal and etcd's WAL write their segments.
    fdatasync_prealloc: Spread,
    /// fdatasync after appending to a growing file.
    fdatasync_append: Spread,
    /// TCP round trip of a 64-byte message over 127.0.0.1.
    loopback_rtt: Spread,
}

/// p10, p50 and p90 of some samples, in milliseconds: a shared virtual disk's
/// fdatasync can be far from one value.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Spread {
    p10: f64,
    p50: f64,
    p90: f64,
}

impl Spread {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: usize| {
            samples.get(samples.len() * q / 100).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        Spread { p10: at(10), p50: at(50), p90: at(90) }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3}/{:.3}/{:.3} ms", self.p10, self.p50, self.p90)
    }
}

impl Probe {
    /// Two fdatasyncs (leader and a follower) plus two loopback round trips
    /// (client-leader and leader-follower), from the medians: the issue's
    /// single-client floor.
    fn floor_ms(&self) -> f64 {
        2.0 * self.fdatasync_prealloc.p50 + 2.0 * self.loopback_rtt.p50
    }

    /// The same from the p10s: the floor of the disk's fast mode, when a
    /// shared disk makes the median fdatasync wait for others' journal commits.
    fn fast_floor_ms(&self) -> f64 {
        2.0 * self.fdatasync_prealloc.p10 + 2.0 * self.loopback_rtt.p10
    }

    fn text(&self) -> String {
        format!(
            "p10/p50/p90: fdatasync {} (preallocated file), {} (append); loopback RTT {}; \
             floor 2 fdatasync + 2 RTT (p50) = {:.3} ms, 1.5x = {:.3} ms \
             (from the p10s: {:.3} ms, 1.5x = {:.3} ms)",
            self.fdatasync_prealloc,
            self.fdatasync_append,
            self.loopback_rtt,
            self.floor_ms(),
            1.5 * self.floor_ms(),
            self.fast_floor_ms(),
            1.5 * self.fast_floor_ms()
        )
    }

    fn json(&self) -> String {
        let spread = |s: Spread| serde_json::json!({"p10": s.p10, "p50": s.p50, "p90": s.p90});
        serde_json::json!({
            "fdatasync_prealloc_ms": spread(self.fdatasync_prealloc),
            "fdatasync_append_ms": spread(self.fdatasync_append),
            "loopback_rtt_ms": spread(self.loopback_rtt),
            "floor_ms": round3(self.floor_ms()),
            "fast_floor_ms": round3(self.fast_floor_ms()),
        })
        .to_string()
    }
}

const PROBE_ROUNDS: usize = 200;
const PROBE_RTT_ROUNDS: usize = 5000;
const PROBE_WRITE: usize = 512;

fn probe_fdatasync(path: &Path, preallocate: bool) -> io::Result<Spread> {
    let file = File::options().create(true).truncate(true).read(true).write(true).open(path)?;
    if preallocate {
        file.set_len((PROBE_ROUNDS * PROBE_WRITE) as u64 * 2)?;
        file.sync_all()?;
    }
    let block = [0x5au8; PROBE_WRITE];
    let mut samples = Vec::with_capacity(PROBE_ROUNDS);
    for i in 0..PROBE_ROUNDS {
        let t = Instant::now();
        file.write_all_at(&block, (i * PROBE_WRITE) as u64)?;
        file.sync_data()?;
        samples.push(t.elapsed());
    }
    drop(file);
    std::fs::remove_file(path)?;
    Ok(Spread::of(samples))
}

fn probe_rtt() -> io::Result<Spread> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> io::Result<()> {
        let (mut peer, _) = listener.accept()?;
        peer.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        for _ in 0..PROBE_RTT_ROUNDS {
            peer.read_exact(&mut buf)?;
            peer.write_all(&buf)?;
        }
        Ok(())
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut buf = [7u8; 64];
    let mut samples = Vec::with_capacity(PROBE_RTT_ROUNDS);
    for _ in 0..PROBE_RTT_ROUNDS {
        let t = Instant::now();
        stream.write_all(&buf)?;
        stream.read_exact(&mut buf)?;
        samples.push(t.elapsed());
    }
    echo.join().map_err(|_| io::Error::other("echo thread panicked"))??;
    Ok(Spread::of(samples))
}

fn run_probe(args: &Args) -> Result<Probe, LoadError> {
    let dir = args.probe_dir.clone().unwrap_or_else(std::env::temp_dir);
    let file = |name: &str| dir.join(format!("kv-load-probe-{}-{name}", std::process::id()));
    let prealloc = file("prealloc");
    let append = file("append");
    let probe_err = |p: &Path| {
        let p = p.display().to_string();
        move |e| LoadError::Probe(p, e)
    };
    Ok(Probe {
        fdatasync_prealloc: probe_fdatasync(&prealloc, true).map_err(probe_err(&prealloc))?,
        fdatasync_append: probe_fdatasync(&append, false).map_err(probe_err(&append))?,
        loopback_rtt: probe_rtt().map_err(|e| LoadError::Probe("loopback".to_owned(), e))?,
    })
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let printed = if args.probe {
        run_probe(&args).map(|p| if args.json { p.json() } else { p.text() })
    } else {
        run_load(&args).map(|s| if args.json { s.json() } else { s.text() })
    };
    match printed {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kv-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_or_without_scheme() {
        let e = Endpoint::parse("http://127.0.0.1:2379").unwrap();
        assert_eq!(e.authority, "127.0.0.1:2379");
        assert_eq!(e.prefix, "");
        let e = Endpoint::parse("localhost:80/base/").unwrap();
        assert_eq!((e.authority.as_str(), e.prefix.as_str()), ("localhost:80", "/base"));
        assert!(Endpoint::parse("https://127.0.0.1:1").is_err());
        assert!(Endpoint::parse("http://127.0.0.1").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }

    #[test]
    fn cli_takes_a_comma_separated_endpoint_list() {
        let args = Args::try_parse_from([
            "kv-load",
            "--target",
            "etcd",
            "--endpoints",
            "http://a:1,http://b:2",
            "--clients",
            "8",
        ])
        .unwrap();
        assert_eq!(args.endpoints, ["http://a:1", "http://b:2"]);
        assert_eq!((args.target, args.clients, args.value_size), (Target::Etcd, 8, 256));
        assert!(Args::try_parse_from(["kv-load"]).is_err(), "endpoints are required");
        assert!(Args::try_parse_from(["kv-load", "--probe"]).is_ok());
    }

    #[tokio::test]
    async fn requests_match_each_api() {
        let ep = Endpoint::parse("http://h:9").unwrap();
        let keel = RequestMaker::new(Target::Keel, Op::Put, ep.clone(), 4).build(7);
        assert_eq!(keel.method(), Method::PUT);
        assert_eq!(keel.uri(), "/kv/key-0000000007");
        assert_eq!(keel.headers()[header::HOST], "h:9");
        let body = keel.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"abcd");

        let etcd = RequestMaker::new(Target::Etcd, Op::Put, ep.clone(), 4).build(7);
        assert_eq!((etcd.method(), etcd.uri().path()), (&Method::POST, "/v3/kv/put"));
        let body = etcd.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["key"], BASE64.encode("key-0000000007"));
        assert_eq!(json["value"], BASE64.encode("abcd"));

        let range = RequestMaker::new(Target::Etcd, Op::Get, ep, 4).build(1);
        assert_eq!(range.uri().path(), "/v3/kv/range");
    }

    #[test]
    fn statuses_classify_per_api() {
        let ep = Endpoint::parse("h:1").unwrap();
        let put = RequestMaker::new(Target::Keel, Op::Put, ep.clone(), 1);
        assert_eq!(put.classify(StatusCode::NO_CONTENT), Some(false));
        assert_eq!(put.classify(StatusCode::SERVICE_UNAVAILABLE), None);
        let get = RequestMaker::new(Target::Keel, Op::Get, ep.clone(), 1);
        assert_eq!(get.classify(StatusCode::NOT_FOUND), Some(true));
        let etcd = RequestMaker::new(Target::Etcd, Op::Put, ep, 1);
        assert_eq!(etcd.classify(StatusCode::NO_CONTENT), None);
    }

    #[test]
    fn summary_reports_rate_percentiles_and_errors() {
        let args = Args::try_parse_from([
            "kv-load",
            "--endpoints",
            "h:1",
            "--clients",
            "2",
            "--duration",
            "2",
        ])
        .unwrap();
        let mut tally = Tally::new();
        for us in [1000, 2000, 3000, 4000] {
            tally.latency_us.record(us).unwrap();
            tally.ok += 1;
        }
        tally.error("status 503");
        tally.error("status 503");
        let mut other = Tally::new();
        other.error("timeout");
        tally.merge(other);
        let s = Summary::new(&args, tally);
        assert_eq!(s.ops_per_s, 2.0);
        assert!((s.p50_ms - 2.0).abs() < 0.01 && (s.max_ms - 4.0).abs() < 0.01, "{s:?}");
        let text = s.text();
        assert!(text.starts_with("keel 2 clients 2.0 s: 4 ok, 2 writes/s, p50 2.000 ms"), "{text}");
        assert!(text.ends_with("errors: status 503: 2, timeout: 1"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&s.json()).unwrap();
        assert_eq!(json["ops_per_s"], 2.0);
        assert_eq!(json["errors"]["status 503"], 2);
    }

    #[test]
    fn spread_takes_deciles_and_the_floor_doubles_medians() {
        let samples = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Spread::of(samples);
        assert_eq!((s.p10, s.p50, s.p90), (11.0, 51.0, 91.0));
        assert_eq!(s.to_string(), "11.000/51.000/91.000 ms");
        let rtt = Spread { p10: 0.5, p50: 1.0, p90: 2.0 };
        let probe = Probe { fdatasync_prealloc: s, fdatasync_append: s, loopback_rtt: rtt };
        assert_eq!(probe.floor_ms(), 104.0);
        let json: serde_json::Value = serde_json::from_str(&probe.json()).unwrap();
        assert_eq!(json["floor_ms"], 104.0);
        assert_eq!(json["fast_floor_ms"], 23.0);
        assert_eq!(json["loopback_rtt_ms"]["p90"], 2.0);
    }

    #[test]
    fn key_choice_stays_in_the_key_space() {
        let mut rng = KeyRng(1);
        let picks: Vec<u64> = (0..1000).map(|_| rng.next(10)).collect();
        assert!(picks.iter().all(|&k| k < 10));
        assert!((0..10).all(|k| picks.contains(&k)), "every key gets chosen");
    }
}
