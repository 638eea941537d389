//! Offline verification: a whole log, a receipt, a consistency proof.
//! Every failure names what failed: which leaf, which level, which signature.

use crate::log::hash_in;
use crate::store::LogStore;
use crate::tree::Frontier;
use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde::{Deserialize, Serialize};
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{check_record, check_tree, record_hash, Checkpoint, Hash};

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A checkpoint's signature does not verify, or it is not a checkpoint.
    #[error("checkpoint {what}: {why}")]
    Checkpoint {
        /// Which checkpoint.
        what: String,
        /// What is wrong.
        why: String,
    },
    /// A stored hash differs from the one recomputed from the leaves.
    #[error("leaf {leaf}: stored level-{level} hash differs from the hash recomputed from the entries")]
    Hash {
        /// The leaf whose row holds it.
        leaf: u64,
        /// Tree level.
        level: u8,
    },
    /// A leaf's row holds the wrong number of hashes.
    #[error("leaf {leaf}: stored hashes are damaged ({why})")]
    Row {
        /// The leaf.
        leaf: u64,
        /// What is wrong.
        why: String,
    },
    /// A checkpoint's root differs from the tree rebuilt from the entries.
    #[error("checkpoint for size {size}: root hash differs from the tree rebuilt from the entries")]
    Root {
        /// Tree size.
        size: u64,
    },
    /// Leaves past the newest checkpoint: every writer stores leaves and their
    /// checkpoint in one transaction, so these were added without the log's
    /// key, or the checkpoints over them were removed.
    #[error(
        "leaves {from} to {to} have no signed checkpoint over them: they were added without the log key, \
         or the checkpoints over them were removed"
    )]
    Unsigned {
        /// The newest checkpoint's size (the first leaf it does not cover).
        from: u64,
        /// The log's size.
        to: u64,
    },
    /// A proof does not verify.
    #[error("{0}")]
    Proof(String),
    /// The input is not what was expected.
    #[error("{0}")]
    Format(String),
    /// Reading the log failed.
    #[error("reading the log: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// A checkpoint whose signature verified.
#[derive(Debug)]
pub struct VerifiedCheckpoint {
    /// Origin line.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

/// Verifies a signed checkpoint note with `verifier`.
pub fn open_checkpoint(
    note: &[u8],
    verifier: &StandardVerifier,
    what: &str,
) -> Result<VerifiedCheckpoint, VerifyError> {
    let fail = |why: String| VerifyError::Checkpoint {
        what: what.to_owned(),
        why,
    };
    let note = Note::from_bytes(note).map_err(|e| fail(format!("not a signed note ({e})")))?;
    let list = VerifierList::new(vec![Box::new(verifier.clone())]);
    note.verify(&list)
        .map_err(|e| fail(format!("signature does not verify with this key ({e})")))?;
    let cp = Checkpoint::from_bytes(note.text()).map_err(|e| fail(e.to_string()))?;
    Ok(VerifiedCheckpoint {
        origin: cp.origin().to_owned(),
        size: cp.size(),
        root: *cp.hash(),
    })
}

/// Counts of what [`verify_log`] checked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LogReport {
    /// Leaves rehashed.
    pub leaves: u64,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints: u64,
    /// Event leaves of formats 2 and 3, naming who submitted them.
    pub events_with_actor: u64,
    /// Of those, leaves of format 3: personal data only as salted commitments.
    pub events_salted: u64,
    /// Event leaves of format 1, the event alone.
    pub events_without_actor: u64,
    /// Leaves recording the rulebook a server ran from then on.
    pub rulebooks: u64,
    /// Leaves standing in for events whose line has no canonical form.
    pub events_stand_in: u64,
    /// The size of the newest checkpoint (0 when there is none).
    pub checkpointed: u64,
    /// Each origin the checkpoints name, with the size of the first that names it.
    pub origins: Vec<(u64, String)>,
}

