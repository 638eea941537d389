//! Workers: each owns partitions by lease, restores a partition's engine
//! from its last snapshot, applies the partition's subject from there and
//! publishes the findings the partition reports.
//!
//! **Leases.** A lease is a key `p<n>` in the cluster's `leases` bucket
//! holding `{worker, until}` (Unix milliseconds). It is taken by a
//! compare-and-set (create, or update at the revision of an expired lease)
//! and renewed the same way every quarter of its length. A worker that cannot
//! renew before `until` stops the partition. Workers also keep a heartbeat
//! (`w.<name>`), and each holds at most its share of the partitions
//! (`ceil(partitions / live workers)`): a worker over its share releases a
//! partition (snapshot first), so a worker that comes back gets work again.
//!
//! **Safety does not rest on the leases.** Two workers applying the same
//! partition for a moment (a paused worker that has not yet seen its lease
//! expire) compute the same state and publish the same findings under the
//! same ids (see the crate's docs).

use crate::logs::{LogError, Logs, PartitionLog};
use crate::{publish, Cluster, ClusterError, Published, Stamp};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use weiquan_engine::{Engine, Finding, Rulebook};
use weiquan_events::Event;
use weiquan_partition::{Copies, Route};

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Its name, unique among the cluster's workers (letters, digits, `-`, `_`).
    pub name: String,
    /// A snapshot of a partition once this many events have been applied
    /// since the last (taken between messages).
    pub snapshot_every: u64,
    /// How long a lease lasts unless renewed: how soon another worker takes
    /// over a dead one's partitions.
    pub lease: Duration,
    /// Where each partition's log and the top log are kept, with their
    /// signing key; `None` keeps no logs (findings are then in JetStream only).
    pub logs: Option<Logs>,
    /// How often the top log records the partition logs (by whichever
    /// worker holds its lease).
    pub top_every: Duration,
}

/// The value of a lease (and of a worker's heartbeat).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lease {
    /// The worker holding it.
    pub worker: String,
    /// Unix milliseconds after which it is free.
    pub until: u64,
}

impl Lease {
    /// Whether it has run out at `now` (Unix milliseconds).
    pub fn expired(&self, now: u64) -> bool {
        now >= self.until
    }
}

/// The lease key of partition `p` (also its snapshot's name).
pub fn lease_key(p: u32) -> String {
    format!("p{p}")
}

/// The progress key of partition `p`.
pub fn progress_key(p: u32) -> String {
    lease_key(p)
}

/// The key of the index of partition `p`'s last event routed and
/// acknowledged (in the progress bucket, written by the door at each flush).
pub fn routed_key(p: u32) -> String {
    format!("routed.p{p}")
}

/// The wall clock in Unix milliseconds (leases only: never in findings).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Applies one message of partition `p` (of `partitions`) to its engine: the
/// event's id (none for an advance) and the findings the partition reports
/// for it, in the engine's order. Pure: the same messages in the same order
/// give the same findings on any worker.
pub fn step<'l>(
    engine: &mut Engine,
    copies: &mut Copies,
    p: u32,
    partitions: u32,
    stamp: &Stamp,
    line: &'l str,
) -> Result<(Option<Parsed<'l>>, Vec<Finding>), String> {
    let clock = stamp.clock;
    copies.extend(stamp.copies.iter().cloned());
    if stamp.advance {
        let to = clock.ok_or("an advance without a clock")?;
        let found = engine.advance(to);
        return Ok((
            None,
            found
                .into_iter()
                .filter(|f| copies.keeps(f, p, partitions, None))
                .collect(),
        ));
    }
    // With its extra fields: the partition's log salts them.
    let (ev, extras) =
        weiquan_events::parse_event_with_extras(line).map_err(|e| format!("the event does not parse: {e}"))?;
    let route = if stamp.all { Route::All } else { Route::One(p) };
    let found = weiquan_partition::apply_stamped(engine, clock, &ev)
        .into_iter()
        .filter(|f| copies.keeps(f, p, partitions, Some((route, &ev.id))))
        .collect();
    Ok((Some((ev, extras)), found))
}

/// An event as a worker parsed it, with its extra fields.
pub type Parsed<'l> = (Event<'l>, Vec<std::borrow::Cow<'l, str>>);

/// A partition's state as a snapshot holds it.
#[derive(Serialize, Deserialize)]
struct Saved {
    magic: [u8; 8],
    partitions: u32,
    partition: u32,
    /// The index of the last message applied.
    index: u64,
    /// Its stream sequence: replay resumes after it.
    seq: u64,
    /// [`State::recent`].
    recent: Vec<u64>,
    copies: Copies,
    /// The `before` of the last rebuild marker applied ([`State::rebuilt`]).
    rebuilt: u64,
    /// [`State::spreading`].
    spreading: (u64, Vec<String>),
    /// [`Engine::snapshot`].
    engine: Vec<u8>,
    /// The partition's log, when the worker keeps logs.
    log: Option<SavedLog>,
}

/// How far a partition's log was written when a snapshot was taken.
#[derive(Serialize, Deserialize)]
struct SavedLog {
    /// Leaves written.
    size: u64,
    /// Each event's (id digest, leaf index), for findings' evidence.
    ids: Vec<(u128, u64)>,
    /// The tree hash of those leaves: a log replaced since is not written onto.
    root: [u8; 32],
}

const MAGIC: [u8; 8] = *b"WQPART06";

/// How long a snapshot's read or write may take: a read that takes longer means a replay from the start, a write the previous snapshot kept.
const SLOW: Duration = Duration::from_secs(30);

/// A partition being applied.
struct State {
    engine: Engine,
    copies: Copies,
    /// The `before` of the last rebuild marker applied: a marker sent again
    /// (by a resumed door) is not applied twice.
    rebuilt: u64,
    /// Subjects spread that partial markers of the coming rebuild (its
    /// `before`) carried: kept everywhere from that rebuild on, not before.
    spreading: (u64, Vec<String>),
    index: u64,
    /// The stream sequence a new consumer starts after: nothing is held
    /// for a message before it.
    seq: u64,
    /// The stream sequences of the last batches applied, oldest first
    /// ([`RECENT`] of them), after the first stream sequence the partition
    /// was read from (1): the oldest, less one, is [`State::low`]. Kept in
    /// snapshots, so that a restore looks as far back.
    recent: std::collections::VecDeque<u64>,
    /// Its log, when the worker keeps logs (in a snapshot: how far it was written).
    log: Option<PartitionLog>,
    /// A decoded snapshot's log position, until the log is opened.
    saved_log: Option<SavedLog>,
}

impl State {
    /// A stream sequence before every message that may hold an event not
    /// applied, though `seq` is past it. Batches are stored in any order
    /// within a door's window: a later batch stored before an earlier one
    /// that a consumer's replica lacks is behind `seq` once the earlier is
    /// applied. A door sends a batch only once the one [`crate::door::WINDOW`]
    /// before it is stored, so every batch still to come was stored after
    /// the oldest of the last [`RECENT`] applied.
    fn low(&self) -> u64 {
        let oldest = self.recent.iter().min().map_or(self.seq, |s| s.saturating_sub(1));
        oldest.min(self.seq)
    }

    /// Notes that the batch stored at `seq` was applied.
    fn note_applied(&mut self, seq: u64) {
        self.recent.push_back(seq);
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }

