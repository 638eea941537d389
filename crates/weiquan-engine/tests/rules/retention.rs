//! Retention (`docs/messy-streams.md`, "Retention"): which subjects are
//! forgotten, when, and what an event about a forgotten one does.

use crate::Stream;
use serde_json::json;
use weiquan_engine::Rulebook;

/// A time in 2027, when the horizon of events in late 2026 runs out.
fn y27(date: &str) -> String {
    format!("2027-{date}T00:00:00+08:00")
}

fn placed(o: &str) -> serde_json::Value {
    json!({"order": o, "merchant": "m1", "consumer": "u", "sku": "s", "qty": 1, "amount_fen": 100, "payment": "standard"})
}

/// 180 days after a complaint's last deadline (MC-10's, a week after filing;
/// later than its last event) it is still shown; a moment later it is gone
/// (the clock must be strictly past the horizon).
#[test]
fn a_subject_is_forgotten_only_once_the_clock_is_past_the_horizon() {
    let filed = Stream::new()
        .merchant("m1")
        .ev(
            "complaint.filed",
            "11-01",
            json!({"complaint": "p1", "consumer": "u", "merchant": "m1", "category": "quality"}),
        )
        .ev(
            "complaint.responded",
            "11-02",
            json!({"complaint": "p1", "by": "merchant", "text": "已处理"}),
        );
    // MC-10 due 2026-11-08, + 180 days = 2027-05-07.
    let (_, engine) = filed.clone().tick(&y27("05-07")).run_with_engine();
    assert!(engine.complaint("p1").is_some(), "kept up to the horizon itself");
    let (_, engine) = filed.clone().tick("2027-05-07T00:00:00.001+08:00").run_with_engine();
    assert!(engine.complaint("p1").is_none(), "forgotten once the clock is past it");
    let (_, engine) = filed
        .rules("[thresholds]\nretention_days = 0\n")
        .tick(&y27("12-01"))
        .run_with_engine();
    assert!(
        engine.complaint("p1").is_some(),
        "retention_days = 0 keeps every subject"
    );
}

/// An event about a forgotten campaign is its first event: a price rise
/// 200 days after the last deposit is a change before creation (judged by no
/// rule), where an engine that kept the campaign reports PS-02.
#[test]
fn an_event_about_a_forgotten_subject_is_applied_as_its_first() {
    // A deposit, the order shipped, then a price rise on `date`.
    let rise_on = |date: &str| {
        crate::presale::base()
            .ev(
                "presale.deposit_paid",
                "11-02",
                json!({"campaign": "c1", "order": "o1", "consumer": "u1", "deposit_fen": 5000}),
            )
            .ev("order.shipped", "11-20", json!({"order": "o1"}))
            .ev(
                "presale.changed",
                &y27(date),
                json!({"campaign": "c1", "price_fen": 31000}),
            )
    };
    let s = rise_on("06-10");
    assert!(!s.fires("PS-02", "campaign:c1"), "{:?}", s.pairs());
    assert!(s
        .clone()
        .rules("[thresholds]\nretention_days = 0\n")
        .fires("PS-02", "campaign:c1"));
    // Within the horizon the campaign is remembered, and the change is PS-02.
    assert!(rise_on("04-10").fires("PS-02", "campaign:c1"));
}

/// What a merchant owes for a forgotten order stands: an order never shipped
/// is still an open obligation when the merchant closes a year later (MC-04),
/// and a shipment that arrives after the order was forgotten cures nothing.
#[test]
fn a_forgotten_order_still_counts_against_its_merchant() {
    let s = Stream::new()
        .merchant("m1")
        .ev("order.placed", "11-01", placed("o1"))
        .ev("order.shipped", &y27("06-01"), json!({"order": "o1"}))
        .ev(
            "merchant.closed",
            &y27("11-01"),
            json!({"merchant": "m1", "reason": "停业"}),
        );
    let kept_for_ever = s.clone().rules("[thresholds]\nretention_days = 0\n");
    assert!(s.fires("MC-06", "order:o1"));
    assert!(
        s.fires("MC-04", "merchant:m1"),
        "the unshipped order still counts: {:?}",
        s.pairs()
    );
    assert!(
        !kept_for_ever.fires("MC-04", "merchant:m1"),
        "kept, the late shipment settles it"
    );
}

