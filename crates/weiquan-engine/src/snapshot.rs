//! Engine snapshots: everything the engine remembers, in a versioned and
//! checksummed file, so that a restart restores it and replays only the
//! events after it instead of the whole ledger.
//!
//! A snapshot is a cache of the ledger, never a record: one that is damaged,
//! was written by another weiquan version or under another rulebook is refused
//! with a [`SnapshotError`] saying which, and the caller replays in full.
//!
//! Layout: `WQSNAPv1`, then the writer's version and state fingerprint as a
//! length-prefixed string,
//! the rulebook's SHA-256, the payload's length (u64 LE) and SHA-256, then the
//! payload (postcard). The payload layout follows the engine's types, which is
//! why a snapshot is read only by an engine built from the same state sources.
//!
//! The checksum catches accidents, not forgeries: restore only what this
//! process (or a holder of its key: the server seals its files) wrote. A
//! forged payload that decodes may hold indexes a table does not have.

use crate::table::Keyed;
use crate::{Engine, RuleId, Rulebook};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use weiquan_events::Keyword;

/// The first bytes of every engine snapshot.
const MAGIC: &[u8; 8] = b"WQSNAPv1";

/// The engine whose layout a snapshot holds: weiquan's version and the
/// fingerprint of the sources that define the state (`build.rs`), so that a
/// build with other state types refuses it instead of misreading it.
const WRITER: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("WEIQUAN_STATE_LAYOUT"));

/// Why a snapshot was not restored. Each says what to do: nothing is lost,
/// the ledger is replayed instead.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Not a snapshot at all, or cut short.
    #[error("not a weiquan engine snapshot ({0}); replay the ledger instead")]
    Format(&'static str),
    /// Written by another build, whose engine may keep other state.
    #[error("snapshot written by weiquan {found}, this is {WRITER} (another state layout); replay the ledger to write a new one")]
    Version {
        /// The version that wrote it.
        found: String,
    },
    /// Taken under another rulebook: its state holds that rulebook's findings.
    #[error("snapshot taken under another rulebook; replay the ledger under this one")]
    Rulebook,
    /// The payload does not match its checksum (a damaged or partly written file).
    #[error("snapshot checksum does not match (damaged or partly written); replay the ledger instead")]
    Checksum,
    /// The state could not be written (a bug: every part of it should encode).
    #[error("the engine's state could not be encoded ({0}); no snapshot was written")]
    Encode(String),
    /// The checksum matched but the payload does not decode.
    #[error("snapshot payload does not decode ({0}); replay the ledger instead")]
    Decode(String),
}

/// The SHA-256 of the rulebook's effective content: what a snapshot was taken under.
fn rulebook_digest(rules: &Rulebook) -> [u8; 32] {
    Sha256::digest(rules.effective().to_string().as_bytes()).into()
}

/// The rulebook a deserialized engine holds until [`Engine::restore`] sets the real one.
pub(crate) fn placeholder_rules() -> Arc<Rulebook> {
    static BUILTIN: LazyLock<Arc<Rulebook>> = LazyLock::new(|| Arc::new(Rulebook::builtin()));
    BUILTIN.clone()
}