    fn encode(&self, partitions: u32, partition: u32) -> Result<Vec<u8>, String> {
        let saved = Saved {
            magic: MAGIC,
            partitions,
            partition,
            index: self.index,
            seq: self.seq,
            recent: self.recent.iter().copied().collect(),
            copies: self.copies.clone(),
            rebuilt: self.rebuilt,
            spreading: self.spreading.clone(),
            engine: self.engine.snapshot().map_err(|e| e.to_string())?,
            log: self.log.as_ref().map(|log| SavedLog {
                size: log.size(),
                ids: log.leaf_index().pairs().collect(),
                root: log.root().0,
            }),
        };
        Ok(crate::with_checksum(
            postcard::to_stdvec(&saved).map_err(|e| e.to_string())?,
        ))
    }

    fn decode(rules: Arc<Rulebook>, bytes: &[u8], partitions: u32, partition: u32) -> Result<State, String> {
        let saved: Saved = postcard::from_bytes(crate::checked(bytes)?).map_err(|e| e.to_string())?;
        if saved.magic != MAGIC || saved.partitions != partitions || saved.partition != partition {
            return Err(format!(
                "of another layout (partition {} of {})",
                saved.partition, saved.partitions
            ));
        }
        Ok(State {
            engine: Engine::restore(rules, &saved.engine).map_err(|e| e.to_string())?,
            copies: saved.copies,
            rebuilt: saved.rebuilt,
            spreading: saved.spreading,
            index: saved.index,
            seq: saved.seq,
            recent: saved.recent.into(),
            log: None,
            saved_log: saved.log,
        })
    }

    /// A partition applied from its start.
    fn empty(rules: Arc<Rulebook>) -> State {
        State {
            engine: Engine::new(rules),
            copies: Copies::default(),
            rebuilt: 0,
            spreading: (0, Vec::new()),
            index: 0,
            seq: 0,
            recent: [1].into(),
            log: None,
            saved_log: None,
        }
    }
}

/// Why a partition's task is asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Run,
    /// Handed over: snapshot first.
    Release,
    /// The lease ran out: stop at once.
    Lost,
}

/// A partition this worker owns.
struct Owned {
    revision: u64,
    until: u64,
    stop: watch::Sender<Stop>,
    applied: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<(), ClusterError>>,
}

/// Runs a worker until `shutdown` completes (then it hands its partitions
/// over, each snapshotted, and the top log records them once more) or a NATS
/// failure outlasts its retries.
pub async fn run(
    cluster: Cluster,
    rules: Arc<Rulebook>,
    cfg: WorkerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ClusterError> {
    check_worker_name(&cfg.name)?;
    let leases = cluster.kv("leases").await?;
    let progress = cluster.kv("progress").await?;
    let mut owned: BTreeMap<u32, Owned> = BTreeMap::new();
    // The top log's writer, when this worker holds its lease.
    let mut top: Option<Owned> = None;
    let tick = cfg.lease / 4;
    // The first round only announces this worker, so that workers started
    // together see each other before they take shares.
    let mut announced = false;
    // Partitions that failed here, and until when they are left alone.
    let mut cooling: BTreeMap<u32, u64> = BTreeMap::new();
    // Shutting down: nothing is taken, everything is handed over.
    let mut stopping = false;
    // When the leases were last renewed: every tick, also while shutting
    // down, when the tasks are looked at more often.
    let mut renewed: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    tracing::info!(worker = %cfg.name, cluster = %cluster.name, partitions = cluster.partitions, "worker started");
    loop {
        let now = now_ms();
        let until = now + cfg.lease.as_millis() as u64;
        let me = Lease {
            worker: cfg.name.clone(),
            until,
        };
        let value: bytes::Bytes = serde_json::to_vec(&me).unwrap_or_default().into();
        let renew = renewed.is_none_or(|at| at.elapsed() >= tick);
        if renew {
            renewed = Some(tokio::time::Instant::now());
            // A worker shutting down has no heartbeat: the others count
            // their shares without it, and take what it hands over.
            if !stopping {
                if let Err(e) = leases.put(heartbeat_key(&cfg.name), value.clone()).await {
                    tracing::warn!(error = %e, "heartbeat not written; retrying");
                }
            }
            // Renew, or notice a lease lost (taken, or run out while NATS was away).
            let next = now + tick.as_millis() as u64;
            for (&p, o) in owned.iter_mut() {
                keep(&leases, &lease_key(p), o, value.clone(), &cfg.name, until, next).await;
            }
            if let Some(o) = &mut top {
                keep(&leases, TOP_KEY, o, value.clone(), &cfg.name, until, next).await;
            }
        }
        if let Some(o) = top.take_if(|o| o.task.is_finished() || *o.stop.borrow() == Stop::Lost) {
            o.task.abort();
            let _ = leases.delete_expect_revision(TOP_KEY, Some(o.revision)).await;
        }
        // Partitions that stopped (lost, handed over, or failed) leave.
        let done: Vec<u32> = owned
            .iter()
            .filter(|(_, o)| o.task.is_finished() || *o.stop.borrow() == Stop::Lost)
            .map(|(&p, _)| p)
            .collect();
        for p in done {
            if let Some(o) = owned.remove(&p) {
                let why = *o.stop.borrow();
                // Its task has ended (unless lost): none of these waits.
                match why {
                    // Another worker may own it already: stop at once, and
                    // leave its progress to the new owner.
                    Stop::Lost => o.task.abort(),
                    // Handed over: its snapshot is written, the lease goes.
                    Stop::Release => release(&leases, &progress, p, o).await,
                    // A failed partition gives its lease back for another
                    // worker to try, and this one waits before trying it again.
                    Stop::Run => {
                        release(&leases, &progress, p, o).await;
                        cooling.insert(p, now + COOL_DOWN.as_millis() as u64);
                    }
                }
            }
        }
        if stopping {
            // Every partition is handed over (its task snapshots and ends)
            // while this loop keeps renewing the leases, so that nobody takes
            // one over while it is still written; then the top log records
            // them all once more.
            for o in owned.values().filter(|o| *o.stop.borrow() == Stop::Run) {
                o.stop.send_replace(Stop::Release);
            }
            if owned.is_empty() {
                match &top {
                    None => break,
                    Some(o) if *o.stop.borrow() == Stop::Run => {
                        o.stop.send_replace(Stop::Release);
                    }
                    Some(_) => {}
                }
            }
        } else {
            // Without the count of live workers (NATS away), take nothing this round.
            let share = live_workers(&leases, now)
                .await
                .map(|live| cluster.partitions.div_ceil(live.max(1)));
            // A partition over the share is handed over in the background: its
            // task snapshots and ends while this loop goes on renewing every
            // lease (that one's too, until it has ended), and the next rounds
            // see it done. Waiting here for a snapshot, or for a restore that
            // stalls, let the other leases run out.
            let running = owned.values().filter(|o| *o.stop.borrow() == Stop::Run).count() as u32;
            if let Some(share) = share.filter(|&share| running > share) {
                if let Some((&p, o)) = owned.iter().rev().find(|(_, o)| *o.stop.borrow() == Stop::Run) {
                    tracing::info!(partition = p, share, "over my share; handing a partition over");
                    o.stop.send_replace(Stop::Release);
                }
            }
            // Take free partitions up to the share, starting at a place of my
            // own so that workers starting together spread out.
            let start = weiquan_partition::partition_of(&cfg.name, cluster.partitions);
            cooling.retain(|_, until| *until > now);
            for i in 0..cluster.partitions {
                if !announced || share.is_none_or(|share| owned.len() as u32 >= share) {
                    break;
                }
                let p = (start + i) % cluster.partitions;
                if owned.contains_key(&p) || cooling.contains_key(&p) {
                    continue;
                }
                if let Some(revision) = take(&leases, &lease_key(p), value.clone(), now).await {
                    tracing::info!(partition = p, "lease taken");
                    let (stop, watch) = watch::channel(Stop::Run);
                    let applied = Arc::new(AtomicU64::new(RESTORING));
                    let task = tokio::spawn(own(
                        cluster.clone(),
                        rules.clone(),
                        cfg.clone(),
                        p,
                        watch,
                        applied.clone(),
                    ));
                    owned.insert(
                        p,
                        Owned {
                            revision,
                            until,
                            stop,
                            applied,
                            task,
                        },
                    );
                }
            }
            // Whoever holds the top lease writes the top log.
            if let (Some(logs), None, true) = (&cfg.logs, &top, announced) {
                if let Some(revision) = take(&leases, TOP_KEY, value.clone(), now).await {
                    tracing::info!("top log lease taken");
                    let (stop, watch) = watch::channel(Stop::Run);
                    let task = tokio::spawn(write_top(logs.clone(), cluster.partitions, cfg.top_every, watch));
                    top = Some(Owned {
                        revision,
                        until,
                        stop,
                        applied: Arc::default(),
                        task,
                    });
                }
            }
        }
        // Written every tick, so that a value left by an earlier owner is
        // corrected even while the partition is idle.
        if renew {
            for (&p, o) in &owned {
                report(&progress, p, &o.applied).await;
            }
        }
        announced = true;
        let pause = if stopping { tick.min(STOPPING_POLL) } else { tick };
        tokio::select! {
            () = &mut shutdown, if !stopping => {
                stopping = true;
                let _ = leases.delete(heartbeat_key(&cfg.name)).await;
            }
            () = tokio::time::sleep(pause) => {}
        }
    }
    Ok(())
}

/// The lease key of the top log's writer.
const TOP_KEY: &str = "top";

/// How often a worker shutting down looks whether its tasks have ended (its
/// leases are still renewed every tick).
const STOPPING_POLL: Duration = Duration::from_millis(50);

/// Writes the top log every `every` until told to stop (once more when
/// handed over): a failure is logged, and the log is opened again at the
/// next round.
async fn write_top(
    logs: Logs,
    partitions: u32,
    every: Duration,
    mut stop: watch::Receiver<Stop>,
) -> Result<(), ClusterError> {
    let mut top = None;
    loop {
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(every) => {}
        }
        // Handed over (the worker stops, its partitions written): one last
        // record, so that the top log commits to everything written. Lost:
        // another worker writes the top log now.
        let last = match *stop.borrow() {
            Stop::Run => false,
            Stop::Release => true,
            Stop::Lost => return Ok(()),
        };
        let (held, logs) = (top.take(), logs.clone());
        let (back, recorded) = blocking(move || {
            let mut log = match held {
                Some(log) => log,
                None => match logs.top(partitions) {
                    Ok(log) => log,
                    Err(e) => return (None, Err(e)),
                },
            };
            let recorded = log.record();
            (Some(log), recorded)
        })
        .await?;
        match recorded {
            Ok(Some(size)) => {
                top = back;
                tracing::debug!(size, "the top log recorded the partition logs");
            }
            Ok(None) => top = back,
            Err(e) => tracing::warn!(error = %e, "the top log was not written; trying again"),
        }
        if last {
            return Ok(());
        }
    }
}

