//! `weiquan cluster`: the front door, workers and readers of a cluster on
//! NATS JetStream (`weiquan-cluster`, `docs/scale.md`).

use crate::cli::{ClusterArgs, ClusterCommand};
use anyhow::{Context, Result};
use std::io::Write;
use std::time::Duration;
use weiquan_app::{HandedLine, ParsedInputs, Waited};
use weiquan_cluster::door::{FrontDoor, Position, Resumed, Shard};
use weiquan_cluster::logs::{LogError, LogProblem, Logs, Which};
use weiquan_cluster::{worker, Cluster};
use weiquan_engine::Lang;
use weiquan_events::{parse_event, Event, Line, Reject};
use weiquan_server::shelf::{LogShelf, ShelfError, ShelvedLog};

/// Runs one `weiquan cluster` subcommand.
pub fn run(args: &ClusterArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    // Logs are read with blocking database clients: outside the runtime.
    let logs = || -> Result<Logs> {
        let place = (args.logs.as_deref())
            .ok_or_else(|| super::UsageError("give --logs: where the cluster's logs are kept".into()))?;
        Ok(Logs::at(place, &args.cluster)?)
    };
    match &args.what {
        ClusterCommand::Receipt {
            partition,
            leaf,
            reveal,
        } => {
            let receipt = logs()?.receipt(*partition, *leaf, *reveal)?;
            if *reveal && receipt.private.is_none() {
                let why = match receipt.leaf.contains("\"salted\":[") {
                    true => "its salt and values were erased",
                    false => "nothing in it is salted",
                };
                writeln!(err, "leaf {leaf} of partition {partition} has nothing to reveal: {why}")?;
            }
            serde_json::to_writer_pretty(&mut *out, &receipt)?;
            out.write_all(b"\n")?;
            return Ok(());
        }
        ClusterCommand::ServeLogs { listen } => {
            let readers = weiquan_cluster::logs::LogReaders::new(logs()?);
            // A wrong --logs or --cluster fails here, not as a 404 on every path.
            let served = readers.which()?;
            let shelf = std::sync::Arc::new(Shelf(readers));
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            return runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                let addr = listener.local_addr()?;
                writeln!(
                    err,
                    "serving the {} logs of cluster {} on http://{addr}/ (checkpoints: /top/checkpoint, /p<n>/checkpoint)",
                    served.len(),
                    args.cluster
                )?;
                err.flush()?;
                let limits = weiquan_server::ConnLimits::default();
                weiquan_server::shelf::serve(listener, shelf, limits, super::serve::shutdown_signal()).await;
                Ok(())
            });
        }
        ClusterCommand::Erase { consumer } => {
            match logs()?.erase(consumer)? {
                0 => writeln!(
                    out,
                    "nothing to erase: no leaf of the partition logs about consumer {consumer} holds personal data (never seen, or erased before)"
                )?,
                n => writeln!(
                    out,
                    "erased the salts and values of {n} leaves about consumer {consumer}; the logs are unchanged and still verify"
                )?,
            }
            return Ok(());
        }
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let connect = || weiquan_cluster::connect(&args.nats);
        let secret = secret(args)?;
        let seal = |cluster: Cluster| match &secret {
            Some(s) => cluster.sealed_with(s),
            None => cluster,
        };
        match &args.what {
            ClusterCommand::Route {
                files,
                subject,
                until_caught_up,
                partitions,
                replicas,
                advance_every,
                resume,
                shard,
                snapshot_every,
                parse_threads,
            } => {
                if *until_caught_up && subject.is_none() {
                    return Err(super::UsageError(
                        "--until-caught-up stops a door reading --subject; files end by themselves".into(),
                    )
                    .into());
                }
                let shard = shard.unwrap_or(Shard::WHOLE);
                if *until_caught_up && shard.of > 1 {
                    // Each door would stop at the stream's end as of its own
                    // start: doors in shards would read different inputs.
                    return Err(super::UsageError(
                        "--until-caught-up cannot be given to doors in shards (each would stop at another message); stop them with SIGTERM and resume them".into(),
                    )
                    .into());
                }
                // Before the cluster is set up (or its partition count fixed).
                shard.check(*partitions).map_err(|e| super::UsageError(e.to_string()))?;
                // A door's own warnings (a snapshot not usable, a wait for
                // other doors at a move) on standard error; its rejects and
                // summary go there too.
                super::serve::init_logs_at(crate::cli::LogFormat::Text, "warn");
                let cluster = Cluster::set_up_when_ready(
                    &args.nats,
                    &args.cluster,
                    *partitions,
                    *replicas,
                    Duration::from_secs(30),
                )
                .await?;
                let door = Door {
                    advance_every: (*advance_every).max(1),
                    resume: *resume,
                    shard,
                    snapshot_every: *snapshot_every,
                    parse_threads: usize::from(*parse_threads),
                };
                match subject {
                    Some(subject) => route_subject(seal(cluster), subject, door, *until_caught_up, err).await,
                    None => route(seal(cluster), files, door, err).await,
                }
            }
            ClusterCommand::Work {
                name,
                snapshot_every,
                lease_ms,
                rules,
                log_key,
                top_every_ms,
            } => {
                super::serve::init_logs(crate::cli::LogFormat::Text);
                let client = connect().await?;
                let rules = super::load_rules(rules.as_deref())?;
                // Workers may start before the front door has set the cluster up.
                let cluster = loop {
                    match Cluster::open(client.clone(), &args.cluster).await {
                        Err(weiquan_cluster::ClusterError::NotSetUp(_)) => {
                            tracing::info!(cluster = %args.cluster, "waiting for a front door to set the cluster up");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        opened => break seal(opened?),
                    }
                };
                let logs = match (&args.logs, log_key) {
                    (Some(place), Some(key)) => {
                        let key = std::fs::read_to_string(key)
                            .with_context(|| format!("cannot read the log key {}", key.display()))?;
                        Some(Logs::at(place, &args.cluster)?.signed_with(&key)?)
                    }
                    (None, None) => None,
                    (Some(_), None) => {
                        return Err(super::UsageError(
                            "--logs needs --log-key: the key that signs the logs' checkpoints (weiquan keygen)".into(),
                        )
                        .into())
                    }
                    (None, Some(_)) => {
                        return Err(super::UsageError("--log-key needs --logs: where the logs are kept".into()).into())
                    }
                };
                let cfg = worker::WorkerConfig {
                    name: name.clone(),
                    snapshot_every: (*snapshot_every).max(1),
                    lease: Duration::from_millis((*lease_ms).max(200)),
                    logs,
                    top_every: Duration::from_millis((*top_every_ms).max(10)),
                };
                worker::run(cluster, rules, cfg, super::serve::shutdown_signal()).await?;
                Ok(())
            }
            ClusterCommand::Findings { rules, lang, leaves } => {
                let rules = super::load_rules(rules.as_deref())?;
                let cluster = seal(Cluster::open(connect().await?, &args.cluster).await?);
                let (found, _) = weiquan_cluster::read_findings(&cluster).await?;
                let lang = Lang::from(*lang);
                for f in found {
                    let record = f.finding.record(&rules, lang);
                    if *leaves {
                        let mut record = serde_json::to_value(&record)?;
                        record["partition"] = f.partition.into();
                        record["leaf"] = f.leaf.into();
                        serde_json::to_writer(&mut *out, &record)?;
                    } else {
                        serde_json::to_writer(&mut *out, &record)?;
                    }
                    out.write_all(b"\n")?;
                }
                Ok(())
            }
            ClusterCommand::Receipt { .. } | ClusterCommand::Erase { .. } | ClusterCommand::ServeLogs { .. } => {
                unreachable!("answered before the runtime starts")
            }
            ClusterCommand::Status => {
                let cluster = Cluster::open(connect().await?, &args.cluster).await?;
                let progress = cluster.progress().await?;
                let routed = cluster.routed().await?;
                let owners = cluster.owners().await?;
                writeln!(out, "partition\tapplied\trouted\towner")?;
                for (p, ((applied, routed), owner)) in progress.iter().zip(&routed).zip(&owners).enumerate() {
                    writeln!(out, "{p}\t{applied}\t{routed}\t{}", owner.as_deref().unwrap_or("-"))?;
                }
                let done = progress == routed;
                writeln!(out, "{}", if done { "caught up" } else { "applying" })?;
                Ok(())
            }
        }
    })
}

