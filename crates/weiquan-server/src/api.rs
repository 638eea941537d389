//! The HTTP routes. Each handler checks the caller's role, then asks the
//! sequencer for what it needs.

use crate::acts::{own_id, Submitter};
use crate::auth::{Caller, Role};
use crate::core::{Core, ItemResult};
use crate::problem::{ApiError, Problem};
use crate::schemas::{BlacklistOut, FindingOut, FindingsPage, InclusionOut, LiftOut, MerchantOut, StandingOut};
use crate::AppState;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi;
use weiquan_engine::{Lang, Severity};
use weiquan_ledger::{parse_tile_path, LedgerError};

/// The state every handler gets.
pub type AppStateRef = State<Arc<AppState>>;

/// Largest body of the routes that take one small object (a lift's reason, an
/// announcement, a beacon signature); only `/v1/events` takes batches.
const SMALL_BODY_BYTES: usize = 64 << 10;

/// The router with every route, limits and timeouts.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/findings", get(get_findings))
        .route("/v1/merchants/{id}", get(get_merchant))
        .route("/v1/blacklist", get(get_blacklist))
        .route(
            "/v1/blacklist/{merchant}/lift",
            post(lift_blacklist).layer(DefaultBodyLimit::max(SMALL_BODY_BYTES)),
        )
        .route("/v1/proofs/inclusion", get(inclusion_proof))
        .route("/v1/proofs/consistency", get(consistency_proof))
        .route("/v1/receipts/{index}", get(get_receipt))
        .route(
            "/v1/lotteries",
            post(crate::lotteries::announce).layer(DefaultBodyLimit::max(SMALL_BODY_BYTES)),
        )
        .route("/v1/lotteries/{id}", get(crate::lotteries::get_lottery))
        .route(
            "/v1/lotteries/{id}/close",
            post(crate::lotteries::close).layer(DefaultBodyLimit::max(SMALL_BODY_BYTES)),
        )
        .route(
            "/v1/lotteries/{id}/draw",
            post(crate::lotteries::draw_lottery).layer(DefaultBodyLimit::max(SMALL_BODY_BYTES)),
        )
        .route("/v1/lotteries/{id}/proof", get(crate::lotteries::entry_proof))
        .route("/log/checkpoint", get(get_checkpoint))
        .route("/log/tile/{*path}", get(get_tile))
        .route("/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async { ApiError::not_found("no such route; see /openapi.json") })
        .layer(DefaultBodyLimit::max(crate::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::key_before_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::public_rate_limit,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        .layer(axum::middleware::from_fn(crate::problem::problems_everywhere))
        .with_state(state)
}

fn lang_of(q: Option<&str>) -> Lang {
    if q == Some("en") {
        Lang::En
    } else {
        Lang::Zh
    }
}

pub(crate) fn ledger_error(e: LedgerError) -> ApiError {
    match e {
        LedgerError::OutOfRange(m) => ApiError::not_found(m),
        LedgerError::Store(e) => e.into(),
        other => ApiError::internal(other),
    }
}

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

/// Splits a body into items: a JSON array, or NDJSON (blank lines skipped).
pub(crate) fn split_items(body: &str) -> Result<Vec<String>, ApiError> {
    if body.trim_start().starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(body)
            .map_err(|e| ApiError::bad_request(format!("the body starts with `[` but is not a JSON array: {e}")))?;
        return Ok(items.into_iter().map(|r| r.get().to_owned()).collect());
    }
    Ok(body
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect())
}

/// Ingest events.
#[utoipa::path(post, path = "/v1/events", tag = "events",
    request_body(description = "NDJSON (one event per line) or a JSON array of events, at most 10,000; each item is accepted, a duplicate, or rejected on its own",
        content((String = "application/x-ndjson"), (Vec<Object> = "application/json"))),
    responses((status = 200, description = "Each item accepted (with its ledger index), duplicate or rejected; answered once durable", body = IngestResponse),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)),
    security(("api_key" = [])))]
