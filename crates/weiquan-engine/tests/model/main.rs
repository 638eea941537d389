#![allow(missing_docs)]
//! The engine against a plain reference model of the rulebook, on adversarial
//! streams: small id pools so that events collide; times out of order, equal
//! and jumping months; repeated ids and creations; events before their
//! subject's creation; redraws, late commitments and repeat winners; values on
//! and one unit either side of every threshold; optional fields absent or
//! null; a few malformed lines. Both must report the same findings (rule,
//! subject, merchant, time, evidence, in the same order) after every event.
//!
//! `PROPTEST_CASES` sets how many streams (default 1,500; a release run of a
//! million is reported in BENCHMARKS.md).

mod reference;
mod streams;

use proptest::prelude::*;
use reference::{Model, Out};
use std::collections::HashSet;
use std::sync::Arc;
use streams::*;
use weiquan_engine::{Engine, Finding, Rulebook};
use weiquan_events::{parse_event, Time, DAY_MS};

/// The engine's findings as the model reports them (Messy streams 1: never without evidence).
fn engine_out(found: Vec<Finding>) -> Vec<Out> {
    found
        .into_iter()
        .map(|f| {
            assert!(!f.events.is_empty(), "{f:?} has no evidence");
            Out {
                rule: f.rule.as_str(),
                subject: f.subject,
                merchant: f.merchant,
                at: f.at.to_string(),
                events: f.events,
            }
        })
        .collect()
}

/// Runs a stream through both; the first difference, with the lines so far, is the error.
fn compare(lines: &[String], rules: &Rulebook, as_of: Option<i64>) -> Result<usize, String> {
    let mut engine = Engine::new(Arc::new(rules.clone()));
    let mut model = Model::new(rules.clone());
    let mut seen = HashSet::new();
    let mut findings = 0;
    for (i, line) in lines.iter().enumerate() {
        let Ok(ev) = parse_event(line) else { continue };
        if !seen.insert(ev.id.to_string()) {
            continue;
        }
        let got = engine_out(engine.apply(&ev));
        let want = model.apply(&ev);
        if got != want {
            return Err(format!(
                "after line {}:\n{}\nengine: {got:#?}\nmodel:  {want:#?}",
                i + 1,
                lines[..=i].join("\n")
            ));
        }
        findings += got.len();
    }
    if let Some(end) = as_of {
        let to = Time::from_unix_ms(BASE_MS + end, 8 * 3600);
        let got = engine_out(engine.advance(to));
        let want = model.advance(to);
        if got != want {
            return Err(format!(
                "at --as-of:\n{}\nengine: {got:#?}\nmodel:  {want:#?}",
                lines.join("\n")
            ));
        }
        findings += got.len();
    }
    Ok(findings)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1500)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 20_000, ..ProptestConfig::default() })]

    /// The engine and the reference model agree on every adversarial stream.
    #[test]
    fn engine_equals_the_reference_model(steps in proptest::collection::vec(step(), 1..90), as_of in opt(0i64..400 * DAY_MS)) {
        let lines = render(&steps);
        let rules = Rulebook::builtin();
        if let Err(diff) = compare(&lines, &rules, as_of) {
            prop_assert!(false, "{}", diff);
        }
    }

    /// The same with a rulebook that sets other thresholds (and the host registry required).
    #[test]
    fn engine_equals_the_model_under_other_thresholds(steps in proptest::collection::vec(step(), 1..60)) {
        let lines = render(&steps);
        let rules = Rulebook::with_overrides(
            "[thresholds]\nreference_window_days = 30\nship_days = 1\nhost_registry_required = true\nquote_window_minutes = 1440\nretention_days = 90\n[credit]\nblacklist_high_findings = 2\nblacklist_window_days = 7\n",
        ).expect("valid overrides");
        if let Err(diff) = compare(&lines, &rules, Some(500 * DAY_MS)) {
            prop_assert!(false, "{}", diff);
        }
    }
}

