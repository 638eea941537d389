//! Credit grades and the blacklist (rulebook, "Credit grades and blacklist").
//!
//! Every finding that belongs to a merchant is recorded here as it is emitted.
//! The blacklist is decided at that moment; the grade is computed on request
//! from running counts, so asking for it never changes the engine's state.

use crate::lottery::WinRecord;
use crate::table::MerchantIx;
use crate::{Engine, RuleId, Severity};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::VecDeque;
use weiquan_events::{Time, DAY_MS};

/// First-reply time buckets, upper bounds in minutes; the last bucket is "slower".
const REPLY_BUCKETS: [i64; 9] = [1, 5, 15, 30, 60, 120, 240, 480, 1440];

/// A merchant's record for grading and blacklisting.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct CreditState {
    /// Findings that still weigh on the grade.
    pub recent: Decaying,
    /// High-severity pairs reported since the last lift, in first-reported order.
    pub high: Vec<HighPair>,
    pub blacklist: Option<BlacklistState>,
    pub orders: u32,
    pub complaints: u32,
    pub shipped_on_time: u32,
    pub shipped_late: u32,
    pub reply_minutes: [u32; REPLY_BUCKETS.len() + 1],
    /// LT-09 per participant.
    pub wins: FxHashMap<u64, WinRecord>,
    /// The grade as last reviewed (`None`: not rated yet).
    pub letter: Option<char>,
    /// Whether an input of the grade changed since the last review.
    pub touched: bool,
    /// The latest changes of grade, oldest first (at most [`HISTORY`]).
    pub history: VecDeque<GradeChange>,
    /// Changes dropped from the front of `history`.
    pub history_dropped: u64,
    /// Blacklistings that were lifted, oldest first (at most [`HISTORY`]).
    pub lifted: VecDeque<Lifted>,
}

/// A blacklisting that a regulator lifted: what it was and the lift.
#[derive(Clone, Debug, Serialize, PartialEq, serde::Deserialize)]
pub struct Lifted {
    /// The blacklisting.
    pub blacklisting: Blacklisting,
    /// When it was lifted (business time).
    pub at: Time,
    /// The `merchant.blacklist_lifted` event.
    pub event: String,
    /// The reason the regulator gave.
    pub reason: String,
}

/// Changes of grade kept per merchant: a merchant whose score hovers at a
/// threshold changes grade often, and memory must not grow with it.
const HISTORY: usize = 256;

/// Findings weighing on a grade, oldest first, with the running sums of
/// their weights and of weight × time: a finding's weight falls linearly to
/// zero over the decay period, so the penalty of all of them at time `now`
/// is `W − (now·W − WT) / decay`, one step instead of one per finding
/// (grades are reviewed at every order). Integers (thousandths of a point,
/// ms), so the sums are exact and every reader gets the same score.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Decaying {
    entries: VecDeque<(i64, i64)>,
    w: i64,
    wt: i128,
}

impl Decaying {
    /// Adds a finding at `t` (ms) weighing `w` thousandths of a point.
    fn push(&mut self, t: i64, w: i64) {
        // Findings arrive in time order but for late events (Messy streams 1).
        let at = self.entries.iter().rposition(|e| e.0 <= t).map_or(0, |i| i + 1);
        self.entries.insert(at, (t, w));
        self.w += w;
        self.wt += i128::from(w) * i128::from(t);
    }

    /// Drops the findings at or before `horizon` (ms): they weigh nothing.
    fn expire(&mut self, horizon: i64) {
        while let Some(&(t, w)) = self.entries.front().filter(|e| e.0 <= horizon) {
            self.entries.pop_front();
            self.w -= w;
            self.wt -= i128::from(w) * i128::from(t);
        }
    }

    /// How many findings weigh at `now`, and the points they cost.
    fn penalty(&self, now: i64, decay: i64) -> (usize, f64) {
        let (mut n, mut w, mut wt) = (self.entries.len(), self.w, self.wt);
        // Those expired since the last review, not dropped yet (reads do not change state).
        for &(t, tw) in self.entries.iter().take_while(|e| e.0 <= now - decay) {
            n -= 1;
            w -= tw;
            wt -= i128::from(tw) * i128::from(t);
        }
        let weight = i128::from(w) * i128::from(decay) - (i128::from(now) * i128::from(w) - wt);
        (n, weight as f64 / (decay as f64 * 1000.0))
    }
}

