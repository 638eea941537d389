//! Validation: every kind of bad line becomes a reject naming its field.

use proptest::prelude::*;
use weiquan_events::{
    body_lines, body_lines_str, checked_body_lines, parse_event, parse_line, Body, Dedupe, Line, LineReader, MAX_FEN,
};

const ORDER: &str = r#"{"v":1,"id":"e1","type":"order.placed","at":"2026-11-01T08:00:00+08:00","order":"o1","merchant":"m1","consumer":"u1","sku":"s1","qty":1,"amount_fen":9900,"payment":"standard"}"#;

/// `ORDER` with `field` replaced by the raw JSON `value` (or removed when `None`).
fn order_with(field: &str, value: Option<&str>) -> String {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(ORDER).expect("valid");
    match value {
        Some(raw) => {
            v.insert(field.into(), serde_json::from_str(raw).expect("valid raw value"));
        }
        None => {
            v.remove(field);
        }
    }
    serde_json::to_string(&v).expect("serialises")
}

fn rejected_field(line: &str) -> Option<String> {
    parse_event(line).expect_err(line).field
}

#[test]
fn a_good_order_parses_with_its_fields() {
    let ev = parse_event(ORDER).expect("valid");
    assert_eq!(ev.id, "e1");
    match ev.body {
        Body::OrderPlaced {
            amount_fen,
            qty,
            confirmed,
            ..
        } => {
            assert_eq!((amount_fen, qty, confirmed), (9900, 1, None));
        }
        other => panic!("wrong type {other:?}"),
    }
}

#[test]
fn money_must_be_a_whole_non_negative_number_of_fen() {
    for bad in ["99.5", "\"9900\"", "-1", "1e3", "9900.0", "true"] {
        assert_eq!(
            rejected_field(&order_with("amount_fen", Some(bad))).as_deref(),
            Some("amount_fen"),
            "{bad}"
        );
    }
    assert_eq!(
        rejected_field(&order_with("amount_fen", Some(&(MAX_FEN + 1).to_string()))).as_deref(),
        Some("amount_fen")
    );
    assert_eq!(
        rejected_field(&order_with("amount_fen", Some("18446744073709551616"))).as_deref(),
        Some("amount_fen")
    );
    assert!(parse_event(&order_with("amount_fen", Some(&MAX_FEN.to_string()))).is_ok());
    assert!(parse_event(&order_with("amount_fen", Some("0"))).is_ok());
}

#[test]
fn envelope_errors_name_the_field() {
    assert_eq!(rejected_field(&order_with("v", Some("2"))).as_deref(), Some("v"));
    assert_eq!(rejected_field(&order_with("v", None)).as_deref(), Some("v"));
    assert_eq!(rejected_field(&order_with("id", Some("\"\""))).as_deref(), Some("id"));
    assert_eq!(
        rejected_field(&order_with("id", Some(&format!("\"{}\"", "x".repeat(129))))).as_deref(),
        Some("id")
    );
    assert!(
        parse_event(&order_with("id", Some(&format!("\"{}\"", "订".repeat(128))))).is_ok(),
        "128 characters, not bytes"
    );
    // U+0000 cannot be stored in PostgreSQL text: refused in any id, by name.
    for field in ["id", "consumer", "merchant"] {
        assert_eq!(
            rejected_field(&order_with(field, Some("\"u\\u0000x\""))).as_deref(),
            Some(field)
        );
    }
    assert!(
        parse_event(&order_with("consumer", Some("\"u\\u0001x\""))).is_ok(),
        "only NUL"
    );
    assert_eq!(
        rejected_field(&order_with("type", Some("\"order.exploded\""))).as_deref(),
        Some("type")
    );
    assert_eq!(
        rejected_field(&order_with("at", Some("\"2026-11-01T08:00:00\""))).as_deref(),
        Some("at")
    );
    assert_eq!(
        rejected_field(&order_with("at", Some("\"2026-11-01 08:00:00+08:00\""))).as_deref(),
        Some("at")
    );
    assert_eq!(rejected_field(&order_with("at", Some("null"))).as_deref(), Some("at"));
}

