//! Live-stream hosts (主播): where a host stands in the platform's registry
//! (LT-11), since when, and the lotteries it hosted with their findings.
//! Public, as a lottery's page is: a viewer deciding whether to enter a
//! host's lottery may read it. The host's display name is personal data
//! (salted in the log) and is not shown.

use super::lotteries::public_findings;
use super::{AppStateRef, LangQuery};
use crate::auth::Caller;
use crate::core::Core;
use crate::problem::{ApiError, Problem};
use crate::schemas::HostOut;
use axum::extract::{Path, Query, State};
use axum::Json;

/// A live-stream host: its standing in the registry (qualified, never verified,
/// suspended, not registered) and since when, the latest verification's method,
/// the lotteries that named it and their findings (public; winners' ids masked
/// except for the platform, regulators and each lottery's merchant).
#[utoipa::path(get, path = "/v1/hosts/{id}", tag = "lotteries",
    params(("id" = String, Path, description = "Host id"), LangQuery),
    responses((status = 200, description = "The host", body = crate::schemas::HostOut), (status = 404, body = Problem)))]
pub async fn get_host(
    State(app): AppStateRef,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Result<Json<HostOut>, ApiError> {
    let lang = q.lang.into();
    let out = app
        .sequencer
        .read(move |core: &mut Core| {
            let Some(v) = core.engine().host(&id) else {
                return Ok(None);
            };
            let findings = public_findings(core, &v.lotteries, &caller, lang)?;
            Ok::<_, weiquan_store::StoreError>(Some(HostOut {
                host: id,
                standing: v.standing.as_str().to_owned(),
                qualified: v.standing == weiquan_engine::HostStanding::Qualified,
                since: v.since.map(|t| t.to_string()),
                merchant: v.merchant,
                method: v.method.map(str::to_owned),
                lotteries: v.lotteries,
                findings,
            }))
        })
        .await??;
    out.map(Json)
        .ok_or_else(|| ApiError::not_found("no events name this host"))
}
