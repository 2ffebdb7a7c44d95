//! `keel-kv cluster`: a local cluster of `keel-kv serve` processes, one per
//! member, so that any one can be killed. Running it again on the same data
//! directory restarts the same cluster.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The flags of `keel-kv cluster`.
#[derive(Args, Clone, Debug)]
pub struct ClusterArgs {
    /// Members to start (1 to 9).
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Where the members keep their data (one directory each).
    #[arg(long, default_value = "./keel-data")]
    pub data_dir: PathBuf,
    /// Member i serves clients on port P+i-1 and peers on P+100+i-1.
    #[arg(long, default_value_t = 12379)]
    pub base_port: u16,
}

struct Slot {
    id: u16,
    client: SocketAddr,
    args: Vec<String>,
    child: Option<Child>,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `GET /health` answered 200 (a minimal HTTP/1.0 exchange, bounded).
fn healthy(client: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&client, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: keel\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let n = s.read(&mut head).unwrap_or(0);
    head[..n].starts_with(b"HTTP/1.1 200") || head[..n].starts_with(b"HTTP/1.0 200")
}

fn plan(a: &ClusterArgs) -> Result<Vec<Slot>, String> {
    if !(1..=9).contains(&a.nodes) {
        return Err("--nodes must be between 1 and 9".into());
    }
    if u32::from(a.base_port) + 100 + u32::from(a.nodes) > u32::from(u16::MAX) || a.base_port == 0 {
        return Err("--base-port leaves no room for the member ports".into());
    }
    let peer = |i: u16| a.base_port + 100 + i - 1;
    let initial: Vec<String> =
        (1..=a.nodes).map(|i| format!("{i}=http://127.0.0.1:{}", peer(i))).collect();
    let initial = initial.join(",");
    let mut slots = Vec::new();
    for i in 1..=a.nodes {
        let client = addr(a.base_port + i - 1);
        for port in [client.port(), peer(i)] {
            TcpListener::bind(addr(port)).map_err(|e| {
                format!(
                    "port {port} is not free ({e}); is another cluster running? \
                     pick other ports with --base-port"
                )
            })?;
        }
        let dir = a.data_dir.join(format!("member-{i}"));
        let args = vec![
            "serve".to_string(),
            "--id".into(),
            i.to_string(),
            "--initial-cluster".into(),
            initial.clone(),
            "--listen-client".into(),
            client.to_string(),
            "--data-dir".into(),
            dir.display().to_string(),
        ];
        slots.push(Slot { id: i, client, args, child: None });
    }
    Ok(slots)
}

fn spawn(exe: &PathBuf, slot: &mut Slot) -> Result<(), String> {
    let mut child = Command::new(exe)
        .args(&slot.args)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start member {}: {e}", slot.id))?;
    if let Some(err) = child.stderr.take() {
        let id = slot.id;
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[member {id}] {line}");
            }
        });
    }
    slot.child = Some(child);
    Ok(())
}

/// The command that restarts `slot`, ready to paste into a shell: it names
/// this very binary (which `cargo run` does not put on the `PATH`).
fn command_line(exe: &Path, slot: &Slot) -> String {
    let exe = exe.display().to_string();
    let words: Vec<String> =
        std::iter::once(&exe).chain(&slot.args).map(|w| shell_quote(w)).collect();
    words.join(" ")
}

/// `word` as one shell word: as is when every character is plain, else in
/// single quotes (a quote inside becomes `'\''`).
fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@+".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The members, stopped however `run` ends: a panic included (`println!`
/// panics on a closed pipe), which would otherwise leave them running.
struct Members(Vec<Slot>);

impl Drop for Members {
    fn drop(&mut self) {
        stop_all(&mut self.0);
    }
}

impl std::ops::Deref for Members {
    type Target = Vec<Slot>;
    fn deref(&self) -> &Vec<Slot> {
        &self.0
    }
}

impl std::ops::DerefMut for Members {
    fn deref_mut(&mut self) -> &mut Vec<Slot> {
        &mut self.0
    }
}

