//! LT-01..10.

use crate::Stream;
use serde_json::{json, Value};

/// Lottery l1 of m1: fully disclosed, 2 × 耳机 worth ¥299, draw 11-01 20:00, deliver within 7 days.
fn announce(extra: Value) -> Value {
    let mut v = json!({"lottery": "l1", "merchant": "m1", "host": "h1", "stream": "st1",
        "prizes": [{"name": "耳机", "value_fen": 29900, "count": 2}], "conditions": ["关注主播"],
        "draw_at": crate::t("11-01 20:00"), "deliver_within_days": 7, "organizer": "店铺m1", "contact": "400-000-0000"});
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        for (k, x) in e {
            if x.is_null() {
                o.remove(&k);
            } else {
                o.insert(k, x);
            }
        }
    }
    v
}

fn base(extra: Value) -> Stream {
    Stream::new()
        .merchant("m1")
        .ev("lottery.announced", "11-01 10:00", announce(extra))
}

fn enter(mut s: Stream, lottery: &str, who: &[&str], at: &str) -> Stream {
    for p in who {
        s = s.ev("lottery.entered", at, json!({"lottery": lottery, "participant": p}));
    }
    s
}

fn draw(s: Stream, winners: &[(&str, &str)], at: &str) -> Stream {
    let w: Vec<Value> = winners
        .iter()
        .map(|(p, prize)| json!({"participant": p, "prize": prize}))
        .collect();
    s.ev("lottery.drawn", at, json!({"lottery": "l1", "winners": w}))
}

/// Entered p1..p4, closed, drawn p1 and p2 at 20:00.
fn drawn() -> Stream {
    let s = enter(base(json!({})), "l1", &["p1", "p2", "p3", "p4"], "11-01 12:00").ev(
        "lottery.closed",
        "11-01 19:00",
        json!({"lottery": "l1"}),
    );
    draw(s, &[("p1", "耳机"), ("p2", "耳机")], "11-01 20:00")
}

fn ship(s: Stream, who: &str, at: &str, value: u64) -> Stream {
    s.ev(
        "lottery.prize_shipped",
        at,
        json!({"lottery": "l1", "participant": who, "prize": "耳机", "value_fen": value}),
    )
}

#[test]
fn lt01_fires_for_any_missing_or_empty_disclosure() {
    assert!(!base(json!({})).fires_any("LT-01"));
    for gap in [
        json!({"contact": null}),
        json!({"organizer": ""}),
        json!({"conditions": []}),
        json!({"draw_at": null}),
        json!({"deliver_within_days": null}),
        json!({"prizes": [{"name": "耳机", "value_fen": 29900}]}),
    ] {
        assert!(base(gap.clone()).fires("LT-01", "lottery:l1"), "{gap}");
    }
}

#[test]
fn lt02_fires_for_changes_against_participants() {
    for change in [
        json!({"prizes": [{"name": "耳机", "value_fen": 29900, "count": 1}]}),
        json!({"prizes": [{"name": "耳机", "value_fen": 19900, "count": 2}]}),
        json!({"prizes": [{"name": "音箱", "value_fen": 29900, "count": 2}]}),
        json!({"conditions": ["关注主播", "下单任意商品"]}),
        json!({"draw_at": crate::t("11-01 21:00")}),
        json!({"deliver_within_days": 14}),
    ] {
        let s = base(json!({})).ev(
            "lottery.changed",
            "11-01 12:00",
            json!({"lottery": "l1"})
                .as_object()
                .cloned()
                .map(|mut o| {
                    o.extend(change.as_object().cloned().unwrap_or_default());
                    Value::Object(o)
                })
                .unwrap_or_default(),
        );
        assert!(s.fires("LT-02", "lottery:l1"), "{change}");
    }
}

