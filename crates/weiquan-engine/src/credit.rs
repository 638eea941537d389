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
#[derive(Default)]
pub(crate) struct CreditState {
    /// Findings that still weigh on the grade: time and severity.
    pub recent: VecDeque<(Time, Severity)>,
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
}

/// The live blacklist entry of a merchant.
pub(crate) struct BlacklistState {
    pub at: Time,
    /// Engine sequence number of the event that completed it.
    pub seq: u64,
    pub reasons: Vec<(RuleId, String)>,
    pub mc11_fired: bool,
}

impl CreditState {
    /// Lifts the blacklist: the findings behind it no longer count toward another.
    pub fn lift_blacklist(&mut self) {
        self.blacklist = None;
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
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Blacklisting {
    /// When the blacklist took effect.
    pub at: Time,
    /// The findings behind it, as `(rule, subject)`.
    pub findings: Vec<(RuleId, String)>,
}

/// A credit grade with its reasons.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Grade {
    /// `A` (best) to `E`.
    pub grade: char,
    /// 0–100 score behind the letter.
    pub score: f64,
    /// What lowered the score, in order of weight.
    pub reasons: Vec<String>,
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
}

/// One high-severity `(rule, subject)` pair of a merchant and the times it was reported.
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
        let c = &mut self.merchants.get_mut(m).credit;
        c.recent.push_back((at, severity));
        while c
            .recent
            .front()
            .is_some_and(|(t, _)| t.unix_ms() < at.unix_ms() - decay)
        {
            c.recent.pop_front();
        }
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

    /// Grade and blacklist state of one merchant, `None` if never seen.
    pub fn standing(&self, merchant: &str) -> Option<MerchantStanding> {
        let m = self.merchants.find(merchant)?;
        let c = &self.merchants.get(m).credit;
        let cfg = &self.rules.credit;
        let now = self.clock.map_or(0, Time::unix_ms);
        let decay = i64::from(cfg.decay_days.max(1)) * DAY_MS;
        let mut penalties: Vec<(f64, String)> = Vec::new();
        let mut findings = 0.0;
        for (t, sev) in &c.recent {
            let weight = match sev {
                Severity::High => cfg.weight_high,
                Severity::Medium => cfg.weight_medium,
                Severity::Low => cfg.weight_low,
            };
            let age = (now - t.unix_ms()).max(0) as f64 / decay as f64;
            findings += weight * (1.0 - age).max(0.0);
        }
        if findings > 0.0 {
            penalties.push((
                findings,
                format!("{} findings in the last {} days", c.recent.len(), cfg.decay_days),
            ));
        }
        if c.orders > 0 && c.complaints > 0 {
            let rate = f64::from(c.complaints) / f64::from(c.orders);
            penalties.push((
                (rate * cfg.complaint_rate_weight).min(20.0),
                format!("{} complaints per 100 orders", (rate * 100.0).round()),
            ));
        }
        let shipped = c.shipped_on_time + c.shipped_late;
        if c.shipped_late > 0 {
            let late = f64::from(c.shipped_late) / f64::from(shipped);
            penalties.push((
                late * cfg.late_shipping_weight,
                format!("{}% of orders shipped late", (late * 100.0).round()),
            ));
        }
        if let Some(median) = c.median_reply_minutes() {
            if median > i64::from(cfg.slow_reply_hours) * 60 {
                penalties.push((
                    cfg.slow_reply_penalty,
                    format!("median first reply slower than {} hours", cfg.slow_reply_hours),
                ));
            }
        }
        penalties.sort_by(|a, b| b.0.total_cmp(&a.0));
        let score = (100.0 - penalties.iter().map(|p| p.0).sum::<f64>()).clamp(0.0, 100.0);
        let blacklisted = c.blacklist.as_ref().map(|b| Blacklisting {
            at: b.at,
            findings: b.reasons.clone(),
        });
        let letter = if blacklisted.is_some() {
            'E'
        } else {
            let i = cfg.grade_min_scores.iter().position(|&min| score >= min).unwrap_or(4);
            ['A', 'B', 'C', 'D', 'E'][i]
        };
        let mut reasons: Vec<String> = penalties.into_iter().map(|p| p.1).collect();
        if blacklisted.is_some() {
            reasons.insert(0, "blacklisted".into());
        }
        Some(MerchantStanding {
            merchant: merchant.to_owned(),
            grade: Grade {
                grade: letter,
                score: (score * 10.0).round() / 10.0,
                reasons,
            },
            blacklisted,
        })
    }
}
