//! Live-stream lotteries (直播抽奖): LT-01..10.
//!
//! Entrants are remembered with their eligibility (LT-04, LT-08, LT-09 and the
//! draw check need them; a redraw may come), every draw with its winners
//! (LT-06 is owed per prize won, in every draw), and what was shipped to whom.
//! LT-09's per-participant expectation is accumulated per merchant at each draw.
//! LT-11 reads the host registry kept here from `host.*` events.

use crate::merchant::make_subject;
use crate::poisson::poisson_tail;
use crate::table::{pid, Strings};
use crate::table::{LotteryIx, MerchantIx};
use crate::{yuan, Deadline, Due, Engine, RuleId};
use rustc_hash::{FxHashMap, FxHashSet};
use weiquan_events::{Body, LotteryTerms, Prize, Str, Time, Winner, HOUR_MS};

/// A lottery and its draws.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Lottery {
    pub merchant: Option<MerchantIx>,
    /// The first `lottery.announced` (Messy streams 2: before it there are no terms).
    pub announced: Option<Box<str>>,
    pub terms: LotteryTerms<'static>,
    /// Every prize name ever announced, with the last value it had while announced (LT-04, LT-07).
    pub ever_prizes: Vec<(Box<str>, Option<u64>)>,
    pub over_cap: bool,
    /// Participant → entered before the close (eligible).
    pub entrants: FxHashMap<u64, bool>,
    /// Entrants in order of first entry.
    pub entry_order: Vec<u64>,
    /// Their ids, in the same order: the draw algorithm and entry proofs need
    /// them, and a commitment may come after the first entries (then it is
    /// LT-10, but the draw is still checked against them).
    pub entrant_ids: Strings,
    pub closed: bool,
    pub cancelled: bool,
    /// Every draw in processing order (a second one is a redraw).
    pub draws: Vec<DrawRecord>,
    /// Which LT-05 deadline is current: a moved `draw_at` supersedes the earlier one.
    pub lt05_generation: u32,
    /// Prizes shipped per (participant, prize name).
    pub shipped: FxHashMap<(u64, Box<str>), u32>,
    /// Participants whose prize delivery was recorded (`lottery.prize_delivered`).
    pub delivered: FxHashSet<u64>,
    pub lt11_fired: bool,
}

impl Lottery {
    /// Entered before the close (the entrants of a draw, Messy streams 8).
    fn eligible(&self, p: u64) -> bool {
        self.entrants.get(&p) == Some(&true)
    }

    /// The ids of a draw's entrants now, in order of first entry.
    fn eligible_ids(&self) -> impl Iterator<Item = &str> {
        self.entry_order
            .iter()
            .zip(self.entrant_ids.iter())
            .filter(|(p, _)| self.eligible(**p))
            .map(|(_, id)| id)
    }

    /// Shipments of `w`'s prize to `w`'s participant so far.
    fn shipments(&self, w: &Drawn) -> u32 {
        self.shipped.get(&(w.pid, w.prize.clone())).copied().unwrap_or(0)
    }
}

/// One `lottery.drawn`: its event and winners.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct DrawRecord {
    pub event: Box<str>,
    pub winners: Vec<Drawn>,
    /// Its entrants (eligible participants) when it was processed.
    pub entrants: u32,
    /// How many participants had entered by then (a prefix of `entry_order`).
    pub entered: u32,
    /// Counted in its merchant's LT-09 statistics. A draw processed before the
    /// lottery had a merchant is counted once it has one (Messy streams 2).
    pub lt09_counted: bool,
    /// LT-10's recomputation when the draw was recorded: `None` without a
    /// commitment (nothing to check), else what is wrong, if anything.
    pub check: Option<Result<(), Box<str>>>,
}

/// One winner of a draw: the participant's key and id, and the prize.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Drawn {
    pub pid: u64,
    pub participant: Box<str>,
    pub prize: Box<str>,
}

