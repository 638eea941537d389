//! Merchants and what they owe consumers: registration (MC-01..03), closing
//! with obligations open (MC-04, MC-05), shipping, refunds, replies and
//! complaints (MC-06..11), and BN-03 on the order itself.
//!
//! Each merchant keeps running counts of its open and overdue obligations, so
//! that MC-04 and MC-05 are O(1). Counts change only through [`Engine::with_order`]
//! and [`Engine::with_complaint`], which compare an item's contribution before
//! and after a change.

use crate::credit::CreditState;
use crate::table::room_for_one;
use crate::table::{CampaignIx, ComplaintIx, MerchantIx, OrderIx};
use crate::{is_valid_uscc, Deadline, Due, Engine, RuleId};
use std::collections::VecDeque;
use weiquan_events::{Body, Payment, Sender, Time, DAY_MS, HOUR_MS};

/// A merchant's registration, obligations and standing.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Merchant {
    pub verified: bool,
    pub closed: bool,
    pub mc01_fired: bool,
    pub open: Obligations,
    /// Overdue obligations whose cause is still there (MC-05).
    pub overdue: u32,
    /// MC-05 already warned since `overdue` last reached the threshold.
    pub runaway_warned: bool,
    pub credit: CreditState,
    /// What the run-away watch list reads (see `Engine::watchlist`).
    pub watch: Watch,
}

/// Orders per merchant whose age the watch list reads: enough to see a
/// stall in a busy shop, few enough to cost a merchant a kilobyte.
pub(crate) const RECENT_ORDERS: usize = 64;

/// Signals that precede a run-away (跑路), kept as events arrive.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Watch {
    /// Orders accepted while an obligation was overdue, since none last was.
    pub orders_while_overdue: u32,
    /// Orders placed since the merchant last shipped one, and when the first
    /// of them was placed: shipping that stalls shows here long before any
    /// shipping deadline passes.
    pub waiting: u32,
    pub waiting_since: Option<Time>,
    /// When it last shipped an order.
    pub last_shipped: Option<Time>,
    /// Its latest orders and when they were placed (at most [`RECENT_ORDERS`]):
    /// how many of them age unshipped is read when the list is.
    pub recent_orders: VecDeque<(Time, OrderIx)>,
    /// Complaints filed in the last seven days (business time), oldest first.
    pub recent_complaints: VecDeque<Time>,
    /// Complaints filed before those, and when the first one was.
    pub earlier_complaints: u32,
    pub first_complaint: Option<Time>,
    /// First replies in service conversations: a fast and a slow moving
    /// average of their minutes (a drift shows as fast over slow).
    pub reply_fast: f64,
    pub reply_slow: f64,
}

/// Open obligations, as MC-04 lists them.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Obligations {
    pub orders: u32,
    pub refunds: u32,
    pub complaints: u32,
    pub deposits: u32,
    /// The money those deposits hold, in fen (the watch list shows it).
    pub deposit_fen: u64,
}

impl Obligations {
    fn total(self) -> u32 {
        self.orders + self.refunds + self.complaints + self.deposits
    }
}

/// A refund request awaiting an answer.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct PendingRefund {
    pub at: Time,
    pub no_reason: bool,
    /// Which request of the order it is (its MC-08 deadline's generation).
    pub generation: u32,
    pub event: Box<str>,
}

/// An order's refund requests still awaiting an answer (Messy streams 6: each
/// has its own deadline; a completion or rejection answers them all).
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct PendingRefunds {
    pub pending: Vec<PendingRefund>,
    /// MC-08 fired on one of them.
    pub overdue: bool,
}

/// What the consumer was promised when paying a pre-sale deposit.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct DepositTerms {
    pub deposit_fen: u64,
    pub price_fen: Option<u64>,
    pub ship_within_days: Option<u32>,
    pub gifts: Vec<Box<str>>,
    pub refundable: Option<bool>,
    pub event: Box<str>,
}

