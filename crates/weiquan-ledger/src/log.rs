//! The log itself: appends in batches, signs a checkpoint per batch, serves
//! proofs, receipts and tiles.

use crate::store::{LogStore, Private, Row, StoreError};
use crate::tiles::{TileRequest, TILE_HEIGHT};
use crate::tree::Frontier;
use crate::verify::Receipt;
use signed_note::{Note, StandardSigner};
use std::cell::RefCell;
use tlog_tiles::{split_stored_hash_index, stored_hash_index, Checkpoint, Hash, HashReader, HASH_SIZE};

/// A log operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored tree is damaged (a hash missing or of the wrong length).
    #[error("stored tree is damaged: {0}")]
    Damaged(String),
    /// The request is outside the tree.
    #[error("{0}")]
    OutOfRange(String),
    /// Signing failed or the origin is not a valid checkpoint origin.
    #[error("cannot sign checkpoint: {0}")]
    Sign(String),
    /// A proof could not be computed.
    #[error("proof: {0}")]
    Proof(#[from] tlog_tiles::Error),
    /// A leaf could not be encoded.
    #[error("leaf: {0}")]
    Leaf(#[from] crate::leaf::LeafError),
}

/// Reads hash `level` of the hashes stored in one leaf's row.
pub(crate) fn hash_in(blob: &[u8], level: u8, leaf: u64) -> Result<Hash, LedgerError> {
    let at = usize::from(level) * HASH_SIZE;
    blob.get(at..at + HASH_SIZE)
        .and_then(|b| <[u8; HASH_SIZE]>::try_from(b).ok())
        .map(Hash)
        .ok_or_else(|| LedgerError::Damaged(format!("leaf {leaf} lacks its level-{level} hash")))
}

/// The leaf whose row stores node `(level, k)`: the last leaf under it.
fn row_of(level: u8, k: u64) -> u64 {
    ((k + 1) << level) - 1
}

/// Reads stored hashes (by stored-hash index) from a [`LogStore`].
pub(crate) struct StoreHashes<'a, S>(pub RefCell<&'a mut S>);

impl<S: LogStore> HashReader for StoreHashes<'_, S> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let nodes: Vec<(u8, u64)> = indexes.iter().map(|&i| split_stored_hash_index(i)).collect();
        let rows: Vec<u64> = nodes.iter().map(|&(l, k)| row_of(l, k)).collect();
        let blobs = self
            .0
            .borrow_mut()
            .hashes_of(&rows)
            .map_err(|e| tlog_tiles::Error::InvalidInput(e.to_string()))?;
        nodes
            .iter()
            .zip(rows.iter().zip(blobs.iter()))
            .map(|(&(l, _), (&row, blob))| {
                hash_in(blob, l, row).map_err(|e| tlog_tiles::Error::InvalidInput(e.to_string()))
            })
            .collect()
    }
}

/// Signs the checkpoint of a tree of `size` leaves with root `root`.
pub(crate) fn sign_checkpoint(
    signer: &StandardSigner,
    origin: &str,
    size: u64,
    root: Hash,
) -> Result<Vec<u8>, LedgerError> {
    let cp =
        Checkpoint::new(origin, size, root, "").map_err(|e| LedgerError::Sign(format!("origin `{origin}`: {e}")))?;
    let mut note = Note::new(&cp.to_bytes(), &[]).map_err(|e| LedgerError::Sign(e.to_string()))?;
    note.add_sigs(&[signer]).map_err(|e| LedgerError::Sign(e.to_string()))?;
    Ok(note.to_bytes())
}

/// Reads of a log that need no signing key: proofs, receipts against the
/// newest stored checkpoint, tiles. What `weiquan ledger` and offline
/// checks open; a [`Ledger`] reads through one too.
pub struct LedgerReader<S> {
    store: S,
    size: u64,
}

impl<S: LogStore> LedgerReader<S> {
    /// Reads the log kept in `store` at its current size.
    pub fn open(mut store: S) -> Result<Self, LedgerError> {
        let size = store.size()?;
        Ok(LedgerReader { store, size })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Catches up with what was appended since (by another connection).
    pub fn refresh(&mut self) -> Result<(), LedgerError> {
        self.size = self.store.size()?;
        Ok(())
    }

    /// The newest stored checkpoint (`None` before the first append).
    pub fn latest_checkpoint(&mut self) -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(self.store.latest_checkpoint()?)
    }

    fn check_size(&self, what: &str, size: u64) -> Result<(), LedgerError> {
        if size > self.size() {
            return Err(LedgerError::OutOfRange(format!(
                "{what} {size} is beyond the log's size {}",
                self.size()
            )));
        }
        Ok(())
    }

