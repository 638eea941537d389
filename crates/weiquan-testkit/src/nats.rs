//! A three-node NATS JetStream cluster on this machine, for tests and
//! benchmarks that kill servers: each node has its own ports and store.

use crate::process::{log_file, Proc};
use crate::webhook::free_addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One server of the cluster.
struct Node {
    config: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

/// Three `nats-server`s routed to each other, JetStream on, stores under
/// the folder given to [`NatsCluster::start`].
pub struct NatsCluster {
    nodes: Vec<Node>,
    /// The client URLs, comma-separated (what `--nats` takes).
    pub urls: String,
}

impl NatsCluster {
    /// The process ids of the servers running now (for their CPU time).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| n.proc.as_ref())
            .map(|p| p.0.id())
            .collect()
    }

    /// Writes three configs under `dir` and starts the servers (the Debian
    /// package `nats-server` must be installed), each listening for clients
    /// when this returns. They elect JetStream leaders a few seconds later.
    ///
    /// The ports are free when chosen, but another test may bind one before
    /// its server does; that server then exits, and a JetStream cluster
    /// short of a node never places a replicated stream. So the servers are
    /// started on other ports until all three listen.
    pub fn start(dir: &Path) -> NatsCluster {
        for _ in 0..4 {
            let mut cluster = NatsCluster::configure(dir);
            for i in 0..3 {
                cluster.start_node(i);
            }
            if cluster.listening(std::time::Duration::from_secs(15)) {
                return cluster;
            }
        }
        panic!(
            "three NATS servers never listened together; see the n*.log files in {}",
            dir.display()
        );
    }

    /// Whether every node's server is running and takes client connections
    /// within `limit` (false as soon as one has exited).
    fn listening(&mut self, limit: std::time::Duration) -> bool {
        let started = std::time::Instant::now();
        let urls: Vec<String> = self
            .urls
            .split(',')
            .map(|u| u.trim_start_matches("nats://").to_owned())
            .collect();
        loop {
            let exited =
                (self.nodes.iter_mut()).any(|n| n.proc.as_mut().is_none_or(|p| !matches!(p.0.try_wait(), Ok(None))));
            if exited {
                return false;
            }
            if urls.iter().all(|a| std::net::TcpStream::connect(a).is_ok()) {
                return true;
            }
            if started.elapsed() > limit {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Three configs under `dir` on ports free now, none started.
    fn configure(dir: &Path) -> NatsCluster {
        for i in 0..3 {
            // A store left by servers that did not all start knows other ports' peers.
            let _ = std::fs::remove_dir_all(dir.join(format!("n{i}")));
        }
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_addr().port(), free_addr().port())).collect();
        let nodes = (0..3)
            .map(|i| {
                let routes: Vec<String> = (0..3)
                    .filter(|&j| j != i)
                    .map(|j| format!("nats-route://127.0.0.1:{}", ports[j].1))
                    .collect();
                let config = dir.join(format!("n{i}.conf"));
                std::fs::write(
                    &config,
                    format!(
                        "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: \"{}\" }}\ncluster {{ name: wq, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                        ports[i].0,
                        dir.join(format!("n{i}")).display(),
                        ports[i].1,
                        routes.join(", ")
                    ),
                )
                .expect("a NATS config can be written");
                Node {
                    config,
                    log: dir.join(format!("n{i}.log")),
                    proc: None,
                }
            })
            .collect();
        let urls = ports
            .iter()
            .map(|(client, _)| format!("nats://127.0.0.1:{client}"))
            .collect::<Vec<_>>()
            .join(",");
        NatsCluster { nodes, urls }
    }

    /// Starts node `i` (again, after [`NatsCluster::kill`]), on its old store.
    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let child = Command::new(crate::services::nats_server())
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(log_file(&node.log))
            .spawn()
            .expect("nats-server runs (Debian package nats-server)");
        node.proc = Some(Proc(child));
    }

    /// Kills node `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].proc = None;
    }
}
