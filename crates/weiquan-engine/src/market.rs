//! Prices, marketing and pay-later: PR-01, PR-02, MK-01, BN-01, BN-02, BN-04, BN-05.
//!
//! Each sku keeps its listed-price history (PR-01, PR-02's listed price) and
//! its quotes since its last price change (PR-02), both sorted by `at`, so that
//! a window is read by binary search whatever order events arrive in (Messy
//! streams 1: nothing is forgotten because a later-dated event came first).

use crate::merchant::make_subject;
use crate::table::{pid, MerchantIx, Owned, SegmentIx, SkuIx};

impl crate::table::Keyed for Sku {
    fn key_hash(&self, id: &str) -> u64 {
        crate::table::owned_hash(self.merchant, id)
    }
}

impl Owned for Sku {
    type Owner = MerchantIx;
    fn owner(&self) -> MerchantIx {
        self.merchant
    }
}
use crate::{yuan, Engine, RuleId};
use weiquan_events::{Body, Consent, Time, DAY_MS};

/// One sku of one merchant.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Sku {
    /// The merchant's index (the sku's id is its table key).
    pub merchant: MerchantIx,
    pub subject: Box<str>,
    /// Listed prices by business time (sorted by `at`).
    pub history: Vec<(Time, u64)>,
    /// Quotes since the last price change (in processing order), sorted by `at`.
    pub quotes: Vec<Quote>,
}

/// A price shown to one consumer (32 bytes: an sku keeps every quote since its
/// last price change).
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Quote {
    /// Business time, ms.
    pub at: i64,
    pub consumer: u64,
    pub price: u64,
    /// Interned segment, [`NO_SEGMENT`] when absent.
    pub segment: SegmentIx,
}

/// The segment of a quote without one.
const NO_SEGMENT: SegmentIx = SegmentIx::NONE;

impl Sku {
    /// The price in effect at `t`: the last one set at or before it.
    fn price_at(&self, t: Time) -> Option<u64> {
        let i = self.history.partition_point(|(at, _)| *at <= t);
        i.checked_sub(1).map(|i| self.history[i].1)
    }

    /// The lowest price offered in `[t − window, t]`, counting the one in effect when the window opened.
    fn lowest_before(&self, t: Time, window_ms: i64) -> Option<u64> {
        let start = t.plus_ms(-window_ms);
        let from = self.history.partition_point(|(at, _)| *at <= start).saturating_sub(1);
        let to = self.history.partition_point(|(at, _)| *at <= t);
        self.history.get(from..to)?.iter().map(|(_, p)| *p).min()
    }

    /// Records a price; quotes before it are no longer compared with later ones.
    ///
    /// The history is not pruned: an event dated earlier than all others may
    /// still come, and its window must find the prices in effect then.
    fn set_price(&mut self, at: Time, price: u64) {
        let i = self.history.partition_point(|(t, _)| *t <= at);
        self.history.insert(i, (at, price));
        self.quotes.clear();
    }
}

fn basis_points_over(price: u64, base: u64, tolerance_bp: u64) -> bool {
    u128::from(price) * 10_000 > u128::from(base) * u128::from(10_000 + tolerance_bp)
}

impl Engine {
    fn sku(&mut self, m: MerchantIx, sku: &str) -> SkuIx {
        if let Some(s) = self.skus.find_owned(m, sku) {
            return s;
        }
        let subject = format!("sku:{}/{}", self.merchants.id(m), sku).into_boxed_str();
        self.skus.intern_owned(m, sku, || Sku {
            merchant: m,
            subject,
            history: Vec::new(),
            quotes: Vec::new(),
        })
    }

