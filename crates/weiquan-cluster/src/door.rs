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
//!
//! **Doors in shards.** One door's stamps and acknowledgements cap the
//! cluster's intake (`docs/scale.md`, "Capacity model"). Several doors can
//! share a cluster's partitions: each reads the whole input and routes every
//! event (the router is deterministic, so all agree on where each subject
//! lives, on the clock, and on every move), but sends only the partitions of
//! its [`Shard`]. Moves are the one place where doors wait for each other: a
//! partition rebuilds from every partition's subject, so a door sends a
//! rebuild marker only once every other door has made durable the events
//! before it (each door records how far that holds at each flush).
//!
//! **Snapshots.** A door's routing state is its memory, rebuilt by routing
//! the input again from its start. [`FrontDoor::save`] stores it (with where
//! the caller's input stood) in the cluster's snapshots bucket, after making
//! everything routed durable; a door resumed over it reads back only what
//! the partitions received since, and the caller goes on from the saved
//! place in its input.

use crate::{publish, Cluster, ClusterError, Context, Rebuild, Stamp};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use weiquan_events::Event;
use weiquan_partition::{Route, Router};

/// Which partitions a front door sends: those whose number is `k` modulo
/// `of` (written `K/N` on the command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This door's number, from 0.
    pub k: u32,
    /// How many doors share the partitions.
    pub of: u32,
}

impl Shard {
    /// One door for every partition.
    pub const WHOLE: Shard = Shard { k: 0, of: 1 };

    /// Whether this shard's door sends partition `p`.
    pub fn owns(self, p: u32) -> bool {
        p.checked_rem(self.of) == Some(self.k)
    }

    /// Refuses a shard that names no door, or one with no partition to
    /// send among `partitions`.
    pub fn check(self, partitions: u32) -> Result<(), ClusterError> {
        let why = if self.of == 0 {
            "the number of doors must be at least 1".to_owned()
        } else if self.k >= self.of {
            format!(
                "the door's number must be below the number of doors (0 to {})",
                self.of.saturating_sub(1)
            )
        } else if self.of > partitions {
            format!("the cluster has {partitions} partitions, fewer than the doors: a door would send none")
        } else {
            return Ok(());
        };
        Err(ClusterError::Shard {
            k: self.k,
            of: self.of,
            why,
        })
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `K/N`: door K (from 0) of N.
    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || format!("`{text}`: write K/N, this door's number K (from 0) of N doors, e.g. 0/3");
        let (k, of) = text.split_once('/').ok_or_else(bad)?;
        let (k, of) = (
            k.trim().parse().map_err(|_| bad())?,
            of.trim().parse().map_err(|_| bad())?,
        );
        Ok(Shard { k, of })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.of)
    }
}

/// A place in a door's input, as its caller counts it (for files: `line`
/// lines read, `unit` 0; for a platform's stream: message `unit`, `line`
/// lines of it). The door only keeps it in its snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// A message's stream sequence, or 0.
    pub unit: u64,
    /// Lines read (of the message, or of the whole input).
    pub line: u64,
}

/// Where a door resumed from its snapshot stands in its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resumed {
    /// Everything up to here was routed: go on after it.
    pub at: Position,
    /// Events routed.
    pub routed: u64,
    /// The last event routed, and its id: the caller checks that its input
    /// has that event there (the same input as the stopped door's).
    pub last: Option<(Position, String)>,
}

/// A door's state as its snapshot holds it (`R`: its router, or a reference
/// to it when saved).
#[derive(Serialize, Deserialize)]
struct Saved<R = Router> {
    magic: [u8; 8],
    partitions: u32,
    shard: (u32, u32),
    router: R,
    routed: u64,
    /// The index of the last event stamped for each partition, all acknowledged.
    sent: Vec<u64>,
    /// The events stream's last sequence once they were: later messages
    /// are what the partitions received since.
    seq: u64,
    at: Position,
    last: Option<(Position, String)>,
    /// [`FrontDoor::input`] at `routed`.
    input: u128,
}

const MAGIC: [u8; 8] = *b"WQDOOR03";

/// The name of shard `shard`'s snapshot in the snapshots bucket.
fn snapshot_name(shard: Shard) -> String {
    format!("door-{}-of-{}", shard.k, shard.of)
}