/// The live blacklist entry of a merchant.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct BlacklistState {
    pub at: Time,
    /// Engine sequence number of the event that completed it.
    pub seq: u64,
    pub reasons: Vec<(RuleId, String)>,
    pub mc11_fired: bool,
}

impl CreditState {
    /// Lifts the blacklist (if any), keeping the lifted one in `lifted`: the
    /// findings behind it no longer count toward another.
    pub fn lift_blacklist(&mut self, at: Time, event: &str, reason: &str) {
        if let Some(b) = self.blacklist.take() {
            if self.lifted.len() == HISTORY {
                self.lifted.pop_front();
            }
            self.lifted.push_back(Lifted {
                blacklisting: Blacklisting {
                    at: b.at,
                    findings: b.reasons,
                },
                at,
                event: event.to_owned(),
                reason: reason.to_owned(),
            });
        }
        self.high.clear();
    }

    pub fn record_first_reply(&mut self, minutes: i64) {
        let b = REPLY_BUCKETS
            .iter()
            .position(|&ub| minutes <= ub)
            .unwrap_or(REPLY_BUCKETS.len());
        self.reply_minutes[b] += 1;
    }

    /// Upper bound (minutes) of the bucket holding the median first reply; `None` without replies.
    fn median_reply_minutes(&self) -> Option<i64> {
        let total: u32 = self.reply_minutes.iter().sum();
        if total == 0 {
            return None;
        }
        let mut seen = 0;
        for (i, n) in self.reply_minutes.iter().enumerate() {
            seen += n;
            if seen * 2 >= total {
                return Some(REPLY_BUCKETS.get(i).copied().unwrap_or(i64::MAX));
            }
        }
        None
    }
}

/// Why a merchant is blacklisted.
#[derive(Clone, Debug, Serialize, PartialEq, serde::Deserialize)]
pub struct Blacklisting {
    /// When the blacklist took effect.
    pub at: Time,
    /// The findings behind it, as `(rule, subject)`.
    pub findings: Vec<(RuleId, String)>,
}

/// A credit grade with every factor behind it and its history.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Grade {
    /// `A` (best) to `E`; `None`: not rated yet (fewer orders than the
    /// rulebook's `min_orders_to_rate`, and not blacklisted).
    pub grade: Option<char>,
    /// 0–100 score behind the letter (rounded to 0.1).
    pub score: f64,
    /// Orders so far.
    pub orders: u32,
    /// The rulebook's `min_orders_to_rate`.
    pub min_orders: u32,
    /// Every factor, in the order of `docs/credit.md`, with its value and the points it costs.
    pub factors: Vec<Factor>,
    /// The latest changes of grade, oldest first.
    pub history: Vec<GradeChange>,
    /// Earlier changes not kept.
    pub history_dropped: u64,
}

/// What a factor of the grade measures.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    /// Findings against the merchant, weighted by severity and decaying.
    Findings,
    /// Complaints per order.
    Complaints,
    /// Share of orders shipped late.
    LateShipping,
    /// Median first reply in service conversations.
    SlowReply,
}

impl FactorKind {
    /// The name the API writes.
    pub fn as_str(self) -> &'static str {
        match self {
            FactorKind::Findings => "findings",
            FactorKind::Complaints => "complaints",
            FactorKind::LateShipping => "late_shipping",
            FactorKind::SlowReply => "slow_reply",
        }
    }
}

/// One factor of a grade.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Factor {
    /// What it measures.
    pub kind: FactorKind,
    /// Its value: findings weighing now; complaints per 100 orders; percent
    /// of shipped orders late; the median first reply's bucket in minutes
    /// (`-1` without replies, `null` when slower than the last bucket).
    pub value: Option<f64>,
    /// Score points it costs (0 when none).
    pub points: f64,
}

