//! The sequencer's state: engine, duplicate ids, ledger and the findings
//! projection. Owned by one thread; everything else reaches it through
//! [`crate::Sequencer`].
//!
//! The ledger is the system of record. On start (and after a failed write)
//! the state is rebuilt by replaying the ledger's event leaves through the
//! engine, which is deterministic, so findings are neither lost nor repeated.

use crate::acts::{self, Submitter};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use weiquan_engine::{Engine, Finding, Lang, Rulebook};
use weiquan_events::{id_digest, parse_event, Body, Reject, Time};
use weiquan_ledger::{event_leaf_by, finding_leaf, leaf_event, LeafError, Ledger, LedgerError, LogStore};
use weiquan_store::Backend;

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
#[derive(Clone, Debug)]
pub struct StoredFinding {
    /// Leaf index of the finding.
    pub index: u64,
    /// The finding.
    pub finding: Finding,
}

/// State owned by the sequencer thread.
pub struct Core {
    rules: Arc<Rulebook>,
    engine: Engine,
    ledger: Ledger<Box<dyn Backend>>,
    findings: Vec<StoredFinding>,
    /// Leaf index of every accepted event, by id digest: both the duplicate
    /// check and the evidence lookup of findings (24 bytes an event, no copy of the id).
    index_of: EventIndex,
    /// Submitted events may be dated at most this far ahead of the wall clock (None: no bound).
    max_future_ms: Option<i64>,
    /// Whether weiquan holds a lottery's seed, as looked up: seeds are kept only
    /// through [`Core::hold_seed`], so an answer stays true (a query per lottery
    /// event cost PostgreSQL ingest a round trip each).
    seed_held: HashMap<Box<str>, bool>,
}

/// One request's items and who submits them.
pub struct Batch {
    /// The submitting party (or weiquan on a party's request).
    pub submitter: Submitter,
    /// NDJSON items, in order.
    pub items: Vec<String>,
}

/// Event id digest → leaf index, in 256 shards so that growing one never
/// stalls a batch for long (a single map of millions rehashes all at once).
struct EventIndex(Vec<HashMap<u128, u64, foldhash::fast::FixedState>>);

impl EventIndex {
    fn new() -> Self {
        EventIndex((0..256).map(|_| HashMap::default()).collect())
    }

    fn shard(&mut self, digest: u128) -> &mut HashMap<u128, u64, foldhash::fast::FixedState> {
        &mut self.0[(digest >> 120) as usize]
    }

    /// Records `index` for a new id; false (and nothing recorded) if the id is known.
    fn insert_new(&mut self, digest: u128, index: u64) -> bool {
        let nth = (digest >> 120) as usize;
        let shard = self.shard(digest);
        // Shards fill at the same pace, so at one load factor they would all rehash within a
        // few batches of each other (a 50–70 ms stall in the server's p99). Each doubles at a
        // load of its own instead, 50% to 100% of its capacity: the rehashes of one
        // generation are spread over a doubling of the ledger.
        let cap = shard.capacity();
        if shard.len() >= cap / 2 + cap * nth / 512 {
            shard.reserve(cap);
        }
        match shard.entry(digest) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(index);
                true
            }
        }
    }

    fn get(&self, digest: u128) -> Option<u64> {
        self.0[(digest >> 120) as usize].get(&digest).copied()
    }
}

/// The ledger leaf of a finding whose evidence events are at leaf indices `evidence`.
pub fn finding_leaf_of(f: &Finding, rules: &Rulebook, evidence: &[u64]) -> Result<Vec<u8>, LeafError> {
    let text = rules.text(f.rule);
    finding_leaf(
        f.rule.as_str(),
        &f.subject,
        text.severity.as_str(),
        &f.at.to_string(),
        &f.events,
        evidence,
        &text.citation,
    )
}

/// What replay needs to tell a finding leaf from an event leaf.
#[derive(serde::Deserialize)]
struct LeafKind {
    #[serde(rename = "type")]
    kind: Option<String>,
    rule: Option<String>,
    subject: Option<String>,
}

impl Core {
    /// Opens the ledger in `backend` and replays it.
    pub fn open(
        backend: Box<dyn Backend>,
        signer: signed_note::StandardSigner,
        origin: &str,
        rules: Arc<Rulebook>,
    ) -> Result<Core, LedgerError> {
        let ledger = Ledger::open(backend, signer, origin)?;
        let mut core = Core {
            engine: Engine::new(rules.clone()),
            rules,
            ledger,
            findings: Vec::new(),
            index_of: EventIndex::new(),
            max_future_ms: None,
            seed_held: HashMap::new(),
        };
        core.replay()?;
        Ok(core)
    }