/// A live-stream host (主播) in the platform's registry (LT-11).
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Host {
    /// `host.registered` processed.
    pub registered: bool,
    /// `host.verified` ever processed.
    pub verified: bool,
    /// The latest of `host.verified`, `host.reinstated` and `host.suspended` was a suspension.
    pub suspended: bool,
    /// The merchant it registered as streaming for, if any.
    pub merchant: Option<MerchantIx>,
    /// When the event that set its current standing was dated (`None`: no `host.*` event yet).
    pub since: Option<Time>,
    /// The latest verification's method.
    #[serde(deserialize_with = "crate::snapshot::keyword_opt::<_, weiquan_events::HostVerifyMethod>")]
    pub method: Option<crate::snapshot::Spelling>,
    /// Lotteries that named it as their host, in the order they did.
    pub lotteries: Strings,
}

/// Where a host stands in the registry, as LT-11 reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostStanding {
    /// Registered, verified, and not suspended since its latest verification or reinstatement.
    Qualified,
    /// Registered and never verified.
    NeverVerified,
    /// Registered, verified once, suspended since.
    Suspended,
    /// Never registered (LT-11 fires on it only when the rulebook requires a registry).
    NotRegistered,
}

impl HostStanding {
    /// The standing as the API writes it: `qualified`, `never_verified`, `suspended`, `not_registered`.
    pub fn as_str(self) -> &'static str {
        match self {
            HostStanding::Qualified => "qualified",
            HostStanding::NeverVerified => "never_verified",
            HostStanding::Suspended => "suspended",
            HostStanding::NotRegistered => "not_registered",
        }
    }
}

impl Host {
    /// Where it stands now. Verified before it was registered still counts
    /// (spec, "Messy streams" 2: facts before creation).
    fn standing(&self) -> HostStanding {
        match self {
            Host { registered: false, .. } => HostStanding::NotRegistered,
            Host { verified: false, .. } => HostStanding::NeverVerified,
            Host { suspended: true, .. } => HostStanding::Suspended,
            _ => HostStanding::Qualified,
        }
    }
}

/// A participant's record in one merchant's lotteries (LT-09).
#[derive(Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) struct WinRecord {
    pub expected: f64,
    pub wins: u32,
    pub fired: bool,
}

fn prize_count(prizes: &[Prize]) -> u64 {
    prizes.iter().map(|p| u64::from(p.count.unwrap_or(0))).sum()
}

fn missing_disclosures(t: &LotteryTerms) -> Vec<String> {
    let blank = |s: &Option<Str<'_>>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    let mut missing = Vec::new();
    if t.conditions.as_ref().is_none_or(|c| c.is_empty()) {
        missing.push("conditions".to_owned());
    }
    if t.draw_at.is_none() {
        missing.push("draw_at".into());
    }
    if t.deliver_within_days.is_none() {
        missing.push("deliver_within_days".into());
    }
    if blank(&t.organizer) {
        missing.push("organizer".into());
    }
    if blank(&t.contact) {
        missing.push("contact".into());
    }
    for (i, p) in t.prizes.iter().flatten().enumerate() {
        if p.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
            missing.push(format!("prizes[{i}].name"));
        }
        if p.value_fen.is_none() {
            missing.push(format!("prizes[{i}].value_fen"));
        }
        if p.count.is_none() {
            missing.push(format!("prizes[{i}].count"));
        }
    }
    missing
}

/// What a change takes away from participants, in words; empty when nothing.
fn detriments(old: &LotteryTerms, new: &LotteryTerms) -> Vec<String> {
    let mut worse = Vec::new();
    if let (Some(old_p), Some(new_p)) = (&old.prizes, &new.prizes) {
        let (a, b) = (prize_count(old_p), prize_count(new_p));
        if b < a {
            worse.push(format!("prize count {a} → {b}"));
        }
        for op in old_p {
            let Some(name) = &op.name else { continue };
            match new_p.iter().find(|np| np.name.as_ref() == Some(name)) {
                None => worse.push(format!("prize {name} removed")),
                Some(np) => {
                    if let (Some(a), Some(b)) = (op.value_fen, np.value_fen) {
                        if b < a {
                            worse.push(format!("prize {name} value {a} → {b}"));
                        }
                    }
                }
            }
        }
    }
    if let (Some(old_c), Some(new_c)) = (&old.conditions, &new.conditions) {
        // Conditions disclosed for the first time are LT-01's gap, not a change.
        if !old_c.is_empty() {
            for c in new_c {
                if !old_c.contains(c) {
                    worse.push(format!("condition added: {c}"));
                }
            }
        }
    }
    if let (Some(a), Some(b)) = (old.draw_at, new.draw_at) {
        if a != b {
            worse.push(format!("draw_at {a} → {b}"));
        }
    }
    if let (Some(a), Some(b)) = (old.deliver_within_days, new.deliver_within_days) {
        if b > a {
            worse.push(format!("deliver_within_days {a} → {b}"));
        }
    }
    // Messy streams 8: the commitment published first is the one the draw answers to.
    if let (Some(a), Some(b)) = (&old.commitment, &new.commitment) {
        if a != b {
            worse.push("commitment replaced".into());
        }
    }
    worse
}

