//! The sequencer's state: engine, duplicate ids and ledger (with the
//! findings, which the database keeps beside their leaves). Owned by one
//! thread; everything else reaches it through
//! [`crate::Sequencer`].
//!
//! The ledger is the system of record. On start (and after a failed write)
//! the state is rebuilt by replaying the ledger's event leaves through the
//! engine, which is deterministic, so findings are neither lost nor repeated.

use crate::acts::{self, Submitter};
use rand_chacha::rand_core::SeedableRng;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use weiquan_app::Recorded;
use weiquan_engine::{Engine, Finding, Lang, Rulebook};
use weiquan_events::{id_digest, is_private_member, parse_event, parse_event_with_extras, Body, Reject, Time};
use weiquan_ledger::{
    leaf_event, salted_event_leaf, Hash, LeafError, Ledger, LedgerError, OwnLeaf, PrivateRow, Salt, SaltedLeaf,
    StagedAppend, PSEUDONYM_PREFIX,
};
use weiquan_store::{Backend, FindingCount, FindingFilter, FindingRow, SharedBackend, StoreError};

use crate::ids::{self, IdIndex, Recent};
use crate::snapshots;

/// Entries per generation of the caches of consumers stored and of held
/// seeds (see [`Recent`]): a bound on their memory, not on what they answer.
const CACHED: usize = 1 << 16;

/// What became of one submitted item.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ItemResult {
    /// Durable in the ledger at `index`.
    Accepted {
        /// Leaf index of the event.
        index: u64,
    },
    /// An id already accepted; ignored.
    Duplicate,
    /// Not accepted.
    Rejected {
        /// The offending field, when there is one.
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// What was wrong and what to do.
        error: String,
    },
}

/// A finding with its place in the ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFinding {
    /// Leaf index of the finding.
    pub index: u64,
    /// The finding.
    pub finding: Finding,
}

/// A finding as the findings table keeps it (its [`FindingRow::body`]):
/// what [`Finding`] holds, read leniently, since the table outlives the
/// build that wrote it.
#[derive(serde::Deserialize)]
struct FindingBody {
    rule: String,
    subject: String,
    merchant: Option<String>,
    at: Time,
    events: Vec<String>,
    facts: Vec<(String, String)>,
}

impl StoredFinding {
    /// The row the database keeps of finding `finding` at leaf `index`.
    fn row(index: u64, finding: &Finding) -> FindingRow {
        FindingRow {
            leaf: index,
            rule: finding.rule.as_str().to_owned(),
            subject: finding.subject.clone(),
            merchant: finding.merchant.clone(),
            at_ms: finding.at.unix_ms(),
            // Strings, lists of them and a time: nothing in it can fail to encode.
            body: serde_json::to_vec(finding).expect("a finding encodes as JSON"),
        }
    }

    /// The finding a row holds. A fact its rule no longer names is left out
    /// (the message then shows the placeholder); a rule this build does not
    /// know, or a body that is not a finding, is damage.
    pub(crate) fn from_row(row: FindingRow) -> Result<StoredFinding, StoreError> {
        let damaged = |why: String| {
            StoreError::of_kind(
                weiquan_store::StoreErrorKind::Corrupt,
                format!("reading finding {}", row.leaf),
                why,
            )
        };
        let body: FindingBody = serde_json::from_slice(&row.body).map_err(|e| damaged(e.to_string()))?;
        let rule = weiquan_engine::RuleId::parse(&body.rule)
            .ok_or_else(|| damaged(format!("`{}` is not a rule of this build", body.rule)))?;
        let facts = (body.facts.into_iter())
            .filter_map(|(name, value)| {
                let known = rule.placeholders().iter().find(|p| **p == name)?;
                Some((*known, value))
            })
            .collect();
        Ok(StoredFinding {
            index: row.leaf,
            finding: Finding {
                rule,
                subject: body.subject,
                merchant: body.merchant,
                at: body.at,
                events: body.events,
                facts,
            },
        })
    }
}

/// State owned by the sequencer thread.
pub struct Core {
    rules: Arc<Rulebook>,
    engine: Engine,
    ledger: Ledger<SharedBackend>,
    /// Accepted events' ids: a filter of all of them and the recent ones in
    /// memory, the others in the database's runs (the duplicate check and
    /// the evidence of findings).
    ids: IdIndex,
    /// A connection for looking ids up beside the writer's (which is busy
    /// writing the group in flight while the next is staged); `None`: the
    /// shared one.
    reader: Option<std::sync::Mutex<Box<dyn Backend>>>,
    /// Submitted events may be dated at most this far ahead of the wall clock (None: no bound).
    max_future_ms: Option<i64>,
    /// Whether weiquan holds a lottery's seed, as looked up: seeds are kept only
    /// through [`Core::hold_seed`], so an answer stays true (a query per lottery
    /// event cost PostgreSQL ingest a round trip each).
    seed_held: Recent<Box<str>, bool>,
    /// Consumer pseudonyms, under the key kept in the database.
    pseudonyms: weiquan_ledger::Pseudonyms,
    /// Salts of the leaves the sequencer salts itself (findings about a
    /// consumer; events leave the request's thread salted): a CSPRNG seeded
    /// once from the operating system (a system call per leaf cost time).
    salts: rand_chacha::ChaCha20Rng,
    /// Consumers named in the clear by leaves written before format 3, by
    /// pseudonym: their ids are public already, and have no private row.
    legacy_ids: HashMap<String, String>,
    /// Where `legacy_ids` is published for the findings' readers after each replay.
    legacy_slot: Option<crate::findings::Legacy>,
    /// Pseudonyms whose consumer id this process has stored lately: the id
    /// is written once, not with every event (a consumer forgotten here is
    /// written again, and the database keeps the first).
    known_consumers: Recent<String, ()>,
    /// Fingerprint of the last rulebook the ledger records (`None`: none is,
    /// and the built-in one of the writing weiquan was in effect).
    recorded_rulebook: Option<String>,
    /// Where the state is snapshotted (`None`: never; every start replays the whole ledger).
    snapshots: Option<snapshots::Store>,
    /// The thread that stores snapshots (started with the first one).
    snapshot_writer: Option<snapshots::Writer>,
    /// The ledger size the state was last snapshotted (or restored) at.
    snapshot_size: u64,
    /// The ledger size of the snapshot the last replay restored (0: none).
    restored_size: u64,
    /// Leaves the last replay walked (after its snapshot).
    replayed: u64,
}

/// What replay rebuilds besides the engine, as a snapshot holds it (the
/// engine's own snapshot checks itself and is kept beside it).
#[derive(Serialize, serde::Deserialize)]
struct Replayed {
    /// Leaves covered.
    size: u64,
    /// The tree hash at `size`: the snapshot belongs to this ledger only.
    root: [u8; 32],
    /// The database's erasure mark when it was taken: an erasure since then
    /// (which a replay would see) makes it unusable.
    erasure_mark: [u8; 32],
    /// The filter of every accepted id (the ids themselves are in the database).
    ids: ids::IdFilter,
    legacy_ids: HashMap<String, String>,
    recorded_rulebook: Option<String>,
}

/// What a batch adds to the ledger, held until it is durable.
#[derive(Default)]
struct Staging {
    /// Leaves with their record hash when it was computed ahead.
    leaves: Vec<(Vec<u8>, Option<Hash>)>,
    private: Vec<PrivateRow>,
    /// Consumers this process had not seen yet: (pseudonym, id).
    consumers: Vec<(String, String)>,
    /// Ids of the group's items accepted before the group (repeats), with
    /// their leaves, from memory or the database.
    earlier: HashMap<u128, u64>,
    findings: Vec<FindingRow>,
    /// The rule of each of `findings`.
    finding_rules: Vec<&'static str>,
    /// The first store failure while staging: the group is then refused.
    failure: Option<StoreError>,
}

