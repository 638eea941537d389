//! The weiquan rule engine: every rule of the rulebook over a stream of events.
//!
//! [`Engine::apply`] takes one accepted event, [`Engine::advance`] moves the
//! clock; both return the findings that fired, in the order they fired. The
//! engine is pure: no IO, no wall clock, no randomness, and no hash-map order
//! reaches its output, so the same events in the same order give the same
//! findings byte for byte. It does not parse, dedupe or store anything: the
//! caller hands it events that were accepted exactly once.

mod credit;
mod deadline;
pub mod draw;
mod finding;
mod lottery;
mod market;
mod merchant;
mod poisson;
mod presale;
mod retention;
mod rulebook;
mod snapshot;
mod table;
mod uscc;
mod watch;

pub use credit::{Blacklisting, Factor, FactorKind, Grade, GradeChange, Lifted, MerchantStanding};
pub use finding::{yuan, Finding, FindingRecord};
pub use lottery::{HostStanding, HostView, LotteryView, WinnerView};
pub use market::PayLaterView;
pub use merchant::ComplaintView;
pub use retention::subjects_named;
pub use rulebook::{Credit, Lang, RuleId, RuleText, Rulebook, RulebookError, Severity, Thresholds, BUILTIN_RULEBOOK};
pub use snapshot::SnapshotError;
pub use uscc::is_valid_uscc;
pub use watch::{WatchEntry, WatchSignal};

use deadline::{Deadline, Deadlines, Due};
use retention::{Kept, Retained};
use std::sync::Arc;
use table::{
    CampaignIx, ComplaintIx, ConversationIx, HostIx, Ix, LicenceIx, LotteryIx, MerchantIx, OrderIx, SegmentIx, SkuIx,
    Table, UsccIx,
};
use weiquan_events::{Body, Event, Time};

/// The rule engine and everything it remembers about open subjects.
///
/// Its serde form is the payload of a snapshot ([`Engine::snapshot`]); the
/// rulebook is not part of it, nor what lives only while an event is applied.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Engine {
    #[serde(skip, default = "snapshot::placeholder_rules")]
    rules: Arc<Rulebook>,
    clock: Option<Time>,
    /// Events applied so far; MC-11 compares against the event that blacklisted.
    seq: u64,
    deadlines: Deadlines,
    #[serde(skip)]
    out: Vec<Finding>,
    merchants: Table<merchant::Merchant, MerchantIx>,
    orders: Table<merchant::Order, OrderIx>,
    complaints: Table<merchant::Complaint, ComplaintIx>,
    conversations: Table<merchant::Conversation, ConversationIx>,
    uscc_owner: Table<MerchantIx, UsccIx>,
    licence_owner: Table<MerchantIx, LicenceIx>,
    campaigns: Table<presale::Campaign, CampaignIx>,
    lotteries: Table<lottery::Lottery, LotteryIx>,
    hosts: Table<lottery::Host, HostIx>,
    skus: Table<market::Sku, SkuIx>,
    segments: Table<(), SegmentIx>,
    /// Merchants whose grade inputs changed while applying the current event.
    #[serde(skip)]
    credit_touched: Vec<MerchantIx>,
    /// Pay-later switches by consumer (`bnpl.*`), for the consumer's registry.
    paylater: rustc_hash::FxHashMap<Box<str>, Vec<market::PayLaterView>>,
    /// When each order, complaint, conversation, campaign and lottery may be forgotten.
    retention: retention::Retention,
}

impl Engine {
    /// An engine with no history, using `rules`.
    pub fn new(rules: Arc<Rulebook>) -> Engine {
        Engine {
            rules,
            clock: None,
            seq: 0,
            deadlines: Deadlines::default(),
            out: Vec::new(),
            merchants: Table::default(),
            orders: Table::default(),
            complaints: Table::default(),
            conversations: Table::default(),
            uscc_owner: Table::default(),
            licence_owner: Table::default(),
            campaigns: Table::default(),
            lotteries: Table::default(),
            hosts: Table::default(),
            skus: Table::default(),
            segments: Table::default(),
            credit_touched: Vec::new(),
            paylater: Default::default(),
            retention: Default::default(),
        }
    }

