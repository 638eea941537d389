//! MC-01..11 and BN-03.

use crate::{valid_uscc, Stream};
use serde_json::json;

fn order(s: Stream, o: &str, m: &str, at: &str) -> Stream {
    s.ev("order.placed", at, json!({"order": o, "merchant": m, "consumer": "u1", "sku": "s1", "qty": 1, "amount_fen": 5000, "payment": "standard"}))
}

fn register(s: Stream, m: &str, uscc: &str, licence: Option<&str>) -> Stream {
    let mut v = json!({"merchant": m, "name": "店", "uscc": uscc, "channels": ["mini_program"]});
    if let (Some(l), Some(o)) = (licence, v.as_object_mut()) {
        o.insert("licence_sha256".into(), json!(l));
    }
    s.ev("merchant.registered", "11-01", v)
}

#[test]
fn mc01_trading_before_verification() {
    let unverified = register(Stream::new(), "m1", &valid_uscc(1), None);
    assert!(unverified
        .clone()
        .ev(
            "listing.published",
            "11-01 01:00",
            json!({"merchant": "m1", "sku": "s1", "title": "t", "price_fen": 1})
        )
        .fires("MC-01", "merchant:m1"));
    assert!(order(unverified.clone(), "o1", "m1", "11-01 01:00").fires("MC-01", "merchant:m1"));
    assert!(
        order(Stream::new(), "o1", "ghost", "11-01 01:00").fires("MC-01", "merchant:ghost"),
        "never registered"
    );
    assert!(!order(Stream::new().merchant("m1"), "o1", "m1", "11-01 01:00").fires_any("MC-01"));
    // Publishing a pre-sale or a lottery is not listed in MC-01's trigger.
    assert!(!unverified
        .ev(
            "merchant.verified",
            "11-01 02:00",
            json!({"merchant": "m1", "method": "manual", "by": "p"})
        )
        .fires_any("MC-01"));
}

#[test]
fn mc02_checks_the_gb32100_check_character() {
    assert!(!register(Stream::new(), "m1", &valid_uscc(7), None).fires_any("MC-02"));
    assert!(register(Stream::new(), "m1", "91310000MA1K000040", None).fires("MC-02", "merchant:m1"));
    assert!(register(Stream::new(), "m1", "123", None).fires("MC-02", "merchant:m1"));
}

#[test]
fn mc03_reused_code_or_licence_reported_on_the_later_merchant() {
    let lic = "ab".repeat(32);
    let s = register(Stream::new(), "m1", &valid_uscc(1), Some(&lic));
    let same_code = register(s.clone(), "m2", &valid_uscc(1), None);
    assert!(same_code.fires("MC-03", "merchant:m2"));
    assert!(!same_code.fires("MC-03", "merchant:m1"));
    assert!(
        register(s.clone(), "m2", &valid_uscc(2), Some(&lic.to_uppercase())).fires("MC-03", "merchant:m2"),
        "hex case does not matter"
    );
    assert!(
        !register(s.clone(), "m1", &valid_uscc(1), Some(&lic)).fires_any("MC-03"),
        "re-registering itself"
    );
    assert!(!register(s, "m2", &valid_uscc(2), None).fires_any("MC-03"));
}

#[test]
fn mc04_closing_with_open_obligations() {
    let s = order(Stream::new().merchant("m1"), "o1", "m1", "11-01");
    let close = |s: Stream| s.ev("merchant.closed", "11-01 12:00", json!({"merchant": "m1"}));
    assert!(close(s.clone()).fires("MC-04", "merchant:m1"), "unshipped order");
    let shipped = s.clone().ev("order.shipped", "11-01 06:00", json!({"order": "o1"}));
    assert!(!close(shipped.clone()).fires_any("MC-04"));
    let refund = shipped.clone().ev(
        "refund.requested",
        "11-01 07:00",
        json!({"order": "o1", "amount_fen": 5000, "no_reason": true}),
    );
    assert!(
        close(refund.clone()).fires("MC-04", "merchant:m1"),
        "refund not settled"
    );
    assert!(
        !close(refund.ev("refund.rejected", "11-01 08:00", json!({"order": "o1", "reason": "r"}))).fires_any("MC-04")
    );
    let complaint = shipped.ev(
        "complaint.filed",
        "11-01 07:00",
        json!({"complaint": "p1", "consumer": "u1", "merchant": "m1", "category": "quality"}),
    );
    assert!(
        close(complaint.clone()).fires("MC-04", "merchant:m1"),
        "complaint not resolved"
    );
    assert!(!close(complaint.ev(
        "complaint.resolved",
        "11-01 08:00",
        json!({"complaint": "p1", "outcome": "refund"})
    ))
    .fires_any("MC-04"));
    let cancelled = s.ev(
        "order.cancelled",
        "11-01 06:00",
        json!({"order": "o1", "by": "consumer"}),
    );
    assert!(!close(cancelled).fires_any("MC-04"));
}

