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
//! **Early events.** A subject whose first event names no merchant (an
//! `order.shipped` before its `order.placed`: spec 1.1, "Messy streams" 2)
//! is kept by every partition, which all see its every event; each finding
//! about it is reported by one partition only ([`Router::keeps`]).
//!
//! **Exact unless a subject is misplaced.** A repeated creation or a change
//! naming a merchant of another partition, or one event joining subjects
//! that live apart, would need the subject's state moved; such subjects are
//! counted ([`Partitioned::misplaced`]). The tests require the union to
//! equal one engine exactly whenever nothing was misplaced.

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

impl Kind {
    /// The prefix of the subjects of this kind in findings (`order:…`).
    fn prefix(self) -> &'static str {
        match self {
            Kind::Order => "order",
            Kind::Conversation => "conversation",
            Kind::Campaign => "campaign",
            Kind::Lottery => "lottery",
            Kind::Complaint => "complaint",
        }
    }

    /// The kind whose findings name subjects `prefix:…` (the engine's subject form).
    fn of_subject(prefix: &str) -> Option<Kind> {
        Some(match prefix {
            "order" => Kind::Order,
            "conversation" => Kind::Conversation,
            "campaign" => Kind::Campaign,
            "lottery" => Kind::Lottery,
            "complaint" => Kind::Complaint,
            _ => return None,
        })
    }
}

/// Where a subject lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Home {
    /// With its merchant's partition.
    One(u32),
    /// In every partition: its first event named no merchant (an event
    /// before its subject's creation), so every partition keeps a copy of it
    /// and sees all its events; its merchant's partition reports what it
    /// finds against that merchant, partition 0 what it finds against none.
    All,
}

impl From<Home> for Route {
    fn from(h: Home) -> Route {
        match h {
            Home::One(p) => Route::One(p),
            Home::All => Route::All,
        }
    }
}

/// Whether partition `p` of `partitions` reports finding `f`, found while
/// applying an event routed by `route` with id `event` (`None`: found when
/// the clock alone moved); `copied` says whether a subject is kept by every
/// partition. A merchant's finding is its partition's; one found alike by
/// every partition (about a subject kept everywhere, or by a broadcast event
/// itself) is partition 0's.
fn reports(f: &Finding, p: u32, partitions: u32, event: Option<(Route, &str)>, copied: impl Fn(&str) -> bool) -> bool {
    if let Some(m) = &f.merchant {
        return partition_of(m, partitions) == p;
    }
    let everywhere = copied(&f.subject)
        || event.is_some_and(|(route, id)| route == Route::All && f.events.last().is_some_and(|e| e == id));
    !everywhere || p == 0
}

/// What a partition away from the [`Router`] (a worker) knows of the routing
/// state: the subjects every partition keeps, as [`Router::take_copies`]
/// handed them on with the events. Enough to report each finding once.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Copies {
    subjects: std::collections::BTreeSet<String>,
}

impl Copies {
    /// Notes subjects now kept by every partition.
    pub fn extend(&mut self, subjects: impl IntoIterator<Item = String>) {
        self.subjects.extend(subjects);
    }

    /// [`Router::keeps`], for partition `p` of `partitions`.
    pub fn keeps(&self, f: &Finding, p: u32, partitions: u32, event: Option<(Route, &str)>) -> bool {
        reports(f, p, partitions, event, |s| self.subjects.contains(s))
    }
}

/// The front door: routes each event and keeps the routing state (where each
/// subject lives) and the global clock.
#[derive(Debug)]
pub struct Router {
    partitions: u32,
    placed: FxHashMap<(Kind, Box<str>), Home>,
    clock: Option<Time>,
    misplaced: u64,
    /// Subjects placed everywhere since [`Router::take_copies`] was last called.
    fresh: Vec<String>,
}

impl Router {
    /// A router over `partitions` partitions (at least 1).
    pub fn new(partitions: u32) -> Router {
        Router {
            partitions: partitions.max(1),
            placed: FxHashMap::default(),
            clock: None,
            misplaced: 0,
            fresh: Vec::new(),
        }
    }

    /// The number of partitions.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The global clock before the event routed next: the largest `at` so far.
    pub fn clock(&self) -> Option<Time> {
        self.clock
    }

    /// Subjects whose state would have had to move between partitions: a
    /// repeated creation or a change naming a merchant of another partition,
    /// or one event joining subjects that live apart.
    pub fn misplaced(&self) -> u64 {
        self.misplaced
    }

