//! Interned subject tables: each id is hashed once, then state is reached by
//! a dense `u32` index (what deadlines and cross-references hold).

use compact_str::CompactString;
use hashbrown::hash_table::{Entry, HashTable};
use std::hash::BuildHasher;

/// Deterministic, fast, and well distributed on short similar ids (u1, u2, …),
/// where FxHash's weak high bits made probes compare many keys.
fn hash(id: &str) -> u64 {
    foldhash::fast::FixedState::default().hash_one(id)
}

/// Subjects of one kind, each id with its state.
///
/// The id is stored once, inline beside the state (ids of up to 24 bytes need
/// no allocation); the hash index holds only `u32` positions. A lookup reads a
/// 4-byte slot and then the item itself, which the caller reads next anyway.
pub(crate) struct Table<T> {
    index: HashTable<u32>,
    items: Chunks<(CompactString, T)>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            index: HashTable::new(),
            items: Chunks::default(),
        }
    }
}

/// Items per chunk of a [`Chunks`].
const CHUNK: usize = 1024;

/// A vector that grows by whole chunks: growing never copies what is there,
/// and memory is touched once. (A doubling `Vec` of 160-byte orders copied the
/// table on every growth into freshly faulted pages: 15 MB of peak memory and
/// a few percent of an audit.)
struct Chunks<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Chunks {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> std::ops::Index<u32> for Chunks<T> {
    type Output = T;
    fn index(&self, i: u32) -> &T {
        let i = i as usize;
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl<T> std::ops::IndexMut<u32> for Chunks<T> {
    fn index_mut(&mut self, i: u32) -> &mut T {
        let i = i as usize;
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl<T> Chunks<T> {
    fn push(&mut self, item: T) {
        if self.len % CHUNK == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push(item);
        }
        self.len += 1;
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

impl<T> Table<T> {
    /// Index of `id`, if known.
    pub fn find(&self, id: &str) -> Option<u32> {
        let items = &self.items;
        self.index.find(hash(id), |&i| items[i].0 == id).copied()
    }

    /// Index of `id`, creating it with `make()` when new.
    pub fn intern(&mut self, id: &str, make: impl FnOnce() -> T) -> u32 {
        let items = &self.items;
        let entry = self
            .index
            .entry(hash(id), |&i| items[i].0 == id, |&i| hash(&items[i].0));
        match entry {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(v) => {
                let i = u32::try_from(items.len).expect("fewer than 2^32 subjects of one kind");
                v.insert(i);
                self.items.push((CompactString::from(id), make()));
                i
            }
        }
    }

    /// The id at `i`.
    pub fn id(&self, i: u32) -> &str {
        &self.items[i].0
    }

    /// The state at `i`.
    pub fn get(&self, i: u32) -> &T {
        &self.items[i].1
    }

    /// The state at `i`, mutably.
    pub fn get_mut(&mut self, i: u32) -> &mut T {
        &mut self.items[i].1
    }

    /// All `(id, state)` in first-seen order (deterministic).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.items.iter().map(|(k, v)| (&**k, v))
    }
}

impl<T: Default> Table<T> {
    /// Index of `id`, creating a default state when new.
    pub fn entry(&mut self, id: &str) -> u32 {
        self.intern(id, T::default)
    }
}

/// A 64-bit key for a pseudonymous id (participant, consumer) that rules only
/// compare and never print: no table entry, no copy of the id kept.
pub(crate) fn pid(id: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x7765_6971_7561_6e00).hash_one(id)
}