/// How a door routes: what `route` was asked for.
struct Door {
    /// Moves idle partitions' clocks every this many events.
    advance_every: u64,
    /// Takes over from a door that stopped.
    resume: bool,
    /// The partitions it sends.
    shard: Shard,
    /// Saves the door's state every this many events (0: never).
    snapshot_every: u64,
    /// Threads reading the input beside the routing one.
    parse_threads: usize,
}

/// One routing run's door and counts: every line, of files or of messages,
/// goes through [`Routing::handed`].
struct Routing {
    door: FrontDoor,
    /// Events routed, those before a snapshot resumed from included.
    events: u64,
    rejected: u64,
    advance_every: u64,
    snapshot_every: u64,
    /// Events routed since the last snapshot.
    since_saved: u64,
    /// Where the input stands: a message and lines of it, or lines of the files.
    at: Position,
    /// The last event routed, and where.
    last: Option<(Position, String)>,
    /// Resumed from the door's snapshot: where, and whether the lines
    /// before it (of files) are still to be passed over.
    resumed: Option<Resumed>,
    /// The partition entries the partitions held when the door started (a
    /// resumed door's summary says how many it sent itself).
    held_at_start: u64,
}

impl Routing {
    async fn start(cluster: Cluster, how: Door) -> Result<Routing> {
        let door = if how.resume {
            FrontDoor::resume_shard(cluster, how.shard, true).await?
        } else {
            FrontDoor::new_shard(cluster, how.shard).await?
        };
        let resumed = door.resumed().cloned();
        let held_at_start = door.sent().iter().sum();
        Ok(Routing {
            held_at_start,
            door,
            events: resumed.as_ref().map_or(0, |r| r.routed),
            rejected: 0,
            advance_every: how.advance_every,
            snapshot_every: how.snapshot_every,
            since_saved: 0,
            at: Position::default(),
            last: resumed.as_ref().and_then(|r| r.last.clone()),
            resumed,
        })
    }

