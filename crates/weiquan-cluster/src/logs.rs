//! One tamper-evident log per partition, and a log of logs (`docs/scale.md`,
//! "Logs").
//!
//! **A partition's log** holds, in the partition's order, the leaf of every
//! event the partition applied and of every finding it reported (whose
//! evidence are leaf indexes in the same log), under checkpoints signed with
//! the cluster's log key. A partition's input is an append-only subject and
//! the engine is deterministic, so its log is too: any worker that applies
//! the partition computes the same leaves and the same signed checkpoints
//! (Ed25519 signatures are deterministic). A worker that takes a partition
//! over, or one that has not yet seen that it lost its lease, compares what it
//! computes with the leaves already stored instead of appending them twice
//! ([`LedgerWriter::flush`]); a difference is a fork and stops the partition.
//!
//! **The top log** records, at a fixed interval, every partition log's size
//! and root hash, all in one leaf ([`TopEntry`]). Its newest checkpoint thus
//! commits to every partition log as it stood. When it records is a matter of
//! time, so its leaves are not deterministic; but every append is conditional
//! on the size its writer last read (the store refuses any other), so two
//! writers never fork it: the one that loses reads the log again.
//!
//! A receipt ([`ClusterReceipt`]) carries both proofs: the leaf in its
//! partition's tree, and that tree's root in the top log.

use crate::Cluster;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use weiquan_app::{LeafIndex, LedgerWriter, RecordError, Salting};
use weiquan_engine::{Finding, Rulebook};
use weiquan_ledger::StandardVerifier;
use weiquan_ledger::{
    hash_text, open_leaf, parse_hash_text, verify_inclusion, verify_log, verify_receipt, Hash, Ledger, LedgerError,
    LedgerReader, LogReport, LogStore, PrivateRow, Receipt, Revealed, StoreError, StoreErrorKind, VerifiedCheckpoint,
    VerifyError,
};
use weiquan_store::{Backend, Database, PrivateData};

/// A log that failed: which one, and why.
#[derive(Debug, thiserror::Error)]
#[error("{log}: {problem}")]
pub struct LogError {
    /// Which log (`partition 3's log`, `the top log`) or what setting.
    pub log: String,
    /// What went wrong.
    pub problem: LogProblem,
}

/// What went wrong with a log.
#[derive(Debug, thiserror::Error)]
pub enum LogProblem {
    /// The signing key cannot be used.
    #[error(transparent)]
    Key(#[from] weiquan_ledger::KeyError),
    /// A write needs a signing key and none was given.
    #[error("no signing key: give the cluster's log key (--log-key) to write logs")]
    NoKey,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log refused an append or a read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// An event or a finding could not be written, or the log forks.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The logs do not verify.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The log's first leaves are not those a saved state was taken over.
    #[error("its first {at} leaves are not those the snapshot was taken over: the log was replaced since")]
    Replaced {
        /// Leaves the snapshot accounts for.
        at: u64,
    },
    /// The log does not exist (a reader never creates one).
    #[error("{0}")]
    Missing(String),
    /// The log was written before partition logs were salted: it holds
    /// events as received, personal data included, and is not served.
    #[error("it was written before partition logs were salted (its events hold personal data as received): it is not served; give the cluster new --logs")]
    Unsalted,
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}

impl LogError {
    /// Whether the logs were read and found wrong (tampered with, forked,
    /// inconsistent), rather than not read at all (a database unreachable, a
    /// log missing, no key).
    pub fn is_invalid(&self) -> bool {
        let store = |e: &StoreError| e.kind == StoreErrorKind::Corrupt;
        match &self.problem {
            LogProblem::Key(_) | LogProblem::NoKey | LogProblem::Missing(_) | LogProblem::Unsalted => false,
            LogProblem::Store(e) | LogProblem::Ledger(LedgerError::Store(e)) => store(e),
            LogProblem::Verify(VerifyError::Store(e)) => store(e),
            LogProblem::Record(RecordError::Ledger(LedgerError::Store(e))) => store(e),
            LogProblem::Ledger(_)
            | LogProblem::Record(_)
            | LogProblem::Verify(_)
            | LogProblem::Replaced { .. }
            | LogProblem::Other(_) => true,
        }
    }
}

/// The logs of one cluster: where they are kept and the key that signs them.
#[derive(Clone)]
pub struct Logs {
    place: Place,
    cluster: String,
    key: Option<Arc<str>>,
}

impl std::fmt::Debug for Logs {
    /// Without the key, and without a password in the URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = match &self.place {
            Place::Postgres(url) => weiquan_store::redacted(url),
            Place::Folder(dir) => dir.display().to_string(),
        };
        (f.debug_struct("Logs"))
            .field("place", &place)
            .field("cluster", &self.cluster)
            .field("signed", &self.key.is_some())
            .finish()
    }
}

#[derive(Clone)]
enum Place {
    /// One schema per log.
    Postgres(String),
    /// One SQLite file per log.
    Folder(PathBuf),
}

/// Which of a cluster's logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Which {
    /// Partition `n`'s log.
    Partition(u32),
    /// The log of logs.
    Top,
}

