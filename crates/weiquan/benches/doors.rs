//! Front doors in shards (`weiquan cluster route --shard K/N`) on a
//! three-node NATS JetStream cluster on this machine (R3, six partitions):
//! the time until every door of N has routed a simulated platform, for
//! N = 1, 2 and 3, and one door of a 1/6 shard alone (it reads and routes
//! the whole input but sends one partition of six: what a door costs when
//! the doors are many). Beside them, in the same rounds, `weiquan check` of
//! the same file: the parse floor every door pays for the whole input.
//! Each door's CPU time (user + system, from `/usr/bin/time`) is reported
//! too: on two shared cores, wall time cannot show N doors on N machines,
//! but CPU time per door shows what each of them would need.
//! Then a door's takeover (`route --resume`) after a door that routed the
//! whole file: from its snapshot (taken every 100,000 events), against
//! routing the input again from its start (no snapshot).
//! Then a door's reading alone, without NATS: the parse on the routing
//! thread against the parse on threads beside it (`--parse-threads`).
//! Each cluster is set up before its doors start (as an operator does, once).
//! Prints Markdown. `WEIQUAN_BENCH_DOORS_MERCHANTS` scales the stream
//! (default 600 merchants, about 680,000 events), `WEIQUAN_BENCH_DOORS_ROUNDS`
//! sets the rounds (default 3).

mod support;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weiquan_testkit::nats::NatsCluster;

const PARTITIONS: u32 = 6;

/// One contender: how many doors run at once, which shards they are, and
/// what else they are given.
struct Contender {
    label: &'static str,
    shards: Vec<String>,
    args: &'static [&'static str],
}

