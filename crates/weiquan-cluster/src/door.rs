//! The front door: routes each event to its partition's subject, stamped
//! with the watermark, in batches that JetStream acknowledges.
//!
//! One message per event, each waited for, would cap the door at one
//! round trip per event; a batch per partition (up to [`BATCH`] events)
//! amortises it, and up to [`WINDOW`] batches per partition are in flight
//! at once. A batch is retried under its own id with its own bytes, so a
//! retry of a batch that had been stored is dropped as a duplicate. Batches
//! in flight together can be stored in any order (a retry, or simply the
//! runtime's scheduling), which the workers put back in index order.

use crate::{publish, Cluster, ClusterError, Context, Rebuild, Stamp};
use weiquan_events::Event;
use weiquan_partition::{Route, Router};

/// Routes events into a cluster's partitions. One per cluster: its routing
/// state (where each subject lives) is in memory only, so it starts on an
/// empty stream.
pub struct FrontDoor {
    cluster: Cluster,
    router: Router,
    /// The index of the last event stamped for each partition.
    sent: Vec<u64>,
    /// Events routed so far (the last stamp's `event`).
    routed: u64,
    /// For a resumed door, per partition: the input number and id of the
    /// last event the partition holds already (events up to it are not sent
    /// there again).
    held: Vec<(u64, String)>,
    /// For a resumed door, per partition: the latest event before which the
    /// partition holds a rebuild marker already (none is sent again).
    held_marker: Vec<u64>,
    /// Each partition's open batch: its bytes and how many events it holds.
    open: Vec<(Vec<u8>, usize)>,
    /// Each partition's batches sent and not yet acknowledged, oldest
    /// first: each answers with the index of its last event.
    in_flight: Vec<std::collections::VecDeque<tokio::task::JoinHandle<Result<u64, ClusterError>>>>,
    /// Events acknowledged by JetStream, per partition.
    acked: Vec<u64>,
    /// The progress bucket, where the door records what it routed.
    progress: async_nats::jetstream::kv::Store,
    /// Why an earlier batch failed: its events may be lost, so the door
    /// refuses everything after (its routing state no longer matches the stream).
    failed: Option<String>,
}

impl Drop for FrontDoor {
    /// A door dropped unflushed stops its batches in flight: none of them
    /// was acknowledged to anyone.
    fn drop(&mut self) {
        self.abort_in_flight();
    }
}

/// Batches in flight per partition, at most.
pub const WINDOW: usize = 8;

/// Events per message, at most.
pub const BATCH: usize = 512;

impl FrontDoor {
    /// A front door for `cluster`, whose events stream must be empty.
    pub async fn new(cluster: Cluster) -> Result<FrontDoor, ClusterError> {
        let mut events = cluster.events().await?;
        if events.info().await.ctx("reading the events stream")?.state.messages > 0 {
            return Err(ClusterError::NotEmpty(cluster.name.clone()));
        }
        // The claim (compare-and-set) settles a race of two doors starting at once.
        let meta = cluster.kv("meta").await?;
        if meta.create("door", "claimed".into()).await.is_err() {
            return Err(ClusterError::NotEmpty(cluster.name.clone()));
        }
        let n = cluster.partitions as usize;
        FrontDoor::at(cluster, Router::new(n as u32), vec![0; n]).await
    }

    /// A door over `cluster` whose partitions hold `sent` events each.
    async fn at(cluster: Cluster, router: Router, sent: Vec<u64>) -> Result<FrontDoor, ClusterError> {
        let n = cluster.partitions as usize;
        let progress = cluster.kv("progress").await?;
        Ok(FrontDoor {
            progress,
            router,
            acked: sent.clone(),
            held: vec![(0, String::new()); n],
            held_marker: vec![0; n],
            sent,
            routed: 0,
            open: vec![(Vec::new(), 0); n],
            in_flight: (0..n).map(|_| Default::default()).collect(),
            failed: None,
            cluster,
        })
    }

