//! Spec 1.1, "Messy streams": one test per engine bug of issue 14 (each fails
//! on the engine before 1.1), and LT-11's boundaries.

use crate::{t, Stream};
use serde_json::json;

fn placed(o: &str) -> serde_json::Value {
    json!({"order": o, "merchant": "m1", "consumer": "u", "sku": "s", "qty": 1, "amount_fen": 100, "payment": "standard"})
}

fn announced() -> serde_json::Value {
    json!({"lottery": "l1", "merchant": "m1", "host": "h1", "stream": "st", "prizes": [{"name": "券", "value_fen": 1000, "count": 1}],
        "conditions": ["关注"], "draw_at": t("11-01 20:00"), "deliver_within_days": 7, "organizer": "店", "contact": "400"})
}

/// Bug 1: a change to `draw_at` after the draw must not cancel the winners' delivery deadline.
#[test]
fn lt06_survives_a_draw_time_change_after_the_draw() {
    let s = Stream::new()
        .ev("lottery.announced", "11-01 10:00", announced())
        .ev(
            "lottery.entered",
            "11-01 11:00",
            json!({"lottery": "l1", "participant": "p1"}),
        )
        .ev(
            "lottery.drawn",
            "11-01 20:00",
            json!({"lottery": "l1", "winners": [{"participant": "p1", "prize": "券"}]}),
        )
        .ev(
            "lottery.changed",
            "11-02",
            json!({"lottery": "l1", "draw_at": t("11-02 20:00")}),
        )
        .tick("11-10");
    assert!(s.fires("LT-06", "lottery:l1"));
    assert!(s.fires("LT-02", "lottery:l1"));
}

/// Bug 2: entrants who joined before a commitment was added count in the draw check,
/// and the late commitment itself is LT-10.
#[test]
fn entrants_before_a_late_commitment_count_and_the_late_commitment_is_lt10() {
    let seed = "seed-late";
    let commitment = weiquan_engine::draw::commitment(seed);
    let winners = weiquan_engine::draw::winners(seed, None, None, &["p1", "p2"], &[("券", 1)]).expect("draw");
    let drawn: Vec<_> = winners
        .iter()
        .map(|(p, z)| json!({"participant": p, "prize": z}))
        .collect();
    let s = Stream::new()
        .ev("lottery.announced", "11-01 10:00", announced())
        .ev(
            "lottery.entered",
            "11-01 11:00",
            json!({"lottery": "l1", "participant": "p1"}),
        )
        .ev(
            "lottery.changed",
            "11-01 12:00",
            json!({"lottery": "l1", "commitment": commitment}),
        )
        .ev(
            "lottery.entered",
            "11-01 13:00",
            json!({"lottery": "l1", "participant": "p2"}),
        )
        .ev(
            "lottery.drawn",
            "11-01 20:00",
            json!({"lottery": "l1", "winners": drawn, "seed": seed}),
        );
    let lt10: Vec<_> = s.run().into_iter().filter(|f| f.rule.as_str() == "LT-10").collect();
    // Once, at the late commitment; the fair draw over both entrants is not reported.
    assert_eq!(lt10.len(), 1, "{lt10:?}");
    assert_eq!(lt10[0].events, ["e3"]);
}

/// Bug 3: a price dated later than those after it must not prune the price in effect.
#[test]
fn pr01_keeps_the_price_in_effect_when_a_later_dated_price_came_first() {
    let s = Stream::new()
        .merchant("m1")
        .ev(
            "listing.published",
            "11-01",
            json!({"merchant": "m1", "sku": "s1", "title": "台灯", "price_fen": 8000}),
        )
        .ev(
            "price.changed",
            "12-31",
            json!({"merchant": "m1", "sku": "s1", "price_fen": 10000}),
        )
        .ev(
            "price.changed",
            "11-05",
            json!({"merchant": "m1", "sku": "s1", "price_fen": 10000}),
        )
        .ev(
            "listing.updated",
            "11-08",
            json!({"merchant": "m1", "sku": "s1", "reference_price_fen": 10000}),
        );
    assert!(s.fires("PR-01", "sku:m1/s1"));
    // And an honest reference (the lowest price in the window) is not reported.
    let honest = Stream::new()
        .merchant("m1")
        .ev(
            "listing.published",
            "11-01",
            json!({"merchant": "m1", "sku": "s1", "title": "台灯", "price_fen": 10000}),
        )
        .ev(
            "price.changed",
            "12-31",
            json!({"merchant": "m1", "sku": "s1", "price_fen": 8000}),
        )
        .ev(
            "listing.updated",
            "11-05",
            json!({"merchant": "m1", "sku": "s1", "reference_price_fen": 10000}),
        );
    assert!(!honest.fires_any("PR-01"));
}

