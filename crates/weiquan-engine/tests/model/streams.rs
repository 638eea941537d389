//! Adversarial event streams: small id pools so that events collide; times
//! out of order, equal and jumping months; repeated ids and creations; events
//! before their subject's creation; redraws, late commitments and repeat
//! winners; values on and one unit either side of every threshold; optional
//! fields absent or null; a few malformed lines. The engine's model test and
//! the partition test (`crates/weiquan-partition`) both draw from it.
#![allow(dead_code)] // each test uses a part

use proptest::prelude::*;
use serde_json::{json, Value};
use weiquan_events::{Time, DAY_MS, HOUR_MS};

/// 2026-11-01T00:00:00+08:00 in ms.
pub const BASE_MS: i64 = 1_793_462_400_000;

pub fn time(ms: i64) -> String {
    Time::from_unix_ms(BASE_MS + ms, 8 * 3600).to_string()
}

/// A step of the clock between events: equal, just over or just under every
/// period the rules use, backwards, and far jumps.
pub fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => Just(0i64),
        4 => Just(HOUR_MS / 6),
        2 => Just(1),
        2 => Just(HOUR_MS),
        1 => Just(HOUR_MS + 1),
        2 => Just(DAY_MS),
        1 => Just(DAY_MS + 1),
        2 => Just(2 * DAY_MS),
        1 => Just(2 * DAY_MS + 1),
        2 => Just(7 * DAY_MS),
        1 => Just(7 * DAY_MS + 1),
        2 => Just(-HOUR_MS),
        2 => Just(-2 * DAY_MS),
        1 => Just(-8 * DAY_MS),
        1 => Just(30 * DAY_MS),
        1 => Just(-30 * DAY_MS),
        1 => Just(89 * DAY_MS),
        1 => Just(200 * DAY_MS),
    ]
}

pub fn pick(pool: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    proptest::sample::select(pool)
}

pub const MERCHANTS: &[&str] = &["m1", "m2", "m3"];
pub const ORDERS: &[&str] = &["o1", "o2", "o3", "o4"];
pub const CAMPAIGNS: &[&str] = &["c1", "c2"];
pub const LOTTERIES: &[&str] = &["l1", "l2"];
pub const PEOPLE: &[&str] = &["p1", "p2", "p3", "p4"];
pub const SKUS: &[&str] = &["s1", "s2"];
pub const HOSTS: &[&str] = &["h1", "h2"];
pub const PRIZES: &[&str] = &["券", "耳机"];
pub const SEEDS: &[&str] = &["seed-a", "seed-b"];
/// Two valid 统一社会信用代码 and one that fails the check.
pub const USCCS: &[&str] = &["91330100MA0000001X", "91350100M000100Y43", "91330100MA00000010"];

pub fn opt<T: Strategy>(s: T) -> impl Strategy<Value = Option<T::Value>>
where
    T::Value: std::fmt::Debug + Clone,
{
    prop_oneof![1 => Just(None), 3 => s.prop_map(Some)]
}

/// Money on and around the thresholds the rules use (1%, 20%, ¥50,000, the 原价 tests).
pub fn fen() -> impl Strategy<Value = u64> {
    proptest::sample::select(
        &[
            0u64, 1999, 2000, 2001, 9899, 9999, 10000, 10001, 10100, 10101, 5_000_000, 5_000_001,
        ][..],
    )
}

pub fn prize() -> impl Strategy<Value = Value> {
    (opt(pick(PRIZES)), opt(fen()), opt(0u32..3)).prop_map(|(name, value, count)| {
        let mut p = json!({"name": name, "value_fen": value, "count": count});
        // Absent, null and present are all meant to be seen.
        if let Some(o) = p.as_object_mut() {
            o.retain(|_, v| !v.is_null() || name.is_some());
        }
        p
    })
}

pub fn prizes() -> impl Strategy<Value = Value> {
    proptest::collection::vec(prize(), 0..3).prop_map(Value::Array)
}

