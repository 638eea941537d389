//! `weiquan serve`, `weiquan keys` and `weiquan erase`.

use crate::cli::{EraseArgs, KeysArgs, KeysCommand, LogFormat, ServeArgs};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use weiquan_server::{Config, Database, Role};

fn database(data: &std::path::Path, db: Option<&str>, schema: Option<&str>) -> Database {
    match db {
        Some(url) => Database::Postgres {
            url: url.to_owned(),
            schema: schema.unwrap_or("weiquan").to_owned(),
        },
        None => Database::Sqlite(data.join("weiquan.db")),
    }
}

/// Flags and environment first, then the config file.
fn resolve(args: &ServeArgs) -> Result<ServeArgs> {
    let file: ServeArgs = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
            toml::from_str(&text).map_err(|e| super::UsageError(format!("config {}: {e}", path.display())))?
        }
        None => ServeArgs::default(),
    };
    Ok(ServeArgs {
        data: args.data.clone().or(file.data),
        listen: args.listen.or(file.listen),
        db: args.db.clone().or(file.db),
        db_schema: args.db_schema.clone().or(file.db_schema),
        key: args.key.clone().or(file.key),
        origin: args.origin.clone().or(file.origin),
        nats: args.nats.clone().or(file.nats),
        nats_subject: args.nats_subject.clone().or(file.nats_subject),
        rules: args.rules.clone().or(file.rules),
        rate_limit: args.rate_limit.or(file.rate_limit),
        log_format: args.log_format.or(file.log_format),
        max_future_hours: args.max_future_hours.or(file.max_future_hours),
        paylater_webhook: args.paylater_webhook.clone().or(file.paylater_webhook),
        paylater_secret_file: args.paylater_secret_file.clone().or(file.paylater_secret_file),
        time_zone: args.time_zone.clone().or(file.time_zone),
        secure_cookies: args.secure_cookies || file.secure_cookies,
        snapshot_dir: args.snapshot_dir.clone().or(file.snapshot_dir),
        snapshot_every: args.snapshot_every.or(file.snapshot_every),
        config: None,
    })
}

/// The platform's webhook for consumers' pay-later switch-offs, with its secret.
fn webhook(a: &ServeArgs) -> Result<Option<weiquan_server::Webhook>> {
    let (url, file) = match (&a.paylater_webhook, &a.paylater_secret_file) {
        (None, None) => return Ok(None),
        (Some(url), Some(file)) => (url, file),
        _ => {
            return Err(super::UsageError(
                "--paylater-webhook and --paylater-secret-file go together: the platform checks each instruction's signature with the secret"
                    .into(),
            )
            .into())
        }
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(super::UsageError(format!("--paylater-webhook {url}: give an http:// or https:// URL")).into());
    }
    let secret = std::fs::read(file).with_context(|| format!("cannot read the webhook secret {}", file.display()))?;
    let secret = secret.trim_ascii().to_vec();
    if secret.len() < 16 {
        return Err(super::UsageError(format!(
            "the webhook secret in {} is {} bytes; use at least 16 (e.g. `openssl rand -hex 32 > FILE`)",
            file.display(),
            secret.len()
        ))
        .into());
    }
    Ok(Some(weiquan_server::Webhook {
        url: url.clone(),
        secret,
    }))
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logs(format: LogFormat) {
    init_logs_at(format, "info");
}

/// [`init_logs`], at `level` unless `RUST_LOG` says otherwise.
pub fn init_logs_at(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: &ServeArgs, err: &mut dyn Write) -> Result<()> {
    let a = resolve(args)?;
    let data = a.data.clone().unwrap_or_else(|| PathBuf::from("weiquan-data"));
    let listen = a
        .listen
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 8080)));
    init_logs(a.log_format.unwrap_or(LogFormat::Text));
    let cfg = Config {
        db: database(&data, a.db.as_deref(), a.db_schema.as_deref()),
        key: a.key.clone().unwrap_or_else(|| data.join("ledger.key")),
        origin: a.origin.clone(),
        rules: super::load_rules(a.rules.as_deref())?,
        nats: a
            .nats
            .clone()
            .map(|u| (u, a.nats_subject.clone().unwrap_or_else(|| "weiquan.events".into()))),
        rate_limit: a.rate_limit.unwrap_or(200),
        max_future_ms: match a.max_future_hours.unwrap_or(24) {
            0 => None,
            h => Some(i64::from(h) * weiquan_events::HOUR_MS),
        },
        data: data.clone(),
        limits: weiquan_server::ConnLimits::default(),
        webhook: webhook(&a)?,
        time_zone: match a.time_zone.as_deref() {
            None => weiquan_server::china_time(),
            Some(z) => z.parse().map_err(|_| {
                super::UsageError(format!(
                    "--time-zone {z}: not a UTC offset; write it as +08:00 or -05:00"
                ))
            })?,
        },
        secure_cookies: a.secure_cookies,
        snapshots: match a.snapshot_every.unwrap_or(1_000_000) {
            0 => None,
            every => Some(weiquan_server::snapshots::Snapshots {
                dir: a.snapshot_dir.clone().unwrap_or_else(|| data.join("snapshots")),
                every,
            }),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let service = weiquan_server::start(&cfg).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let store = match &cfg.db {
            Database::Sqlite(p) => format!("SQLite {}", p.display()),
            Database::Postgres { schema, .. } => format!("PostgreSQL (schema {schema})"),
        };
        writeln!(
            err,
            "weiquan is serving on http://{addr}  (API: http://{addr}/openapi.json, log: http://{addr}/log/checkpoint)"
        )?;
        writeln!(err, "  system of record: {store}; signing key: {}", cfg.key.display())?;
        let db_flag = a.db.as_deref().map(|u| format!(" --db {u}")).unwrap_or_default();
        writeln!(
            err,
            "  get an API key:   weiquan keys create --data {}{db_flag} --role platform",
            data.display()
        )?;
        err.flush()?;
        service.serve(listener, cfg.nats.clone(), shutdown_signal()).await
    })
}

