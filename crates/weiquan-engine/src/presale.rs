//! Pre-sales (预售): PS-01..08.
//!
//! A campaign's terms are tracked as currently in effect; each deposit keeps a
//! copy of what its consumer was promised (price, shipping days, gifts), since
//! PS-01, PS-04 and PS-05 judge against the promise made at deposit time.

use crate::merchant::{make_subject, DepositTerms};
use crate::table::{CampaignIx, MerchantIx, OrderIx};
use crate::{yuan, Deadline, Due, Engine, RuleId};
use weiquan_events::{PresaleTerms, Time, DAY_MS};

/// A pre-sale campaign.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Campaign {
    pub merchant: Option<MerchantIx>,
    pub published: bool,
    pub deposit_fen: Option<u64>,
    pub price_fen: Option<u64>,
    pub deposit_start: Option<Time>,
    pub final_end: Option<Time>,
    pub ship_within_days: Option<u32>,
    pub gifts: Vec<Box<str>>,
    pub ever_gifts: Vec<Box<str>>,
    pub refundable: Option<bool>,
    pub deposits_paid: u32,
    pub over_long: bool,
    pub over_cap: bool,
    /// PS-01, PS-02 or PS-05 fired on it (PS-07 then holds the deposit refundable).
    pub at_fault: bool,
    /// The latest ship date its terms have ever promised, in ms.
    pub ever_promised: Option<i64>,
    /// Orders linked to it while it had no merchant (a deposit processed before
    /// the publish): they are the merchant's once it has one (Messy streams 2).
    pub orphans: Vec<OrderIx>,
}

impl Campaign {
    /// The latest ship date its terms have ever promised (`final_end` +
    /// `ship_within_days`), in ms. A change that moves the date earlier does
    /// not shorten it: orders placed under the earlier terms were promised the
    /// later date, and retention (which reads this lazily, when a subject's
    /// queued time comes) must not depend on when the change arrived.
    pub fn promised_until(&self) -> Option<i64> {
        self.ever_promised
    }
}

impl Engine {
    fn campaign_subject(&self, c: CampaignIx) -> String {
        make_subject("campaign", self.campaigns.id(c))
    }

    pub(crate) fn presale_published(&mut self, id: &str, at: Time, campaign: &str, terms: &PresaleTerms) {
        let c = self.campaigns.entry(campaign);
        if self.campaigns.get(c).published {
            // Messy streams 3: a second publish is a change carrying all its fields…
            self.presale_detriments(id, at, c, terms);
        }
        self.campaigns.get_mut(c).published = true;
        self.apply_presale_terms(c, terms);
        // … and a disclosure judged on its own fields.
        let stated_terms = terms.terms.as_deref().is_some_and(|t| !t.trim().is_empty());
        if terms.deposit_refundable.is_none() && !stated_terms {
            let m = self.campaigns.get(c).merchant;
            self.emit(RuleId::Ps08, self.campaign_subject(c), m, at, vec![id.into()], vec![]);
        }
        self.presale_limits(id, at, c);
    }

    pub(crate) fn presale_changed(&mut self, id: &str, at: Time, campaign: &str, ch: &PresaleTerms) {
        let c = self.campaigns.entry(campaign);
        // Messy streams 2: a change before the publish has no terms to change.
        if !self.campaigns.get(c).published {
            return;
        }
        self.presale_detriments(id, at, c, ch);
        self.apply_presale_terms(c, ch);
        self.presale_limits(id, at, c);
    }