#[test]
fn payload_errors_name_the_field() {
    assert_eq!(
        rejected_field(&order_with("payment", Some("\"cash\""))).as_deref(),
        Some("payment")
    );
    assert_eq!(rejected_field(&order_with("qty", Some("0"))).as_deref(), Some("qty"));
    assert_eq!(
        rejected_field(&order_with("merchant", None)).as_deref(),
        Some("merchant")
    );
    assert_eq!(
        rejected_field(&order_with("merchant", Some("null"))).as_deref(),
        Some("merchant"),
        "null in a required field is missing"
    );
    assert_eq!(
        rejected_field(&order_with("confirmed", Some("\"yes\""))).as_deref(),
        Some("confirmed")
    );
    assert!(
        parse_event(&order_with("confirmed", Some("null"))).is_ok(),
        "null in an optional field is absent"
    );
    assert!(
        parse_event(&order_with("extra", Some("{\"kept\": [1, 2]}"))).is_ok(),
        "unknown extra fields never reject"
    );
    // A lone surrogate escape is JSON but not a string of Unicode: said so,
    // not "expected a string, got a string"; in an extra it is kept.
    let lone = ORDER.replace(r#""order":"o1""#, r#""order":"\ud800""#);
    let e = parse_event(&lone).expect_err("a lone surrogate in a defined field");
    assert_eq!(e.field.as_deref(), Some("order"));
    assert!(e.message.contains("lone surrogate"), "{}", e.message);
    let extra = ORDER.replace(r#""order":"o1""#, r#""order":"o1","note":"\ud800""#);
    assert!(parse_event(&extra).is_ok(), "in an extra field it never rejects");
}

#[test]
fn nested_errors_name_the_path() {
    let lottery = r#"{"v":1,"id":"l","type":"lottery.announced","at":"2026-11-01T08:00:00+08:00","lottery":"l1","merchant":"m","host":"h","stream":"s","prizes":[{"name":"a","value_fen":1,"count":1},{"name":"b","value_fen":1.5,"count":1}]}"#;
    assert_eq!(rejected_field(lottery).as_deref(), Some("prizes[1].value_fen"));
    let prize_gap = lottery.replace(",\"value_fen\":1.5", "");
    assert!(
        parse_event(&prize_gap).is_ok(),
        "a prize without a value is a disclosure gap (LT-01), not a bad event"
    );
    let channels = r#"{"v":1,"id":"r","type":"merchant.registered","at":"2026-11-01T08:00:00+08:00","merchant":"m","name":"n","uscc":"x","channels":["store","tv"]}"#;
    assert_eq!(rejected_field(channels).as_deref(), Some("channels[1]"));
}

#[test]
fn not_an_object_or_not_json_or_repeated_keys() {
    for bad in ["this is not json", "[1,2]", "\"str\"", "42", "{\"v\":1,"] {
        assert!(parse_event(bad).is_err(), "{bad}");
    }
    let twice = ORDER.replace("\"qty\":1", "\"qty\":1,\"qty\":2");
    assert_eq!(rejected_field(&twice).as_deref(), Some("qty"));
}

#[test]
fn every_type_of_the_spec_parses_from_a_minimal_example() {
    let t = "\"at\":\"2026-11-01T00:00:00Z\"";
    let minimal = [
        ("clock.tick", ""),
        (
            "merchant.registered",
            r#","merchant":"m","name":"n","uscc":"u","channels":[]"#,
        ),
        ("merchant.verified", r#","merchant":"m","method":"digital_id","by":"p""#),
        ("merchant.closed", r#","merchant":"m""#),
        ("merchant.reopened", r#","merchant":"m""#),
        (
            "merchant.blacklist_lifted",
            r#","merchant":"m","by":"regulator","reason":"整改完成""#,
        ),
        ("host.registered", r#","host":"h","name":"主播""#),
        ("host.verified", r#","host":"h","method":"id_check","by":"platform""#),
        ("host.suspended", r#","host":"h""#),
        ("host.reinstated", r#","host":"h""#),
        (
            "listing.published",
            r#","merchant":"m","sku":"s","title":"t","price_fen":1"#,
        ),
        ("listing.updated", r#","merchant":"m","sku":"s""#),
        ("price.changed", r#","merchant":"m","sku":"s","price_fen":1"#),
        ("listing.removed", r#","merchant":"m","sku":"s""#),
        (
            "price.quoted",
            r#","merchant":"m","sku":"s","consumer":"c","price_fen":1"#,
        ),
        (
            "order.placed",
            r#","order":"o","merchant":"m","consumer":"c","sku":"s","qty":1,"amount_fen":1,"payment":"bnpl""#,
        ),
        ("order.shipped", r#","order":"o""#),
        ("order.delivered", r#","order":"o""#),
        ("order.cancelled", r#","order":"o","by":"platform""#),
        ("refund.requested", r#","order":"o","amount_fen":1,"no_reason":false"#),
        ("refund.completed", r#","order":"o","amount_fen":1"#),
        ("refund.rejected", r#","order":"o","reason":"r""#),
        (
            "presale.published",
            r#","campaign":"c","merchant":"m","sku":"s","deposit_fen":1,"price_fen":5,"deposit_start":"2026-11-01T00:00:00Z","deposit_end":"2026-11-01T00:00:00Z","final_start":"2026-11-01T00:00:00Z","final_end":"2026-11-01T00:00:00Z","ship_within_days":0"#,
        ),
        ("presale.changed", r#","campaign":"c""#),
        (
            "presale.deposit_paid",
            r#","campaign":"c","order":"o","consumer":"u","deposit_fen":1"#,
        ),
        ("presale.final_paid", r#","campaign":"c","order":"o","final_fen":1"#),
        ("presale.gift_withdrawn", r#","campaign":"c","gift":"g""#),
        ("presale.deposit_refund_requested", r#","campaign":"c","order":"o""#),
        (
            "presale.deposit_refunded",
            r#","campaign":"c","order":"o","amount_fen":1"#,
        ),
        (
            "lottery.announced",
            r#","lottery":"l","merchant":"m","host":"h","stream":"s","prizes":[]"#,
        ),
        ("lottery.changed", r#","lottery":"l""#),
        ("lottery.entered", r#","lottery":"l","participant":"p""#),
        ("lottery.closed", r#","lottery":"l""#),
        (
            "lottery.drawn",
            r#","lottery":"l","winners":[{"participant":"p","prize":"x"}],"proof":{"any":"json"}"#,
        ),
        (
            "lottery.prize_shipped",
            r#","lottery":"l","participant":"p","prize":"x","value_fen":1"#,
        ),
        ("lottery.prize_delivered", r#","lottery":"l","participant":"p""#),
        ("lottery.cancelled", r#","lottery":"l""#),
        (
            "service.message",
            r#","merchant":"m","conversation":"v","consumer":"c","from":"bot""#,
        ),
        (
            "complaint.filed",
            r#","complaint":"p","consumer":"c","merchant":"m","category":"bnpl","evidence":[{"sha256":"00000000000000000000000000000000000000000000000000000000000000ff","kind":"photo"}]"#,
        ),
        ("complaint.responded", r#","complaint":"p","by":"merchant""#),
        ("complaint.resolved", r#","complaint":"p","outcome":"withdrawn""#),
        ("complaint.escalated", r#","complaint":"p","to":"regulator""#),
        (
            "bnpl.offered",
            r#","consumer":"c","session":"s","preselected":false,"terms_shown":true"#,
        ),
        (
            "bnpl.enabled",
            r#","consumer":"c","provider":"p","consent":"bundled","identity_verified":true"#,
        ),
        ("bnpl.disabled", r#","consumer":"c","provider":"p","steps":0"#),
        ("bnpl.cancel_failed", r#","consumer":"c","provider":"p""#),
    ];
    assert_eq!(minimal.len(), weiquan_events::EVENT_TYPES.len());
    for (ty, rest) in minimal {
        let line = format!("{{\"v\":1,\"id\":\"x\",\"type\":\"{ty}\",{t}{rest}}}");
        let (mut event, extras) =
            weiquan_events::parse_event_with_extras(&line).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert!(
            extras.is_empty(),
            "{ty}: every field of the example is defined, got {extras:?}"
        );
        // The pseudonym accessor reaches the consumer of exactly the types that name one.
        assert_eq!(
            event.body.consumer_mut().map(|c| c.to_string()),
            rest.contains("\"consumer\":").then(|| rest
                .split("\"consumer\":\"")
                .nth(1)
                .unwrap_or("")
                .split('"')
                .next()
                .unwrap_or("")
                .to_string()),
            "{ty}"
        );
    }
}

#[test]
fn reader_skips_blank_lines_strips_crlf_and_bom_and_numbers_lines() {
    let input = format!(
        "\u{feff}{ORDER}\r\n\n   \n{}\n\u{0}\n{}",
        ORDER.replace("e1", "e2"),
        ORDER
    );
    let mut r = LineReader::new(input.as_bytes());
    let mut dedupe = Dedupe::new();
    let mut seen = Vec::new();
    while let Some(line) = r.next_line().expect("in memory") {
        seen.push(match parse_line(line) {
            Ok(p) if dedupe.first_time(p.digest) => format!("ok {}", p.event.id),
            Ok(p) => format!("dup {}", p.line),
            Err(rj) => format!("reject {}", rj.line),
        });
    }
    assert_eq!(seen, ["ok e1", "ok e2", "reject 5", "dup 6"]);
}

#[test]
fn a_byte_order_mark_below_the_first_line_is_named() {
    // Two files joined with `cat`: the second one's mark starts line 2.
    let input = format!("\u{feff}{ORDER}\n\u{feff}{}\n", ORDER.replace("e1", "e2"));
    let mut r = LineReader::new(input.as_bytes());
    let first = r.next_line().expect("in memory").expect("line 1");
    assert!(parse_line(first).is_ok(), "the first line's mark is dropped");
    let second = r.next_line().expect("in memory").expect("line 2");
    match parse_line(second) {
        Err(rj) => assert!(
            rj.line == 2 && rj.error.contains("byte-order mark (U+FEFF)") && rj.error.contains("remove it"),
            "{rj:?}"
        ),
        Ok(p) => panic!("accepted {}", p.event.id),
    }
}

#[test]
fn invalid_utf8_is_a_reject_not_an_error() {
    let mut input = ORDER.as_bytes().to_vec();
    input.extend_from_slice(b"\n{\"v\":1,\"id\":\"\xff\"}\n");
    let mut r = LineReader::new(&input[..]);
    let mut dedupe = Dedupe::new();
    let first = r.next_line().expect("io").expect("line");
    assert!(matches!(parse_line(first), Ok(p) if dedupe.first_time(p.digest)));
    let second = r.next_line().expect("io").expect("line");
    assert!(matches!(parse_line(second), Err(r) if r.line == 2 && r.error.contains("column 14")));
}

proptest! {
    /// Lines of any bytes (mostly ASCII, some multibyte and broken sequences,
    /// long enough for SIMD blocks): a line is text exactly when the standard
    /// library accepts it as UTF-8, and a rejected one names the first bad byte.
    #[test]
    fn lines_are_text_exactly_when_they_are_utf8(
        lines in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![
                8 => 0x20u8..0x7f,
                1 => Just(0xe4u8), 1 => Just(0xb8u8), 1 => Just(0xadu8), 1 => 0x80u8..=0xff,
            ], 1..200).prop_filter("blank lines are skipped", |l| !l.iter().all(u8::is_ascii_whitespace)),
            1..8,
        )
    ) {
        let input: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
        let mut r = LineReader::new(&input[..]);
        for l in &lines {
            let got = r.next_line().expect("io").expect("line");
            match (std::str::from_utf8(l), got) {
                (Ok(s), Line::Text(_, t)) => prop_assert_eq!(s, t),
                (Err(e), Line::Bad(reject)) => {
                    let column = format!("column {}", e.valid_up_to() + 1);
                    prop_assert!(reject.error.contains(&column), "{} lacks {}", reject.error, column);
                }
                (want, _) => prop_assert!(false, "{:?}: framed the other way", want.map(|_| "text")),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut r = LineReader::new(&bytes[..]);
        let mut dedupe = Dedupe::new();
        while let Ok(Some(line)) = r.next_line() {
            if let Ok(p) = parse_line(line) {
                dedupe.first_time(p.digest);
            }
        }
    }

    /// The set answers as a `HashSet` of the digests' low 96 bits would, also
    /// for digests alike in their low 64 bits (the placement) or in their top 32.
    #[test]
    fn dedupe_answers_as_a_set_of_96_bits(
        digests in proptest::collection::vec((0u64..4, 0u32..4, 0u32..4), 0..200),
        spread in any::<u64>(),
    ) {
        let mut dedupe = Dedupe::new();
        let mut kept = std::collections::HashSet::new();
        for (low, mid, top) in digests {
            let d = u128::from(low.wrapping_mul(spread)) | (u128::from(mid) << 64) | (u128::from(top) << 96);
            prop_assert_eq!(dedupe.first_time(d), kept.insert(d & ((1u128 << 96) - 1)));
        }
        prop_assert_eq!(dedupe.len(), kept.len());
    }

    /// The same with many digests, placed anywhere or crowded at the table's
    /// end (runs of full buckets then wrap to its start), from a set made
    /// with room for fewer than it gets (it grows) or for more.
    #[test]
    fn dedupe_holds_as_it_grows_and_wraps(
        digests in proptest::collection::vec((any::<u64>(), 0u32..3, 0u64..64), 0..3000),
        crowd in any::<bool>(),
        room in 0usize..4000,
    ) {
        let mut dedupe = Dedupe::with_capacity(room);
        let mut kept = std::collections::HashSet::new();
        for (low, mid, near_end) in digests {
            let low = if crowd { u64::MAX - near_end } else { low };
            let d = u128::from(low) | (u128::from(mid) << 64);
            prop_assert_eq!(dedupe.first_time(d), kept.insert(d));
            prop_assert_eq!(dedupe.first_time(d), false);
        }
        prop_assert_eq!(dedupe.len(), kept.len());
    }

    #[test]
    fn mutated_valid_events_never_panic(cut in 0usize..ORDER.len(), insert in "[\\[\\]{}\":,0-9a-z.\\-\\\\ ]{0,6}") {
        let mut line = ORDER.to_owned();
        if line.is_char_boundary(cut) {
            line.insert_str(cut, &insert);
        }
        let _ = parse_event(&line);
    }
}

#[test]
fn lines_across_chunk_boundaries_and_overlong_lines() {
    // Enough lines to cross several 1 MiB chunks, with an overlong line (3 MiB, no newline inside) in the middle.
    let mut input = String::new();
    let n = 30_000;
    for i in 0..n {
        input.push_str(&ORDER.replace("\"e1\"", &format!("\"e{i}\"")));
        input.push('\n');
        if i == n / 2 {
            input.push_str(&"x".repeat(3 << 20));
            input.push('\n');
        }
    }
    let mut r = LineReader::new(input.as_bytes());
    let mut dedupe = Dedupe::new();
    let (mut ok, mut rejected) = (0, Vec::new());
    while let Some(line) = r.next_line().expect("in memory") {
        match parse_line(line) {
            Ok(p) if dedupe.first_time(p.digest) => ok += 1,
            Ok(_) => panic!("no duplicates here"),
            Err(rj) => rejected.push((rj.line, rj.error)),
        }
    }
    assert_eq!(ok, n);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0, (n / 2 + 2) as u64);
    assert!(rejected[0].1.contains("3145728 bytes"), "{}", rejected[0].1);
    assert_eq!(r.bytes_read(), input.len() as u64);
}

/// A reader that hands out its bytes in one read, then fails the test if read again
/// (as a pipe with nothing more yet would block).
struct OneRead(Option<&'static [u8]>);

impl std::io::Read for OneRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let bytes = self.0.take().expect("read again: next_buffered_line must not read");
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(bytes.len())
    }
}

#[test]
fn buffered_lines_come_out_without_another_read() {
    let mut reader = LineReader::new(OneRead(Some(b"{\"a\":1}\n\n{\"b\":2}\n{\"c\"")));
    let text = |line: Option<weiquan_events::Line<'_>>| match line {
        Some(weiquan_events::Line::Text(n, s)) => Some((n, s.to_owned())),
        _ => None,
    };
    assert_eq!(text(reader.next_line().expect("read")), Some((1, "{\"a\":1}".into())));
    // Line 2 is blank; line 3 is buffered whole; line 4 is cut short, so it needs a read.
    assert_eq!(
        text(reader.next_buffered_line().expect("no read")),
        Some((3, "{\"b\":2}".into()))
    );
    assert!(reader.next_buffered_line().expect("no read").is_none());
    assert!(reader.next_buffered_line().expect("no read").is_none());
}

/// Messy streams 8: a prize list that repeats a name is a rejected event, named at `prizes`.
#[test]
fn a_prize_list_repeating_a_name_is_rejected_at_prizes() {
    let base = r#"{"v":1,"id":"x","type":"lottery.changed","at":"2026-11-01T00:00:00Z","lottery":"l","prizes":PRIZES}"#;
    let twice = base.replace(
        "PRIZES",
        r#"[{"name":"红包","value_fen":1,"count":1},{"name":"券"},{"name":"红包","value_fen":2,"count":1}]"#,
    );
    let e = parse_event(&twice).expect_err("repeated prize name");
    assert_eq!(e.field.as_deref(), Some("prizes"));
    assert!(
        e.message.contains("prizes[0] and prizes[2]") && e.message.contains("红包"),
        "{e}"
    );
    // Distinct names, and prizes without a name (an LT-01 gap), are fine.
    let distinct = base.replace(
        "PRIZES",
        r#"[{"name":"红包"},{"name":"券"},{"value_fen":1},{"value_fen":2}]"#,
    );
    parse_event(&distinct).expect("distinct names");
}

/// The host registry's events (spec 1.1) check their identifier and keyword fields.
#[test]
fn host_events_check_their_fields() {
    let line = |rest: &str| format!(r#"{{"v":1,"id":"x","type":"host.verified","at":"2026-11-01T00:00:00Z"{rest}}}"#);
    let e = parse_event(&line(r#","host":"","method":"id_check","by":"p""#)).expect_err("empty host id");
    assert_eq!(e.field.as_deref(), Some("host"));
    let e = parse_event(&line(r#","host":"h","method":"licence_check","by":"p""#)).expect_err("merchant method");
    assert_eq!(e.field.as_deref(), Some("method"));
    assert!(e.message.contains("id_check"), "{e}");
}

/// The keys no reader of the type looked up are the producer's extras, even
/// when they share a name with another type's field; the defined ones, null or
/// not, are not.
#[test]
fn extras_are_the_keys_the_type_does_not_define() {
    let line = r#"{"v":1,"id":"e1","type":"bnpl.enabled","at":"2026-11-01T00:00:00+08:00","consumer":"u1","provider":"p","consent":"explicit","identity_verified":true,"nickname":"小王","merchant":"m1","reason":null}"#;
    let (event, extras) = weiquan_events::parse_event_with_extras(line).expect("valid");
    assert_eq!(event.id, "e1");
    assert_eq!(extras, ["nickname", "merchant", "reason"]);
    let tick = r#"{"v":1,"id":"t","type":"clock.tick","at":"2026-11-01T00:00:00+08:00"}"#;
    assert!(weiquan_events::parse_event_with_extras(tick)
        .expect("valid")
        .1
        .is_empty());
    // A rejected line is rejected exactly as by parse_event.
    let bad = r#"{"v":1,"id":"e2","type":"bnpl.enabled","at":"2026-11-01T00:00:00+08:00"}"#;
    assert_eq!(
        weiquan_events::parse_event_with_extras(bad)
            .err()
            .map(|e| e.to_string()),
        weiquan_events::parse_event(bad).err().map(|e| e.to_string())
    );
}

#[test]
fn personal_fields_are_ids_of_people_free_text_and_host_names() {
    use weiquan_events::is_personal_field as personal;
    let order = parse_event(ORDER).expect("valid").body;
    for key in ["consumer", "participant", "winners", "text", "reason", "segment"] {
        assert!(personal(&order, key), "{key}");
    }
    let t = r#""at":"2026-11-01T00:00:00Z""#;
    let host = format!(r#"{{"v":1,"id":"h","type":"host.registered",{t},"host":"h","name":"主播"}}"#);
    let shop = format!(
        r#"{{"v":1,"id":"m","type":"merchant.registered",{t},"merchant":"m","name":"店","uscc":"u","channels":[]}}"#
    );
    assert!(personal(&parse_event(&host).expect("valid").body, "name"));
    assert!(!personal(&parse_event(&shop).expect("valid").body, "name"));
    for key in ["merchant", "order", "at", "id", "amount_fen"] {
        assert!(!personal(&order, key), "{key}");
    }
}

/// Past the 64th key, what the type defines is still known as defined (found
/// by an outside attack: such keys were all taken for extras, `id` and `type`
/// included).
#[test]
fn extras_are_exact_past_the_sixty_fourth_key() {
    let padding: String = (0..70).map(|i| format!("\"pad{i}\":{i},")).collect();
    let line = format!(
        r#"{{{padding}"v":1,"id":"e1","type":"order.placed","at":"2026-11-01T08:00:00+08:00","order":"o1","merchant":"m1","consumer":"u1","sku":"s1","qty":1,"amount_fen":9900,"payment":"standard"}}"#
    );
    let (event, extras) = weiquan_events::parse_event_with_extras(&line).expect("valid");
    assert_eq!(event.id, "e1");
    let want: Vec<String> = (0..70).map(|i| format!("pad{i}")).collect();
    assert_eq!(extras, want);
}

/// A drand round past 2^53 would change in the ledger's canonical JSON (an
/// IEEE double), and replay would then read another event: it is refused.
#[test]
fn a_beacon_round_past_two_to_the_fifty_third_is_refused() {
    let at = r#""at":"2026-11-01T00:00:00Z""#;
    let line = |round: &str| {
        format!(
            r#"{{"v":1,"id":"l","type":"lottery.announced",{at},"lottery":"l","merchant":"m","host":"h","stream":"s","prizes":[],"beacon_round":{round}}}"#
        )
    };
    assert!(parse_event(&line("9007199254740991")).is_ok());
    for big in ["9007199254740992", "18446744073709551615", "18446744073709551616"] {
        assert_eq!(rejected_field(&line(big)).as_deref(), Some("beacon_round"), "{big}");
    }
}

/// A key of the producer's own inside a defined object (an evidence item, a
/// prize) makes its top-level field hold extras too (found by an outside
/// attack: such keys reached the public log as sent).
#[test]
fn keys_of_the_producers_own_inside_defined_objects_count_as_extras() {
    let at = r#""at":"2026-11-01T00:00:00Z""#;
    let hash = "00000000000000000000000000000000000000000000000000000000000000ff";
    let complaint = format!(
        r#"{{"v":1,"id":"c","type":"complaint.filed",{at},"complaint":"p","consumer":"u","merchant":"m","category":"quality","evidence":[{{"sha256":"{hash}","kind":"photo"}},{{"sha256":"{hash}","kind":"photo","phone":"13800000000"}}]}}"#
    );
    assert_eq!(
        weiquan_events::parse_event_with_extras(&complaint).expect("valid").1,
        ["evidence"]
    );
    let clean = complaint.replace(r#","phone":"13800000000""#, "");
    assert!(weiquan_events::parse_event_with_extras(&clean)
        .expect("valid")
        .1
        .is_empty());
    let lottery = format!(
        r#"{{"v":1,"id":"l","type":"lottery.announced",{at},"lottery":"l","merchant":"m","host":"h","stream":"s","prizes":[{{"name":"x","value_fen":1,"count":1,"winner_phone":"1"}}],"note":"n"}}"#
    );
    assert_eq!(
        weiquan_events::parse_event_with_extras(&lottery).expect("valid").1,
        ["note", "prizes"]
    );
}

proptest! {
    /// A body in memory is framed exactly as the same bytes read from a file:
    /// the same line numbers and contents (byte-order mark, `\r\n`, blank and
    /// whitespace-only lines included), as bytes and, for UTF-8, as text.
    #[test]
    fn bodies_frame_as_files_do(
        bom in any::<bool>(),
        lines in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![
                8 => 0x20u8..0x7f, 2 => Just(b'\r'), 1 => Just(b' '), 1 => Just(0xe4u8), 1 => 0x80u8..=0xff,
            ], 0..40),
            0..8,
        ),
        final_newline in any::<bool>(),
    ) {
        let mut body: Vec<u8> = if bom { b"\xEF\xBB\xBF".to_vec() } else { Vec::new() };
        body.extend(lines.join(&b'\n'));
        if final_newline {
            body.push(b'\n');
        }
        let mut file = Vec::new();
        let mut r = LineReader::new(&body[..]);
        while let Some(line) = r.next_line().expect("io") {
            file.push(match line {
                Line::Text(n, t) => (n, Some(t.to_owned())),
                Line::Bad(reject) => (reject.line, None),
            });
        }
        let framed: Vec<_> = body_lines(&body).map(|(n, l)| (n, std::str::from_utf8(l).ok().map(str::to_owned))).collect();
        prop_assert_eq!(&framed, &file);
        // Checked as a file's lines are, rejects and their texts included.
        let as_line = |line: Line<'_>| match line {
            Line::Text(n, t) => (n, Ok(t.to_owned())),
            Line::Bad(reject) => (reject.line, Err(reject.error)),
        };
        let mut read = Vec::new();
        let mut r = LineReader::new(&body[..]);
        while let Some(line) = r.next_line().expect("io") {
            read.push(as_line(line));
        }
        let checked: Vec<_> = checked_body_lines(&body).map(as_line).collect();
        prop_assert_eq!(&checked, &read);
        if let Ok(text) = std::str::from_utf8(&body) {
            let as_text: Vec<_> = body_lines_str(text).map(|(n, l)| (n, Some(l.to_owned()))).collect();
            prop_assert_eq!(&as_text, &file);
        }
    }
}

#[test]
fn ids_are_shown_with_what_hides_or_reorders_text_escaped() {
    use std::borrow::Cow;
    // Most ids come back as they are, not copied.
    assert!(matches!(weiquan_events::visible("店铺-m1"), Cow::Borrowed("店铺-m1")));
    // A right-to-left override, a bell, a zero-width space and a BOM are shown as escapes.
    assert_eq!(
        weiquan_events::visible("m1\u{202E}gpj.exe\u{7}\u{200B}\u{FEFF}"),
        "m1\\u{202e}gpj.exe\\u{0007}\\u{200b}\\u{feff}"
    );
}
