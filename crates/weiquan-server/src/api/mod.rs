//! The HTTP routes. Each handler checks the caller's role, then asks the
//! sequencer (or, for the public log, its reading connection) for what it
//! needs. One module per resource — `events` (ingest, and weiquan's own acts),
//! `merchants` (findings, standing, the blacklist), `lotteries`, `hosts`, `log`
//! (proofs, receipts, checkpoint, tiles), `ops` — and the router, its limits
//! and the OpenAPI document here, in one place.

pub(crate) mod complaints;
pub(crate) mod events;
pub(crate) mod hosts;
pub(crate) mod log;
pub(crate) mod lotteries;
pub(crate) mod merchants;
pub(crate) mod ops;
pub(crate) mod paylater;

use crate::core::ItemResult;
use crate::problem::{ApiError, Problem};
use crate::AppState;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi;
use weiquan_engine::Lang;
use weiquan_ledger::LedgerError;

pub(crate) use events::{business_time, ingest_one, split_items, submit_one, IngestResponse, NotRecorded, Submitted};

/// The state every handler gets.
pub type AppStateRef = State<Arc<AppState>>;

/// Largest body of the routes that take one small object (a lift's reason, an
/// announcement, a beacon signature); only `/v1/events` takes batches.
const SMALL_BODY_BYTES: usize = 64 << 10;

/// A small JSON request body (a lift's reason, an announcement, a beacon
/// signature), read whatever its `Content-Type` says: `curl -d` sends
/// `application/x-www-form-urlencoded`, and these bodies are objects of a fixed
/// shape. An empty body reads as `{}`, and a leading byte-order mark is
/// skipped (as in `/v1/events`). What keeps an unauthorised caller from making
/// the server read a body is the `key_before_body` middleware, which refuses
/// a POST whose key may not post to its route (`auth::poster`): a new route
/// taking a body belongs in that table.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(format!(
                    "the body is too large; this route takes at most {SMALL_BODY_BYTES} bytes"
                )),
                _ => ApiError::bad_request(format!("the body could not be read: {}", e.body_text())),
            })?;
        let unmarked = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        let text: &[u8] = if unmarked.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            unmarked
        };
        serde_json::from_slice(text).map(JsonBody).map_err(|e| {
            ApiError::bad_request(format!(
                "the body is not the JSON object this route takes ({e}); send one object, \
                 as in the route's request body in /openapi.json"
            ))
        })
    }
}

/// The router with every route, limits and timeouts.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/events", post(events::post_events))
        .route("/v1/findings", get(merchants::get_findings))
        .route("/v1/merchants/{id}", get(merchants::get_merchant))
        .route("/v1/blacklist", get(merchants::get_blacklist))
        .route("/v1/watchlist", get(merchants::get_watchlist))
        .route(
            "/v1/blacklist/{merchant}/lift",
            post(merchants::lift_blacklist).layer(DefaultBodyLimit::max(SMALL_BODY_BYTES)),
        )
        .route("/v1/proofs/inclusion", get(log::inclusion_proof))
        .route("/v1/proofs/consistency", get(log::consistency_proof))
        .route("/v1/receipts/{index}", get(log::get_receipt))
        .route(
            "/v1/lotteries",
            post(lotteries::announce).layer(DefaultBodyLimit::max(SMALL_BODY_BYTES)),
        )
        .route("/v1/lotteries/{id}", get(lotteries::get_lottery))
        .route(
            "/v1/lotteries/{id}/close",
            post(lotteries::close).layer(DefaultBodyLimit::max(SMALL_BODY_BYTES)),
        )
        .route(
            "/v1/lotteries/{id}/draw",
            post(lotteries::draw_lottery).layer(DefaultBodyLimit::max(SMALL_BODY_BYTES)),
        )
        .route("/v1/lotteries/{id}/proof", get(lotteries::entry_proof))
        .route("/v1/hosts/{id}", get(hosts::get_host))
        .route("/v1/paylater", get(paylater::get_paylater))
        .route(
            "/v1/complaints",
            get(complaints::list)
                .post(complaints::file)
                .layer(DefaultBodyLimit::max(crate::evidence::MAX_TOTAL_BYTES + (1 << 20))),
        )
        .route("/v1/complaints/{id}", get(complaints::get_one))
        .route("/v1/complaints/{id}/evidence/{sha256}", get(complaints::get_evidence))
        .route(
            "/v1/complaints/{id}/{step}",
            post(complaints::step).layer(DefaultBodyLimit::max(SMALL_BODY_BYTES)),
        )
        .route("/v1/paylater/{provider}/disable", post(paylater::disable))
        .route("/log/checkpoint", get(log::get_checkpoint))
        .route("/log/tile/{*path}", get(log::get_tile))
        .route("/openapi.json", get(ops::openapi_json))
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .merge(crate::console::routes())
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

/// The `lang` of a query: `en`, or Chinese (the default, and what any other
/// value asks for: a reader still gets the findings).
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LangParam {
    /// English.
    En,
    /// Chinese.
    #[default]
    #[serde(other)]
    Zh,
}

/// A route's only query value: the language of its words.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub(crate) struct LangQuery {
    /// Message language: `en`, or Chinese (`zh`, the default, also for any other value).
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub lang: LangParam,
}

impl From<LangParam> for Lang {
    fn from(l: LangParam) -> Lang {
        match l {
            LangParam::En => Lang::En,
            LangParam::Zh => Lang::Zh,
        }
    }
}

pub(crate) fn ledger_error(e: LedgerError) -> ApiError {
    match e {
        LedgerError::OutOfRange(m) => ApiError::not_found(m),
        LedgerError::Store(e) => e.into(),
        other => ApiError::internal(other),
    }
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
    paths(events::post_events, merchants::get_findings, lotteries::announce, lotteries::get_lottery, lotteries::close, lotteries::draw_lottery, lotteries::entry_proof, hosts::get_host, paylater::get_paylater, paylater::disable, complaints::list, complaints::file, complaints::get_one, complaints::get_evidence, complaints::step, merchants::get_merchant, merchants::get_blacklist, merchants::get_watchlist, merchants::lift_blacklist, log::inclusion_proof, log::consistency_proof, log::get_receipt, log::get_checkpoint, log::get_tile, ops::healthz, ops::readyz, ops::metrics, ops::openapi_json),
    components(schemas(IngestResponse, ItemResult, Problem, merchants::LiftRequest, lotteries::DrawRequest, complaints::StepRequest, crate::schemas::ItemOut)),
    modifiers(&SecurityAddon, &ProblemResponses)
)]
pub struct ApiDoc;