/// Recomputes every hash of the log from its entries, checks every
/// checkpoint's signature and root against the rebuilt tree, and that a
/// checkpoint covers every leaf.
pub fn verify_log<S: LogStore>(store: &mut S, verifier: &StandardVerifier) -> Result<LogReport, VerifyError> {
    let size = store.size()?;
    let checkpoints = store.checkpoints()?;
    let mut cps = checkpoints.iter().peekable();
    let mut tree = Frontier::new();
    let mut report = LogReport::default();
    let check_at =
        |tree: &Frontier, cps: &mut std::iter::Peekable<std::slice::Iter<(u64, Vec<u8>)>>, report: &mut LogReport| {
            while let Some((s, note)) = cps.peek() {
                if *s != tree.size() {
                    break;
                }
                let cp = open_checkpoint(note, verifier, &format!("for size {s}"))?;
                if cp.size != *s {
                    return Err(VerifyError::Checkpoint {
                        what: format!("for size {s}"),
                        why: format!("it says size {}", cp.size),
                    });
                }
                if cp.root != tree.root() {
                    return Err(VerifyError::Root { size: *s });
                }
                if !report.origins.iter().any(|(_, o)| *o == cp.origin) {
                    report.origins.push((*s, cp.origin));
                }
                report.checkpointed = *s;
                report.checkpoints += 1;
                cps.next();
            }
            Ok(())
        };
    check_at(&tree, &mut cps, &mut report)?;
    const CHUNK: u64 = 4096;
    let mut from = 0;
    while from < size {
        let to = (from + CHUNK).min(size);
        for (i, (data, hashes)) in store.leaves(from, to)?.into_iter().enumerate() {
            let leaf = from + i as u64;
            let expect = tree.append(&data);
            if hashes.len() != expect.len() * 32 {
                return Err(VerifyError::Row {
                    leaf,
                    why: format!("{} bytes of hashes where {} are due", hashes.len(), expect.len() * 32),
                });
            }
            for (level, h) in expect.iter().enumerate() {
                let level = level as u8;
                let stored = hash_in(&hashes, level, leaf).map_err(|e| VerifyError::Row {
                    leaf,
                    why: e.to_string(),
                })?;
                if stored != *h {
                    return Err(VerifyError::Hash { leaf, level });
                }
            }
            report.leaves += 1;
            let text = String::from_utf8_lossy(&data);
            match crate::leaf_event(&text).map(|e| e.format) {
                Some(1) => report.events_without_actor += 1,
                Some(format) => {
                    report.events_with_actor += 1;
                    report.events_salted += u64::from(format == 3);
                }
                None => {
                    let own = crate::own_leaf(&text);
                    report.rulebooks += u64::from(matches!(own, Some(crate::OwnLeaf::Rulebook { .. })));
                    report.events_stand_in += u64::from(own.is_none() && crate::stand_in(&text).is_some());
                }
            }
            check_at(&tree, &mut cps, &mut report)?;
        }
        from = to;
    }
    if let Some((s, _)) = cps.next() {
        return Err(VerifyError::Checkpoint {
            what: format!("for size {s}"),
            why: format!("the log holds only {size} leaves"),
        });
    }
    if report.checkpointed != report.leaves {
        return Err(VerifyError::Unsigned {
            from: report.checkpointed,
            to: report.leaves,
        });
    }
    Ok(report)
}

fn b64_hashes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(hash_text).collect()
}

fn parse_hashes(list: &[String], what: &str) -> Result<Vec<Hash>, VerifyError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            BASE64_STANDARD
                .decode(s)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(Hash)
                .ok_or_else(|| VerifyError::Format(format!("{what}[{i}] is not a base64 SHA-256 hash")))
        })
        .collect()
}

/// What a consumer keeps: a leaf, its index, the signed checkpoint and the
/// inclusion proof that ties them together.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Receipt format version (1).
    pub v: u8,
    /// Leaf index.
    pub index: u64,
    /// The leaf (canonical JSON text).
    pub leaf: String,
    /// The signed checkpoint note.
    pub checkpoint: String,
    /// Inclusion proof, base64 hashes from the leaf up.
    pub inclusion: Vec<String>,
    /// For a leaf with salted members, given to those entitled to them: the
    /// salt and the values, which open the leaf's commitments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<Revealed>,
}

/// A leaf's salt and the original values of its salted members.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Revealed {
    /// The leaf's salt, 64 hex digits.
    pub salt: String,
    /// Each salted member's original value.
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// The object holding a leaf's salted members and their names: an event
/// leaf's event, or a finding leaf itself.
fn salted_members(leaf: &str) -> Option<(serde_json::Map<String, serde_json::Value>, Vec<String>)> {
    match crate::leaf_event(leaf) {
        Some(e) => Some((serde_json::from_str(&e.event).ok()?, e.salted)),
        None => {
            let mut finding: serde_json::Map<String, serde_json::Value> = serde_json::from_str(leaf).ok()?;
            let salted = serde_json::from_value(finding.remove("salted")?).ok()?;
            Some((finding, salted))
        }
    }
}

/// Checks `revealed` against the commitments of `leaf`.
pub fn open_leaf(leaf: &str, revealed: &Revealed) -> Result<(), VerifyError> {
    if revealed.values.is_empty() {
        return Err(VerifyError::Proof(
            "the private part reveals no value: it proves nothing about the leaf's commitments".into(),
        ));
    }
    let (members, salted) =
        salted_members(leaf).ok_or_else(|| VerifyError::Format("the leaf has no salted members to open".into()))?;
    crate::private::open_values(&members, &salted, &revealed.salt, &revealed.values)
        .map_err(|e| VerifyError::Proof(format!("the private values do not open the leaf: {e}")))
}

