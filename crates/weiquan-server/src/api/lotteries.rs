//! Lotteries drawn through weiquan: weiquan holds the seed from announcement
//! to draw, records the entrants root at the close, and draws by the published
//! algorithm, so that every participant can check the result.

use super::{business_time, ingest_one, AppStateRef, JsonBody};
use crate::acts::{own_id, OWN_ID_PREFIX};
use crate::auth::{Caller, Role};
use crate::core::Core;
use crate::problem::{ApiError, Problem};
use crate::schemas::{
    AnnouncedOut, ClosedOut, DrawProofOut, DrawnOut, EntryProofOut, FindingOut, LotteryOut, PrizeOut, WinnerOut,
};
use axum::extract::{Path, Query, State};
use axum::Json;
use rand_core::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};
use weiquan_engine::{draw, Lang, LotteryView};

async fn view(app: &crate::AppState, id: &str) -> Result<(LotteryView, String), ApiError> {
    let id = id.to_owned();
    app.sequencer
        .read(move |core: &mut Core| core.engine().lottery(&id).map(|v| (v, business_time(core))))
        .await?
        .ok_or_else(|| ApiError::not_found("no events name this lottery"))
}

/// Announce a lottery whose seed weiquan generates and holds (platform).
#[utoipa::path(post, path = "/v1/lotteries", tag = "lotteries",
    request_body(content = Object, description = "The fields of lottery.announced except `commitment` (weiquan makes it); `id` and `at` optional"),
    responses((status = 200, description = "Announced: ledger index and the published commitment", body = crate::schemas::AnnouncedOut), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
pub async fn announce(
    State(app): AppStateRef,
    caller: Caller,
    JsonBody(mut fields): JsonBody<serde_json::Map<String, Value>>,
) -> Result<Json<AnnouncedOut>, ApiError> {
    let platform = caller
        .require("announce lotteries (platform keys only)", |r| *r == Role::Platform)?
        .clone();
    if fields.contains_key("commitment") {
        return Err(ApiError::unprocessable(
            "weiquan makes the commitment here; to commit to your own seed, send lottery.announced to /v1/events",
        ));
    }
    // This route builds a lottery.announced itself: its envelope is weiquan's to
    // set, and the event it writes in its own name carries the announcement's
    // fields only (nothing a platform adds speaks in weiquan's name).
    if let Some(k) = ["type", "id", "v"].into_iter().find(|k| fields.contains_key(*k)) {
        return Err(ApiError::unprocessable(format!(
            "`{k}` is set by weiquan on this route; send only the announcement's fields (lottery, merchant, host, stream, prizes, …)"
        )));
    }
    if let Some(k) = fields.keys().find(|k| !ANNOUNCEMENT_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::unprocessable(format!(
            "`{k}` is not a field of an announcement; send only {}",
            ANNOUNCEMENT_FIELDS.join(", ")
        )));
    }
    let lottery = fields
        .get("lottery")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::unprocessable("lottery: required"))?
        .to_owned();
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    let seed = hex::encode(bytes);
    let at = match fields.remove("at") {
        Some(at) => at,
        None => Value::String(app.sequencer.read(|core: &mut Core| business_time(core)).await?),
    };
    let mut event = json!({"v": 1, "id": own_id("announce"), "type": "lottery.announced", "at": at});
    if let Some(o) = event.as_object_mut() {
        o.extend(fields);
        o.insert("commitment".into(), Value::String(draw::commitment(&seed)));
    }
    // Validate before keeping the seed, keep it before announcing: a commitment must never outlive its seed.
    let line = event.to_string();
    let parsed = weiquan_events::parse_event(&line).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    // Everything that could refuse the announcement is checked before the seed is
    // kept: a seed kept for an announcement then refused would block the id for good.
    if let Some(bound) = app.max_future_ms {
        let now = weiquan_events::Time::from_unix_ms(chrono::Utc::now().timestamp_millis(), 0);
        crate::acts::check_future(parsed.at, now, bound)
            .map_err(|r| ApiError::unprocessable(format!("{}: {}", r.field, r.error)))?;
    }
    if line.len() > weiquan_events::MAX_LINE_BYTES / 2 {
        return Err(ApiError::too_large(format!(
            "the announcement is {} bytes; at most {} are accepted here",
            line.len(),
            weiquan_events::MAX_LINE_BYTES / 2
        )));
    }
    let _act = app.acts.lock().await;
    if let Ok(existing) = view(&app, &lottery).await {
        if existing.0.drawn || existing.0.commitment.is_some() {
            return Err(ApiError::conflict(format!(
                "lottery {lottery} is already committed to or drawn in the ledger; announce a new lottery id"
            )));
        }
    }
    let (l, s) = (lottery.clone(), seed.clone());
    app.sequencer
        .read(move |core: &mut Core| core.hold_seed(&l, &s))
        .await?
        .map_err(|e| match e.kind {
            weiquan_store::StoreErrorKind::Conflict => {
                ApiError::conflict(format!("lottery {lottery} already has a seed held by weiquan"))
            }
            _ => e.into(),
        })?;
    let index = ingest_one(&app, platform, event).await?;
    Ok(Json(AnnouncedOut {
        lottery,
        index,
        commitment: draw::commitment(&seed),
        algorithm: draw::ALGORITHM.to_owned(),
    }))
}

