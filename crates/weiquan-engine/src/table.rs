//! Interned subject tables: each id is hashed once, then state is reached by
//! a dense `u32` index (what deadlines and cross-references hold).

use compact_str::CompactString;
use std::collections::HashMap;

/// Deterministic, fast, and well distributed on short similar ids (u1, u2, …),
/// where FxHash's weak high bits made probes compare many keys.
type Map<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Subjects of one kind, each id with its state.
pub(crate) struct Table<T> {
    /// Ids of up to 24 bytes live inside the table itself, so a lookup does not
    /// chase a pointer to compare keys (one cache miss instead of two).
    index: Map<CompactString, u32>,
    items: Vec<(Box<str>, T)>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            index: Map::default(),
            items: Vec::new(),
        }
    }
}

impl<T> Table<T> {
    /// Index of `id`, if known.
    pub fn find(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// Index of `id`, creating it with `make()` when new.
    pub fn intern(&mut self, id: &str, make: impl FnOnce() -> T) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = u32::try_from(self.items.len()).expect("fewer than 2^32 subjects of one kind");
        self.items.push((id.into(), make()));
        self.index.insert(CompactString::from(id), i);
        i
    }

    /// The id at `i`.
    pub fn id(&self, i: u32) -> &str {
        &self.items[i as usize].0
    }

    /// The state at `i`.
    pub fn get(&self, i: u32) -> &T {
        &self.items[i as usize].1
    }

    /// The state at `i`, mutably.
    pub fn get_mut(&mut self, i: u32) -> &mut T {
        &mut self.items[i as usize].1
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
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x7765_6971_7561_6e00).hash_one(id)
}
