//! weiquan's tamper-evident log, in the C2SP formats Certificate Transparency's
//! successors use: an append-only RFC 6962 Merkle tree laid out as
//! [tlog-tiles](https://c2sp.org/tlog-tiles), with checkpoints that are
//! Ed25519 [signed notes](https://c2sp.org/signed-note).
//!
//! This crate is the log's logic: leaf encoding, tree hashing, checkpoints,
//! proofs, receipts, tiles and offline verification. It does no IO of its
//! own: storage is behind [`LogStore`], implemented for SQLite and PostgreSQL
//! in `weiquan-store`.

mod jcs;
mod keys;
mod leaf;
mod log;
mod private;
mod store;
mod tiles;
mod tree;
mod verify;

pub use keys::{generate_key, load_signer, load_verifier, pair_matches, KeyError};
pub use leaf::{
    event_leaf, event_leaf_by, event_leaf_or_stand_in, finding_leaf, leaf_event, leaf_kind, own_leaf,
    rulebook_fingerprint, rulebook_leaf, stand_in, Actor, CanonicalActor, EventLeaf, LeafError, OwnLeaf, StandIn,
    EVENT_LEAF_TYPE, FINDING_LEAF_TYPE, MAX_LEAF_BYTES, RULEBOOK_LEAF_TYPE, STAND_IN_LEAF_TYPE,
};
pub use log::{Ledger, LedgerError, LedgerReader, StagedAppend};
pub use private::{
    commitment, draw_salt, open_values, pseudonym, restore_event, salted_event_leaf, salted_stand_in, unsalted_event,
    OpenError, Pseudonyms, Salt, Salted, SaltedLeaf, PSEUDONYM_PREFIX,
};
pub use signed_note::{StandardSigner, StandardVerifier};
pub use store::{lock, FindingRow, LogStore, Private, PrivateRow, Row, StoreError, StoreErrorKind};
pub use tiles::{bundle_entries, parse_tile_path, tile_path, TileRequest, TILE_HEIGHT};
pub use tree::Frontier;
pub use verify::{
    hash_text, open_checkpoint, open_leaf, parse_hash_text, verify_consistency, verify_inclusion, verify_log,
    verify_receipt, ConsistencyProof, LogReport, Receipt, Revealed, VerifiedCheckpoint, VerifyError,
};

/// A 32-byte SHA-256 tree hash.
pub use tlog_tiles::{record_hash, Hash};
