//! A consumer's pay-later (先用后付): where it is on, and one request to switch
//! it off (see `crate::paylater` for how the platform is told).

use super::{business_time, AppStateRef};
use crate::api::NotRecorded;
use crate::auth::{Caller, Role};
use crate::core::Core;
use crate::paylater::Payload;
use crate::problem::{ApiError, Problem};
use crate::schemas::{DisabledOut, InstructionOut, PayLaterOut, ProviderOut};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use weiquan_store::Instruction;

/// Whose pay-later to read.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct PayLaterQuery {
    /// The consumer (platform and regulator keys; a consumer key reads its own and may leave it out).
    pub(crate) consumer: Option<String>,
}

fn ms_to_rfc3339(ms: i64) -> String {
    weiquan_events::Time::from_unix_ms(ms, 0).to_string()
}

impl From<Instruction> for InstructionOut {
    fn from(i: Instruction) -> InstructionOut {
        let payload: Option<Payload> = serde_json::from_slice(&i.body).ok();
        InstructionOut {
            id: i.id,
            provider: payload.as_ref().map(|p| p.provider.clone()).unwrap_or_default(),
            requested_at: payload.map(|p| p.requested_at).unwrap_or_default(),
            recorded: i.recorded,
            attempts: i.attempts,
            acknowledged_at: i.delivered_ms.map(ms_to_rfc3339),
            status: i.status,
            last_error: i.last_error,
            overdue: i.overdue,
        }
    }
}

