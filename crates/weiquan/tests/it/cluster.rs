//! `weiquan cluster` on a real three-node NATS JetStream cluster started by
//! the test: workers and NATS servers are killed with SIGKILL mid-stream, and
//! the findings must still be exactly `weiquan audit`'s.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weiquan_cluster::{door::FrontDoor, Cluster};
use weiquan_testkit::nats::NatsCluster;
use weiquan_testkit::process::{log_file, Proc};

/// The JSON lines a command printed, sorted (the cluster prints findings in
/// another order than `audit`).
fn sorted(out: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = super::ndjson(out).iter().map(|v| v.to_string()).collect();
    v.sort();
    v
}

/// A `weiquan cluster work` process of cluster `cluster`, with `extra` options.
fn worker(urls: &str, cluster: &str, name: &str, dir: &Path, extra: &[&str]) -> Proc {
    let log = log_file(&dir.join(format!("{name}.log")));
    let child = Command::new(env!("CARGO_BIN_EXE_weiquan"))
        .args(["cluster", "--nats", urls, "--cluster", cluster, "work", "--name", name])
        .args(["--snapshot-every", "150", "--lease-ms", "3000"])
        .args(extra)
        .env("RUST_LOG", "weiquan_cluster=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the weiquan binary runs");
    Proc(child)
}

/// `handed_over(4)` (a pre-sale handed to a merchant of another of four
/// partitions) written to `dir/handed.ndjson`: its path.
fn handed_file(dir: &Path) -> String {
    let handed = dir.join("handed.ndjson");
    std::fs::write(&handed, weiquan_testkit::streams::handed_over(4).join("\n") + "\n").expect("written");
    handed.to_str().expect("UTF-8 path").to_owned()
}

/// A JetStream context at `url`, with `subject`'s stream made as
/// `weiquan serve --nats` makes it (the platform's stream a door reads).
async fn platform_stream(
    url: &str,
    subject: &str,
) -> (async_nats::jetstream::Context, async_nats::jetstream::stream::Stream) {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.expect("NATS"));
    let stream = js
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: weiquan_server::nats::stream_name(subject),
            subjects: vec![subject.to_owned()],
            ..Default::default()
        })
        .await
        .expect("the platform's stream");
    (js, stream)
}

/// A log signing key made by `weiquan keygen` in `dir`: (private, public) paths.
fn log_key(dir: &Path) -> (String, String) {
    let key = dir.join("cluster.key");
    let key = key.to_str().expect("UTF-8 path").to_owned();
    let made = super::weiquan(&["keygen", "--out", &key, "--name", "weiquan-cluster-test"], None);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let public = format!("{key}.pub");
    (key, public)
}

/// The workers' logs, for a failure message.
fn logs(dir: &Path) -> String {
    ["w0", "w1", "w2"].iter().map(|w| logs_of(dir, w)).collect()
}

/// One worker's log.
fn logs_of(dir: &Path, worker: &str) -> String {
    let log = std::fs::read_to_string(dir.join(format!("{worker}.log"))).unwrap_or_default();
    format!("--- {worker}\n{log}\n")
}

