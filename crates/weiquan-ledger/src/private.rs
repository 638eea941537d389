//! Personal data in a public log: salted commitments.
//!
//! The tiles are public, so a leaf may not carry who a consumer is or what
//! they wrote. Each such value enters the leaf only as a commitment,
//! `hex(HMAC-SHA-256(salt, UTF-8(key) ‖ 0x00 ‖ canonical JSON of the value))`,
//! under a random salt of the leaf's own that never enters the log. The salt
//! and the values are kept off the log (the private side of the store): an
//! entitled reader — or the consumer, with their receipt — checks a value
//! against the leaf; anyone else sees 64 hex digits that differ from leaf to
//! leaf, so two leaves about one consumer cannot even be linked. Deleting a
//! salt and its values (erasure) leaves every leaf, and so the tree, intact.

use crate::jcs::canonical_members;
use crate::leaf::{checked, CanonicalActor, EventLeaf, LeafError};
use crate::store::PrivateRow;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::borrow::Cow;

/// A leaf's salt: 32 random bytes, never in the log.
pub type Salt = [u8; 32];

/// A new salt from `rng` (a CSPRNG seeded once: a system call per leaf
/// cost time).
pub fn draw_salt(rng: &mut impl rand_core::RngCore) -> Salt {
    let mut salt = [0u8; 32];
    rng.fill_bytes(&mut salt);
    salt
}

/// The commitment to `key`'s value `canonical_value` (canonical JSON) under `salt`, in hex.
pub fn commitment(salt: &Salt, key: &str, canonical_value: &[u8]) -> String {
    Committer::new(salt).commit(key, canonical_value)
}

/// Commitments under one salt: the keyed HMAC state is made once per leaf and
/// copied for each member (keying costs as much as the short message).
struct Committer(Hmac<Sha256>);

impl Committer {
    fn new(salt: &Salt) -> Self {
        Committer(hmac_with(salt))
    }

    fn commit(&self, key: &str, canonical_value: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(key.as_bytes());
        mac.update(&[0]);
        mac.update(canonical_value);
        hex_string("", &mac.finalize().into_bytes())
    }
}

/// `prefix` followed by `bytes` in lower-case hex (through a buffer on the
/// stack: `hex::encode` collects one `char` at a time, which showed in the
/// ingest profile).
fn hex_string(prefix: &str, bytes: &[u8]) -> String {
    let mut buf = [0u8; 64];
    let hex = &mut buf[..2 * bytes.len().min(32)];
    let encoded = match hex::encode_to_slice(&bytes[..hex.len() / 2], hex) {
        Ok(()) => std::str::from_utf8(hex).unwrap_or_default(),
        Err(_) => "",
    };
    let mut out = String::with_capacity(prefix.len() + encoded.len());
    out.push_str(prefix);
    out.push_str(encoded);
    out
}

/// The pseudonym a consumer has in weiquan's engine: `ps:` and the first 16
/// bytes, in hex, of HMAC-SHA-256 under the server's secret `key`. The same
/// consumer always gets the same one, so findings survive the erasure of
/// their id; without the key, it cannot be linked to the id.
pub fn pseudonym(key: &[u8; 32], consumer: &str) -> String {
    Pseudonyms::new(key).of(consumer)
}

/// [`pseudonym`] under one key, many times: the keyed HMAC state is made
/// once (keying costs as much as hashing a short id).
#[derive(Clone)]
pub struct Pseudonyms(Hmac<Sha256>);

impl Pseudonyms {
    /// Pseudonyms under the server's secret `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        Pseudonyms(hmac_with(key))
    }

    /// The pseudonym of `consumer`.
    pub fn of(&self, consumer: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(consumer.as_bytes());
        hex_string(PSEUDONYM_PREFIX, &mac.finalize().into_bytes()[..16])
    }
}

/// How a consumer pseudonym starts; 32 hex digits follow.
pub const PSEUDONYM_PREFIX: &str = "ps:";

