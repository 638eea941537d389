//! One thread owns the [`Core`]; requests reach it through a channel. Ingest
//! requests that arrive while a batch is being written are merged into the
//! next one (group commit): one transaction and one checkpoint for all of
//! them, and each is answered only once that transaction is durable.

use crate::acts::Submitter;
use crate::core::{Batch, Core, ItemResult};
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

type Reader = Box<dyn FnOnce(&mut Core) + Send>;

enum Command {
    Ingest(Batch, oneshot::Sender<Result<Vec<ItemResult>, String>>),
    Read(Reader),
}

/// Handle to the sequencer thread.
#[derive(Clone)]
pub struct Sequencer {
    tx: mpsc::Sender<Command>,
    leader: Arc<AtomicBool>,
}

/// Why the sequencer cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum Stopped {
    /// Shut down (or stopped by a fatal store error).
    #[error("the sequencer is not running")]
    Down,
    /// Another process holds the ledger's lock; this one takes over when it goes.
    #[error("standing by: another weiquan process sequences this ledger")]
    Standby,
}

/// How the sequencer gets its [`Core`].
pub enum Startup {
    /// Already open (SQLite: one process per file).
    Ready(Box<Core>),
    /// Wait for leadership (PostgreSQL advisory lock), then open.
    Elect {
        /// Tries to take the lock; true once held. Kept alive while leading (the lock lives in its connection).
        try_lock: Box<dyn FnMut() -> anyhow::Result<bool> + Send>,
        /// Opens the core once leading (replaying the ledger as the previous leader left it).
        open: Box<dyn FnOnce() -> anyhow::Result<Core> + Send>,
    },
}

/// Largest number of requests merged into one transaction.
const MAX_GROUP: usize = 256;

impl Sequencer {
    /// Starts the thread that owns the core.
    pub fn start(startup: Startup, metrics: Arc<Metrics>) -> (Sequencer, std::thread::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Command>(1024);
        // A process that opened its own ledger leads from this moment, not from
        // when its thread first runs: otherwise a request in between (on a busy
        // machine) is told that another process sequences the ledger, when none does.
        let leader = Arc::new(AtomicBool::new(matches!(startup, Startup::Ready(_))));
        let is_leader = leader.clone();
        let handle = std::thread::Builder::new()
            .name("weiquan-sequencer".into())
            .spawn(move || {
                // `_lock` keeps the advisory lock's connection open while this process leads.
                let (mut core, _lock) = match startup {
                    Startup::Ready(core) => (*core, None),
                    Startup::Elect { mut try_lock, open } => {
                        loop {
                            match try_lock() {
                                Ok(true) => break,
                                Ok(false) => {}
                                Err(e) => tracing::warn!(error = %e, "cannot ask for the sequencer lock; retrying"),
                            }
                            loop {
                                match rx.try_recv() {
                                    Ok(Command::Ingest(_, reply)) => {
                                        let _ = reply.send(Err(Stopped::Standby.to_string()));
                                    }
                                    Ok(Command::Read(_)) => {}
                                    Err(mpsc::error::TryRecvError::Empty) => break,
                                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                                }
                            }
                            std::thread::sleep(std::time::Duration::from_millis(200));
                        }
                        tracing::info!("this process now sequences the ledger");
                        match open() {
                            Ok(core) => (core, Some(try_lock)),
                            Err(e) => {
                                tracing::error!(error = %e, "cannot open the ledger after taking the lock");
                                return;
                            }
                        }
                    }
                };
                is_leader.store(true, Ordering::SeqCst);
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
                        let now = weiquan_events::Time::from_unix_ms(chrono::Utc::now().timestamp_millis(), 0);
                        match core.ingest(&items, now) {
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
        (Sequencer { tx, leader }, handle)
    }

    /// Whether this process sequences the ledger now.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<(), Stopped> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(Stopped::Standby)
        }
    }

    /// Submits one request's items; answers once they are durable.
    pub async fn ingest(
        &self,
        submitter: Submitter,
        items: Vec<String>,
    ) -> Result<Result<Vec<ItemResult>, String>, Stopped> {
        self.check()?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Ingest(Batch { submitter, items }, reply))
            .await
            .map_err(|_| Stopped::Down)?;
        rx.await.map_err(|_| Stopped::Down)
    }

    /// Runs `f` on the core, between batches.
    pub async fn read<T: Send + 'static>(&self, f: impl FnOnce(&mut Core) -> T + Send + 'static) -> Result<T, Stopped> {
        self.check()?;
        let (reply, rx) = oneshot::channel();
        let job: Reader = Box::new(move |core| {
            let _ = reply.send(f(core));
        });
        self.tx.send(Command::Read(job)).await.map_err(|_| Stopped::Down)?;
        rx.await.map_err(|_| Stopped::Down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ItemResult;
    use crate::Database;
    use weiquan_engine::Rulebook;

    /// A request that arrives before the sequencer's thread has first run is
    /// served once it runs, not refused as if another process led.
    #[test]
    fn a_process_with_its_own_ledger_takes_requests_from_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (signer, _) =
            weiquan_store::keyfile::load_or_create(&dir.path().join("ledger.key"), "test.local/ledger").expect("key");
        let store = Database::Sqlite(dir.path().join("weiquan.db")).open().expect("store");
        let core = Core::open(store, signer, "test.local/ledger", Arc::new(Rulebook::builtin())).expect("core");
        let (sequencer, thread) = Sequencer::start(Startup::Ready(Box::new(core)), Arc::new(Metrics::default()));
        assert!(sequencer.is_leader(), "leads as soon as it is started");
        let line = r#"{"v":1,"id":"e1","type":"clock.tick","at":"2026-11-11T00:00:00+08:00"}"#;
        let answer = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(sequencer.ingest(
                Submitter::Party(crate::acts::Party {
                    role: crate::Role::Platform,
                    key: None,
                }),
                vec![line.to_owned()],
            ));
        assert!(
            matches!(
                answer.as_ref().map(|r| r.as_deref()),
                Ok(Ok([ItemResult::Accepted { index: 0 }]))
            ),
            "{answer:?}"
        );
        drop(sequencer);
        thread.join().expect("the sequencer stops when its handles are gone");
    }
}