    /// `listing.published`, `listing.updated` and `price.changed`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn listing(
        &mut self,
        id: &str,
        at: Time,
        m: MerchantIx,
        sku: &str,
        title: Option<&str>,
        text: Option<&str>,
        price: Option<u64>,
        reference: Option<u64>,
    ) {
        let s = self.sku(m, sku);
        let window_ms = i64::from(self.rules.thresholds.reference_window_days) * DAY_MS;
        if let Some(reference) = reference {
            // Judged against prices before this event: its own new price is not "before".
            let lowest = self.skus.get(s).lowest_before(at, window_ms);
            if lowest.is_none_or(|low| reference > low) {
                let facts = vec![
                    ("reference", yuan(reference)),
                    ("lowest", lowest.map_or_else(|| "—".to_owned(), yuan)),
                    ("days", self.rules.thresholds.reference_window_days.to_string()),
                ];
                let subject = self.skus.get(s).subject.to_string();
                self.emit(RuleId::Pr01, subject, Some(m), at, vec![id.into()], facts);
            }
        }
        if let Some(price) = price {
            self.skus.get_mut(s).set_price(at, price);
        }
        let term = [title, text].into_iter().flatten().find_map(|t| {
            self.rules
                .thresholds
                .absolute_terms
                .iter()
                .find(|term| t.contains(term.as_str()))
        });
        if let Some(term) = term {
            let facts = vec![("term", term.clone())];
            let subject = self.skus.get(s).subject.to_string();
            self.emit(RuleId::Mk01, subject, Some(m), at, vec![id.into()], facts);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn price_quoted(
        &mut self,
        id: &str,
        at: Time,
        merchant: &str,
        sku: &str,
        consumer: &str,
        price: u64,
        segment: Option<&str>,
    ) {
        let m = self.merchants.entry(merchant);
        let s = self.sku(m, sku);
        let u = pid(consumer);
        let seg = segment.map_or(NO_SEGMENT, |g| self.segments.entry(g));
        let tolerance = self.rules.quote_tolerance_bp;
        let window_ms = i64::from(self.rules.thresholds.quote_window_minutes) * 60_000;
        let st = self.skus.get_mut(s);
        let (t, since) = (at.unix_ms(), at.unix_ms().saturating_sub(window_ms));
        let listed = st.price_at(at);
        // Where this quote goes: at the end, unless one dated later came first.
        let to = match st.quotes.last() {
            Some(q) if q.at > t => st.quotes.partition_point(|q| q.at <= t),
            _ => st.quotes.len(),
        };
        let compared = match listed {
            Some(l) if basis_points_over(price, l, tolerance) => Some(l),
            _ => {
                // The quotes dated within the previous hour, walked back from `to`: the
                // ones just appended, still in cache (a binary search over every quote
                // kept since the last price change touched cold memory for each quote).
                st.quotes[..to]
                    .iter()
                    .rev()
                    .take_while(|q| q.at >= since)
                    .filter(|q| q.consumer != u && q.segment == seg)
                    .map(|q| q.price)
                    .min()
                    .filter(|&base| basis_points_over(price, base, tolerance))
            }
        };
        st.quotes.insert(
            to,
            Quote {
                at: t,
                consumer: u,
                price,
                segment: seg,
            },
        );
        if let Some(base) = compared {
            let subject = st.subject.to_string();
            let facts = vec![
                ("consumer", consumer.into()),
                ("quoted", yuan(price)),
                ("compared", yuan(base)),
            ];
            self.emit(RuleId::Pr02, subject, Some(m), at, vec![id.into()], facts);
        }
    }

    pub(crate) fn bnpl(&mut self, id: &str, at: Time, body: &Body) {
        self.paylater_registry(id, at, body);
        let max_steps = self.rules.thresholds.bnpl_max_cancel_steps;
        let mut fired: Vec<(RuleId, Vec<(&'static str, String)>)> = Vec::new();
        let consumer = match body {
            Body::BnplOffered {
                consumer,
                preselected,
                terms_shown,
                ..
            } => {
                if *preselected {
                    fired.push((RuleId::Bn01, vec![]));
                }
                if !terms_shown {
                    fired.push((RuleId::Bn05, vec![]));
                }
                consumer
            }
            Body::BnplEnabled {
                consumer,
                consent,
                identity_verified,
                ..
            } => {
                if *consent != Consent::Explicit {
                    fired.push((RuleId::Bn01, vec![]));
                }
                if !identity_verified {
                    fired.push((RuleId::Bn02, vec![]));
                }
                consumer
            }
            Body::BnplDisabled { consumer, steps, .. } => {
                if *steps > max_steps {
                    fired.push((RuleId::Bn04, vec![("how", format!("steps={steps}"))]));
                }
                consumer
            }
            Body::BnplCancelFailed { consumer, reason, .. } => {
                fired.push((
                    RuleId::Bn04,
                    vec![("how", reason.as_deref().unwrap_or("cancel_failed").to_owned())],
                ));
                consumer
            }
            _ => return,
        };
        for (rule, facts) in fired {
            self.emit(
                rule,
                make_subject("consumer", consumer),
                None,
                at,
                vec![id.into()],
                facts,
            );
        }
    }
}

/// A consumer's pay-later (先用后付) with one provider, as `bnpl.*` events left it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PayLaterView {
    /// The provider.
    pub provider: String,
    /// Whether it is on.
    pub enabled: bool,
    /// Since when it is on or off (the event that switched it).
    pub since: Time,
    /// The event that switched it so.
    pub event: String,
    /// How it was switched on, the last time it was: the consent (`explicit`,
    /// `preselected`, `bundled`) and whether the consumer's identity was verified.
    #[serde(deserialize_with = "crate::snapshot::keyword_flag_opt::<_, weiquan_events::Consent>")]
    pub consent: Option<(crate::snapshot::Spelling, bool)>,
    /// How many steps the last switch-off took.
    pub steps: Option<u32>,
    /// Attempts to switch it off that failed.
    pub cancel_failed: u32,
}

impl Engine {
    /// Keeps the registry a consumer reads: the latest switch by business time wins
    /// (a switch dated before the one in effect arrived late and changes nothing).
    fn paylater_registry(&mut self, id: &str, at: Time, body: &Body) {
        let (consumer, provider) = match body {
            Body::BnplEnabled { consumer, provider, .. }
            | Body::BnplDisabled { consumer, provider, .. }
            | Body::BnplCancelFailed { consumer, provider, .. } => (consumer, provider),
            _ => return,
        };
        let entries = self.paylater.entry((**consumer).into()).or_default();
        let i = match entries.iter().position(|p| p.provider == **provider) {
            Some(i) => i,
            None => {
                entries.push(PayLaterView {
                    provider: provider.to_string(),
                    enabled: false,
                    since: at,
                    event: id.into(),
                    consent: None,
                    steps: None,
                    cancel_failed: 0,
                });
                entries.len() - 1
            }
        };
        let p = &mut entries[i];
        let current = at >= p.since;
        match body {
            Body::BnplEnabled {
                consent,
                identity_verified,
                ..
            } if current => {
                (p.enabled, p.since, p.event) = (true, at, id.into());
                p.consent = Some((consent.as_str(), *identity_verified));
            }
            Body::BnplDisabled { steps, .. } if current => {
                (p.enabled, p.since, p.event, p.steps) = (false, at, id.into(), Some(*steps));
            }
            Body::BnplCancelFailed { .. } => p.cancel_failed += 1,
            _ => {}
        }
    }

    /// A consumer's pay-later, provider by provider (in provider order); empty if none.
    pub fn paylater(&self, consumer: &str) -> Vec<PayLaterView> {
        let mut out = self.paylater.get(consumer).cloned().unwrap_or_default();
        out.sort_by(|a, b| a.provider.cmp(&b.provider));
        out
    }
}