    /// PS-02: a change to consumers' detriment once a deposit was paid.
    fn presale_detriments(&mut self, id: &str, at: Time, c: CampaignIx, ch: &PresaleTerms) {
        let cur = self.campaigns.get(c);
        if cur.deposits_paid > 0 {
            let mut worse = Vec::new();
            let raised = |name: &str, old: Option<u64>, new: Option<u64>, worse: &mut Vec<String>| {
                if let (Some(o), Some(n)) = (old, new) {
                    if n > o {
                        worse.push(format!("{name} {o} → {n}"));
                    }
                }
            };
            raised("price_fen", cur.price_fen, ch.price_fen, &mut worse);
            raised("deposit_fen", cur.deposit_fen, ch.deposit_fen, &mut worse);
            raised(
                "ship_within_days",
                cur.ship_within_days.map(u64::from),
                ch.ship_within_days.map(u64::from),
                &mut worse,
            );
            if let (Some(o), Some(n)) = (cur.final_end, ch.final_end) {
                if n > o {
                    worse.push(format!("final_end {o} → {n}"));
                }
            }
            if let Some(new_gifts) = &ch.gifts {
                for g in &cur.gifts {
                    if !new_gifts.iter().any(|n| **n == **g) {
                        worse.push(format!("gift {g} dropped"));
                    }
                }
            }
            if cur.refundable == Some(true) && ch.deposit_refundable == Some(false) {
                worse.push("deposit_refundable true → false".into());
            }
            if !worse.is_empty() {
                self.campaigns.get_mut(c).at_fault = true;
                let m = self.campaigns.get(c).merchant;
                self.emit(
                    RuleId::Ps02,
                    self.campaign_subject(c),
                    m,
                    at,
                    vec![id.into()],
                    vec![("change", worse.join("; "))],
                );
            }
        }
    }

    /// The campaign an order belongs to: the first one named for it (Messy
    /// streams 7), `named` when none was yet. Also gives the order its
    /// campaign's merchant when it has none.
    fn order_campaign(&mut self, o: OrderIx, named: &str) -> CampaignIx {
        let c = match self.orders.get(o).campaign {
            Some(c) => c,
            None => self.campaigns.entry(named),
        };
        let m = self.campaigns.get(c).merchant;
        let owned = self.with_order(o, |ord| {
            ord.campaign = Some(c);
            ord.merchant = ord.merchant.or(m);
            ord.merchant.is_some()
        });
        let camp = self.campaigns.get_mut(c);
        if !owned && !camp.orphans.contains(&o) {
            camp.orphans.push(o);
        }
        c
    }

    /// Gives the orders linked to campaign `c` before it had a merchant to `m`,
    /// its first: their deposits and deadlines count for it from now on.
    fn adopt_orphans(&mut self, c: CampaignIx, m: MerchantIx) {
        for o in std::mem::take(&mut self.campaigns.get_mut(c).orphans) {
            // A slot retention has since freed, or given to another order, is skipped.
            let ord = self.orders.get(o);
            if ord.campaign != Some(c) || ord.merchant.is_some() {
                continue;
            }
            // As `deposit_paid` counts an order new to its merchant.
            let deposit = ord.presale().deposit.is_some();
            self.with_order(o, |ord| ord.merchant = Some(m));
            if deposit {
                self.credit_mut(m).orders += 1;
            }
        }
    }

    fn apply_presale_terms(&mut self, c: CampaignIx, t: &PresaleTerms) {
        let m = t.merchant.as_deref().map(|m| self.merchants.entry(m));
        if let (None, Some(m)) = (self.campaigns.get(c).merchant, m) {
            self.adopt_orphans(c, m);
        }
        let camp = self.campaigns.get_mut(c);
        camp.merchant = m.or(camp.merchant);
        camp.deposit_fen = t.deposit_fen.or(camp.deposit_fen);
        camp.price_fen = t.price_fen.or(camp.price_fen);
        camp.deposit_start = t.deposit_start.or(camp.deposit_start);
        camp.final_end = t.final_end.or(camp.final_end);
        camp.ship_within_days = t.ship_within_days.or(camp.ship_within_days);
        if let Some(end) = camp.final_end {
            let promised = end.plus_days(camp.ship_within_days.unwrap_or(0)).unix_ms();
            camp.ever_promised = camp.ever_promised.max(Some(promised));
        }
        camp.refundable = t.deposit_refundable.or(camp.refundable);
        if let Some(gifts) = &t.gifts {
            camp.gifts = gifts.iter().map(|g| (**g).into()).collect();
            for g in gifts {
                if !camp.ever_gifts.iter().any(|e| **e == **g) {
                    camp.ever_gifts.push((**g).into());
                }
            }
        }
    }