    /// The rulebook in use.
    pub fn rules(&self) -> &Rulebook {
        &self.rules
    }

    /// How many orders, complaints, conversations, campaigns and lotteries
    /// the engine holds: the subjects retention forgets, which set its memory.
    pub fn subjects_held(&self) -> usize {
        self.orders.len()
            + self.complaints.len()
            + self.conversations.len()
            + self.campaigns.len()
            + self.lotteries.len()
    }

    /// The clock: the largest business time seen so far.
    pub fn clock(&self) -> Option<Time> {
        self.clock
    }

    /// Applies one event: first the deadlines its time passes, then the event,
    /// then any deadline it set that is already past.
    pub fn apply(&mut self, event: &Event) -> Vec<Finding> {
        // Deadlines the clock move fires count as before this event (Messy
        // streams 11): a blacklist they complete is in force when it is applied.
        self.move_clock(event.at);
        self.seq += 1;
        self.dispatch(event);
        self.retain_named(event);
        self.fire_due();
        self.review_grades(&event.id);
        std::mem::take(&mut self.out)
    }

    /// Looks up, changing no state, what applying `ev` will read first: its subject's
    /// table slot, id and state. The caller warms a few events ahead of
    /// applying them so that their cache misses overlap instead of each
    /// stalling the rules in turn. Skipping it changes no finding, only the
    /// time taken.
    pub fn warm(&self, ev: &Event) {
        use std::hint::black_box;
        // Each arm reads fields spread over the state, not just its id: an
        // entry spans two or three cache lines, and a rule stalled on the one
        // not read here (an order's flags, an sku's price history) as long as
        // on an entry not warmed at all (profiled).
        match &ev.body {
            Body::OrderPlaced { order, .. }
            | Body::OrderShipped { order }
            | Body::OrderDelivered { order }
            | Body::OrderCancelled { order, .. }
            | Body::RefundRequested { order, .. }
            | Body::RefundCompleted { order, .. }
            | Body::RefundRejected { order, .. }
            | Body::PresaleDepositPaid { order, .. }
            | Body::PresaleFinalPaid { order, .. } => {
                if let Some(o) = self.orders.find(order) {
                    let o = self.orders.get(o);
                    black_box((o.merchant, o.shipped, o.refunds.is_some(), o.delivered.is_some()));
                }
            }
            Body::PriceQuoted { merchant, sku, .. } => {
                if let Some(s) = self.merchants.find(merchant).and_then(|m| self.skus.find_owned(m, sku)) {
                    let s = self.skus.get(s);
                    black_box((s.quotes.last().map(|q| q.at), s.history.last().map(|h| h.1)));
                }
            }
            Body::LotteryEntered { lottery, participant } => {
                if let Some(l) = self.lotteries.find(lottery) {
                    let l = self.lotteries.get(l);
                    black_box((l.closed, l.terms.commitment.is_some()));
                    black_box(l.entrants.get(&table::pid(participant)));
                }
            }
            Body::ServiceMessage { conversation, .. } => {
                if let Some(c) = self.conversations.find(conversation) {
                    let c = self.conversations.get(c);
                    black_box((c.merchant, c.waiting.len(), c.answered.last(), c.replied));
                }
            }
            Body::ComplaintFiled { complaint, .. }
            | Body::ComplaintResponded { complaint, .. }
            | Body::ComplaintResolved { complaint, .. } => {
                black_box(
                    self.complaints
                        .find(complaint)
                        .map(|c| self.complaints.get(c).responded),
                );
            }
            _ => {}
        }
    }

    /// Moves the clock to `to` (if later) and fires the deadlines it passes.
    pub fn advance(&mut self, to: Time) -> Vec<Finding> {
        self.move_clock(to);
        self.review_grades("clock");
        std::mem::take(&mut self.out)
    }

    fn move_clock(&mut self, to: Time) {
        if self.clock.is_none_or(|c| to > c) {
            self.clock = Some(to);
        }
        self.fire_due();
        self.forget_settled();
    }