/// Bug 4: a quote dated earlier than one already processed is compared within its own hour.
#[test]
fn pr02_compares_an_earlier_dated_quote_within_its_hour() {
    let q = |u: &str, p: u64| json!({"merchant": "m1", "sku": "s1", "consumer": u, "price_fen": p});
    let s = Stream::new()
        .ev("price.quoted", "11-01 10:00", q("u1", 10000))
        .ev("price.quoted", "11-01 12:00", q("u2", 10000))
        .ev("price.quoted", "11-01 10:30", q("u3", 10101));
    assert!(s.fires("PR-02", "sku:m1/s1"));
    // 1% above is not more than 1% above.
    let at_threshold = Stream::new()
        .ev("price.quoted", "11-01 10:00", q("u1", 10000))
        .ev("price.quoted", "11-01 12:00", q("u2", 10000))
        .ev("price.quoted", "11-01 10:30", q("u3", 10100));
    assert!(!at_threshold.fires_any("PR-02"));
}

/// Bug 5: a second refund request does not move the first one's deadline.
#[test]
fn mc08_each_refund_request_has_its_own_deadline() {
    let s = Stream::new()
        .merchant("m1")
        .ev("order.placed", "11-01", placed("o1"))
        .ev("order.shipped", "11-01 01:00", json!({"order": "o1"}))
        .ev(
            "refund.requested",
            "11-02",
            json!({"order": "o1", "amount_fen": 100, "no_reason": false}),
        )
        .ev(
            "refund.requested",
            "11-05",
            json!({"order": "o1", "amount_fen": 50, "no_reason": false}),
        )
        .tick("11-10");
    let f: Vec<_> = s.run().into_iter().filter(|f| f.rule.as_str() == "MC-08").collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].at.to_string(), t("11-09"));
    assert_eq!(f[0].events, ["e5"], "the first request is the evidence");
}

/// Bug 6: an earlier-dated consumer message waits for its own reply.
#[test]
fn mc07_an_earlier_dated_message_waits_for_its_own_reply() {
    let msg = |from: &str| json!({"merchant": "m1", "conversation": "v1", "consumer": "u1", "from": from});
    let s =
        Stream::new()
            .ev("service.message", "12-01", msg("consumer"))
            .ev("service.message", "11-05", msg("consumer"));
    assert!(s.fires("MC-07", "conversation:v1"));
    // A reply dated after the message (processed before it) answers it.
    let answered = Stream::new()
        .ev("service.message", "11-05 12:00", msg("merchant"))
        .ev("service.message", "11-05 10:00", msg("consumer"))
        .tick("11-10");
    assert!(!answered.fires_any("MC-07"));
    // A reply dated before it does not.
    let before = Stream::new()
        .ev("service.message", "11-05 08:00", msg("merchant"))
        .ev("service.message", "11-05 10:00", msg("consumer"))
        .tick("11-10");
    assert!(before.fires("MC-07", "conversation:v1"));
}

/// Bug 7: three pairs within 90 days blacklist whatever order their findings arrive in.
#[test]
fn blacklist_window_holds_findings_that_arrive_out_of_order() {
    let r = |sku: &str| json!({"merchant": "m1", "sku": sku, "reference_price_fen": 100});
    let s = Stream::new()
        .merchant("m1")
        .ev("listing.updated", "11-01", r("a"))
        .ev("listing.updated", "11-11", r("b"))
        .ev("listing.updated", "2027-05-20T00:00:00+08:00", r("a"))
        .ev("listing.updated", "11-21", r("c"))
        .ev(
            "listing.published",
            "2027-05-21T00:00:00+08:00",
            json!({"merchant": "m1", "sku": "d", "title": "台灯", "price_fen": 100}),
        );
    assert!(s.fires("MC-11", "merchant:m1"));
    // Pairs 91 days apart end to end are not "within 90 days", though each is within 90 of the middle one.
    let spread = Stream::new()
        .merchant("m1")
        .ev("listing.updated", "11-01", r("a"))
        .ev("listing.updated", "12-16", r("b"))
        .ev("listing.updated", "2027-01-31T00:00:01+08:00", r("c"))
        .ev(
            "listing.published",
            "2027-02-01T00:00:00+08:00",
            json!({"merchant": "m1", "sku": "d", "title": "台灯", "price_fen": 100}),
        );
    assert!(!spread.fires_any("MC-11"));
}

