//! Interned subject tables: each id is hashed once, then state is reached by
//! a dense index (what deadlines and cross-references hold), typed per table
//! so that an order's index cannot be passed where a merchant's is expected.

use compact_str::CompactString;
use hashbrown::hash_table::{Entry, HashTable};
use std::hash::BuildHasher;

/// Deterministic, fast, and well distributed on short similar ids (u1, u2, …),
/// where FxHash's weak high bits made probes compare many keys.
fn hash(id: &str) -> u64 {
    foldhash::fast::FixedState::default().hash_one(id)
}

/// A dense index into one [`Table`]: a `u32` with the table's own type.
pub(crate) trait Ix: Copy + Eq {
    /// The index at position `i` (a deadline's target is stored raw).
    fn from_raw(i: u32) -> Self;
    /// Its position.
    fn raw(self) -> u32;
}

/// Declares the index types, one per table.
macro_rules! indices {
    ($($(#[$doc:meta])* $name:ident,)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub(crate) struct $name(u32);

        impl Ix for $name {
            fn from_raw(i: u32) -> Self {
                $name(i)
            }
            fn raw(self) -> u32 {
                self.0
            }
        }
    )*};
}

indices! {
    /// A merchant.
    MerchantIx,
    /// An order.
    OrderIx,
    /// A complaint.
    ComplaintIx,
    /// A service conversation.
    ConversationIx,
    /// A unified social credit code (MC-03's identity check).
    UsccIx,
    /// A licence number (MC-03).
    LicenceIx,
    /// A pre-sale campaign.
    CampaignIx,
    /// A lottery.
    LotteryIx,
    /// A live-stream host.
    HostIx,
    /// A merchant's sku.
    SkuIx,
    /// A price segment (PR-02).
    SegmentIx,
}

impl SegmentIx {
    /// No segment (a quote without one): 4 bytes where an `Option` takes 8.
    pub(crate) const NONE: SegmentIx = SegmentIx(u32::MAX);
}

/// Subjects of one kind, each id with its state, reached by an index of type `I`.
///
/// The id is stored once, inline beside the state (ids of up to 24 bytes need
/// no allocation); the hash index holds only `u32` positions. A lookup reads a
/// 4-byte slot and then the item itself, which the caller reads next anyway.
///
/// A subject that is forgotten ([`Table::remove`], retention) leaves a vacant
/// slot (an empty id: ids are never empty) that the next new subject takes, so
/// the table's size follows the subjects it holds, not all it ever held.
pub(crate) struct Table<T, I> {
    index: HashTable<u32>,
    items: Chunks<(CompactString, T)>,
    /// Vacant slots, the next one to take last.
    free: Vec<u32>,
    kind: std::marker::PhantomData<I>,
}

impl<T, I> Default for Table<T, I> {
    fn default() -> Self {
        Table {
            index: HashTable::new(),
            items: Chunks::default(),
            free: Vec::new(),
            kind: std::marker::PhantomData,
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

impl<T, I: Ix> Table<T, I> {
    /// Index of `id`, if known.
    pub fn find(&self, id: &str) -> Option<I> {
        let items = &self.items;
        self.index
            .find(hash(id), |&i| items[i].0 == id)
            .map(|&i| I::from_raw(i))
    }

    /// Index of `id`, creating it with `make()` when new.
    pub fn intern(&mut self, id: &str, make: impl FnOnce() -> T) -> I {
        self.intern_by(hash(id), id, |item| item.0 == id, |item| hash(&item.0), make)
    }

    /// Index of the item with key `id` and hash `h` (`same` tells it apart,
    /// `rehash` gives any item's hash again), created with `make()` when new.
    fn intern_by(
        &mut self,
        h: u64,
        id: &str,
        same: impl Fn(&(CompactString, T)) -> bool,
        rehash: impl Fn(&(CompactString, T)) -> u64,
        make: impl FnOnce() -> T,
    ) -> I {
        let items = &self.items;
        match self.index.entry(h, |&i| same(&items[i]), |&i| rehash(&items[i])) {
            Entry::Occupied(e) => I::from_raw(*e.get()),
            Entry::Vacant(v) => {
                if let Some(i) = self.free.pop() {
                    v.insert(i);
                    self.items[i] = (CompactString::from(id), make());
                    return I::from_raw(i);
                }
                let i = u32::try_from(items.len).expect("fewer than 2^32 subjects of one kind");
                v.insert(i);
                self.items.push((CompactString::from(id), make()));
                I::from_raw(i)
            }
        }
    }

    /// Number of subjects held (vacant slots not counted).
    pub fn len(&self) -> usize {
        self.items.len - self.free.len()
    }

    /// The id at `i`.
    pub fn id(&self, i: I) -> &str {
        &self.items[i.raw()].0
    }

    /// The state at `i`.
    pub fn get(&self, i: I) -> &T {
        &self.items[i.raw()].1
    }

    /// The state at `i`, mutably.
    pub fn get_mut(&mut self, i: I) -> &mut T {
        &mut self.items[i.raw()].1
    }

    /// All `(id, state)` in slot order: first-seen order until a subject is
    /// forgotten, and deterministic always (slots are reused in a fixed order).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.items.iter().filter(|(k, _)| !k.is_empty()).map(|(k, v)| (&**k, v))
    }
}

impl<T: Default + Keyed, I: Ix> Table<T, I> {
    /// Forgets the subject at `i`: its id is no longer found, its state is
    /// dropped, and its slot goes to the next new subject. The caller makes
    /// sure nothing still holds `i` (a deadline, another subject's state).
    pub fn remove(&mut self, i: I) {
        let raw = i.raw();
        let (id, item) = &self.items[raw];
        if id.is_empty() {
            return;
        }
        let h = item.key_hash(id);
        if let Ok(slot) = self.index.find_entry(h, |&j| j == raw) {
            slot.remove();
        }
        self.items[raw] = (CompactString::default(), T::default());
        self.free.push(raw);
    }
}

/// How a table's items are found by key: by their id alone, unless the state
/// says otherwise (an sku is found by its merchant and id). A snapshot stores
/// only the items; restoring one rebuilds the hash index with this.
pub(crate) trait Keyed {
    /// The hash `item` is found under, with id `id`.
    fn key_hash(&self, id: &str) -> u64 {
        hash(id)
    }
}

/// The vacant slots, then every slot in order (a vacant one with an empty
/// id): the index is derived data, rebuilt on restore (hashes are
/// fixed-seeded, so it finds what it found before), and the free list is kept
/// as it was, so that a restored engine reuses the slots a running one would.
impl<T: serde::Serialize, I> serde::Serialize for Table<T, I> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.free)?;
        t.serialize_element(&SlotsOut(&self.items))?;
        t.end()
    }
}

