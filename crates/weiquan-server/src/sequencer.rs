//! One thread owns the [`Core`]; requests reach it through a channel. Ingest
//! requests that arrive while a batch is being written are merged into the
//! next one (group commit): one transaction and one checkpoint for all of
//! them, and each is answered only once that transaction is durable.
//!
//! Writing is pipelined: a second thread stores group N (the inserts and the
//! sync) while this one runs group N+1 through the engine. The sequencer was
//! the bottleneck of ingest, busy all the time with both halves while the
//! other core idled; the writes were a third of its time. Groups are written
//! strictly in order, at most one at a time, and reads of the core wait until
//! every staged group is written, so nothing not durable is ever shown. If a
//! write fails, the group staged on top of it fails too (it was built on a
//! state that is not durable) and the core is rebuilt from the ledger; if
//! even that fails, the sequencer stops rather than serve from a core that
//! holds what was never written.

use crate::acts::Submitter;
use crate::core::{Batch, Core, ItemResult, Staged};
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

type Reader = Box<dyn FnOnce(&mut Core) + Send>;

type Reply = oneshot::Sender<Result<Vec<ItemResult>, String>>;

enum Command {
    Ingest(Batch, Reply),
    Read(Reader),
}

/// A staged group on its way to the store, with the requests to answer once it is durable.
struct Write {
    staged: Staged,
    replies: Vec<Reply>,
    started: Instant,
}

/// The thread that writes staged groups, one at a time, in order.
struct Writer {
    jobs: Option<std::sync::mpsc::SyncSender<Write>>,
    /// One message per write: whether it is durable.
    done: std::sync::mpsc::Receiver<bool>,
    in_flight: bool,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(mut store: weiquan_store::SharedBackend, metrics: Arc<Metrics>) -> std::io::Result<Writer> {
        let (jobs, next) = std::sync::mpsc::sync_channel::<Write>(1);
        let (report, done) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("weiquan-writer".into())
            .spawn(move || {
                for Write {
                    staged,
                    replies,
                    started,
                } in next
                {
                    let written = staged.write(&mut store);
                    // Reported before anyone is answered: once a client has its
                    // answer, the sequencer knows how its batch went.
                    let sequencer_gone = report.send(written.is_ok()).is_err();
                    match written {
                        Ok(()) => {
                            metrics.record_batch(&staged.results, started.elapsed().as_secs_f64());
                            for rule in &staged.finding_rules {
                                metrics.finding(rule);
                            }
                            metrics.ledger_size.set(staged.size_after() as i64);
                            for (reply, r) in replies.into_iter().zip(staged.results) {
                                let _ = reply.send(Ok(r));
                            }
                        }
                        Err(e) => {
                            // The store's words stay in the log (they may name the server).
                            tracing::error!(error = %e, "batch not written; state rebuilt from the ledger");
                            let why = match e.kind {
                                weiquan_store::StoreErrorKind::Unavailable => "the database is unavailable",
                                _ => "the database refused it (the error was logged)",
                            };
                            for reply in replies {
                                let _ = reply.send(Err(why.to_owned()));
                            }
                        }
                    }
                    if sequencer_gone {
                        return;
                    }
                }
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            done,
            in_flight: false,
            thread: Some(thread),
        })
    }

    /// Hands a group to the writer (the previous one must be settled);
    /// whether it took it.
    fn submit(&mut self, write: Write) -> bool {
        debug_assert!(!self.in_flight, "one write at a time");
        let lost = match &self.jobs {
            Some(jobs) => match jobs.send(write) {
                Ok(()) => {
                    self.in_flight = true;
                    return true;
                }
                Err(std::sync::mpsc::SendError(lost)) => lost,
            },
            None => write,
        };
        // The writer thread is gone (it panicked): nothing can be made durable.
        for reply in lost.replies {
            let _ = reply.send(Err("the ledger writer stopped; the server must be restarted".into()));
        }
        false
    }

    /// Waits for the write in flight, if any: whether every submitted group is durable.
    fn settle(&mut self) -> bool {
        if !std::mem::take(&mut self.in_flight) {
            return true;
        }
        self.done.recv().unwrap_or(false)
    }