pub fn lottery_terms() -> impl Strategy<Value = Value> {
    (
        pick(MERCHANTS),
        pick(HOSTS),
        prizes(),
        opt(Just(json!(["关注主播"]))),
        opt(delta()),
        opt(proptest::sample::select(&[0u32, 3, 7, 8][..])),
        opt(Just("店")),
        opt(pick(SEEDS)),
    )
        .prop_map(|(m, h, prizes, conditions, draw, deliver, organizer, seed)| {
            json!({
                "merchant": m, "host": h, "stream": "st", "prizes": prizes, "conditions": conditions,
                "draw_at": draw.map(|d| time(d.abs())), "deliver_within_days": deliver,
                "organizer": organizer, "contact": organizer,
                "commitment": seed.map(weiquan_engine::draw::commitment),
            })
        })
}

pub fn presale_terms() -> impl Strategy<Value = Value> {
    (
        pick(MERCHANTS),
        proptest::sample::select(&[2000u64, 2001, 5000][..]),
        proptest::sample::select(&[10000u64, 10001, 9999][..]),
        proptest::sample::select(&[0i64, 20 * DAY_MS, 57 * DAY_MS][..]),
        proptest::sample::select(&[2u32, 3, 4][..]),
        opt(Just(json!(["杯子"]))),
        opt(any::<bool>()),
    )
        .prop_map(|(m, deposit, price, end, ship, gifts, refundable)| {
            json!({
                "merchant": m, "sku": "s1", "deposit_fen": deposit, "price_fen": price,
                "deposit_start": time(0), "deposit_end": time(end), "final_start": time(end),
                "final_end": time(end + DAY_MS), "ship_within_days": ship, "gifts": gifts,
                "deposit_refundable": refundable,
            })
        })
}

