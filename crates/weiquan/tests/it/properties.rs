//! Property tests of the whole pipeline: never panics, always deterministic.

use proptest::prelude::*;
use std::sync::Arc;
use weiquan::pipeline::{Auditor, Sink};
use weiquan_engine::{Finding, Lang, Rulebook};
use weiquan_events::Reject;

struct Capture {
    rules: Arc<Rulebook>,
    out: Vec<u8>,
}

impl Sink for Capture {
    fn finding(&mut self, f: Finding) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, &f.record(&self.rules, Lang::En))?;
        self.out.push(b'\n');
        Ok(())
    }
    fn reject(&mut self, r: Reject) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, &r)?;
        self.out.push(b'\n');
        Ok(())
    }
}

fn audit(input: &[u8]) -> Vec<u8> {
    let rules = Arc::new(Rulebook::builtin());
    let mut sink = Capture {
        rules: rules.clone(),
        out: Vec::new(),
    };
    let mut auditor = Auditor::new(rules);
    auditor
        .read(input, None, &mut sink, &mut |_| {})
        .expect("in-memory input");
    sink.out
}

/// Lines drawn from the example cases, so that shuffles exercise real rules.
fn case_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for case in ["presale", "lottery", "merchants", "bnpl-prices", "bad-input"] {
        let text = std::fs::read_to_string(crate::root().join(format!("tests/cases/{case}/events.ndjson")))
            .expect("case file");
        lines.extend(text.lines().map(str::to_owned));
    }
    lines
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    let lines = case_lines();
    let n = lines.len();
    let line = prop_oneof![
        6 => (0..n).prop_map(move |i| lines[i].clone().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..80),
    ];
    proptest::collection::vec(line, 0..120).prop_map(|ls| ls.join(&b'\n'))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_stream_audits_without_panic_and_identically_twice(input in stream()) {
        let a = audit(&input);
        let b = audit(&input);
        prop_assert_eq!(a, b);
    }
}