/// Waits for `check` to hold, for at most `limit`; fails saying what it
/// waited for, with the workers' logs.
async fn eventually<F, Fut>(what: &str, limit: Duration, dir: &Path, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < limit,
            "gave up waiting ({limit:?}) for {what}\nworker logs:\n{}",
            logs(dir)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn a_cluster_killed_mid_stream_finds_exactly_what_audit_finds() {
    if !weiquan_testkit::services::nats_server_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = weiquan_sim::simulate(&weiquan_sim::Config {
        merchants: 24,
        consumers: 800,
        days: 20,
        seed: 19,
        violation_rate: 0.4,
        profile: weiquan_sim::Profile::Double11,
        orders_per_day: 2.0,
    });
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, sim.lines.join("\n") + "\n").expect("events written");
    let audit = super::weiquan(&["audit", file.to_str().expect("UTF-8 path")], None);
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stderr));
    let mut expected: Vec<String> = super::ndjson(&audit.stdout).iter().map(|v| v.to_string()).collect();
    expected.sort();
    assert!(
        expected.len() >= 20,
        "the stream should give findings: {}",
        expected.len()
    );

    // Partition logs and the top log, a SQLite file each (the workers share this machine).
    let (key, public) = log_key(dir.path());
    let ledgers = dir.path().join("ledgers");
    let ledgers = ledgers.to_str().expect("UTF-8 path").to_owned();
    let log_args = ["--logs", &ledgers, "--log-key", &key, "--top-every-ms", "200"];
    let mut nats = NatsCluster::start(dir.path());
    let urls = nats.urls.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // The servers start listening, then elect their JetStream leaders.
        let cluster = Cluster::set_up_when_ready(&urls, "failover", 6, 3, Duration::from_secs(60))
            .await
            .expect("a JetStream cluster");
        let mut workers: Vec<Option<Proc>> = (0..3).map(|i| Some(worker(&urls, "failover", &format!("w{i}"), dir.path(), &log_args))).collect();
        let mut door = FrontDoor::new(cluster.clone()).await.expect("an empty stream");

        let n = sim.lines.len();
        let at = |share: usize| n * share / 100;
        for (i, line) in sim.lines.iter().enumerate() {
            let ev = weiquan_events::parse_event(line).expect("simulated events parse");
            door.send(&ev, line).await.expect("acknowledged");
            if i == at(20) {
                workers[0] = None; // SIGKILL
                // Its partitions pass to the others within a few lease lengths.
                eventually("the killed worker's partitions to be taken", Duration::from_secs(30), dir.path(), || async {
                    let owners = cluster.owners().await.unwrap_or_default();
                    owners.len() == 6 && owners.iter().all(|o| o.as_deref().is_some_and(|w| w != "w0"))
                })
                .await;
            } else if i == at(35) {
                workers[0] = Some(worker(&urls, "failover", "w0", dir.path(), &log_args));
            } else if i == at(45) {
                nats.kill(2);
            } else if i == at(60) {
                workers[1] = None;
            } else if i == at(65) {
                nats.start_node(2);
            } else if i == at(75) {
                workers[1] = Some(worker(&urls, "failover", "w1", dir.path(), &log_args));
            } else if i == at(85) {
                nats.kill(0);
            } else if i == at(92) {
                nats.start_node(0);
            }
        }
        door.advance().await.expect("acknowledged");
        assert_eq!(door.moved(), (0, 0), "the simulated platform ties no merchants");
        let sent = door.sent().to_vec();
        assert_eq!(cluster.routed().await.expect("routed"), sent, "what status shows as routed");
        assert_eq!(door.acked(), sent.as_slice(), "every event acknowledged after the last flush");

        // Every acknowledged event is in its partition, read through the
        // stream's leader (a consumer reads one replica, which can lag or, on
        // nats-server 2.9 after SIGKILLs, disagree). A batch retried while
        // later ones were stored lands after them: the stream's order may
        // differ from the indexes (the workers put it back). JetStream stores
        // at least once: a retry across a leader change can be stored twice
        // (seen on 2.9.10). That is allowed only as an identical copy; that
        // the workers apply it once is checked below, on the logs.
        for (p, &last) in sent.iter().enumerate() {
            let batches = leader_batches(&cluster, p as u32).await;
            let mut by_first: std::collections::BTreeMap<u64, &(u64, u64, u64, String)> = Default::default();
            let mut indexes = Vec::new();
            let mut copies = Vec::new();
            for b in &batches {
                match by_first.get(&b.1) {
                    Some(earlier) => {
                        assert_eq!((earlier.2, &earlier.3), (b.2, &b.3), "partition {p}: a batch stored twice differs from its first copy (seq {} and {})", earlier.0, b.0);
                        copies.push((earlier.0, b.0));
                    }
                    None => {
                        by_first.insert(b.1, b);
                        indexes.extend(b.1..=b.2);
                    }
                }
            }
            indexes.sort_unstable();
            let seqs: Vec<_> = batches.iter().map(|b| (b.0, b.1, b.2)).collect();
            assert_eq!(
                indexes,
                (1..=last).collect::<Vec<_>>(),
                "partition {p}: each event once, 1..={last}; stream messages (seq, first, last): {seqs:?}\nworker logs:\n{}",
                logs(dir.path())
            );
            if !copies.is_empty() {
                eprintln!("partition {p}: JetStream stored a retried batch twice (stream sequences {copies:?})");
            }
        }

        let started = Instant::now();
        loop {
            let progress = cluster.progress().await.unwrap_or_default();
            if progress == sent {
                break;
            }
            // Longer than a worker holds batches for an earlier one (its
            // GIVE_UP, 2 minutes): a partition stalled on a missing batch then
            // says so in its log before the test gives up.
            if started.elapsed() > Duration::from_secs(150) {
                let owners = cluster.owners().await.unwrap_or_default();
                panic!(
                    "partitions not applied in 150 s: applied {progress:?} of {sent:?}, owners {owners:?}\nworker logs:\n{}",
                    logs(dir.path())
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let (found, _repeats) = weiquan_cluster::read_findings(&cluster).await.expect("findings agree");
        let rules = weiquan_engine::Rulebook::builtin();
        let mut got: Vec<String> = found
            .iter()
            .map(|f| serde_json::to_value(f.finding.record(&rules, weiquan_engine::Lang::Zh)).map(|v| v.to_string()))
            .collect::<Result<_, _>>()
            .expect("records");
        got.sort();
        if got != expected {
            let logs = logs(dir.path());
            let missing: Vec<_> = expected.iter().filter(|e| !got.contains(e)).take(3).collect();
            let extra: Vec<_> = got.iter().filter(|g| !expected.contains(g)).take(3).collect();
            panic!(
                "cluster found {} findings, audit {}; missing {missing:#?}; extra {extra:#?}\nworker logs:\n{logs}",
                got.len(),
                expected.len()
            );
        }

        // Every log verifies, and the top log comes to commit to each
        // partition's whole log: one leaf per event applied (the final
        // advance is not an event) and per finding, none twice.
        let verifier = weiquan_ledger::load_verifier(&std::fs::read_to_string(&public).expect("the public key"))
            .expect("a verifier key");
        let logs = weiquan_cluster::logs::Logs::at(&ledgers, "failover").expect("a cluster name");
        let committed = |logs: weiquan_cluster::logs::Logs, verifier: weiquan_ledger::StandardVerifier| async move {
            tokio::task::spawn_blocking(move || logs.verify(&verifier, None)).await.expect("joins")
        };
        eventually("the top log to commit to every partition log", Duration::from_secs(60), dir.path(), || async {
            committed(logs.clone(), verifier.clone()).await.is_ok_and(|r| {
                r.partitions.len() == 6 && r.partitions.iter().all(|p| p.committed == p.log.leaves)
            })
        })
        .await;
        let report = committed(logs, verifier).await.expect("every log verifies");
        // Events are salted leaves submitted by the platform (a stand-in for one too long).
        let events_of = |l: &weiquan_ledger::LogReport| l.events_with_actor + l.events_stand_in;
        let events: u64 = report.partitions.iter().map(|p| events_of(&p.log)).sum();
        let findings: u64 = report.partitions.iter().map(|p| p.log.leaves - events_of(&p.log)).sum();
        let unsalted: u64 = report.partitions.iter().map(|p| p.log.events_without_actor).sum();
        assert_eq!(unsalted, 0, "no event is logged as received");
        assert_eq!(events, sent.iter().sum::<u64>() - 6, "each event applied is logged once");
        assert_eq!(findings, found.len() as u64, "each finding is logged once");
        drop(workers);
    });
}