impl Which {
    /// The log a path names: `top`, or `p<n>` for partition `n` (as
    /// [`Logs::origin`] ends).
    pub fn parse(name: &str) -> Option<Which> {
        match name {
            "top" => Some(Which::Top),
            _ => {
                let digits = name.strip_prefix('p')?;
                // One spelling per log: no sign, no leading zero.
                let canonical =
                    digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'));
                canonical.then(|| digits.parse().ok().map(Which::Partition)).flatten()
            }
        }
    }

    /// Its name in paths and origins: `top`, or `p<n>` ([`Which::parse`] reads it).
    pub fn short(self) -> String {
        match self {
            Which::Partition(p) => format!("p{p}"),
            Which::Top => "top".into(),
        }
    }

    fn name(self) -> String {
        match self {
            Which::Partition(p) => format!("partition {p}'s log"),
            Which::Top => "the top log".into(),
        }
    }
}

impl Logs {
    /// The logs of `cluster` kept at `place`: a PostgreSQL URL
    /// (`postgres://…`, or libpq's `host=… dbname=…`; one schema per log, `wq_<cluster>_p<n>` and
    /// `wq_<cluster>_top`), or else a folder (one SQLite file per log,
    /// `<cluster>/p<n>.db` and `<cluster>/top.db`; one machine only).
    pub fn at(place: &str, cluster: &str) -> Result<Logs, LogError> {
        crate::check_name(cluster).map_err(|e| LogError {
            log: "the cluster's logs".into(),
            problem: LogProblem::Other(e.to_string()),
        })?;
        let postgres = place.starts_with("postgres://") || place.starts_with("postgresql://")
            // libpq's key=value form: `host=… user=… dbname=…`
            || (place.contains("host=") || place.contains("dbname="));
        let place = if postgres {
            Place::Postgres(place.to_owned())
        } else {
            Place::Folder(PathBuf::from(place))
        };
        Ok(Logs {
            place,
            cluster: cluster.to_owned(),
            key: None,
        })
    }

    /// The logs of `cluster`'s connection, at `place`.
    pub fn of(cluster: &Cluster, place: &str) -> Result<Logs, LogError> {
        Logs::at(place, &cluster.name)
    }

    /// Signs new checkpoints with `key`, a signed-note private key
    /// (`PRIVATE+KEY+…`, as `weiquan keygen` writes it): the same key on
    /// every worker of the cluster.
    pub fn signed_with(mut self, key: &str) -> Result<Logs, LogError> {
        weiquan_ledger::load_signer(key).map_err(|e| LogError {
            log: "the log signing key".into(),
            problem: e.into(),
        })?;
        self.key = Some(key.trim().into());
        Ok(self)
    }

    /// The origin line of a log's checkpoints.
    pub fn origin(&self, which: Which) -> String {
        origin(&self.cluster, which)
    }

    fn database(&self, which: Which) -> Database {
        match &self.place {
            // Cluster names hold lowercase letters, digits and `-`, never `_`:
            // the schema names of two clusters cannot meet.
            Place::Postgres(url) => Database::Postgres {
                url: url.clone(),
                schema: format!("wq_{}_{}", self.cluster.replace('-', "_"), which.short()),
            },
            Place::Folder(dir) => Database::Sqlite(dir.join(&self.cluster).join(format!("{}.db", which.short()))),
        }
    }

    fn fail(which: Which) -> impl Fn(LogProblem) -> LogError {
        move |problem| LogError {
            log: which.name(),
            problem,
        }
    }

    /// A log's store, for its writer (creating it) or for a reader.
    fn open(&self, which: Which, write: bool) -> Result<Box<dyn Backend>, LogError> {
        let fail = Self::fail(which);
        let db = self.database(which);
        if !write {
            let missing = match &db {
                Database::Sqlite(path) => (!path.is_file()).then(|| path.display().to_string()),
                Database::Postgres { url, schema } => (!weiquan_store::PgStore::schema_exists(url, schema)
                    .map_err(|e| fail(e.into()))?)
                .then(|| format!("schema {schema}")),
            };
            if let Some(what) = missing {
                return Err(fail(LogProblem::Missing(format!(
                    "{what} does not exist: are --logs and --cluster what the workers were given?"
                ))));
            }
            return db.open_reader().map_err(|e| fail(e.into()));
        }
        if let Place::Folder(dir) = &self.place {
            for dir in [dir.clone(), dir.join(&self.cluster)] {
                weiquan_store::create_data_dir(&dir).map_err(|e| fail(LogProblem::Other(e.to_string())))?;
            }
        }
        db.open().map_err(|e| fail(e.into()))
    }

    fn store(&self, which: Which) -> Result<Box<dyn Backend>, LogError> {
        self.open(which, false)
    }

    fn ledger(&self, which: Which) -> Result<Ledger<Box<dyn Backend>>, LogError> {
        let fail = Self::fail(which);
        let key = self.key.as_deref().ok_or_else(|| fail(LogProblem::NoKey))?;
        let signer = weiquan_ledger::load_signer(key).map_err(|e| fail(e.into()))?;
        Ledger::open(self.open(which, true)?, signer, &self.origin(which)).map_err(|e| fail(e.into()))
    }

