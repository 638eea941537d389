//! Partitioned processing, in one process: the front door's routing of every
//! event to the partition of the merchant it concerns, the watermark clock,
//! and the union of the partitions' findings. What `docs/scale.md` designs
//! for a JetStream cluster, without the cluster: each partition here is an
//! [`Engine`] in memory, so that the routing can be proven exact on its own.
//!
//! - Events about a merchant's subjects go to `hash(merchant) % n`; events
//!   that name only an order, campaign, lottery or complaint follow that
//!   subject (the router remembers where each one lives), and so do later
//!   messages of a conversation; pay-later events go by consumer.
//! - `clock.tick`, `merchant.registered` (MC-03 compares registrations across
//!   merchants) and `host.*` (the registry LT-11 reads) go to every
//!   partition. A partition outputs only the findings of the merchants it
//!   owns, and a merchant-less finding of a broadcast event only in
//!   partition 0, so that nothing is reported twice.
//! - Before a partition applies an event it advances its clock to the global
//!   clock so far (the largest `at` the router has seen), so that deadlines
//!   fire as they would on one engine.
//!
//! **Exact when every subject is placed with its merchant.** A subject whose
//! first event names no merchant (an `order.shipped` before its
//! `order.placed`: spec 1.1, "Messy streams" 2) is placed by its own id; if
//! its merchant later turns out to live elsewhere, the subject is
//! *misplaced* ([`Partitioned::misplaced`]) and its findings may differ from
//! one engine's. The tests require the union to equal one engine exactly
//! whenever nothing was misplaced.

use rustc_hash::FxHashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use weiquan_engine::{Engine, Finding, Rulebook};
use weiquan_events::{Body, Event, Time};

/// The partition of a routing key (a merchant id, or a consumer's for pay-later).
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    (foldhash::fast::FixedState::with_seed(0x7061_7274).hash_one(key) % u64::from(partitions.max(1))) as u32
}

/// Where an event goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// One partition.
    One(u32),
    /// Every partition (clock ticks, registrations, hosts).
    All,
}

/// Kinds of subject the router places (events naming only one of them follow it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Order,
    Conversation,
    Campaign,
    Lottery,
    Complaint,
}

/// The front door: routes each event and keeps the routing state (where each
/// subject lives) and the global clock.
#[derive(Debug)]
pub struct Router {
    partitions: u32,
    placed: FxHashMap<(Kind, Box<str>), u32>,
    clock: Option<Time>,
    misplaced: u64,
}

impl Router {
    /// A router over `partitions` partitions (at least 1).
    pub fn new(partitions: u32) -> Router {
        Router {
            partitions: partitions.max(1),
            placed: FxHashMap::default(),
            clock: None,
            misplaced: 0,
        }
    }

    /// The global clock before the event routed next: the largest `at` so far.
    pub fn clock(&self) -> Option<Time> {
        self.clock
    }

    /// Subjects whose merchant turned out to live in another partition than
    /// the one their first event placed them in.
    pub fn misplaced(&self) -> u64 {
        self.misplaced
    }

    fn of(&self, key: &str) -> u32 {
        partition_of(key, self.partitions)
    }

    /// The partition of subject `id`: where it was placed, else by its own id
    /// (and placed there).
    fn follow(&mut self, kind: Kind, id: &str) -> u32 {
        let by_id = self.of(id);
        *self.placed.entry((kind, id.into())).or_insert(by_id)
    }

    /// The partition of subject `id`, which a change may hand to another
    /// `merchant`: a move to another partition is counted as misplaced (its
    /// state would have to move with it).
    fn follow_to(&mut self, kind: Kind, id: &str, merchant: Option<&str>) -> u32 {
        let at = self.follow(kind, id);
        if merchant.is_some_and(|m| self.of(m) != at) {
            self.misplaced += 1;
        }
        at
    }

    /// Places subject `id` with `merchant`; a subject placed elsewhere already stays there (counted as misplaced).
    fn place(&mut self, kind: Kind, id: &str, merchant: &str) -> u32 {
        let home = self.of(merchant);
        let at = *self.placed.entry((kind, id.into())).or_insert(home);
        if at != home {
            self.misplaced += 1;
        }
        at
    }

    /// Routes `ev`, updating the routing state and the clock.
    pub fn route(&mut self, ev: &Event) -> Route {
        let route = self.route_body(&ev.body);
        if self.clock.is_none_or(|c| ev.at > c) {
            self.clock = Some(ev.at);
        }
        route
    }