async fn post_events(State(app): AppStateRef, caller: Caller, body: String) -> Result<Json<IngestResponse>, ApiError> {
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
    let results = app
        .sequencer
        .ingest(Submitter::Party(party), items)
        .await?
        .map_err(|e| {
            ApiError::unavailable(format!(
                "the batch was not written ({e}); nothing of it was kept: retry"
            ))
        })?;
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

/// Filters of `GET /v1/findings`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct FindingsQuery {
    /// Rule id, e.g. `PS-01`.
    rule: Option<String>,
    /// Subject, e.g. `order:o1`.
    subject: Option<String>,
    /// `high`, `medium` or `low`.
    severity: Option<String>,
    /// Owning merchant.
    merchant: Option<String>,
    /// Only findings at or after this time (RFC 3339).
    since: Option<String>,
    /// Continue after this ledger index (from `next_cursor`).
    cursor: Option<u64>,
    /// Page size (default 100, at most 1000).
    limit: Option<usize>,
    /// Message language: `zh` (default) or `en`.
    lang: Option<String>,
}

/// List findings.
#[utoipa::path(get, path = "/v1/findings", tag = "findings", params(FindingsQuery),
    responses((status = 200, description = "A page of findings in ledger order, with `next_cursor` when there are more", body = crate::schemas::FindingsPage), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("api_key" = [])))]
async fn get_findings(
    State(app): AppStateRef,
    caller: Caller,
    Query(q): Query<FindingsQuery>,
) -> Result<Json<FindingsPage>, ApiError> {
    let role = &caller
        .require("read findings", |r| !matches!(r, Role::Consumer(_)))?
        .role;
    let merchant = match role {
        Role::Merchant(own) => {
            if q.merchant.as_deref().is_some_and(|m| m != own) {
                return Err(ApiError::forbidden("a merchant key reads only its own findings"));
            }
            Some(own.clone())
        }
        _ => q.merchant.clone(),
    };
    let severity = match q.severity.as_deref() {
        None => None,
        Some("high") => Some(Severity::High),
        Some("medium") => Some(Severity::Medium),
        Some("low") => Some(Severity::Low),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "severity `{other}` is not high, medium or low"
            )))
        }
    };
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => Some(weiquan_events::Time::parse(s).map_err(|e| ApiError::bad_request(format!("since: {e}")))?),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let lang = lang_of(q.lang.as_deref());
    let cursor = q.cursor;
    // Consumers' ids are theirs and the platform's and regulators' to read.
    let reveal = matches!(role, Role::Platform | Role::Regulator);
    let page = app
        .sequencer
        .read(move |core: &mut Core| {
            // The engine knows consumers by pseudonym: a subject may name either.
            let subject = match q.subject.as_deref() {
                Some(s) => Some(core.subject_filter(s)?),
                None => None,
            };
            let rules = core.rules();
            let mut items = Vec::new();
            let mut next = None;
            let start = cursor.map_or(0, |c| core.findings().partition_point(|f| f.index <= c));
            for f in &core.findings()[start..] {
                let ok = q.rule.as_deref().is_none_or(|r| f.finding.rule.as_str() == r)
                    && subject.as_deref().is_none_or(|s| f.finding.subject == s)
                    && severity.is_none_or(|s| rules.severity(f.finding.rule) == s)
                    && merchant
                        .as_deref()
                        .is_none_or(|m| f.finding.merchant.as_deref() == Some(m))
                    && since.is_none_or(|t| f.finding.at >= t);
                if !ok {
                    continue;
                }
                if items.len() == limit {
                    next = items.last().map(|f: &FindingOut| f.index);
                    break;
                }
                items.push(core.finding_out(f, lang));
            }
            if reveal {
                core.reveal_consumers(&mut items)?;
            }
            Ok::<_, weiquan_store::StoreError>(FindingsPage {
                findings: items,
                next_cursor: next,
            })
        })
        .await??;
    Ok(Json(page))
}

/// A merchant's credit grade and blacklist state (public); its findings for platform, regulator and itself.
#[utoipa::path(get, path = "/v1/merchants/{id}", tag = "merchants", params(("id" = String, Path, description = "Merchant id")),
    responses((status = 200, description = "Grade with reasons, blacklist state, and (for those allowed) open findings", body = crate::schemas::MerchantOut), (status = 404, body = Problem)))]