/// A consumer's pay-later per provider (on or off, since when, how it was
/// switched on, failed cancels) and their switch-off instructions with the
/// platform's acknowledgement. Consumers read their own; platform and regulators anyone's.
#[utoipa::path(get, path = "/v1/paylater", tag = "consumers", params(PayLaterQuery),
    responses((status = 200, description = "The consumer's pay-later registry", body = crate::schemas::PayLaterOut), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
pub(crate) async fn get_paylater(
    State(app): AppStateRef,
    caller: Caller,
    Query(q): Query<PayLaterQuery>,
) -> Result<Json<PayLaterOut>, ApiError> {
    let role = &caller
        .require("read pay-later registries", |r| !matches!(r, Role::Merchant(_)))?
        .role;
    let consumer = match (role, q.consumer) {
        (Role::Consumer(me), None) => me.clone(),
        (Role::Consumer(me), Some(c)) if c == *me => c,
        (Role::Consumer(_), Some(_)) => return Err(ApiError::forbidden("a consumer key reads only its own pay-later")),
        (_, Some(c)) => c,
        (_, None) => {
            return Err(ApiError::unprocessable(
                "consumer: required (the platform's id of the consumer)",
            ))
        }
    };
    let c = consumer.clone();
    let (pseudonym, providers) = app
        .sequencer
        .read(move |core: &mut Core| {
            let p = core.pseudonym_of(&c);
            let providers = core.engine().paylater(&p);
            (p, providers)
        })
        .await?;
    let instructions = app.outbox.with(move |s| s.outbox_of(&pseudonym)).await?;
    Ok(Json(PayLaterOut {
        consumer,
        providers: (providers.into_iter())
            .map(|p| ProviderOut {
                provider: p.provider,
                enabled: p.enabled,
                since: p.since.to_string(),
                switched_by: if p.event.starts_with(crate::acts::PARTY_ACT_PREFIX) {
                    "consumer"
                } else {
                    "platform"
                }
                .to_owned(),
                event: p.event,
                consent: p.consent.map(|c| c.0.to_owned()),
                identity_verified: p.consent.map(|c| c.1),
                steps: p.steps,
                cancel_failed: p.cancel_failed,
            })
            .collect(),
        instructions: instructions.into_iter().map(InstructionOut::from).collect(),
    }))
}

/// Switches the caller's pay-later with `provider` off, in one request
/// (consumer keys only): records the consumer's `bnpl.disabled` (steps: 1) and
/// delivers the instruction to the platform until it acknowledges it. Asking
/// again while an instruction is undelivered answers that instruction.
#[utoipa::path(post, path = "/v1/paylater/{provider}/disable", tag = "consumers",
    params(("provider" = String, Path, description = "The pay-later provider")),
    responses((status = 200, description = "Recorded: the instruction, its event's leaf index (null when it was recorded before)", body = crate::schemas::DisabledOut), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
pub(crate) async fn disable(
    State(app): AppStateRef,
    caller: Caller,
    Path(provider): Path<String>,
) -> Result<Json<DisabledOut>, ApiError> {
    let party = caller
        .require(
            "switch pay-later off (consumer keys only: a consumer switches off their own)",
            |r| matches!(r, Role::Consumer(_)),
        )?
        .clone();
    let Role::Consumer(consumer) = party.role.clone() else {
        return Err(ApiError::forbidden("consumer keys only"));
    };
    weiquan_events::check_id(&provider).map_err(|e| ApiError::unprocessable(format!("provider: {e}")))?;
    // One switch-off at a time per consumer: two concurrent requests must not make two instructions.
    let _act = app.acts.lock().await;
    let (c, p) = (consumer.clone(), provider.clone());
    let (pseudonym, state, at) = app
        .sequencer
        .read(move |core: &mut Core| {
            let pseudonym = core.pseudonym_of(&c);
            let state = core.engine().paylater(&pseudonym).into_iter().find(|v| v.provider == p);
            (pseudonym, state, business_time(core))
        })
        .await?;
    let pending = {
        let (pseudonym, p) = (pseudonym.clone(), provider.clone());
        app.outbox
            .with(move |s| s.outbox_of(&pseudonym))
            .await?
            .into_iter()
            .rev()
            .find(|i| {
                i.delivered_ms.is_none() && serde_json::from_slice::<Payload>(&i.body).is_ok_and(|b| b.provider == p)
            })
    };
    if let Some(i) = pending {
        return Ok(Json(DisabledOut {
            instruction: i.into(),
            index: None,
        }));
    }
    match state {
        None => {
            return Err(ApiError::not_found(format!(
                "no pay-later with provider {provider} is recorded for you; GET /v1/paylater lists yours"
            )))
        }
        // Off by the consumer's own switch through weiquan: nothing to do. Off by
        // the platform's word alone: the consumer may still send the instruction.
        Some(s) if !s.enabled && s.event.starts_with(crate::acts::PARTY_ACT_PREFIX) => {
            return Err(ApiError::conflict(format!(
                "you switched your pay-later with {provider} off already (since {}, event {})",
                s.since, s.event
            )))
        }
        Some(_) => {}
    }
    let now = chrono::Utc::now();
    let payload = Payload {
        id: crate::acts::party_act_id(&party.role, "paylater-off"),
        instruction: "bnpl.disable".into(),
        consumer,
        provider,
        at,
        requested_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    let body = serde_json::to_vec(&payload).map_err(ApiError::internal)?;
    let mut instruction = Instruction {
        id: payload.id.clone(),
        pseudonym,
        actor_key: party.key.clone(),
        body,
        created_ms: now.timestamp_millis(),
        recorded: false,
        attempts: 0,
        next_ms: now.timestamp_millis(),
        first_attempt_ms: None,
        delivered_ms: None,
        status: None,
        last_error: None,
        overdue: false,
    };
    // Kept first, recorded second: a crash in between leaves an instruction
    // that the delivery task records before it delivers.
    let kept = instruction.clone();
    app.outbox.with(move |s| s.outbox_put(&kept)).await?;
    let index = match crate::paylater::record(&app, &payload, party.key.clone()).await {
        Ok(index) => index,
        Err(NotRecorded::Refused(why)) => {
            let id = instruction.id.clone();
            app.outbox.with(move |s| s.outbox_remove(&id)).await?;
            return Err(ApiError::unprocessable(why));
        }
        // Kept: the delivery task records it once the log can be written.
        Err(NotRecorded::Unavailable(why)) => {
            tracing::warn!(%why, "a switch-off waits in the outbox to be recorded");
            return Err(ApiError::unavailable(format!(
                "your switch-off {} is kept and will be recorded and delivered; GET /v1/paylater follows it",
                instruction.id
            )));
        }
    };
    instruction.recorded = true;
    let update = instruction.clone();
    if let Err(e) = app.outbox.with(move |s| s.outbox_update(&update)).await {
        // The delivery task finds the event recorded (a duplicate) and carries on.
        tracing::warn!(error = %e, "cannot mark an instruction recorded");
    }
    app.outbox_wake.notify_one();
    Ok(Json(DisabledOut {
        instruction: instruction.into(),
        index,
    }))
}