impl DepositTerms {
    /// The campaign had terms when the deposit was paid (a published campaign
    /// always has its required `price_fen`). A deposit processed before the
    /// publish promised nothing of its own: its checks read the terms in
    /// effect when their event is processed (Messy streams 2).
    pub(crate) fn promised(&self) -> bool {
        self.price_fen.is_some()
    }
}

/// An order (ordinary or pre-sale) and its lifecycle.
///
/// Kept small (120 bytes with its id): orders are the largest
/// table and the one most events reach, so what only some orders need is
/// boxed behind one pointer.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Order {
    pub merchant: Option<MerchantIx>,
    /// The `order.placed` event (kept inline: ids are short).
    pub placed: Option<compact_str::CompactString>,
    pub campaign: Option<CampaignIx>,
    pub shipped: bool,
    pub cancelled: bool,
    pub refunded: bool,
    pub mc06_fired: bool,
    pub delivered: Option<Time>,
    /// Boxed: most orders never see a refund, so they pay one pointer for it
    /// (`None`: no request pending).
    pub refunds: Option<Box<PendingRefunds>>,
    pub refund_generation: u32,
    /// Boxed: only pre-sale orders have it.
    presale: Option<Box<PresaleOrder>>,
}

/// What only a pre-sale order has.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct PresaleOrder {
    /// The terms promised when the deposit was paid.
    pub deposit: Option<DepositTerms>,
    /// The earliest `at` of a deposit refund (Messy streams 6: any one dated in
    /// time meets a request, whatever order they arrive in).
    pub deposit_refunded: Option<Time>,
    /// Deposit refund requests not yet judged: generation and event id.
    pub deposit_refund: Vec<(u32, Box<str>)>,
    pub deposit_refund_generation: u32,
    pub final_paid: Option<Box<str>>,
    pub ps04_fired: bool,
    pub ps07_fired: bool,
}

impl PresaleOrder {
    /// Nothing paid, requested or fired yet: what a new pre-sale part starts
    /// as and what an ordinary order reads (one definition for both).
    const UNSET: PresaleOrder = PresaleOrder {
        deposit: None,
        deposit_refunded: None,
        deposit_refund: Vec::new(),
        deposit_refund_generation: 0,
        final_paid: None,
        ps04_fired: false,
        ps07_fired: false,
    };
}

impl Default for PresaleOrder {
    fn default() -> Self {
        Self::UNSET
    }
}

/// The pre-sale part of an order that has none.
static NOT_PRESALE: PresaleOrder = PresaleOrder::UNSET;

impl Order {
    /// The pre-sale part (all unset for an ordinary order).
    pub fn presale(&self) -> &PresaleOrder {
        self.presale.as_deref().unwrap_or(&NOT_PRESALE)
    }

    /// The pre-sale part, created unset on first change.
    pub fn presale_mut(&mut self) -> &mut PresaleOrder {
        self.presale.get_or_insert_with(Box::default)
    }

    /// Shipped, cancelled or refunded: nothing left to ship.
    pub(crate) fn settled(&self) -> bool {
        self.shipped || self.cancelled || self.refunded
    }

    /// This order's share of its merchant's open and overdue counts.
    fn contribution(&self) -> (Obligations, u32) {
        let pre = self.presale();
        let open_order = self.placed.is_some() && !self.settled();
        let open = Obligations {
            orders: u32::from(open_order),
            refunds: u32::from(self.refunds.is_some()),
            complaints: 0,
            deposits: u32::from(pre.deposit.is_some() && !self.shipped && pre.deposit_refunded.is_none()),
            deposit_fen: match &pre.deposit {
                Some(d) if !self.shipped && pre.deposit_refunded.is_none() => d.deposit_fen,
                _ => 0,
            },
        };
        let overdue = u32::from(self.mc06_fired && open_order)
            + u32::from(pre.ps04_fired && !self.settled())
            + u32::from(self.refunds.as_ref().is_some_and(|r| r.overdue))
            + u32::from(pre.ps07_fired && pre.deposit_refunded.is_none());
        (open, overdue)
    }
}

/// A complaint and whether it was answered.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Complaint {
    pub merchant: Option<MerchantIx>,
    pub filed: Option<Box<str>>,
    pub responded: bool,
    pub resolved: bool,
    pub mc10_fired: bool,
    /// What the complaint channel shows (boxed: the rules need none of it).
    pub record: Option<Box<ComplaintRecord>>,
}

