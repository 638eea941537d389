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
//! **Merchants tied together live together.** A repeated creation or a
//! change naming another merchant, or an order placed for another merchant's
//! pre-sale, ties the two merchants: the engine reads both at once from
//! then on. The [`Router`] moves the smaller of the two merchants' groups
//! to the other's partition ([`Move`]), and an order kept everywhere
//! joining a pre-sale kept in one partition (or the reverse) spreads the
//! pre-sale and its orders to every partition ([`Router::take_spread`]).
//! The partitions concerned then rebuild their state from the events they
//! own now ([`Router::route_of`]), which is what they would hold had the
//! merchants always lived together. [`Partitioned`] does this in memory, and
//! its union of findings equals one engine's on every stream the tests
//! make; the cluster's front door and workers do it over NATS.

use rustc_hash::FxHashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use weiquan_engine::{Engine, Finding, Rulebook};
use weiquan_events::{parse_event, Body, Event, ParseError, Time};

/// The partition of a routing key (a merchant id, or a consumer's for pay-later).
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    (foldhash::fast::FixedState::with_seed(0x7061_7274).hash_one(key) % u64::from(partitions.max(1))) as u32
}

/// The subjects an event names that the router places (`kind:id`, as
/// findings name them): at most an order and its campaign, or one other
/// ([`weiquan_engine::subjects_named`], the engine's own reading).
pub fn named(body: &Body) -> [Option<String>; 2] {
    weiquan_engine::subjects_named(body).map(|s| s.map(|(kind, id)| format!("{kind}:{id}")))
}

/// The partitions that rebuild after an event made `moves` (both ends of
/// each) or, with `spread`, spread a group of subjects (all `partitions`),
/// in order, each once.
pub fn rebuilding(partitions: u32, moves: &[Move], spread: bool) -> Vec<u32> {
    let mut out: Vec<u32> = match spread {
        true => (0..partitions).collect(),
        false => moves.iter().flat_map(|m| [m.from, m.to]).collect(),
    };
    out.sort_unstable();
    out.dedup();
    out
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Home {
    /// With its merchant (by [`Merchants`] index), in that merchant's
    /// partition, wherever the merchant has been moved to.
    Of(u32),
    /// In every partition: its first event named no merchant (an event
    /// before its subject's creation), so every partition keeps a copy of it
    /// and sees all its events; its merchant's partition reports what it
    /// finds against that merchant, partition 0 what it finds against none.
    All,
}

/// Whom a routed event belongs to, as the router decided when it routed it:
/// every partition, a merchant (whose partition may change when merchants
/// are moved together, see [`Router::new`]), or a fixed partition (a
/// consumer's pay-later events). [`Router::route_of`] says where it goes now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner(OwnerKind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OwnerKind {
    All,
    /// A merchant's own event (listings, prices, its status).
    Merchant(u32),
    /// An event about a subject (by [`Subjects`] index): it goes where the
    /// subject's group lives.
    Subject(u32),
    Fixed(u32),
}

/// Merchants moved to a partition other than their own
/// ([`partition_of`]): every one of them now lives in `to`, and its state
/// is to be rebuilt there from every event it owns.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Move {
    /// The merchants moved (ids), all of one group that lived in `from`.
    pub merchants: Vec<String>,
    /// The partition they lived in.
    pub from: u32,
    /// The partition they live in now.
    pub to: u32,
}

/// The merchants the router has met, in groups that must share a partition:
/// two merchants are grouped once one event ties their subjects together
/// (a repeated creation or a change naming another merchant, an order placed
/// for another merchant's pre-sale). A union-find whose roots carry the
/// group's partition and members.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Merchants {
    ids: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    parent: Vec<u32>,
    /// At a root: the group's partition.
    partition: Vec<u32>,
    /// At a root: the group's members (empty elsewhere).
    members: Vec<Vec<u32>>,
}

impl Merchants {
    /// The index of merchant `id`, met now if new (alone, in its own partition).
    fn ix(&mut self, id: &str, partitions: u32) -> u32 {
        if let Some(&i) = self.ids.get(id) {
            return i;
        }
        let i = self.names.len() as u32;
        self.ids.insert(id.into(), i);
        self.names.push(id.into());
        self.parent.push(i);
        self.partition.push(partition_of(id, partitions));
        self.members.push(vec![i]);
        i
    }

