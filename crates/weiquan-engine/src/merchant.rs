//! Merchants and what they owe consumers: registration (MC-01..03), closing
//! with obligations open (MC-04, MC-05), shipping, refunds, replies and
//! complaints (MC-06..11), and BN-03 on the order itself.
//!
//! Each merchant keeps running counts of its open and overdue obligations, so
//! that MC-04 and MC-05 are O(1). Counts change only through [`Engine::with_order`]
//! and [`Engine::with_complaint`], which compare an item's contribution before
//! and after a change.

use crate::credit::CreditState;
use crate::{is_valid_uscc, Deadline, DeadlineKind, Engine, RuleId};
use weiquan_events::{Body, Payment, Sender, Time, DAY_MS, HOUR_MS};

/// A merchant's registration, obligations and standing.
#[derive(Default)]
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
}

/// Open obligations, as MC-04 lists them.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Obligations {
    pub orders: u32,
    pub refunds: u32,
    pub complaints: u32,
    pub deposits: u32,
}

impl Obligations {
    fn total(self) -> u32 {
        self.orders + self.refunds + self.complaints + self.deposits
    }
}

/// A refund request awaiting an answer.
#[derive(Clone)]
pub(crate) struct PendingRefund {
    pub at: Time,
    pub no_reason: bool,
    pub generation: u32,
    pub event: Box<str>,
}

/// What the consumer was promised when paying a pre-sale deposit.
#[derive(Clone)]
pub(crate) struct DepositTerms {
    pub deposit_fen: u64,
    pub price_fen: Option<u64>,
    pub ship_within_days: Option<u32>,
    pub gifts: Vec<Box<str>>,
    pub refundable: Option<bool>,
    pub event: Box<str>,
}

/// An order (ordinary or pre-sale) and its lifecycle.
///
/// Kept small (120 bytes with its id): orders are the largest
/// table and the one most events reach, so what only some orders need is
/// boxed behind one pointer.
#[derive(Default)]
pub(crate) struct Order {
    pub merchant: Option<u32>,
    /// The `order.placed` event (kept inline: ids are short).
    pub placed: Option<compact_str::CompactString>,
    pub campaign: Option<u32>,
    pub shipped: bool,
    pub cancelled: bool,
    pub refunded: bool,
    pub mc06_fired: bool,
    pub mc08_fired: bool,
    pub delivered: Option<Time>,
    /// Boxed: most orders never see a refund, so they pay one pointer for it.
    pub refund: Option<Box<PendingRefund>>,
    pub refund_generation: u32,
    /// Boxed: only pre-sale orders have it.
    presale: Option<Box<PresaleOrder>>,
}

/// What only a pre-sale order has.
pub(crate) struct PresaleOrder {
    /// The terms promised when the deposit was paid.
    pub deposit: Option<DepositTerms>,
    pub deposit_refunded: bool,
    /// Pending deposit refund request: generation and event id.
    pub deposit_refund: Option<(u32, Box<str>)>,
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
        deposit_refunded: false,
        deposit_refund: None,
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

    fn settled(&self) -> bool {
        self.shipped || self.cancelled || self.refunded
    }

    /// This order's share of its merchant's open and overdue counts.
    fn contribution(&self) -> (Obligations, u32) {
        let pre = self.presale();
        let open_order = self.placed.is_some() && !self.settled();
        let open = Obligations {
            orders: u32::from(open_order),
            refunds: u32::from(self.refund.is_some()),
            complaints: 0,
            deposits: u32::from(pre.deposit.is_some() && !self.shipped && !pre.deposit_refunded),
        };
        let overdue = u32::from(self.mc06_fired && open_order)
            + u32::from(pre.ps04_fired && !self.settled())
            + u32::from(self.mc08_fired && self.refund.is_some())
            + u32::from(pre.ps07_fired && pre.deposit_refund.is_some());
        (open, overdue)
    }
}

/// A complaint and whether it was answered.
#[derive(Default)]
pub(crate) struct Complaint {
    pub merchant: Option<u32>,
    pub filed: Option<Box<str>>,
    pub responded: bool,
    pub resolved: bool,
    pub mc10_fired: bool,
}

