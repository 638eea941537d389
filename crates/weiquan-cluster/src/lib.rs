//! weiquan across machines, on NATS JetStream (`docs/scale.md`).
//!
//! - **Partitions are subjects.** Partition `n` of a cluster named `c` is the
//!   subject `c.p.n` of one replicated stream; a [`door::FrontDoor`] routes
//!   each event there with [`weiquan_partition::Router`], stamped with the
//!   global clock (the watermark) and a per-partition index.
//! - **Workers own partitions by lease.** A [`worker`] holds a lease per
//!   partition in a JetStream key-value bucket, restores the partition's
//!   engine from its last snapshot (an object-store object), replays the
//!   subject after it and publishes the findings the partition reports.
//! - **Exact by determinism.** A partition's input is an append-only subject,
//!   so its state after message `i` is the same whoever computed it. Findings
//!   carry `(partition, index, k)` as their JetStream message id: a worker that
//!   replays after a restore, or one that has not yet noticed it lost its
//!   lease, publishes the same finding under the same id, which the stream
//!   drops as a duplicate and [`read_findings`] checks is identical. Leases
//!   keep the work from being done twice; correctness does not rest on them.
//! - **Tamper-evident logs.** With [`logs::Logs`], each partition keeps its
//!   own C2SP tlog-tiles log of the events it applied and the findings it
//!   reported (the same leaves whoever writes them), and a top log records
//!   every partition log's size and root, so one checkpoint commits to all.

pub mod door;
pub mod logs;
pub mod monitor;
pub mod worker;

use async_nats::jetstream::{self, kv, object_store, stream};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use weiquan_engine::Finding;

/// Everything that can go wrong in the cluster layer. Each message says what
/// failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A partition's log or the top log failed (`logs`).
    #[error("log: {0}")]
    Log(String),
    /// A NATS request failed.
    #[error("NATS: {what} failed: {error}; check that the NATS servers in --nats are up and have JetStream enabled")]
    Nats {
        /// What was being done.
        what: String,
        /// The client's error.
        error: String,
    },
    /// The cluster name cannot name streams and buckets.
    #[error("cluster name `{0}`: use 1 to 32 lowercase letters, digits or `-`")]
    Name(String),
    /// A worker name cannot be a key.
    #[error("worker name `{0}`: use 1 to 64 letters, digits, `-` or `_`")]
    WorkerName(String),
    /// The cluster was set up with another partition count.
    #[error("cluster `{name}` has {have} partitions, not {want}: partitions cannot change while events are in the stream; use the same --partitions, or another --cluster name")]
    Partitions {
        /// The cluster.
        name: String,
        /// What the cluster has.
        have: u32,
        /// What was asked for.
        want: u32,
    },
    /// The cluster has not been set up.
    #[error("cluster `{0}` is not set up: run `weiquan cluster route` first (it creates the streams)")]
    NotSetUp(String),
    /// A front door cannot continue a stream it did not start.
    #[error("cluster `{0}` already has a front door for {1}, or holds routed events there: a new door starts on empty partitions (a door's saved routing state is for resuming it, not for a second door); take over from a door that stopped with --resume, or use another --cluster name")]
    NotEmpty(String, String),
    /// Doors in shards were given different inputs.
    #[error("the door of partition {partition} has read another input than this door (they differ before event {event}): doors in shards must read the same input, in the same order; stop them and route into a new --cluster")]
    Diverged {
        /// A partition of the other door.
        partition: u32,
        /// Where they differ, at the latest.
        event: u64,
    },
    /// A door's shard does not fit the cluster.
    #[error("door shard {k}/{of}: {why}")]
    Shard {
        /// The shard's number.
        k: u32,
        /// How many doors share the partitions.
        of: u32,
        /// What is wrong.
        why: String,
    },
    /// A batch could not be stored, even after a minute of retries.
    #[error("a batch of routed events was not stored ({why}): the stream may now miss events, so this front door stops; route the input again into a new --cluster")]
    DoorFailed {
        /// What failed.
        why: String,
    },
    /// A stopped door's stream cannot be continued exactly.
    #[error("the front door cannot resume: {why}; route the input again into a new --cluster")]
    Unresumable {
        /// What is wrong with the stream.
        why: String,
    },
    /// Another publisher used a front door's message id.
    #[error("message id {id} was already in the stream: another front door is writing to this cluster; stop it, and route into a new --cluster")]
    Taken {
        /// The message id.
        id: String,
    },
    /// A message on a partition subject is not what a front door writes.
    #[error("partition {partition}, stream sequence {seq}: {problem}; the stream was not written by this weiquan's front door")]
    Message {
        /// The partition.
        partition: u32,
        /// Its stream sequence.
        seq: u64,
        /// What is wrong.
        problem: String,
    },
    /// The same finding id was published with different contents.
    #[error("finding {id} was published twice with different contents: the partition's workers disagree (different rulebooks or builds?)")]
    Disagree {
        /// The finding's message id.
        id: String,
    },
}