/// A group of requests the engine has processed and the ledger has staged
/// (hashed, checkpoint signed), but that is not durable yet: it becomes so
/// when [`Staged::write`] returns. Nothing of it may be shown before.
pub struct Staged {
    append: StagedAppend,
    private: Vec<PrivateRow>,
    consumers: Vec<(String, String)>,
    findings: Vec<FindingRow>,
    /// Each request's results, in order: to be sent once written.
    pub results: Vec<Vec<ItemResult>>,
    /// The rule of each finding the group adds, in order.
    pub finding_rules: Vec<&'static str>,
}

impl Staged {
    /// Stores the group in one durable transaction (leaves, private rows,
    /// findings, checkpoint). The store refuses it unless every group
    /// staged before it was written first.
    pub fn write(&self, store: &mut SharedBackend) -> Result<(), StoreError> {
        let private = weiquan_ledger::Private {
            rows: &self.private,
            consumers: &self.consumers,
            findings: &self.findings,
        };
        self.append.write(store, private)
    }

    /// The ledger's size once this group is written.
    pub fn size_after(&self) -> u64 {
        self.append.first + self.append.len() as u64
    }
}

/// An item's event as parsed, with the names of the fields it carries that
/// its type does not define (or why it is not an event); `None` for a party's
/// item too long to be read at all.
type Parsed<'a> = Option<Result<(weiquan_events::Event<'a>, Vec<Cow<'a, str>>), weiquan_events::ParseError>>;

self_cell::self_cell!(
    /// One submitted item: its text and its parse, which borrows from it. The
    /// parse is made once, on the thread that received the request, and the
    /// sequencer uses it as it is (parsing twice cost a sixth of its time).
    pub struct Item {
        owner: String,
        #[covariant]
        dependent: Parsed,
    }
);

/// One request's items and who submits them.
pub struct Batch {
    /// The submitting party (or weiquan on a party's request).
    submitter: Submitter,
    /// The submitter as its leaves name it, encoded once for all of them.
    actor: Result<weiquan_ledger::CanonicalActor, LeafError>,
    /// The items, in order, each with its leaf as built ahead (`None`: the
    /// item did not parse, or the actor could not be encoded, which rejects
    /// every item before its leaf is needed).
    items: Vec<(Item, Option<PreparedLeaf>)>,
}

/// An item's leaf as built ahead of the sequencer: its salt, the leaf with
/// its record hash (or why it cannot be one), and the digest of the event's
/// id (a SHA-256 too, which the sequencer would otherwise compute twice).
struct PreparedLeaf {
    salt: Salt,
    built: Result<(SaltedLeaf, Hash), String>,
    digest: u128,
}

impl Batch {
    /// A request whose items' leaves are built here, on the caller's thread:
    /// canonical JSON, salted commitments and the leaf's record hash need no
    /// sequencer state, and the one sequencer thread was ingest's bottleneck
    /// (they were a fifth of its time). Items that do not parse are left to
    /// the sequencer, which rejects them as it would any.
    pub fn prepared(submitter: Submitter, lines: Vec<String>) -> Batch {
        let actor = submitter.actor().canonical();
        // A party's item is bounded as a line of a file is. weiquan's own acts are
        // not: a draw of many prizes names many winners, who go to the private
        // side, and only the leaf must fit an entry bundle (checked when it is made).
        let own_act = matches!(submitter, Submitter::Weiquan(_));
        let items = (lines.into_iter())
            .map(|line| {
                let item = Item::new(line, |line| {
                    (own_act || line.len() <= weiquan_events::MAX_LINE_BYTES).then(|| parse_event_with_extras(line))
                });
                let leaf = match (&actor, item.borrow_dependent()) {
                    (Ok(actor), Some(Ok((ev, extras)))) => Some(build_leaf(
                        item.borrow_owner(),
                        ev,
                        extras,
                        own_act,
                        actor,
                        SALTS.with_borrow_mut(weiquan_ledger::draw_salt),
                    )),
                    _ => None,
                };
                (item, leaf)
            })
            .collect();
        Batch {
            submitter,
            actor,
            items,
        }
    }
}

thread_local! {
    /// Salts for leaves built ahead: a CSPRNG per thread, seeded once from the
    /// operating system (a system call per leaf cost time).
    static SALTS: std::cell::RefCell<rand_chacha::ChaCha20Rng> =
        std::cell::RefCell::new(rand_chacha::ChaCha20Rng::from_entropy());
}

