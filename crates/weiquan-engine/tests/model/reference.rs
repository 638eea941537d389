//! A second, deliberately plain implementation of the whole rulebook (spec 1.1),
//! used only to test the engine against.
//!
//! It follows the spec's sentences with no fast path: maps and vectors keyed by
//! id strings, obligations counted by scanning every order and complaint when a
//! rule asks, windows evaluated by scanning every event kept, and one binary
//! heap of deadlines, each carrying what it checks (no generations). Where the
//! spec leaves a choice open, the choice is the engine's, written here a second
//! time from its description in the rulebook and `docs/messy-streams.md`.
//!
//! It reads events already parsed by `weiquan-events` (the parser has its own
//! tests) and does not compute messages; it reports each finding's rule,
//! subject, owning merchant, time and evidence.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use weiquan_engine::{draw, RuleId, Rulebook, Severity};
use weiquan_events::{Body, Consent, LotteryTerms, Payment, PresaleTerms, Sender, Time, DAY_MS, HOUR_MS};

/// One finding as compared: rule, subject, owning merchant, time, evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Out {
    pub rule: &'static str,
    pub subject: String,
    pub merchant: Option<String>,
    pub at: String,
    pub events: Vec<String>,
}

/// What a deadline checks, with what it needs to check it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Mc06 { order: String },
    Mc07 { conversation: String, message: String },
    Mc08 { order: String, request: String },
    Mc10 { complaint: String },
    Ps04 { order: String },
    Ps07 { order: String, request: String },
    Lt05 { lottery: String, armed_by: String },
    Lt06 { lottery: String, draw: usize },
}

#[derive(Default)]
struct Merchant {
    verified: bool,
    mc01_fired: bool,
    runaway_warned: bool,
    /// Event number that completed the blacklist, and whether MC-11 fired since.
    blacklist: Option<(u64, bool)>,
    /// High findings since the last lift: rule, subject, time.
    high: Vec<(RuleId, String, Time)>,
    /// LT-09: participant → (expected, wins, fired).
    wins: BTreeMap<String, (f64, u32, bool)>,
    /// Overdue and open obligations of its orders and complaints that were
    /// forgotten (retention): they count as they stood then.
    forgotten: (u32, u32),
}

#[derive(Clone)]
struct Deposit {
    price_fen: Option<u64>,
    deposit_fen: u64,
    ship_within_days: Option<u32>,
    gifts: Vec<String>,
    refundable: Option<bool>,
    event: String,
}

#[derive(Default)]
struct Order {
    merchant: Option<String>,
    placed: Option<String>,
    campaign: Option<String>,
    shipped: bool,
    cancelled: bool,
    refunded: bool,
    delivered: Option<Time>,
    mc06_fired: bool,
    /// Refund requests not yet answered: time, no_reason, event.
    refunds: Vec<(Time, bool, String)>,
    refunds_overdue: bool,
    deposit: Option<Deposit>,
    final_paid: Option<String>,
    ps04_fired: bool,
    deposit_requests: Vec<String>,
    deposit_refunds: Vec<Time>,
    ps07_fired: bool,
}

impl Order {
    fn settled(&self) -> bool {
        self.shipped || self.cancelled || self.refunded
    }
    fn deposit_refunded(&self) -> bool {
        !self.deposit_refunds.is_empty()
    }
}

#[derive(Default)]
struct Complaint {
    merchant: Option<String>,
    filed: Option<String>,
    responded: bool,
    resolved: bool,
    mc10_fired: bool,
}

#[derive(Default)]
struct Conversation {
    merchant: Option<String>,
    /// Consumer messages: time, event number, event id.
    messages: Vec<(Time, u64, String)>,
    /// Merchant replies: time, event number.
    replies: Vec<(Time, u64)>,
}

#[derive(Default)]
struct Campaign {
    merchant: Option<String>,
    published: bool,
    deposit_fen: Option<u64>,
    price_fen: Option<u64>,
    deposit_start: Option<Time>,
    final_end: Option<Time>,
    ship_within_days: Option<u32>,
    gifts: Vec<String>,
    ever_gifts: Vec<String>,
    refundable: Option<bool>,
    deposits_paid: u32,
    over_long: bool,
    over_cap: bool,
    at_fault: bool,
    /// The latest ship date its terms have ever promised.
    ever_promised: Option<Time>,
}

#[derive(Default)]
struct Lottery {
    merchant: Option<String>,
    announced: Option<String>,
    terms: LotteryTerms<'static>,
    /// Prize names ever announced, with the last value each had.
    ever: Vec<(String, Option<u64>)>,
    over_cap: bool,
    /// First entries: participant, entered before the close.
    entries: Vec<(String, bool)>,
    closed: bool,
    cancelled: bool,
    /// Draws: event id, winners (participant, prize).
    draws: Vec<(String, Vec<(String, String)>)>,
    /// The event that armed the current LT-05 deadline.
    lt05_armed_by: Option<String>,
    /// Shipments: participant, prize.
    shipped: Vec<(String, String)>,
    lt11_fired: bool,
    /// Draws before it had a merchant, for LT-09 once it has one.
    lt09_pending: Vec<PendingDraw>,
}

/// A draw LT-09 counts later: winners (participant, prize), entrants, who had entered.
type PendingDraw = (Vec<(String, String)>, usize, Vec<String>);

impl Lottery {
    fn eligible(&self, p: &str) -> bool {
        self.entries.iter().any(|(q, e)| q == p && *e)
    }
    fn entered(&self, p: &str) -> bool {
        self.entries.iter().any(|(q, _)| q == p)
    }
}

/// What the host registry said of a host, in order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HostAct {
    Registered,
    Verified,
    Suspended,
    Reinstated,
}

#[derive(Default)]
struct Sku {
    /// Prices: time, event number, price.
    history: Vec<(Time, u64, u64)>,
    /// Quotes since the last price change: time, consumer, segment, price.
    quotes: Vec<(Time, String, Option<String>, u64)>,
}

impl Sku {
    /// The price in effect at `t`: the latest dated at or before it (the last processed among equals).
    fn in_effect(&self, t: Time) -> Option<u64> {
        self.history
            .iter()
            .filter(|(at, _, _)| *at <= t)
            .max_by_key(|(at, n, _)| (*at, *n))
            .map(|(_, _, p)| *p)
    }
}

impl Order {
    /// Its overdue obligations whose cause is still there (MC-05).
    fn overdue(&self) -> u32 {
        u32::from(self.mc06_fired && self.placed.is_some() && !self.settled())
            + u32::from(self.ps04_fired && !self.settled())
            + u32::from(self.refunds_overdue && !self.refunds.is_empty())
            + u32::from(self.ps07_fired && !self.deposit_refunded())
    }

    /// Its open obligations (MC-04).
    fn open(&self) -> u32 {
        u32::from(self.placed.is_some() && !self.settled())
            + u32::from(!self.refunds.is_empty())
            + u32::from(self.deposit.is_some() && !self.shipped && !self.deposit_refunded())
    }
}

impl Complaint {
    /// Overdue (MC-05) while neither responded to nor resolved.
    fn overdue(&self) -> u32 {
        u32::from(self.mc10_fired && !self.responded && !self.resolved)
    }

    /// Open (MC-04) from filing until resolved.
    fn open(&self) -> u32 {
        u32::from(self.filed.is_some() && !self.resolved)
    }
}

