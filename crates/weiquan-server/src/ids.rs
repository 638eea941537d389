//! Accepted events' ids without holding them all in memory (issue 19).
//! Memory holds a Bloom filter of every id and the last one to two million
//! ids exactly; the database holds the others, a run at a
//! time: when a generation of recent ids leaves memory (all of its leaves
//! durable by then), it is stored as one run, its (digest, leaf) pairs
//! sorted and split by the digest's first bits into buckets. A new id the
//! filter has not seen costs nothing; the few others are looked up one
//! bucket per run, once per group of requests.
//!
//! Writing a run costs 24 bytes an id and a page per bucket, once per
//! generation. The first version wrote every id into one database index
//! with its leaf's transaction: a random page per id, and ingest fell to
//! 0.4–0.5 of what it was.

use std::collections::HashMap;
use std::hash::Hash;

/// Bits of filter per id: a split-block filter's false positives (the
/// share of new ids, beyond the recent ones, that cost a lookup) are about
/// 0.1% at 16 bits.
const BITS_PER_ID: usize = 16;

/// Buckets of a run: a lookup reads one, about 1.5 kB of a run of a million ids.
const BUCKET_BITS: u32 = 14;

/// Bytes of one (digest, leaf) pair in a bucket: the digest, then the leaf, big-endian.
const PAIR: usize = 24;

/// Ids the first filter is sized for; each next one for twice as many.
const FIRST_CAPACITY: usize = 1 << 20;

/// A Bloom filter of every accepted id that grows with them: split-block
/// filters (each id sets 8 bits of one 32-byte block, so a check or an
/// insert touches one cache line) of doubling sizes, checked newest first.
/// A partitioned filter (a bit per hash anywhere in the filter, in each of
/// four sizes) took 11% of a replay's time.
#[derive(Clone)]
pub struct IdFilter {
    /// Each filter with the ids it was sized for and the ids it holds.
    filters: Vec<(sbbf_rs_safe::Filter, usize, usize)>,
    /// Ids the first filter is sized for.
    first: usize,
}

impl IdFilter {
    /// Holds no id.
    pub fn new() -> Self {
        Self::with_first(FIRST_CAPACITY)
    }

    /// Holds no id; its first filter will be sized for `first` ids (tests
    /// use small ones).
    pub fn with_first(first: usize) -> Self {
        IdFilter {
            filters: Vec::new(),
            first: first.max(1),
        }
    }

    /// Whether `digest` may have been inserted (false: it was not).
    pub fn contains(&self, digest: u128) -> bool {
        let hash = digest as u64;
        self.filters.iter().rev().any(|(f, _, _)| f.contains_hash(hash))
    }

    /// Inserts `digest`.
    pub fn insert(&mut self, digest: u128) {
        if self.filters.last().is_none_or(|&(_, cap, held)| held >= cap) {
            let cap = self
                .filters
                .last()
                .map_or(self.first, |&(_, cap, _)| cap.saturating_mul(2));
            self.filters.push((sbbf_rs_safe::Filter::new(BITS_PER_ID, cap), cap, 0));
        }
        if let Some((f, _, held)) = self.filters.last_mut() {
            f.insert_hash(digest as u64);
            *held += 1;
        }
    }
}

impl Default for IdFilter {
    fn default() -> Self {
        Self::new()
    }
}

/// The filters as (sized for, holding, bytes), for a snapshot.
impl serde::Serialize for IdFilter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.filters.len()))?;
        for (f, cap, held) in &self.filters {
            seq.serialize_element(&(cap, held, serde_bytes::Bytes::new(f.as_bytes())))?;
        }
        seq.end()
    }
}

impl<'de> serde::Deserialize<'de> for IdFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let parts: Vec<(usize, usize, serde_bytes::ByteBuf)> = serde::Deserialize::deserialize(d)?;
        let filters = (parts.into_iter())
            .map(|(cap, held, bytes)| {
                let f = sbbf_rs_safe::Filter::from_bytes(&bytes)
                    .ok_or_else(|| serde::de::Error::custom("an id filter's bytes are not whole blocks"))?;
                Ok((f, cap, held))
            })
            .collect::<Result<_, D::Error>>()?;
        Ok(IdFilter {
            filters,
            first: FIRST_CAPACITY,
        })
    }
}

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
/// recent ones with their leaves; which leaves' ids are stored in runs.
/// Anything the filter may hold and the recent ids do not is looked up in
/// the stored runs: one bucket of each ([`bucket_of`], [`find_in_bucket`]).
pub struct IdIndex {
    filter: IdFilter,
    recent: Recent<u128, u64>,
    /// The stored runs hold the ids of the leaves before this one.
    runs_end: u64,
    /// The number of the next run.
    next_run: u64,
    /// The first leaf of the current generation of recent ids (the one
    /// before it starts at `runs_end`).
    now_start: u64,
}