/// A table's slots, written as one sequence.
struct SlotsOut<'a, T>(&'a Chunks<(CompactString, T)>);

impl<T: serde::Serialize> serde::Serialize for SlotsOut<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        // The length up front: a compact format writes it before the items.
        let mut seq = s.serialize_seq(Some(self.0.len))?;
        for item in self.0.iter() {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

/// A table's slots, read back as one sequence.
struct SlotsIn<T>(Chunks<(CompactString, T)>);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for SlotsIn<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Slots<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Slots<T> {
            type Value = SlotsIn<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table's slots in order")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Chunks::default();
                while let Some(item) = seq.next_element::<(CompactString, T)>()? {
                    if u32::try_from(items.len).is_err() {
                        return Err(serde::de::Error::custom("more than 2^32 subjects of one kind"));
                    }
                    items.push(item);
                }
                Ok(SlotsIn(items))
            }
        }
        d.deserialize_seq(Slots(std::marker::PhantomData))
    }
}

impl<'de, T: serde::Deserialize<'de> + Keyed, I: Ix> serde::Deserialize<'de> for Table<T, I> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (free, SlotsIn(items)) = <(Vec<u32>, SlotsIn<T>)>::deserialize(d)?;
        let vacant = items.iter().filter(|(id, _)| id.is_empty()).count();
        let mut listed = free.clone();
        listed.sort_unstable();
        listed.dedup();
        let all_vacant = listed
            .iter()
            .all(|&i| (i as usize) < items.len && items[i].0.is_empty());
        if vacant != free.len() || listed.len() != free.len() || !all_vacant {
            return Err(serde::de::Error::custom(
                "a table's vacant slots do not match its free list",
            ));
        }
        let mut index = HashTable::new();
        for (i, (id, item)) in items.iter().enumerate() {
            if id.is_empty() {
                continue;
            }
            // Below 2^32: the slots were counted as they were read.
            index.insert_unique(item.key_hash(id), i as u32, |&j| {
                let (id, item) = &items[j];
                item.key_hash(id)
            });
        }
        Ok(Table {
            index,
            items,
            free,
            kind: std::marker::PhantomData,
        })
    }
}

