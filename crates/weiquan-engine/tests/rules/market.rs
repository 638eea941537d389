//! PR-01, PR-02, MK-01 and BN-01, BN-02, BN-04, BN-05.

use crate::Stream;
use serde_json::json;

fn listed(price: u64, at: &str) -> Stream {
    Stream::new().merchant("m1").ev(
        "listing.published",
        at,
        json!({"merchant": "m1", "sku": "s1", "title": "电饭煲", "price_fen": price}),
    )
}

fn reference(s: Stream, at: &str, price: u64, reference: u64) -> Stream {
    s.ev(
        "listing.updated",
        at,
        json!({"merchant": "m1", "sku": "s1", "price_fen": price, "reference_price_fen": reference}),
    )
}

fn price(s: Stream, at: &str, p: u64) -> Stream {
    s.ev(
        "price.changed",
        at,
        json!({"merchant": "m1", "sku": "s1", "price_fen": p}),
    )
}

#[test]
fn pr01_reference_at_most_the_lowest_price_of_the_seven_days_before() {
    assert!(!reference(listed(10000, "11-01"), "11-10", 8000, 10000).fires_any("PR-01"));
    assert!(reference(listed(10000, "11-01"), "11-10", 8000, 10001).fires("PR-01", "sku:m1/s1"));
}

#[test]
fn pr01_raise_then_discount() {
    let s = price(listed(10000, "11-01"), "11-05", 15000);
    assert!(reference(s, "11-06", 12000, 15000).fires("PR-01", "sku:m1/s1"));
}

#[test]
fn pr01_counts_the_price_in_effect_when_the_window_opened() {
    // 11-01: 8000, 11-03 00:00: 10000; reference on 11-10 00:00 looks back to 11-03 00:00,
    // when 10000 was already in effect: 8000 no longer counts.
    let s = price(listed(8000, "11-01"), "11-03", 10000);
    assert!(!reference(s.clone(), "11-10", 9000, 10000).fires_any("PR-01"));
    // One minute earlier the window opens while 8000 is still in effect.
    assert!(reference(s, "11-09 23:59", 9000, 10000).fires("PR-01", "sku:m1/s1"));
}

#[test]
fn pr01_reference_on_a_new_sku_fires() {
    let s = Stream::new().merchant("m1").ev(
        "listing.published",
        "11-01",
        json!({"merchant": "m1", "sku": "s2", "title": "t", "price_fen": 8000, "reference_price_fen": 8000}),
    );
    assert!(s.fires("PR-01", "sku:m1/s2"));
    assert!(!listed(8000, "11-01").fires_any("PR-01"));
}

#[test]
fn pr01_window_follows_the_rulebook() {
    let s = price(listed(8000, "10-01"), "10-20", 10000);
    assert!(!reference(s.clone(), "11-10", 9000, 10000).fires_any("PR-01"));
    assert!(reference(s, "11-10", 9000, 10000)
        .rules("[thresholds]\nreference_window_days = 30\n")
        .fires("PR-01", "sku:m1/s1"));
}

fn quote(s: Stream, at: &str, consumer: &str, p: u64, segment: Option<&str>) -> Stream {
    let mut v = json!({"merchant": "m1", "sku": "s1", "consumer": consumer, "price_fen": p});
    if let (Some(seg), Some(o)) = (segment, v.as_object_mut()) {
        o.insert("segment".into(), json!(seg));
    }
    s.ev("price.quoted", at, v)
}

#[test]
fn pr02_more_than_one_percent_above_the_listed_price() {
    assert!(!quote(listed(10000, "11-01"), "11-02", "u1", 10100, None).fires_any("PR-02"));
    assert!(quote(listed(10000, "11-01"), "11-02", "u1", 10101, None).fires("PR-02", "sku:m1/s1"));
}

#[test]
fn pr02_compared_with_same_segment_quotes_in_the_last_hour() {
    let s = quote(listed(10000, "11-01"), "11-02 12:00", "u1", 9000, Some("member"));
    assert!(quote(s.clone(), "11-02 12:30", "u2", 9500, Some("member")).fires("PR-02", "sku:m1/s1"));
    assert!(
        !quote(s.clone(), "11-02 12:30", "u2", 9090, Some("member")).fires_any("PR-02"),
        "exactly 1% more"
    );
    assert!(
        !quote(s.clone(), "11-02 12:30", "u2", 9500, Some("returning")).fires_any("PR-02"),
        "another segment"
    );
    assert!(
        !quote(s.clone(), "11-02 13:01", "u2", 9500, Some("member")).fires_any("PR-02"),
        "more than an hour later"
    );
    assert!(
        !quote(s.clone(), "11-02 12:30", "u1", 9500, Some("member")).fires_any("PR-02"),
        "the same consumer"
    );
    let changed = price(s, "11-02 12:10", 9500);
    assert!(
        !quote(changed, "11-02 12:30", "u2", 9500, Some("member")).fires_any("PR-02"),
        "price changed in between"
    );
}

