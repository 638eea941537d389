//! `weiquan serve` as a process: start-up message, and two processes on one
//! PostgreSQL where the standby takes over when the sequencer is killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A server process (killed when dropped) and its base URL.
struct Proc {
    child: weiquan_testkit::process::Proc,
    base: String,
}

/// Starts `weiquan serve ARGS --listen 127.0.0.1:0` and reads its address from stderr.
fn serve(args: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weiquan"))
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(crate::root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weiquan serve starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let base = loop {
        let line = lines.next().expect("serve printed its address").expect("utf-8");
        if let Some(rest) = line.split("serving on ").nth(1) {
            break rest.split_whitespace().next().expect("url").to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Proc {
        child: weiquan_testkit::process::Proc(child),
        base,
    }
}

fn http(method: &str, url: &str, key: Option<&str>, body: Option<String>) -> (u16, String) {
    let (status, body) = crate::http_bytes(method, url, key, body);
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_on_a_fresh_folder_says_where_and_how_to_get_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let p = serve(&["--data", data.to_str().expect("utf-8")]);
    assert_eq!(http("GET", &format!("{}/healthz", p.base), None, None).0, 200);
    let key = data.join("ledger.key");
    assert!(key.exists() && data.join("ledger.key.pub").exists() && data.join("weiquan.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).expect("key").permissions().mode() & 0o777,
            0o600
        );
    }
    let out = crate::weiquan(
        &[
            "keys",
            "create",
            "--data",
            data.to_str().expect("utf-8"),
            "--role",
            "platform",
        ],
        None,
    );
    let api_key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(api_key.starts_with("wq_"));
    let (status, body) = http(
        "POST",
        &format!("{}/v1/events", p.base),
        Some(&api_key),
        Some(std::fs::read_to_string(crate::root().join("tests/cases/bnpl-prices/events.ndjson")).expect("case")),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_standby_takes_over_when_the_sequencer_dies() {
    if !weiquan_testkit::postgres_available() {
        return;
    }
    let url = std::env::var("WEIQUAN_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("wq_takeover_{}", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("ledger.key");
    let k = key.to_str().expect("utf-8");
    let common = ["--db", url.as_str(), "--db-schema", schema.as_str(), "--key", k];
    let first = serve(&[&common[..], &["--data", dir.path().join("a").to_str().expect("utf-8")]].concat());
    wait_until("the first process to lead", || {
        http("GET", &format!("{}/readyz", first.base), None, None).0 == 200
    });
    let second = serve(&[&common[..], &["--data", dir.path().join("b").to_str().expect("utf-8")]].concat());
    let (status, body) = http("GET", &format!("{}/readyz", second.base), None, None);
    assert_eq!(status, 503, "the second process stands by: {body}");
    let out = crate::weiquan(
        &[
            "keys",
            "create",
            "--db",
            &url,
            "--db-schema",
            &schema,
            "--role",
            "platform",
        ],
        None,
    );
    let api = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let text = std::fs::read_to_string(crate::root().join("tests/cases/lottery/events.ndjson")).expect("case");
    let lines: Vec<&str> = text.lines().collect();
    let half = lines.len() / 2;
    let (status, body) = http(
        "POST",
        &format!("{}/v1/events", first.base),
        Some(&api),
        Some(lines[..half].join("\n")),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(
        "POST",
        &format!("{}/v1/events", second.base),
        Some(&api),
        Some(lines[half..].join("\n")),
    );
    assert_eq!(status, 503, "the standby refuses to sequence");
    // The public log is read beside the sequencer: the standby serves it too, as the leader does.
    let (leader, standby) = (
        http("GET", &format!("{}/log/checkpoint", first.base), None, None),
        http("GET", &format!("{}/log/checkpoint", second.base), None, None),
    );
    assert_eq!((standby.0, &standby.1), (200, &leader.1), "the standby reads the log");
    let size: u64 = leader
        .1
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("a tree size");
    let tile = |base: &str| http("GET", &format!("{base}/log/tile/0/000.p/{size}"), None, None);
    assert_eq!(tile(&second.base), tile(&first.base));
    assert_eq!(tile(&second.base).0, 200);

    drop(first); // SIGKILL: its lock goes with its connection
    wait_until("the standby to take over", || {
        http("GET", &format!("{}/readyz", second.base), None, None).0 == 200
    });
    let (status, body) = http(
        "POST",
        &format!("{}/v1/events", second.base),
        Some(&api),
        Some(text.clone()),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v["duplicates"].as_u64(),
        Some(half as u64),
        "what the first process acknowledged is not applied twice"
    );
    assert_eq!(
        v["accepted"].as_u64(),
        Some((lines.len() - half) as u64),
        "nothing acknowledged was lost, nothing is missing"
    );
    let (_, findings) = http(
        "GET",
        &format!("{}/v1/findings?limit=1000", second.base),
        Some(&api),
        None,
    );
    let f: serde_json::Value = serde_json::from_str(&findings).expect("json");
    let got = crate::pairs(f["findings"].as_array().expect("findings"));
    let (want, _) = crate::expected(&crate::root().join("tests/cases/lottery"));
    assert_eq!(got, want);
    drop(second);
    if let Ok(mut c) = postgres::Client::connect(&url, postgres::NoTls) {
        let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
    }
}

/// `weiquan demo` on a new folder `data`, listening on `listen`, with `rest`, to the end of its stream.
fn demo(data: &std::path::Path, listen: &str, rest: &[&str]) -> std::process::Output {
    let mut args = vec![
        "demo",
        "--data",
        data.to_str().expect("utf-8"),
        "--listen",
        listen,
        "--exit-when-done",
    ];
    args.extend_from_slice(rest);
    crate::weiquan(&args, None)
}

#[test]
fn demo_streams_a_simulated_platform_and_finds_what_was_planted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let out = demo(
        &data,
        "127.0.0.1:0",
        &["--rate", "50000", "--merchants", "8", "--days", "12"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("http://127.0.0.1:")
            && err.contains("regulator key: wq_")
            && err.contains("/signin with the regulator key"),
        "{err}"
    );
    let planted: u64 = err
        .split(" planted violations")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("count of planted violations");
    assert!(
        err.contains(&format!("; {planted} findings so far")),
        "every planted violation is found: {err}"
    );
    assert!(data.join("weiquan.db").exists());
}

/// An address asked for with --listen is that address or an error, never
/// another port the reader did not ask for.
#[test]
fn demo_on_a_taken_address_says_so() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let out = demo(&data, &addr, &["--merchants", "2", "--days", "2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("give another --listen"),
        "{err}"
    );
}

#[test]
fn a_lottery_drawn_through_the_api_verifies_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8");
    let mut p = serve(&["--data", d]);
    let key = platform_key(d);
    let post = |path: &str, body: String| http("POST", &format!("{}{path}", p.base), Some(&key), Some(body));
    let setup = [
        r#"{"v":1,"id":"r","type":"merchant.registered","at":"2026-11-11T08:00:00+08:00","merchant":"m1","name":"店","uscc":"91330100MA2B000018","channels":["live"]}"#,
        r#"{"v":1,"id":"vv","type":"merchant.verified","at":"2026-11-11T08:00:00+08:00","merchant":"m1","method":"manual","by":"platform"}"#,
    ];
    assert_eq!(post("/v1/events", setup.join("\n")).0, 200);
    let (status, body) = post(
        "/v1/lotteries",
        r#"{"lottery":"l1","merchant":"m1","host":"h","stream":"s","prizes":[{"name":"耳机","value_fen":19900,"count":2}],"conditions":["关注"],"draw_at":"2026-11-11T20:00:00+08:00","deliver_within_days":7,"organizer":"店","contact":"400"}"#.into(),
    );
    assert_eq!(status, 200, "{body}");
    let announced: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(announced["commitment"].as_str().map(str::len), Some(64));
    let entries: Vec<String> = (1..=9)
        .map(|i| format!(r#"{{"v":1,"id":"in{i}","type":"lottery.entered","at":"2026-11-11T10:0{i}:00+08:00","lottery":"l1","participant":"p{i}"}}"#))
        .collect();
    assert_eq!(post("/v1/events", entries.join("\n")).0, 200);
    assert_eq!(
        post("/v1/lotteries/l1/draw", String::new()).0,
        409,
        "drawing needs the close first"
    );
    let (status, body) = post("/v1/lotteries/l1/close", String::new());
    assert_eq!(status, 200, "{body}");
    let late = r#"{"v":1,"id":"late","type":"lottery.entered","at":"2026-11-11T19:00:00+08:00","lottery":"l1","participant":"p99"}"#;
    assert_eq!(post("/v1/events", late.into()).0, 200);
    let (status, body) = post("/v1/lotteries/l1/draw", String::new());
    assert_eq!(status, 200, "{body}");
    let drawn: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(drawn["winners"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        post("/v1/lotteries/l1/draw", String::new()).0,
        409,
        "a lottery is drawn once"
    );

    let (status, body) = http("GET", &format!("{}/v1/lotteries/l1", p.base), None, None);
    assert_eq!(status, 200);
    let lottery: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (lottery["entrants"].as_u64(), lottery["late_entries"].as_u64()),
        (Some(9), Some(1))
    );
    assert!(
        lottery["findings"]
            .as_array()
            .is_some_and(|f| f.iter().all(|x| x["rule"] != "LT-10" && x["rule"] != "LT-04")),
        "{lottery}"
    );

    // A participant checks that their entry counted and that the winners follow from seed and root.
    let (status, body) = http(
        "GET",
        &format!("{}/v1/lotteries/l1/proof?participant=p4", p.base),
        None,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let proof: serde_json::Value = serde_json::from_str(&body).expect("json");
    let path: Vec<[u8; 32]> = proof["audit_path"]
        .as_array()
        .expect("path")
        .iter()
        .map(|h| {
            let bytes = hex::decode(h.as_str().expect("hex")).expect("hex");
            <[u8; 32]>::try_from(bytes).expect("32 bytes")
        })
        .collect();
    let root = <[u8; 32]>::try_from(hex::decode(proof["entrants_root"].as_str().expect("root")).expect("hex"))
        .expect("32 bytes");
    assert!(weiquan_engine::draw::verify_entrant(
        "p4",
        proof["index"].as_u64().expect("index") as usize,
        9,
        &path,
        &root
    ));
    let seed = proof["seed"].as_str().expect("seed revealed after the draw");
    assert_eq!(
        weiquan_engine::draw::commitment(seed),
        announced["commitment"].as_str().expect("commitment")
    );
    assert_eq!(
        http(
            "GET",
            &format!("{}/v1/lotteries/l1/proof?participant=p99", p.base),
            None,
            None
        )
        .0,
        404,
        "a late entrant is not an entrant"
    );

    // Offline, from the ledger alone.
    let _ = p.child.0.kill();
    let _ = p.child.0.wait();
    let out = crate::succeeds(&[
        "verify",
        "draw",
        "--ledger",
        &format!("{d}/weiquan.db"),
        "--lottery",
        "l1",
        "--pub",
        &format!("{d}/ledger.key.pub"),
    ]);
    let msg = String::from_utf8_lossy(&out.stdout);
    assert!(msg.contains("fair") && msg.contains("9 entrants"), "{msg}");
}

#[test]
fn serve_reads_a_config_file_and_refuses_unknown_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("from-config");
    let config = dir.path().join("weiquan.toml");
    std::fs::write(
        &config,
        format!(
            "data = {:?}\nlog_format = \"json\"\nrate_limit = 50\n",
            data.to_str().expect("utf-8")
        ),
    )
    .expect("write");
    let p = serve(&["--config", config.to_str().expect("utf-8")]);
    assert_eq!(http("GET", &format!("{}/healthz", p.base), None, None).0, 200);
    assert!(
        data.join("weiquan.db").exists(),
        "the data folder came from the config file"
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "lissten = \"127.0.0.1:1\"\n").expect("write");
    let out = crate::weiquan(&["serve", "--config", bad.to_str().expect("utf-8")], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `lissten`"));
}

/// A platform key for the server whose data folder is `d`.
fn platform_key(d: &str) -> String {
    String::from_utf8_lossy(&crate::weiquan(&["keys", "create", "--data", d, "--role", "platform"], None).stdout)
        .trim()
        .to_owned()
}

/// `weiquan keys`: create (with expiry), list without the secret, revoke by id; errors say what to do.
#[test]
fn keys_are_listed_and_revoked_by_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8");
    let create = |role: &str, extra: &[&str]| {
        let mut args = vec!["keys", "create", "--data", d, "--role", role];
        args.extend_from_slice(extra);
        let out = crate::succeeds(&args);
        (
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The first key makes the database, and says so (a mistyped --data would make a
    // key no server knows); the next ones find it and say nothing.
    let (platform, said) = create("platform", &[]);
    assert!(
        said.contains("held no weiquan database; a new one was made there"),
        "{said}"
    );
    let (merchant, said) = create("merchant:m1", &["--expires-in-days", "30"]);
    assert!(said.is_empty(), "{said}");
    // A key expired at birth, or dated past any calendar, is refused before any is made.
    for days in ["0", "4294967295"] {
        let out = crate::weiquan(
            &[
                "keys",
                "create",
                "--data",
                d,
                "--role",
                "platform",
                "--expires-in-days",
                days,
            ],
            None,
        );
        assert_eq!(
            out.status.code(),
            Some(2),
            "{days}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list = crate::weiquan(&["keys", "list", "--data", d, "--json"], None);
    let keys = crate::ndjson(&list.stdout);
    assert_eq!(keys.len(), 2);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        !text.contains(&platform) && !text.contains(&merchant),
        "never the keys themselves"
    );
    let m = keys.iter().find(|k| k["role"] == "merchant:m1").expect("listed");
    assert!(m["expires_at"].as_str().is_some(), "{m}");
    let id = m["id"].as_str().expect("id").to_owned();
    crate::succeeds(&["keys", "revoke", &id, "--data", d]);
    assert_eq!(
        crate::ndjson(&crate::weiquan(&["keys", "list", "--data", d, "--json"], None).stdout).len(),
        1
    );
    let again = crate::weiquan(&["keys", "revoke", &id, "--data", d], None);
    assert_eq!(again.status.code(), Some(2), "a usage error");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("keys list"),
        "says what to do"
    );
    let nowhere = crate::weiquan(&["keys", "list", "--data", "/nonexistent/weiquan"], None);
    assert_ne!(nowhere.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("--data"));
}

/// `weiquan backup` of a running server and `weiquan restore` into a new folder:
/// the copy verifies and a server on it serves the same findings.
#[test]
fn a_backup_taken_while_serving_restores_verified_with_the_same_findings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8");
    let p = serve(&["--data", d]);
    let key = platform_key(d);
    let case = std::fs::read_to_string(crate::root().join("tests/cases/lottery/events.ndjson")).expect("case");
    let post = |body: String| http("POST", &format!("{}/v1/events", p.base), Some(&key), Some(body));
    assert_eq!(post(case).0, 200);
    let findings = |base: &str| {
        let (status, body) = http("GET", &format!("{base}/v1/findings?limit=1000"), Some(&key), None);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        crate::pairs(v["findings"].as_array().expect("findings"))
    };
    let before = findings(&p.base);
    assert!(!before.is_empty());
    let backup = dir.path().join("backup");
    crate::succeeds(&["backup", "--data", d, backup.to_str().expect("utf-8")]);
    // The server goes on after the backup; the copy is the moment it was taken.
    let later = r#"{"v":1,"id":"after-backup","type":"clock.tick","at":"2026-11-30T00:00:00+08:00"}"#;
    assert_eq!(post(later.into()).0, 200);
    drop(p);

    let restored = dir.path().join("restored");
    let r = restored.to_str().expect("utf-8");
    let out = crate::succeeds(&["restore", backup.to_str().expect("utf-8"), "--data", r]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("checkpoints verified"));
    let again = crate::weiquan(&["restore", backup.to_str().expect("utf-8"), "--data", r], None);
    assert_eq!(again.status.code(), Some(2), "never overwrites a database");
    // Nor a signing key, alone in its folder.
    let keyed = dir.path().join("keyed");
    std::fs::create_dir(&keyed).expect("folder");
    std::fs::write(keyed.join("ledger.key"), "mine\n").expect("key");
    let k = keyed.to_str().expect("utf-8");
    let out = crate::weiquan(&["restore", backup.to_str().expect("utf-8"), "--data", k], None);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(keyed.join("ledger.key")).expect("key"),
        "mine\n"
    );
    // A backup whose private key is not its public key's is refused before anything is copied.
    let mixed = dir.path().join("mixed");
    std::fs::create_dir(&mixed).expect("folder");
    for f in ["weiquan.db", "ledger.key.pub"] {
        std::fs::copy(backup.join(f), mixed.join(f)).expect("copy");
    }
    let other = dir.path().join("other.key");
    let made = crate::weiquan(&["keygen", "--out", other.to_str().expect("utf-8")], None);
    assert_eq!(made.status.code(), Some(0));
    std::fs::copy(&other, mixed.join("ledger.key")).expect("copy");
    let into = dir.path().join("from-mixed");
    let out = crate::weiquan(
        &[
            "restore",
            mixed.to_str().expect("utf-8"),
            "--data",
            into.to_str().expect("utf-8"),
        ],
        None,
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("the pair does not match"), "{said}");
    assert!(!into.exists(), "nothing was restored");
    crate::succeeds(&[
        "verify",
        "log",
        &format!("{r}/weiquan.db"),
        "--pub",
        &format!("{r}/ledger.key.pub"),
    ]);
    let q = serve(&["--data", r]);
    assert_eq!(
        findings(&q.base),
        before,
        "a server on the copy serves the same findings"
    );
    // The copy holds what was acknowledged before the backup, not after.
    let (_, body) = http("POST", &format!("{}/v1/events", q.base), Some(&key), Some(later.into()));
    assert!(body.contains("\"accepted\":1"), "{body}");
}

/// A ledger written before leaves named their actor (format 1, here by
/// `weiquan audit --ledger`) opens in `weiquan serve` with its findings; what
/// the server appends names who submitted it; `verify log` counts both.
#[test]
fn an_older_ledger_opens_and_new_leaves_name_their_submitter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run.db");
    let out = crate::weiquan(
        &[
            "audit",
            "tests/cases/lottery/events.ndjson",
            "--ledger",
            run.to_str().expect("utf-8"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let audited = crate::pairs(&crate::ndjson(&out.stdout));
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data");
    for (from, to) in [
        ("run.db", "weiquan.db"),
        ("run.db.key", "ledger.key"),
        ("run.db.key.pub", "ledger.key.pub"),
    ] {
        std::fs::copy(dir.path().join(from), data.join(to)).expect("copy");
    }
    let d = data.to_str().expect("utf-8");
    let p = serve(&["--data", d]);
    let key = platform_key(d);
    let (status, body) = http("GET", &format!("{}/v1/findings?limit=1000", p.base), Some(&key), None);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(crate::pairs(v["findings"].as_array().expect("findings")), audited);
    let tick = r#"{"v":1,"id":"t-new","type":"clock.tick","at":"2026-11-20T00:00:00+08:00"}"#;
    let (status, body) = http("POST", &format!("{}/v1/events", p.base), Some(&key), Some(tick.into()));
    assert_eq!(status, 200, "{body}");
    let index = serde_json::from_str::<serde_json::Value>(&body).expect("json")["items"][0]["index"]
        .as_u64()
        .expect("index");
    let (status, receipt) = http("GET", &format!("{}/v1/receipts/{index}", p.base), Some(&key), None);
    assert_eq!(status, 200);
    let leaf: serde_json::Value = serde_json::from_str(
        serde_json::from_str::<serde_json::Value>(&receipt).expect("json")["leaf"]
            .as_str()
            .expect("leaf"),
    )
    .expect("leaf json");
    let list = crate::ndjson(&crate::weiquan(&["keys", "list", "--data", d, "--json"], None).stdout);
    assert_eq!(leaf["actor"]["role"], "platform", "{leaf}");
    assert_eq!(
        leaf["actor"]["key"], list[0]["id"],
        "the key's id, never the key: {leaf}"
    );
    assert_eq!(leaf["event"]["id"], "t-new");
    assert!(!receipt.contains(&key));
    drop(p);
    let out = crate::weiquan(
        &[
            "verify",
            "log",
            &format!("{d}/weiquan.db"),
            "--pub",
            &format!("{d}/ledger.key.pub"),
        ],
        None,
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("1 events naming who submitted them"), "{said}");
}

/// Issue 15's privacy from the command line: a consumer's receipt opens their
/// leaf offline (and a changed value does not); `weiquan erase` removes what
/// opens it, and the log still verifies.
#[test]
fn a_receipt_opens_the_consumers_own_leaf_and_erase_keeps_the_log_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8");
    let p = serve(&["--data", d]);
    let key = platform_key(d);
    let bnpl = r#"{"v":1,"id":"b1","type":"bnpl.enabled","at":"2026-11-01T00:00:00+08:00","consumer":"u-erase-me","provider":"pay","consent":"bundled","identity_verified":true}"#;
    let (status, body) = http("POST", &format!("{}/v1/events", p.base), Some(&key), Some(bnpl.into()));
    assert_eq!(status, 200, "{body}");
    let (status, receipt) = http("GET", &format!("{}/v1/receipts/0", p.base), Some(&key), None);
    assert_eq!(status, 200, "{receipt}");
    assert!(
        !receipt.contains("u-erase-me\",\"provider") && receipt.contains(r#""values":{"consumer":"u-erase-me"}"#),
        "{receipt}"
    );
    let file = dir.path().join("receipt.json");
    std::fs::write(&file, &receipt).expect("write");
    let pubkey = format!("{d}/ledger.key.pub");
    let f = file.to_str().expect("utf-8");
    let out = crate::weiquan(&["verify", "receipt", f, "--pub", &pubkey], None);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("its salted consumer opened"), "{said}");
    std::fs::write(
        &file,
        receipt.replace(r#""consumer":"u-erase-me""#, r#""consumer":"someone-else""#),
    )
    .expect("write");
    let out = crate::weiquan(&["verify", "receipt", f, "--pub", &pubkey], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("does not match the leaf's commitment"), "{err}");
    drop(p);

    let out = crate::weiquan(&["erase", "--data", d, "--consumer", "u-erase-me"], None);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("erased the salts and values of 2 leaves"),
        "the event and its BN-01 finding: {said}"
    );
    let out = crate::weiquan(&["erase", "--data", d, "--consumer", "u-erase-me"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to erase"));
    crate::succeeds(&["verify", "log", &format!("{d}/weiquan.db"), "--pub", &pubkey]);
    let p = serve(&["--data", d]);
    let (_, body) = http("GET", &format!("{}/v1/findings", p.base), Some(&key), None);
    assert!(
        body.contains("\"subject\":\"consumer:ps:") && !body.contains("u-erase-me"),
        "{body}"
    );
    drop(p);

    // A server's database backtests too: a salted finding subject is opened
    // from the private side, or (erased, as here) named by the consumer's pseudonym.
    let rules = dir.path().join("rules.toml");
    let (db, r) = (format!("{d}/weiquan.db"), rules.to_str().expect("utf-8"));
    for text in ["", "[credit]\nweight_high = 1.0\n"] {
        std::fs::write(&rules, text).expect("write");
        let out = crate::weiquan(&["backtest", "--ledger", &db, "--rules", r], None);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// Consumers' pay-later switch-offs survive `kill -9` between being recorded
/// and being delivered: after a restart the platform's receiver, down until
/// then, gets each instruction exactly once, signed with the secret.
#[test]
fn paylater_instructions_survive_kill_9_and_reach_the_platform_once_each() {
    use weiquan_testkit::webhook::{free_addr, Receiver};
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8");
    let secret_file = dir.path().join("webhook.secret");
    std::fs::write(&secret_file, "0123456789abcdef0123456789abcdef\n").expect("secret");
    let addr = free_addr();
    let url = format!("http://{addr}/weiquan");
    let args = [
        "--data",
        d,
        "--paylater-webhook",
        &url,
        "--paylater-secret-file",
        secret_file.to_str().expect("utf-8"),
    ];
    let first = serve(&args);
    let platform = platform_key(d);
    let consumers = ["u1", "u2", "u3"];
    let on: Vec<String> = consumers
        .iter()
        .map(|c| {
            serde_json::json!({"v": 1, "id": format!("on-{c}"), "type": "bnpl.enabled", "at": "2026-11-01T10:00:00+08:00",
                "consumer": c, "provider": "huabei", "consent": "explicit", "identity_verified": true})
            .to_string()
        })
        .collect();
    let (status, body) = http(
        "POST",
        &format!("{}/v1/events", first.base),
        Some(&platform),
        Some(on.join("\n")),
    );
    assert_eq!(status, 200, "{body}");
    let mut ids = Vec::new();
    for c in consumers {
        let out = crate::weiquan(
            &["keys", "create", "--data", d, "--role", &format!("consumer:{c}")],
            None,
        );
        let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let (status, body) = http(
            "POST",
            &format!("{}/v1/paylater/huabei/disable", first.base),
            Some(&key),
            None,
        );
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        ids.push(v["instruction"]["id"].as_str().expect("id").to_owned());
    }
    drop(first); // SIGKILL, with nothing delivered: the receiver is down
    let receiver = Receiver::start_on(addr);
    let second = serve(&args);
    wait_until("every instruction to arrive", || {
        let got: std::collections::BTreeSet<String> = (receiver.received().iter())
            .filter_map(|r| r.header(weiquan_server::ID_HEADER).map(str::to_owned))
            .collect();
        got.len() == ids.len()
    });
    std::thread::sleep(Duration::from_millis(1500));
    let received = receiver.received();
    let mut got: Vec<&str> = received
        .iter()
        .filter_map(|r| r.header(weiquan_server::ID_HEADER))
        .collect();
    got.sort_unstable();
    ids.sort();
    assert_eq!(got, ids, "each instruction once");
    for r in &received {
        let ts: i64 = r
            .header(weiquan_server::TIMESTAMP_HEADER)
            .and_then(|t| t.parse().ok())
            .expect("timestamp");
        let want = weiquan_server::signature(b"0123456789abcdef0123456789abcdef", ts, &r.body);
        assert_eq!(
            r.header(weiquan_server::SIGNATURE_HEADER),
            Some(want.as_str()),
            "signed with the file's secret"
        );
    }
    let (_, log) = http(
        "GET",
        &format!("{}/v1/findings?rule=BN-04", second.base),
        Some(&platform),
        None,
    );
    assert!(log.contains(r#""findings":[]"#), "acknowledged in time: {log}");
}

/// The webhook's flags are checked before anything starts: a URL without its
/// secret, a secret too short, a URL that is not HTTP.
#[test]
fn paylater_webhook_flags_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("data");
    let short = dir.path().join("short");
    std::fs::write(&short, "tiny").expect("write");
    let s = short.to_str().expect("utf-8");
    for (args, says) in [
        (vec!["--paylater-webhook", "http://127.0.0.1:9/x"], "go together"),
        (
            vec![
                "--paylater-webhook",
                "http://127.0.0.1:9/x",
                "--paylater-secret-file",
                s,
            ],
            "at least 16",
        ),
        (
            vec!["--paylater-webhook", "ftp://x", "--paylater-secret-file", s],
            "http:// or https://",
        ),
    ] {
        let out = crate::weiquan(
            &[&["serve", "--data", d.to_str().expect("utf-8")][..], &args[..]].concat(),
            None,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