/// A complaint as its parties read it: who, about what, and each step.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ComplaintRecord {
    pub consumer: Box<str>,
    pub order: Option<Box<str>>,
    #[serde(deserialize_with = "crate::snapshot::keyword::<_, weiquan_events::ComplaintCategory>")]
    pub category: crate::snapshot::Spelling,
    pub filed_at: Option<Time>,
    pub evidence: Vec<(Box<str>, Box<str>)>,
    /// Every step after filing: event id, business time, what (`responded:merchant`, `resolved:refund`, …).
    pub steps: Vec<(Box<str>, Time, String)>,
    #[serde(deserialize_with = "crate::snapshot::keyword_opt::<_, weiquan_events::EscalatedTo>")]
    pub escalated_to: Option<crate::snapshot::Spelling>,
}

/// A complaint as the engine knows it (see `Engine::complaints`).
#[derive(Clone, Debug, PartialEq)]
pub struct ComplaintView {
    /// Its id.
    pub complaint: String,
    /// The consumer who filed it (as the engine knows them: a pseudonym in the server).
    pub consumer: String,
    /// The merchant it is against.
    pub merchant: Option<String>,
    /// The order it is about.
    pub order: Option<String>,
    /// Its category.
    pub category: &'static str,
    /// The `complaint.filed` event and its business time.
    pub filed: Option<(String, Time)>,
    /// When a response is due (MC-10: filing + `complaint_response_days`).
    pub response_due: Option<Time>,
    /// Whether it was responded to, resolved, and where it was escalated.
    pub responded: bool,
    /// Resolved.
    pub resolved: bool,
    /// Escalated to `platform` or `regulator`.
    pub escalated_to: Option<&'static str>,
    /// Evidence files: hex SHA-256 and kind.
    pub evidence: Vec<(String, String)>,
    /// Every step after filing: event id, business time, what.
    pub steps: Vec<(String, Time, String)>,
}

impl Complaint {
    fn contribution(&self) -> (Obligations, u32) {
        let open = Obligations {
            complaints: u32::from(self.filed.is_some() && !self.resolved),
            ..Obligations::default()
        };
        // Messy streams 10: a resolved complaint is no longer overdue, even unanswered.
        (open, u32::from(self.mc10_fired && !self.responded && !self.resolved))
    }
}

/// A customer-service conversation.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Conversation {
    pub merchant: Option<MerchantIx>,
    /// Consumer messages awaiting a human reply: time, generation, event id.
    pub waiting: Vec<(Time, u32, compact_str::CompactString)>,
    /// The times (ms) at which a consumer message is answered by a reply
    /// already processed: `[r − 1 day, r)` for each reply time `r`, merged and
    /// sorted. A message that arrives late is answered by a reply dated after
    /// it and within the day (Messy streams 6); kept as intervals, a day of
    /// replies costs one entry, not one per reply.
    pub answered: Vec<(i64, i64)>,
    pub generation: u32,
    pub first_message: Option<Time>,
    pub replied: bool,
}

/// Adds `[from, to)` to sorted, disjoint intervals, merging those it overlaps or touches.
fn answer_window(windows: &mut Vec<(i64, i64)>, from: i64, to: i64) {
    let first = windows.partition_point(|w| w.1 < from);
    let last = windows.partition_point(|w| w.0 <= to);
    if first == last {
        room_for_one(windows);
        windows.insert(first, (from, to));
        return;
    }
    let merged = (windows[first].0.min(from), windows[last - 1].1.max(to));
    windows.splice(first..last, [merged]);
}

/// `kind:id`, the subject format of findings.
pub(crate) fn make_subject(kind: &str, id: &str) -> String {
    let mut s = String::with_capacity(kind.len() + 1 + id.len());
    s.push_str(kind);
    s.push(':');
    s.push_str(id);
    s
}

impl Engine {
    pub(crate) fn merchant_subject(&self, m: MerchantIx) -> String {
        make_subject("merchant", self.merchants.id(m))
    }