/// One event's type and fields (without envelope).
pub fn body() -> impl Strategy<Value = (&'static str, Value)> {
    let m = || pick(MERCHANTS);
    let o = || pick(ORDERS);
    let c = || pick(CAMPAIGNS);
    let l = || pick(LOTTERIES);
    let p = || pick(PEOPLE);
    prop_oneof![
        1 => Just(("clock.tick", json!({}))),
        2 => (m(), pick(USCCS), opt(Just("a".repeat(64)))).prop_map(|(m, u, lic)| ("merchant.registered", json!({"merchant": m, "name": "店", "uscc": u, "channels": ["store"], "licence_sha256": lic}))),
        2 => m().prop_map(|m| ("merchant.verified", json!({"merchant": m, "method": "manual", "by": "platform"}))),
        1 => m().prop_map(|m| ("merchant.closed", json!({"merchant": m}))),
        1 => m().prop_map(|m| ("merchant.blacklist_lifted", json!({"merchant": m, "by": "regulator", "reason": "整改"}))),
        1 => pick(HOSTS).prop_map(|h| ("host.registered", json!({"host": h, "name": "主播"}))),
        1 => pick(HOSTS).prop_map(|h| ("host.verified", json!({"host": h, "method": "id_check", "by": "platform"}))),
        1 => pick(HOSTS).prop_map(|h| ("host.suspended", json!({"host": h}))),
        1 => pick(HOSTS).prop_map(|h| ("host.reinstated", json!({"host": h}))),
        2 => (m(), pick(SKUS), fen(), opt(fen()), any::<bool>()).prop_map(|(m, s, price, r, claim)| ("listing.published", json!({"merchant": m, "sku": s, "title": if claim { "全网最低 台灯" } else { "台灯" }, "price_fen": price, "reference_price_fen": r}))),
        2 => (m(), pick(SKUS), opt(fen()), opt(fen())).prop_map(|(m, s, price, r)| ("listing.updated", json!({"merchant": m, "sku": s, "price_fen": price, "reference_price_fen": r}))),
        2 => (m(), pick(SKUS), fen()).prop_map(|(m, s, price)| ("price.changed", json!({"merchant": m, "sku": s, "price_fen": price}))),
        3 => (m(), pick(SKUS), p(), fen(), opt(pick(&["new", "returning"]))).prop_map(|(m, s, u, price, seg)| ("price.quoted", json!({"merchant": m, "sku": s, "consumer": u, "price_fen": price, "segment": seg}))),
        4 => (o(), m(), any::<bool>(), opt(any::<bool>()), opt(c())).prop_map(|(o, m, bnpl, confirmed, c)| ("order.placed", json!({"order": o, "merchant": m, "consumer": "u1", "sku": "s1", "qty": 1, "amount_fen": 100, "payment": if bnpl { "bnpl" } else { "standard" }, "confirmed": confirmed, "campaign": c}))),
        3 => o().prop_map(|o| ("order.shipped", json!({"order": o}))),
        2 => o().prop_map(|o| ("order.delivered", json!({"order": o}))),
        1 => o().prop_map(|o| ("order.cancelled", json!({"order": o, "by": "consumer"}))),
        2 => (o(), any::<bool>()).prop_map(|(o, nr)| ("refund.requested", json!({"order": o, "amount_fen": 100, "no_reason": nr}))),
        1 => o().prop_map(|o| ("refund.completed", json!({"order": o, "amount_fen": 100}))),
        1 => o().prop_map(|o| ("refund.rejected", json!({"order": o, "reason": "不符合"}))),
        2 => (c(), presale_terms()).prop_map(|(c, mut t)| { t["campaign"] = json!(c); ("presale.published", t) }),
        2 => (c(), opt(proptest::sample::select(&[1999u64, 3000][..])), opt(proptest::sample::select(&[9000u64, 12000][..])), opt(Just(json!([]))), opt(any::<bool>())).prop_map(|(c, d, p, g, r)| ("presale.changed", json!({"campaign": c, "deposit_fen": d, "price_fen": p, "gifts": g, "deposit_refundable": r}))),
        3 => (c(), o(), proptest::sample::select(&[2000u64, 5000][..])).prop_map(|(c, o, d)| ("presale.deposit_paid", json!({"campaign": c, "order": o, "consumer": "u1", "deposit_fen": d}))),
        3 => (c(), o(), proptest::sample::select(&[5000u64, 8000, 8001][..]), opt(Just(json!([])))).prop_map(|(c, o, f, g)| ("presale.final_paid", json!({"campaign": c, "order": o, "final_fen": f, "gifts": g}))),
        1 => (c(), opt(o())).prop_map(|(c, o)| ("presale.gift_withdrawn", json!({"campaign": c, "order": o, "gift": "杯子"}))),
        2 => (c(), o()).prop_map(|(c, o)| ("presale.deposit_refund_requested", json!({"campaign": c, "order": o}))),
        1 => (c(), o()).prop_map(|(c, o)| ("presale.deposit_refunded", json!({"campaign": c, "order": o, "amount_fen": 2000}))),
        3 => (l(), lottery_terms()).prop_map(|(l, mut t)| { t["lottery"] = json!(l); ("lottery.announced", t) }),
        2 => (l(), lottery_terms(), proptest::sample::subsequence(&["merchant", "host", "prizes", "conditions", "draw_at", "deliver_within_days", "commitment"][..], 1..3)).prop_map(|(l, t, keep)| {
            let mut ch = json!({"lottery": l});
            for k in keep { ch[k] = t[k].clone(); }
            ("lottery.changed", ch)
        }),
        5 => (l(), p()).prop_map(|(l, p)| ("lottery.entered", json!({"lottery": l, "participant": p}))),
        1 => l().prop_map(|l| ("lottery.closed", json!({"lottery": l}))),
        3 => (l(), proptest::collection::vec((p(), pick(PRIZES)), 0..3), opt(pick(SEEDS))).prop_map(|(l, ws, seed)| ("lottery.drawn", json!({"lottery": l, "winners": ws.iter().map(|(p, z)| json!({"participant": p, "prize": z})).collect::<Vec<_>>(), "seed": seed}))),
        3 => (l(), p(), pick(PRIZES), fen()).prop_map(|(l, p, z, v)| ("lottery.prize_shipped", json!({"lottery": l, "participant": p, "prize": z, "value_fen": v}))),
        1 => l().prop_map(|l| ("lottery.cancelled", json!({"lottery": l}))),
        4 => (m(), pick(&["v1", "v2"]), pick(&["consumer", "consumer", "merchant", "bot"])).prop_map(|(m, v, from)| ("service.message", json!({"merchant": m, "conversation": v, "consumer": "u1", "from": from}))),
        2 => (pick(&["k1", "k2", "k3"]), m()).prop_map(|(k, m)| ("complaint.filed", json!({"complaint": k, "consumer": "u1", "merchant": m, "category": "quality"}))),
        1 => pick(&["k1", "k2", "k3"]).prop_map(|k| ("complaint.responded", json!({"complaint": k, "by": "merchant"}))),
        1 => pick(&["k1", "k2", "k3"]).prop_map(|k| ("complaint.resolved", json!({"complaint": k, "outcome": "refund"}))),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(pre, shown)| ("bnpl.offered", json!({"consumer": "u1", "session": "x", "preselected": pre, "terms_shown": shown}))),
        1 => (pick(&["explicit", "bundled"]), any::<bool>()).prop_map(|(c, id)| ("bnpl.enabled", json!({"consumer": "u2", "provider": "花呗", "consent": c, "identity_verified": id}))),
        1 => proptest::sample::select(&[1u32, 2, 3][..]).prop_map(|s| ("bnpl.disabled", json!({"consumer": "u1", "provider": "花呗", "steps": s}))),
    ]
}