fn merge_terms(cur: &mut LotteryTerms<'static>, ch: &LotteryTerms<'_>) {
    let ch = ch.to_static();
    macro_rules! take {
        ($($f:ident),+) => { $( if ch.$f.is_some() { cur.$f = ch.$f; } )+ };
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
    // A commitment is set once and never replaced (Messy streams 8).
    if cur.commitment.is_none() {
        cur.commitment = ch.commitment;
    }
}

/// How a lottery's terms arrive.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TermsEvent {
    /// The first `lottery.announced`.
    Creation,
    /// A repeated `lottery.announced`: a change that is also judged as a disclosure.
    Repeat,
    /// A `lottery.changed` after the announcement.
    Change,
}

impl Lottery {
    /// Drawn or cancelled: retention may forget it (an open one is kept).
    pub fn settled(&self) -> bool {
        !self.draws.is_empty() || self.cancelled
    }
}

impl Engine {
    fn lottery_subject(&self, l: LotteryIx) -> String {
        make_subject("lottery", self.lotteries.id(l))
    }

    pub(crate) fn lottery_announced(&mut self, id: &str, at: Time, lottery: &str, terms: &LotteryTerms) {
        let l = self.lotteries.entry(lottery);
        let kind = if self.lotteries.get(l).announced.is_some() {
            TermsEvent::Repeat
        } else {
            TermsEvent::Creation
        };
        self.lottery_terms_event(id, at, l, terms, kind);
    }

    pub(crate) fn lottery_changed(&mut self, id: &str, at: Time, lottery: &str, changes: &LotteryTerms) {
        let l = self.lotteries.entry(lottery);
        // Messy streams 2: a change before the announcement has nothing to change.
        if self.lotteries.get(l).announced.is_some() {
            self.lottery_terms_event(id, at, l, changes, TermsEvent::Change);
        }
    }

    /// LT-02 (a change), LT-01 (a disclosure), then the terms in effect: LT-03,
    /// LT-05's deadline, LT-10 (a late first commitment) and LT-11 (its host).
    fn lottery_terms_event(&mut self, id: &str, at: Time, l: LotteryIx, t: &LotteryTerms, kind: TermsEvent) {
        if kind == TermsEvent::Creation {
            self.lotteries.get_mut(l).announced = Some(id.into());
        } else {
            let worse = detriments(&self.lotteries.get(l).terms, t);
            if !worse.is_empty() {
                let m = self.lotteries.get(l).merchant;
                self.emit(
                    RuleId::Lt02,
                    self.lottery_subject(l),
                    m,
                    at,
                    vec![id.into()],
                    vec![("change", worse.join("; "))],
                );
            }
        }
        let lot = self.lotteries.get(l);
        let moved_draw = t.draw_at.is_some() && t.draw_at != lot.terms.draw_at;
        let first_commitment = lot.terms.commitment.is_none() && t.commitment.is_some();
        let m = t.merchant.as_deref().map(|m| self.merchants.entry(m));
        let lot = self.lotteries.get_mut(l);
        let had_merchant = lot.merchant.is_some();
        lot.merchant = m.or(lot.merchant);
        merge_terms(&mut lot.terms, t);
        if let (false, Some(m)) = (had_merchant, m) {
            self.count_earlier_draws(m, l);
        }
        let lot = self.lotteries.get_mut(l);
        for p in t.prizes.iter().flatten() {
            let Some(name) = p.name.as_deref() else { continue };
            match lot.ever_prizes.iter_mut().find(|(e, _)| &**e == name) {
                Some(known) => known.1 = p.value_fen.or(known.1),
                None => lot.ever_prizes.push((name.into(), p.value_fen)),
            }
        }
        let m = lot.merchant;
        if kind != TermsEvent::Change {
            let missing = missing_disclosures(t);
            if !missing.is_empty() {
                self.emit(
                    RuleId::Lt01,
                    self.lottery_subject(l),
                    m,
                    at,
                    vec![id.into()],
                    vec![("missing", missing.join(", "))],
                );
            }
        }
        self.lottery_checks(id, at, l, moved_draw);
        let entries = self.lotteries.get(l).entry_order.len();
        if first_commitment && entries > 0 {
            let problem = format!("the commitment was published after {entries} entries");
            self.emit(
                RuleId::Lt10,
                self.lottery_subject(l),
                m,
                at,
                vec![id.into()],
                vec![("problem", problem)],
            );
        }
        if let Some(host) = t.host.as_deref() {
            self.host_check(id, at, l, host);
        }
    }

