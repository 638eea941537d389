//! Findings, merchants' standing, the blacklist and its lifting.

use super::{business_time, ingest_one, AppStateRef, JsonBody, LangParam, LangQuery};
use crate::acts::own_id;
use crate::auth::{Caller, Role};
use crate::core::Core;
use crate::problem::{ApiError, Problem};
use crate::schemas::{BlacklistOut, FindingOut, FindingsPage, LiftOut, MerchantOut, StandingOut};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use weiquan_engine::{Lang, Severity};

/// Filters of `GET /v1/findings`.
#[derive(Deserialize, utoipa::IntoParams, Default)]
pub struct FindingsQuery {
    /// Rule id, e.g. `PS-01`.
    pub(crate) rule: Option<String>,
    /// Subject, e.g. `order:o1`.
    pub(crate) subject: Option<String>,
    /// `high`, `medium` or `low` (anything else is a 400 naming the field).
    #[param(value_type = Option<String>)]
    pub(crate) severity: Option<Severity>,
    /// Owning merchant.
    pub(crate) merchant: Option<String>,
    /// Only findings at or after this time (RFC 3339).
    pub(crate) since: Option<String>,
    /// Only findings before this time (RFC 3339).
    pub(crate) until: Option<String>,
    /// Continue after this ledger index (from `next_cursor`).
    pub(crate) cursor: Option<u64>,
    /// Page size (default 100, at most 1000).
    pub(crate) limit: Option<usize>,
    /// Message language: `en`, or Chinese (`zh`, the default, also for any other value).
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub(crate) lang: LangParam,
}

/// List findings.
#[utoipa::path(get, path = "/v1/findings", tag = "findings", params(FindingsQuery),
    responses((status = 200, description = "A page of findings in ledger order, with `next_cursor` when there are more", body = crate::schemas::FindingsPage), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("api_key" = [])))]
pub(crate) async fn get_findings(
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
    let severity = q.severity;
    let time = |name: &str, value: Option<&str>| match value {
        None => Ok(None),
        Some(s) => (weiquan_events::Time::parse(s).map(Some)).map_err(|e| {
            ApiError::bad_request(format!(
                "{name}: {e} (an RFC 3339 time, e.g. 2026-11-11T00:00:00+08:00)"
            ))
        }),
    };
    let since = time("since", q.since.as_deref())?;
    let until = time("until", q.until.as_deref())?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let lang = Lang::from(q.lang);
    // Consumers' ids are theirs and the platform's and regulators' to read.
    let reveal = matches!(role, Role::Platform | Role::Regulator);
    // Findings are durable rows: a page is read beside the sequencer, not queued behind ingest.
    let page = app
        .findings
        .read(move |reader| {
            // The engine knows consumers by pseudonym: a subject may name either.
            let subject = match q.subject.as_deref() {
                Some(s) => Some(reader.subject_filter(s)?),
                None => None,
            };
            let filter = weiquan_store::FindingFilter {
                after: q.cursor,
                rules: rules_of(reader.rules(), q.rule.as_deref(), severity),
                subjects: subject.map(|s| vec![s]),
                merchant,
                since_ms: since.map(|t| t.unix_ms()),
                until_ms: until.map(|t| t.unix_ms()),
                ..weiquan_store::FindingFilter::default()
            };
            let (found, next) = reader.page(&filter, limit)?;
            let mut items: Vec<FindingOut> = found.iter().map(|f| reader.finding_out(f, lang)).collect();
            if reveal {
                reader.reveal_consumers(&mut items)?;
            }
            Ok(FindingsPage {
                findings: items,
                next_cursor: next,
            })
        })
        .await?;
    Ok(Json(page))
}

/// Most findings a merchant's page lists, the latest; all of them are read
/// with `GET /v1/findings?merchant=…` (a merchant with millions of findings
/// would otherwise be one answer of that size).
const MERCHANT_PAGE: usize = 1000;

/// The rules a findings filter asks for: `rule` if given (none if its
/// severity is not `severity`), else every rule of `severity`; `None`: any.
fn rules_of(rules: &weiquan_engine::Rulebook, rule: Option<&str>, severity: Option<Severity>) -> Option<Vec<String>> {
    let of_severity = |id: weiquan_engine::RuleId| severity.is_none_or(|s| rules.severity(id) == s);
    match (rule, severity) {
        (None, None) => None,
        // An unknown rule id finds nothing, as it always did.
        (Some(r), _) => Some(
            weiquan_engine::RuleId::parse(r)
                .filter(|&id| of_severity(id))
                .map(|id| vec![id.as_str().to_owned()])
                .unwrap_or_default(),
        ),
        (None, Some(_)) => Some(
            (weiquan_engine::RuleId::ALL.iter())
                .filter(|&&id| of_severity(id))
                .map(|id| id.as_str().to_owned())
                .collect(),
        ),
    }
}

/// A merchant's credit grade (every factor, its value and the points it costs; "not rated yet" below
/// the rulebook's minimum of orders; the grade's history) and blacklist state (public); its findings
/// for platform, regulator and itself.
#[utoipa::path(get, path = "/v1/merchants/{id}", tag = "merchants", params(("id" = String, Path, description = "Merchant id"), LangQuery),
    responses((status = 200, description = "Grade with its factors and history, blacklist state, and (for those allowed) open findings", body = crate::schemas::MerchantOut), (status = 404, body = Problem)))]