#[test]
fn mc04_unshipped_presale_deposit_counts() {
    let s = crate::presale::base().ev(
        "presale.deposit_paid",
        "11-02",
        json!({"campaign": "c1", "order": "o1", "consumer": "u1", "deposit_fen": 5000}),
    );
    assert!(s
        .clone()
        .ev("merchant.closed", "11-03", json!({"merchant": "m1"}))
        .fires("MC-04", "merchant:m1"));
    let refunded = s.ev(
        "presale.deposit_refunded",
        "11-02 12:00",
        json!({"campaign": "c1", "order": "o1", "amount_fen": 5000}),
    );
    assert!(!refunded
        .ev("merchant.closed", "11-03", json!({"merchant": "m1"}))
        .fires_any("MC-04"));
}

#[test]
fn mc05_new_order_with_three_overdue_obligations() {
    let mut s = Stream::new().merchant("m1");
    for o in ["o1", "o2", "o3"] {
        s = order(s, o, "m1", "11-01");
    }
    assert!(order(s.clone(), "o4", "m1", "11-04").fires("MC-05", "merchant:m1"));
    // Two still overdue: one was shipped late, so its cause is gone.
    let fixed = s
        .clone()
        .tick("11-03 12:00")
        .ev("order.shipped", "11-03 13:00", json!({"order": "o1"}));
    assert!(fixed.fires("MC-06", "order:o1"));
    assert!(!order(fixed, "o4", "m1", "11-04").fires_any("MC-05"));
    let two = order(
        order(Stream::new().merchant("m1"), "o1", "m1", "11-01"),
        "o2",
        "m1",
        "11-01",
    );
    assert!(!order(two, "o4", "m1", "11-04").fires_any("MC-05"));
}

#[test]
fn mc06_ordinary_orders_ship_within_two_days() {
    let s = order(Stream::new().merchant("m1"), "o1", "m1", "11-01");
    assert!(
        !s.clone()
            .ev("order.shipped", "11-03", json!({"order": "o1"}))
            .tick("11-10")
            .fires_any("MC-06"),
        "exactly two days"
    );
    assert!(s.clone().tick("11-03 00:01").fires("MC-06", "order:o1"));
    assert!(!s
        .clone()
        .ev("order.cancelled", "11-02", json!({"order": "o1", "by": "consumer"}))
        .tick("11-10")
        .fires_any("MC-06"));
    assert!(!s
        .ev("refund.completed", "11-02", json!({"order": "o1", "amount_fen": 5000}))
        .tick("11-10")
        .fires_any("MC-06"));
    let presale = Stream::new().merchant("m1").ev("order.placed", "11-01", json!({"order": "o9", "merchant": "m1", "consumer": "u", "sku": "s", "qty": 1, "amount_fen": 1, "payment": "standard", "campaign": "c1"}));
    assert!(
        !presale.tick("11-10").fires_any("MC-06"),
        "pre-sale orders follow PS-04"
    );
}

#[test]
fn mc07_a_human_must_reply_within_a_day() {
    let msg = |s: Stream, from: &str, at: &str| {
        s.ev(
            "service.message",
            at,
            json!({"merchant": "m1", "conversation": "v1", "consumer": "u1", "from": from}),
        )
    };
    let asked = msg(Stream::new().merchant("m1"), "consumer", "11-01 09:00");
    assert!(msg(asked.clone(), "bot", "11-01 09:01")
        .tick("11-02 09:01")
        .fires("MC-07", "conversation:v1"));
    assert!(
        !msg(asked.clone(), "merchant", "11-02 09:00")
            .tick("11-05")
            .fires_any("MC-07"),
        "exactly one day"
    );
    assert!(msg(asked, "merchant", "11-02 09:01").fires("MC-07", "conversation:v1"));
}

#[test]
fn mc08_refund_answered_within_seven_days() {
    let s = order(Stream::new().merchant("m1"), "o1", "m1", "11-01")
        .ev("order.shipped", "11-01 01:00", json!({"order": "o1"}))
        .ev(
            "refund.requested",
            "11-02",
            json!({"order": "o1", "amount_fen": 5000, "no_reason": false}),
        );
    assert!(!s
        .clone()
        .ev("refund.completed", "11-09", json!({"order": "o1", "amount_fen": 5000}))
        .tick("11-20")
        .fires_any("MC-08"));
    assert!(!s
        .clone()
        .ev("refund.rejected", "11-09", json!({"order": "o1", "reason": "x"}))
        .tick("11-20")
        .fires_any("MC-08"));
    assert!(s.tick("11-09 00:01").fires("MC-08", "order:o1"));
}

