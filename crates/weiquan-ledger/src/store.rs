//! What the log needs from storage.

/// A storage failure, with what was being done and what kind of failure it is.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct StoreError {
    /// What a caller can make of it.
    pub kind: StoreErrorKind,
    /// What the store was doing.
    pub context: String,
    /// The underlying error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Kinds of storage failure, by what a caller can do about them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// What was asked for is not stored.
    NotFound,
    /// It conflicts with what is stored: a key taken, or another writer appended.
    Conflict,
    /// The database cannot do it now (unreachable, busy, full, read-only):
    /// nothing was changed, and retrying later may work.
    Unavailable,
    /// What is stored is damaged: a leaf or hash missing, a value of the wrong shape.
    Corrupt,
    /// Anything else.
    Other,
}

impl StoreError {
    /// Wraps `source` with `context` (kind [`StoreErrorKind::Other`]).
    pub fn new(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::of_kind(StoreErrorKind::Other, context, source)
    }

    /// Wraps `source` with `context`, as a failure of `kind`.
    pub fn of_kind(
        kind: StoreErrorKind,
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError {
            kind,
            context: context.into(),
            source: source.into(),
        }
    }
}

/// A stored leaf: its data and the stored hashes it completed.
pub type Row = (Vec<u8>, Vec<u8>);

/// What a batch keeps off the log, in the same transaction as its leaves:
/// the private rows of its salted leaves, the consumers it names for the
/// first time (pseudonym, id), which is how their id is found again, and
/// its findings as readers look them up.
#[derive(Clone, Copy, Debug, Default)]
pub struct Private<'a> {
    /// Private rows, by leaf.
    pub rows: &'a [PrivateRow],
    /// New consumers: (pseudonym, consumer id).
    pub consumers: &'a [(String, String)],
    /// The findings among the leaves, by leaf.
    pub findings: &'a [FindingRow],
}

/// A finding leaf as the database indexes it beside the log: the columns its
/// readers filter on, and the finding as the engine made it (with the facts
/// its message names, which the leaf does not carry). Consumers are named by
/// pseudonym, as in the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindingRow {
    /// Leaf index of the finding.
    pub leaf: u64,
    /// Rule id, e.g. `PS-01`.
    pub rule: String,
    /// What it is about, `kind:id`.
    pub subject: String,
    /// The merchant the subject belongs to, when it belongs to one.
    pub merchant: Option<String>,
    /// Business time it fired at, in ms since the Unix epoch.
    pub at_ms: i64,
    /// The finding, encoded by its writer (JSON).
    pub body: Vec<u8>,
}

/// The private part of a leaf with salted members, kept off the log (never in
/// a tile) and written in the same transaction as the leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivateRow {
    /// Leaf index.
    pub leaf: u64,
    /// Pseudonym of the consumer the leaf is about, if any: what erasure finds
    /// it by, and what the engine knew the consumer as (kept after erasure).
    pub consumer: Option<String>,
    /// The leaf's salt; `None` once erased.
    pub salt: Option<crate::private::Salt>,
    /// The salted members' original values, a canonical JSON object; `None` once erased.
    pub values: Option<Vec<u8>>,
}

/// Durable storage of one log: leaves with the tree hashes each one created,
/// and every checkpoint signed.
///
/// Leaf `m` carries the stored hashes it completed: the leaf hash, then one
/// parent hash per trailing 1-bit of `m` (levels 0, 1, …), 32 bytes each —
/// so every node of the tree is stored exactly once, in the row of the leaf
/// that completed it.
pub trait LogStore {
    /// Number of leaves stored.
    fn size(&mut self) -> Result<u64, StoreError>;

    /// Appends `leaves` (data, stored hashes) at indices `first..` together with
    /// their private parts and the checkpoint of the new size, in one
    /// transaction; returns once durable.
    fn append(&mut self, first: u64, leaves: &[Row], private: Private<'_>, checkpoint: &[u8])
        -> Result<(), StoreError>;

    /// Stored hashes of the given leaves (in the order asked).
    fn hashes_of(&mut self, leaves: &[u64]) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Leaf data and stored hashes for `from..to`.
    fn leaves(&mut self, from: u64, to: u64) -> Result<Vec<Row>, StoreError>;

    /// Every checkpoint, by tree size, oldest first.
    fn checkpoints(&mut self) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// The newest checkpoint, if any.
    fn latest_checkpoint(&mut self) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Implements [`LogStore`] for wrappers of a store by handing each call to
/// the store that `$get` reaches from `$s` (the wrapper).
macro_rules! forward_log_store {
    ($($(#[$doc:meta])* $wrapper:ty => |$s:ident| $get:expr;)*) => {$(
        $(#[$doc])*
        impl<T: LogStore + ?Sized> LogStore for $wrapper {
            fn size(&mut self) -> Result<u64, StoreError> {
                let $s = self;
                $get.size()
            }
            fn append(
                &mut self,
                first: u64,
                leaves: &[Row],
                private: Private<'_>,
                checkpoint: &[u8],
            ) -> Result<(), StoreError> {
                let $s = self;
                $get.append(first, leaves, private, checkpoint)
            }
            fn hashes_of(&mut self, leaves: &[u64]) -> Result<Vec<Vec<u8>>, StoreError> {
                let $s = self;
                $get.hashes_of(leaves)
            }
            fn leaves(&mut self, from: u64, to: u64) -> Result<Vec<Row>, StoreError> {
                let $s = self;
                $get.leaves(from, to)
            }
            fn checkpoints(&mut self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
                let $s = self;
                $get.checkpoints()
            }
            fn latest_checkpoint(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
                let $s = self;
                $get.latest_checkpoint()
            }
        }
    )*};
}

forward_log_store! {
    Box<T> => |s| (**s);
    /// A store shared between the thread that stages appends and the one that
    /// writes them (see [`crate::StagedAppend`]): each call holds the lock for
    /// that call only. A thread that panicked holding it left no partial call
    /// behind that matters (every append is one transaction), so a poisoned
    /// lock is taken over, not propagated.
    std::sync::Arc<std::sync::Mutex<T>> => |s| lock(s);
}

/// Locks a shared store, taking over a poisoned lock (see the impl above).
pub fn lock<T: ?Sized>(shared: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
