//! Findings as their readers see them: rows of the database written with
//! their leaves (issue 19), read by `GET /v1/findings` on a connection of
//! its own ([`FindingReads`]: a page is not queued behind ingest on the
//! sequencer), and by the sequencer's own readers through the same
//! functions (merchant, lottery and host pages, which need the engine too).

use crate::core::{StoredFinding, CONSUMER_SUBJECT};
use crate::schemas::FindingOut;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use weiquan_engine::{Lang, Rulebook};
use weiquan_ledger::{Pseudonyms, PSEUDONYM_PREFIX};
use weiquan_store::{Backend, Database, FindingFilter, StoreError};

/// Consumers named in the clear by leaves written before format 3, by
/// pseudonym (their ids are public already, and have no private row): the
/// sequencer's replay finds them and publishes them here for the readers.
/// `None` until the sequencer has replayed the ledger (a standby that never
/// led has not).
pub(crate) type Legacy = Arc<RwLock<Option<Arc<HashMap<String, String>>>>>;

/// The findings `filter` selects from `store`, in its order.
pub(crate) fn read_findings(store: &mut dyn Backend, filter: &FindingFilter) -> Result<Vec<StoredFinding>, StoreError> {
    Ok(decoded(store.findings(filter)?))
}

/// A page of the findings `filter` selects: at most `limit`, and when there
/// are more, the cursor to read on from (taken from the rows as stored, so
/// that a row left out does not end the paging).
pub(crate) fn read_page(
    store: &mut dyn Backend,
    filter: &FindingFilter,
    limit: usize,
) -> Result<(Vec<StoredFinding>, Option<u64>), StoreError> {
    let filter = FindingFilter {
        limit: Some(u32::try_from(limit).unwrap_or(u32::MAX - 1) + 1),
        ..filter.clone()
    };
    let mut rows = store.findings(&filter)?;
    let next = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        rows.last().map(|r| r.leaf)
    });
    Ok((decoded(rows), next.flatten()))
}

/// The findings of `rows`. A row this build cannot read is left out with an
/// error in the log naming its leaf, rather than failing every page that
/// reaches it.
fn decoded(rows: Vec<weiquan_store::FindingRow>) -> Vec<StoredFinding> {
    (rows.into_iter())
        .filter_map(|row| {
            StoredFinding::from_row(row)
                .map_err(|e| tracing::error!(error = %e, "a stored finding cannot be read; left out"))
                .ok()
        })
        .collect()
}

/// The consumer id behind a pseudonym, unless it was erased (or never stored).
pub(crate) fn consumer_id(
    store: &mut dyn Backend,
    legacy: &HashMap<String, String>,
    pseudonym: &str,
) -> Result<Option<String>, StoreError> {
    if let Some(id) = legacy.get(pseudonym) {
        return Ok(Some(id.clone()));
    }
    Ok(store.consumer_id(pseudonym)?.flatten())
}

/// A findings filter's subject as the engine knows it: `consumer:ID` by
/// the consumer's pseudonym — unless that consumer was erased, whose id
/// then finds nothing (it must not lead back to their findings).
pub(crate) fn subject_filter(
    store: &mut dyn Backend,
    pseudonyms: &Pseudonyms,
    subject: &str,
) -> Result<String, StoreError> {
    let Some(id) = subject.strip_prefix(CONSUMER_SUBJECT) else {
        return Ok(subject.to_owned());
    };
    if id.starts_with(PSEUDONYM_PREFIX) {
        return Ok(subject.to_owned());
    }
    let p = pseudonyms.of(id);
    let erased = matches!(store.consumer_id(&p)?, Some(None));
    Ok(if erased {
        format!("{CONSUMER_SUBJECT}(erased)")
    } else {
        format!("{CONSUMER_SUBJECT}{p}")
    })
}

/// Puts consumers' ids back where findings name them by pseudonym (in a
/// subject or a message), for readers entitled to them; an erased
/// consumer stays a pseudonym.
pub(crate) fn reveal_consumers(
    store: &mut dyn Backend,
    legacy: &HashMap<String, String>,
    findings: &mut [FindingOut],
) -> Result<(), StoreError> {
    let mut known: HashMap<String, Option<String>> = HashMap::new();
    for f in findings.iter_mut() {
        for text in [&mut f.subject, &mut f.message] {
            for p in pseudonyms_in(text) {
                let id = match known.get(&p) {
                    Some(id) => id.clone(),
                    None => {
                        let id = consumer_id(store, legacy, &p)?;
                        known.insert(p.clone(), id.clone());
                        id
                    }
                };
                if let Some(id) = id {
                    *text = text.replace(&p, &id);
                }
            }
        }
    }
    Ok(())
}