impl Complaint {
    fn contribution(&self) -> (Obligations, u32) {
        let open = Obligations {
            complaints: u32::from(self.filed.is_some() && !self.resolved),
            ..Obligations::default()
        };
        (open, u32::from(self.mc10_fired && !self.responded))
    }
}

/// A customer-service conversation.
#[derive(Default)]
pub(crate) struct Conversation {
    pub merchant: Option<u32>,
    /// The consumer message awaiting a human reply: time, generation, event id.
    pub waiting: Option<(Time, u32, Box<str>)>,
    pub generation: u32,
    pub first_message: Option<Time>,
    pub replied: bool,
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
    pub(crate) fn merchant_subject(&self, m: u32) -> String {
        make_subject("merchant", self.merchants.id(m))
    }

    pub(crate) fn order_subject(&self, o: u32) -> String {
        make_subject("order", self.orders.id(o))
    }

    /// Applies `change` to an order and moves its merchant's counts accordingly.
    pub(crate) fn with_order<R>(&mut self, o: u32, change: impl FnOnce(&mut Order) -> R) -> R {
        let order = self.orders.get(o);
        let before = (order.merchant, order.contribution());
        let r = change(self.orders.get_mut(o));
        let order = self.orders.get(o);
        let after = (order.merchant, order.contribution());
        self.move_counts(before, after);
        r
    }

    /// Applies `change` to a complaint and moves its merchant's counts accordingly.
    pub(crate) fn with_complaint(&mut self, c: u32, change: impl FnOnce(&mut Complaint)) {
        let complaint = self.complaints.get(c);
        let before = (complaint.merchant, complaint.contribution());
        change(self.complaints.get_mut(c));
        let complaint = self.complaints.get(c);
        let after = (complaint.merchant, complaint.contribution());
        self.move_counts(before, after);
    }