    fn root(&self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            i = self.parent[i as usize];
        }
        i
    }

    fn partition(&self, i: u32) -> u32 {
        self.partition[self.root(i) as usize]
    }

    /// The partition merchant `id` lives in (its own when never met).
    fn partition_by_id(&self, id: &str, partitions: u32) -> u32 {
        match self.ids.get(id) {
            Some(&i) => self.partition(i),
            None => partition_of(id, partitions),
        }
    }

    /// Groups `join`'s merchants with `keep`'s, in the partition of the
    /// larger group: the move, when they lived apart.
    ///
    /// The smaller group moves (union by size): a move's cost is a replay
    /// either way, and the chains to the root stay short. Which one lives
    /// where does not change what the partitions find.
    fn group(&mut self, keep: u32, join: u32) -> Option<Move> {
        let (mut k, mut j) = (self.root(keep), self.root(join));
        if k == j {
            return None;
        }
        if self.members[j as usize].len() > self.members[k as usize].len() {
            std::mem::swap(&mut k, &mut j);
        }
        let (to, from) = (self.partition[k as usize], self.partition[j as usize]);
        let moved = std::mem::take(&mut self.members[j as usize]);
        self.parent[j as usize] = k;
        let names = moved.iter().map(|&m| self.names[m as usize].to_string()).collect();
        self.members[k as usize].extend(moved);
        (to != from).then_some(Move {
            merchants: names,
            from,
            to,
        })
    }
}

/// The subjects the router has placed, in groups that live together: an
/// order joins its campaign's group when an event names both. A union-find
/// whose roots carry the group's home.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Subjects {
    ix: FxHashMap<(Kind, Box<str>), u32>,
    parent: Vec<u32>,
    /// At a root: how many subjects the group holds.
    size: Vec<u32>,
    /// At a root: where the group lives.
    home: Vec<Home>,
    /// At the root of a group of more than one subject: its members, as
    /// findings name them (`kind:id`), for when the group is kept
    /// everywhere from then on.
    members: FxHashMap<u32, Vec<String>>,
}

impl Subjects {
    /// Subject `id`'s index and home, placed at `home` if it is new (then
    /// also `true`).
    fn settle(&mut self, kind: Kind, id: &str, home: Home) -> (u32, Home, bool) {
        // One owned key per event, found or placed (the door's hot path).
        let i = self.parent.len() as u32;
        match self.ix.entry((kind, id.into())) {
            std::collections::hash_map::Entry::Occupied(at) => {
                let i = *at.get();
                return (i, self.home(i), false);
            }
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert(i),
        };
        self.parent.push(i);
        self.size.push(1);
        self.home.push(home);
        (i, home, true)
    }

    fn root(&self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            i = self.parent[i as usize];
        }
        i
    }

    fn home(&self, i: u32) -> Home {
        self.home[self.root(i) as usize]
    }

    /// Whether subject `kind:id` is kept by every partition.
    fn everywhere(&self, kind: Kind, id: &str) -> bool {
        self.ix
            .get(&(kind, id.into()))
            .is_some_and(|&i| self.home(i) == Home::All)
    }

    /// The members of `i`'s group (`kind:id`); `name` gives `i`'s own, for
    /// a group of one (made only then: a campaign's is asked at every join).
    fn members(&mut self, i: u32, name: impl FnOnce() -> String) -> Vec<String> {
        self.members.remove(&self.root(i)).unwrap_or_else(|| vec![name()])
    }

    /// Makes `a`'s and `b`'s groups (two groups) one, living at `home`,
    /// under the larger one's root (chains stay short), with members
    /// `big` and `small` (each group's, from [`Subjects::members`]).
    fn unite(&mut self, a: u32, b: u32, home: Home, mut big: Vec<String>, mut small: Vec<String>) {
        let (mut ra, mut rb) = (self.root(a), self.root(b));
        debug_assert_ne!(ra, rb, "two groups");
        if self.size[rb as usize] > self.size[ra as usize] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb as usize] = ra;
        self.size[ra as usize] += self.size[rb as usize];
        self.home[ra as usize] = home;
        // The shorter list joins the longer: no list is copied whole per join.
        if small.len() > big.len() {
            std::mem::swap(&mut big, &mut small);
        }
        big.extend(small);
        self.members.insert(ra, big);
    }
}