/// Routes events into a cluster's partitions (all of them, or a
/// [`Shard`]'s). One per partition: its routing state (where each subject
/// lives) is in memory only, so it starts on empty partitions, or resumes
/// by routing its input again from the start.
pub struct FrontDoor {
    cluster: Cluster,
    shard: Shard,
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
    /// Where a door resumed from a snapshot stands in its input.
    resumed: Option<Resumed>,
    /// A digest of the ids of every event routed, in order: doors in shards
    /// compare theirs (they must read the same input). Kept by doors in
    /// shards only.
    input: u128,
    /// The events routed and the digest of their ids at this door's last
    /// [`RECORDS_KEPT`] records (doors in shards): another door's record
    /// at one of those points must say the same digest.
    recorded: std::collections::VecDeque<(u64, u128)>,
    /// Other doors' records ahead of this door (events routed → their
    /// partition and digest), compared when this door gets there: a door
    /// behind compares too, even with a door that has stopped recording.
    ahead: std::collections::BTreeMap<u64, (u32, u128)>,
    /// Another door's input ended there (its partition, and the events it
    /// routed): this door's may not go on past it.
    other_ended: Option<(u32, u64)>,
    /// This door's input has ended ([`FrontDoor::end`]).
    ended: bool,
    /// Which run of the cluster's doors this is: the events stream's first
    /// sequence (the same for every door until the stream is purged). The
    /// doors' records carry it, so that one left by a run before a purge
    /// is not compared.
    run: u64,
}

/// A door's own records it compares the other doors' with. Doors record at
/// the same points of their input (each advance, move and end): enough
/// for a door ahead by this many records to be compared still.
const RECORDS_KEPT: usize = 64;

