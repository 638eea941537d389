//! A public log without personal data (issue 15, part 3): consumer and
//! participant ids, free text, a host's name and fields the format does not
//! define enter the public tiles only as salted commitments; the platform, a
//! regulator and the consumer concerned can open them; erasure removes what
//! opens them, and the log, the findings and a replay stay the same.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const COMPLAINANT: &str = "张三-13800000000";
const BNPL_CONSUMER: &str = "u-secret-4711";
const SECRETS: [&str; 7] = [
    "张三",
    "13800000000",
    "快递员辱骂我",
    "u-secret-4711",
    "p-secret-0815",
    "王小明",
    "secret-nickname",
];

fn stream() -> String {
    [
        ev("m1-reg", "merchant.registered", json!({"merchant": "m1", "name": "好店", "uscc": "91", "channels": ["store"]})),
        ev(
            "c1",
            "complaint.filed",
            json!({"complaint": "p1", "consumer": COMPLAINANT, "merchant": "m1", "category": "after_sales",
                   "text": "快递员辱骂我", "phone": "13800000000",
                   "evidence": [{"sha256": "00000000000000000000000000000000000000000000000000000000000000ff",
                                 "kind": "photo", "taken_by": "secret-nickname"}]}),
        ),
        ev(
            "b1",
            "bnpl.enabled",
            json!({"consumer": BNPL_CONSUMER, "provider": "pay", "consent": "preselected", "identity_verified": true,
                   "nickname": "secret-nickname"}),
        ),
        ev("h1", "host.registered", json!({"host": "h1", "name": "主播王小明", "merchant": "m1"})),
        ev(
            "l1",
            "lottery.announced",
            json!({"lottery": "L1", "merchant": "m1", "host": "h1", "stream": "s1", "prizes": [{"name": "p", "value_fen": 100, "count": 1}]}),
        ),
        ev("l1-e", "lottery.entered", json!({"lottery": "L1", "participant": "p-secret-0815"})),
    ]
    .join("\n")
}

/// Every entry of the public log, as anyone reads it: without a key.
async fn public_entries(server: &Server) -> (u64, Vec<u8>) {
    let resp = server
        .http
        .get(format!("{}/log/checkpoint", server.base))
        .send()
        .await
        .expect("checkpoint");
    let note = resp.text().await.expect("text");
    let size: u64 = note.lines().nth(1).and_then(|l| l.parse().ok()).expect("a size line");
    assert!(size < 256, "one partial tile is enough here");
    let url = format!("{}/log/tile/entries/000.p/{size}", server.base);
    let resp = server.http.get(url).send().await.expect("tile");
    assert_eq!(resp.status().as_u16(), 200);
    (size, resp.bytes().await.expect("bytes").to_vec())
}

fn leaves_of(bundle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = bundle;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        out.push(String::from_utf8_lossy(&rest[2..2 + n]).into_owned());
        rest = &rest[2 + n..];
    }
    out
}

/// RFC 6962 leaf hash.
fn record_hash(leaf: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::new()
        .chain_update([0])
        .chain_update(leaf)
        .finalize()
        .into()
}

async fn findings(server: &Server, key: &str) -> Vec<Value> {
    let (status, v) = server.call("GET", "/v1/findings?limit=1000", Some(key), None).await;
    assert_eq!(status, 200, "{v}");
    v["findings"].as_array().cloned().unwrap_or_default()
}

fn pairs(findings: &[Value]) -> BTreeSet<(String, String)> {
    weiquan_testkit::pairs(findings)
}