    /// Partition `p`'s log, written from a state that accounts for its first
    /// `at` leaves, the events among them at the leaves `ids` says (empty
    /// and 0 for a partition applied from its start).
    ///
    /// `root`, the tree hash of those `at` leaves when the state was saved,
    /// must be the log's: a log replaced since is not written onto.
    pub fn partition(&self, p: u32, at: u64, ids: LeafIndex, root: Option<Hash>) -> Result<PartitionLog, LogError> {
        let fail = Self::fail(Which::Partition(p));
        let mut ledger = self.ledger(Which::Partition(p))?;
        if ledger.size() < at {
            return Err(fail(
                RecordError::Short {
                    size: ledger.size(),
                    at,
                }
                .into(),
            ));
        }
        let root_at = ledger.root_at(at).map_err(|e| fail(e.into()))?;
        if root.is_some_and(|root| at > 0 && root != root_at) {
            return Err(fail(LogProblem::Replaced { at }));
        }
        // The partition logs' tiles may be published: personal data enters
        // them only as commitments, as in a server's ledger.
        let key = ledger.store_mut().pseudonym_key().map_err(|e| fail(e.into()))?;
        let salting = Salting::new(platform().map_err(|e| fail(LogProblem::Other(e.to_string())))?, &key);
        Ok(PartitionLog {
            p,
            // Flushed when the worker says (before findings are published,
            // before snapshots, when quiet), never by count here.
            writer: OffRuntime::new(LedgerWriter::resume(ledger, at, ids, usize::MAX).salting(salting)),
            pending_since: None,
            root: root_at,
        })
    }

    /// The top log of `partitions` partitions, for its writer.
    pub fn top(&self, partitions: u32) -> Result<TopLog, LogError> {
        let mut ledger = self.ledger(Which::Top)?;
        let last = last_entry(&mut ledger).map_err(Self::fail(Which::Top))?;
        // A partition no worker has taken yet gets its (empty) log created,
        // so that it is recorded empty rather than waited for; all are then
        // read as readers.
        let parts = (0..partitions)
            .map(|p| {
                let which = Which::Partition(p);
                let store = match self.store(which) {
                    Err(LogError {
                        problem: LogProblem::Missing(_),
                        ..
                    }) => {
                        drop(self.open(which, true)?);
                        self.store(which)?
                    }
                    opened => opened?,
                };
                LedgerReader::open(store).map_err(|e| Self::fail(which)(e.into()))
            })
            .collect::<Result<_, _>>()?;
        Ok(TopLog {
            ledger: OffRuntime::new(ledger),
            parts: OffRuntime::new(parts),
            last,
        })
    }

    /// Checks the top log and every partition log it names: every hash and
    /// checkpoint of each (as `weiquan verify log` does), each checkpoint's
    /// origin, that each log's newest checkpoint covers all its leaves, and
    /// that every partition size the top log records has the root it
    /// records. With `since`, a top checkpoint kept from earlier (by an
    /// auditor, a witness), also that the top log extends it: the only check
    /// against whoever holds the key rewriting every log at once.
    pub fn verify(&self, verifier: &StandardVerifier, since: Option<&[u8]>) -> Result<ClusterReport, LogError> {
        let top = Which::Top;
        let fail_top = Self::fail(top);
        let mut store = self.store(top)?;
        let report = check_log(&mut store, verifier, &self.origin(top)).map_err(&fail_top)?;
        let entries = store.size().map_err(|e| fail_top(e.into()))?;
        if entries == 0 {
            // Nothing to judge yet: an error to act on, not a verdict.
            return Err(fail_top(LogProblem::Missing(
                "it records no partition yet: run a worker with --logs until the top log has an entry".into(),
            )));
        }
        if let Some(old) = since {
            let cp =
                weiquan_ledger::open_checkpoint(old, verifier, "given with --since").map_err(|e| fail_top(e.into()))?;
            if cp.origin != self.origin(top) || cp.size > entries {
                return Err(fail_top(LogProblem::Other(format!(
                    "the checkpoint given with --since is of `{}` at {} entries; this top log is `{}` with {entries}",
                    cp.origin,
                    cp.size,
                    self.origin(top)
                ))));
            }
            let root = LedgerReader::open(self.store(top)?)
                .and_then(|mut r| r.root_at(cp.size))
                .map_err(|e| fail_top(e.into()))?;
            if root != cp.root {
                return Err(fail_top(LogProblem::Other(format!(
                    "its first {} entries are not those of the checkpoint given with --since: the top log was rewritten",
                    cp.size
                ))));
            }
        }
        let partitions = read_entry(&mut store, entries - 1).map_err(&fail_top)?.partitions.len() as u32;
        let mut parts = Vec::with_capacity(partitions as usize);
        // One partition at a time, the top log read again for each: memory
        // and connections stay bounded whatever the sizes.
        for p in 0..partitions {
            let which = Which::Partition(p);
            let fail = Self::fail(which);
            let mut part = self.store(which)?;
            let log = check_log(&mut part, verifier, &self.origin(which)).map_err(&fail)?;
            let mut reader = LedgerReader::open(part).map_err(|e| fail(e.into()))?;
            let mut seen: Option<Head> = None;
            each_entry(&mut store, |k, entry| {
                if entry.partitions.len() as u32 != partitions {
                    return Err(fail_top(
                        BadEntry(format!(
                            "records {} partitions, not {partitions}",
                            entry.partitions.len()
                        ))
                        .at(k),
                    ));
                }
                let head = entry.head(p).map_err(|why| fail_top(why.at(k)))?;
                match &seen {
                    Some(before) if head.size < before.size => Err(fail(LogProblem::Other(format!(
                        "the top log's entry {k} records {} leaves, fewer than an earlier entry",
                        head.size
                    )))),
                    Some(before) if head.size == before.size && head.root != before.root => {
                        Err(fail(LogProblem::Other(format!(
                            "the top log's entry {k} records another root at size {} than an earlier entry",
                            head.size
                        ))))
                    }
                    Some(before) if head.size == before.size => Ok(()),
                    _ => {
                        let root = reader.root_at(head.size).map_err(|e| fail(e.into()))?;
                        if hash_text(&root) != head.root {
                            return Err(fail(LogProblem::Other(format!(
                                "its root at size {} is not the one the top log's entry {k} records",
                                head.size
                            ))));
                        }
                        seen = Some(head.clone());
                        Ok(())
                    }
                }
            })?;
            parts.push(PartitionReport {
                log,
                committed: seen.map_or(0, |h| h.size),
            });
        }
        Ok(ClusterReport {
            top: report,
            entries,
            partitions: parts,
        })
    }