/// Other doors' records ahead of a door, at most: a door far behind keeps
/// the nearest.
const AHEAD_KEPT: usize = 1024;

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
    /// The one front door of `cluster`, whose partitions must be empty.
    pub async fn new(cluster: Cluster) -> Result<FrontDoor, ClusterError> {
        FrontDoor::new_shard(cluster, Shard::WHOLE).await
    }

    /// A front door for `shard`'s partitions of `cluster`, which must be
    /// empty and have no door. Every door of the shards must be given the
    /// same input.
    pub async fn new_shard(cluster: Cluster, shard: Shard) -> Result<FrontDoor, ClusterError> {
        shard.check(cluster.partitions)?;
        let owned: Vec<u32> = (0..cluster.partitions).filter(|&p| shard.owns(p)).collect();
        let events = cluster.events().await?;
        let taken = |p: u32| ClusterError::NotEmpty(cluster.name.clone(), format!("partition {p}"));
        for &p in &owned {
            let subject = cluster.events_subject(p);
            if crate::last_sequence(&events, &subject, p, Duration::from_secs(60))
                .await?
                .is_some()
            {
                return Err(taken(p));
            }
        }
        // A claim per partition (compare-and-set) settles a race of two doors
        // starting at once; the loser gives back what it claimed.
        let meta = cluster.kv("meta").await?;
        let give_back = |claimed: &[u32]| {
            let meta = meta.clone();
            let claimed = claimed.to_vec();
            async move {
                for q in claimed {
                    if let Err(e) = meta.delete(claim_key(q)).await {
                        tracing::warn!(partition = q, error = %e, "a door's claim was not given back: start its door with --resume");
                    }
                }
            }
        };
        // Each claim holds the number of doors: doors that start together
        // must agree on it, or some partition would have no door.
        for (i, &p) in owned.iter().enumerate() {
            if meta.create(claim_key(p), shard.of.to_string().into()).await.is_err() {
                give_back(&owned[..i]).await;
                return Err(taken(p));
            }
        }
        for q in (0..cluster.partitions).filter(|&q| !shard.owns(q)) {
            let theirs = (meta.get(claim_key(q)).await)
                .ctx("reading the other doors' claims")?
                .and_then(|v| crate::number::<u32>(&v));
            if let Some(of) = theirs.filter(|&of| of != shard.of) {
                give_back(&owned).await;
                return Err(ClusterError::Shard {
                    k: shard.k,
                    of: shard.of,
                    why: format!(
                        "partition {q} has a door of {of} doors: every door of a cluster that starts must say the same number of doors"
                    ),
                });
            }
        }
        // Records left by an earlier run over these partitions (a purged
        // stream) would let other doors pass a move too early.
        let progress = cluster.kv("progress").await?;
        for &p in &owned {
            progress
                .put(through_key(p), "0".into())
                .await
                .ctx("resetting what the partitions hold")?;
        }
        // A snapshot left under this shard's name is of partitions since
        // emptied (a stream purged): never to be resumed from.
        if let Err(e) = cluster.forget(&snapshot_name(shard)).await {
            tracing::warn!(error = %e, "an old door snapshot was not deleted");
        }
        let n = cluster.partitions as usize;
        FrontDoor::at(cluster, shard, Router::new(n as u32), vec![0; n]).await
    }

    /// A door over `cluster` sending `shard`'s partitions, which hold `sent` events each.
    async fn at(cluster: Cluster, shard: Shard, router: Router, sent: Vec<u64>) -> Result<FrontDoor, ClusterError> {
        let n = cluster.partitions as usize;
        let progress = cluster.kv("progress").await?;
        // An empty stream says 0 until its first message, which is 1.
        let run = (cluster.events().await?.info().await)
            .ctx("reading the events stream")?
            .state
            .first_sequence
            .max(1);
        Ok(FrontDoor {
            run,
            progress,
            shard,
            router,
            acked: sent.clone(),
            held: vec![(0, String::new()); n],
            held_marker: vec![0; n],
            sent,
            routed: 0,
            open: vec![(Vec::new(), 0); n],
            in_flight: (0..n).map(|_| Default::default()).collect(),
            failed: None,
            resumed: None,
            input: 0,
            recorded: Default::default(),
            ahead: Default::default(),
            other_ended: None,
            ended: false,
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
        FrontDoor::resume_shard(cluster, Shard::WHOLE, false).await
    }

    /// [`FrontDoor::resume`] for `shard`'s partitions only: the doors that
    /// stopped may have been sharded otherwise (a partition's subject is
    /// all that is read back).
    ///
    /// With `from_snapshot`, when the shard's door saved a snapshot
    /// ([`FrontDoor::save`]) the door starts from it: it reads back only
    /// what each partition received after it, and [`FrontDoor::resumed`]
    /// says where in the input the caller must go on (giving the input from
    /// its start would send events twice). A snapshot that cannot be read
    /// or used is passed over (logged), and so is one over partitions that
    /// no longer hold what it says (a purged stream): `resumed` is then
    /// `None`, and the input is given again from its start.
    pub async fn resume_shard(cluster: Cluster, shard: Shard, from_snapshot: bool) -> Result<FrontDoor, ClusterError> {
        shard.check(cluster.partitions)?;
        let meta = cluster.kv("meta").await?;
        let n = cluster.partitions as usize;
        let saved = match from_snapshot {
            true => Saved::load(&cluster, shard).await,
            false => None,
        };
        let mut sent = saved.as_ref().map_or_else(|| vec![0; n], |s| s.sent.clone());
        let after = saved.as_ref().map_or(0, |s| s.seq);
        let mut held = vec![(0, String::new()); n];
        let mut held_marker = vec![0; n];
        for p in (0..cluster.partitions).filter(|&p| shard.owns(p)) {
            meta.put(claim_key(p), shard.of.to_string().into())
                .await
                .ctx("claiming the partitions")?;
            let mut indexes = Vec::new();
            let last = &mut held[p as usize];
            let marker = &mut held_marker[p as usize];
            // Indexes up to the snapshot's are all stored (a copy of a batch
            // stored twice can come later in the stream: left out).
            let base = sent[p as usize];
            let limit = std::time::Duration::from_secs(300);
            crate::read_partition_between(&cluster, p, after, u64::MAX, limit, |_, batch| {
                for (stamp, line) in batch.into_iter().filter(|(s, _)| s.index > base) {
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
            if let Some(k) = first_gap(indexes.iter().map(|i| i - base)) {
                return Err(ClusterError::Unresumable {
                    why: format!(
                        "partition {p} has no event {} but later ones (a batch lost as the door stopped)",
                        base + k
                    ),
                });
            }
            sent[p as usize] = base + indexes.len() as u64;
        }
        tracing::info!(?held, snapshot = saved.is_some(), "front door resuming");
        let (router, resumed, input) = match saved {
            Some(s) => (
                s.router,
                Some(Resumed {
                    at: s.at,
                    routed: s.routed,
                    last: s.last,
                }),
                s.input,
            ),
            None => (Router::new(n as u32), None, 0),
        };
        let mut door = FrontDoor::at(cluster, shard, router, sent).await?;
        door.routed = resumed.as_ref().map_or(0, |r| r.routed);
        door.resumed = resumed;
        door.input = input;
        door.held = held;
        door.held_marker = held_marker;
        Ok(door)
    }

    /// Where in its input a door resumed from a snapshot goes on (`None`:
    /// a new door, or one resumed without a snapshot, from the start).
    pub fn resumed(&self) -> Option<&Resumed> {
        self.resumed.as_ref()
    }

    /// Makes everything routed durable, then saves the door's state (its
    /// routing state, what it sent) with `at`, where its input stands, and
    /// `last`, the last event routed and where: a door resumed later starts
    /// there ([`FrontDoor::resume_shard`]). Whether it saved: a resumed
    /// door still routing events its partitions hold already saves nothing
    /// until it has passed them (a snapshot cannot say what they hold beyond
    /// it). Failing to store it is only logged (the previous snapshot
    /// stays, or none, and a resume routes more again); failing to flush is
    /// an error, as ever.
    pub async fn save(&mut self, at: Position, last: Option<(Position, String)>) -> Result<bool, ClusterError> {
        let shard = self.shard;
        let catching_up = (0..self.cluster.partitions)
            .filter(|&p| shard.owns(p))
            .any(|p| self.held[p as usize].0.max(self.held_marker[p as usize]) > self.routed);
        if catching_up {
            return Ok(false);
        }
        self.flush().await?;
        let started = std::time::Instant::now();
        let stored = async {
            let seq = (self.cluster.events().await?.info().await)
                .ctx("reading the events stream")?
                .state
                .last_sequence;
            let saved = Saved {
                magic: MAGIC,
                partitions: self.cluster.partitions,
                shard: (self.shard.k, self.shard.of),
                router: &self.router,
                routed: self.routed,
                sent: self.sent.clone(),
                seq,
                at,
                last,
                input: self.input,
            };
            let bytes = crate::with_checksum(
                postcard::to_stdvec(&saved)
                    .map_err(|e| ClusterError::Log(format!("the door's state does not encode: {e}")))?,
            );
            self.cluster.write_snapshot(&snapshot_name(self.shard), &bytes).await?;
            Ok::<_, ClusterError>(bytes.len())
        };
        match stored.await {
            Ok(bytes) => tracing::info!(
                routed = self.routed,
                bytes,
                took_ms = started.elapsed().as_millis() as u64,
                "front door saved its state"
            ),
            Err(e) => tracing::warn!(error = %e, "the door's state was not saved; a resume routes more again"),
        }
        Ok(true)
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
        let shard = self.shard;
        for p in targets.filter(|&p| shard.owns(p)) {
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
        // Only doors in shards compare it (a lone door's snapshot is resumed
        // by a lone door): no hash per event for a lone door.
        if self.shard.of > 1 {
            self.input = next_input_digest(self.input, &ev.id);
            // Another door recorded where this one now is (one compare an event).
            if self.ahead.first_key_value().is_some_and(|(&at, _)| at <= self.routed) {
                self.compare_ahead()?;
            }
            if let Some((p, at)) = self.other_ended.filter(|&(_, at)| self.routed > at) {
                self.diverged(p, at)?;
            }
        }
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
        let markers: Vec<u32> = weiquan_partition::rebuilding(self.cluster.partitions, &moves, spread)
            .into_iter()
            .filter(|&p| self.shard.owns(p) && event > self.held[p as usize].0.max(self.held_marker[p as usize]))
            .collect();
        if !markers.is_empty() {
            self.await_other_doors(event).await?;
        }
        for p in markers {
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
        let shard = self.shard;
        for p in (0..self.cluster.partitions).filter(|&p| shard.owns(p)) {
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

    /// The door's input has ended (the end of files, not a stop): as
    /// [`FrontDoor::advance`], and its record says so, so that doors in
    /// shards whose inputs end elsewhere are stopped (one input a prefix
    /// of the other's). Nothing is to be sent after it.
    pub async fn end(&mut self) -> Result<(), ClusterError> {
        self.ended = true;
        self.advance().await
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
        self.record_routed().await
    }

    /// Records, for each partition this door sends, what the workers must
    /// reach (for `weiquan cluster status`) and that every event routed so
    /// far is durable there (for the other doors' rebuilds:
    /// [`FrontDoor::await_other_doors`]). Called after a flush. Retried for
    /// a while; what the other doors wait for is a failure if not recorded.
    async fn record_routed(&mut self) -> Result<(), ClusterError> {
        let mut records = Vec::new();
        for p in (0..self.cluster.partitions).filter(|&p| self.shard.owns(p)) {
            records.push((crate::worker::routed_key(p), self.acked[p as usize].to_string()));
            // Only the other doors read it: a lone door need not write it.
            if self.shard.of > 1 {
                records.push((
                    through_key(p),
                    format!(
                        "{} {:032x} {}{}",
                        self.routed,
                        self.input,
                        self.run,
                        if self.ended { " end" } else { "" }
                    ),
                ));
            }
        }
        // All at once: one round trip to the stream's quorum, not one each.
        let progress = &self.progress;
        let puts = records.iter().map(|(key, value)| async move {
            let mut tries = 0;
            loop {
                match progress.put(key, value.clone().into()).await {
                    Ok(_) => return Ok(()),
                    Err(e) if tries >= 29 => return Err(e).ctx(format!("recording {key} in the progress bucket")),
                    Err(_) => tries += 1,
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        futures::future::try_join_all(puts).await?;
        if self.shard.of > 1 {
            if self.recorded.back().is_none_or(|&(routed, _)| routed != self.routed) {
                if self.recorded.len() == RECORDS_KEPT {
                    self.recorded.pop_front();
                }
                self.recorded.push_back((self.routed, self.input));
            }
            // Every record compares: doors given different inputs are
            // stopped even on a stream where they never wait for each other.
            for (p, record) in self.others_through().await {
                self.compare_input(p, record)?;
            }
        }
        Ok(())
    }

    /// What the doors of the partitions this door does not send recorded:
    /// the events they routed and the digest of their ids (a failed read,
    /// as during a leader election, counts as nothing routed).
    async fn others_through(&self) -> Vec<(u32, Through)> {
        let others = (0..self.cluster.partitions).filter(|&p| !self.shard.owns(p));
        let reads = others.map(|p| async move {
            let record = match self.progress.get(through_key(p)).await {
                Ok(value) => value.as_deref().map_or(Through::NOTHING, |v| read_through(v, self.run)),
                Err(e) => {
                    tracing::debug!(partition = p, error = %e, "reading how far a door has come");
                    Through::NOTHING
                }
            };
            (p, record)
        });
        futures::future::join_all(reads).await
    }

    /// Stops the door when partition `p`'s door recorded a digest of the
    /// first `through` events' ids other than this door's own record there
    /// (when it still has it): the two doors read different inputs.
    /// A record ahead of this door is kept, and compared when the door gets
    /// there ([`FrontDoor::compare_ahead`]). Inputs that end at different
    /// events differ too.
    fn compare_input(&mut self, p: u32, record: Through) -> Result<(), ClusterError> {
        let Through { through, input, ended } = record;
        let Some(theirs) = input else {
            return Ok(()); // a reset record: nothing routed yet
        };
        if (ended && self.routed > through) || (self.ended && through > self.routed) {
            return self.diverged(p, through.min(self.routed));
        }
        if ended {
            self.other_ended = Some((p, through));
        }
        if through > self.routed {
            if self.ahead.len() < AHEAD_KEPT {
                self.ahead.entry(through).or_insert((p, theirs));
            }
            return Ok(());
        }
        match self.recorded.iter().find(|(routed, _)| *routed == through) {
            Some(&(_, mine)) if mine != theirs => self.diverged(p, through),
            _ => Ok(()),
        }
    }

    /// Compares the other doors' records kept for where this door now is,
    /// and forgets those it has passed.
    fn compare_ahead(&mut self) -> Result<(), ClusterError> {
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() > self.routed {
                break;
            }
            let (through, (p, theirs)) = entry.remove_entry();
            if through == self.routed && theirs != self.input {
                return self.diverged(p, through);
            }
        }
        Ok(())
    }

    /// Stops the door: partition `p`'s door read another input among the
    /// first `through` events.
    fn diverged(&mut self, p: u32, through: u64) -> Result<(), ClusterError> {
        self.failed = Some("another door read another input".into());
        Err(ClusterError::Diverged {
            partition: p,
            event: through + 1,
        })
    }

    /// Waits until each partition another door sends holds every event
    /// before `event` (its door recorded so): a rebuild at `event` reads
    /// every partition's subject up to its marker. Every door routes the
    /// same input and records at each rebuild's flush, so none waits for
    /// one that waits for it.
    async fn await_other_doors(&mut self, event: u64) -> Result<(), ClusterError> {
        let started = tokio::time::Instant::now();
        let mut told = Duration::ZERO;
        loop {
            let mut behind = Vec::new();
            for (p, record) in self.others_through().await {
                // Where that door stands where this one stood, their inputs
                // so far must be the same.
                self.compare_input(p, record)?;
                if record.through + 1 < event {
                    behind.push(p);
                }
            }
            if behind.is_empty() {
                return Ok(());
            }
            // Said every ten seconds: a door that never comes (not started,
            // or given another input) keeps this one waiting.
            if started.elapsed() >= told + Duration::from_secs(10) {
                told = started.elapsed();
                tracing::warn!(
                    event,
                    partitions = ?behind,
                    "a rebuild waits for the doors of these partitions to route the events before it; are they running, on the same input?"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Events acknowledged by JetStream, per partition (by index).
    pub fn acked(&self) -> &[u64] {
        &self.acked
    }

    /// The index of the last event stamped for each partition: what its
    /// workers will have applied once they catch up (after a flush). 0 for
    /// a partition of another shard's door.
    pub fn sent(&self) -> &[u64] {
        &self.sent
    }

    /// The partitions this door sends.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// Groups of merchants moved, and groups of subjects spread to every
    /// partition, so far ([`Router::moved`], [`Router::spreads`]): each
    /// made partitions rebuild from the stream.
    pub fn moved(&self) -> (u64, u64) {
        (self.router.moved(), self.router.spreads())
    }
}

impl Saved {
    /// Shard `shard`'s snapshot of `cluster`, when there is one that can be
    /// used; why not is logged.
    async fn load(cluster: &Cluster, shard: Shard) -> Option<Saved> {
        let why = match cluster.read_snapshot(&snapshot_name(shard)).await {
            Ok(None) => return None,
            Ok(Some(bytes)) => match Saved::decode(&bytes, cluster.partitions, shard) {
                Ok(saved) => match saved.still_held(cluster, shard).await {
                    Ok(()) => return Some(saved),
                    Err(why) => why,
                },
                Err(why) => why,
            },
            Err(e) => e.to_string(),
        };
        tracing::warn!(%why, "the door's snapshot is not usable; routing the input again from its start");
        None
    }

    /// Whether each of `shard`'s partitions that the snapshot says holds
    /// events still holds its first one from before the snapshot: not so
    /// after a purge, when the partitions start again.
    async fn still_held(&self, cluster: &Cluster, shard: Shard) -> Result<(), String> {
        let events = cluster.events().await.map_err(|e| e.to_string())?;
        for p in (0..cluster.partitions).filter(|&p| shard.owns(p) && self.sent[p as usize] > 0) {
            let first = events
                .get_first_raw_message_by_subject(cluster.events_subject(p), 1)
                .await;
            match first {
                Ok(m) if m.sequence <= self.seq => {}
                Ok(_) | Err(_) => {
                    return Err(format!(
                    "partition {p} no longer holds the messages the snapshot was taken over (the stream was purged?)"
                ))
                }
            }
        }
        Ok(())
    }

    fn decode(bytes: &[u8], partitions: u32, shard: Shard) -> Result<Saved, String> {
        let saved: Saved = postcard::from_bytes(crate::checked(bytes)?).map_err(|e| e.to_string())?;
        if saved.magic != MAGIC {
            return Err("a snapshot of another format".into());
        }
        if saved.partitions != partitions
            || saved.shard != (shard.k, shard.of)
            || saved.sent.len() != partitions as usize
        {
            return Err(format!(
                "of another layout (door {}/{} of {} partitions)",
                saved.shard.0, saved.shard.1, saved.partitions
            ));
        }
        Ok(saved)
    }
}

/// The digest of a door's input after `digest` and then event `id`: XXH3
/// of the digest so far and the id. A hash of both, not a fold of the ids'
/// own digests: a fold by rotation and XOR repeated itself every 128
/// events, so two inputs in another order could come to the same digest
/// (found by a review).
fn next_input_digest(digest: u128, id: &str) -> u128 {
    let mut hash = xxhash_rust::xxh3::Xxh3::new();
    hash.update(&digest.to_le_bytes());
    hash.update(id.as_bytes());
    hash.digest128()
}

/// Another door's `through.p<n>` record: the events it routed, the digest
/// of their ids, and whether its input ended there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Through {
    through: u64,
    input: Option<u128>,
    ended: bool,
}

impl Through {
    /// A record that says nothing routed.
    const NOTHING: Through = Through {
        through: 0,
        input: None,
        ended: false,
    };
}

/// A `through.p<n>` record (`routed digest run`, then ` end` at the end of
/// the input) read by a door of run `run`. A record of another run (left
/// before the stream was purged) or of none (a reset) says nothing routed.
fn read_through(value: &[u8], run: u64) -> Through {
    let text = std::str::from_utf8(value).unwrap_or_default();
    let mut parts = text.split(' ');
    let through = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let input = parts.next().and_then(|d| u128::from_str_radix(d, 16).ok());
    match parts.next().and_then(|r| r.parse::<u64>().ok()) {
        Some(of) if of == run => Through {
            through,
            input,
            ended: parts.next() == Some("end"),
        },
        _ => Through::NOTHING,
    }
}

/// The key of a door's claim on partition `p` (in the meta bucket).
fn claim_key(p: u32) -> String {
    format!("door.p{p}")
}

/// The key of the number of events routed before which partition `p` holds
/// every event its door sends it (in the progress bucket).
fn through_key(p: u32) -> String {
    format!("through.p{p}")
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

#[cfg(test)]
mod tests {
    use super::{next_input_digest, read_through};

    /// A door reads another door's record only when it is of its own run:
    /// one left before the stream was purged, or a reset, says nothing.
    #[test]
    fn records_of_another_run_say_nothing() {
        let record = format!("42 {:032x} 7", 0xabcu128);
        let read = |record: &str, run| {
            let r = read_through(record.as_bytes(), run);
            (r.through, r.input, r.ended)
        };
        assert_eq!(read(&record, 7), (42, Some(0xabc), false));
        assert_eq!(read(&format!("{record} end"), 7), (42, Some(0xabc), true));
        assert_eq!(read(&record, 8), (0, None, false));
        assert_eq!(read("0", 7), (0, None, false));
        assert_eq!(read("42 abc", 7), (0, None, false), "a record of no run");
    }

    fn digest(ids: &[String]) -> u128 {
        ids.iter().fold(0, |d, id| next_input_digest(d, id))
    }

    /// Inputs in another order have another digest, even two events 128
    /// apart swapped, or two halves of 128 events each given the other way
    /// round (a fold by rotation and XOR gave both the same digest).
    #[test]
    fn an_input_in_another_order_has_another_digest() {
        let ids: Vec<String> = (0..256).map(|i| format!("e{i}")).collect();
        let mut swapped = ids.clone();
        swapped.swap(3, 131);
        let halves: Vec<String> = ids[128..].iter().chain(&ids[..128]).cloned().collect();
        assert_ne!(digest(&ids), digest(&swapped));
        assert_ne!(digest(&ids), digest(&halves));
        assert_eq!(digest(&ids), digest(&ids.clone()), "the same input, the same digest");
    }
}
