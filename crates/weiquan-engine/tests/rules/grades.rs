//! Credit grades as `docs/credit.md` states them: its worked example, what
//! each factor costs, "not rated yet", and the grade's history.

use crate::{t, Stream};
use serde_json::{json, Value};
use weiquan_engine::{FactorKind, Grade};

/// The merchant's grade once `s` has run.
fn grade(s: &Stream, merchant: &str) -> Grade {
    let (_, engine) = s.run_with_engine();
    engine.standing(merchant).expect("merchant seen").grade
}

fn points(g: &Grade, kind: FactorKind) -> f64 {
    g.factors
        .iter()
        .find(|f| f.kind == kind)
        .map(|f| f.points)
        .expect("every factor is listed")
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The fenced block of `lang` that follows `after` in `text`.
fn block<'a>(text: &'a str, after: &str, lang: &str) -> &'a str {
    let from = text
        .find(after)
        .unwrap_or_else(|| panic!("docs/credit.md has no `{after}`"));
    let open = format!("```{lang}\n");
    let start = text[from..].find(&open).expect("the block opens") + from + open.len();
    let end = text[start..].find("```").expect("the block closes") + start;
    &text[start..end]
}

#[test]
fn the_worked_example_in_docs_credit_md_is_what_the_engine_computes() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/credit.md")).expect("docs/credit.md");
    let events = block(&doc, "## Worked example", "ndjson");
    let want: Value =
        serde_json::from_str(block(&doc, "and checks the engine gives it", "json")).expect("the answer is JSON");
    let mut engine = weiquan_engine::Engine::new(std::sync::Arc::new(weiquan_engine::Rulebook::builtin()));
    for line in events.lines() {
        engine.apply(&weiquan_events::parse_event(line).expect("the example's events are valid"));
    }
    let g = engine.standing("m1").expect("m1").grade;
    let factors: Vec<Value> = (g.factors.iter())
        .map(|f| json!({"factor": f.kind.as_str(), "value": f.value.map(round1), "points": round1(f.points)}))
        .collect();
    let history: Vec<Value> = (g.history.iter())
        .map(|h| json!({"event": &*h.event, "from": h.from.map(String::from), "to": h.to.map(String::from), "score": h.score}))
        .collect();
    let got = json!({"grade": g.grade.map(String::from), "score": g.score, "orders": g.orders, "factors": factors, "history": history});
    // Numbers compare as numbers (2 and 2.0 alike).
    let norm = |v: &Value| {
        serde_json::from_str::<Value>(&v.to_string().replace(".0,", ",").replace(".0}", "}")).expect("json")
    };
    assert_eq!(norm(&got), norm(&want), "the engine's answer, against docs/credit.md's");
}

/// A merchant with `orders` orders (the first `shipped` shipped at once),
/// `complaints` complaints, read at 11-20.
fn merchant_with(orders: u32, shipped: u32, complaints: u32) -> Stream {
    let mut s = Stream::new().merchant("m1");
    for i in 0..orders {
        s = s.ev(
            "order.placed",
            "11-01 09:00",
            json!({"order": format!("o{i}"), "merchant": "m1", "consumer": format!("u{i}"), "sku": "s", "qty": 1, "amount_fen": 100, "payment": "standard"}),
        );
    }
    for i in 0..shipped {
        s = s.ev("order.shipped", "11-01 10:00", json!({"order": format!("o{i}")}));
    }
    for i in 0..complaints {
        let k = json!({"complaint": format!("k{i}"), "consumer": "u0", "merchant": "m1", "category": "quality"});
        s = s.ev("complaint.filed", "11-01 11:00", k).ev(
            "complaint.responded",
            "11-01 12:00",
            json!({"complaint": format!("k{i}"), "by": "merchant"}),
        );
    }
    s.tick("11-20")
}