#[test]
fn mc09_seven_day_return_refused() {
    let delivered = order(Stream::new().merchant("m1"), "o1", "m1", "11-01")
        .ev("order.shipped", "11-01 01:00", json!({"order": "o1"}))
        .ev("order.delivered", "11-02", json!({"order": "o1"}));
    let ask = |s: Stream, at: &str, no_reason: bool| {
        s.ev(
            "refund.requested",
            at,
            json!({"order": "o1", "amount_fen": 5000, "no_reason": no_reason}),
        )
        .ev("refund.rejected", at, json!({"order": "o1", "reason": "拆封"}))
    };
    assert!(
        ask(delivered.clone(), "11-09", true).fires("MC-09", "order:o1"),
        "exactly 7 days after delivery"
    );
    assert!(!ask(delivered.clone(), "11-09 00:01", true).fires_any("MC-09"));
    assert!(
        !ask(delivered, "11-03", false).fires_any("MC-09"),
        "not a no-reason request"
    );
}

#[test]
fn mc10_complaint_answered_within_seven_days() {
    let s = Stream::new().merchant("m1").ev(
        "complaint.filed",
        "11-01",
        json!({"complaint": "p1", "consumer": "u1", "merchant": "m1", "category": "quality"}),
    );
    assert!(!s
        .clone()
        .ev(
            "complaint.responded",
            "11-08",
            json!({"complaint": "p1", "by": "platform"})
        )
        .tick("11-20")
        .fires_any("MC-10"));
    assert!(s.tick("11-08 00:01").fires("MC-10", "complaint:p1"));
}

#[test]
fn mc11_blacklisted_merchant_keeps_trading() {
    // Three high findings on distinct (rule, subject) pairs: BN-03 on three orders.
    let mut s = Stream::new().merchant("m1");
    for o in ["o1", "o2", "o3"] {
        s = s.ev("order.placed", "11-01", json!({"order": o, "merchant": "m1", "consumer": "u", "sku": "s", "qty": 1, "amount_fen": 1, "payment": "bnpl"}));
    }
    assert!(
        !s.fires_any("MC-11"),
        "the event that completes the blacklist is not a breach of it"
    );
    let listed = s.clone().ev(
        "listing.published",
        "11-01 01:00",
        json!({"merchant": "m1", "sku": "s1", "title": "t", "price_fen": 1}),
    );
    assert!(listed.fires("MC-11", "merchant:m1"));
    let two = Stream::new().merchant("m1").ev("order.placed", "11-01", json!({"order": "o1", "merchant": "m1", "consumer": "u", "sku": "s", "qty": 1, "amount_fen": 1, "payment": "bnpl"}));
    assert!(!two
        .ev(
            "listing.published",
            "11-01 01:00",
            json!({"merchant": "m1", "sku": "s1", "title": "t", "price_fen": 1})
        )
        .fires_any("MC-11"));
}

#[test]
fn mc11_after_mc04_alone() {
    let s = order(Stream::new().merchant("m1"), "o1", "m1", "11-01").ev(
        "merchant.closed",
        "11-01 01:00",
        json!({"merchant": "m1"}),
    );
    assert!(order(s, "o2", "m1", "11-01 02:00").fires("MC-11", "merchant:m1"));
}

#[test]
fn bn03_pay_later_order_without_second_confirmation() {
    let bnpl = |confirmed: serde_json::Value| {
        let mut v = json!({"order": "o1", "merchant": "m1", "consumer": "u", "sku": "s", "qty": 1, "amount_fen": 1, "payment": "bnpl"});
        if let (false, Some(o)) = (confirmed.is_null(), v.as_object_mut()) {
            o.insert("confirmed".into(), confirmed);
        }
        Stream::new().merchant("m1").ev("order.placed", "11-01", v)
    };
    assert!(bnpl(json!(false)).fires("BN-03", "order:o1"));
    assert!(bnpl(serde_json::Value::Null).fires("BN-03", "order:o1"));
    assert!(!bnpl(json!(true)).fires_any("BN-03"));
}

#[test]
fn lifting_a_blacklist_is_an_event_and_trading_after_it_is_allowed() {
    let s = order(Stream::new().merchant("m1"), "o1", "m1", "11-01").ev(
        "merchant.closed",
        "11-01 01:00",
        json!({"merchant": "m1"}),
    );
    let lifted = s.ev(
        "merchant.blacklist_lifted",
        "11-01 02:00",
        json!({"merchant": "m1", "by": "regulator", "reason": "整改完成"}),
    );
    assert!(!order(lifted, "o2", "m1", "11-01 03:00").fires_any("MC-11"));
}

