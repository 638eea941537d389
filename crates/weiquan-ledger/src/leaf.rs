//! What one leaf of the log holds.
//!
//! An event leaf is the event exactly as received, in RFC 8785 canonical JSON,
//! so that re-serialising cannot change its bytes (or its hash). Format 2
//! wraps it with the actor that submitted it (role and key id, never the
//! secret); format 1, written before, is the event alone, and stays readable.
//! A finding leaf names the rule, subject and the leaf indices of its evidence.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Entry bundles store each leaf with a 16-bit length (C2SP tlog-tiles).
pub const MAX_LEAF_BYTES: usize = u16::MAX as usize;

/// A leaf that cannot be encoded.
#[derive(Debug, thiserror::Error)]
pub enum LeafError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Too large for an entry bundle.
    #[error("leaf is {0} bytes; tlog-tiles entries hold at most 65535")]
    TooLarge(usize),
}

pub(crate) fn checked(bytes: Vec<u8>) -> Result<Vec<u8>, LeafError> {
    if bytes.len() > MAX_LEAF_BYTES {
        return Err(LeafError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// The leaf of an accepted event in format 1: its line in canonical JSON (no
/// actor: what `weiquan audit --ledger` writes for the owner of a file).
pub fn event_leaf(raw_line: &str) -> Result<Vec<u8>, LeafError> {
    checked(canonical_event(raw_line)?)
}

/// Type of the leaf that stands for an event whose line has no canonical
/// JSON form ([`event_leaf_or_stand_in`]).
pub const STAND_IN_LEAF_TYPE: &str = "weiquan.event_stand_in";

/// The leaf of an accepted event in format 1 ([`event_leaf`]), or, when its
/// line has no canonical form, a leaf standing in for it, carrying the line
/// as received in a string:
/// `{"id":…,"line":"<the line>","type":"weiquan.event_stand_in","v":1}`;
/// or, when even that is longer than a leaf, its hash only:
/// `{"id":…,"line_sha256":"<hex SHA-256 of the line>","type":"weiquan.event_stand_in","v":1}`.
///
/// An event is accepted whatever its extra fields hold (spec/events.md, "Bad
/// input"), but RFC 8785 cannot write every JSON value: a number beyond a
/// double (`1e400`), a lone surrogate escape, nesting deeper than 128, or a
/// canonical form longer than a leaf. The stand-in keeps the event's place
/// and its bytes (or a commitment to them). It depends on nothing but the
/// line, so every writer computes the same leaf.
pub fn event_leaf_or_stand_in(id: &str, raw_line: &str) -> Result<Vec<u8>, LeafError> {
    if let Ok(leaf) = event_leaf(raw_line) {
        return Ok(leaf);
    }
    let carried = serde_json::json!({"id": id, "line": raw_line, "type": STAND_IN_LEAF_TYPE, "v": 1});
    match checked(serde_json_canonicalizer::to_vec(&carried)?) {
        Err(LeafError::TooLarge(_)) => {
            use sha2::Digest;
            let line_sha256 = hex::encode(sha2::Sha256::digest(raw_line.as_bytes()));
            let hashed = serde_json::json!({"id": id, "line_sha256": line_sha256, "type": STAND_IN_LEAF_TYPE, "v": 1});
            checked(serde_json_canonicalizer::to_vec(&hashed)?)
        }
        carried => carried,
    }
}

/// What a leaf records, in words (`an event`, `a finding`, …): what a
/// receipt's checker says it proved, since a leaf's fields alone can mislead
/// (an event may carry fields named like a finding's).
pub fn leaf_kind(leaf: &str) -> &'static str {
    // Every format, the event alone (format 1) included.
    if leaf_event(leaf).is_some() {
        return "an event";
    }
    match own_leaf(leaf) {
        Some(OwnLeaf::Finding { .. }) => "a finding",
        Some(OwnLeaf::Rulebook { .. }) => "a rulebook record",
        None if stand_in(leaf).is_some() => "an event's stand-in",
        None => "a leaf of another kind",
    }
}

/// A leaf standing in for an event ([`event_leaf_or_stand_in`]), read back.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct StandIn {
    /// The event's id.
    pub id: String,
    /// The line as received; `None` when the leaf holds its hash only, or
    /// only a salted commitment to it ([`salted_stand_in`](crate::salted_stand_in)).
    pub line: Option<String>,
}

/// Reads a stand-in leaf; `None` for any other leaf.
pub fn stand_in(leaf: &str) -> Option<StandIn> {
    #[derive(Deserialize)]
    struct Leaf {
        #[serde(rename = "type")]
        kind: String,
        #[serde(flatten)]
        stand_in: StandIn,
        #[serde(default)]
        salted: Vec<String>,
    }
    let mut l: Leaf = serde_json::from_str(leaf).ok()?;
    if l.salted.iter().any(|k| k == "line") {
        l.stand_in.line = None; // a commitment, not the line
    }
    (l.kind == STAND_IN_LEAF_TYPE).then_some(l.stand_in)
}

fn canonical_event(raw_line: &str) -> Result<Vec<u8>, LeafError> {
    Ok(match crate::jcs::canonical(raw_line) {
        Some(bytes) => bytes,
        None => serde_json_canonicalizer::pipe(raw_line)?.into_bytes(),
    })
}

/// Who put an event into the log: a party's API key (its role and key id), or
/// weiquan itself acting for one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `platform`, `regulator`, `merchant:ID`, `consumer:ID`, or `weiquan`.
    pub role: String,
    /// The key's id (first 8 bytes of its SHA-256, hex); never the key.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key: Option<String>,
    /// For weiquan's own acts: whose request it acted on.
    #[serde(rename = "for", skip_serializing_if = "Option::is_none", default)]
    pub on_behalf: Option<Box<Actor>>,
}