    /// Refuses submitted events dated more than `bound_ms` ahead of the wall clock
    /// (`None`: no bound, for demos and replayed simulations).
    pub fn with_max_future(mut self, bound_ms: Option<i64>) -> Core {
        self.max_future_ms = bound_ms;
        self
    }

    /// Rebuilds engine, duplicate ids and findings from the ledger.
    fn replay(&mut self) -> Result<(), LedgerError> {
        self.engine = Engine::new(self.rules.clone());
        self.findings.clear();
        self.index_of = EventIndex::new();
        let size = self.ledger.size();
        let mut produced: VecDeque<Finding> = VecDeque::new();
        let mut from = 0;
        while from < size {
            let to = (from + 4096).min(size);
            let rows = self.ledger.store_mut().leaves(from, to)?;
            for (i, (data, _)) in rows.iter().enumerate() {
                let index = from + i as u64;
                let text = String::from_utf8_lossy(data);
                // An event leaf of either format (1: the event; 2: the event and its actor).
                let event = leaf_event(&text);
                let kind: Option<LeafKind> = match event {
                    None => serde_json::from_str(&text).ok(),
                    Some(_) => None,
                };
                if let Some(LeafKind { rule, subject, .. }) =
                    kind.filter(|k| k.kind.as_deref() == Some("weiquan.finding"))
                {
                    let (rule, subject) = (rule.unwrap_or_default(), subject.unwrap_or_default());
                    // The engine regenerates the finding (with its message facts); the ledger says where it is.
                    match produced.pop_front() {
                        Some(p) if p.rule.as_str() == rule && p.subject == subject => {
                            self.findings.push(StoredFinding { index, finding: p })
                        }
                        _ => {
                            tracing::warn!(index, %rule, %subject, "logged finding not reproduced by the current rulebook")
                        }
                    }
                    continue;
                }
                let Some((event, _, _)) = event else {
                    tracing::warn!(
                        index,
                        "ledger leaf is neither an event nor a finding; skipped in replay"
                    );
                    continue;
                };
                match parse_event(&event) {
                    Ok(ev) => {
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
                        self.index_of.insert_new(id_digest(&ev.id), index);
                        produced.extend(self.engine.apply(&ev));
                    }
                    Err(e) => {
                        tracing::warn!(index, error = %e, "ledger leaf is not an event of this format; skipped in replay")
                    }
                }
            }
            from = to;
        }
        Ok(())
    }

    /// Processes several requests' items in order, appends everything in one
    /// durable transaction, and returns each request's results. `now` is the
    /// wall clock, read by the caller (the engine never reads one).
    pub fn ingest(&mut self, requests: &[Batch], now: Time) -> Result<Vec<Vec<ItemResult>>, LedgerError> {
        let base = self.ledger.size();
        let mut leaves: Vec<Vec<u8>> = Vec::new();
        let mut staged: Vec<StoredFinding> = Vec::new();
        let mut results = Vec::with_capacity(requests.len());
        for batch in requests {
            let mut out = Vec::with_capacity(batch.items.len());
            // One submitter a batch: its actor is encoded once, not per leaf.
            let from = batch.submitter.actor().canonical();
            for (i, line) in batch.items.iter().enumerate() {
                let item = i as u64 + 1;
                out.push(match &from {
                    Ok(actor) => {
                        let source = (&batch.submitter, actor);
                        self.ingest_one(item, line, source, now, base, &mut leaves, &mut staged)
                    }
                    Err(e) => ItemResult::Rejected {
                        field: None,
                        error: e.to_string(),
                    },
                });
            }
            results.push(out);
        }
        if let Err(e) = self.ledger.append(leaves) {
            // Nothing of this batch is durable: forget it by rebuilding from the ledger.
            self.replay()?;
            return Err(e);
        }
        self.findings.extend(staged);
        Ok(results)
    }