/// How long a worker leaves alone a partition that failed in its hands.
const COOL_DOWN: Duration = Duration::from_secs(10);

/// The key of worker `name`'s heartbeat in the leases bucket.
pub fn heartbeat_key(name: &str) -> String {
    format!("w.{name}")
}

/// Gives back the lease of a partition whose task has ended (handed over,
/// or failed), after recording how far it got.
async fn release(
    leases: &async_nats::jetstream::kv::Store,
    progress: &async_nats::jetstream::kv::Store,
    p: u32,
    o: Owned,
) {
    match o.task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(partition = p, error = %e, "partition stopped"),
        Err(e) => tracing::error!(partition = p, error = %e, "partition task panicked"),
    }
    report(progress, p, &o.applied).await;
    let _ = leases.delete_expect_revision(lease_key(p), Some(o.revision)).await;
}

/// What a partition's `applied` holds until its task has restored it: how
/// far it was applied is not known yet.
const RESTORING: u64 = u64::MAX;

/// Records how far partition `p` has been applied, once its task knows: a
/// partition still restoring (or handed over while restoring) leaves the
/// earlier owner's figure, which a 0 would set back.
async fn report(progress: &async_nats::jetstream::kv::Store, p: u32, applied: &AtomicU64) {
    let applied = applied.load(Ordering::Relaxed);
    if applied != RESTORING {
        let _ = progress.put(progress_key(p), applied.to_string().into()).await;
    }
}

/// Renews the lease `key` held by `o` until `until`, or tells `o`'s task to
/// stop at once when another worker holds it now, or when it was not renewed
/// and runs out before `next` (the next round).
async fn keep(
    leases: &async_nats::jetstream::kv::Store,
    key: &str,
    o: &mut Owned,
    value: bytes::Bytes,
    me: &str,
    until: u64,
    next: u64,
) {
    match renew(leases, key, value, o.revision, me).await {
        Ok(rev) => {
            o.revision = rev;
            o.until = until;
        }
        Err(e) => {
            if e.is_some() || next >= o.until {
                let why = e.unwrap_or_else(|| "not renewed in time".into());
                tracing::warn!(lease = %key, %why, "lease lost; stopping its work");
                // Recorded even when the task has ended (`send` would not):
                // the lease is then left alone, not given back.
                o.stop.send_replace(Stop::Lost);
            }
        }
    }
}

/// Renews the lease `key` held at `revision`: its new revision.
/// `Err(None)`: NATS did not answer (try again while the lease lasts);
/// `Err(Some(why))`: another worker holds it now. An update whose
/// acknowledgement was lost (a leader election) left our own value at a
/// newer revision: that is still ours.
async fn renew(
    leases: &async_nats::jetstream::kv::Store,
    key: &str,
    value: bytes::Bytes,
    revision: u64,
    me: &str,
) -> Result<u64, Option<String>> {
    if let Ok(rev) = leases.update(key, value.clone(), revision).await {
        return Ok(rev);
    }
    match leases.entry(key).await {
        Ok(Some(e)) if e.operation == async_nats::jetstream::kv::Operation::Put => {
            match serde_json::from_slice::<Lease>(&e.value) {
                Ok(held) if held.worker == me => leases.update(key, value, e.revision).await.map_err(|_| None),
                Ok(held) => Err(Some(format!("taken by {}", held.worker))),
                Err(_) => Err(Some("the lease holds something else".into())),
            }
        }
        Ok(_) => Err(Some("the lease was released".into())),
        Err(_) => Err(None),
    }
}

/// Takes the lease `key` if it is free or has run out: its revision.
async fn take(leases: &async_nats::jetstream::kv::Store, key: &str, value: bytes::Bytes, now: u64) -> Option<u64> {
    match leases.entry(key).await {
        Ok(Some(e)) if e.operation == async_nats::jetstream::kv::Operation::Put => {
            let held = serde_json::from_slice::<Lease>(&e.value).ok()?;
            if !held.expired(now) {
                return None;
            }
            leases.update(key, value, e.revision).await.ok()
        }
        Ok(_) => leases.create(key, value).await.ok(),
        Err(_) => None,
    }
}