impl Factor {
    /// The factor in words, in `lang`, with the rulebook's numbers.
    pub fn describe(&self, cfg: &crate::rulebook::Credit, lang: crate::Lang) -> String {
        use crate::Lang::{En, Zh};
        let v = self
            .value
            .map_or_else(|| "∞".to_owned(), |v| format!("{}", (v * 10.0).round() / 10.0));
        let p = format!("{:.1}", self.points);
        match (self.kind, lang) {
            (FactorKind::Findings, Zh) => format!(
                "近 {} 天内的违规发现 {v} 条，扣 {p} 分（按严重程度加权，随时间递减）",
                cfg.decay_days
            ),
            (FactorKind::Findings, En) => format!(
                "{v} findings in the last {} days: −{p} points (weighted by severity, fading over time)",
                cfg.decay_days
            ),
            (FactorKind::Complaints, Zh) => format!("每百单投诉 {v} 起，扣 {p} 分（最多扣 20 分）"),
            (FactorKind::Complaints, En) => format!("{v} complaints per 100 orders: −{p} points (at most 20)"),
            (FactorKind::LateShipping, Zh) => format!("{v}% 的订单延迟发货，扣 {p} 分"),
            (FactorKind::LateShipping, En) => format!("{v}% of orders shipped late: −{p} points"),
            (FactorKind::SlowReply, _) if self.value.is_some_and(|m| m < 0.0) => match lang {
                Zh => "尚无客服首次回复记录，不扣分".to_owned(),
                En => "no first replies in service conversations yet: no points".to_owned(),
            },
            (FactorKind::SlowReply, Zh) => format!(
                "客服首次回复中位数不超过 {v} 分钟（超过 {} 小时扣 {} 分），扣 {p} 分",
                cfg.slow_reply_hours, cfg.slow_reply_penalty
            ),
            (FactorKind::SlowReply, En) => format!(
                "median first reply within {v} minutes (slower than {} hours costs {} points): −{p} points",
                cfg.slow_reply_hours, cfg.slow_reply_penalty
            ),
        }
    }
}

/// A change of a merchant's grade and the event that caused it.
#[derive(Clone, Debug, Serialize, PartialEq, serde::Deserialize)]
pub struct GradeChange {
    /// The business time it changed at.
    pub at: Time,
    /// The id of the event whose processing changed it (a deadline passed by
    /// that event's time counts as it), or `clock` when the clock was advanced alone.
    pub event: Box<str>,
    /// The grade before (`None`: not rated yet).
    pub from: Option<char>,
    /// The grade after.
    pub to: Option<char>,
    /// The score after.
    pub score: f64,
}

/// A merchant's grade and blacklist state.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MerchantStanding {
    /// Merchant id.
    pub merchant: String,
    /// Credit grade.
    pub grade: Grade,
    /// Blacklist entry, when blacklisted.
    pub blacklisted: Option<Blacklisting>,
    /// Earlier blacklistings and their lifts, oldest first.
    pub lifted: Vec<Lifted>,
}

/// One high-severity `(rule, subject)` pair of a merchant and the times it was reported.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct HighPair {
    pub rule: RuleId,
    pub subject: Box<str>,
    /// Sorted by time; all are kept, since a finding dated earlier may still
    /// complete a window with them (Messy streams 1).
    pub times: Vec<Time>,
}

impl HighPair {
    /// Reported at some time in `[from, to]` (ms).
    fn reported_within(&self, from: i64, to: i64) -> bool {
        let i = self.times.partition_point(|t| t.unix_ms() < from);
        self.times.get(i).is_some_and(|t| t.unix_ms() <= to)
    }
}

/// The pairs of the earliest window of `window` ms that contains `at` and at
/// least `needed` distinct pairs (in first-reported order), `None` if none does.
///
/// Only a window holding the newest finding can newly qualify (an earlier one
/// would have blacklisted already), so the windows looked at start at a
/// finding time in `[at − window, at]`; a pair that is busy but alone (PR-02
/// on one sku, over and over) is answered by the first check, without a scan.
fn pairs_in_a_window(high: &[HighPair], at: Time, window: i64, needed: usize) -> Option<Vec<(RuleId, String)>> {
    let t = at.unix_ms();
    let near: Vec<&HighPair> = high
        .iter()
        .filter(|p| p.reported_within(t.saturating_sub(window), t.saturating_add(window)))
        .collect();
    if near.len() < needed {
        return None;
    }
    let mut starts: Vec<i64> = near
        .iter()
        .flat_map(|p| p.times.iter().map(|x| x.unix_ms()))
        .filter(|&s| s <= t && t - s <= window)
        .collect();
    starts.sort_unstable();
    starts.dedup();
    starts.into_iter().find_map(|s| {
        let inside: Vec<(RuleId, String)> = near
            .iter()
            .filter(|p| p.reported_within(s, s.saturating_add(window)))
            .map(|p| (p.rule, p.subject.to_string()))
            .collect();
        (inside.len() >= needed).then_some(inside)
    })
}

