//! The shapes of the API's JSON answers, for `/openapi.json`. Handlers that
//! assemble their answer from the engine's views declare these as their
//! response bodies; `tests/api.rs` checks real answers against them
//! (schemathesis, and each route's answer on a loaded ledger).

use serde::Serialize;
use utoipa::ToSchema;
use weiquan_engine::{Lang, MerchantStanding, Rulebook};

/// A finding as the API returns it.
#[derive(Serialize, ToSchema)]
pub struct FindingOut {
    /// Rule id, e.g. `PS-01`.
    pub rule: String,
    /// `kind:id`, e.g. `campaign:c1`; a consumer by id for the platform and
    /// regulators, by pseudonym (`consumer:ps:…`) once erased.
    pub subject: String,
    /// `high`, `medium` or `low`.
    pub severity: String,
    /// Business time it fired at (RFC 3339).
    pub at: String,
    /// Ids of the events that evidence it.
    pub events: Vec<String>,
    /// The regulation or policy it rests on.
    pub citation: String,
    /// One sentence for a consumer or an inspector.
    pub message: String,
    /// The merchant it belongs to, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    /// Its leaf index in the ledger.
    pub index: u64,
}

/// A page of `GET /v1/findings`.
#[derive(Serialize, ToSchema)]
pub struct FindingsPage {
    /// Findings in ledger order.
    pub findings: Vec<FindingOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<u64>,
}

/// A credit grade, every factor behind it, and its history (`docs/credit.md`).
#[derive(Serialize, ToSchema)]
pub struct GradeOut {
    /// `A` (best) to `E`; `null`: not rated yet (fewer orders than `min_orders`, and not blacklisted).
    pub grade: Option<String>,
    /// Whether it is rated.
    pub rated: bool,
    /// The grade in words, in the language asked for.
    pub summary: String,
    /// The 0–100 score behind the letter (computed also before a rating).
    pub score: f64,
    /// Orders so far.
    pub orders: u32,
    /// Orders a rating needs (the rulebook's `min_orders_to_rate`).
    pub min_orders: u32,
    /// What lowered the score, weightiest first (`blacklisted` first when it is).
    pub reasons: Vec<String>,
    /// Every factor, with its value and the points it costs.
    pub factors: Vec<FactorOut>,
    /// The latest changes of grade, oldest first.
    pub history: Vec<GradeChangeOut>,
    /// Earlier changes not kept.
    pub history_dropped: u64,
}

/// One factor of a grade.
#[derive(Serialize, ToSchema)]
pub struct FactorOut {
    /// `findings`, `complaints`, `late_shipping` or `slow_reply`.
    pub factor: String,
    /// Its value (see `docs/credit.md`): findings weighing now, complaints per 100 orders,
    /// percent shipped late, the median first reply's bucket in minutes (`-1`: no replies;
    /// `null`: slower than a day).
    pub value: Option<f64>,
    /// Score points it costs.
    pub points: f64,
    /// The factor in words.
    pub message: String,
}

/// A change of grade and the event that caused it.
#[derive(Serialize, ToSchema)]
pub struct GradeChangeOut {
    /// When (RFC 3339, business time).
    pub at: String,
    /// The event whose processing changed it (`clock` for the clock alone).
    pub event: String,
    /// The grade before (`null`: not rated yet).
    pub from: Option<String>,
    /// The grade after.
    pub to: Option<String>,
    /// The score after.
    pub score: f64,
}

/// Why a merchant is blacklisted.
#[derive(Serialize, ToSchema)]
pub struct BlacklistingOut {
    /// When the blacklist took effect.
    pub at: String,
    /// The findings behind it, as `[rule, subject]` pairs.
    pub findings: Vec<Vec<String>>,
}

/// A merchant's grade and blacklist state.
#[derive(Serialize, ToSchema)]
pub struct StandingOut {
    /// Merchant id.
    pub merchant: String,
    /// Credit grade.
    pub grade: GradeOut,
    /// The blacklist entry, or `null`.
    pub blacklisted: Option<BlacklistingOut>,
    /// Earlier blacklistings that a regulator lifted, oldest first.
    pub lifted: Vec<LiftedOut>,
}

