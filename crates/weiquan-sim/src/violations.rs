//! The violations a simulated merchant can commit, and how each is planted.
//! Each kind yields exactly the labels written beside it.

use crate::{Merchant, Sim, HOUR_MS, MINUTE_MS};
use serde_json::json;
use weiquan_events::DAY_MS;

/// One kind of wrongdoing; a violating merchant commits exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Violation {
    FinalRaised,
    WorseTerms,
    OverLong,
    PresaleUnshipped,
    GiftDropped,
    DepositOverCap,
    DepositKept,
    UndisclosedDeposit,
    HiddenContact,
    FewerPrizes,
    PrizeOverCap,
    LateWinner,
    NeverDrawn,
    UnsentPrize,
    CheapPrize,
    WithheldPrizes,
    RepeatWinner,
    WrongSeed,
    Unverified,
    BadUscc,
    ReusedUscc,
    Runaway,
    LateShipment,
    NoHumanReply,
    RefundIgnored,
    ReturnRefused,
    ComplaintIgnored,
    BlacklistedTrading,
    UnconfirmedBnpl,
    RaiseThenDiscount,
    ReturningPremium,
    AbsoluteClaim,
    UnqualifiedHost,
}

impl Violation {
    /// Every kind, in the order violating merchants are assigned them.
    pub const ALL: &'static [Violation] = &[
        Violation::FinalRaised,
        Violation::HiddenContact,
        Violation::Unverified,
        Violation::RaiseThenDiscount,
        Violation::WorseTerms,
        Violation::FewerPrizes,
        Violation::BadUscc,
        Violation::ReturningPremium,
        Violation::OverLong,
        Violation::PrizeOverCap,
        Violation::ReusedUscc,
        Violation::AbsoluteClaim,
        Violation::PresaleUnshipped,
        Violation::LateWinner,
        Violation::Runaway,
        Violation::UnconfirmedBnpl,
        Violation::GiftDropped,
        Violation::NeverDrawn,
        Violation::LateShipment,
        Violation::DepositOverCap,
        Violation::UnsentPrize,
        Violation::NoHumanReply,
        Violation::DepositKept,
        Violation::CheapPrize,
        Violation::RefundIgnored,
        Violation::UndisclosedDeposit,
        Violation::WithheldPrizes,
        Violation::ReturnRefused,
        Violation::RepeatWinner,
        Violation::ComplaintIgnored,
        Violation::WrongSeed,
        Violation::BlacklistedTrading,
        Violation::UnqualifiedHost,
    ];

    /// Planted in a live-stream lottery.
    pub fn needs_live(self) -> bool {
        use Violation::*;
        matches!(
            self,
            HiddenContact
                | FewerPrizes
                | PrizeOverCap
                | LateWinner
                | NeverDrawn
                | UnsentPrize
                | CheapPrize
                | WithheldPrizes
                | RepeatWinner
                | WrongSeed
                | UnqualifiedHost
        )
    }

    /// Planted in a pre-sale campaign.
    pub fn needs_presale(self) -> bool {
        use Violation::*;
        matches!(
            self,
            FinalRaised
                | WorseTerms
                | OverLong
                | PresaleUnshipped
                | GiftDropped
                | DepositOverCap
                | DepositKept
                | UndisclosedDeposit
        )
    }
}

