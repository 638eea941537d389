//! Who may put what into the ledger (the table in README, "Who may submit what").
//!
//! Every item of a request is submitted by one party: a caller's key (through
//! `POST /v1/events`, or the platform's NATS stream), or weiquan itself acting
//! on a named caller's request (a regulator's lift, a platform's announce,
//! close or draw of a lottery whose seed weiquan holds). Nothing a party sends
//! may speak for another: a platform cannot lift a blacklist, take an id in
//! weiquan's namespace, or draw a lottery whose seed weiquan holds. This
//! module decides; [`crate::core::Core`] applies it to each item.

use crate::auth::Role;
use weiquan_events::{Body, Responder, Time};

/// Ids of the events weiquan writes itself start with this; submitted ids may not.
pub const OWN_ID_PREFIX: &str = "weiquan:";

/// Ids of the events weiquan records for a consumer or a merchant on their
/// request through a route (a pay-later switch-off, a complaint and its
/// steps) start with this: nobody may submit one through `/v1/events`, so
/// nobody can take such an id first and make the party's event a "duplicate".
pub const PARTY_ACT_PREFIX: &str = "weiquan-for:";

/// A fresh id for an act a party does through a route: reserved
/// ([`PARTY_ACT_PREFIX`]) for consumers and merchants, whose ids the platform
/// must not be able to take first; the platform's own acts need no reserve.
pub fn party_act_id(role: &Role, act: &str) -> String {
    match role {
        Role::Platform => format!("{act}:{}", random_hex()),
        _ => format!("{PARTY_ACT_PREFIX}{act}:{}", random_hex()),
    }
}

/// A party: its role and, when it came with one, its key's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Party {
    /// The role of the key.
    pub role: Role,
    /// The key's id (`weiquan keys list`); `None` for a channel without keys (the platform's NATS stream).
    pub key: Option<String>,
}

/// Who submits a batch of items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitter {
    /// A party, itself.
    Party(Party),
    /// weiquan itself, on the request of this party.
    Weiquan(Party),
}

impl Submitter {
    /// The platform, submitting its own events without a key (for tests).
    #[cfg(test)]
    pub(crate) fn platform() -> Submitter {
        Submitter::Party(Party {
            role: Role::Platform,
            key: None,
        })
    }

    /// The actor its event leaves name.
    pub fn actor(&self) -> weiquan_ledger::Actor {
        // A consumer's id is personal data and the actor is public: the leaf
        // says a consumer's key acted (its id), and the event's salted
        // `consumer` says who, for those who may open it.
        let party = |p: &Party| weiquan_ledger::Actor {
            role: match &p.role {
                Role::Consumer(_) => "consumer".into(),
                other => other.as_string(),
            },
            key: p.key.clone(),
            on_behalf: None,
        };
        match self {
            Submitter::Party(p) => party(p),
            Submitter::Weiquan(p) => weiquan_ledger::Actor {
                role: "weiquan".into(),
                key: None,
                on_behalf: Some(Box::new(party(p))),
            },
        }
    }
}

/// A fresh id in weiquan's namespace for its own act `act` (random: nothing to guess or pre-empt).
pub fn own_id(act: &str) -> String {
    format!("{OWN_ID_PREFIX}{act}:{}", random_hex())
}

/// 96 random bits in hex: the unguessable part of the ids weiquan makes.
pub fn random_hex() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 12];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Why an item may not be submitted: the field to name and what to do.
pub struct Refusal {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong and what to do instead.
    pub error: String,
}

fn refuse(field: &'static str, error: impl Into<String>) -> Refusal {
    Refusal {
        field,
        error: error.into(),
    }
}

