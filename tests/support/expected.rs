//! Reads a case folder's `expected.json`. Shared by the test crates that run
//! the example cases (each includes this file with `#[path]`), so that both
//! read the contract the same way.

use std::collections::BTreeSet;
use std::path::Path;

/// What a case folder's `expected.json` requires: its `(rule, subject)` pairs
/// and its rejected line numbers.
pub fn expected(case_dir: &Path) -> (BTreeSet<(String, String)>, Vec<u64>) {
    expected_file(&case_dir.join("expected.json"))
}

/// The same, from an expected file of any name (the messy-stream repros keep
/// `NAME.expected.json` beside `NAME.ndjson`). Not every crate that includes
/// this file reads repros.
#[allow(dead_code)]
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