/// Says what was being done when a NATS request failed.
pub(crate) trait Context<T> {
    /// The error, saying what was being done.
    fn ctx(self, what: impl Into<String>) -> Result<T, ClusterError>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: impl Into<String>) -> Result<T, ClusterError> {
        self.map_err(|e| ClusterError::Nats {
            what: what.into(),
            error: e.to_string(),
        })
    }
}

/// Connects to NATS at a comma-separated list of server URLs (any one will do).
pub async fn connect(urls: &str) -> Result<async_nats::Client, ClusterError> {
    let addrs: Vec<&str> = urls.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(addrs.as_slice())
        .await
        .ctx(format!("connecting to {urls}"))
}

/// A cluster: its name, partition count and the JetStream handles it uses.
#[derive(Clone)]
pub struct Cluster {
    /// The connection.
    pub client: async_nats::Client,
    /// The JetStream context.
    pub js: jetstream::Context,
    /// The cluster's name (streams and buckets are named after it).
    pub name: String,
    /// The number of partitions.
    pub partitions: u32,
    /// The secret that seals every batch and finding ([`Cluster::sealed_with`]).
    seal: Option<Arc<[u8]>>,
}

/// The header that carries a message's seal.
pub const SEAL_HEADER: &str = "Wq-Seal";

impl Cluster {
    /// Seals every batch the front door sends and every finding a worker
    /// publishes with HMAC-SHA-256 under `secret` (bound to the subject),
    /// and refuses, on reading, any message without a valid seal. Every
    /// door, worker and reader of a cluster must have the same secret.
    /// Without one, NATS permissions alone decide who may publish.
    pub fn sealed_with(mut self, secret: &[u8]) -> Cluster {
        self.seal = Some(secret.into());
        self
    }

    /// The seal of `payload` on `subject`, hex, when the cluster has a secret.
    pub fn seal(&self, subject: &str, payload: &[u8]) -> Option<String> {
        self.seal
            .as_ref()
            .map(|key| hex::encode(mac(key, subject, payload).finalize().into_bytes()))
    }

    /// Whether a message's seal is right (always, when the cluster has no secret).
    pub(crate) fn seal_holds(&self, subject: &str, payload: &[u8], headers: Option<&async_nats::HeaderMap>) -> bool {
        let Some(key) = &self.seal else {
            return true;
        };
        let given = headers
            .and_then(|h| h.get(SEAL_HEADER))
            .and_then(|v| hex::decode(v.as_str()).ok());
        given.is_some_and(|given| mac(key, subject, payload).verify_slice(&given).is_ok())
    }
}

/// HMAC-SHA-256 over the subject, a zero byte and the payload: a sealed
/// message moved to another subject (another partition or cluster) fails.
fn mac(key: &[u8], subject: &str, payload: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(subject.as_bytes());
    mac.update(&[0]);
    mac.update(payload);
    mac
}

/// The stream of routed events.
fn events_stream(name: &str) -> String {
    format!("WQ_{}_EVENTS", name.to_uppercase().replace('-', "_"))
}

/// The stream of findings.
fn findings_stream(name: &str) -> String {
    format!("WQ_{}_FINDINGS", name.to_uppercase().replace('-', "_"))
}

/// The name of cluster `name`'s JetStream bucket `what` ([`Cluster::bucket`]).
fn bucket(name: &str, what: &str) -> String {
    format!("wq-{name}-{what}")
}