/// Type of a format-2 event leaf.
pub const EVENT_LEAF_TYPE: &str = "weiquan.event";

/// An actor in canonical JSON, encoded once for all the leaves it submits (a
/// batch has one submitter; encoding it per event cost the sequencer time).
#[derive(Clone, Debug)]
pub struct CanonicalActor(Vec<u8>);

impl Actor {
    /// This actor in canonical JSON.
    pub fn canonical(&self) -> Result<CanonicalActor, LeafError> {
        Ok(CanonicalActor(serde_json_canonicalizer::to_vec(self)?))
    }
}

impl CanonicalActor {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The leaf of an event submitted by `actor`, format 2: canonical JSON of
/// `{"actor":…,"event":<the event as received>,"type":"weiquan.event","v":2}`.
pub fn event_leaf_by(raw_line: &str, actor: &CanonicalActor) -> Result<Vec<u8>, LeafError> {
    let event = canonical_event(raw_line)?;
    let actor = &actor.0;
    // Keys in RFC 8785 order (actor < event < type < v) around canonical
    // values: the concatenation is itself canonical, with no second pass.
    let mut leaf = Vec::with_capacity(event.len() + actor.len() + 48);
    leaf.extend_from_slice(b"{\"actor\":");
    leaf.extend_from_slice(actor);
    leaf.extend_from_slice(b",\"event\":");
    leaf.extend_from_slice(&event);
    leaf.extend_from_slice(b",\"type\":\"weiquan.event\",\"v\":2}");
    checked(leaf)
}

/// An event leaf, read.
#[derive(Clone, Debug, PartialEq)]
pub struct EventLeaf<'a> {
    /// The event's JSON text; in format 3 its salted members are commitments.
    pub event: Cow<'a, str>,
    /// 1 (the event alone), 2 (with its actor) or 3 (with its actor, personal data salted).
    pub format: u8,
    /// Who submitted it (formats 2 and 3).
    pub actor: Option<Actor>,
    /// The members of `event` that are salted commitments (format 3).
    pub salted: Vec<String>,
    /// The members of `event` whose value had no canonical JSON form (a
    /// number beyond a double, a lone surrogate escape, nesting deeper than
    /// 128): each is a string of the value's text as received (formats 2
    /// and 3; salted too when private, as extra fields are in `weiquan serve`).
    pub raw: Vec<String>,
}