#[test]
fn mk01_absolute_terms_in_title_or_text() {
    let pub_ = |title: &str, text: Option<&str>| {
        let mut v = json!({"merchant": "m1", "sku": "s1", "title": title, "price_fen": 100});
        if let (Some(t), Some(o)) = (text, v.as_object_mut()) {
            o.insert("text".into(), json!(t));
        }
        Stream::new().merchant("m1").ev("listing.published", "11-01", v)
    };
    assert!(pub_("全网最低价 保温杯", None).fires("MK-01", "sku:m1/s1"));
    assert!(pub_("保温杯", Some("行业第一品牌")).fires("MK-01", "sku:m1/s1"));
    assert!(!pub_("保温杯", Some("保温 12 小时")).fires_any("MK-01"));
    let updated = pub_("保温杯", None).ev(
        "listing.updated",
        "11-02",
        json!({"merchant": "m1", "sku": "s1", "title": "顶级保温杯"}),
    );
    assert!(updated.fires("MK-01", "sku:m1/s1"));
}

fn bnpl(ty: &str, fields: serde_json::Value) -> Stream {
    Stream::new().ev(ty, "11-01", fields)
}

#[test]
fn bn01_pre_ticked_or_bundled_consent() {
    assert!(bnpl(
        "bnpl.offered",
        json!({"consumer": "u1", "session": "s", "preselected": true, "terms_shown": true})
    )
    .fires("BN-01", "consumer:u1"));
    assert!(!bnpl(
        "bnpl.offered",
        json!({"consumer": "u1", "session": "s", "preselected": false, "terms_shown": true})
    )
    .fires_any("BN-01"));
    for consent in ["preselected", "bundled"] {
        assert!(bnpl(
            "bnpl.enabled",
            json!({"consumer": "u1", "provider": "p", "consent": consent, "identity_verified": true})
        )
        .fires("BN-01", "consumer:u1"));
    }
    assert!(!bnpl(
        "bnpl.enabled",
        json!({"consumer": "u1", "provider": "p", "consent": "explicit", "identity_verified": true})
    )
    .fires_any("BN-01"));
}

#[test]
fn bn02_no_identity_check() {
    assert!(bnpl(
        "bnpl.enabled",
        json!({"consumer": "u1", "provider": "p", "consent": "explicit", "identity_verified": false})
    )
    .fires("BN-02", "consumer:u1"));
    assert!(!bnpl(
        "bnpl.enabled",
        json!({"consumer": "u1", "provider": "p", "consent": "explicit", "identity_verified": true})
    )
    .fires_any("BN-02"));
}

#[test]
fn bn04_two_steps_to_cancel_is_the_most_allowed() {
    let steps = |n: u32| bnpl("bnpl.disabled", json!({"consumer": "u1", "provider": "p", "steps": n}));
    assert!(!steps(2).fires_any("BN-04"));
    assert!(steps(3).fires("BN-04", "consumer:u1"));
    assert!(bnpl("bnpl.cancel_failed", json!({"consumer": "u1", "provider": "p"})).fires("BN-04", "consumer:u1"));
}

#[test]
fn bn05_terms_hidden() {
    assert!(bnpl(
        "bnpl.offered",
        json!({"consumer": "u1", "session": "s", "preselected": false, "terms_shown": false})
    )
    .fires("BN-05", "consumer:u1"));
    assert!(!bnpl(
        "bnpl.offered",
        json!({"consumer": "u1", "session": "s", "preselected": false, "terms_shown": true})
    )
    .fires_any("BN-05"));
}

/// A consumer's pay-later registry: per provider, on or off, since when and
/// by which event, how it was switched on; a switch that arrives late (dated
/// before the one in effect) changes nothing; failed cancels are counted.
#[test]
fn the_paylater_registry_says_per_provider_whether_it_is_on_since_when_and_how() {
    let on = |provider: &str, consent: &str| json!({"consumer": "u1", "provider": provider, "consent": consent, "identity_verified": consent == "explicit"});
    let s = crate::Stream::new()
        .ev("bnpl.enabled", "11-01 10:00", on("huabei", "bundled"))
        .ev("bnpl.enabled", "11-02 10:00", on("yue", "explicit"))
        .ev(
            "bnpl.disabled",
            "11-03 10:00",
            json!({"consumer": "u1", "provider": "yue", "steps": 1}),
        )
        // Late: dated before the switch-off in effect.
        .ev("bnpl.enabled", "11-02 12:00", on("yue", "explicit"))
        .ev(
            "bnpl.cancel_failed",
            "11-04 10:00",
            json!({"consumer": "u1", "provider": "huabei"}),
        );
    let (_, engine) = s.run_with_engine();
    let reg = engine.paylater("u1");
    let at = |short: &str| weiquan_events::Time::parse(&crate::t(short)).expect("time");
    assert_eq!(reg.len(), 2);
    let (huabei, yue) = (&reg[0], &reg[1]);
    assert_eq!(
        (
            huabei.provider.as_str(),
            huabei.enabled,
            huabei.since,
            huabei.event.as_str(),
            huabei.consent,
            huabei.cancel_failed
        ),
        ("huabei", true, at("11-01 10:00"), "e1", Some(("bundled", false)), 1)
    );
    assert_eq!(
        (
            yue.provider.as_str(),
            yue.enabled,
            yue.since,
            yue.event.as_str(),
            yue.steps
        ),
        ("yue", false, at("11-03 10:00"), "e3", Some(1))
    );
    assert_eq!(
        yue.consent,
        Some(("explicit", true)),
        "how it was switched on, the last time"
    );
    assert!(engine.paylater("u2").is_empty());
}