    /// Whether line `self.at` of files (counted already), line `n` of
    /// `source` whose text is `text`, is one the door's snapshot routed:
    /// passed over, the last event routed checked by id.
    fn routed_before(&self, n: u64, text: &str, source: Option<&str>) -> Result<bool> {
        // Files only: a subject's door starts after its snapshot's message.
        let before = |r: &&Resumed| r.at.unit == 0 && self.at.unit == 0 && self.at.line <= r.at.line;
        let Some(r) = self.resumed.as_ref().filter(before) else {
            return Ok(false);
        };
        if let Some((at, id)) = r.last.as_ref().filter(|(at, _)| *at == self.at) {
            let file = source.unwrap_or("standard input");
            same_event(
                text,
                id,
                &format!("line {n} of {file} (non-blank line {} of the input)", at.line),
            )?;
        }
        Ok(true)
    }

    /// Counts one line into `self.at` and routes it, parsed on another
    /// thread or framed only (`source` names its file or message; `None`:
    /// standard input), or writes why it is rejected to `err`.
    async fn handed(&mut self, line: HandedLine<'_>, source: Option<&str>, err: &mut dyn Write) -> Result<()> {
        self.at.line += 1;
        let (n, text) = match line {
            HandedLine::Parsed(Ok(p)) => (p.line, p.raw),
            HandedLine::Parsed(Err(r)) | HandedLine::Framed(_, Err(r)) => (r.line, ""),
            HandedLine::Framed(n, Ok(text)) => (n, text),
        };
        if self.routed_before(n, text, source)? {
            return Ok(());
        }
        match line {
            HandedLine::Parsed(Ok(p)) => self.event(&p.event, p.raw).await,
            HandedLine::Parsed(Err(r)) | HandedLine::Framed(_, Err(r)) => self.reject(r.clone(), source, err),
            // Framed only: every line with `--parse-threads 0`, and those
            // before the snapshot (passed over above).
            HandedLine::Framed(n, Ok(text)) => match parse_event(text) {
                Ok(ev) => self.event(&ev, text).await,
                Err(e) => self.reject(Reject::from_parse(n, e), source, err),
            },
        }
    }

    /// Routes event `ev`, whose line as received is `raw`.
    async fn event(&mut self, ev: &Event<'_>, raw: &str) -> Result<()> {
        self.door.send(ev, raw).await?;
        self.events += 1;
        self.since_saved += 1;
        // The id's buffer is reused: this runs for every event.
        match &mut self.last {
            Some((at, id)) => {
                *at = self.at;
                id.clear();
                id.push_str(&ev.id);
            }
            None => self.last = Some((self.at, ev.id.to_string())),
        }
        if self.events % self.advance_every == 0 {
            self.door.advance().await?;
        }
        Ok(())
    }