/// The fields `POST /v1/lotteries` takes: those of `lottery.announced` that the
/// platform sets (`commitment` is weiquan's), and `at`.
const ANNOUNCEMENT_FIELDS: [&str; 13] = [
    "lottery",
    "merchant",
    "host",
    "stream",
    "prizes",
    "conditions",
    "draw_at",
    "deliver_within_days",
    "organizer",
    "contact",
    "odds",
    "beacon_round",
    "at",
];

/// Close entries and record the entrants root in the ledger (platform).
#[utoipa::path(post, path = "/v1/lotteries/{id}/close", tag = "lotteries", params(("id" = String, Path, description = "Lottery id")),
    responses((status = 200, description = "Closed: entrants count and root", body = crate::schemas::ClosedOut), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
pub async fn close(
    State(app): AppStateRef,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ClosedOut>, ApiError> {
    let platform = caller
        .require("close lotteries (platform keys only)", |r| *r == Role::Platform)?
        .clone();
    // Checked and written as one act: two closes at once would both pass the check.
    let _act = app.acts.lock().await;
    let (v, at) = view(&app, &id).await?;
    if v.closed {
        return Err(ApiError::conflict(format!("lottery {id} is already closed")));
    }
    let mut event = json!({"v": 1, "id": own_id("close"), "type": "lottery.closed", "at": at, "lottery": id,
        "entrants": v.entrant_count});
    // Only a committed draw runs over the entrant list; its root is what the close fixes.
    let root = v.commitment.is_some().then(|| {
        let refs: Vec<&str> = v.entrants.iter().map(String::as_str).collect();
        hex::encode(draw::entrants_root(&refs))
    });
    if let (Some(r), Some(o)) = (&root, event.as_object_mut()) {
        o.insert("entrants_root".into(), json!(r));
    }
    let index = ingest_one(&app, platform, event).await?;
    Ok(Json(ClosedOut {
        lottery: id,
        index,
        entrants: v.entrant_count as u64,
        entrants_root: root,
    }))
}

/// Body of a draw (optional: an empty body draws without a beacon).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DrawRequest {
    /// The drand signature of the beacon round fixed at announcement, for a
    /// lottery announced with `beacon_round` (weiquan fetches nothing itself).
    #[serde(default)]
    beacon_signature: Option<String>,
}

/// Draw a closed lottery with the seed weiquan holds (platform).
#[utoipa::path(post, path = "/v1/lotteries/{id}/draw", tag = "lotteries", params(("id" = String, Path, description = "Lottery id")), request_body = DrawRequest,
    responses((status = 200, description = "Drawn: winners, revealed seed, proof", body = crate::schemas::DrawnOut), (status = 400, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
pub async fn draw_lottery(
    State(app): AppStateRef,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<DrawRequest>,
) -> Result<Json<DrawnOut>, ApiError> {
    let platform = caller
        .require("draw lotteries (platform keys only)", |r| *r == Role::Platform)?
        .clone();
    let _act = app.acts.lock().await;
    let (v, at) = view(&app, &id).await?;
    if !v.closed || v.drawn {
        return Err(ApiError::conflict(format!(
            "lottery {id} must be closed and not yet drawn"
        )));
    }
    let l = id.clone();
    let seed = app
        .sequencer
        .read(move |core: &mut Core| core.db().seed_of(&l))
        .await??
        .ok_or_else(|| {
            ApiError::conflict(format!(
                "weiquan holds no seed for lottery {id}: announce it through POST /v1/lotteries"
            ))
        })?;
    // A drand round fixed at announcement: the platform brings that round's signature (weiquan fetches nothing).
    let beacon_signature = request.beacon_signature;
    let refs: Vec<&str> = v.entrants.iter().map(String::as_str).collect();
    let prizes: Vec<(&str, u32)> = v.prizes.iter().map(|p| (p.0.as_str(), p.2)).collect();
    let winners: Vec<WinnerOut> = draw::winners(&seed, v.beacon_round, beacon_signature.as_deref(), &refs, &prizes)
        .map_err(ApiError::unprocessable)?
        .into_iter()
        .map(|(p, prize)| WinnerOut::new(p, prize, None))
        .collect();
    let proof = DrawProofOut {
        algorithm: draw::ALGORITHM.to_owned(),
        entrants_root: hex::encode(draw::entrants_root(&refs)),
        entrants: refs.len() as u64,
    };
    let mut event = json!({"v": 1, "id": own_id("draw"), "type": "lottery.drawn", "at": at, "lottery": id,
        "winners": winners, "seed": seed, "proof": proof});
    if let (Some(sig), Some(o)) = (beacon_signature, event.as_object_mut()) {
        o.insert("beacon_signature".into(), Value::String(sig));
    }
    let index = ingest_one(&app, platform, event).await?;
    Ok(Json(DrawnOut {
        lottery: id,
        index,
        winners,
        seed,
        proof,
    }))
}

/// A participant id as the public sees it in a list of winners: its first
/// character and stars (公示 lists print 张*), so that a winner can recognise
/// themselves and nobody else can take the ids down.
fn masked(participant: &str) -> String {
    let mut chars = participant.chars();
    let first = chars.next().map(String::from).unwrap_or_default();
    let rest = chars.count().clamp(1, 3);
    format!("{first}{}", "*".repeat(rest))
}

/// Whether `caller` reads a lottery's participants in the clear: the platform,
/// regulators, and the merchant that runs it.
fn sees_participants(caller: &Caller, merchant: Option<&str>) -> bool {
    caller
        .0
        .as_ref()
        .is_some_and(|p| p.role.reads_all() || merchant.is_some_and(|m| p.role == Role::Merchant(m.to_owned())))
}

/// Masks the winners' ids wherever `text` names them (findings' messages).
fn mask_in(text: &str, winners: &[weiquan_engine::WinnerView]) -> String {
    let mut ids: Vec<&str> = winners.iter().map(|w| w.0.as_str()).collect();
    // Longest first, so that `p1` does not cut into `p12`.
    ids.sort_by_key(|id| std::cmp::Reverse(id.len()));
    ids.dedup();
    ids.iter().fold(text.to_owned(), |t, id| t.replace(id, &masked(id)))
}

/// A lottery: commitment, entrants, draw result, prize delivery and findings (public; winners' ids masked
/// except for the platform, regulators and the lottery's merchant).
#[utoipa::path(get, path = "/v1/lotteries/{id}", tag = "lotteries", params(("id" = String, Path, description = "Lottery id"), super::LangQuery),
    responses((status = 200, description = "The lottery", body = crate::schemas::LotteryOut), (status = 404, body = Problem)))]
pub async fn get_lottery(
    State(app): AppStateRef,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<super::LangQuery>,
) -> Result<Json<LotteryOut>, ApiError> {
    let lang = Lang::from(q.lang);
    let (v, _) = view(&app, &id).await?;
    let clear = sees_participants(&caller, v.merchant.as_deref());
    let ids = vec![id.clone()];
    let findings = app
        .sequencer
        .read(move |core: &mut Core| public_findings(core, &ids, &caller, lang))
        .await??;
    // The engine keeps entrants' ids for committed lotteries only: a root of the
    // empty list would be a claim about entrants it never listed.
    let entrants_root = v.commitment.is_some().then(|| {
        let refs: Vec<&str> = v.entrants.iter().map(String::as_str).collect();
        hex::encode(draw::entrants_root(&refs))
    });
    Ok(Json(LotteryOut {
        lottery: id,
        merchant: v.merchant,
        commitment: v.commitment,
        prizes: (v.prizes.into_iter())
            .map(|(name, value_fen, count)| PrizeOut {
                name,
                value_fen,
                count: count.into(),
            })
            .collect(),
        entrants: v.entrant_count as u64,
        entrants_root,
        late_entries: v.late_entries as u64,
        closed: v.closed,
        drawn: v.drawn,
        cancelled: v.cancelled,
        winners: (v.winners.iter())
            .map(|w| {
                let who = if clear { w.0.clone() } else { masked(&w.0) };
                WinnerOut {
                    delivered: Some(w.3),
                    ..WinnerOut::new(who, w.1.clone(), Some(w.2 > 0))
                }
            })
            .collect(),
        findings,
        algorithm: draw::ALGORITHM.to_owned(),
        draw_verifies: v.verified.as_ref().map(Result::is_ok),
        draw_problem: v.verified.and_then(Result::err),
    }))
}

/// The findings about the lotteries `ids`, in ledger order, as `caller` may
/// read them: winners' ids masked in messages unless the caller sees a
/// lottery's participants.
pub(super) fn public_findings(
    core: &Core,
    ids: &[String],
    caller: &Caller,
    lang: Lang,
) -> Result<Vec<FindingOut>, weiquan_store::StoreError> {
    // Per lottery: its subject → (whether the caller reads its winners, its winners).
    let lotteries: std::collections::HashMap<String, (bool, _)> = (ids.iter())
        .filter_map(|id| {
            let (merchant, winners) = core.engine().lottery_public(id)?;
            let clear = sees_participants(caller, merchant.as_deref());
            Some((format!("lottery:{id}"), (clear, winners)))
        })
        .collect();
    let subjects: Vec<String> = lotteries.keys().cloned().collect();
    let mut found = Vec::new();
    // A host may have run more lotteries than one statement binds parameters.
    for chunk in subjects.chunks(1000) {
        let filter = weiquan_store::FindingFilter {
            subjects: Some(chunk.to_vec()),
            ..weiquan_store::FindingFilter::default()
        };
        found.extend(core.findings(&filter)?);
    }
    found.sort_by_key(|f| f.index);
    Ok((found.iter())
        .filter_map(|f| {
            let (clear, winners) = lotteries.get(&f.finding.subject)?;
            let mut out = core.finding_out(f, lang);
            if !clear {
                out.message = mask_in(&out.message, winners);
            }
            Some(out)
        })
        .collect())
}

/// Which participant a proof is for.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ProofQuery {
    /// Pseudonymous participant id.
    pub(crate) participant: String,
}