    /// Proof that leaf `index` is in the tree of `size` leaves.
    pub fn inclusion_proof(&mut self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        self.check_size("size", size)?;
        if index >= size {
            return Err(LedgerError::OutOfRange(format!(
                "leaf {index} is not in a tree of {size} leaves"
            )));
        }
        Ok(tlog_tiles::prove_record(
            size,
            index,
            &StoreHashes(RefCell::new(&mut self.store)),
        )?)
    }

    /// The tree hash of the first `size` leaves.
    pub fn root_at(&mut self, size: u64) -> Result<Hash, LedgerError> {
        self.check_size("size", size)?;
        Ok(tlog_tiles::tree_hash(
            size,
            &StoreHashes(RefCell::new(&mut self.store)),
        )?)
    }

    /// Proof that the tree of `old` leaves is a prefix of the tree of `new` leaves.
    pub fn consistency_proof(&mut self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        self.check_size("size", new)?;
        if old == 0 || old > new {
            return Err(LedgerError::OutOfRange(format!(
                "a consistency proof needs 1 <= old size <= new size; got {old} and {new}"
            )));
        }
        Ok(tlog_tiles::prove_tree(
            new,
            old,
            &StoreHashes(RefCell::new(&mut self.store)),
        )?)
    }

    /// A self-contained receipt for leaf `index` against the newest checkpoint.
    pub fn receipt(&mut self, index: u64) -> Result<Receipt, LedgerError> {
        let size = self.size();
        let proof = self.inclusion_proof(index, size)?;
        let leaf = self
            .store
            .leaves(index, index + 1)?
            .pop()
            .ok_or_else(|| LedgerError::Damaged(format!("leaf {index} is missing")))?
            .0;
        let checkpoint = self
            .store
            .latest_checkpoint()?
            .ok_or_else(|| LedgerError::Damaged("the log has leaves but no checkpoint".into()))?;
        Ok(Receipt::new(index, leaf, checkpoint, proof))
    }

    /// The bytes of a tile of the current tree, or `None` if the tree does not reach it.
    pub fn tile(&mut self, req: TileRequest) -> Result<Option<Vec<u8>>, LedgerError> {
        let size = self.size();
        let level = req.level.unwrap_or(0);
        let width_at_level = size >> (u32::from(level) * u32::from(TILE_HEIGHT));
        let start = req
            .index
            .checked_mul(256)
            .ok_or_else(|| LedgerError::OutOfRange("tile index too large".into()))?;
        // A tile exists at exactly the width the tree covers: full, or the one partial width.
        let covered = width_at_level.saturating_sub(start).min(256);
        if covered == 0 || (req.width != 256 && u64::from(req.width) != covered) || (req.width == 256 && covered < 256)
        {
            return Ok(None);
        }
        let end = start + u64::from(req.width);
        match req.level {
            None => {
                let mut out = Vec::new();
                for (data, _) in self.store.leaves(start, end)? {
                    let len =
                        u16::try_from(data.len()).map_err(|_| LedgerError::Damaged("entry over 65535 bytes".into()))?;
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(&data);
                }
                Ok(Some(out))
            }
            Some(l) => {
                let tree_level = l * TILE_HEIGHT;
                let indexes: Vec<u64> = (start..end).map(|k| stored_hash_index(tree_level, k)).collect();
                let hashes = StoreHashes(RefCell::new(&mut self.store)).read_hashes(&indexes)?;
                Ok(Some(hashes.iter().flat_map(|h| h.0).collect()))
            }
        }
    }
}

/// The right edge of the stored tree: what appending needs.
fn frontier_of<S: LogStore>(store: &mut S) -> Result<Frontier, LedgerError> {
    let size = store.size()?;
    let rows = Frontier::node_rows(size);
    let blobs = store.hashes_of(&rows.iter().map(|r| r.1).collect::<Vec<_>>())?;
    let last = rows
        .iter()
        .zip(blobs.iter())
        .map(|(&(l, row), blob)| hash_in(blob, l, row))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Frontier::from_parts(size, last))
}

/// A batch of leaves hashed onto the tree, with the checkpoint of the new
/// tree signed: everything an append computes, ready to be stored.
#[derive(Debug)]
pub struct StagedAppend {
    /// Index of the first leaf.
    pub first: u64,
    rows: Vec<Row>,
    checkpoint: Vec<u8>,
}

impl StagedAppend {
    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none (writing it then does nothing).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Stores the leaves, their private parts and the checkpoint in one
    /// durable transaction. The store refuses it unless it holds exactly
    /// the leaves before `first`.
    pub fn write<S: LogStore + ?Sized>(&self, store: &mut S, private: Private<'_>) -> Result<(), StoreError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        store.append(self.first, &self.rows, private, &self.checkpoint)
    }
}

/// An append-only log over a store.
pub struct Ledger<S> {
    reader: LedgerReader<S>,
    signer: StandardSigner,
    origin: String,
    frontier: Frontier,
}