    /// The retention horizon in ms (`None`: subjects are kept for ever).
    fn horizon_ms(&self) -> Option<i64> {
        match self.rules.thresholds.retention_days {
            0 => None,
            days => Some(i64::from(days) * weiquan_events::DAY_MS),
        }
    }

    /// Sets a deadline on a subject, which is then kept at least until it is due.
    fn set_deadline<I: Retained>(&mut self, due: Time, kind: deadline::Kind<I>, target: I, generation: u32) {
        self.deadlines.set(due, kind, target, generation);
        self.keep(target, due.unix_ms());
    }

    /// Records that subject `i` is needed until at least `t_ms`. An order's
    /// campaign is kept as long as the order (its rules read the campaign's
    /// terms, and it holds the campaign's index), including an order that got
    /// its campaign after its own last event.
    fn keep<I: Retained>(&mut self, i: I, t_ms: i64) {
        let Some(horizon) = self.horizon_ms() else { return };
        let until = self.retention.touch(i, t_ms, horizon);
        if I::KEPT == Kept::Order {
            if let Some(c) = self.orders.get(OrderIx::from_raw(i.raw())).campaign {
                self.retention.touch(c, until, horizon);
            }
        }
    }

    /// Keeps the subjects `event` names at least until its `at`. Every
    /// subject an event names counts, even one its rules left no state in (a
    /// campaign named beside an order that has another): the subject is
    /// created empty, as its next event would create it.
    fn retain_named(&mut self, event: &Event) {
        if self.horizon_ms().is_none() {
            return;
        }
        let t = event.at.unix_ms();
        for (kind, id) in retention::named(&event.body).into_iter().flatten() {
            match kind {
                Kept::Order => {
                    let i = self.orders.entry(id);
                    self.keep(i, t);
                }
                Kept::Complaint => {
                    let i = self.complaints.entry(id);
                    self.keep(i, t);
                }
                Kept::Conversation => {
                    let i = self.conversations.entry(id);
                    self.keep(i, t);
                }
                Kept::Campaign => {
                    let i = self.campaigns.entry(id);
                    self.keep(i, t);
                }
                Kept::Lottery => {
                    let i = self.lotteries.entry(id);
                    // Kept while open, so kept from the clock when it settles (its
                    // `at` may be earlier).
                    let settles = matches!(event.body, Body::LotteryDrawn { .. } | Body::LotteryCancelled { .. });
                    let t = match self.clock {
                        Some(clock) if settles => t.max(clock.unix_ms()),
                        _ => t,
                    };
                    self.keep(i, t);
                }
            }
        }
    }

    /// Forgets the subjects whose retention the clock has passed.
    fn forget_settled(&mut self) {
        let (Some(clock), Some(horizon)) = (self.clock, self.horizon_ms()) else {
            return;
        };
        // A pre-sale and its orders are needed until the latest ship date its
        // terms promise (an over-long pre-sale, PS-03, can promise one months
        // after its last event).
        // A lottery neither drawn nor cancelled is open: it is needed now, and
        // once it settles, until the clock at that moment (`retain_named`).
        let (orders, campaigns, lotteries) = (&self.orders, &self.campaigns, &self.lotteries);
        let now = clock.unix_ms();
        let needed = |kind, slot| match kind {
            Kept::Campaign => campaigns.get(CampaignIx::from_raw(slot)).promised_until(),
            Kept::Order => {
                (orders.get(OrderIx::from_raw(slot)).campaign).and_then(|c| campaigns.get(c).promised_until())
            }
            Kept::Lottery => (!lotteries.get(LotteryIx::from_raw(slot)).settled()).then_some(now),
            _ => None,
        };
        let mut gone = Vec::new();
        while let Some(subject) = self.retention.next_forgotten(clock.unix_ms(), horizon, needed) {
            gone.push(subject);
        }
        for (kind, slot) in gone {
            match kind {
                Kept::Order => {
                    let o = OrderIx::from_raw(slot);
                    // The merchant's watch list holds its latest orders by index.
                    if let Some(m) = self.orders.get(o).merchant {
                        self.merchants.get_mut(m).watch.recent_orders.retain(|&(_, r)| r != o);
                    }
                    self.orders.remove(o);
                }
                Kept::Complaint => self.complaints.remove(ComplaintIx::from_raw(slot)),
                Kept::Conversation => self.conversations.remove(ConversationIx::from_raw(slot)),
                Kept::Campaign => self.campaigns.remove(CampaignIx::from_raw(slot)),
                Kept::Lottery => self.lotteries.remove(LotteryIx::from_raw(slot)),
            }
        }
    }

