//! Simulated platforms with known violations: the audit must find exactly them.

use std::collections::BTreeSet;
use std::sync::Arc;
use weiquan_app::{Auditor, Sink};
use weiquan_engine::{Finding, RuleId, Rulebook};
use weiquan_events::Reject;
use weiquan_sim::{simulate, Config, Profile};

/// `(rule, subject)` pairs.
type PairSet = BTreeSet<(String, String)>;

#[derive(Default)]
struct Pairs {
    found: PairSet,
    rejects: usize,
}

impl Sink for Pairs {
    fn finding(&mut self, f: Finding) -> std::io::Result<()> {
        self.found.insert((f.rule.to_string(), f.subject));
        Ok(())
    }
    fn reject(&mut self, _: Reject) -> std::io::Result<()> {
        self.rejects += 1;
        Ok(())
    }
}

/// The planted labels and what the audit found.
fn audit(cfg: &Config) -> (PairSet, PairSet) {
    let sim = simulate(cfg);
    let text = sim.lines.join("\n");
    let mut sink = Pairs::default();
    let mut auditor = Auditor::new(Arc::new(Rulebook::builtin()));
    auditor
        .read(text.as_bytes(), None, &mut sink, &mut |_| {})
        .expect("in memory");
    assert_eq!(sink.rejects, 0, "the simulator writes only valid events");
    (sim.labels, sink.found)
}

fn config(seed: u64, profile: Profile, violation_rate: f64) -> Config {
    Config {
        merchants: 45,
        consumers: 4000,
        days: 16,
        seed,
        violation_rate,
        profile,
        orders_per_day: 4.0,
    }
}

#[test]
fn recall_and_precision_are_exactly_one_for_every_rule() {
    for (seed, profile) in [
        (1, Profile::Normal),
        (2, Profile::Normal),
        (3, Profile::Double11),
        (4, Profile::Double11),
    ] {
        let (labels, found) = audit(&config(seed, profile, 0.9));
        let rules: BTreeSet<&str> = labels.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(
            rules.len(),
            RuleId::ALL.len(),
            "seed {seed}: every rule is planted: {rules:?}"
        );
        let missed: Vec<_> = labels.difference(&found).collect();
        let false_alarms: Vec<_> = found.difference(&labels).collect();
        assert!(
            missed.is_empty() && false_alarms.is_empty(),
            "seed {seed} {profile:?}: missed {missed:?}, false alarms {false_alarms:?}"
        );
    }
}

#[test]
fn an_honest_platform_gives_no_findings() {
    for profile in [Profile::Normal, Profile::Double11] {
        let (labels, found) = audit(&config(9, profile, 0.0));
        assert!(labels.is_empty());
        assert!(
            found.is_empty(),
            "{profile:?}: false alarms on honest behaviour: {found:?}"
        );
    }
}

#[test]
fn same_seed_same_bytes() {
    let a = simulate(&config(5, Profile::Double11, 0.2));
    let b = simulate(&config(5, Profile::Double11, 0.2));
    assert_eq!(a.lines, b.lines);
    let c = simulate(&config(6, Profile::Double11, 0.2));
    assert_ne!(a.lines, c.lines);
}

/// Every finding of an audit, as JSON (every field), and the subjects its engine holds at the end.
fn audit_all(lines: &str, rules: Rulebook) -> (Vec<String>, usize) {
    struct All(Vec<String>);
    impl Sink for All {
        fn finding(&mut self, f: Finding) -> std::io::Result<()> {
            self.0.push(format!("{f:?}"));
            Ok(())
        }
        fn reject(&mut self, r: Reject) -> std::io::Result<()> {
            panic!("the simulator writes only valid events: {r:?}");
        }
    }
    let mut sink = All(Vec::new());
    let mut auditor = Auditor::new(Arc::new(rules));
    auditor
        .read(lines.as_bytes(), None, &mut sink, &mut |_| {})
        .expect("in memory");
    let held = auditor.engine().subjects_held();
    auditor.finish(None, &mut sink).expect("in memory");
    (sink.0, held)
}

/// Retention (docs/messy-streams.md, rule 12) changes no finding on a
/// platform whose events about a subject all come within the horizon, and
/// the engine then holds only the subjects of its last months: a year of a
/// simulated platform, audited keeping every subject and forgetting them
/// after 180 and after 90 days, gives the same findings in the same order.
#[test]
fn retention_forgets_subjects_and_changes_no_finding() {
    let sim = simulate(&Config {
        merchants: 12,
        consumers: 2000,
        days: 365,
        seed: 19,
        violation_rate: 0.3,
        profile: Profile::Normal,
        orders_per_day: 3.0,
    });
    let lines = sim.lines.join("\n");
    let rules =
        |days: u32| Rulebook::with_overrides(&format!("[thresholds]\nretention_days = {days}\n")).expect("valid");
    let (kept, held_all) = audit_all(&lines, rules(0));
    assert!(kept.len() > 20, "a platform with violations: {} findings", kept.len());
    for days in [180, 90] {
        let (found, held) = audit_all(&lines, rules(days));
        let lost: Vec<_> = kept.iter().filter(|f| !found.contains(f)).collect();
        let new: Vec<_> = found.iter().filter(|f| !kept.contains(f)).collect();
        assert!(
            found == kept,
            "retention_days = {days} changed the findings: lost {lost:#?}, new {new:#?}"
        );
        // A year of subjects against the last `days` (plus windows): well under half.
        assert!(
            held * 2 < held_all,
            "retention_days = {days} holds {held} of {held_all} subjects"
        );
    }
}