    /// A door that takes over `cluster` from one that stopped (ended, or
    /// crashed with batches unsent). Give it the stopped door's input again,
    /// from the start: it routes every event again (rebuilding where each
    /// subject lives, and the clock) but sends an event to a partition only
    /// if that partition does not hold it yet. Each partition's subject is a
    /// prefix of what the stopped door stamped for it, so each goes on
    /// exactly where it ends, and the workers see what one door would have
    /// sent. Events that reached some partitions but not others (a batch
    /// lost as the door stopped) are completed.
    ///
    /// The old door must be gone: nothing fences it out. Every partition is
    /// read back once. A partition with a hole (a batch lost while a later
    /// one was stored) cannot be continued exactly and is refused; so is an
    /// input whose events differ from the stream's (checked by id).
    pub async fn resume(cluster: Cluster) -> Result<FrontDoor, ClusterError> {
        let meta = cluster.kv("meta").await?;
        meta.put("door", "resumed".into()).await.ctx("claiming the cluster")?;
        let n = cluster.partitions as usize;
        let mut sent = vec![0; n];
        let mut held = vec![(0, String::new()); n];
        let mut held_marker = vec![0; n];
        for p in 0..cluster.partitions {
            let mut indexes = Vec::new();
            let last = &mut held[p as usize];
            let marker = &mut held_marker[p as usize];
            crate::read_partition(&cluster, p, std::time::Duration::from_secs(300), |_, batch| {
                for (stamp, line) in batch {
                    indexes.push(stamp.index);
                    // A partial marker alone does not rebuild: its rebuild is sent again whole.
                    if let Some(r) = stamp.rebuild.as_ref().filter(|r| !r.partial) {
                        *marker = (*marker).max(r.before);
                    }
                    if stamp.event > last.0 {
                        let id = weiquan_events::parse_event(line).map(|ev| ev.id.to_string());
                        *last = (stamp.event, id.unwrap_or_default());
                    }
                }
            })
            .await?;
            indexes.sort_unstable();
            indexes.dedup();
            if let Some(k) = first_gap(indexes.iter().copied()) {
                return Err(ClusterError::Unresumable {
                    why: format!("partition {p} has no event {k} but later ones (a batch lost as the door stopped)"),
                });
            }
            sent[p as usize] = indexes.len() as u64;
        }
        tracing::info!(?held, "front door resuming");
        let mut door = FrontDoor::at(cluster, Router::new(n as u32), sent).await?;
        door.held = held;
        door.held_marker = held_marker;
        Ok(door)
    }

    /// Routes `ev` (whose line as received is `raw`) into its partitions'
    /// batches, sending a batch that is full. It is durable (acknowledged by
    /// JetStream, so replicated on a quorum of the stream's servers) once
    /// its batch is sent: at the latest after [`FrontDoor::flush`].
    pub async fn send(&mut self, ev: &Event<'_>, raw: &str) -> Result<Route, ClusterError> {
        self.usable()?;
        let clock = self.router.clock();
        let (route, owner) = self.router.route_owned(ev);
        let copies = self.router.take_copies();
        let of = self.router.owner_merchant(owner).map(str::to_owned);
        let event = self.routed + 1;
        let moves = self.router.take_moves();
        let spread = self.router.take_spread();
        if spread || !moves.is_empty() {
            self.rebuild(event, clock, &copies, moves, spread).await?;
        }
        // After a spread every partition had the subjects from its markers
        // (or holds the event already): the event's stamps need not repeat a
        // list that can be a whole pre-sale's orders.
        let copies = if spread { Vec::new() } else { copies };
        let targets = match route {
            Route::One(p) => p..p + 1,
            Route::All => 0..self.cluster.partitions,
        };
        for p in targets {
            let (held, id) = &self.held[p as usize];
            if event == *held && **id != *ev.id {
                self.failed = Some("the input differs from the stream".into());
                return Err(ClusterError::Unresumable {
                    why: format!(
                        "event {event} of this input is `{}`, but partition {p} holds `{id}` there: give the stopped door's input again, from its start",
                        ev.id
                    ),
                });
            }
            if event <= *held {
                continue; // the partition has it already
            }
            let stamp = Stamp {
                index: self.sent[p as usize] + 1,
                event,
                clock,
                all: route == Route::All,
                copies: copies.clone(),
                advance: false,
                of: of.clone(),
                rebuild: None,
            };
            self.put(p, &stamp, raw).await?;
        }
        self.routed += 1;
        Ok(route)
    }

