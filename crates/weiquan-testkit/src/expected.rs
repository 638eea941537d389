//! A case folder's `expected.json`: the contract the example cases and the
//! messy-stream repros are checked against, read one way by every suite.

use std::collections::BTreeSet;
use std::path::Path;

/// What a case folder's `expected.json` requires: its `(rule, subject)` pairs
/// and its rejected line numbers.
pub fn expected(case_dir: &Path) -> (BTreeSet<(String, String)>, Vec<u64>) {
    expected_file(&case_dir.join("expected.json"))
}

/// The same, from an expected file of any name (the messy-stream repros keep
/// `NAME.expected.json` beside `NAME.ndjson`).
pub fn expected_file(path: &Path) -> (BTreeSet<(String, String)>, Vec<u64>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    let pairs = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|p| {
            (
                p[0].as_str().expect("rule").to_owned(),
                p[1].as_str().expect("subject").to_owned(),
            )
        })
        .collect();
    let lines = v["rejected_lines"]
        .as_array()
        .expect("rejected_lines")
        .iter()
        .map(|l| l.as_u64().expect("line"))
        .collect();
    (pairs, lines)
}

/// The `(rule, subject)` pairs of findings as JSON objects (what the API and
/// `weiquan audit` print).
pub fn pairs<'a>(findings: impl IntoIterator<Item = &'a serde_json::Value>) -> BTreeSet<(String, String)> {
    findings
        .into_iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_owned(),
                f["subject"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