    pub(crate) fn order_subject(&self, o: OrderIx) -> String {
        make_subject("order", self.orders.id(o))
    }

    /// Applies `change` to an order and moves its merchant's counts accordingly.
    pub(crate) fn with_order<R>(&mut self, o: OrderIx, change: impl FnOnce(&mut Order) -> R) -> R {
        let order = self.orders.get(o);
        let before = (order.merchant, order.contribution());
        let r = change(self.orders.get_mut(o));
        let order = self.orders.get(o);
        let after = (order.merchant, order.contribution());
        self.move_counts(before, after);
        r
    }

    /// Applies `change` to a complaint and moves its merchant's counts accordingly.
    pub(crate) fn with_complaint(&mut self, c: ComplaintIx, change: impl FnOnce(&mut Complaint)) {
        let complaint = self.complaints.get(c);
        let before = (complaint.merchant, complaint.contribution());
        change(self.complaints.get_mut(c));
        let complaint = self.complaints.get(c);
        let after = (complaint.merchant, complaint.contribution());
        self.move_counts(before, after);
    }

    fn move_counts(
        &mut self,
        before: (Option<MerchantIx>, (Obligations, u32)),
        after: (Option<MerchantIx>, (Obligations, u32)),
    ) {
        if before == after {
            return;
        }
        let threshold = self.rules.thresholds.runaway_overdue_count;
        if let (Some(m), (open, overdue)) = before {
            let mm = &mut self.merchants.get_mut(m);
            mm.open.orders -= open.orders;
            mm.open.refunds -= open.refunds;
            mm.open.complaints -= open.complaints;
            mm.open.deposits -= open.deposits;
            mm.open.deposit_fen -= open.deposit_fen;
            mm.overdue -= overdue;
        }
        if let (Some(m), (open, overdue)) = after {
            let mm = &mut self.merchants.get_mut(m);
            mm.open.orders += open.orders;
            mm.open.refunds += open.refunds;
            mm.open.complaints += open.complaints;
            mm.open.deposits += open.deposits;
            mm.open.deposit_fen += open.deposit_fen;
            mm.overdue += overdue;
        }
        // Judged on the counts after the change, not between its two halves: an
        // item whose overdue share stays the same must not re-arm MC-05.
        for m in [before.0, after.0].into_iter().flatten() {
            let mm = self.merchants.get_mut(m);
            if mm.overdue < threshold {
                mm.runaway_warned = false;
            }
            if mm.overdue == 0 {
                mm.watch.orders_while_overdue = 0;
            }
        }
    }

    pub(crate) fn merchant_registered(
        &mut self,
        id: &str,
        at: Time,
        merchant: &str,
        uscc: &str,
        licence: Option<&str>,
    ) {
        let m = self.merchants.entry(merchant);
        if !is_valid_uscc(uscc) {
            self.emit(
                RuleId::Mc02,
                self.merchant_subject(m),
                Some(m),
                at,
                vec![id.into()],
                vec![("uscc", uscc.into())],
            );
        }
        let mut reused = None;
        let u = self.uscc_owner.intern(uscc, || m);
        if *self.uscc_owner.get(u) != m {
            reused = Some(*self.uscc_owner.get(u));
        }
        if let Some(licence) = licence {
            let l = self.licence_owner.intern(licence, || m);
            if reused.is_none() && *self.licence_owner.get(l) != m {
                reused = Some(*self.licence_owner.get(l));
            }
        }
        if let Some(other) = reused {
            let other = self.merchants.id(other).to_owned();
            self.emit(
                RuleId::Mc03,
                self.merchant_subject(m),
                Some(m),
                at,
                vec![id.into()],
                vec![("other", other)],
            );
        }
    }

    pub(crate) fn merchant_closed(&mut self, id: &str, at: Time, merchant: &str) {
        let m = self.merchants.entry(merchant);
        let mm = self.merchants.get_mut(m);
        mm.closed = true;
        let open = mm.open;
        if open.total() > 0 {
            let facts = vec![
                ("orders", open.orders.to_string()),
                ("refunds", open.refunds.to_string()),
                ("complaints", open.complaints.to_string()),
                ("deposits", open.deposits.to_string()),
            ];
            self.emit(
                RuleId::Mc04,
                self.merchant_subject(m),
                Some(m),
                at,
                vec![id.into()],
                facts,
            );
        }
    }