/// Bug 8: a change before the announcement arms nothing; no finding is without evidence.
#[test]
fn lt05_is_not_armed_by_a_change_before_the_announcement() {
    let mut a = announced();
    if let Some(o) = a.as_object_mut() {
        o.remove("draw_at");
    }
    let s = Stream::new()
        .ev(
            "lottery.changed",
            "10-31",
            json!({"lottery": "l1", "draw_at": t("10-31 14:00")}),
        )
        .ev("lottery.announced", "11-04", a);
    let f = s.run();
    assert!(f.iter().all(|f| !f.events.is_empty()), "{f:?}");
    assert!(!s.fires_any("LT-05"));
    assert!(s.fires("LT-01", "lottery:l1"), "draw_at was never disclosed");
}

/// Messy streams 11: a blacklist completed by deadlines the event's own clock move fires is in force for it.
#[test]
fn mc11_judges_an_event_against_a_blacklist_its_clock_move_completed() {
    let bnpl = |o: &str| json!({"order": o, "merchant": "m1", "consumer": "u", "sku": "s", "qty": 1, "amount_fen": 100, "payment": "bnpl"});
    let s = Stream::new()
        .merchant("m1")
        .ev("order.placed", "11-01", bnpl("o1"))
        .ev("order.placed", "11-01", bnpl("o2"))
        .ev("order.shipped", "11-01 01:00", json!({"order": "o1"}))
        .ev("order.shipped", "11-01 01:00", json!({"order": "o2"}))
        .ev(
            "refund.requested",
            "11-02",
            json!({"order": "o1", "amount_fen": 100, "no_reason": false}),
        )
        .ev(
            "listing.published",
            "11-10",
            json!({"merchant": "m1", "sku": "s1", "title": "台灯", "price_fen": 100}),
        );
    let rules: Vec<String> = s.run().iter().map(|f| f.rule.to_string()).collect();
    assert_eq!(rules, ["BN-03", "BN-03", "MC-08", "MC-11"]);
}

fn host_stream(events: &[(&str, serde_json::Value)]) -> Stream {
    let mut s = Stream::new();
    for (ty, fields) in events {
        s = s.ev(ty, "10-01", fields.clone());
    }
    s.ev("lottery.announced", "11-01", announced())
}

/// LT-11: registered and verified qualifies; never verified, or suspended since, does not.
#[test]
fn lt11_on_each_side_of_host_qualification() {
    let reg = ("host.registered", json!({"host": "h1", "name": "主播"}));
    let ver = (
        "host.verified",
        json!({"host": "h1", "method": "id_check", "by": "platform"}),
    );
    let sus = ("host.suspended", json!({"host": "h1"}));
    let rei = ("host.reinstated", json!({"host": "h1"}));
    assert!(!host_stream(&[reg.clone(), ver.clone()]).fires_any("LT-11"));
    assert!(host_stream(std::slice::from_ref(&reg)).fires("LT-11", "lottery:l1"));
    assert!(host_stream(&[reg.clone(), ver.clone(), sus.clone()]).fires("LT-11", "lottery:l1"));
    assert!(!host_stream(&[reg.clone(), ver.clone(), sus.clone(), rei.clone()]).fires_any("LT-11"));
    assert!(
        host_stream(&[reg.clone(), rei]).fires("LT-11", "lottery:l1"),
        "reinstated is not verified"
    );
    // Verified before it was registered still counts (Messy streams 2: facts before creation).
    assert!(!host_stream(&[ver.clone(), reg]).fires_any("LT-11"));
    // A host never registered: only when the rulebook requires a registry.
    assert!(!host_stream(&[]).fires_any("LT-11"));
    assert!(host_stream(&[])
        .rules("[thresholds]\nhost_registry_required = true\n")
        .fires("LT-11", "lottery:l1"));
}

/// LT-11 fires once per lottery, also on a change that sets an unqualified host.
#[test]
fn lt11_once_per_lottery_and_on_a_change_of_host() {
    let s = host_stream(&[
        ("host.registered", json!({"host": "h1", "name": "主播"})),
        (
            "host.verified",
            json!({"host": "h1", "method": "id_check", "by": "platform"}),
        ),
        ("host.registered", json!({"host": "h2", "name": "代播"})),
    ])
    .ev("lottery.changed", "11-01 12:00", json!({"lottery": "l1", "host": "h2"}))
    .ev("lottery.changed", "11-01 13:00", json!({"lottery": "l1", "host": "h2"}));
    let n = s.run().iter().filter(|f| f.rule.as_str() == "LT-11").count();
    assert_eq!(n, 1);
}

