//! The example cases: exact `(rule, subject)` sets and rejected lines.

use crate::{expected, ndjson, pairs, root, weiquan};
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
        let events = dir.join("events.ndjson");
        let out = weiquan(&["audit", events.to_str().expect("utf-8 path")], None);
        assert_eq!(out.status.code(), Some(0), "{}", dir.display());
        let (want, want_lines) = expected(&dir);
        assert_eq!(pairs(&ndjson(&out.stdout)), want, "findings of {}", dir.display());
        let got_lines: Vec<u64> = ndjson(&out.stderr)
            .iter()
            .map(|r| r["line"].as_u64().expect("line"))
            .collect();
        assert_eq!(got_lines, want_lines, "rejected lines of {}", dir.display());
    }
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

/// The project's copy of the cases must not drift from the shared originals.
#[test]
fn project_cases_equal_the_shared_cases_when_present() {
    let shared = root().join("../shared/cases");
    if !shared.exists() {
        eprintln!("../shared/cases not present here; nothing to compare");
        return;
    }
    let list = |base: &Path| -> BTreeSet<String> {
        walk(base)
            .into_iter()
            .map(|p| p.strip_prefix(base).expect("under base").to_string_lossy().into_owned())
            .collect()
    };
    let ours = root().join("tests/cases");
    assert_eq!(list(&ours), list(&shared), "same files");
    for rel in list(&shared) {
        assert_eq!(
            std::fs::read(ours.join(&rel)).expect("ours"),
            std::fs::read(shared.join(&rel)).expect("shared"),
            "{rel} differs: copy ../shared/cases again"
        );
    }
}

/// The project's copy of the spec must not drift from the shared contract either.
#[test]
fn project_spec_equals_the_shared_spec_when_present() {
    let shared = root().join("../shared/spec");
    if !shared.exists() {
        eprintln!("../shared/spec not present here; nothing to compare");
        return;
    }
    for name in ["events.md", "rulebook.md"] {
        assert_eq!(
            std::fs::read(root().join("docs/spec").join(name)).expect("ours"),
            std::fs::read(shared.join(name)).expect("shared"),
            "docs/spec/{name} differs from ../shared/spec/{name}: copy it again"
        );
    }
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