/// Retention: the orders, complaints, conversations, campaigns and lotteries an event names.
fn named<'a>(body: &'a Body<'_>) -> Vec<(&'static str, &'a str)> {
    let mut out = Vec::new();
    match body {
        Body::OrderPlaced { order, campaign, .. } => {
            out.push(("order", &**order));
            out.extend(campaign.as_deref().map(|c| ("campaign", c)));
        }
        Body::OrderShipped { order }
        | Body::OrderDelivered { order }
        | Body::OrderCancelled { order, .. }
        | Body::RefundRequested { order, .. }
        | Body::RefundCompleted { order, .. }
        | Body::RefundRejected { order, .. } => out.push(("order", order)),
        Body::PresaleDepositPaid { campaign, order, .. }
        | Body::PresaleFinalPaid { campaign, order, .. }
        | Body::PresaleDepositRefundRequested { campaign, order }
        | Body::PresaleDepositRefunded { campaign, order, .. } => {
            out.push(("campaign", campaign));
            out.push(("order", order));
        }
        Body::PresaleGiftWithdrawn { campaign, order, .. } => {
            out.push(("campaign", campaign));
            out.extend(order.as_deref().map(|o| ("order", o)));
        }
        Body::PresalePublished { campaign, .. } | Body::PresaleChanged { campaign, .. } => {
            out.push(("campaign", campaign))
        }
        Body::LotteryAnnounced { lottery, .. }
        | Body::LotteryChanged { lottery, .. }
        | Body::LotteryEntered { lottery, .. }
        | Body::LotteryClosed { lottery }
        | Body::LotteryDrawn { lottery, .. }
        | Body::LotteryPrizeShipped { lottery, .. }
        | Body::LotteryPrizeDelivered { lottery, .. }
        | Body::LotteryCancelled { lottery, .. } => out.push(("lottery", lottery)),
        Body::ServiceMessage { conversation, .. } => out.push(("conversation", conversation)),
        Body::ComplaintFiled { complaint, .. }
        | Body::ComplaintResponded { complaint, .. }
        | Body::ComplaintResolved { complaint, .. }
        | Body::ComplaintEscalated { complaint, .. } => out.push(("complaint", complaint)),
        _ => {}
    }
    out
}

/// The reference model.
pub struct Model {
    rules: Rulebook,
    clock: Option<Time>,
    /// Events applied so far (MC-11 compares with the one that blacklisted).
    n: u64,
    heap: BinaryHeap<Reverse<(Time, u64, Due)>>,
    set: u64,
    out: Vec<Out>,
    merchants: BTreeMap<String, Merchant>,
    usccs: BTreeMap<String, String>,
    licences: BTreeMap<String, String>,
    orders: BTreeMap<String, Order>,
    complaints: BTreeMap<String, Complaint>,
    conversations: BTreeMap<String, Conversation>,
    campaigns: BTreeMap<String, Campaign>,
    lotteries: BTreeMap<String, Lottery>,
    hosts: BTreeMap<String, Vec<HostAct>>,
    skus: BTreeMap<(String, String), Sku>,
    /// Retention: per (kind, id), the latest `at` of its events and due time of its deadlines.
    until: BTreeMap<(&'static str, String), Time>,
}

fn subject(kind: &str, id: &str) -> String {
    format!("{kind}:{id}")
}

fn prize_count(prizes: &Option<Vec<weiquan_events::Prize<'static>>>) -> u64 {
    prizes.iter().flatten().map(|p| u64::from(p.count.unwrap_or(0))).sum()
}

/// P(X ≥ k) for X ~ Poisson(λ), summed from k upward (no cancellation).
fn poisson_tail(lambda: f64, k: u32) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    let mut log_term = -lambda + f64::from(k) * lambda.ln() - (1..=k).map(|i| f64::from(i).ln()).sum::<f64>();
    let mut sum = 0.0;
    let mut i = k;
    loop {
        let term = log_term.exp();
        sum += term;
        i += 1;
        log_term += lambda.ln() - f64::from(i).ln();
        if term < sum * 1e-17 || i > k + 10_000 {
            return sum;
        }
    }
}

impl Model {
    pub fn new(rules: Rulebook) -> Model {
        Model {
            rules,
            clock: None,
            n: 0,
            heap: BinaryHeap::new(),
            set: 0,
            out: Vec::new(),
            merchants: BTreeMap::new(),
            usccs: BTreeMap::new(),
            licences: BTreeMap::new(),
            orders: BTreeMap::new(),
            complaints: BTreeMap::new(),
            conversations: BTreeMap::new(),
            campaigns: BTreeMap::new(),
            lotteries: BTreeMap::new(),
            hosts: BTreeMap::new(),
            skus: BTreeMap::new(),
            until: BTreeMap::new(),
        }
    }

    /// Applies one event: the deadlines its time passes, the event, then deadlines already past.
    pub fn apply(&mut self, ev: &weiquan_events::Event) -> Vec<Out> {
        self.move_clock(ev.at);
        self.n += 1;
        self.dispatch(&ev.id, ev.at, &ev.body);
        // A lottery is kept while open, so from the clock when it settles.
        let settles = matches!(ev.body, Body::LotteryDrawn { .. } | Body::LotteryCancelled { .. });
        for (kind, id) in named(&ev.body) {
            let t = match self.clock {
                Some(clock) if settles && kind == "lottery" => ev.at.max(clock),
                _ => ev.at,
            };
            self.keep(kind, id, t);
        }
        self.settle_warnings();
        self.fire_due();
        std::mem::take(&mut self.out)
    }

    /// Moves the clock (as `--as-of` does).
    pub fn advance(&mut self, to: Time) -> Vec<Out> {
        self.move_clock(to);
        std::mem::take(&mut self.out)
    }

    fn move_clock(&mut self, to: Time) {
        if self.clock.is_none_or(|c| to > c) {
            self.clock = Some(to);
        }
        self.fire_due();
        self.forget();
    }

    /// Retention: `(kind, id)` is needed until at least `t`, and so is an order's campaign.
    fn keep(&mut self, kind: &'static str, id: &str, t: Time) {
        if self.rules.thresholds.retention_days == 0 {
            return;
        }
        // Every event that names a subject counts, whether or not it left state behind.
        let u = self.until.entry((kind, id.to_owned())).or_insert(t);
        *u = (*u).max(t);
        let until = *u;
        // An order's campaign lives as long as the order.
        if kind == "order" {
            if let Some(c) = self.orders.get(id).and_then(|o| o.campaign.clone()) {
                self.keep("campaign", &c, until);
            }
        }
    }