    /// Writes why a line of `source` is rejected to `err`, as `weiquan audit` does.
    fn reject(&mut self, mut r: Reject, source: Option<&str>, err: &mut dyn Write) -> Result<()> {
        self.rejected += 1;
        r.file = source.map(str::to_owned);
        serde_json::to_writer(&mut *err, &r)?;
        err.write_all(b"\n")?;
        Ok(())
    }

    /// Where the input can be resumed from (after a line of files, after a
    /// whole message): saves the door's state when one is due.
    async fn boundary(&mut self) -> Result<()> {
        // Not saved while a resumed door passes what its partitions hold:
        // tried again at the next place.
        if self.snapshot_every > 0
            && self.since_saved >= self.snapshot_every
            && self.door.save(self.at, self.last.clone()).await?
        {
            self.since_saved = 0;
        }
        Ok(())
    }

    /// Makes everything routed durable, moves every partition's clock, and
    /// says what was done. `ended`: the input has ended (files), which the
    /// door records (doors in shards whose inputs end elsewhere are
    /// stopped), not stopped (a subject).
    async fn finish(mut self, ended: bool, err: &mut dyn Write) -> Result<()> {
        if let Some(r) = self
            .resumed
            .as_ref()
            .filter(|r| r.at.unit == 0 && self.at.line < r.at.line)
        {
            return Err(weiquan_cluster::ClusterError::Unresumable {
                why: format!(
                    "this input has {} lines, but the door's snapshot was taken after line {}: give the stopped door's input",
                    self.at.line, r.at.line
                ),
            }
            .into());
        }
        match ended {
            true => self.door.end().await?,
            false => self.door.advance().await?,
        }
        let entries: u64 = self.door.sent().iter().sum();
        let (moved, spread) = self.door.moved();
        let (shard, n) = (self.door.shard(), self.door.sent().len());
        let into = match shard.of {
            1 => format!("{n} partitions"),
            _ => format!(
                "{} of {n} partitions (door {shard})",
                (0..n as u32).filter(|&p| shard.owns(p)).count()
            ),
        };
        // A resumed door passes over what its partitions hold: its totals are
        // theirs, and what it sent itself is said apart, lest they read as a resend.
        let (resumed, sent_now) = match &self.resumed {
            Some(r) => (
                format!(" ({} of them before the door's snapshot, not read again)", r.routed),
                format!(
                    ", {} of them sent by this door, the rest held already",
                    entries.saturating_sub(self.held_at_start)
                ),
            ),
            None => (String::new(), String::new()),
        };
        writeln!(
            err,
            "routed {} events{resumed} ({entries} partition entries in all{sent_now}, broadcasts counted in each) into {into}; {} lines rejected; {moved} merchant groups moved and {spread} subject groups spread (partitions rebuilt)",
            self.events,
            self.rejected,
        )?;
        Ok(())
    }
}

/// Checks that `text` is event `id` (`where` it is in the input), as the
/// door's snapshot routed it.
fn same_event(text: &str, id: &str, place: &str) -> Result<()> {
    let found = parse_event(text).map(|ev| ev.id.into_owned());
    match found {
        Ok(found) if found == id => Ok(()),
        _ => Err(weiquan_cluster::ClusterError::Unresumable {
            why: format!(
                "{place} is not event `{id}`, which the door's snapshot routed there: give the stopped door's input"
            ),
        }
        .into()),
    }
}

