//! The ledger from the command line: write, read out, verify, tamper.

use crate::{succeeds, weiquan};

fn s(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The ledger `run.db` written into `dir` by `weiquan audit` of the pre-sale
/// case (with `extra` arguments), and its public key's path.
fn audited(dir: &std::path::Path, extra: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let db = dir.join("run.db");
    let mut args = vec!["audit", "tests/cases/presale/events.ndjson", "--ledger", s(&db)];
    args.extend_from_slice(extra);
    succeeds(&args);
    (db.clone(), dir.join("run.db.key.pub"))
}

#[test]
fn audit_writes_a_ledger_that_verifies_and_detects_tampering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, public) = audited(dir.path(), &[]);
    assert!(public.exists());
    let ok = succeeds(&["verify", "log", s(&db), "--pub", s(&public)]);
    // 14 events and 9 findings.
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("23 leaves"),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    // A finding leaf names its evidence by leaf index.
    let receipt = weiquan(&["ledger", "receipt", s(&db), "18"], None);
    let r: serde_json::Value = serde_json::from_slice(&receipt.stdout).expect("receipt json");
    let leaf: serde_json::Value = serde_json::from_str(r["leaf"].as_str().expect("leaf")).expect("leaf json");
    assert_eq!(leaf["type"], "weiquan.finding");
    assert!(leaf["evidence"].as_array().is_some_and(|e| !e.is_empty()), "{leaf}");

    // A second audit must not append to an existing ledger.
    let again = weiquan(
        &["audit", "tests/cases/presale/events.ndjson", "--ledger", s(&db)],
        None,
    );
    assert_eq!(again.status.code(), Some(2));

    let conn = rusqlite::Connection::open(&db).expect("open");
    let mut data: Vec<u8> = conn
        .query_row("SELECT data FROM ledger_leaves WHERE idx = 4", [], |r| r.get(0))
        .expect("leaf 4");
    let last = data.len() - 2;
    data[last] ^= 0x01;
    conn.execute("UPDATE ledger_leaves SET data = ?1 WHERE idx = 4", [data])
        .expect("tamper");
    drop(conn);
    let bad = weiquan(&["verify", "log", s(&db), "--pub", s(&public)], None);
    assert_eq!(bad.status.code(), Some(3));
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(msg.contains("leaf 4") && msg.contains("level-0"), "{msg}");
}

/// An event whose line has no canonical JSON form (a number beyond a double
/// in a producer's own field) is accepted, as the spec says of extra fields,
/// and logged as a stand-in: the audit does not stop, the log verifies and
/// says so, and the stand-in carries the line, which a backtest replays.
#[test]
fn an_event_without_a_canonical_form_is_logged_as_a_stand_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, events) = (dir.path().join("run.db"), dir.path().join("events.ndjson"));
    let odd = r#"{"v": 1, "id": "odd", "type": "clock.tick", "at": "2026-11-01T00:00:00+08:00", "x": 1e400}"#;
    std::fs::write(&events, format!("{odd}\n")).expect("written");
    succeeds(&["audit", s(&events), "--ledger", s(&db)]);
    let public = dir.path().join("run.db.key.pub");
    let ok = succeeds(&["verify", "log", s(&db), "--pub", s(&public)]);
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(
        said.contains("1 leaves rehashed") && said.contains("1 more events are logged as stand-ins"),
        "{said}"
    );
    let receipt = weiquan(&["ledger", "receipt", s(&db), "0"], None);
    let r: serde_json::Value = serde_json::from_slice(&receipt.stdout).expect("receipt json");
    let leaf: serde_json::Value = serde_json::from_str(r["leaf"].as_str().expect("leaf")).expect("leaf json");
    assert_eq!(
        (&leaf["type"], &leaf["id"]),
        (&"weiquan.event_stand_in".into(), &"odd".into()),
        "{leaf}"
    );
    assert_eq!(leaf["line"], odd, "{leaf}");
    std::fs::write(dir.path().join("r.json"), &receipt.stdout).expect("written");
    let checked = weiquan(
        &["verify", "receipt", s(&dir.path().join("r.json")), "--pub", s(&public)],
        None,
    );
    assert!(String::from_utf8_lossy(&checked.stdout).starts_with("valid: leaf 0 (an event's stand-in)"));
    let rules = dir.path().join("same.toml");
    std::fs::write(&rules, "").expect("written");
    let backtest = weiquan(&["backtest", "--ledger", s(&db), "--rules", s(&rules)], None);
    let told = |out: &[u8]| String::from_utf8_lossy(out).contains("1 events replayed");
    assert!(
        told(&backtest.stdout) || told(&backtest.stderr),
        "{}{}",
        String::from_utf8_lossy(&backtest.stdout),
        String::from_utf8_lossy(&backtest.stderr)
    );
}