    /// A receipt for leaf `index` of partition `p`: the leaf's inclusion in
    /// the first partition tree the top log records that holds it, and that
    /// record's inclusion in the top log's newest checkpoint.
    ///
    /// With `reveal`, it carries the leaf's salt and private values (for the
    /// consumer it is about, or a regulator), which [`verify_cluster_receipt`]
    /// checks against its commitments; without, it proves the leaf but not
    /// what its commitments hide.
    pub fn receipt(&self, p: u32, index: u64, reveal: bool) -> Result<ClusterReceipt, LogError> {
        let top = Which::Top;
        let fail_top = Self::fail(top);
        let mut store = self.store(top)?;
        let entries = store.size().map_err(|e| fail_top(e.into()))?;
        let partitions = partitions_in(&mut store, entries).map_err(&fail_top)?;
        if p >= partitions {
            return Err(Self::fail(Which::Partition(p))(LogProblem::Other(format!(
                "the top log records {partitions} partitions (0 to {})",
                partitions.saturating_sub(1)
            ))));
        }
        let which = Which::Partition(p);
        let fail = Self::fail(which);
        let mut part = self.store(which)?;
        let held = part.size().map_err(|e| fail(e.into()))?;
        if index >= held {
            return Err(fail(LogProblem::Other(format!(
                "it holds {held} leaves (0 to {}): there is no leaf {index}",
                held.saturating_sub(1)
            ))));
        }
        // Sizes only grow along the top log: the first entry past `index`, by bisection.
        let size_at = |store: &mut Box<dyn Backend>, k: u64| -> Result<u64, LogError> {
            let entry = read_entry(store, k).map_err(&fail_top)?;
            Ok(entry.head(p).map_err(|why| fail_top(why.at(k)))?.size)
        };
        let (mut lo, mut hi) = (0, entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if size_at(&mut store, mid)? > index {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        if lo == entries {
            return Err(Self::fail(Which::Partition(p))(LogProblem::Other(format!(
                "leaf {index} is not yet recorded by the top log: ask again after its next entry"
            ))));
        }
        let size = size_at(&mut store, lo)?;
        let top_receipt = LedgerReader::open(store)
            .and_then(|mut r| r.receipt(lo))
            .map_err(|e| fail_top(e.into()))?;
        let leaf = read_leaf(&mut part, index).map_err(&fail)?;
        let private = match reveal {
            true => revealed(&mut part, index).map_err(&fail)?,
            false => None,
        };
        let proof = LedgerReader::open(part)
            .and_then(|mut r| r.inclusion_proof(index, size))
            .map_err(|e| fail(e.into()))?;
        Ok(ClusterReceipt {
            v: 1,
            partition: p,
            index,
            leaf: String::from_utf8_lossy(&leaf).into_owned(),
            size,
            inclusion: proof.iter().map(hash_text).collect(),
            top: top_receipt,
            private,
        })
    }

    /// Erases `consumer`'s personal data from every partition log: the salts
    /// and values behind each leaf about them (an event naming them, a
    /// finding on them), so that nobody can open those commitments again.
    /// The leaves, and so every checkpoint and proof, stay as they are.
    /// How many leaves it touched.
    ///
    /// The top log says how many partitions there are: before its first
    /// entry this is an error, not "nothing to erase". A partition log that
    /// does not exist (never taken) holds nothing and is not created.
    /// Erasing again is safe: a failure names the partitions done, and a
    /// second run finds nothing left in them.
    pub fn erase(&self, consumer: &str) -> Result<u64, LogError> {
        let partitions = self.recorded_partitions()?;
        if partitions == 0 {
            return Err(Self::fail(Which::Top)(LogProblem::Other(
                "it records no partition yet, so which partition logs there are is not known: erase again after its first entry (the workers write one every --top-every-ms)".into(),
            )));
        }
        let mut erased = 0;
        for p in 0..partitions {
            let which = Which::Partition(p);
            match self.store(which) {
                Ok(reader) => drop(reader),
                Err(e) if matches!(e.problem, LogProblem::Missing(_)) => continue, // never taken: nothing in it
                Err(e) => return Err(Self::partly(e, p)),
            }
            let fail = |e: StoreError| Self::partly(Self::fail(which)(e.into()), p);
            let mut store = self.open(which, true).map_err(|e| Self::partly(e, p))?;
            // Each log names consumers by a pseudonym under a key of its own.
            let key = store.pseudonym_key().map_err(fail)?;
            let pseudonym = weiquan_ledger::pseudonym(&key, consumer);
            erased += store.erase_consumer(&pseudonym).map_err(fail)?;
        }
        Ok(erased)
    }

    /// How many partitions the top log's newest entry records (0 before its first).
    fn recorded_partitions(&self) -> Result<u32, LogError> {
        let fail_top = Self::fail(Which::Top);
        let mut top = self.store(Which::Top)?;
        let entries = top.size().map_err(|e| fail_top(e.into()))?;
        partitions_in(&mut top, entries).map_err(fail_top)
    }

    /// `e`, met at partition `p` of an erasure: what was done before it.
    fn partly(mut e: LogError, p: u32) -> LogError {
        if p > 0 {
            e.log = format!(
                "{} (partitions 0 to {} are erased already; erasing again is safe)",
                e.log,
                p - 1
            );
        }
        e
    }
}

/// One log's reader, shared by the requests that read it.
type SharedReader = Arc<Mutex<LedgerReader<Box<dyn Backend>>>>;

/// A cluster's logs read as their tiles are served: one reader per log,
/// opened on first use and kept (a database connection each).
pub struct LogReaders {
    logs: Logs,
    /// The partitions the top log records, once it records any (fixed for a cluster).
    partitions: Mutex<Option<u32>>,
    open: Mutex<BTreeMap<Which, SharedReader>>,
}

impl LogReaders {
    /// Readers of `logs`.
    pub fn new(logs: Logs) -> Self {
        LogReaders {
            logs,
            partitions: Mutex::new(None),
            open: Mutex::new(BTreeMap::new()),
        }
    }

    /// The logs there are: the top log, then each partition's it records.
    pub fn which(&self) -> Result<Vec<Which>, LogError> {
        let partitions = self.partitions()?;
        Ok(std::iter::once(Which::Top)
            .chain((0..partitions).map(Which::Partition))
            .collect())
    }

    /// The origin line of a log's checkpoints.
    pub fn origin(&self, which: Which) -> String {
        self.logs.origin(which)
    }

    fn partitions(&self) -> Result<u32, LogError> {
        if let Some(n) = *weiquan_ledger::lock(&self.partitions) {
            return Ok(n);
        }
        let n = self.logs.recorded_partitions()?;
        if n > 0 {
            *weiquan_ledger::lock(&self.partitions) = Some(n);
        }
        Ok(n)
    }

    /// The reader of `which`, opened on first use; a partition the top log
    /// does not record is [`LogProblem::Missing`].
    fn reader(&self, which: Which) -> Result<SharedReader, LogError> {
        if let Some(r) = weiquan_ledger::lock(&self.open).get(&which) {
            return Ok(r.clone());
        }
        if let Which::Partition(p) = which {
            let partitions = self.partitions()?;
            if p >= partitions {
                return Err(Logs::fail(which)(LogProblem::Missing(format!(
                    "the top log records {partitions} partitions"
                ))));
            }
        }
        let fail = Logs::fail(which);
        let mut store = self.logs.store(which)?;
        // Logs written before partition logs were salted hold events as
        // received: never served. Such a log begins with one.
        let first = store.leaves(0, 1).map_err(|e| fail(e.into()))?;
        if first.first().is_some_and(|(leaf, _)| unsalted_event(leaf)) {
            return Err(fail(LogProblem::Unsalted));
        }
        let reader = LedgerReader::open(store).map_err(|e| fail(e.into()))?;
        let reader = Arc::new(Mutex::new(reader));
        weiquan_ledger::lock(&self.open).insert(which, reader.clone());
        Ok(reader)
    }

    /// Reads `which` as it stands now.
    fn read<T>(
        &self,
        which: Which,
        read: impl FnOnce(&mut LedgerReader<Box<dyn Backend>>) -> Result<T, LedgerError>,
    ) -> Result<T, LogError> {
        let shared = self.reader(which)?;
        let mut reader = weiquan_ledger::lock(&shared);
        let fail = Logs::fail(which);
        let read = reader.refresh().and_then(|()| read(&mut reader));
        drop(reader);
        if read.is_err() {
            // Opened again at the next request (a database that restarted, say).
            weiquan_ledger::lock(&self.open).remove(&which);
        }
        read.map_err(|e| fail(e.into()))
    }

    /// The newest signed checkpoint of `which` (`None` before its first write).
    pub fn checkpoint(&self, which: Which) -> Result<Option<Vec<u8>>, LogError> {
        self.read(which, |r| r.latest_checkpoint())
    }

    /// A tile of `which` (`None` when its tree does not have it yet).
    pub fn tile(&self, which: Which, req: weiquan_ledger::TileRequest) -> Result<Option<Vec<u8>>, LogError> {
        self.read(which, |r| r.tile(req))
    }
}

/// Whether `leaf` is an event as received, personal data included (format
/// 1, or a stand-in carrying its line): what partition logs wrote before
/// they were salted.
pub(crate) fn unsalted_event(leaf: &[u8]) -> bool {
    let leaf = String::from_utf8_lossy(leaf);
    weiquan_ledger::leaf_event(&leaf).is_some_and(|e| e.format < 2)
        || weiquan_ledger::stand_in(&leaf).is_some_and(|s| s.line.is_some())
}

/// How many partitions the top log's newest of its `entries` entries records.
fn partitions_in(top: &mut Box<dyn Backend>, entries: u64) -> Result<u32, LogProblem> {
    Ok(match entries {
        0 => 0,
        n => read_entry(top, n - 1)?.partitions.len() as u32,
    })
}

/// Leaf `index`'s salt and private values, if it has them and they were not erased.
fn revealed(store: &mut Box<dyn Backend>, index: u64) -> Result<Option<Revealed>, LogProblem> {
    let rows = store.private_rows(index, index + 1)?;
    let Some(PrivateRow {
        salt: Some(salt),
        values: Some(values),
        ..
    }) = rows.into_iter().next()
    else {
        return Ok(None);
    };
    let values = serde_json::from_slice(&values)
        .map_err(|e| LogProblem::Other(format!("leaf {index}'s private values are not a JSON object: {e}")))?;
    Ok(Some(Revealed {
        salt: hex::encode(salt),
        values,
    }))
}

/// Who submits every event of a cluster: the platform, through its front
/// door (the cluster has no keys of its own to name).
fn platform() -> Result<weiquan_ledger::CanonicalActor, weiquan_ledger::LeafError> {
    weiquan_ledger::Actor {
        role: "platform".into(),
        key: None,
        on_behalf: None,
    }
    .canonical()
}

/// The origin line of log `which` of cluster `cluster`.
pub(crate) fn origin(cluster: &str, which: Which) -> String {
    format!("weiquan-cluster/{cluster}/{}", which.short())
}

/// The cluster whose top log an origin line names, if it names one.
pub(crate) fn cluster_of_top(origin: &str) -> Option<&str> {
    let name = origin.strip_prefix("weiquan-cluster/")?.strip_suffix("/top")?;
    (!name.is_empty()).then_some(name)
}

/// [`verify_log`] (a checkpoint over every leaf included), and every
/// checkpoint's origin `origin`, so that one log cannot stand in for another
/// signed with the same key.
fn check_log(store: &mut Box<dyn Backend>, verifier: &StandardVerifier, origin: &str) -> Result<LogReport, LogProblem> {
    let report = verify_log(store, verifier)?;
    if let Some((size, other)) = report.origins.iter().find(|(_, o)| o != origin) {
        return Err(LogProblem::Other(format!(
            "the checkpoint for size {size} is of `{other}`, not `{origin}`"
        )));
    }
    Ok(report)
}

/// A value whose drop blocks (a PostgreSQL client closes its connection on
/// a runtime of its own), dropped where blocking is allowed: on a blocking
/// thread when it is dropped inside a Tokio runtime, in place otherwise.
struct OffRuntime<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> OffRuntime<T> {
    fn new(value: T) -> Self {
        OffRuntime(Some(value))
    }
}

impl<T: Send + 'static> std::ops::Deref for OffRuntime<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.0 {
            Some(v) => v,
            None => unreachable!("taken only when dropped"),
        }
    }
}