    /// Whether partition `p` reports finding `f`, which it found while
    /// applying an event routed by `route` with id `event` (`None`: found
    /// when the clock alone moved). Every finding is reported by exactly one
    /// partition.
    pub fn keeps(&self, f: &Finding, p: u32, event: Option<(Route, &str)>) -> bool {
        reports(f, p, self.partitions, event, |subject| {
            subject.split_once(':').is_some_and(|(prefix, id)| {
                Kind::of_subject(prefix).is_some_and(|k| self.placed.get(&(k, id.into())) == Some(&Home::All))
            })
        })
    }

    /// The subjects (`kind:id`, as findings name them) that the events
    /// routed since the last call made every partition keep. A partition
    /// away from the router (a worker) needs them to tell which findings it
    /// reports ([`Copies`]); a subject kept everywhere stays so.
    pub fn take_copies(&mut self) -> Vec<String> {
        std::mem::take(&mut self.fresh)
    }

    fn of(&self, key: &str) -> u32 {
        partition_of(key, self.partitions)
    }

    /// Where subject `id` lives; a subject not seen yet lives everywhere.
    fn follow(&mut self, kind: Kind, id: &str) -> Home {
        self.settle(kind, id, Home::All)
    }

    /// Where subject `id` lives, placing it at `home` if it is new (and
    /// noting it when that is everywhere).
    fn settle(&mut self, kind: Kind, id: &str, home: Home) -> Home {
        match self.placed.entry((kind, id.into())) {
            std::collections::hash_map::Entry::Occupied(at) => *at.get(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(home);
                if home == Home::All {
                    self.fresh.push(format!("{}:{id}", kind.prefix()));
                }
                home
            }
        }
    }

    /// Places subject `id` with `merchant`: a subject not seen yet goes to
    /// its merchant's partition; one kept everywhere stays so; one in another
    /// partition stays there (misplaced).
    fn place(&mut self, kind: Kind, id: &str, merchant: &str) -> Home {
        let home = Home::One(self.of(merchant));
        let at = self.settle(kind, id, home);
        if at != home && at != Home::All {
            self.misplaced += 1;
        }
        at
    }

    /// Where subject `id` lives, which a change may hand to another
    /// `merchant`: a move to another partition is misplaced.
    fn follow_to(&mut self, kind: Kind, id: &str, merchant: Option<&str>) -> Home {
        let at = self.follow(kind, id);
        if let (Home::One(p), Some(m)) = (at, merchant) {
            if self.of(m) != p {
                self.misplaced += 1;
            }
        }
        at
    }

    /// Places `order` with its campaign, which lives at `home`; an order
    /// placed elsewhere already is misplaced. Returns `home`.
    fn join(&mut self, order: &str, home: Home) -> Home {
        let at = self.settle(Kind::Order, order, home);
        if at != home {
            self.misplaced += 1;
        }
        home
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
            } => self.place(Kind::Conversation, conversation, merchant).into(),
            // An order placed for a campaign is judged against that campaign
            // (its first: Messy streams 7), so it lives with it; the merchant's
            // own counts must then be in the same partition.
            Body::OrderPlaced {
                order,
                merchant,
                campaign: Some(campaign),
                ..
            } => {
                let home = self.follow(Kind::Campaign, campaign);
                if home != Home::All && home != Home::One(self.of(merchant)) {
                    self.misplaced += 1;
                }
                self.join(order, home).into()
            }
            Body::OrderPlaced { order, merchant, .. } => self.place(Kind::Order, order, merchant).into(),
            Body::OrderShipped { order }
            | Body::OrderDelivered { order }
            | Body::OrderCancelled { order, .. }
            | Body::RefundRequested { order, .. }
            | Body::RefundCompleted { order, .. }
            | Body::RefundRejected { order, .. } => self.follow(Kind::Order, order).into(),
            Body::PresalePublished { campaign, terms } => match terms.merchant.as_deref() {
                Some(m) => self.place(Kind::Campaign, campaign, m).into(),
                None => self.follow(Kind::Campaign, campaign).into(),
            },
            Body::PresaleChanged { campaign, changes } => self
                .follow_to(Kind::Campaign, campaign, changes.merchant.as_deref())
                .into(),
            Body::PresaleGiftWithdrawn {
                campaign, order: None, ..
            } => self.follow(Kind::Campaign, campaign).into(),
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
                let home = self.follow(Kind::Campaign, campaign);
                self.join(order, home).into()
            }
            Body::LotteryAnnounced { lottery, terms } => match terms.merchant.as_deref() {
                Some(m) => self.place(Kind::Lottery, lottery, m).into(),
                None => self.follow(Kind::Lottery, lottery).into(),
            },
            Body::LotteryChanged { lottery, changes } => self
                .follow_to(Kind::Lottery, lottery, changes.merchant.as_deref())
                .into(),
            Body::LotteryEntered { lottery, .. }
            | Body::LotteryClosed { lottery }
            | Body::LotteryDrawn { lottery, .. }
            | Body::LotteryPrizeShipped { lottery, .. }
            | Body::LotteryPrizeDelivered { lottery, .. }
            | Body::LotteryCancelled { lottery, .. } => self.follow(Kind::Lottery, lottery).into(),
            Body::ComplaintFiled {
                complaint, merchant, ..
            } => self.place(Kind::Complaint, complaint, merchant).into(),
            Body::ComplaintResponded { complaint, .. }
            | Body::ComplaintResolved { complaint, .. }
            | Body::ComplaintEscalated { complaint, .. } => self.follow(Kind::Complaint, complaint).into(),
            Body::BnplOffered { consumer, .. }
            | Body::BnplEnabled { consumer, .. }
            | Body::BnplDisabled { consumer, .. }
            | Body::BnplCancelFailed { consumer, .. } => One(self.of(consumer)),
        }
    }
}