#[test]
fn receipts_and_consistency_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    let made = weiquan(
        &[
            "simulate",
            "--merchants",
            "12",
            "--days",
            "6",
            "--orders-per-day",
            "20",
            "--out",
            s(&sim),
        ],
        None,
    );
    assert_eq!(made.status.code(), Some(0));
    let db = dir.path().join("run.db");
    let key = dir.path().join("k");
    assert_eq!(
        weiquan(&["keygen", "--out", s(&key), "--name", "weiquan.test/cli"], None)
            .status
            .code(),
        Some(0)
    );
    let public = dir.path().join("k.pub");
    succeeds(&[
        "audit",
        s(&sim.join("events.ndjson")),
        "--ledger",
        s(&db),
        "--key",
        s(&key),
    ]);

    let old_cp = dir.path().join("old.cp");
    let new_cp = dir.path().join("new.cp");
    let proof = dir.path().join("proof.json");
    let write = |args: &[&str], to: &std::path::Path| {
        let o = succeeds(args);
        std::fs::write(to, &o.stdout).expect("write");
    };
    write(&["ledger", "checkpoint", s(&db), "--size", "4096"], &old_cp);
    write(&["ledger", "checkpoint", s(&db)], &new_cp);
    // A blank line after the note, as `jq -r .checkpoint` of a receipt leaves: not the
    // note's, and no reason to call the checkpoint malformed.
    let mut padded = std::fs::read_to_string(&old_cp).expect("old.cp");
    padded.push_str("\n\n");
    std::fs::write(&old_cp, padded).expect("write");
    write(&["ledger", "proof", s(&db), "--old", "4096"], &proof);
    succeeds(&[
        "verify",
        "consistency",
        s(&old_cp),
        s(&new_cp),
        "--proof",
        s(&proof),
        "--pub",
        s(&public),
    ]);

    // Swapped checkpoints: the proof is for other sizes.
    let swapped = weiquan(
        &[
            "verify",
            "consistency",
            s(&new_cp),
            s(&old_cp),
            "--proof",
            s(&proof),
            "--pub",
            s(&public),
        ],
        None,
    );
    assert_eq!(swapped.status.code(), Some(3));

    let receipt = dir.path().join("r.json");
    write(&["ledger", "receipt", s(&db), "4100"], &receipt);
    assert_eq!(
        weiquan(&["verify", "receipt", s(&receipt), "--pub", s(&public)], None)
            .status
            .code(),
        Some(0)
    );
    let other_key = dir.path().join("other");
    weiquan(&["keygen", "--out", s(&other_key)], None);
    let wrong = weiquan(
        &[
            "verify",
            "receipt",
            s(&receipt),
            "--pub",
            s(&dir.path().join("other.pub")),
        ],
        None,
    );
    assert_eq!(
        wrong.status.code(),
        Some(3),
        "a receipt does not verify with another log's key"
    );
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("signature"));
}

#[cfg(unix)]
#[test]
fn keygen_writes_a_private_key_only_its_owner_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k");
    assert_eq!(weiquan(&["keygen", "--out", s(&key)], None).status.code(), Some(0));
    assert_eq!(
        std::fs::metadata(&key).expect("key").permissions().mode() & 0o777,
        0o600
    );
    let public = std::fs::read_to_string(dir.path().join("k.pub")).expect("pub");
    assert!(public.starts_with("weiquan.local/ledger+"), "{public}");
    assert_eq!(
        weiquan(&["keygen", "--out", s(&key)], None).status.code(),
        Some(1),
        "never overwrites a key"
    );
    assert_eq!(
        weiquan(
            &["keygen", "--out", s(&dir.path().join("x")), "--name", "has space"],
            None
        )
        .status
        .code(),
        Some(2)
    );
}