/// The event a leaf holds, with its format and, from format 2 on, who
/// submitted it; `None` for a finding leaf.
pub fn leaf_event(leaf: &str) -> Option<EventLeaf<'_>> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<Cow<'a, str>>,
        // Raw: in a format-1 leaf these are the producer's own fields, of any shape.
        #[serde(borrow)]
        event: Option<&'a RawValue>,
        #[serde(borrow)]
        actor: Option<&'a RawValue>,
        #[serde(borrow)]
        salted: Option<&'a RawValue>,
        #[serde(borrow)]
        raw: Option<&'a RawValue>,
        v: Option<&'a RawValue>,
    }
    let head: Head = serde_json::from_str(leaf).ok()?;
    match head.kind.as_deref() {
        Some(EVENT_LEAF_TYPE) => {
            let actor = head.actor.and_then(|a| serde_json::from_str(a.get()).ok());
            let keys = |list: Option<&RawValue>| -> Vec<String> {
                list.and_then(|s| serde_json::from_str(s.get()).ok())
                    .unwrap_or_default()
            };
            let format = if head.v.map(RawValue::get) == Some("3") { 3 } else { 2 };
            Some(EventLeaf {
                event: Cow::Borrowed(head.event?.get()),
                format,
                actor,
                salted: keys(head.salted),
                raw: keys(head.raw),
            })
        }
        // weiquan's own records (findings, rulebooks): no event type starts so.
        Some(t) if t.starts_with("weiquan.") => None,
        _ => Some(EventLeaf {
            event: Cow::Borrowed(leaf),
            format: 1,
            actor: None,
            salted: Vec::new(),
            raw: Vec::new(),
        }),
    }
}

/// Type of a finding leaf.
pub const FINDING_LEAF_TYPE: &str = "weiquan.finding";

/// Type of a leaf recording the rulebook a server ran from then on.
pub const RULEBOOK_LEAF_TYPE: &str = "weiquan.rulebook";

/// A leaf weiquan writes of its own accord, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnLeaf {
    /// A finding: its rule, its subject (a commitment when `salted`) and when it fired.
    Finding {
        /// Rule id.
        rule: String,
        /// `kind:id`, or a commitment to it.
        subject: String,
        /// Business time it fired at.
        at: String,
        /// Whether the subject is a salted commitment.
        salted: bool,
    },
    /// A rulebook record: its fingerprint.
    Rulebook {
        /// Hex SHA-256 of the rules' canonical JSON.
        sha256: String,
    },
}

/// Reads a finding or rulebook leaf; `None` for an event leaf or anything else.
pub fn own_leaf(leaf: &str) -> Option<OwnLeaf> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: Option<String>,
        rule: Option<String>,
        subject: Option<String>,
        at: Option<String>,
        salted: Option<serde::de::IgnoredAny>,
        sha256: Option<String>,
    }
    let head: Head = serde_json::from_str(leaf).ok()?;
    match head.kind.as_deref()? {
        FINDING_LEAF_TYPE => Some(OwnLeaf::Finding {
            rule: head.rule?,
            subject: head.subject?,
            at: head.at.unwrap_or_default(),
            salted: head.salted.is_some(),
        }),
        RULEBOOK_LEAF_TYPE => Some(OwnLeaf::Rulebook { sha256: head.sha256? }),
        _ => None,
    }
}

/// The leaf recording a rulebook: canonical JSON of
/// `{"rules":…,"sha256":…,"type":"weiquan.rulebook","v":1}`, where `sha256` is
/// the hex SHA-256 of the canonical JSON of `rules` (its fingerprint, also returned).
pub fn rulebook_leaf(rules: &serde_json::Value) -> Result<(Vec<u8>, String), LeafError> {
    let fingerprint = rulebook_fingerprint(rules)?;
    let leaf = serde_json::json!({"rules": rules, "sha256": fingerprint, "type": RULEBOOK_LEAF_TYPE, "v": 1});
    Ok((checked(serde_json_canonicalizer::to_vec(&leaf)?)?, fingerprint))
}

/// The fingerprint of a rulebook: hex SHA-256 of its canonical JSON.
pub fn rulebook_fingerprint(rules: &serde_json::Value) -> Result<String, LeafError> {
    use sha2::Digest;
    Ok(hex::encode(sha2::Sha256::digest(serde_json_canonicalizer::to_vec(
        rules,
    )?)))
}

#[derive(Serialize)]
struct FindingLeaf<'a> {
    v: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    rule: &'a str,
    subject: &'a str,
    severity: &'a str,
    at: &'a str,
    events: &'a [String],
    evidence: &'a [u64],
    citation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    salted: Option<[&'static str; 1]>,
}