/// Routes every line of `files` into `cluster`; rejects go to `err` as
/// `weiquan audit` prints them.
async fn route(cluster: Cluster, files: &[String], how: Door, err: &mut dyn Write) -> Result<()> {
    let threads = how.parse_threads;
    // Opened before the door claims its partitions: a mistyped name claims nothing.
    let inputs = super::open_inputs(files)?;
    let mut routing = Routing::start(cluster, how).await?;
    if routing.resumed.as_ref().is_some_and(|r| r.at.unit > 0) {
        return Err(super::UsageError(
            "the door's snapshot was taken reading a subject: give --resume that --subject, not files".into(),
        )
        .into());
    }
    let names: Vec<Option<String>> = inputs.iter().map(|input| input.name.clone()).collect();
    // The lines before the snapshot are passed over: framed, not parsed.
    let parse_after = routing.resumed.as_ref().map_or(0, |r| r.at.line);
    let readers = inputs.into_iter().map(|input| input.reader).collect();
    let mut batches = ParsedInputs::new(readers, threads, parse_after);
    // Waiting for a batch blocks this thread, the door's only task on it:
    // its sends run on the runtime's other threads meanwhile.
    while let Some(batch) = tokio::task::block_in_place(|| batches.next()) {
        let batch = batch.map_err(|e| match e.input.and_then(|i| names.get(i)) {
            Some(name) => anyhow::anyhow!(
                "cannot read {}: {}",
                name.as_deref().unwrap_or("standard input"),
                e.error
            ),
            None => e.into(),
        })?;
        let source = names[batch.input()].as_deref();
        for line in batch.lines() {
            routing.handed(line, source, err).await?;
            routing.boundary().await?;
        }
        batches.give_back(batch);
    }
    routing.finish(true, err).await
}

/// How long the door waits for the next message before it makes what it
/// routed durable and moves the partitions' clocks: a quiet platform's last
/// events then reach the workers without waiting for more.
const IDLE: Duration = Duration::from_millis(200);

/// The front door on a platform's JetStream stream (`subject`'s, as
/// `weiquan serve --nats` names it, created if missing): every message from
/// the stream's first, each one event or NDJSON, until stopped, or, with
/// `until_caught_up`, until the stream's last message when it started.
async fn route_subject(
    cluster: Cluster,
    subject: &str,
    how: Door,
    until_caught_up: bool,
    err: &mut dyn Write,
) -> Result<()> {
    use async_nats::jetstream::{self, consumer::push::OrderedConfig, consumer::DeliverPolicy};
    let threads = how.parse_threads;
    let nats = |what: &str, e: &dyn std::fmt::Display| anyhow::anyhow!(nats_error(subject, what, e));
    let (client, js) = (cluster.client.clone(), cluster.js.clone());
    let mut stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: weiquan_server::nats::stream_name(subject),
            subjects: vec![subject.to_owned()],
            ..Default::default()
        })
        .await
        .map_err(|e| nats("cannot open the platform's stream", &e))?;
    let state = (stream.info().await)
        .map_err(|e| nats("cannot read the platform's stream", &e))?
        .state
        .clone();
    // The door's routing state is built from the whole stream, or from its
    // snapshot's message on: one that lost those messages (an age or size
    // limit, a purge) would route the rest without them, and partitions
    // would miss events for good.
    let holds_from = |needed: u64| {
        if state.first_sequence > needed.max(1) {
            return Err(nats(
                "the platform's stream no longer holds the messages the door must read",
                &format_args!(
                    "it starts at message {}, the door needs message {needed} on; keep the stream whole (no age or size limit) for a door to read it",
                    state.first_sequence
                ),
            ));
        }
        Ok(())
    };
    // Checked before a new door claims its partitions; a resumed one knows
    // what it needs once it has read its snapshot.
    if !how.resume {
        holds_from(1)?;
    }
    let mut routing = Routing::start(cluster, how).await?;
    // Resumed from the door's snapshot: on after its message; else from the first.
    let (after, last) = match &routing.resumed {
        Some(r) if r.at.unit == 0 && r.routed > 0 => {
            return Err(super::UsageError(
                "the door's snapshot was taken reading files: give --resume those files, not --subject".into(),
            )
            .into())
        }
        Some(r) => (r.at.unit, r.last.clone()),
        None => (0, None),
    };
    holds_from(last.as_ref().map_or(after + 1, |(at, _)| at.unit))?;
    // The last event the snapshot routed is where it says: the same stream.
    if let Some((at, id)) = &last {
        let message = (stream.get_raw_message(at.unit).await)
            .map_err(|e| nats("cannot read the message of the door's snapshot", &e))?;
        // Framed as the door frames a message (its lines counted from 1).
        let nth = usize::try_from(at.line.saturating_sub(1)).unwrap_or(usize::MAX);
        let found = match weiquan_events::checked_body_lines(&message.payload).nth(nth) {
            Some(Line::Text(_, text)) => text,
            _ => "",
        };
        same_event(
            found,
            id,
            &format!("line {} of message {} of {subject}", at.line, at.unit),
        )?;
    }
    let end = match until_caught_up {
        // An empty stream (never written, or emptied) is caught up already.
        true if state.messages == 0 => 0,
        true => state.last_sequence,
        false => u64::MAX,
    };
    if end <= after {
        return routing.finish(false, err).await;
    }
    // The door's routing state is its memory: it reads the stream from the
    // start (with --resume, a partition is sent only what it lacks), or from
    // after its snapshot's message.
    let messages = stream
        .create_consumer(OrderedConfig {
            deliver_subject: client.new_inbox(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| nats("cannot read the platform's stream", &e))?
        .messages()
        .await
        .map_err(|e| nats("cannot read the platform's stream", &e))?;
    // A task takes the messages in and checks their order; threads frame
    // and parse them, the messages that have arrived together in one batch;
    // this thread routes.
    let (arrived, received) = tokio::sync::mpsc::channel(1024);
    let reading = tokio::spawn(read_messages(
        messages,
        after + 1,
        end,
        until_caught_up,
        subject.to_owned(),
        arrived,
    ));
    let mut batches = ParsedInputs::messages(Received(received, false), threads);
    let mut stop = std::pin::pin!(super::serve::shutdown_signal());
    let mut routed_since_idle = false;
    loop {
        if futures::FutureExt::now_or_never(stop.as_mut()).is_some() {
            break;
        }
        // Waiting blocks this thread, the door's only task on it (at most
        // IDLE at a time, then the signal is looked at again).
        let batch = match tokio::task::block_in_place(|| batches.next_within(IDLE)) {
            Waited::Idle => {
                if routed_since_idle {
                    routing.door.advance().await?;
                    routed_since_idle = false;
                }
                continue;
            }
            Waited::Ended => break,
            Waited::Batch(batch) => batch?,
        };
        // A signal while waiting: the batch is not routed (a resume reads it).
        if futures::FutureExt::now_or_never(stop.as_mut()).is_some() {
            break;
        }
        let routed = async {
            let mut lines = batch.lines();
            for (seq, count) in batch.messages() {
                let source = format!("{subject} (message {seq})");
                routing.at = Position { unit: seq, line: 0 };
                for line in lines.by_ref().take(count) {
                    routing.handed(line, Some(&source), &mut *err).await?;
                }
                routing.boundary().await?;
            }
            Ok::<_, anyhow::Error>(())
        };
        // A door can wait long inside a message (at a move, for the other
        // doors): a signal stops it there too.
        let stopped = tokio::select! {
            () = &mut stop => true,
            routed = routed => {
                routed?;
                false
            }
        };
        if stopped {
            return Err(anyhow::anyhow!(
                "stopped by a signal while routing message {} of {subject}: part of it may be sent; take over with `route --resume`",
                routing.at.unit
            ));
        }
        routed_since_idle = true;
        batches.give_back(batch);
    }
    reading.abort();
    routing.finish(false, err).await
}

/// A message of the platform's stream, as the door's reading threads take it.
struct Payload(async_nats::jetstream::Message);

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        &self.0.payload
    }
}

