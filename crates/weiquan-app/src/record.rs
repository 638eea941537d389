//! What weiquan records: the ledger leaf of each accepted event and of each
//! finding, with the leaf indices of the finding's evidence.

use weiquan_engine::{Finding, Rulebook};
use weiquan_ledger::{LeafError, Ledger, LedgerError, LogStore, StoreErrorKind};

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
    /// A leaf already stored at this index differs from the one computed for
    /// it: two writers of one log disagree about its content.
    #[error("the log forks at leaf {leaf}: the stored leaf differs from the one computed for it (writers of one log must apply the same rules to the same input; move away a log left by another run under the same name)")]
    Fork {
        /// The leaf index.
        leaf: u64,
    },
    /// The log is shorter than the state being resumed accounts for: leaves
    /// it should hold are missing.
    #[error("the log holds {size} leaves, fewer than the {at} the resumed state accounts for")]
    Short {
        /// Leaves stored.
        size: u64,
        /// Leaves the writer's state accounts for.
        at: u64,
    },
}

/// Writes an audit run into a ledger: every accepted event as received, then
/// each finding with the leaf indices of its evidence, in batches (one
/// transaction and one signed checkpoint per batch).
///
/// A writer can also be resumed from a saved state ([`LedgerWriter::resume`])
/// in a log that may already hold what it is about to write, as a cluster's
/// partition logs do when a worker takes a partition over: a leaf that is
/// stored already is compared, not appended, and must be equal.
pub struct LedgerWriter<S: LogStore> {
    ledger: Ledger<S>,
    pending: Vec<Vec<u8>>,
    /// Leaf index of each event of this run, for findings' evidence.
    index_of: crate::LeafIndex,
    batch: usize,
    /// The index the next leaf takes (pending leaves included).
    at: u64,
}

impl<S: LogStore> LedgerWriter<S> {
    /// Appends to `ledger` in batches of `batch` leaves.
    pub fn new(ledger: Ledger<S>, batch: usize) -> Self {
        let at = ledger.size();
        Self::resume(ledger, at, crate::LeafIndex::new(), batch)
    }

    /// Goes on from a saved state: `at` leaves written, the events among them
    /// at the leaves `index_of` says. The log may hold more than `at` leaves
    /// (written by another writer from the same input): those are compared
    /// as they come again.
    pub fn resume(ledger: Ledger<S>, at: u64, index_of: crate::LeafIndex, batch: usize) -> Self {
        LedgerWriter {
            ledger,
            pending: Vec::new(),
            index_of,
            batch: batch.max(1),
            at,
        }
    }

    /// The number of leaves written or pending: the index of the next one.
    pub fn size(&self) -> u64 {
        self.at
    }

    /// Leaves logged since the last flush.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Where each event written so far is (what a saved state keeps).
    pub fn leaf_index(&self) -> &crate::LeafIndex {
        &self.index_of
    }

    fn push(&mut self, leaf: Vec<u8>) -> Result<u64, RecordError> {
        let index = self.at;
        self.at += 1;
        self.pending.push(leaf);
        if self.pending.len() >= self.batch {
            self.flush()?;
        }
        Ok(index)
    }