/// Partition `p`'s messages in stream order, each read from the stream's
/// leader: (stream sequence, first and last index, the batch's lines).
async fn leader_batches(cluster: &Cluster, p: u32) -> Vec<(u64, u64, u64, String)> {
    use async_nats::jetstream::stream::RawMessageErrorKind;
    let events = cluster.events().await.expect("the events stream");
    let subject = cluster.events_subject(p);
    let started = Instant::now();
    let mut out = Vec::new();
    let mut next = 1;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "partition {p} not read in a minute"
        );
        let m = match events.get_first_raw_message_by_subject(&subject, next).await {
            Ok(m) => m,
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return out,
            Err(_) => {
                // A leader election: ask again.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let batch = weiquan_cluster::Stamp::read_batch(&m.payload).expect("a batch of the front door's");
        if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
            let lines: Vec<&str> = batch.iter().map(|(_, line)| *line).collect();
            out.push((m.sequence, first.0.index, last.0.index, lines.join("\n")));
        }
        next = m.sequence + 1;
    }
}

/// `weiquan cluster route` arguments for cluster `name` at `url` with
/// `partitions` partitions, then `rest`.
fn route_args(url: &str, name: &str, partitions: &str, rest: &[&str]) -> Vec<String> {
    let head = [
        "cluster",
        "--nats",
        url,
        "--cluster",
        name,
        "route",
        "--partitions",
        partitions,
    ];
    head.iter().chain(rest).map(|s| s.to_string()).collect()
}

/// `weiquan cluster` arguments for cluster `name` at `url`, sealed with `secret`, then `rest`.
fn cli<'a>(url: &'a str, name: &'a str, secret: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["cluster", "--nats", url, "--cluster", name, "--secret-file", secret];
    args.extend_from_slice(rest);
    args
}