/// What [`read_messages`] hands on: a message, the end (`None`), or why
/// it could not go on.
type Arrived = std::io::Result<Option<(u64, Payload)>>;

/// The platform's messages, as [`read_messages`] takes them in, and
/// whether it has said they ended.
struct Received(tokio::sync::mpsc::Receiver<Arrived>, bool);

impl weiquan_app::Messages for Received {
    type Payload = Payload;

    fn next_message(&mut self, wait: bool) -> std::io::Result<Option<(u64, Payload)>> {
        if self.1 {
            return Ok(None);
        }
        let next = match wait {
            // The task ends by saying so: gone without a word, it failed.
            true => self.0.blocking_recv().unwrap_or_else(|| {
                Err(std::io::Error::other(
                    "the task reading the platform's stream stopped (see its panic above)",
                ))
            }),
            false => match self.0.try_recv() {
                Ok(next) => next,
                Err(_) => return Ok(None), // none yet; a wait says if it is gone
            },
        };
        self.1 = matches!(next, Ok(None));
        next
    }
}

/// What went wrong reading `subject`, as the door says it.
fn nats_error(subject: &str, what: &str, e: &dyn std::fmt::Display) -> String {
    format!("{what} (subject {subject}): {e}")
}

/// Takes the platform's messages in, from message `expected` on, into
/// `arrived`, until message `end` or, with `until_caught_up`, until none
/// is pending. Each message must be the one after the last: a gap (a
/// message deleted, or gone to an age limit while the door read) is
/// refused, not skipped.
async fn read_messages(
    mut messages: impl futures::Stream<Item = Result<async_nats::jetstream::Message, impl std::fmt::Display>> + Unpin,
    mut expected: u64,
    end: u64,
    until_caught_up: bool,
    subject: String,
    arrived: tokio::sync::mpsc::Sender<Arrived>,
) {
    use futures::StreamExt;
    let failed = |what: &str, e: &dyn std::fmt::Display| std::io::Error::other(nats_error(&subject, what, e));
    loop {
        let message = match messages.next().await {
            None => Err(failed("the platform's stream stopped delivering", &"no more messages")),
            Some(Err(e)) => Err(failed("cannot read the platform's stream", &e)),
            Some(Ok(m)) => match m.info() {
                Err(e) => Err(failed("a message without its stream position", &e)),
                Ok(i) if i.stream_sequence != expected => Err(failed(
                    "the platform's stream lost a message the door had not read",
                    &format_args!(
                        "message {expected} is missing (the next is {}); keep the stream whole",
                        i.stream_sequence
                    ),
                )),
                Ok(i) => Ok((i.stream_sequence, i.pending, m)),
            },
        };
        let (seq, pending, m) = match message {
            Ok(message) => message,
            Err(e) => {
                let _ = arrived.send(Err(e)).await;
                return;
            }
        };
        if arrived.send(Ok(Some((seq, Payload(m))))).await.is_err() {
            return; // the door stopped
        }
        expected = seq + 1;
        // The last message at the start, or none left (that one was deleted since).
        if seq >= end || (until_caught_up && pending == 0) {
            let _ = arrived.send(Ok(None)).await;
            return;
        }
    }
}