pub(crate) async fn get_merchant(
    State(app): AppStateRef,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Result<Json<MerchantOut>, ApiError> {
    let lang = Lang::from(q.lang);
    let full = caller
        .0
        .as_ref()
        .is_some_and(|p| p.role.reads_all() || p.role == Role::Merchant(id.clone()));
    let out = app
        .sequencer
        .read(move |core: &mut Core| {
            let standing = StandingOut::new(core.engine().standing(&id)?, core.rules(), lang);
            let findings = match full {
                true => {
                    // The latest, read newest first and shown in ledger order.
                    let filter = weiquan_store::FindingFilter {
                        merchant: Some(id.clone()),
                        newest_first: true,
                        ..weiquan_store::FindingFilter::default()
                    };
                    Some(core.findings_page(&filter, MERCHANT_PAGE).map(|(found, earlier)| {
                        let shown = found.iter().rev().map(|f| core.finding_out(f, lang)).collect();
                        (shown, earlier.is_some())
                    }))
                }
                false => None,
            };
            Some((standing, findings.transpose()))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("no events name this merchant"))?;
    let (findings, earlier) = out.1?.unzip();
    Ok(Json(MerchantOut {
        standing: out.0,
        findings,
        earlier_findings: earlier.unwrap_or(false),
    }))
}

/// Blacklisted merchants with the findings behind each.
#[utoipa::path(get, path = "/v1/blacklist", tag = "merchants", params(LangQuery), responses((status = 200, description = "Blacklisted merchants", body = crate::schemas::BlacklistOut), (status = 401, body = Problem), (status = 403, body = Problem)), security(("api_key" = [])))]
pub(crate) async fn get_blacklist(
    State(app): AppStateRef,
    caller: Caller,
    Query(q): Query<LangQuery>,
) -> Result<Json<BlacklistOut>, ApiError> {
    caller.require("read the blacklist", Role::reads_all)?;
    let lang = Lang::from(q.lang);
    let list = app
        .sequencer
        .read(move |core: &mut Core| {
            core.engine()
                .standings()
                .into_iter()
                .filter(|s| s.blacklisted.is_some())
                .map(|s| StandingOut::new(s, core.rules(), lang))
                .collect()
        })
        .await?;
    Ok(Json(BlacklistOut { blacklist: list }))
}

/// Longest reason for lifting a blacklist, in characters.
pub(crate) const MAX_REASON_CHARS: usize = super::complaints::MAX_TEXT_CHARS;

/// Body of a blacklist lift.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LiftRequest {
    /// Why the blacklist is lifted (required; it is logged).
    pub(crate) reason: Option<String>,
}

/// Lift a merchant's blacklist (regulator); the action is itself logged in the ledger.
#[utoipa::path(post, path = "/v1/blacklist/{merchant}/lift", tag = "merchants", params(("merchant" = String, Path, description = "Merchant id")), request_body = LiftRequest,
    responses((status = 200, description = "Lifted; the ledger index of the logged action", body = crate::schemas::LiftOut), (status = 400, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
pub(crate) async fn lift_blacklist(
    State(app): AppStateRef,
    caller: Caller,
    Path(merchant): Path<String>,
    JsonBody(request): JsonBody<LiftRequest>,
) -> Result<Json<LiftOut>, ApiError> {
    let regulator = caller
        .require("lift a blacklist (regulator keys only)", |r| *r == Role::Regulator)?
        .clone();
    let _act = app.acts.lock().await;
    let reason = (request.reason)
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| ApiError::unprocessable("say why: send {\"reason\": \"…\"}"))?;
    // The reason goes into the public log: bounded as a complaint's text is.
    let n = reason.chars().count();
    if n > MAX_REASON_CHARS {
        return Err(ApiError::unprocessable(format!(
            "reason: {n} characters; at most {MAX_REASON_CHARS} are taken (say it shorter, and keep the full account in your own files)"
        )));
    }
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

/// How many of the watch list to show.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct WatchQuery {
    /// At most this many merchants (default 100, at most 1000).
    limit: Option<usize>,
}

/// The run-away watch list (跑路预警): open merchants with any risk, riskiest
/// first, each signal with its value and points (`docs/watchlist.md`); platform and regulators.
#[utoipa::path(get, path = "/v1/watchlist", tag = "merchants", params(WatchQuery),
    responses((status = 200, description = "Merchants by run-away risk", body = crate::schemas::WatchlistOut), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("api_key" = [])))]
pub(crate) async fn get_watchlist(
    State(app): AppStateRef,
    caller: Caller,
    Query(q): Query<WatchQuery>,
) -> Result<Json<crate::schemas::WatchlistOut>, ApiError> {
    caller.require("read the watch list", Role::reads_all)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let out = app
        .sequencer
        .read(move |core: &mut Core| {
            let list = core.engine().watchlist();
            crate::schemas::WatchlistOut {
                as_of: business_time(core),
                listed: list.len() as u64,
                merchants: (list.into_iter().take(limit))
                    .map(|e| crate::schemas::WatchOut {
                        merchant: e.merchant,
                        score: e.score,
                        signals: (e.signals.into_iter())
                            .map(|(k, value, points)| crate::schemas::SignalOut {
                                signal: k.as_str().to_owned(),
                                value: (value * 100.0).round() / 100.0,
                                points: (points * 10.0).round() / 10.0,
                            })
                            .collect(),
                    })
                    .collect(),
            }
        })
        .await?;
    Ok(Json(out))
}
