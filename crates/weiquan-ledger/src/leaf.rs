//! What one leaf of the log holds.
//!
//! An event leaf is the event exactly as received, in RFC 8785 canonical JSON,
//! so that re-serialising cannot change its bytes (or its hash). A finding
//! leaf names the rule, subject and the leaf indices of its evidence.

use serde::Serialize;

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

fn checked(bytes: Vec<u8>) -> Result<Vec<u8>, LeafError> {
    if bytes.len() > MAX_LEAF_BYTES {
        return Err(LeafError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// The leaf of an accepted event: its line in canonical JSON.
pub fn event_leaf(raw_line: &str) -> Result<Vec<u8>, LeafError> {
    let bytes = match crate::jcs::canonical(raw_line) {
        Some(bytes) => bytes,
        None => serde_json_canonicalizer::pipe(raw_line)?.into_bytes(),
    };
    checked(bytes)
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
}

/// The leaf of a finding: rule, subject, severity, time, evidence event ids and
/// their leaf indices, and the citation in force.
#[allow(clippy::too_many_arguments)]
pub fn finding_leaf(
    rule: &str,
    subject: &str,
    severity: &str,
    at: &str,
    events: &[String],
    evidence: &[u64],
    citation: &str,
) -> Result<Vec<u8>, LeafError> {
    let leaf = FindingLeaf {
        v: 1,
        kind: "weiquan.finding",
        rule,
        subject,
        severity,
        at,
        events,
        evidence,
        citation,
    };
    checked(serde_json_canonicalizer::to_vec(&leaf)?)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn oversized_leaves_are_refused() {
        let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(70_000));
        assert!(matches!(event_leaf(&big), Err(LeafError::TooLarge(_))));
    }
}