    /// Retention: forgets every subject last needed more than the horizon before the clock.
    fn forget(&mut self) {
        let (Some(clock), days) = (self.clock, self.rules.thresholds.retention_days) else {
            return;
        };
        if days == 0 {
            return;
        }
        // A pre-sale and its orders are needed until the latest ship date its terms ever promised.
        let promised = |c: Option<&String>| self.campaigns.get(c?)?.ever_promised;
        let gone: Vec<(&'static str, String)> = (self.until.iter())
            .filter(|((kind, id), u)| {
                let promise = match *kind {
                    "campaign" => promised(Some(id)),
                    "order" => promised(self.orders.get(id).and_then(|o| o.campaign.as_ref())),
                    // Neither drawn nor cancelled: open, never forgotten.
                    "lottery" if (self.lotteries.get(id)).is_none_or(|l| l.draws.is_empty() && !l.cancelled) => {
                        Some(clock)
                    }
                    _ => None,
                };
                promise.map_or(**u, |p| p.max(**u)).plus_days(days) < clock
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (kind, id) in gone {
            self.until.remove(&(kind, id.clone()));
            // What its merchant owes for it stays as it stood.
            let (merchant, overdue, open) = match kind {
                "order" => self
                    .orders
                    .get(&id)
                    .map_or((None, 0, 0), |o| (o.merchant.clone(), o.overdue(), o.open())),
                "complaint" => {
                    (self.complaints.get(&id)).map_or((None, 0, 0), |c| (c.merchant.clone(), c.overdue(), c.open()))
                }
                _ => (None, 0, 0),
            };
            if let Some(m) = merchant {
                let f = &mut self.merchants.entry(m).or_default().forgotten;
                *f = (f.0 + overdue, f.1 + open);
            }
            match kind {
                "order" => drop(self.orders.remove(&id)),
                "complaint" => drop(self.complaints.remove(&id)),
                "conversation" => drop(self.conversations.remove(&id)),
                "campaign" => drop(self.campaigns.remove(&id)),
                _ => drop(self.lotteries.remove(&id)),
            }
        }
    }

    fn fire_due(&mut self) {
        let Some(clock) = self.clock else { return };
        while self.heap.peek().is_some_and(|Reverse((due, _, _))| *due < clock) {
            let Some(Reverse((due, _, what))) = self.heap.pop() else {
                break;
            };
            self.fire(due, what);
            self.settle_warnings();
        }
    }

    fn deadline(&mut self, due: Time, what: Due) {
        let (kind, id) = match &what {
            Due::Mc06 { order } | Due::Mc08 { order, .. } | Due::Ps04 { order } | Due::Ps07 { order, .. } => {
                ("order", order)
            }
            Due::Mc07 { conversation, .. } => ("conversation", conversation),
            Due::Mc10 { complaint } => ("complaint", complaint),
            Due::Lt05 { lottery, .. } | Due::Lt06 { lottery, .. } => ("lottery", lottery),
        };
        let id = id.clone();
        self.keep(kind, &id, due);
        self.set += 1;
        self.heap.push(Reverse((due, self.set, what)));
    }

    fn emit(&mut self, rule: RuleId, subject: String, merchant: Option<String>, at: Time, events: Vec<String>) {
        if let Some(m) = &merchant {
            self.credit(m.clone(), rule, &subject, at);
        }
        self.out.push(Out {
            rule: rule.as_str(),
            subject,
            merchant,
            at: at.to_string(),
            events,
        });
    }

    // ---- credit and blacklist ----

    fn credit(&mut self, m: String, rule: RuleId, subject: &str, at: Time) {
        let window = i64::from(self.rules.credit.blacklist_window_days) * DAY_MS;
        let needed = self.rules.credit.blacklist_high_findings as usize;
        let high = self.rules.severity(rule) == Severity::High;
        let alone = self.rules.blacklists_alone(rule);
        let n = self.n;
        let mm = self.merchants.entry(m).or_default();
        if !high || mm.blacklist.is_some() {
            return;
        }
        mm.high.push((rule, subject.to_owned(), at));
        // High findings on `needed` distinct pairs within one window of 90 days.
        let in_a_window = mm.high.iter().any(|(_, _, start)| {
            let mut pairs: Vec<(RuleId, &str)> = Vec::new();
            for (r, s, t) in &mm.high {
                let d = t.unix_ms() - start.unix_ms();
                if (0..=window).contains(&d) && !pairs.contains(&(*r, s.as_str())) {
                    pairs.push((*r, s));
                }
            }
            pairs.len() >= needed
        });
        if alone || in_a_window {
            mm.blacklist = Some((n, false));
        }
    }

    /// MC-05 warns again only once the overdue count fell below the threshold.
    fn settle_warnings(&mut self) {
        let threshold = self.rules.thresholds.runaway_overdue_count;
        let ids: Vec<String> = self.merchants.keys().cloned().collect();
        for m in ids {
            if self.overdue(&m) < threshold {
                if let Some(mm) = self.merchants.get_mut(&m) {
                    mm.runaway_warned = false;
                }
            }
        }
    }

    /// Overdue obligations whose cause is still there (MC-05), counted by scanning.
    fn overdue(&self, m: &str) -> u32 {
        let orders = self
            .orders
            .values()
            .filter(|o| o.merchant.as_deref() == Some(m))
            .map(Order::overdue);
        let complaints =
            (self.complaints.values().filter(|c| c.merchant.as_deref() == Some(m))).map(Complaint::overdue);
        let forgotten = self.merchants.get(m).map_or(0, |mm| mm.forgotten.0);
        orders.chain(complaints).sum::<u32>() + forgotten
    }

    /// Open obligations (MC-04), counted by scanning.
    fn open(&self, m: &str) -> u32 {
        let orders = self
            .orders
            .values()
            .filter(|o| o.merchant.as_deref() == Some(m))
            .map(Order::open);
        let complaints = (self.complaints.values().filter(|c| c.merchant.as_deref() == Some(m))).map(Complaint::open);
        let forgotten = self.merchants.get(m).map_or(0, |mm| mm.forgotten.1);
        orders.chain(complaints).sum::<u32>() + forgotten
    }

    fn order_owner(&self, o: &str) -> Option<String> {
        let ord = self.orders.get(o)?;
        ord.merchant.clone().or_else(|| {
            ord.campaign
                .as_ref()
                .and_then(|c| self.campaigns.get(c))
                .and_then(|c| c.merchant.clone())
        })
    }

    /// MC-01 and MC-11 on a merchant that lists goods or takes an order.
    fn trading(&mut self, id: &str, at: Time, m: &str) {
        let mm = self.merchants.entry(m.to_owned()).or_default();
        if !mm.verified && !mm.mc01_fired {
            mm.mc01_fired = true;
            self.emit(
                RuleId::Mc01,
                subject("merchant", m),
                Some(m.into()),
                at,
                vec![id.into()],
            );
        }
        let n = self.n;
        let mm = self.merchants.entry(m.to_owned()).or_default();
        if let Some((b, fired)) = &mut mm.blacklist {
            if *b < n && !*fired {
                *fired = true;
                self.emit(
                    RuleId::Mc11,
                    subject("merchant", m),
                    Some(m.into()),
                    at,
                    vec![id.into()],
                );
            }
        }
    }

    fn dispatch(&mut self, id: &str, at: Time, body: &Body) {
        match body {
            Body::ClockTick | Body::ListingRemoved { .. } | Body::LotteryPrizeDelivered { .. } => {}
            Body::ComplaintEscalated { .. } => {}
            Body::MerchantRegistered {
                merchant,
                uscc,
                licence_sha256,
                ..
            } => {
                self.merchants.entry(merchant.to_string()).or_default();
                if !weiquan_engine::is_valid_uscc(uscc) {
                    self.emit(
                        RuleId::Mc02,
                        subject("merchant", merchant),
                        Some(merchant.to_string()),
                        at,
                        vec![id.into()],
                    );
                }
                let owner = self
                    .usccs
                    .entry(uscc.to_string())
                    .or_insert_with(|| merchant.to_string())
                    .clone();
                let lic_owner = licence_sha256.as_ref().map(|l| {
                    self.licences
                        .entry(l.to_string())
                        .or_insert_with(|| merchant.to_string())
                        .clone()
                });
                let reused = owner != **merchant || lic_owner.is_some_and(|o| o != **merchant);
                if reused {
                    self.emit(
                        RuleId::Mc03,
                        subject("merchant", merchant),
                        Some(merchant.to_string()),
                        at,
                        vec![id.into()],
                    );
                }
            }
            Body::MerchantVerified { merchant, .. } => {
                self.merchants.entry(merchant.to_string()).or_default().verified = true;
            }
            Body::MerchantClosed { merchant, .. } => {
                self.merchants.entry(merchant.to_string()).or_default();
                if self.open(merchant) > 0 {
                    self.emit(
                        RuleId::Mc04,
                        subject("merchant", merchant),
                        Some(merchant.to_string()),
                        at,
                        vec![id.into()],
                    );
                }
            }
            Body::MerchantReopened { merchant } => {
                self.merchants.entry(merchant.to_string()).or_default();
            }
            Body::MerchantBlacklistLifted { merchant, .. } => {
                let mm = self.merchants.entry(merchant.to_string()).or_default();
                mm.blacklist = None;
                mm.high.clear();
            }
            Body::HostRegistered { host, .. } => self
                .hosts
                .entry(host.to_string())
                .or_default()
                .push(HostAct::Registered),
            Body::HostVerified { host, .. } => self.hosts.entry(host.to_string()).or_default().push(HostAct::Verified),
            Body::HostSuspended { host, .. } => {
                self.hosts.entry(host.to_string()).or_default().push(HostAct::Suspended)
            }
            Body::HostReinstated { host } => self
                .hosts
                .entry(host.to_string())
                .or_default()
                .push(HostAct::Reinstated),
            Body::ListingPublished {
                merchant,
                sku,
                title,
                text,
                price_fen,
                reference_price_fen,
                ..
            } => {
                self.trading(id, at, merchant);
                self.listing(
                    id,
                    at,
                    merchant,
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
                self.merchants.entry(merchant.to_string()).or_default();
                self.listing(
                    id,
                    at,
                    merchant,
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
                self.merchants.entry(merchant.to_string()).or_default();
                self.listing(id, at, merchant, sku, None, None, Some(*price_fen), None);
            }
            Body::PriceQuoted {
                merchant,
                sku,
                consumer,
                price_fen,
                segment,
            } => self.quoted(id, at, merchant, sku, consumer, *price_fen, segment.as_deref()),
            Body::OrderPlaced {
                order,
                merchant,
                payment,
                confirmed,
                campaign,
                ..
            } => {
                self.trading(id, at, merchant);
                let threshold = self.rules.thresholds.runaway_overdue_count;
                let overdue = self.overdue(merchant);
                let mm = self.merchants.entry(merchant.to_string()).or_default();
                if overdue >= threshold && !mm.runaway_warned {
                    mm.runaway_warned = true;
                    self.emit(
                        RuleId::Mc05,
                        subject("merchant", merchant),
                        Some(merchant.to_string()),
                        at,
                        vec![id.into()],
                    );
                }
                let ship_days = self.rules.thresholds.ship_days;
                let o = self.orders.entry(order.to_string()).or_default();
                if o.placed.is_none() {
                    o.placed = Some(id.into());
                    o.merchant = Some(merchant.to_string());
                    if o.campaign.is_none() {
                        o.campaign = campaign.as_ref().map(|c| c.to_string());
                    }
                    if o.campaign.is_none() {
                        self.deadline(
                            at.plus_days(ship_days),
                            Due::Mc06 {
                                order: order.to_string(),
                            },
                        );
                    }
                }
                if *payment == Payment::Bnpl && *confirmed != Some(true) {
                    let owner = self.order_owner(order);
                    self.emit(RuleId::Bn03, subject("order", order), owner, at, vec![id.into()]);
                }
            }
            Body::OrderShipped { order } => self.orders.entry(order.to_string()).or_default().shipped = true,
            Body::OrderDelivered { order } => {
                let o = self.orders.entry(order.to_string()).or_default();
                o.shipped = true;
                o.delivered.get_or_insert(at);
            }
            Body::OrderCancelled { order, .. } => self.orders.entry(order.to_string()).or_default().cancelled = true,
            Body::RefundRequested { order, no_reason, .. } => {
                self.orders
                    .entry(order.to_string())
                    .or_default()
                    .refunds
                    .push((at, *no_reason, id.into()));
                let due = at.plus_days(self.rules.thresholds.refund_days);
                self.deadline(
                    due,
                    Due::Mc08 {
                        order: order.to_string(),
                        request: id.into(),
                    },
                );
            }
            Body::RefundCompleted { order, .. } => {
                let o = self.orders.entry(order.to_string()).or_default();
                o.refunded = true;
                o.refunds.clear();
                o.refunds_overdue = false;
            }
            Body::RefundRejected { order, .. } => {
                let days = i64::from(self.rules.thresholds.no_reason_return_days) * DAY_MS;
                let o = self.orders.entry(order.to_string()).or_default();
                let refused = o.delivered.and_then(|d| {
                    o.refunds
                        .iter()
                        .find(|(t, no_reason, _)| *no_reason && t.unix_ms() <= d.unix_ms() + days)
                        .map(|r| r.2.clone())
                });
                o.refunds.clear();
                o.refunds_overdue = false;
                if let Some(request) = refused {
                    let owner = self.order_owner(order);
                    self.emit(
                        RuleId::Mc09,
                        subject("order", order),
                        owner,
                        at,
                        vec![request, id.into()],
                    );
                }
            }
            Body::PresalePublished { campaign, terms } => {
                let published = self.campaigns.entry(campaign.to_string()).or_default().published;
                if published {
                    self.presale_detriments(id, at, campaign, terms);
                }
                self.campaigns.entry(campaign.to_string()).or_default().published = true;
                self.presale_apply(campaign, terms);
                let stated = terms.terms.as_deref().is_some_and(|t| !t.trim().is_empty());
                if terms.deposit_refundable.is_none() && !stated {
                    let m = self.campaigns[&**campaign].merchant.clone();
                    self.emit(RuleId::Ps08, subject("campaign", campaign), m, at, vec![id.into()]);
                }
                self.presale_limits(id, at, campaign);
            }
            Body::PresaleChanged { campaign, changes } => {
                if self.campaigns.get(&**campaign).is_some_and(|c| c.published) {
                    self.presale_detriments(id, at, campaign, changes);
                    self.presale_apply(campaign, changes);
                    self.presale_limits(id, at, campaign);
                }
            }
            Body::PresaleDepositPaid {
                campaign,
                order,
                deposit_fen,
                ..
            } => {
                let c = self.order_campaign(order, campaign);
                let camp = self.campaigns.entry(c).or_default();
                camp.deposits_paid += 1;
                let terms = Deposit {
                    price_fen: camp.price_fen,
                    deposit_fen: *deposit_fen,
                    ship_within_days: camp.ship_within_days,
                    gifts: camp.gifts.clone(),
                    refundable: camp.refundable,
                    event: id.into(),
                };
                self.orders
                    .entry(order.to_string())
                    .or_default()
                    .deposit
                    .get_or_insert(terms);
            }
            Body::PresaleFinalPaid {
                campaign,
                order,
                final_fen,
                gifts,
            } => {
                let c = self.order_campaign(order, campaign);
                let camp = &self.campaigns[&c];
                let o = &self.orders[&**order];
                let d = o.deposit.clone();
                let paid = d.as_ref().map_or(0, |d| d.deposit_fen) + final_fen;
                // A deposit paid before the campaign had terms promised nothing: the terms now count.
                let promise = d.as_ref().filter(|d| d.price_fen.is_some());
                let promised = match promise {
                    Some(d) => d.price_fen,
                    None => camp.price_fen,
                };
                let promised_gifts = promise.map_or_else(|| camp.gifts.clone(), |d| d.gifts.clone());
                let ship = promise.and_then(|d| d.ship_within_days).or(camp.ship_within_days);
                let m = camp.merchant.clone();
                let mut events: Vec<String> = d.iter().map(|d| d.event.clone()).collect();
                events.push(id.into());
                if promised.is_some_and(|p| paid > p) {
                    self.campaigns.entry(c.clone()).or_default().at_fault = true;
                    self.emit(RuleId::Ps01, subject("campaign", &c), m.clone(), at, events.clone());
                }
                if let Some(got) = gifts {
                    if promised_gifts.iter().any(|g| !got.iter().any(|x| x == g)) {
                        self.campaigns.entry(c.clone()).or_default().at_fault = true;
                        self.emit(RuleId::Ps05, subject("campaign", &c), m, at, events);
                    }
                }
                self.orders.entry(order.to_string()).or_default().final_paid = Some(id.into());
                if let Some(days) = ship {
                    self.deadline(
                        at.plus_days(days),
                        Due::Ps04 {
                            order: order.to_string(),
                        },
                    );
                }
            }
            Body::PresaleGiftWithdrawn {
                campaign, order, gift, ..
            } => {
                let c = match order {
                    Some(o) => self.order_campaign(o, campaign),
                    None => campaign.to_string(),
                };
                let camp = self.campaigns.entry(c.clone()).or_default();
                if camp.ever_gifts.iter().any(|g| g == gift) {
                    camp.gifts.retain(|g| g != gift);
                    camp.at_fault = true;
                    let m = camp.merchant.clone();
                    self.emit(RuleId::Ps05, subject("campaign", &c), m, at, vec![id.into()]);
                }
            }
            Body::PresaleDepositRefundRequested { campaign, order } => {
                self.order_campaign(order, campaign);
                self.orders
                    .entry(order.to_string())
                    .or_default()
                    .deposit_requests
                    .push(id.into());
                let due = at.plus_days(self.rules.thresholds.deposit_refund_days);
                self.deadline(
                    due,
                    Due::Ps07 {
                        order: order.to_string(),
                        request: id.into(),
                    },
                );
            }
            Body::PresaleDepositRefunded { campaign, order, .. } => {
                self.order_campaign(order, campaign);
                self.orders
                    .entry(order.to_string())
                    .or_default()
                    .deposit_refunds
                    .push(at);
            }
            Body::LotteryAnnounced { lottery, terms } => {
                let repeat = self.lotteries.get(&**lottery).is_some_and(|l| l.announced.is_some());
                self.lottery_terms(id, at, lottery, terms, if repeat { "repeat" } else { "creation" });
            }
            Body::LotteryChanged { lottery, changes } => {
                if self.lotteries.get(&**lottery).is_some_and(|l| l.announced.is_some()) {
                    self.lottery_terms(id, at, lottery, changes, "change");
                } else {
                    self.lotteries.entry(lottery.to_string()).or_default();
                }
            }
            Body::LotteryEntered { lottery, participant } => {
                let l = self.lotteries.entry(lottery.to_string()).or_default();
                if !l.entered(participant) {
                    let eligible = !l.closed;
                    l.entries.push((participant.to_string(), eligible));
                }
            }
            Body::LotteryClosed { lottery } => self.lotteries.entry(lottery.to_string()).or_default().closed = true,
            Body::LotteryCancelled { lottery, .. } => {
                self.lotteries.entry(lottery.to_string()).or_default().cancelled = true
            }
            Body::LotteryDrawn {
                lottery,
                winners,
                seed,
                beacon_signature,
                ..
            } => {
                let ws: Vec<(String, String)> = winners
                    .iter()
                    .map(|w| (w.participant.to_string(), w.prize.to_string()))
                    .collect();
                self.drawn(id, at, lottery, ws, seed.as_deref(), beacon_signature.as_deref());
            }
            Body::LotteryPrizeShipped {
                lottery,
                participant,
                prize,
                value_fen,
            } => {
                let l = self.lotteries.entry(lottery.to_string()).or_default();
                l.shipped.push((participant.to_string(), prize.to_string()));
                if l.announced.is_some() {
                    let known = l.ever.iter().find(|(n, _)| n == prize);
                    let short = known.and_then(|k| k.1).is_some_and(|v| *value_fen < v);
                    if known.is_none() || short {
                        let m = l.merchant.clone();
                        self.emit(RuleId::Lt07, subject("lottery", lottery), m, at, vec![id.into()]);
                    }
                }
            }
            Body::ServiceMessage {
                merchant,
                conversation,
                from,
                ..
            } => {
                self.merchants.entry(merchant.to_string()).or_default();
                let n = self.n;
                let reply_ms = i64::from(self.rules.thresholds.reply_hours) * HOUR_MS;
                let c = self.conversations.entry(conversation.to_string()).or_default();
                c.merchant.get_or_insert_with(|| merchant.to_string());
                match from {
                    Sender::Consumer => {
                        c.messages.push((at, n, id.into()));
                        self.deadline(
                            at.plus_ms(reply_ms),
                            Due::Mc07 {
                                conversation: conversation.to_string(),
                                message: id.into(),
                            },
                        );
                    }
                    Sender::Merchant => c.replies.push((at, n)),
                    Sender::Bot => {}
                }
            }
            Body::ComplaintFiled {
                complaint, merchant, ..
            } => {
                self.merchants.entry(merchant.to_string()).or_default();
                let c = self.complaints.entry(complaint.to_string()).or_default();
                if c.filed.is_none() {
                    c.filed = Some(id.into());
                    c.merchant = Some(merchant.to_string());
                    let due = at.plus_days(self.rules.thresholds.complaint_response_days);
                    self.deadline(
                        due,
                        Due::Mc10 {
                            complaint: complaint.to_string(),
                        },
                    );
                }
            }
            Body::ComplaintResponded { complaint, .. } => {
                self.complaints.entry(complaint.to_string()).or_default().responded = true
            }
            Body::ComplaintResolved { complaint, .. } => {
                self.complaints.entry(complaint.to_string()).or_default().resolved = true
            }
            Body::BnplOffered {
                consumer,
                preselected,
                terms_shown,
                ..
            } => {
                if *preselected {
                    self.emit(RuleId::Bn01, subject("consumer", consumer), None, at, vec![id.into()]);
                }
                if !terms_shown {
                    self.emit(RuleId::Bn05, subject("consumer", consumer), None, at, vec![id.into()]);
                }
            }
            Body::BnplEnabled {
                consumer,
                consent,
                identity_verified,
                ..
            } => {
                if *consent != Consent::Explicit {
                    self.emit(RuleId::Bn01, subject("consumer", consumer), None, at, vec![id.into()]);
                }
                if !identity_verified {
                    self.emit(RuleId::Bn02, subject("consumer", consumer), None, at, vec![id.into()]);
                }
            }
            Body::BnplDisabled { consumer, steps, .. } => {
                if *steps > self.rules.thresholds.bnpl_max_cancel_steps {
                    self.emit(RuleId::Bn04, subject("consumer", consumer), None, at, vec![id.into()]);
                }
            }
            Body::BnplCancelFailed { consumer, .. } => {
                self.emit(RuleId::Bn04, subject("consumer", consumer), None, at, vec![id.into()]);
            }
        }
    }

    fn fire(&mut self, due: Time, what: Due) {
        match what {
            Due::Mc06 { order } => {
                let o = &self.orders[&order];
                if o.settled() || o.mc06_fired || o.campaign.is_some() {
                    return;
                }
                let events = o.placed.iter().cloned().collect();
                let owner = self.order_owner(&order);
                self.orders.entry(order.clone()).or_default().mc06_fired = true;
                self.emit(RuleId::Mc06, subject("order", &order), owner, due, events);
            }
            Due::Mc07 { conversation, message } => {
                let c = &self.conversations[&conversation];
                let Some(&(m_at, m_n, _)) = c.messages.iter().find(|m| m.2 == message) else {
                    return;
                };
                let answered = c
                    .replies
                    .iter()
                    .any(|&(r_at, r_n)| (r_at > m_at || (r_at == m_at && r_n > m_n)) && r_at <= due);
                if !answered {
                    let m = c.merchant.clone();
                    self.emit(
                        RuleId::Mc07,
                        subject("conversation", &conversation),
                        m,
                        due,
                        vec![message],
                    );
                }
            }
            Due::Mc08 { order, request } => {
                if self.orders[&order].refunds.iter().any(|r| r.2 == request) {
                    self.orders.entry(order.clone()).or_default().refunds_overdue = true;
                    let owner = self.order_owner(&order);
                    self.emit(RuleId::Mc08, subject("order", &order), owner, due, vec![request]);
                }
            }
            Due::Mc10 { complaint } => {
                let c = &self.complaints[&complaint];
                if c.responded || c.mc10_fired {
                    return;
                }
                let events = c.filed.iter().cloned().collect();
                let m = c.merchant.clone();
                self.complaints.entry(complaint.clone()).or_default().mc10_fired = true;
                self.emit(RuleId::Mc10, subject("complaint", &complaint), m, due, events);
            }
            Due::Ps04 { order } => {
                let o = &self.orders[&order];
                if o.settled() || o.deposit_refunded() || o.ps04_fired {
                    return;
                }
                let events = o.final_paid.iter().cloned().collect();
                let owner = self.order_owner(&order);
                self.orders.entry(order.clone()).or_default().ps04_fired = true;
                self.emit(RuleId::Ps04, subject("order", &order), owner, due, events);
            }
            Due::Ps07 { order, request } => {
                let o = &self.orders[&order];
                if !o.deposit_requests.contains(&request) {
                    return;
                }
                let met = o.deposit_refunds.iter().any(|t| *t <= due);
                let camp = o.campaign.as_ref().and_then(|c| self.campaigns.get(c));
                let refundable = o.deposit.as_ref().and_then(|d| d.refundable) == Some(true)
                    || camp.and_then(|c| c.refundable) == Some(true);
                let at_fault = o.ps04_fired || camp.is_some_and(|c| c.at_fault);
                let owner = self.order_owner(&order);
                let o = self.orders.entry(order.clone()).or_default();
                o.deposit_requests.retain(|r| *r != request);
                if !met && (refundable || at_fault) {
                    o.ps07_fired = true;
                    self.emit(RuleId::Ps07, subject("order", &order), owner, due, vec![request]);
                }
            }
            Due::Lt05 { lottery, armed_by } => {
                let l = &self.lotteries[&lottery];
                if !l.draws.is_empty() || l.cancelled || l.lt05_armed_by.as_deref() != Some(&*armed_by) {
                    return;
                }
                let events = l.announced.iter().cloned().collect();
                let m = l.merchant.clone();
                self.emit(RuleId::Lt05, subject("lottery", &lottery), m, due, events);
            }
            Due::Lt06 { lottery, draw } => {
                let l = &self.lotteries[&lottery];
                let (event, winners) = &l.draws[draw];
                // Per prize won, counting what this and earlier draws owe the same winner.
                let unsent = winners.iter().any(|w| {
                    let owed = l.draws[..=draw].iter().flat_map(|d| &d.1).filter(|x| *x == w).count();
                    l.shipped.iter().filter(|x| *x == w).count() < owed
                });
                if unsent {
                    let events = vec![event.clone()];
                    let m = l.merchant.clone();
                    self.emit(RuleId::Lt06, subject("lottery", &lottery), m, due, events);
                }
            }
        }
    }

    // ---- prices ----

    #[allow(clippy::too_many_arguments)]
    fn listing(
        &mut self,
        id: &str,
        at: Time,
        m: &str,
        sku: &str,
        title: Option<&str>,
        text: Option<&str>,
        price: Option<u64>,
        reference: Option<u64>,
    ) {
        let window = i64::from(self.rules.thresholds.reference_window_days) * DAY_MS;
        let n = self.n;
        let key = (m.to_owned(), sku.to_owned());
        let subj = format!("sku:{m}/{sku}");
        if let Some(reference) = reference {
            let s = self.skus.entry(key.clone()).or_default();
            let start = at.plus_ms(-window);
            // The lowest price in the window, counting the one in effect when it opened.
            let lowest = s
                .in_effect(start)
                .into_iter()
                .chain(s.history.iter().filter(|(t, _, _)| *t > start && *t <= at).map(|h| h.2))
                .min();
            if lowest.is_none_or(|low| reference > low) {
                self.emit(RuleId::Pr01, subj.clone(), Some(m.into()), at, vec![id.into()]);
            }
        }
        let s = self.skus.entry(key).or_default();
        if let Some(price) = price {
            s.history.push((at, n, price));
            s.quotes.clear();
        }
        let terms = &self.rules.thresholds.absolute_terms;
        let claim = [title, text]
            .into_iter()
            .flatten()
            .any(|t| terms.iter().any(|term| t.contains(term.as_str())));
        if claim {
            self.emit(RuleId::Mk01, subj, Some(m.into()), at, vec![id.into()]);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn quoted(&mut self, id: &str, at: Time, m: &str, sku: &str, consumer: &str, price: u64, segment: Option<&str>) {
        self.merchants.entry(m.to_owned()).or_default();
        let tolerance = (self.rules.thresholds.quote_tolerance_percent * 100.0).round() as u128;
        let over = |p: u64, base: u64| u128::from(p) * 10_000 > u128::from(base) * (10_000 + tolerance);
        let window = i64::from(self.rules.thresholds.quote_window_minutes) * 60_000;
        let s = self.skus.entry((m.to_owned(), sku.to_owned())).or_default();
        let since = at.plus_ms(-window);
        let listed = s.in_effect(at).filter(|&l| over(price, l));
        let compared = listed.or_else(|| {
            s.quotes
                .iter()
                .filter(|q| q.0 >= since && q.0 <= at && q.1 != consumer && q.2.as_deref() == segment)
                .map(|q| q.3)
                .min()
                .filter(|&base| over(price, base))
        });
        s.quotes
            .push((at, consumer.to_owned(), segment.map(str::to_owned), price));
        if compared.is_some() {
            self.emit(
                RuleId::Pr02,
                format!("sku:{m}/{sku}"),
                Some(m.into()),
                at,
                vec![id.into()],
            );
        }
    }

    // ---- pre-sales ----

    /// The order's campaign: the first named for it; gives the order that campaign's merchant if it has none.
    fn order_campaign(&mut self, order: &str, named: &str) -> String {
        let o = self.orders.entry(order.to_owned()).or_default();
        let c = o.campaign.clone().unwrap_or_else(|| named.to_owned());
        o.campaign = Some(c.clone());
        let cm = self.campaigns.entry(c.clone()).or_default().merchant.clone();
        let o = self.orders.entry(order.to_owned()).or_default();
        if o.merchant.is_none() {
            o.merchant = cm;
        }
        c
    }

    fn presale_detriments(&mut self, id: &str, at: Time, campaign: &str, ch: &PresaleTerms) {
        let cur = &self.campaigns[campaign];
        if cur.deposits_paid == 0 {
            return;
        }
        let raised = |a: Option<u64>, b: Option<u64>| matches!((a, b), (Some(a), Some(b)) if b > a);
        let worse = raised(cur.price_fen, ch.price_fen)
            || raised(cur.deposit_fen, ch.deposit_fen)
            || raised(cur.ship_within_days.map(u64::from), ch.ship_within_days.map(u64::from))
            || matches!((cur.final_end, ch.final_end), (Some(a), Some(b)) if b > a)
            || ch
                .gifts
                .as_ref()
                .is_some_and(|new| cur.gifts.iter().any(|g| !new.iter().any(|n| n == g)))
            || (cur.refundable == Some(true) && ch.deposit_refundable == Some(false));
        if worse {
            let m = cur.merchant.clone();
            self.campaigns.entry(campaign.to_owned()).or_default().at_fault = true;
            self.emit(RuleId::Ps02, subject("campaign", campaign), m, at, vec![id.into()]);
        }
    }

    fn presale_apply(&mut self, campaign: &str, t: &PresaleTerms) {
        if let Some(m) = &t.merchant {
            self.merchants.entry(m.to_string()).or_default();
        }
        let c = self.campaigns.entry(campaign.to_owned()).or_default();
        let first = c.merchant.is_none();
        if let Some(m) = &t.merchant {
            c.merchant = Some(m.to_string());
        }
        // Messy streams 2: orders linked before the campaign had a merchant are its first merchant's.
        if let (true, Some(m)) = (first, &t.merchant) {
            for o in
                (self.orders.values_mut()).filter(|o| o.campaign.as_deref() == Some(campaign) && o.merchant.is_none())
            {
                o.merchant = Some(m.to_string());
            }
        }
        let c = self.campaigns.entry(campaign.to_owned()).or_default();
        c.deposit_fen = t.deposit_fen.or(c.deposit_fen);
        c.price_fen = t.price_fen.or(c.price_fen);
        c.deposit_start = t.deposit_start.or(c.deposit_start);
        c.final_end = t.final_end.or(c.final_end);
        c.ship_within_days = t.ship_within_days.or(c.ship_within_days);
        if let Some(end) = c.final_end {
            c.ever_promised = c
                .ever_promised
                .max(Some(end.plus_days(c.ship_within_days.unwrap_or(0))));
        }
        c.refundable = t.deposit_refundable.or(c.refundable);
        if let Some(gifts) = &t.gifts {
            c.gifts = gifts.iter().map(|g| g.to_string()).collect();
            for g in gifts {
                if !c.ever_gifts.iter().any(|e| e == g) {
                    c.ever_gifts.push(g.to_string());
                }
            }
        }
    }

    fn presale_limits(&mut self, id: &str, at: Time, campaign: &str) {
        let max_days = i64::from(self.rules.thresholds.presale_max_days);
        let cap_bp = (self.rules.thresholds.deposit_cap_percent * 100.0).round() as u128;
        let c = self.campaigns.entry(campaign.to_owned()).or_default();
        let over_long = match (c.deposit_start, c.final_end, c.ship_within_days) {
            (Some(s), Some(e), Some(d)) => e.plus_days(d).unix_ms() - s.unix_ms() > max_days * DAY_MS,
            _ => false,
        };
        let over_cap = matches!((c.deposit_fen, c.price_fen), (Some(d), Some(p)) if u128::from(d) * 10_000 > u128::from(p) * cap_bp);
        let (was_long, was_cap, m) = (c.over_long, c.over_cap, c.merchant.clone());
        c.over_long = over_long;
        c.over_cap = over_cap;
        if over_long && !was_long {
            self.emit(
                RuleId::Ps03,
                subject("campaign", campaign),
                m.clone(),
                at,
                vec![id.into()],
            );
        }
        if over_cap && !was_cap {
            self.emit(RuleId::Ps06, subject("campaign", campaign), m, at, vec![id.into()]);
        }
    }

    // ---- lotteries ----

    fn lottery_terms(&mut self, id: &str, at: Time, lottery: &str, t: &LotteryTerms, kind: &str) {
        let subj = subject("lottery", lottery);
        if kind == "creation" {
            self.lotteries.entry(lottery.to_owned()).or_default().announced = Some(id.into());
        } else {
            let l = &self.lotteries[lottery];
            if detrimental(&l.terms, t) {
                let m = l.merchant.clone();
                self.emit(RuleId::Lt02, subj.clone(), m, at, vec![id.into()]);
            }
        }
        if let Some(m) = &t.merchant {
            self.merchants.entry(m.to_string()).or_default();
        }
        let l = self.lotteries.entry(lottery.to_owned()).or_default();
        let moved = t.draw_at.is_some() && t.draw_at != l.terms.draw_at;
        let first_commitment = l.terms.commitment.is_none() && t.commitment.is_some();
        let t = t.to_static();
        let first = l.merchant.is_none();
        if let Some(m) = &t.merchant {
            l.merchant = Some(m.to_string());
        }
        if let (true, Some(m)) = (first, &t.merchant) {
            for (ws, n, entered) in std::mem::take(&mut l.lt09_pending) {
                self.lt09_count(m, &ws, n, &entered, false);
            }
        }
        let l = self.lotteries.entry(lottery.to_owned()).or_default();
        for p in t.prizes.iter().flatten() {
            if let Some(name) = &p.name {
                match l.ever.iter_mut().find(|(n, _)| n == name) {
                    Some(k) => k.1 = p.value_fen.or(k.1),
                    None => l.ever.push((name.to_string(), p.value_fen)),
                }
            }
        }
        macro_rules! take {
            ($($f:ident),+) => { $( if t.$f.is_some() { l.terms.$f = t.$f.clone(); } )+ };
        }
        take!(
            merchant,
            host,
            stream,
            prizes,
            conditions,
            draw_at,
            deliver_within_days,
            organizer,
            contact,
            odds,
            beacon_round
        );
        if l.terms.commitment.is_none() {
            l.terms.commitment = t.commitment.clone();
        }
        let m = l.merchant.clone();
        if kind != "change" && !disclosed_all(&t) {
            self.emit(RuleId::Lt01, subj.clone(), m.clone(), at, vec![id.into()]);
        }
        // LT-03: the prizes in effect cross the cap.
        let cap = self.rules.thresholds.lottery_prize_cap_fen;
        let grace = i64::from(self.rules.thresholds.draw_grace_hours) * HOUR_MS;
        let l = self.lotteries.entry(lottery.to_owned()).or_default();
        let over = l
            .terms
            .prizes
            .iter()
            .flatten()
            .any(|p| p.value_fen.is_some_and(|v| v > cap));
        let was = l.over_cap;
        l.over_cap = over;
        let draw_at = l.terms.draw_at;
        let entries = l.entries.len();
        if over && !was {
            self.emit(RuleId::Lt03, subj.clone(), m.clone(), at, vec![id.into()]);
        }
        if let (true, Some(draw_at)) = (moved, draw_at) {
            self.lotteries.entry(lottery.to_owned()).or_default().lt05_armed_by = Some(id.into());
            self.deadline(
                draw_at.plus_ms(grace),
                Due::Lt05 {
                    lottery: lottery.to_owned(),
                    armed_by: id.into(),
                },
            );
        }
        if first_commitment && entries > 0 {
            self.emit(RuleId::Lt10, subj.clone(), m.clone(), at, vec![id.into()]);
        }
        if let Some(host) = &t.host {
            if self.lotteries[lottery].lt11_fired {
                return;
            }
            let acts = self.hosts.get(&**host).cloned().unwrap_or_default();
            let registered = acts.contains(&HostAct::Registered);
            let standing = acts.iter().rev().find(|a| **a != HostAct::Registered).copied();
            let qualified = acts.contains(&HostAct::Verified) && standing != Some(HostAct::Suspended);
            let unqualified = if registered {
                !qualified
            } else {
                self.rules.thresholds.host_registry_required
            };
            if unqualified {
                self.lotteries.entry(lottery.to_owned()).or_default().lt11_fired = true;
                self.emit(RuleId::Lt11, subj, m, at, vec![id.into()]);
            }
        }
    }

    fn drawn(
        &mut self,
        id: &str,
        at: Time,
        lottery: &str,
        ws: Vec<(String, String)>,
        seed: Option<&str>,
        sig: Option<&str>,
    ) {
        let subj = subject("lottery", lottery);
        let l = self.lotteries.entry(lottery.to_owned()).or_default();
        let entrants: Vec<&str> = l.entries.iter().filter(|e| e.1).map(|e| e.0.as_str()).collect();
        let mut events: Vec<String> = l.announced.iter().cloned().collect();
        events.push(id.into());
        let lt04 = ws
            .iter()
            .any(|(p, prize)| !l.eligible(p) || (l.announced.is_some() && !l.ever.iter().any(|(n, _)| n == prize)));
        let prizes = prize_count(&l.terms.prizes);
        let all = l.draws.iter().map(|d| d.1.len()).sum::<usize>() + ws.len();
        let lt08 = (all as u64) < prizes && entrants.len() as u64 >= prizes;
        let lt10 = l.terms.commitment.as_deref().is_some_and(|c| match seed {
            None => true,
            Some(s) if draw::commitment(s) != c => true,
            Some(s) => {
                let prize_list: Vec<(&str, u32)> = l
                    .terms
                    .prizes
                    .iter()
                    .flatten()
                    .map(|p| (p.name.as_deref().unwrap_or(""), p.count.unwrap_or(0)))
                    .collect();
                match draw::winners(s, l.terms.beacon_round, sig, &entrants, &prize_list) {
                    Err(_) => true,
                    Ok(expected) => {
                        expected.len() != ws.len() || expected.iter().zip(&ws).any(|(e, w)| e.0 != w.0 || e.1 != w.1)
                    }
                }
            }
        });
        let m = l.merchant.clone();
        let n_entrants = entrants.len();
        let entered: Vec<String> = l.entries.iter().map(|e| e.0.clone()).collect();
        if lt04 {
            self.emit(RuleId::Lt04, subj.clone(), m.clone(), at, events.clone());
        }
        if lt08 {
            self.emit(RuleId::Lt08, subj.clone(), m.clone(), at, events.clone());
        }
        if lt10 {
            self.emit(RuleId::Lt10, subj, m.clone(), at, events);
        }
        // LT-09: every draw with entrants adds winners ÷ entrants to everyone who entered.
        // A draw before the lottery has a merchant waits for one (Messy streams 2).
        match m {
            Some(m) => {
                for _ in 0..self.lt09_count(&m, &ws, n_entrants, &entered, true) {
                    self.emit(
                        RuleId::Lt09,
                        subject("merchant", &m),
                        Some(m.clone()),
                        at,
                        vec![id.into()],
                    );
                }
            }
            None => {
                let l = self.lotteries.entry(lottery.to_owned()).or_default();
                l.lt09_pending.push((ws.clone(), n_entrants, entered));
            }
        }
        self.after_draw(id, at, lottery, ws);
    }

    /// Records a draw and arms its LT-06 deadline.
    fn after_draw(&mut self, id: &str, at: Time, lottery: &str, ws: Vec<(String, String)>) {
        let days = self.lotteries[lottery]
            .terms
            .deliver_within_days
            .unwrap_or(self.rules.thresholds.prize_default_deliver_days);
        let l = self.lotteries.entry(lottery.to_owned()).or_default();
        l.draws.push((id.into(), ws));
        let draw = l.draws.len() - 1;
        self.deadline(
            at.plus_days(days),
            Due::Lt06 {
                lottery: lottery.to_owned(),
                draw,
            },
        );
    }

    /// LT-09: adds a draw to merchant `m`'s statistics; with `check`, the
    /// number of winners it now flags.
    fn lt09_count(
        &mut self,
        m: &str,
        ws: &[(String, String)],
        n_entrants: usize,
        entered: &[String],
        check: bool,
    ) -> usize {
        if n_entrants == 0 {
            return 0;
        }
        let share = ws.len() as f64 / n_entrants as f64;
        let max_p = self.rules.thresholds.repeat_winner_max_p;
        let mm = self.merchants.entry(m.to_owned()).or_default();
        for p in entered {
            mm.wins.entry(p.clone()).or_default().0 += share;
        }
        let mut flagged = 0;
        for (p, _) in ws {
            if !entered.contains(p) {
                continue;
            }
            let r = mm.wins.entry(p.clone()).or_default();
            r.1 += 1;
            if check && !r.2 && poisson_tail(r.0, r.1) < max_p {
                r.2 = true;
                flagged += 1;
            }
        }
        flagged
    }
}

/// LT-01: every item disclosed.
fn disclosed_all(t: &LotteryTerms) -> bool {
    let filled = |s: &Option<std::borrow::Cow<'_, str>>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
    t.conditions.as_ref().is_some_and(|c| !c.is_empty())
        && t.draw_at.is_some()
        && t.deliver_within_days.is_some()
        && filled(&t.organizer)
        && filled(&t.contact)
        && t.prizes
            .iter()
            .flatten()
            .all(|p| filled(&p.name) && p.value_fen.is_some() && p.count.is_some())
}

/// LT-02: a change that takes something away from participants.
fn detrimental(old: &LotteryTerms, new: &LotteryTerms) -> bool {
    let mut worse = false;
    if let (Some(a), Some(b)) = (&old.prizes, &new.prizes) {
        let count = |ps: &Vec<weiquan_events::Prize>| ps.iter().map(|p| u64::from(p.count.unwrap_or(0))).sum::<u64>();
        worse |= count(b) < count(a);
        for op in a {
            let Some(name) = &op.name else { continue };
            match b.iter().find(|np| np.name.as_ref() == Some(name)) {
                None => worse = true,
                Some(np) => worse |= matches!((op.value_fen, np.value_fen), (Some(x), Some(y)) if y < x),
            }
        }
    }
    if let (Some(a), Some(b)) = (&old.conditions, &new.conditions) {
        worse |= !a.is_empty() && b.iter().any(|c| !a.contains(c));
    }
    worse |= matches!((old.draw_at, new.draw_at), (Some(a), Some(b)) if a != b);
    worse |= matches!((old.deliver_within_days, new.deliver_within_days), (Some(a), Some(b)) if b > a);
    worse |= matches!((&old.commitment, &new.commitment), (Some(a), Some(b)) if a != b);
    worse
}
