//! Accepted events' ids without holding them all in memory (issue 19): every
//! id is in the database (`event_ids`, written with its leaf in the same
//! transaction); memory holds a Bloom filter of all of them and the recent
//! ones exactly. A new id is told apart by the filter alone (it answers "not
//! seen" for all but about 1% of new ids); the database is asked only about
//! the rest, once per group of requests.

use growable_bloom_filter::GrowableBloom;
use std::collections::HashMap;
use std::hash::Hash;

/// The filter's false-positive rate: the share of new ids that cost a
/// database lookup. 1% takes about 1.2 bytes an id (growing filters a
/// little more).
const FALSE_POSITIVES: f64 = 0.01;

/// Ids a filter is first sized for; it grows by doubling.
const FIRST_CAPACITY: usize = 1 << 20;

/// Recent ids kept exactly, per generation: lookups of evidence (findings
/// cite events of the last weeks, mostly) and of repeats in a burst stay in
/// memory. Two generations: between 2^20 and 2^21 ids, about 50 MB.
const RECENT_PER_GENERATION: usize = 1 << 20;

/// A map that forgets its oldest entries: two generations, the current one
/// and the one before; when the current one is full, the one before is
/// dropped and the current one takes its place. What is forgotten must be
/// found again elsewhere (the database): this only saves asking.
pub struct Recent<K, V> {
    now: HashMap<K, V, foldhash::fast::FixedState>,
    before: HashMap<K, V, foldhash::fast::FixedState>,
    per_generation: usize,
}

impl<K: Hash + Eq, V> Recent<K, V> {
    /// Empty, keeping between `per_generation` and twice as many entries.
    pub fn new(per_generation: usize) -> Self {
        Recent {
            now: HashMap::default(),
            before: HashMap::default(),
            per_generation: per_generation.max(1),
        }
    }

    /// The value of `k`, if it is still held.
    pub fn get<Q: Hash + Eq + ?Sized>(&self, k: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
    {
        self.now.get(k).or_else(|| self.before.get(k))
    }

    /// Holds `v` for `k` in the current generation (without starting a new one).
    pub fn insert(&mut self, k: K, v: V) {
        self.now.insert(k, v);
    }

    /// Starts a new generation if the current one is full, dropping the one
    /// before. Callers choose when: a generation may be dropped only once
    /// everything in it can be found elsewhere.
    pub fn rotate_if_full(&mut self) {
        if self.now.len() >= self.per_generation {
            self.before = std::mem::take(&mut self.now);
        }
    }

    /// [`Recent::insert`] into a cache whose every entry can be found
    /// elsewhere at any time (a new generation starts whenever one is full).
    pub fn cache(&mut self, k: K, v: V) {
        self.rotate_if_full();
        self.insert(k, v);
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.now.clear();
        self.before.clear();
    }
}

/// The duplicate check's memory: a filter of every accepted id, and the
/// recent ones with their leaves. Anything the filter may hold and the
/// recent ids do not is asked of the database.
pub struct IdIndex {
    filter: GrowableBloom,
    recent: Recent<u128, u64>,
}

impl IdIndex {
    /// Holds no id.
    pub fn new() -> Self {
        Self::with_generation(RECENT_PER_GENERATION)
    }

    /// Holds no id; keeps `per_generation` recent ones exactly (tests use a
    /// small one, so that ids leave memory early).
    pub fn with_generation(per_generation: usize) -> Self {
        IdIndex {
            filter: GrowableBloom::new(FALSE_POSITIVES, FIRST_CAPACITY),
            recent: Recent::new(per_generation),
        }
    }

    /// Keeps `per_generation` recent ids exactly from now on (tests use a
    /// small number, so that ids leave memory early).
    #[cfg(test)]
    pub fn keep_recent(&mut self, per_generation: usize) {
        self.recent.per_generation = per_generation.max(1);
    }

    /// The leaf of a recent id.
    pub fn recent(&self, digest: u128) -> Option<u64> {
        self.recent.get(&digest).copied()
    }

    /// Whether the database must be asked about `digest`: it may have been
    /// accepted, and it is not a recent id.
    pub fn must_ask(&self, digest: u128) -> bool {
        self.recent(digest).is_none() && self.filter.contains(digest)
    }

    /// Holds a new id accepted at `leaf` (not yet durable: it stays in the
    /// recent ids at least until the next [`IdIndex::new_group`] but one).
    pub fn insert(&mut self, digest: u128, leaf: u64) {
        self.filter.insert(digest);
        self.recent.insert(digest, leaf);
    }

    /// Holds an id the database has already (a replayed leaf's): in the
    /// filter only.
    pub fn insert_durable(&mut self, digest: u128) {
        self.filter.insert(digest);
    }

    /// A group of requests starts. Every group staged before the one in
    /// flight is durable by now (the sequencer writes one group at a time),
    /// so the generation before the current one may go: it ended at an
    /// earlier start, before the group in flight was staged.
    pub fn new_group(&mut self) {
        self.recent.rotate_if_full();
    }

    /// The filter, for a snapshot (taken when everything is durable: the
    /// recent ids are in the database).
    pub fn filter(&self) -> &GrowableBloom {
        &self.filter
    }

    /// The index of a snapshot's filter; no recent id (they are in the database).
    pub fn from_filter(filter: GrowableBloom) -> Self {
        IdIndex {
            filter,
            recent: Recent::new(RECENT_PER_GENERATION),
        }
    }
}

impl Default for IdIndex {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generation is dropped only when the one after it is full, and only
    /// by the call that says so.
    #[test]
    fn recent_keeps_two_generations() {
        let mut r = Recent::new(2);
        r.insert(1, 'a');
        r.insert(2, 'b');
        r.insert(3, 'c');
        assert_eq!(r.get(&1), Some(&'a'), "no rotation without the call");
        r.rotate_if_full();
        r.insert(4, 'd');
        assert_eq!((r.get(&1), r.get(&4)), (Some(&'a'), Some(&'d')));
        r.rotate_if_full();
        assert_eq!(r.get(&4), Some(&'d'), "a generation of one is not full");
        r.insert(5, 'e');
        r.rotate_if_full();
        assert_eq!((r.get(&1), r.get(&4), r.get(&5)), (None, Some(&'d'), Some(&'e')));
    }

    /// The filter never forgets an id; recent ids leave memory, and are then
    /// the database's to answer for.
    #[test]
    fn ids_leave_memory_but_not_the_filter() {
        let mut ids = IdIndex::with_generation(100);
        for n in 0..1000u128 {
            ids.new_group();
            ids.insert(n * 7919, n as u64);
        }
        assert!((0..1000u128).all(|n| ids.filter.contains(n * 7919)));
        assert_eq!(ids.recent(999 * 7919), Some(999));
        assert_eq!(ids.recent(0), None, "an old id left memory");
        assert!(ids.must_ask(0), "and is asked of the database");
        assert!(!ids.must_ask(999 * 7919), "a recent one is not");
        let unseen = (1_000_000..1_010_000u128).filter(|&d| ids.must_ask(d)).count();
        assert!(unseen < 500, "{unseen} of 10000 new ids would be looked up");
    }
}