/// The leaf of a finding: rule, subject, severity, time, evidence event ids and
/// their leaf indices, and the citation in force. A consumer finding's subject
/// (`consumer:…`) is personal data: with `salt` it enters as a commitment
/// (finding format 2, `"salted":["subject"]`), and the caller keeps the salt.
#[allow(clippy::too_many_arguments)]
pub fn finding_leaf(
    rule: &str,
    subject: &str,
    severity: &str,
    at: &str,
    events: &[String],
    evidence: &[u64],
    citation: &str,
    salt: Option<&crate::private::Salt>,
) -> Result<crate::private::SaltedLeaf, LeafError> {
    let committed;
    let mut values = None;
    let (v, subject, salted) = match salt {
        Some(salt) => {
            let canonical = serde_json_canonicalizer::to_vec(&subject)?;
            committed = crate::private::commitment(salt, "subject", &canonical);
            let mut object = b"{\"subject\":".to_vec();
            object.extend_from_slice(&canonical);
            object.push(b'}');
            values = Some(object);
            (2, committed.as_str(), Some(["subject"]))
        }
        None => (1, subject, None),
    };
    let leaf = FindingLeaf {
        v,
        kind: FINDING_LEAF_TYPE,
        rule,
        subject,
        severity,
        at,
        events,
        evidence,
        citation,
        salted,
    };
    Ok(crate::private::SaltedLeaf {
        leaf: checked(serde_json_canonicalizer::to_vec(&leaf)?)?,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line with no canonical form gets a stand-in leaf carrying it (or,
    /// too long for that, its hash); any other line gets its event leaf.
    #[test]
    fn a_line_without_a_canonical_form_gets_a_stand_in() {
        use sha2::Digest;
        let line = |x: &str| {
            format!(r#"{{"v": 1, "id": "e1", "type": "clock.tick", "at": "2026-11-01T00:00:00+08:00", "x": {x}}}"#)
        };
        let plain = line("1.5");
        assert_eq!(
            event_leaf_or_stand_in("e1", &plain).expect("a leaf"),
            event_leaf(&plain).expect("a leaf")
        );
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for x in ["1e400", deep.as_str(), &"9".repeat(320)] {
            let odd = line(x);
            assert!(event_leaf(&odd).is_err(), "{x:.20} has no canonical form");
            let leaf = event_leaf_or_stand_in("e1", &odd).expect("a stand-in");
            let v: serde_json::Value = serde_json::from_slice(&leaf).expect("JSON");
            assert_eq!(
                serde_json_canonicalizer::to_vec(&v).expect("canonical"),
                leaf,
                "the stand-in is canonical"
            );
            let text = String::from_utf8(leaf).expect("UTF-8");
            let read = stand_in(&text).expect("a stand-in");
            assert_eq!(
                (read.id.as_str(), read.line.as_deref()),
                ("e1", Some(odd.as_str())),
                "it carries the line"
            );
            assert_eq!(own_leaf(&text), None);
            assert!(leaf_event(&text).is_none());
        }
        // Too long to carry escaped: the hash only.
        let long = line(&format!("[1e400, \"{}\"]", "\\\"".repeat(20_000)));
        assert!(long.len() <= MAX_LEAF_BYTES);
        let leaf = String::from_utf8(event_leaf_or_stand_in("e1", &long).expect("a stand-in")).expect("UTF-8");
        assert_eq!(
            stand_in(&leaf),
            Some(StandIn {
                id: "e1".into(),
                line: None
            })
        );
        let v: serde_json::Value = serde_json::from_str(&leaf).expect("JSON");
        assert_eq!(v["line_sha256"], hex::encode(sha2::Sha256::digest(long.as_bytes())));
    }

    #[test]
    fn event_leaf_is_canonical_whatever_the_spacing_and_key_order() {
        let a =
            event_leaf(r#"{"v": 1, "id": "e1", "type": "clock.tick", "at": "2026-11-01T00:00:00+08:00", "x": 1.0}"#)
                .expect("json");
        let b = event_leaf(r#"{"x":1,"at":"2026-11-01T00:00:00+08:00","type":"clock.tick","id":"e1","v":1}"#)
            .expect("json");
        assert_eq!(a, b);
        assert_eq!(
            String::from_utf8(a).expect("utf-8"),
            r#"{"at":"2026-11-01T00:00:00+08:00","id":"e1","type":"clock.tick","v":1,"x":1}"#
        );
    }

    /// Format 2: canonical (a second canonicalisation changes nothing), and the event reads back.
    #[test]
    fn an_event_leaf_names_its_actor_and_gives_the_event_back() {
        let line = r#"{"v": 1, "id": "e1", "type": "clock.tick", "at": "2026-11-01T00:00:00+08:00", "actor": "x"}"#;
        let lift = Actor {
            role: "weiquan".into(),
            key: None,
            on_behalf: Some(Box::new(Actor {
                role: "regulator".into(),
                key: Some("00112233aabbccdd".into()),
                on_behalf: None,
            })),
        };
        let leaf = event_leaf_by(line, &lift.canonical().expect("actor")).expect("leaf");
        let text = String::from_utf8(leaf.clone()).expect("utf-8");
        assert_eq!(serde_json_canonicalizer::pipe(&text).expect("json").into_bytes(), leaf);
        assert_eq!(
            text,
            r#"{"actor":{"for":{"key":"00112233aabbccdd","role":"regulator"},"role":"weiquan"},"event":{"actor":"x","at":"2026-11-01T00:00:00+08:00","id":"e1","type":"clock.tick","v":1},"type":"weiquan.event","v":2}"#
        );
        let read = leaf_event(&text).expect("an event leaf");
        let (event, format, actor) = (read.event, read.format, read.actor);
        assert_eq!((format, actor.as_ref()), (2, Some(&lift)));
        assert_eq!(event.as_bytes(), &event_leaf(line).expect("v1")[..]);
        // Format 1 (the event itself, even one with an `actor` field of its own) and findings.
        let v1 = String::from_utf8(event_leaf(line).expect("v1")).expect("utf-8");
        assert_eq!(
            leaf_event(&v1).map(|r| (r.event.into_owned(), r.format, r.actor)),
            Some((v1.clone(), 1, None))
        );
        let finding = finding_leaf(
            "PS-01",
            "campaign:c",
            "high",
            "2026-11-01T00:00:00Z",
            &[],
            &[],
            "c",
            None,
        )
        .expect("f");
        assert!(leaf_event(std::str::from_utf8(&finding.leaf).expect("utf-8")).is_none());
    }

    /// The vector published in docs/ledger.md.
    #[test]
    fn the_published_format_2_vector() {
        let platform = Actor {
            role: "platform".into(),
            key: Some("00112233aabbccdd".into()),
            on_behalf: None,
        };
        let leaf = event_leaf_by(
            r#"{"v":1,"id":"e1","type":"clock.tick","at":"2026-11-01T00:00:00+08:00"}"#,
            &platform.canonical().expect("actor"),
        )
        .expect("leaf");
        assert_eq!(leaf.len(), 162);
        let hash = tlog_tiles::record_hash(&leaf);
        assert_eq!(
            hex::encode(hash.0),
            "84d842a84c0780e790dc1e59e683af1611c2882f4c0c60bf0e77a959b74357e3"
        );
    }

    /// Findings (plain and salted) and rulebook records read back; events do not.
    #[test]
    fn weiquans_own_leaves_read_back() {
        let plain = finding_leaf(
            "PS-01",
            "campaign:c",
            "high",
            "2026-11-01T00:00:00Z",
            &[],
            &[],
            "c",
            None,
        )
        .expect("f");
        let salted = finding_leaf(
            "BN-01",
            "consumer:u",
            "high",
            "2026-11-01T00:00:00Z",
            &[],
            &[],
            "c",
            Some(&[1; 32]),
        )
        .expect("f");
        let text = |l: &[u8]| String::from_utf8(l.to_vec()).expect("utf-8");
        assert!(
            matches!(own_leaf(&text(&plain.leaf)), Some(OwnLeaf::Finding { ref subject, salted: false, .. }) if subject == "campaign:c")
        );
        assert!(
            matches!(own_leaf(&text(&salted.leaf)), Some(OwnLeaf::Finding { ref rule, salted: true, .. }) if rule == "BN-01")
        );
        let (rulebook, sha) = rulebook_leaf(&serde_json::json!({"version": 1})).expect("leaf");
        assert_eq!(own_leaf(&text(&rulebook)), Some(OwnLeaf::Rulebook { sha256: sha }));
        let tick = event_leaf(r#"{"v":1,"id":"e","type":"clock.tick","at":"2026-11-01T00:00:00Z"}"#).expect("leaf");
        assert_eq!(own_leaf(&text(&tick)), None);
    }

    #[test]
    fn oversized_leaves_are_refused() {
        let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(70_000));
        assert!(matches!(event_leaf(&big), Err(LeafError::TooLarge(_))));
    }
}