/// A rigged series: a crowd enters a lottery, then one participant wins draw after draw (LT-09).
pub fn rigged() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
    (pick(LOTTERIES), 3usize..7).prop_map(|(l, draws)| {
        let mut evs: Vec<(&'static str, Value)> = (0..25)
            .map(|i| {
                (
                    "lottery.entered",
                    json!({"lottery": l, "participant": format!("crowd{i}")}),
                )
            })
            .collect();
        evs.push(("lottery.entered", json!({"lottery": l, "participant": "p1"})));
        for _ in 0..draws {
            evs.push((
                "lottery.drawn",
                json!({"lottery": l, "winners": [{"participant": "p1", "prize": "券"}]}),
            ));
        }
        evs
    })
}

/// One line of a stream: an event (with its time step and id choice) or a malformed line.
#[derive(Clone, Debug)]
pub enum Step {
    Events(Vec<(&'static str, Value)>, i64, u8),
    Malformed(&'static str),
}

pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        40 => (body(), delta(), 0u8..12).prop_map(|(b, d, id)| Step::Events(vec![b], d, id)),
        1 => (rigged(), delta()).prop_map(|(evs, d)| Step::Events(evs, d, 0)),
        1 => pick(&["{not json", "{\"v\":1,\"id\":\"x1\",\"type\":\"order.shipped\",\"at\":\"2026-11-01\",\"order\":\"o1\"}", "[]", "{\"v\":1,\"id\":\"x2\",\"type\":\"lottery.changed\",\"at\":\"2026-11-02T00:00:00+08:00\",\"lottery\":\"l1\",\"prizes\":[{\"name\":\"券\"},{\"name\":\"券\"}]}"]).prop_map(Step::Malformed),
    ]
}

/// Renders steps to NDJSON lines; ids repeat now and then (`id` 0 reuses an earlier one).
pub fn render(steps: &[Step]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut t = 0i64;
    let mut n = 0usize;
    for s in steps {
        match s {
            Step::Malformed(line) => lines.push((*line).to_owned()),
            Step::Events(evs, d, id) => {
                t += d;
                for (ty, fields) in evs {
                    n += 1;
                    let id = if *id == 0 && n > 3 {
                        format!("e{}", n / 2)
                    } else {
                        format!("e{n}")
                    };
                    let mut obj = json!({"v": 1, "id": id, "type": ty, "at": time(t)});
                    if let (Some(o), Value::Object(f)) = (obj.as_object_mut(), fields.clone()) {
                        o.extend(f.into_iter().filter(|(_, v)| !v.is_null() || n % 3 == 0));
                    }
                    lines.push(obj.to_string());
                }
            }
        }
    }
    lines
}