    /// MC-01 and MC-11: checks on a merchant that lists goods or takes an order.
    pub(crate) fn trading_checks(&mut self, id: &str, at: Time, m: MerchantIx) {
        let mm = self.merchants.get_mut(m);
        if !mm.verified && !mm.mc01_fired {
            mm.mc01_fired = true;
            self.emit(
                RuleId::Mc01,
                self.merchant_subject(m),
                Some(m),
                at,
                vec![id.into()],
                vec![],
            );
        }
        let seq = self.seq;
        let mm = self.merchants.get_mut(m);
        if let Some(b) = &mut mm.credit.blacklist {
            // The event that completed the blacklist is not itself a breach of it.
            if b.seq < seq && !b.mc11_fired {
                b.mc11_fired = true;
                self.emit(
                    RuleId::Mc11,
                    self.merchant_subject(m),
                    Some(m),
                    at,
                    vec![id.into()],
                    vec![],
                );
            }
        }
    }

    pub(crate) fn order_placed(&mut self, id: &str, at: Time, body: &Body) {
        let Body::OrderPlaced {
            order,
            merchant,
            payment,
            confirmed,
            campaign,
            ..
        } = body
        else {
            return;
        };
        let m = self.merchants.entry(merchant);
        self.trading_checks(id, at, m);
        let threshold = self.rules.thresholds.runaway_overdue_count;
        let mm = self.merchants.get_mut(m);
        if mm.overdue >= threshold && !mm.runaway_warned {
            mm.runaway_warned = true;
            let overdue = mm.overdue.to_string();
            self.emit(
                RuleId::Mc05,
                self.merchant_subject(m),
                Some(m),
                at,
                vec![id.into()],
                vec![("overdue", overdue)],
            );
        }
        let mm = self.merchants.get_mut(m);
        if mm.overdue > 0 {
            mm.watch.orders_while_overdue += 1;
        }
        mm.watch.waiting += 1;
        mm.watch.waiting_since = Some(mm.watch.waiting_since.map_or(at, |t| t.min(at)));
        let o = self.orders.entry(order);
        // Messy streams 3: a second order.placed adds no obligation and leaves
        // the first one's fields standing; BN-03 still judges it.
        if self.orders.get(o).placed.is_none() {
            let c = campaign.as_deref().map(|c| self.campaigns.entry(c));
            let new_to_merchant = self.orders.get(o).merchant.is_none();
            self.with_order(o, |ord| {
                ord.placed = Some(id.into());
                ord.merchant = Some(m);
                // Messy streams 7: the first campaign named for an order is its campaign.
                ord.campaign = ord.campaign.or(c);
            });
            if new_to_merchant {
                self.credit_mut(m).orders += 1;
                let recent = &mut self.merchants.get_mut(m).watch.recent_orders;
                if recent.len() == RECENT_ORDERS {
                    recent.pop_front();
                }
                recent.push_back((at, o));
            }
            if self.orders.get(o).campaign.is_none() {
                let due = at.plus_days(self.rules.thresholds.ship_days);
                self.set_deadline(due, Due::Mc06Ship, o, 0);
            }
        }
        if *payment == Payment::Bnpl && *confirmed != Some(true) {
            let owner = self.order_owner(o);
            self.emit(RuleId::Bn03, self.order_subject(o), owner, at, vec![id.into()], vec![]);
        }
    }

    /// Marks an order shipped (by `order.shipped`, or a delivery); returns its index.
    pub(crate) fn order_shipped(&mut self, order: &str, at: Time) -> OrderIx {
        let o = self.orders.entry(order);
        let ord = self.orders.get(o);
        if ord.shipped {
            return o; // a delivery after its shipment, or a repeated shipment
        }
        let (late, m) = (ord.mc06_fired || ord.presale().ps04_fired, ord.merchant);
        self.with_order(o, |ord| ord.shipped = true);
        if let Some(m) = m {
            if !late {
                self.credit_mut(m).shipped_on_time += 1;
            }
            // The merchant ships: what waited before is not a stall.
            let w = &mut self.merchants.get_mut(m).watch;
            w.last_shipped = Some(w.last_shipped.map_or(at, |t| t.max(at)));
            (w.waiting, w.waiting_since) = (0, None);
        }
        o
    }