    fn fire_due(&mut self) {
        let Some(clock) = self.clock else { return };
        // An expected event exactly at the deadline is in time: fire only once the clock is past it.
        while let Some(d) = self.deadlines.pop_before(clock) {
            self.fire(d);
        }
    }

    /// Records a finding: credit and blacklist first, then the output.
    fn emit(
        &mut self,
        rule: RuleId,
        subject: String,
        merchant: Option<MerchantIx>,
        at: Time,
        events: Vec<String>,
        facts: Vec<(&'static str, String)>,
    ) {
        if let Some(m) = merchant {
            self.credit_record(m, rule, &subject, at);
        }
        self.out.push(Finding {
            rule,
            merchant: merchant.map(|m| self.merchants.id(m).to_owned()),
            subject,
            at,
            events,
            facts,
        });
    }

    fn dispatch(&mut self, ev: &Event) {
        let at = ev.at;
        let id: &str = &ev.id;
        match &ev.body {
            Body::ClockTick => {}
            Body::MerchantRegistered {
                merchant,
                uscc,
                licence_sha256,
                ..
            } => self.merchant_registered(id, at, merchant, uscc, licence_sha256.as_deref()),
            Body::MerchantVerified { merchant, .. } => {
                let m = self.merchants.entry(merchant);
                self.merchants.get_mut(m).verified = true;
            }
            Body::MerchantClosed { merchant, .. } => self.merchant_closed(id, at, merchant),
            Body::MerchantBlacklistLifted { merchant, reason, .. } => {
                let m = self.merchants.entry(merchant);
                self.credit_mut(m).lift_blacklist(ev.at, id, reason);
            }
            Body::MerchantReopened { merchant } => {
                let m = self.merchants.entry(merchant);
                self.merchants.get_mut(m).closed = false;
            }
            Body::HostRegistered { .. }
            | Body::HostVerified { .. }
            | Body::HostSuspended { .. }
            | Body::HostReinstated { .. } => self.host_event(&ev.body, ev.at),
            Body::ListingPublished {
                merchant,
                sku,
                title,
                text,
                price_fen,
                reference_price_fen,
                ..
            } => {
                let m = self.merchants.entry(merchant);
                self.trading_checks(id, at, m);
                self.listing(
                    id,
                    at,
                    m,
                    sku,
                    Some(title),
                    text.as_deref(),
                    Some(*price_fen),
                    *reference_price_fen,
                );
            }
            Body::ListingUpdated {
                merchant,
                sku,
                title,
                text,
                price_fen,
                reference_price_fen,
            } => {
                let m = self.merchants.entry(merchant);
                self.listing(
                    id,
                    at,
                    m,
                    sku,
                    title.as_deref(),
                    text.as_deref(),
                    *price_fen,
                    *reference_price_fen,
                );
            }
            Body::PriceChanged {
                merchant,
                sku,
                price_fen,
            } => {
                let m = self.merchants.entry(merchant);
                self.listing(id, at, m, sku, None, None, Some(*price_fen), None);
            }
            Body::ListingRemoved { .. } => {}
            Body::PriceQuoted {
                merchant,
                sku,
                consumer,
                price_fen,
                segment,
            } => self.price_quoted(id, at, merchant, sku, consumer, *price_fen, segment.as_deref()),
            Body::OrderPlaced { .. } => self.order_placed(id, at, &ev.body),
            Body::OrderShipped { order } => {
                self.order_shipped(order, at);
            }
            Body::OrderDelivered { order } => {
                // Messy streams 5: a delivery with no shipment before it counts as shipped.
                let o = self.order_shipped(order, at);
                self.orders.get_mut(o).delivered.get_or_insert(at);
            }
            Body::OrderCancelled { order, .. } => {
                let o = self.orders.entry(order);
                self.with_order(o, |o| o.cancelled = true);
            }
            Body::RefundRequested { order, no_reason, .. } => self.refund_requested(id, at, order, *no_reason),
            Body::RefundCompleted { order, .. } => {
                let o = self.orders.entry(order);
                self.with_order(o, |o| {
                    o.refunded = true;
                    o.refunds = None;
                });
            }
            Body::RefundRejected { order, .. } => self.refund_rejected(id, at, order),
            Body::PresalePublished { campaign, terms } => self.presale_published(id, at, campaign, terms),
            Body::PresaleChanged { campaign, changes } => self.presale_changed(id, at, campaign, changes),
            Body::PresaleDepositPaid {
                campaign,
                order,
                deposit_fen,
                ..
            } => self.deposit_paid(id, campaign, order, *deposit_fen),
            Body::PresaleFinalPaid {
                campaign,
                order,
                final_fen,
                gifts,
            } => self.final_paid(id, at, campaign, order, *final_fen, gifts.as_deref()),
            Body::PresaleGiftWithdrawn {
                campaign, order, gift, ..
            } => self.gift_withdrawn(id, at, campaign, order.as_deref(), gift),
            Body::PresaleDepositRefundRequested { campaign, order } => {
                self.deposit_refund_requested(id, at, campaign, order)
            }
            Body::PresaleDepositRefunded { campaign, order, .. } => self.deposit_refunded(at, campaign, order),
            Body::LotteryAnnounced { lottery, terms } => self.lottery_announced(id, at, lottery, terms),
            Body::LotteryChanged { lottery, changes } => self.lottery_changed(id, at, lottery, changes),
            Body::LotteryEntered { lottery, participant } => self.lottery_entered(lottery, participant),
            Body::LotteryClosed { lottery } => {
                let l = self.lotteries.entry(lottery);
                self.lotteries.get_mut(l).closed = true;
            }
            Body::LotteryDrawn {
                lottery,
                winners,
                seed,
                beacon_signature,
                ..
            } => self.lottery_drawn(id, at, lottery, winners, seed.as_deref(), beacon_signature.as_deref()),
            Body::LotteryPrizeShipped {
                lottery,
                participant,
                prize,
                value_fen,
            } => self.prize_shipped(id, at, lottery, participant, prize, *value_fen),
            Body::LotteryPrizeDelivered { lottery, participant } => self.prize_delivered(lottery, participant),
            Body::LotteryCancelled { lottery, .. } => {
                let l = self.lotteries.entry(lottery);
                self.lotteries.get_mut(l).cancelled = true;
            }
            Body::ServiceMessage {
                merchant,
                conversation,
                from,
                ..
            } => self.service_message(id, at, merchant, conversation, *from),
            Body::ComplaintFiled {
                complaint, merchant, ..
            } => {
                self.complaint_filed(id, at, complaint, merchant);
                self.complaint_record(id, at, &ev.body);
            }
            Body::ComplaintResponded { complaint, .. } => {
                let c = self.complaints.entry(complaint);
                self.with_complaint(c, |c| c.responded = true);
                self.complaint_record(id, at, &ev.body);
            }
            Body::ComplaintResolved { complaint, .. } => {
                let c = self.complaints.entry(complaint);
                self.with_complaint(c, |c| c.resolved = true);
                self.complaint_record(id, at, &ev.body);
            }
            Body::ComplaintEscalated { .. } => self.complaint_record(id, at, &ev.body),
            Body::BnplOffered { .. }
            | Body::BnplEnabled { .. }
            | Body::BnplDisabled { .. }
            | Body::BnplCancelFailed { .. } => self.bnpl(id, at, &ev.body),
        }
    }
}