async fn get_merchant(
    State(app): AppStateRef,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MerchantOut>, ApiError> {
    let full = caller
        .0
        .as_ref()
        .is_some_and(|p| p.role.reads_all() || p.role == Role::Merchant(id.clone()));
    let out = app
        .sequencer
        .read(move |core: &mut Core| {
            let standing = core.engine().standing(&id)?.into();
            let findings = full.then(|| {
                core.findings()
                    .iter()
                    .filter(|f| f.finding.merchant.as_deref() == Some(id.as_str()))
                    .map(|f| core.finding_out(f, Lang::Zh))
                    .collect()
            });
            Some(MerchantOut { standing, findings })
        })
        .await?
        .ok_or_else(|| ApiError::not_found("no events name this merchant"))?;
    Ok(Json(out))
}

/// Blacklisted merchants with the findings behind each.
#[utoipa::path(get, path = "/v1/blacklist", tag = "merchants", responses((status = 200, description = "Blacklisted merchants", body = crate::schemas::BlacklistOut), (status = 401, body = Problem), (status = 403, body = Problem)), security(("api_key" = [])))]
async fn get_blacklist(State(app): AppStateRef, caller: Caller) -> Result<Json<BlacklistOut>, ApiError> {
    caller.require("read the blacklist", Role::reads_all)?;
    let list = app
        .sequencer
        .read(|core: &mut Core| {
            core.engine()
                .standings()
                .into_iter()
                .filter(|s| s.blacklisted.is_some())
                .map(StandingOut::from)
                .collect()
        })
        .await?;
    Ok(Json(BlacklistOut { blacklist: list }))
}

/// Body of a blacklist lift.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LiftRequest {
    /// Why the blacklist is lifted (required; it is logged).
    reason: Option<String>,
}

/// Lift a merchant's blacklist (regulator); the action is itself logged in the ledger.
#[utoipa::path(post, path = "/v1/blacklist/{merchant}/lift", tag = "merchants", params(("merchant" = String, Path, description = "Merchant id")), request_body = LiftRequest,
    responses((status = 200, description = "Lifted; the ledger index of the logged action", body = crate::schemas::LiftOut), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn lift_blacklist(
    State(app): AppStateRef,
    caller: Caller,
    Path(merchant): Path<String>,
    body: String,
) -> Result<Json<LiftOut>, ApiError> {
    let regulator = caller
        .require("lift a blacklist (regulator keys only)", |r| *r == Role::Regulator)?
        .clone();
    let _act = app.acts.lock().await;
    // Read as JSON whatever the Content-Type says: the body is small and its shape is fixed.
    let request: Option<LiftRequest> = serde_json::from_str(&body).ok();
    let reason = request
        .and_then(|b| b.reason)
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| ApiError::unprocessable("say why: send {\"reason\": \"…\"}"))?;
    let m = merchant.clone();
    let (blacklisted, at) = app
        .sequencer
        .read(move |core: &mut Core| {
            let blacklisted = core.engine().standing(&m).is_some_and(|s| s.blacklisted.is_some());
            (blacklisted, business_time(core))
        })
        .await?;
    if !blacklisted {
        return Err(ApiError::not_found(format!("merchant {merchant} is not blacklisted")));
    }
    // Business time stays the platform's (a wall-clock time would move every deadline);
    // when the regulator acted is kept beside it.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let event = json!({"v": 1, "id": own_id("lift"), "type": "merchant.blacklist_lifted",
        "at": at, "merchant": merchant, "by": "regulator", "reason": reason, "acted_at": now});
    let index = ingest_one(&app, regulator, event).await?;
    Ok(Json(LiftOut {
        lifted: merchant,
        index,
    }))
}

/// The business time for events weiquan writes itself: the engine's clock (wall clock before any event).
pub(crate) fn business_time(core: &Core) -> String {
    core.engine().clock().map_or_else(
        || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        |c| c.to_string(),
    )
}

