//! The log: proofs, receipts, the signed checkpoint and tiles.

use super::{ledger_error, AppStateRef};
use crate::auth::Caller;
use crate::core::Core;
use crate::problem::{ApiError, Problem};
use crate::schemas::InclusionOut;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde::Deserialize;
use weiquan_ledger::{parse_tile_path, TileRequest};

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
pub(crate) async fn inclusion_proof(
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
#[utoipa::path(get, path = "/v1/proofs/consistency", tag = "log", params(ConsistencyQuery), responses((status = 200, description = "A consistency proof (as `weiquan verify consistency` reads it)", body = crate::schemas::ConsistencyOut), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn consistency_proof(
    State(app): AppStateRef,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<weiquan_ledger::ConsistencyProof>, ApiError> {
    // Sizes the wrong way round are a mistake in the request, not a tree missing here.
    if let Some(to) = q.to.filter(|&to| to < q.from) {
        return Err(ApiError::bad_request(format!(
            "from ({}) is larger than to ({to}); ask for the older size in `from`",
            q.from
        )));
    }
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
pub(crate) async fn get_receipt(
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

/// The newest signed checkpoint (what `/log/checkpoint` serves and the console shows).
pub(crate) async fn latest_checkpoint(app: &crate::AppState) -> Result<Vec<u8>, ApiError> {
    match app.log.read(|log| log.latest_checkpoint()).await? {
        Some(cp) => Ok(cp),
        // Before the first append no checkpoint is stored: the sequencer signs the empty one.
        None => app
            .sequencer
            .read(|core: &mut Core| core.ledger().checkpoint())
            .await?
            .map_err(ledger_error),
    }
}

/// The newest signed checkpoint (C2SP tlog-checkpoint, signed note).
#[utoipa::path(get, path = "/log/checkpoint", tag = "log", responses((status = 200, description = "text/plain signed note", body = String, content_type = "text/plain")))]
pub(crate) async fn get_checkpoint(State(app): AppStateRef) -> Result<Response, ApiError> {
    Ok(checkpoint_response(latest_checkpoint(&app).await?))
}

/// A signed checkpoint as served: text, never cached (the next one replaces it).
pub(crate) fn checkpoint_response(cp: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        cp,
    )
        .into_response()
}

/// The tile a path after `tile/` asks for.
pub(crate) fn tile_request(path: &str) -> Result<TileRequest, ApiError> {
    parse_tile_path(&format!("tile/{path}")).ok_or_else(|| ApiError::not_found("not a C2SP tile path"))
}

/// A tile as served (`None`: the tree does not have it, or not yet): a full
/// tile never changes; a partial one is replaced as the tree grows.
pub(crate) fn tile_response(req: TileRequest, bytes: Option<Vec<u8>>) -> Result<Response, ApiError> {
    let bytes = bytes.ok_or_else(|| ApiError::not_found("the tree does not (yet) have this tile"))?;
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

/// A C2SP tlog-tiles tile: `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`.
#[utoipa::path(get, path = "/log/tile/{path}", tag = "log", params(("path" = String, Path, description = "Tile path after /log/tile/")),
    responses((status = 200, description = "Tile bytes; full tiles are immutable", content_type = "application/octet-stream"), (status = 404, body = Problem)))]
pub(crate) async fn get_tile(State(app): AppStateRef, Path(path): Path<String>) -> Result<Response, ApiError> {
    let req = tile_request(&path)?;
    tile_response(req, app.log.read(move |log| log.tile(req)).await?)
}