/// Whether partition `p` reports finding `f`, found while applying an event
/// routed by `route` with id `event` (`None`: found when the clock alone
/// moved); `home` gives a merchant's partition, `copied` whether a subject
/// is kept by every partition. A merchant's finding is its partition's; one
/// found alike by every partition (about a subject kept everywhere, or by a
/// broadcast event itself) is partition 0's.
fn reports(
    f: &Finding,
    p: u32,
    event: Option<(Route, &str)>,
    home: impl Fn(&str) -> u32,
    copied: impl Fn(&str) -> bool,
) -> bool {
    if let Some(m) = &f.merchant {
        return home(m) == p;
    }
    let everywhere = copied(&f.subject)
        || event.is_some_and(|(route, id)| route == Route::All && f.events.last().is_some_and(|e| e == id));
    !everywhere || p == 0
}

/// What a partition away from the [`Router`] (a worker) knows of the routing
/// state: the subjects every partition keeps, as [`Router::take_copies`]
/// handed them on with the events, and where merchants were moved
/// ([`Router::take_moves`]). Enough to report each finding once.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Copies {
    subjects: std::collections::BTreeSet<String>,
    moved: std::collections::BTreeMap<String, u32>,
}

impl Copies {
    /// Notes subjects now kept by every partition.
    pub fn extend(&mut self, subjects: impl IntoIterator<Item = String>) {
        self.subjects.extend(subjects);
    }

    /// Notes merchants moved to another partition.
    pub fn note_moves(&mut self, moves: &[Move]) {
        for m in moves {
            for id in &m.merchants {
                self.moved.insert(id.clone(), m.to);
            }
        }
    }

    /// The partition merchant `m` lives in now.
    pub fn home(&self, m: &str, partitions: u32) -> u32 {
        self.moved
            .get(m)
            .copied()
            .unwrap_or_else(|| partition_of(m, partitions))
    }

    /// [`Router::keeps`], for partition `p` of `partitions`.
    pub fn keeps(&self, f: &Finding, p: u32, partitions: u32, event: Option<(Route, &str)>) -> bool {
        reports(f, p, event, |m| self.home(m, partitions), |s| self.subjects.contains(s))
    }

    /// [`Router::route_of`], from what a partition knows: where an event
    /// goes now that was routed to partition `sent_to` (to every partition
    /// when `all`), as merchant `of`'s ([`Router::owner_merchant`]). An
    /// event about a subject spread since goes everywhere; one of a merchant
    /// moved since goes where it lives.
    pub fn route_of(&self, body: &Body, all: bool, of: Option<&str>, sent_to: u32, partitions: u32) -> Route {
        if all || named(body).iter().flatten().any(|s| self.subjects.contains(s)) {
            return Route::All;
        }
        Route::One(of.map_or(sent_to, |m| self.home(m, partitions)))
    }
}

/// The front door: routes each event and keeps the routing state (where each
/// subject lives) and the global clock. It serializes (a door's snapshot)
/// without what is waiting to be taken ([`Router::take_copies`],
/// [`Router::take_moves`], [`Router::take_spread`]): take those first.
/// Snapshots are postcard, which names no field: a change to the fields of
/// the router or of what it holds must change the snapshot's magic
/// (`weiquan-cluster`'s `door.rs`), so that older snapshots are passed over.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Router {
    partitions: u32,
    subjects: Subjects,
    merchants: Merchants,
    clock: Option<Time>,
    /// Subjects placed everywhere since [`Router::take_copies`] was last called.
    #[serde(skip)]
    fresh: Vec<String>,
    /// Merchants moved since [`Router::take_moves`] was last called.
    #[serde(skip)]
    moves: Vec<Move>,
    moved: u64,
    /// Whether a group of subjects has been spread to every partition since
    /// [`Router::take_spread`] was last called.
    #[serde(skip)]
    spread: bool,
    spreads: u64,
}

