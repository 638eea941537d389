//! Interned subject tables: each id is hashed once, then state is reached by
//! a dense `u32` index (what deadlines and cross-references hold).

use rustc_hash::FxHashMap;

/// Subjects of one kind, each id with its state.
pub(crate) struct Table<T> {
    index: FxHashMap<Box<str>, u32>,
    items: Vec<(Box<str>, T)>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            index: FxHashMap::default(),
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
        self.index.insert(id.into(), i);
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