/// A blacklisting and its lift.
#[derive(Serialize, ToSchema)]
pub struct LiftedOut {
    /// The blacklisting that was lifted.
    pub blacklisting: BlacklistingOut,
    /// When it was lifted (business time).
    pub lifted_at: String,
    /// The `merchant.blacklist_lifted` event.
    pub event: String,
    /// The regulator's reason.
    pub reason: String,
}

impl From<weiquan_engine::Blacklisting> for BlacklistingOut {
    fn from(b: weiquan_engine::Blacklisting) -> BlacklistingOut {
        BlacklistingOut {
            at: b.at.to_string(),
            findings: (b.findings.into_iter())
                .map(|(rule, subject)| vec![rule.as_str().to_owned(), subject])
                .collect(),
        }
    }
}

/// `GET /v1/merchants/{id}`.
#[derive(Serialize, ToSchema)]
pub struct MerchantOut {
    /// Grade and blacklist state.
    #[serde(flatten)]
    pub standing: StandingOut,
    /// The merchant's latest 1,000 findings, in ledger order (platform,
    /// regulators and the merchant itself only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<FindingOut>>,
    /// Whether the merchant has earlier findings than those listed: every
    /// one is read with `GET /v1/findings?merchant=ID`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub earlier_findings: bool,
}

/// `GET /v1/blacklist`.
#[derive(Serialize, ToSchema)]
pub struct BlacklistOut {
    /// Blacklisted merchants.
    pub blacklist: Vec<StandingOut>,
}

/// `POST /v1/blacklist/{merchant}/lift`.
#[derive(Serialize, ToSchema)]
pub struct LiftOut {
    /// The merchant.
    pub lifted: String,
    /// Leaf index of the logged lift.
    pub index: u64,
}

/// `GET /v1/proofs/inclusion`.
#[derive(Serialize, ToSchema)]
pub struct InclusionOut {
    /// Leaf index.
    pub index: u64,
    /// Tree size the proof is for.
    pub size: u64,
    /// RFC 6962 audit path, base64 hashes from the leaf up.
    pub proof: Vec<String>,
}

/// `GET /v1/proofs/consistency` (as `weiquan verify consistency` reads it).
#[derive(Serialize, ToSchema)]
pub struct ConsistencyOut {
    /// The older size.
    pub old_size: u64,
    /// The newer size.
    pub new_size: u64,
    /// RFC 6962 consistency proof, base64 hashes.
    pub proof: Vec<String>,
}

