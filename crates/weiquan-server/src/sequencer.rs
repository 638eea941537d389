//! One thread owns the [`Core`]; requests reach it through a channel. Ingest
//! requests that arrive while a batch is being written are merged into the
//! next one (group commit): one transaction and one checkpoint for all of
//! them, and each is answered only once that transaction is durable.

use crate::core::{Core, ItemResult};
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

type Reader = Box<dyn FnOnce(&mut Core) + Send>;

enum Command {
    Ingest(Vec<String>, oneshot::Sender<Result<Vec<ItemResult>, String>>),
    Read(Reader),
}

/// Handle to the sequencer thread.
#[derive(Clone)]
pub struct Sequencer {
    tx: mpsc::Sender<Command>,
}

/// The sequencer has stopped (shutdown or a fatal store error).
#[derive(Debug, thiserror::Error)]
#[error("the sequencer is not running")]
pub struct Stopped;

/// Largest number of requests merged into one transaction.
const MAX_GROUP: usize = 256;

impl Sequencer {
    /// Starts the thread that owns `core`.
    pub fn start(core: Core, metrics: Arc<Metrics>) -> (Sequencer, std::thread::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Command>(1024);
        let handle = std::thread::Builder::new()
            .name("weiquan-sequencer".into())
            .spawn(move || {
                let mut core = core;
                metrics.ledger_size.set(core.ledger().size() as i64);
                while let Some(first) = rx.blocking_recv() {
                    let mut group = Vec::new();
                    let mut reads = Vec::new();
                    match first {
                        Command::Ingest(items, reply) => group.push((items, reply)),
                        Command::Read(f) => reads.push(f),
                    }
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(Command::Ingest(items, reply)) => group.push((items, reply)),
                            Ok(Command::Read(f)) => reads.push(f),
                            Err(_) => break,
                        }
                    }
                    if !group.is_empty() {
                        let started = Instant::now();
                        let (items, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
                        let findings_before = core.findings().len();
                        match core.ingest(&items) {
                            Ok(results) => {
                                metrics.record_batch(&results, started.elapsed().as_secs_f64());
                                for f in &core.findings()[findings_before..] {
                                    metrics.finding(f.finding.rule.as_str());
                                }
                                metrics.ledger_size.set(core.ledger().size() as i64);
                                for (reply, r) in replies.into_iter().zip(results) {
                                    let _ = reply.send(Ok(r));
                                }
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "batch not written; state rebuilt from the ledger");
                                for reply in replies {
                                    let _ = reply.send(Err(e.to_string()));
                                }
                            }
                        }
                    }
                    for f in reads {
                        f(&mut core);
                    }
                }
            })
            .expect("the sequencer thread starts");
        (Sequencer { tx }, handle)
    }

    /// Submits one request's items; answers once they are durable.
    pub async fn ingest(&self, items: Vec<String>) -> Result<Result<Vec<ItemResult>, String>, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Ingest(items, reply)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Runs `f` on the core, between batches.
    pub async fn read<T: Send + 'static>(&self, f: impl FnOnce(&mut Core) -> T + Send + 'static) -> Result<T, Stopped> {
        let (reply, rx) = oneshot::channel();
        let job: Reader = Box::new(move |core| {
            let _ = reply.send(f(core));
        });
        self.tx.send(Command::Read(job)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }
}