fn main() {
    let merchants: u32 = weiquan_testkit::setting("WEIQUAN_BENCH_DOORS_MERCHANTS", 600);
    let rounds = weiquan_testkit::setting("WEIQUAN_BENCH_DOORS_ROUNDS", 3usize).max(1);
    let dir = weiquan_testkit::root().join("bench-out/doors");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench-out/doors");
    let (file, events) = support::platform(&dir, merchants);
    let nats = NatsCluster::start(&dir);
    let shards = |of: u32| (0..of).map(|k| format!("{k}/{of}")).collect::<Vec<_>>();
    let contenders = [
        Contender {
            label: "1 door",
            shards: shards(1),
            args: &[],
        },
        Contender {
            label: "2 doors in shards, at once",
            shards: shards(2),
            args: &[],
        },
        Contender {
            label: "3 doors in shards, at once",
            shards: shards(3),
            args: &[],
        },
        Contender {
            label: "1 door of shard 0/6 alone (routes all, sends 1 partition of 6; `--parse-threads 1`, the default)",
            shards: vec!["0/6".into()],
            args: &[],
        },
        Contender {
            label: "the same, parsed on the routing thread (`--parse-threads 0`)",
            shards: vec!["0/6".into()],
            args: &["--parse-threads", "0"],
        },
        Contender {
            label: "the same, parsed on 2 threads (`--parse-threads 2`)",
            shards: vec!["0/6".into()],
            args: &["--parse-threads", "2"],
        },
    ];
    // A first door warms the cluster up (its streams' leaders, the disks); not counted.
    let pids = nats.pids();
    let _ = route(&nats.urls, &pids, &dir, &file, "warm-up", &shards(1), &[]);
    let mut times: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); contenders.len()];
    let mut floor = Vec::new();
    for round in 0..rounds {
        // The order turns each round: none always runs on a warmer cluster.
        for i in (0..contenders.len()).map(|i| (i + round) % contenders.len()) {
            let c = &contenders[i];
            times[i].push(route(
                &nats.urls,
                &pids,
                &dir,
                &file,
                &format!("r{round}-{i}"),
                &c.shards,
                c.args,
            ));
        }
        let started = Instant::now();
        let check = Command::new(env!("CARGO_BIN_EXE_weiquan"))
            .args(["check", &file])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("check runs");
        assert!(check.success());
        floor.push(started.elapsed().as_secs_f64());
    }
    println!(
        "{events} events, {PARTITIONS} partitions, R3 on 3 NATS servers (2.9), all on this machine; best and median of {rounds} rounds\n"
    );
    println!("| contender | best s | median s | events/s (best) | CPU s per door (median) | NATS servers' CPU s (median) | time ÷ 1 door's (best, median) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let (one_best, one_median) = stats(&times[0].iter().map(|t| t.0).collect::<Vec<_>>());
    for (c, t) in contenders.iter().zip(&times) {
        let (best, median) = stats(&t.iter().map(|t| t.0).collect::<Vec<_>>());
        let (_, cpu) = stats(&t.iter().map(|t| t.1).collect::<Vec<_>>());
        let (_, nats_cpu) = stats(&t.iter().map(|t| t.2).collect::<Vec<_>>());
        println!(
            "| {} | {best:.2} | {median:.2} | {:.0} | {cpu:.2} | {nats_cpu:.2} | {:.2}, {:.2} |",
            c.label,
            events as f64 / best,
            best / one_best,
            median / one_median
        );
    }
    let (best, median) = stats(&floor);
    println!(
        "| `weiquan check` (parse floor, one process) | {best:.2} | {median:.2} | {:.0} | {median:.2} | – | {:.2}, {:.2} |",
        events as f64 / best,
        best / one_best,
        median / one_median
    );

    reading(&file, events, rounds);

    // Takeovers: a door routed the whole file (saving its state every
    // 100,000 events, or never), then a door resumes with the same file.
    let mut takeovers: [Vec<f64>; 2] = Default::default();
    for round in 0..rounds {
        for (i, every) in ["100000", "0"].into_iter().enumerate() {
            let name = weiquan_testkit::unique(&format!("resume-{round}-{i}"));
            let run = |extra: &[&str]| {
                let started = Instant::now();
                let status = Command::new(env!("CARGO_BIN_EXE_weiquan"))
                    .args(["cluster", "--nats", &nats.urls, "--cluster", &name, "route", &file])
                    .args(["--partitions", &PARTITIONS.to_string(), "--replicas", "3"])
                    .args(extra)
                    .stdout(Stdio::null())
                    .stderr(weiquan_testkit::process::log_file(&dir.join(format!("{name}.log"))))
                    .status()
                    .expect("the door runs");
                assert!(status.success(), "{name} failed: see {}", dir.display());
                started.elapsed().as_secs_f64()
            };
            run(&["--snapshot-every", every]);
            takeovers[i].push(run(&["--resume"]));
        }
    }
    println!("\n| takeover (`route --resume`, same file) | best s | median s |");
    println!("|---|---:|---:|");
    for (label, t) in ["from the door's snapshot", "from the start (no snapshot)"]
        .iter()
        .zip(&takeovers)
    {
        let (best, median) = stats(t);
        println!("| {label} | {best:.2} | {median:.2} |");
    }
}

/// CPU seconds (user + system) the processes `pids` have used so far.
fn cpu_of(pids: &[u32]) -> f64 {
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command's name, which ends with ')': utime and stime are the 12th and 13th.
            let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some(rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    ticks as f64 / 100.0 // USER_HZ, 100 on Linux
}

