//! `POST /v1/events`, and the acts weiquan writes itself on a caller's request.

use super::AppStateRef;
use crate::acts::Submitter;
use crate::auth::{Caller, Role};
use crate::core::{Core, ItemResult};
use crate::problem::{ApiError, Problem};
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// Result of one `POST /v1/events`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IngestResponse {
    /// Items made durable in the ledger.
    pub accepted: usize,
    /// Items whose id was seen before.
    pub duplicates: usize,
    /// Items not accepted.
    pub rejected: usize,
    /// One result per item, in order (`item` is 1-based).
    pub items: Vec<crate::schemas::ItemOut>,
}

/// One item of a body: its text, or why it cannot be read as an event at all.
pub(crate) type BodyItem = Result<String, String>;

/// Splits a body into items: a JSON array, or NDJSON framed and checked as a
/// file's lines are (blank lines skipped, `\r\n` and a byte-order mark
/// allowed). An NDJSON line that is not UTF-8, or too long, is an item of its
/// own that is rejected, as a file's line is: it does not cost the body's
/// other items.
pub(crate) fn split_items(body: &[u8]) -> Result<Vec<BodyItem>, ApiError> {
    let unmarked = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if unmarked.trim_ascii_start().starts_with(b"[") {
        let items: Vec<&RawValue> = serde_json::from_slice(unmarked)
            .map_err(|e| ApiError::bad_request(format!("the body starts with `[` but is not a JSON array: {e}")))?;
        return Ok(items.into_iter().map(|r| Ok(r.get().to_owned())).collect());
    }
    // One more than a request may hold is enough to refuse it: a body of
    // millions of tiny lines is not turned into millions of strings first.
    Ok(weiquan_events::checked_body_lines(body)
        .take(crate::MAX_BATCH_ITEMS + 1)
        .map(|line| match line {
            weiquan_events::Line::Text(_, text) => Ok(text.to_owned()),
            weiquan_events::Line::Bad(reject) => Err(reject.error),
        })
        .collect())
}

/// Ingest events.
#[utoipa::path(post, path = "/v1/events", tag = "events",
    request_body(description = "NDJSON (one event per line) or a JSON array of events, at most 10,000; each item is accepted, a duplicate, or rejected on its own",
        content((String = "application/x-ndjson"), (Vec<Object> = "application/json"))),
    responses((status = 200, description = "Each item accepted (with its ledger index), duplicate or rejected; answered once durable", body = IngestResponse),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = [])))]