    /// PS-03 and PS-06, reported when a campaign crosses the limit.
    fn presale_limits(&mut self, id: &str, at: Time, c: CampaignIx) {
        let max_days = self.rules.thresholds.presale_max_days;
        let cap_bp = self.rules.deposit_cap_bp;
        let camp = self.campaigns.get(c);
        let span_days = match (camp.deposit_start, camp.final_end, camp.ship_within_days) {
            (Some(start), Some(end), Some(days)) => Some(end.plus_days(days).unix_ms() - start.unix_ms()),
            _ => None,
        };
        let over_long = span_days.is_some_and(|ms| ms > i64::from(max_days) * DAY_MS);
        let over_cap = match (camp.deposit_fen, camp.price_fen) {
            (Some(d), Some(p)) => u128::from(d) * 10_000 > u128::from(p) * u128::from(cap_bp),
            _ => false,
        };
        let (was_long, was_cap, m) = (camp.over_long, camp.over_cap, camp.merchant);
        let (deposit, price) = (camp.deposit_fen.unwrap_or(0), camp.price_fen.unwrap_or(0));
        let camp = self.campaigns.get_mut(c);
        camp.over_long = over_long;
        camp.over_cap = over_cap;
        if over_long && !was_long {
            let days = span_days.unwrap_or(0).div_euclid(DAY_MS).to_string();
            self.emit(
                RuleId::Ps03,
                self.campaign_subject(c),
                m,
                at,
                vec![id.into()],
                vec![("days", days), ("max", max_days.to_string())],
            );
        }
        if over_cap && !was_cap {
            self.emit(
                RuleId::Ps06,
                self.campaign_subject(c),
                m,
                at,
                vec![id.into()],
                vec![
                    ("deposit", yuan(deposit)),
                    ("price", yuan(price)),
                    ("cap", format!("{}%", self.rules.thresholds.deposit_cap_percent)),
                ],
            );
        }
    }

    pub(crate) fn deposit_paid(&mut self, id: &str, campaign: &str, order: &str, deposit_fen: u64) {
        let o = self.orders.entry(order);
        let had_merchant = self.orders.get(o).merchant.is_some();
        let c = self.order_campaign(o, campaign);
        let camp = self.campaigns.get_mut(c);
        camp.deposits_paid += 1;
        let terms = DepositTerms {
            deposit_fen,
            price_fen: camp.price_fen,
            ship_within_days: camp.ship_within_days,
            gifts: camp.gifts.clone(),
            refundable: camp.refundable,
            event: id.into(),
        };
        let m = camp.merchant;
        let new_to_merchant = !had_merchant && m.is_some();
        // Messy streams 3: a second deposit leaves the first one's terms standing.
        self.with_order(o, |ord| {
            ord.presale_mut().deposit.get_or_insert(terms);
        });
        if let (true, Some(m)) = (new_to_merchant, m) {
            self.credit_mut(m).orders += 1;
        }
    }