    /// Whether the write in flight has finished and failed (without waiting).
    fn failed_already(&mut self) -> bool {
        if !self.in_flight {
            return false;
        }
        match self.done.try_recv() {
            Ok(ok) => {
                self.in_flight = false;
                !ok
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => false,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                self.in_flight = false;
                true
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Rebuilds the core after a failed write (every write is settled by now);
/// whether it could. A core that cannot be rebuilt is not served from: the
/// sequencer stops, every request is then answered "not running" (503) and
/// `/readyz` fails, until the process is restarted (another process takes the
/// PostgreSQL ledger over at once).
fn rebuild(core: &mut Core, metrics: &Metrics) -> bool {
    match core.rebuild() {
        Ok(()) => {
            report_state(core, metrics);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot rebuild the state from the ledger; the sequencer stops");
            false
        }
    }
}

/// Sets the gauges of the ledger's size, the newest snapshot and the last replay.
fn report_state(core: &mut Core, metrics: &Metrics) {
    metrics.ledger_size.set(core.ledger().size() as i64);
    metrics.snapshot_leaves.set(core.snapshot_size() as i64);
    metrics.replayed_leaves.set(core.replayed() as i64);
}

/// Handle to the sequencer thread.
#[derive(Clone)]
pub struct Sequencer {
    tx: mpsc::Sender<Command>,
    leader: Arc<AtomicBool>,
    /// Bytes of items in the sequencer's hands (being prepared, queued,
    /// staged or written), in KiB: a request waits for its share before its
    /// leaves are built, which bounds what ingest holds in memory (a prepared
    /// item is about three times its text) whatever the number of clients.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// The size of that budget.
    in_flight_kib: usize,
}

/// The most item bytes the sequencer holds at once ([`Sequencer`]'s `in_flight`), in KiB.
const IN_FLIGHT_KIB: usize = 256 << 10;

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

/// Why a request's items were not ingested.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The sequencer cannot take requests (stopped, or standing by).
    #[error(transparent)]
    Stopped(#[from] Stopped),
    /// The batch was not written: the store failed (or a batch staged before
    /// it did). Sending the same request again is safe: whatever of it was
    /// kept after all is answered as a duplicate.
    #[error("the batch was not written ({0}); send it again (ids already kept are answered as duplicates)")]
    NotWritten(String),
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

/// Requests of at most this many bytes of items have their leaves built on
/// the async worker that received them (tens of microseconds); larger ones
/// on the blocking pool.
const PREPARE_INLINE_BYTES: usize = 16 << 10;

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
                report_state(&mut core, &metrics);
                let mut writer = match Writer::start(core.ledger().store().clone(), metrics.clone()) {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the ledger writer thread");
                        return;
                    }
                };
                let mut broken = false;
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
                    // A write that failed while this thread waited: rebuild before staging on it.
                    if writer.failed_already() && !rebuild(&mut core, &metrics) {
                        // What was taken from the queue is dropped: answered "not running".
                        break;
                    }
                    if !group.is_empty() {
                        let started = Instant::now();
                        let (items, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
                        let now = weiquan_events::Time::from_unix_ms(chrono::Utc::now().timestamp_millis(), 0);
                        let staged = core.stage(items, now);
                        // Groups are written in order: the previous one first.
                        let previous_written = writer.settle();
                        match staged {
                            Ok(staged) if previous_written => {
                                let write = Write {
                                    staged,
                                    replies,
                                    started,
                                };
                                if !writer.submit(write) {
                                    // The writer is gone: nothing more can be made durable.
                                    tracing::error!("the ledger writer stopped; the sequencer stops");
                                    broken = true;
                                }
                            }
                            not_staged => {
                                let why = match not_staged {
                                    Err(e) => {
                                        tracing::error!(error = %e, "batch not staged; state rebuilt from the ledger");
                                        "the batch could not be staged (the error was logged)".to_owned()
                                    }
                                    Ok(_) => "a batch before it could not be written".to_owned(),
                                };
                                for reply in replies {
                                    let _ = reply.send(Err(why.clone()));
                                }
                                broken |= !rebuild(&mut core, &metrics);
                            }
                        }
                    }
                    if !reads.is_empty() && !broken {
                        // Reads see only what is durable.
                        if !writer.settle() {
                            broken |= !rebuild(&mut core, &metrics);
                        }
                        if !broken {
                            for f in reads {
                                f(&mut core);
                            }
                        }
                    }
                    if !broken && core.snapshot_due() {
                        // A snapshot is of durable state only: the groups staged so far are written first.
                        if writer.settle() {
                            core.write_snapshot();
                        } else {
                            broken |= !rebuild(&mut core, &metrics);
                        }
                    }
                    // A snapshot is written on a thread of its own: its size shows once it is on disk.
                    metrics.snapshot_leaves.set(core.snapshot_size() as i64);
                    if broken {
                        // Requests still queued, and any later, are answered "not running".
                        break;
                    }
                }
                drop(writer);
            })
            .expect("the sequencer thread starts");
        let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_KIB));
        (
            Sequencer {
                tx,
                leader,
                in_flight,
                in_flight_kib: IN_FLIGHT_KIB,
            },
            handle,
        )
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
    pub async fn ingest(&self, submitter: Submitter, items: Vec<String>) -> Result<Vec<ItemResult>, IngestError> {
        self.check()?;
        let bytes: usize = items.iter().map(String::len).sum();
        // Held until answered. A request larger than the whole budget takes all of it.
        let kib = (bytes >> 10).clamp(1, self.in_flight_kib);
        let _share = (self.in_flight)
            .acquire_many(u32::try_from(kib).unwrap_or(u32::MAX))
            .await
            .map_err(|_| Stopped::Down)?;
        let (reply, rx) = oneshot::channel();
        // Building a large request's leaves is milliseconds of CPU: not on an async worker.
        let batch = if bytes > PREPARE_INLINE_BYTES {
            tokio::task::spawn_blocking(move || Batch::prepared(submitter, items))
                .await
                .map_err(|e| IngestError::NotWritten(format!("building the batch's leaves failed: {e}")))?
        } else {
            Batch::prepared(submitter, items)
        };
        self.tx
            .send(Command::Ingest(batch, reply))
            .await
            .map_err(|_| Stopped::Down)?;
        rx.await.map_err(|_| Stopped::Down)?.map_err(IngestError::NotWritten)
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

    /// A sequencer over a new SQLite ledger in `dir`: the database's path, the handle, its thread.
    fn started(dir: &tempfile::TempDir) -> (std::path::PathBuf, Sequencer, std::thread::JoinHandle<()>) {
        let path = dir.path().join("weiquan.db");
        let (signer, _) =
            weiquan_store::keyfile::load_or_create(&dir.path().join("ledger.key"), "test.local/ledger").expect("key");
        let store = Database::Sqlite(path.clone()).open().expect("store");
        let core = Core::open(store, signer, "test.local/ledger", Arc::new(Rulebook::builtin()), None).expect("core");
        let (sequencer, thread) = Sequencer::start(Startup::Ready(Box::new(core)), Arc::new(Metrics::default()));
        (path, sequencer, thread)
    }

    /// A request that arrives before the sequencer's thread has first run is
    /// served once it runs, not refused as if another process led.
    #[test]
    fn a_process_with_its_own_ledger_takes_requests_from_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, sequencer, thread) = started(&dir);
        assert!(sequencer.is_leader(), "leads as soon as it is started");
        let line = r#"{"v":1,"id":"e1","type":"clock.tick","at":"2026-11-11T00:00:00+08:00"}"#;
        let answer = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(sequencer.ingest(Submitter::platform(), vec![line.to_owned()]));
        assert!(
            matches!(answer.as_deref(), Ok([ItemResult::Accepted { index: 0 }])),
            "{answer:?}"
        );
        drop(sequencer);
        thread.join().expect("the sequencer stops when its handles are gone");
    }

    /// A write that fails (here: a trigger put in behind weiquan's back
    /// refuses its first leaf) answers its requests with
    /// an error, and so does any group staged on top of it; the state is
    /// rebuilt from the ledger, so the refused events are not taken for
    /// duplicates afterwards, and what was acknowledged stays.
    #[test]
    fn a_failed_write_keeps_what_was_acknowledged_and_nothing_it_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, sequencer, thread) = started(&dir);
        let rt = tokio::runtime::Builder::new_multi_thread().build().expect("runtime");
        let event = |id: &str| {
            format!(
                r#"{{"v":1,"id":"{id}","type":"bnpl.offered","at":"2026-11-01T09:00:00+08:00","consumer":"u-{id}","session":"s-{id}","preselected":false,"terms_shown":true}}"#
            )
        };
        let send = |ids: &[&str]| sequencer.ingest(Submitter::platform(), ids.iter().map(|id| event(id)).collect());
        let first = rt.block_on(send(&["a"])).expect("written");
        assert_eq!(first, vec![ItemResult::Accepted { index: 0 }]);

        let side = rusqlite::Connection::open(&path).expect("a second connection");
        let size = rt
            .block_on(sequencer.read(|core: &mut Core| core.ledger().size()))
            .expect("running");
        assert_eq!(size, 1, "the event alone (no finding)");
        side.execute_batch(
            "CREATE TRIGGER block BEFORE INSERT ON ledger_leaves WHEN NEW.idx = 1 BEGIN SELECT RAISE(ABORT, 'blocked'); END;",
        )
        .expect("block leaf 1");
        // Two requests at once: whether they share a group or the second is
        // staged on the first while it is written, both are refused.
        let (b, c) = rt.block_on(async { tokio::join!(send(&["b"]), send(&["c"])) });
        for refused in [b, c] {
            assert!(matches!(refused, Err(IngestError::NotWritten(_))), "{refused:?}");
        }
        side.execute_batch("DROP TRIGGER block;").expect("unblock");
        let later = rt.block_on(send(&["b", "c", "a"])).expect("written");
        assert_eq!(
            later,
            vec![
                ItemResult::Accepted { index: 1 },
                ItemResult::Accepted { index: 2 },
                ItemResult::Duplicate,
            ]
        );
        let ids = rt
            .block_on(sequencer.read(|core: &mut Core| {
                let size = core.ledger().size();
                let leaves = core.db().leaves(0, size).expect("leaves");
                (leaves.into_iter())
                    .filter_map(|(data, _)| {
                        let leaf = weiquan_ledger::leaf_event(std::str::from_utf8(&data).ok()?)?;
                        let event: serde_json::Value = serde_json::from_str(&leaf.event).ok()?;
                        event["id"].as_str().map(str::to_owned)
                    })
                    .collect::<Vec<_>>()
            }))
            .expect("running");
        assert_eq!(ids, ["a", "b", "c"], "the ledger holds what was acknowledged, once");
        drop(sequencer);
        thread.join().expect("the sequencer stops");
    }

    /// Ingest waits for its share of the in-flight budget: while every byte
    /// of it is held, a request is not even prepared; once freed, it goes
    /// through, and one larger than the whole budget takes all of it rather
    /// than waiting forever.
    #[test]
    fn ingest_waits_for_its_share_of_the_in_flight_budget() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, mut sequencer, thread) = started(&dir);
        const BUDGET: usize = 8; // KiB
        sequencer.in_flight = Arc::new(tokio::sync::Semaphore::new(BUDGET));
        sequencer.in_flight_kib = BUDGET;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_time()
            .build()
            .expect("runtime");
        // Clock ticks of about 4 KiB each.
        let tick = |id: &str| {
            format!(
                r#"{{"v":1,"id":"{id}","type":"clock.tick","at":"2026-11-01T09:00:00+08:00","pad":"{}"}}"#,
                "x".repeat(4 << 10)
            )
        };
        let held = rt
            .block_on(sequencer.in_flight.clone().acquire_many_owned(BUDGET as u32))
            .expect("the whole budget");
        let waiting = rt.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_millis(200),
                sequencer.ingest(Submitter::platform(), vec![tick("a")]),
            )
            .await
        });
        assert!(waiting.is_err(), "no share, no ingest: {waiting:?}");
        drop(held);
        // 12 KiB: more than the whole budget.
        let over: Vec<String> = ["b", "c", "d"].iter().map(|id| tick(id)).collect();
        let answers = rt.block_on(async {
            tokio::join!(
                sequencer.ingest(Submitter::platform(), vec![tick("a")]),
                sequencer.ingest(Submitter::platform(), over)
            )
        });
        assert!(
            matches!(answers.0.as_deref(), Ok([ItemResult::Accepted { .. }])),
            "{:?}",
            answers.0
        );
        let over = answers.1.expect("a request over the budget takes all of it");
        assert!(
            over.iter().all(|r| matches!(r, ItemResult::Accepted { .. })),
            "{over:?}"
        );
        assert_eq!(
            sequencer.in_flight.available_permits(),
            BUDGET,
            "every share is given back"
        );
        drop(sequencer);
        thread.join().expect("the sequencer stops");
    }

    /// A write that fails with a store that cannot be read back either (the
    /// ledger's table dropped behind weiquan's back) leaves no core to serve
    /// from: the sequencer stops, and requests are answered "not running"
    /// rather than from a state holding the batch that was never written.
    #[test]
    fn a_core_that_cannot_be_rebuilt_is_not_served_from() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, sequencer, thread) = started(&dir);
        let rt = tokio::runtime::Builder::new_multi_thread().build().expect("runtime");
        let tick = |id: &str| format!(r#"{{"v":1,"id":"{id}","type":"clock.tick","at":"2026-11-01T09:00:00+08:00"}}"#);
        let send = |id: &str| sequencer.ingest(Submitter::platform(), vec![tick(id)]);
        assert_eq!(
            rt.block_on(send("a")).expect("written"),
            vec![ItemResult::Accepted { index: 0 }]
        );
        rusqlite::Connection::open(&path)
            .expect("a second connection")
            .execute_batch("DROP TABLE ledger_leaves")
            .expect("drop the ledger's table");
        let refused = rt.block_on(send("b"));
        assert!(matches!(refused, Err(IngestError::NotWritten(_))), "{refused:?}");
        let after = rt.block_on(send("c"));
        assert!(matches!(after, Err(IngestError::Stopped(Stopped::Down))), "{after:?}");
        let read = rt.block_on(sequencer.read(|core: &mut Core| core.replayed()));
        assert!(matches!(read, Err(Stopped::Down)), "reads are refused too: {read:?}");
        for _ in 0..100 {
            if thread.is_finished() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(thread.is_finished(), "the sequencer thread has stopped");
    }
}