/// A deadline keeps its subject past the horizon of its events: a lottery
/// drawn 300 days after it was announced is still known, so its winner's
/// unsent prize is LT-06 and the draw, on time, is not LT-05.
#[test]
fn a_pending_deadline_keeps_its_subject() {
    let s = Stream::new()
        .merchant("m1")
        .ev(
            "lottery.announced",
            "11-01",
            json!({"lottery": "l1", "merchant": "m1", "host": "h1", "stream": "st",
            "prizes": [{"name": "券", "value_fen": 1000, "count": 1}], "conditions": ["关注"], "draw_at": y27("08-28"),
            "deliver_within_days": 7, "organizer": "店", "contact": "400"}),
        )
        .ev(
            "lottery.entered",
            "11-01",
            json!({"lottery": "l1", "participant": "p1"}),
        );
    let (_, engine) = s.clone().tick(&y27("08-27")).run_with_engine();
    let view = engine.lottery("l1").expect("kept while its draw is pending");
    assert_eq!((view.entrant_count, view.prizes.len()), (1, 1));
    let s = s
        .ev(
            "lottery.drawn",
            &y27("08-28"),
            json!({"lottery": "l1", "winners": [{"participant": "p1", "prize": "券"}]}),
        )
        .tick(&y27("09-30"));
    let pairs = s.pairs();
    assert!(pairs.contains(&("LT-06".into(), "lottery:l1".into())), "{pairs:?}");
    assert!(!pairs.contains(&("LT-05".into(), "lottery:l1".into())), "{pairs:?}");
}

/// A pre-sale's orders are kept by the latest ship date its terms ever
/// promised: a change that moves the date back earlier does not shorten it.
/// So an order named under the campaign is still a pre-sale order (PS-04,
/// not MC-06) when it is placed within the horizon of the later date, and an
/// ordinary one once that horizon has passed too. An engine that read the
/// terms as they stand forgot the order at the earlier date's horizon (the
/// reference model found the difference: CI, session 17).
#[test]
fn a_campaign_keeps_its_orders_by_the_latest_date_it_ever_promised() {
    let changed = crate::presale::base()
        .ev(
            "presale.deposit_paid",
            "11-02",
            json!({"campaign": "c1", "order": "o1", "consumer": "u1", "deposit_fen": 5000}),
        )
        // Ship by 2027-02-10 (final_end + 10 days), then by 2026-11-22 again.
        .ev(
            "presale.changed",
            "11-03",
            json!({"campaign": "c1", "final_end": y27("01-31")}),
        )
        .ev(
            "presale.changed",
            "11-04",
            json!({"campaign": "c1", "final_end": crate::t("11-12")}),
        );
    let placed_on = |date: &str| {
        changed
            .clone()
            .ev("order.placed", &y27(date), placed("o1"))
            .tick(&y27("12-31"))
    };
    // 2026-11-22 + 180 days = 2027-05-21; 2027-02-10 + 180 days = 2027-08-09.
    let s = placed_on("06-01");
    assert!(!s.fires("MC-06", "order:o1"), "still a pre-sale order: {:?}", s.pairs());
    let s = placed_on("08-10");
    assert!(s.fires("MC-06", "order:o1"), "forgotten, placed anew: {:?}", s.pairs());
}

/// A horizon shorter than a window the rules look back over is refused,
/// naming the key and the window; 0 (keep every subject) is accepted.
#[test]
fn a_horizon_shorter_than_a_rule_window_is_refused() {
    let err = Rulebook::with_overrides("[thresholds]\nretention_days = 30\n").expect_err("30 < 90");
    let text = err.to_string();
    assert!(text.contains("thresholds.retention_days"), "{text}");
    assert!(text.contains("90 days"), "{text}");
    assert!(Rulebook::with_overrides("[thresholds]\nretention_days = 0\n").is_ok());
    assert!(Rulebook::with_overrides("[thresholds]\nretention_days = 90\n").is_ok());
    assert!(Rulebook::with_overrides("[thresholds]\nretention_days = 89\n").is_err());
}