    pub(crate) fn final_paid(
        &mut self,
        id: &str,
        at: Time,
        campaign: &str,
        order: &str,
        final_fen: u64,
        gifts: Option<&[weiquan_events::Str<'_>]>,
    ) {
        let o = self.orders.entry(order);
        let c = self.order_campaign(o, campaign);
        let camp = self.campaigns.get(c);
        let ord = self.orders.get(o);
        let deposit = ord.presale().deposit.as_ref();
        let paid = deposit.map_or(0, |d| d.deposit_fen).saturating_add(final_fen);
        // What the deposit promised, or with no promise of its own, the terms in effect now.
        let promise = deposit.filter(|d| d.promised());
        let promised = promise.map_or(camp.price_fen, |d| d.price_fen);
        let promised_gifts: Vec<Box<str>> = promise.map_or_else(|| camp.gifts.clone(), |d| d.gifts.clone());
        let ship_days = promise.and_then(|d| d.ship_within_days).or(camp.ship_within_days);
        let mut events: Vec<String> = deposit.iter().map(|d| d.event.to_string()).collect();
        events.push(id.into());
        let m = camp.merchant;
        if let Some(promised) = promised.filter(|&p| paid > p) {
            self.campaigns.get_mut(c).at_fault = true;
            self.emit(
                RuleId::Ps01,
                self.campaign_subject(c),
                m,
                at,
                events.clone(),
                vec![("paid", yuan(paid)), ("promised", yuan(promised))],
            );
        }
        if let Some(got) = gifts {
            if let Some(missing) = promised_gifts.iter().find(|g| !got.iter().any(|x| *x == ***g)) {
                self.campaigns.get_mut(c).at_fault = true;
                self.emit(
                    RuleId::Ps05,
                    self.campaign_subject(c),
                    m,
                    at,
                    events,
                    vec![("gift", missing.to_string())],
                );
            }
        }
        self.with_order(o, |ord| {
            ord.presale_mut().final_paid = Some(id.into());
        });
        if let Some(days) = ship_days {
            self.set_deadline(at.plus_days(days), Due::Ps04Ship, o, 0);
        }
    }

    pub(crate) fn ps04_due(&mut self, d: Deadline) {
        let o = d.target();
        let ord = self.orders.get(o);
        let pre = ord.presale();
        // Messy streams 5: cancelled, refunded or deposit-refunded in time needs no shipment.
        if ord.settled() || pre.deposit_refunded.is_some() || pre.ps04_fired {
            return;
        }
        let events = pre.final_paid.iter().map(|e| e.to_string()).collect();
        let merchant = self.order_owner(o);
        self.with_order(o, |ord| ord.presale_mut().ps04_fired = true);
        self.late_shipment(merchant);
        self.emit(
            RuleId::Ps04,
            self.order_subject(o),
            merchant,
            d.due,
            events,
            vec![("due", d.due.to_string())],
        );
    }

    pub(crate) fn gift_withdrawn(&mut self, id: &str, at: Time, campaign: &str, order: Option<&str>, gift: &str) {
        let c = match order {
            Some(order) => {
                let o = self.orders.entry(order);
                self.order_campaign(o, campaign)
            }
            None => self.campaigns.entry(campaign),
        };
        let camp = self.campaigns.get_mut(c);
        if !camp.ever_gifts.iter().any(|g| &**g == gift) {
            return;
        }
        camp.gifts.retain(|g| &**g != gift);
        camp.at_fault = true;
        let m = camp.merchant;
        self.emit(
            RuleId::Ps05,
            self.campaign_subject(c),
            m,
            at,
            vec![id.into()],
            vec![("gift", gift.into())],
        );
    }

    /// Each request has its own deadline (Messy streams 6); a refund dated in
    /// time meets it whenever it is processed, so even one already made does.
    pub(crate) fn deposit_refund_requested(&mut self, id: &str, at: Time, campaign: &str, order: &str) {
        let o = self.orders.entry(order);
        self.order_campaign(o, campaign);
        let generation = self.with_order(o, |ord| {
            let pre = ord.presale_mut();
            pre.deposit_refund_generation += 1;
            pre.deposit_refund.push((pre.deposit_refund_generation, id.into()));
            pre.deposit_refund_generation
        });
        let due = at.plus_days(self.rules.thresholds.deposit_refund_days);
        self.set_deadline(due, Due::Ps07DepositRefund, o, generation);
    }

    /// `presale.deposit_refunded`: the earliest refund's time is what requests are met by.
    pub(crate) fn deposit_refunded(&mut self, at: Time, campaign: &str, order: &str) {
        let o = self.orders.entry(order);
        self.order_campaign(o, campaign);
        self.with_order(o, |ord| {
            let pre = ord.presale_mut();
            pre.deposit_refunded = Some(pre.deposit_refunded.map_or(at, |t| t.min(at)));
        });
    }

    pub(crate) fn ps07_due(&mut self, d: Deadline) {
        let o = d.target();
        let ord = self.orders.get(o);
        let pre = ord.presale();
        let Some(i) = pre.deposit_refund.iter().position(|r| r.0 == d.generation) else {
            return;
        };
        let met = pre.deposit_refunded.is_some_and(|t| t <= d.due);
        let event = pre.deposit_refund[i].1.to_string();
        self.with_order(o, |ord| {
            ord.presale_mut().deposit_refund.remove(i);
        });
        if met {
            return;
        }
        let ord = self.orders.get(o);
        let pre = ord.presale();
        let camp = ord.campaign.map(|c| self.campaigns.get(c));
        let refundable = pre.deposit.as_ref().and_then(|t| t.refundable) == Some(true)
            || camp.and_then(|c| c.refundable) == Some(true);
        let at_fault = pre.ps04_fired || camp.is_some_and(|c| c.at_fault);
        if !(refundable || at_fault) {
            return;
        }
        let events = vec![event];
        let merchant = self.order_owner(o);
        self.with_order(o, |ord| ord.presale_mut().ps07_fired = true);
        self.emit(
            RuleId::Ps07,
            self.order_subject(o),
            merchant,
            d.due,
            events,
            vec![("due", d.due.to_string())],
        );
    }
}
