//! Complaints with evidence (投诉): a consumer (or the platform on their behalf)
//! files one with files; the merchant it is against reads it and answers; the
//! platform resolves or escalates it; a regulator reads what was escalated to
//! it. Each step is an event in the log, and the parties get its receipt.
//! Evidence is kept outside the log (`crate::evidence`); the log holds its
//! hashes, and the complaint's text only as a salted commitment.

use super::{business_time, submit_one, AppStateRef, JsonBody, Submitted};
use crate::acts::{Party, Submitter};
use crate::auth::{Caller, Role};
use crate::core::Core;
use crate::evidence::{self, MAX_FILES, MAX_FILE_BYTES, MAX_TOTAL_BYTES};
use crate::problem::{ApiError, Problem};
use crate::schemas::{ComplaintOut, ComplaintsOut, EvidenceOut, FiledOut, StepOut};
use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use weiquan_engine::ComplaintView;
use weiquan_store::EvidenceFile;

/// Longest complaint text, in characters (the event must fit a line).
pub const MAX_TEXT_CHARS: usize = 2_000;
/// Largest form field other than a file, in bytes.
const MAX_FIELD_BYTES: usize = 64 << 10;

/// A page of `GET /v1/complaints`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Continue from here (the previous page's `next_cursor`).
    pub(crate) cursor: Option<u64>,
    /// Page size (default 100, at most 1000).
    pub(crate) limit: Option<usize>,
    /// Only complaints against this merchant.
    pub(crate) merchant: Option<String>,
}

/// A consumer caller's pseudonym (how the engine knows them); `None` for other roles.
fn own_pseudonym(core: &Core, party: &Party) -> Option<String> {
    match &party.role {
        Role::Consumer(me) => Some(core.pseudonym_of(me)),
        _ => None,
    }
}

/// Whether `party` may read complaint `c` (the consumer's pseudonym is `mine` for a consumer).
fn may_read(party: &Party, c: &ComplaintView, mine: Option<&str>) -> bool {
    match &party.role {
        Role::Platform => true,
        Role::Regulator => c.escalated_to == Some("regulator"),
        Role::Merchant(m) => c.merchant.as_deref() == Some(m.as_str()),
        Role::Consumer(_) => mine == Some(c.consumer.as_str()),
    }
}

/// A complaint as its reader sees it, with its response clock at `now`.
fn complaint_out(c: ComplaintView, consumer: Option<String>, now: Option<weiquan_events::Time>) -> ComplaintOut {
    let due = c.response_due;
    let overdue = !c.responded && !c.resolved && matches!((due, now), (Some(d), Some(n)) if n > d);
    let status = match (c.resolved, c.escalated_to, c.responded) {
        (true, _, _) => "resolved",
        (false, Some(_), _) => "escalated",
        (false, None, true) => "responded",
        _ => "open",
    };
    ComplaintOut {
        complaint: c.complaint,
        consumer,
        merchant: c.merchant,
        order: c.order,
        category: c.category.to_owned(),
        status: status.to_owned(),
        filed_at: c.filed.as_ref().map(|f| f.1.to_string()),
        response_due: due.map(|d| d.to_string()),
        response_hours_left: match (due, now) {
            (Some(d), Some(n)) if !c.responded && !c.resolved => {
                Some((d.unix_ms() - n.unix_ms()).div_euclid(3_600_000))
            }
            _ => None,
        },
        overdue,
        escalated_to: c.escalated_to.map(str::to_owned),
        text: None,
        evidence: (c.evidence.into_iter())
            .map(|(sha256, kind)| EvidenceOut {
                sha256,
                kind,
                size: None,
            })
            .collect(),
        steps: (c.filed.into_iter().map(|(e, t)| (e, t, "filed".to_owned())))
            .chain(c.steps)
            .map(|(event, at, what)| StepOut {
                event,
                at: at.to_string(),
                step: what,
                index: None,
                receipt: None,
            })
            .collect(),
    }
}

/// The complaints `caller` may read, newest last, with each one's response
/// clock (MC-10) and, per merchant, how many are open and overdue. Consumers
/// read their own; merchants those against them; the platform all; regulators
/// those escalated to a regulator.
#[utoipa::path(get, path = "/v1/complaints", tag = "complaints", params(ListQuery),
    responses((status = 200, description = "A page of complaints with their response clocks, `next_cursor` when there are more", body = crate::schemas::ComplaintsOut), (status = 401, body = Problem)),
    security(("api_key" = [])))]
