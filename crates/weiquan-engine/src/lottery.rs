//! Live-stream lotteries (直播抽奖): LT-01..10.
//!
//! Entrants are remembered until the draw (LT-04, LT-08, LT-09 need them), then
//! only the winners and what was shipped to them. LT-09's per-participant
//! expectation is accumulated per merchant at each draw.

use crate::merchant::make_subject;
use crate::poisson::poisson_tail;
use crate::table::pid;
use crate::{yuan, Deadline, DeadlineKind, Engine, RuleId};
use rustc_hash::FxHashMap;
use weiquan_events::{LotteryTerms, Prize, Str, Time, Winner, HOUR_MS};

/// A lottery and its draw.
#[derive(Default)]
pub(crate) struct Lottery {
    pub merchant: Option<u32>,
    pub announced: Option<Box<str>>,
    pub terms: LotteryTerms<'static>,
    pub ever_prizes: Vec<Box<str>>,
    pub over_cap: bool,
    /// Participant → entered before the close (eligible).
    pub entrants: FxHashMap<u64, bool>,
    /// Entrants in order of first entry (deterministic iteration).
    pub entry_order: Vec<u64>,
    /// Their ids, in the same order, when the lottery is committed (to check the draw and prove entries).
    pub entrant_ids: Vec<(u64, Box<str>)>,
    pub closed: bool,
    pub drawn: bool,
    /// The `lottery.drawn` event of the last draw.
    pub draw_event: Option<Box<str>>,
    pub cancelled: bool,
    pub draw_generation: u32,
    /// Winners of the last draw: participant, prize.
    pub winners: Vec<Drawn>,
    /// Prizes shipped per participant.
    pub shipped: FxHashMap<u64, u32>,
    pub lt06_fired: bool,
}

/// One winner of a draw: the participant's key and id, and the prize.
pub(crate) struct Drawn {
    pub pid: u64,
    pub participant: Box<str>,
    pub prize: Box<str>,
}

/// A participant's record in one merchant's lotteries (LT-09).
#[derive(Default, Clone, Copy)]
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
        commitment,
        beacon_round
    );
}

impl Engine {
    fn lottery_subject(&self, l: u32) -> String {
        make_subject("lottery", self.lotteries.id(l))
    }

    pub(crate) fn lottery_announced(&mut self, id: &str, at: Time, lottery: &str, terms: &LotteryTerms) {
        let l = self.lotteries.entry(lottery);
        if self.lotteries.get(l).announced.is_some() {
            return self.lottery_changed(id, at, lottery, terms);
        }
        self.lotteries.get_mut(l).announced = Some(id.into());
        self.set_lottery_terms(l, terms);
        let missing = missing_disclosures(&self.lotteries.get(l).terms);
        if !missing.is_empty() {
            let m = self.lotteries.get(l).merchant;
            self.emit(
                RuleId::Lt01,
                self.lottery_subject(l),
                m,
                at,
                vec![id.into()],
                vec![("missing", missing.join(", "))],
            );
        }
        self.lottery_checks(id, at, l, true);
    }

    pub(crate) fn lottery_changed(&mut self, id: &str, at: Time, lottery: &str, changes: &LotteryTerms) {
        let l = self.lotteries.entry(lottery);
        let worse = detriments(&self.lotteries.get(l).terms, changes);
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
        let moved_draw = changes.draw_at.is_some() && changes.draw_at != self.lotteries.get(l).terms.draw_at;
        self.set_lottery_terms(l, changes);
        self.lottery_checks(id, at, l, moved_draw);
    }

    fn set_lottery_terms(&mut self, l: u32, t: &LotteryTerms) {
        let m = t.merchant.as_deref().map(|m| self.merchants.entry(m));
        let lot = self.lotteries.get_mut(l);
        lot.merchant = m.or(lot.merchant);
        merge_terms(&mut lot.terms, t);
        for name in t.prizes.iter().flatten().filter_map(|p| p.name.as_deref()) {
            if !lot.ever_prizes.iter().any(|e| &**e == name) {
                lot.ever_prizes.push(name.into());
            }
        }
    }