    fn route_body(&mut self, body: &Body) -> Route {
        use Route::{All, One};
        match body {
            Body::ClockTick
            | Body::MerchantRegistered { .. }
            | Body::HostRegistered { .. }
            | Body::HostVerified { .. }
            | Body::HostSuspended { .. }
            | Body::HostReinstated { .. } => All,
            Body::MerchantVerified { merchant, .. }
            | Body::MerchantClosed { merchant, .. }
            | Body::MerchantReopened { merchant }
            | Body::MerchantBlacklistLifted { merchant, .. }
            | Body::ListingPublished { merchant, .. }
            | Body::ListingUpdated { merchant, .. }
            | Body::PriceChanged { merchant, .. }
            | Body::ListingRemoved { merchant, .. }
            | Body::PriceQuoted { merchant, .. } => One(self.of(merchant)),
            // A conversation is its first merchant's (the engine's reading too).
            Body::ServiceMessage {
                merchant, conversation, ..
            } => One(self.place(Kind::Conversation, conversation, merchant)),
            Body::OrderPlaced { order, merchant, .. } => One(self.place(Kind::Order, order, merchant)),
            Body::OrderShipped { order }
            | Body::OrderDelivered { order }
            | Body::OrderCancelled { order, .. }
            | Body::RefundRequested { order, .. }
            | Body::RefundCompleted { order, .. }
            | Body::RefundRejected { order, .. } => One(self.follow(Kind::Order, order)),
            Body::PresalePublished { campaign, terms } => match terms.merchant.as_deref() {
                Some(m) => One(self.place(Kind::Campaign, campaign, m)),
                None => One(self.follow(Kind::Campaign, campaign)),
            },
            Body::PresaleChanged { campaign, changes } => {
                One(self.follow_to(Kind::Campaign, campaign, changes.merchant.as_deref()))
            }
            Body::PresaleGiftWithdrawn {
                campaign, order: None, ..
            } => One(self.follow(Kind::Campaign, campaign)),
            Body::PresaleDepositPaid { campaign, order, .. }
            | Body::PresaleFinalPaid { campaign, order, .. }
            | Body::PresaleDepositRefundRequested { campaign, order }
            | Body::PresaleDepositRefunded { campaign, order, .. }
            | Body::PresaleGiftWithdrawn {
                campaign,
                order: Some(order),
                ..
            } => {
                // The order lives with its campaign (its first campaign: Messy streams 7).
                let p = self.follow(Kind::Campaign, campaign);
                let at = *self.placed.entry((Kind::Order, (**order).into())).or_insert(p);
                if at != p {
                    self.misplaced += 1;
                }
                One(at)
            }
            Body::LotteryAnnounced { lottery, terms } => match terms.merchant.as_deref() {
                Some(m) => One(self.place(Kind::Lottery, lottery, m)),
                None => One(self.follow(Kind::Lottery, lottery)),
            },
            Body::LotteryChanged { lottery, changes } => {
                One(self.follow_to(Kind::Lottery, lottery, changes.merchant.as_deref()))
            }
            Body::LotteryEntered { lottery, .. }
            | Body::LotteryClosed { lottery }
            | Body::LotteryDrawn { lottery, .. }
            | Body::LotteryPrizeShipped { lottery, .. }
            | Body::LotteryPrizeDelivered { lottery, .. }
            | Body::LotteryCancelled { lottery, .. } => One(self.follow(Kind::Lottery, lottery)),
            Body::ComplaintFiled {
                complaint, merchant, ..
            } => One(self.place(Kind::Complaint, complaint, merchant)),
            Body::ComplaintResponded { complaint, .. }
            | Body::ComplaintResolved { complaint, .. }
            | Body::ComplaintEscalated { complaint, .. } => One(self.follow(Kind::Complaint, complaint)),
            Body::BnplOffered { consumer, .. }
            | Body::BnplEnabled { consumer, .. }
            | Body::BnplDisabled { consumer, .. }
            | Body::BnplCancelFailed { consumer, .. } => One(self.of(consumer)),
        }
    }
}

/// Partitions in one process: a [`Router`] and an engine per partition.
pub struct Partitioned {
    router: Router,
    engines: Vec<Engine>,
}

impl Partitioned {
    /// `partitions` engines under `rules`.
    pub fn new(rules: Arc<Rulebook>, partitions: u32) -> Partitioned {
        let router = Router::new(partitions);
        let engines = (0..router.partitions).map(|_| Engine::new(rules.clone())).collect();
        Partitioned { router, engines }
    }

    /// Subjects misplaced so far (see [`Router::misplaced`]): while this is
    /// 0, the union of findings is one engine's.
    pub fn misplaced(&self) -> u64 {
        self.router.misplaced()
    }

    /// Routes and applies one event: the findings every partition reports
    /// for it, partition by partition.
    pub fn apply(&mut self, ev: &Event) -> Vec<Finding> {
        let stamp = self.router.clock();
        let route = self.router.route(ev);
        let mut out = Vec::new();
        for (p, engine) in self.engines.iter_mut().enumerate() {
            let p = p as u32;
            if route != Route::All && route != Route::One(p) {
                continue;
            }
            // The watermark: deadlines the global clock has passed fire here before the event.
            let mut found = match stamp {
                Some(t) => engine.advance(t),
                None => Vec::new(),
            };
            found.extend(engine.apply(ev));
            let partitions = self.router.partitions;
            out.extend(found.into_iter().filter(|f| match &f.merchant {
                Some(m) => partition_of(m, partitions) == p,
                // A merchant-less finding of a broadcast event is found by every partition alike.
                None => !(route == Route::All && f.events.last().is_some_and(|e| *e == *ev.id)) || p == 0,
            }));
        }
        out
    }

    /// Moves every partition's clock to `to` (the end of an audit, `--as-of`).
    pub fn advance(&mut self, to: Time) -> Vec<Finding> {
        let partitions = self.router.partitions;
        let mut out = Vec::new();
        for (p, engine) in self.engines.iter_mut().enumerate() {
            out.extend((engine.advance(to).into_iter()).filter(|f| {
                f.merchant
                    .as_deref()
                    .is_none_or(|m| partition_of(m, partitions) == p as u32)
            }));
        }
        out
    }
}
