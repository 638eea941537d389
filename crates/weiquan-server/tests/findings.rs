//! Findings kept in the database beside their leaves (issue 19), on SQLite
//! and PostgreSQL: every filter of `GET /v1/findings` selects exactly what
//! the whole list holds, page by page; and a ledger written before the
//! findings table gets its findings back at the first start.

mod common;

use common::{Db, Server};
use serde_json::Value;

/// A simulated platform with findings of many rules, merchants and days.
fn stream() -> Vec<String> {
    weiquan_sim::simulate(&weiquan_sim::Config {
        merchants: 10,
        consumers: 300,
        days: 30,
        seed: 11,
        violation_rate: 1.0,
        profile: weiquan_sim::Profile::Double11,
        orders_per_day: 8.0,
    })
    .lines
}

/// Starts a server on `db` (no bound on event times: the simulation is dated
/// in the past and the future) and streams `lines` in.
async fn serve(db: &Db, lines: &[String]) -> Server {
    let mut cfg = db.config(None);
    cfg.max_future_ms = None;
    let server = Server::start(cfg).await;
    let platform = db.key("platform").await;
    for chunk in lines.chunks(500) {
        server.post_events(&platform, chunk.join("\n")).await;
    }
    server
}

/// `text` as a query value.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every finding a query gives, following its cursor `page` at a time.
async fn all_of(server: &Server, key: &str, query: &str, page: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<u64> = None;
    loop {
        let mut path = format!("/v1/findings?limit={page}{query}");
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, v) = server.call("GET", &path, Some(key), None).await;
        assert_eq!(status, 200, "{path}: {v}");
        let items = v["findings"].as_array().expect("findings").clone();
        assert!(items.len() <= page as usize, "{path}: a page holds at most its limit");
        match v["next_cursor"].as_u64() {
            Some(c) => {
                assert_eq!(items.len(), page as usize, "{path}: only a full page has a next one");
                assert_eq!(Some(c), items.last().and_then(|f| f["index"].as_u64()), "{path}");
                cursor = Some(c);
                out.extend(items);
            }
            None => {
                out.extend(items);
                return out;
            }
        }
    }
}