/// Writes one event of weiquan's own, acting on the request of `on_behalf` (the leaf names both).
pub(crate) async fn ingest_one(
    app: &crate::AppState,
    on_behalf: crate::acts::Party,
    event: Value,
) -> Result<u64, ApiError> {
    let results = app
        .sequencer
        .ingest(Submitter::Weiquan(on_behalf), vec![event.to_string()])
        .await?
        .map_err(|e| ApiError::unavailable(format!("not written ({e}); retry")))?;
    match results.into_iter().next() {
        Some(ItemResult::Accepted { index }) => Ok(index),
        Some(ItemResult::Duplicate) => Err(ApiError::conflict(
            "this was already done (an event with the same id is in the ledger)",
        )),
        Some(ItemResult::Rejected { field, error }) => Err(ApiError::unprocessable(format!(
            "{}{error}",
            field.map(|f| format!("{f}: ")).unwrap_or_default()
        ))),
        None => Err(ApiError::internal("no result for the event")),
    }
}

/// Query of an inclusion proof.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct InclusionQuery {
    /// Leaf index.
    index: u64,
    /// Tree size (default: current).
    size: Option<u64>,
}

/// Proof that a leaf is in the tree of a given size.
#[utoipa::path(get, path = "/v1/proofs/inclusion", tag = "log", params(InclusionQuery), responses((status = 200, description = "Base64 hashes", body = crate::schemas::InclusionOut), (status = 404, body = Problem)))]
async fn inclusion_proof(
    State(app): AppStateRef,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<InclusionOut>, ApiError> {
    let out = (app.log)
        .read(move |log| {
            let size = q.size.unwrap_or(log.size());
            log.inclusion_proof(q.index, size).map(|p| (size, p))
        })
        .await?;
    Ok(Json(InclusionOut {
        index: q.index,
        size: out.0,
        proof: out.1.iter().map(|h| BASE64_STANDARD.encode(h.0)).collect(),
    }))
}

/// Query of a consistency proof.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ConsistencyQuery {
    /// Older tree size.
    from: u64,
    /// Newer tree size (default: current).
    to: Option<u64>,
}

/// Proof that the tree of `from` leaves is a prefix of the tree of `to` leaves.
#[utoipa::path(get, path = "/v1/proofs/consistency", tag = "log", params(ConsistencyQuery), responses((status = 200, description = "A consistency proof (as `weiquan verify consistency` reads it)", body = crate::schemas::ConsistencyOut), (status = 404, body = Problem)))]
async fn consistency_proof(
    State(app): AppStateRef,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<weiquan_ledger::ConsistencyProof>, ApiError> {
    let proof = (app.log)
        .read(move |log| {
            let to = q.to.unwrap_or(log.size());
            (log.consistency_proof(q.from, to)).map(|p| weiquan_ledger::ConsistencyProof::new(q.from, to, &p))
        })
        .await?;
    Ok(Json(proof))
}

/// A self-contained receipt for one leaf (platform, regulator, or the consumer or merchant it names);
/// with the salt and values of its personal data for the platform, a regulator and the consumer it is about.
#[utoipa::path(get, path = "/v1/receipts/{index}", tag = "log", params(("index" = u64, Path, description = "Leaf index")),
    responses((status = 200, description = "Leaf, signed checkpoint and inclusion proof", body = crate::schemas::ReceiptOut), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn get_receipt(
    State(app): AppStateRef,
    caller: Caller,
    Path(index): Path<u64>,
) -> Result<Json<weiquan_ledger::Receipt>, ApiError> {
    let role = caller.role()?.clone();
    let receipt = app
        .sequencer
        .read(move |core: &mut Core| core.receipt_for(index, &role))
        .await?
        .map_err(ledger_error)?
        .ok_or_else(|| ApiError::forbidden("this key may fetch receipts only for leaves that name it"))?;
    Ok(Json(receipt))
}

/// The newest signed checkpoint (C2SP tlog-checkpoint, signed note).
#[utoipa::path(get, path = "/log/checkpoint", tag = "log", responses((status = 200, description = "text/plain signed note", body = String, content_type = "text/plain")))]
async fn get_checkpoint(State(app): AppStateRef) -> Result<Response, ApiError> {
    let cp = match app.log.read(|log| log.latest_checkpoint()).await? {
        Some(cp) => cp,
        // Before the first append no checkpoint is stored: the sequencer signs the empty one.
        None => app
            .sequencer
            .read(|core: &mut Core| core.ledger().checkpoint())
            .await?
            .map_err(ledger_error)?,
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        cp,
    )
        .into_response())
}

/// A C2SP tlog-tiles tile: `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`.
#[utoipa::path(get, path = "/log/tile/{path}", tag = "log", params(("path" = String, Path, description = "Tile path after /log/tile/")),
    responses((status = 200, description = "Tile bytes; full tiles are immutable", content_type = "application/octet-stream"), (status = 404, body = Problem)))]