#[test]
fn lt02_allows_changes_in_participants_favour_and_late_disclosure() {
    for change in [
        json!({"lottery": "l1", "prizes": [{"name": "耳机", "value_fen": 39900, "count": 3}]}),
        json!({"lottery": "l1", "conditions": []}),
        json!({"lottery": "l1", "deliver_within_days": 3}),
    ] {
        assert!(
            !base(json!({}))
                .ev("lottery.changed", "11-01 12:00", change.clone())
                .fires_any("LT-02"),
            "{change}"
        );
    }
    let undisclosed = base(json!({"draw_at": null})).ev(
        "lottery.changed",
        "11-01 12:00",
        json!({"lottery": "l1", "draw_at": crate::t("11-01 20:00")}),
    );
    assert!(undisclosed.fires("LT-01", "lottery:l1"));
    assert!(!undisclosed.fires_any("LT-02"));
}

#[test]
fn lt03_cap_is_fifty_thousand_yuan_inclusive() {
    let at = |v: u64| base(json!({"prizes": [{"name": "车", "value_fen": v, "count": 1}]}));
    assert!(!at(5_000_000).fires_any("LT-03"));
    assert!(at(5_000_001).fires("LT-03", "lottery:l1"));
}

#[test]
fn lt04_ineligible_winners() {
    let s = enter(base(json!({})), "l1", &["p1", "p2"], "11-01 12:00").ev(
        "lottery.closed",
        "11-01 19:00",
        json!({"lottery": "l1"}),
    );
    assert!(!draw(s.clone(), &[("p1", "耳机"), ("p2", "耳机")], "11-01 20:00").fires_any("LT-04"));
    assert!(
        draw(s.clone(), &[("p9", "耳机")], "11-01 20:00").fires("LT-04", "lottery:l1"),
        "never entered"
    );
    assert!(
        draw(s.clone(), &[("p1", "手机")], "11-01 20:00").fires("LT-04", "lottery:l1"),
        "prize never announced"
    );
    let late = enter(s.clone(), "l1", &["p7"], "11-01 19:30");
    assert!(
        draw(late, &[("p7", "耳机")], "11-01 20:00").fires("LT-04", "lottery:l1"),
        "entered after the close"
    );
    let again = enter(s, "l1", &["p1"], "11-01 19:30");
    assert!(
        !draw(again, &[("p1", "耳机")], "11-01 20:00").fires_any("LT-04"),
        "entered before the close, again after"
    );
}

#[test]
fn lt05_draw_must_happen_by_draw_at_plus_one_hour() {
    let s = enter(base(json!({})), "l1", &["p1", "p2"], "11-01 12:00");
    assert!(!draw(s.clone(), &[("p1", "耳机"), ("p2", "耳机")], "11-01 21:00").fires_any("LT-05"));
    assert!(draw(s.clone(), &[("p1", "耳机"), ("p2", "耳机")], "11-01 21:01").fires("LT-05", "lottery:l1"));
    assert!(!s
        .clone()
        .ev("lottery.cancelled", "11-01 20:30", json!({"lottery": "l1"}))
        .tick("11-03")
        .fires_any("LT-05"));
    let moved = s.ev(
        "lottery.changed",
        "11-01 15:00",
        json!({"lottery": "l1", "draw_at": crate::t("11-02 20:00")}),
    );
    let moved = draw(moved, &[("p1", "耳机"), ("p2", "耳机")], "11-02 20:00");
    assert!(moved.fires("LT-02", "lottery:l1"));
    assert!(!moved.fires_any("LT-05"), "the moved draw time is the one in effect");
}

#[test]
fn lt06_every_winner_gets_a_shipment_within_the_delivery_days() {
    let s = ship(ship(drawn(), "p1", "11-02", 29900), "p2", "11-08 20:00", 29900).tick("11-20");
    assert!(!s.fires_any("LT-06"), "exactly at the deadline is in time");
    assert!(ship(drawn(), "p1", "11-02", 29900)
        .tick("11-08 20:01")
        .fires("LT-06", "lottery:l1"));
    // Undisclosed delivery days default to 7.
    let undisclosed = enter(base(json!({"deliver_within_days": null})), "l1", &["p1"], "11-01 12:00");
    let undisclosed = draw(undisclosed, &[("p1", "耳机")], "11-01 20:00");
    assert!(!undisclosed.clone().tick("11-08 20:00").fires_any("LT-06"));
    assert!(undisclosed.tick("11-08 20:01").fires("LT-06", "lottery:l1"));
}