fn verify(db: &Db) -> weiquan_ledger::LogReport {
    let pubkey = weiquan_store::keyfile::pub_path(&db.dir.path().join("ledger.key"));
    let text = std::fs::read_to_string(&pubkey).expect("the .pub file");
    let verifier = weiquan_ledger::load_verifier(text.trim()).expect("verifier key");
    // The synchronous PostgreSQL client may not run on an async runtime's thread.
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut store = db.db.open().expect("store");
            weiquan_ledger::verify_log(&mut store, &verifier).expect("the log verifies")
        })
        .join()
        .expect("verify thread")
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_data_is_salted_in_public_opened_for_those_entitled_and_erasable() {
    for (name, db) in Db::both() {
        let server = Server::start(db.config(None)).await;
        let platform = db.key("platform").await;
        let v = server.post_events(&platform, stream()).await;
        assert_eq!(v["accepted"], 6, "{name}: {v}");
        let complaint_leaf = v["items"][1]["index"].as_u64().expect("index");
        let bnpl_leaf = v["items"][2]["index"].as_u64().expect("index");

        // 1. Nothing personal in the public tiles, and the tiles still hash to the tree.
        let (size, bundle) = public_entries(&server).await;
        let leaves = leaves_of(&bundle);
        assert_eq!(leaves.len() as u64, size, "{name}");
        let text = leaves.join("\n");
        for secret in SECRETS {
            assert!(!text.contains(secret), "{name}: `{secret}` is in a public leaf");
        }
        let hashes = server
            .http
            .get(format!("{}/log/tile/0/000.p/{size}", server.base))
            .send()
            .await
            .expect("tile");
        let hashes = hashes.bytes().await.expect("bytes");
        for (i, leaf) in leaves.iter().enumerate() {
            assert_eq!(
                &hashes[32 * i..32 * i + 32],
                &record_hash(leaf.as_bytes())[..],
                "{name}: leaf {i}"
            );
        }
        assert!(
            leaves[complaint_leaf as usize].contains(r#""salted":["consumer","evidence","phone","text"]"#),
            "{name}: {}",
            leaves[complaint_leaf as usize]
        );
        assert!(
            text.contains(r#""salted":["subject"]"#),
            "{name}: the BN-01 finding's subject is salted"
        );
        assert_eq!(
            verify(&db).events_salted,
            4,
            "{name}: complaint, bnpl, host, and the lottery entry"
        );

        // 2. The platform reads findings with the consumer's id; the engine knew a pseudonym.
        let before = findings(&server, &platform).await;
        let bn01 = format!("consumer:{BNPL_CONSUMER}");
        assert!(
            pairs(&before).contains(&("BN-01".into(), bn01.clone())),
            "{name}: {before:?}"
        );
        let (_, only) = server
            .call("GET", &format!("/v1/findings?subject={bn01}"), Some(&platform), None)
            .await;
        assert_eq!(
            only["findings"].as_array().map(Vec::len),
            Some(1),
            "{name}: the subject filter takes the id: {only}"
        );

        // 3. Receipts: the consumer concerned gets the salt and values and can open the leaf offline.
        let consumer = db.key(&format!("consumer:{COMPLAINANT}")).await;
        let (status, receipt) = server
            .call("GET", &format!("/v1/receipts/{complaint_leaf}"), Some(&consumer), None)
            .await;
        assert_eq!(status, 200, "{name}: {receipt}");
        let receipt: weiquan_ledger::Receipt = serde_json::from_value(receipt).expect("a receipt");
        let revealed = receipt.private.clone().expect("the consumer's own values");
        assert_eq!(revealed.values["consumer"], COMPLAINANT, "{name}");
        assert_eq!(revealed.values["text"], "快递员辱骂我", "{name}");
        weiquan_ledger::open_leaf(&receipt.leaf, &revealed).expect("the values open the leaf");
        let mut forged = revealed.clone();
        forged.values.insert("text".into(), "一切都好".into());
        assert!(
            weiquan_ledger::open_leaf(&receipt.leaf, &forged).is_err(),
            "{name}: a changed text does not open it"
        );
        // Someone else's consumer key: refused; the merchant: the receipt without the values.
        let other = db.key("consumer:someone-else").await;
        let (status, _) = server
            .call("GET", &format!("/v1/receipts/{complaint_leaf}"), Some(&other), None)
            .await;
        assert_eq!(status, 403, "{name}");
        let merchant = db.key("merchant:m1").await;
        let (status, r) = server
            .call("GET", &format!("/v1/receipts/{complaint_leaf}"), Some(&merchant), None)
            .await;
        assert_eq!((status, r.get("private")), (200, None), "{name}: {r}");

        // 4. Erasure: the consumer's values go, the log and the findings stay.
        let erased = {
            let d = db.db.clone();
            tokio::task::spawn_blocking(move || d.erase_consumer(BNPL_CONSUMER))
                .await
                .expect("join")
                .expect("erased")
        };
        assert_eq!(erased.leaves, 2, "{name}: the bnpl event and its finding");
        let pseudonymous = format!("consumer:{}", erased.pseudonym);
        let after = findings(&server, &platform).await;
        let expected: BTreeSet<(String, String)> = pairs(&before)
            .into_iter()
            .map(|(r, s)| (r, if s == bn01 { pseudonymous.clone() } else { s }))
            .collect();
        assert_eq!(
            pairs(&after),
            expected,
            "{name}: the erased consumer is a pseudonym now"
        );
        assert!(!after.iter().any(|f| f.to_string().contains(BNPL_CONSUMER)), "{name}");
        let (_, r) = server
            .call("GET", &format!("/v1/receipts/{bnpl_leaf}"), Some(&platform), None)
            .await;
        assert_eq!(
            r.get("private"),
            None,
            "{name}: nothing left to open the leaf with: {r}"
        );
        server.stop().await;
        verify(&db);

        // A restart replays the log: the same findings, the erased consumer by pseudonym.
        let server = Server::start(db.config(None)).await;
        let replayed = findings(&server, &platform).await;
        assert_eq!(pairs(&replayed), expected, "{name}: replay after erasure");
        assert_eq!(replayed.len(), before.len(), "{name}");
        // The consumer not erased is still revealed after the restart.
        let (status, receipt) = server
            .call("GET", &format!("/v1/receipts/{complaint_leaf}"), Some(&consumer), None)
            .await;
        assert_eq!(
            (status, &receipt["private"]["values"]["consumer"]),
            (200, &json!(COMPLAINANT)),
            "{name}"
        );
        server.stop().await;
    }
}

/// What an outside attack on the above found, each failing before its fix:
/// an erased id brought back by a later event, found again through the
/// subject filter, left in the database file; a consumer named by an extra
/// field that erasure missed; a 70-key event whose envelope was salted (replay
/// then lost its findings after erasure, and its id was accepted twice); a
/// consumer key named after a public commitment; a consumer sent as a pseudonym.
#[tokio::test(flavor = "multi_thread")]
async fn what_an_attack_on_the_private_log_found_stays_fixed() {
    for (name, db) in Db::both() {
        let server = Server::start(db.config(None)).await;
        let platform = db.key("platform").await;
        let victim = "victim-13900000000";
        let padding: serde_json::Map<String, Value> = (0..70).map(|i| (format!("pad{i}"), json!(i))).collect();
        let mut wide = json!({"v": 1, "id": "wide", "type": "order.placed", "at": AT});
        if let Some(o) = wide.as_object_mut() {
            // The padding first: the envelope and the order's fields come after the 64th key.
            let mut all = padding.clone();
            all.extend(o.clone());
            all.extend(
                json!({"order": "ow", "merchant": "m1", "consumer": victim, "sku": "s", "qty": 1,
                       "amount_fen": 100, "payment": "bnpl", "confirmed": false})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            );
            *o = all;
        }
        let stream = [
            ev("b1", "bnpl.enabled", json!({"consumer": victim, "provider": "p", "consent": "bundled", "identity_verified": true})),
            ev("r1", "refund.requested", json!({"order": "o9", "amount_fen": 1, "no_reason": true, "consumer": victim, "buyer_phone": "13900000000"})),
            wide.to_string(),
        ]
        .join("\n");
        let v = server.post_events(&platform, stream).await;
        assert_eq!(v["accepted"], 3, "{name}: {v}");
        let refund_leaf = v["items"][1]["index"].as_u64().expect("index");
        let before = pairs(&findings(&server, &platform).await);

        // A consumer sent as a pseudonym is refused; a key named after a commitment opens nothing.
        let fake = ev(
            "f1",
            "bnpl.offered",
            json!({"consumer": "ps:00112233445566778899aabbccddeeff", "session": "s", "preselected": true, "terms_shown": true}),
        );
        let v = server.post_events(&platform, fake).await;
        assert_eq!(
            (&v["items"][0]["status"], &v["items"][0]["field"]),
            (&json!("rejected"), &json!("consumer")),
            "{name}: {v}"
        );
        let (_, r) = server.call("GET", "/v1/receipts/0", Some(&platform), None).await;
        let leaf: Value = serde_json::from_str(r["leaf"].as_str().expect("leaf")).expect("json");
        let commitment = leaf["event"]["consumer"].as_str().expect("a commitment").to_owned();
        let squatter = db.key(&format!("consumer:{commitment}")).await;
        assert_eq!(
            server.call("GET", "/v1/receipts/0", Some(&squatter), None).await.0,
            403,
            "{name}"
        );

        let erased = {
            let d = db.db.clone();
            tokio::task::spawn_blocking(move || d.erase_consumer(victim))
                .await
                .expect("join")
                .expect("erased")
        };
        assert!(erased.leaves >= 4, "{name}: the bnpl event, the refund naming them in an extra field, the wide order, their findings: {erased:?}");
        let (_, r) = server
            .call("GET", &format!("/v1/receipts/{refund_leaf}"), Some(&platform), None)
            .await;
        assert_eq!(
            r.get("private"),
            None,
            "{name}: the refund's extra consumer and phone are erased: {r}"
        );
        let (_, by_id) = server
            .call(
                "GET",
                &format!("/v1/findings?subject=consumer:{victim}"),
                Some(&platform),
                None,
            )
            .await;
        assert_eq!(
            by_id["findings"].as_array().map(Vec::len),
            Some(0),
            "{name}: the erased id finds nothing: {by_id}"
        );

        server.stop().await;
        if name == "sqlite" {
            // Overwritten, not only unlinked: neither the file nor its WAL holds the id.
            let bytes = std::fs::read(db.dir.path().join("weiquan.db")).expect("db");
            let wal = std::fs::read(db.dir.path().join("weiquan.db-wal")).unwrap_or_default();
            for file in [&bytes, &wal] {
                assert!(
                    !file.windows(victim.len()).any(|w| w == victim.as_bytes()),
                    "the erased id is still in the database files"
                );
            }
        }

        // The same id comes back in a new event: the old findings stay pseudonymous.
        let server = Server::start(db.config(None)).await;
        let again = ev(
            "b2",
            "bnpl.disabled",
            json!({"consumer": victim, "provider": "p", "steps": 1}),
        );
        server.post_events(&platform, again).await;
        server.stop().await;
        let server = Server::start(db.config(None)).await;
        let again = ev(
            "b3",
            "bnpl.disabled",
            json!({"consumer": victim, "provider": "p", "steps": 1}),
        );
        server.post_events(&platform, again).await;
        let after = findings(&server, &platform).await;
        assert!(
            !after.iter().any(|f| f.to_string().contains(victim)),
            "{name}: {after:?}"
        );
        let pseudonymous: BTreeSet<(String, String)> = before
            .iter()
            .map(|(r, s)| (r.clone(), s.replace(victim, &erased.pseudonym)))
            .collect();
        assert!(
            pseudonymous.is_subset(&pairs(&after)),
            "{name}: replay after erasure keeps every finding"
        );
        // The wide event's id is still known after the restart.
        let v = server.post_events(&platform, wide.to_string()).await;
        assert_eq!(v["duplicates"], 1, "{name}: {v}");
        server.stop().await;
    }
}

/// A lottery announced without a commitment: weiquan keeps no entrant ids for
/// it, so its page claims no entrants root (it showed the empty list's) and
/// its proof route says why there is no proof (it said "not among the 0 entrants").
#[tokio::test(flavor = "multi_thread")]
async fn an_uncommitted_lottery_claims_no_entrants_root() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let events = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/cases/lottery/events.ndjson"
    ))
    .expect("the lottery case");
    server.post_events(&platform, events).await;
    let (status, l1) = server.call("GET", "/v1/lotteries/l1", None, None).await;
    assert_eq!(status, 200, "{l1}");
    assert!(l1["commitment"].is_null() && l1["drawn"] == json!(true), "{l1}");
    assert_eq!(l1["entrants"], json!(5), "{l1}");
    assert!(l1["entrants_root"].is_null(), "{l1}");
    let (status, proof) = server
        .call("GET", "/v1/lotteries/l1/proof?participant=p1", None, None)
        .await;
    assert_eq!(status, 404, "{proof}");
    let detail = proof["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("published no commitment") && detail.contains("5 entered before the close"),
        "{proof}"
    );
}