/// How many workers have a heartbeat that has not run out (`None`: the
/// bucket could not be listed).
async fn live_workers(leases: &async_nats::jetstream::kv::Store, now: u64) -> Option<u32> {
    // The heartbeats' subjects as the server holds them at one moment. Not the
    // bucket's key listing: a consumer that also delivers what is written while
    // it runs, so a heartbeat written meanwhile came twice or not at all. Two
    // workers counted as three (or one), and each handed a partition over and
    // took it back every few seconds.
    let prefix = format!("{}{}", leases.prefix, heartbeat_key(""));
    let subjects = leases.stream.info_with_subjects(format!("{prefix}>")).await.ok()?;
    // A page that fails is no count at all (the caller then takes nothing), not a low one.
    let subjects: Vec<(String, usize)> = futures::TryStreamExt::try_collect(subjects).await.ok()?;
    let mut live = 0;
    for key in subjects
        .iter()
        .filter_map(|(subject, _)| subject.strip_prefix(&leases.prefix))
    {
        if let Ok(Some(v)) = leases.get(key).await {
            if serde_json::from_slice::<Lease>(&v).is_ok_and(|l| !l.expired(now)) {
                live += 1;
            }
        }
    }
    Some(live)
}

fn check_worker_name(name: &str) -> Result<(), ClusterError> {
    crate::valid_name(name, 64, |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        .then_some(())
        .ok_or_else(|| ClusterError::WorkerName(name.to_owned()))
}

/// Restores partition `p` from its snapshot, or starts it empty when there
/// is none or it cannot be read or used (logged: the whole subject is then
/// replayed, which gives the same state, only later). A snapshot is a cache:
/// its failures never stop a partition.
async fn restore(cluster: &Cluster, rules: &Arc<Rulebook>, p: u32) -> State {
    let name = lease_key(p);
    let read = cluster.read_snapshot(&name);
    // An object read can stall while a restarted server catches up, and
    // for good when the chunks its description names are gone (replaced
    // meanwhile, or missing on the replica that answers): async-nats waits
    // for them forever (nats-io/nats.rs#1414).
    let why = match tokio::time::timeout(SLOW, read).await {
        Ok(Ok(None)) => None,
        Ok(Ok(Some(bytes))) => match heavy(|| State::decode(rules.clone(), &bytes, cluster.partitions, p)) {
            Ok(state) => {
                tracing::info!(partition = p, index = state.index, "restored from snapshot");
                return state;
            }
            Err(why) => Some(why),
        },
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer in {SLOW:?}")),
    };
    if let Some(why) = why {
        tracing::warn!(partition = p, %why, "snapshot not usable; replaying the partition from its start");
    }
    State::empty(rules.clone())
}

/// Runs `f`, a snapshot's encoding or decoding (hundreds of milliseconds
/// for a large partition), without holding up the tasks queued beside it:
/// on a multi-threaded runtime they move to another thread meanwhile. Run
/// inline, a long encoding kept the lease loop from renewing in time.
fn heavy<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Runs `f` (a log's blocking IO) on a thread where blocking is allowed.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ClusterError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ClusterError::Log(format!("a log task failed: {e}")))
}

/// Restores partition `p` ([`restore`]) with its log opened where the
/// snapshot left it. A snapshot taken without a log, ahead of the log, or
/// over leaves the log no longer holds (its database was replaced) is not
/// used: the partition is applied from its start, which writes or checks
/// its whole log.
async fn restore_with_log(
    cluster: &Cluster,
    rules: &Arc<Rulebook>,
    logs: &Logs,
    p: u32,
) -> Result<State, ClusterError> {
    let mut state = restore(cluster, rules, p).await;
    let saved = state.saved_log.take();
    if saved.is_none() && state.index > 0 {
        tracing::warn!(
            partition = p,
            "the snapshot was taken without a log; replaying the partition from its start"
        );
        state = State::empty(rules.clone());
    }
    let open = |at: u64, pairs: Vec<(u128, u64)>, root: Option<[u8; 32]>| {
        let logs = logs.clone();
        blocking(move || {
            let mut ids = weiquan_app::LeafIndex::new();
            for (digest, leaf) in pairs {
                ids.insert_new(digest, leaf);
            }
            logs.partition(p, at, ids, root.map(weiquan_ledger::Hash))
        })
    };
    let (at, pairs, root) = saved.map_or((0, Vec::new(), None), |s| (s.size, s.ids, Some(s.root)));
    let log = match open(at, pairs, root).await? {
        Err(
            e @ LogError {
                problem:
                    crate::logs::LogProblem::Record(weiquan_app::RecordError::Short { .. })
                    | crate::logs::LogProblem::Replaced { .. },
                ..
            },
        ) if at > 0 => {
            tracing::warn!(partition = p, error = %e, "the snapshot does not fit the log; replaying the partition from its start");
            state = State::empty(rules.clone());
            open(0, Vec::new(), None).await?
        }
        opened => opened,
    };
    state.log = Some(log.map_err(|e| ClusterError::Log(e.to_string()))?);
    Ok(state)
}

/// Writes partition `p`'s snapshot, `State::encode`d (by the caller, so
/// that the state, whose log holds a database connection, is not held across
/// an await); a failure is logged and the next interval tries again.
async fn save(cluster: &Cluster, p: u32, encoded: Result<Vec<u8>, String>) {
    let bytes = match encoded {
        Ok(b) => b,
        Err(why) => {
            tracing::error!(partition = p, %why, "the state does not encode; no snapshot");
            return;
        }
    };
    let name = lease_key(p);
    let write = cluster.write_snapshot(&name, &bytes);
    match tokio::time::timeout(SLOW, write).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(partition = p, error = %e, "snapshot not written; trying again at the next interval")
        }
        Err(_) => tracing::warn!(
            partition = p,
            "snapshot not written in {SLOW:?}; trying again at the next interval"
        ),
    }
}

/// Batches held for an earlier one, at most: twice the door's window.
const HOLD: usize = 2 * crate::door::WINDOW;

/// Applied batches whose stream sequences a partition keeps ([`State::low`]):
/// more than a door's window.
const RECENT: usize = HOLD + 1;

/// How long batches may wait for an earlier one: twice a door's retries.
const GIVE_UP: Duration = Duration::from_secs(120);

