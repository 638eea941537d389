//! Where each event of a ledger is: its id's digest → its leaf index.

use crate::{RecordError, CONSUMER_SUBJECT};
use std::collections::HashMap;
use weiquan_engine::{Finding, Rulebook};
use weiquan_ledger::{finding_leaf, Salt, SaltedLeaf};

/// Event id digest → leaf index: where each event of a ledger `weiquan audit
/// --ledger` writes is, for the evidence of its findings (a server keeps
/// its ids in the database instead). In 256 shards so that growing
/// one never stalls a batch for long (a single map of millions rehashes all
/// at once).
pub struct LeafIndex(Vec<HashMap<u128, u64, foldhash::fast::FixedState>>);

impl LeafIndex {
    /// An empty index.
    pub fn new() -> Self {
        LeafIndex((0..256).map(|_| HashMap::default()).collect())
    }

    fn shard(&mut self, digest: u128) -> &mut HashMap<u128, u64, foldhash::fast::FixedState> {
        &mut self.0[(digest >> 120) as usize]
    }

    /// Records `index` for a new id; false (and nothing recorded) if the id is known.
    pub fn insert_new(&mut self, digest: u128, index: u64) -> bool {
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

    /// The ledger leaf of finding `f`, its evidence events looked up here;
    /// with `salt`, its subject enters as a commitment.
    pub fn finding_leaf(&self, f: &Finding, rules: &Rulebook, salt: Option<&Salt>) -> Result<SaltedLeaf, RecordError> {
        let evidence: Vec<u64> = (f.events.iter())
            .filter_map(|id| self.get(weiquan_events::id_digest(id)))
            .collect();
        finding_leaf_with(f, &evidence, rules, salt)
    }

    /// Every (id digest, leaf index) recorded, in no particular order: what
    /// a snapshot keeps, to rebuild the index with [`LeafIndex::insert_new`].
    pub fn pairs(&self) -> impl Iterator<Item = (u128, u64)> + '_ {
        self.0.iter().flat_map(|shard| shard.iter().map(|(&d, &i)| (d, i)))
    }

    /// The leaf index of the event whose id has `digest`, if recorded.
    pub fn get(&self, digest: u128) -> Option<u64> {
        self.0[(digest >> 120) as usize].get(&digest).copied()
    }
}

/// The ledger leaf of finding `f` whose evidence events are at the leaves
/// `evidence` (those of its events that were found, in its order); with
/// `salt`, its subject enters as a commitment. The one place a finding
/// becomes a leaf, for the server and for `audit --ledger`.
pub fn finding_leaf_with(
    f: &Finding,
    evidence: &[u64],
    rules: &Rulebook,
    salt: Option<&Salt>,
) -> Result<SaltedLeaf, RecordError> {
    let text = rules.text(f.rule);
    finding_leaf(
        f.rule.as_str(),
        &f.subject,
        text.severity.as_str(),
        &f.at.to_string(),
        &f.events,
        evidence,
        &text.citation,
        salt,
    )
    .map_err(|source| RecordError::Finding {
        rule: f.rule.as_str().to_owned(),
        subject: match f.subject.strip_prefix(CONSUMER_SUBJECT) {
            Some(_) => format!("{CONSUMER_SUBJECT}…"),
            None => f.subject.clone(),
        },
        event: f.events.last().cloned().unwrap_or_default(),
        source,
    })
}

impl Default for LeafIndex {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weiquan_engine::RuleId;
    use weiquan_events::{id_digest, Time};

    /// The shards must not all grow at once: after the same number of ids,
    /// some have doubled and some not (at one load factor they would all match).
    #[test]
    fn leaf_index_shards_grow_at_different_times() {
        let mut index = LeafIndex::new();
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

    /// A finding too large for a leaf is an error that operators log: it
    /// names the rule and the event to find it by, and a consumer subject
    /// only by its kind.
    #[test]
    fn a_finding_that_cannot_be_a_leaf_names_no_consumer() {
        let at = Time::parse("2026-11-11T00:00:00+08:00").expect("a time");
        let finding = |subject: &str| Finding {
            rule: RuleId::Lt09,
            subject: subject.to_owned(),
            merchant: None,
            at,
            // Evidence longer than an entry bundle holds.
            events: (0..3000).map(|n| format!("event-{n:040}")).collect(),
            facts: Vec::new(),
        };
        let rules = Rulebook::builtin();
        let err = finding_leaf_with(&finding("consumer:u-4471"), &[], &rules, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("LT-09") && err.contains("event-0000000000000000000000000000000000002999"),
            "{err}"
        );
        assert!(err.contains("consumer:…") && !err.contains("u-4471"), "{err}");
        let err = finding_leaf_with(&finding("merchant:m7"), &[], &rules, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("merchant:m7"), "{err}");
    }
}
