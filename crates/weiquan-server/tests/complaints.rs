//! Complaints with evidence over real HTTP, on SQLite and PostgreSQL: a
//! consumer files about their own order with files; the merchant it is
//! against reads and answers it; the platform escalates and resolves it; a
//! regulator reads what was escalated; each step has its receipt; the
//! response clock follows MC-10; and every caller who should not succeed does not.

mod common;

use common::{ev, Db, Server};
use serde_json::{json, Value};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00";
const CHAT: &str = "商家：不退。我：我要投诉。";

fn placed(order: &str, merchant: &str, consumer: &str) -> String {
    ev(
        &format!("placed-{order}"),
        "order.placed",
        json!({"order": order, "merchant": merchant, "consumer": consumer, "sku": "s", "qty": 1, "amount_fen": 100, "payment": "standard"}),
    )
}

/// Posts a multipart filing: `fields`, and `files` as `evidence` parts.
async fn file(
    server: &Server,
    key: Option<&str>,
    fields: &[(&str, &str)],
    files: Vec<(&str, Vec<u8>)>,
) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    for (name, bytes) in files {
        form = form.part(
            "evidence",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
    }
    let mut req = server
        .http
        .post(format!("{}/v1/complaints", server.base))
        .multipart(form);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get_bytes(server: &Server, path: &str, key: Option<&str>) -> (u16, Vec<u8>) {
    let mut req = server.http.get(format!("{}{path}", server.base));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.expect("request");
    (
        resp.status().as_u16(),
        resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_complaint_goes_from_consumer_to_merchant_platform_and_regulator_with_receipts() {
    for (name, db) in Db::both() {
        let server = Server::start(db.config(None)).await;
        let platform = db.key("platform").await;
        let (u1, u2) = (db.key("consumer:u1").await, db.key("consumer:u2").await);
        let (m1, m2) = (db.key("merchant:m1").await, db.key("merchant:m2").await);
        let regulator = db.key("regulator").await;
        server
            .post_events(
                &platform,
                [placed("o1", "m1", "u1"), placed("o2", "m2", "u2")].join("\n"),
            )
            .await;

        let fields = [
            ("order", "o1"),
            ("category", "after_sales"),
            ("text", "收到的商品是坏的，商家拒绝退款"),
        ];
        let (status, filed) = file(
            &server,
            Some(&u1),
            &fields,
            vec![("photo.png", PNG.to_vec()), ("chat.txt", CHAT.as_bytes().to_vec())],
        )
        .await;
        assert_eq!(status, 200, "{name}: {filed}");
        let id = filed["complaint"].as_str().expect("id").to_owned();
        let leaf = filed["receipt"]["leaf"]
            .as_str()
            .expect("a receipt with the filing's leaf");
        let png_sha = filed["evidence"][0]["sha256"].as_str().expect("sha").to_owned();
        assert_eq!(filed["evidence"][0]["kind"], "image/png");
        assert_eq!(filed["evidence"][1]["kind"], "text/plain");
        assert!(
            leaf.contains(&png_sha),
            "{name}: the log holds the evidence's hash: {leaf}"
        );
        assert!(
            !leaf.contains("商家拒绝退款") && !leaf.contains("\"u1\""),
            "{name}: text and consumer only as commitments: {leaf}"
        );

        // Who reads it.
        let list = |key: String| {
            let server = &server;
            async move { server.call("GET", "/v1/complaints", Some(&key), None).await.1 }
        };
        let mine = list(u1.clone()).await;
        assert_eq!(mine["complaints"][0]["status"], "open", "{name}: {mine}");
        assert_eq!(mine["complaints"][0]["consumer"], "u1");
        assert!(
            mine["complaints"][0]["response_hours_left"]
                .as_i64()
                .is_some_and(|h| h > 24 * 6),
            "{mine}"
        );
        let against = list(m1.clone()).await;
        assert_eq!(against["complaints"][0]["complaint"], id.as_str());
        assert_eq!(
            against["complaints"][0]["consumer"],
            Value::Null,
            "{name}: a merchant is not told who"
        );
        assert_eq!(
            against["merchants"],
            json!([{"merchant": "m1", "open": 1, "overdue": 0}])
        );
        for key in [&u2, &m2, &regulator] {
            assert_eq!(list(key.clone()).await["complaints"], json!([]), "{name}");
            assert_eq!(
                server
                    .call("GET", &format!("/v1/complaints/{id}"), Some(key), None)
                    .await
                    .0,
                404,
                "{name}"
            );
        }
        // The evidence, back as filed, for those who may read the complaint only.
        let path = format!("/v1/complaints/{id}/evidence/{png_sha}");
        assert_eq!(
            get_bytes(&server, &path, Some(&u1)).await,
            (200, PNG.to_vec()),
            "{name}"
        );
        assert_eq!(
            get_bytes(&server, &path, Some(&m1)).await,
            (200, PNG.to_vec()),
            "{name}"
        );
        assert_eq!(get_bytes(&server, &path, Some(&m2)).await.0, 404, "{name}");
        assert_eq!(get_bytes(&server, &path, None).await.0, 401, "{name}");

        // Steps: only the merchant it is against (or the platform) responds.
        let step = |key: String, step: &'static str, body: Option<&'static str>| {
            let (server, id) = (&server, id.clone());
            async move {
                server
                    .call(
                        "POST",
                        &format!("/v1/complaints/{id}/{step}"),
                        Some(&key),
                        body.map(str::to_owned),
                    )
                    .await
            }
        };
        assert_eq!(step(m2.clone(), "respond", None).await.0, 404, "{name}: not against m2");
        assert_eq!(step(u1.clone(), "respond", None).await.0, 403, "{name}");
        assert_eq!(
            step(m1.clone(), "resolve", Some(r#"{"outcome":"refund"}"#)).await.0,
            403,
            "{name}"
        );
        // A step that does not exist is a 404 naming the steps, for the merchant too
        // (a 403 would say the step exists but is not theirs).
        let (status, unknown) = step(m1.clone(), "refund", None).await;
        assert_eq!(status, 404, "{name}: {unknown}");
        assert!(
            unknown["detail"]
                .as_str()
                .unwrap_or("")
                .contains("the steps are respond, resolve and escalate"),
            "{name}: {unknown}"
        );
        // A merchant cannot say it is the platform: the key says who acts, and a field claiming otherwise is refused.
        let (status, forged) = step(m1.clone(), "respond", Some(r#"{"by":"platform"}"#)).await;
        assert_eq!(status, 400, "{name}: {forged}");
        assert!(
            forged["detail"].as_str().unwrap_or("").contains("unknown field `by`"),
            "{name}: {forged}"
        );
        let (status, answered) = step(m1.clone(), "respond", None).await;
        assert_eq!(status, 200, "{name}: {answered}");
        assert!(
            answered["receipt"]["leaf"]
                .as_str()
                .is_some_and(|l| l.contains("merchant:m1")),
            "{name}: the merchant's own act: {answered}"
        );
        let (status, again) = step(m1.clone(), "respond", None).await;
        assert_eq!(status, 409, "{name}: answered once: {again}");
        let (status, _) = step(platform.clone(), "escalate", Some(r#"{"to":"regulator"}"#)).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(
            list(regulator.clone()).await["complaints"][0]["status"],
            "escalated",
            "{name}"
        );
        assert_eq!(
            step(platform.clone(), "resolve", Some(r#"{"outcome":"sideways"}"#))
                .await
                .0,
            422,
            "{name}"
        );
        assert_eq!(
            step(platform.clone(), "resolve", Some(r#"{"outcome":"refund"}"#))
                .await
                .0,
            200,
            "{name}"
        );
        assert_eq!(step(platform.clone(), "respond", None).await.0, 409, "{name}: resolved");
        // The consumer follows it step by step, each with its receipt.
        let (status, one) = server
            .call("GET", &format!("/v1/complaints/{id}"), Some(&u1), None)
            .await;
        assert_eq!(status, 200, "{name}: {one}");
        let steps: Vec<&str> = one["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter_map(|s| s["step"].as_str())
            .collect();
        assert_eq!(
            steps,
            ["filed", "responded:merchant", "escalated:regulator", "resolved:refund"],
            "{name}"
        );
        assert!(
            one["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .all(|s| s["receipt"]["inclusion"].is_array()),
            "{name}: {one}"
        );
        assert_eq!(one["status"], "resolved");
        let (_, theirs) = server
            .call("GET", &format!("/v1/complaints/{id}"), Some(&m1), None)
            .await;
        assert_eq!(
            theirs["text"], "收到的商品是坏的，商家拒绝退款",
            "{name}: the merchant reads what was written"
        );
        assert_eq!(theirs["consumer"], Value::Null, "{name}");
        server.stop().await;
    }
}

/// A refused filing: what, whose key, its fields, its files, the status and what the problem says.
type Case<'a> = (
    &'a str,
    Option<&'a str>,
    Vec<(&'a str, &'a str)>,
    Vec<(&'a str, Vec<u8>)>,
    u16,
    &'a str,
);

#[tokio::test(flavor = "multi_thread")]
async fn a_filing_that_should_not_succeed_does_not_and_keeps_nothing() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let (u1, u2) = (db.key("consumer:u1").await, db.key("consumer:u2").await);
    let m1 = db.key("merchant:m1").await;
    server
        .post_events(
            &platform,
            [placed("o1", "m1", "u1"), placed("o2", "m1", "u2")].join("\n"),
        )
        .await;
    let exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00".to_vec();
    let long = "长".repeat(2_001);
    let cases: Vec<Case> = vec![
        (
            "someone else's order",
            Some(&u2),
            vec![("order", "o1"), ("category", "quality")],
            vec![],
            404,
            "no order of yours",
        ),
        (
            "an order never placed",
            Some(&u1),
            vec![("order", "o9"), ("category", "quality")],
            vec![],
            404,
            "no order of yours",
        ),
        (
            "no order",
            Some(&u1),
            vec![("category", "quality")],
            vec![],
            422,
            "order: required",
        ),
        (
            "a wrong merchant",
            Some(&u1),
            vec![("order", "o1"), ("merchant", "m2"), ("category", "quality")],
            vec![],
            422,
            "merchant m1's",
        ),
        (
            "a consumer naming another consumer",
            Some(&u1),
            vec![("order", "o1"), ("consumer", "u2"), ("category", "quality")],
            vec![],
            422,
            "files only for themself",
        ),
        ("no category", Some(&u1), vec![("order", "o1")], vec![], 422, "category"),
        (
            "a text over 2,000 characters",
            Some(&u1),
            vec![("order", "o1"), ("category", "quality"), ("text", &long)],
            vec![],
            422,
            "2001 characters; at most 2000",
        ),
        (
            "an unknown category",
            Some(&u1),
            vec![("order", "o1"), ("category", "gossip")],
            vec![],
            422,
            "category",
        ),
        (
            "a program as evidence",
            Some(&u1),
            vec![("order", "o1"), ("category", "quality")],
            vec![("photo.jpg", exe)],
            422,
            "by its first bytes",
        ),
        (
            "six files",
            Some(&u1),
            vec![("order", "o1"), ("category", "quality")],
            (0..6).map(|_| ("a.png", PNG.to_vec())).collect(),
            413,
            "at most 5",
        ),
        (
            "a file over 8 MiB",
            Some(&u1),
            vec![("order", "o1"), ("category", "quality")],
            vec![("big.png", [PNG, &vec![0u8; 8 << 20]].concat())],
            413,
            "8 MiB",
        ),
        (
            "an unknown field",
            Some(&u1),
            vec![("order", "o1"), ("category", "quality"), ("merchant_reply", "x")],
            vec![],
            422,
            "not a field",
        ),
        (
            "a merchant",
            Some(&m1),
            vec![("order", "o1"), ("category", "quality")],
            vec![],
            403,
            "may not",
        ),
        (
            "nobody",
            None,
            vec![("order", "o1"), ("category", "quality")],
            vec![],
            401,
            "",
        ),
        (
            "the platform without a consumer",
            Some(&platform),
            vec![("merchant", "m1"), ("category", "quality")],
            vec![],
            422,
            "consumer: required",
        ),
    ];
    let mut tried = Vec::new();
    for (what, key, fields, files, want, says) in cases {
        tried.extend(files.iter().map(|f| weiquan_server_sha(&f.1)));
        let (status, v) = file(&server, key, &fields, files).await;
        assert_eq!(status, want, "{what}: {v}");
        assert!(v["detail"].as_str().unwrap_or("").contains(says), "{what}: {v}");
    }
    // Nothing was kept: no file, no complaint.
    let conn = rusqlite::Connection::open(db.dir.path().join("weiquan.db")).expect("sqlite");
    for sha in tried {
        let n: i64 =
            (conn.query_row("SELECT COUNT(*) FROM evidence WHERE sha256 = ?1", [&sha], |r| r.get(0))).expect("count");
        assert_eq!(n, 0, "a refused filing kept {sha}");
    }
    assert_eq!(
        server.call("GET", "/v1/complaints", Some(&platform), None).await.1["complaints"],
        json!([])
    );
    // One open complaint per order; the platform files for a consumer.
    let ok = [("order", "o1"), ("category", "quality")];
    assert_eq!(file(&server, Some(&u1), &ok, vec![]).await.0, 200);
    let (status, again) = file(&server, Some(&u1), &ok, vec![]).await;
    assert_eq!(status, 409, "{again}");
    let (status, v) = file(
        &server,
        Some(&platform),
        &[
            ("consumer", "u2"),
            ("merchant", "m1"),
            ("order", "o2"),
            ("category", "bnpl"),
        ],
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    server.stop().await;
}

/// The response clock: past `complaint_response_days` without a response, a
/// complaint is overdue for its merchant (and MC-10 fires).
#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_complaint_becomes_overdue_for_its_merchant() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let u1 = db.key("consumer:u1").await;
    let m1 = db.key("merchant:m1").await;
    server.post_events(&platform, placed("o1", "m1", "u1")).await;
    let (status, filed) = file(&server, Some(&u1), &[("order", "o1"), ("category", "quality")], vec![]).await;
    assert_eq!(status, 200, "{filed}");
    let tick = json!({"v": 1, "id": "t8", "type": "clock.tick", "at": "2026-11-09T10:00:00+08:00"}).to_string();
    server.post_events(&platform, tick).await;
    let (_, v) = server.call("GET", "/v1/complaints", Some(&m1), None).await;
    assert_eq!(v["complaints"][0]["overdue"], true, "{v}");
    assert!(
        v["complaints"][0]["response_hours_left"]
            .as_i64()
            .is_some_and(|h| h < 0),
        "{v}"
    );
    assert_eq!(v["merchants"], json!([{"merchant": "m1", "open": 1, "overdue": 1}]));
    let pairs = server.pairs(&platform).await;
    let id = filed["complaint"].as_str().expect("id");
    assert!(
        pairs.contains(&("MC-10".into(), format!("complaint:{id}"))),
        "{pairs:?}"
    );
    server.stop().await;
}

fn weiquan_server_sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Evidence is each consumer's own: the same bytes filed by two consumers are
/// two files; erasing one consumer removes theirs and leaves the other's; a
/// download is an attachment that is never sniffed; escalation goes up only.
#[tokio::test(flavor = "multi_thread")]
async fn evidence_is_each_consumers_own_and_erasure_removes_only_theirs() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let (u1, u2) = (db.key("consumer:u1").await, db.key("consumer:u2").await);
    server
        .post_events(
            &platform,
            [placed("o1", "m1", "u1"), placed("o2", "m1", "u2")].join("\n"),
        )
        .await;
    let mut ids = Vec::new();
    for (key, order) in [(&u1, "o1"), (&u2, "o2")] {
        let (status, v) = file(
            &server,
            Some(key),
            &[("order", order), ("category", "quality")],
            vec![("p.png", PNG.to_vec())],
        )
        .await;
        assert_eq!(status, 200, "{v}");
        ids.push(v["complaint"].as_str().expect("id").to_owned());
    }
    // Pages: one at a time, in filing order; the summary counts both on each page.
    let (_, first) = server
        .call("GET", "/v1/complaints?limit=1", Some(&platform), None)
        .await;
    assert_eq!(
        (
            first["complaints"][0]["complaint"].as_str(),
            first["next_cursor"].as_u64()
        ),
        (Some(ids[0].as_str()), Some(1)),
        "{first}"
    );
    assert_eq!(first["merchants"], json!([{"merchant": "m1", "open": 2, "overdue": 0}]));
    let (_, second) = server
        .call("GET", "/v1/complaints?limit=1&cursor=1", Some(&platform), None)
        .await;
    assert_eq!(
        (
            second["complaints"][0]["complaint"].as_str(),
            second["next_cursor"].clone()
        ),
        (Some(ids[1].as_str()), Value::Null),
        "{second}"
    );
    // A cursor at the end of `u64` is past the last page: it does not wrap to the first.
    let (status, past) = server
        .call(
            "GET",
            "/v1/complaints?limit=1&cursor=18446744073709551615",
            Some(&platform),
            None,
        )
        .await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(
        (&past["complaints"], &past["next_cursor"]),
        (&json!([]), &Value::Null),
        "{past}"
    );
    let sha = weiquan_server_sha(PNG);
    let path = |i: usize| format!("/v1/complaints/{}/evidence/{sha}", ids[i]);
    let resp = server
        .http
        .get(format!("{}{}", server.base, path(0)))
        .bearer_auth(&u1)
        .send()
        .await
        .expect("get");
    let header = |h: &str| resp.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert!(header("content-disposition").is_some_and(|d| d.starts_with("attachment")));
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(header("content-type").as_deref(), Some("image/png"));
    let d = db.db.clone();
    let erased = tokio::task::spawn_blocking(move || d.erase_consumer("u1"))
        .await
        .expect("join")
        .expect("erase");
    assert!(erased.leaves > 0);
    assert_eq!(
        get_bytes(&server, &path(0), Some(&platform)).await.0,
        404,
        "u1's file is gone"
    );
    assert_eq!(
        get_bytes(&server, &path(1), Some(&platform)).await,
        (200, PNG.to_vec()),
        "u2's stays"
    );
    // Escalated to a regulator, a later "to platform" does not take it from the regulator.
    let regulator = db.key("regulator").await;
    for to in ["regulator", "platform"] {
        let body = json!({"to": to}).to_string();
        let (status, v) = server
            .call(
                "POST",
                &format!("/v1/complaints/{}/escalate", ids[1]),
                Some(&platform),
                Some(body),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
    let (_, seen) = server.call("GET", "/v1/complaints", Some(&regulator), None).await;
    assert_eq!(seen["complaints"][0]["escalated_to"], "regulator", "{seen}");
    server.stop().await;
}