pub(crate) async fn list(
    State(app): AppStateRef,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<ComplaintsOut>, ApiError> {
    let party = caller.party()?.clone();
    // A cursor past any page (or past `usize`) is an empty last page, not one that wraps to the start.
    let skip = usize::try_from(q.cursor.unwrap_or(0)).unwrap_or(usize::MAX);
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let out = app
        .sequencer
        .read(move |core: &mut Core| {
            let mine = own_pseudonym(core, &party);
            let now = core.engine().clock();
            let reveal = matches!(party.role, Role::Platform | Role::Regulator | Role::Consumer(_));
            let seen: Vec<ComplaintView> = (core.engine().complaints())
                .filter(|c| may_read(&party, c, mine.as_deref()))
                .filter(|c| q.merchant.is_none() || c.merchant == q.merchant)
                .collect();
            // The summary counts every complaint the caller may read; the page is a slice of them.
            let now_ms = now.map(|n| n.unix_ms());
            let mut per_merchant: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
            for c in seen.iter().filter(|c| !c.resolved) {
                let e = per_merchant.entry(c.merchant.clone().unwrap_or_default()).or_default();
                e.0 += 1;
                let due = c.response_due.map(|d| d.unix_ms());
                e.1 += u64::from(!c.responded && matches!((due, now_ms), (Some(d), Some(n)) if n > d));
            }
            let next = (skip.checked_add(limit))
                .filter(|&end| seen.len() > end)
                .map(|end| end as u64);
            let seen: Vec<ComplaintView> = seen.into_iter().skip(skip).take(limit).collect();
            let mut items = Vec::with_capacity(seen.len());
            // One lookup per consumer, not per complaint.
            let mut ids: std::collections::HashMap<String, Option<String>> = Default::default();
            for c in seen {
                let consumer = match (reveal, ids.get(&c.consumer)) {
                    (false, _) => None,
                    (true, Some(id)) => id.clone(),
                    (true, None) => {
                        let id = core.consumer_id(&c.consumer)?;
                        ids.insert(c.consumer.clone(), id.clone());
                        id
                    }
                };
                items.push(complaint_out(c, consumer, now));
            }
            Ok::<_, weiquan_store::StoreError>((items, per_merchant, next))
        })
        .await??;
    let (out, per_merchant, next_cursor) = out;
    Ok(Json(ComplaintsOut {
        next_cursor,
        merchants: (per_merchant.into_iter())
            .map(|(merchant, (open, overdue))| crate::schemas::MerchantComplaintsOut {
                merchant,
                open,
                overdue,
            })
            .collect(),
        complaints: out,
    }))
}

/// One complaint with each step's leaf index and receipt (inclusion proof
/// and signed checkpoint), for those who may read it.
#[utoipa::path(get, path = "/v1/complaints/{id}", tag = "complaints", params(("id" = String, Path, description = "Complaint id")),
    responses((status = 200, description = "The complaint and the receipt of each step", body = crate::schemas::ComplaintOut), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("api_key" = [])))]
pub(crate) async fn get_one(
    State(app): AppStateRef,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ComplaintOut>, ApiError> {
    let party = caller.party()?.clone();
    let out = app
        .sequencer
        .read(move |core: &mut Core| -> Result<Option<ComplaintOut>, ApiError> {
            let Some(c) = readable(core, &party, &id) else {
                return Ok(None);
            };
            let consumer = match party.role {
                Role::Merchant(_) => None,
                _ => core.consumer_id(&c.consumer)?,
            };
            let filed = c.filed.as_ref().map(|f| f.0.clone());
            let mut out = complaint_out(c, consumer, core.engine().clock());
            // What the consumer wrote, for everyone who may read the complaint.
            out.text = match filed {
                Some(e) => core.private_value(&e, "text")?,
                None => None,
            };
            for step in &mut out.steps {
                step.index = core.leaf_of(&step.event)?;
                // The public leaf with its proof: the log is public, so a step's
                // receipt shows nobody more than the tiles do.
                step.receipt = match step.index {
                    Some(i) => Some(core.ledger().receipt(i).map_err(super::ledger_error)?),
                    None => None,
                };
            }
            Ok(Some(out))
        })
        .await??;
    // Someone who may not read it learns nothing, not even that it exists.
    out.map(Json)
        .ok_or_else(|| ApiError::not_found("no complaint with this id that this key may read"))
}

/// The complaint `id` if `party` may read it.
fn readable(core: &mut Core, party: &Party, id: &str) -> Option<ComplaintView> {
    let mine = own_pseudonym(core, party);
    core.engine()
        .complaint(id)
        .filter(|c| may_read(party, c, mine.as_deref()))
}

/// An evidence file of a complaint, for those who may read the complaint.
#[utoipa::path(get, path = "/v1/complaints/{id}/evidence/{sha256}", tag = "complaints",
    params(("id" = String, Path, description = "Complaint id"), ("sha256" = String, Path, description = "The file's hex SHA-256")),
    responses((status = 200, description = "The file, as filed, as an attachment of the type its first bytes say (an image, a PDF, a video or plain text)", content_type = "application/octet-stream"), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("api_key" = [])))]