impl Router {
    /// A router over `partitions` partitions (at least 1). It moves
    /// merchants together: when one event ties subjects of merchants in two
    /// partitions, the smaller of their two groups moves to the other's
    /// partition (the subject's, when they are alike). Each such [`Move`] is
    /// handed on ([`Router::take_moves`]), as is a spread
    /// ([`Router::take_spread`]); the partitions they name must rebuild
    /// their state from the events they own from then on
    /// ([`Router::route_of`]) before they apply the next event.
    pub fn new(partitions: u32) -> Router {
        Router {
            partitions: partitions.max(1),
            subjects: Subjects::default(),
            merchants: Merchants::default(),
            clock: None,
            fresh: Vec::new(),
            moves: Vec::new(),
            moved: 0,
            spread: false,
            spreads: 0,
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

    /// How many groups of merchants were moved so far.
    pub fn moved(&self) -> u64 {
        self.moved
    }

    /// How many groups of subjects were spread to every partition so far.
    pub fn spreads(&self) -> u64 {
        self.spreads
    }

    /// Whether partition `p` reports finding `f`, which it found while
    /// applying an event routed by `route` with id `event` (`None`: found
    /// when the clock alone moved). Every finding is reported by exactly one
    /// partition.
    pub fn keeps(&self, f: &Finding, p: u32, event: Option<(Route, &str)>) -> bool {
        let home = |m: &str| self.merchants.partition_by_id(m, self.partitions);
        reports(f, p, event, home, |subject| {
            subject
                .split_once(':')
                .is_some_and(|(prefix, id)| Kind::of_subject(prefix).is_some_and(|k| self.subjects.everywhere(k, id)))
        })
    }

    /// The subjects (`kind:id`, as findings name them) that the events
    /// routed since the last call made every partition keep. A partition
    /// away from the router (a worker) needs them to tell which findings it
    /// reports ([`Copies`]); a subject kept everywhere stays so.
    pub fn take_copies(&mut self) -> Vec<String> {
        std::mem::take(&mut self.fresh)
    }

    /// The moves of merchants the events routed since the last call made.
    pub fn take_moves(&mut self) -> Vec<Move> {
        std::mem::take(&mut self.moves)
    }

    /// Whether the events routed since the last call spread a group of
    /// subjects to every partition: an order
    /// kept everywhere named with a pre-sale that lived in one partition, or
    /// the reverse. Every partition must then rebuild its state from the
    /// events it owns now ([`Router::route_of`]).
    pub fn take_spread(&mut self) -> bool {
        std::mem::take(&mut self.spread)
    }

    /// The merchant an event routed as `owner` belongs to now (none for one
    /// that goes everywhere, or by consumer): what a partition away from the
    /// router needs, with [`Copies`], to tell where it goes after moves
    /// ([`Copies::route_of`]).
    pub fn owner_merchant(&self, owner: Owner) -> Option<&str> {
        let m = match owner.0 {
            OwnerKind::Merchant(m) => m,
            OwnerKind::Subject(i) => match self.subjects.home(i) {
                Home::Of(m) => m,
                Home::All => return None,
            },
            OwnerKind::All | OwnerKind::Fixed(_) => return None,
        };
        Some(&self.merchants.names[m as usize])
    }

    /// Where an event the router routed as `owner` goes now: where it went
    /// then, unless its merchant has been moved since or its subject spread
    /// to every partition.
    pub fn route_of(&self, owner: Owner) -> Route {
        let merchant = |m| Route::One(self.merchants.partition(m));
        match owner.0 {
            OwnerKind::All => Route::All,
            OwnerKind::Merchant(m) => merchant(m),
            OwnerKind::Subject(i) => match self.subjects.home(i) {
                Home::Of(m) => merchant(m),
                Home::All => Route::All,
            },
            OwnerKind::Fixed(p) => Route::One(p),
        }
    }

    fn of(&self, key: &str) -> u32 {
        partition_of(key, self.partitions)
    }

    fn merchant(&mut self, id: &str) -> u32 {
        self.merchants.ix(id, self.partitions)
    }

    /// Subject `id` (its index and home); a subject not seen yet lives everywhere.
    fn follow(&mut self, kind: Kind, id: &str) -> (u32, Home) {
        self.settle(kind, id, Home::All)
    }

    /// Subject `id` (its index and home), placed at `home` if it is new (and
    /// noted when that is everywhere).
    fn settle(&mut self, kind: Kind, id: &str, home: Home) -> (u32, Home) {
        let (i, at, new) = self.subjects.settle(kind, id, home);
        if new && home == Home::All {
            self.fresh.push(format!("{}:{id}", kind.prefix()));
        }
        (i, at)
    }

    /// Merchant `join` is now tied to merchant `keep`: their groups become
    /// one, in the larger group's partition (`keep`'s when they are alike).
    fn tie(&mut self, keep: u32, join: u32) {
        if let Some(m) = self.merchants.group(keep, join) {
            self.moved += 1;
            self.moves.push(m);
        }
    }

    /// Places subject `id` with `merchant`: a subject not seen yet goes with
    /// its merchant; one kept everywhere stays so; one with another merchant
    /// stays with it, and ties the two.
    fn place(&mut self, kind: Kind, id: &str, merchant: &str) -> u32 {
        let m = self.merchant(merchant);
        let (i, at) = self.settle(kind, id, Home::Of(m));
        if let Home::Of(owner) = at {
            self.tie(owner, m);
        }
        i
    }

    /// Subject `id`, which a change may hand to another `merchant`: that
    /// ties the two.
    fn follow_to(&mut self, kind: Kind, id: &str, merchant: Option<&str>) -> u32 {
        let (i, at) = self.follow(kind, id);
        if let (Home::Of(owner), Some(m)) = (at, merchant) {
            let m = self.merchant(m);
            self.tie(owner, m);
        }
        i
    }

    /// Places `order` with `campaign` (index `c`, living at `home`): an
    /// order not seen yet joins the campaign's group; one with another
    /// merchant ties that merchant to the campaign's, and joins it; one
    /// kept everywhere, or joining a campaign kept everywhere, spreads the
    /// whole group to every partition. Returns `c`.
    fn join(&mut self, order: &str, campaign: &str, c: u32, home: Home) -> u32 {
        let (o, at) = self.settle(Kind::Order, order, home);
        if self.subjects.root(o) == self.subjects.root(c) {
            return c;
        }
        let own = self.subjects.members(o, || format!("order:{order}"));
        let its = self.subjects.members(c, || format!("campaign:{campaign}"));
        let home = match (at, home) {
            (Home::Of(owner), Home::Of(m)) => {
                self.tie(m, owner);
                home
            }
            (Home::All, Home::All) => Home::All,
            _ => {
                // Every subject of the group not kept everywhere yet is now.
                self.spread = true;
                self.spreads += 1;
                for (names, h) in [(&own, at), (&its, home)] {
                    if h != Home::All {
                        self.fresh.extend(names.iter().cloned());
                    }
                }
                Home::All
            }
        };
        self.subjects.unite(c, o, home, own, its);
        c
    }

    /// Routes `ev`, updating the routing state and the clock.
    pub fn route(&mut self, ev: &Event) -> Route {
        self.route_owned(ev).0
    }

    /// Routes `ev` as [`Router::route`] does, and says whom it belongs to,
    /// so that its route can be asked again after merchants move.
    pub fn route_owned(&mut self, ev: &Event) -> (Route, Owner) {
        let owner = self.owner(&ev.body);
        if self.clock.is_none_or(|c| ev.at > c) {
            self.clock = Some(ev.at);
        }
        (self.route_of(owner), owner)
    }

    fn owner(&mut self, body: &Body) -> Owner {
        let home = |i: u32| Owner(OwnerKind::Subject(i));
        match body {
            Body::ClockTick
            | Body::MerchantRegistered { .. }
            | Body::HostRegistered { .. }
            | Body::HostVerified { .. }
            | Body::HostSuspended { .. }
            | Body::HostReinstated { .. } => Owner(OwnerKind::All),
            Body::MerchantVerified { merchant, .. }
            | Body::MerchantClosed { merchant, .. }
            | Body::MerchantReopened { merchant }
            | Body::MerchantBlacklistLifted { merchant, .. }
            | Body::ListingPublished { merchant, .. }
            | Body::ListingUpdated { merchant, .. }
            | Body::PriceChanged { merchant, .. }
            | Body::ListingRemoved { merchant, .. }
            | Body::PriceQuoted { merchant, .. } => Owner(OwnerKind::Merchant(self.merchant(merchant))),
            // A conversation is its first merchant's (the engine's reading too).
            Body::ServiceMessage {
                merchant, conversation, ..
            } => home(self.place(Kind::Conversation, conversation, merchant)),
            // An order placed for a campaign is judged against that campaign
            // (its first: Messy streams 7), so it lives with it; the merchant's
            // own counts must then be in the same partition.
            Body::OrderPlaced {
                order,
                merchant,
                campaign: Some(campaign),
                ..
            } => {
                let (c, at) = self.follow(Kind::Campaign, campaign);
                let m = self.merchant(merchant);
                if let Home::Of(owner) = at {
                    self.tie(owner, m);
                }
                home(self.join(order, campaign, c, at))
            }
            Body::OrderPlaced { order, merchant, .. } => home(self.place(Kind::Order, order, merchant)),
            Body::OrderShipped { order }
            | Body::OrderDelivered { order }
            | Body::OrderCancelled { order, .. }
            | Body::RefundRequested { order, .. }
            | Body::RefundCompleted { order, .. }
            | Body::RefundRejected { order, .. } => home(self.follow(Kind::Order, order).0),
            Body::PresalePublished { campaign, terms } => home(match terms.merchant.as_deref() {
                Some(m) => self.place(Kind::Campaign, campaign, m),
                None => self.follow(Kind::Campaign, campaign).0,
            }),
            Body::PresaleChanged { campaign, changes } => {
                home(self.follow_to(Kind::Campaign, campaign, changes.merchant.as_deref()))
            }
            Body::PresaleGiftWithdrawn {
                campaign, order: None, ..
            } => home(self.follow(Kind::Campaign, campaign).0),
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
                let (c, at) = self.follow(Kind::Campaign, campaign);
                home(self.join(order, campaign, c, at))
            }
            Body::LotteryAnnounced { lottery, terms } => home(match terms.merchant.as_deref() {
                Some(m) => self.place(Kind::Lottery, lottery, m),
                None => self.follow(Kind::Lottery, lottery).0,
            }),
            Body::LotteryChanged { lottery, changes } => {
                home(self.follow_to(Kind::Lottery, lottery, changes.merchant.as_deref()))
            }
            Body::LotteryEntered { lottery, .. }
            | Body::LotteryClosed { lottery }
            | Body::LotteryDrawn { lottery, .. }
            | Body::LotteryPrizeShipped { lottery, .. }
            | Body::LotteryPrizeDelivered { lottery, .. }
            | Body::LotteryCancelled { lottery, .. } => home(self.follow(Kind::Lottery, lottery).0),
            Body::ComplaintFiled {
                complaint, merchant, ..
            } => home(self.place(Kind::Complaint, complaint, merchant)),
            Body::ComplaintResponded { complaint, .. }
            | Body::ComplaintResolved { complaint, .. }
            | Body::ComplaintEscalated { complaint, .. } => home(self.follow(Kind::Complaint, complaint).0),
            Body::BnplOffered { consumer, .. }
            | Body::BnplEnabled { consumer, .. }
            | Body::BnplDisabled { consumer, .. }
            | Body::BnplCancelFailed { consumer, .. } => Owner(OwnerKind::Fixed(self.of(consumer))),
        }
    }
}

/// Partitions in one process: a [`Router`] and an engine per partition. Each partition decides
/// what it reports from what a worker would know: its own [`Copies`],
/// handed on with the events it gets, not the router's state.
///
/// It keeps every event it applied, so that a move of merchants can rebuild
/// the partitions the move names from the events each owns now, in stream
/// order with their stamps: what the partition would hold had the merchants
/// always lived together. That is the proof of the design, not a way to run
/// at scale: memory grows with the stream, and a move replays two
/// partitions' history.
pub struct Partitioned {
    router: Router,
    rules: Arc<Rulebook>,
    engines: Vec<(Engine, Copies)>,
    history: Vec<Applied>,
}

/// An event a [`Partitioned`] applied: the line, the global clock before
/// it, and what a worker's stamp would say of where it went
/// ([`Copies::route_of`]).
struct Applied {
    line: Box<str>,
    stamp: Option<Time>,
    /// Whom the router said it belongs to, to check the partition's answer.
    owner: Owner,
    all: bool,
    of: Option<Box<str>>,
    sent_to: u32,
}

impl Partitioned {
    /// `partitions` engines under `rules`.
    pub fn new(rules: Arc<Rulebook>, partitions: u32) -> Partitioned {
        let router = Router::new(partitions);
        let engines = (0..router.partitions)
            .map(|_| (Engine::new(rules.clone()), Copies::default()))
            .collect();
        Partitioned {
            router,
            rules,
            engines,
            history: Vec::new(),
        }
    }