impl Engine {
    /// Records a finding against merchant `m`; blacklists when the rulebook says so.
    pub(crate) fn credit_record(&mut self, m: MerchantIx, rule: RuleId, subject: &str, at: Time) {
        let severity = self.rules.severity(rule);
        let credit = &self.rules.credit;
        let window = i64::from(credit.blacklist_window_days) * DAY_MS;
        let decay = i64::from(credit.decay_days) * DAY_MS;
        let needed = credit.blacklist_high_findings as usize;
        let alone = self.rules.blacklists_alone(rule);
        let seq = self.seq;
        let weight = match severity {
            Severity::High => credit.weight_high,
            Severity::Medium => credit.weight_medium,
            Severity::Low => credit.weight_low,
        };
        let c = self.credit_mut(m);
        c.recent.push(at.unix_ms(), (weight * 1000.0).round() as i64);
        c.recent.expire(at.unix_ms() - decay);
        if severity != Severity::High || c.blacklist.is_some() {
            return;
        }
        match c.high.iter_mut().find(|p| p.rule == rule && &*p.subject == subject) {
            Some(p) => {
                let i = p.times.partition_point(|t| *t <= at);
                p.times.insert(i, at);
            }
            None => c.high.push(HighPair {
                rule,
                subject: subject.into(),
                times: vec![at],
            }),
        }
        let reasons: Vec<(RuleId, String)> = if alone {
            vec![(rule, subject.to_owned())]
        } else {
            match pairs_in_a_window(&c.high, at, window, needed) {
                Some(pairs) => pairs,
                None => return,
            }
        };
        c.blacklist = Some(BlacklistState {
            at,
            seq,
            reasons,
            mc11_fired: false,
        });
    }

    /// Grade and blacklist state of every merchant seen, in first-seen order.
    pub fn standings(&self) -> Vec<MerchantStanding> {
        self.merchants.iter().filter_map(|(id, _)| self.standing(id)).collect()
    }

    /// A merchant's credit, marked for a review of its grade once the event
    /// being applied is done: what every change to a grade's input goes through.
    pub(crate) fn credit_mut(&mut self, m: MerchantIx) -> &mut CreditState {
        let c = &mut self.merchants.get_mut(m).credit;
        if !c.touched {
            c.touched = true;
            self.credit_touched.push(m);
        }
        &mut self.merchants.get_mut(m).credit
    }

    /// Reviews the grades whose inputs changed while applying `event` (or
    /// advancing the clock): a change of letter goes into the merchant's history.
    pub(crate) fn review_grades(&mut self, event: &str) {
        let Some(now) = self.clock else { return };
        let decay = i64::from(self.rules.credit.decay_days.max(1)) * DAY_MS;
        for m in std::mem::take(&mut self.credit_touched) {
            let c = &mut self.merchants.get_mut(m).credit;
            c.touched = false;
            c.recent.expire(now.unix_ms() - decay);
            let (letter, score, _) = assess(c, &self.rules.credit, now);
            if letter != c.letter {
                if c.history.len() == HISTORY {
                    c.history.pop_front();
                    c.history_dropped += 1;
                }
                c.history.push_back(GradeChange {
                    at: now,
                    event: event.into(),
                    from: c.letter,
                    to: letter,
                    score,
                });
                c.letter = letter;
            }
        }
    }