impl<S: LogStore> Ledger<S> {
    /// Opens the log kept in `store`, signing new checkpoints as `origin` with `signer`.
    pub fn open(mut store: S, signer: StandardSigner, origin: &str) -> Result<Self, LedgerError> {
        let frontier = frontier_of(&mut store)?;
        Ok(Ledger {
            reader: LedgerReader {
                store,
                size: frontier.size(),
            },
            signer,
            origin: origin.to_owned(),
            frontier,
        })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The tree hash of the current size.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The origin line of this log's checkpoints.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The store (for reads a caller does itself, when it is shared).
    pub fn store(&self) -> &S {
        &self.reader.store
    }

    /// The store (for reads a caller does itself).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.reader.store
    }

    /// Appends a batch in one durable transaction with one new checkpoint;
    /// returns the index of the first leaf. Nothing changes if it fails.
    pub fn append(&mut self, leaves: Vec<Vec<u8>>) -> Result<u64, LedgerError> {
        self.append_with_private(leaves, Private::default())
    }

    /// [`Ledger::append`], with the private parts of salted leaves in the same transaction.
    pub fn append_with_private(&mut self, leaves: Vec<Vec<u8>>, private: Private<'_>) -> Result<u64, LedgerError> {
        let (staged, next) = self.hash_and_sign(leaves.into_iter().map(|l| (l, None)).collect())?;
        staged.write(&mut self.reader.store, private)?;
        self.advance(next);
        Ok(staged.first)
    }

    /// Hashes `leaves` onto the tree and signs the new checkpoint, and takes
    /// the new tree as this ledger's, but does not store it: the caller writes
    /// the [`StagedAppend`] (possibly on another thread, while it stages the
    /// next) and must call [`Ledger::reload`] if that write fails. Writes must
    /// happen in the order appends were staged; the store refuses any other.
    ///
    /// Each leaf may come with its record hash (`tlog_tiles::record_hash` of
    /// its bytes), computed beforehand off the caller's thread; it must be that
    /// hash (checked in debug builds).
    pub fn stage(&mut self, leaves: Vec<(Vec<u8>, Option<Hash>)>) -> Result<StagedAppend, LedgerError> {
        let (staged, next) = self.hash_and_sign(leaves)?;
        self.advance(next);
        Ok(staged)
    }

    /// Forgets staged appends that were not stored: the tree is read back from the store.
    pub fn reload(&mut self) -> Result<(), LedgerError> {
        self.frontier = frontier_of(&mut self.reader.store)?;
        self.reader.size = self.frontier.size();
        Ok(())
    }

    fn hash_and_sign(&self, leaves: Vec<(Vec<u8>, Option<Hash>)>) -> Result<(StagedAppend, Frontier), LedgerError> {
        let first = self.frontier.size();
        let mut next = self.frontier.clone();
        let rows: Vec<Row> = leaves
            .into_iter()
            .map(|(data, record)| {
                debug_assert!(record.is_none_or(|h| h == tlog_tiles::record_hash(&data)));
                let record = record.unwrap_or_else(|| tlog_tiles::record_hash(&data));
                let hashes = next.append_record(record).iter().flat_map(|h| h.0).collect();
                (data, hashes)
            })
            .collect();
        // An empty append stores nothing, and needs no new checkpoint.
        let checkpoint = if rows.is_empty() {
            Vec::new()
        } else {
            sign_checkpoint(&self.signer, &self.origin, next.size(), next.root())?
        };
        Ok((
            StagedAppend {
                first,
                rows,
                checkpoint,
            },
            next,
        ))
    }

    fn advance(&mut self, next: Frontier) {
        self.reader.size = next.size();
        self.frontier = next;
    }

    /// The newest signed checkpoint (signing one for the empty log if none was stored).
    pub fn checkpoint(&mut self) -> Result<Vec<u8>, LedgerError> {
        match self.reader.store.latest_checkpoint()? {
            Some(cp) => Ok(cp),
            None => sign_checkpoint(&self.signer, &self.origin, 0, self.frontier.root()),
        }
    }

    /// Proof that leaf `index` is in the tree of `size` leaves.
    pub fn inclusion_proof(&mut self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        self.reader.inclusion_proof(index, size)
    }

    /// Proof that the tree of `old` leaves is a prefix of the tree of `new` leaves.
    pub fn consistency_proof(&mut self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        self.reader.consistency_proof(old, new)
    }

    /// The tree hash of the first `size` leaves.
    pub fn root_at(&mut self, size: u64) -> Result<Hash, LedgerError> {
        self.reader.root_at(size)
    }

    /// A self-contained receipt for leaf `index` against the newest checkpoint.
    pub fn receipt(&mut self, index: u64) -> Result<Receipt, LedgerError> {
        self.reader.receipt(index)
    }

    /// The bytes of a tile of the current tree, or `None` if the tree does not reach it.
    pub fn tile(&mut self, req: TileRequest) -> Result<Option<Vec<u8>>, LedgerError> {
        self.reader.tile(req)
    }
}