/// `weiquan backtest`: a tighter deposit cap adds PS-06 for the campaign whose
/// deposit is 16.7% of its price; a looser cap and a longer pre-sale limit
/// remove PS-06 and PS-03 for the one at 33% and 50 days; the same rules change nothing.
#[test]
fn backtest_adds_and_removes_exactly_what_the_changed_thresholds_predict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("run.db");
    let db = db.to_str().expect("utf-8");
    let case = crate::root().join("tests/cases/presale/events.ndjson");
    let out = crate::weiquan(&["audit", case.to_str().expect("utf-8"), "--ledger", db], None);
    assert_eq!(out.status.code(), Some(0));
    let backtest = |rules: &str| {
        let path = dir.path().join("rules.toml");
        std::fs::write(&path, rules).expect("write");
        let out = crate::weiquan(
            &[
                "backtest",
                "--ledger",
                db,
                "--rules",
                path.to_str().expect("utf-8"),
                "--format",
                "ndjson",
            ],
            None,
        );
        let changes: std::collections::BTreeSet<(String, String, String)> = crate::ndjson(&out.stdout)
            .iter()
            .map(|c| {
                let s = |k: &str| c[k].as_str().expect(k).to_owned();
                (s("change"), s("rule"), s("subject"))
            })
            .collect();
        (out.status.code(), changes)
    };
    let change = |c: &str, r: &str, s: &str| (c.to_owned(), r.to_owned(), s.to_owned());
    assert_eq!(
        backtest("[thresholds]\ndeposit_cap_percent = 10.0\n"),
        (Some(3), [change("added", "PS-06", "campaign:c1")].into())
    );
    assert_eq!(
        backtest("[thresholds]\ndeposit_cap_percent = 35.0\npresale_max_days = 365\n"),
        (
            Some(3),
            [
                change("removed", "PS-03", "campaign:c2"),
                change("removed", "PS-06", "campaign:c2")
            ]
            .into()
        )
    );
    assert_eq!(backtest(""), (Some(0), Default::default()));
    let out = crate::weiquan(&["backtest", "--ledger", db, "--rules", "/nonexistent.toml"], None);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read rules file /nonexistent.toml"));
}

/// Commands that read a ledger (`ledger`, `verify`) change nothing in or
/// about the file they are given: one that is not a ledger is refused as
/// such, not turned into an empty one and made private; a folder is named.
#[test]
fn reading_a_ledger_changes_nothing_about_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let notes = dir.path().join("notes.txt");
    for content in [&b""[..], b"{\"v\":1}\n"] {
        std::fs::write(&notes, content).expect("written");
        std::fs::set_permissions(&notes, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        for args in [&["ledger", "receipt"][..], &["ledger", "checkpoint"]] {
            let mut args = args.to_vec();
            args.push(s(&notes));
            if args[1] == "receipt" {
                args.push("0");
            }
            let out = weiquan(&args, None);
            let said = String::from_utf8_lossy(&out.stderr);
            assert_ne!(out.status.code(), Some(0), "{args:?}: {said}");
            assert!(said.contains("not a weiquan ledger"), "{args:?}: {said}");
            assert_eq!(
                std::fs::read(&notes).expect("read"),
                content,
                "{args:?}: the file is as it was"
            );
            let mode = std::fs::metadata(&notes).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o644, "{args:?}: its mode is as it was");
        }
    }
    let out = weiquan(&["ledger", "checkpoint", s(dir.path())], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("it is a folder"));
    // A real ledger reads, and its file is unchanged by reading it.
    let (db, public) = audited(dir.path(), &[]);
    let before = std::fs::read(&db).expect("read");
    for args in [
        vec!["ledger", "checkpoint", s(&db)],
        vec!["ledger", "receipt", s(&db), "3"],
        vec!["verify", "log", s(&db), "--pub", s(&public)],
    ] {
        succeeds(&args);
    }
    assert_eq!(
        std::fs::read(&db).expect("read"),
        before,
        "the ledger file is as it was"
    );
}