    /// Groups of merchants moved, and groups of subjects spread to every
    /// partition, so far ([`Router::moved`], [`Router::spreads`]).
    pub fn moved(&self) -> (u64, u64) {
        (self.router.moved(), self.router.spreads())
    }

    /// Routes and applies one event line (its id not seen before: the caller
    /// drops repeats, as a server does): the findings the partitions report
    /// for it, partition by partition. Partitions the event does not go to
    /// move their clocks to the global one, so that a deadline fires at the
    /// same event as on one engine, not at its merchant's next event.
    pub fn apply(&mut self, line: &str) -> Result<Vec<Finding>, ParseError> {
        let ev = parse_event(line)?;
        let stamp = self.router.clock();
        let (route, owner) = self.router.route_owned(&ev);
        let copies = self.router.take_copies();
        let moves = self.router.take_moves();
        let spread = self.router.take_spread();
        // As on the cluster, a partition learns of a move only when it is
        // one of its ends (the door's markers go there), and of a spread
        // always (every partition rebuilds).
        let rebuild = rebuilding(self.router.partitions, &moves, spread);
        for &p in &rebuild {
            let known = &mut self.engines[p as usize].1;
            known.note_moves(&moves);
            if spread {
                known.extend(copies.iter().cloned());
            }
        }
        for p in rebuild {
            self.rebuild(p, stamp);
        }
        self.history.push(Applied {
            line: line.into(),
            stamp,
            owner,
            all: route == Route::All,
            of: self.router.owner_merchant(owner).map(Into::into),
            sent_to: match route {
                Route::One(p) => p,
                Route::All => 0,
            },
        });
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
                apply_stamped(engine, stamp, &ev)
                    .into_iter()
                    .filter(|f| known.keeps(f, p, n, Some((route, &ev.id)))),
            );
        }
        Ok(out)
    }

    /// Partition `p`'s engine anew, from the events it owns now, each at its
    /// stamp, then at the clock `now`: what it reported of them was reported
    /// when they came, so nothing found here is reported again. Where each
    /// event goes now is asked of what the partition knows
    /// ([`Copies::route_of`]), as a worker away from the router must, and
    /// checked against the router.
    fn rebuild(&mut self, p: u32, now: Option<Time>) {
        let mut engine = Engine::new(self.rules.clone());
        let (known, n) = (&self.engines[p as usize].1, self.router.partitions);
        for past in &self.history {
            // The line parsed when it was applied.
            let Ok(ev) = parse_event(&past.line) else { continue };
            let route = known.route_of(&ev.body, past.all, past.of.as_deref(), past.sent_to, n);
            // What the partition knows says where the event belongs as the
            // router does, whenever it matters to this partition.
            let router = self.router.route_of(past.owner);
            debug_assert_eq!(
                route == Route::All || route == Route::One(p),
                router == Route::All || router == Route::One(p),
                "partition {p}: {} goes to {route:?} by what it knows, {router:?} by the router",
                past.line
            );
            if route != Route::All && route != Route::One(p) {
                continue;
            }
            apply_stamped(&mut engine, past.stamp, &ev);
        }
        if let Some(now) = now {
            engine.advance(now);
        }
        self.engines[p as usize].0 = engine;
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