/// Proof that a participant's entry is among the entrants, and what the draw needs to be recomputed (public).
#[utoipa::path(get, path = "/v1/lotteries/{id}/proof", tag = "lotteries", params(("id" = String, Path, description = "Lottery id"), ProofQuery),
    responses((status = 200, description = "Entry index, audit path (hex, RFC 6962), root; seed and winners once drawn", body = crate::schemas::EntryProofOut), (status = 404, body = Problem)))]
pub async fn entry_proof(
    State(app): AppStateRef,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ProofQuery>,
) -> Result<Json<EntryProofOut>, ApiError> {
    let (v, _) = view(&app, &id).await?;
    if v.commitment.is_none() {
        return Err(ApiError::not_found(format!(
            "lottery {id} published no commitment, so there is no draw to prove an entry against: weiquan keeps entrants for committed lotteries only ({} entered before the close)",
            v.entrant_count
        )));
    }
    let refs: Vec<&str> = v.entrants.iter().map(String::as_str).collect();
    let index = refs.iter().position(|p| *p == q.participant).ok_or_else(|| {
        ApiError::not_found(format!(
            "{} is not among the {} entrants before the close",
            q.participant,
            refs.len()
        ))
    })?;
    let path: Vec<String> = draw::entrant_proof(&refs, index)
        .unwrap_or_default()
        .iter()
        .map(hex::encode)
        .collect();
    // The seed is published by weiquan's own draw and not before: a draw by
    // anyone else (recorded before weiquan held the seed) reveals nothing.
    // (Only ids in weiquan's namespace, which nobody else may use; not the
    // unreserved ones older versions gave their draws.)
    let drawn_by_weiquan = v.draws.iter().any(|d| d.starts_with(OWN_ID_PREFIX));
    let (seed, winners) = if drawn_by_weiquan {
        let l = id.clone();
        let seed = app
            .sequencer
            .read(move |core: &mut Core| core.db().seed_of(&l))
            .await??;
        (
            seed,
            Some(
                (v.winners.iter())
                    .map(|w| {
                        // Each participant sees themselves; the public sees the others masked.
                        let clear = w.0 == q.participant || sees_participants(&caller, v.merchant.as_deref());
                        WinnerOut::new(if clear { w.0.clone() } else { masked(&w.0) }, w.1.clone(), None)
                    })
                    .collect(),
            ),
        )
    } else {
        (None, None)
    };
    let won = v.winners.iter().any(|w| w.0 == q.participant);
    Ok(Json(EntryProofOut {
        lottery: id,
        participant: q.participant,
        index: index as u64,
        entrants: refs.len() as u64,
        entrants_root: hex::encode(draw::entrants_root(&refs)),
        audit_path: path,
        algorithm: draw::ALGORITHM.to_owned(),
        commitment: v.commitment.clone(),
        seed,
        winners,
        won,
    }))
}
