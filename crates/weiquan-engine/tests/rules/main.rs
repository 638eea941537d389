#![allow(missing_docs)]
//! Every rule's boundaries: for each rule a stream where it fires and one
//! where it must not. Streams are built with [`Stream`], which fills in `v`,
//! `id` and the year and offset of times.

mod grades;
mod lottery;
mod market;
mod merchants;
mod messy;
mod presale;
mod retention;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use weiquan_engine::{Engine, Finding, Rulebook};
use weiquan_events::{parse_event, Time};

/// `"11-01 08:00"` → `"2026-11-01T08:00:00+08:00"`; a full RFC 3339 time stays as it is.
pub fn t(short: &str) -> String {
    if short.contains('T') {
        return short.to_owned();
    }
    let (date, time) = short.split_once(' ').unwrap_or((short, "00:00"));
    format!("2026-{date}T{time}:00+08:00")
}

/// A valid, distinct 统一社会信用代码 for each `n`.
pub fn valid_uscc(n: u32) -> String {
    let prefix = format!("91330100MA{n:07}");
    "0123456789ABCDEFGHJKLMNPQRTUWXY"
        .chars()
        .map(|c| format!("{prefix}{c}"))
        .find(|c| weiquan_engine::is_valid_uscc(c))
        .expect("one check character fits")
}

/// A stream of events under construction.
#[derive(Default, Clone)]
pub struct Stream {
    lines: Vec<String>,
    as_of: Option<String>,
    rules: Option<String>,
}

impl Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// A registered and verified merchant with a valid credit code of its own.
    pub fn merchant(self, m: &str) -> Self {
        let uscc = valid_uscc(self.lines.len() as u32);
        self.ev(
            "merchant.registered",
            "10-01",
            json!({"merchant": m, "name": "店", "uscc": uscc, "channels": ["store"]}),
        )
        .ev(
            "merchant.verified",
            "10-01",
            json!({"merchant": m, "method": "manual", "by": "platform"}),
        )
    }

    /// Appends an event of `ty` at `at` (short form) with `fields`.
    pub fn ev(mut self, ty: &str, at: &str, fields: Value) -> Self {
        let mut obj = json!({"v": 1, "id": format!("e{}", self.lines.len() + 1), "type": ty, "at": t(at)});
        if let (Some(o), Value::Object(f)) = (obj.as_object_mut(), fields) {
            o.extend(f);
        }
        self.lines.push(obj.to_string());
        self
    }

    /// A clock tick at `at`.
    pub fn tick(self, at: &str) -> Self {
        self.ev("clock.tick", at, json!({}))
    }

    /// Rulebook overrides (TOML).
    pub fn rules(mut self, toml: &str) -> Self {
        self.rules = Some(toml.to_owned());
        self
    }

    /// Final clock.
    pub fn as_of(mut self, at: &str) -> Self {
        self.as_of = Some(t(at));
        self
    }

    /// Every finding, in order.
    pub fn run(&self) -> Vec<Finding> {
        self.run_with_engine().0
    }

    /// Every finding, in order, and the engine they leave behind (for its views).
    pub fn run_with_engine(&self) -> (Vec<Finding>, Engine) {
        let rules = match &self.rules {
            Some(r) => Rulebook::with_overrides(r).expect("test rules are valid"),
            None => Rulebook::builtin(),
        };
        let mut engine = Engine::new(Arc::new(rules));
        let mut out = Vec::new();
        for line in &self.lines {
            let ev = parse_event(line).unwrap_or_else(|e| panic!("test event {line} is invalid: {e}"));
            out.extend(engine.apply(&ev));
        }
        if let Some(at) = &self.as_of {
            out.extend(engine.advance(Time::parse(at).expect("valid as_of")));
        }
        (out, engine)
    }

    /// The set of `(rule, subject)` pairs.
    pub fn pairs(&self) -> BTreeSet<(String, String)> {
        self.run()
            .into_iter()
            .map(|f| (f.rule.to_string(), f.subject))
            .collect()
    }

    /// Whether `rule` fired on `subject`.
    pub fn fires(&self, rule: &str, subject: &str) -> bool {
        self.pairs().contains(&(rule.to_owned(), subject.to_owned()))
    }

    /// Whether `rule` fired at all.
    pub fn fires_any(&self, rule: &str) -> bool {
        self.pairs().iter().any(|(r, _)| r == rule)
    }
}

#[test]
fn same_stream_gives_identical_findings() {
    let s = presale::base()
        .ev(
            "presale.deposit_paid",
            "11-02",
            json!({"campaign": "c1", "order": "o1", "consumer": "u1", "deposit_fen": 5000}),
        )
        .ev(
            "presale.changed",
            "11-03",
            json!({"campaign": "c1", "price_fen": 31000}),
        )
        .tick("12-30");
    let a = format!("{:?}", s.run());
    let b = format!("{:?}", s.run());
    assert_eq!(a, b);
    assert!(!s.run().is_empty());
}

#[test]
fn deadlines_fire_before_the_event_that_passes_them_earliest_first() {
    let s = Stream::new()
        .merchant("m1")
        .ev("order.placed", "11-01 08:00", json!({"order": "o2", "merchant": "m1", "consumer": "u", "sku": "s", "qty": 1, "amount_fen": 100, "payment": "standard"}))
        .ev("order.placed", "11-01 07:00", json!({"order": "o1", "merchant": "m1", "consumer": "u", "sku": "s", "qty": 1, "amount_fen": 100, "payment": "standard"}))
        .ev("listing.published", "11-05", json!({"merchant": "m1", "sku": "s9", "title": "最佳 台灯", "price_fen": 100}));
    let order: Vec<(String, String)> = s.run().into_iter().map(|f| (f.rule.to_string(), f.subject)).collect();
    assert_eq!(
        order,
        [("MC-06", "order:o1"), ("MC-06", "order:o2"), ("MK-01", "sku:m1/s9")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let at: Vec<String> = s.run().iter().map(|f| f.at.to_string()).collect();
    assert_eq!(at[0], t("11-03 07:00"), "a deadline finding is dated at its deadline");
}

#[test]
fn a_late_arriving_event_whose_deadline_already_passed_fires_right_after_it() {
    let s = Stream::new()
        .merchant("m1")
        .tick("11-20")
        .ev("order.placed", "11-01", json!({"order": "o1", "merchant": "m1", "consumer": "u", "sku": "s", "qty": 1, "amount_fen": 100, "payment": "standard"}));
    let f = s.run();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].rule.to_string(), "MC-06");
    assert_eq!(f[0].at.to_string(), t("11-03"));
}