/// Applies the events of a batch that come after `state.index`, in order;
/// writes them and the findings the partition reports to its log (if it
/// keeps one), then publishes the findings: how many events it applied.
async fn apply_batch(
    cluster: &Cluster,
    rules: &Arc<Rulebook>,
    p: u32,
    state: &mut State,
    seq: u64,
    batch: Vec<(Stamp, &str)>,
) -> Result<u64, ClusterError> {
    let bad = |problem: String| ClusterError::Message {
        partition: p,
        seq,
        problem,
    };
    let logged = |e: LogError| ClusterError::Log(e.to_string());
    let mut applied = 0;
    let mut out = Vec::new();
    for (stamp, line) in batch {
        if stamp.index <= state.index {
            continue; // delivered again
        }
        if stamp.index != state.index + 1 {
            return Err(bad(format!(
                "event {} follows event {}: an event is missing",
                stamp.index, state.index
            )));
        }
        let (parsed, found) = match &stamp.rebuild {
            Some(r) if r.before > state.rebuilt && r.partial => {
                // Shares of another rebuild (one a door never finished) are dropped.
                if state.spreading.0 != r.before {
                    state.spreading = (r.before, Vec::new());
                }
                state.spreading.1.extend(stamp.copies.iter().cloned());
                (None, Vec::new())
            }
            Some(r) if r.before > state.rebuilt => {
                let found = rebuild(cluster, rules, p, state, &stamp, r, seq).await?;
                state.rebuilt = r.before;
                (None, found)
            }
            // Sent again (by a resumed door): rebuilt already.
            Some(_) => (None, Vec::new()),
            None => step(
                &mut state.engine,
                &mut state.copies,
                p,
                cluster.partitions,
                &stamp,
                line,
            )
            .map_err(bad)?,
        };
        if let (Some(log), Some((ev, extras))) = (&mut state.log, &parsed) {
            log.event(line, (ev, extras)).map_err(logged)?;
        }
        for (k, finding) in found.into_iter().enumerate() {
            let leaf = match &mut state.log {
                Some(log) => Some(log.finding(&finding, rules).map_err(logged)?),
                None => None,
            };
            out.push(Published {
                partition: p,
                index: stamp.index,
                k: k as u32,
                finding,
                leaf,
            });
        }
        state.index = stamp.index;
        applied += 1;
    }
    // Logged before published: a finding in JetStream is in its partition's
    // log. Batches without findings are written a few together.
    let due = |l: &PartitionLog| l.pending() >= FLUSH_LEAVES || l.pending_for() >= FLUSH_AGE;
    if !out.is_empty() || state.log.as_ref().is_some_and(due) {
        flush_log(state).await?;
    }
    for finding in out {
        let payload = serde_json::to_vec(&finding).map_err(|e| bad(format!("a finding does not encode: {e}")))?;
        let subject = cluster.findings_subject(p);
        let seal = cluster.seal(&subject, &payload);
        publish(
            &cluster.js,
            &subject,
            &finding.id(),
            payload.into(),
            false,
            seal.as_deref(),
        )
        .await?;
    }
    Ok(applied)
}

/// Rebuilds partition `p` at a marker ([`Stamp::rebuild`]): merchants moved
/// to or from it, or subjects spread to every partition. First its engine
/// as it stands moves to the marker's clock, and what that fires is
/// reported under the ownership before the move (the findings returned).
/// Then the engine is made anew from every event before the marker that
/// the partition owns now ([`Copies::route_of`]), read from every
/// partition's subject and applied in the door's order, each at its stamp,
/// then moved to the clock; what that finds was reported when the events
/// came. Events that came from other partitions are added to the
/// partition's log, so that findings can cite them. The door made every
/// event before the marker durable before it sent the marker, so each
/// subject is read only up to the marker's stream sequence `seq`: a replay
/// meeting the marker again reads the same, however long the stream is now.
async fn rebuild(
    cluster: &Cluster,
    rules: &Arc<Rulebook>,
    p: u32,
    state: &mut State,
    stamp: &Stamp,
    r: &crate::Rebuild,
    seq: u64,
) -> Result<Vec<Finding>, ClusterError> {
    let n = cluster.partitions;
    let marker = |problem: String| ClusterError::Message {
        partition: p,
        seq,
        problem,
    };
    if let Some(m) = r.moves.iter().find(|m| m.from >= n || m.to >= n) {
        return Err(marker(format!(
            "a rebuild marker moves merchants from partition {} to {}, of {n}",
            m.from, m.to
        )));
    }
    let started = std::time::Instant::now();
    let found: Vec<Finding> = match stamp.clock {
        Some(t) => state.engine.advance(t),
        None => Vec::new(),
    };
    let found = found
        .into_iter()
        .filter(|f| state.copies.keeps(f, p, n, None))
        .collect();
    state.copies.note_moves(&r.moves);
    let (shared, spread) = std::mem::take(&mut state.spreading);
    if shared == r.before {
        state.copies.extend(spread);
    }
    state.copies.extend(stamp.copies.iter().cloned());
    // Each event once, by its place in the door's input.
    let mut picked: BTreeMap<u64, (Option<weiquan_events::Time>, String, bool)> = BTreeMap::new();
    let mut unreadable = None;
    for q in 0..n {
        let copies = &state.copies;
        crate::read_partition_before(cluster, q, seq, SLOW * 10, |seq, batch| {
            for (s, line) in batch {
                if s.advance || s.rebuild.is_some() || s.event == 0 || s.event >= r.before {
                    continue;
                }
                let ev = match weiquan_events::parse_event(line) {
                    Ok(ev) => ev,
                    Err(e) => {
                        unreadable.get_or_insert(format!(
                            "partition {q}, stream sequence {seq}: an event does not parse: {e}"
                        ));
                        continue;
                    }
                };
                let goes = copies.route_of(&ev.body, s.all, s.of.as_deref(), q, n);
                let mine = match q == p {
                    true => goes == Route::All || goes == Route::One(p),
                    // A broadcast is in this partition's own subject too.
                    false => goes == Route::One(p) || (goes == Route::All && !s.all),
                };
                if mine {
                    let kept = picked
                        .entry(s.event)
                        .or_insert_with(|| (s.clock, line.to_owned(), q != p));
                    if kept.1 != line {
                        // One place in the input, two lines: not one door's stream.
                        unreadable.get_or_insert(format!(
                            "partition {q}, stream sequence {seq}: event {} is another line than elsewhere",
                            s.event
                        ));
                    }
                }
            }
        })
        .await?;
    }
    if let Some(problem) = unreadable {
        return Err(marker(format!("rebuilding: {problem}")));
    }
    // The replay is long and has nothing to wait for: off the runtime's threads.
    let (rules, to) = (rules.clone(), stamp.clock);
    let (engine, picked) = tokio::task::spawn_blocking(move || {
        let mut engine = Engine::new(rules);
        for (clock, line, _) in picked.values() {
            if let Ok(ev) = weiquan_events::parse_event(line) {
                weiquan_partition::apply_stamped(&mut engine, *clock, &ev);
            }
        }
        if let Some(t) = to {
            engine.advance(t);
        }
        (engine, picked)
    })
    .await
    .map_err(|e| marker(format!("rebuilding: {e}")))?;
    if let Some(log) = &mut state.log {
        for (_, line, _) in picked.values().filter(|(_, _, foreign)| *foreign) {
            let Ok((ev, extras)) = weiquan_events::parse_event_with_extras(line) else {
                continue;
            };
            if log.leaf_index().get(weiquan_events::id_digest(&ev.id)).is_none() {
                log.event(line, (&ev, &extras))
                    .map_err(|e| ClusterError::Log(e.to_string()))?;
            }
        }
    }
    tracing::info!(
        partition = p,
        events = picked.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "partition rebuilt after merchants moved"
    );
    state.engine = engine;
    Ok(found)
}

/// Leaves a partition's log keeps unwritten at most (with no finding among
/// them): one transaction and one signature for this many, not for each batch.
const FLUSH_LEAVES: usize = 8192;

/// How long leaves may wait unwritten while the partition's subject is quiet.
const FLUSH_IDLE: Duration = Duration::from_millis(100);

/// How long leaves may wait unwritten at most, however busy the subject.
const FLUSH_AGE: Duration = Duration::from_secs(1);

/// Writes what partition's log holds unwritten (on a blocking thread).
async fn flush_log(state: &mut State) -> Result<(), ClusterError> {
    let Some(mut log) = state.log.take() else {
        return Ok(());
    };
    let (log, flushed) = blocking(move || {
        let flushed = log.flush();
        (log, flushed)
    })
    .await?;
    state.log = Some(log);
    flushed.map_err(|e| ClusterError::Log(e.to_string()))
}

/// Writes the log, then the snapshot (a snapshot holds a written log's position).
async fn save_flushed(cluster: &Cluster, p: u32, state: &mut State) -> Result<(), ClusterError> {
    flush_log(state).await?;
    save(cluster, p, heavy(|| state.encode(cluster.partitions, p))).await;
    Ok(())
}