    #[allow(clippy::too_many_arguments)]
    fn ingest_one(
        &mut self,
        item: u64,
        line: &str,
        (submitter, actor): (&Submitter, &weiquan_ledger::CanonicalActor),
        now: Time,
        base: u64,
        leaves: &mut Vec<Vec<u8>>,
        staged: &mut Vec<StoredFinding>,
    ) -> ItemResult {
        let reject = |r: Reject| ItemResult::Rejected {
            field: r.field,
            error: r.error,
        };
        if line.len() > weiquan_events::MAX_LINE_BYTES {
            return ItemResult::Rejected {
                field: None,
                error: format!(
                    "item is {} bytes; at most {} are accepted",
                    line.len(),
                    weiquan_events::MAX_LINE_BYTES
                ),
            };
        }
        let ev = match parse_event(line) {
            Ok(ev) => ev,
            Err(e) => return reject(Reject::from_parse(item, e)),
        };
        let checked = match submitter {
            Submitter::Party(party) => self.may_submit(&party.role, &ev, now),
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
        let leaf = match event_leaf_by(line, actor) {
            Ok(l) => l,
            Err(e) => {
                return ItemResult::Rejected {
                    field: None,
                    error: e.to_string(),
                }
            }
        };
        let index = base + leaves.len() as u64;
        if !self.index_of.insert_new(id_digest(&ev.id), index) {
            return ItemResult::Duplicate;
        }
        leaves.push(leaf);
        for f in self.engine.apply(&ev) {
            let evidence: Vec<u64> = f
                .events
                .iter()
                .filter_map(|e| self.index_of.get(id_digest(e)))
                .collect();
            match finding_leaf_of(&f, &self.rules, &evidence) {
                Ok(leaf) => {
                    staged.push(StoredFinding {
                        index: base + leaves.len() as u64,
                        finding: f,
                    });
                    leaves.push(leaf);
                }
                Err(e) => tracing::error!(error = %e, "finding leaf could not be encoded"),
            }
        }
        ItemResult::Accepted { index }
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
        let (lottery, act, route) = match &ev.body {
            Body::LotteryAnnounced { lottery, .. } => (lottery, "announced", "POST /v1/lotteries"),
            Body::LotteryClosed { lottery } => (lottery, "closed", "POST /v1/lotteries/{id}/close"),
            Body::LotteryDrawn { lottery, .. } => (lottery, "drawn", "POST /v1/lotteries/{id}/draw"),
            _ => return Ok(()),
        };
        // Once weiquan holds the seed, the lottery's announcement, close and draw are
        // weiquan's: a draw submitted first would take the draw over (and publish the
        // seed before weiquan's own), a close would fix another entrant list.
        let held = match self.seed_held.get(&**lottery) {
            Some(&held) => held,
            None => {
                let held = self.ledger.store_mut().seed_of(lottery).map_err(|e| acts::Refusal {
                    field: "lottery",
                    error: format!("cannot check who acts on this lottery ({e}); retry"),
                })?;
                self.seed_held.insert((**lottery).into(), held.is_some());
                held.is_some()
            }
        };
        if held {
            return Err(acts::Refusal {
                field: "lottery",
                error: format!(
                    "weiquan holds the seed of lottery {lottery}: it is {act} through {}, not submitted",
                    route.replace("{id}", lottery)
                ),
            });
        }
        Ok(())
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
        self.ledger.store_mut().put_seed(lottery, seed)?;
        self.seed_held.insert(lottery.into(), true);
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
    pub fn ledger(&mut self) -> &mut Ledger<Box<dyn Backend>> {
        &mut self.ledger
    }

    /// Findings in ledger order.
    pub fn findings(&self) -> &[StoredFinding] {
        &self.findings
    }

    /// A finding as JSON for the API.
    pub fn finding_json(&self, f: &StoredFinding, lang: Lang) -> serde_json::Value {
        let mut v = serde_json::to_value(f.finding.record(&self.rules, lang)).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("index".into(), f.index.into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shards must not all grow at once: after the same number of ids,
    /// some have doubled and some not (at one load factor they would all match).
    #[test]
    fn event_index_shards_grow_at_different_times() {
        let mut index = EventIndex::new();
        for n in 0..100_000u64 {
            assert!(index.insert_new(id_digest(&format!("e{n}")), n));
        }
        assert!(
            !index.insert_new(id_digest("e7"), 1),
            "a known id is not recorded again"
        );
        assert_eq!(index.get(id_digest("e7")), Some(7));
        let mut caps: Vec<usize> = index.0.iter().map(HashMap::capacity).collect();
        caps.sort_unstable();
        caps.dedup();
        let most = caps
            .iter()
            .map(|c| index.0.iter().filter(|s| s.capacity() == *c).count())
            .max()
            .unwrap_or(0);
        assert!(
            caps.len() >= 2 && most < 256 * 9 / 10,
            "shard capacities {caps:?}, {most} alike"
        );
    }
}