impl<T: Send + 'static> std::ops::DerefMut for OffRuntime<T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.0 {
            Some(v) => v,
            None => unreachable!("taken only when dropped"),
        }
    }
}

impl<T: Send + 'static> Drop for OffRuntime<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || drop(value))),
                Err(_) => drop(value),
            }
        }
    }
}

/// A partition's log as a worker writes it.
pub struct PartitionLog {
    p: u32,
    writer: OffRuntime<LedgerWriter<Box<dyn Backend>>>,
    /// When the oldest leaf not yet written was logged.
    pending_since: Option<std::time::Instant>,
    /// The tree hash of the leaves written so far (the log may hold more,
    /// written by an earlier owner).
    root: Hash,
}

impl PartitionLog {
    fn fail(&self) -> impl Fn(RecordError) -> LogError {
        let p = self.p;
        move |e| Logs::fail(Which::Partition(p))(e.into())
    }

    /// Logs an applied event; its leaf index.
    pub fn event(&mut self, raw: &str, parsed: weiquan_app::ParsedEvent<'_, '_>) -> Result<u64, LogError> {
        let fail = self.fail();
        self.pending_since.get_or_insert_with(std::time::Instant::now);
        self.writer.parsed_event(raw, parsed).map_err(fail)
    }

    /// Logs a reported finding; its leaf index.
    pub fn finding(&mut self, f: &Finding, rules: &Rulebook) -> Result<u64, LogError> {
        let fail = self.fail();
        self.pending_since.get_or_insert_with(std::time::Instant::now);
        self.writer.finding(f, rules).map_err(fail)
    }