/// The consumer pseudonyms (`ps:` and 32 hex digits) that `text` names.
fn pseudonyms_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(PSEUDONYM_PREFIX) {
        let candidate = rest[at..].get(..PSEUDONYM_PREFIX.len() + 32).unwrap_or("");
        rest = &rest[at + PSEUDONYM_PREFIX.len()..];
        let hex = candidate.get(PSEUDONYM_PREFIX.len()..).unwrap_or("");
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push(candidate.to_owned());
        }
    }
    out
}

/// A reading connection with what findings pages need beside it.
pub(crate) struct FindingReader {
    store: Box<dyn Backend>,
    pseudonyms: Pseudonyms,
    rules: Arc<Rulebook>,
    legacy: Legacy,
}

impl FindingReader {
    /// See [`read_page`].
    pub(crate) fn page(
        &mut self,
        filter: &FindingFilter,
        limit: usize,
    ) -> Result<(Vec<StoredFinding>, Option<u64>), StoreError> {
        read_page(&mut *self.store, filter, limit)
    }

    /// See [`subject_filter`].
    pub(crate) fn subject_filter(&mut self, subject: &str) -> Result<String, StoreError> {
        subject_filter(&mut *self.store, &self.pseudonyms, subject)
    }

    /// See [`reveal_consumers`]: unavailable on a server whose sequencer
    /// has not replayed the ledger (it would not know every consumer).
    pub(crate) fn reveal_consumers(&mut self, findings: &mut [FindingOut]) -> Result<(), StoreError> {
        let legacy = (self.legacy.read()).map_or_else(|e| e.into_inner().clone(), |l| l.clone());
        let legacy = legacy.ok_or_else(|| {
            StoreError::of_kind(
                weiquan_store::StoreErrorKind::Unavailable,
                "revealing consumers' ids",
                "this server has not replayed the ledger (a standby, or still starting); retry later or ask the leader",
            )
        })?;
        reveal_consumers(&mut *self.store, &legacy, findings)
    }

    /// The rulebook findings are shown with.
    pub(crate) fn rules(&self) -> &Rulebook {
        &self.rules
    }

    /// A finding as the API shows it.
    pub(crate) fn finding_out(&self, f: &StoredFinding, lang: Lang) -> FindingOut {
        FindingOut::new(&f.finding, f.index, &self.rules, lang)
    }
}

/// Findings pages beside the sequencer.
pub(crate) type FindingReads = crate::Reads<FindingReader>;

impl FindingReads {
    /// Findings pages on `db`, shown with `rules`, consumers revealed with `legacy` too.
    pub(crate) fn for_findings(db: Database, rules: Arc<Rulebook>, legacy: Legacy) -> FindingReads {
        crate::Reads::new(
            db,
            Box::new(move |db| {
                let cannot = |e: &dyn std::fmt::Display| {
                    tracing::warn!(error = %e, "cannot open the findings' reading connection");
                    crate::problem::ApiError::unavailable("findings cannot be read now; retry")
                };
                let mut store = db.open_reader().map_err(|e| cannot(&format!("{e:#}")))?;
                let pseudonyms = Pseudonyms::new(&store.pseudonym_key().map_err(|e| cannot(&e))?);
                Ok(FindingReader {
                    store,
                    pseudonyms,
                    rules: rules.clone(),
                    legacy: legacy.clone(),
                })
            }),
        )
    }

    /// Runs `f` on the reader; a failure of the connection (not of what it
    /// read) drops it, to be opened afresh.
    pub(crate) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut FindingReader) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, crate::problem::ApiError> {
        use weiquan_store::StoreErrorKind::{Other, Unavailable};
        self.run(move |reader| {
            let out = f(reader);
            let failed = matches!(&out, Err(e) if matches!(e.kind, Unavailable | Other));
            (out.map_err(Into::into), failed)
        })
        .await
    }
}