    /// Event `event` moved merchants or spread subjects: every event before
    /// it is made durable first (the partitions rebuild from the stream),
    /// then each partition concerned (both ends of each move; every one for
    /// a spread) gets a marker to rebuild before the event. A resumed door
    /// sends no marker to a partition that holds the event or the marker
    /// already (workers also ignore a marker sent again).
    async fn rebuild(
        &mut self,
        event: u64,
        clock: Option<weiquan_events::Time>,
        copies: &[String],
        moves: Vec<weiquan_partition::Move>,
        spread: bool,
    ) -> Result<(), ClusterError> {
        tracing::info!(event, ?moves, spread, "merchants tied: partitions rebuild");
        self.flush().await?;
        let shares = shares(copies);
        for p in weiquan_partition::rebuilding(self.cluster.partitions, &moves, spread) {
            if event <= self.held[p as usize].0.max(self.held_marker[p as usize]) {
                continue;
            }
            for (k, share) in shares.iter().enumerate() {
                let last = k + 1 == shares.len();
                let stamp = Stamp {
                    index: self.sent[p as usize] + 1,
                    event: 0,
                    clock,
                    all: false,
                    copies: share.to_vec(),
                    advance: false,
                    of: None,
                    rebuild: Some(Rebuild {
                        before: event,
                        moves: if last { moves.clone() } else { Vec::new() },
                        partial: !last,
                    }),
                };
                self.put(p, &stamp, "").await?;
            }
        }
        Ok(())
    }

    /// Moves every partition's clock to the global clock (partitions that
    /// got no recent event fire the deadlines it has passed) and flushes
    /// every batch. Called at the end of an input, and every so often on a
    /// live one.
    pub async fn advance(&mut self) -> Result<(), ClusterError> {
        let Some(clock) = self.router.clock() else {
            return self.flush().await;
        };
        for p in 0..self.cluster.partitions {
            let stamp = Stamp {
                index: self.sent[p as usize] + 1,
                event: 0,
                clock: Some(clock),
                all: false,
                copies: Vec::new(),
                advance: true,
                of: None,
                rebuild: None,
            };
            self.put(p, &stamp, "").await?;
        }
        self.flush().await
    }

    async fn put(&mut self, p: u32, stamp: &Stamp, raw: &str) -> Result<(), ClusterError> {
        let open = &mut self.open[p as usize];
        stamp.write(raw, &mut open.0);
        open.1 += 1;
        self.sent[p as usize] = stamp.index;
        if open.1 >= BATCH || open.0.len() >= 512 * 1024 {
            self.send_batch(p).await?;
        }
        Ok(())
    }

    /// Sends partition `p`'s open batch, after waiting for its oldest
    /// batch in flight if the window is full.
    async fn send_batch(&mut self, p: u32) -> Result<(), ClusterError> {
        self.usable()?;
        let i = p as usize;
        if self.open[i].1 == 0 {
            return Ok(());
        }
        // A slot first: a batch taken out of `open` is then surely sent.
        while self.in_flight[i].len() >= WINDOW {
            self.settle_oldest(i).await?;
        }
        let (bytes, n) = std::mem::take(&mut self.open[i]);
        let last = self.sent[i];
        let id = format!("{p}.{}", last + 1 - n as u64);
        let (js, subject) = (self.cluster.js.clone(), self.cluster.events_subject(p));
        let seal = self.cluster.seal(&subject, &bytes);
        self.in_flight[i].push_back(tokio::spawn(async move {
            publish(&js, &subject, &id, bytes.into(), true, seal.as_deref())
                .await
                .map(|()| last)
        }));
        Ok(())
    }