/// A host's view: its standing and since when (the event that set it, not
/// a later one that changed nothing), its merchant, and the lotteries that
/// named it, registered or not.
#[test]
fn a_hosts_view_says_where_it_stands_since_when_and_where_it_hosted() {
    use weiquan_engine::HostStanding;
    use weiquan_events::Time;
    let s = Stream::new()
        .ev(
            "host.registered",
            "10-01",
            json!({"host": "h1", "name": "主播", "merchant": "m1"}),
        )
        .ev("lottery.announced", "10-02", announced())
        .ev(
            "host.verified",
            "10-03",
            json!({"host": "h1", "method": "digital_id", "by": "platform"}),
        )
        .ev(
            "host.verified",
            "10-04",
            json!({"host": "h1", "method": "manual", "by": "platform"}),
        );
    let mut second = announced();
    second["lottery"] = json!("l2");
    second["host"] = json!("h9");
    let s = s.ev("lottery.announced", "10-05", second).ev(
        "lottery.changed",
        "10-06",
        json!({"lottery": "l2", "host": "h1"}),
    );
    let (_, engine) = s.run_with_engine();
    let h1 = engine.host("h1").expect("h1 is known");
    assert_eq!(h1.standing, HostStanding::Qualified);
    assert_eq!(
        h1.since,
        Some(Time::parse(&t("10-03")).expect("time")),
        "re-verifying changed nothing"
    );
    assert_eq!(h1.method, Some("manual"), "the latest verification's method");
    assert_eq!(h1.merchant.as_deref(), Some("m1"));
    assert_eq!(h1.lotteries, ["l1", "l2"]);
    let h9 = engine.host("h9").expect("named by a lottery");
    assert_eq!(
        (h9.standing, h9.since, h9.lotteries),
        (HostStanding::NotRegistered, None, vec!["l2".to_owned()])
    );
    assert!(engine.host("nobody").is_none());

    let (_, engine) = s
        .ev("host.suspended", "10-07", json!({"host": "h1", "reason": "投诉"}))
        .run_with_engine();
    let h1 = engine.host("h1").expect("h1 is known");
    assert_eq!(
        (h1.standing, h1.since),
        (HostStanding::Suspended, Some(Time::parse(&t("10-07")).expect("time")))
    );
}

/// Messages take their numbers from the rulebook in effect, not from the text
/// (with the EU profile's 30-day window, PR-01 says 30 days).
#[test]
fn messages_say_the_thresholds_in_effect() {
    let rules = "[thresholds]\ndeposit_cap_percent = 10.0\nlottery_prize_cap_fen = 100000\nno_reason_return_days = 10\nreference_window_days = 30\n";
    let presale = json!({"campaign": "c1", "merchant": "m1", "sku": "s1", "deposit_fen": 2000, "price_fen": 10000,
        "deposit_start": t("11-01"), "deposit_end": t("11-05"), "final_start": t("11-06"), "final_end": t("11-07"),
        "ship_within_days": 3, "deposit_refundable": true});
    let mut lottery = announced();
    lottery["prizes"] = json!([{"name": "券", "value_fen": 100_001, "count": 1}]);
    let s = Stream::new()
        .merchant("m1")
        .ev("presale.published", "11-01", presale)
        .ev("lottery.announced", "11-01", lottery)
        .ev("order.placed", "11-01", placed("o1"))
        .ev("order.delivered", "11-02", json!({"order": "o1"}))
        .ev(
            "refund.requested",
            "11-03",
            json!({"order": "o1", "amount_fen": 100, "no_reason": true}),
        )
        .ev("refund.rejected", "11-04", json!({"order": "o1", "reason": "no"}))
        .ev(
            "listing.updated",
            "11-05",
            json!({"merchant": "m1", "sku": "s1", "reference_price_fen": 100}),
        )
        .rules(rules);
    let book = weiquan_engine::Rulebook::with_overrides(rules).expect("rules");
    let said = |rule: &str| -> String {
        let f = s
            .run()
            .into_iter()
            .find(|f| f.rule.as_str() == rule)
            .unwrap_or_else(|| panic!("{rule} fires"));
        f.record(&book, weiquan_engine::Lang::En).message
    };
    assert!(said("PS-06").contains("over 10% of"), "{}", said("PS-06"));
    assert!(said("LT-03").contains("over the ¥1000.00 cap"), "{}", said("LT-03"));
    assert!(said("MC-09").contains("within 10 days"), "{}", said("MC-09"));
    assert!(said("PR-01").contains("in the 30 days before"), "{}", said("PR-01"));
}

