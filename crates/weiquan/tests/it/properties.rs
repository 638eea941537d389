//! Property tests of the whole pipeline: never panics, always deterministic.

use proptest::prelude::*;
use std::sync::Arc;
use weiquan_app::{Auditor, Counts, Sink};
use weiquan_engine::{Engine, Finding, Lang, Rulebook};
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
    let (out, _, result) = audit_with(input, 1, 4096);
    result.expect("in-memory input");
    out
}

/// Audits `input` on `threads` threads, handing lines between them `batch` at a
/// time: what was written, the counts, and how the read ended.
fn audit_with(
    input: impl std::io::Read + Send,
    threads: usize,
    batch: usize,
) -> (Vec<u8>, Counts, std::io::Result<()>) {
    let rules = Arc::new(Rulebook::builtin());
    let mut sink = Capture {
        rules: rules.clone(),
        out: Vec::new(),
    };
    let mut auditor = Auditor::new(rules).with_threads(threads).with_batch_lines(batch);
    let result = auditor.read(std::io::BufReader::new(input), None, &mut sink, &mut |_| {});
    (sink.out, auditor.counts, result)
}

/// A reader that fails with an IO error once its bytes are spent.
struct FailsAfter<'a>(&'a [u8]);

impl std::io::Read for FailsAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Err(std::io::Error::other("disk gone"));
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// A sink that fails at its `n`th finding or reject.
struct FailsAt(usize);

impl Sink for FailsAt {
    fn finding(&mut self, _: Finding) -> std::io::Result<()> {
        self.tick()
    }
    fn reject(&mut self, _: Reject) -> std::io::Result<()> {
        self.tick()
    }
}

impl FailsAt {
    fn tick(&mut self) -> std::io::Result<()> {
        self.0 = self.0.saturating_sub(1);
        if self.0 == 0 {
            return Err(std::io::Error::other("stdout closed"));
        }
        Ok(())
    }
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

    /// Parsing on a second thread, in batches of any size, changes nothing:
    /// same findings and rejects, byte for byte, in the same order, same counts.
    #[test]
    fn two_threads_audit_exactly_as_one(input in stream(), batch in 1usize..9) {
        let (one, one_counts, r1) = audit_with(&input[..], 1, 4096);
        let (two, two_counts, r2) = audit_with(&input[..], 2, batch);
        prop_assert!(r1.is_ok() && r2.is_ok());
        prop_assert_eq!(one_counts, two_counts);
        prop_assert_eq!(String::from_utf8_lossy(&one), String::from_utf8_lossy(&two));
    }

    /// [`Engine::warm`] only looks: warming every event of the stream up
    /// front, and each again just before it is applied, gives exactly the
    /// findings of an engine never warmed.
    #[test]
    fn warming_changes_no_finding(input in stream()) {
        let text = String::from_utf8_lossy(&input);
        let events: Vec<_> = text.lines().filter_map(|l| weiquan_events::parse_event(l).ok()).collect();
        let rules = Arc::new(Rulebook::builtin());
        let (mut cold, mut warm) = (Engine::new(rules.clone()), Engine::new(rules));
        for ev in &events {
            warm.warm(ev);
        }
        for ev in &events {
            let expected = cold.apply(ev);
            warm.warm(ev);
            prop_assert_eq!(warm.apply(ev), expected);
        }
    }

    /// An IO error mid-stream ends the read with that error, after exactly the
    /// lines before it, on one thread or two.
    #[test]
    fn a_read_error_loses_no_line_before_it(input in stream(), batch in 1usize..9) {
        let (one, one_counts, r1) = audit_with(FailsAfter(&input), 1, 4096);
        let (two, two_counts, r2) = audit_with(FailsAfter(&input), 2, batch);
        prop_assert_eq!(r1.map_err(|e| e.to_string()), Err("disk gone".to_owned()));
        prop_assert_eq!(r2.map_err(|e| e.to_string()), Err("disk gone".to_owned()));
        prop_assert_eq!(one_counts, two_counts);
        prop_assert_eq!(one, two);
    }
}

/// A sink that fails stops a two-thread read with its error (the parsing thread
/// ends instead of waiting forever to hand over its next batch).
#[test]
fn a_failing_sink_stops_a_two_thread_read() {
    let input = case_lines().join("\n").repeat(20);
    let mut sink = FailsAt(3);
    let mut auditor = Auditor::new(Arc::new(Rulebook::builtin()))
        .with_threads(2)
        .with_batch_lines(2);
    let result = auditor.read(input.as_bytes(), None, &mut sink, &mut |_| {});
    assert_eq!(result.map_err(|e| e.to_string()), Err("stdout closed".to_owned()));
    let c = auditor.counts;
    let lines = input.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    assert!(c.accepted + c.duplicates + c.rejected < lines, "{c:?} of {lines} lines");
}