impl Engine {
    /// Everything the engine remembers, as a snapshot file's bytes. Taken
    /// between events (the engine holds no half-applied state then).
    pub fn snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        let payload = postcard::to_stdvec(self).map_err(|e| SnapshotError::Encode(e.to_string()))?;
        let mut out = Vec::with_capacity(payload.len() + 128);
        out.extend_from_slice(MAGIC);
        out.push(WRITER.len() as u8);
        out.extend_from_slice(WRITER.as_bytes());
        out.extend_from_slice(&rulebook_digest(&self.rules));
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&Sha256::digest(&payload));
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// The engine a [`Engine::snapshot`] holds, to go on under `rules`: it
    /// then gives, for the events after the snapshot, the findings the
    /// engine that took it would have given. For snapshots this process or a
    /// holder of its key wrote: damage is an error, a forgery may not be.
    pub fn restore(rules: Arc<Rulebook>, bytes: &[u8]) -> Result<Engine, SnapshotError> {
        let mut rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or(SnapshotError::Format("no WQSNAPv1 header"))?;
        let mut take = |n: usize| -> Result<&[u8], SnapshotError> {
            if rest.len() < n {
                return Err(SnapshotError::Format("cut short"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let writer_len = take(1)?[0] as usize;
        let writer = String::from_utf8_lossy(take(writer_len)?).into_owned();
        if writer != WRITER {
            return Err(SnapshotError::Version { found: writer });
        }
        if take(32)? != rulebook_digest(&rules) {
            return Err(SnapshotError::Rulebook);
        }
        let len = u64::from_le_bytes(take(8)?.try_into().map_err(|_| SnapshotError::Format("cut short"))?);
        let sum = take(32)?.to_vec();
        let payload = take(usize::try_from(len).map_err(|_| SnapshotError::Format("payload too large"))?)?;
        if !rest.is_empty() {
            return Err(SnapshotError::Format("bytes after the payload"));
        }
        if Sha256::digest(payload).as_slice() != sum {
            return Err(SnapshotError::Checksum);
        }
        let mut engine: Engine = postcard::from_bytes(payload).map_err(|e| SnapshotError::Decode(e.to_string()))?;
        engine.rules = rules;
        Ok(engine)
    }
}

// Tables found by id alone; an sku is found by its merchant too (market.rs).
impl Keyed for crate::merchant::Merchant {}
impl Keyed for crate::merchant::Order {}
impl Keyed for crate::merchant::Complaint {}
impl Keyed for crate::merchant::Conversation {}
impl Keyed for crate::table::MerchantIx {}
impl Keyed for crate::presale::Campaign {}
impl Keyed for crate::lottery::Lottery {}
impl Keyed for crate::lottery::Host {}
impl Keyed for () {}

/// A `&'static str` from a closed list (a keyword, a placeholder name). The
/// alias keeps serde's derive from borrowing such a field from the input: it is
/// restored from its list instead (see [`keyword`]).
pub type Spelling = &'static str;

/// The static spelling of keyword `text` of `K` (the empty string stays empty:
/// a record not filled yet).
fn static_keyword<K: Keyword, E: serde::de::Error>(text: &str) -> Result<&'static str, E> {
    if text.is_empty() {
        return Ok("");
    }
    (K::ALL.iter().find(|(k, _)| *k == text))
        .map(|(k, _)| *k)
        .ok_or_else(|| E::custom(format!("`{text}` is not a keyword of its kind")))
}

/// Restores a `&'static str` field holding a keyword of `K`.
pub(crate) fn keyword<'de, D: serde::Deserializer<'de>, K: Keyword>(d: D) -> Result<&'static str, D::Error> {
    static_keyword::<K, _>(&Cow::<str>::deserialize(d)?)
}

/// Restores an `Option<&'static str>` field holding a keyword of `K`.
pub(crate) fn keyword_opt<'de, D: serde::Deserializer<'de>, K: Keyword>(
    d: D,
) -> Result<Option<&'static str>, D::Error> {
    (Option::<Cow<str>>::deserialize(d)?)
        .map(|t| static_keyword::<K, _>(&t))
        .transpose()
}

/// Restores a keyword of `K` paired with a flag.
pub(crate) fn keyword_flag_opt<'de, D: serde::Deserializer<'de>, K: Keyword>(
    d: D,
) -> Result<Option<(&'static str, bool)>, D::Error> {
    (Option::<(Cow<str>, bool)>::deserialize(d)?)
        .map(|(t, flag)| Ok((static_keyword::<K, _>(&t)?, flag)))
        .transpose()
}