fn hmac_with(key: &[u8; 32]) -> Hmac<Sha256> {
    // Every key length is accepted (longer ones are hashed); 32 bytes always are.
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// An event leaf with its private part.
#[derive(Debug)]
pub struct SaltedLeaf {
    /// The leaf: format 3 when some member is private, format 2 otherwise.
    pub leaf: Vec<u8>,
    /// The original values of the committed members, as a canonical JSON
    /// object (`None` when nothing was private, and then no salt is kept).
    pub values: Option<Vec<u8>>,
}

/// The leaf of an event submitted by `actor` whose members for which
/// `is_private(key)` holds enter it only as commitments under `salt` (format 3):
///
/// `{"actor":…,"event":{…,"consumer":"<commitment>",…},"salted":["consumer",…],"type":"weiquan.event","v":3}`
///
/// With no private member it is exactly the format-2 leaf. A member whose
/// value has no canonical JSON form (see [`EventLeaf::raw`]) enters as a
/// string of its text, named in `"raw":[…]` (between `event` and `salted`),
/// so that an event the format accepts always has a leaf.
pub fn salted_event_leaf(
    raw_line: &str,
    actor: &CanonicalActor,
    is_private: impl Fn(&str) -> bool,
    salt: &Salt,
) -> Result<SaltedLeaf, LeafError> {
    let members = canonical_members(raw_line)?;
    let private: Vec<usize> = (0..members.members.len())
        .filter(|&i| is_private(&members.key(i)))
        .collect();
    let actor = actor.bytes();
    let mut leaf = Vec::with_capacity(members.bytes.len() + actor.len() + 64 + 80 * private.len());
    // Keys in RFC 8785 order (actor < event < salted < type < v) around
    // canonical values: the concatenation is itself canonical.
    leaf.extend_from_slice(b"{\"actor\":");
    leaf.extend_from_slice(actor);
    leaf.extend_from_slice(b",\"event\":");
    if private.is_empty() {
        leaf.extend_from_slice(&members.bytes);
        push_raw(&mut leaf, &members);
        leaf.extend_from_slice(b",\"type\":\"weiquan.event\",\"v\":2}");
        return Ok(SaltedLeaf {
            leaf: checked(leaf)?,
            values: None,
        });
    }
    let mut values = Vec::with_capacity(members.bytes.len());
    let mut salted = Vec::with_capacity(16 * private.len());
    let committer = Committer::new(salt);
    let mut copied = 0;
    for (n, &i) in private.iter().enumerate() {
        let (key_json, range) = &members.members[i];
        let key_json = &members.bytes[key_json.clone()];
        leaf.extend_from_slice(&members.bytes[copied..range.start]);
        leaf.push(b'"');
        leaf.extend_from_slice(committer.commit(&members.key(i), members.value(i)).as_bytes());
        leaf.push(b'"');
        copied = range.end;
        values.push(if n == 0 { b'{' } else { b',' });
        values.extend_from_slice(key_json);
        values.push(b':');
        values.extend_from_slice(members.value(i));
        salted.push(if n == 0 { b'[' } else { b',' });
        salted.extend_from_slice(key_json);
    }
    leaf.extend_from_slice(&members.bytes[copied..]);
    values.push(b'}');
    salted.push(b']');
    push_raw(&mut leaf, &members);
    leaf.extend_from_slice(b",\"salted\":");
    leaf.extend_from_slice(&salted);
    leaf.extend_from_slice(b",\"type\":\"weiquan.event\",\"v\":3}");
    Ok(SaltedLeaf {
        leaf: checked(leaf)?,
        values: Some(values),
    })
}

/// A salted leaf as its writer computed it, under a salt of its own: what it
/// takes to recognise it in the leaf stored at its place under another salt.
/// Writers of one log that each draw their salts (a cluster's workers, which
/// compare what they compute with what an earlier owner stored) agree on
/// every byte of a leaf but its commitments.
#[derive(Clone, Copy, Debug)]
pub struct Salted<'a> {
    /// The leaf.
    pub leaf: &'a [u8],
    /// Its salted members' original values, a canonical JSON object (`None`:
    /// nothing in it is salted).
    pub values: Option<&'a [u8]>,
    /// The salt its commitments were made under.
    pub salt: &'a Salt,
}