pub(crate) async fn post_events(
    State(app): AppStateRef,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Json<IngestResponse>, ApiError> {
    let party = caller
        .require("ingest events (platform keys only)", |r| *r == Role::Platform)?
        .clone();
    let items = split_items(&body)?;
    if items.len() > crate::MAX_BATCH_ITEMS {
        return Err(ApiError::too_large(format!(
            "{} items; send at most {} per request",
            items.len(),
            crate::MAX_BATCH_ITEMS
        )));
    }
    let texts: Vec<String> = items.iter().filter_map(|i| i.as_ref().ok().cloned()).collect();
    let mut ingested = app.sequencer.ingest(Submitter::Party(party), texts).await?.into_iter();
    // Each item's result in the body's order: an unreadable item's own, the others' from the ledger.
    let results: Vec<ItemResult> = (items.into_iter())
        .map(|i| match i {
            Ok(_) => ingested.next().unwrap_or_else(|| ItemResult::Rejected {
                field: None,
                error: "no result for the item; send it again".into(),
            }),
            Err(error) => ItemResult::Rejected { field: None, error },
        })
        .collect();
    let count = |f: fn(&ItemResult) -> bool| results.iter().filter(|r| f(r)).count();
    Ok(Json(IngestResponse {
        accepted: count(|r| matches!(r, ItemResult::Accepted { .. })),
        duplicates: count(|r| matches!(r, ItemResult::Duplicate)),
        rejected: count(|r| matches!(r, ItemResult::Rejected { .. })),
        items: (results.into_iter().enumerate())
            .map(|(i, r)| crate::schemas::ItemOut::new(i + 1, r))
            .collect(),
    }))
}

/// The business time for events weiquan writes itself: the engine's clock (wall clock before any event).
pub(crate) fn business_time(core: &Core) -> String {
    core.engine().clock().map_or_else(
        || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        |c| c.to_string(),
    )
}

/// What became of one event submitted on its own.
pub(crate) enum Submitted {
    /// Durable at this leaf index.
    Accepted(u64),
    /// Its id was in the ledger already.
    Duplicate,
}

impl Submitted {
    /// The leaf index, when it was written now.
    pub(crate) fn index(self) -> Option<u64> {
        match self {
            Submitted::Accepted(index) => Some(index),
            Submitted::Duplicate => None,
        }
    }
}

/// Why one event submitted on its own was not recorded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotRecorded {
    /// The log refused it, and always will: the field at fault and why.
    #[error("{0}")]
    Refused(String),
    /// The log could not be written now (stopped, standing by, a store error): retry.
    #[error(transparent)]
    Unavailable(#[from] crate::sequencer::IngestError),
}

impl From<NotRecorded> for ApiError {
    fn from(e: NotRecorded) -> ApiError {
        match e {
            NotRecorded::Refused(why) => ApiError::unprocessable(why),
            NotRecorded::Unavailable(e) => e.into(),
        }
    }
}

/// Submits one event and says what became of it: the one path of every
/// route that records a single event (weiquan's acts, and what consumers
/// and merchants do through their routes).
pub(crate) async fn submit_one(
    app: &crate::AppState,
    submitter: Submitter,
    line: String,
) -> Result<Submitted, NotRecorded> {
    let results = app.sequencer.ingest(submitter, vec![line]).await?;
    match results.into_iter().next() {
        Some(ItemResult::Accepted { index }) => Ok(Submitted::Accepted(index)),
        Some(ItemResult::Duplicate) => Ok(Submitted::Duplicate),
        Some(ItemResult::Rejected { field, error }) => Err(NotRecorded::Refused(format!(
            "{}{error}",
            field.map(|f| format!("{f}: ")).unwrap_or_default()
        ))),
        None => Err(crate::sequencer::IngestError::NotWritten("no result for the event".into()).into()),
    }
}

/// Writes one event of weiquan's own, acting on the request of `on_behalf` (the leaf names both).
pub(crate) async fn ingest_one(
    app: &crate::AppState,
    on_behalf: crate::acts::Party,
    event: Value,
) -> Result<u64, ApiError> {
    match submit_one(app, Submitter::Weiquan(on_behalf), event.to_string()).await? {
        Submitted::Accepted(index) => Ok(index),
        Submitted::Duplicate => Err(ApiError::conflict(
            "this was already done (an event with the same id is in the ledger)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::split_items;

    /// A body is framed as a file is: a byte-order mark, `\r\n` and blank
    /// lines do not make items, in NDJSON and in a JSON array alike.
    #[test]
    fn bodies_are_framed_as_files_are() {
        let ok = |s: &str| Ok(s.to_owned());
        let ndjson = "\u{feff}{\"a\":1}\r\n\r\n  \n{\"b\":2}\r\n";
        let two = [ok(r#"{"a":1}"#), ok(r#"{"b":2}"#)];
        assert_eq!(split_items(ndjson.as_bytes()).expect("ndjson"), two);
        let array = "\u{feff} [{\"a\":1}, {\"b\":2}]";
        assert_eq!(split_items(array.as_bytes()).expect("array"), two);
        assert!(split_items(b"[{\"a\":1},").is_err(), "a broken array is refused whole");
    }

    /// A line that is not UTF-8 is one rejected item, placed at its column;
    /// the lines around it are items as before.
    #[test]
    fn a_line_that_is_not_utf8_is_an_item_of_its_own() {
        let items = split_items(b"{\"a\":1}\n{\"id\":\"u\xff\"}\n{\"b\":2}\n").expect("ndjson");
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], Ok(r#"{"a":1}"#.to_owned()));
        let bad = items[1].as_ref().expect_err("not UTF-8");
        assert!(bad.contains("not valid UTF-8 (bad byte at column 9)"), "{bad}");
        assert_eq!(items[2], Ok(r#"{"b":2}"#.to_owned()));
    }
}
