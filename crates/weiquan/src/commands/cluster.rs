//! `weiquan cluster`: the front door, workers and readers of a cluster on
//! NATS JetStream (`weiquan-cluster`, `docs/scale.md`).

use crate::cli::{ClusterArgs, ClusterCommand};
use anyhow::{Context, Result};
use std::io::Write;
use std::time::Duration;
use weiquan_cluster::{door::FrontDoor, logs::Logs, worker, Cluster};
use weiquan_engine::Lang;
use weiquan_events::{parse_event, Line, LineReader, Reject};

/// Runs one `weiquan cluster` subcommand.
pub fn run(args: &ClusterArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    // Logs are read with blocking database clients: outside the runtime.
    if let ClusterCommand::Receipt { partition, leaf } = &args.what {
        let place = (args.logs.as_deref())
            .ok_or_else(|| super::UsageError("give --logs: where the cluster's logs are kept".into()))?;
        let receipt = Logs::at(place, &args.cluster)?.receipt(*partition, *leaf)?;
        serde_json::to_writer_pretty(&mut *out, &receipt)?;
        out.write_all(b"\n")?;
        return Ok(());
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
                partitions,
                replicas,
                advance_every,
                resume,
            } => {
                let cluster = Cluster::set_up_when_ready(
                    &args.nats,
                    &args.cluster,
                    *partitions,
                    *replicas,
                    Duration::from_secs(30),
                )
                .await?;
                route(seal(cluster), files, (*advance_every).max(1), *resume, err).await
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
            ClusterCommand::Receipt { .. } => unreachable!("answered before the runtime starts"),
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

/// Routes every line of `files` into `cluster`; rejects go to `err` as
/// `weiquan audit` prints them.
async fn route(
    cluster: Cluster,
    files: &[String],
    advance_every: u64,
    resume: bool,
    err: &mut dyn Write,
) -> Result<()> {
    let mut door = if resume {
        FrontDoor::resume(cluster).await?
    } else {
        FrontDoor::new(cluster).await?
    };
    let (mut events, mut rejected) = (0u64, 0u64);
    for input in super::open_inputs(files)? {
        let mut reader = LineReader::new(input.reader);
        while let Some(line) = reader.next_line()? {
            let parsed = match line {
                Line::Bad(r) => Err(r),
                Line::Text(n, text) => parse_event(text)
                    .map(|ev| (ev, text))
                    .map_err(|e| Reject::from_parse(n, e)),
            };
            match parsed {
                Ok((ev, text)) => {
                    door.send(&ev, text).await?;
                    events += 1;
                    if events % advance_every == 0 {
                        door.advance().await?;
                    }
                }
                Err(mut r) => {
                    rejected += 1;
                    r.file = input.name.clone();
                    serde_json::to_writer(&mut *err, &r)?;
                    err.write_all(b"\n")?;
                }
            }
        }
    }
    door.advance().await?;
    let entries: u64 = door.sent().iter().sum();
    let (moved, spread) = door.moved();
    writeln!(
        err,
        "routed {events} events ({entries} partition entries in all, broadcasts counted in each) into {} partitions; {rejected} lines rejected; {moved} merchant groups moved and {spread} subject groups spread (partitions rebuilt)",
        door.sent().len(),
    )?;
    Ok(())
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