impl Salted<'_> {
    /// Whether `stored` is this leaf. Under `stored_salt` it must be the same
    /// bytes with each commitment made under that salt instead, so a value
    /// that differs is a different leaf. With that salt erased (`None`) the
    /// values cannot be checked: it must be the same bytes outside the
    /// commitments, and 64 lower-case hex digits where each of them stands.
    pub fn is(&self, stored: &[u8], stored_salt: Option<&Salt>) -> bool {
        let Some(values) = self.values else {
            return self.leaf == stored;
        };
        if stored.len() != self.leaf.len() {
            return false;
        }
        let Some(members) = std::str::from_utf8(values).ok().and_then(|v| canonical_members(v).ok()) else {
            return false;
        };
        let ours = Committer::new(self.salt);
        let theirs = stored_salt.map(Committer::new);
        let mut commitments = Vec::with_capacity(members.members.len());
        // The values and the leaf's members are both in canonical order, so
        // each commitment is searched for past the one before it (and in
        // the whole leaf only if it is not there).
        let mut from = 0;
        for i in 0..members.members.len() {
            let (key, value) = (members.key(i), members.value(i));
            let mine = ours.commit(&key, value);
            let find = |from: usize| {
                let rest = self.leaf.get(from..)?;
                Some(from + rest.windows(mine.len()).position(|w| w == mine.as_bytes())?)
            };
            let Some(at) = find(from).or_else(|| find(0)) else {
                return false;
            };
            let at = at..at + mine.len();
            from = at.end;
            let held = &stored[at.clone()];
            let agrees = match &theirs {
                Some(theirs) => held == theirs.commit(&key, value).as_bytes(),
                None => held.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            };
            if !agrees {
                return false;
            }
            commitments.push(at);
        }
        commitments.sort_by_key(|at| at.start);
        let end = self.leaf.len();
        from = 0;
        for at in commitments.iter().chain(std::iter::once(&(end..end))) {
            if at.start < from || self.leaf[from..at.start] != stored[from..at.start] {
                return false;
            }
            from = at.end;
        }
        true
    }
}

/// A leaf standing in for an event whose line has no leaf of its own (no
/// canonical form, or one longer than a leaf: see
/// [`event_leaf_or_stand_in`](crate::event_leaf_or_stand_in)) in a log that
/// keeps personal data off its leaves: the line enters only as a commitment,
/// `{"id":…,"line":"<commitment>","salted":["line"],"type":"weiquan.event_stand_in","v":2}`,
/// its text among the private values.
pub fn salted_stand_in(id: &str, raw_line: &str, salt: &Salt) -> Result<SaltedLeaf, LeafError> {
    let line = serde_json_canonicalizer::to_vec(&raw_line)?;
    let committed = commitment(salt, "line", &line);
    let leaf = serde_json::json!({
        "id": id,
        "line": committed,
        "salted": ["line"],
        "type": crate::leaf::STAND_IN_LEAF_TYPE,
        "v": 2,
    });
    let mut values = b"{\"line\":".to_vec();
    values.extend_from_slice(&line);
    values.push(b'}');
    Ok(SaltedLeaf {
        leaf: checked(serde_json_canonicalizer::to_vec(&leaf)?)?,
        values: Some(values),
    })
}

/// Writes `,"raw":[…]`, the keys of the members written as their text, when there are any.
fn push_raw(leaf: &mut Vec<u8>, members: &crate::jcs::Members) {
    for (n, &i) in members.raw.iter().enumerate() {
        leaf.extend_from_slice(if n == 0 { b",\"raw\":[" } else { b"," });
        leaf.extend_from_slice(&members.bytes[members.members[i].0.clone()]);
    }
    if !members.raw.is_empty() {
        leaf.push(b']');
    }
}

/// Why revealed values do not open a leaf.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// The salt is not 64 hex digits.
    #[error("the salt is not 64 hexadecimal digits")]
    Salt,
    /// A value is given for a key the leaf does not commit to.
    #[error("`{0}` is not a salted member of this leaf")]
    NotSalted(String),
    /// The leaf has no commitment where it says it has one.
    #[error("the leaf has no commitment for `{0}`")]
    NoCommitment(String),
    /// The value does not match the commitment.
    #[error("the value given for `{0}` does not match the leaf's commitment (wrong value or salt)")]
    Mismatch(String),
}

