//! `weiquan demo`: a server on a fresh data folder with a simulated platform
//! streaming into it over HTTP at a visible pace.

use crate::cli::DemoArgs;
use anyhow::{Context, Result};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weiquan_server::{Config, Database, Role};

/// Runs the demo.
pub fn run(args: &DemoArgs, err: &mut dyn Write) -> Result<()> {
    let data = match &args.data {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("weiquan-demo-{}", std::process::id())),
    };
    if data.exists() {
        return Err(super::UsageError(format!(
            "{} exists; the demo starts from a fresh folder: give --data a new path",
            data.display()
        ))
        .into());
    }
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let db = Database::Sqlite(data.join("weiquan.db"));
    let sim = weiquan_sim::simulate(&weiquan_sim::Config {
        merchants: args.merchants,
        consumers: args.merchants * 100,
        days: args.days,
        seed: args.seed,
        violation_rate: 0.3,
        profile: weiquan_sim::Profile::Double11,
        orders_per_day: 6.0,
    });
    let cfg = Config {
        data: data.clone(),
        db: db.clone(),
        key: data.join("ledger.key"),
        origin: None,
        rules: Arc::new(weiquan_engine::Rulebook::builtin()),
        nats: None,
        rate_limit: 1_000_000,
        // A simulated platform lives in its own time, ahead of the wall clock or not.
        max_future_ms: None,
        limits: weiquan_server::ConnLimits::default(),
        webhook: None,
        time_zone: weiquan_server::china_time(),
        secure_cookies: false,
        snapshots: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let service = weiquan_server::start(&cfg).await?;
        let listener = match args.listen {
            Some(addr) => tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                super::UsageError(format!(
                    "cannot listen on {addr} ({e}); give another --listen, or port 0 for any free one"
                ))
            })?,
            None => match tokio::net::TcpListener::bind(("127.0.0.1", 8080)).await {
                Ok(l) => l,
                // The default port may be taken by a real server: any free one will do,
                // and the URL printed below says which. An address asked for is not replaced.
                Err(_) => tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.context("cannot listen")?,
            },
        };
        let base = format!("http://{}", listener.local_addr()?);
        let (platform, regulator) = {
            let db = db.clone();
            tokio::task::spawn_blocking(move || -> Result<(String, String)> {
                Ok((weiquan_server::create_key(&db, &Role::Platform, None)?, weiquan_server::create_key(&db, &Role::Regulator, None)?))
            })
            .await??
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(service.serve(listener, None, async move {
            tokio::select! { _ = stopped => {}, _ = tokio::signal::ctrl_c() => {} }
        }));
        writeln!(err, "weiquan demo: a simulated Double-Eleven platform ({} events, {} planted violations) is streaming into {base}", sim.lines.len(), sim.labels.len())?;
        writeln!(err, "  console:       {base}/   (public pages; sign in at {base}/signin with the regulator key)")?;
        writeln!(err, "  regulator key: {regulator}")?;
        writeln!(err, "  data folder:   {}", data.display())?;
        writeln!(err, "  try:           curl -H 'Authorization: Bearer {regulator}' '{base}/v1/findings?lang=en&limit=5'")?;
        writeln!(err, "                 curl {base}/log/checkpoint ;  curl {base}/v1/merchants/m1")?;
        err.flush()?;
        let client = reqwest::Client::new();
        let started = Instant::now();
        let per_tick = (args.rate as usize / 10).max(1);
        let mut sent = 0usize;
        let mut last_report = Instant::now();
        for (i, chunk) in sim.lines.chunks(per_tick).enumerate() {
            tokio::time::sleep_until((started + Duration::from_millis(100) * i as u32).into()).await;
            let resp = client.post(format!("{base}/v1/events")).bearer_auth(&platform).body(chunk.join("\n")).send().await?;
            anyhow::ensure!(resp.status().is_success(), "the server refused a batch: {}", resp.text().await.unwrap_or_default());
            sent += chunk.len();
            if last_report.elapsed() >= Duration::from_secs(5) || sent == sim.lines.len() {
                last_report = Instant::now();
                let metrics = client.get(format!("{base}/metrics")).send().await?.text().await?;
                let found: u64 = metrics
                    .lines()
                    .filter(|l| l.starts_with("weiquan_findings_total"))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                    .sum();
                writeln!(err, "  streamed {sent}/{} events; {found} findings so far", sim.lines.len())?;
                err.flush()?;
            }
        }
        writeln!(err, "weiquan demo: all events streamed. {}", if args.exit_when_done { "Stopping." } else { "Still serving; Ctrl-C to stop." })?;
        err.flush()?;
        if args.exit_when_done {
            let _ = stop.send(());
        }
        server.await??;
        Ok(())
    })
}