#[test]
fn lt07_prize_must_be_the_announced_one_at_its_value() {
    assert!(!ship(drawn(), "p1", "11-02", 29900).fires_any("LT-07"));
    assert!(ship(drawn(), "p1", "11-02", 29899).fires("LT-07", "lottery:l1"));
    let other = drawn().ev(
        "lottery.prize_shipped",
        "11-02",
        json!({"lottery": "l1", "participant": "p1", "prize": "贴纸", "value_fen": 99999}),
    );
    assert!(other.fires("LT-07", "lottery:l1"));
}

#[test]
fn lt08_withheld_prizes_only_when_enough_people_entered() {
    let many = enter(base(json!({})), "l1", &["p1", "p2", "p3"], "11-01 12:00");
    assert!(draw(many, &[("p1", "耳机")], "11-01 20:00").fires("LT-08", "lottery:l1"));
    let one = enter(base(json!({})), "l1", &["p1"], "11-01 12:00");
    assert!(!draw(one, &[("p1", "耳机")], "11-01 20:00").fires_any("LT-08"));
}

/// `n` lotteries of m1, each with `entrants` participants and one winner, `w` winning all.
fn series(n: usize, entrants: usize, w: &str) -> Stream {
    let mut s = Stream::new().merchant("m1");
    for i in 0..n {
        let l = format!("s{i}");
        let day = format!("11-{:02}", i + 1);
        s = s.ev("lottery.announced", &format!("{day} 10:00"), json!({"lottery": l, "merchant": "m1", "host": "h", "stream": "st",
            "prizes": [{"name": "券", "value_fen": 100, "count": 1}], "conditions": ["关注"], "draw_at": crate::t(&format!("{day} 20:00")),
            "deliver_within_days": 7, "organizer": "m1", "contact": "c"}));
        for p in 0..entrants {
            s = s.ev(
                "lottery.entered",
                &format!("{day} 12:00"),
                json!({"lottery": l, "participant": format!("p{p}")}),
            );
        }
        s = s.ev("lottery.closed", &format!("{day} 19:00"), json!({"lottery": l}));
        s = s.ev(
            "lottery.drawn",
            &format!("{day} 20:00"),
            json!({"lottery": l, "winners": [{"participant": w, "prize": "券"}]}),
        );
        s = s.ev(
            "lottery.prize_shipped",
            &format!("{day} 21:00"),
            json!({"lottery": l, "participant": w, "prize": "券", "value_fen": 100}),
        );
    }
    s
}

#[test]
fn lt09_repeat_winner_under_fair_draws_improbable() {
    // λ = 4 × 1/100; P(X ≥ 4) ≈ 1.1e-7 < 1e-6.
    assert!(series(4, 100, "p0").fires("LT-09", "merchant:m1"));
    // λ = 3 × 1/100; P(X ≥ 3) ≈ 4.4e-6: not yet.
    assert!(!series(3, 100, "p0").fires_any("LT-09"));
    // Winning every draw among two entrants is ordinary luck.
    assert!(!series(4, 2, "p0").fires_any("LT-09"));
}