/// The leaf of a parsed event: personal data (consumer and participant ids,
/// free text, fields this format does not define) enters it only as
/// commitments under `salt`.
fn build_leaf(
    line: &str,
    ev: &weiquan_events::Event<'_>,
    extras: &[Cow<'_, str>],
    own_act: bool,
    actor: &weiquan_ledger::CanonicalActor,
    salt: Salt,
) -> PreparedLeaf {
    // Extra fields are the producer's own and may hold anything; weiquan's
    // own acts carry none that are personal (`entrants_root`, `acted_at`).
    let private = |key: &str| is_private_member(&ev.body, extras, own_act, key);
    let built = salted_event_leaf(line, actor, private, &salt)
        .map(|leaf| {
            let record = weiquan_ledger::record_hash(&leaf.leaf);
            (leaf, record)
        })
        .map_err(|e| e.to_string());
    PreparedLeaf {
        salt,
        built,
        digest: id_digest(&ev.id),
    }
}

pub(crate) use weiquan_app::CONSUMER_SUBJECT;

impl Core {
    /// Opens the ledger in `backend` and replays it: from the newest usable
    /// snapshot in `snapshots` on, if any, which it then keeps writing.
    pub fn open(
        backend: Box<dyn Backend>,
        signer: signed_note::StandardSigner,
        origin: &str,
        rules: Arc<Rulebook>,
        snapshots: Option<snapshots::Store>,
    ) -> Result<Core, LedgerError> {
        let mut ledger = Ledger::open(Arc::new(std::sync::Mutex::new(backend)), signer, origin)?;
        let pseudonyms = weiquan_ledger::Pseudonyms::new(&weiquan_ledger::lock(ledger.store_mut()).pseudonym_key()?);
        let mut core = Core {
            engine: Engine::new(rules.clone()),
            rules,
            ledger,
            ids: IdIndex::new(),
            reader: None,
            max_future_ms: None,
            seed_held: Recent::new(CACHED),
            pseudonyms,
            salts: rand_chacha::ChaCha20Rng::from_entropy(),
            legacy_ids: HashMap::new(),
            legacy_slot: None,
            known_consumers: Recent::new(CACHED),
            recorded_rulebook: None,
            snapshots,
            snapshot_writer: None,
            snapshot_size: 0,
            restored_size: 0,
            replayed: 0,
        };
        core.replay()?;
        core.record_rulebook()?;
        // A long replay is not done again at the next start.
        if core.snapshot_due() {
            core.write_snapshot();
        }
        Ok(core)
    }

    /// Records the rulebook in effect when it is not the last one the ledger
    /// records (with none recorded, the built-in one): what ran from here on
    /// is then part of the log, and `weiquan backtest` can name it.
    fn record_rulebook(&mut self) -> Result<(), LedgerError> {
        if let Some((leaf, sha)) = weiquan_app::rulebook_record(&self.rules, self.recorded_rulebook.as_deref())? {
            self.ledger.append(vec![leaf])?;
            tracing::info!(sha256 = %sha, "recorded the rulebook in effect in the ledger");
            self.recorded_rulebook = Some(sha);
        }
        Ok(())
    }

    /// Looks ids up through `reader`, a second connection to the database,
    /// so that staging a group never waits for the write of the one before.
    pub fn with_reader(mut self, reader: Box<dyn Backend>) -> Core {
        self.reader = Some(std::sync::Mutex::new(reader));
        self
    }

    /// The leaves of those of `digests` the stored runs of ids have: the
    /// buckets they fall in, of every run, read in one statement.
    fn look_up_ids(&self, digests: &[u128]) -> Result<Vec<(u128, u64)>, StoreError> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let mut buckets: Vec<u32> = digests.iter().map(|&d| ids::bucket_of(d)).collect();
        buckets.sort_unstable();
        buckets.dedup();
        let stored = self.reading().id_run_buckets(&buckets)?;
        let mut by_bucket: HashMap<u32, Vec<&[u8]>> = HashMap::new();
        for (bucket, pairs) in &stored {
            by_bucket.entry(*bucket).or_default().push(pairs);
        }
        Ok((digests.iter())
            .filter_map(|&d| {
                let runs = by_bucket.get(&ids::bucket_of(d))?;
                (runs.iter())
                    .find_map(|pairs| ids::find_in_bucket(pairs, d))
                    .map(|leaf| (d, leaf))
            })
            .collect())
    }

    /// Indexes the id of replayed leaf `index` (`in_filter`: a snapshot's
    /// filter does not have it yet): as a recent id from the stored runs'
    /// end on, a generation that leaves memory going to `runs`, to be stored.
    fn index_replayed(&mut self, digest: u128, index: u64, in_filter: bool, runs: &mut Vec<ids::Run>) {
        if in_filter {
            self.ids.insert_stored(digest);
        }
        if index >= self.ids.runs_end() {
            runs.extend(self.ids.new_generation_at(index));
            self.ids.insert_recent(digest, index);
        }
    }

    /// Publishes the consumers of pre-format-3 leaves in `slot` for the
    /// findings' readers, now and after every replay.
    pub fn with_legacy(mut self, slot: crate::findings::Legacy) -> Core {
        self.legacy_slot = Some(slot);
        self.publish_legacy();
        self
    }

    /// See [`Core::with_legacy`].
    fn publish_legacy(&self) {
        if let Some(slot) = &self.legacy_slot {
            let mut shared = slot.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            *shared = Some(Arc::new(self.legacy_ids.clone()));
        }
    }

    /// Refuses submitted events dated more than `bound_ms` ahead of the wall clock
    /// (`None`: no bound, for demos and replayed simulations).
    pub fn with_max_future(mut self, bound_ms: Option<i64>) -> Core {
        self.max_future_ms = bound_ms;
        self
    }

    /// The ledger size of the newest snapshot written or restored (0: none).
    pub fn snapshot_size(&self) -> u64 {
        let written = (self.snapshot_writer.as_ref()).map_or(0, snapshots::Writer::written);
        written.max(self.restored_size)
    }

    /// Leaves the last replay walked, after the snapshot it restored.
    pub fn replayed(&self) -> u64 {
        self.replayed
    }

    /// Whether enough leaves were added since the last snapshot to take
    /// another (and the previous one is stored).
    pub fn snapshot_due(&self) -> bool {
        (self.snapshots.as_ref()).is_some_and(|s| self.ledger.size() >= self.snapshot_size + s.snapshots.every.max(1))
            && !self.snapshot_writer.as_ref().is_some_and(snapshots::Writer::busy)
    }

    /// Snapshots the state at the ledger's current size: encoded here, stored
    /// by the snapshot thread. Called only when every staged group is written
    /// (the state is then the ledger's). A failure is logged and changes
    /// nothing: the ledger is the record, and the next start replays a little more.
    pub fn write_snapshot(&mut self) {
        let Some(snapshots) = self.snapshots.clone() else {
            return;
        };
        if self.snapshot_writer.is_none() {
            match snapshots::Writer::start(snapshots.clone()) {
                Ok(w) => self.snapshot_writer = Some(w),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the snapshot thread; no snapshot taken");
                    return;
                }
            }
        }
        let started = std::time::Instant::now();
        let size = self.ledger.size();
        let erasure_mark = match self.db().erasure_mark() {
            Ok(mark) => mark,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the erasure mark; no snapshot taken (nothing is lost: the next start replays further)");
                return;
            }
        };
        // Taken from the core and put back after: encoded in place, not copied.
        let rest = Replayed {
            size,
            root: self.ledger.root().0,
            erasure_mark,
            ids: self.ids.filter().clone(),
            legacy_ids: std::mem::take(&mut self.legacy_ids),
            recorded_rulebook: self.recorded_rulebook.clone(),
        };
        // The engine and the rest encode side by side: ingest waits for the
        // slower of the two, not for both (one after the other: 2.1 s at ten
        // million events; side by side: 1.4 s).
        let engine = &self.engine;
        let (engine, encoded) = std::thread::scope(|s| {
            let engine = s.spawn(|| engine.snapshot());
            let rest = postcard::to_stdvec(&rest);
            (engine.join(), rest)
        });
        self.legacy_ids = rest.legacy_ids;
        let (engine, rest) = match (engine, encoded) {
            (Ok(Ok(engine)), Ok(rest)) => (engine, rest),
            (Ok(Err(e)), _) => {
                tracing::error!(error = %e, "the engine could not be encoded; no snapshot taken");
                return;
            }
            (Err(_), _) => {
                tracing::error!("encoding the engine panicked; no snapshot taken");
                return;
            }
            (_, Err(e)) => {
                tracing::error!(error = %e, "the state could not be encoded; no snapshot taken");
                return;
            }
        };
        let job = snapshots::Encoded {
            size,
            engine,
            rest,
            encode_ms: started.elapsed().as_millis() as u64,
        };
        if self.snapshot_writer.as_ref().is_some_and(|w| w.submit(job)) {
            self.snapshot_size = size;
        } else {
            tracing::error!(
                "the snapshot thread stopped; no snapshot taken (nothing is lost: the next start replays further)"
            );
            self.snapshot_writer = None;
        }
    }

    /// Restores the newest usable snapshot, if any, and says the ledger size
    /// it covers (0: none; replay from the start). Each unusable one is
    /// logged with the reason and the next older tried.
    fn restore_snapshot(&mut self) -> u64 {
        // A file still being written is the newest: it is waited for.
        if let Some(w) = &self.snapshot_writer {
            w.wait_idle();
        }
        let from = self.restore_newest();
        (self.snapshot_size, self.restored_size) = (from, from);
        from
    }

    /// [`Core::restore_snapshot`]'s search, newest first.
    fn restore_newest(&mut self) -> u64 {
        let Some(snapshots) = self.snapshots.clone() else {
            return 0;
        };
        for (size, path) in snapshots.snapshots.newest_first() {
            match self.read_snapshot(&snapshots, size, &path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), size, "state restored from a snapshot; replaying the leaves after it");
                    return size;
                }
                Err(why) => tracing::warn!(%why, "snapshot not used"),
            }
        }
        0
    }

    /// Restores the snapshot at `path`, of a ledger of `size` leaves, after
    /// checking it belongs to this ledger; on an error nothing is changed.
    fn read_snapshot(&mut self, store: &snapshots::Store, size: u64, path: &std::path::Path) -> Result<(), String> {
        if size > self.ledger.size() {
            return Err(format!(
                "{} covers {size} leaves; the ledger has {}",
                path.display(),
                self.ledger.size()
            ));
        }
        let opened = store.read(path).map_err(|e| e.to_string())?;
        // The engine's header (version, rulebook) is checked before anything is decoded.
        let engine =
            Engine::restore(self.rules.clone(), opened.engine()).map_err(|e| format!("{}: {e}", path.display()))?;
        let rest: Replayed = postcard::from_bytes(opened.rest()).map_err(|e| format!("{}: {e}", path.display()))?;
        let root = self.ledger.root_at(size).map_err(|e| e.to_string())?;
        if rest.size != size || rest.root != root.0 {
            return Err(format!(
                "{} is not of this ledger (its tree hash at {size} leaves differs)",
                path.display()
            ));
        }
        if rest.erasure_mark != self.db().erasure_mark().map_err(|e| e.to_string())? {
            return Err(format!(
                "{} was taken before a consumer's data was erased; the ledger is replayed instead",
                path.display()
            ));
        }
        self.engine = engine;
        self.legacy_ids = rest.legacy_ids;
        self.ids = IdIndex::with_filter(rest.ids);
        self.recorded_rulebook = rest.recorded_rulebook;
        Ok(())
    }

    /// Rebuilds engine and duplicate ids from the ledger (after the newest
    /// usable snapshot), into a core that holds none (new, or
    /// [`Core::forget`]ten). The findings it meets are stored again where
    /// the database lacks them (a ledger written before the findings table).
    fn replay(&mut self) -> Result<(), LedgerError> {
        let from = self.restore_snapshot();
        self.replayed = self.ledger.size() - from;
        let mut produced: VecDeque<Finding> = VecDeque::new();
        let db = self.ledger.store_mut().clone();
        // The ids of the leaves after the stored runs are held in memory
        // again, from before the snapshot if need be (the snapshot's filter
        // has those); generations that leave memory on the way are stored
        // page by page (a ledger without runs, as after the upgrade to
        // schema 9, is not held whole).
        self.ids.stored(&weiquan_ledger::lock(&db).id_runs()?);
        let mut runs = Vec::new();
        let mut found = Vec::new();
        // Findings are written with their leaves; only a ledger from before
        // the table (filled in leaf order, a page at a time) lacks rows, and
        // only after the newest one stored: the rest is not written again.
        let newest = FindingFilter {
            newest_first: true,
            limit: Some(1),
            ..FindingFilter::default()
        };
        let stored_to = (weiquan_ledger::lock(&db).findings(&newest)?.first()).map(|r| r.leaf);
        let size = self.ledger.size();
        let mut at = from.min(self.ids.runs_end());
        while at < size {
            let to = (at + weiquan_store::LEAF_PAGE).min(size);
            let page = weiquan_store::leaves_with_private(&mut **weiquan_ledger::lock(&db), at, to)?;
            for (index, data, row) in page {
                let raw = String::from_utf8_lossy(&data);
                self.replay_leaf(index, &raw, row.as_ref(), from, (&mut produced, &mut runs, &mut found));
            }
            for run in runs.drain(..) {
                weiquan_ledger::lock(&db).put_id_run(run.run, run.end_leaf, &run.buckets)?;
            }
            found.retain(|f: &FindingRow| stored_to.is_none_or(|s| f.leaf > s));
            if !found.is_empty() {
                weiquan_ledger::lock(&db).put_findings(&found)?;
                found.clear();
            }
            at = to;
        }
        self.publish_legacy();
        Ok(())
    }

    /// Replays leaf `index` (`raw`, with its private row): indexes its id,
    /// and from `from` on (the snapshot's size) applies it to the engine or
    /// pairs a logged finding with the one the engine `produced` (`found`).
    fn replay_leaf(
        &mut self,
        index: u64,
        raw: &str,
        row: Option<&PrivateRow>,
        from: u64,
        (produced, runs, found): (&mut VecDeque<Finding>, &mut Vec<ids::Run>, &mut Vec<FindingRow>),
    ) {
        if index < from {
            if let Some(id) = weiquan_app::leaf_event_id(raw) {
                self.index_replayed(id_digest(&id), index, false, runs);
            }
            return;
        }
        let (text, format) = match weiquan_app::recorded(raw, row) {
            Recorded::Own(OwnLeaf::Rulebook { sha256 }) => {
                self.recorded_rulebook = Some(sha256);
                return;
            }
            Recorded::Own(OwnLeaf::Finding {
                rule, subject, salted, ..
            }) => {
                // The engine regenerates the finding (with its message facts); the ledger says where it is.
                match produced.pop_front() {
                    Some(p) if p.rule.as_str() == rule && self.logged_as(&p.subject, &subject, salted) => {
                        found.push(StoredFinding::row(index, &p))
                    }
                    _ => {
                        tracing::warn!(index, %rule, %subject, "logged finding not reproduced by the current rulebook")
                    }
                }
                return;
            }
            Recorded::Other => {
                tracing::warn!(
                    index,
                    "ledger leaf is neither an event nor a finding; skipped in replay"
                );
                return;
            }
            Recorded::Unreadable(why) => {
                tracing::warn!(index, %why, "a salted leaf cannot be restored; skipped in replay");
                // Its id stays taken.
                if let Some(id) = weiquan_app::leaf_event_id(raw) {
                    self.index_replayed(id_digest(&id), index, true, runs);
                }
                return;
            }
            Recorded::Event { text, format } => (text, format),
        };
        match parse_event(&text) {
            Ok(mut ev) => {
                if format < 3 {
                    // Written before consumers were salted: the engine knows them by pseudonym all the same.
                    if let Some(consumer) = ev.body.consumer_mut() {
                        let id = consumer.to_string();
                        if let Some(p) = self.pseudonymise(&mut ev) {
                            self.legacy_ids.insert(p, id);
                        }
                    }
                }
                // An event's findings follow it in the ledger; any left over were not logged
                // (the rulebook changed since), so they must not be paired with later leaves.
                if !produced.is_empty() {
                    tracing::warn!(
                        index,
                        unlogged = produced.len(),
                        "the current rulebook finds more than was logged"
                    );
                    produced.clear();
                }
                self.index_replayed(id_digest(&ev.id), index, true, runs);
                produced.extend(self.engine.apply(&ev));
            }
            Err(e) => {
                tracing::warn!(index, error = %e, "ledger leaf is not an event of this format; skipped in replay");
                if let Some(id) = weiquan_app::leaf_event_id(raw) {
                    self.index_replayed(id_digest(&id), index, true, runs);
                }
            }
        }
    }

    /// The original value of the salted member `field` of the event with this
    /// id, from its private row (`None` if it has none, or it was erased).
    pub fn private_value(&mut self, event: &str, field: &str) -> Result<Option<String>, StoreError> {
        let row = self.private_row_of(event)?;
        let values = (row.and_then(|r| r.values)).and_then(|v| serde_json::from_slice::<serde_json::Value>(&v).ok());
        Ok(values.and_then(|v| v.get(field).and_then(|t| t.as_str()).map(str::to_owned)))
    }

    /// The private row of leaf `index`, if it has one.
    fn private_row(&self, index: u64) -> Result<Option<PrivateRow>, StoreError> {
        Ok(self.db().private_rows(index, index + 1)?.pop())
    }

    /// The private row of the accepted event with this id, if it has one.
    fn private_row_of(&self, event: &str) -> Result<Option<PrivateRow>, StoreError> {
        match self.leaf_of(event)? {
            Some(index) => self.private_row(index),
            None => Ok(None),
        }
    }

    /// The leaf index of the accepted event with this id.
    pub fn leaf_of(&self, event: &str) -> Result<Option<u64>, StoreError> {
        let digest = id_digest(event);
        if let Some(leaf) = self.ids.recent(digest) {
            return Ok(Some(leaf));
        }
        if !self.ids.must_ask(digest) {
            return Ok(None);
        }
        Ok(self.look_up_ids(&[digest])?.first().map(|&(_, leaf)| leaf))
    }

    /// The pseudonym of the consumer who placed `order`, from the private
    /// row of its `order.placed` leaf, and the order's merchant; `None` if
    /// the order was not placed here (or its consumer was erased).
    pub fn order_placed_by(&mut self, order: &str) -> Result<Option<(String, Option<String>)>, StoreError> {
        let Some((event, merchant)) = self.engine.placement_of(order) else {
            return Ok(None);
        };
        let row = self.private_row_of(&event)?;
        Ok(row.and_then(|r| r.consumer).map(|p| (p, merchant)))
    }

    /// Replaces the consumer an event names by their pseudonym; the pseudonym.
    fn pseudonymise(&self, ev: &mut weiquan_events::Event<'_>) -> Option<String> {
        let consumer = ev.body.consumer_mut()?;
        let p = self.pseudonyms.of(consumer);
        *consumer = Cow::Owned(p.clone());
        Some(p)
    }

    /// Whether a logged finding's subject is the one the engine produced: the
    /// same, or (for a consumer) a commitment, or the consumer's id from
    /// before pseudonyms.
    fn logged_as(&self, produced: &str, logged: &str, salted: bool) -> bool {
        match (
            produced.strip_prefix(CONSUMER_SUBJECT),
            logged.strip_prefix(CONSUMER_SUBJECT),
        ) {
            _ if produced == logged => true,
            (Some(_), _) if salted => true,
            (Some(p), Some(id)) => self.pseudonyms.of(id) == p,
            _ => false,
        }
    }

    fn salt(&mut self) -> Salt {
        weiquan_ledger::draw_salt(&mut self.salts)
    }

    /// The consumer id behind a pseudonym, unless it was erased (or never stored).
    pub fn consumer_id(&mut self, pseudonym: &str) -> Result<Option<String>, weiquan_store::StoreError> {
        crate::findings::consumer_id(&mut **self.db(), &self.legacy_ids, pseudonym)
    }

    /// A receipt for leaf `index` if `role` may have it (`None`: it may not):
    /// the platform and regulators any, with the salt and values of its
    /// personal data; a consumer the leaves about them, with theirs; a merchant
    /// the events that name it, without.
    pub fn receipt_for(
        &mut self,
        index: u64,
        role: &crate::auth::Role,
    ) -> Result<Option<weiquan_ledger::Receipt>, LedgerError> {
        use crate::auth::Role;
        use serde_json::{Map, Value};
        let mut receipt = self.ledger.receipt(index)?;
        let row = self.private_row(index)?;
        // The event a leaf holds, in any format (a finding leaf names no party);
        // salted members are commitments here, their values are in the row.
        let read = leaf_event(&receipt.leaf);
        let salted: Vec<String> = read.as_ref().map(|e| e.salted.clone()).unwrap_or_default();
        let leaf: Map<String, Value> = (read.as_ref())
            .and_then(|e| serde_json::from_str(&e.event).ok())
            .unwrap_or_default();
        let values: Option<Map<String, Value>> = row
            .as_ref()
            .and_then(|r| r.values.as_deref())
            .and_then(|v| serde_json::from_slice(v).ok());
        // A salted member's public value is its commitment: only its original names a party.
        let names = |field: &str, id: &str| {
            let shown = if salted.iter().any(|s| s == field) {
                values.as_ref().and_then(|v| v.get(field))
            } else {
                leaf.get(field)
            };
            shown.and_then(Value::as_str) == Some(id)
        };
        let (allowed, reveal) = match role {
            Role::Platform | Role::Regulator => (true, true),
            Role::Consumer(id) => {
                let own = row.as_ref().and_then(|r| r.consumer.as_deref()) == Some(&self.pseudonym_of(id));
                let named = own || names("consumer", id) || names("participant", id);
                (named, named)
            }
            Role::Merchant(id) => (names("merchant", id), false),
        };
        if !allowed {
            return Ok(None);
        }
        if let (true, Some(PrivateRow { salt: Some(salt), .. }), Some(values)) = (reveal, &row, values) {
            receipt.private = Some(weiquan_ledger::Revealed {
                salt: hex::encode(salt),
                values,
            });
        }
        Ok(Some(receipt))
    }

    /// The pseudonym of a consumer id.
    pub fn pseudonym_of(&self, consumer: &str) -> String {
        self.pseudonyms.of(consumer)
    }

    /// Processes several requests' items in order, appends everything in one
    /// durable transaction, and returns each request's results. `now` is the
    /// wall clock, read by the caller (the engine never reads one).
    pub fn ingest(&mut self, requests: Vec<Batch>, now: Time) -> Result<Vec<Vec<ItemResult>>, LedgerError> {
        let written = self.stage(requests, now).and_then(|staged| {
            staged.write(self.ledger.store_mut())?;
            Ok(staged)
        });
        match written {
            Ok(staged) => Ok(staged.results),
            Err(e) => {
                self.rebuild()?;
                Err(e)
            }
        }
    }

    /// Forgets everything staged and not written: the state is rebuilt from
    /// the ledger as stored. What a caller does after a failed [`Core::stage`]
    /// or [`Staged::write`], once no write is in flight.
    ///
    /// Everything in memory is forgotten first: should the store fail here
    /// too, the core holds nothing that was not written (the caller then
    /// stops serving from it).
    pub fn rebuild(&mut self) -> Result<(), LedgerError> {
        self.forget();
        self.known_consumers.clear();
        self.ledger.reload()?;
        self.replay()
    }

    /// Empties what replay rebuilds.
    fn forget(&mut self) {
        self.engine = Engine::new(self.rules.clone());
        self.ids = IdIndex::new();
        self.legacy_ids.clear();
        self.recorded_rulebook = None;
    }

    /// The database, for reads and writes beside the ledger's appends (it is
    /// locked while a staged group is being written).
    pub fn db(&self) -> std::sync::MutexGuard<'_, Box<dyn Backend>> {
        weiquan_ledger::lock(self.ledger.store())
    }

    /// Processes several requests' items in order through the engine and
    /// stages everything on the ledger, advancing this core's state as if
    /// it were written; the caller writes the [`Staged`] group (perhaps while
    /// it stages the next) and answers the requests once it is durable. On
    /// an error here, or if a write fails, the caller calls [`Core::rebuild`]
    /// once no write is in flight. `now` is the wall clock, read by the
    /// caller (the engine never reads one).
    pub fn stage(&mut self, requests: Vec<Batch>, now: Time) -> Result<Staged, LedgerError> {
        let base = self.ledger.size();
        // A generation of ids that leaves memory is stored first (its leaves are durable).
        if let Some(run) = self.ids.new_generation_at(base) {
            self.db().put_id_run(run.run, run.end_leaf, &run.buckets)?;
        }
        // Ids the group may repeat are looked up at once: one round trip,
        // while the group before is being written.
        // The ids accepted before this group are found here once, in memory or
        // the database; an item then needs only its own group's ids checked.
        let mut earlier = HashMap::new();
        let mut ask = Vec::new();
        for (item, leaf) in requests.iter().flat_map(|b| &b.items) {
            let digest = match (leaf, item.borrow_dependent()) {
                (Some(leaf), _) => leaf.digest,
                (None, Some(Ok((ev, _)))) => id_digest(&ev.id),
                (None, _) => continue,
            };
            match self.ids.recent(digest) {
                Some(leaf) => {
                    earlier.insert(digest, leaf);
                }
                None if self.ids.may_hold(digest) => ask.push(digest),
                None => {}
            }
        }
        earlier.extend(self.look_up_ids(&ask)?);
        // Sized once: grown by doubling, these large vectors were fresh pages
        // (zeroed by the kernel) at every group.
        let items: usize = requests.iter().map(|b| b.items.len()).sum();
        let mut st = Staging {
            leaves: Vec::with_capacity(items + items / 8),
            private: Vec::with_capacity(items),
            earlier,
            ..Staging::default()
        };
        let mut results = Vec::with_capacity(requests.len());
        for batch in requests {
            let mut out = Vec::with_capacity(batch.items.len());
            for (i, (mut entry, leaf)) in batch.items.into_iter().enumerate() {
                let item = i as u64 + 1;
                out.push(match &batch.actor {
                    Ok(actor) => {
                        let source = (&batch.submitter, actor);
                        self.ingest_one(item, (&mut entry, leaf), source, now, base, &mut st)
                    }
                    Err(e) => ItemResult::Rejected {
                        field: None,
                        error: e.to_string(),
                    },
                });
            }
            results.push(out);
        }
        if let Some(e) = st.failure {
            return Err(e.into());
        }
        let append = self.ledger.stage(st.leaves)?;
        Ok(Staged {
            append,
            private: st.private,
            consumers: st.consumers,
            findings: st.findings,
            results,
            finding_rules: st.finding_rules,
        })
    }

    fn ingest_one(
        &mut self,
        item: u64,
        (entry, prepared): (&mut Item, Option<PreparedLeaf>),
        (submitter, actor): (&Submitter, &weiquan_ledger::CanonicalActor),
        now: Time,
        base: u64,
        st: &mut Staging,
    ) -> ItemResult {
        entry.with_dependent_mut(|line, parsed| {
            self.ingest_parsed(item, (line, parsed, prepared), (submitter, actor), now, base, st)
        })
    }

    /// [`Core::ingest_one`] of an item read as `parsed`.
    fn ingest_parsed(
        &mut self,
        item: u64,
        (line, parsed, prepared): (&str, &mut Parsed<'_>, Option<PreparedLeaf>),
        (submitter, actor): (&Submitter, &weiquan_ledger::CanonicalActor),
        now: Time,
        base: u64,
        st: &mut Staging,
    ) -> ItemResult {
        let own_act = matches!(submitter, Submitter::Weiquan(_));
        let (ev, extras) = match parsed {
            Some(Ok((ev, extras))) => (ev, &*extras),
            Some(Err(e)) => {
                let r = Reject::from_parse(item, e.clone());
                return ItemResult::Rejected {
                    field: r.field,
                    error: r.error,
                };
            }
            None => {
                return ItemResult::Rejected {
                    field: None,
                    error: format!(
                        "item is {} bytes; at most {} are accepted",
                        line.len(),
                        weiquan_events::MAX_LINE_BYTES
                    ),
                }
            }
        };
        let checked = match submitter {
            Submitter::Party(party) => self.may_submit(&party.role, ev, now),
            // weiquan's own acts are dated by the business clock; the one time a
            // caller chooses (an announcement's `at`) its route checks before acting.
            Submitter::Weiquan(_) => Ok(()),
        };
        if let Err(r) = checked {
            return ItemResult::Rejected {
                field: Some(r.field.to_owned()),
                error: r.error,
            };
        }
        // The pseudonyms' namespace is weiquan's: a consumer sent as `ps:…` would
        // read, once revealed, as another consumer (or an erased one).
        if let (Submitter::Party(_), Some(c)) = (submitter, ev.body.consumer_mut()) {
            if c.starts_with(PSEUDONYM_PREFIX) {
                return ItemResult::Rejected {
                    field: Some("consumer".into()),
                    error: format!(
                        "consumer ids starting with `{PSEUDONYM_PREFIX}` are weiquan's pseudonyms; send the platform's own id"
                    ),
                };
            }
        }
        let prepared = match prepared {
            Some(p) => p,
            None => build_leaf(line, ev, extras, own_act, actor, self.salt()),
        };
        let (salt, prepared_digest) = (prepared.salt, prepared.digest);
        let (salted, record) = match prepared.built {
            Ok(b) => b,
            Err(error) => return ItemResult::Rejected { field: None, error },
        };
        let index = base + st.leaves.len() as u64;
        if st.earlier.contains_key(&prepared_digest) || !self.ids.insert_new(prepared_digest, index) {
            return ItemResult::Duplicate;
        }
        let id = ev.body.consumer().map(str::to_owned);
        let mut consumer = self.pseudonymise(ev);
        if let (Some(p), Some(id)) = (&consumer, id) {
            if self.known_consumers.get(p).is_none() {
                self.known_consumers.cache(p.clone(), ());
                st.consumers.push((p.clone(), id));
            }
        }
        // A consumer named in an extra field (an event type without one) is
        // who the leaf is about too: erasure must find it.
        if consumer.is_none() && extras.iter().any(|e| e == "consumer") {
            consumer = weiquan_app::consumer_named(line, None).map(|id| self.pseudonym_of(&id));
        }
        if let Some(values) = salted.values {
            st.private.push(PrivateRow {
                leaf: index,
                consumer,
                salt: Some(salt),
                values: Some(values),
            });
        }
        st.leaves.push((salted.leaf, Some(record)));
        for f in self.engine.apply(ev) {
            let leaf = base + st.leaves.len() as u64;
            let consumer = f.subject.strip_prefix(CONSUMER_SUBJECT).map(str::to_owned);
            let salt = consumer.as_ref().map(|_| self.salt());
            // A finding the database cannot give the evidence of fails the group (it would
            // otherwise be lost to the log): the caller rebuilds, and the items are refused.
            let evidence = match self.evidence_of(&f.events, &st.earlier) {
                Ok(evidence) => evidence,
                Err(e) => {
                    st.failure.get_or_insert(e);
                    continue;
                }
            };
            match weiquan_app::finding_leaf_with(&f, &evidence, &self.rules, salt.as_ref()) {
                Ok(salted) => {
                    if salted.values.is_some() {
                        st.private.push(PrivateRow {
                            leaf,
                            consumer,
                            salt,
                            values: salted.values,
                        });
                    }
                    st.findings.push(StoredFinding::row(leaf, &f));
                    st.finding_rules.push(f.rule.as_str());
                    st.leaves.push((salted.leaf, None));
                }
                Err(e) => tracing::error!(error = %e, "finding leaf could not be encoded"),
            }
        }
        ItemResult::Accepted { index }
    }

    /// The leaves of a finding's evidence events, in its order (an id not
    /// accepted is left out): recent ones from memory, the group's repeats
    /// from what was looked up for it, the rest from the database.
    fn evidence_of(&self, events: &[String], earlier: &HashMap<u128, u64>) -> Result<Vec<u64>, StoreError> {
        let digests: Vec<u128> = events.iter().map(|id| id_digest(id)).collect();
        let known = |d: &u128| self.ids.recent(*d).or_else(|| earlier.get(d).copied());
        let ask: Vec<u128> = (digests.iter())
            .filter(|d| known(d).is_none() && self.ids.must_ask(**d))
            .copied()
            .collect();
        let asked: HashMap<u128, u64> = self.look_up_ids(&ask)?.into_iter().collect();
        Ok((digests.iter())
            .filter_map(|d| known(d).or_else(|| asked.get(d).copied()))
            .collect())
    }

    /// The checks on an event a party submits itself (see [`acts`]).
    fn may_submit(
        &mut self,
        role: &crate::auth::Role,
        ev: &weiquan_events::Event,
        now: Time,
    ) -> Result<(), acts::Refusal> {
        acts::may_submit(role, &ev.id, &ev.body)?;
        self.within_future_bound(ev, now)?;
        if let (crate::auth::Role::Merchant(me), Body::ComplaintResponded { complaint, .. }) = (role, &ev.body) {
            if self.engine.complaint_merchant(complaint).as_deref() != Some(me.as_str()) {
                return Err(acts::Refusal {
                    field: "complaint",
                    error: format!("complaint {complaint} is not against merchant {me}"),
                });
            }
        }
        // What a party may not do to a lottery whose seed weiquan holds: the field at fault, and why.
        let (lottery, field, act) = match &ev.body {
            Body::LotteryAnnounced { lottery, .. } => (lottery, "lottery", Some(("announced", "POST /v1/lotteries"))),
            Body::LotteryClosed { lottery } => (lottery, "lottery", Some(("closed", "POST /v1/lotteries/{id}/close"))),
            Body::LotteryDrawn { lottery, .. } => (lottery, "lottery", Some(("drawn", "POST /v1/lotteries/{id}/draw"))),
            Body::LotteryChanged { lottery, changes } if changes.commitment.is_some() => (lottery, "commitment", None),
            Body::LotteryChanged { lottery, changes } if changes.beacon_round.is_some() => {
                (lottery, "beacon_round", None)
            }
            _ => return Ok(()),
        };
        // Once weiquan holds the seed, the lottery's announcement, close and draw are
        // weiquan's: a draw submitted first would take the draw over (and publish the
        // seed before weiquan's own), a close would fix another entrant list. So are
        // its commitment and beacon round: a change to either is not the merchant's
        // act, and would be charged to it as a detrimental change (LT-02).
        let held = match self.seed_held.get(&**lottery) {
            Some(&held) => held,
            None => {
                let held = self.db().seed_of(lottery).map_err(|e| acts::Refusal {
                    field: "lottery",
                    error: format!("cannot check who acts on this lottery ({e}); retry"),
                })?;
                self.seed_held.cache((**lottery).into(), held.is_some());
                held.is_some()
            }
        };
        if !held {
            return Ok(());
        }
        Err(acts::Refusal {
            field,
            error: match act {
                Some((act, route)) => format!(
                    "weiquan holds the seed of lottery {lottery}: it is {act} through {}, not submitted",
                    route.replace("{id}", lottery)
                ),
                None => format!(
                    "weiquan holds the seed of lottery {lottery}: its `{field}` was fixed when weiquan announced it \
                     and cannot be changed; send the change without `{field}`"
                ),
            },
        })
    }

    /// The bound on how far ahead of the wall clock an event may be dated.
    fn within_future_bound(&self, ev: &weiquan_events::Event, now: Time) -> Result<(), acts::Refusal> {
        match self.max_future_ms {
            Some(bound) => acts::check_future(ev.at, now, bound),
            None => Ok(()),
        }
    }

    /// Keeps `seed` for `lottery` (once: a second is an error).
    pub fn hold_seed(&mut self, lottery: &str, seed: &str) -> Result<(), weiquan_store::StoreError> {
        self.db().put_seed(lottery, seed)?;
        self.seed_held.cache(lottery.into(), true);
        Ok(())
    }

    /// The rulebook.
    pub fn rules(&self) -> &Rulebook {
        &self.rules
    }

    /// The engine (grades, blacklist).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The ledger.
    pub fn ledger(&mut self) -> &mut Ledger<SharedBackend> {
        &mut self.ledger
    }

    /// The findings `filter` selects, in ledger order, as the database has
    /// them (on the reading connection, when there is one; reads come when
    /// every staged group is written, so what is seen is durable). A row
    /// this build cannot read is left out with an error in the log naming
    /// its leaf, rather than failing every page that reaches it.
    pub fn findings(&self, filter: &FindingFilter) -> Result<Vec<StoredFinding>, StoreError> {
        crate::findings::read_findings(&mut **self.reading(), filter)
    }

    /// See [`crate::findings::read_page`].
    pub fn findings_page(
        &self,
        filter: &FindingFilter,
        limit: usize,
    ) -> Result<(Vec<StoredFinding>, Option<u64>), StoreError> {
        crate::findings::read_page(&mut **self.reading(), filter, limit)
    }

    /// How many findings each rule has per day from `since_ms` on, in a
    /// time zone `offset_ms` ahead of UTC (see [`weiquan_store::Findings::finding_counts`]).
    pub fn finding_counts(&self, since_ms: i64, offset_ms: i64) -> Result<Vec<FindingCount>, StoreError> {
        self.reading().finding_counts(since_ms, offset_ms)
    }

    /// The connection reads go through: the reading one when there is one
    /// (the writer's is held while a group is written), else the writer's.
    fn reading(&self) -> std::sync::MutexGuard<'_, Box<dyn Backend>> {
        match &self.reader {
            Some(reader) => weiquan_ledger::lock(reader),
            None => self.db(),
        }
    }

    /// A finding as the API shows it.
    pub fn finding_out(&self, f: &StoredFinding, lang: Lang) -> crate::schemas::FindingOut {
        crate::schemas::FindingOut::new(&f.finding, f.index, &self.rules, lang)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoding of what a snapshot holds besides the engine. Snapshot
    /// files do not describe themselves: when this changes, so must
    /// `snapshots::MAGIC`, or a new build would misread an older file.
    #[test]
    fn the_snapshot_layout_is_the_one_its_magic_names() {
        let mut ids = ids::IdFilter::with_first(4);
        ids.insert(7);
        let state = Replayed {
            size: 9,
            root: [1; 32],
            erasure_mark: [2; 32],
            ids,
            legacy_ids: HashMap::from([("ps:1".to_owned(), "u1".to_owned())]),
            recorded_rulebook: Some("ab".into()),
        };
        let bytes = postcard::to_stdvec(&state).expect("encodes");
        assert_eq!(
            hex::encode(&bytes),
            "0901010101010101010101010101010101010101010101010101010101010101010202020202020202020202020202020202020202020202020202020202020202010401200000004000000010000080000040000004000000000100000008000000000100010470733a3102753101026162",
            "the layout changed: give snapshots::MAGIC a new number, then update this value"
        );
        let back: Replayed = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!((back.size, back.ids.contains(7)), (9, true));
    }

    /// The findings table's rows hold what the engine found, facts and all,
    /// and read back leniently: a fact its rule no longer names is dropped,
    /// while a rule this build lacks, or a body that is no finding, is damage.
    #[test]
    fn a_finding_row_reads_back_as_the_finding() {
        let finding = Finding {
            rule: weiquan_engine::RuleId::Ps01,
            subject: "presale:p1".into(),
            merchant: Some("m1".into()),
            at: weiquan_events::Time::from_unix_ms(1_000, 8 * 3600),
            events: vec!["e1".into(), "e2".into()],
            facts: vec![(weiquan_engine::RuleId::Ps01.placeholders()[0], "1".into())],
        };
        let row = StoredFinding::row(4, &finding);
        assert_eq!(
            (row.rule.as_str(), row.at_ms, row.merchant.as_deref()),
            ("PS-01", 1_000, Some("m1"))
        );
        let back = StoredFinding::from_row(row.clone()).expect("reads back");
        assert_eq!(
            back,
            StoredFinding {
                index: 4,
                finding: finding.clone()
            }
        );
        let mut value: serde_json::Value = serde_json::from_slice(&row.body).expect("json");
        value["facts"] = serde_json::json!([["gone_placeholder", "x"]]);
        let older = FindingRow {
            body: serde_json::to_vec(&value).expect("json"),
            ..row.clone()
        };
        let back = StoredFinding::from_row(older).expect("an unknown fact is dropped");
        assert_eq!((back.finding.facts.len(), back.finding.events.len()), (0, 2));
        value["rule"] = serde_json::json!("ZZ-99");
        for body in [serde_json::to_vec(&value).expect("json"), b"{".to_vec()] {
            let damaged = FindingRow { body, ..row.clone() };
            let e = StoredFinding::from_row(damaged).expect_err("damage");
            assert!(e.to_string().contains("finding 4"), "{e}");
        }
    }

    const ORIGIN: &str = "test.local/ledger";

    /// A core over the SQLite ledger in `dir` (replayed from it, no
    /// snapshot), looking ids up on a second connection as a server does, and
    /// keeping only `recent` ids per generation in memory.
    fn core_in(dir: &std::path::Path, recent: usize) -> Core {
        let db = weiquan_store::Database::Sqlite(dir.join("weiquan.db"));
        let (signer, _) = weiquan_store::keyfile::load_or_create(&dir.join("ledger.key"), ORIGIN).expect("key");
        let rules = Arc::new(Rulebook::builtin());
        let mut core = Core::open(db.open().expect("store"), signer, ORIGIN, rules, None)
            .expect("core")
            .with_reader(db.open_reader().expect("reader"));
        core.ids.keep_recent(recent);
        core
    }

    /// Ingests `lines` as the platform, one group each; each item's result.
    fn ingest_each(core: &mut Core, lines: &[String]) -> Vec<ItemResult> {
        let now = Time::from_unix_ms(1_798_761_600_000, 8 * 3600);
        (lines.iter())
            .flat_map(|line| {
                let batch = Batch::prepared(Submitter::platform(), vec![line.clone()]);
                core.ingest(vec![batch], now).expect("written").remove(0)
            })
            .collect()
    }

    fn tick(n: usize) -> String {
        format!(
            r#"{{"v":1,"id":"t{n}","type":"clock.tick","at":"2026-11-01T00:00:{:02}+08:00"}}"#,
            n % 60
        )
    }

    /// Ids leave memory (all but a few here), yet every repeat is still
    /// found: in the database, through the filter, within a process and
    /// after a restart; and nothing new is taken for a repeat.
    #[test]
    fn repeats_are_found_after_their_ids_leave_memory_and_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut core = core_in(dir.path(), 4);
        let first: Vec<String> = (0..100).map(tick).collect();
        let accepted = ingest_each(&mut core, &first);
        assert!(
            accepted.iter().all(|r| matches!(r, ItemResult::Accepted { .. })),
            "{accepted:?}"
        );
        assert_eq!(core.ids.recent(id_digest("t0")), None, "t0 left memory");
        let mut again = first.clone();
        again.push(tick(100));
        again.push(tick(100));
        let now = Time::from_unix_ms(1_798_761_600_000, 8 * 3600);
        let results = core
            .ingest(vec![Batch::prepared(Submitter::platform(), again)], now)
            .expect("written")
            .remove(0);
        assert_eq!(results[..100], vec![ItemResult::Duplicate; 100][..]);
        assert_eq!(results[100], ItemResult::Accepted { index: 100 });
        assert_eq!(results[101], ItemResult::Duplicate, "a repeat within the group");
        assert_eq!(core.leaf_of("t7").expect("read"), Some(7));
        drop(core);

        let mut core = core_in(dir.path(), 4);
        let repeats = ingest_each(&mut core, &[tick(5), tick(50), tick(100)]);
        assert_eq!(repeats, vec![ItemResult::Duplicate; 3]);
        assert_eq!(
            ingest_each(&mut core, &[tick(101)]),
            vec![ItemResult::Accepted { index: 101 }]
        );
        assert_eq!(core.ledger().size(), 102);
    }

    /// The evidence events' leaves a finding's leaf cites are the same
    /// whether its evidence is still in memory or only in the database.
    #[test]
    fn a_finding_cites_the_same_evidence_once_its_ids_left_memory() {
        let case = include_str!("../../../tests/cases/presale/events.ndjson");
        let lines: Vec<String> = case
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        let evidence_of = |recent: usize| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut core = core_in(dir.path(), recent);
            ingest_each(&mut core, &lines);
            let size = core.ledger().size();
            let leaves = core.db().leaves(0, size).expect("leaves");
            (leaves.into_iter())
                .filter_map(|(data, _)| {
                    let leaf: serde_json::Value = serde_json::from_slice(&data).ok()?;
                    let evidence = leaf.get("evidence")?.as_array()?.clone();
                    Some((leaf["rule"].to_string(), evidence))
                })
                .collect::<Vec<_>>()
        };
        let in_memory = evidence_of(1 << 20);
        let from_disk = evidence_of(1);
        assert!(
            in_memory.iter().filter(|(_, e)| !e.is_empty()).count() >= 3,
            "the case's findings cite evidence: {in_memory:?}"
        );
        assert_eq!(from_disk, in_memory);
    }

    /// A consumer named in the clear by a leaf written before format 3 is
    /// known to the replay; the readers of findings, beside the sequencer,
    /// get it too (published by the core), and reveal it as before.
    #[test]
    fn a_consumer_in_the_clear_in_an_older_ledger_is_revealed_to_the_findings_readers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let line = r#"{"v":1,"id":"b1","type":"bnpl.offered","at":"2026-11-01T09:00:00+08:00","consumer":"u1","session":"s1","preselected":true,"terms_shown":true}"#;
        let rules = Rulebook::builtin();
        // A ledger as a build before format 3 wrote it: the consumer in the
        // clear, in the event and in its finding.
        {
            let db = weiquan_store::Database::Sqlite(dir.path().join("weiquan.db"));
            let (signer, _) =
                weiquan_store::keyfile::load_or_create(&dir.path().join("ledger.key"), ORIGIN).expect("key");
            let mut ledger = Ledger::open(db.open().expect("store"), signer, ORIGIN).expect("ledger");
            let actor = (Submitter::platform().actor().canonical()).expect("actor");
            let event = weiquan_ledger::event_leaf_by(line, &actor).expect("leaf");
            let mut engine = Engine::new(Arc::new(rules.clone()));
            let found = engine.apply(&parse_event(line).expect("event"));
            assert_eq!(found.first().map(|f| f.subject.as_str()), Some("consumer:u1"));
            let finding = weiquan_app::finding_leaf_with(&found[0], &[0], &rules, None).expect("finding leaf");
            ledger.append(vec![event, finding.leaf]).expect("appended");
        }
        let slot = crate::findings::Legacy::default();
        let core = core_in(dir.path(), 4).with_legacy(slot.clone());
        let found = core.findings(&FindingFilter::default()).expect("findings");
        let mut shown: Vec<_> = found.iter().map(|f| core.finding_out(f, Lang::En)).collect();
        assert!(shown[0].subject.starts_with("consumer:ps:"), "{:?}", shown[0].subject);
        let legacy = slot.read().expect("published").clone().expect("published");
        crate::findings::reveal_consumers(&mut **core.db(), &legacy, &mut shown).expect("revealed");
        assert_eq!(
            shown[0].subject, "consumer:u1",
            "the readers reveal it as the sequencer did"
        );
    }

    /// A ledger written before ids were stored (schema 7) has them indexed
    /// from its leaves at the next start, and stored as generations leave
    /// memory: its repeats are found, including the id of an event whose
    /// consumer was erased since (its leaf cannot be read back, and its id
    /// must stay taken).
    #[test]
    fn ids_stored_before_runs_existed_are_indexed_and_stored_after_the_upgrade() {
        let dir = tempfile::tempdir().expect("tempdir");
        let offered = |n: usize, consumer: &str| {
            format!(
                r#"{{"v":1,"id":"b{n}","type":"bnpl.offered","at":"2026-11-01T09:00:00+08:00","consumer":"{consumer}","session":"s{n}","preselected":false,"terms_shown":true}}"#
            )
        };
        let lines: Vec<String> = (0..20)
            .map(|n| offered(n, if n == 3 { "gone" } else { "stays" }))
            .collect();
        let mut core = core_in(dir.path(), 1 << 20);
        ingest_each(&mut core, &lines);
        drop(core);
        let path = dir.path().join("weiquan.db");
        weiquan_store::Database::Sqlite(path.clone())
            .erase_consumer("gone")
            .expect("erased");
        // What the upgrade to schema 8 found: no stored id.
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch("DROP TABLE event_id_runs; DROP TABLE event_id_run_ends; PRAGMA user_version = 7;")
            .expect("back to schema 7");
        drop(conn);

        let mut core = core_in(dir.path(), 4);
        let more: Vec<String> = (100..110).map(|n| offered(n, "more")).collect();
        ingest_each(&mut core, &more);
        let runs = core.db().id_runs().expect("runs");
        assert!(runs.first().is_some_and(|&(_, end)| end >= 20), "{runs:?}");
        assert_eq!(core.ids.recent(id_digest("b3")), None, "only in a stored run");
        let size = core.ledger().size();
        assert_eq!(
            ingest_each(
                &mut core,
                &[offered(3, "gone"), offered(12, "stays"), offered(20, "new")]
            ),
            vec![
                ItemResult::Duplicate,
                ItemResult::Duplicate,
                ItemResult::Accepted { index: size }
            ]
        );
    }
}