    /// Waits for partition `i`'s oldest batch in flight. It leaves the
    /// window only once settled, so a caller that gives up waiting loses
    /// nothing.
    async fn settle_oldest(&mut self, i: usize) -> Result<(), ClusterError> {
        let Some(task) = self.in_flight[i].front_mut() else {
            return Ok(());
        };
        let done = task.await;
        self.in_flight[i].pop_front();
        let done = match done {
            Ok(done) => done,
            Err(e) => Err(ClusterError::Nats {
                what: "publishing a batch".into(),
                error: e.to_string(),
            }),
        };
        match done {
            Ok(last) => {
                self.acked[i] = self.acked[i].max(last);
                Ok(())
            }
            Err(e) => {
                self.failed = Some(e.to_string());
                // Later batches would land behind a gap no one will fill.
                self.abort_in_flight();
                Err(e)
            }
        }
    }

    fn abort_in_flight(&mut self) {
        for task in self.in_flight.iter_mut().flat_map(|q| q.drain(..)) {
            task.abort();
        }
    }

    fn usable(&self) -> Result<(), ClusterError> {
        match &self.failed {
            Some(why) => Err(ClusterError::DoorFailed { why: why.clone() }),
            None => Ok(()),
        }
    }

    /// Sends every partition's open batch and waits until every batch in
    /// flight is acknowledged.
    pub async fn flush(&mut self) -> Result<(), ClusterError> {
        for p in 0..self.cluster.partitions {
            self.send_batch(p).await?;
        }
        for i in 0..self.in_flight.len() {
            while !self.in_flight[i].is_empty() {
                self.settle_oldest(i).await?;
            }
        }
        self.record_routed().await;
        Ok(())
    }

    /// Records what the workers must reach, for `weiquan cluster status`.
    /// Only a report: retried for a while, never a failure of the door.
    async fn record_routed(&self) {
        for (p, acked) in self.acked.iter().enumerate() {
            let key = crate::worker::routed_key(p as u32);
            let mut tries = 0;
            while let Err(e) = self.progress.put(&key, acked.to_string().into()).await {
                tries += 1;
                if tries >= 30 {
                    tracing::warn!(partition = p, error = %e, "what was routed is not recorded; `status` may show less");
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }

    /// Events acknowledged by JetStream, per partition (by index).
    pub fn acked(&self) -> &[u64] {
        &self.acked
    }

    /// The index of the last event stamped for each partition: what its
    /// workers will have applied once they catch up (after a flush).
    pub fn sent(&self) -> &[u64] {
        &self.sent
    }

    /// Groups of merchants moved, and groups of subjects spread to every
    /// partition, so far ([`Router::moved`], [`Router::spreads`]): each
    /// made partitions rebuild from the stream.
    pub fn moved(&self) -> (u64, u64) {
        (self.router.moved(), self.router.spreads())
    }
}

/// Bytes of subject names one rebuild marker carries at most: with the open
/// batch it joins (sent at 512 KiB), a message stays under NATS's largest
/// (1 MiB by default).
const MARKER_SHARE: usize = 256 * 1024;

/// `copies` in shares of at most [`MARKER_SHARE`] bytes of names as a stamp
/// writes them (JSON strings: an id of control characters takes six bytes a
/// character), at least one share, maybe empty.
fn shares(copies: &[String]) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut from, mut bytes) = (0, 0);
    for (i, name) in copies.iter().enumerate() {
        let written = serde_json::to_string(name).map_or(6 * name.len() + 2, |s| s.len()) + 1;
        if bytes + written > MARKER_SHARE && i > from {
            out.push(&copies[from..i]);
            (from, bytes) = (i, 0);
        }
        bytes += written;
    }
    out.push(&copies[from..]);
    out
}

/// The first number missing from `sorted` (which should run 1, 2, 3, …).
fn first_gap(sorted: impl Iterator<Item = u64>) -> Option<u64> {
    sorted.zip(1..).find(|(have, want)| have != want).map(|(_, want)| want)
}
