//! What weiquan records: the ledger leaf of each accepted event and of each
//! finding, with the leaf indices of the finding's evidence.

use rand_chacha::rand_core::SeedableRng;
use weiquan_engine::{Finding, Rulebook};
use weiquan_ledger::{
    CanonicalActor, LeafError, Ledger, LedgerError, LogStore, Private, PrivateRow, Pseudonyms, Salt, Salted,
    SaltedLeaf, StoreErrorKind,
};
use weiquan_store::PrivateData;

/// The subject prefix of findings about a consumer (BN-*): personal data.
pub const CONSUMER_SUBJECT: &str = "consumer:";

/// The leaf recording `rules` as the rulebook in effect from then on, in a
/// ledger whose last recorded rulebook has fingerprint `last` (`None`: none
/// recorded, which stands for the built-in one); `None` when `rules` is that
/// one already. With it in the log, `weiquan backtest` names the rules a run
/// was made under.
pub fn rulebook_record(rules: &Rulebook, last: Option<&str>) -> Result<Option<(Vec<u8>, String)>, LeafError> {
    let (leaf, sha) = weiquan_ledger::rulebook_leaf(&rules.effective())?;
    let last = match last {
        Some(sha) => sha.to_owned(),
        None => weiquan_ledger::rulebook_fingerprint(&Rulebook::builtin().effective())?,
    };
    Ok((sha != last).then_some((leaf, sha)))
}

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
    #[error("finding {rule} on {subject} (from event {event}): {source}")]
    Finding {
        /// The finding's rule.
        rule: String,
        /// Its subject, a consumer's withheld (`consumer:…`): this error
        /// reaches operators' logs, which must not name consumers.
        subject: String,
        /// The last event it cites, to find it by.
        event: String,
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
pub struct LedgerWriter<S: LogStore + PrivateData> {
    ledger: Ledger<S>,
    pending: Vec<Pending>,
    /// Leaf index of each event of this run, for findings' evidence.
    index_of: crate::LeafIndex,
    batch: usize,
    /// The index the next leaf takes (pending leaves included).
    at: u64,
    /// How personal data is kept off the leaves, if it is.
    salting: Option<Salting>,
}

/// A leaf not yet written, with its private part when it has one.
struct Pending {
    leaf: Vec<u8>,
    private: Option<PendingPrivate>,
}

/// What a salted leaf keeps off the log: its salt, its salted members'
/// values, and the pseudonym of the consumer it is about (what erasure finds
/// it by).
struct PendingPrivate {
    salt: Salt,
    values: Vec<u8>,
    consumer: Option<String>,
}

/// The consumer an event is about, which erasure finds its leaf by: its
/// `consumer` field, or else a top-level `consumer` of the producer's own
/// (in its text when it is not a string), read from the line itself when it
/// does not parse.
pub fn consumer_named(raw: &str, parsed: Option<ParsedEvent<'_, '_>>) -> Option<String> {
    if let Some(c) = parsed.and_then(|(ev, _)| ev.body.consumer()) {
        return Some(c.to_owned());
    }
    if parsed.is_some_and(|(_, extras)| !extras.iter().any(|e| e == "consumer")) {
        return None;
    }
    let line: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw).ok()?;
    match line.get("consumer")? {
        serde_json::Value::String(c) => Some(c.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// An event as parsed, with its extra fields ([`weiquan_events::parse_event_with_extras`]).
pub type ParsedEvent<'e, 'l> = (&'e weiquan_events::Event<'l>, &'e [std::borrow::Cow<'l, str>]);

/// How a writer keeps personal data off a log whose tiles may be published,
/// as `weiquan serve` does (`docs/ledger.md`, "Personal data"): each event
/// leaf is format 3 under `actor`, its personal members and extra fields
/// entering only as commitments under a salt of its own, drawn at random;
/// a finding about a consumer commits to its subject the same way; a line
/// with no leaf of its own stands in as a commitment
/// ([`weiquan_ledger::salted_stand_in`]). Salts and values go to the private
/// side of the store, in the same transaction as their leaves, each row
/// under the pseudonym of the consumer it is about.
///
/// Writers of one log draw different salts, so a leaf stored already is
/// compared by its commitments made again under the stored salt (every
/// value is checked), or, where that salt was erased, by everything but its
/// commitments.
pub struct Salting {
    actor: CanonicalActor,
    pseudonyms: Pseudonyms,
    rng: rand_chacha::ChaCha20Rng,
}

impl Salting {
    /// Salting under `actor` (who submitted the events), with consumers
    /// named in private rows by their pseudonym under `pseudonym_key` (the
    /// store's own, [`PrivateData::pseudonym_key`]).
    pub fn new(actor: CanonicalActor, pseudonym_key: &[u8; 32]) -> Self {
        Salting {
            actor,
            pseudonyms: Pseudonyms::new(pseudonym_key),
            rng: rand_chacha::ChaCha20Rng::from_entropy(),
        }
    }

    fn salt(&mut self) -> Salt {
        weiquan_ledger::draw_salt(&mut self.rng)
    }

    /// The leaf of event `id` (its line `raw`, parsed as `parsed` when it
    /// parses): what is private is known from the parsed event; a line that
    /// does not parse, or whose leaf would be too long, stands in as a
    /// commitment to the whole line.
    fn event(&mut self, id: &str, raw: &str, parsed: Option<ParsedEvent<'_, '_>>) -> Result<Pending, LeafError> {
        let salt = self.salt();
        let built = parsed.and_then(|(ev, extras)| {
            let private = |key: &str| weiquan_events::is_private_member(&ev.body, extras, false, key);
            weiquan_ledger::salted_event_leaf(raw, &self.actor, private, &salt).ok()
        });
        let SaltedLeaf { leaf, values } = match built {
            Some(built) => built,
            None => weiquan_ledger::salted_stand_in(id, raw, &salt)?,
        };
        let Some(values) = values else {
            return Ok(Pending { leaf, private: None });
        };
        // From the event, not the values: a stand-in's values are its whole line.
        let consumer = consumer_named(raw, parsed).map(|c| self.pseudonyms.of(&c));
        Ok(Pending {
            leaf,
            private: Some(PendingPrivate { salt, values, consumer }),
        })
    }
}

impl<S: LogStore + PrivateData> LedgerWriter<S> {
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
            salting: None,
        }
    }

    /// Keeps personal data off the leaves from here on ([`Salting`]).
    pub fn salting(mut self, salting: Salting) -> Self {
        self.salting = Some(salting);
        self
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

    fn push(&mut self, leaf: Pending) -> Result<u64, RecordError> {
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
        match self.salting.is_some() {
            // What is private is known from the parsed event.
            true => match weiquan_events::parse_event_with_extras(raw) {
                Ok((ev, extras)) => self.log_event(id, raw, Some((&ev, &extras))),
                Err(_) => self.log_event(id, raw, None),
            },
            false => self.log_event(id, raw, None),
        }
    }

    /// [`event`](Self::event) for an event its caller parsed already.
    pub fn parsed_event(&mut self, raw: &str, parsed: ParsedEvent<'_, '_>) -> Result<u64, RecordError> {
        self.log_event(&parsed.0.id, raw, Some(parsed))
    }

    fn log_event(&mut self, id: &str, raw: &str, parsed: Option<ParsedEvent<'_, '_>>) -> Result<u64, RecordError> {
        // An accepted event is logged whatever its extra fields hold: a line
        // with no canonical form gets a leaf standing in for it.
        let leaf = match &mut self.salting {
            Some(salting) => salting.event(id, raw, parsed),
            None => weiquan_ledger::event_leaf_or_stand_in(id, raw).map(|leaf| Pending { leaf, private: None }),
        };
        let leaf = leaf.map_err(|source| RecordError::Event {
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
        let about = (self.salting.as_mut()).and_then(|s| Some((f.subject.strip_prefix(CONSUMER_SUBJECT)?, s)));
        let Some((consumer, salting)) = about else {
            let leaf = self.index_of.finding_leaf(f, rules, None)?;
            return self.push(Pending {
                leaf: leaf.leaf,
                private: None,
            });
        };
        let (salt, consumer) = (salting.salt(), salting.pseudonyms.of(consumer));
        let SaltedLeaf { leaf, values } = self.index_of.finding_leaf(f, rules, Some(&salt))?;
        let private = values.map(|values| PendingPrivate {
            salt,
            values,
            consumer: Some(consumer),
        });
        self.push(Pending { leaf, private })
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
                if let Some(leaf) = self.differs(first, &pending[..overlap as usize])? {
                    return Err(RecordError::Fork { leaf });
                }
                pending.drain(..overlap as usize);
                first += overlap;
            }
            if pending.is_empty() {
                return Ok(());
            }
            let rows: Vec<PrivateRow> = (pending.iter().enumerate())
                .filter_map(|(k, p)| {
                    let private = p.private.as_ref()?;
                    Some(PrivateRow {
                        leaf: first + k as u64,
                        consumer: private.consumer.clone(),
                        salt: Some(private.salt),
                        values: Some(private.values.clone()),
                    })
                })
                .collect();
            let private = Private {
                rows: &rows,
                ..Private::default()
            };
            match (self.ledger).append_with_private(pending.iter().map(|p| p.leaf.clone()).collect(), private) {
                Ok(_) => return Ok(()),
                // Another writer appended first: read the log again and compare.
                Err(LedgerError::Store(e)) if e.kind == StoreErrorKind::Conflict => self.ledger.reload()?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The first leaf of `pending` (from index `first`, all stored already)
    /// that is not the one stored at its place, if any.
    fn differs(&mut self, first: u64, pending: &[Pending]) -> Result<Option<u64>, LedgerError> {
        let to = first + pending.len() as u64;
        let stored = weiquan_store::leaves_with_private(self.ledger.store_mut(), first, to)?;
        for (k, p) in pending.iter().enumerate() {
            let index = first + k as u64;
            let Some((_, stored, row)) = stored.get(k) else {
                return Ok(Some(index));
            };
            let same = match (&p.private, row) {
                (None, None) => *stored == p.leaf,
                // The pseudonym outlives an erasure: after one, it still tells consumers apart.
                (Some(ours), Some(row)) => {
                    row.consumer == ours.consumer
                        && Salted {
                            leaf: &p.leaf,
                            values: Some(&ours.values),
                            salt: &ours.salt,
                        }
                        .is(stored, row.salt.as_ref())
                }
                // A private part on one side only: one of them salted what the other did not.
                _ => false,
            };
            if !same {
                return Ok(Some(index));
            }
        }
        Ok(None)
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

    fn salting(w: LedgerWriter<SqliteStore>) -> LedgerWriter<SqliteStore> {
        let actor = weiquan_ledger::Actor {
            role: "platform".into(),
            key: None,
            on_behalf: None,
        };
        w.salting(Salting::new(actor.canonical().expect("an actor"), &[3; 32]))
    }

    fn disabled(id: &str, consumer: &str, steps: u32) -> String {
        format!(
            r#"{{"v":1,"id":"{id}","type":"bnpl.disabled","at":"2026-11-01T00:00:00+08:00","consumer":"{consumer}","provider":"p1","steps":{steps}}}"#
        )
    }

    fn failed(id: &str, consumer: &str, reason: &str) -> String {
        format!(
            r#"{{"v":1,"id":"{id}","type":"bnpl.cancel_failed","at":"2026-11-01T00:00:00+08:00","consumer":"{consumer}","provider":"p1","reason":"{reason}"}}"#
        )
    }

    /// A salting writer keeps consumers and their text off its leaves (a line
    /// too long for a leaf of its own included), and names each private row
    /// by the consumer's pseudonym; another writer, with salts of its own,
    /// recognises every stored leaf under its stored salt (another reason is
    /// a fork, another consumer too) and, once the salt is erased, by its
    /// pseudonym and everything but its commitments.
    #[test]
    fn salting_writers_agree_on_leaves_under_other_salts_and_after_erasure() {
        let dir = tempfile::tempdir().expect("a folder");
        let path = dir.path().join("log.db");
        let (key, _) = weiquan_ledger::generate_key("test.example/log").expect("a key");
        let tick = r#"{"v":1,"id":"c","type":"clock.tick","at":"2026-11-02T00:00:00+08:00"}"#.to_owned();
        // Too long for a leaf in a field that is not salted: a stand-in, still about u1.
        let long = format!(
            r#"{{"v":1,"id":"e","type":"bnpl.disabled","at":"2026-11-01T00:00:00+08:00","consumer":"u1","provider":"{}","steps":1}}"#,
            "p".repeat(70_000)
        );
        let lines = [
            disabled("a", "u1", 1),
            disabled("b", "u2", 5),
            tick,
            failed("d", "u2", "找不到关闭入口"),
            long,
        ];
        let with = |k: usize, line: String| {
            let mut changed = lines.clone();
            changed[k] = line;
            changed
        };
        let write = |lines: &[String], at: Option<u64>| {
            let mut w = salting(writer(&path, &key, at));
            for (n, line) in lines.iter().enumerate() {
                w.event(&format!("{}", (b'a' + n as u8) as char), line).expect("logged");
            }
            w.flush().map(|()| w)
        };
        let mut first = write(&lines, None).expect("written");
        let store = first.ledger().store_mut();
        for (data, _) in store.leaves(0, 5).expect("leaves") {
            let text = String::from_utf8_lossy(&data);
            for private in ["\"u1\"", "\"u2\"", "找不到", "ppp"] {
                assert!(!text.contains(private), "{private} in a leaf: {text}");
            }
        }
        assert!(
            weiquan_ledger::stand_in(&String::from_utf8_lossy(&store.leaves(4, 5).expect("a leaf")[0].0)).is_some()
        );
        let private = store.private_rows(0, 5).expect("private rows");
        assert_eq!(
            private.iter().map(|r| r.leaf).collect::<Vec<_>>(),
            [0, 1, 3, 4],
            "the tick has nothing private"
        );
        let u1 = weiquan_ledger::pseudonym(&[3; 32], "u1");
        let about_u1: Vec<u64> = (private.iter())
            .filter(|r| r.consumer.as_deref() == Some(u1.as_str()))
            .map(|r| r.leaf)
            .collect();
        assert_eq!(about_u1, [0, 4], "found by pseudonym, the stand-in too");

        let again = write(&lines, Some(0)).expect("the same leaves, under other salts");
        drop(again);
        let fork_at = |lines: &[String]| match write(lines, Some(0)) {
            Err(RecordError::Fork { leaf }) => Some(leaf),
            _ => None,
        };
        assert_eq!(
            fork_at(&with(3, failed("d", "u2", "别的"))),
            Some(3),
            "another reason, under the stored salt"
        );
        assert_eq!(fork_at(&with(0, disabled("a", "u9", 1))), Some(0), "another consumer");
        let size = |w: &mut LedgerWriter<SqliteStore>| w.ledger().store_mut().size().expect("size");
        assert_eq!(size(&mut first), 5, "nothing appended");

        assert_eq!(first.ledger().store_mut().erase_consumer(&u1).expect("erased"), 2);
        drop(first);
        write(&lines, Some(0)).expect("the same leaves, two of them erased");
        assert_eq!(
            fork_at(&with(0, disabled("a", "u9", 1))),
            Some(0),
            "an erased consumer is still told apart by pseudonym"
        );
        assert_eq!(
            fork_at(&with(0, disabled("a", "u1", 2))),
            Some(0),
            "what is not salted is still compared"
        );
        assert_eq!(fork_at(&with(1, disabled("b", "u2", 6))), Some(1), "another step count");
        // An unsalted writer meets salted leaves: a fork, not a silent mix.
        let mut plain = writer(&path, &key, Some(0));
        plain.event("a", &lines[0]).expect("logged");
        assert!(matches!(plain.flush(), Err(RecordError::Fork { leaf: 0 })));
    }
}