/// A generation of recent ids to store as run `run`: ids of the leaves
/// before `end_leaf` (and from the previous run's end), as its buckets.
pub struct Run {
    /// Its number.
    pub run: u64,
    /// The leaf its ids end before.
    pub end_leaf: u64,
    /// (bucket, sorted pairs).
    pub buckets: Vec<(u32, Vec<u8>)>,
}

impl IdIndex {
    /// Holds no id; nothing is stored.
    pub fn new() -> Self {
        Self::with_filter(IdFilter::new())
    }

    /// Holds the ids of `filter` (a snapshot's: the recent ids are then
    /// indexed again from the ledger, see [`IdIndex::stored`]).
    pub fn with_filter(filter: IdFilter) -> Self {
        IdIndex {
            filter,
            recent: Recent::new(RECENT_PER_GENERATION),
            runs_end: 0,
            next_run: 0,
            now_start: 0,
        }
    }

    /// Takes the database's runs (number, end leaf, in order) as stored:
    /// the leaves from the last one's end on are this index's to hold.
    pub fn stored(&mut self, runs: &[(u64, u64)]) {
        let (run, end) = runs
            .last()
            .copied()
            .map_or((0, 0), |(run, end)| (run.saturating_add(1), end));
        self.next_run = run;
        self.runs_end = end;
        self.now_start = end;
        self.recent.clear();
    }

    /// The leaf the stored runs end before: the ids of leaves from here on
    /// are held as recent ones.
    pub fn runs_end(&self) -> u64 {
        self.runs_end
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

    /// Whether `digest` may have been accepted (the filter's answer; false:
    /// it was not).
    pub fn may_hold(&self, digest: u128) -> bool {
        self.filter.contains(digest)
    }

    /// Whether the database must be asked about `digest`: it may have been
    /// accepted, and it is not a recent id.
    pub fn must_ask(&self, digest: u128) -> bool {
        self.recent(digest).is_none() && self.may_hold(digest)
    }

    /// Holds an id accepted at `leaf` (in the filter and as a recent one),
    /// unless the current generation holds it already: false then, and its
    /// leaf stays. (The caller has found the ids accepted before its group;
    /// this finds a repeat within the group, whose ids are all in the
    /// current generation.)
    pub fn insert_new(&mut self, digest: u128, leaf: u64) -> bool {
        match self.recent.now.entry(digest) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(leaf);
                self.filter.insert(digest);
                true
            }
        }
    }

    /// Holds an id in the filter only (a replayed leaf's before the last
    /// stored run's end: the runs have it).
    pub fn insert_stored(&mut self, digest: u128) {
        self.filter.insert(digest);
    }

    /// Holds the id of a leaf from the runs' end on as a recent one, but
    /// not in the filter (a replay after a snapshot whose filter has it).
    pub fn insert_recent(&mut self, digest: u128, leaf: u64) {
        self.recent.insert(digest, leaf);
    }

    /// Called before the leaf `first` is indexed, when every leaf before the
    /// current generation is durable (the sequencer writes one group at a
    /// time, and a group starts after the write of the one before the group
    /// in flight): if the current generation is full, the one before leaves
    /// memory, to be stored as the returned run first.
    pub fn new_generation_at(&mut self, first: u64) -> Option<Run> {
        if self.recent.now.len() < self.recent.per_generation {
            return None;
        }
        let full = std::mem::take(&mut self.recent.now);
        let leaving = std::mem::replace(&mut self.recent.before, full);
        let run = (self.now_start > self.runs_end).then(|| {
            let run = Run {
                run: self.next_run,
                end_leaf: self.now_start,
                buckets: buckets(leaving),
            };
            self.next_run += 1;
            self.runs_end = self.now_start;
            run
        });
        self.now_start = first;
        run
    }

    /// The filter, for a snapshot (whose state is durable).
    pub fn filter(&self) -> &IdFilter {
        &self.filter
    }
}

