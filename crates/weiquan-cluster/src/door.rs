//! The front door: routes each event to its partition's subject, stamped
//! with the watermark, in batches that JetStream acknowledges.
//!
//! One message per event, each waited for, would cap the door at one
//! round trip per event; a batch per partition (up to [`BATCH`] events)
//! amortises it. Each partition has one batch in flight at a time, so a
//! retried batch (same message id) can never overtake the next.

use crate::{publish, Cluster, ClusterError, Context, Stamp};
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
    /// Each partition's open batch: its bytes and how many events it holds.
    open: Vec<(Vec<u8>, usize)>,
    /// Each partition's sealed batch, sent but not yet acknowledged: its
    /// bytes and the indexes of its first and last events.
    sealed: Vec<Option<(bytes::Bytes, u64, u64)>>,
    /// Events acknowledged by JetStream, per partition.
    acked: Vec<u64>,
}

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
        Ok(FrontDoor {
            router: Router::new(cluster.partitions),
            sent: vec![0; n],
            open: vec![(Vec::new(), 0); n],
            sealed: vec![None; n],
            acked: vec![0; n],
            cluster,
        })
    }

    /// Routes `ev` (whose line as received is `raw`) into its partitions'
    /// batches, sending a batch that is full. It is durable (acknowledged by
    /// JetStream, so replicated on a quorum of the stream's servers) once
    /// its batch is sent: at the latest after [`FrontDoor::flush`].
    pub async fn send(&mut self, ev: &Event<'_>, raw: &str) -> Result<Route, ClusterError> {
        let clock = self.router.clock();
        let route = self.router.route(ev);
        let copies = self.router.take_copies();
        let targets = match route {
            Route::One(p) => p..p + 1,
            Route::All => 0..self.cluster.partitions,
        };
        for p in targets {
            let stamp = Stamp {
                index: self.sent[p as usize] + 1,
                clock,
                all: route == Route::All,
                copies: copies.clone(),
                advance: false,
            };
            self.put(p, &stamp, raw).await?;
        }
        Ok(route)
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
                clock: Some(clock),
                all: false,
                copies: Vec::new(),
                advance: true,
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

    /// Seals partition `p`'s open batch (unless a sealed one is still
    /// unacknowledged), sends the sealed batch and waits for its
    /// acknowledgement. A sealed batch never changes: one that failed is sent
    /// again by the next call with the same id and the same bytes, so a
    /// retry of a batch that had in fact been stored is dropped as the
    /// duplicate it is, and nothing is lost or skipped.
    async fn send_batch(&mut self, p: u32) -> Result<(), ClusterError> {
        let i = p as usize;
        if self.sealed[i].is_none() && self.open[i].1 > 0 {
            let (bytes, n) = std::mem::take(&mut self.open[i]);
            let last = self.sent[i];
            self.sealed[i] = Some((bytes.into(), last + 1 - n as u64, last));
        }
        let Some((bytes, first, last)) = self.sealed[i].clone() else {
            return Ok(());
        };
        let id = format!("{p}.{first}");
        publish(&self.cluster.js, &self.cluster.events_subject(p), &id, bytes, true).await?;
        self.sealed[i] = None;
        self.acked[i] = last;
        Ok(())
    }

    /// Sends every partition's batch and waits until all are acknowledged.
    pub async fn flush(&mut self) -> Result<(), ClusterError> {
        for p in 0..self.cluster.partitions {
            // A batch sealed by an earlier, failed call goes first, then the open one.
            while self.sealed[p as usize].is_some() || self.open[p as usize].1 > 0 {
                self.send_batch(p).await?;
            }
        }
        Ok(())
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

    /// Subjects whose state would have had to move between partitions
    /// ([`Router::misplaced`]): while this is 0 the cluster's findings are
    /// exactly one engine's.
    pub fn misplaced(&self) -> u64 {
        self.router.misplaced()
    }
}