/// Routes `file` into a new cluster with one door per shard, all at once:
/// the wall time until the last ends, the median door's CPU seconds, and
/// the NATS servers' (`nats`) CPU seconds meanwhile.
fn route(
    urls: &str,
    nats: &[u32],
    dir: &std::path::Path,
    file: &str,
    run: &str,
    shards: &[String],
    args: &[&str],
) -> (f64, f64, f64) {
    let name = weiquan_testkit::unique(&format!("doors-{run}"));
    // The cluster's streams and buckets first, as an operator sets a
    // cluster up once: doors creating the same R3 streams at the same
    // moment wait on each other for seconds (seen: one door of two ~8 s
    // later), which is set-up, not routing.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(weiquan_cluster::Cluster::set_up_when_ready(
            urls,
            &name,
            PARTITIONS,
            3,
            Duration::from_secs(60),
        ))
        .expect("the cluster set up");
    let nats_before = cpu_of(nats);
    let started = Instant::now();
    let doors: Vec<(Child, std::path::PathBuf)> = shards
        .iter()
        .enumerate()
        .map(|(k, shard)| {
            let cpu = dir.join(format!("{name}-{k}.cpu"));
            let child = Command::new("/usr/bin/time")
                .args(["-f", "%U %S", "-o"])
                .arg(&cpu)
                .arg(env!("CARGO_BIN_EXE_weiquan"))
                .args(["cluster", "--nats", urls, "--cluster", &name, "route", file])
                .args([
                    "--partitions",
                    &PARTITIONS.to_string(),
                    "--replicas",
                    "3",
                    "--shard",
                    shard,
                ])
                .args(args)
                .stdout(Stdio::null())
                .stderr(weiquan_testkit::process::log_file(&dir.join(format!("{name}-{k}.log"))))
                .spawn()
                .expect("/usr/bin/time and the door run (apt install time)");
            (child, cpu)
        })
        .collect();
    let mut cpu = Vec::new();
    for (k, (mut child, file)) in doors.into_iter().enumerate() {
        let status = child.wait().expect("the door ends");
        assert!(status.success(), "door {k} of {run} failed: see {}", dir.display());
        let text = std::fs::read_to_string(&file).expect("/usr/bin/time's output");
        // The last line: a failing command's status comes first.
        let secs: f64 = (text.lines().last().unwrap_or_default().split_whitespace())
            .filter_map(|s| s.parse::<f64>().ok())
            .sum();
        cpu.push(secs);
    }
    let wall = started.elapsed();
    assert!(wall < Duration::from_secs(1800), "{run} took {wall:?}");
    cpu.sort_by(f64::total_cmp);
    (wall.as_secs_f64(), cpu[cpu.len() / 2], cpu_of(nats) - nats_before)
}

