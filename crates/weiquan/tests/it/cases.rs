//! The example cases: exact `(rule, subject)` sets and rejected lines.

use crate::{expected, expected_file, ndjson, pairs, root, weiquan};
use std::collections::BTreeSet;
use std::path::Path;

fn case_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("tests/cases"))
        .expect("tests/cases exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("events.ndjson").exists())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_case_gives_exactly_its_expected_findings_and_rejects() {
    let dirs = case_dirs();
    assert!(dirs.len() >= 5, "the five shared cases are present");
    for dir in dirs {
        audit_gives(&dir.join("events.ndjson"), expected(&dir));
    }
}

/// Audits `events` and asserts exactly the `(rule, subject)` pairs and rejected lines expected.
fn audit_gives(events: &Path, want: (BTreeSet<(String, String)>, Vec<u64>)) {
    let out = weiquan(&["audit", events.to_str().expect("utf-8 path")], None);
    assert_eq!(out.status.code(), Some(0), "{}", events.display());
    let findings = ndjson(&out.stdout);
    assert_eq!(pairs(&findings), want.0, "findings of {}", events.display());
    // Messy streams 1: a finding always names its evidence.
    for f in &findings {
        assert!(
            !f["events"].as_array().expect("events").is_empty(),
            "empty events in {f}"
        );
    }
    let got_lines: Vec<u64> = ndjson(&out.stderr)
        .iter()
        .map(|r| r["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(got_lines, want.1, "rejected lines of {}", events.display());
}

/// Spec 1.1, "Messy streams": each small stream gives exactly the findings its README lists.
#[test]
fn every_messy_stream_gives_exactly_what_spec_1_1_requires() {
    let dir = root().join("tests/repros/messy");
    let mut streams: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/repros/messy exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    streams.sort();
    assert!(streams.len() >= 23, "the messy streams are present");
    for events in streams {
        let want = expected_file(&events.with_extension("expected.json"));
        audit_gives(&events, want);
    }
}

/// The project's copy of the messy streams must not drift from the shared ones.
#[test]
fn project_repros_equal_the_shared_repros_when_present() {
    same_as_shared("tests/repros/messy", "repros/messy");
}

#[test]
fn every_finding_has_the_documented_fields() {
    for dir in case_dirs() {
        let out = weiquan(&["audit", dir.join("events.ndjson").to_str().expect("utf-8")], None);
        for f in ndjson(&out.stdout) {
            for key in ["rule", "subject", "severity", "at", "events", "citation", "message"] {
                assert!(f.get(key).is_some(), "{key} missing in {f}");
            }
            assert!(["high", "medium", "low"].contains(&f["severity"].as_str().expect("severity")));
            assert!(
                !f["message"].as_str().expect("message").contains('{'),
                "unfilled placeholder in {f}"
            );
        }
    }
}

/// Asserts that `ours` (in the repository) holds exactly the files of
/// `../shared/<shared>`, byte for byte, when that folder exists here.
fn same_as_shared(ours: &str, shared: &str) {
    let shared_dir = root().join("../shared").join(shared);
    if !shared_dir.exists() {
        eprintln!("../shared/{shared} not present here; nothing to compare");
        return;
    }
    let list = |base: &Path| -> BTreeSet<String> {
        walk(base)
            .into_iter()
            .map(|p| p.strip_prefix(base).expect("under base").to_string_lossy().into_owned())
            .collect()
    };
    let ours_dir = root().join(ours);
    assert_eq!(
        list(&ours_dir),
        list(&shared_dir),
        "{ours}: same files as ../shared/{shared}"
    );
    for rel in list(&shared_dir) {
        assert_eq!(
            std::fs::read(ours_dir.join(&rel)).expect("ours"),
            std::fs::read(shared_dir.join(&rel)).expect("shared"),
            "{ours}/{rel} differs from ../shared/{shared}/{rel}: copy it again"
        );
    }
}

/// The project's copy of the cases must not drift from the shared originals.
#[test]
fn project_cases_equal_the_shared_cases_when_present() {
    same_as_shared("tests/cases", "cases");
}

/// The project's copy of the spec must not drift from the shared contract either.
#[test]
fn project_spec_equals_the_shared_spec_when_present() {
    same_as_shared("docs/spec", "spec");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("readable").filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn presale_findings_snapshot() {
    let out = weiquan(&["audit", "tests/cases/presale/events.ndjson", "--lang", "en"], None);
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}
