//! The API over a real socket, on SQLite and on the real PostgreSQL:
//! the example cases give the same findings as `weiquan audit`, every role ×
//! route gets the expected status, a restart continues where it stopped, and
//! NATS JetStream ingest works against the real server at 127.0.0.1:4222.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use weiquan_engine::Rulebook;

/// What the example case `case` requires (see `weiquan_testkit::expected`).
fn expected(case: &str) -> (BTreeSet<(String, String)>, Vec<u64>) {
    weiquan_testkit::expected(&root().join(format!("tests/cases/{case}")))
}

fn case_text(case: &str) -> String {
    std::fs::read_to_string(root().join(format!("tests/cases/{case}/events.ndjson"))).expect("case")
}

/// Item numbers (1-based, blank lines skipped) of the given 1-based line numbers.
fn items_of_lines(text: &str, lines: &[u64]) -> Vec<u64> {
    let mut item = 0;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        item += 1;
        if lines.contains(&(i as u64 + 1)) {
            out.push(item);
        }
    }
    out
}

const CASES: [&str; 5] = ["presale", "lottery", "merchants", "bnpl-prices", "bad-input"];

#[tokio::test(flavor = "multi_thread")]
async fn every_case_over_http_gives_the_audit_findings() {
    for (name, db) in Db::both() {
        for case in CASES {
            // Each case is its own platform: a fresh schema or file.
            let db = if name == "sqlite" { Db::sqlite() } else { Db::postgres() };
            let server = Server::start(db.config(None)).await;
            let key = db.key("platform").await;
            let text = case_text(case);
            let v = server.post_events(&key, text.clone()).await;
            let (want, rejected_lines) = expected(case);
            let rejected: Vec<u64> = v["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter(|i| i["status"] == "rejected")
                .map(|i| i["item"].as_u64().expect("item"))
                .collect();
            assert_eq!(
                rejected,
                items_of_lines(&text, &rejected_lines),
                "{name} {case}: rejected items"
            );
            assert_eq!(server.pairs(&key).await, want, "{name} {case}: findings");
            server.stop().await;
        }
        drop(db);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_mid_stream_continues_without_loss_or_repeat() {
    for (name, db) in Db::both() {
        let key = db.key("platform").await;
        let text = case_text("lottery");
        let lines: Vec<&str> = text.lines().collect();
        let (first, second) = lines.split_at(lines.len() / 2);
        let server = Server::start(db.config(None)).await;
        server.post_events(&key, first.join("\n")).await;
        let before = server.pairs(&key).await;
        server.stop().await;

        let server = Server::start(db.config(None)).await;
        assert_eq!(server.pairs(&key).await, before, "{name}: findings survive a restart");
        let again = server.post_events(&key, first.join("\n")).await;
        assert_eq!(
            again["duplicates"].as_u64(),
            Some(first.len() as u64),
            "{name}: resent events are duplicates"
        );
        server.post_events(&key, second.join("\n")).await;
        assert_eq!(
            server.pairs(&key).await,
            expected("lottery").0,
            "{name}: same findings as one uninterrupted audit"
        );
        let (status, cp) = server.call("GET", "/log/checkpoint", None, None).await;
        assert_eq!(status, 200);
        assert!(
            cp.as_str().is_some_and(|c| c.starts_with("weiquan.local/ledger\n")),
            "{cp}"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn role_by_route_matrix() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let keys: Vec<(&str, Option<String>)> = vec![
        ("none", None),
        ("platform", Some(db.key("platform").await)),
        ("regulator", Some(db.key("regulator").await)),
        ("merchant:m1", Some(db.key("merchant:m1").await)),
        ("merchant:m2", Some(db.key("merchant:m2").await)),
        ("consumer:u1", Some(db.key("consumer:u1").await)),
    ];
    let platform = keys[1].1.clone().expect("platform key");
    server.post_events(&platform, case_text("presale")).await;
    // Leaf 0 registers m1; leaf 7 is u1's deposit (see the receipts below).
    let deposit_leaf = {
        let (_, r) = server.call("GET", "/v1/receipts/7", Some(&platform), None).await;
        // The public leaf holds a commitment; the platform's receipt opens it.
        assert_eq!(r["private"]["values"]["consumer"], "u1", "{r}");
        assert!(r["leaf"].as_str().is_some_and(|l| !l.contains("\"u1\"")), "{r}");
        7
    };
    //        route                                   none platform regulator m1   m2   u1
    let matrix: Vec<(&str, String, Option<&str>, [u16; 6])> = vec![
        (
            "POST",
            "/v1/events".into(),
            Some("{\"v\":1}"),
            [401, 200, 403, 403, 403, 403],
        ),
        ("GET", "/v1/findings".into(), None, [401, 200, 200, 200, 200, 403]),
        (
            "GET",
            "/v1/findings?merchant=m1".into(),
            None,
            [401, 200, 200, 200, 403, 403],
        ),
        ("GET", "/v1/merchants/m1".into(), None, [200, 200, 200, 200, 200, 200]),
        (
            "GET",
            "/v1/merchants/nobody".into(),
            None,
            [404, 404, 404, 404, 404, 404],
        ),
        ("GET", "/v1/blacklist".into(), None, [401, 200, 200, 403, 403, 403]),
        ("GET", "/v1/watchlist".into(), None, [401, 200, 200, 403, 403, 403]),
        (
            "GET",
            "/v1/proofs/inclusion?index=0".into(),
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/v1/proofs/inclusion?index=999".into(),
            None,
            [404, 404, 404, 404, 404, 404],
        ),
        (
            "GET",
            "/v1/proofs/consistency?from=1".into(),
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        ("GET", "/v1/receipts/0".into(), None, [401, 200, 200, 200, 403, 403]),
        (
            "GET",
            format!("/v1/receipts/{deposit_leaf}"),
            None,
            [401, 200, 200, 403, 403, 200],
        ),
        ("GET", "/log/checkpoint".into(), None, [200, 200, 200, 200, 200, 200]),
        (
            "GET",
            "/log/tile/0/000.p/23".into(),
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/log/tile/entries/000.p/23".into(),
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        ("GET", "/log/tile/0/000".into(), None, [404, 404, 404, 404, 404, 404]),
        ("GET", "/openapi.json".into(), None, [200, 200, 200, 200, 200, 200]),
        ("GET", "/metrics".into(), None, [200, 200, 200, 200, 200, 200]),
        ("GET", "/healthz".into(), None, [200, 200, 200, 200, 200, 200]),
        ("GET", "/readyz".into(), None, [200, 200, 200, 200, 200, 200]),
        (
            "POST",
            "/v1/lotteries/nothing/close".into(),
            None,
            [401, 404, 403, 403, 403, 403],
        ),
        (
            "POST",
            "/v1/lotteries/nothing/draw".into(),
            None,
            [401, 404, 403, 403, 403, 403],
        ),
        (
            "POST",
            "/v1/lotteries".into(),
            Some("{\"lottery\": 5}"),
            [401, 422, 403, 403, 403, 403],
        ),
        (
            "GET",
            "/v1/lotteries/nothing".into(),
            None,
            [404, 404, 404, 404, 404, 404],
        ),
        ("GET", "/v1/hosts/nobody".into(), None, [404, 404, 404, 404, 404, 404]),
        ("GET", "/v1/paylater".into(), None, [401, 422, 422, 403, 403, 200]),
        (
            "GET",
            "/v1/paylater?consumer=u1".into(),
            None,
            [401, 200, 200, 403, 403, 200],
        ),
        (
            "POST",
            "/v1/paylater/nothing/disable".into(),
            None,
            [401, 403, 403, 403, 403, 404],
        ),
        ("GET", "/v1/complaints".into(), None, [401, 200, 200, 200, 200, 200]),
        (
            "GET",
            "/v1/complaints/nothing".into(),
            None,
            [401, 404, 404, 404, 404, 404],
        ),
        (
            "POST",
            "/v1/complaints/nothing/respond".into(),
            None,
            [401, 404, 403, 404, 404, 403],
        ),
        (
            "POST",
            "/v1/complaints/nothing/resolve".into(),
            Some("{\"outcome\":\"refund\"}"),
            [401, 404, 403, 403, 403, 403],
        ),
        (
            "POST",
            "/v1/complaints".into(),
            Some("not a form"),
            [401, 400, 403, 403, 403, 400],
        ),
        (
            "POST",
            "/v1/blacklist/m1/lift".into(),
            Some("{\"reason\":\"整改完成\"}"),
            [401, 403, 200, 403, 403, 403],
        ),
        (
            "POST",
            "/v1/blacklist/m1/lift".into(),
            Some("{\"reason\":\"again\"}"),
            [401, 403, 404, 403, 403, 403],
        ),
    ];
    for (method, path, body, want) in matrix {
        for ((role, key), expect) in keys.iter().zip(want) {
            let (status, v) = server
                .call(method, &path, key.as_deref(), body.map(str::to_owned))
                .await;
            assert_eq!(status, expect, "{method} {path} as {role}: {v}");
            if status >= 400 {
                assert!(
                    v["title"].is_string() && v["status"] == expect,
                    "{method} {path} as {role}: problem details, got {v}"
                );
            }
        }
    }
    let (_, public) = server.call("GET", "/v1/merchants/m1", None, None).await;
    assert!(
        public.get("findings").is_none(),
        "the public sees the grade, not the findings"
    );
    let (_, own) = server.call("GET", "/v1/merchants/m1", keys[3].1.as_deref(), None).await;
    assert!(own["findings"].as_array().is_some_and(|f| !f.is_empty()));
    let (status, _) = server.call("GET", "/v1/findings", Some("wq_not_a_key"), None).await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_lists_every_route() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let (status, doc) = server.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/v1/events",
        "/v1/findings",
        "/v1/merchants/{id}",
        "/v1/blacklist",
        "/v1/blacklist/{merchant}/lift",
        "/v1/proofs/inclusion",
        "/v1/proofs/consistency",
        "/v1/receipts/{index}",
        "/v1/hosts/{id}",
        "/v1/watchlist",
        "/v1/paylater",
        "/v1/paylater/{provider}/disable",
        "/v1/complaints",
        "/v1/complaints/{id}",
        "/v1/complaints/{id}/evidence/{sha256}",
        "/v1/complaints/{id}/{step}",
        "/log/checkpoint",
        "/log/tile/{path}",
        "/openapi.json",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
    }
    // Every operation declares its error statuses as problem documents, and a schema for each 2xx.
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("operations") {
            let responses = op["responses"].as_object().expect("responses");
            for status in ["400", "404", "405", "408", "500"] {
                let ct = &responses[status]["content"];
                assert!(
                    ct.get("application/problem+json").is_some(),
                    "{method} {path}: {status} is not declared as a problem: {ct}"
                );
            }
            for (status, r) in responses {
                if !status.starts_with('2') {
                    assert!(
                        r["content"].get("application/json").is_none(),
                        "{method} {path} {status}"
                    );
                    continue;
                }
                // A 2xx says what it returns: a schema for JSON, a content type otherwise.
                let content = r["content"].as_object().filter(|c| !c.is_empty());
                let content = content.unwrap_or_else(|| panic!("{method} {path} {status}: no content declared"));
                if let Some(json) = content.get("application/json") {
                    assert!(
                        json["schema"].is_object(),
                        "{method} {path} {status}: JSON without a schema"
                    );
                }
            }
            if op.get("security").is_some() {
                assert!(
                    responses.contains_key("401") && responses.contains_key("429"),
                    "{method} {path}"
                );
            }
        }
    }
    // An independent validator (openapi-spec-validator, installed by scripts/test) checks the document.
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), serde_json::to_vec(&doc).expect("json")).expect("write");
    let out = std::process::Command::new("python3")
        .args(["-c", "import json,sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1]))); print('valid')"])
        .arg(file.path())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the OpenAPI document does not validate (or openapi-spec-validator is missing: pip install openapi-spec-validator): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.stop().await;
}

/// Query values are typed: a severity that is not one is a 400 problem
/// naming the field; a language weiquan does not write is answered in
/// Chinese, the default, rather than refused.
#[tokio::test(flavor = "multi_thread")]
async fn findings_queries_are_typed() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let key = db.key("platform").await;
    server.post_events(&key, case_text("bnpl-prices")).await;
    let (status, v) = server
        .call("GET", "/v1/findings?severity=urgent", Some(&key), None)
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| d.contains("severity")), "{v}");
    let (status, high) = server.call("GET", "/v1/findings?severity=high", Some(&key), None).await;
    assert_eq!(status, 200, "{high}");
    let (_, all) = server.call("GET", "/v1/findings", Some(&key), None).await;
    let (status, french) = server.call("GET", "/v1/findings?lang=fr", Some(&key), None).await;
    assert_eq!(status, 200, "{french}");
    assert_eq!(french, all, "an unknown language reads as the default");
    let (_, english) = server.call("GET", "/v1/findings?lang=en", Some(&key), None).await;
    assert_ne!(english, all, "English messages differ from Chinese ones");
    let of = |v: &serde_json::Value, severity: &str| {
        (v["findings"].as_array().into_iter().flatten())
            .filter(|f| f["severity"] == severity)
            .count()
    };
    let listed = high["findings"].as_array().map_or(0, Vec::len);
    assert!(
        listed > 0 && listed == of(&high, "high") && listed == of(&all, "high"),
        "{high}"
    );
    let (_, low) = server.call("GET", "/v1/findings?severity=low", Some(&key), None).await;
    assert_eq!(low["findings"].as_array().map_or(0, Vec::len), of(&all, "low"), "{low}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_and_body_limits_are_problems() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let key = db.key("platform").await;
    let many = (0..weiquan_server::MAX_BATCH_ITEMS + 1)
        .map(|i| format!("{{\"i\":{i}}}"))
        .collect::<Vec<_>>()
        .join("\n");
    let (status, v) = server.call("POST", "/v1/events", Some(&key), Some(many)).await;
    assert_eq!(status, 413, "{v}");
    let (status, v) = server
        .call("POST", "/v1/events", Some(&key), Some("[1, 2".into()))
        .await;
    assert_eq!(status, 400, "{v}");
    let array = format!("[{}]", case_text("bnpl-prices").lines().collect::<Vec<_>>().join(","));
    let v = server.post_events(&key, array).await;
    assert_eq!(v["accepted"].as_u64(), Some(30));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_jetstream_ingest_is_at_least_once_and_deduplicated() {
    if !nats_available() {
        return;
    }
    let db = Db::sqlite();
    let subject = format!(
        "weiquan.test.{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let server = Server::start(db.config(Some(("nats://127.0.0.1:4222".into(), subject.clone())))).await;
    let key = db.key("platform").await;
    let client = async_nats::connect("nats://127.0.0.1:4222")
        .await
        .expect("NATS at 127.0.0.1:4222 is running");
    let js = async_nats::jetstream::new(client);
    // The server creates the stream; wait until it exists.
    let stream = weiquan_server::stream_name(&subject);
    for _ in 0..100 {
        if js.get_stream(&stream).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for round in 0..2 {
        // Messages are framed as files are: a byte-order mark and `\r\n` are
        // allowed, and a line that is not UTF-8 is refused, not mended.
        let mut messages: Vec<Vec<u8>> = (case_text("merchants").lines())
            .enumerate()
            .map(|(i, line)| match i {
                0 => format!("\u{feff}{line}\r\n").into_bytes(),
                _ => line.as_bytes().to_vec(),
            })
            .collect();
        messages.push(b"{\"v\":1,\"id\":\"\xff\"}\n".to_vec());
        for message in messages {
            js.publish(subject.clone(), message.into())
                .await
                .expect("publish")
                .await
                .expect("stored by JetStream");
        }
        let want = expected("merchants").0;
        let mut got = BTreeSet::new();
        for _ in 0..200 {
            got = server.pairs(&key).await;
            if got == want {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(got, want, "round {round}: NATS events give the case's findings");
    }
    // The second round is all duplicates: wait until every redelivered event was counted as one.
    let mut text = String::new();
    for _ in 0..200 {
        let (_, metrics) = server.call("GET", "/metrics", None, None).await;
        text = metrics.as_str().unwrap_or_default().to_owned();
        if text.contains("weiquan_events_total{outcome=\"duplicate\"} 35") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        text.contains("weiquan_events_total{outcome=\"duplicate\"} 35"),
        "{text}"
    );
    assert!(
        text.contains("weiquan_events_total{outcome=\"accepted\"} 35"),
        "nothing applied twice:\n{text}"
    );
    let _ = js.delete_stream(&stream).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_answers_429_with_retry_after() {
    let db = Db::sqlite();
    let mut cfg = db.config(None);
    cfg.rate_limit = 1;
    let server = Server::start(cfg).await;
    let key = db.key("platform").await;
    // Five calls as a key, then five without one (the address's limit): each
    // runs out after its burst, says when to retry, and names whose limit it was.
    for (key, whose) in [(Some(&key), "this API key's"), (None, "this address's")] {
        let mut statuses = Vec::new();
        let mut retry_after = None;
        let mut detail = String::new();
        for _ in 0..5 {
            let mut req = server.http.get(format!("{}/v1/findings", server.base));
            if let Some(key) = key {
                req = req.bearer_auth(key);
            }
            let resp = req.send().await.expect("sent");
            statuses.push(resp.status().as_u16());
            if resp.status().as_u16() == 429 {
                retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let p: Value = resp.json().await.expect("a problem");
                detail = p["detail"].as_str().unwrap_or_default().to_owned();
            }
        }
        // The key's first call, before the key was known, was the address's too: its burst has one call left.
        let burst = if key.is_some() { &[200, 200][..] } else { &[401][..] };
        assert_eq!(&statuses[..burst.len()], burst, "{whose}: the burst is allowed");
        assert!(statuses.contains(&429), "{whose}: {statuses:?}");
        assert!(retry_after.is_some_and(|s| s >= 1), "{whose}: 429 carries Retry-After");
        assert!(detail.starts_with(whose), "{whose}: {detail}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_under_changed_rules_keeps_logged_findings_paired_with_their_leaves() {
    let db = Db::sqlite();
    let key = db.key("platform").await;
    let server = Server::start(db.config(None)).await;
    server.post_events(&key, case_text("presale")).await;
    let (_, before) = server.call("GET", "/v1/findings?limit=100", Some(&key), None).await;
    server.stop().await;

    // Stricter: a 30-day limit makes PS-03 fire for c1 as well, which was never logged.
    let mut cfg = db.config(None);
    cfg.rules = Arc::new(Rulebook::with_overrides("[thresholds]\npresale_max_days = 10\n").expect("rules"));
    let server = Server::start(cfg).await;
    let (_, after) = server.call("GET", "/v1/findings?limit=100", Some(&key), None).await;
    let pairs = |v: &Value| -> Vec<(String, String, u64)> {
        v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| {
                (
                    f["rule"].as_str().unwrap_or("").to_owned(),
                    f["subject"].as_str().unwrap_or("").to_owned(),
                    f["index"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    // Every finding shown is one the ledger holds, at its own leaf; none is invented by the new rules.
    let logged = pairs(&before);
    for f in pairs(&after) {
        assert!(logged.contains(&f), "{f:?} is not a logged finding");
    }
    assert!(
        pairs(&after).len() >= logged.len() - 1,
        "the logged findings survive: {after}"
    );
    server.stop().await;
}

/// schemathesis (installed by scripts/test) against `/openapi.json` with a
/// platform and a regulator key: no 5xx, and every status, content type and
/// response body as the document declares.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_the_contract_kept() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let text = std::fs::read_to_string(root().join("tests/cases/lottery/events.ndjson")).expect("case");
    server.post_events(&platform, text).await;
    for key in [platform, db.key("regulator").await] {
        let url = format!("{}/openapi.json", server.base);
        let out = tokio::task::spawn_blocking(move || {
            // Through the module, not the `st` script: no PATH shim needed after `pip install`.
            std::process::Command::new("python3")
                .args(["-m", "schemathesis.cli", "run", &url, "--max-examples", "20"])
                .args([
                    "--checks",
                    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                ])
                .args(["-H", &format!("Authorization: Bearer {key}")])
                .output()
        })
        .await
        .expect("join")
        .expect("python3 runs (schemathesis: pip install schemathesis)");
        assert!(
            out.status.success(),
            "schemathesis found the contract broken (or is not installed: pip install schemathesis):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    server.stop().await;
}

/// Every JSON answer of a route follows the schema `/openapi.json` declares
/// for its 200, on a ledger where each route has something to say: the
/// lottery case's findings, a blacklisted merchant and its lift, a lottery
/// weiquan announced, closed and drew, an entry proof, receipts with and
/// without personal data. (schemathesis checks the same on random requests,
/// which mostly miss the ids that exist.) Checked with Python's jsonschema.
#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_in_the_shape_it_declares() {
    use serde_json::json;
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let regulator = db.key("regulator").await;
    let merchant = db.key("merchant:m9").await;
    let ingest = server.post_events(&platform, case_text("lottery")).await;
    let at = "2026-11-01T10:00:00+08:00";
    let fake: Vec<String> = (0..3)
        .map(|i| json!({"v": 1, "id": format!("bl-{i}"), "type": "listing.updated", "at": at, "merchant": "m9", "sku": format!("s{i}"), "reference_price_fen": 100}).to_string())
        .collect();
    server.post_events(&platform, fake.join("\n")).await;
    let bnpl = json!({"v": 1, "id": "bn", "type": "bnpl.enabled", "at": at, "consumer": "u7", "provider": "p", "consent": "bundled", "identity_verified": false});
    let bn = server.post_events(&platform, bnpl.to_string()).await["items"][0]["index"]
        .as_u64()
        .expect("index");
    let lottery = json!({"lottery": "W1", "merchant": "m9", "host": "h", "stream": "s", "at": at,
        "prizes": [{"name": "券", "value_fen": 100, "count": 1}]});
    let mut answers: Vec<(&str, String, Value)> = vec![("post", "/v1/events".into(), ingest)];
    let call = |method: &'static str, template: &str, path: String, key: Option<String>, body: Option<String>| {
        let (server, template) = (&server, template.to_owned());
        async move {
            let (status, v) = server.call(&method.to_uppercase(), &path, key.as_deref(), body).await;
            assert_eq!(status, 200, "{method} {path}: {v}");
            (method, template, v)
        }
    };
    let p = || Some(platform.clone());
    answers.push(
        call(
            "post",
            "/v1/lotteries",
            "/v1/lotteries".into(),
            p(),
            Some(lottery.to_string()),
        )
        .await,
    );
    let entry =
        json!({"v": 1, "id": "w1-e", "type": "lottery.entered", "at": at, "lottery": "W1", "participant": "p1"});
    server.post_events(&platform, entry.to_string()).await;
    answers.push(
        call(
            "post",
            "/v1/lotteries/{id}/close",
            "/v1/lotteries/W1/close".into(),
            p(),
            None,
        )
        .await,
    );
    answers.push(
        call(
            "post",
            "/v1/lotteries/{id}/draw",
            "/v1/lotteries/W1/draw".into(),
            p(),
            None,
        )
        .await,
    );
    answers.push(call("get", "/v1/lotteries/{id}", "/v1/lotteries/W1".into(), None, None).await);
    answers.push(call("get", "/v1/hosts/{id}", "/v1/hosts/h".into(), None, None).await);
    let u7 = db.key("consumer:u7").await;
    answers.push(call("get", "/v1/paylater", "/v1/paylater?consumer=u7".into(), p(), None).await);
    answers.push(
        call(
            "post",
            "/v1/paylater/{provider}/disable",
            "/v1/paylater/p/disable".into(),
            Some(u7.clone()),
            None,
        )
        .await,
    );
    // A complaint, filed by the platform for u7 (multipart), then read and escalated.
    let form = reqwest::multipart::Form::new()
        .text("consumer", "u7")
        .text("merchant", "m9")
        .text("category", "bnpl")
        .text("text", "没有同意就开通了先用后付");
    let filed: Value = (server.http.post(format!("{}/v1/complaints", server.base)))
        .bearer_auth(&platform)
        .multipart(form)
        .send()
        .await
        .expect("filed")
        .json()
        .await
        .expect("json");
    let complaint = filed["complaint"].as_str().expect("complaint id").to_owned();
    answers.push(("post", "/v1/complaints".into(), filed.clone()));
    answers.push(call("get", "/v1/complaints", "/v1/complaints".into(), p(), None).await);
    answers.push(
        call(
            "get",
            "/v1/complaints/{id}",
            format!("/v1/complaints/{complaint}"),
            p(),
            None,
        )
        .await,
    );
    answers.push(
        call(
            "post",
            "/v1/complaints/{id}/{step}",
            format!("/v1/complaints/{complaint}/escalate"),
            p(),
            Some(r#"{"to":"regulator"}"#.into()),
        )
        .await,
    );
    answers.push(
        call(
            "get",
            "/v1/lotteries/{id}/proof",
            "/v1/lotteries/W1/proof?participant=p1".into(),
            None,
            None,
        )
        .await,
    );
    answers.push(call("get", "/v1/findings", "/v1/findings?limit=1000".into(), p(), None).await);
    answers.push(
        call(
            "get",
            "/v1/merchants/{id}",
            "/v1/merchants/m9".into(),
            Some(merchant.clone()),
            None,
        )
        .await,
    );
    answers.push(call("get", "/v1/merchants/{id}", "/v1/merchants/m9".into(), None, None).await);
    answers.push(call("get", "/v1/blacklist", "/v1/blacklist".into(), p(), None).await);
    answers.push(call("get", "/v1/watchlist", "/v1/watchlist".into(), p(), None).await);
    let reason = json!({"reason": "整改完成"}).to_string();
    answers.push(
        call(
            "post",
            "/v1/blacklist/{merchant}/lift",
            "/v1/blacklist/m9/lift".into(),
            Some(regulator.clone()),
            Some(reason),
        )
        .await,
    );
    answers.push(
        call(
            "get",
            "/v1/proofs/inclusion",
            "/v1/proofs/inclusion?index=3".into(),
            None,
            None,
        )
        .await,
    );
    answers.push(
        call(
            "get",
            "/v1/proofs/consistency",
            "/v1/proofs/consistency?from=3".into(),
            None,
            None,
        )
        .await,
    );
    answers.push(call("get", "/v1/receipts/{index}", "/v1/receipts/0".into(), p(), None).await);
    answers.push(call("get", "/v1/receipts/{index}", format!("/v1/receipts/{bn}"), p(), None).await);
    assert!(
        answers.iter().any(|(_, _, v)| v.get("private").is_some()),
        "a receipt with personal data"
    );
    let (_, doc) = server.call("GET", "/openapi.json", None, None).await;
    server.stop().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<Value> = answers
        .into_iter()
        .map(|(method, path, instance)| json!({"method": method, "path": path, "instance": instance}))
        .collect();
    std::fs::write(dir.path().join("doc.json"), doc.to_string()).expect("write");
    std::fs::write(dir.path().join("cases.json"), Value::from(cases).to_string()).expect("write");
    let script = r#"
import json, sys
from jsonschema import Draft202012Validator
doc = json.load(open(sys.argv[1]))
bad = 0
for c in json.load(open(sys.argv[2])):
    ok = doc["paths"][c["path"]][c["method"]]["responses"]["200"]
    schema = ok["content"]["application/json"]["schema"]
    errors = list(Draft202012Validator(dict(schema, components=doc["components"])).iter_errors(c["instance"]))
    for e in errors:
        bad += 1
        print(c["method"], c["path"], "/".join(map(str, e.absolute_path)), e.message[:300])
sys.exit(1 if bad else 0)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir.path().join("doc.json"))
        .arg(dir.path().join("cases.json"))
        .output()
        .expect("python3 runs (jsonschema comes with schemathesis)");
    assert!(
        out.status.success(),
        "answers that do not follow their declared schema:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every leaf of the server's ledger, read through platform receipts.
async fn all_leaves(server: &Server, platform: &str) -> Vec<String> {
    let (_, cp) = server.call("GET", "/log/checkpoint", None, None).await;
    let size: u64 = cp
        .as_str()
        .and_then(|c| c.lines().nth(1))
        .and_then(|l| l.parse().ok())
        .expect("size");
    let mut out = Vec::new();
    for i in 0..size {
        let (_, r) = server
            .call("GET", &format!("/v1/receipts/{i}"), Some(platform), None)
            .await;
        out.push(r["leaf"].as_str().expect("leaf").to_owned());
    }
    out
}

/// The ledger records the rulebook a server runs when it is not the last one
/// recorded (none recorded: the built-in one): a server with its own rules
/// writes it before anything else, a restart with the same writes nothing,
/// one back on the built-in rules records that; replay is unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_records_a_change_of_rulebook() {
    let db = Db::sqlite();
    let looser = Arc::new(Rulebook::with_overrides("[thresholds]\ndeposit_cap_percent = 35.0\n").expect("rules"));
    let config = |rules: Arc<Rulebook>| weiquan_server::Config {
        rules,
        ..db.config(None)
    };
    let platform = db.key("platform").await;
    let server = Server::start(config(looser.clone())).await;
    server.post_events(&platform, case_text("presale")).await;
    let pairs = server.pairs(&platform).await;
    assert!(
        !pairs.contains(&("PS-06".into(), "campaign:c2".into())),
        "the looser cap is in effect"
    );
    let first = all_leaves(&server, &platform).await;
    assert!(
        first[0].contains(r#""type":"weiquan.rulebook""#) && first[0].contains(r#""deposit_cap_percent":35"#),
        "{}",
        first[0]
    );
    server.stop().await;

    let server = Server::start(config(looser)).await;
    assert_eq!(
        all_leaves(&server, &platform).await,
        first,
        "the same rulebook is not recorded again"
    );
    assert_eq!(server.pairs(&platform).await, pairs, "replay skips the record");
    server.stop().await;

    let server = Server::start(config(Arc::new(Rulebook::builtin()))).await;
    let now = all_leaves(&server, &platform).await;
    assert_eq!(now.len(), first.len() + 1);
    assert!(
        now[first.len()].contains(r#""deposit_cap_percent":20"#),
        "{}",
        now[first.len()]
    );
    server.stop().await;
}

/// The small bodies (a lift's reason, a draw's beacon signature) are JSON
/// whatever their `Content-Type` says (`curl -d` sends a form type); a body
/// that is not JSON is a 400 that says so, and an empty one reads as `{}`.
#[tokio::test(flavor = "multi_thread")]
async fn small_bodies_are_json_whatever_their_content_type() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let regulator = db.key("regulator").await;
    server.post_events(&platform, case_text("presale")).await;
    let (status, v) = server
        .call(
            "POST",
            "/v1/blacklist/m1/lift",
            Some(&regulator),
            Some("reason=fixed".into()),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| d.contains("not the JSON")), "{v}");
    let (status, v) = server
        .call("POST", "/v1/blacklist/m1/lift", Some(&regulator), None)
        .await;
    assert_eq!(status, 422, "an empty body has no reason: {v}");
    assert!(v["detail"].as_str().is_some_and(|d| d.contains("say why")), "{v}");
    let lifted = server
        .http
        .post(format!("{}/v1/blacklist/m1/lift", server.base))
        .bearer_auth(&regulator)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(r#"{"reason":"整改完成"}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(lifted.status().as_u16(), 200, "{:?}", lifted.text().await);
    let (status, v) = server
        .call(
            "POST",
            "/v1/lotteries/nothing/draw",
            Some(&platform),
            Some("[1]".into()),
        )
        .await;
    assert_eq!(status, 400, "a draw's body is an object: {v}");
    let (status, _) = server
        .call("POST", "/v1/lotteries/nothing/draw", Some(&platform), Some("{}".into()))
        .await;
    assert_eq!(status, 404);
    server.stop().await;
}

/// A host's page (public): where it stands and since when, and the findings
/// of every lottery it hosted, each as that lottery's own page shows it to
/// the same caller (winners masked for the public and other merchants).
#[tokio::test(flavor = "multi_thread")]
async fn a_hosts_page_shows_its_standing_and_its_lotteries_findings_as_their_pages_do() {
    use serde_json::json;
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let own = db.key("merchant:m2").await;
    let other = db.key("merchant:m9").await;
    server.post_events(&platform, case_text("lottery")).await;
    let (status, public) = server.call("GET", "/v1/hosts/h1", None, None).await;
    assert_eq!(status, 200, "{public}");
    assert_eq!(public["standing"], "not_registered", "{public}");
    assert_eq!(
        (public["qualified"].clone(), public["since"].clone()),
        (json!(false), Value::Null)
    );
    let lotteries: Vec<String> = serde_json::from_value(public["lotteries"].clone()).expect("ids");
    assert_eq!(lotteries, ["l1", "l2", "l3", "l4", "l5"]);
    for (key, who) in [
        (None, "the public"),
        (Some(own.as_str()), "its merchant"),
        (Some(other.as_str()), "another merchant"),
    ] {
        let (_, page) = server.call("GET", "/v1/hosts/h1", key, None).await;
        let mut want = Vec::new();
        for l in &lotteries {
            let (_, lottery) = server.call("GET", &format!("/v1/lotteries/{l}"), key, None).await;
            want.extend(lottery["findings"].as_array().expect("findings").iter().cloned());
        }
        want.sort_by_key(|f| f["index"].as_u64());
        assert!(!want.is_empty());
        assert_eq!(page["findings"], Value::from(want), "as {who}");
    }
    let (_, page) = server.call("GET", "/v1/hosts/h1", None, None).await;
    assert!(
        !page.to_string().contains("p7"),
        "the public does not read winners' ids: {page}"
    );
    let (_, page) = server.call("GET", "/v1/hosts/h1", Some(&own), None).await;
    assert!(page.to_string().contains("p7"), "the lottery's merchant does: {page}");

    let at = |d: u32| format!("2026-11-{d:02}T10:00:00+08:00");
    let registry = [
        json!({"v": 1, "id": "h-reg", "type": "host.registered", "at": at(16), "host": "h1", "name": "主播甲", "merchant": "m2"}),
        json!({"v": 1, "id": "h-ver", "type": "host.verified", "at": at(17), "host": "h1", "method": "id_check", "by": "platform"}),
    ];
    let lines: Vec<String> = registry.iter().map(Value::to_string).collect();
    server.post_events(&platform, lines.join("\n")).await;
    let (_, page) = server.call("GET", "/v1/hosts/h1?lang=en", None, None).await;
    assert_eq!(page["standing"], "qualified", "{page}");
    assert_eq!(
        (
            page["qualified"].clone(),
            page["merchant"].clone(),
            page["method"].clone()
        ),
        (json!(true), json!("m2"), json!("id_check"))
    );
    let since = page["since"].as_str().expect("since");
    assert_eq!(
        weiquan_events::Time::parse(since).ok(),
        weiquan_events::Time::parse(&at(17)).ok()
    );
    assert!(
        !page.to_string().contains("主播甲"),
        "the display name is personal data: {page}"
    );
    assert!(
        page["findings"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Live-stream lottery")),
        "lang=en: {page}"
    );
    server.stop().await;
}

/// A merchant's grade as a consumer reads it (public): every factor with its
/// value, points and words in the language asked for, "not rated yet" below
/// the minimum of orders, and a history whose events are the stream's.
#[tokio::test(flavor = "multi_thread")]
async fn a_merchants_grade_explains_itself_in_both_languages() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    // The merchants case, and ten orders for m7 (rated then; the others are not).
    let orders: Vec<String> = (0..10)
        .map(|i| serde_json::json!({"v": 1, "id": format!("g-o{i}"), "type": "order.placed", "at": "2026-11-20T10:00:00+08:00",
            "order": format!("g-o{i}"), "merchant": "m7", "consumer": "u1", "sku": "s", "qty": 1, "amount_fen": 100, "payment": "standard"}).to_string())
        .collect();
    let text = format!("{}\n{}", case_text("merchants"), orders.join("\n"));
    server.post_events(&platform, text.clone()).await;
    let ids: Vec<String> = (text.lines().filter(|l| !l.trim().is_empty()))
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["id"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let (_, blacklist) = server.call("GET", "/v1/blacklist", Some(&platform), None).await;
    let mut seen_rated = (false, false);
    for m in ["m3", "m4", "m5", "m6", "m7", "m8"] {
        let (status, zh) = server.call("GET", &format!("/v1/merchants/{m}"), None, None).await;
        if status == 404 {
            continue;
        }
        let (_, en) = server
            .call("GET", &format!("/v1/merchants/{m}?lang=en"), None, None)
            .await;
        let g = &zh["grade"];
        let kinds: Vec<&str> = g["factors"]
            .as_array()
            .expect("factors")
            .iter()
            .filter_map(|f| f["factor"].as_str())
            .collect();
        assert_eq!(
            kinds,
            ["findings", "complaints", "late_shipping", "slow_reply"],
            "{m}: {g}"
        );
        let has_cjk = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        for (zf, ef) in g["factors"]
            .as_array()
            .into_iter()
            .flatten()
            .zip(en["grade"]["factors"].as_array().into_iter().flatten())
        {
            assert!(has_cjk(zf["message"].as_str().unwrap_or("")), "{m}: {zf}");
            assert!(!has_cjk(ef["message"].as_str().unwrap_or("x")), "{m}: {ef}");
            assert_eq!(
                (zf["points"].clone(), zf["value"].clone()),
                (ef["points"].clone(), ef["value"].clone())
            );
        }
        let orders = g["orders"].as_u64().expect("orders");
        let blacklisted = blacklist.to_string().contains(&format!("\"merchant\":\"{m}\""));
        let rated = orders >= g["min_orders"].as_u64().expect("min") || blacklisted;
        assert_eq!(g["rated"], rated, "{m}: {g}");
        assert_eq!(g["grade"].is_null(), !rated, "{m}: {g}");
        if !rated {
            assert!(
                en["grade"]["summary"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("not rated yet")),
                "{en}"
            );
        }
        seen_rated = (seen_rated.0 || rated, seen_rated.1 || !rated);
        for h in g["history"].as_array().expect("history") {
            assert!(
                ids.iter().any(|id| h["event"] == id.as_str()),
                "{m}: {h} names an event of the stream"
            );
        }
    }
    assert_eq!(seen_rated, (true, true), "rated and unrated merchants were read");
    server.stop().await;
}

/// The event format accepts any extra field (spec/events.md, "Bad input"),
/// also one RFC 8785 cannot write: a number beyond a double, a lone surrogate
/// escape, nesting deeper than 128. Such an event is accepted, its receipt
/// opens, and a restarted server replays it with everything it defines (an
/// order in it is late two days on).
#[tokio::test(flavor = "multi_thread")]
async fn an_extra_field_without_a_canonical_form_is_accepted_and_replayed() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for (name, db) in Db::both() {
        let platform = db.key("platform").await;
        let start = || {
            let mut cfg = db.config(None);
            cfg.max_future_ms = None;
            Server::start(cfg)
        };
        let server = start().await;
        let order = |id: &str, odd: &str| {
            format!(
                r#"{{"v":1,"id":"{id}","type":"order.placed","at":"2026-11-01T10:00:00+08:00","order":"{id}","merchant":"m1","consumer":"u1","sku":"s1","qty":1,"amount_fen":100,"payment":"standard","note":{odd}}}"#
            )
        };
        let lines = [
            order("o-big", "1e400"),
            order("o-surrogate", r#""\ud800""#),
            order("o-deep", &deep),
            r#"{"v":1,"id":"t1","type":"clock.tick","at":"2026-11-01T10:00:00+08:00","consumer":1e400}"#.to_owned(),
            // Shipped, with a consumer of no canonical form in an extra field:
            // replayed, the shipment must still count (the order is not late).
            order("o-shipped", "1"),
            r#"{"v":1,"id":"s1","type":"order.shipped","at":"2026-11-01T11:00:00+08:00","order":"o-shipped","consumer":1e400}"#.to_owned(),
        ];
        let v = server.post_events(&platform, lines.join("\n")).await;
        let results = v["items"].as_array().expect("results");
        assert!(
            results.iter().all(|r| r["status"] == "accepted"),
            "{name}: every line is accepted: {v}"
        );
        let index = results[0]["index"].as_u64().expect("index");
        let (status, receipt) = server
            .call("GET", &format!("/v1/receipts/{index}"), Some(&platform), None)
            .await;
        assert_eq!(status, 200, "{receipt}");
        let leaf = receipt["leaf"].as_str().expect("leaf");
        assert!(
            leaf.contains(r#""raw":["note"]"#),
            "{name}: the leaf says which member is a text: {leaf}"
        );
        assert_eq!(receipt["private"]["values"]["note"], "1e400", "{name}: {receipt}");
        server.stop().await;

        // A full replay: the events are read back from their leaves.
        let server = start().await;
        let again = server.post_events(&platform, lines.join("\n")).await;
        assert!(
            (again["items"].as_array().into_iter().flatten()).all(|r| r["status"] == "duplicate"),
            "{name}: their ids were replayed: {again}"
        );
        let later = r#"{"v":1,"id":"t2","type":"clock.tick","at":"2026-11-04T10:00:00+08:00"}"#;
        server.post_events(&platform, later.to_owned()).await;
        let key = db.key("regulator").await;
        let late: BTreeSet<String> = (server.findings(&key, 100).await.iter())
            .filter(|f| f["rule"] == "MC-06")
            .filter_map(|f| f["subject"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            late,
            BTreeSet::from(["order:o-big".into(), "order:o-deep".into(), "order:o-surrogate".into()]),
            "{name}: the replayed orders are late"
        );
        server.stop().await;
    }
}