    /// The merchant an order belongs to: its own, or its campaign's.
    pub(crate) fn order_owner(&self, o: OrderIx) -> Option<MerchantIx> {
        let ord = self.orders.get(o);
        ord.merchant
            .or_else(|| ord.campaign.and_then(|c| self.campaigns.get(c).merchant))
    }

    pub(crate) fn mc06_due(&mut self, d: Deadline) {
        let o = d.target();
        let ord = self.orders.get(o);
        // An order that has since been named in a pre-sale follows PS-04 instead (Messy streams 7).
        if ord.settled() || ord.mc06_fired || ord.campaign.is_some() {
            return;
        }
        let merchant = self.order_owner(o);
        let events = ord.placed.iter().map(|e| e.to_string()).collect();
        self.with_order(o, |ord| ord.mc06_fired = true);
        self.late_shipment(merchant);
        self.emit(
            RuleId::Mc06,
            self.order_subject(o),
            merchant,
            d.due,
            events,
            vec![("due", d.due.to_string())],
        );
    }

    pub(crate) fn late_shipment(&mut self, merchant: Option<MerchantIx>) {
        if let Some(m) = merchant {
            self.credit_mut(m).shipped_late += 1;
        }
    }

    pub(crate) fn refund_requested(&mut self, id: &str, at: Time, order: &str, no_reason: bool) {
        let o = self.orders.entry(order);
        let generation = self.with_order(o, |ord| {
            ord.refund_generation += 1;
            ord.refunds
                .get_or_insert_with(Box::default)
                .pending
                .push(PendingRefund {
                    at,
                    no_reason,
                    generation: ord.refund_generation,
                    event: id.into(),
                });
            ord.refund_generation
        });
        let due = at.plus_days(self.rules.thresholds.refund_days);
        self.set_deadline(due, Due::Mc08Refund, o, generation);
    }

    pub(crate) fn mc08_due(&mut self, d: Deadline) {
        let o = d.target();
        let ord = self.orders.get(o);
        let mut pending = ord.refunds.iter().flat_map(|r| &r.pending);
        let Some(request) = pending.find(|r| r.generation == d.generation) else {
            return;
        };
        let events = vec![request.event.to_string()];
        let merchant = self.order_owner(o);
        // The request stays pending (unsettled) until a completion or rejection answers it.
        self.with_order(o, |ord| {
            if let Some(r) = &mut ord.refunds {
                r.overdue = true;
            }
        });
        self.emit(
            RuleId::Mc08,
            self.order_subject(o),
            merchant,
            d.due,
            events,
            vec![("due", d.due.to_string())],
        );
    }

    pub(crate) fn refund_rejected(&mut self, id: &str, at: Time, order: &str) {
        let o = self.orders.entry(order);
        let window = i64::from(self.rules.thresholds.no_reason_return_days) * DAY_MS;
        let ord = self.orders.get(o);
        // The rejection answers every pending request; it refuses a seven-day
        // return when one of them was a no-reason request made in time.
        let refused_return = ord.delivered.and_then(|delivered| {
            let last_day = delivered.unix_ms().saturating_add(window);
            ord.refunds
                .iter()
                .flat_map(|r| &r.pending)
                .find(|r| r.no_reason && r.at.unix_ms() <= last_day)
                .map(|r| r.event.to_string())
        });
        let merchant = self.order_owner(o);
        self.with_order(o, |ord| ord.refunds = None);
        if let Some(request) = refused_return {
            let events = vec![request, id.to_owned()];
            let days = vec![("days", self.rules.thresholds.no_reason_return_days.to_string())];
            self.emit(RuleId::Mc09, self.order_subject(o), merchant, at, events, days);
        }
    }

