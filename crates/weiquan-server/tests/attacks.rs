//! The server as an attacker tries it (issue 15): a platform that speaks for a
//! regulator, overrides a route's event type, squats weiquan's ids, takes over
//! a draw or moves the business clock by years; a caller without a key who
//! makes the server read a large body; error statuses that are not problems.
//! Each test failed on the server before these holes were closed.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Three fake 原价 on three skus of an unverified merchant: blacklisted.
fn blacklisting(m: &str) -> String {
    (0..3)
        .map(|i| {
            ev(
                &format!("bl-{m}-{i}"),
                "listing.updated",
                json!({"merchant": m, "sku": format!("s{i}"), "reference_price_fen": 100}),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn item(v: &Value) -> &Value {
    &v["items"][0]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_platform_cannot_lift_a_blacklist_in_the_regulators_name() {
    for (name, db) in Db::both() {
        let server = Server::start(db.config(None)).await;
        let platform = db.key("platform").await;
        server.post_events(&platform, blacklisting("m1")).await;
        let forged = ev(
            "forged-lift",
            "merchant.blacklist_lifted",
            json!({"merchant": "m1", "by": "regulator", "reason": "整改完成"}),
        );
        let v = server.post_events(&platform, forged).await;
        assert_eq!(item(&v)["status"], "rejected", "{name}: {v}");
        assert_eq!(item(&v)["field"], "type", "{name}: {v}");
        let (_, b) = server.call("GET", "/v1/blacklist", Some(&platform), None).await;
        assert_eq!(
            b["blacklist"].as_array().map(Vec::len),
            Some(1),
            "{name}: still blacklisted"
        );
        // The regulator's route still lifts it; a reason longer than a complaint's
        // text is refused first, saying how long it is (it goes into the public log).
        let regulator = db.key("regulator").await;
        let long = json!({"reason": "改".repeat(2_001)}).to_string();
        let (status, refused) = server
            .call("POST", "/v1/blacklist/m1/lift", Some(&regulator), Some(long))
            .await;
        assert_eq!(status, 422, "{name}: {refused}");
        assert!(
            refused["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("reason: 2001 characters; at most 2000"),
            "{name}: {refused}"
        );
        let (status, lifted) = server
            .call(
                "POST",
                "/v1/blacklist/m1/lift",
                Some(&regulator),
                Some(r#"{"reason":"整改完成"}"#.into()),
            )
            .await;
        assert_eq!(status, 200, "{name}");
        // The ledger says who acted: weiquan, on this regulator's request.
        let index = lifted["index"].as_u64().expect("index");
        let (_, receipt) = server
            .call("GET", &format!("/v1/receipts/{index}"), Some(&regulator), None)
            .await;
        let leaf: Value = serde_json::from_str(receipt["leaf"].as_str().expect("leaf")).expect("json");
        assert_eq!(leaf["actor"]["role"], "weiquan", "{name}: {leaf}");
        assert_eq!(leaf["actor"]["for"]["role"], "regulator", "{name}: {leaf}");
        assert_eq!(
            leaf["actor"]["for"]["key"].as_str().map(str::len),
            Some(16),
            "{name}: {leaf}"
        );
        assert_eq!(leaf["event"]["type"], "merchant.blacklist_lifted", "{name}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_that_builds_an_event_sets_its_type_id_and_v_itself() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    server.post_events(&platform, blacklisting("m1")).await;
    for key in ["type", "id", "v"] {
        let mut body = json!({"lottery": "l1", "merchant": "m1", "host": "h", "stream": "s",
            "prizes": [{"name": "券", "value_fen": 100, "count": 1}]});
        body[key] = match key {
            "type" => json!("merchant.blacklist_lifted"),
            "id" => json!("x"),
            _ => json!(1),
        };
        let (status, p) = server
            .call("POST", "/v1/lotteries", Some(&platform), Some(body.to_string()))
            .await;
        assert_eq!(status, 422, "{key}: {p}");
        assert!(p["detail"].as_str().unwrap_or("").contains(&format!("`{key}`")), "{p}");
    }
    let (_, b) = server.call("GET", "/v1/blacklist", Some(&platform), None).await;
    assert_eq!(b["blacklist"].as_array().map(Vec::len), Some(1), "nothing was lifted");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn weiquans_ids_cannot_be_squatted() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    // weiquan's namespace is refused outright.
    let v = server
        .post_events(&platform, ev("weiquan:draw:l1", "clock.tick", json!({})))
        .await;
    assert_eq!(item(&v)["field"], "id", "{v}");
    // The ids weiquan used to give its acts no longer block them.
    let old = ["weiquan-announce-l1", "weiquan-close-l1", "weiquan-draw-l1"]
        .map(|id| ev(id, "clock.tick", json!({})))
        .join("\n");
    server.post_events(&platform, old).await;
    let (s1, a) = announce(&server, &platform, "l1", json!({})).await;
    assert_eq!(s1, 200, "{a}");
    enter(&server, &platform, "l1", "p1").await;
    let (s2, c) = server
        .call("POST", "/v1/lotteries/l1/close", Some(&platform), None)
        .await;
    let (s3, d) = server
        .call("POST", "/v1/lotteries/l1/draw", Some(&platform), None)
        .await;
    assert_eq!((s2, s3), (200, 200), "{c} {d}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draw_weiquan_holds_the_seed_of_cannot_be_taken_over_nor_its_seed_read_early() {
    for (name, db) in Db::both() {
        let server = Server::start(db.config(None)).await;
        let platform = db.key("platform").await;
        let (status, _) = announce(&server, &platform, "l1", json!({})).await;
        assert_eq!(status, 200, "{name}");
        enter(&server, &platform, "l1", "p1").await;
        let takeover = ev(
            "my-draw",
            "lottery.drawn",
            json!({"lottery": "l1", "winners": [{"participant": "p1", "prize": "券"}], "seed": "guess"}),
        );
        let v = server.post_events(&platform, takeover).await;
        assert_eq!(item(&v)["status"], "rejected", "{name}: {v}");
        assert_eq!(item(&v)["field"], "lottery", "{name}: {v}");
        assert!(
            item(&v)["error"]
                .as_str()
                .unwrap_or("")
                .contains("/v1/lotteries/l1/draw"),
            "{name}: says how"
        );
        let (_, proof) = server
            .call("GET", "/v1/lotteries/l1/proof?participant=p1", None, None)
            .await;
        assert_eq!(
            proof["seed"],
            Value::Null,
            "{name}: no seed before weiquan's draw: {proof}"
        );
        server
            .call("POST", "/v1/lotteries/l1/close", Some(&platform), None)
            .await;
        let (status, drawn) = server
            .call("POST", "/v1/lotteries/l1/draw", Some(&platform), None)
            .await;
        assert_eq!(status, 200, "{name}: {drawn}");
        let (_, proof) = server
            .call("GET", "/v1/lotteries/l1/proof?participant=p1", None, None)
            .await;
        assert_eq!(proof["seed"], drawn["seed"], "{name}: published by weiquan's own draw");
        server.stop().await;
    }
}

/// A lottery weiquan holds the seed of keeps the commitment and beacon round
/// weiquan gave it: a platform's `lottery.changed` of either is refused, not
/// charged to the merchant as a detrimental change (LT-02); other changes are
/// still the merchant's to make.
#[tokio::test(flavor = "multi_thread")]
async fn a_platform_cannot_change_the_commitment_or_beacon_round_of_a_lottery_weiquan_holds() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let (status, a) = announce(&server, &platform, "l1", json!({})).await;
    assert_eq!(status, 200, "{a}");
    let lt02 = || async {
        let (_, f) = server
            .call("GET", "/v1/findings?subject=lottery:l1", Some(&platform), None)
            .await;
        (f["findings"].as_array().into_iter().flatten())
            .filter(|f| f["rule"] == "LT-02")
            .count()
    };
    for (field, value) in [("commitment", json!("00".repeat(32))), ("beacon_round", json!(12345))] {
        let mut change = json!({"lottery": "l1"});
        change[field] = value;
        let v = server
            .post_events(&platform, ev(&format!("change-{field}"), "lottery.changed", change))
            .await;
        assert_eq!(item(&v)["status"], "rejected", "{field}: {v}");
        assert_eq!(item(&v)["field"], field, "{v}");
        assert!(
            item(&v)["error"]
                .as_str()
                .unwrap_or("")
                .contains("send the change without"),
            "says what to do: {v}"
        );
    }
    assert_eq!(lt02().await, 0, "nobody was charged with changing weiquan's commitment");
    // The merchant's own terms can still change, and a change to its detriment is still found.
    let lower = ev(
        "lower",
        "lottery.changed",
        json!({"lottery": "l1", "prizes": [{"name": "券", "value_fen": 50, "count": 1}]}),
    );
    let v = server.post_events(&platform, lower).await;
    assert_eq!(item(&v)["status"], "accepted", "{v}");
    assert_eq!(lt02().await, 1, "a lowered prize is LT-02");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_dated_years_ahead_cannot_move_the_business_clock() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let order = |id: &str, o: &str, at: &str| {
        json!({"v": 1, "id": id, "type": "order.placed", "at": at, "order": o, "merchant": "m1", "consumer": "u",
            "sku": "s", "qty": 1, "amount_fen": 100, "payment": "standard"})
        .to_string()
    };
    server.post_events(&platform, order("o1", "o1", AT)).await;
    let v = server
        .post_events(
            &platform,
            ev("tick", "clock.tick", json!({})).replace(AT, "9999-01-01T00:00:00Z"),
        )
        .await;
    assert_eq!(item(&v)["status"], "rejected", "{v}");
    assert_eq!(item(&v)["field"], "at", "{v}");
    // The order's 2-day deadline did not fire: nothing but MC-01 (unverified merchant).
    let rules: Vec<String> = server.pairs(&platform).await.into_iter().map(|p| p.0).collect();
    assert_eq!(rules, ["MC-01"]);
    server.stop().await;
    // Without the bound (demos, replayed simulations) the same event is accepted.
    let mut cfg = db.config(None);
    cfg.max_future_ms = None;
    let server = Server::start(cfg).await;
    let v = server
        .post_events(
            &platform,
            ev("tick2", "clock.tick", json!({})).replace(AT, "9999-01-01T00:00:00Z"),
        )
        .await;
    assert_eq!(item(&v)["status"], "accepted", "{v}");
    server.stop().await;
}

/// Sends `request` on a raw socket and returns what came back within `wait`
/// (and how long it took), on a blocking thread.
async fn raw(base: &str, request: &[u8], wait: Duration) -> (String, Duration) {
    let (base, request) = (base.to_owned(), request.to_vec());
    tokio::task::spawn_blocking(move || raw_blocking(&base, &request, wait))
        .await
        .expect("join")
}

fn raw_blocking(base: &str, request: &[u8], wait: Duration) -> (String, Duration) {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(wait)).expect("timeout");
    let started = Instant::now();
    s.write_all(request).expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.ends_with(b"}") {
            break;
        }
    }
    (String::from_utf8_lossy(&buf).into_owned(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_body_is_read_without_a_valid_key() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    // 16 MiB announced, none sent: a server that waited for the body would time out instead.
    let (answer, took) = raw(
        &server.base,
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 16000000\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        took < Duration::from_secs(5),
        "answered at once, not after the body: {took:?}"
    );
    server.stop().await;
}

/// A line that is not UTF-8 costs only itself, as in a file: the body's
/// other lines are taken, and the reject names its item and the bad byte.
#[tokio::test(flavor = "multi_thread")]
async fn a_line_that_is_not_utf8_rejects_only_itself() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let tick = |id: &[u8]| {
        [
            br#"{"v":1,"id":""#,
            id,
            br#"","type":"clock.tick","at":""#,
            AT.as_bytes(),
            b"\"}\n",
        ]
        .concat()
    };
    let body = [tick(b"ok1"), tick(b"u\xff"), tick(b"ok2")].concat();
    let r = (server.http.post(format!("{}/v1/events", server.base)))
        .bearer_auth(&platform)
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    let bad = &v["items"][1];
    assert_eq!(
        (bad["item"].as_u64(), bad["status"].as_str()),
        (Some(2), Some("rejected")),
        "{v}"
    );
    assert!(
        bad["error"]
            .as_str()
            .unwrap_or("")
            .contains("not valid UTF-8 (bad byte at column 15)"),
        "{v}"
    );
    assert_eq!(v["items"][2]["status"], "accepted", "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_status_is_a_problem_document() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let check = |what: &str, status: u16, want: u16, ct: Option<&str>, body: &str| {
        assert_eq!(status, want, "{what}: {body}");
        assert_eq!(ct, Some("application/problem+json"), "{what}: {body}");
        let p: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
        assert_eq!(p["status"], want, "{what}");
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{what}: {p}");
    };
    let send = |req: reqwest::RequestBuilder| async move {
        let r = req.send().await.expect("sent");
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, ct, r.text().await.expect("body"))
    };
    let url = |p: &str| format!("{}{p}", server.base);
    let http = &server.http;
    let (s, ct, b) = send(http.delete(url("/v1/findings"))).await;
    check("405", s, 405, ct.as_deref(), &b);
    // A 401 names the scheme it wants (RFC 9110 §11.6.1).
    let r = http.get(url("/v1/findings")).send().await.expect("sent");
    assert_eq!(r.status().as_u16(), 401);
    let challenge = r.headers().get("www-authenticate").and_then(|v| v.to_str().ok());
    assert_eq!(challenge, Some("Bearer realm=\"weiquan\""));
    let (s, ct, b) = send(http.get(url("/v1/proofs/inclusion?index=x"))).await;
    check("bad query", s, 400, ct.as_deref(), &b);
    // An extractor's rejection says what was wrong and where to look.
    assert!(b.contains("index") && b.contains("see /openapi.json"), "{b}");
    let (s, ct, b) = send(http.get(url("/v1/proofs/consistency?from=5&to=3"))).await;
    check("sizes the wrong way round", s, 400, ct.as_deref(), &b);
    assert!(b.contains("ask for the older size in `from`"), "{b}");
    let (s, ct, b) = send(http.get(url("/v1/receipts/notanumber")).bearer_auth(&platform)).await;
    check("bad path", s, 400, ct.as_deref(), &b);
    let (s, ct, b) = send(http.post(url("/v1/events")).bearer_auth(&platform).body("[{")).await;
    check("a broken array", s, 400, ct.as_deref(), &b);
    let big = "x".repeat(weiquan_server::MAX_BODY_BYTES + 1);
    let (s, ct, b) = send(http.post(url("/v1/events")).bearer_auth(&platform).body(big)).await;
    check("413", s, 413, ct.as_deref(), &b);
    let (s, ct, b) = send(http.get(url("/nowhere"))).await;
    check("404", s, 404, ct.as_deref(), &b);
    let long = format!("/v1/findings?subject={}", "x".repeat(9 << 10));
    let (s, ct, b) = send(http.get(url(&long))).await;
    check("414", s, 414, ct.as_deref(), &b);
    let mut many = http.get(url("/healthz"));
    for i in 0..100 {
        many = many.header(format!("x-filler-{i}"), "1");
    }
    let (s, ct, b) = send(many).await;
    check("431 (count)", s, 431, ct.as_deref(), &b);
    let (s, ct, b) = send(http.get(url("/healthz")).header("x-big", "y".repeat(20 << 10))).await;
    check("431 (size)", s, 431, ct.as_deref(), &b);
    // The scheme is case-insensitive (RFC 9110).
    let r = http
        .get(url("/v1/blacklist"))
        .header("authorization", format!("bearer {platform}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_or_expired_key_stops_working_on_a_running_server() {
    for (name, db) in Db::both() {
        let server = Server::start(db.config(None)).await;
        let key = db.key("regulator").await;
        assert_eq!(
            server.call("GET", "/v1/blacklist", Some(&key), None).await.0,
            200,
            "{name}"
        );
        let (database, k) = (db.db.clone(), key.clone());
        let id = tokio::task::spawn_blocking(move || weiquan_server::revoke_key(&database, &k))
            .await
            .expect("join")
            .expect("revoked");
        assert_eq!(id.len(), 16, "{name}: the id is shown");
        let deadline = Instant::now() + weiquan_server::KEY_CACHE_TTL + Duration::from_secs(3);
        loop {
            let (status, p) = server.call("GET", "/v1/blacklist", Some(&key), None).await;
            if status == 401 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: still {status} after revocation: {p}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // A key past its expiry is refused from the first request.
        let database = db.db.clone();
        let expired = tokio::task::spawn_blocking(move || {
            weiquan_server::create_key(&database, &weiquan_server::Role::Platform, Some(1_000))
        })
        .await
        .expect("join")
        .expect("created");
        assert_eq!(
            server.call("GET", "/v1/blacklist", Some(&expired), None).await.0,
            401,
            "{name}"
        );
        server.stop().await;
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn the_data_folder_and_database_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let db = Db::sqlite();
    let data = db.dir.path().join("data");
    let mut cfg = db.config(None);
    cfg.data = data.clone();
    cfg.db = weiquan_server::Database::Sqlite(data.join("weiquan.db"));
    let server = Server::start(cfg).await;
    let key = {
        let database = weiquan_server::Database::Sqlite(data.join("weiquan.db"));
        tokio::task::spawn_blocking(move || {
            weiquan_server::create_key(&database, &weiquan_server::Role::Platform, None)
        })
        .await
        .expect("join")
        .expect("key")
    };
    server.post_events(&key, ev("e1", "clock.tick", json!({}))).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data folder");
    for f in ["weiquan.db", "weiquan.db-wal"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    server.stop().await;
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// A server whose header timeout is 1 s and which holds at most `cap` connections.
async fn tight_server(db: &Db, cap: usize) -> Server {
    let mut cfg = db.config(None);
    cfg.limits = weiquan_server::ConnLimits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: cap,
        per_address: cap,
        shutdown_grace: Duration::from_secs(1),
    };
    Server::start(cfg).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_never_finishes_its_headers_is_closed() {
    let db = Db::sqlite();
    let server = tight_server(&db, 64).await;
    let (answer, took) = raw(
        &server.base,
        b"GET /v1/findings HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        Duration::from_secs(15),
    )
    .await;
    assert!(
        took < Duration::from_secs(10),
        "closed after the header timeout, not kept: {took:?} {answer}"
    );
    // An idle keep-alive connection is closed the same way.
    let (answer, took) = raw(
        &server.base,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(15),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sockets_cannot_exhaust_the_server() {
    let db = Db::sqlite();
    let cap = 128;
    let server = tight_server(&db, cap).await;
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().expect("addr");
    let before = open_fds();
    let idle: Vec<std::net::TcpStream> = tokio::task::spawn_blocking(move || {
        (0..1500)
            .filter_map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok())
            .collect()
    })
    .await
    .expect("join");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The client's own sockets plus at most `cap` the server accepted (and a few of its own).
    let grown = open_fds().saturating_sub(before);
    assert!(
        grown <= idle.len() + cap + 64,
        "{grown} new file handles for {} idle sockets: the server took more than {cap}",
        idle.len()
    );
    // Once they time out, everyone is served again.
    let started = Instant::now();
    let (status, _) = server.call("GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    drop(idle);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_without_a_key_are_limited_per_address() {
    let db = Db::sqlite();
    let mut cfg = db.config(None);
    cfg.rate_limit = 5;
    let server = Server::start(cfg).await;
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(server.call("GET", "/log/checkpoint", None, None).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // Probes are never limited.
    for _ in 0..40 {
        assert_eq!(server.call("GET", "/healthz", None, None).await.0, 200);
    }
    server.stop().await;
}

// ---- Found by an outside attack on the changes above (each failed before its fix) ----

/// `participant` enters lottery `l`.
async fn enter(server: &Server, platform: &str, l: &str, participant: &str) {
    let id = format!("enter-{l}-{participant}");
    server
        .post_events(
            platform,
            ev(
                &id,
                "lottery.entered",
                json!({"lottery": l, "participant": participant}),
            ),
        )
        .await;
}

/// A `POST /v1/lotteries` body for lottery `l`, with `extra` fields.
fn announcement(l: &str, extra: Value) -> String {
    let mut b = json!({"lottery": l, "merchant": "m1", "host": "h", "stream": "s", "at": AT,
        "prizes": [{"name": "券", "value_fen": 100, "count": 1}]});
    if let (Some(o), Value::Object(e)) = (b.as_object_mut(), extra) {
        o.extend(e);
    }
    b.to_string()
}

/// Announces lottery `l` through weiquan (which then holds its seed).
async fn announce(server: &Server, key: &str, l: &str, extra: Value) -> (u16, Value) {
    server
        .call("POST", "/v1/lotteries", Some(key), Some(announcement(l, extra)))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draw_under_an_old_style_id_reveals_no_seed_and_blocks_no_lottery() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    // A draw submitted before weiquan holds a seed, under the id older versions gave their own draws.
    let fake = ev(
        "weiquan-draw-1",
        "lottery.drawn",
        json!({"lottery": "s1", "winners": []}),
    );
    assert_eq!(item(&server.post_events(&platform, fake).await)["status"], "accepted");
    let (status, p) = announce(&server, &platform, "s1", json!({})).await;
    assert_eq!(status, 409, "an id already drawn is not announced with a seed: {p}");
    let (_, proof) = server
        .call("GET", "/v1/lotteries/s1/proof?participant=p1", None, None)
        .await;
    assert_eq!(proof["seed"], Value::Null);
    // And a fresh lottery's seed stays hidden while its only draw is someone else's.
    let (status, _) = announce(&server, &platform, "s2", json!({})).await;
    assert_eq!(status, 200);
    server
        .post_events(
            &platform,
            ev("n1", "lottery.entered", json!({"lottery": "s2", "participant": "p1"})),
        )
        .await;
    for (ty, fields) in [
        ("lottery.closed", json!({"lottery": "s2", "entrants_root": "00"})),
        (
            "lottery.announced",
            json!({"lottery": "s2", "merchant": "m2", "host": "h", "stream": "s", "prizes": []}),
        ),
    ] {
        let v = server.post_events(&platform, ev(&format!("x-{ty}"), ty, fields)).await;
        assert_eq!(item(&v)["field"], "lottery", "{ty}: {v}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_announcement_is_checked_whole_before_its_seed_is_kept() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let post = |body: String| server.call("POST", "/v1/lotteries", Some(&platform), Some(body));
    let (status, p) = post(announcement("a2", json!({"at": "2099-01-01T00:00:00Z"}))).await;
    assert_eq!(status, 422, "{p}");
    let (status, p) = post(announcement("a2", json!({"by": "regulator"}))).await;
    assert_eq!(status, 422, "{p}");
    assert!(p["detail"].as_str().unwrap_or("").contains("`by`"), "{p}");
    let (status, p) = post(announcement("a2", json!({"organizer": "x".repeat(40_000)}))).await;
    assert_eq!(status, 413, "{p}");
    // None of these kept a seed: the id is still free.
    let (status, p) = post(announcement("a2", json!({}))).await;
    assert_eq!(status, 200, "{p}");
    // Nothing moved the business clock to 2099.
    let (_, l) = server.call("GET", "/v1/lotteries/a2", None, None).await;
    assert!(
        l["findings"]
            .as_array()
            .is_some_and(|f| f.iter().all(|x| x["rule"] != "LT-05")),
        "{l}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn simultaneous_draws_write_one_draw() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let (status, _) = announce(&server, &platform, "r1", json!({})).await;
    assert_eq!(status, 200);
    let entries: Vec<String> = (0..20)
        .map(|i| {
            ev(
                &format!("r{i}"),
                "lottery.entered",
                json!({"lottery": "r1", "participant": format!("p{i}")}),
            )
        })
        .collect();
    server.post_events(&platform, entries.join("\n")).await;
    let closes = futures_join(&server, &platform, "/v1/lotteries/r1/close").await;
    assert_eq!(closes.iter().filter(|s| **s == 200).count(), 1, "{closes:?}");
    let draws = futures_join(&server, &platform, "/v1/lotteries/r1/draw").await;
    assert_eq!(draws.iter().filter(|s| **s == 200).count(), 1, "{draws:?}");
    server.stop().await;
}

/// Sixteen POSTs to `path` at once; their statuses.
async fn futures_join(server: &Server, key: &str, path: &str) -> Vec<u16> {
    let calls = (0..16).map(|_| server.call("POST", path, Some(key), None));
    futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_made_up_key_neither_skips_the_address_limit_nor_posts_a_body() {
    let db = Db::sqlite();
    let mut cfg = db.config(None);
    cfg.rate_limit = 5;
    let server = Server::start(cfg).await;
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let r = server
            .http
            .get(format!("{}/log/checkpoint", server.base))
            .header("authorization", "Bearer junk")
            .send()
            .await
            .expect("sent");
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // The address's allowance refills (a key not yet looked up counts against it).
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A consumer key is refused before its 16 MiB body is read.
    let consumer = db.key("consumer:u1").await;
    let (answer, took) = raw(
        &server.base,
            format!("POST /v1/blacklist/m1/lift HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {consumer}\r\nContent-Length: 16000000\r\n\r\n")
                .as_bytes(),
            Duration::from_secs(10),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_take_every_connection() {
    let db = Db::sqlite();
    let mut cfg = db.config(None);
    cfg.limits = weiquan_server::ConnLimits {
        header_read_timeout: Duration::from_secs(20),
        max_connections: 64,
        per_address: 16,
        shutdown_grace: Duration::from_secs(1),
    };
    let server = Server::start(cfg).await;
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().expect("addr");
    // Idle sockets from 127.0.0.2 (all of loopback is this host).
    let mut idle = Vec::new();
    for _ in 0..100 {
        let s = tokio::net::TcpSocket::new_v4().expect("socket");
        s.bind("127.0.0.2:0".parse().expect("addr")).expect("bind");
        if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_millis(300), s.connect(addr)).await {
            idle.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Another address is served at once, not after their 20 s.
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), server.call("GET", "/healthz", None, None)).await;
    assert!(matches!(r, Ok((200, _))), "served in {:?}", started.elapsed());
    drop(idle);
    server.stop().await;
}

/// A lottery weiquan holds the seed of, with more prizes and longer ids than
/// one event line may carry, is still drawn: its winners go to the private
/// side and its leaf fits (found by an outside attack: the draw was refused as
/// too large, and the platform may not draw it itself).
#[tokio::test(flavor = "multi_thread")]
async fn a_large_held_draw_is_written() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let prizes: Vec<Value> = (0..500)
        .map(|i| json!({"name": format!("奖品{i}"), "value_fen": 100, "count": 1}))
        .collect();
    let (status, v) = announce(&server, &platform, "big", json!({"prizes": prizes})).await;
    assert_eq!(status, 200, "{v}");
    let entries: Vec<String> = (0..500)
        .map(|i| {
            let participant = format!("{i:03}-{}", "x".repeat(120));
            ev(
                &format!("big-{i}"),
                "lottery.entered",
                json!({"lottery": "big", "participant": participant}),
            )
        })
        .collect();
    server.post_events(&platform, entries.join("\n")).await;
    assert_eq!(
        server
            .call("POST", "/v1/lotteries/big/close", Some(&platform), None)
            .await
            .0,
        200
    );
    let (status, drawn) = server
        .call("POST", "/v1/lotteries/big/draw", Some(&platform), None)
        .await;
    assert_eq!(status, 200, "{drawn}");
    assert_eq!(drawn["winners"].as_array().map(Vec::len), Some(500));
    server.stop().await;
}
