//! Command-line behaviour: exit codes, options, output formats.

use crate::{ndjson, succeeds, weiquan};

#[test]
fn unreadable_file_exits_1_naming_it() {
    let out = weiquan(
        &["audit", "tests/cases/presale/events.ndjson", "no/such/file.ndjson"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/file.ndjson"));
    assert!(out.stdout.is_empty(), "nothing is audited when an input is missing");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(weiquan(&["audit"], None).status.code(), Some(2));
    assert_eq!(weiquan(&["audit", "x", "--format", "xml"], None).status.code(), Some(2));
    assert_eq!(
        weiquan(&["audit", "x", "--as-of", "tomorrow"], None).status.code(),
        Some(2)
    );
    assert_eq!(weiquan(&["audit", "-", "-"], None).status.code(), Some(2));
}

/// Audits the presale case with a rules file holding `toml`.
fn audit_with_rules(toml: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, toml).expect("write");
    weiquan(
        &[
            "audit",
            "tests/cases/presale/events.ndjson",
            "--rules",
            rules.to_str().expect("utf-8"),
        ],
        None,
    )
}

#[test]
fn bad_rules_file_is_a_usage_error_naming_the_key() {
    let out = audit_with_rules("[thresholds]\nship_days = \"two\"\n");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("thresholds.ship_days"), "{err}");
}

#[test]
fn rules_file_overrides_a_threshold() {
    // With 90 days allowed, campaign c2 (79 days) is no longer over-long.
    let out = audit_with_rules("[thresholds]\npresale_max_days = 90\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(!ndjson(&out.stdout).iter().any(|f| f["rule"] == "PS-03"));
}

#[test]
fn as_of_decides_deadlines_at_the_end() {
    let order = br#"{"v":1,"id":"a","type":"merchant.verified","at":"2026-11-01T00:00:00+08:00","merchant":"m","method":"manual","by":"p"}
{"v":1,"id":"b","type":"order.placed","at":"2026-11-01T00:00:00+08:00","order":"o1","merchant":"m","consumer":"u","sku":"s","qty":1,"amount_fen":1,"payment":"standard"}
"#;
    let without = weiquan(&["audit", "-"], Some(order));
    assert!(ndjson(&without.stdout).is_empty());
    let with = weiquan(&["audit", "-", "--as-of", "2026-11-04T00:00:00+08:00"], Some(order));
    let f = ndjson(&with.stdout);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["rule"], "MC-06");
    assert_eq!(f[0]["at"], "2026-11-03T00:00:00+08:00");
}

#[test]
fn table_format_aligns_columns_and_lang_en_translates() {
    let out = weiquan(
        &[
            "audit",
            "tests/cases/lottery/events.ndjson",
            "--format",
            "table",
            "--lang",
            "en",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("RULE"), "{text}");
    assert!(lines.last().is_some_and(|l| l.ends_with("findings")));
    let col = lines[0].find("SUBJECT").expect("SUBJECT header");
    let width = |s: &str| unicode_width::UnicodeWidthStr::width(s);
    for l in &lines[1..lines.len() - 1] {
        let subject_start = l.find("lottery:").expect("subject column");
        assert_eq!(width(&l[..subject_start]), width(&lines[0][..col]), "aligned: {l}");
        assert!(
            l.contains("Live-stream lottery") && !l.contains("直播抽奖"),
            "English messages: {l}"
        );
    }
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes when stdout is not a terminal"
    );
}