    /// How long the oldest leaf not yet written has waited.
    pub fn pending_for(&self) -> std::time::Duration {
        self.pending_since.map_or(std::time::Duration::ZERO, |t| t.elapsed())
    }

    /// Writes what was logged since the last flush, under a new checkpoint
    /// (what is stored already is compared instead). Blocking.
    pub fn flush(&mut self) -> Result<(), LogError> {
        let fail = self.fail();
        self.writer.flush().map_err(&fail)?;
        self.pending_since = None;
        let size = self.writer.size();
        let ledger = self.writer.ledger();
        // The log may be longer (an earlier owner's leaves, compared): the root at this state's size.
        self.root = match ledger.size() == size {
            true => ledger.root(),
            false => ledger.root_at(size).map_err(|e| fail(RecordError::Ledger(e)))?,
        };
        Ok(())
    }

    /// Leaves logged since the last flush.
    pub fn pending(&self) -> usize {
        self.writer.pending()
    }

    /// Leaves logged (written or not): what a snapshot records.
    pub fn size(&self) -> u64 {
        self.writer.size()
    }

    /// The tree hash of the first [`size`](Self::size) leaves, as of the
    /// last flush: what a snapshot records.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// Where each event logged is.
    pub fn leaf_index(&self) -> &LeafIndex {
        self.writer.leaf_index()
    }
}