fn time(f: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(f["at"].as_str().expect("at")).expect("RFC 3339")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_findings_filter_selects_exactly_what_the_whole_list_holds() {
    let lines = stream();
    for (name, db) in Db::both() {
        let server = serve(&db, &lines).await;
        let key = db.key("regulator").await;
        let all = all_of(&server, &key, "", 1000).await;
        assert!(all.len() >= 20, "{name}: the stream finds enough ({})", all.len());
        let indexes: Vec<u64> = all.iter().filter_map(|f| f["index"].as_u64()).collect();
        assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{name}: in ledger order");
        assert_eq!(
            all_of(&server, &key, "", 3).await,
            all,
            "{name}: small pages give the same"
        );

        let distinct = |field: &str| {
            let mut v: Vec<String> = (all.iter())
                .filter_map(|f| f[field].as_str().map(str::to_owned))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let (rules, merchants) = (distinct("rule"), distinct("merchant"));
        assert!(
            rules.len() >= 3 && merchants.len() >= 2,
            "{name}: {rules:?} {merchants:?}"
        );
        let mut times: Vec<_> = all.iter().map(time).collect();
        times.sort();
        let middle = times[times.len() / 2];
        let (first, last) = (&all[0], &all[all.len() - 1]);

        // (query, what it must select) — the reference is the whole list filtered here.
        type Keep = Box<dyn Fn(&Value) -> bool>;
        let mut cases: Vec<(String, Keep)> = Vec::new();
        for rule in &rules {
            let r = rule.clone();
            cases.push((
                format!("&rule={}", encoded(rule)),
                Box::new(move |f| f["rule"] == r.as_str()),
            ));
        }
        for merchant in &merchants {
            let m = merchant.clone();
            cases.push((
                format!("&merchant={}", encoded(merchant)),
                Box::new(move |f| f["merchant"] == m.as_str()),
            ));
        }
        for severity in ["high", "medium", "low"] {
            cases.push((
                format!("&severity={severity}"),
                Box::new(move |f| f["severity"] == severity),
            ));
        }
        for f in [first, last] {
            let s = f["subject"].as_str().expect("subject").to_owned();
            cases.push((
                format!("&subject={}", encoded(&s)),
                Box::new(move |f| f["subject"] == s.as_str()),
            ));
        }
        let at = middle.to_rfc3339();
        cases.push((format!("&since={}", encoded(&at)), Box::new(move |f| time(f) >= middle)));
        cases.push((format!("&until={}", encoded(&at)), Box::new(move |f| time(f) < middle)));
        let (r, m) = (first["rule"].as_str().unwrap_or("").to_owned(), merchants[0].clone());
        cases.push((
            format!(
                "&rule={}&merchant={}&since={}",
                encoded(&r),
                encoded(&m),
                encoded(&times[0].to_rfc3339())
            ),
            Box::new(move |f| f["rule"] == r.as_str() && f["merchant"] == m.as_str()),
        ));
        let cut = all[all.len() / 3]["index"].as_u64().expect("index");
        cases.push((
            format!("&cursor={cut}"),
            Box::new(move |f| f["index"].as_u64() > Some(cut)),
        ));
        let (r, s) = (
            first["rule"].as_str().unwrap_or("").to_owned(),
            first["severity"].clone(),
        );
        let other = ["high", "medium", "low"].into_iter().find(|x| s != *x).unwrap_or("low");
        cases.push((format!("&rule={}&severity={other}", encoded(&r)), Box::new(|_| false)));
        cases.push(("&rule=XX-99".into(), Box::new(|_| false)));
        cases.push(("&merchant=nobody".into(), Box::new(|_| false)));
        for (query, keep) in &cases {
            let want: Vec<Value> = all.iter().filter(|f| keep(f)).cloned().collect();
            // A cursor given in the query is the first page's; pages follow their own.
            let page = if query.starts_with("&cursor") { 1000 } else { 2 };
            let got = match query.strip_prefix("&cursor=") {
                Some(c) => {
                    let path = format!("/v1/findings?limit=1000&cursor={c}");
                    let (status, v) = server.call("GET", &path, Some(&key), None).await;
                    assert_eq!(status, 200, "{v}");
                    v["findings"].as_array().expect("findings").clone()
                }
                None => all_of(&server, &key, query, page).await,
            };
            assert_eq!(got, want, "{name}: {query}");
        }

        // A merchant's key reads its own findings, whatever merchant it names.
        let own = db.key(&format!("merchant:{}", merchants[0])).await;
        let mine: Vec<Value> = (all.iter())
            .filter(|f| f["merchant"] == merchants[0].as_str())
            .cloned()
            .collect();
        assert_eq!(all_of(&server, &own, "", 4).await, mine, "{name}: a merchant's own");
        let (status, v) = server
            .call(
                "GET",
                &format!("/v1/findings?merchant={}", encoded(&merchants[1])),
                Some(&own),
                None,
            )
            .await;
        assert_eq!(status, 403, "{name}: another merchant's: {v}");
        // The merchant page lists the same findings.
        let (status, page) = server
            .call(
                "GET",
                &format!("/v1/merchants/{}", encoded(&merchants[0])),
                Some(&own),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["findings"].as_array(), Some(&mine), "{name}: the merchant page");
        server.stop().await;
    }
}

/// A database as a build before the findings table left it: the table gone
/// and the schema at version 9 (on a thread of its own: the synchronous
/// PostgreSQL client runs a runtime of its own).
fn downgrade(db: &Db) {
    let db = db.db.clone();
    std::thread::spawn(move || downgrade_now(&db))
        .join()
        .expect("downgraded");
}

fn downgrade_now(db: &weiquan_server::Database) {
    match db {
        weiquan_server::Database::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).expect("open");
            conn.execute_batch("DROP TABLE findings; PRAGMA user_version = 9;")
                .expect("downgrade");
        }
        weiquan_server::Database::Postgres { url, schema } => {
            let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
            client
                .batch_execute(&format!(
                    "SET search_path TO {schema}; DROP TABLE findings; UPDATE weiquan_schema SET version = 9;"
                ))
                .expect("downgrade");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_written_before_the_findings_table_gets_its_findings_back() {
    let lines = stream();
    for (name, db) in Db::both() {
        let server = serve(&db, &lines).await;
        let key = db.key("regulator").await;
        let want = all_of(&server, &key, "", 1000).await;
        assert!(!want.is_empty(), "{name}");
        server.stop().await;
        downgrade(&db);
        let mut cfg = db.config(None);
        cfg.max_future_ms = None;
        let server = Server::start(cfg).await;
        assert_eq!(all_of(&server, &key, "", 1000).await, want, "{name}: after the upgrade");
        server.stop().await;
    }
}

/// A merchant's page lists its latest 1,000 findings and says there are
/// earlier ones: an answer stays bounded whatever a merchant did.
#[tokio::test(flavor = "multi_thread")]
async fn a_merchant_page_lists_its_latest_thousand_findings() {
    let db = Db::sqlite();
    let order = |i: usize| {
        format!(
            r#"{{"v":1,"id":"o{i}","type":"order.placed","at":"2026-11-01T10:00:00+08:00","order":"o{i}","merchant":"m1","consumer":"u{i}","sku":"s1","qty":1,"amount_fen":100,"payment":"standard"}}"#
        )
    };
    let mut lines: Vec<String> = (0..1005).map(order).collect();
    lines.push(r#"{"v":1,"id":"t","type":"clock.tick","at":"2026-11-05T10:00:00+08:00"}"#.into());
    let server = serve(&db, &lines).await;
    let key = db.key("platform").await;
    let all = all_of(&server, &key, "&merchant=m1", 1000).await;
    assert!(all.len() > 1005, "every order is late: {}", all.len());
    let (status, page) = server.call("GET", "/v1/merchants/m1", Some(&key), None).await;
    assert_eq!(status, 200, "{page}");
    let listed = page["findings"].as_array().expect("findings");
    assert_eq!(
        listed[..],
        all[all.len() - 1000..],
        "the latest thousand, in ledger order"
    );
    assert_eq!(page["earlier_findings"], true, "{}", page["earlier_findings"]);
    // Within the bound, every finding and no flag.
    let few = Db::sqlite();
    let server_few = serve(&few, &lines[..10]).await;
    let key_few = few.key("platform").await;
    let (_, small) = server_few.call("GET", "/v1/merchants/m1", Some(&key_few), None).await;
    assert!(small.get("earlier_findings").is_none(), "{small}");
    server_few.stop().await;
    server.stop().await;
}