/// The bucket of `digest`: its first bits.
pub fn bucket_of(digest: u128) -> u32 {
    (digest >> (128 - BUCKET_BITS)) as u32
}

/// A run's pairs as buckets: (bucket, its pairs sorted by digest).
fn buckets(pairs: HashMap<u128, u64, foldhash::fast::FixedState>) -> Vec<(u32, Vec<u8>)> {
    let mut pairs: Vec<(u128, u64)> = pairs.into_iter().collect();
    pairs.sort_unstable();
    let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
    for (digest, leaf) in pairs {
        let bucket = bucket_of(digest);
        if out.last().is_none_or(|(b, _)| *b != bucket) {
            out.push((bucket, Vec::new()));
        }
        if let Some((_, bytes)) = out.last_mut() {
            bytes.extend_from_slice(&digest.to_be_bytes());
            bytes.extend_from_slice(&leaf.to_be_bytes());
        }
    }
    out
}

/// The leaf of `digest` in a bucket's sorted pairs, if it is there (a
/// bucket of another length than whole pairs is read as far as it goes).
pub fn find_in_bucket(bucket: &[u8], digest: u128) -> Option<u64> {
    let pairs: Vec<&[u8]> = bucket.chunks_exact(PAIR).collect();
    let digest_of = |p: &&[u8]| u128::from_be_bytes(std::array::from_fn(|i| p[i]));
    let at = pairs.binary_search_by_key(&digest, digest_of).ok()?;
    Some(u64::from_be_bytes(std::array::from_fn(|i| pairs[at][16 + i])))
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

    /// A generation leaves memory as a run of the leaves before the next
    /// one started, and every id of it is found in its buckets.
    #[test]
    fn generations_leave_memory_as_runs_whose_buckets_find_them() {
        let mut ids = IdIndex::new();
        ids.keep_recent(100);
        let digest = |n: u64| weiquan_events::id_digest(&format!("e{n}"));
        let mut runs = Vec::new();
        for leaf in 0..1000u64 {
            runs.extend(ids.new_generation_at(leaf));
            assert!(ids.insert_new(digest(leaf), leaf));
        }
        assert_eq!(runs.len(), 8, "ten generations, the last two in memory");
        assert_eq!((runs[0].run, runs[0].end_leaf, runs[1].end_leaf), (0, 100, 200));
        assert_eq!(ids.runs_end(), 800);
        assert_eq!(ids.recent(digest(999)), Some(999));
        assert_eq!(ids.recent(digest(5)), None, "an old id left memory");
        assert!(ids.must_ask(digest(5)) && !ids.must_ask(digest(999)));
        let found = |d: u128| {
            (runs.iter())
                .flat_map(|r| &r.buckets)
                .filter(|(b, _)| *b == bucket_of(d))
                .find_map(|(_, pairs)| find_in_bucket(pairs, d))
        };
        assert!((0..800).all(|leaf| found(digest(leaf)) == Some(leaf)));
        assert_eq!(found(digest(900)), None, "still in memory, not in a run");
        let unseen = (5000..15_000).filter(|&n| ids.must_ask(digest(n))).count();
        assert!(unseen < 100, "{unseen} of 10000 new ids would be looked up");
    }

    /// The filter grows past its first size, keeps every id, and its false
    /// positives stay near 0.1% when every filter is full; it comes back
    /// whole from a snapshot's encoding.
    #[test]
    fn the_filter_grows_keeps_every_id_and_stays_selective() {
        let digest = |n: u64| weiquan_events::id_digest(&format!("e{n}"));
        let mut filter = IdFilter::with_first(10_000);
        for n in 0..70_000 {
            filter.insert(digest(n));
        }
        assert_eq!(filter.filters.len(), 3, "10,000 + 20,000 + 40,000");
        let back: IdFilter = postcard::from_bytes(&postcard::to_stdvec(&filter).expect("encodes")).expect("decodes");
        for f in [&filter, &back] {
            assert!((0..70_000).all(|n| f.contains(digest(n))));
            let false_positives = (1_000_000..1_100_000).filter(|&n| f.contains(digest(n))).count();
            assert!(false_positives < 1_000, "{false_positives} of 100,000 new ids");
        }
    }
}
