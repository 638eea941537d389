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