/// Whether `role` may submit an event with this `id` and `body` itself.
/// (The held-seed check, which needs the store, is [`crate::core::Core`]'s.)
pub fn may_submit(role: &Role, id: &str, body: &Body) -> Result<(), Refusal> {
    if id.starts_with(OWN_ID_PREFIX) {
        return Err(refuse(
            "id",
            format!("ids beginning `{OWN_ID_PREFIX}` are reserved for weiquan's own acts; choose another id"),
        ));
    }
    if *role == Role::Platform && id.starts_with(PARTY_ACT_PREFIX) {
        return Err(refuse(
            "id",
            format!("ids beginning `{PARTY_ACT_PREFIX}` are reserved for what consumers and merchants do through weiquan; choose another id"),
        ));
    }
    match (role, body) {
        (_, Body::MerchantBlacklistLifted { .. }) => Err(refuse(
            "type",
            "only a regulator lifts a blacklist, through POST /v1/blacklist/{merchant}/lift; it cannot be submitted as an event",
        )),
        (Role::Platform, _) => Ok(()),
        // A consumer switches their own pay-later off, in one step, through
        // POST /v1/paylater/{provider}/disable (their key may post nowhere else).
        (Role::Consumer(me), Body::BnplDisabled { consumer, steps: 1, .. }) if **consumer == **me => Ok(()),
        // A consumer files their own complaint, through POST /v1/complaints.
        (Role::Consumer(me), Body::ComplaintFiled { consumer, .. }) if **consumer == **me => Ok(()),
        // A merchant answers a complaint against it, through POST /v1/complaints/{id}/respond
        // (that the complaint is against this merchant is the core's check: it needs the engine).
        (Role::Merchant(_), Body::ComplaintResponded { by: Responder::Merchant, .. }) => Ok(()),
        (Role::Consumer(_), Body::BnplDisabled { .. }) => Err(refuse(
            "consumer",
            "a consumer switches off only their own pay-later, in one step, through POST /v1/paylater/{provider}/disable",
        )),
        (other, _) => Err(refuse(
            "type",
            format!("a {} key may not submit events", other.as_string()),
        )),
    }
}

/// An event dated more than the bound ahead of `now` would move the business
/// clock for everyone (every deadline would fire); it is refused, naming `at`.
pub fn check_future(at: Time, now: Time, bound_ms: i64) -> Result<(), Refusal> {
    let ahead = at.unix_ms().saturating_sub(now.unix_ms());
    if ahead > bound_ms {
        return Err(refuse(
            "at",
            format!(
                "`{at}` is {:.1} hours ahead of this server's clock ({now}); events may be at most {} hours ahead. \
                 Check the date and its offset (or start the server with a larger --max-future-hours)",
                // Rounded up to a tenth: 24.01 hours must not read as the 24 allowed.
                (ahead as f64 / 360_000.0).ceil() / 10.0,
                bound_ms / 3_600_000
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(line: &'static str) -> Body<'static> {
        weiquan_events::parse_event(line).expect("valid").body
    }

    #[test]
    fn a_platform_submits_business_events_but_never_a_lift_nor_an_own_id() {
        let tick = body(r#"{"v":1,"id":"e1","type":"clock.tick","at":"2026-11-01T00:00:00Z"}"#);
        let lift = body(
            r#"{"v":1,"id":"e2","type":"merchant.blacklist_lifted","at":"2026-11-01T00:00:00Z","merchant":"m","by":"regulator","reason":"r"}"#,
        );
        assert!(may_submit(&Role::Platform, "e1", &tick).is_ok());
        assert_eq!(
            may_submit(&Role::Platform, "e2", &lift).err().map(|r| r.field),
            Some("type")
        );
        assert_eq!(
            may_submit(&Role::Regulator, "e2", &lift).err().map(|r| r.field),
            Some("type")
        );
        assert_eq!(
            may_submit(&Role::Platform, "weiquan:draw:x", &tick)
                .err()
                .map(|r| r.field),
            Some("id")
        );
        assert_eq!(
            may_submit(&Role::Merchant("m".into()), "e1", &tick)
                .err()
                .map(|r| r.field),
            Some("type")
        );
    }

    #[test]
    fn own_ids_are_in_the_namespace_and_do_not_repeat() {
        let (a, b) = (own_id("draw"), own_id("draw"));
        assert!(a.starts_with("weiquan:draw:") && a != b);
        assert!(weiquan_events::check_id(&a).is_ok());
    }

    #[test]
    fn the_future_bound_is_inclusive_and_names_at() {
        let now = Time::from_unix_ms(1_800_000_000_000, 0);
        assert!(check_future(now.plus_ms(86_400_000), now, 86_400_000).is_ok());
        let r = check_future(now.plus_ms(86_400_001), now, 86_400_000).expect_err("refused");
        assert_eq!(r.field, "at");
        assert!(r.error.contains("at most 24 hours"), "{}", r.error);
        // A millisecond over the bound does not read as the bound itself.
        assert!(r.error.contains("is 24.1 hours ahead"), "{}", r.error);
        let r = check_future(now.plus_ms(88_920_000), now, 86_400_000).expect_err("refused");
        assert!(r.error.contains("is 24.7 hours ahead"), "{}", r.error);
    }
}