/// Ends partition `p`'s task, told to stop: handed over, what it applied
/// since its last snapshot is snapshotted first; lost, nothing is written
/// (another worker owns it now).
async fn stopped(cluster: &Cluster, p: u32, state: &mut State, why: Stop, unsaved: u64) -> Result<(), ClusterError> {
    if why == Stop::Release && unsaved > 0 {
        save_flushed(cluster, p, state).await?;
    }
    Ok(())
}

/// Applies partition `p` from its snapshot on, until told to stop.
async fn own(
    cluster: Cluster,
    rules: Arc<Rulebook>,
    cfg: WorkerConfig,
    p: u32,
    mut stop: watch::Receiver<Stop>,
    applied: Arc<AtomicU64>,
) -> Result<(), ClusterError> {
    // Told to stop while restoring (a snapshot read can stall for up to
    // SLOW): nothing is applied yet, so nothing is saved, and the partition
    // passes on at once.
    let restored = async {
        match &cfg.logs {
            Some(logs) => restore_with_log(&cluster, &rules, logs, p).await,
            None => Ok(restore(&cluster, &rules, p).await),
        }
    };
    let mut state = tokio::select! {
        biased;
        _ = stop.changed() => return Ok(()),
        state = restored => state?,
    };
    applied.store(state.index, Ordering::Relaxed);
    let events = cluster.events().await?;
    let mut reading = Reading {
        cluster: &cluster,
        rules: &rules,
        cfg: &cfg,
        p,
        applied: &applied,
        unsaved: 0,
        waiting: None,
        held: BTreeMap::new(),
        high: state.seq,
        routed: None,
        said_short: false,
        leader_failed: false,
    };
    // The consumer is made again after a failure or a quiet spell, from the
    // last message applied, each time after a walk through the stream's leader.
    let mut first = true;
    loop {
        if !first {
            reading.walk(&events, &mut state, &stop).await?;
        }
        first = false;
        // Told to stop between consumers (NATS away, or a quiet one made
        // again), or during a walk.
        let why = *stop.borrow();
        if why != Stop::Run {
            return stopped(&cluster, p, &mut state, why, reading.unsaved).await;
        }
        if reading.waiting.is_some_and(|since| since.elapsed() > GIVE_UP) {
            return Err(ClusterError::Message {
                partition: p,
                seq: state.seq,
                problem: format!("event {} never came", state.index + 1),
            });
        }
        let made = tokio::time::Instant::now();
        let deliver_policy = if state.seq == 0 {
            async_nats::jetstream::consumer::DeliverPolicy::All
        } else {
            async_nats::jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: state.seq + 1,
            }
        };
        let consumer = events
            .create_consumer(async_nats::jetstream::consumer::push::OrderedConfig {
                deliver_subject: cluster.client.new_inbox(),
                filter_subject: cluster.events_subject(p),
                deliver_policy,
                ..Default::default()
            })
            .await;
        let messages = match consumer {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        // A new consumer delivers what was held again.
        reading.restart(&state);
        let mut messages = match messages {
            Ok(m) => m,
            Err(error) => {
                tracing::warn!(partition = p, %error, "cannot read the partition; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        loop {
            // A consumer can go quiet for good when the server holding it
            // dies: after a quiet spell it is made again (cheap when idle).
            // Leaves unwritten are written once the subject is quiet for a moment.
            let pending = state.log.as_ref().is_some_and(|l| l.pending() > 0);
            let next = tokio::select! {
                biased;
                _ = stop.changed() => None,
                m = tokio::time::timeout(if pending { FLUSH_IDLE } else { crate::QUIET }, messages.next()) => Some(m),
            };
            let Some(next) = next else {
                let why = *stop.borrow();
                return stopped(&cluster, p, &mut state, why, reading.unsaved).await;
            };
            let m = match next {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => {
                    tracing::warn!(partition = p, error = %e, "reading the partition failed; resuming");
                    break;
                }
                Err(_) if pending => {
                    flush_log(&mut state).await?;
                    continue;
                }
                Err(_) | Ok(None) => break,
            };
            // Without its stream sequence a snapshot could not say where to resume.
            let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
                tracing::warn!(partition = p, "a message without JetStream metadata; resuming");
                break;
            };
            #[cfg(test)]
            if crate::tests::undelivered(&m.subject, seq) {
                continue;
            }
            (reading.receive(&mut state, &stop, seq, &m.subject, &m.payload, m.headers.as_ref())).await?;
            // A batch waited for that the consumer has not delivered for a
            // while may be missing from the replica it reads: the leader is asked.
            if reading.waiting.is_some_and(|since| since.elapsed() > crate::QUIET) && made.elapsed() > crate::QUIET {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Messages past where a new consumer would start that a walk through the
/// stream's leader reads at most: more than are held before a missing one
/// is given up on ([`HOLD`]). Those before it (a walk from [`State::low`])
/// are not counted: they are the batches applied last, their copies, and
/// the missing ones.
const WALK: usize = 2 * HOLD;

/// Partition `p`'s task reading its subject, between messages.
struct Reading<'a> {
    cluster: &'a Cluster,
    rules: &'a Arc<Rulebook>,
    cfg: &'a WorkerConfig,
    p: u32,
    /// The last event applied, as the worker reports it.
    applied: &'a AtomicU64,
    /// Where the front door records what it routed (the last index per
    /// partition), once it could be opened.
    routed: Option<async_nats::jetstream::kv::Store>,
    /// Whether the door's record was said to be past what the stream holds.
    said_short: bool,
    /// Events applied since the last snapshot.
    unsaved: u64,
    /// Since when a batch has been held for an earlier one (kept across
    /// consumers: a new one delivers the held batches again).
    waiting: Option<tokio::time::Instant>,
    /// Batches that arrived before an earlier one, by first index: (stream
    /// sequence, payload), of this read only.
    held: BTreeMap<u64, (u64, bytes::Bytes)>,
    /// The highest stream sequence applied in this read: where replay
    /// resumes once nothing is held.
    high: u64,
    /// Whether the stream's leader failed the last walk (said once).
    leader_failed: bool,
}

impl Reading<'_> {
    /// Reads again from after `state.seq`: what was held comes again.
    fn restart(&mut self, state: &State) {
        self.held.clear();
        self.high = state.seq;
    }

    /// Receives message `seq` of the partition's subject, messages coming in
    /// stream order: applies its batch, and the held ones that follow it,
    /// if it comes next; holds it if an earlier one is still to come; skips
    /// it if delivered again.
    async fn receive(
        &mut self,
        state: &mut State,
        stop: &watch::Receiver<Stop>,
        seq: u64,
        subject: &str,
        payload: &bytes::Bytes,
        headers: Option<&async_nats::HeaderMap>,
    ) -> Result<(), ClusterError> {
        let p = self.p;
        let bad = |problem: String| ClusterError::Message {
            partition: p,
            seq,
            problem,
        };
        if !self.cluster.seal_holds(subject, payload, headers) {
            return Err(bad(
                "a batch without this cluster's seal: not from its front door".into()
            ));
        }
        let batch = Stamp::read_batch(payload).map_err(bad)?;
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(()); // an empty batch says nothing
        };
        let (first, last) = (first.0.index, last.0.index);
        if last <= state.index {
            return Ok(()); // delivered again
        }
        if first > state.index + 1 {
            // An earlier batch is still to come: batches in flight together
            // can be stored in any order. A door gives a batch a minute of
            // retries; one missing for much longer is not coming.
            if self.waiting.is_none() {
                // Said once: a partition that waits is otherwise silent for up to GIVE_UP.
                tracing::warn!(
                    partition = p,
                    missing = state.index + 1,
                    arrived = first,
                    "a batch came before an earlier one; holding it until the earlier comes"
                );
            }
            let since = *self.waiting.get_or_insert_with(tokio::time::Instant::now);
            if self.held.len() >= HOLD || since.elapsed() > GIVE_UP {
                return Err(bad(format!(
                    "event {} never came ({} later batches waited {:?} for it)",
                    state.index + 1,
                    self.held.len(),
                    since.elapsed()
                )));
            }
            self.held.insert(first, (seq, payload.clone()));
            return Ok(());
        }
        self.apply(state, seq, batch).await?;
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() > state.index + 1 {
                break;
            }
            let (seq, payload) = entry.remove();
            let batch = Stamp::read_batch(&payload).map_err(|problem| ClusterError::Message {
                partition: p,
                seq,
                problem,
            })?;
            self.apply(state, seq, batch).await?;
        }
        self.applied.store(state.index, Ordering::Relaxed);
        if !self.held.is_empty() {
            // The batch waited for came; the wait for the next starts now.
            self.waiting = Some(tokio::time::Instant::now());
            return Ok(()); // replay must still resume before the batches held
        }
        self.waiting = None;
        // Snapshots are taken between batches with none held.
        state.seq = self.high;
        // A worker told it lost the lease writes nothing more.
        if self.unsaved >= self.cfg.snapshot_every && *stop.borrow() == Stop::Run {
            save_flushed(self.cluster, p, state).await?;
            self.unsaved = 0;
        }
        Ok(())
    }

    /// Applies `batch`, stored at `seq`, which comes next.
    async fn apply(&mut self, state: &mut State, seq: u64, batch: Vec<(Stamp, &str)>) -> Result<(), ClusterError> {
        self.unsaved += apply_batch(self.cluster, self.rules, self.p, state, seq, batch).await?;
        state.note_applied(seq);
        self.high = self.high.max(seq);
        Ok(())
    }

    /// The last index the front door has routed to the partition, if past
    /// `index` (as of its last record; a record that cannot be read says no).
    async fn routed_past(&mut self, index: u64) -> Option<u64> {
        if self.routed.is_none() {
            self.routed = self.cluster.kv("progress").await.ok();
        }
        let routed = self.routed.as_ref()?.get(routed_key(self.p)).await.ok().flatten();
        routed.and_then(|v| crate::number::<u64>(&v)).filter(|&r| r > index)
    }

    /// Reads through the stream's leader what the partition's subject holds
    /// after `state.seq`, a request per message, at most [`WALK`] messages;
    /// from [`State::low`] instead while a batch is held for an earlier one,
    /// or when the door routed more than was applied. A consumer reads one
    /// replica, which can lag behind the leader or, after SIGKILLs on
    /// nats-server 2.9, lack a message for good: batches held for it would
    /// wait in vain, and a last batch would never be seen (seen in CI: a
    /// partition stalled a batch short while the leader held that batch).
    async fn walk(
        &mut self,
        events: &async_nats::jetstream::stream::Stream,
        state: &mut State,
        stop: &watch::Receiver<Stop>,
    ) -> Result<(), ClusterError> {
        use async_nats::jetstream::stream::RawMessageErrorKind;
        self.restart(state);
        let subject = self.cluster.events_subject(self.p);
        let (from, waited) = (state.index, self.waiting.is_some());
        let routed = match waited {
            true => None,
            false => self.routed_past(state.index).await,
        };
        let deep = waited || routed.is_some();
        let start = state.seq;
        let mut next = if deep { state.low() } else { start } + 1;
        let mut past = 0;
        while past < WALK {
            let asked = events.get_first_raw_message_by_subject(&subject, next).await;
            // Told to stop (a lost lease writes nothing more): the caller stops.
            if *stop.borrow() != Stop::Run {
                break;
            }
            let m = match asked {
                Ok(m) => Some(m),
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => None,
                Err(error) => {
                    // A leader election, say: the next consumer reads on, and the walk after it asks again.
                    if !std::mem::replace(&mut self.leader_failed, true) {
                        tracing::warn!(partition = self.p, %error, "the stream's leader did not answer; reading the consumer alone until it does");
                    }
                    return Ok(());
                }
            };
            self.leader_failed = false; // it answered
            let Some(m) = m else { break };
            next = m.sequence + 1;
            past += usize::from(m.sequence > start);
            (self.receive(state, stop, m.sequence, &m.subject, &m.payload, Some(&m.headers))).await?;
        }
        if waited && self.waiting.is_none() || !waited && state.index > from && deep {
            tracing::info!(
                partition = self.p,
                applied = state.index - from,
                "batches the consumer had not delivered came from the stream's leader"
            );
        }
        // Nothing applied nor held (a hold is said already).
        let quiet = state.index == from && self.waiting.is_none() && !self.said_short && *stop.borrow() == Stop::Run;
        if let Some(routed) = routed.filter(|_| quiet) {
            // Said once: the door had these acknowledged, so the stream should hold them.
            self.said_short = true;
            tracing::warn!(
                partition = self.p,
                applied = state.index,
                routed,
                "the front door recorded events routed past what the stream's leader holds for this partition; waiting for them"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `test` on a multi-threaded runtime with a cluster of
    /// `partitions` (R1) named after `what` and no earlier run, on the NATS
    /// server at 127.0.0.1:4222.
    fn on_a_fresh_cluster<F: std::future::Future<Output = ()>>(
        what: &str,
        partitions: u32,
        test: impl FnOnce(Cluster) -> F,
    ) {
        if !weiquan_testkit::services::nats_available() {
            return;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let client = crate::connect("nats://127.0.0.1:4222").await.expect("connects");
            let cluster = Cluster::set_up(client, &weiquan_testkit::unique(what), partitions, 1)
                .await
                .expect("set up");
            test(cluster).await
        });
    }

    /// A front door's batches stored out of order (a door keeps several in
    /// flight) and a consumer's replica that lost two of them: the second,
    /// stored before the first, so behind where a new consumer starts once
    /// the first is applied (the third waits for it); and the last, stored
    /// before the one before it, so nothing after it says it is missing (the
    /// door's record of what it routed does). Every event is applied all the
    /// same, from the stream's leader, and the findings are one engine's;
    /// read back past three findings the consumer never delivers, the same.
    #[test]
    fn batches_a_consumer_never_delivers_are_read_from_the_leader() {
        let sim = weiquan_sim::simulate(&weiquan_sim::Config {
            merchants: 4,
            consumers: 60,
            days: 18,
            seed: 3,
            violation_rate: 0.3,
            profile: weiquan_sim::Profile::Normal,
            orders_per_day: 3.0,
        });
        let rules = Arc::new(Rulebook::builtin());
        let mut one = weiquan_partition::Partitioned::new(rules.clone(), 1);
        let mut expected = Vec::new();
        for line in &sim.lines {
            expected.extend(one.apply(line).expect("the line parses"));
        }
        assert!(
            expected.len() >= 3,
            "the stream should give findings: {}",
            expected.len()
        );

        on_a_fresh_cluster("t-undelivered", 1, |cluster| async move {
            // The batches a front door stores (on a cluster of their own),
            // with the last index of each.
            let made = Cluster::set_up(cluster.client.clone(), &weiquan_testkit::unique("t-door"), 1, 1)
                .await
                .expect("set up");
            let mut door = crate::door::FrontDoor::new(made.clone()).await.expect("a door");
            for line in &sim.lines {
                let ev = weiquan_events::parse_event(line).expect("simulated events parse");
                door.send(&ev, line).await.expect("acknowledged");
            }
            door.flush().await.expect("acknowledged");
            let last = door.sent()[0];
            let mut batches = Vec::new();
            crate::read_partition(&made, 0, Duration::from_secs(30), |_, batch| {
                let end = batch.last().map_or(0, |(s, _)| s.index);
                let mut payload = Vec::new();
                for (stamp, line) in batch {
                    stamp.write(line, &mut payload);
                }
                batches.push((end, bytes::Bytes::from(payload)));
            })
            .await
            .expect("the door's batches read");
            batches.sort_by_key(|b| b.0); // in index order (a door's can be stored otherwise)
            let n = batches.len();
            assert!(n >= 5, "batches: {n}");

            let subject = cluster.events_subject(0);
            let progress = cluster.kv("progress").await.expect("the progress bucket");
            // Stores batches `k` in this order, those marked lost on the
            // consumer's replica, and records that the door routed through `to`.
            let store = |order: Vec<(usize, bool)>, to: u64| {
                let (cluster, subject, progress, batches) = (&cluster, &subject, &progress, &batches);
                async move {
                    for (k, lost) in order {
                        // Marked lost before it is stored: a consumer
                        // reading would have it before the acknowledgement.
                        let mut events = cluster.events().await.expect("the events stream");
                        let info = events.info().await.expect("the events stream's state");
                        let seq = info.state.last_sequence + 1;
                        if lost {
                            crate::tests::never_deliver(subject, seq);
                        }
                        let ack = cluster
                            .js
                            .publish(subject.clone(), batches[k].1.clone())
                            .await
                            .expect("published");
                        assert_eq!(ack.await.expect("stored").sequence, seq, "only the test stores events");
                    }
                    progress
                        .put(routed_key(0), to.to_string().into())
                        .await
                        .expect("what the door routed, recorded");
                }
            };
            let end_of = |k: usize| batches[k].0;

            let cfg = WorkerConfig {
                name: "w".into(),
                snapshot_every: 1_000_000,
                lease: Duration::from_secs(10),
                logs: None,
                top_every: Duration::from_secs(1),
            };
            let (tell, stop) = watch::channel(Stop::Run);
            let applied = Arc::new(AtomicU64::new(0));
            let reaches = |to: u64| {
                let applied = applied.clone();
                async move {
                    let started = tokio::time::Instant::now();
                    while applied.load(Ordering::Relaxed) < to && started.elapsed() < Duration::from_secs(30) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    applied.load(Ordering::Relaxed)
                }
            };
            store(vec![(1, true), (0, false), (2, false)], end_of(2)).await;
            let task = tokio::spawn(own(cluster.clone(), rules, cfg, 0, stop, applied.clone()));
            assert_eq!(
                reaches(end_of(2)).await,
                end_of(2),
                "the second batch, stored first and never delivered"
            );
            // The walk that found it is over and a consumer reads (a walk
            // after the next batches were stored would find them unaided).
            tokio::time::sleep(Duration::from_millis(500)).await;
            // The rest, the last stored before the one before it.
            let mut rest: Vec<_> = (3..n - 2).map(|k| (k, false)).collect();
            rest.extend([(n - 1, true), (n - 2, false)]);
            store(rest, last).await;
            assert_eq!(
                reaches(last).await,
                last,
                "the last batch, stored before the one before it and never delivered"
            );
            let _ = tell.send(Stop::Lost);
            let ended = tokio::time::timeout(Duration::from_secs(10), task).await;
            assert!(
                matches!(ended, Ok(Ok(Ok(())))),
                "the task ends without an error when told to: {ended:?}"
            );

            let (all, _) = crate::read_findings(&cluster).await.expect("findings read");
            let found: Vec<_> = all.iter().map(|f| f.finding.clone()).collect();
            assert_eq!(found, expected, "the findings of one engine");
            let n = all.len() as u64;
            for seq in [1, n / 2, n] {
                crate::tests::never_deliver(&cluster.findings_subject(0), seq);
            }
            let (again, _) = crate::read_findings(&cluster).await.expect("findings read");
            assert_eq!(again, all, "findings read past three a consumer never delivered");
        });
    }

    /// Heartbeats written while they are counted (every worker writes its own
    /// each tick) are each counted once.
    #[test]
    fn heartbeats_written_while_counted_count_once() {
        on_a_fresh_cluster("t-heartbeats", 2, |cluster| async move {
            let leases = cluster.kv("leases").await.expect("leases");
            let beat = |who: &str| {
                let lease = Lease {
                    worker: who.to_owned(),
                    until: now_ms() + 60_000,
                };
                bytes::Bytes::from(serde_json::to_vec(&lease).unwrap_or_default())
            };
            for who in ["a", "b"] {
                leases.put(heartbeat_key(who), beat(who)).await.expect("heartbeat");
            }
            let writer = {
                let (leases, a, b) = (leases.clone(), beat("a"), beat("b"));
                tokio::spawn(async move {
                    // Far more often than workers beat (each tick), and still with pauses:
                    // a listing ends only when nothing new has come in.
                    loop {
                        let _ = leases.put(heartbeat_key("a"), a.clone()).await;
                        let _ = leases.put(heartbeat_key("b"), b.clone()).await;
                        let _ = leases.put(lease_key(0), a.clone()).await;
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                })
            };
            let mut counts = std::collections::BTreeSet::new();
            for _ in 0..100 {
                counts.insert(live_workers(&leases, now_ms()).await);
            }
            writer.abort();
            assert_eq!(counts, [Some(2)].into(), "two workers, counted while they beat");
        });
    }

    #[test]
    fn a_partition_state_survives_its_snapshot_and_refuses_another_layout() {
        let rules = Arc::new(Rulebook::builtin());
        let mut state = State::empty(rules.clone());
        (state.index, state.seq, state.rebuilt) = (7, 19, 5);
        // Batches applied from stream sequences 14, 12 (stored out of order) and 19.
        state.recent = [13, 14, 12, 19].into();
        state.copies.extend(["order:o1".to_owned()]);
        state.copies.note_moves(&[weiquan_partition::Move {
            merchants: vec!["m1".into()],
            from: 0,
            to: 2,
        }]);
        state.spreading = (9, vec!["campaign:c1".into()]);
        let bytes = state.encode(3, 1).expect("encodes");
        let back = State::decode(rules.clone(), &bytes, 3, 1).expect("decodes");
        assert_eq!(
            (
                back.index,
                back.seq,
                back.rebuilt,
                &back.copies,
                &back.spreading,
                &back.recent
            ),
            (7, 19, 5, &state.copies, &state.spreading, &state.recent)
        );
        assert_eq!(back.low(), 11, "a walk after the restore goes as deep as before it");
        for seq in 30..60 {
            state.note_applied(seq);
        }
        assert_eq!(state.recent.len(), RECENT, "the last batches applied only");
        assert_eq!(state.low(), 19, "and never past where a consumer starts");
        assert!(
            State::decode(rules.clone(), &bytes, 4, 1).is_err(),
            "another partition count"
        );
        assert!(State::decode(rules.clone(), &bytes, 3, 2).is_err(), "another partition");
        let mut cut = bytes.clone();
        cut[3] ^= 1;
        assert!(State::decode(rules, &cut, 3, 1).is_err(), "a flipped bit");
    }
}