#[test]
fn lt10_committed_draw_must_reveal_the_seed_and_follow_the_algorithm() {
    use weiquan_engine::draw;
    let seed = "weiquan-seed";
    let who = ["p1", "p2", "p3", "p4", "p5"];
    let s = enter(
        base(json!({"commitment": draw::commitment(seed)})),
        "l1",
        &who,
        "11-01 12:00",
    )
    .ev("lottery.closed", "11-01 19:00", json!({"lottery": "l1"}));
    let draw_with = |seed: Option<&str>, winners: &[(&str, &str)]| {
        let w: Vec<Value> = winners
            .iter()
            .map(|(p, prize)| json!({"participant": p, "prize": prize}))
            .collect();
        let mut d = json!({"lottery": "l1", "winners": w});
        if let (Some(seed), Some(o)) = (seed, d.as_object_mut()) {
            o.insert("seed".into(), json!(seed));
        }
        s.clone().ev("lottery.drawn", "11-01 20:00", d)
    };
    let fair: Vec<(&str, &str)> = draw::draw(seed, &who, &[2])
        .into_iter()
        .map(|(e, _)| (who[e], "耳机"))
        .collect();
    assert_eq!(fair.len(), 2);
    assert!(
        !draw_with(Some(seed), &fair).fires_any("LT-10"),
        "the algorithm's winners"
    );
    assert!(
        draw_with(Some("another seed"), &fair).fires("LT-10", "lottery:l1"),
        "seed does not match"
    );
    assert!(draw_with(None, &fair).fires("LT-10", "lottery:l1"), "no seed");
    let swapped = [fair[1], fair[0]];
    assert!(
        draw_with(Some(seed), &swapped).fires("LT-10", "lottery:l1"),
        "prizes in announced order"
    );
    let other = who.iter().find(|p| !fair.iter().any(|w| w.0 == **p)).expect("a loser");
    assert!(
        draw_with(Some(seed), &[(other, "耳机"), fair[1]]).fires("LT-10", "lottery:l1"),
        "a winner swapped for a loser"
    );
    // The algorithm runs over the entrants before the close: a late entrant changes nothing.
    let late = enter(s.clone(), "l1", &["p9"], "11-01 19:30");
    let w: Vec<Value> = fair
        .iter()
        .map(|(p, prize)| json!({"participant": p, "prize": prize}))
        .collect();
    assert!(!late
        .ev(
            "lottery.drawn",
            "11-01 20:00",
            json!({"lottery": "l1", "winners": w, "seed": seed})
        )
        .fires_any("LT-10"));
    assert!(!drawn().fires_any("LT-10"), "no commitment, nothing to verify");
}

#[test]
fn lt10_a_drand_round_fixed_at_announcement_must_be_mixed_in() {
    use weiquan_engine::draw;
    // drand quicknet round 123 (https://api3.drand.sh/52db9ba7…e971/public/123).
    let sig = "b75c69d0b72a5d906e854e808ba7e2accb1542ac355ae486d591aa9d43765482e26cd02df835d3546d23c4b13e0dfc92";
    let seed = "organiser-seed";
    let who = ["p1", "p2", "p3", "p4", "p5", "p6", "p7"];
    let s = enter(
        base(json!({"commitment": draw::commitment(seed), "beacon_round": 123})),
        "l1",
        &who,
        "11-01 12:00",
    )
    .ev("lottery.closed", "11-01 19:00", json!({"lottery": "l1"}));
    let winners = |seed: &str| -> Vec<Value> {
        draw::draw(seed, &who, &[2])
            .into_iter()
            .map(|(e, _)| json!({"participant": who[e], "prize": "耳机"}))
            .collect()
    };
    let mixed = draw::effective_seed(seed, Some(123), Some(sig)).expect("valid beacon");
    let fair = s.clone().ev(
        "lottery.drawn",
        "11-01 20:00",
        json!({"lottery": "l1", "winners": winners(&mixed), "seed": seed, "beacon_signature": sig}),
    );
    assert!(!fair.fires_any("LT-10"));
    let unmixed = s.clone().ev(
        "lottery.drawn",
        "11-01 20:00",
        json!({"lottery": "l1", "winners": winners(seed), "seed": seed, "beacon_signature": sig}),
    );
    assert_eq!(
        unmixed.fires("LT-10", "lottery:l1"),
        winners(seed) != winners(&mixed),
        "winners without the beacon are not the draw's"
    );
    let missing = s.clone().ev(
        "lottery.drawn",
        "11-01 20:00",
        json!({"lottery": "l1", "winners": winners(&mixed), "seed": seed}),
    );
    assert!(missing.fires("LT-10", "lottery:l1"), "no beacon signature");
    let forged = sig.replacen('b', "a", 1);
    let bad = s.ev(
        "lottery.drawn",
        "11-01 20:00",
        json!({"lottery": "l1", "winners": winners(&mixed), "seed": seed, "beacon_signature": forged}),
    );
    assert!(bad.fires("LT-10", "lottery:l1"), "a signature that does not verify");
}