    /// LT-11: the host named must be registered and qualified (once per lottery).
    fn host_check(&mut self, id: &str, at: Time, l: LotteryIx, host: &str) {
        // The host's page lists the lotteries that named it, registered or not.
        let h = self.hosts.entry(host);
        // By id, not index: the list outlives a lottery that is forgotten (retention).
        let named = &mut self.hosts.get_mut(h).lotteries;
        let lottery = self.lotteries.id(l);
        if !named.iter().any(|n| n == lottery) {
            named.push(lottery);
        }
        if self.lotteries.get(l).lt11_fired {
            return;
        }
        let problem = match self.hosts.get(h).standing() {
            HostStanding::Qualified => return,
            HostStanding::NeverVerified => "never verified",
            HostStanding::Suspended => "suspended",
            HostStanding::NotRegistered if self.rules.thresholds.host_registry_required => "not registered",
            HostStanding::NotRegistered => return,
        };
        let lot = self.lotteries.get_mut(l);
        lot.lt11_fired = true;
        let m = lot.merchant;
        self.emit(
            RuleId::Lt11,
            self.lottery_subject(l),
            m,
            at,
            vec![id.into()],
            vec![("host", host.into()), ("problem", problem.into())],
        );
    }

    /// `host.*`: the registry LT-11 reads.
    pub(crate) fn host_event(&mut self, body: &Body, at: Time) {
        let host = match body {
            Body::HostRegistered { host, .. }
            | Body::HostVerified { host, .. }
            | Body::HostReinstated { host }
            | Body::HostSuspended { host, .. } => host,
            _ => return,
        };
        let merchant = match body {
            Body::HostRegistered {
                merchant: Some(merchant),
                ..
            } => Some(self.merchants.entry(merchant)),
            _ => None,
        };
        let h = self.hosts.entry(host);
        let entry = self.hosts.get_mut(h);
        let before = entry.standing();
        match body {
            Body::HostRegistered { .. } => {
                entry.registered = true;
                entry.merchant = merchant.or(entry.merchant);
            }
            Body::HostVerified { method, .. } => {
                entry.verified = true;
                entry.suspended = false;
                entry.method = Some(method.as_str());
            }
            Body::HostReinstated { .. } => entry.suspended = false,
            _ => entry.suspended = true,
        }
        if entry.since.is_none() || entry.standing() != before {
            entry.since = Some(at);
        }
    }

    /// LT-03 on the prizes in effect; a (re)set draw time arms LT-05.
    fn lottery_checks(&mut self, id: &str, at: Time, l: LotteryIx, arm_draw: bool) {
        let cap = self.rules.thresholds.lottery_prize_cap_fen;
        let lot = self.lotteries.get(l);
        let over = lot
            .terms
            .prizes
            .iter()
            .flatten()
            .find(|p| p.value_fen.is_some_and(|v| v > cap))
            .map(|p| (p.name.clone().unwrap_or_default(), p.value_fen.unwrap_or(0)));
        let (was_over, m, draw_at) = (lot.over_cap, lot.merchant, lot.terms.draw_at);
        self.lotteries.get_mut(l).over_cap = over.is_some();
        if let (Some((prize, value)), false) = (over, was_over) {
            self.emit(
                RuleId::Lt03,
                self.lottery_subject(l),
                m,
                at,
                vec![id.into()],
                vec![("prize", prize.to_string()), ("value", yuan(value)), ("cap", yuan(cap))],
            );
        }
        if let (true, Some(draw_at)) = (arm_draw, draw_at) {
            let lot = self.lotteries.get_mut(l);
            lot.lt05_generation += 1;
            let generation = lot.lt05_generation;
            let due = draw_at.plus_ms(i64::from(self.rules.thresholds.draw_grace_hours) * HOUR_MS);
            self.set_deadline(due, Due::Lt05Draw, l, generation);
        }
    }