    pub(crate) fn service_message(&mut self, id: &str, at: Time, merchant: &str, conversation: &str, from: Sender) {
        let m = self.merchants.entry(merchant);
        let c = self.conversations.entry(conversation);
        let conv = self.conversations.get_mut(c);
        conv.merchant.get_or_insert(m);
        let reply_ms = i64::from(self.rules.thresholds.reply_hours) * HOUR_MS;
        match from {
            Sender::Consumer => {
                conv.first_message.get_or_insert(at);
                // Messy streams 6: a reply already processed answers it when dated
                // after it (an equal time came first, so it is not after) and in time.
                let due = at.plus_ms(reply_ms);
                let t = at.unix_ms();
                let i = conv.answered.partition_point(|w| w.1 <= t);
                if conv.answered.get(i).is_some_and(|w| w.0 <= t) {
                    return;
                }
                conv.generation += 1;
                let generation = conv.generation;
                room_for_one(&mut conv.waiting);
                conv.waiting.push((at, generation, id.into()));
                self.set_deadline(due, Due::Mc07Reply, c, generation);
            }
            Sender::Merchant => {
                // A message still waiting is not yet due, so a reply dated after it is in time.
                conv.waiting.retain(|(t, _, _)| *t > at);
                answer_window(&mut conv.answered, at.unix_ms().saturating_sub(reply_ms), at.unix_ms());
                if !conv.replied {
                    conv.replied = true;
                    if let (Some(first), Some(owner)) = (conv.first_message, conv.merchant) {
                        let minutes = (at.unix_ms() - first.unix_ms()).max(0) / 60_000;
                        self.credit_mut(owner).record_first_reply(minutes);
                        let w = &mut self.merchants.get_mut(owner).watch;
                        let x = minutes as f64;
                        if w.reply_slow == 0.0 {
                            (w.reply_fast, w.reply_slow) = (x, x);
                        } else {
                            w.reply_fast += 0.3 * (x - w.reply_fast);
                            w.reply_slow += 0.03 * (x - w.reply_slow);
                        }
                    }
                }
            }
            Sender::Bot => {}
        }
    }

    pub(crate) fn mc07_due(&mut self, d: Deadline) {
        let conv = self.conversations.get_mut(d.target());
        let Some(i) = conv.waiting.iter().position(|w| w.1 == d.generation) else {
            return;
        };
        let (_, _, event) = conv.waiting.remove(i);
        let events = vec![event.into_string()];
        let merchant = conv.merchant;
        let subject = make_subject("conversation", self.conversations.id(d.target()));
        self.emit(
            RuleId::Mc07,
            subject,
            merchant,
            d.due,
            events,
            vec![("due", d.due.to_string())],
        );
    }

    pub(crate) fn complaint_filed(&mut self, id: &str, at: Time, complaint: &str, merchant: &str) {
        let m = self.merchants.entry(merchant);
        let c = self.complaints.entry(complaint);
        if self.complaints.get(c).filed.is_some() {
            return;
        }
        self.with_complaint(c, |cc| {
            cc.filed = Some(id.into());
            cc.merchant = Some(m);
        });
        self.credit_mut(m).complaints += 1;
        let w = &mut self.merchants.get_mut(m).watch;
        w.first_complaint.get_or_insert(at);
        let week_ago = at.unix_ms() - 7 * DAY_MS;
        let i = w.recent_complaints.partition_point(|t| *t <= at);
        w.recent_complaints.insert(i, at);
        while w.recent_complaints.front().is_some_and(|t| t.unix_ms() < week_ago) {
            w.recent_complaints.pop_front();
            w.earlier_complaints += 1;
        }
        let due = at.plus_days(self.rules.thresholds.complaint_response_days);
        self.set_deadline(due, Due::Mc10Response, c, 0);
    }