/// The run-away watch list: a merchant that stops shipping and keeps taking
/// orders rises to the top with its signals; one that ships is not listed; a
/// complaint spike against the merchant's own (empty) history counts; a
/// closed merchant has left the list (MC-04 took over).
#[test]
fn the_watch_list_ranks_a_merchant_drifting_toward_running_away_first() {
    use weiquan_engine::WatchSignal;
    let order = |o: &str, m: &str| json!({"order": o, "merchant": m, "consumer": "u", "sku": "s", "qty": 1, "amount_fen": 100, "payment": "standard"});
    let mut s = Stream::new().merchant("good").merchant("bad").merchant("loud");
    for i in 0..4 {
        s = s
            .ev("order.placed", "11-01 09:00", order(&format!("g{i}"), "good"))
            .ev("order.shipped", "11-01 18:00", json!({"order": format!("g{i}")}))
            .ev("order.placed", "11-01 09:00", order(&format!("b{i}"), "bad"));
    }
    // Two days on, bad's four orders are overdue; it takes two more.
    s = s
        .ev("order.placed", "11-03 12:00", order("b4", "bad"))
        .ev("order.placed", "11-03 13:00", order("b5", "bad"));
    for i in 0..3 {
        let k = json!({"complaint": format!("k{i}"), "consumer": "u", "merchant": "loud", "category": "quality"});
        s = s.ev("complaint.filed", "11-03 10:00", k);
    }
    let (_, engine) = s.run_with_engine();
    let list = engine.watchlist();
    let names: Vec<&str> = list.iter().map(|e| e.merchant.as_str()).collect();
    assert_eq!(names, ["bad", "loud"], "{list:?}");
    let signal =
        |e: &weiquan_engine::WatchEntry, k: WatchSignal| e.signals.iter().find(|s| s.0 == k).map(|s| (s.1, s.2));
    assert_eq!(signal(&list[0], WatchSignal::Overdue), Some((4.0, 40.0)));
    assert_eq!(signal(&list[0], WatchSignal::OrdersWhileOverdue), Some((2.0, 4.0)));
    assert_eq!(
        signal(&list[0], WatchSignal::ShippingStalled),
        Some((6.0, 18.0)),
        "nothing shipped, six waiting"
    );
    assert_eq!(
        signal(&list[0], WatchSignal::OrdersAging),
        Some((4.0, 32.0)),
        "four with 36 of their 48 hours gone"
    );
    assert_eq!(list[0].score, 94.0);
    assert_eq!(signal(&list[1], WatchSignal::ShippingStalled), Some((0.0, 0.0)));
    assert_eq!(
        signal(&list[1], WatchSignal::ComplaintSpike),
        Some((2.0, 10.0)),
        "3 this week against none before"
    );
    let (_, engine) = s
        .ev("merchant.closed", "11-03 14:00", json!({"merchant": "bad"}))
        .run_with_engine();
    assert!(
        engine.watchlist().iter().all(|e| e.merchant != "bad"),
        "closed: MC-04's now"
    );
}

/// Pre-sale money a merchant holds on orders it has not shipped is on the
/// watch list, and leaves it when the order ships.
#[test]
fn the_watch_list_shows_presale_money_held() {
    use weiquan_engine::WatchSignal;
    let presale = json!({"campaign": "c1", "merchant": "m1", "sku": "s1", "deposit_fen": 50000, "price_fen": 200000,
        "deposit_start": crate::t("11-01"), "deposit_end": crate::t("11-05"), "final_start": crate::t("11-06"), "final_end": crate::t("11-07"),
        "ship_within_days": 3, "deposit_refundable": true});
    let s = Stream::new()
        .merchant("m1")
        .ev("presale.published", "11-01", presale)
        .ev(
            "presale.deposit_paid",
            "11-02",
            json!({"order": "o1", "campaign": "c1", "consumer": "u1", "deposit_fen": 50000}),
        );
    let money = |s: &Stream| {
        let (_, engine) = s.run_with_engine();
        let list = engine.watchlist();
        list.iter().find(|e| e.merchant == "m1").and_then(|e| {
            e.signals
                .iter()
                .find(|x| x.0 == WatchSignal::DepositMoney)
                .map(|x| (x.1, x.2))
        })
    };
    assert_eq!(money(&s), Some((500.0, 0.5)), "¥500 held: a point per ¥1,000");
    assert_eq!(
        money(&s.ev("order.shipped", "11-03", json!({"order": "o1"}))),
        None,
        "shipped: off the list"
    );
}
