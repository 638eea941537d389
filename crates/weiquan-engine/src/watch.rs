//! The run-away watch list (跑路预警): merchants scored by the signals that
//! precede a mini-program shop closing with its buyers' money, each signal
//! shown with its value and the points it adds. The formula is
//! `docs/watchlist.md`'s; MC-05 is the rule that fires on the strongest
//! signal alone, the list ranks every open merchant before it does.

use crate::Engine;
use weiquan_events::{Time, DAY_MS};

/// What a signal measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchSignal {
    /// Obligations past due whose cause is still there (MC-05's count).
    Overdue,
    /// Orders accepted while an obligation was overdue.
    OrdersWhileOverdue,
    /// Orders waiting while the merchant has shipped nothing for a day, the oldest over a day old.
    ShippingStalled,
    /// Recent orders unshipped with three quarters of their shipping time gone.
    OrdersAging,
    /// Complaints in the last seven days beyond twice the merchant's own weekly rate before.
    ComplaintSpike,
    /// Recent first replies slower than the merchant's long-run average (fast ÷ slow average).
    ReplyDrift,
    /// Pre-sale deposits taken on orders not shipped yet.
    DepositsOutstanding,
    /// The money those deposits hold, in yuan.
    DepositMoney,
}

impl WatchSignal {
    /// The name the API writes.
    pub fn as_str(self) -> &'static str {
        match self {
            WatchSignal::Overdue => "overdue_obligations",
            WatchSignal::OrdersWhileOverdue => "orders_while_overdue",
            WatchSignal::ShippingStalled => "shipping_stalled",
            WatchSignal::OrdersAging => "orders_aging",
            WatchSignal::ComplaintSpike => "complaint_spike",
            WatchSignal::ReplyDrift => "reply_drift",
            WatchSignal::DepositsOutstanding => "deposits_outstanding",
            WatchSignal::DepositMoney => "deposit_money_yuan",
        }
    }
}

/// One merchant on the watch list.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEntry {
    /// The merchant.
    pub merchant: String,
    /// The sum of its signals' points.
    pub score: f64,
    /// Every signal: what, its value, the points it adds.
    pub signals: Vec<(WatchSignal, f64, f64)>,
}

impl Engine {
    /// Open merchants with any risk, riskiest first (ties by id), at the engine's clock.
    pub fn watchlist(&self) -> Vec<WatchEntry> {
        let now = self.clock.unwrap_or(Time::from_unix_ms(0, 0)).unix_ms();
        let mut out: Vec<WatchEntry> = (self.merchants.iter())
            .filter(|(_, m)| !m.closed)
            .filter_map(|(id, m)| {
                let w = &m.watch;
                let week_ago = now - 7 * DAY_MS;
                let recent = w.recent_complaints.iter().filter(|t| t.unix_ms() > week_ago).count() as f64;
                let earlier = f64::from(w.earlier_complaints)
                    + (w.recent_complaints.iter().filter(|t| t.unix_ms() <= week_ago).count() as f64);
                let weeks_before = w.first_complaint.map_or(0.0, |f| {
                    ((week_ago - f.unix_ms()) as f64 / (7 * DAY_MS) as f64).max(1.0)
                });
                let baseline = if weeks_before > 0.0 {
                    earlier / weeks_before
                } else {
                    0.0
                };
                let spike = (recent - (2.0 * baseline).max(1.0)).max(0.0);
                let day_ago = now - DAY_MS;
                let waited = w.waiting_since.is_some_and(|t| t.unix_ms() <= day_ago);
                let idle = w.last_shipped.is_none_or(|t| t.unix_ms() <= day_ago);
                let stalled = if waited && idle { f64::from(w.waiting) } else { 0.0 };
                let aging_since = now - i64::from(self.rules.thresholds.ship_days) * DAY_MS * 3 / 4;
                let aging = (w.recent_orders.iter())
                    .filter(|(t, o)| t.unix_ms() <= aging_since && !self.orders.get(*o).settled())
                    .count() as f64;
                let drift = if w.reply_slow > 0.0 {
                    w.reply_fast / w.reply_slow
                } else {
                    1.0
                };
                let signals = vec![
                    (
                        WatchSignal::Overdue,
                        f64::from(m.overdue),
                        (10.0 * f64::from(m.overdue)).min(50.0),
                    ),
                    (
                        WatchSignal::OrdersWhileOverdue,
                        f64::from(w.orders_while_overdue),
                        (2.0 * f64::from(w.orders_while_overdue)).min(20.0),
                    ),
                    (WatchSignal::ShippingStalled, stalled, (3.0 * stalled).min(30.0)),
                    (WatchSignal::OrdersAging, aging, (8.0 * aging).min(40.0)),
                    (WatchSignal::ComplaintSpike, spike, (5.0 * spike).min(15.0)),
                    (WatchSignal::ReplyDrift, drift, (5.0 * (drift - 2.0)).clamp(0.0, 10.0)),
                    (
                        WatchSignal::DepositsOutstanding,
                        f64::from(m.open.deposits),
                        f64::from(m.open.deposits).min(10.0),
                    ),
                    (
                        WatchSignal::DepositMoney,
                        m.open.deposit_fen as f64 / 100.0,
                        (m.open.deposit_fen as f64 / 100_000.0).min(10.0),
                    ),
                ];
                let score: f64 = signals.iter().map(|s| s.2).sum();
                (score > 0.0).then(|| WatchEntry {
                    merchant: id.to_owned(),
                    score,
                    signals,
                })
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.merchant.cmp(&b.merchant)));
        out
    }
}