    /// Logs an accepted event; returns its leaf index.
    pub fn event(&mut self, id: &str, raw: &str) -> Result<u64, RecordError> {
        // An accepted event is logged whatever its extra fields hold: a line
        // with no canonical form gets a leaf standing in for it.
        let leaf = weiquan_ledger::event_leaf_or_stand_in(id, raw).map_err(|source| RecordError::Event {
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
    /// Leaves the log holds already must equal the pending ones; another
    /// writer appending meanwhile is met the same way. On an error the
    /// pending leaves are dropped: the caller's state is ahead of the log and
    /// must be abandoned (resumed again from a saved state).
    pub fn flush(&mut self) -> Result<(), RecordError> {
        let mut pending = std::mem::take(&mut self.pending);
        let mut first = self.at - pending.len() as u64;
        loop {
            let stored = self.ledger.size();
            if first > stored {
                return Err(RecordError::Short {
                    size: stored,
                    at: first,
                });
            }
            let overlap = (stored - first).min(pending.len() as u64);
            if overlap > 0 {
                let rows = self
                    .ledger
                    .store_mut()
                    .leaves(first, first + overlap)
                    .map_err(LedgerError::from)?;
                if let Some(k) =
                    (0..overlap as usize).find(|&k| rows.get(k).is_none_or(|(data, _)| *data != pending[k]))
                {
                    return Err(RecordError::Fork { leaf: first + k as u64 });
                }
                pending.drain(..overlap as usize);
                first += overlap;
            }
            if pending.is_empty() {
                return Ok(());
            }
            match self.ledger.append(pending.clone()) {
                Ok(_) => return Ok(()),
                // Another writer appended first: read the log again and compare.
                Err(LedgerError::Store(e)) if e.kind == StoreErrorKind::Conflict => self.ledger.reload()?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The ledger (after [`flush`](Self::flush)).
    pub fn ledger(&mut self) -> &mut Ledger<S> {
        &mut self.ledger
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weiquan_store::SqliteStore;

    fn writer(path: &std::path::Path, key: &str, at: Option<u64>) -> LedgerWriter<SqliteStore> {
        let store = SqliteStore::open(path).expect("a SQLite ledger");
        let signer = weiquan_ledger::load_signer(key).expect("a key");
        let ledger = Ledger::open(store, signer, "test.example/log").expect("opens");
        match at {
            None => LedgerWriter::new(ledger, 100),
            Some(at) => LedgerWriter::resume(ledger, at, crate::LeafIndex::new(), 100),
        }
    }

    fn event(id: &str) -> String {
        format!(r#"{{"id":"{id}","type":"clock.tick","at":"2026-01-01T00:00:00Z"}}"#)
    }

    /// A writer resumed behind the log compares what is stored (appending
    /// only what is new), refuses a leaf that differs, and refuses a log
    /// shorter than its state.
    #[test]
    fn a_resumed_writer_compares_what_is_stored_and_refuses_a_fork() {
        let dir = tempfile::tempdir().expect("a folder");
        let path = dir.path().join("log.db");
        let (key, _) = weiquan_ledger::generate_key("test.example/log").expect("a key");
        let mut first = writer(&path, &key, None);
        for id in ["a", "b", "c"] {
            first.event(id, &event(id)).expect("logged");
        }
        first.flush().expect("written");
        let stored = |w: &mut LedgerWriter<SqliteStore>| {
            let store = w.ledger().store_mut();
            (
                store.size().expect("size"),
                store.checkpoints().expect("checkpoints").len(),
            )
        };
        assert_eq!(stored(&mut first), (3, 1));

        let mut again = writer(&path, &key, Some(0));
        for id in ["a", "b", "c", "d"] {
            again.event(id, &event(id)).expect("logged");
        }
        again.flush().expect("the same leaves, then one more");
        assert_eq!(stored(&mut again), (4, 2), "only the new leaf was appended");
        assert_eq!(again.size(), 4);

        // The first writer's view is stale: its next leaf meets the one appended meanwhile.
        first.event("d", &event("d")).expect("logged");
        first.flush().expect("another writer appended the same leaf");
        assert_eq!(stored(&mut first), (4, 2), "nothing appended twice");

        let mut forked = writer(&path, &key, Some(0));
        for id in ["a", "x"] {
            forked.event(id, &event(id)).expect("logged");
        }
        assert!(
            matches!(forked.flush(), Err(RecordError::Fork { leaf: 1 })),
            "a different second leaf is a fork"
        );
        let mut ahead = writer(&path, &key, Some(9));
        ahead.event("z", &event("z")).expect("logged");
        assert!(
            matches!(ahead.flush(), Err(RecordError::Short { size: 4, at: 9 })),
            "a state ahead of the log"
        );
    }
}