#[test]
fn a_change_in_each_factor_moves_the_score_by_the_documented_amount() {
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-9, "{what}: {a} against {b}");
    // 20 orders, 16 shipped (4 late: MC-06 fired on them), 2 complaints.
    let base = grade(&merchant_with(20, 16, 2), "m1");
    close(points(&base, FactorKind::Complaints), 2.0 / 20.0 * 40.0, "complaints");
    close(
        points(&base, FactorKind::LateShipping),
        4.0 / 20.0 * 20.0,
        "late shipping",
    );
    // One more complaint: 40 / orders.
    let more = grade(&merchant_with(20, 16, 3), "m1");
    close(
        points(&more, FactorKind::Complaints) - points(&base, FactorKind::Complaints),
        40.0 / 20.0,
        "a complaint",
    );
    // One more order shipped on time: 40c/n → 40c/(n+1), and 20·late/(s(s+1)) given back.
    let bigger = grade(&merchant_with(21, 17, 2), "m1");
    close(points(&bigger, FactorKind::Complaints), 40.0 * 2.0 / 21.0, "an order");
    let (s, late) = (20.0, 4.0);
    close(
        points(&base, FactorKind::LateShipping) - points(&bigger, FactorKind::LateShipping),
        20.0 * late / (s * (s + 1.0)),
        "an order shipped on time",
    );
    // The four MC-06 findings (medium), dated 11-03 09:00 and read at 11-20 00:00: 6 × (1 − age/90) each.
    let age_days = 16.0 + 15.0 / 24.0;
    close(
        points(&base, FactorKind::Findings),
        4.0 * 6.0 * (1.0 - age_days / 90.0),
        "findings",
    );
    // The same merchant read a day later: each finding has lost 6/90.
    let later = grade(&merchant_with(20, 16, 2).tick("11-21"), "m1");
    close(
        points(&base, FactorKind::Findings) - points(&later, FactorKind::Findings),
        4.0 * 6.0 / 90.0,
        "a day of decay",
    );
    // A median first reply slower than 4 hours costs 5 points at once.
    let reply = |minutes: &str| {
        merchant_with(20, 16, 2)
            .ev(
                "service.message",
                "11-20 08:00",
                json!({"merchant": "m1", "conversation": "c", "consumer": "u1", "from": "consumer"}),
            )
            .ev(
                "service.message",
                &format!("11-20 {minutes}"),
                json!({"merchant": "m1", "conversation": "c", "consumer": "u1", "from": "merchant"}),
            )
    };
    assert_eq!(
        points(&grade(&reply("11:59"), "m1"), FactorKind::SlowReply),
        0.0,
        "under 4 hours (bucket 240)"
    );
    assert_eq!(
        points(&grade(&reply("12:30"), "m1"), FactorKind::SlowReply),
        5.0,
        "over 4 hours"
    );
    // The score is 100 less the factors' points.
    let sum: f64 = base.factors.iter().map(|f| f.points).sum();
    assert_eq!(base.score, round1(100.0 - sum));
}

#[test]
fn below_the_minimum_of_orders_a_merchant_is_not_rated_unless_blacklisted() {
    let few = grade(&merchant_with(9, 9, 0), "m1");
    assert_eq!((few.grade, few.orders, few.min_orders), (None, 9, 10));
    assert_eq!(few.score, 100.0, "the score is computed all the same");
    assert_eq!(grade(&merchant_with(10, 10, 0), "m1").grade, Some('A'));
    assert_eq!(
        grade(
            &merchant_with(1, 1, 0).rules("[credit]\nmin_orders_to_rate = 0\n"),
            "m1"
        )
        .grade,
        Some('A')
    );
    // MC-04 (closing with an order unshipped) blacklists at once: E, rated or not.
    let closed = merchant_with(2, 1, 0).ev("merchant.closed", "11-20 01:00", json!({"merchant": "m1"}));
    assert_eq!(grade(&closed, "m1").grade, Some('E'));
}

#[test]
fn the_history_names_the_event_that_changed_the_grade() {
    // Nine orders: not rated. The tenth rates it A; the MC-06 findings and late
    // shipments the 11-20 tick brings lower it to B or below, at that tick.
    let g = grade(&merchant_with(12, 8, 0), "m1");
    let changes: Vec<(String, Option<char>, Option<char>)> =
        g.history.iter().map(|h| (h.event.to_string(), h.from, h.to)).collect();
    assert_eq!(changes[0].1, None);
    assert_eq!(changes[0].2, Some('A'));
    let tenth = "e12"; // two merchant events, then o0…o9
    assert_eq!(changes[0].0, tenth, "the tenth order rated it");
    // Four unshipped orders pass their deadline (11-03 09:00) only when the 11-20
    // tick (e23) moves the clock: four fresh MC-06 findings at 11-03 read at 11-20
    // (19.6 points) and 4 of 12 shipped late (6.7): 73.8, a C.
    assert_eq!(changes[1..], [("e23".to_owned(), Some('A'), Some('C'))]);
    let at = g.history.last().map(|h| h.at);
    assert_eq!(at, weiquan_events::Time::parse(&t("11-20")).ok());
    assert_eq!(g.history_dropped, 0);
    // Replaying the same stream gives the same history (the engine is pure).
    assert_eq!(grade(&merchant_with(12, 8, 0), "m1").history, g.history);
}