/// The public lottery page and entry proofs mask the winners' ids (张*): a
/// winner recognises themselves, nobody takes the list down; the platform,
/// regulators and the lottery's merchant read them in the clear.
#[tokio::test(flavor = "multi_thread")]
async fn public_lottery_pages_mask_the_winners() {
    let db = Db::sqlite();
    let server = Server::start(db.config(None)).await;
    let platform = db.key("platform").await;
    let announce = json!({"lottery": "L1", "merchant": "m1", "host": "h", "stream": "s", "at": AT,
        "prizes": [{"name": "券", "value_fen": 100, "count": 2}]});
    let (status, v) = server
        .call("POST", "/v1/lotteries", Some(&platform), Some(announce.to_string()))
        .await;
    assert_eq!(status, 200, "{v}");
    let entries: Vec<String> = ["张三-13800000000", "李四-13900000000", "王五-13700000000"]
        .iter()
        .enumerate()
        .map(|(i, p)| {
            ev(
                &format!("e{i}"),
                "lottery.entered",
                json!({"lottery": "L1", "participant": p}),
            )
        })
        .collect();
    server.post_events(&platform, entries.join("\n")).await;
    assert_eq!(
        server
            .call("POST", "/v1/lotteries/L1/close", Some(&platform), None)
            .await
            .0,
        200
    );
    let (_, drawn) = server
        .call("POST", "/v1/lotteries/L1/draw", Some(&platform), None)
        .await;
    let winner = drawn["winners"][0]["participant"]
        .as_str()
        .expect("a winner")
        .to_owned();
    let (_, public) = server.call("GET", "/v1/lotteries/L1", None, None).await;
    assert!(
        public["entrants_root"].is_string(),
        "a committed lottery's root: {public}"
    );
    assert!(
        !public.to_string().contains("1380000")
            && !public.to_string().contains("1390000")
            && !public.to_string().contains("1370000"),
        "{public}"
    );
    assert!(
        public["winners"][0]["participant"]
            .as_str()
            .is_some_and(|p| p.ends_with('*')),
        "{public}"
    );
    for key in [platform.clone(), db.key("regulator").await, db.key("merchant:m1").await] {
        let (_, full) = server.call("GET", "/v1/lotteries/L1", Some(&key), None).await;
        assert_eq!(full["winners"][0]["participant"], json!(winner), "{full}");
    }
    let other = db.key("merchant:m2").await;
    let (_, not_theirs) = server.call("GET", "/v1/lotteries/L1", Some(&other), None).await;
    assert_ne!(not_theirs["winners"][0]["participant"], json!(winner));
    let (_, proof) = server
        .call(
            "GET",
            &format!("/v1/lotteries/L1/proof?participant={winner}"),
            None,
            None,
        )
        .await;
    let shown: Vec<&str> = proof["winners"]
        .as_array()
        .expect("winners")
        .iter()
        .filter_map(|w| w["participant"].as_str())
        .collect();
    assert!(
        shown.contains(&winner.as_str()) && shown.iter().filter(|p| p.ends_with('*')).count() == 1,
        "{proof}"
    );
    server.stop().await;
}
