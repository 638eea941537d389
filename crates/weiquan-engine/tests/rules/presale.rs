//! PS-01..08.

use crate::Stream;
use serde_json::{json, Value};

/// Campaign c1 of m1: deposit ¥50 of ¥300, deposits 11-01..11-10, final 11-11..11-12,
/// ship within 10 days, a gift, refundable deposit stated.
pub fn terms() -> Value {
    json!({"campaign": "c1", "merchant": "m1", "sku": "s1", "deposit_fen": 5000, "price_fen": 30000,
        "deposit_start": crate::t("11-01"), "deposit_end": crate::t("11-10"), "final_start": crate::t("11-11"),
        "final_end": crate::t("11-12"), "ship_within_days": 10, "gifts": ["保温杯"], "deposit_refundable": true})
}

fn with(mut base: Value, patch: Value) -> Value {
    if let (Some(b), Value::Object(p)) = (base.as_object_mut(), patch) {
        for (k, v) in p {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
    base
}

pub fn base() -> Stream {
    Stream::new().merchant("m1").ev("presale.published", "11-01", terms())
}

fn deposit(s: Stream, order: &str, at: &str) -> Stream {
    s.ev(
        "presale.deposit_paid",
        at,
        json!({"campaign": "c1", "order": order, "consumer": "u1", "deposit_fen": 5000}),
    )
}

fn final_paid(s: Stream, order: &str, at: &str, final_fen: u64) -> Stream {
    s.ev(
        "presale.final_paid",
        at,
        json!({"campaign": "c1", "order": order, "final_fen": final_fen}),
    )
}

#[test]
fn ps01_fires_one_fen_over_the_promise_not_at_it() {
    let s = deposit(base(), "o1", "11-02");
    assert!(!final_paid(s.clone(), "o1", "11-11", 25000).fires("PS-01", "campaign:c1"));
    assert!(final_paid(s, "o1", "11-11", 25001).fires("PS-01", "campaign:c1"));
}

#[test]
fn ps01_judges_against_the_price_promised_at_deposit_time() {
    let s = deposit(base(), "o1", "11-02").ev(
        "presale.changed",
        "11-03",
        json!({"campaign": "c1", "price_fen": 32000}),
    );
    assert!(final_paid(s, "o1", "11-11", 27000).fires("PS-01", "campaign:c1"));
    // A consumer who paid the deposit after the raise was promised the new price.
    let s = base().ev(
        "presale.changed",
        "11-03",
        json!({"campaign": "c1", "price_fen": 32000}),
    );
    let s = deposit(s, "o2", "11-04");
    assert!(!final_paid(s, "o2", "11-11", 27000).fires_any("PS-01"));
}

#[test]
fn ps02_fires_for_each_detrimental_change_after_a_deposit() {
    for patch in [
        json!({"price_fen": 30001}),
        json!({"deposit_fen": 6000}),
        json!({"final_end": crate::t("11-13")}),
        json!({"ship_within_days": 11}),
        json!({"gifts": []}),
        json!({"deposit_refundable": false}),
    ] {
        let s = deposit(base(), "o1", "11-02").ev(
            "presale.changed",
            "11-03",
            with(json!({"campaign": "c1"}), patch.clone()),
        );
        assert!(s.fires("PS-02", "campaign:c1"), "{patch}");
    }
}

#[test]
fn ps02_ignores_changes_before_the_first_deposit_and_changes_in_consumers_favour() {
    let before = base().ev(
        "presale.changed",
        "11-01 12:00",
        json!({"campaign": "c1", "price_fen": 35000}),
    );
    assert!(!before.fires_any("PS-02"));
    for patch in [
        json!({"price_fen": 29000}),
        json!({"final_end": crate::t("11-11 12:00")}),
        json!({"ship_within_days": 5}),
        json!({"gifts": ["保温杯", "贴纸"]}),
        json!({"terms": "定金可退"}),
    ] {
        let s = deposit(base(), "o1", "11-02").ev(
            "presale.changed",
            "11-03",
            with(json!({"campaign": "c1"}), patch.clone()),
        );
        assert!(!s.fires_any("PS-02"), "{patch}");
    }
}

#[test]
fn ps03_sixty_days_exactly_is_allowed() {
    // final_end 11-12 + ship days; deposit_start 11-01: 11 days + ship days.
    let ok = Stream::new().merchant("m1").ev(
        "presale.published",
        "11-01",
        with(terms(), json!({"ship_within_days": 49})),
    );
    assert!(!ok.fires_any("PS-03"));
    let over = Stream::new().merchant("m1").ev(
        "presale.published",
        "11-01",
        with(terms(), json!({"ship_within_days": 50})),
    );
    assert!(over.fires("PS-03", "campaign:c1"));
}

#[test]
fn ps03_is_checked_again_at_each_change() {
    let s = base().ev(
        "presale.changed",
        "11-02",
        json!({"campaign": "c1", "final_end": crate::t("12-31")}),
    );
    assert!(s.fires("PS-03", "campaign:c1"));
}

#[test]
fn ps04_fires_when_not_shipped_within_the_days_promised_at_deposit() {
    let s = final_paid(deposit(base(), "o1", "11-02"), "o1", "11-11", 25000);
    assert!(
        !s.clone()
            .ev("order.shipped", "11-21", json!({"order": "o1"}))
            .tick("12-01")
            .fires_any("PS-04"),
        "shipped exactly at the deadline is in time"
    );
    assert!(s
        .clone()
        .ev("order.shipped", "11-21 00:01", json!({"order": "o1"}))
        .fires("PS-04", "order:o1"));
    // Ship days raised after the deposit do not extend this consumer's deadline.
    let raised = deposit(base(), "o1", "11-02").ev(
        "presale.changed",
        "11-03",
        json!({"campaign": "c1", "ship_within_days": 20}),
    );
    assert!(final_paid(raised, "o1", "11-11", 25000)
        .tick("11-22")
        .fires("PS-04", "order:o1"));
}

#[test]
fn ps05_fires_for_a_missing_promised_gift_or_a_withdrawal() {
    let s = deposit(base(), "o1", "11-02");
    let lacks = s.clone().ev(
        "presale.final_paid",
        "11-11",
        json!({"campaign": "c1", "order": "o1", "final_fen": 25000, "gifts": []}),
    );
    assert!(lacks.fires("PS-05", "campaign:c1"));
    let has = s.clone().ev(
        "presale.final_paid",
        "11-11",
        json!({"campaign": "c1", "order": "o1", "final_fen": 25000, "gifts": ["保温杯"]}),
    );
    assert!(!has.fires_any("PS-05"));
    assert!(
        !final_paid(s.clone(), "o1", "11-11", 25000).fires_any("PS-05"),
        "no gifts field says nothing"
    );
    assert!(s
        .clone()
        .ev(
            "presale.gift_withdrawn",
            "11-05",
            json!({"campaign": "c1", "gift": "保温杯"})
        )
        .fires("PS-05", "campaign:c1"));
    assert!(!s
        .ev(
            "presale.gift_withdrawn",
            "11-05",
            json!({"campaign": "c1", "gift": "never promised"})
        )
        .fires_any("PS-05"));
}

#[test]
fn ps06_twenty_percent_exactly_is_allowed_one_fen_more_is_not() {
    let at = |d: u64| {
        Stream::new()
            .merchant("m1")
            .ev("presale.published", "11-01", with(terms(), json!({"deposit_fen": d})))
    };
    assert!(!at(6000).fires_any("PS-06"));
    assert!(at(6001).fires("PS-06", "campaign:c1"));
    // A price cut can push the deposit over the cap.
    let cut = at(6000).ev(
        "presale.changed",
        "11-02",
        json!({"campaign": "c1", "price_fen": 29999}),
    );
    assert!(cut.fires("PS-06", "campaign:c1"));
}

#[test]
fn ps07_refundable_deposit_must_be_refunded_within_seven_days() {
    let s = deposit(base(), "o1", "11-02").ev(
        "presale.deposit_refund_requested",
        "11-03",
        json!({"campaign": "c1", "order": "o1"}),
    );
    let in_time = s
        .clone()
        .ev(
            "presale.deposit_refunded",
            "11-10",
            json!({"campaign": "c1", "order": "o1", "amount_fen": 5000}),
        )
        .tick("11-20");
    assert!(!in_time.fires_any("PS-07"));
    assert!(s.tick("11-10 00:01").fires("PS-07", "order:o1"));
}

#[test]
fn ps07_non_refundable_deposit_only_when_the_merchant_was_at_fault() {
    let nonref = Stream::new().merchant("m1").ev(
        "presale.published",
        "11-01",
        with(terms(), json!({"deposit_refundable": false})),
    );
    let asked = deposit(nonref, "o1", "11-02").ev(
        "presale.deposit_refund_requested",
        "11-03",
        json!({"campaign": "c1", "order": "o1"}),
    );
    assert!(!asked.clone().tick("11-20").fires_any("PS-07"));
    let fault = asked
        .ev(
            "presale.changed",
            "11-04",
            json!({"campaign": "c1", "price_fen": 40000}),
        )
        .tick("11-20");
    assert!(fault.fires("PS-02", "campaign:c1"));
    assert!(fault.fires("PS-07", "order:o1"));
}

#[test]
fn ps08_fires_only_when_neither_refundability_nor_terms_is_stated() {
    let bare = with(terms(), json!({"deposit_refundable": null}));
    assert!(Stream::new()
        .merchant("m1")
        .ev("presale.published", "11-01", bare.clone())
        .fires("PS-08", "campaign:c1"));
    assert!(!Stream::new()
        .merchant("m1")
        .ev(
            "presale.published",
            "11-01",
            with(bare.clone(), json!({"terms": "定金不退"}))
        )
        .fires_any("PS-08"));
    assert!(!Stream::new()
        .merchant("m1")
        .ev(
            "presale.published",
            "11-01",
            with(bare, json!({"deposit_refundable": false}))
        )
        .fires_any("PS-08"));
}