/// Everything an engine shows about the subjects of the generator's pools,
/// as text: two engines that print the same remember the same.
fn views(engine: &Engine) -> String {
    let mut out = format!("{:?}\n{:?}\n", engine.standings(), engine.watchlist());
    out += &format!("{:?}\n", engine.complaints().collect::<Vec<_>>());
    for l in LOTTERIES {
        out += &format!("{:?}\n", engine.lottery(l));
    }
    for h in HOSTS {
        out += &format!("{:?}\n", engine.host(h));
    }
    for p in PEOPLE {
        out += &format!("{:?}\n", engine.paylater(p));
    }
    for o in ORDERS {
        out += &format!("{:?}\n", engine.placement_of(o));
    }
    out
}

/// Runs a stream through an engine that never stops and one that is
/// snapshotted and restored after every event: every event's findings, and
/// what both show at the end, must be the same.
fn compare_restored(lines: &[String], rules: &Rulebook, as_of: Option<i64>) -> Result<(), String> {
    let rules = Arc::new(rules.clone());
    let mut steady = Engine::new(rules.clone());
    let mut restored = Engine::new(rules.clone());
    let mut seen = HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        let Ok(ev) = parse_event(line) else { continue };
        if !seen.insert(ev.id.to_string()) {
            continue;
        }
        restored = Engine::restore(rules.clone(), &restored.snapshot().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let (want, got) = (steady.apply(&ev), restored.apply(&ev));
        if got != want {
            return Err(format!(
                "after line {}:\n{}\nrestored: {got:#?}\nsteady: {want:#?}",
                i + 1,
                lines[..=i].join("\n")
            ));
        }
    }
    if let Some(end) = as_of {
        restored = Engine::restore(rules.clone(), &restored.snapshot().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let to = Time::from_unix_ms(BASE_MS + end, 8 * 3600);
        let (want, got) = (steady.advance(to), restored.advance(to));
        if got != want {
            return Err(format!(
                "at --as-of:\n{}\nrestored: {got:#?}\nsteady: {want:#?}",
                lines.join("\n")
            ));
        }
    }
    let (want, got) = (views(&steady), views(&restored));
    if got != want {
        return Err(format!(
            "views differ:\n{}\nrestored: {got}\nsteady: {want}",
            lines.join("\n")
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 3, max_shrink_iters: 20_000, ..ProptestConfig::default() })]

    /// An engine restored from its snapshot after every event finds and shows
    /// what one never stopped does, on every adversarial stream.
    #[test]
    fn a_restored_engine_equals_one_never_stopped(steps in proptest::collection::vec(step(), 1..90), as_of in opt(0i64..400 * DAY_MS)) {
        let lines = render(&steps);
        if let Err(diff) = compare_restored(&lines, &Rulebook::builtin(), as_of) {
            prop_assert!(false, "{}", diff);
        }
    }
}

/// The messy-stream repros of spec 1.1 give the model the same findings as the engine
/// (and so the generator's kind of stream is checked on hand-made ones too).
#[test]
fn model_and_engine_agree_on_every_messy_repro() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/repros/messy");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("repros present") {
        let path = e.expect("entry").path();
        if path.extension().is_some_and(|x| x == "ndjson") {
            let text = std::fs::read_to_string(&path).expect("readable");
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            if let Err(diff) = compare(&lines, &Rulebook::builtin(), None) {
                panic!("{}: {diff}", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 23);
}

/// The generator reaches the rules it is meant to: a sample of streams fires every rule family.
#[test]
fn the_generator_reaches_every_rule() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut fired: HashSet<&'static str> = HashSet::new();
    let rules = Rulebook::builtin();
    for _ in 0..3000 {
        let steps = proptest::collection::vec(step(), 1..90)
            .new_tree(&mut runner)
            .expect("tree")
            .current();
        let mut engine = Engine::new(Arc::new(rules.clone()));
        for line in render(&steps) {
            if let Ok(ev) = parse_event(&line) {
                fired.extend(engine.apply(&ev).iter().map(|f| f.rule.as_str()));
            }
        }
    }
    let missing: Vec<&str> = weiquan_engine::RuleId::ALL
        .iter()
        .map(|r| r.as_str())
        .filter(|r| !fired.contains(r))
        .collect();
    assert!(missing.is_empty(), "rules the generator never fires: {missing:?}");
}