    pub(crate) fn mc10_due(&mut self, d: Deadline) {
        let c = d.target();
        let cc = self.complaints.get(c);
        if cc.responded || cc.mc10_fired {
            return;
        }
        let events = cc.filed.iter().map(|e| e.to_string()).collect();
        let merchant = cc.merchant;
        self.with_complaint(c, |cc| cc.mc10_fired = true);
        let subject = make_subject("complaint", self.complaints.id(c));
        self.emit(
            RuleId::Mc10,
            subject,
            merchant,
            d.due,
            events,
            vec![("due", d.due.to_string())],
        );
    }
}

impl Engine {
    /// Keeps what a complaint's parties read: the filing's details (the first
    /// filing's, as the rules keep) and each later step.
    pub(crate) fn complaint_record(&mut self, id: &str, at: Time, body: &Body) {
        let (complaint, step) = match body {
            Body::ComplaintFiled { complaint, .. } => (complaint, None),
            Body::ComplaintResponded { complaint, by } => (complaint, Some(format!("responded:{}", by.as_str()))),
            Body::ComplaintResolved { complaint, outcome } => {
                (complaint, Some(format!("resolved:{}", outcome.as_str())))
            }
            Body::ComplaintEscalated { complaint, to } => (complaint, Some(format!("escalated:{}", to.as_str()))),
            _ => return,
        };
        let c = self.complaints.entry(complaint);
        let record = self.complaints.get_mut(c).record.get_or_insert_with(Box::default);
        match body {
            Body::ComplaintFiled {
                consumer,
                order,
                category,
                evidence,
                ..
            } if record.filed_at.is_none() => {
                record.consumer = (**consumer).into();
                record.order = order.as_deref().map(Into::into);
                record.category = category.as_str();
                record.filed_at = Some(at);
                record.evidence = (evidence.iter().flatten())
                    .map(|e| ((*e.sha256).into(), (*e.kind).into()))
                    .collect();
            }
            // Escalation goes up only: once at a regulator, a later "to platform" does not take it away.
            Body::ComplaintEscalated { to, .. } if record.escalated_to != Some("regulator") => {
                record.escalated_to = Some(to.as_str())
            }
            _ => {}
        }
        if let Some(step) = step {
            record.steps.push((id.into(), at, step));
        }
    }

    /// Every complaint filed, in the order first seen.
    pub fn complaints(&self) -> impl Iterator<Item = ComplaintView> + '_ {
        (self.complaints.iter()).filter_map(move |(id, c)| self.complaint_view(id, c))
    }

    /// The complaint `id`, if it was filed.
    pub fn complaint(&self, id: &str) -> Option<ComplaintView> {
        self.complaint_view(id, self.complaints.get(self.complaints.find(id)?))
    }

    fn complaint_view(&self, id: &str, c: &Complaint) -> Option<ComplaintView> {
        let days = self.rules.thresholds.complaint_response_days;
        {
            let r = c.record.as_deref()?;
            let filed_at = r.filed_at?;
            Some(ComplaintView {
                complaint: id.to_owned(),
                consumer: r.consumer.to_string(),
                merchant: c.merchant.map(|m| self.merchants.id(m).to_owned()),
                order: r.order.as_deref().map(str::to_owned),
                category: r.category,
                filed: c.filed.as_deref().map(|e| (e.to_owned(), filed_at)),
                response_due: Some(filed_at.plus_days(days)),
                responded: c.responded,
                resolved: c.resolved,
                escalated_to: r.escalated_to,
                evidence: r.evidence.iter().map(|(s, k)| (s.to_string(), k.to_string())).collect(),
                steps: r.steps.iter().map(|(e, t, w)| (e.to_string(), *t, w.clone())).collect(),
            })
        }
    }

    /// The merchant a complaint is against, if it was filed.
    pub fn complaint_merchant(&self, complaint: &str) -> Option<String> {
        let c = self.complaints.get(self.complaints.find(complaint)?);
        c.merchant.map(|m| self.merchants.id(m).to_owned())
    }

    /// The `order.placed` event of an order and its merchant, if it was placed.
    pub fn placement_of(&self, order: &str) -> Option<(String, Option<String>)> {
        let o = self.orders.get(self.orders.find(order)?);
        let event = o.placed.as_deref()?.to_owned();
        Some((event, o.merchant.map(|m| self.merchants.id(m).to_owned())))
    }
}
