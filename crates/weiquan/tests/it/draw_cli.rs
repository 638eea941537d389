//! `weiquan verify draw`: a fair draw passes; a changed seed, a dropped or added
//! entrant, a late entrant or a swapped winner each fail, naming the problem.

use crate::{succeeds, weiquan};
use serde_json::json;
use weiquan_engine::draw;

const SEED: &str = "4d3c2b1a00ffeeddccbbaa9988776655";
/// drand quicknet round 123's signature.
const BEACON_SIG: &str =
    "b75c69d0b72a5d906e854e808ba7e2accb1542ac355ae486d591aa9d43765482e26cd02df835d3546d23c4b13e0dfc92";

fn line(id: &str, ty: &str, at: &str, fields: serde_json::Value) -> String {
    let mut v = json!({"v": 1, "id": id, "type": ty, "at": format!("2026-11-11T{at}:00+08:00")});
    if let (Some(o), serde_json::Value::Object(f)) = (v.as_object_mut(), fields) {
        o.extend(f);
    }
    v.to_string()
}

/// A committed lottery of six entrants and two prizes, drawn fairly unless `tweak` says otherwise.
fn stream(tweak: &str) -> String {
    let all = ["p1", "p2", "p3", "p4", "p5", "p6"];
    let root = hex::encode(draw::entrants_root(&all));
    let mut entrants: Vec<&str> = all.to_vec();
    let mut lines = vec![
        line(
            "m-reg",
            "merchant.registered",
            "08:00",
            json!({"merchant": "m1", "name": "店", "uscc": "91330100MA2B000018", "channels": ["live"]}),
        ),
        line(
            "m-ver",
            "merchant.verified",
            "08:00",
            json!({"merchant": "m1", "method": "manual", "by": "platform"}),
        ),
        line(
            "ann",
            "lottery.announced",
            "09:00",
            json!({"lottery": "l1", "merchant": "m1", "host": "h", "stream": "s",
            "prizes": [{"name": "耳机", "value_fen": 19900, "count": 2}], "conditions": ["关注"], "draw_at": "2026-11-11T20:00:00+08:00",
            "deliver_within_days": 7, "organizer": "店", "contact": "400", "commitment": draw::commitment(SEED)}),
        ),
    ];
    let beacon = tweak.starts_with("beacon");
    if beacon {
        lines[2] = lines[2].replacen("\"commitment\"", "\"beacon_round\":123,\"commitment\"", 1);
    }
    if tweak == "dropped" {
        entrants.retain(|p| *p != "p3");
    }
    if tweak == "added" {
        entrants.push("p7");
    }
    for (i, p) in entrants.iter().enumerate() {
        lines.push(line(
            &format!("in-{p}"),
            "lottery.entered",
            &format!("10:{i:02}"),
            json!({"lottery": "l1", "participant": p}),
        ));
    }
    lines.push(line(
        "close",
        "lottery.closed",
        "19:00",
        json!({"lottery": "l1", "entrants_root": root}),
    ));
    let effective = if beacon {
        draw::effective_seed(SEED, Some(123), Some(BEACON_SIG)).expect("valid beacon")
    } else {
        SEED.to_owned()
    };
    let mut winners: Vec<(String, String)> = draw::draw(&effective, &entrants, &[2])
        .into_iter()
        .map(|(e, _)| (entrants[e].to_owned(), "耳机".to_owned()))
        .collect();
    if tweak == "late" {
        lines.push(line(
            "in-late",
            "lottery.entered",
            "19:30",
            json!({"lottery": "l1", "participant": "p9"}),
        ));
        winners[0].0 = "p9".into();
    }
    if tweak == "swapped" {
        let loser = all
            .iter()
            .find(|p| !winners.iter().any(|w| w.0 == **p))
            .expect("a loser");
        winners[1].0 = (*loser).to_owned();
    }
    let seed = if tweak == "seed" { "a-different-seed" } else { SEED };
    let w: Vec<serde_json::Value> = winners
        .iter()
        .map(|(p, prize)| json!({"participant": p, "prize": prize}))
        .collect();
    let mut drawn = json!({"lottery": "l1", "winners": w, "seed": seed});
    if let (true, Some(o)) = (beacon, drawn.as_object_mut()) {
        let sig = if tweak == "beacon-forged" {
            BEACON_SIG.replacen('b', "a", 1)
        } else {
            BEACON_SIG.to_owned()
        };
        o.insert("beacon_signature".into(), json!(sig));
    }
    if tweak != "undrawn" {
        lines.push(line("draw", "lottery.drawn", "20:00", drawn));
    }
    lines.join("\n") + "\n"
}

fn verify(tweak: &str) -> (Option<i32>, String) {
    verify_lottery(tweak, "l1")
}

fn verify_lottery(tweak: &str, lottery: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, stream(tweak)).expect("write");
    let db = dir.path().join("run.db");
    let s = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    succeeds(&["audit", &s(&events), "--ledger", &s(&db)]);
    let out = weiquan(
        &[
            "verify",
            "draw",
            "--ledger",
            &s(&db),
            "--lottery",
            lottery,
            "--pub",
            &s(&dir.path().join("run.db.key.pub")),
        ],
        None,
    );
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_fair_draw_verifies() {
    for tweak in ["fair", "beacon"] {
        let (code, msg) = verify(tweak);
        assert_eq!(code, Some(0), "{tweak}: {msg}");
        assert!(msg.contains("fair") && msg.contains("6 entrants"), "{tweak}: {msg}");
    }
}

#[test]
fn each_kind_of_tampering_is_named() {
    for (tweak, words) in [
        ("seed", "does not hash to the commitment"),
        ("dropped", "an entrant was added or dropped"),
        ("added", "an entrant was added or dropped"),
        ("late", "winner p9 entered after the close"),
        ("swapped", "differ from what weiquan-draw-v1 gives"),
        ("beacon-forged", "drand beacon signature does not verify"),
    ] {
        let (code, msg) = verify(tweak);
        assert_eq!(code, Some(3), "{tweak}: {msg}");
        assert!(msg.contains(words), "{tweak}: expected `{words}` in: {msg}");
    }
}

#[test]
fn nothing_to_judge_is_not_called_an_unfair_draw() {
    // A mistyped id is the caller's mistake (exit 2), a draw still to come an error
    // (exit 1): neither is the "NOT VALID" (exit 3) a script reads as evidence.
    let (code, msg) = verify_lottery("fair", "l2");
    assert_eq!(code, Some(2), "{msg}");
    assert!(
        msg.contains("lottery l2 is not announced in this ledger: check the id"),
        "{msg}"
    );
    assert!(!msg.contains("NOT VALID"), "{msg}");
    let (code, msg) = verify("undrawn");
    assert_eq!(code, Some(1), "{msg}");
    assert!(
        msg.contains("has not been drawn in this ledger: nothing to verify yet"),
        "{msg}"
    );
    assert!(!msg.contains("NOT VALID"), "{msg}");
}