impl Receipt {
    /// Builds a receipt.
    pub fn new(index: u64, leaf: Vec<u8>, checkpoint: Vec<u8>, proof: Vec<Hash>) -> Receipt {
        Receipt {
            v: 1,
            index,
            leaf: String::from_utf8_lossy(&leaf).into_owned(),
            checkpoint: String::from_utf8_lossy(&checkpoint).into_owned(),
            inclusion: b64_hashes(&proof),
            private: None,
        }
    }
}

/// Checks a receipt: the checkpoint's signature, the leaf's inclusion, and
/// that its private values (if it carries them) open the leaf's commitments.
pub fn verify_receipt(receipt: &Receipt, verifier: &StandardVerifier) -> Result<VerifiedCheckpoint, VerifyError> {
    // A later format may mean more than this code checks: not "valid" on its word.
    if receipt.v != 1 {
        return Err(VerifyError::Format(format!(
            "receipt format {} is not known; this weiquan reads format 1",
            receipt.v
        )));
    }
    let cp = open_checkpoint(receipt.checkpoint.as_bytes(), verifier, "in the receipt")?;
    verify_inclusion(
        receipt.index,
        receipt.leaf.as_bytes(),
        cp.size,
        cp.root,
        &receipt.inclusion,
    )?;
    if let Some(revealed) = &receipt.private {
        open_leaf(&receipt.leaf, revealed)?;
    }
    Ok(cp)
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves with root
/// `root`, by the inclusion proof `inclusion` (base64 hashes from the leaf up).
pub fn verify_inclusion(
    index: u64,
    leaf: &[u8],
    size: u64,
    root: Hash,
    inclusion: &[String],
) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::Proof(format!(
            "leaf {index} is not in a tree of {size} leaves"
        )));
    }
    let proof = parse_hashes(inclusion, "inclusion")?;
    check_record(&proof, size, root, index, record_hash(leaf)).map_err(|_| {
        VerifyError::Proof(format!(
            "leaf {index} is not included in the tree of size {size} (the leaf or the proof was altered)"
        ))
    })
}

/// A hash as proofs and receipts write it: base64.
pub fn hash_text(hash: &Hash) -> String {
    BASE64_STANDARD.encode(hash.0)
}

/// A hash written by [`hash_text`]; `what` names it in the error.
pub fn parse_hash_text(text: &str, what: &str) -> Result<Hash, VerifyError> {
    parse_hashes(std::slice::from_ref(&text.to_owned()), what)?
        .pop()
        .ok_or_else(|| VerifyError::Format(format!("{what} is missing")))
}

/// A consistency proof between two tree sizes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The older size.
    pub old_size: u64,
    /// The newer size.
    pub new_size: u64,
    /// Base64 hashes.
    pub proof: Vec<String>,
}

impl ConsistencyProof {
    /// Builds one.
    pub fn new(old_size: u64, new_size: u64, proof: &[Hash]) -> Self {
        ConsistencyProof {
            old_size,
            new_size,
            proof: b64_hashes(proof),
        }
    }
}

/// Checks that the tree of `old` (a signed checkpoint) is a prefix of the tree of `new`.
pub fn verify_consistency(
    old: &[u8],
    new: &[u8],
    proof: &ConsistencyProof,
    verifier: &StandardVerifier,
) -> Result<(), VerifyError> {
    let a = open_checkpoint(old, verifier, "OLD")?;
    let b = open_checkpoint(new, verifier, "NEW")?;
    if a.origin != b.origin {
        return Err(VerifyError::Proof(format!(
            "the checkpoints are of different logs (`{}` and `{}`)",
            a.origin, b.origin
        )));
    }
    if (a.size, b.size) != (proof.old_size, proof.new_size) {
        return Err(VerifyError::Proof(format!(
            "the proof is for sizes {} → {}, the checkpoints are {} → {}",
            proof.old_size, proof.new_size, a.size, b.size
        )));
    }
    if a.size > b.size {
        return Err(VerifyError::Proof(format!(
            "OLD ({}) is larger than NEW ({})",
            a.size, b.size
        )));
    }
    let hashes = parse_hashes(&proof.proof, "proof")?;
    check_tree(&hashes, b.size, b.root, a.size, a.root)
        .map_err(|_| VerifyError::Proof(format!("the tree of size {} is not a prefix of the tree of size {}: history was rewritten, or the proof was altered", a.size, b.size)))
}