/// The README's example: `cluster route`, `cluster work`, `cluster status`
/// and `cluster findings` as commands, on the NATS at 127.0.0.1:4222,
/// print what `weiquan audit` prints for the presale case.
#[test]
fn the_cluster_commands_print_what_audit_prints() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let name = weiquan_testkit::unique("cli");
    let url = "nats://127.0.0.1:4222";
    let case = "tests/cases/presale/events.ndjson";
    // A sealed cluster: every command gets the secret.
    let secret = dir.path().join("secret");
    std::fs::write(&secret, b"a secret of more than sixteen bytes").expect("secret written");
    let secret = secret.to_str().expect("UTF-8 path");
    let short = dir.path().join("short");
    std::fs::write(&short, b"too short").expect("written");
    let refused = super::weiquan(
        &["cluster", "--secret-file", short.to_str().expect("UTF-8"), "status"],
        None,
    );
    assert_eq!(refused.status.code(), Some(2), "a short secret is a usage error");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("at least 16 random bytes"));
    // An event whose line has no canonical JSON form is accepted like any
    // other (spec: extra fields never reject); the logs hold a stand-in.
    let odd = dir.path().join("odd.ndjson");
    std::fs::write(
        &odd,
        "{\"v\": 1, \"id\": \"odd\", \"type\": \"clock.tick\", \"at\": \"2026-11-01T00:00:00+08:00\", \"x\": 1e400}\n",
    )
    .expect("written");
    let odd = odd.to_str().expect("UTF-8 path");
    // A pre-sale handed to a merchant of another partition: the door moves
    // that merchant, and the partitions concerned rebuild.
    let handed = &handed_file(dir.path());
    // The door saves its routing state every 4 events.
    let route_args = cli(
        url,
        &name,
        secret,
        &["route", "--partitions", "4", "--snapshot-every", "4", case, odd, handed],
    );
    let route = super::weiquan(&route_args, None);
    assert!(route.status.success(), "{}", String::from_utf8_lossy(&route.stderr));
    let summary = String::from_utf8_lossy(&route.stderr);
    assert!(
        summary.contains("into 4 partitions; 0 lines rejected; 1 merchant groups moved and 0 subject groups spread"),
        "{summary}"
    );
    let again = super::weiquan(&route_args, None);
    assert_eq!(again.status.code(), Some(1), "a second door is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has a front door"));
    // Taking over with another input is refused where the snapshot's last event should be.
    let resume = |files: &[&str]| {
        let mut args = cli(url, &name, secret, &["route", "--partitions", "4", "--resume"]);
        args.extend_from_slice(files);
        super::weiquan(&args, None)
    };
    let wrong = resume(&[handed, case, odd]);
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{said}");
    assert!(said.contains("which the door's snapshot routed there"), "{said}");
    // Taking over with the same input starts from the snapshot and sends
    // nothing twice (the findings below stay audit's).
    let resumed = resume(&[case, odd, handed]);
    let said = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{said}");
    assert!(
        said.contains("of them before the door's snapshot, not read again"),
        "{said}"
    );
    // What the door sent itself is said apart from what the partitions held: its
    // clock advance to each of the 4 partitions, and no event again.
    assert!(
        said.contains(", 4 of them sent by this door, the rest held already"),
        "{said}"
    );

    let (key, public) = log_key(dir.path());
    let ledgers = dir.path().join("ledgers");
    let ledgers = ledgers.to_str().expect("UTF-8 path");
    let half = super::weiquan(
        &cli(url, &name, secret, &["--logs", ledgers, "work", "--name", "x"]),
        None,
    );
    assert_eq!(half.status.code(), Some(2), "--logs without --log-key is a usage error");
    assert!(String::from_utf8_lossy(&half.stderr).contains("--logs needs --log-key"));
    let _worker = worker(
        url,
        &name,
        "solo",
        dir.path(),
        &[
            "--secret-file",
            secret,
            "--logs",
            ledgers,
            "--log-key",
            &key,
            "--top-every-ms",
            "100",
        ],
    );
    let started = Instant::now();
    loop {
        let status = super::weiquan(&["cluster", "--nats", url, "--cluster", &name, "status"], None);
        let text = String::from_utf8_lossy(&status.stdout).into_owned();
        // Every partition owned by the worker and applied to what was routed
        // (none at index 0: each got at least the final advance).
        let lines: Vec<&str> = text.lines().collect();
        let rows = &lines[1.min(lines.len())..lines.len().saturating_sub(1)];
        if lines.last() == Some(&"caught up")
            && rows.len() == 4
            && rows.iter().all(|r| r.ends_with("\tsolo") && !r.contains("\t0\t"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "status never showed the work done:\n{text}\n{}",
            logs_of(dir.path(), "solo")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let findings = |secret: &str| super::weiquan(&cli(url, &name, secret, &["findings", "--lang", "en"]), None);
    let found = findings(secret);
    let other = dir.path().join("other");
    std::fs::write(&other, b"another secret of sixteen bytes").expect("written");
    let forged = findings(other.to_str().expect("UTF-8"));
    assert_eq!(
        forged.status.code(),
        Some(1),
        "findings under another secret are refused"
    );
    assert!(String::from_utf8_lossy(&forged.stderr).contains("without this cluster's seal"));
    let audit = super::weiquan(&["audit", case, odd, handed, "--lang", "en"], None);
    assert!(!sorted(&audit.stdout).is_empty());
    assert_eq!(sorted(&found.stdout), sorted(&audit.stdout));

    // The logs verify once the top log has recorded them; a leaf's receipt
    // verifies, and fails once altered.
    let verify = || {
        super::weiquan(
            &[
                "verify",
                "cluster",
                "--logs",
                ledgers,
                "--cluster",
                &name,
                "--pub",
                &public,
            ],
            None,
        )
    };
    let started = Instant::now();
    let report = loop {
        let out = verify();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let committed = |line: &str| {
            let n: Vec<&str> = line.split_whitespace().collect();
            n.get(3)
                .is_some_and(|rehashed| line.ends_with(&format!("{rehashed} leaves committed by the top log")))
        };
        let parts: Vec<&str> = text.lines().filter(|l| l.starts_with("valid: partition")).collect();
        if out.status.success() && parts.len() == 4 && parts.iter().all(|l| committed(l)) {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the logs never verified whole: {text}{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            logs_of(dir.path(), "solo")
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(report.starts_with("valid: the top log"), "{report}");
    // A finding's place in the logs, from `findings --leaves`, and its receipt.
    let placed = super::weiquan(&cli(url, &name, secret, &["findings", "--leaves"]), None);
    let placed = super::ndjson(&placed.stdout);
    let first = placed.first().expect("findings");
    let (partition, leaf) = (first["partition"].to_string(), first["leaf"].to_string());
    let receipt_cmd = |partition: &str, leaf: &str, reveal: bool| {
        let mut args = vec![
            "cluster",
            "--cluster",
            &name,
            "--logs",
            ledgers,
            "receipt",
            partition,
            leaf,
        ];
        if reveal {
            args.push("--reveal");
        }
        super::weiquan(&args, None)
    };
    let receipt = receipt_cmd(&partition, &leaf, false);
    assert!(receipt.status.success(), "{}", String::from_utf8_lossy(&receipt.stderr));
    let body: serde_json::Value = serde_json::from_slice(&receipt.stdout).expect("JSON");
    let kept_top = body["top"]["checkpoint"].as_str().expect("a top checkpoint").to_owned();
    let logged: serde_json::Value = serde_json::from_str(body["leaf"].as_str().expect("a leaf")).expect("JSON");
    assert_eq!(logged["type"], "weiquan.finding", "the receipt's leaf is a finding");
    assert_eq!(logged["rule"], first["rule"], "the receipt's leaf is the finding");
    let file = dir.path().join("receipt.json");
    std::fs::write(&file, &receipt.stdout).expect("written");
    let file = file.to_str().expect("UTF-8 path");
    let checked = super::weiquan(&["verify", "cluster-receipt", file, "--pub", &public], None);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(String::from_utf8_lossy(&checked.stdout)
        .starts_with(&format!("valid: leaf {leaf} of partition {partition} (a finding)")));
    let mut altered = body.clone();
    let rule = format!("\"rule\":{}", first["rule"]);
    let text = altered["leaf"]
        .as_str()
        .expect("a leaf")
        .replace(&rule, "\"rule\":\"XX-99\"");
    assert_ne!(altered["leaf"].as_str(), Some(text.as_str()), "the rule was altered");
    altered["leaf"] = serde_json::Value::String(text);
    std::fs::write(file, altered.to_string()).expect("written");
    let checked = super::weiquan(&["verify", "cluster-receipt", file, "--pub", &public], None);
    assert_eq!(checked.status.code(), Some(3), "an altered leaf is not valid");

    // A consumer's deposit: its receipt reveals the consumer on request only,
    // and the values it reveals must open the leaf's commitments.
    let receipt_of = |partition: u32, leaf: u64, reveal: bool| {
        let out = receipt_cmd(&partition.to_string(), &leaf.to_string(), reveal);
        out.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON"))
    };
    // Every leaf about u2, in every partition (a merchant moved: its events
    // are in the log of each partition that applied them).
    let about_u2 = |reveal: bool| {
        let mut found = Vec::new();
        for p in 0..4 {
            for leaf in 0.. {
                let Some(body) = receipt_of(p, leaf, reveal) else { break };
                if body["private"]["values"]["consumer"] == "u2" {
                    found.push((p, leaf, body));
                }
            }
        }
        found
    };
    let of_u2 = about_u2(true);
    let (p, leaf, body) = of_u2
        .first()
        .cloned()
        .expect("a leaf about u2 whose receipt reveals it");
    assert!(!body["leaf"].as_str().expect("a leaf").contains("\"u2\""), "{body}");
    assert!(receipt_of(p, leaf, false).expect("a receipt").get("private").is_none());
    std::fs::write(file, body.to_string()).expect("written");
    let checked = super::weiquan(&["verify", "cluster-receipt", file, "--pub", &public], None);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(
        said.contains("valid: its salted consumer opened with the receipt's salt"),
        "{said}"
    );
    let mut forged = body.clone();
    forged["private"]["values"]["consumer"] = "u3".into();
    std::fs::write(file, forged.to_string()).expect("written");
    let checked = super::weiquan(&["verify", "cluster-receipt", file, "--pub", &public], None);
    assert_eq!(checked.status.code(), Some(3), "values that do not open the leaf");
    assert!(String::from_utf8_lossy(&checked.stderr).contains("do not open the leaf"));

    // Erasure: nothing left to reveal, and the logs still verify.
    let erase = || {
        let args = [
            "cluster",
            "--cluster",
            &name,
            "--logs",
            ledgers,
            "erase",
            "--consumer",
            "u2",
        ];
        let out = super::weiquan(&args, None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = erase();
    let erased = format!(
        "erased the salts and values of {} leaves about consumer u2",
        of_u2.len()
    );
    assert!(said.starts_with(&erased), "{said}");
    assert!(erase().starts_with("nothing to erase"));
    assert!(about_u2(true).is_empty(), "nothing about u2 left to reveal");
    let body = receipt_of(p, leaf, true).expect("a receipt");
    assert!(body.get("private").is_none(), "erased: {body}");
    let told = receipt_cmd(&p.to_string(), &leaf.to_string(), true);
    let said = String::from_utf8_lossy(&told.stderr);
    assert!(
        told.status.success() && said.contains("nothing to reveal: its salt and values were erased"),
        "{:?} {said}",
        told.status
    );
    let out = verify();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    the_logs_are_served_to_anyone(&name, ledgers, &public, 4, &["u1", "u2", "u3"], &kept_top);
}

/// `cluster serve-logs` over HTTP, as an outsider reads it: the logs it
/// lists, each partition's checkpoint (signed with the cluster's key), and
/// tiles whose leaves hash to that checkpoint's root and hold none of
/// `consumers`; and what it refuses (logs it does not have, other spellings,
/// paths that are no tile, writes).
fn the_logs_are_served_to_anyone(
    name: &str,
    ledgers: &str,
    public: &str,
    partitions: u32,
    consumers: &[&str],
    kept_top: &str,
) {
    use std::io::{BufRead, BufReader};
    // Another cluster's name (or another folder): refused at once, not a 404 on every path.
    let args = [
        "cluster",
        "--cluster",
        "no-such",
        "--logs",
        ledgers,
        "serve-logs",
        "--listen",
        "127.0.0.1:0",
    ];
    let wrong = super::weiquan(&args, None);
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{said}");
    assert!(said.contains("does not exist: are --logs and --cluster"), "{said}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_weiquan"))
        .args([
            "cluster",
            "--cluster",
            name,
            "--logs",
            ledgers,
            "serve-logs",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve-logs starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let _server = Proc(child);
    let base = loop {
        let line = lines.next().expect("serve-logs printed its address").expect("UTF-8");
        if let Some(rest) = line.split(" on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .expect("a URL")
                .trim_end_matches('/')
                .to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let get = |url: &str| super::http_bytes("GET", url, None, None);
    let verifier = std::fs::read_to_string(public).expect("the public key");
    let verifier = weiquan_ledger::load_verifier(&verifier).expect("a verifier");

    let (status, index) = get(&format!("{base}/"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&index));
    let index: serde_json::Value = serde_json::from_slice(&index).expect("JSON");
    let names: Vec<&str> = (index["logs"].as_array().expect("logs").iter())
        .map(|l| l["name"].as_str().expect("a name"))
        .collect();
    let expected: Vec<String> = std::iter::once("top".to_owned())
        .chain((0..partitions).map(|p| format!("p{p}")))
        .collect();
    assert_eq!(names, expected);
    for log in expected {
        let (status, note) = get(&format!("{base}/{log}/checkpoint"));
        assert_eq!(status, 200, "{log}: {}", String::from_utf8_lossy(&note));
        let cp = weiquan_ledger::open_checkpoint(&note, &verifier, "served").expect("signed with the cluster's key");
        assert!(cp.origin.ends_with(&format!("/{log}")), "{}", cp.origin);
        assert!(cp.size > 0 && cp.size <= 256, "{log}: {} leaves, one tile", cp.size);
        let (status, entries) = get(&format!("{base}/{log}/tile/entries/000.p/{}", cp.size));
        assert_eq!(status, 200);
        let (status, hashes) = get(&format!("{base}/{log}/tile/0/000.p/{}", cp.size));
        assert_eq!(status, 200);
        // An entry bundle: each leaf after its length, two bytes big-endian.
        let mut tree = weiquan_ledger::Frontier::new();
        let mut leaf_hashes = Vec::new();
        for leaf in weiquan_ledger::bundle_entries(&entries).expect("a whole entry bundle") {
            let text = String::from_utf8_lossy(leaf);
            for c in consumers {
                assert!(
                    !text.contains(&format!("\"{c}\"")),
                    "{log}: `{c}` in a served leaf: {text}"
                );
            }
            tree.append(leaf);
            leaf_hashes.extend_from_slice(&weiquan_ledger::record_hash(leaf).0);
        }
        assert_eq!(tree.size(), cp.size, "{log}: one entry per leaf");
        assert_eq!(tree.root(), cp.root, "{log}: the served leaves are the signed tree");
        assert_eq!(hashes, leaf_hashes, "{log}: the level-0 tile holds the leaves' hashes");
    }
    for (path, status) in [
        (format!("/p{partitions}/checkpoint"), 404),
        ("/p00/checkpoint".to_owned(), 404),
        ("/p-1/checkpoint".to_owned(), 404),
        ("/wq_x/checkpoint".to_owned(), 404),
        ("/p0/tile/9/000".to_owned(), 404),
        ("/p0/tile/0/x".to_owned(), 404),
        ("/p0/tile/0/999".to_owned(), 404),
        ("/top".to_owned(), 404),
        ("POST /p0/checkpoint".to_owned(), 405),
    ] {
        let (got, body) = match path.strip_prefix("POST ") {
            Some(p) => super::http_bytes("POST", &format!("{base}{p}"), None, None),
            None => get(&format!("{base}{path}")),
        };
        assert_eq!(got, status, "{path}: {}", String::from_utf8_lossy(&body));
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("a problem document");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(!detail.is_empty() && !detail.contains(ledgers), "{path}: {problem}");
    }

    // A monitor with the key alone: every served leaf hashed again.
    let tiles = |url: &str, key: &str, since: Option<&str>| {
        let mut args = vec!["verify", "cluster-tiles", url, "--pub", key];
        if let Some(since) = since {
            args.extend(["--since", since]);
        }
        super::weiquan(&args, None)
    };
    let checked = tiles(&base, public, None);
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        said.starts_with(&format!("valid: the top log of cluster {name} (")),
        "{said}"
    );
    assert_eq!(
        said.lines().filter(|l| l.starts_with("valid: partition")).count(),
        partitions as usize,
        "{said}"
    );
    assert!(!said.contains("as received"), "{said}");
    let dir = tempfile::tempdir().expect("temp dir");
    let kept = dir.path().join("top.cp");
    std::fs::write(&kept, kept_top).expect("written");
    let kept = kept.to_str().expect("UTF-8 path");
    assert!(
        tiles(&base, public, Some(kept)).status.success(),
        "the top log extends a checkpoint kept earlier"
    );
    // A kept checkpoint that is not a checkpoint, or not one this key
    // signed, is the caller's to fix (exit 2), for either check of the logs.
    let mut lines: Vec<String> = kept_top.lines().map(str::to_owned).collect();
    lines[1] = (lines[1].parse::<u64>().expect("a checkpoint's size") + 1).to_string();
    for (what, text) in [
        ("not a checkpoint", "a note\n".to_owned()),
        ("altered", lines.join("\n") + "\n"),
    ] {
        let bad = dir.path().join("bad.cp");
        std::fs::write(&bad, text).expect("written");
        let bad = bad.to_str().expect("UTF-8 path");
        let in_place = [
            "verify",
            "cluster",
            "--logs",
            ledgers,
            "--cluster",
            name,
            "--pub",
            public,
            "--since",
            bad,
        ];
        for out in [tiles(&base, public, Some(bad)), super::weiquan(&in_place, None)] {
            let said = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{what}: {said}");
            assert!(
                said.contains(bad) && said.contains("signed with the key given with --pub"),
                "{what}: {said}"
            );
        }
    }
    let (_, other_public) = log_key(dir.path());
    let wrong = tiles(&base, &other_public, None);
    assert_eq!(
        wrong.status.code(),
        Some(3),
        "another key: {}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let nothing = tiles("http://127.0.0.1:1", public, None);
    assert_eq!(
        nothing.status.code(),
        Some(1),
        "nothing served: {}",
        String::from_utf8_lossy(&nothing.stderr)
    );
    let elsewhere = tiles(&format!("{base}/p0"), public, None);
    assert_eq!(
        elsewhere.status.code(),
        Some(1),
        "no log server there: {}",
        String::from_utf8_lossy(&elsewhere.stderr)
    );
}

/// The front door on a platform's NATS subject (`route --subject`): it reads
/// the subject's JetStream stream from its first message, stops at its end
/// with `--until-caught-up`, and otherwise follows it until SIGTERM, making
/// what it routed durable whenever the platform is quiet. A second door takes
/// over with `--resume`; the workers then find what `audit` finds in every
/// line the platform published, and a line that is no event is rejected by
/// its message.
#[test]
fn a_door_on_a_nats_subject_routes_what_the_platform_publishes() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let name = weiquan_testkit::unique("subject");
    let subject = format!("platform.{name}");
    let url = "nats://127.0.0.1:4222";
    let case = "tests/cases/presale/events.ndjson";
    let text = std::fs::read_to_string(super::root().join(case)).expect("the case");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let (first, rest) = lines.split_at(lines.len() / 2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (js, _) = rt.block_on(platform_stream(url, &subject));
    let publish = |body: String| {
        rt.block_on(async {
            let ack = js.publish(subject.clone(), body.into()).await.expect("published");
            ack.await.expect("stored");
        })
    };
    let route = |rest: &[&str]| route_args(url, &name, "3", rest);
    // An empty stream: caught up at once.
    let empty = route(&["--subject", &subject, "--until-caught-up"]);
    let empty: Vec<&str> = empty.iter().map(String::as_str).collect();
    let out = super::weiquan(&empty, None);
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && summary.contains("routed 0 events"), "{summary}");
    // The first half as one NDJSON message; the door stops at its end,
    // having saved its state after that message.
    publish(first.join("\n"));
    let caught_up = route(&[
        "--subject",
        &subject,
        "--until-caught-up",
        "--resume",
        "--snapshot-every",
        "1",
    ]);
    let caught_up: Vec<&str> = caught_up.iter().map(String::as_str).collect();
    let out = super::weiquan(&caught_up, None);
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{summary}");
    assert!(
        summary.contains(&format!("routed {} events", first.len())) && summary.contains("0 lines rejected"),
        "{summary}"
    );
    let files = super::weiquan(
        &["cluster", "--cluster", &name, "route", "--until-caught-up", case],
        None,
    );
    assert_eq!(
        files.status.code(),
        Some(2),
        "--until-caught-up reads a subject, not files"
    );

    // A door that follows the stream, taking over from the first, its
    // messages parsed on two threads beside the routing one.
    let live = route(&["--subject", &subject, "--resume", "--parse-threads", "2"]);
    let log = dir.path().join("door.log");
    let door = std::process::Command::new(env!("CARGO_BIN_EXE_weiquan"))
        .args(&live)
        .stdout(std::process::Stdio::null())
        .stderr(weiquan_testkit::process::log_file(&log))
        .spawn()
        .expect("the door runs");
    let door = Proc(door);
    let _worker = worker(url, &name, "solo", dir.path(), &[]);
    // The rest one message a line, and a line that is no event.
    for line in rest {
        publish((*line).to_owned());
    }
    publish("{\"v\": 1, \"id\": \"bad\"}".into());
    await_audit(url, &name, &[case], || {
        format!(
            "door:\n{}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            logs_of(dir.path(), "solo")
        )
    });
    // SIGTERM: the door finishes and says what it routed.
    let pid = door.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut door = door;
    let status = door.0.wait().expect("the door exits");
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{status}: {said}");
    assert!(
        said.contains(&format!(
            "routed {} events ({} of them before the door's snapshot, not read again)",
            lines.len(),
            first.len()
        )) && said.contains("1 lines rejected"),
        "the door went on from its snapshot, the bad line rejected: {said}"
    );
    assert!(
        said.contains(&format!("\"file\":\"{subject} (message")),
        "the reject names its message: {said}"
    );
}

/// Waits (a minute at most) until `weiquan cluster findings` of cluster
/// `name` prints what `weiquan audit` prints for `files`; fails with `logs()`.
fn await_audit(url: &str, name: &str, files: &[&str], logs: impl Fn() -> String) {
    let mut args = vec!["audit", "--lang", "en"];
    args.extend_from_slice(files);
    let want = sorted(&super::weiquan(&args, None).stdout);
    assert!(!want.is_empty());
    let started = Instant::now();
    loop {
        let found = super::weiquan(
            &["cluster", "--nats", url, "--cluster", name, "findings", "--lang", "en"],
            None,
        );
        if sorted(&found.stdout) == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the workers never found what audit finds:\n{}\n{}",
            String::from_utf8_lossy(&found.stdout),
            logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Four doors, one partition each (`route --shard K/4`), send what one door
/// sends: the workers find what `audit` finds, a move included. The door of
/// the partition a merchant moves out of starts last, and the door of the
/// partition it moves to waits for it before it sends its rebuild marker
/// (the `moves` tests of `weiquan-cluster` show what goes wrong without
/// that wait). Doors that should not start are refused, and two doors of
/// another sharding take over from the four without sending anything twice.
#[test]
fn doors_in_shards_send_what_one_door_sends() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let name = weiquan_testkit::unique("shards");
    let url = "nats://127.0.0.1:4222";
    let case = "tests/cases/presale/events.ndjson";
    let handed = &handed_file(dir.path());
    // `handed_over` moves merchant B's partition into A's.
    let [a, b, _] = weiquan_testkit::streams::handed_over_merchants(4);
    let (to, from) = (
        weiquan_testkit::streams::partition_of(&a, 4),
        weiquan_testkit::streams::partition_of(&b, 4),
    );
    let route = |rest: &[&str]| route_args(url, &name, "4", rest);
    let door = |k: u32| {
        let shard = format!("{k}/4");
        let log = dir.path().join(format!("door{k}.log"));
        // Doors parse on 0 to 3 threads beside the routing one: all alike.
        let threads = k.to_string();
        let child = Command::new(env!("CARGO_BIN_EXE_weiquan"))
            .args(route(&["--shard", &shard, "--parse-threads", &threads, case, handed]))
            .current_dir(super::root())
            .stdout(Stdio::null())
            .stderr(log_file(&log))
            .spawn()
            .expect("the door runs");
        (Proc(child), log)
    };
    let mut doors: Vec<_> = (0..4).filter(|&k| k != from).map(|k| (k, door(k))).collect();
    std::thread::sleep(Duration::from_secs(2));
    let waiting = doors
        .iter_mut()
        .find(|(k, _)| *k == to)
        .expect("the door of the partition moved to");
    assert_eq!(
        waiting.1 .0 .0.try_wait().expect("a door's status"),
        None,
        "door {to} waits for door {from} before the rebuild: {}",
        std::fs::read_to_string(&waiting.1 .1).unwrap_or_default()
    );
    doors.push((from, door(from)));
    for (k, (mut proc, log)) in doors {
        let status = proc.0.wait().expect("the door exits");
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(status.success(), "door {k}: {status}: {said}");
        assert!(
            said.contains(&format!("into 1 of 4 partitions (door {k}/4)")) && said.contains("1 merchant groups moved"),
            "door {k}: {said}"
        );
    }

    // Doors that should not start.
    let refused = |rest: &[&str], code: i32, says: &str| {
        let args = route(rest);
        let out = super::weiquan(&args.iter().map(String::as_str).collect::<Vec<_>>(), None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{rest:?}: {err}");
        assert!(err.contains(says), "{rest:?}: {err}");
    };
    refused(&["--shard", "1/4", case], 1, "already has a front door for partition 1");
    refused(&["--shard", "4/4", case], 2, "must be below the number of doors");
    refused(&["--shard", "0/0", case], 2, "must be at least 1");
    refused(&["--shard", "0/5", case], 2, "fewer than the doors");
    refused(&["--shard", "one", case], 2, "write K/N");
    refused(
        &["--shard", "0/2", "--subject", "platform.x", "--until-caught-up"],
        2,
        "cannot be given to doors in shards",
    );

    let _worker = worker(url, &name, "solo", dir.path(), &[]);
    let door_logs = || {
        (0..4)
            .map(|k| std::fs::read_to_string(dir.path().join(format!("door{k}.log"))).unwrap_or_default())
            .collect::<String>()
    };
    let all_logs = || format!("{}\n{}", door_logs(), logs_of(dir.path(), "solo"));
    await_audit(url, &name, &[case, handed], all_logs);
    // Two doors of two shards take over from the four: each partition gets
    // one stamp more (the last advance), nothing twice.
    let routed = |name: &str| -> Vec<u64> {
        let out = super::weiquan(&["cluster", "--nats", url, "--cluster", name, "status"], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let rows = text.lines().filter_map(|row| row.split('\t').nth(2)?.parse().ok());
        rows.collect()
    };
    let before = routed(&name);
    assert_eq!(before.len(), 4, "status shows every partition");
    for shard in ["1/2", "0/2"] {
        let args = route(&["--resume", "--shard", shard, case, handed]);
        let out = super::weiquan(&args.iter().map(String::as_str).collect::<Vec<_>>(), None);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let after: Vec<u64> = before.iter().map(|r| r + 1).collect();
    assert_eq!(routed(&name), after, "one advance more each");
    await_audit(url, &name, &[case, handed], all_logs);

    // Doors starting with another number of doors than those running are
    // refused, and give back what they claimed.
    let other = weiquan_testkit::unique("layout");
    let door_of = |shard: &str| {
        let args = route_args(url, &other, "4", &["--shard", shard, case]);
        super::weiquan(&args.iter().map(String::as_str).collect::<Vec<_>>(), None)
    };
    assert!(door_of("1/4").status.success());
    let mixed = door_of("0/2");
    let said = String::from_utf8_lossy(&mixed.stderr);
    assert_eq!(mixed.status.code(), Some(1), "{said}");
    assert!(said.contains("partition 1 has a door of 4 doors"), "{said}");
    let given_back = door_of("0/4");
    assert!(
        given_back.status.success(),
        "{}",
        String::from_utf8_lossy(&given_back.stderr)
    );
}

/// A door of two on a platform's subject waits at a move for the other
/// door, which never comes; SIGTERM still stops it, saying where.
#[test]
fn a_door_waiting_for_another_stops_on_sigterm() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let url = "nats://127.0.0.1:4222";
    let name = weiquan_testkit::unique("waits");
    let subject = format!("platform.{name}");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (js, _) = platform_stream(url, &subject).await;
        let handed = weiquan_testkit::streams::handed_over(4).join("\n");
        js.publish(subject.clone(), handed.into())
            .await
            .expect("published")
            .await
            .expect("stored");
    });
    // The door of the partition the merchant moves to.
    let [a, _, _] = weiquan_testkit::streams::handed_over_merchants(4);
    let shard = format!("{}/2", weiquan_testkit::streams::partition_of(&a, 4) % 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("door.log");
    let door = Command::new(env!("CARGO_BIN_EXE_weiquan"))
        .args(route_args(url, &name, "4", &["--shard", &shard, "--subject", &subject]))
        .stdout(Stdio::null())
        .stderr(log_file(&log))
        .spawn()
        .expect("the door runs");
    let mut door = Proc(door);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(door.0.try_wait().expect("a status"), None, "the door waits");
    let killed = Command::new("kill")
        .args(["-TERM", &door.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = door.0.try_wait().expect("a status") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "SIGTERM did not stop the door"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(
        said.contains("stopped by a signal while routing message 1") && said.contains("route --resume"),
        "{said}"
    );
}

/// A door refuses a platform stream that lost its first messages (an age
/// limit, a purge): its routing state would miss them, and so would the
/// partitions.
#[test]
fn a_door_refuses_a_stream_that_lost_its_first_messages() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let url = "nats://127.0.0.1:4222";
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // A stream of three ticks with message `deleted` deleted: the door's answer.
    let door_on = |deleted: u64| {
        let name = weiquan_testkit::unique("cut");
        let subject = format!("platform.{name}");
        rt.block_on(async {
            let (js, stream) = platform_stream(url, &subject).await;
            for at in ["00", "01", "02"] {
                let tick = format!(r#"{{"v":1,"id":"t{at}","type":"clock.tick","at":"2026-11-01T{at}:00:00+08:00"}}"#);
                js.publish(subject.clone(), tick.into())
                    .await
                    .expect("published")
                    .await
                    .expect("stored");
            }
            stream.delete_message(deleted).await.expect("a message deleted");
        });
        super::weiquan(
            &[
                "cluster",
                "--nats",
                url,
                "--cluster",
                &name,
                "route",
                "--subject",
                &subject,
                "--until-caught-up",
            ],
            None,
        )
    };
    let out = door_on(1);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("no longer holds the messages the door must read") && said.contains("starts at message 2"),
        "{said}"
    );
    // A gap further on is found as the door reads.
    let out = door_on(2);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("message 2 is missing (the next is 3)"), "{said}");
}

/// A door reading files on several threads (`route --parse-threads`) sends
/// what one door sends. Resumed from its snapshot after 12,288 lines, it
/// passes over them framed, not parsed, and still checks the snapshot's
/// last event where it was: another input is refused there.
#[test]
fn a_door_parsing_on_threads_resumes_past_lines_framed_only() {
    if !weiquan_testkit::services::nats_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let name = weiquan_testkit::unique("threads");
    let url = "nats://127.0.0.1:4222";
    let sim = weiquan_sim::simulate(&weiquan_sim::Config {
        merchants: 30,
        consumers: 900,
        days: 20,
        seed: 23,
        violation_rate: 0.4,
        profile: weiquan_sim::Profile::Double11,
        orders_per_day: 4.0,
    });
    // 14,000 events: the door saving every 4,096 saves last after event
    // 12,288; a door resumed from there gets the lines up to it framed only.
    assert!(sim.lines.len() >= 14_000, "{} events", sim.lines.len());
    let mut lines = sim.lines[..14_000].to_vec();
    let write = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("events written");
        path.to_str().expect("UTF-8 path").to_owned()
    };
    let file = write("events.ndjson", &lines);
    let run = |rest: &[&str]| {
        let args = route_args(url, &name, "4", rest);
        super::weiquan(&args.iter().map(String::as_str).collect::<Vec<_>>(), None)
    };
    let first = run(&["--parse-threads", "3", "--snapshot-every", "4096", &file]);
    let said = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{said}");
    assert!(
        said.contains("routed 14000 events") && said.contains("0 lines rejected"),
        "{said}"
    );
    // Line 12,288 holds another event: the door passes over the lines
    // up to it without parsing them, and refuses the input there (it
    // parses that line alone, framed only).
    lines.swap(12_287, 12_288);
    let other = write("other.ndjson", &lines);
    let refused = run(&["--resume", "--parse-threads", "2", &other]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(
        said.contains("line 12288 of") && said.contains("which the door's snapshot routed there"),
        "{said}"
    );
    let resumed = run(&["--resume", "--parse-threads", "2", &file]);
    let said = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{said}");
    assert!(
        said.contains("routed 14000 events (12288 of them before the door's snapshot, not read again)"),
        "{said}"
    );
    let _worker = worker(url, &name, "solo", dir.path(), &[]);
    await_audit(url, &name, &[&file], || logs_of(dir.path(), "solo"));
}