/// A pre-sale published for merchant m1, with a gift and a price of 100 元.
fn presale_published() -> serde_json::Value {
    json!({"campaign": "c1", "merchant": "m1", "sku": "s1", "deposit_fen": 1000, "price_fen": 10000,
        "deposit_start": t("11-01"), "deposit_end": t("11-05"), "final_start": t("11-06"), "final_end": t("11-08"),
        "ship_within_days": 3, "deposit_refundable": true, "gifts": ["g"]})
}

fn deposit() -> serde_json::Value {
    json!({"campaign": "c1", "order": "o1", "consumer": "u1", "deposit_fen": 1000})
}

/// Messy streams 2: a deposit processed before its campaign's publish is the
/// merchant's obligation once the publish names the merchant: closing with it
/// unshipped is MC-04 in either order.
#[test]
fn a_deposit_before_the_publish_is_the_merchants_obligation() {
    for deposit_first in [true, false] {
        let (first, second) = match deposit_first {
            true => (
                ("presale.deposit_paid", "11-02", deposit()),
                ("presale.published", "11-01", presale_published()),
            ),
            false => (
                ("presale.published", "11-01", presale_published()),
                ("presale.deposit_paid", "11-02", deposit()),
            ),
        };
        let s = Stream::new()
            .ev(first.0, first.1, first.2)
            .ev(second.0, second.1, second.2)
            .ev("merchant.closed", "11-03", json!({"merchant": "m1"}));
        assert!(
            s.fires("MC-04", "merchant:m1"),
            "deposit first: {deposit_first}: {:?}",
            s.pairs()
        );
    }
}

/// Messy streams 2: a deposit processed before the campaign had terms
/// promised nothing of its own; the final payment is judged against the
/// terms in effect when it is processed (PS-01, PS-05), as PS-04 already was.
#[test]
fn a_final_payment_after_a_deposit_before_the_publish_is_judged_by_the_terms_in_effect() {
    let final_paid = |final_fen: u64, gifts: serde_json::Value| {
        Stream::new()
            .ev("presale.deposit_paid", "11-02", deposit())
            .ev("presale.published", "11-01", presale_published())
            .ev(
                "presale.final_paid",
                "11-06",
                json!({"campaign": "c1", "order": "o1", "final_fen": final_fen, "gifts": gifts}),
            )
    };
    let pairs = final_paid(9500, json!([])).tick("11-20").pairs();
    for rule in ["PS-01", "PS-05"] {
        assert!(
            pairs.contains(&(rule.into(), "campaign:c1".into())),
            "{rule}: {pairs:?}"
        );
    }
    assert!(pairs.contains(&("PS-04".into(), "order:o1".into())), "{pairs:?}");
    // Paid what was promised, with the gift: nothing.
    let kept = final_paid(9000, json!(["g"]));
    assert!(
        !kept.fires_any("PS-01") && !kept.fires_any("PS-05"),
        "{:?}",
        kept.pairs()
    );
}

/// Messy streams 2: a draw processed before its lottery's announcement is a
/// fact of the merchant the announcement names, and counts in LT-09 at that
/// merchant's next draw. Here p1 wins both single-prize draws of two entrants
/// (k = 2, λ = 1: P = 0.264, under a 0.3 threshold); with l1's draw not counted
/// it would be k = 1, λ = 0.5 (P = 0.39).
#[test]
fn a_draw_before_the_announcement_counts_for_lt09() {
    let lottery = |l: &str| {
        let mut a = announced();
        a["lottery"] = json!(l);
        a
    };
    let entries_and_draw = |s: Stream, l: &str| {
        s.ev(
            "lottery.entered",
            "11-01 11:00",
            json!({"lottery": l, "participant": "p1"}),
        )
        .ev(
            "lottery.entered",
            "11-01 11:00",
            json!({"lottery": l, "participant": "p2"}),
        )
        .ev(
            "lottery.drawn",
            "11-01 20:00",
            json!({"lottery": l, "winners": [{"participant": "p1", "prize": "券"}]}),
        )
    };
    let s = entries_and_draw(Stream::new().rules("[thresholds]\nrepeat_winner_max_p = 0.3\n"), "l1")
        .ev("lottery.announced", "11-01 10:00", lottery("l1"))
        .ev("lottery.announced", "11-01 10:00", lottery("l2"));
    let s = entries_and_draw(s, "l2");
    assert!(s.fires("LT-09", "merchant:m1"), "{:?}", s.pairs());
    // The same stream without l1's draw: one win in λ = 0.5 is not flagged.
    let one = entries_and_draw(
        Stream::new().rules("[thresholds]\nrepeat_winner_max_p = 0.3\n").ev(
            "lottery.announced",
            "11-01 10:00",
            lottery("l2"),
        ),
        "l2",
    );
    assert!(!one.fires_any("LT-09"), "{:?}", one.pairs());
}