    /// Grade and blacklist state of one merchant, `None` if never seen.
    pub fn standing(&self, merchant: &str) -> Option<MerchantStanding> {
        let m = self.merchants.find(merchant)?;
        let c = &self.merchants.get(m).credit;
        let cfg = &self.rules.credit;
        let now = self.clock.unwrap_or(Time::from_unix_ms(0, 0));
        let (letter, score, factors) = assess(c, cfg, now);
        let blacklisted = c.blacklist.as_ref().map(|b| Blacklisting {
            at: b.at,
            findings: b.reasons.clone(),
        });
        Some(MerchantStanding {
            merchant: merchant.to_owned(),
            grade: Grade {
                grade: letter,
                score,
                orders: c.orders,
                min_orders: cfg.min_orders_to_rate,
                factors: factors.to_vec(),
                history: c.history.iter().cloned().collect(),
                history_dropped: c.history_dropped,
            },
            blacklisted,
            lifted: c.lifted.iter().cloned().collect(),
        })
    }
}

/// A merchant's grade at `now`: the letter (`None`: not rated yet), the
/// score rounded to 0.1, and every factor. The formula is `docs/credit.md`'s.
fn assess(c: &CreditState, cfg: &crate::rulebook::Credit, now: Time) -> (Option<char>, f64, [Factor; 4]) {
    let decay = i64::from(cfg.decay_days.max(1)) * DAY_MS;
    let (live, findings) = c.recent.penalty(now.unix_ms(), decay);
    let complaints = match c.orders {
        0 => 0.0,
        n => f64::from(c.complaints) / f64::from(n),
    };
    let shipped = c.shipped_on_time + c.shipped_late;
    let late = match shipped {
        0 => 0.0,
        n => f64::from(c.shipped_late) / f64::from(n),
    };
    let median = c.median_reply_minutes();
    let slow = median.is_some_and(|m| m > i64::from(cfg.slow_reply_hours) * 60);
    let factors = [
        Factor {
            kind: FactorKind::Findings,
            value: Some(live as f64),
            points: findings,
        },
        Factor {
            kind: FactorKind::Complaints,
            value: Some(complaints * 100.0),
            points: (complaints * cfg.complaint_rate_weight).min(20.0),
        },
        Factor {
            kind: FactorKind::LateShipping,
            value: Some(late * 100.0),
            points: late * cfg.late_shipping_weight,
        },
        Factor {
            kind: FactorKind::SlowReply,
            value: match median {
                None => Some(-1.0),
                Some(i64::MAX) => None,
                Some(m) => Some(m as f64),
            },
            points: if slow { cfg.slow_reply_penalty } else { 0.0 },
        },
    ];
    let score = (100.0 - factors.iter().map(|f| f.points).sum::<f64>()).clamp(0.0, 100.0);
    let letter = if c.blacklist.is_some() {
        Some('E')
    } else if c.orders < cfg.min_orders_to_rate {
        None
    } else {
        let i = cfg.grade_min_scores.iter().position(|&min| score >= min).unwrap_or(4);
        Some(['A', 'B', 'C', 'D', 'E'][i])
    };
    (letter, (score * 10.0).round() / 10.0, factors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The running sums give what summing every finding's decayed weight
        /// gives, whatever the order findings arrive in and whenever expired ones are dropped.
        #[test]
        fn decaying_sums_equal_the_finding_by_finding_sum(
            findings in proptest::collection::vec((0i64..200, prop_oneof![Just(15_000i64), Just(6_000), Just(2_000)]), 0..60),
            expire_at in proptest::collection::vec(any::<bool>(), 60),
            later in 0i64..120,
        ) {
            let (day, decay) = (DAY_MS, 90 * DAY_MS);
            let mut d = Decaying::default();
            let mut clock = 0;
            for ((t, w), expire) in findings.iter().zip(&expire_at) {
                d.push(t * day, *w);
                clock = clock.max(t * day);
                if *expire {
                    d.expire(clock - decay);
                }
            }
            let now = clock + later * day;
            let naive: f64 = findings
                .iter()
                .map(|(t, w)| *w as f64 / 1000.0 * (1.0 - (now - t * day) as f64 / decay as f64).max(0.0))
                .sum();
            let live = findings.iter().filter(|(t, _)| t * day > now - decay).count();
            let (n, points) = d.penalty(now, decay);
            prop_assert_eq!(n, live);
            prop_assert!((points - naive).abs() < 1e-9, "{} against {}", points, naive);
        }
    }
}