/// Partitions in one process: a [`Router`] and an engine per partition.
/// Each partition decides what it reports from what a worker would know: its
/// own [`Copies`], handed on with the events it gets, not the router's state.
pub struct Partitioned {
    router: Router,
    engines: Vec<(Engine, Copies)>,
}

impl Partitioned {
    /// `partitions` engines under `rules`.
    pub fn new(rules: Arc<Rulebook>, partitions: u32) -> Partitioned {
        let router = Router::new(partitions);
        let engines = (0..router.partitions)
            .map(|_| (Engine::new(rules.clone()), Copies::default()))
            .collect();
        Partitioned { router, engines }
    }

    /// Subjects misplaced so far (see [`Router::misplaced`]): while this is
    /// 0, the union of findings is one engine's.
    pub fn misplaced(&self) -> u64 {
        self.router.misplaced()
    }

    /// Routes and applies one event: the findings the partitions report for
    /// it, partition by partition. Partitions the event does not go to move
    /// their clocks to the global one, so that a deadline fires at the same
    /// event as on one engine, not at its merchant's next event.
    pub fn apply(&mut self, ev: &Event) -> Vec<Finding> {
        let stamp = self.router.clock();
        let route = self.router.route(ev);
        let copies = self.router.take_copies();
        let n = self.router.partitions;
        let mut out = Vec::new();
        for (p, (engine, known)) in self.engines.iter_mut().enumerate() {
            let p = p as u32;
            if route != Route::All && route != Route::One(p) {
                if let Some(now) = self.router.clock() {
                    out.extend(engine.advance(now).into_iter().filter(|f| known.keeps(f, p, n, None)));
                }
                continue;
            }
            known.extend(copies.iter().cloned());
            out.extend(
                apply_stamped(engine, stamp, ev)
                    .into_iter()
                    .filter(|f| known.keeps(f, p, n, Some((route, &ev.id)))),
            );
        }
        out
    }

    /// Moves every partition's clock to `to` (the end of an audit, `--as-of`).
    pub fn advance(&mut self, to: Time) -> Vec<Finding> {
        let n = self.router.partitions;
        let mut out = Vec::new();
        for (p, (engine, known)) in self.engines.iter_mut().enumerate() {
            out.extend(
                engine
                    .advance(to)
                    .into_iter()
                    .filter(|f| known.keeps(f, p as u32, n, None)),
            );
        }
        out
    }
}

/// A partition's engine applies `ev`, routed when the global clock stood at
/// `stamp`: the watermark first (deadlines the global clock has passed fire
/// before the event), then the event. Every finding, before [`Copies::keeps`].
pub fn apply_stamped(engine: &mut Engine, stamp: Option<Time>, ev: &Event) -> Vec<Finding> {
    let mut found = match stamp {
        Some(t) => engine.advance(t),
        None => Vec::new(),
    };
    found.extend(engine.apply(ev));
    found
}