/// Writers store leaves and their checkpoint together, so a ledger whose
/// checkpoints were removed (or leaves added past them) does not verify,
/// however well its leaves rehash.
#[test]
fn a_ledger_without_checkpoints_over_its_leaves_does_not_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, public) = audited(dir.path(), &[]);
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute("DELETE FROM ledger_leaves WHERE idx >= 20", [])
        .expect("cut");
    conn.execute("DELETE FROM ledger_checkpoints", []).expect("stripped");
    drop(conn);
    let out = weiquan(&["verify", "log", s(&db), "--pub", s(&public)], None);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("leaves 0 to 20 have no signed checkpoint"), "{said}");
    // A ledger cut short is damaged: not valid either, not "cannot read".
    let whole = std::fs::read(&db).expect("read");
    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("written");
    let out = weiquan(&["verify", "log", s(&cut), "--pub", s(&public)], None);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("NOT VALID") && said.contains("damaged"), "{said}");
}

/// `keygen` never overwrites a key, nor the public key beside it, and a
/// pair it cannot write whole leaves no half behind.
#[test]
fn keygen_overwrites_neither_half_of_a_pair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k");
    std::fs::write(dir.path().join("k.pub"), "precious\n").expect("written");
    let out = weiquan(&["keygen", "--out", s(&key)], None);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("k.pub: it exists"), "{said}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("k.pub")).expect("read"),
        "precious\n"
    );
    assert!(!key.exists(), "no private half left behind");
    let out = weiquan(&["keygen", "--out", s(&dir.path().join("no/such/k"))], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("its folder does not exist"));
}

/// An audit under rules of its own records them in its ledger, as a server
/// does: a backtest under the same rules finds no change and names them,
/// where it used to say "the built-in rulebook".
#[test]
fn an_audit_under_its_own_rules_records_them_for_backtest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("looser.toml");
    std::fs::write(&rules, "[thresholds]\nship_days = 30\n").expect("written");
    let (db, public) = audited(dir.path(), &["--rules", s(&rules)]);
    let out = succeeds(&[
        "backtest",
        "--ledger",
        s(&db),
        "--rules",
        s(&rules),
        "--format",
        "table",
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("recorded under rulebook "), "{said}");
    let verify = weiquan(&["verify", "log", s(&db), "--pub", s(&public)], None);
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("1 rulebook records"),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// The ledger does not record an audit's `--as-of`: a backtest given the same
/// `--as-of` replays exactly what was recorded, where one without it reports
/// the findings that final clock decided as removed.
#[test]
fn a_backtest_takes_the_recorded_runs_as_of() {
    let dir = tempfile::tempdir().expect("tempdir");
    let case = std::fs::read_to_string(crate::root().join("tests/cases/presale/events.ndjson")).expect("case");
    let untick: String = case
        .lines()
        .filter(|l| !l.contains("clock.tick"))
        .map(|l| format!("{l}\n"))
        .collect();
    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, untick).expect("written");
    let db = dir.path().join("run.db");
    let as_of = "2026-12-31T00:00:00+08:00";
    succeeds(&["audit", s(&events), "--as-of", as_of, "--ledger", s(&db)]);
    let same = dir.path().join("same.toml");
    std::fs::write(&same, "").expect("written");
    let backtest = |extra: &[&str]| {
        let mut args = vec![
            "backtest",
            "--ledger",
            s(&db),
            "--rules",
            s(&same),
            "--format",
            "ndjson",
        ];
        args.extend_from_slice(extra);
        weiquan(&args, None)
    };
    let without = backtest(&[]);
    assert_eq!(
        without.status.code(),
        Some(3),
        "the as-of's findings are missing without it"
    );
    assert!(crate::ndjson(&without.stdout).iter().all(|c| c["change"] == "removed"));
    let with = backtest(&["--as-of", as_of]);
    assert_eq!(with.status.code(), Some(0), "{}", String::from_utf8_lossy(&with.stdout));
}