    /// LT-03 on the prizes in effect; a (re)set draw time arms LT-05.
    fn lottery_checks(&mut self, id: &str, at: Time, l: u32, arm_draw: bool) {
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
                vec![("prize", prize.to_string()), ("value", yuan(value))],
            );
        }
        if let (true, Some(draw_at)) = (arm_draw, draw_at) {
            let lot = self.lotteries.get_mut(l);
            lot.draw_generation += 1;
            let generation = lot.draw_generation;
            let due = draw_at.plus_ms(i64::from(self.rules.thresholds.draw_grace_hours) * HOUR_MS);
            self.deadlines.set(due, DeadlineKind::Lt05Draw, l, generation);
        }
    }

    pub(crate) fn lottery_entered(&mut self, lottery: &str, participant: &str) {
        let l = self.lotteries.entry(lottery);
        let p = pid(participant);
        let lot = self.lotteries.get_mut(l);
        if lot.drawn {
            return; // entries after the draw change nothing that was drawn
        }
        let eligible = !lot.closed;
        if let std::collections::hash_map::Entry::Vacant(v) = lot.entrants.entry(p) {
            v.insert(eligible);
            lot.entry_order.push(p);
            // Ids are kept only where a committed draw will need them (LT-10, entry proofs).
            if lot.terms.commitment.is_some() {
                lot.entrant_ids.push((p, participant.into()));
            }
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
        let events = || {
            lot.announced
                .iter()
                .map(|e| e.to_string())
                .chain([id.to_owned()])
                .collect::<Vec<_>>()
        };

        // LT-04: the first ineligible winner.
        let ineligible = ws
            .iter()
            .find(|w| lot.entrants.get(&w.pid) != Some(&true) || !lot.ever_prizes.contains(&w.prize));
        let lt04 = ineligible.map(|w| w.participant.to_string());

        // LT-08: prizes withheld although enough eligible participants entered.
        let announced = lot.terms.prizes.as_deref().map_or(0, prize_count);
        let eligible = lot.entrants.values().filter(|&&e| e).count() as u64;
        let lt08 = (ws.len() as u64) < announced && eligible >= announced;

        // LT-10: a committed draw must reveal the committed seed, and its winners must be
        // the ones weiquan's published algorithm gives for that seed and the entrants.
        let lt10 = lot.terms.commitment.as_deref().and_then(|c| match seed {
            None => Some("no seed revealed".to_owned()),
            Some(s) if crate::draw::commitment(s) != c => {
                Some("SHA-256 of the revealed seed differs from the commitment".to_owned())
            }
            Some(s) => {
                let eligible: Vec<&str> = lot
                    .entrant_ids
                    .iter()
                    .filter(|(p, _)| lot.entrants.get(p) == Some(&true))
                    .map(|(_, id)| &**id)
                    .collect();
                let prizes: Vec<(&str, u32)> = lot
                    .terms
                    .prizes
                    .iter()
                    .flatten()
                    .map(|p| (p.name.as_deref().unwrap_or(""), p.count.unwrap_or(0)))
                    .collect();
                let expected =
                    match crate::draw::winners(s, lot.terms.beacon_round, beacon_signature, &eligible, &prizes) {
                        Ok(w) => w,
                        Err(problem) => return Some(problem),
                    };
                let actual: Vec<(&str, &str)> = ws.iter().map(|w| (&*w.participant, &*w.prize)).collect();
                (expected != actual).then(|| {
                    format!(
                        "winners differ from {} for the revealed seed and the {} entrants",
                        crate::draw::ALGORITHM,
                        eligible.len()
                    )
                })
            }
        });
        let ev = events();
        let winners_n = ws.len();
        if let Some(p) = lt04 {
            self.emit(
                RuleId::Lt04,
                subject.clone(),
                m,
                at,
                ev.clone(),
                vec![("participant", p)],
            );
        }
        if lt08 {
            self.emit(
                RuleId::Lt08,
                subject.clone(),
                m,
                at,
                ev.clone(),
                vec![("prizes", announced.to_string()), ("winners", winners_n.to_string())],
            );
        }
        if let Some(problem) = lt10 {
            self.emit(RuleId::Lt10, subject, m, at, ev, vec![("problem", problem)]);
        }
        self.repeat_winners(id, at, l, &ws);

        let deliver = self
            .lotteries
            .get(l)
            .terms
            .deliver_within_days
            .unwrap_or(self.rules.thresholds.prize_default_deliver_days);
        let lot = self.lotteries.get_mut(l);
        lot.drawn = true;
        lot.draw_event = Some(id.into());
        lot.winners = ws;
        lot.lt06_fired = false;
        lot.draw_generation += 1;
        let generation = lot.draw_generation;
        self.deadlines
            .set(at.plus_days(deliver), DeadlineKind::Lt06Prizes, l, generation);
    }

    /// LT-09: adds this draw to each entrant's expectation and each winner's wins.
    fn repeat_winners(&mut self, id: &str, at: Time, l: u32, ws: &[Drawn]) {
        let lot = self.lotteries.get(l);
        let Some(m) = lot.merchant else { return };
        if lot.entry_order.is_empty() || lot.drawn {
            return;
        }
        let share = ws.len() as f64 / lot.entry_order.len() as f64;
        let max_p = self.rules.thresholds.repeat_winner_max_p;
        let stats = &mut self.merchants.get_mut(m).credit.wins;
        for p in &lot.entry_order {
            stats.entry(*p).or_default().expected += share;
        }
        let mut flagged = Vec::new();
        for w in ws {
            if !lot.entrants.contains_key(&w.pid) {
                continue; // LT-04's, not counted here
            }
            let r = stats.entry(w.pid).or_default();
            r.wins += 1;
            if !r.fired {
                let tail = poisson_tail(r.expected, r.wins);
                if tail < max_p {
                    r.fired = true;
                    flagged.push((w.participant.to_string(), *r, tail));
                }
            }
        }
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

    pub(crate) fn lt05_due(&mut self, d: Deadline) {
        let lot = self.lotteries.get(d.target);
        if lot.drawn || lot.cancelled || lot.draw_generation != d.generation {
            return;
        }
        let draw_at = lot.terms.draw_at.map(|t| t.to_string()).unwrap_or_default();
        let events = lot.announced.iter().map(|e| e.to_string()).collect();
        let m = lot.merchant;
        self.emit(
            RuleId::Lt05,
            self.lottery_subject(d.target),
            m,
            d.due,
            events,
            vec![("due", d.due.to_string()), ("draw_at", draw_at)],
        );
    }

    pub(crate) fn lt06_due(&mut self, d: Deadline) {
        let lot = self.lotteries.get(d.target);
        if lot.lt06_fired || lot.draw_generation != d.generation {
            return;
        }
        let mut owed: FxHashMap<u64, u32> = FxHashMap::default();
        let mut unsent = None;
        for w in &lot.winners {
            let won = owed.entry(w.pid).or_insert(0);
            *won += 1;
            if lot.shipped.get(&w.pid).copied().unwrap_or(0) < *won {
                unsent = Some(w.participant.to_string());
                break;
            }
        }
        let Some(participant) = unsent else { return };
        let m = lot.merchant;
        let events = lot.draw_event.iter().map(|e| e.to_string()).collect();
        self.lotteries.get_mut(d.target).lt06_fired = true;
        self.emit(
            RuleId::Lt06,
            self.lottery_subject(d.target),
            m,
            d.due,
            events,
            vec![("participant", participant), ("due", d.due.to_string())],
        );
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
        *lot.shipped.entry(p).or_insert(0) += 1;
        let announced_value = lot
            .terms
            .prizes
            .iter()
            .flatten()
            .find(|x| x.name.as_deref() == Some(prize))
            .and_then(|x| x.value_fen);
        let known = lot.ever_prizes.iter().any(|e| &**e == prize);
        let short = announced_value.is_some_and(|v| value_fen < v);
        if !known || short {
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
    /// Winners of the draw: participant, prize, prizes shipped to them so far.
    pub winners: Vec<(String, String, u32)>,
}

impl Engine {
    /// A lottery as the engine knows it, `None` if never seen.
    pub fn lottery(&self, id: &str) -> Option<LotteryView> {
        let l = self.lotteries.find(id)?;
        let lot = self.lotteries.get(l);
        let eligible = |p: &u64| lot.entrants.get(p) == Some(&true);
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
            entrants: lot
                .entrant_ids
                .iter()
                .filter(|(p, _)| eligible(p))
                .map(|(_, id)| id.to_string())
                .collect(),
            entrant_count: lot.entry_order.iter().filter(|p| eligible(p)).count(),
            late_entries: lot.entry_order.iter().filter(|p| !eligible(p)).count(),
            closed: lot.closed,
            drawn: lot.drawn,
            cancelled: lot.cancelled,
            winners: lot
                .winners
                .iter()
                .map(|w| {
                    (
                        w.participant.to_string(),
                        w.prize.to_string(),
                        lot.shipped.get(&w.pid).copied().unwrap_or(0),
                    )
                })
                .collect(),
        })
    }
}