/// Checks each revealed value against the commitment in `event` (a salted
/// leaf's event object) for the keys `salted`; every value must be one of them.
pub fn open_values(
    event: &Map<String, Value>,
    salted: &[String],
    salt: &str,
    values: &Map<String, Value>,
) -> Result<(), OpenError> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(salt, &mut raw).map_err(|_| OpenError::Salt)?;
    for (key, value) in values {
        if !salted.contains(key) {
            return Err(OpenError::NotSalted(key.clone()));
        }
        let committed = event
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| OpenError::NoCommitment(key.clone()))?;
        let canonical = serde_json_canonicalizer::to_vec(value).map_err(|_| OpenError::Mismatch(key.clone()))?;
        if !committed.eq_ignore_ascii_case(&commitment(&raw, key, &canonical)) {
            return Err(OpenError::Mismatch(key.clone()));
        }
    }
    Ok(())
}

/// The event a salted leaf stands for: its event object with each salted
/// member replaced by its value from `values`, or removed where there is none
/// (erased: `null` is what the event format reads as absent), and each `raw`
/// member (a string of the text received) written as that text again.
pub fn restore_event(
    event: &str,
    salted: &[String],
    raw: &[String],
    values: Option<&Map<String, Value>>,
) -> Result<String, serde_json::Error> {
    let mut object: Map<String, Value> = serde_json::from_str(event)?;
    for key in salted {
        let value = values.and_then(|v| v.get(key)).cloned().unwrap_or(Value::Null);
        object.insert(key.clone(), value);
    }
    if raw.is_empty() {
        return serde_json::to_string(&object);
    }
    // Written member by member: a raw member's text is no `Value` (1e400 is no double).
    let mut out = String::with_capacity(event.len());
    for (n, (key, value)) in object.iter().enumerate() {
        out.push(if n == 0 { '{' } else { ',' });
        out.push_str(&serde_json::to_string(key)?);
        out.push(':');
        match value {
            Value::String(text) if raw.contains(key) => out.push_str(text),
            _ => out.push_str(&serde_json::to_string(value)?),
        }
    }
    out.push_str(if object.is_empty() { "{}" } else { "}" });
    Ok(out)
}