/// Plants `v` for merchant `m` (pre-sale and registration kinds are planted where they happen).
pub(crate) fn plant(sim: &mut Sim, m: &mut Merchant, v: Violation) {
    use Violation::*;
    let merchant = format!("merchant:{}", m.id);
    let day = 1.min(sim.cfg.days.saturating_sub(1));
    match v {
        RepeatWinner => {
            for d in 0..6 {
                sim.lottery(m, d % sim.cfg.days.max(1), Some(v));
            }
            sim.label("LT-09", merchant);
        }
        v if v.needs_live() => {
            sim.lottery(m, day, Some(v));
        }
        LateShipment => {
            let t = sim.time_on(day, 9.0, 12.0);
            let order = sim.place_order(m, t, json!({}));
            sim.emit(t + 3 * DAY_MS, "order.shipped", json!({"order": order}));
            sim.label("MC-06", format!("order:{order}"));
        }
        NoHumanReply => {
            let t = sim.time_on(day, 9.0, 12.0);
            let v = sim.next_id("v");
            let msg = |from: &str| json!({"merchant": m.id, "conversation": v, "consumer": "u-waiting", "from": from});
            sim.emit(t, "service.message", msg("consumer"));
            sim.emit(t + MINUTE_MS, "service.message", msg("bot"));
            sim.label("MC-07", format!("conversation:{v}"));
        }
        RefundIgnored | ReturnRefused => {
            let t = sim.time_on(day, 9.0, 12.0);
            let order = sim.place_order(m, t, json!({}));
            sim.emit(t + HOUR_MS, "order.shipped", json!({"order": order}));
            sim.emit(t + DAY_MS, "order.delivered", json!({"order": order}));
            sim.emit(
                t + 2 * DAY_MS,
                "refund.requested",
                json!({"order": order, "amount_fen": 100, "no_reason": true}),
            );
            if v == ReturnRefused {
                sim.emit(
                    t + 3 * DAY_MS,
                    "refund.rejected",
                    json!({"order": order, "reason": "已拆封不退"}),
                );
                sim.label("MC-09", format!("order:{order}"));
            } else {
                sim.label("MC-08", format!("order:{order}"));
            }
        }
        ComplaintIgnored => {
            let t = sim.time_on(day, 9.0, 12.0);
            let complaint = sim.next_id("p");
            sim.emit(
                t,
                "complaint.filed",
                json!({"complaint": complaint, "consumer": "u-ignored", "merchant": m.id, "category": "after_sales"}),
            );
            sim.label("MC-10", format!("complaint:{complaint}"));
        }
        UnconfirmedBnpl => {
            let t = sim.time_on(day, 9.0, 12.0);
            let order = sim.place_order(m, t, json!({"payment": "bnpl", "confirmed": false}));
            sim.emit(t + HOUR_MS, "order.shipped", json!({"order": order}));
            sim.label("BN-03", format!("order:{order}"));
        }
        RaiseThenDiscount => raise_then_discount(sim, m, "sx", day),
        BlacklistedTrading => {
            // Three fake 原价 make three high findings: blacklisted. Then it lists again.
            for k in 0..3 {
                raise_then_discount(sim, m, &format!("sb{k}"), day);
            }
            let t = sim.day_ms(day + 4) + 12 * HOUR_MS;
            sim.emit(
                t,
                "listing.published",
                json!({"merchant": m.id, "sku": "sb-new", "title": "新品", "price_fen": 1000}),
            );
            sim.label("MC-11", merchant);
        }
        ReturningPremium => {
            let t = sim.day_ms(day) + 2 * HOUR_MS;
            sim.emit(
                t,
                "listing.published",
                json!({"merchant": m.id, "sku": "sq", "title": "蓝牙耳机", "price_fen": 20000}),
            );
            sim.emit(t + HOUR_MS, "price.quoted", json!({"merchant": m.id, "sku": "sq", "consumer": "u-loyal", "price_fen": 22000, "segment": "returning"}));
            sim.label("PR-02", format!("sku:{}/sq", m.id));
        }
        AbsoluteClaim => {
            let t = sim.day_ms(day) + 2 * HOUR_MS;
            sim.emit(
                t,
                "listing.published",
                json!({"merchant": m.id, "sku": "sa", "title": "最佳 空气炸锅", "price_fen": 30000}),
            );
            sim.label("MK-01", format!("sku:{}/sa", m.id));
        }
        _ => {}
    }
}

/// A sku listed at a price, raised, then "discounted" with the raised price as 原价.
fn raise_then_discount(sim: &mut Sim, m: &Merchant, sku: &str, day: u32) {
    let t = sim.day_ms(day) + 2 * HOUR_MS;
    sim.emit(
        t,
        "listing.published",
        json!({"merchant": m.id, "sku": sku, "title": "电饭煲", "price_fen": 10000}),
    );
    sim.emit(
        t + DAY_MS,
        "price.changed",
        json!({"merchant": m.id, "sku": sku, "price_fen": 15000}),
    );
    sim.emit(
        t + 2 * DAY_MS,
        "listing.updated",
        json!({"merchant": m.id, "sku": sku, "price_fen": 12000, "reference_price_fen": 15000}),
    );
    sim.label("PR-01", format!("sku:{}/{sku}", m.id));
}

/// The drift toward running away: from `day` the merchant stops shipping but
/// keeps taking orders for four days, then closes.
pub(crate) fn run_away(sim: &mut Sim, m: &mut Merchant, day: u32) {
    let mut unshipped: Vec<i64> = Vec::new();
    let mut warned = false;
    for d in day..day + 4 {
        for _ in 0..3 {
            let t = sim.time_on(d, 8.0, 20.0);
            // MC-05 counts orders whose two days ran out strictly before this one.
            let overdue = unshipped.iter().filter(|&&p| p + 2 * DAY_MS < t).count();
            let order = sim.place_order(m, t, json!({}));
            if overdue >= 3 && !warned {
                warned = true;
                sim.label("MC-05", format!("merchant:{}", m.id));
            }
            unshipped.push(t);
            sim.label("MC-06", format!("order:{order}"));
        }
        // Orders on one day are placed in random order; the MC-05 check must see them sorted.
        unshipped.sort_unstable();
    }
    let close = sim.day_ms(day + 4) + 12 * HOUR_MS;
    sim.emit(
        close,
        "merchant.closed",
        json!({"merchant": m.id, "reason": "小程序下线"}),
    );
    sim.label("MC-04", format!("merchant:{}", m.id));
}