/// One leaf of the top log: every partition log's size and root hash when
/// it was written. Canonical JSON (keys in order, no spaces):
/// `{"partitions":[{"p":0,"root":"<base64>","size":12},…],"type":"weiquan.partitions","v":1}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopEntry {
    /// Each partition in order, from 0.
    pub partitions: Vec<Head>,
    /// Always `weiquan.partitions`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Format version (1).
    pub v: u8,
}

/// A partition log's size and root, as the top log records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// The partition.
    pub p: u32,
    /// The root hash of its first `size` leaves, base64.
    pub root: String,
    /// The number of leaves.
    pub size: u64,
}

/// The `type` of a top log's leaves.
pub const TOP_ENTRY_TYPE: &str = "weiquan.partitions";

/// Why a top log entry is not what it should be.
pub(crate) struct BadEntry(pub(crate) String);

impl BadEntry {
    fn at(self, k: u64) -> LogProblem {
        LogProblem::Other(format!("its entry {k} {}", self.0))
    }
}

impl From<BadEntry> for LogProblem {
    fn from(b: BadEntry) -> Self {
        LogProblem::Other(b.0)
    }
}

impl TopEntry {
    fn new(partitions: Vec<Head>) -> TopEntry {
        TopEntry {
            partitions,
            kind: TOP_ENTRY_TYPE.into(),
            v: 1,
        }
    }

    pub(crate) fn parse(leaf: &[u8]) -> Result<TopEntry, BadEntry> {
        let entry: TopEntry =
            serde_json::from_slice(leaf).map_err(|e| BadEntry(format!("is not a partitions entry ({e})")))?;
        if entry.kind != TOP_ENTRY_TYPE || entry.v != 1 {
            return Err(BadEntry(format!("is of type {} v{}", entry.kind, entry.v)));
        }
        Ok(entry)
    }

    pub(crate) fn head(&self, p: u32) -> Result<&Head, BadEntry> {
        self.partitions
            .get(p as usize)
            .filter(|h| h.p == p)
            .ok_or_else(|| BadEntry(format!("does not record partition {p} in its place")))
    }
}

fn read_leaf(store: &mut Box<dyn Backend>, k: u64) -> Result<Vec<u8>, LogProblem> {
    let mut rows = store.leaves(k, k + 1)?;
    match rows.pop() {
        Some((data, _)) => Ok(data),
        None => Err(LogProblem::Other(format!("its leaf {k} is missing"))),
    }
}

fn read_entry(store: &mut Box<dyn Backend>, k: u64) -> Result<TopEntry, LogProblem> {
    TopEntry::parse(&read_leaf(store, k)?).map_err(|b| b.at(k))
}

/// Calls `f` with each entry of the top log in `store`, in order, a chunk
/// of entries in memory at a time.
fn each_entry(
    store: &mut Box<dyn Backend>,
    mut f: impl FnMut(u64, TopEntry) -> Result<(), LogError>,
) -> Result<(), LogError> {
    const CHUNK: u64 = 4096;
    let fail = Logs::fail(Which::Top);
    let size = store.size().map_err(|e| fail(e.into()))?;
    for from in (0..size).step_by(CHUNK as usize) {
        let rows = store
            .leaves(from, (from + CHUNK).min(size))
            .map_err(|e| fail(e.into()))?;
        for (k, (data, _)) in (from..).zip(rows) {
            f(k, TopEntry::parse(&data).map_err(|b| fail(b.at(k)))?)?;
        }
    }
    Ok(())
}

fn last_entry(ledger: &mut Ledger<Box<dyn Backend>>) -> Result<Option<TopEntry>, LogProblem> {
    match ledger.size() {
        0 => Ok(None),
        size => read_entry(ledger.store_mut(), size - 1).map(Some),
    }
}

/// The top log, for the worker that writes it.
pub struct TopLog {
    ledger: OffRuntime<Ledger<Box<dyn Backend>>>,
    parts: OffRuntime<Vec<LedgerReader<Box<dyn Backend>>>>,
    last: Option<TopEntry>,
}