/// The cluster's secret, from `--secret-file`.
fn secret(args: &ClusterArgs) -> Result<Option<Vec<u8>>> {
    let Some(path) = &args.secret_file else {
        return Ok(None);
    };
    let bytes = std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the secret file {}: {e}; check the path and permissions",
            path.display()
        )
    })?;
    if bytes.len() < 16 {
        return Err(super::UsageError(format!(
            "the secret file {} holds {} bytes: use at least 16 random bytes (e.g. `head -c 32 /dev/urandom > {}`)",
            path.display(),
            bytes.len(),
            path.display()
        ))
        .into());
    }
    Ok(Some(bytes))
}

/// A cluster's logs as the HTTP layer serves them, by name (`top`, `p<n>`).
struct Shelf(weiquan_cluster::logs::LogReaders);

impl Shelf {
    fn which(name: &str) -> Result<Which, ShelfError> {
        Which::parse(name).ok_or_else(|| ShelfError::NoLog(format!("there is no log `{name}`: `/` lists the logs")))
    }
}

/// What a reader of the shelf is told: a log that does not exist (or a
/// partition the top log does not record) is not found, any other failure
/// is the logs' being unavailable; what went wrong (database addresses,
/// paths) goes to the operator's log, not to the reader.
fn shelf_error(name: &str) -> impl Fn(LogError) -> ShelfError + '_ {
    move |e| match e.problem {
        LogProblem::Missing(_) => ShelfError::NoLog(format!("there is no log `{name}` here: `/` lists the logs")),
        LogProblem::Unsalted => {
            tracing::warn!(log = name, error = %e, "not served");
            ShelfError::NoLog(format!("log `{name}` is not served"))
        }
        _ => {
            tracing::warn!(log = name, error = %e, "a log could not be read");
            ShelfError::Failed(format!("log `{name}` cannot be read now; try again later"))
        }
    }
}

impl LogShelf for Shelf {
    fn logs(&self) -> Result<Vec<ShelvedLog>, ShelfError> {
        let which = self.0.which().map_err(shelf_error("top"))?;
        Ok((which.into_iter())
            .map(|w| ShelvedLog {
                name: w.short(),
                origin: self.0.origin(w),
            })
            .collect())
    }

    fn checkpoint(&self, name: &str) -> Result<Option<Vec<u8>>, ShelfError> {
        self.0.checkpoint(Self::which(name)?).map_err(shelf_error(name))
    }

    fn tile(&self, name: &str, req: weiquan_ledger::TileRequest) -> Result<Option<Vec<u8>>, ShelfError> {
        self.0.tile(Self::which(name)?, req).map_err(shelf_error(name))
    }
}
