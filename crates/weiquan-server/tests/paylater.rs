//! Pay-later switched off by the consumer in one request, over real HTTP, on
//! SQLite and PostgreSQL: the registry a consumer reads, the event in the log
//! with the consumer as its actor, the signed instruction the platform's
//! webhook receives (at least once, retried while it is down), BN-04 when the
//! platform does not acknowledge in time, and who may not do any of it.

mod common;

use common::{ev, Db, Server};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weiquan_engine::Rulebook;
use weiquan_server::{signature, Webhook, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use weiquan_testkit::webhook::{free_addr, Receiver};

const SECRET: &[u8] = b"a shared secret of the platform";

fn config(db: &Db, url: String, rules: Option<&str>) -> weiquan_server::Config {
    weiquan_server::Config {
        webhook: Some(Webhook {
            url,
            secret: SECRET.to_vec(),
        }),
        rules: Arc::new(rules.map_or_else(Rulebook::builtin, |r| Rulebook::with_overrides(r).expect("rules"))),
        ..db.config(None)
    }
}

fn enabled(id: &str, consumer: &str, provider: &str) -> String {
    ev(
        id,
        "bnpl.enabled",
        json!({"consumer": consumer, "provider": provider, "consent": "bundled", "identity_verified": true}),
    )
}

async fn eventually(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !ok().await {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each instruction received is signed with the shared secret over its timestamp and body.
fn check_signed(r: &weiquan_testkit::webhook::Received) -> Value {
    let ts: i64 = r
        .header(TIMESTAMP_HEADER)
        .and_then(|t| t.parse().ok())
        .expect("a timestamp");
    assert_eq!(
        r.header(SIGNATURE_HEADER),
        Some(signature(SECRET, ts, &r.body).as_str()),
        "signed"
    );
    let body: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(
        r.header(ID_HEADER),
        body["id"].as_str(),
        "the id header is the instruction's"
    );
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_switches_paylater_off_in_one_request_and_the_platform_receives_it_signed() {
    for (name, db) in Db::both() {
        let receiver = Receiver::start();
        let server = Server::start(config(&db, receiver.url(), None)).await;
        let platform = db.key("platform").await;
        let u1 = db.key("consumer:u1").await;
        let u2 = db.key("consumer:u2").await;
        let lines = [
            enabled("b1", "u1", "huabei"),
            enabled("b2", "u1", "yue"),
            enabled("b3", "u2", "huabei"),
        ];
        server.post_events(&platform, lines.join("\n")).await;

        let (status, mine) = server.call("GET", "/v1/paylater", Some(&u1), None).await;
        assert_eq!(status, 200, "{name}: {mine}");
        assert_eq!(mine["providers"][0]["provider"], "huabei");
        assert_eq!(
            (
                mine["providers"][0]["enabled"].clone(),
                mine["providers"][0]["consent"].clone()
            ),
            (json!(true), json!("bundled"))
        );
        assert_eq!(mine["providers"].as_array().map(Vec::len), Some(2), "{name}: {mine}");

        let (status, off) = server
            .call("POST", "/v1/paylater/huabei/disable", Some(&u1), None)
            .await;
        assert_eq!(status, 200, "{name}: {off}");
        let index = off["index"].as_u64().expect("recorded in the log");
        let id = off["instruction"]["id"].as_str().expect("id").to_owned();
        // The consumer's own receipt: their event, one step, submitted by their key.
        let (status, receipt) = server
            .call("GET", &format!("/v1/receipts/{index}"), Some(&u1), None)
            .await;
        assert_eq!(status, 200, "{name}: {receipt}");
        let leaf = receipt["leaf"].as_str().expect("leaf");
        assert!(
            leaf.contains(r#""role":"consumer""#) && leaf.contains(r#""steps":1"#) && leaf.contains(&id),
            "{name}: {leaf}"
        );
        assert!(
            !leaf.contains("u1"),
            "{name}: the public leaf does not name the consumer: {leaf}"
        );

        eventually("the platform to receive the instruction", async || {
            !receiver.received().is_empty()
        })
        .await;
        let got = receiver.received();
        let body = check_signed(&got[0]);
        assert_eq!(
            (
                body["consumer"].clone(),
                body["provider"].clone(),
                body["instruction"].clone()
            ),
            (json!("u1"), json!("huabei"), json!("bnpl.disable"))
        );
        eventually("the acknowledgement to be recorded", async || {
            let (_, v) = server.call("GET", "/v1/paylater", Some(&u1), None).await;
            v["instructions"][0]["acknowledged_at"].is_string()
        })
        .await;
        let (_, mine) = server.call("GET", "/v1/paylater", Some(&u1), None).await;
        let huabei = &mine["providers"][0];
        assert_eq!(
            (
                huabei["enabled"].clone(),
                huabei["steps"].clone(),
                huabei["event"].clone()
            ),
            (json!(false), json!(1), json!(id)),
            "{name}: {mine}"
        );
        assert_eq!(mine["instructions"][0]["status"], 200);
        assert_eq!(huabei["switched_by"], "consumer", "{name}: their own word");
        assert_eq!(
            mine["providers"][1]["switched_by"], "platform",
            "{name}: switched on by the platform's stream"
        );
        assert_eq!(
            mine["providers"][1]["enabled"], true,
            "{name}: the other provider stays on"
        );

        // Asked again: it is off.
        let (status, again) = server
            .call("POST", "/v1/paylater/huabei/disable", Some(&u1), None)
            .await;
        assert_eq!(status, 409, "{name}: {again}");
        // Nobody else may switch it off, or read it; a consumer reads only their own.
        for (who, key) in [("platform", Some(&platform)), ("none", None)] {
            let (status, v) = server
                .call("POST", "/v1/paylater/yue/disable", key.map(String::as_str), None)
                .await;
            assert!(status == 403 || status == 401, "{name}: {who}: {status} {v}");
        }
        let merchant = db.key("merchant:m1").await;
        let regulator = db.key("regulator").await;
        for key in [&merchant, &regulator] {
            assert_eq!(
                server.call("POST", "/v1/paylater/yue/disable", Some(key), None).await.0,
                403,
                "{name}"
            );
        }
        assert_eq!(
            server.call("GET", "/v1/paylater?consumer=u1", Some(&u2), None).await.0,
            403,
            "{name}"
        );
        assert_eq!(
            server
                .call("GET", "/v1/paylater?consumer=u1", Some(&merchant), None)
                .await
                .0,
            403,
            "{name}"
        );
        assert_eq!(
            server.call("GET", "/v1/paylater", Some(&platform), None).await.0,
            422,
            "{name}: whose?"
        );
        let (status, theirs) = server
            .call("GET", "/v1/paylater?consumer=u1", Some(&regulator), None)
            .await;
        assert_eq!(
            (status, theirs["providers"].clone()),
            (200, mine["providers"].clone()),
            "{name}"
        );
        assert_eq!(
            server
                .call("POST", "/v1/paylater/nothing/disable", Some(&u2), None)
                .await
                .0,
            404,
            "{name}"
        );
        // Nobody takes an id reserved for what consumers do through weiquan.
        let squat = ev(
            "weiquan-for:paylater-off:x",
            "bnpl.disabled",
            json!({"consumer": "u2", "provider": "huabei", "steps": 1}),
        );
        let v = server.post_events(&platform, squat).await;
        assert_eq!(v["items"][0]["status"], "rejected", "{name}: {v}");
        assert_eq!(v["items"][0]["field"], "id", "{name}: {v}");
        // A consumer may not put their switch-off (or anyone's) through /v1/events.
        let forged = ev(
            "f1",
            "bnpl.disabled",
            json!({"consumer": "u2", "provider": "huabei", "steps": 1}),
        );
        assert_eq!(
            server.call("POST", "/v1/events", Some(&u2), Some(forged)).await.0,
            403,
            "{name}"
        );
        // The platform got each instruction once, and the platform's acknowledgement left no BN-04.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(receiver.received().len(), 1, "{name}");
        let pairs = server.pairs(&platform).await;
        assert!(!pairs.iter().any(|(r, _)| r == "BN-04"), "{name}: {pairs:?}");
        server.stop().await;
    }
}

/// A platform that is down gets every instruction once it is up; one that
/// leaves an instruction unacknowledged past `bnpl_ack_hours` gets BN-04
/// for that consumer, recorded once.
#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_then_up_gets_every_instruction_and_a_late_one_is_bn04() {
    let db = Db::sqlite();
    let addr = free_addr();
    let url = format!("http://{addr}/weiquan");
    // 0.0005 hours: 1.8 s.
    let server = Server::start(config(&db, url, Some("[thresholds]\nbnpl_ack_hours = 0.0005\n"))).await;
    let platform = db.key("platform").await;
    let consumers = ["u1", "u2", "u3"];
    let lines: Vec<String> = consumers
        .iter()
        .map(|c| enabled(&format!("on-{c}"), c, "huabei"))
        .collect();
    server.post_events(&platform, lines.join("\n")).await;
    let mut ids = Vec::new();
    for c in consumers {
        let key = db.key(&format!("consumer:{c}")).await;
        let (status, off) = server
            .call("POST", "/v1/paylater/huabei/disable", Some(&key), None)
            .await;
        assert_eq!(status, 200, "{off}");
        // Asked again while undelivered: the same instruction, not a second one.
        let (status, again) = server
            .call("POST", "/v1/paylater/huabei/disable", Some(&key), None)
            .await;
        assert_eq!(
            (status, &again["instruction"]["id"]),
            (200, &off["instruction"]["id"]),
            "{again}"
        );
        ids.push(off["instruction"]["id"].as_str().expect("id").to_owned());
    }
    eventually("BN-04 for each consumer", async || {
        let pairs = server.pairs(&platform).await;
        consumers
            .iter()
            .all(|c| pairs.contains(&("BN-04".into(), format!("consumer:{c}"))))
    })
    .await;
    let receiver = Receiver::start_on(addr);
    eventually("every instruction to arrive", async || {
        let mut got: Vec<String> = receiver
            .received()
            .iter()
            .map(|r| check_signed(r)["id"].as_str().unwrap_or("").to_owned())
            .collect();
        got.sort();
        got.dedup();
        got.len() == ids.len()
    })
    .await;
    let key = db.key("consumer:u1").await;
    let (_, mine) = server.call("GET", "/v1/paylater", Some(&key), None).await;
    let i = &mine["instructions"][0];
    assert_eq!(i["overdue"], true, "{mine}");
    assert!(i["attempts"].as_u64().is_some_and(|n| n >= 2), "retried: {mine}");
    assert_eq!(mine["providers"][0]["cancel_failed"], 1, "recorded once: {mine}");
    let (_, findings) = server
        .call("GET", "/v1/findings?rule=BN-04", Some(&platform), None)
        .await;
    let n = findings["findings"].as_array().map_or(0, Vec::len);
    assert_eq!(n, consumers.len(), "one BN-04 per consumer: {findings}");
    assert!(findings.to_string().contains("did not acknowledge"), "{findings}");
    server.stop().await;
}