/// Keys made of an owner's index and an id (a merchant's sku): hashed and
/// compared in place, where a key string built per lookup cost 5% of an audit.
pub(crate) trait Owned {
    /// The owner's kind of index.
    type Owner: Ix;
    /// The owner's index.
    fn owner(&self) -> Self::Owner;
}

pub(crate) fn owned_hash(owner: impl Ix, id: &str) -> u64 {
    foldhash::fast::FixedState::default().hash_one((owner.raw(), id))
}

impl<T: Owned, I: Ix> Table<T, I> {
    /// Index of `owner`'s `id`, if known.
    pub fn find_owned(&self, owner: T::Owner, id: &str) -> Option<I> {
        let items = &self.items;
        self.index
            .find(owned_hash(owner, id), |&i| {
                items[i].1.owner() == owner && items[i].0 == id
            })
            .map(|&i| I::from_raw(i))
    }

    /// Index of `owner`'s `id`, creating it with `make()` when new.
    pub fn intern_owned(&mut self, owner: T::Owner, id: &str, make: impl FnOnce() -> T) -> I {
        self.intern_by(
            owned_hash(owner, id),
            id,
            |item| item.1.owner() == owner && item.0 == id,
            |item| owned_hash(item.1.owner(), &item.0),
            make,
        )
    }
}

impl<T: Default, I: Ix> Table<T, I> {
    /// Index of `id`, creating a default state when new.
    pub fn entry(&mut self, id: &str) -> I {
        self.intern(id, T::default)
    }
}

/// Strings kept one after another in one buffer: a list of ids that costs no
/// allocation each (a lottery's entrants: a box per id was 8 MB of fresh
/// memory on a million-event audit, and its page faults).
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Strings {
    text: String,
    ends: Vec<u32>,
}

impl Strings {
    /// Appends `s`.
    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends
            .push(u32::try_from(self.text.len()).expect("less than 4 GiB of ids in one list"));
    }

    /// Every string, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(a, b)| &self.text[a as usize..b as usize])
    }
}

/// Makes room in a list that is usually short: its first element allocates
/// room for one, not four (many subjects have one waiting message or one reply window).
pub(crate) fn room_for_one<T>(v: &mut Vec<T>) {
    if v.capacity() == 0 {
        v.reserve_exact(1);
    }
}

/// A 64-bit key for a pseudonymous id (participant, consumer) that rules only
/// compare and never print: no table entry, no copy of the id kept.
pub(crate) fn pid(id: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x7765_6971_7561_6e00).hash_one(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(MerchantIx);
    impl Owned for Item {
        type Owner = MerchantIx;
        fn owner(&self) -> MerchantIx {
            self.0
        }
    }

    /// The same id under two owners is two entries; every entry is found again
    /// after the index has grown (and rehashed) many times.
    #[test]
    fn owned_keys_are_told_apart_by_owner_and_survive_growth() {
        let m = MerchantIx::from_raw;
        let mut t: Table<Item, SkuIx> = Table::default();
        for n in 0..5000u32 {
            let id = format!("s{}", n % 100);
            let i = t.intern_owned(m(n / 100), &id, || Item(m(n / 100)));
            assert_eq!(t.find_owned(m(n / 100), &id), Some(i));
        }
        assert_eq!(t.items.len, 5000);
        for n in 0..5000u32 {
            let i = t.find_owned(m(n / 100), &format!("s{}", n % 100)).expect("found");
            assert_eq!((t.get(i).0, t.id(i)), (m(n / 100), format!("s{}", n % 100).as_str()));
        }
        assert_eq!(t.find_owned(m(50), "s100"), None);
        assert_eq!(t.find_owned(m(5000), "s1"), None);
    }

    #[test]
    fn strings_give_back_what_was_pushed_in_order() {
        let mut s = Strings::default();
        for id in ["p1", "", "参与者", "p1"] {
            s.push(id);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), ["p1", "", "参与者", "p1"]);
    }

    #[test]
    fn a_short_list_starts_with_room_for_one() {
        let mut v: Vec<u64> = Vec::new();
        room_for_one(&mut v);
        v.push(1);
        assert_eq!(v.capacity(), 1);
        room_for_one(&mut v);
        v.push(2);
        assert_eq!(v, [1, 2]);
    }
}