pub(crate) async fn get_evidence(
    State(app): AppStateRef,
    caller: Caller,
    Path((id, sha256)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let party = caller.party()?.clone();
    let sha = sha256.clone();
    // The complaint's consumer, when it lists the file: only their own copy is served.
    let owner = app
        .sequencer
        .read(move |core: &mut Core| {
            readable(core, &party, &id)
                .filter(|c| c.evidence.iter().any(|e| e.0 == sha))
                .map(|c| c.consumer)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("no such evidence in a complaint this key may read"))?;
    let (file, key) = app
        .outbox
        .with(move |s| Ok((s.evidence_get(&owner, &sha256)?, s.secret(evidence::KEY_NAME)?)))
        .await?;
    let file = file.ok_or_else(|| {
        ApiError::not_found("the complaint lists this file, but it was not kept here (filed elsewhere, or erased)")
    })?;
    let bytes = evidence::open(&key, &file.sha256, &file.sealed).map_err(ApiError::internal)?;
    Ok((
        // A file is known by its first bytes only: it is never shown inline or sniffed.
        [
            (axum::http::header::CONTENT_TYPE, file.kind),
            (axum::http::header::CACHE_CONTROL, "private, no-store".to_owned()),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", file.sha256),
            ),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (axum::http::header::CONTENT_SECURITY_POLICY, "sandbox".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

/// A file of a filing, checked.
struct Upload {
    sha256: String,
    kind: &'static str,
    bytes: Vec<u8>,
}

/// The fields of a filing.
#[derive(Default)]
struct Filing {
    consumer: Option<String>,
    merchant: Option<String>,
    order: Option<String>,
    category: Option<String>,
    text: Option<String>,
    files: Vec<Upload>,
}

/// A form field's bytes, read as they come; `None` past `limit` bytes (the
/// rest is not read).
async fn read_capped(
    field: &mut axum::extract::multipart::Field<'_>,
    limit: usize,
    name: &str,
) -> Result<Option<Vec<u8>>, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::bad_request(format!("`{name}` could not be read: {e}")))?
    {
        if bytes.len() + chunk.len() > limit {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// Reads the multipart form, checking every limit as it goes: nothing is kept before all pass.
async fn read_filing(mut form: Multipart) -> Result<Filing, ApiError> {
    let mut f = Filing::default();
    let mut total = 0usize;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("the form could not be read: {e}; send multipart/form-data")))?
    {
        let name = field.name().unwrap_or("").to_owned();
        if name == "evidence" {
            let filename = field.file_name().unwrap_or("(unnamed)").to_owned();
            if f.files.len() == MAX_FILES {
                return Err(ApiError::too_large(format!(
                    "a complaint carries at most {MAX_FILES} evidence files; nothing was kept"
                )));
            }
            let room = MAX_TOTAL_BYTES - total;
            let bytes = match read_capped(&mut field, MAX_FILE_BYTES.min(room), &filename).await? {
                Some(bytes) => bytes,
                None if room < MAX_FILE_BYTES => {
                    return Err(ApiError::too_large(format!(
                        "the evidence is over {} MiB, the most one complaint may carry; nothing was kept",
                        MAX_TOTAL_BYTES >> 20
                    )))
                }
                None => {
                    return Err(ApiError::too_large(format!(
                        "evidence `{filename}` is over {} MiB, the most one file may be; nothing was kept",
                        MAX_FILE_BYTES >> 20
                    )))
                }
            };
            total += bytes.len();
            let kind = evidence::kind_of(&bytes).ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "evidence `{filename}` is not an image (JPEG, PNG, GIF, WebP, HEIF), a PDF, a video (MP4, MOV, WebM) or plain UTF-8 text, by its first bytes; nothing was kept"
                ))
            })?;
            f.files.push(Upload {
                sha256: evidence::address(&bytes),
                kind,
                bytes,
            });
        } else {
            let raw = read_capped(&mut field, MAX_FIELD_BYTES, &name).await?.ok_or_else(|| {
                ApiError::too_large(format!(
                    "field `{name}` is over {} KiB; nothing was kept",
                    MAX_FIELD_BYTES >> 10
                ))
            })?;
            let value = String::from_utf8(raw)
                .map_err(|_| ApiError::bad_request(format!("field `{name}` is not UTF-8 text")))?;
            let slot = match name.as_str() {
                "consumer" => &mut f.consumer,
                "merchant" => &mut f.merchant,
                "order" => &mut f.order,
                "category" => &mut f.category,
                "text" => &mut f.text,
                other => {
                    return Err(ApiError::unprocessable(format!(
                        "`{other}` is not a field of a complaint; send consumer (platform only), merchant, order, category, text and evidence files"
                    )))
                }
            };
            *slot = Some(value);
        }
    }
    Ok(f)
}

/// Files a complaint with its evidence (multipart/form-data: `category`,
/// `order`, `text` of at most 2,000 characters, and up to 5 `evidence` files of at most 8 MiB, 20 MiB in
/// all; a platform names the `consumer` and the `merchant`). A consumer files
/// about an order of their own, against its merchant. Answered once the
/// complaint is durable, with its receipt.
#[utoipa::path(post, path = "/v1/complaints", tag = "complaints",
    request_body(content_type = "multipart/form-data", description = "category, order, text (at most 2,000 characters), evidence (up to 5 files of at most 8 MiB, 20 MiB in all: images, PDF, video or plain text by their first bytes); consumer and merchant from a platform"),
    responses((status = 200, description = "Filed: the complaint, its leaf index and receipt, the evidence kept", body = crate::schemas::FiledOut), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
pub(crate) async fn file(State(app): AppStateRef, caller: Caller, form: Multipart) -> Result<Json<FiledOut>, ApiError> {
    let party = caller
        .require("file complaints (consumer keys, or the platform for a consumer)", |r| {
            matches!(r, Role::Consumer(_) | Role::Platform)
        })?
        .clone();
    let f = read_filing(form).await?;
    let category = f.category.ok_or_else(|| {
        ApiError::unprocessable(
            "category: required (quality, false_advertising, privacy, after_sales, presale, lottery, bnpl, other)",
        )
    })?;
    if let Some(n) = f
        .text
        .as_ref()
        .map(|t| t.chars().count())
        .filter(|&n| n > MAX_TEXT_CHARS)
    {
        // The body was within its limits: the field's content is what is refused.
        return Err(ApiError::unprocessable(format!(
            "text: {n} characters; at most {MAX_TEXT_CHARS} are taken (attach a longer account as an evidence file)"
        )));
    }
    // Who complains, and against whom: a consumer about an order of their own.
    let (consumer, merchant) = match &party.role {
        Role::Consumer(me) => {
            if f.consumer.as_ref().is_some_and(|named| named != me) {
                return Err(ApiError::unprocessable(
                    "consumer: a consumer files only for themself; leave `consumer` out (your key says who you are)",
                ));
            }
            let order = f.order.clone().ok_or_else(|| {
                ApiError::unprocessable("order: required (a consumer complains about an order of theirs)")
            })?;
            let me2 = me.clone();
            let (placed, pseudonym) = app
                .sequencer
                .read(move |core: &mut Core| {
                    Ok::<_, weiquan_store::StoreError>((core.order_placed_by(&order)?, core.pseudonym_of(&me2)))
                })
                .await??;
            match placed {
                Some((by, Some(m))) if by == pseudonym => {
                    if f.merchant.as_ref().is_some_and(|named| *named != m) {
                        return Err(ApiError::unprocessable(format!(
                            "merchant: the order is merchant {m}'s"
                        )));
                    }
                    (me.clone(), m)
                }
                _ => {
                    return Err(ApiError::not_found(
                        "order: no order of yours with this id is known here",
                    ))
                }
            }
        }
        _ => (
            f.consumer
                .clone()
                .ok_or_else(|| ApiError::unprocessable("consumer: required (the platform files for a consumer)"))?,
            f.merchant
                .clone()
                .ok_or_else(|| ApiError::unprocessable("merchant: required"))?,
        ),
    };
    // One open complaint per consumer and order: checked and recorded under
    // the acts lock, so that two filings at once cannot both pass the check.
    let _act = app.acts.lock().await;
    let (c, o) = (consumer.clone(), f.order.clone());
    let (pseudonym, open, at) = app
        .sequencer
        .read(move |core: &mut Core| {
            let p = core.pseudonym_of(&c);
            let open = o.and_then(|o| {
                (core.engine().complaints())
                    .find(|v| v.consumer == p && v.order.as_deref() == Some(o.as_str()) && !v.resolved)
                    .map(|v| v.complaint)
            });
            (p, open, business_time(core))
        })
        .await?;
    if let Some(open) = open {
        return Err(ApiError::conflict(format!(
            "complaint {open} about this order is still open; follow it with GET /v1/complaints/{open}"
        )));
    }
    let id = format!("complaint-{}", crate::acts::random_hex());
    let filed_id = crate::acts::party_act_id(&party.role, "complaint-filed");
    let mut event = serde_json::json!({"v": 1, "id": filed_id, "type": "complaint.filed", "at": at,
        "complaint": id, "consumer": consumer, "merchant": merchant, "category": category});
    if let Some(obj) = event.as_object_mut() {
        if let Some(order) = &f.order {
            obj.insert("order".into(), order.clone().into());
        }
        if let Some(text) = &f.text {
            obj.insert("text".into(), text.clone().into());
        }
        if !f.files.is_empty() {
            let list: Vec<serde_json::Value> = (f.files.iter())
                .map(|u| serde_json::json!({"sha256": u.sha256, "kind": u.kind}))
                .collect();
            obj.insert("evidence".into(), list.into());
        }
    }
    let line = event.to_string();
    // Checked before anything is kept: a filing the log would refuse keeps no file.
    weiquan_events::parse_event(&line).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    if line.len() > weiquan_events::MAX_LINE_BYTES {
        return Err(ApiError::too_large(
            "the complaint is too long for one event; shorten its text",
        ));
    }
    let files: Files = f
        .files
        .into_iter()
        .map(|u| (u.sha256, u.kind, u.bytes.len(), u.bytes))
        .collect();
    // Keep, record, and undo the keeping if the log refuses: on a task of its
    // own, so that a client going away mid-way cannot leave files no complaint names.
    let (app2, submitter) = (app.clone(), Submitter::Party(party.clone()));
    let outcome = tokio::spawn(async move { keep_and_record(&app2, submitter, line, pseudonym, files).await })
        .await
        .map_err(ApiError::internal)?;
    let (index, kept) = outcome?;
    let role = party.role.clone();
    let receipt = app
        .sequencer
        .read(move |core: &mut Core| core.receipt_for(index, &role))
        .await?
        .map_err(super::ledger_error)?;
    Ok(Json(FiledOut {
        complaint: id,
        index,
        receipt,
        evidence: (kept.into_iter())
            .map(|(sha256, kind, size)| EvidenceOut {
                sha256,
                kind: kind.to_owned(),
                size: Some(size as u64),
            })
            .collect(),
    }))
}

/// A filing's files as checked: address, kind, size, content.
type Files = Vec<(String, &'static str, usize, Vec<u8>)>;

/// Keeps a filing's files (sealed) for its consumer, then records its event;
/// if the log refuses the event, or cannot be written, removes the files this
/// filing brought. The event's leaf index and the files kept.
async fn keep_and_record(
    app: &crate::AppState,
    submitter: Submitter,
    line: String,
    pseudonym: String,
    files: Files,
) -> Result<(u64, Vec<(String, &'static str, usize)>), ApiError> {
    let owner = pseudonym.clone();
    let kept: Vec<(String, &'static str, usize, bool)> = app
        .outbox
        .with(move |s| {
            let key = s.secret(evidence::KEY_NAME)?;
            let mut kept = Vec::new();
            for (sha256, kind, size, bytes) in files {
                let sealed = evidence::seal(&key, &sha256, &bytes)
                    .map_err(|e| weiquan_store::StoreError::new("sealing evidence", e))?;
                let new = s.evidence_put(&EvidenceFile {
                    sha256: sha256.clone(),
                    kind: kind.to_owned(),
                    size: size as u64,
                    pseudonym: owner.clone(),
                    sealed,
                })?;
                kept.push((sha256, kind, size, new));
            }
            Ok(kept)
        })
        .await?;
    let refused = match submit_one(app, submitter, line).await {
        Ok(Submitted::Accepted(index)) => return Ok((index, kept.into_iter().map(|k| (k.0, k.1, k.2)).collect())),
        Ok(Submitted::Duplicate) => ApiError::conflict("the complaint could not be recorded; file it again"),
        Err(e) => e.into(),
    };
    // Not recorded: the files this filing brought go too (a file the consumer
    // brought before, for another complaint, stays).
    let new: Vec<String> = kept.iter().filter(|k| k.3).map(|k| k.0.clone()).collect();
    if let Err(e) = app
        .outbox
        .with(move |s| new.iter().try_for_each(|sha| s.evidence_remove(&pseudonym, sha)))
        .await
    {
        tracing::warn!(error = %e, "cannot remove the files of a complaint that was not recorded");
    }
    Err(refused)
}

/// What a step's body may say (nothing else: a field such as `by` is refused,
/// not silently ignored, since the key says who acts).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    /// `complaint.resolved`: `refund`, `replacement`, `compensation`, `rejected` or `withdrawn`.
    outcome: Option<String>,
    /// `complaint.escalated`: `platform` or `regulator`.
    to: Option<String>,
}

/// A step on a complaint: `respond` (the merchant it is against, or the
/// platform), `resolve` and `escalate` (the platform). Recorded in the log;
/// answered with the step's leaf index and receipt.
#[utoipa::path(post, path = "/v1/complaints/{id}/{step}", tag = "complaints",
    params(("id" = String, Path, description = "Complaint id"), ("step" = String, Path, description = "`respond`, `resolve` or `escalate`")),
    request_body(content = StepRequest, description = "`{\"outcome\": …}` to resolve, `{\"to\": …}` to escalate; nothing to respond"),
    responses((status = 200, description = "Recorded", body = crate::schemas::StepOut), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
pub(crate) async fn step(
    State(app): AppStateRef,
    caller: Caller,
    Path((id, step)): Path<(String, String)>,
    JsonBody(body): JsonBody<StepRequest>,
) -> Result<Json<StepOut>, ApiError> {
    let party = caller.party()?.clone();
    let c = {
        let (p, id) = (party.clone(), id.clone());
        app.sequencer
            .read(move |core: &mut Core| readable(core, &p, &id))
            .await?
    };
    let c = c.ok_or_else(|| ApiError::not_found("no complaint here that this key may act on"))?;
    let (ty, field, value) = match (step.as_str(), &party.role) {
        ("respond", Role::Merchant(_)) => ("complaint.responded", "by", "merchant".to_owned()),
        ("respond", Role::Platform) => ("complaint.responded", "by", "platform".to_owned()),
        ("resolve", Role::Platform) => (
            "complaint.resolved",
            "outcome",
            body.outcome.ok_or_else(|| {
                ApiError::unprocessable("outcome: required (refund, replacement, compensation, rejected, withdrawn)")
            })?,
        ),
        ("escalate", Role::Platform) => (
            "complaint.escalated",
            "to",
            body.to
                .ok_or_else(|| ApiError::unprocessable("to: required (platform or regulator)"))?,
        ),
        ("respond" | "resolve" | "escalate", role) => {
            return Err(ApiError::forbidden(format!(
                "a {} key may not {step} a complaint",
                role.as_string()
            )))
        }
        _ => return Err(ApiError::not_found("the steps are respond, resolve and escalate")),
    };
    if c.resolved {
        return Err(ApiError::conflict(format!("complaint {id} is resolved")));
    }
    let done = format!("{}:{value}", ty.trim_start_matches("complaint."));
    if ty == "complaint.responded" && c.steps.iter().any(|s| s.2 == done) {
        return Err(ApiError::conflict(format!(
            "complaint {id} was answered by the {value} already"
        )));
    }
    let at = app.sequencer.read(|core: &mut Core| business_time(core)).await?;
    let event = serde_json::json!({"v": 1, "id": crate::acts::party_act_id(&party.role, &format!("complaint-{step}")),
        "type": ty, "at": at, "complaint": id, field: value});
    let event_id = event["id"].as_str().unwrap_or_default().to_owned();
    let index = match submit_one(&app, Submitter::Party(party.clone()), event.to_string()).await? {
        Submitted::Accepted(index) => index,
        Submitted::Duplicate => return Err(ApiError::conflict("the step could not be recorded; send it again")),
    };
    let receipt = app
        .sequencer
        .read(move |core: &mut Core| core.ledger().receipt(index))
        .await?
        .map_err(super::ledger_error)?;
    Ok(Json(StepOut {
        event: event_id,
        at,
        step: done,
        index: Some(index),
        receipt: Some(receipt),
    }))
}