/// The event a leaf stands for as weiquan's engine saw it: a salted leaf's
/// members restored from its private `row` (absent where erased) and its
/// consumer by the pseudonym the row keeps; an unsalted leaf's event as it is.
pub fn unsalted_event<'a>(event: &'a EventLeaf<'a>, row: Option<&PrivateRow>) -> Result<Cow<'a, str>, String> {
    if event.format < 3 {
        return Ok(Cow::Borrowed(&event.event));
    }
    let row = row.ok_or("its private row is missing")?;
    let mut values: Map<String, Value> = match &row.values {
        Some(v) => serde_json::from_slice(v).map_err(|e| format!("its private values are not JSON: {e}"))?,
        None => Map::new(),
    };
    let mut raw = Cow::Borrowed(&event.raw[..]);
    if let Some(p) = &row.consumer {
        values.insert("consumer".into(), p.as_str().into());
        // The pseudonym stands in a string, whatever text the consumer was received as.
        raw = Cow::Owned(event.raw.iter().filter(|k| *k != "consumer").cloned().collect());
    }
    restore_event(&event.event, &event.salted, &raw, Some(&values))
        .map(Cow::Owned)
        .map_err(|e| format!("its event is not a JSON object: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaf::{event_leaf_by, leaf_event, Actor};

    fn platform() -> CanonicalActor {
        Actor {
            role: "platform".into(),
            key: Some("00112233aabbccdd".into()),
            on_behalf: None,
        }
        .canonical()
        .expect("actor")
    }

    const COMPLAINT: &str = r#"{"v":1,"id":"c1","type":"complaint.filed","at":"2026-11-01T00:00:00+08:00","complaint":"p1","consumer":"张三-13800000000","merchant":"m1","category":"quality","text":"坏了","phone":"13800000000"}"#;

    fn private(key: &str) -> bool {
        matches!(key, "consumer" | "text" | "phone")
    }

    #[test]
    fn private_members_enter_only_as_commitments_that_open_with_the_salt() {
        let salt = [7u8; 32];
        let salted = salted_event_leaf(COMPLAINT, &platform(), private, &salt).expect("leaf");
        let leaf = String::from_utf8(salted.leaf.clone()).expect("utf-8");
        for secret in ["张三", "13800000000", "坏了"] {
            assert!(!leaf.contains(secret), "{secret} in {leaf}");
        }
        // Canonical, and read back as a format-3 leaf naming what it salted.
        assert_eq!(
            serde_json_canonicalizer::pipe(&leaf).expect("json").into_bytes(),
            salted.leaf
        );
        let read = leaf_event(&leaf).expect("an event leaf");
        assert_eq!(
            (read.format, &read.salted[..]),
            (3, &["consumer".to_string(), "phone".into(), "text".into()][..])
        );
        let event: Map<String, Value> = serde_json::from_str(&read.event).expect("object");
        let values: Map<String, Value> =
            serde_json::from_slice(salted.values.as_deref().expect("values")).expect("object");
        assert_eq!(values["consumer"], "张三-13800000000");
        assert_eq!(open_values(&event, &read.salted, &hex::encode(salt), &values), Ok(()));
        // The original event comes back whole.
        let restored = restore_event(&read.event, &read.salted, &read.raw, Some(&values)).expect("json");
        assert_eq!(
            serde_json_canonicalizer::pipe(&restored).expect("json"),
            serde_json_canonicalizer::pipe(COMPLAINT).expect("json")
        );
        // A wrong value, a wrong salt, a key that is not salted: refused, by name.
        let mut wrong = values.clone();
        wrong.insert("consumer".into(), "李四".into());
        assert_eq!(
            open_values(&event, &read.salted, &hex::encode(salt), &wrong),
            Err(OpenError::Mismatch("consumer".into()))
        );
        assert_eq!(
            open_values(&event, &read.salted, &hex::encode([8u8; 32]), &values),
            Err(OpenError::Mismatch("consumer".into()))
        );
        let mut extra = values.clone();
        extra.insert("merchant".into(), "m1".into());
        assert_eq!(
            open_values(&event, &read.salted, &hex::encode(salt), &extra),
            Err(OpenError::NotSalted("merchant".into()))
        );
        // Erased: the salted members are absent.
        let erased: Map<String, Value> =
            serde_json::from_str(&restore_event(&read.event, &read.salted, &read.raw, None).expect("json"))
                .expect("object");
        assert_eq!(erased["consumer"], Value::Null);
        assert_eq!(erased["merchant"], "m1");
    }

    #[test]
    fn the_same_value_commits_differently_under_another_salt() {
        let a = salted_event_leaf(COMPLAINT, &platform(), private, &[1; 32]).expect("leaf");
        let b = salted_event_leaf(COMPLAINT, &platform(), private, &[2; 32]).expect("leaf");
        assert_ne!(a.leaf, b.leaf);
        assert_eq!(a.values, b.values);
    }

    /// Nothing private: exactly the format-2 leaf, and no values to keep.
    #[test]
    fn a_leaf_with_nothing_private_is_format_2() {
        let tick = r#"{"v":1,"id":"e1","type":"clock.tick","at":"2026-11-01T00:00:00+08:00"}"#;
        let salted = salted_event_leaf(tick, &platform(), private, &[0; 32]).expect("leaf");
        assert_eq!(salted.leaf, event_leaf_by(tick, &platform()).expect("leaf"));
        assert_eq!(salted.values, None);
    }

    /// An extra field the event format accepts but RFC 8785 cannot write
    /// (a number beyond a double, a lone surrogate escape, nesting deeper
    /// than 128) still has a leaf: the value enters as a string of its text,
    /// named in `raw`, and comes back as that text; the other members stay
    /// canonical, and a private one is salted as ever.
    #[test]
    fn a_member_without_a_canonical_form_enters_as_its_text() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for (odd, private_too) in [("1e400", false), (r#""\ud800x""#, true), (deep.as_str(), false)] {
            let line = format!(
                r#"{{"v":1,"id":"e1","type":"clock.tick","at":"2026-11-01T00:00:00+08:00","x":{odd},"y":1E2,"consumer":"u1"}}"#
            );
            let is_private = |k: &str| k == "consumer" || (private_too && k == "x");
            let salted = salted_event_leaf(&line, &platform(), is_private, &[3; 32]).expect("a leaf");
            let leaf = std::str::from_utf8(&salted.leaf).expect("utf-8");
            // The leaf is canonical JSON, and says which member is a text.
            assert_eq!(
                serde_json_canonicalizer::pipe(leaf).expect("json").as_bytes(),
                salted.leaf,
                "{leaf}"
            );
            let read = leaf_event(leaf).expect("an event leaf");
            assert_eq!(read.raw, ["x"], "{leaf}");
            let event: Map<String, Value> = serde_json::from_str(&read.event).expect("object");
            assert_eq!(event["y"], 100, "the others stay canonical: {leaf}");
            if private_too {
                assert_eq!(read.salted, ["consumer", "x"]);
                assert!(!leaf.contains("ud800"), "a private text is salted: {leaf}");
            } else {
                assert_eq!(event["x"], odd, "{leaf}");
            }
            let values: Map<String, Value> =
                serde_json::from_slice(salted.values.as_deref().expect("values")).expect("values are JSON");
            assert_eq!(
                open_values(&event, &read.salted, &hex::encode([3; 32]), &values),
                Ok(())
            );
            let restored = restore_event(&read.event, &read.salted, &read.raw, Some(&values)).expect("restores");
            assert!(
                restored.contains(&format!(r#""x":{odd}"#)),
                "the text comes back as received: {restored}"
            );
            let again = salted_event_leaf(&restored, &platform(), is_private, &[3; 32]).expect("a leaf");
            assert_eq!(again.leaf, salted.leaf, "restored, it makes the same leaf");
        }
        // A repeated key keeps its last value, as before.
        let twice = r#"{"v":1,"id":"e1","type":"clock.tick","at":"2026-11-01T00:00:00+08:00","x":1e400,"x":2}"#;
        let salted = salted_event_leaf(twice, &platform(), |_| false, &[3; 32]).expect("a leaf");
        let read = leaf_event(std::str::from_utf8(&salted.leaf).expect("utf-8")).expect("leaf");
        assert!(read.raw.is_empty() && read.event.contains(r#""x":2"#), "{}", read.event);
    }

    /// The published format-3 vector (docs/ledger.md).
    #[test]
    fn the_published_format_3_vector() {
        let line = r#"{"v":1,"id":"e2","type":"bnpl.disabled","at":"2026-11-01T00:00:00+08:00","consumer":"u1","provider":"p1","steps":1}"#;
        let salted = salted_event_leaf(line, &platform(), |k| k == "consumer", &[0x5a; 32]).expect("leaf");
        let leaf = String::from_utf8(salted.leaf.clone()).expect("utf-8");
        assert_eq!(
            leaf,
            format!(
                r#"{{"actor":{{"key":"00112233aabbccdd","role":"platform"}},"event":{{"at":"2026-11-01T00:00:00+08:00","consumer":"{}","id":"e2","provider":"p1","steps":1,"type":"bnpl.disabled","v":1}},"salted":["consumer"],"type":"weiquan.event","v":3}}"#,
                commitment(&[0x5a; 32], "consumer", br#""u1""#)
            )
        );
        assert_eq!(
            commitment(&[0x5a; 32], "consumer", br#""u1""#),
            "6c3637d5e4a7420a43aaa7508a263cbfe708c69d875638cc2cf6a58728543491"
        );
        assert_eq!(
            hex::encode(tlog_tiles::record_hash(&salted.leaf).0),
            "fe3df21ef69a38db99b9d03510f1c1d8f6479b34c22e73c6d05946de69765f44"
        );
    }
}