/// A door's reading alone, in this process and without NATS: every line of
/// `file` framed, parsed and routed by a `Router` (what a door does for
/// every input event before it sends anything), with the parse on the
/// routing thread (as a door did before `--parse-threads`), and on 1, 2
/// and 3 threads beside it (`weiquan_app::ParsedInputs`, which the door
/// uses); and the framing alone. Prints a Markdown table of the best and
/// median of `rounds`.
fn reading(file: &str, events: usize, rounds: usize) {
    use weiquan_events::{parse_event, Event, Line, LineReader};
    // What the door's routing thread does with each event, short of sending it.
    fn route(router: &mut weiquan_partition::Router, ev: &Event<'_>) -> u64 {
        let (route, owner) = router.route_owned(ev);
        let copies = router.take_copies().len();
        let moved = router.take_moves().len() + usize::from(router.take_spread());
        let of = router.owner_merchant(owner).map_or(0, str::len);
        (copies + moved + of) as u64 + u64::from(route == weiquan_partition::Route::All)
    }
    let open = || std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(file).expect("the events"));
    // The same events as a platform's stream of one event a message, all
    // arrived (taken from memory: the NATS side is not measured here).
    let text = std::fs::read_to_string(file).expect("the events");
    let messages: Vec<String> = text.lines().map(str::to_owned).collect();
    let contenders = [
        ("parsed on the routing thread, read there too", Reading::Inline),
        (
            "framed on a thread, parsed on the routing one (`--parse-threads 0`)",
            Reading::Files(0, 0),
        ),
        (
            "1 thread frames and parses, beside the routing one",
            Reading::Files(1, 0),
        ),
        ("1 frames, 2 parse", Reading::Files(2, 0)),
        ("1 frames, 3 parse", Reading::Files(3, 0)),
        (
            "a subject's messages, one event each: 1 frames, 2 parse",
            Reading::Messages(2),
        ),
        (
            "framed only, not parsed nor routed (the framing thread's own rate: the ceiling with many parsing threads)",
            Reading::Files(1, u64::MAX),
        ),
    ];
    let mut times = vec![Vec::new(); contenders.len()];
    let mut checks = vec![0u64; contenders.len()];
    for round in 0..rounds {
        for i in (0..contenders.len()).map(|i| (i + round) % contenders.len()) {
            let mut router = weiquan_partition::Router::new(PARTITIONS);
            let mut check = 0u64;
            // The messages are in memory before the clock starts.
            let mut arrived = match contenders[i].1 {
                Reading::Messages(_) => Some(Arrived((1..).zip(messages.clone()).collect::<Vec<_>>().into_iter())),
                _ => None,
            };
            let started = Instant::now();
            let mut batches = match contenders[i].1 {
                Reading::Inline => {
                    let mut reader = LineReader::new(open());
                    while let Some(line) = reader.next_line().expect("the events read") {
                        if let Line::Text(_, text) = line {
                            check += route(&mut router, &parse_event(text).expect("simulated events parse"));
                        }
                    }
                    None
                }
                Reading::Files(threads, framed_only) => {
                    Some(weiquan_app::ParsedInputs::new(vec![open()], threads, framed_only))
                }
                Reading::Messages(threads) => arrived
                    .take()
                    .map(|arrived| weiquan_app::ParsedInputs::messages(arrived, threads)),
            };
            // With 0 threads the routing thread parses what comes framed only.
            let parse_too = matches!(contenders[i].1, Reading::Files(0, 0));
            while let Some(batch) = batches.as_mut().and_then(Iterator::next) {
                let batch = batch.expect("the events read");
                for line in batch.lines() {
                    match line {
                        weiquan_app::HandedLine::Parsed(Ok(p)) => check += route(&mut router, &p.event),
                        weiquan_app::HandedLine::Framed(_, Ok(text)) if parse_too => {
                            check += route(&mut router, &parse_event(text).expect("simulated events parse"))
                        }
                        weiquan_app::HandedLine::Framed(..) => check += 1,
                        weiquan_app::HandedLine::Parsed(Err(r)) => panic!("a simulated event rejected: {r:?}"),
                    }
                }
                if let Some(batches) = &batches {
                    batches.give_back(batch);
                }
            }
            times[i].push(started.elapsed().as_secs_f64());
            checks[i] = check;
        }
    }
    let (routed, framed) = checks.split_at(checks.len() - 1);
    assert!(
        routed.iter().all(|&c| c == checks[0]),
        "every way routes alike: {checks:?}"
    );
    assert_eq!(framed, [events as u64], "every line framed");
    let (inline_best, inline_median) = stats(&times[0]);
    println!("\nA door's reading alone ({events} events framed, parsed and routed in this process, no NATS; best and median of {rounds} rounds)\n");
    println!("| reading | best s | median s | events/s (best) | µs per event (best) | speed-up over the routing thread alone (best, median) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for ((label, _), t) in contenders.iter().zip(&times) {
        let (best, median) = stats(t);
        println!(
            "| {label} | {best:.2} | {median:.2} | {:.0} | {:.2} | {:.2}, {:.2} |",
            events as f64 / best,
            best * 1e6 / events as f64,
            inline_best / best,
            inline_median / median
        );
    }
}

/// How [`reading`] reads: the parse on the routing thread; files on
/// threads (how many, and the lines framed only); messages on threads.
#[derive(Clone, Copy)]
enum Reading {
    Inline,
    Files(usize, u64),
    Messages(usize),
}

/// Messages that have all arrived.
struct Arrived(std::vec::IntoIter<(u64, String)>);

impl weiquan_app::Messages for Arrived {
    type Payload = String;

    fn next_message(&mut self, _wait: bool) -> std::io::Result<Option<(u64, String)>> {
        Ok(self.0.next())
    }
}

/// The best (least) and the median of `v`, which is not empty.
fn stats(v: &[f64]) -> (f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}
