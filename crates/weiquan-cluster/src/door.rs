//! The front door: routes each event to its partition's subject, stamped
//! with the watermark, and waits for JetStream to acknowledge it.

use crate::{publish, Cluster, ClusterError, Context, Stamp};
use weiquan_events::Event;
use weiquan_partition::{Route, Router};

/// Routes events into a cluster's partitions. One per cluster: its routing
/// state (where each subject lives) is in memory only, so it starts on an
/// empty stream.
pub struct FrontDoor {
    cluster: Cluster,
    router: Router,
    /// The index of the last message sent to each partition.
    sent: Vec<u64>,
}

impl FrontDoor {
    /// A front door for `cluster`, whose events stream must be empty.
    pub async fn new(cluster: Cluster) -> Result<FrontDoor, ClusterError> {
        let mut events = cluster.events().await?;
        if events.info().await.ctx("reading the events stream")?.state.messages > 0 {
            return Err(ClusterError::NotEmpty(cluster.name.clone()));
        }
        Ok(FrontDoor {
            router: Router::new(cluster.partitions),
            sent: vec![0; cluster.partitions as usize],
            cluster,
        })
    }

    /// Routes `ev` (whose line as received is `raw`) and returns once every
    /// partition it goes to has it durably: acknowledged by JetStream, so
    /// replicated on a quorum of the stream's servers.
    pub async fn send(&mut self, ev: &Event<'_>, raw: &str) -> Result<Route, ClusterError> {
        let clock = self.router.clock().map(|t| t.to_string());
        let route = self.router.route(ev);
        let copies = self.router.take_copies();
        let targets = match route {
            Route::One(p) => p..p + 1,
            Route::All => 0..self.cluster.partitions,
        };
        for p in targets {
            let stamp = Stamp {
                index: self.sent[p as usize] + 1,
                clock: clock.clone(),
                all: route == Route::All,
                copies: copies.clone(),
                advance: false,
            };
            self.put(p, &stamp, raw).await?;
        }
        Ok(route)
    }

    /// Moves every partition's clock to the global clock: partitions that
    /// got no recent event fire the deadlines it has passed. Called at the
    /// end of an input, and every so often on a live one.
    pub async fn advance(&mut self) -> Result<(), ClusterError> {
        let Some(clock) = self.router.clock() else {
            return Ok(());
        };
        for p in 0..self.cluster.partitions {
            let stamp = Stamp {
                index: self.sent[p as usize] + 1,
                clock: Some(clock.to_string()),
                all: false,
                copies: Vec::new(),
                advance: true,
            };
            self.put(p, &stamp, "").await?;
        }
        Ok(())
    }

    async fn put(&mut self, p: u32, stamp: &Stamp, raw: &str) -> Result<(), ClusterError> {
        let id = format!("{}.{}", p, stamp.index);
        publish(
            &self.cluster.js,
            &self.cluster.events_subject(p),
            &id,
            stamp.encode(raw),
        )
        .await?;
        self.sent[p as usize] = stamp.index;
        Ok(())
    }

    /// The index of the last message each partition was sent: what its
    /// workers will have applied once they catch up.
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
