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
    /// package `nats-server` must be installed). They elect JetStream
    /// leaders a few seconds later.
    pub fn start(dir: &Path) -> NatsCluster {
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
        let mut cluster = NatsCluster { nodes, urls };
        for i in 0..3 {
            cluster.start_node(i);
        }
        cluster
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