#[test]
fn summary_counts_per_rule_on_stderr() {
    let out = weiquan(&["audit", "tests/cases/bad-input/events.ndjson", "--summary"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 accepted, 1 duplicates ignored, 7 rejected"), "{err}");
    assert!(err.contains("MC-01  high    1"), "{err}");
}

#[test]
fn several_files_are_one_stream_and_rejects_name_their_file() {
    let out = weiquan(
        &[
            "audit",
            "tests/cases/bad-input/events.ndjson",
            "tests/cases/bad-input/events.ndjson",
        ],
        None,
    );
    let rejects = ndjson(&out.stderr);
    assert_eq!(rejects.len(), 14);
    assert_eq!(rejects[0]["file"], "tests/cases/bad-input/events.ndjson");
    // The second copy's good lines are duplicates of the first's: no new findings.
    assert_eq!(ndjson(&out.stdout).len(), 1);
}

#[test]
fn check_validates_without_rules() {
    let good = weiquan(&["check", "tests/cases/presale/events.ndjson"], None);
    assert_eq!(good.status.code(), Some(0));
    assert!(good.stdout.is_empty() && good.stderr.is_empty());
    let bad = weiquan(&["check", "tests/cases/bad-input/events.ndjson"], None);
    assert_eq!(bad.status.code(), Some(3));
    assert_eq!(ndjson(&bad.stderr).len(), 7);
}

#[test]
fn rules_prints_a_rulebook_that_loads_back() {
    let out = weiquan(&["rules"], None);
    assert_eq!(out.status.code(), Some(0));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("all.toml");
    std::fs::write(&path, &out.stdout).expect("write");
    let check = succeeds(&["rules", "--rules", path.to_str().expect("utf-8")]);
    assert!(String::from_utf8_lossy(&check.stdout).contains("MK-01"));
}

#[test]
fn help_explains_with_an_example() {
    let commands: [&[&str]; 20] = [
        &[],
        &["audit"],
        &["check"],
        &["rules"],
        &["simulate"],
        &["serve"],
        &["keys"],
        &["keys", "create"],
        &["demo"],
        &["keygen"],
        &["verify"],
        &["verify", "log"],
        &["verify", "receipt"],
        &["verify", "consistency"],
        &["verify", "draw"],
        &["ledger"],
        &["ledger", "checkpoint"],
        &["ledger", "receipt"],
        &["ledger", "proof"],
        &["serve"],
    ];
    for cmd in commands {
        let args: Vec<&str> = cmd.iter().copied().chain(["--help"]).collect();
        let out = weiquan(&args, None);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Example"),
            "{args:?} has no example"
        );
    }
}

/// Findings of a live stream on standard input come out as its lines arrive,
/// not when a batch fills or the input ends, on one thread or two.
#[test]
fn a_live_stream_gets_findings_before_its_input_ends() {
    use std::io::{BufRead, Write};
    let events = std::fs::read(crate::root().join("tests/cases/presale/events.ndjson")).expect("case file");
    for threads in ["1", "2"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weiquan"))
            .args(["audit", "--threads", threads, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the weiquan binary runs");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(&events).expect("stdin accepts input");
        stdin.flush().expect("flushed");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut first);
            let _ = tx.send(first);
        });
        // Standard input is still open: only lines already sent can have produced this.
        let first = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("--threads {threads}: no finding while the input stays open"));
        let finding: serde_json::Value = serde_json::from_str(&first).expect("a finding as JSON");
        assert!(
            finding["rule"].as_str().is_some_and(|r| r.starts_with("PS-")),
            "{first}"
        );
        drop(stdin);
        assert!(child.wait().expect("exits").success());
    }
}

/// Output that cannot be written (a full disk: /dev/full) is an error that
/// says so, not a silent exit 1 with nothing written.
#[test]
fn output_that_cannot_be_written_is_said() {
    let full = std::fs::File::create("/dev/full").expect("/dev/full opens");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weiquan"))
        .args(["rules"])
        .current_dir(crate::root())
        .stdout(full)
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("writing the output"), "{said}");
}

/// `simulate`'s sizes are checked before anything runs: no panic on zero
/// orders a day, and no run that would fill memory before writing a line.
#[test]
fn simulate_refuses_sizes_it_cannot_honour() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("sim");
    for (flag, value) in [
        ("--orders-per-day", "0"),
        ("--orders-per-day", "nan"),
        ("--merchants", "4294967295"),
        ("--merchants", "0"),
    ] {
        let out = weiquan(
            &["simulate", flag, value, "--out", out_dir.to_str().expect("utf-8")],
            None,
        );
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {said}");
        assert!(said.contains(value), "{flag} {value}: names the value: {said}");
    }
}

/// `rules --rules FILE` prints the merged rulebook as TOML, as its help says:
/// the override is in it, and the output read back as `--rules` is the same rulebook.
#[test]
fn rules_prints_the_merged_rulebook_as_toml_that_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let over = dir.path().join("over.toml");
    std::fs::write(&over, "[thresholds]\nship_days = 3\n").expect("written");
    let first = succeeds(&["rules", "--rules", over.to_str().expect("utf-8")]);
    let merged = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(merged.contains("\nship_days = 3\n"), "{merged}");
    let again = dir.path().join("merged.toml");
    std::fs::write(&again, &merged).expect("written");
    let second = succeeds(&["rules", "--rules", again.to_str().expect("utf-8")]);
    let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&String::from_utf8_lossy(&second.stdout)), body(&merged));
}

/// Inputs and options that cannot work are refused before anything runs:
/// a folder among the inputs prints no findings of the files before it, and
/// an origin that cannot start a checkpoint creates no ledger and no key.
#[test]
fn a_folder_input_or_a_bad_origin_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8");
    let out = weiquan(&["audit", "tests/cases/presale/events.ndjson", d], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no findings before the refusal");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a folder"));
    let db = dir.path().join("o.db");
    for origin in ["bad\nx", "", "two words"] {
        let out = weiquan(
            &[
                "audit",
                "tests/cases/presale/events.ndjson",
                "--ledger",
                db.to_str().expect("utf-8"),
                "--origin",
                origin,
            ],
            None,
        );
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{origin:?}: {said}");
        assert!(said.contains("cannot start a checkpoint"), "{origin:?}: {said}");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "{origin:?}: nothing was created"
        );
    }
}