    pub(crate) fn lottery_entered(&mut self, lottery: &str, participant: &str) {
        let l = self.lotteries.entry(lottery);
        let p = pid(participant);
        let lot = self.lotteries.get_mut(l);
        let eligible = !lot.closed;
        if let std::collections::hash_map::Entry::Vacant(v) = lot.entrants.entry(p) {
            v.insert(eligible);
            lot.entry_order.push(p);
            lot.entrant_ids.push(participant);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn lottery_drawn(
        &mut self,
        id: &str,
        at: Time,
        lottery: &str,
        winners: &[Winner],
        seed: Option<&str>,
        beacon_signature: Option<&str>,
    ) {
        let l = self.lotteries.entry(lottery);
        let ws: Vec<Drawn> = winners
            .iter()
            .map(|w| Drawn {
                pid: pid(&w.participant),
                participant: (*w.participant).into(),
                prize: (*w.prize).into(),
            })
            .collect();
        let lot = self.lotteries.get(l);
        let m = lot.merchant;
        let subject = self.lottery_subject(l);
        let events: Vec<String> = lot
            .announced
            .iter()
            .map(|e| e.to_string())
            .chain([id.to_owned()])
            .collect();
        // Messy streams 8: this draw's entrants are those entered before the close (or before it).
        let entrants: Vec<&str> = lot.eligible_ids().collect();

        // LT-04: the first ineligible winner (a prize never announced only once there are terms).
        let announced = lot.announced.is_some();
        let ineligible = ws
            .iter()
            .find(|w| !lot.eligible(w.pid) || (announced && !lot.ever_prizes.iter().any(|(name, _)| *name == w.prize)));
        let lt04 = ineligible.map(|w| w.participant.to_string());

        // LT-08: prizes withheld although enough eligible participants entered (winners of all draws).
        let prizes = lot.terms.prizes.as_deref().map_or(0, prize_count);
        let all_winners = lot.draws.iter().map(|d| d.winners.len()).sum::<usize>() + ws.len();
        let lt08 = (all_winners as u64) < prizes && entrants.len() as u64 >= prizes;

        // LT-10: a committed draw must reveal the committed seed, and its winners must be
        // the ones weiquan's published algorithm gives for that seed and the entrants.
        let check: Option<Result<(), String>> = lot.terms.commitment.as_deref().map(|c| match seed {
            None => Err("no seed revealed".to_owned()),
            Some(s) if crate::draw::commitment(s) != c => {
                Err("SHA-256 of the revealed seed differs from the commitment".to_owned())
            }
            Some(s) => {
                let prizes: Vec<(&str, u32)> = lot
                    .terms
                    .prizes
                    .iter()
                    .flatten()
                    .map(|p| (p.name.as_deref().unwrap_or(""), p.count.unwrap_or(0)))
                    .collect();
                let expected = crate::draw::winners(s, lot.terms.beacon_round, beacon_signature, &entrants, &prizes)?;
                let actual: Vec<(&str, &str)> = ws.iter().map(|w| (&*w.participant, &*w.prize)).collect();
                if expected == actual {
                    Ok(())
                } else {
                    Err(format!(
                        "winners differ from {} for the revealed seed and the {} entrants",
                        crate::draw::ALGORITHM,
                        entrants.len()
                    ))
                }
            }
        });
        let lt10 = check.clone().and_then(Result::err);
        let entrant_count = entrants.len();
        if let Some(p) = lt04 {
            self.emit(
                RuleId::Lt04,
                subject.clone(),
                m,
                at,
                events.clone(),
                vec![("participant", p)],
            );
        }
        if lt08 {
            self.emit(
                RuleId::Lt08,
                subject.clone(),
                m,
                at,
                events.clone(),
                vec![("prizes", prizes.to_string()), ("winners", all_winners.to_string())],
            );
        }
        if let Some(problem) = lt10 {
            self.emit(RuleId::Lt10, subject, m, at, events, vec![("problem", problem)]);
        }
        let entered = self.lotteries.get(l).entry_order.len();
        let lt09_counted = m.is_some();
        if let Some(m) = m {
            self.repeat_winners(m, l, &ws, entrant_count, entered, Some((id, at)));
        }

        let deliver = self
            .lotteries
            .get(l)
            .terms
            .deliver_within_days
            .unwrap_or(self.rules.thresholds.prize_default_deliver_days);
        let lot = self.lotteries.get_mut(l);
        lot.draws.push(DrawRecord {
            event: id.into(),
            winners: ws,
            entrants: u32::try_from(entrant_count).unwrap_or(u32::MAX),
            entered: u32::try_from(entered).unwrap_or(u32::MAX),
            lt09_counted,
            check: check.map(|c| c.map_err(String::into_boxed_str)),
        });
        let generation = u32::try_from(lot.draws.len()).unwrap_or(u32::MAX);
        self.set_deadline(at.plus_days(deliver), Due::Lt06Prizes, l, generation);
    }

    /// LT-09: adds a draw of lottery `l` to merchant `m`'s statistics: each of the
    /// first `entered` participants' expectation and each winner's wins (every
    /// draw counts; one with no entrants adds nothing). `checked`: the draw's
    /// event and time when it is being processed now, and its winners are checked
    /// (LT-09 is checked after each draw); `None` for a draw counted later.
    fn repeat_winners(
        &mut self,
        m: MerchantIx,
        l: LotteryIx,
        ws: &[Drawn],
        entrants: usize,
        entered: usize,
        checked: Option<(&str, Time)>,
    ) {
        if entrants == 0 {
            return;
        }
        let lot = self.lotteries.get(l);
        let share = ws.len() as f64 / entrants as f64;
        let max_p = self.rules.thresholds.repeat_winner_max_p;
        let stats = &mut self.merchants.get_mut(m).credit.wins;
        for p in lot.entry_order.iter().take(entered) {
            stats.entry(*p).or_default().expected += share;
        }
        let mut flagged = Vec::new();
        // Entered by the draw: for a draw counted late, among the first `entered`.
        let had_entered = |p: u64| {
            lot.entrants.contains_key(&p)
                && (entered >= lot.entry_order.len() || lot.entry_order[..entered].contains(&p))
        };
        for w in ws {
            if !had_entered(w.pid) {
                continue; // LT-04's, not counted here
            }
            let r = stats.entry(w.pid).or_default();
            r.wins += 1;
            if checked.is_some() && !r.fired {
                let tail = poisson_tail(r.expected, r.wins);
                if tail < max_p {
                    r.fired = true;
                    flagged.push((w.participant.to_string(), *r, tail));
                }
            }
        }
        let Some((id, at)) = checked else { return };
        for (p, r, tail) in flagged {
            let facts = vec![
                ("participant", p),
                ("wins", r.wins.to_string()),
                ("expected", format!("{:.3}", r.expected)),
                ("p", format!("{tail:.2e}")),
            ];
            self.emit(
                RuleId::Lt09,
                self.merchant_subject(m),
                Some(m),
                at,
                vec![id.into()],
                facts,
            );
        }
    }

    /// Messy streams 2: draws processed before the lottery had a merchant are
    /// facts of the merchant it now has; they join its LT-09 statistics, to be
    /// checked at its next draw.
    fn count_earlier_draws(&mut self, m: MerchantIx, l: LotteryIx) {
        let pending: Vec<(Vec<Drawn>, u32, u32)> = (self.lotteries.get_mut(l).draws.iter_mut())
            .filter(|d| !d.lt09_counted)
            .map(|d| {
                d.lt09_counted = true;
                (d.winners.clone(), d.entrants, d.entered)
            })
            .collect();
        for (ws, entrants, entered) in pending {
            self.repeat_winners(m, l, &ws, entrants as usize, entered as usize, None);
        }
    }

    pub(crate) fn lt05_due(&mut self, d: Deadline) {
        let lot = self.lotteries.get(d.target());
        if !lot.draws.is_empty() || lot.cancelled || lot.lt05_generation != d.generation {
            return;
        }
        let draw_at = lot.terms.draw_at.map(|t| t.to_string()).unwrap_or_default();
        let events = lot.announced.iter().map(|e| e.to_string()).collect();
        let m = lot.merchant;
        self.emit(
            RuleId::Lt05,
            self.lottery_subject(d.target()),
            m,
            d.due,
            events,
            vec![("due", d.due.to_string()), ("draw_at", draw_at)],
        );
    }

    /// LT-06 for draw number `d.generation`: each prize won in it is owed a
    /// shipment naming that prize, counting what earlier draws owe the same winner.
    pub(crate) fn lt06_due(&mut self, d: Deadline) {
        let lot = self.lotteries.get(d.target());
        let Some(upto) = lot.draws.get(..d.generation as usize) else {
            return;
        };
        let Some(this) = upto.last() else {
            return;
        };
        let owed = |w: &Drawn| {
            upto.iter()
                .flat_map(|dr| &dr.winners)
                .filter(|x| x.pid == w.pid && x.prize == w.prize)
                .count()
        };
        let Some(unsent) = this.winners.iter().find(|w| (lot.shipments(w) as usize) < owed(w)) else {
            return;
        };
        let facts = vec![
            ("participant", unsent.participant.to_string()),
            ("due", d.due.to_string()),
        ];
        let events = vec![this.event.to_string()];
        let m = lot.merchant;
        self.emit(RuleId::Lt06, self.lottery_subject(d.target()), m, d.due, events, facts);
    }

    /// `lottery.prize_delivered`: the participant's prize reached them (shown
    /// beside the winners; no rule reads it).
    pub(crate) fn prize_delivered(&mut self, lottery: &str, participant: &str) {
        let l = self.lotteries.entry(lottery);
        self.lotteries.get_mut(l).delivered.insert(pid(participant));
    }

    pub(crate) fn prize_shipped(
        &mut self,
        id: &str,
        at: Time,
        lottery: &str,
        participant: &str,
        prize: &str,
        value_fen: u64,
    ) {
        let l = self.lotteries.entry(lottery);
        let p = pid(participant);
        let lot = self.lotteries.get_mut(l);
        *lot.shipped.entry((p, prize.into())).or_insert(0) += 1;
        // Messy streams 2: with no announcement there is nothing to compare with.
        if lot.announced.is_none() {
            return;
        }
        let known = lot.ever_prizes.iter().find(|(name, _)| &**name == prize);
        let announced_value = known.and_then(|(_, v)| *v);
        let short = announced_value.is_some_and(|v| value_fen < v);
        if known.is_none() || short {
            let m = lot.merchant;
            let announced = announced_value.map_or_else(|| "—".to_owned(), yuan);
            self.emit(
                RuleId::Lt07,
                self.lottery_subject(l),
                m,
                at,
                vec![id.into()],
                vec![
                    ("prize", prize.into()),
                    ("shipped", yuan(value_fen)),
                    ("announced", announced),
                ],
            );
        }
    }
}

/// What the API shows of a lottery.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LotteryView {
    /// Organising merchant.
    pub merchant: Option<String>,
    /// Hex SHA-256 of the draw seed, when committed.
    pub commitment: Option<String>,
    /// drand quicknet round mixed into the seed, when one was fixed.
    pub beacon_round: Option<u64>,
    /// Prizes in effect: name, value in fen, count.
    pub prizes: Vec<(String, u64, u32)>,
    /// Participants who entered before the close (or the draw), in entry order: the draw's
    /// entrants (listed for committed lotteries only).
    pub entrants: Vec<String>,
    /// How many entered before the close.
    pub entrant_count: usize,
    /// Entries after the close.
    pub late_entries: usize,
    /// Whether it was closed, drawn, cancelled.
    pub closed: bool,
    /// Drawn.
    pub drawn: bool,
    /// Cancelled.
    pub cancelled: bool,
    /// The `lottery.drawn` event of every draw, in order.
    pub draws: Vec<String>,
    /// Winners of the latest draw.
    pub winners: Vec<WinnerView>,
    /// The latest draw recomputed when it was recorded (LT-10, with
    /// [`crate::draw::ALGORITHM`]): `None` when not drawn or not committed
    /// (nothing to check against), else what is wrong, if anything.
    pub verified: Option<Result<(), String>>,
}

/// A live-stream host as the engine knows it: its standing in the registry
/// and the lotteries that named it. Its display name is personal data and
/// is not kept.
#[derive(Clone, Debug, PartialEq)]
pub struct HostView {
    /// Where it stands now.
    pub standing: HostStanding,
    /// Since when (the date of the event that set it; `None` when only
    /// lotteries named it).
    pub since: Option<Time>,
    /// The merchant it registered as streaming for.
    pub merchant: Option<String>,
    /// The latest verification's method (`id_check`, `digital_id`, `manual`).
    pub method: Option<&'static str>,
    /// Lotteries that named it, in the order they did.
    pub lotteries: Vec<String>,
}

/// A winner of a lottery's latest draw: participant, prize, how many of
/// that prize were shipped to them so far, and whether a delivery to them
/// was recorded.
pub type WinnerView = (String, String, u32, bool);

impl Engine {
    /// A host as the engine knows it, `None` if no event named it.
    pub fn host(&self, id: &str) -> Option<HostView> {
        let h = self.hosts.get(self.hosts.find(id)?);
        Some(HostView {
            standing: h.standing(),
            since: h.since,
            merchant: h.merchant.map(|m| self.merchants.id(m).to_owned()),
            method: h.method,
            lotteries: h.lotteries.iter().map(str::to_owned).collect(),
        })
    }