    fn move_counts(&mut self, before: (Option<u32>, (Obligations, u32)), after: (Option<u32>, (Obligations, u32))) {
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
            mm.overdue -= overdue;
            if mm.overdue < threshold {
                mm.runaway_warned = false;
            }
        }
        if let (Some(m), (open, overdue)) = after {
            let mm = &mut self.merchants.get_mut(m);
            mm.open.orders += open.orders;
            mm.open.refunds += open.refunds;
            mm.open.complaints += open.complaints;
            mm.open.deposits += open.deposits;
            mm.overdue += overdue;
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
    pub(crate) fn trading_checks(&mut self, id: &str, at: Time, m: u32) {
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
        let o = self.orders.entry(order);
        if self.orders.get(o).placed.is_some() {
            return; // a second order.placed for the same order changes nothing
        }
        let c = campaign.as_deref().map(|c| self.campaigns.entry(c));
        let new_to_merchant = self.orders.get(o).merchant.is_none();
        self.with_order(o, |ord| {
            ord.placed = Some(id.into());
            ord.merchant = Some(m);
            ord.campaign = ord.campaign.or(c);
        });
        if new_to_merchant {
            self.merchants.get_mut(m).credit.orders += 1;
        }
        if campaign.is_none() {
            let due = at.plus_days(self.rules.thresholds.ship_days);
            self.deadlines.set(due, DeadlineKind::Mc06Ship, o, 0);
        }
        if *payment == Payment::Bnpl && *confirmed != Some(true) {
            self.emit(
                RuleId::Bn03,
                self.order_subject(o),
                Some(m),
                at,
                vec![id.into()],
                vec![],
            );
        }
    }

    pub(crate) fn order_shipped(&mut self, order: &str) {
        let o = self.orders.entry(order);
        let (was, late, m) = {
            let ord = self.orders.get(o);
            (ord.shipped, ord.mc06_fired || ord.presale().ps04_fired, ord.merchant)
        };
        self.with_order(o, |ord| ord.shipped = true);
        if let (false, Some(m)) = (was, m) {
            if !late {
                self.merchants.get_mut(m).credit.shipped_on_time += 1;
            }
        }
    }

    pub(crate) fn mc06_due(&mut self, d: Deadline) {
        let o = d.target;
        let ord = self.orders.get(o);
        if ord.settled() || ord.mc06_fired {
            return;
        }
        let merchant = ord.merchant;
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

    pub(crate) fn late_shipment(&mut self, merchant: Option<u32>) {
        if let Some(m) = merchant {
            self.merchants.get_mut(m).credit.shipped_late += 1;
        }
    }

    pub(crate) fn refund_requested(&mut self, id: &str, at: Time, order: &str, no_reason: bool) {
        let o = self.orders.entry(order);
        let generation = self.with_order(o, |ord| {
            ord.refund_generation += 1;
            ord.mc08_fired = false;
            ord.refund = Some(Box::new(PendingRefund {
                at,
                no_reason,
                generation: ord.refund_generation,
                event: id.into(),
            }));
            ord.refund_generation
        });
        let due = at.plus_days(self.rules.thresholds.refund_days);
        self.deadlines.set(due, DeadlineKind::Mc08Refund, o, generation);
    }

    pub(crate) fn mc08_due(&mut self, d: Deadline) {
        let o = d.target;
        let ord = self.orders.get(o);
        let Some(pending) = ord.refund.as_ref().filter(|r| r.generation == d.generation) else {
            return;
        };
        let events = vec![pending.event.to_string()];
        let merchant = ord.merchant;
        self.with_order(o, |ord| ord.mc08_fired = true);
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
        let refused_return = match (&ord.refund, ord.delivered) {
            (Some(r), Some(delivered)) => r.no_reason && r.at.unix_ms() <= delivered.unix_ms().saturating_add(window),
            _ => false,
        };
        let request = ord.refund.as_ref().map(|r| r.event.to_string());
        let merchant = ord.merchant;
        self.with_order(o, |ord| ord.refund = None);
        if refused_return {
            let events = request.into_iter().chain([id.to_owned()]).collect();
            self.emit(RuleId::Mc09, self.order_subject(o), merchant, at, events, vec![]);
        }
    }

    pub(crate) fn service_message(&mut self, id: &str, at: Time, merchant: &str, conversation: &str, from: Sender) {
        let m = self.merchants.entry(merchant);
        let c = self.conversations.entry(conversation);
        let conv = self.conversations.get_mut(c);
        conv.merchant.get_or_insert(m);
        match from {
            Sender::Consumer => {
                conv.first_message.get_or_insert(at);
                if conv.waiting.is_none() {
                    conv.generation += 1;
                    let generation = conv.generation;
                    conv.waiting = Some((at, generation, id.into()));
                    let due = at.plus_ms(i64::from(self.rules.thresholds.reply_hours) * HOUR_MS);
                    self.deadlines.set(due, DeadlineKind::Mc07Reply, c, generation);
                }
            }
            Sender::Merchant => {
                conv.waiting = None;
                if !conv.replied {
                    conv.replied = true;
                    if let (Some(first), Some(owner)) = (conv.first_message, conv.merchant) {
                        let minutes = (at.unix_ms() - first.unix_ms()).max(0) / 60_000;
                        self.merchants.get_mut(owner).credit.record_first_reply(minutes);
                    }
                }
            }
            Sender::Bot => {}
        }
    }

    pub(crate) fn mc07_due(&mut self, d: Deadline) {
        let conv = self.conversations.get(d.target);
        let Some((_, _, event)) = conv.waiting.as_ref().filter(|w| w.1 == d.generation) else {
            return;
        };
        let events = vec![event.to_string()];
        let merchant = conv.merchant;
        let subject = make_subject("conversation", self.conversations.id(d.target));
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
        self.merchants.get_mut(m).credit.complaints += 1;
        let due = at.plus_days(self.rules.thresholds.complaint_response_days);
        self.deadlines.set(due, DeadlineKind::Mc10Response, c, 0);
    }

    pub(crate) fn mc10_due(&mut self, d: Deadline) {
        let c = d.target;
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