/// Reads `object` (named `name`) to its end. async-nats 0.42 panics inside
/// an object's read when JetStream does not answer as the read starts
/// (nats-io/nats.rs#1615): the read runs as a task of its own, whose panic
/// is this read's error, and which is aborted when this future is dropped
/// (a timeout).
async fn read_object(mut object: object_store::Object, name: &str) -> Result<Vec<u8>, ClusterError> {
    use tokio::io::AsyncReadExt;
    let read = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        let mut bytes = Vec::new();
        object.read_to_end(&mut bytes).await.map(|_| bytes)
    }));
    let what = format!("reading the snapshot {name}");
    read.await.ctx(what.clone())?.ctx(what)
}

/// Publishes `payload` to `subject` under message id `id` until JetStream
/// acknowledges it (for at most a minute): a lost reply or a leader election
/// is retried under the same id, which the stream's duplicate window turns
/// into one message. With `fresh`, the id must be new: a duplicate on the
/// first attempt means another publisher used it, and fails.
pub(crate) async fn publish(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    payload: bytes::Bytes,
    fresh: bool,
    seal: Option<&str>,
) -> Result<(), ClusterError> {
    let started = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(20);
    let mut first = true;
    let budget = Duration::from_secs(60);
    loop {
        // Each attempt within what is left of the minute: a client whose
        // buffer is full while NATS is away would otherwise wait for ever.
        let attempt = async {
            let mut message = jetstream::context::Publish::build()
                .message_id(id)
                .payload(payload.clone());
            if let Some(seal) = seal {
                message = message.header(SEAL_HEADER, seal);
            }
            let ack = js
                .send_publish(subject.to_owned(), message)
                .await
                .map_err(|e| e.to_string())?;
            ack.await.map_err(|e| e.to_string())
        };
        let left = budget.saturating_sub(started.elapsed()).max(Duration::from_millis(100));
        let sent = tokio::time::timeout(left, attempt)
            .await
            .unwrap_or_else(|_| Err("no acknowledgement in time".into()));
        let error = match sent {
            Ok(ack) if fresh && first && ack.duplicate => return Err(ClusterError::Taken { id: id.to_owned() }),
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        first = false;
        if started.elapsed() > budget {
            return Err(ClusterError::Nats {
                what: format!("publishing {id} to {subject} (retried for a minute)"),
                error,
            });
        }
        tracing::debug!(%subject, %id, %error, "publish not acknowledged; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(500));
    }
}

impl Cluster {
    /// Creates the cluster's streams and buckets with `replicas` copies each
    /// (3 on a 3-node cluster), or opens them if they exist with the same
    /// partition count.
    pub async fn set_up(
        client: async_nats::Client,
        name: &str,
        partitions: u32,
        replicas: usize,
    ) -> Result<Cluster, ClusterError> {
        check_name(name)?;
        let js = jetstream::new(client.clone());
        let partitions = partitions.max(1);
        let stream_config = |stream: String, subjects: String| stream::Config {
            name: stream,
            subjects: vec![subjects],
            num_replicas: replicas,
            storage: stream::StorageType::File,
            // Long enough for any retry of a publish, and of a finding replayed soon after.
            duplicate_window: Duration::from_secs(600),
            ..Default::default()
        };
        js.get_or_create_stream(stream_config(events_stream(name), format!("{name}.p.*")))
            .await
            .ctx("creating the events stream")?;
        js.get_or_create_stream(stream_config(findings_stream(name), format!("{name}.f.*")))
            .await
            .ctx("creating the findings stream")?;
        for what in ["meta", "leases", "progress"] {
            // The bucket's stream as `create_key_value` would make it: that
            // call first asks for account details that NATS 2.9 answers in a
            // form the client cannot read.
            js.get_or_create_stream(stream::Config {
                name: format!("KV_{}", bucket(name, what)),
                subjects: vec![format!("$KV.{}.>", bucket(name, what))],
                max_messages_per_subject: 1,
                num_replicas: replicas,
                storage: stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                // Reads go to the leader: a direct get may be answered by a
                // replica just restarted and not caught up, which showed a
                // routed count of 0 after a node came back (the SIGKILL test).
                allow_direct: false,
                discard: stream::DiscardPolicy::New,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .ctx(format!("creating the {what} bucket"))?;
        }
        if js.get_object_store(bucket(name, "snapshots")).await.is_err() {
            js.create_object_store(object_store::Config {
                bucket: bucket(name, "snapshots"),
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .ctx("creating the snapshots bucket")?;
        }
        let meta = js
            .get_key_value(bucket(name, "meta"))
            .await
            .ctx("opening the meta bucket")?;
        // The first to set up fixes the count; everyone after must agree.
        if meta.create("partitions", partitions.to_string().into()).await.is_err() {
            let have = read_partitions(&meta, name).await?;
            if have != partitions {
                return Err(ClusterError::Partitions {
                    name: name.to_owned(),
                    have,
                    want: partitions,
                });
            }
        }
        Ok(Cluster::unsealed(client, js, name, partitions))
    }

    fn unsealed(client: async_nats::Client, js: jetstream::Context, name: &str, partitions: u32) -> Cluster {
        Cluster {
            client,
            js,
            name: name.to_owned(),
            partitions,
            seal: None,
        }
    }

    /// [`Cluster::set_up`] on the servers at `urls`, retried for up to
    /// `limit` while they start or elect their JetStream leaders.
    pub async fn set_up_when_ready(
        urls: &str,
        name: &str,
        partitions: u32,
        replicas: usize,
        limit: Duration,
    ) -> Result<Cluster, ClusterError> {
        let started = tokio::time::Instant::now();
        loop {
            let set_up = match connect(urls).await {
                Ok(client) => Cluster::set_up(client, name, partitions, replicas).await,
                Err(e) => Err(e),
            };
            match set_up {
                Err(e @ ClusterError::Nats { .. }) if started.elapsed() < limit => {
                    tracing::info!(error = %e, "waiting for JetStream");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                done => return done,
            }
        }
    }

    /// Opens a cluster a front door has set up.
    pub async fn open(client: async_nats::Client, name: &str) -> Result<Cluster, ClusterError> {
        check_name(name)?;
        let js = jetstream::new(client.clone());
        let meta = js
            .get_key_value(bucket(name, "meta"))
            .await
            .map_err(|_| ClusterError::NotSetUp(name.to_owned()))?;
        let partitions = read_partitions(&meta, name).await?;
        Ok(Cluster::unsealed(client, js, name, partitions))
    }

    /// The subject of partition `p`'s events.
    pub fn events_subject(&self, p: u32) -> String {
        format!("{}.p.{p}", self.name)
    }

    /// The subject of partition `p`'s findings.
    pub fn findings_subject(&self, p: u32) -> String {
        format!("{}.f.{p}", self.name)
    }

    /// The events stream.
    pub async fn events(&self) -> Result<stream::Stream, ClusterError> {
        self.js
            .get_stream(events_stream(&self.name))
            .await
            .ctx("opening the events stream")
    }

    /// The name of the cluster's JetStream bucket `what`: the key-value
    /// buckets `leases`, `progress` and `meta`, the object store `snapshots`.
    pub fn bucket(&self, what: &str) -> String {
        bucket(&self.name, what)
    }

    /// A key-value bucket of the cluster (`leases`, `progress`).
    pub(crate) async fn kv(&self, what: &str) -> Result<kv::Store, ClusterError> {
        self.js
            .get_key_value(self.bucket(what))
            .await
            .ctx(format!("opening the {what} bucket"))
    }

    /// The snapshots bucket.
    pub(crate) async fn snapshots(&self) -> Result<object_store::ObjectStore, ClusterError> {
        self.js
            .get_object_store(self.bucket("snapshots"))
            .await
            .ctx("opening the snapshots bucket")
    }

    /// Deletes partition `p`'s snapshot (if any): its next owner applies it
    /// from the start, and checks its whole log against what it computes.
    pub async fn forget_snapshot(&self, p: u32) -> Result<(), ClusterError> {
        self.forget(&worker::lease_key(p)).await
    }

    /// The snapshot `name` from the snapshots bucket (`None`: there is none).
    pub(crate) async fn read_snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, ClusterError> {
        let store = self.snapshots().await?;
        let object = match store.get(name).await {
            Ok(o) => o,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx(format!("reading the snapshot {name}")),
        };
        read_object(object, name).await.map(Some)
    }

    /// Stores `bytes` as the snapshot `name`, replacing any.
    pub(crate) async fn write_snapshot(&self, name: &str, bytes: &[u8]) -> Result<(), ClusterError> {
        let store = self.snapshots().await?;
        let mut reader = bytes;
        (store.put(name, &mut reader).await).ctx(format!("writing the snapshot {name}"))?;
        Ok(())
    }

    /// Deletes the snapshot `name` (if any).
    pub(crate) async fn forget(&self, name: &str) -> Result<(), ClusterError> {
        match self.snapshots().await?.delete(name).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx("deleting a snapshot"),
        }
    }

    /// The index of the last event (advances included) each partition has
    /// applied, as its workers last reported (every quarter of a lease, and
    /// when a partition is released).
    pub async fn progress(&self) -> Result<Vec<u64>, ClusterError> {
        let found = self.each_partition("progress", worker::progress_key, number).await?;
        Ok(found.into_iter().map(|n| n.unwrap_or(0)).collect())
    }

    /// The index of each partition's last event the front door has routed
    /// and had acknowledged, as of its last flush: what [`Cluster::progress`]
    /// reaches once the workers are done.
    pub async fn routed(&self) -> Result<Vec<u64>, ClusterError> {
        let found = self.each_partition("progress", worker::routed_key, number).await?;
        Ok(found.into_iter().map(|n| n.unwrap_or(0)).collect())
    }

    /// The workers holding each partition's lease now (`None`: nobody).
    pub async fn owners(&self) -> Result<Vec<Option<String>>, ClusterError> {
        let now = worker::now_ms();
        self.each_partition("leases", worker::lease_key, |v| {
            serde_json::from_slice::<worker::Lease>(v)
                .ok()
                .filter(|l| !l.expired(now))
                .map(|l| l.worker)
        })
        .await
    }

    /// Reads partition by partition the key `key(p)` of bucket `what`.
    async fn each_partition<T>(
        &self,
        what: &str,
        key: fn(u32) -> String,
        read: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Vec<Option<T>>, ClusterError> {
        let kv = self.kv(what).await?;
        let mut out = Vec::with_capacity(self.partitions as usize);
        for p in 0..self.partitions {
            let value = kv.get(key(p)).await.ctx(format!("reading the {what} bucket"))?;
            out.push(value.and_then(|v| read(&v)));
        }
        Ok(out)
    }
}

pub(crate) fn check_name(name: &str) -> Result<(), ClusterError> {
    valid_name(name, 32, |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        .then_some(())
        .ok_or_else(|| ClusterError::Name(name.to_owned()))
}

/// Whether `name` has 1 to `max` bytes, each `allowed`: what stream, bucket
/// and key names can hold.
pub(crate) fn valid_name(name: &str, max: usize, allowed: impl Fn(u8) -> bool) -> bool {
    !name.is_empty() && name.len() <= max && name.bytes().all(allowed)
}

/// A number stored as text in a key-value bucket.
pub(crate) fn number<T: std::str::FromStr>(value: &[u8]) -> Option<T> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

async fn read_partitions(meta: &kv::Store, name: &str) -> Result<u32, ClusterError> {
    meta.get("partitions")
        .await
        .ctx("reading the partition count")?
        .and_then(|v| number(&v))
        .ok_or_else(|| ClusterError::NotSetUp(name.to_owned()))
}

/// What a front door adds to an event on a partition subject. A message
/// holds a batch of events, each as two lines: its stamp, then the event's
/// line as received (empty for an advance).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// The event's place in its partition, from 1: a worker applies them in
    /// this order, each once.
    #[serde(rename = "i")]
    pub index: u64,
    /// The event's place in the door's whole input, from 1 (the same in
    /// every partition a broadcast goes to; 0 for an advance): what a
    /// resumed door replays its routing state from.
    #[serde(rename = "g", default, skip_serializing_if = "is_zero")]
    pub event: u64,
    /// The global clock (largest `at` routed before this event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<weiquan_events::Time>,
    /// The event went to every partition.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// Subjects every partition keeps from this event on ([`weiquan_partition::Copies`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<String>,
    /// No event: the partition's clock moves to `clock` (an idle partition
    /// catching up with the others).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub advance: bool,
    /// The merchant the event belongs to
    /// ([`weiquan_partition::Router::owner_merchant`]): where it goes after
    /// merchants move ([`weiquan_partition::Copies::route_of`]).
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub of: Option<String>,
    /// No event: merchants moved, or subjects spread to every partition
    /// (in `copies`), and the partition rebuilds its state before the
    /// event routed next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<Rebuild>,
}

/// What a rebuild marker says ([`Stamp::rebuild`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebuild {
    /// The event (its place in the door's input) whose routing moved them:
    /// the partition is rebuilt from the events before it that it owns now.
    pub before: u64,
    /// The merchants moved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<weiquan_partition::Move>,
    /// Not the last marker of this rebuild: it only carries a share of the
    /// subjects spread (a large group's names take several stamps, each
    /// well under NATS's largest message); the last one rebuilds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl Stamp {
    /// Appends this stamp and the event's `line` to a batch.
    pub fn write(&self, line: &str, batch: &mut Vec<u8>) {
        // A stamp is plain data: serialising it cannot fail.
        if serde_json::to_writer(&mut *batch, self).is_ok() {
            batch.push(b'\n');
            batch.extend_from_slice(line.as_bytes());
            batch.push(b'\n');
        }
    }

    /// Splits a batch into its stamps and event lines.
    pub fn read_batch(payload: &[u8]) -> Result<Vec<(Stamp, &str)>, String> {
        let text = std::str::from_utf8(payload).map_err(|e| format!("not UTF-8: {e}"))?;
        let mut lines = text.split_terminator('\n');
        let mut out = Vec::new();
        while let Some(head) = lines.next() {
            let stamp = serde_json::from_str(head).map_err(|e| format!("bad stamp: {e}"))?;
            let line = lines.next().ok_or("a stamp without its event line")?;
            out.push((stamp, line));
        }
        Ok(out)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Reads partition `p`'s subject from its first message to its last one
/// now, handing each batch's stamps and lines to `each` in stream order. A
/// consumer that goes quiet (a server catching up after a restart) is made
/// again from the next sequence, for up to `limit`.
pub async fn read_partition(
    cluster: &Cluster,
    p: u32,
    limit: Duration,
    each: impl FnMut(u64, Vec<(Stamp, &str)>),
) -> Result<(), ClusterError> {
    read_partition_before(cluster, p, u64::MAX, limit, each).await
}

/// [`read_partition`], of the messages before stream sequence `before`
/// only: what a partition held when a message was stored, however much was
/// stored since.
pub async fn read_partition_before(
    cluster: &Cluster,
    p: u32,
    before: u64,
    limit: Duration,
    each: impl FnMut(u64, Vec<(Stamp, &str)>),
) -> Result<(), ClusterError> {
    read_partition_between(cluster, p, 0, before, limit, each).await
}

/// [`read_partition`], of the messages after stream sequence `after` and
/// before `before` only.
pub(crate) async fn read_partition_between(
    cluster: &Cluster,
    p: u32,
    after: u64,
    before: u64,
    limit: Duration,
    mut each: impl FnMut(u64, Vec<(Stamp, &str)>),
) -> Result<(), ClusterError> {
    use jetstream::consumer::{push::OrderedConfig, DeliverPolicy};
    let events = cluster.events().await?;
    let subject = cluster.events_subject(p);
    let started = tokio::time::Instant::now();
    let Some(last) = last_sequence(&events, &subject, p, limit).await? else {
        return Ok(());
    };
    let end = last.min(before.saturating_sub(1));
    let mut next = after + 1;
    while next <= end {
        if started.elapsed() > limit {
            return Err(ClusterError::Nats {
                what: format!("reading partition {p} to its end"),
                error: format!("stuck at stream sequence {next} of {end} after {limit:?}"),
            });
        }
        let made = events
            .create_consumer(OrderedConfig {
                deliver_subject: cluster.client.new_inbox(),
                filter_subject: subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: next },
                ..Default::default()
            })
            .await;
        let Ok(mut messages) = (match made {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }) else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        while let Ok(Some(Ok(m))) = tokio::time::timeout(QUIET, messages.next()).await {
            let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
                break;
            };
            if seq > end {
                next = seq; // past the end: the subject holds nothing more before it
                break;
            }
            let bad = |problem: String| ClusterError::Message {
                partition: p,
                seq,
                problem,
            };
            if !cluster.seal_holds(&m.subject, &m.payload, m.headers.as_ref()) {
                return Err(bad(
                    "a batch without this cluster's seal: not from its front door".into()
                ));
            }
            let batch = Stamp::read_batch(&m.payload).map_err(bad)?;
            each(seq, batch);
            next = seq + 1;
            if seq >= end {
                break;
            }
        }
    }
    Ok(())
}

/// The stream sequence of partition `p`'s last message (`subject`), or
/// `None` when it has none. Only "no message" means nothing was routed
/// there: a timeout or a leader election read as that would leave a
/// partition's events out unseen, so those are asked again for up to `limit`.
pub(crate) async fn last_sequence(
    events: &stream::Stream,
    subject: &str,
    p: u32,
    limit: Duration,
) -> Result<Option<u64>, ClusterError> {
    let started = tokio::time::Instant::now();
    loop {
        match events.get_last_raw_message_by_subject(subject).await {
            Ok(last) => return Ok(Some(last.sequence)),
            Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(e) if started.elapsed() > limit => {
                return Err(ClusterError::Nats {
                    what: format!("finding where partition {p} ends"),
                    error: e.to_string(),
                })
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// `body` with its SHA-256 after it: a snapshot as stored.
pub(crate) fn with_checksum(mut body: Vec<u8>) -> Vec<u8> {
    let sum = Sha256::digest(&body);
    body.extend_from_slice(&sum);
    body
}

/// The body of a snapshot stored by [`with_checksum`], if its checksum holds.
pub(crate) fn checked(bytes: &[u8]) -> Result<&[u8], String> {
    let (body, sum) = bytes.split_at(bytes.len().checked_sub(32).ok_or("too short")?);
    if Sha256::digest(body).as_slice() != sum {
        return Err("checksum mismatch".into());
    }
    Ok(body)
}

/// A finding as a worker publishes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// The partition that reported it.
    pub partition: u32,
    /// The index of the message at which it came.
    pub index: u64,
    /// Its place among that message's findings.
    pub k: u32,
    /// The finding.
    pub finding: Finding,
    /// Its leaf in the partition's log, when the workers keep logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf: Option<u64>,
}

impl Published {
    /// Its JetStream message id: the same whichever worker computes it.
    pub fn id(&self) -> String {
        format!("{}.{}.{}", self.partition, self.index, self.k)
    }
}

/// Findings [`read_findings`] reads from the stream's leader, one request
/// each, when its consumer goes quiet or fails, before it makes another.
const LEADER_STRETCH: u64 = 256;

/// How long a consumer may deliver nothing before it is taken as stalled:
/// it is made again, or the stream's leader is asked instead.
pub(crate) const QUIET: Duration = Duration::from_secs(3);

/// Every finding the cluster's workers have published, once each, in
/// (partition, index, k) order, and how many repeats were dropped. All are
/// held in memory (a finding is a few hundred bytes; a stream of a billion
/// events would want a reader that streams per partition). A repeat
/// (a finding replayed after the stream's duplicate window) must equal the
/// first; otherwise the workers disagree and this fails.
pub async fn read_findings(cluster: &Cluster) -> Result<(Vec<Published>, u64), ClusterError> {
    let mut stream = cluster
        .js
        .get_stream(findings_stream(&cluster.name))
        .await
        .ctx("opening the findings stream")?;
    let state = stream.info().await.ctx("reading the findings stream")?.state.clone();
    let mut seen: std::collections::BTreeMap<(u32, u64, u32), Published> = Default::default();
    let mut repeats = 0;
    let mut take = |seq: u64, subject: &str, payload: &[u8], headers: Option<&async_nats::HeaderMap>| {
        let partition = subject.rsplit('.').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if !cluster.seal_holds(subject, payload, headers) {
            return Err(ClusterError::Message {
                partition,
                seq,
                problem: "a finding without this cluster's seal".into(),
            });
        }
        let f: Published = serde_json::from_slice(payload).map_err(|e| ClusterError::Message {
            partition,
            seq,
            problem: format!("a finding that does not decode: {e}"),
        })?;
        match seen.entry((f.partition, f.index, f.k)) {
            std::collections::btree_map::Entry::Occupied(first) => {
                if first.get() != &f {
                    return Err(ClusterError::Disagree { id: f.id() });
                }
                repeats += 1;
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(f);
            }
        }
        Ok(())
    };
    // The stream's leader, for what the consumer's replica lacks (one that
    // lags, or, on nats-server 2.9 after SIGKILLs, lost a message for good).
    // A sequence the leader has no message for was deleted: nothing to read.
    let from_leader = |seq: u64| {
        let stream = &stream;
        async move {
            match stream.get_raw_message(seq).await {
                Ok(m) => Ok(Some(m)),
                Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => Ok(None),
                Err(e) => Err(ClusterError::Nats {
                    what: format!("reading finding {seq} from the findings stream's leader"),
                    error: e.to_string(),
                }),
            }
        }
    };
    let (mut next, last) = (state.first_sequence.max(1), state.last_sequence);
    // A consumer from `next`, made again once the leader has filled in a
    // stretch after it went quiet or failed.
    while next <= last {
        let consumer = stream
            .create_consumer(jetstream::consumer::push::OrderedConfig {
                deliver_subject: cluster.client.new_inbox(),
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence: next },
                ..Default::default()
            })
            .await
            .ctx("reading the findings stream")?;
        let mut messages = consumer.messages().await.ctx("reading the findings stream")?;
        while next <= last {
            // Through `to` from the leader: what the consumer passed over (its
            // replica lacks it), or a stretch once it is quiet or failed.
            let (to, delivered) = match tokio::time::timeout(QUIET, messages.next()).await {
                Ok(Some(Ok(m))) => {
                    let seq = m.info().ctx("reading a finding's stream sequence")?.stream_sequence;
                    #[cfg(test)]
                    if tests::undelivered(&m.subject, seq) {
                        continue;
                    }
                    (seq.min(last + 1).saturating_sub(1), Some((seq, m)))
                }
                Ok(Some(Err(error))) => {
                    tracing::debug!(%error, "reading the findings stream failed; asking its leader");
                    (last.min(next + LEADER_STRETCH - 1), None)
                }
                Ok(None) | Err(_) => (last.min(next + LEADER_STRETCH - 1), None),
            };
            while next <= to {
                if let Some(m) = from_leader(next).await? {
                    take(next, &m.subject, &m.payload, Some(&m.headers))?;
                }
                next += 1;
            }
            let Some((seq, m)) = delivered else {
                break; // a new consumer from `next`
            };
            if (next..=last).contains(&seq) {
                take(seq, &m.subject, &m.payload, m.headers.as_ref())?;
                next = seq + 1;
            }
        }
    }
    Ok((seen.into_values().collect(), repeats))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages consumers do not deliver, by (subject, stream sequence): a
    /// replica that lost them. A real one cannot be made to order
    /// (nats-server 2.9 lost messages after SIGKILLs, now and then).
    static UNDELIVERED: std::sync::Mutex<std::collections::BTreeSet<(String, u64)>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());

    /// Whether a consumer skips message `seq` of `subject` (see [`UNDELIVERED`]).
    pub(crate) fn undelivered(subject: &str, seq: u64) -> bool {
        UNDELIVERED.lock().is_ok_and(|s| s.contains(&(subject.to_owned(), seq)))
    }

    /// Consumers skip message `seq` of `subject` from now on.
    pub(crate) fn never_deliver(subject: &str, seq: u64) {
        if let Ok(mut s) = UNDELIVERED.lock() {
            s.insert((subject.to_owned(), seq));
        }
    }

    /// An object read whose stream is gone makes async-nats panic (its
    /// consumer's creation is unwrapped): the read says so as an error.
    #[test]
    fn an_object_read_that_panics_in_the_client_is_an_error() {
        if !weiquan_testkit::services::nats_available() {
            return;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let client = connect("nats://127.0.0.1:4222").await.expect("connects");
            let js = jetstream::new(client);
            let bucket = weiquan_testkit::unique("t-read-panics");
            let store = js
                .create_object_store(object_store::Config {
                    bucket: bucket.clone(),
                    ..Default::default()
                })
                .await
                .expect("a bucket");
            store.put("p0", &mut &b"some bytes"[..]).await.expect("stored");
            let object = store.get("p0").await.expect("its description");
            js.delete_stream(format!("OBJ_{bucket}"))
                .await
                .expect("the stream deleted");
            let read = tokio::time::timeout(Duration::from_secs(10), read_object(object, "p0"))
                .await
                .expect("the read ends");
            let error = read.expect_err("a read without its stream fails").to_string();
            assert!(error.contains("reading the snapshot p0"), "{error}");
        });
    }
}