    /// A lottery as the engine knows it, `None` if never seen.
    pub fn lottery(&self, id: &str) -> Option<LotteryView> {
        let l = self.lotteries.find(id)?;
        let lot = self.lotteries.get(l);
        Some(LotteryView {
            merchant: lot.merchant.map(|m| self.merchants.id(m).to_owned()),
            commitment: lot.terms.commitment.as_deref().map(str::to_owned),
            beacon_round: lot.terms.beacon_round,
            prizes: lot
                .terms
                .prizes
                .iter()
                .flatten()
                .map(|p| {
                    (
                        p.name.as_deref().unwrap_or("").to_owned(),
                        p.value_fen.unwrap_or(0),
                        p.count.unwrap_or(0),
                    )
                })
                .collect(),
            entrants: match lot.terms.commitment {
                Some(_) => lot.eligible_ids().map(str::to_owned).collect(),
                None => Vec::new(),
            },
            entrant_count: lot.entry_order.iter().filter(|p| lot.eligible(**p)).count(),
            late_entries: lot.entry_order.iter().filter(|p| !lot.eligible(**p)).count(),
            closed: lot.closed,
            drawn: !lot.draws.is_empty(),
            cancelled: lot.cancelled,
            draws: lot.draws.iter().map(|d| d.event.to_string()).collect(),
            winners: self.lottery_winners(l),
            verified: (lot.draws.last())
                .and_then(|d| d.check.clone())
                .map(|c| c.map_err(String::from)),
        })
    }

    /// A lottery's merchant and the winners of its latest draw (participant,
    /// prize, shipments so far), without the rest of its view: what masking
    /// a public page's findings needs.
    pub fn lottery_public(&self, id: &str) -> Option<(Option<String>, Vec<WinnerView>)> {
        let l = self.lotteries.find(id)?;
        let merchant = self.lotteries.get(l).merchant.map(|m| self.merchants.id(m).to_owned());
        Some((merchant, self.lottery_winners(l)))
    }

    fn lottery_winners(&self, l: LotteryIx) -> Vec<WinnerView> {
        let lot = self.lotteries.get(l);
        (lot.draws.last().map(|d| &d.winners[..]).unwrap_or_default().iter())
            .map(|w| {
                (
                    w.participant.to_string(),
                    w.prize.to_string(),
                    lot.shipments(w),
                    lot.delivered.contains(&w.pid),
                )
            })
            .collect()
    }
}
