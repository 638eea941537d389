//! The audit pipeline shared by every input path: frame → parse → dedupe → engine.

use std::io::BufRead;
use std::sync::Arc;
use weiquan_engine::{Engine, Finding, Rulebook};
use weiquan_events::{classify, Dedupe, Event, LineReader, Outcome, Reject, Time};

/// Counts of what happened to the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Lines accepted and applied.
    pub accepted: u64,
    /// Lines whose id was seen before (ignored).
    pub duplicates: u64,
    /// Lines rejected.
    pub rejected: u64,
}

/// Receives what the pipeline produces, in order.
pub trait Sink {
    /// A finding fired.
    fn finding(&mut self, finding: Finding) -> std::io::Result<()>;
    /// A line was rejected.
    fn reject(&mut self, reject: Reject) -> std::io::Result<()>;
    /// An event was accepted (before its findings are reported); `raw` is the line as received.
    fn accepted(&mut self, _event: &Event, _raw: &str) -> std::io::Result<()> {
        Ok(())
    }
}

/// Dedupe plus engine: everything an audit keeps between lines.
pub struct Auditor {
    engine: Engine,
    dedupe: Dedupe,
    /// What happened so far.
    pub counts: Counts,
}

impl Auditor {
    /// A fresh auditor using `rules`.
    pub fn new(rules: Arc<Rulebook>) -> Auditor {
        Auditor::with_capacity(rules, 0)
    }

    /// A fresh auditor expecting about `events` events (sizes the duplicate-id set once).
    pub fn with_capacity(rules: Arc<Rulebook>, events: usize) -> Auditor {
        Auditor {
            engine: Engine::new(rules),
            dedupe: Dedupe::with_capacity(events),
            counts: Counts::default(),
        }
    }

    /// The engine (for grades and blacklist after the run).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads every line of `input`; `file` names it in rejects. `progress` is
    /// called with the bytes read so far every few thousand lines.
    pub fn read(
        &mut self,
        input: impl BufRead,
        file: Option<&str>,
        sink: &mut dyn Sink,
        progress: &mut dyn FnMut(u64),
    ) -> std::io::Result<()> {
        let mut reader = LineReader::new(input);
        let mut n: u64 = 0;
        while let Some(line) = reader.next_line()? {
            match classify(line, &mut self.dedupe) {
                Outcome::Accepted(event, raw) => {
                    self.counts.accepted += 1;
                    sink.accepted(&event, raw)?;
                    for f in self.engine.apply(&event) {
                        sink.finding(f)?;
                    }
                }
                Outcome::Duplicate(..) => self.counts.duplicates += 1,
                Outcome::Rejected(mut r) => {
                    self.counts.rejected += 1;
                    r.file = file.map(str::to_owned);
                    sink.reject(r)?;
                }
            }
            n += 1;
            if n % 4096 == 0 {
                progress(reader.bytes_read());
            }
        }
        progress(reader.bytes_read());
        Ok(())
    }

    /// Moves the clock to `as_of` at the end of the input.
    pub fn finish(&mut self, as_of: Option<Time>, sink: &mut dyn Sink) -> std::io::Result<()> {
        if let Some(t) = as_of {
            for f in self.engine.advance(t) {
                sink.finding(f)?;
            }
        }
        Ok(())
    }
}

/// Writes an audit run into a ledger: every accepted event as received, then
/// each finding with the leaf indices of its evidence, in batches (one
/// transaction and one signed checkpoint per batch).
pub struct LedgerWriter<S: weiquan_ledger::LogStore> {
    ledger: weiquan_ledger::Ledger<S>,
    pending: Vec<Vec<u8>>,
    /// Leaf index of each event of this run, by id digest, for findings' evidence.
    index_of: std::collections::HashMap<u128, u64>,
    batch: usize,
}

impl<S: weiquan_ledger::LogStore> LedgerWriter<S> {
    /// Appends to `ledger` in batches of `batch` leaves.
    pub fn new(ledger: weiquan_ledger::Ledger<S>, batch: usize) -> Self {
        LedgerWriter {
            ledger,
            pending: Vec::new(),
            index_of: std::collections::HashMap::new(),
            batch: batch.max(1),
        }
    }

    fn push(&mut self, leaf: Vec<u8>) -> anyhow::Result<u64> {
        let index = self.ledger.size() + self.pending.len() as u64;
        self.pending.push(leaf);
        if self.pending.len() >= self.batch {
            self.flush()?;
        }
        Ok(index)
    }

    /// Logs an accepted event; returns its leaf index.
    pub fn event(&mut self, id: &str, raw: &str) -> anyhow::Result<u64> {
        let leaf = weiquan_ledger::event_leaf(raw).map_err(|e| anyhow::anyhow!("event {id}: {e}"))?;
        let index = self.push(leaf)?;
        self.index_of.insert(weiquan_events::id_digest(id), index);
        Ok(index)
    }

    /// Logs a finding; returns its leaf index.
    pub fn finding(&mut self, f: &Finding, rules: &Rulebook) -> anyhow::Result<u64> {
        let evidence: Vec<u64> = f
            .events
            .iter()
            .filter_map(|e| self.index_of.get(&weiquan_events::id_digest(e)).copied())
            .collect();
        let leaf = weiquan_server::finding_leaf_of(f, rules, &evidence)?;
        self.push(leaf)
    }

    /// Makes everything logged so far durable, under a new signed checkpoint.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        if !self.pending.is_empty() {
            self.ledger.append(std::mem::take(&mut self.pending))?;
        }
        Ok(())
    }

    /// The ledger (after [`flush`](Self::flush)).
    pub fn ledger(&mut self) -> &mut weiquan_ledger::Ledger<S> {
        &mut self.ledger
    }
}