/// A leaf's salt and the original values of its salted members.
#[derive(Serialize, ToSchema)]
pub struct RevealedOut {
    /// 64 hex digits.
    pub salt: String,
    /// Each salted member's original value.
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// `GET /v1/receipts/{index}` (as `weiquan verify receipt` reads it).
#[derive(Serialize, ToSchema)]
pub struct ReceiptOut {
    /// Receipt format (1).
    pub v: u8,
    /// Leaf index.
    pub index: u64,
    /// The leaf, canonical JSON text.
    pub leaf: String,
    /// The signed checkpoint (C2SP signed note).
    pub checkpoint: String,
    /// Inclusion proof, base64 hashes from the leaf up.
    pub inclusion: Vec<String>,
    /// For a leaf with personal data, to those entitled to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private: Option<RevealedOut>,
}

/// `POST /v1/lotteries`.
#[derive(Serialize, ToSchema)]
pub struct AnnouncedOut {
    /// Lottery id.
    pub lottery: String,
    /// Leaf index of the announcement.
    pub index: u64,
    /// SHA-256 of the seed weiquan holds, hex.
    pub commitment: String,
    /// The draw algorithm (`weiquan-draw-v1`).
    pub algorithm: String,
}

/// `POST /v1/lotteries/{id}/close`.
#[derive(Serialize, ToSchema)]
pub struct ClosedOut {
    /// Lottery id.
    pub lottery: String,
    /// Leaf index of the close.
    pub index: u64,
    /// Entrants fixed by the close.
    pub entrants: u64,
    /// Their RFC 6962 root, hex; `null` for a lottery without a commitment
    /// (only a committed draw runs over the entrant list).
    pub entrants_root: Option<String>,
}

/// One winner.
#[derive(Serialize, ToSchema)]
pub struct WinnerOut {
    /// Participant id.
    pub participant: String,
    /// Prize name.
    pub prize: String,
    /// Whether a shipment was recorded (`GET /v1/lotteries/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipped: Option<bool>,
    /// Whether the delivery was recorded (`GET /v1/lotteries/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<bool>,
}

/// What a weiquan draw publishes to recompute it.
#[derive(Serialize, ToSchema)]
pub struct DrawProofOut {
    /// The draw algorithm.
    pub algorithm: String,
    /// Entrants root, hex.
    pub entrants_root: String,
    /// Entrants count.
    pub entrants: u64,
}

/// `POST /v1/lotteries/{id}/draw`.
#[derive(Serialize, ToSchema)]
pub struct DrawnOut {
    /// Lottery id.
    pub lottery: String,
    /// Leaf index of the draw.
    pub index: u64,
    /// Winners in slot order.
    pub winners: Vec<WinnerOut>,
    /// The revealed seed.
    pub seed: String,
    /// What the draw ran on.
    pub proof: DrawProofOut,
}

/// A prize as announced (a missing part reads as empty or 0: LT-01 reports it).
#[derive(Serialize, ToSchema)]
pub struct PrizeOut {
    /// Name.
    pub name: String,
    /// Declared value, fen.
    pub value_fen: u64,
    /// How many.
    pub count: u64,
}

/// `GET /v1/lotteries/{id}`.
#[derive(Serialize, ToSchema)]
pub struct LotteryOut {
    /// Lottery id.
    pub lottery: String,
    /// Organising merchant.
    pub merchant: Option<String>,
    /// Published commitment, hex.
    pub commitment: Option<String>,
    /// Prizes as announced (or changed).
    pub prizes: Vec<PrizeOut>,
    /// Entrants before the close.
    pub entrants: u64,
    /// Their RFC 6962 root, hex; `null` for a lottery without a commitment,
    /// whose entrants' ids weiquan does not keep (no draw to check against them).
    pub entrants_root: Option<String>,
    /// Entries after the close.
    pub late_entries: u64,
    /// Closed.
    pub closed: bool,
    /// Drawn.
    pub drawn: bool,
    /// Cancelled.
    pub cancelled: bool,
    /// Winners.
    pub winners: Vec<WinnerOut>,
    /// Findings about it.
    pub findings: Vec<FindingOut>,
    /// The draw algorithm a committed lottery's draw is checked with.
    pub algorithm: String,
    /// Whether the latest draw follows from the revealed seed and the
    /// entrants by `algorithm` (recomputed when it was recorded, LT-10);
    /// `null` when not drawn, or drawn without a commitment to check against.
    pub draw_verifies: Option<bool>,
    /// What is wrong with the draw, when it does not verify.
    pub draw_problem: Option<String>,
}

/// `GET /v1/hosts/{id}`.
#[derive(Serialize, ToSchema)]
pub struct HostOut {
    /// Host id.
    pub host: String,
    /// `qualified`, `never_verified`, `suspended` or `not_registered` (LT-11's reading).
    pub standing: String,
    /// Whether it may host a lottery now.
    pub qualified: bool,
    /// Since when it stands so (RFC 3339; absent when only lotteries named it).
    pub since: Option<String>,
    /// The merchant it registered as streaming for.
    pub merchant: Option<String>,
    /// The latest verification's method (`id_check`, `digital_id`, `manual`).
    pub method: Option<String>,
    /// Lotteries that named it as their host, in the order they did.
    pub lotteries: Vec<String>,
    /// Findings about those lotteries, in ledger order.
    pub findings: Vec<FindingOut>,
}

/// `GET /v1/paylater`.
#[derive(Serialize, ToSchema)]
pub struct PayLaterOut {
    /// The consumer, by the platform's id.
    pub consumer: String,
    /// Pay-later per provider, in provider order.
    pub providers: Vec<ProviderOut>,
    /// Switch-off instructions weiquan delivered (or is delivering) to the platform, oldest first.
    pub instructions: Vec<InstructionOut>,
}

/// A consumer's pay-later with one provider.
#[derive(Serialize, ToSchema)]
pub struct ProviderOut {
    /// The provider.
    pub provider: String,
    /// Whether it is on.
    pub enabled: bool,
    /// Since when it is on or off (RFC 3339, business time).
    pub since: String,
    /// The event that switched it so.
    pub event: String,
    /// Whose word that was: `consumer` (their own switch-off through weiquan) or `platform` (its stream).
    pub switched_by: String,
    /// How it was switched on, the last time it was: `explicit`, `preselected` or `bundled`.
    pub consent: Option<String>,
    /// Whether the consumer's identity was verified when it was switched on.
    pub identity_verified: Option<bool>,
    /// How many steps the last switch-off took.
    pub steps: Option<u32>,
    /// Attempts to switch it off that failed.
    pub cancel_failed: u32,
}

/// A switch-off instruction for the platform, and what became of it.
#[derive(Serialize, ToSchema)]
pub struct InstructionOut {
    /// Its id (also the id of its `bnpl.disabled` in the log, and `X-Weiquan-Id` for the platform).
    pub id: String,
    /// The provider to switch off.
    pub provider: String,
    /// When the consumer asked (RFC 3339, wall clock).
    pub requested_at: String,
    /// Whether its event is in the log.
    pub recorded: bool,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When the platform acknowledged it (`null`: not yet).
    pub acknowledged_at: Option<String>,
    /// The HTTP status of the acknowledgement or of the last failed attempt.
    pub status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Whether the platform let it go unacknowledged past the rulebook's time (BN-04 recorded).
    pub overdue: bool,
}

/// `POST /v1/paylater/{provider}/disable`.
#[derive(Serialize, ToSchema)]
pub struct DisabledOut {
    /// The instruction.
    pub instruction: InstructionOut,
    /// Leaf index of the consumer's `bnpl.disabled` (`null` when this answers an earlier request).
    pub index: Option<u64>,
}

/// `GET /v1/complaints`.
#[derive(Serialize, ToSchema)]
pub struct ComplaintsOut {
    /// A page of the complaints this key may read, oldest first.
    pub complaints: Vec<ComplaintOut>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<u64>,
    /// Per merchant, over every complaint this key may read: not resolved, and of those overdue.
    pub merchants: Vec<MerchantComplaintsOut>,
}

/// A merchant's complaints that are not resolved.
#[derive(Serialize, ToSchema)]
pub struct MerchantComplaintsOut {
    /// The merchant.
    pub merchant: String,
    /// Not resolved.
    pub open: u64,
    /// Of those, past their response time without a response (MC-10).
    pub overdue: u64,
}

/// A complaint and its response clock.
#[derive(Serialize, ToSchema)]
pub struct ComplaintOut {
    /// Its id.
    pub complaint: String,
    /// The consumer (for the consumer, the platform and regulators; `null` for the merchant, or once erased).
    pub consumer: Option<String>,
    /// The merchant it is against.
    pub merchant: Option<String>,
    /// The order it is about.
    pub order: Option<String>,
    /// Its category.
    pub category: String,
    /// `open`, `responded`, `escalated` or `resolved`.
    pub status: String,
    /// When it was filed (business time).
    pub filed_at: Option<String>,
    /// When a response is due (MC-10).
    pub response_due: Option<String>,
    /// Hours left to respond (negative: overdue); `null` once responded or resolved.
    pub response_hours_left: Option<i64>,
    /// Past its response time without a response.
    pub overdue: bool,
    /// Where it was escalated.
    pub escalated_to: Option<String>,
    /// What the consumer wrote (in `GET /v1/complaints/{id}`; the log holds it only as a commitment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Its evidence files (download: `GET /v1/complaints/{id}/evidence/{sha256}`).
    pub evidence: Vec<EvidenceOut>,
    /// Its steps, filing first.
    pub steps: Vec<StepOut>,
}

/// An evidence file.
#[derive(Serialize, ToSchema)]
pub struct EvidenceOut {
    /// Hex SHA-256 of its content (what the log records).
    pub sha256: String,
    /// What it is, by its first bytes.
    pub kind: String,
    /// Its size in bytes (when it was just filed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// A step of a complaint.
#[derive(Serialize, ToSchema)]
pub struct StepOut {
    /// The event that records it.
    pub event: String,
    /// Its business time.
    pub at: String,
    /// `filed`, `responded:merchant`, `resolved:refund`, `escalated:regulator`, …
    pub step: String,
    /// Its leaf index (in `GET /v1/complaints/{id}` and a step's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// Its receipt: the leaf, its inclusion proof and the signed checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ReceiptOut>)]
    pub receipt: Option<weiquan_ledger::Receipt>,
}

/// `POST /v1/complaints`.
#[derive(Serialize, ToSchema)]
pub struct FiledOut {
    /// The complaint's id.
    pub complaint: String,
    /// Leaf index of its `complaint.filed`.
    pub index: u64,
    /// The filing's receipt (as `GET /v1/receipts/{index}` gives it to the filer).
    #[schema(value_type = Option<ReceiptOut>)]
    pub receipt: Option<weiquan_ledger::Receipt>,
    /// The evidence kept.
    pub evidence: Vec<EvidenceOut>,
}

/// `GET /v1/watchlist`.
#[derive(Serialize, ToSchema)]
pub struct WatchlistOut {
    /// The business time it was read at.
    pub as_of: String,
    /// How many merchants are on the list (before `limit`).
    pub listed: u64,
    /// The riskiest first.
    pub merchants: Vec<WatchOut>,
}

/// A merchant on the watch list.
#[derive(Serialize, ToSchema)]
pub struct WatchOut {
    /// The merchant.
    pub merchant: String,
    /// The sum of its signals' points.
    pub score: f64,
    /// Every signal.
    pub signals: Vec<SignalOut>,
}

/// One signal of a merchant's run-away risk.
#[derive(Serialize, ToSchema)]
pub struct SignalOut {
    /// `overdue_obligations`, `orders_while_overdue`, `shipping_stalled`, `orders_aging`, `complaint_spike`,
    /// `reply_drift`, `deposits_outstanding` or `deposit_money_yuan` (`docs/watchlist.md`).
    pub signal: String,
    /// Its value.
    pub value: f64,
    /// The points it adds.
    pub points: f64,
}

/// `GET /v1/lotteries/{id}/proof`.
#[derive(Serialize, ToSchema)]
pub struct EntryProofOut {
    /// Lottery id.
    pub lottery: String,
    /// Participant id.
    pub participant: String,
    /// Position among the entrants.
    pub index: u64,
    /// Entrants count.
    pub entrants: u64,
    /// Entrants root, hex.
    pub entrants_root: String,
    /// RFC 6962 audit path of the entry, hex.
    pub audit_path: Vec<String>,
    /// The draw algorithm.
    pub algorithm: String,
    /// Published commitment, hex.
    pub commitment: Option<String>,
    /// The seed, once weiquan drew the lottery.
    pub seed: Option<String>,
    /// The winners, once weiquan drew the lottery.
    pub winners: Option<Vec<WinnerOut>>,
    /// Whether this participant won.
    pub won: bool,
}

/// One item's result in `POST /v1/events`.
#[derive(Serialize, ToSchema)]
pub struct ItemOut {
    /// 1-based position in the request.
    pub item: usize,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: String,
    /// Leaf index, when accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// The offending field, when rejected for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What was wrong and what to do, when rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FindingOut {
    /// A finding as the API shows it, in `lang`, at its leaf `index`.
    pub fn new(f: &weiquan_engine::Finding, index: u64, rules: &Rulebook, lang: Lang) -> FindingOut {
        let r = f.record(rules, lang);
        FindingOut {
            rule: r.rule.as_str().to_owned(),
            subject: r.subject.to_owned(),
            severity: r.severity.to_owned(),
            at: r.at.to_string(),
            events: r.events.to_vec(),
            citation: r.citation.to_owned(),
            message: r.message,
            merchant: r.merchant.map(str::to_owned),
            index,
        }
    }
}

impl StandingOut {
    /// A merchant's standing as the API shows it, its words in `lang`.
    pub fn new(s: MerchantStanding, rules: &weiquan_engine::Rulebook, lang: weiquan_engine::Lang) -> StandingOut {
        use weiquan_engine::Lang;
        let g = s.grade;
        let letter = |c: Option<char>| c.map(String::from);
        let summary = match (g.grade, lang) {
            (Some(c), Lang::Zh) => format!("信用等级 {c}（{:.1} 分）", g.score),
            (Some(c), Lang::En) => format!("grade {c} (score {:.1})", g.score),
            (None, Lang::Zh) => format!("暂未评级：已有 {} 单，满 {} 单后评级", g.orders, g.min_orders),
            (None, Lang::En) => format!(
                "not rated yet: {} of the {} orders a rating needs",
                g.orders, g.min_orders
            ),
        };
        let factors: Vec<FactorOut> = (g.factors.iter())
            .map(|f| FactorOut {
                factor: f.kind.as_str().to_owned(),
                value: f.value,
                points: (f.points * 10.0).round() / 10.0,
                message: f.describe(&rules.credit, lang),
            })
            .collect();
        let mut costly: Vec<&FactorOut> = factors.iter().filter(|f| f.points > 0.0).collect();
        costly.sort_by(|a, b| b.points.total_cmp(&a.points));
        let mut reasons: Vec<String> = costly.into_iter().map(|f| f.message.clone()).collect();
        if s.blacklisted.is_some() {
            reasons.insert(
                0,
                match lang {
                    Lang::Zh => "已列入黑名单".into(),
                    Lang::En => "blacklisted".into(),
                },
            );
        }
        StandingOut {
            merchant: s.merchant,
            grade: GradeOut {
                grade: letter(g.grade),
                rated: g.grade.is_some(),
                summary,
                score: g.score,
                orders: g.orders,
                min_orders: g.min_orders,
                reasons,
                factors,
                history: (g.history.into_iter())
                    .map(|h| GradeChangeOut {
                        at: h.at.to_string(),
                        event: h.event.into(),
                        from: letter(h.from),
                        to: letter(h.to),
                        score: h.score,
                    })
                    .collect(),
                history_dropped: g.history_dropped,
            },
            blacklisted: s.blacklisted.map(BlacklistingOut::from),
            lifted: (s.lifted.into_iter())
                .map(|l| LiftedOut {
                    blacklisting: l.blacklisting.into(),
                    lifted_at: l.at.to_string(),
                    event: l.event,
                    reason: l.reason,
                })
                .collect(),
        }
    }
}

impl WinnerOut {
    /// A winner; `shipped` where it is known.
    pub fn new(participant: impl Into<String>, prize: impl Into<String>, shipped: Option<bool>) -> WinnerOut {
        WinnerOut {
            participant: participant.into(),
            prize: prize.into(),
            shipped,
            delivered: None,
        }
    }
}

impl ItemOut {
    /// Item `item` (1-based) of a request, and what became of it.
    pub fn new(item: usize, result: crate::ItemResult) -> ItemOut {
        use crate::ItemResult;
        let (status, index, field, error) = match result {
            ItemResult::Accepted { index } => ("accepted", Some(index), None, None),
            ItemResult::Duplicate => ("duplicate", None, None, None),
            ItemResult::Rejected { field, error } => ("rejected", None, field, Some(error)),
        };
        ItemOut {
            item,
            status: status.to_owned(),
            index,
            field,
            error,
        }
    }
}