async fn get_tile(State(app): AppStateRef, Path(path): Path<String>) -> Result<Response, ApiError> {
    let req = parse_tile_path(&format!("tile/{path}")).ok_or_else(|| ApiError::not_found("not a C2SP tile path"))?;
    let bytes = (app.log.read(move |log| log.tile(req)).await?)
        .ok_or_else(|| ApiError::not_found("the tree does not (yet) have this tile"))?;
    // A full tile never changes; a partial one is replaced as the tree grows.
    let cache = if req.width == 256 {
        "public, max-age=31536000, immutable"
    } else {
        "no-store"
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, cache),
        ],
        bytes,
    )
        .into_response())
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "The process is up", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the sequencer answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, description = "Ready", body = String, content_type = "text/plain"), (status = 503, body = Problem)))]
async fn readyz(State(app): AppStateRef) -> Result<&'static str, ApiError> {
    // A standby process is alive but not ready: route traffic to the sequencer.
    app.sequencer.read(|_| ()).await?;
    Ok("ready")
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics(State(app): AppStateRef) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        app.metrics.render(),
    )
        .into_response()
}

/// This API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every error a route can answer, whoever produces it (a handler, axum's
/// extractors, the router, the timeout, the rate limits), is declared, and as
/// `application/problem+json` (utoipa writes `application/json` for a body).
struct ProblemResponses;

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = || {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build()
        };
        let response = |why: &str| {
            ResponseBuilder::new()
                .description(why)
                .content("application/problem+json", problem())
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                (&mut item.get, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.delete, false),
            ];
            for (op, has_body) in ops {
                let Some(op) = op.as_mut() else { continue };
                let responses = &mut op.responses.responses;
                // Problems a handler declared: only their content type changes.
                for (status, r) in responses.iter_mut() {
                    if let utoipa::openapi::RefOr::T(r) = r {
                        if !status.starts_with('2') && r.content.shift_remove("application/json").is_some() {
                            r.content.insert("application/problem+json".into(), problem());
                        }
                    }
                }
                let ops_route = matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics");
                let mut add = |status: &str, why: &str| {
                    responses.entry(status.into()).or_insert_with(|| response(why).into());
                };
                add("400", "Malformed path, query or body");
                add("404", "No such resource");
                add("405", "Method not allowed on this route");
                add("408", "The request took too long");
                add("414", "Request target too long");
                add("431", "Too many or too large header fields");
                add("500", "Internal error (logged)");
                add("503", "Not ready: standing by, or the store is unavailable");
                if !ops_route {
                    add("429", "Rate limit exhausted (per key, or per address without one)");
                }
                if op.security.is_some() || has_body {
                    add("401", "No valid API key");
                    add("403", "This key's role may not do this");
                }
                if has_body {
                    add("413", "Body or batch too large");
                    add("422", "Well-formed but not acceptable");
                }
            }
        }
    }
}

/// The OpenAPI document, generated from the handlers above.
#[derive(OpenApi)]
#[openapi(
    info(title = "weiquan", description = "Consumer-protection findings over a platform's events, with a tamper-evident log"),
    paths(post_events, get_findings, crate::lotteries::announce, crate::lotteries::get_lottery, crate::lotteries::close, crate::lotteries::draw_lottery, crate::lotteries::entry_proof, get_merchant, get_blacklist, lift_blacklist, inclusion_proof, consistency_proof, get_receipt, get_checkpoint, get_tile, healthz, readyz, metrics, openapi_json),
    components(schemas(IngestResponse, ItemResult, Problem, LiftRequest, crate::schemas::ItemOut)),
    modifiers(&SecurityAddon, &ProblemResponses)
)]
pub struct ApiDoc;