/// Completes at Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing what is in flight");
}

impl crate::cli::KeyStoreArgs {
    /// The data folder (`--data`, or `weiquan-data` as the server's default).
    fn data_dir(&self) -> PathBuf {
        self.data.clone().unwrap_or_else(|| PathBuf::from("weiquan-data"))
    }

    /// The SQLite database's folder when these arguments name one that holds none yet.
    fn new_sqlite(&self) -> Option<PathBuf> {
        let data = self.data_dir();
        (self.db.is_none() && !data.join("weiquan.db").exists()).then_some(data)
    }

    /// The database these arguments name (creating the data folder for SQLite when `create`).
    fn database(&self, create: bool) -> Result<Database> {
        let data = self.data_dir();
        if self.db.is_none() {
            if create {
                weiquan_store::create_data_dir(&data)?;
            } else if !data.join("weiquan.db").exists() {
                return Err(super::UsageError(format!(
                    "no weiquan database in {}; pass the server's --data (or --db)",
                    data.display()
                ))
                .into());
            }
        }
        Ok(database(&data, self.db.as_deref(), self.db_schema.as_deref()))
    }
}

/// Runs `weiquan keys`.
pub fn keys(args: &KeysArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    match &args.what {
        KeysCommand::Create {
            role,
            expires_in_days,
            store,
        } => {
            let role = Role::parse(role).ok_or_else(|| {
                super::UsageError(format!(
                    "role `{role}`: use platform, regulator, merchant:ID or consumer:ID"
                ))
            })?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let expires = expires_in_days.map(|d| now_ms.saturating_add(i64::from(d) * weiquan_events::DAY_MS));
            // Keys may be made before the server's first start, so a new database is
            // allowed; but a mistyped --data would make a key no server knows, so say so.
            if let Some(data) = store.new_sqlite() {
                writeln!(
                    err,
                    "weiquan: note: {} held no weiquan database; a new one was made there. A server started with another --data (or --db) will not know this key.",
                    data.display()
                )?;
            }
            let key = weiquan_server::create_key(&store.database(true)?, &role, expires)?;
            writeln!(out, "{key}")?;
        }
        KeysCommand::List { json, store } => {
            let keys = weiquan_server::list_keys(&store.database(false)?)?;
            if *json {
                for k in &keys {
                    writeln!(out, "{}", serde_json::to_string(k)?)?;
                }
            } else {
                writeln!(out, "{:<16}  {:<24}  expires", "id", "role")?;
                for k in &keys {
                    writeln!(
                        out,
                        "{:<16}  {:<24}  {}",
                        k.id,
                        weiquan_events::visible(&k.role),
                        k.expires_at.as_deref().unwrap_or("never")
                    )?;
                }
            }
        }
        KeysCommand::Revoke { key, store } => {
            let id = weiquan_server::revoke_key(&store.database(false)?, key)
                .map_err(|e| super::UsageError(e.to_string()))?;
            writeln!(
                out,
                "revoked {id}; a running server refuses it within {} s",
                weiquan_server::KEY_CACHE_TTL.as_secs()
            )?;
        }
    }
    Ok(())
}

/// Runs `weiquan erase`.
pub fn erase(args: &EraseArgs, out: &mut dyn Write) -> Result<()> {
    let erased = args.store.database(false)?.erase_consumer(&args.consumer)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&erased)?)?;
    } else if erased.leaves == 0 {
        writeln!(
            out,
            "nothing to erase: no leaf about consumer {} holds personal data (never seen here, or erased before)",
            args.consumer
        )?;
    } else {
        writeln!(
            out,
            "erased the salts and values of {} leaves about consumer {}; the log is unchanged and still verifies, and findings name them as {}",
            erased.leaves, args.consumer, erased.pseudonym
        )?;
    }
    Ok(())
}