/// Restores a finding's facts: each name is one of its rule's placeholders.
pub(crate) fn fact_names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(&'static str, String)>, D::Error> {
    let facts = Vec::<(Cow<str>, String)>::deserialize(d)?;
    facts
        .into_iter()
        .map(|(name, value)| {
            let known = RuleId::ALL.iter().flat_map(|r| r.placeholders()).find(|p| **p == name);
            match known {
                Some(p) => Ok((*p, value)),
                None => Err(serde::de::Error::custom(format!("`{name}` is no rule's placeholder"))),
            }
        })
        .collect()
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RuleId, D::Error> {
        let text = Cow::<str>::deserialize(d)?;
        RuleId::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a rule id")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut engine = Engine::new(Arc::new(Rulebook::builtin()));
        for line in [
            r#"{"v":1,"id":"e1","type":"merchant.registered","at":"2026-11-01T10:00:00+08:00","merchant":"m1","name":"店","uscc":"91330100MA0000001X","channels":["store"]}"#,
            r#"{"v":1,"id":"e2","type":"order.placed","at":"2026-11-01T11:00:00+08:00","order":"o1","merchant":"m1","consumer":"u1","sku":"s1","qty":1,"amount_fen":100,"payment":"standard"}"#,
        ] {
            let ev = weiquan_events::parse_event(line).expect("valid event");
            engine.apply(&ev);
        }
        engine
    }

    /// Replaces the payload of a snapshot, with a checksum that matches it.
    fn with_payload(snapshot: &[u8], payload: &[u8]) -> Vec<u8> {
        let head = snapshot.len() - payload_len(snapshot) - 40;
        let mut out = snapshot[..head].to_vec();
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&Sha256::digest(payload));
        out.extend_from_slice(payload);
        out
    }

    fn payload_len(snapshot: &[u8]) -> usize {
        let at = MAGIC.len() + 1 + WRITER.len() + 32;
        u64::from_le_bytes(snapshot[at..at + 8].try_into().expect("8 bytes")) as usize
    }

    #[test]
    fn a_snapshot_restores_what_was_taken() {
        let engine = engine();
        let bytes = engine.snapshot().expect("encodes");
        let restored = Engine::restore(Arc::new(Rulebook::builtin()), &bytes).expect("restores");
        assert_eq!(restored.clock(), engine.clock());
        assert_eq!(
            restored.placement_of("o1"),
            Some(("e2".to_owned(), Some("m1".to_owned())))
        );
        // The hash maps of this state are empty: their order cannot differ.
        assert_eq!(restored.snapshot().expect("encodes"), bytes, "the same bytes again");
    }

    #[test]
    fn a_damaged_snapshot_is_refused_by_its_checksum() {
        let mut bytes = engine().snapshot().expect("encodes");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let e = Engine::restore(Arc::new(Rulebook::builtin()), &bytes).err();
        assert!(matches!(e, Some(SnapshotError::Checksum)), "{e:?}");
    }

    #[test]
    fn a_cut_or_foreign_file_is_not_a_snapshot() {
        let bytes = engine().snapshot().expect("encodes");
        for bad in [
            &bytes[..bytes.len() - 1],
            &bytes[..20],
            b"{\"not\":\"a snapshot\"}".as_slice(),
            b"",
        ] {
            let e = Engine::restore(Arc::new(Rulebook::builtin()), bad).err();
            assert!(matches!(e, Some(SnapshotError::Format(_))), "{e:?}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let e = Engine::restore(Arc::new(Rulebook::builtin()), &longer).err();
        assert!(matches!(e, Some(SnapshotError::Format(_))), "{e:?}");
    }

    #[test]
    fn another_rulebook_or_version_is_refused() {
        let bytes = engine().snapshot().expect("encodes");
        let other = Rulebook::with_overrides("[thresholds]\nship_days = 1\n").expect("valid overrides");
        let e = Engine::restore(Arc::new(other), &bytes).err();
        assert!(matches!(e, Some(SnapshotError::Rulebook)), "{e:?}");
        let mut older = bytes.clone();
        older[MAGIC.len() + 1] ^= 1;
        let e = Engine::restore(Arc::new(Rulebook::builtin()), &older).err();
        assert!(matches!(e, Some(SnapshotError::Version { .. })), "{e:?}");
        assert!(e.is_some_and(|e| e.to_string().contains("replay the ledger")));
    }

    #[test]
    fn a_payload_that_does_not_decode_is_refused_without_a_panic() {
        let bytes = engine().snapshot().expect("encodes");
        let payload = &bytes[bytes.len() - payload_len(&bytes)..];
        for bad in [&payload[..payload.len() / 2], &[0xff; 64][..], &[][..]] {
            let e = Engine::restore(Arc::new(Rulebook::builtin()), &with_payload(&bytes, bad)).err();
            assert!(matches!(e, Some(SnapshotError::Decode(_))), "{e:?}");
        }
    }
}