impl TopLog {
    /// Records every partition log's size and root in a new entry, unless
    /// none changed since the last: the top log's new size, if it wrote.
    /// Blocking.
    pub fn record(&mut self) -> Result<Option<u64>, LogError> {
        let mut heads = Vec::with_capacity(self.parts.len());
        for (p, reader) in self.parts.iter_mut().enumerate() {
            let fail = Logs::fail(Which::Partition(p as u32));
            reader.refresh().map_err(|e| fail(e.into()))?;
            let size = reader.size();
            let root = hash_text(&reader.root_at(size).map_err(|e| fail(e.into()))?);
            let before = self.last.as_ref().and_then(|l| l.partitions.get(p));
            // A partition log must extend what the top log recorded of it.
            let extends = match before {
                None => true,
                Some(b) if size < b.size => false,
                Some(b) if size == b.size => root == b.root,
                Some(b) => hash_text(&reader.root_at(b.size).map_err(|e| fail(e.into()))?) == b.root,
            };
            match before {
                Some(b) if !extends => {
                    // The others are still recorded; this one stays at what was recorded of it.
                    tracing::error!(
                        partition = p,
                        recorded = b.size,
                        size,
                        "the partition's log does not extend what the top log recorded of it (it was replaced, cut or forked): the top log keeps its last record; put the recorded log back, or stop the cluster and investigate"
                    );
                    heads.push(b.clone());
                }
                _ => heads.push(Head {
                    p: p as u32,
                    root,
                    size,
                }),
            }
        }
        if self.last.as_ref().is_some_and(|l| l.partitions == heads) {
            return Ok(None);
        }
        let entry = TopEntry::new(heads);
        let fail = Logs::fail(Which::Top);
        let leaf = serde_json::to_vec(&entry).map_err(|e| fail(LogProblem::Other(e.to_string())))?;
        match self.ledger.append(vec![leaf]) {
            Ok(k) => {
                self.last = Some(entry);
                Ok(Some(k + 1))
            }
            // Another writer appended first (it held the lease a moment ago):
            // read the log again; the next round records.
            Err(LedgerError::Store(e)) if e.kind == StoreErrorKind::Conflict => {
                self.ledger.reload().map_err(|e| fail(e.into()))?;
                self.last = last_entry(&mut self.ledger).map_err(&fail)?;
                Ok(None)
            }
            Err(e) => Err(fail(e.into())),
        }
    }
}

/// What [`Logs::verify`] checked.
#[derive(Debug)]
pub struct ClusterReport {
    /// The top log.
    pub top: LogReport,
    /// Its entries.
    pub entries: u64,
    /// Each partition's log.
    pub partitions: Vec<PartitionReport>,
}

/// What was checked of one partition's log.
#[derive(Debug)]
pub struct PartitionReport {
    /// Its hashes and checkpoints.
    pub log: LogReport,
    /// Its size in the top log's newest entry: the leaves the top log commits to.
    pub committed: u64,
}

/// A leaf of a partition's log with both proofs: the leaf in its partition's
/// tree of `size` leaves, and (in `top`) the top log entry recording that
/// tree's root, in the top log's signed checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterReceipt {
    /// Format version (1).
    pub v: u8,
    /// The partition.
    pub partition: u32,
    /// The leaf's index in its partition's log.
    pub index: u64,
    /// The leaf (canonical JSON text).
    pub leaf: String,
    /// The size of the partition tree the proof is against.
    pub size: u64,
    /// Inclusion proof in that tree, base64 hashes from the leaf up.
    pub inclusion: Vec<String>,
    /// The top log's entry recording that tree, with its own proof and checkpoint.
    pub top: Receipt,
    /// For a leaf with salted members, given to those entitled to them: the
    /// salt and the values, which open the leaf's commitments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<Revealed>,
}

/// Checks a [`ClusterReceipt`]: the top checkpoint's signature, the entry's
/// inclusion in it, that the entry records the partition's tree at the
/// receipt's size, and the leaf's inclusion in that tree. The top
/// checkpoint, when all hold.
pub fn verify_cluster_receipt(
    receipt: &ClusterReceipt,
    verifier: &StandardVerifier,
) -> Result<VerifiedCheckpoint, VerifyError> {
    if receipt.v != 1 {
        return Err(VerifyError::Format(format!(
            "cluster receipt format {} is not known; this weiquan reads format 1",
            receipt.v
        )));
    }
    let cp = verify_receipt(&receipt.top, verifier)?;
    if cluster_of_top(&cp.origin).is_none() {
        return Err(VerifyError::Format(format!(
            "the receipt's top checkpoint is of `{}`, not of a cluster's top log",
            cp.origin
        )));
    }
    let entry = TopEntry::parse(receipt.top.leaf.as_bytes())
        .map_err(|b| VerifyError::Format(format!("the top log entry {}", b.0)))?;
    let head = entry
        .head(receipt.partition)
        .map_err(|b| VerifyError::Format(format!("the top log entry {}", b.0)))?;
    if head.size != receipt.size {
        return Err(VerifyError::Proof(format!(
            "the top log entry records partition {} at {} leaves, the receipt's proof is for {}",
            receipt.partition, head.size, receipt.size
        )));
    }
    let root = parse_hash_text(&head.root, "the partition's root")?;
    verify_inclusion(
        receipt.index,
        receipt.leaf.as_bytes(),
        receipt.size,
        root,
        &receipt.inclusion,
    )?;
    if let Some(revealed) = &receipt.private {
        open_leaf(&receipt.leaf, revealed)?;
    }
    Ok(cp)
}
