//! What weiquan records: the ledger leaf of each accepted event and of each
//! finding, with the leaf indices of the finding's evidence.

use weiquan_engine::{Finding, Rulebook};
use weiquan_ledger::{LeafError, Ledger, LedgerError, LogStore};

/// Why an event or a finding could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The event cannot be a leaf (it is not JSON, or too long for one).
    #[error("event {id}: {source}")]
    Event {
        /// The event's id.
        id: String,
        /// Why.
        source: LeafError,
    },
    /// The finding cannot be a leaf.
    #[error("finding {rule} on {subject}: {source}")]
    Finding {
        /// The finding's rule.
        rule: String,
        /// Its subject.
        subject: String,
        /// Why.
        source: LeafError,
    },
    /// The ledger refused the append.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Writes an audit run into a ledger: every accepted event as received, then
/// each finding with the leaf indices of its evidence, in batches (one
/// transaction and one signed checkpoint per batch).
pub struct LedgerWriter<S: LogStore> {
    ledger: Ledger<S>,
    pending: Vec<Vec<u8>>,
    /// Leaf index of each event of this run, for findings' evidence.
    index_of: crate::LeafIndex,
    batch: usize,
}

impl<S: LogStore> LedgerWriter<S> {
    /// Appends to `ledger` in batches of `batch` leaves.
    pub fn new(ledger: Ledger<S>, batch: usize) -> Self {
        LedgerWriter {
            ledger,
            pending: Vec::new(),
            index_of: crate::LeafIndex::new(),
            batch: batch.max(1),
        }
    }

    fn push(&mut self, leaf: Vec<u8>) -> Result<u64, RecordError> {
        let index = self.ledger.size() + self.pending.len() as u64;
        self.pending.push(leaf);
        if self.pending.len() >= self.batch {
            self.flush()?;
        }
        Ok(index)
    }

    /// Logs an accepted event; returns its leaf index.
    pub fn event(&mut self, id: &str, raw: &str) -> Result<u64, RecordError> {
        let leaf = weiquan_ledger::event_leaf(raw).map_err(|source| RecordError::Event {
            id: id.to_owned(),
            source,
        })?;
        let index = self.push(leaf)?;
        // The pipeline has dropped repeated ids already: the first stays.
        self.index_of.insert_new(weiquan_events::id_digest(id), index);
        Ok(index)
    }

    /// Logs a finding; returns its leaf index.
    pub fn finding(&mut self, f: &Finding, rules: &Rulebook) -> Result<u64, RecordError> {
        // The owner of a file logs it as it is: nothing in it is salted.
        let leaf = self.index_of.finding_leaf(f, rules, None)?;
        self.push(leaf.leaf)
    }

    /// Makes everything logged so far durable, under a new signed checkpoint.
    pub fn flush(&mut self) -> Result<(), RecordError> {
        if !self.pending.is_empty() {
            self.ledger.append(std::mem::take(&mut self.pending))?;
        }
        Ok(())
    }

    /// The ledger (after [`flush`](Self::flush)).
    pub fn ledger(&mut self) -> &mut Ledger<S> {
        &mut self.ledger
    }
}