fn stop_all(slots: &mut [Slot]) {
    for s in slots.iter() {
        if let Some(c) = &s.child
            && let Ok(pid) = i32::try_from(c.id())
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for s in slots.iter_mut() {
        let Some(mut c) = s.child.take() else { continue };
        loop {
            match c.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
            }
        }
    }
}

#[allow(clippy::print_stdout, reason = "the banner is the command's output")]
fn banner(a: &ClusterArgs, slots: &[Slot]) {
    println!(
        "keel-kv: a {}-member cluster on 127.0.0.1, data in {}",
        slots.len(),
        a.data_dir.display()
    );
    for s in slots {
        let pid = s.child.as_ref().map_or(0, Child::id);
        println!("  member {}: clients http://{}  (pid {pid})", s.id, s.client);
    }
    let first = slots[0].client;
    let last = slots[slots.len() - 1].client;
    println!();
    println!("Try:");
    println!("  curl -X PUT http://{first}/kv/hello -d world");
    println!("  curl http://{last}/kv/hello");
    println!("  curl 'http://{last}/kv?prefix=he'");
    println!("  curl http://{first}/members");
    println!("  curl http://{first}/status");
    println!("  curl http://{first}/metrics");
    println!("Any member serves any request. Kill one with kill -9 <pid>; Ctrl-C stops them all.");
    println!();
}

/// Runs the cluster until Ctrl-C (or SIGTERM), then stops every member.
#[allow(clippy::print_stdout, reason = "progress lines are the command's output")]
pub fn run(a: &ClusterArgs) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("keel-kv: cannot find this executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut slots = Members(match plan(a) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("keel-kv: {e}");
            return ExitCode::FAILURE;
        }
    });
    for s in slots.iter_mut() {
        if let Err(e) = spawn(&exe, s) {
            eprintln!("keel-kv: {e}");
            stop_all(&mut slots);
            return ExitCode::FAILURE;
        }
    }
    banner(a, &slots);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keel-kv: cannot start the runtime: {e}");
            stop_all(&mut slots);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let signal = crate::serve::shutdown_signal();
        tokio::pin!(signal);
        let started = Instant::now();
        let mut announced = false;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = &mut signal => break,
                _ = tick.tick() => {}
            }
            let mut live = 0;
            for s in slots.iter_mut() {
                let Some(c) = &mut s.child else { continue };
                match c.try_wait() {
                    Ok(None) => live += 1,
                    Ok(Some(status)) => {
                        println!("keel-kv: member {} exited ({status}); restart it with:", s.id);
                        println!("  {}", command_line(&exe, s));
                        s.child = None;
                    }
                    Err(e) => println!("keel-kv: cannot watch member {}: {e}", s.id),
                }
            }
            if live == 0 {
                println!("keel-kv: every member has exited");
                return;
            }
            if !announced {
                let clients: Vec<SocketAddr> = slots.iter().map(|s| s.client).collect();
                let ok = tokio::task::spawn_blocking(move || clients.iter().all(|c| healthy(*c)))
                    .await
                    .unwrap_or(false);
                if ok {
                    println!(
                        "keel-kv: the cluster is ready ({:.1} s)",
                        started.elapsed().as_secs_f64()
                    );
                    announced = true;
                } else if started.elapsed() > Duration::from_secs(30) {
                    println!("keel-kv: the cluster is not healthy after 30 s; see the logs above");
                    announced = true;
                }
            }
        }
        println!("keel-kv: stopping every member");
    });
    stop_all(&mut slots);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_commands_name_the_binary_and_quote_what_a_shell_would_split() {
        let slot = Slot {
            id: 2,
            client: addr(12380),
            args: ["serve", "--id", "2", "--initial-cluster", "1=http://a:1,2=http://b:2"]
                .into_iter()
                .chain(["--data-dir", "./my data/it's"])
                .map(String::from)
                .collect(),
            child: None,
        };
        assert_eq!(
            command_line(Path::new("/opt/keel/target/release/keel-kv"), &slot),
            "/opt/keel/target/release/keel-kv serve --id 2 --initial-cluster \
             '1=http://a:1,2=http://b:2' --data-dir './my data/it'\\''s'"
        );
    }
}
