//! Command-line arguments.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// weiquan (维权): finds where an e-commerce platform's consumers were wronged.
///
/// It reads a platform's events (orders, pre-sales, live-stream lotteries,
/// merchants, prices, pay-later, complaints), checks them against a cited
/// rulebook, and reports findings with the evidence and the regulation behind
/// each.
#[derive(Debug, Parser)]
#[command(name = "weiquan", version, propagate_version = true)]
#[command(after_help = "Example:\n  weiquan audit tests/cases/presale/events.ndjson --format table --lang en")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit event files: findings as NDJSON on stdout, rejected lines as NDJSON on stderr.
    #[command(after_help = "Examples:
  weiquan audit tests/cases/presale/events.ndjson
  weiquan audit day1.ndjson day2.ndjson --as-of 2026-11-30T00:00:00+08:00 --summary
  cat events.ndjson | weiquan audit - --format table --lang en

Exit status: 0 when the input was read (whatever it contained), 1 when a file
cannot be read, 2 for a usage error.")]
    Audit(AuditArgs),
    /// Validate event files only: print rejected lines as NDJSON on stderr, nothing else.
    #[command(
        after_help = "Example:\n  weiquan check export.ndjson && echo 'every line is a valid event'\n\nExit status: 0 when every line is valid, 3 when some line was rejected, 1 when a file cannot be read."
    )]
    Check(CheckArgs),
    /// Write a simulated platform's events and, beside them, the violations planted in them.
    #[command(
        after_help = "Example:\n  weiquan simulate --merchants 200 --days 30 --seed 7 --out sim/\n  weiquan audit sim/events.ndjson   # finds exactly what sim/labels.json lists"
    )]
    Simulate(SimulateArgs),
    /// Run the HTTP API: ingest events, serve findings, grades, the log and proofs.
    #[command(after_help = "Examples:
  weiquan serve                                   # ./weiquan-data, SQLite, http://127.0.0.1:8080
  weiquan serve --db postgres://postgres@127.0.0.1/test --nats nats://127.0.0.1:4222

Every option can also come from a WEIQUAN_* environment variable or a --config TOML file
with the same names, `-` written `_` (data, listen, db, db_schema, key, origin, nats,
nats_subject, rules, rate_limit, log_format, max_future_hours, paylater_webhook,
paylater_secret_file, time_zone, secure_cookies, snapshot_dir, snapshot_every).")]
    Serve(Box<ServeArgs>),
    /// Manage API keys.
    #[command(after_help = "Example:\n  weiquan keys create --data ./weiquan-data --role regulator")]
    Keys(KeysArgs),
    /// Erase a consumer's personal data from a server's private side (PIPL); the log still verifies.
    #[command(after_help = "Example:
  weiquan erase --data ./weiquan-data --consumer u1024

The public log never held the consumer's id or text, only salted commitments;
this removes the salts and originals behind every leaf about them, so not even
the operator can open those commitments again. The consumer keeps a pseudonym
in the engine: findings, grades and a replay after restart stay the same.")]
    Erase(EraseArgs),
    /// Copy a server's database and signing key, consistently, while it runs.
    #[command(
        after_help = "Example:\n  weiquan backup --data ./weiquan-data backups/2026-11-29\n  weiquan restore backups/2026-11-29 --data ./weiquan-data-restored\n\nA PostgreSQL system of record is backed up with pg_dump; the command says how."
    )]
    Backup(BackupArgs),
    /// Put a backup into a new data folder and verify its whole log.
    #[command(
        after_help = "Example:\n  weiquan restore backups/2026-11-29 --data ./weiquan-data-restored\n\nExit status: 0 when restored and verified, 3 when the restored log does not verify."
    )]
    Restore(RestoreArgs),
    /// Start a server on a fresh data folder and stream a simulated platform into it.
    #[command(
        after_help = "Example:\n  weiquan demo            # then open the printed URL with the printed key\n  weiquan demo --rate 2000 --merchants 100"
    )]
    Demo(DemoArgs),
    /// Create a signing key for a ledger: PATH (private, mode 0600) and PATH.pub.
    #[command(after_help = "Example:\n  weiquan keygen --out keys/ledger.key --name weiquan.example/log")]
    Keygen(KeygenArgs),
    /// Verify a ledger, a receipt, a consistency proof or a lottery draw, offline.
    #[command(after_help = "Examples:
  weiquan verify log run.db --pub run.db.key.pub
  weiquan verify receipt receipt.json --pub run.db.key.pub
  weiquan verify draw --ledger run.db --lottery l5 --pub run.db.key.pub

Exit status: 0 when valid, 3 when not (the message names what failed), 1 when a file cannot be read.")]
    Verify(VerifyArgs),
    /// Read checkpoints, receipts and proofs out of a ledger file.
    #[command(
        after_help = "Examples:\n  weiquan ledger checkpoint run.db\n  weiquan ledger receipt run.db 4 > receipt.json\n  weiquan ledger proof run.db --old 100 > proof.json"
    )]
    Ledger(LedgerArgs),
    /// Replay a ledger's events under other rules: the findings they add and remove.
    #[command(after_help = "Example:
  weiquan audit tests/cases/presale/events.ndjson --ledger run.db
  printf '[thresholds]\\ndeposit_cap_percent = 35.0\\n' > looser.toml
  weiquan backtest --ledger run.db --rules looser.toml

The recorded run is the findings the ledger holds; the new one is its events
replayed, in ledger order, under --rules. Works on a file `weiquan audit
--ledger` wrote and on a server's SQLite database (whose salted leaves it
opens from the private side). Exit status: 0 when nothing changes, 3 when
findings are added or removed.")]
    Backtest(BacktestArgs),
    /// Run weiquan across machines on a NATS JetStream cluster: route events, work partitions, read findings.
    #[command(after_help = "Example (see docs/scale.md):
  weiquan cluster work --nats nats://n1:4222,nats://n2:4222 --name w1 &
  weiquan cluster work --nats nats://n1:4222,nats://n2:4222 --name w2 &
  weiquan cluster route --nats nats://n1:4222 --partitions 6 --replicas 3 events.ndjson
  weiquan cluster route --nats nats://n1:4222 --subject platform.events   (follow a platform's stream)
  weiquan cluster status --nats nats://n1:4222
  weiquan cluster findings --nats nats://n1:4222 > findings.ndjson   # what `weiquan audit` prints

With tamper-evident logs (docs/scale.md), every worker also gets
  --logs postgres://db/weiquan --log-key cluster.key
and then:
  weiquan verify cluster --logs postgres://db/weiquan --cluster weiquan --pub cluster.key.pub")]
    Cluster(ClusterArgs),
    /// Print the rulebook in effect (built-in, or merged with --rules) as TOML.
    #[command(
        after_help = "Example:\n  weiquan rules > my-rules.toml   # edit, then: weiquan audit --rules my-rules.toml …"
    )]
    Rules(RulesArgs),
}

/// Output format of findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Ndjson,
    /// Aligned columns for people (coloured on a terminal).
    Table,
}

/// Message language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LangArg {
    /// 中文
    Zh,
    /// English
    En,
}

impl From<LangArg> for weiquan_engine::Lang {
    fn from(lang: LangArg) -> Self {
        match lang {
            LangArg::Zh => weiquan_engine::Lang::Zh,
            LangArg::En => weiquan_engine::Lang::En,
        }
    }
}

/// Arguments of `weiquan audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// NDJSON event files, read in order as one stream; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Final clock: deadlines before this time are decided at the end (RFC 3339 with offset).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub as_of: Option<weiquan_events::Time>,
    /// A rulebook file whose keys override the built-in ones (see `weiquan rules`).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// How to print findings.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    pub format: Format,
    /// Language of finding messages.
    #[arg(long, value_enum, default_value_t = LangArg::Zh)]
    pub lang: LangArg,
    /// Print counts per rule and severity, and blacklisted merchants, on stderr at the end.
    #[arg(long)]
    pub summary: bool,
    /// Also write the run (every accepted event, every finding) into a new
    /// tamper-evident ledger: the SQLite file PATH.
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// Signing key for the ledger's checkpoints (from `weiquan keygen`);
    /// default: PATH.key beside the ledger, created when missing.
    #[arg(long, value_name = "KEY", requires = "ledger")]
    pub key: Option<PathBuf>,
    /// Origin line of the ledger's checkpoints (default: the key's name).
    #[arg(long, value_name = "ORIGIN", requires = "ledger")]
    pub origin: Option<String>,
    /// Threads: 1 runs everything on one; 2 reads and parses on a second while
    /// the rules run, and the rules' thread parses a batch itself when it would
    /// wait (more add nothing). Default: 2 when two CPUs are available.
    /// Findings are the same either way.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `weiquan serve` (all optional: flags, then WEIQUAN_* variables, then --config, then defaults).
#[derive(Debug, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// Data folder: SQLite database and signing key [default: ./weiquan-data].
    #[arg(long, env = "WEIQUAN_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WEIQUAN_LISTEN", value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// PostgreSQL as the system of record instead of SQLite (postgres://…).
    #[arg(long, env = "WEIQUAN_DB", value_name = "URL")]
    pub db: Option<String>,
    /// PostgreSQL schema for weiquan's tables [default: weiquan].
    #[arg(long, env = "WEIQUAN_DB_SCHEMA", value_name = "SCHEMA")]
    pub db_schema: Option<String>,
    /// Signing key of the ledger [default: DATA/ledger.key, created on first start].
    #[arg(long, env = "WEIQUAN_KEY", value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// Checkpoint origin [default: the key's name].
    #[arg(long, env = "WEIQUAN_ORIGIN")]
    pub origin: Option<String>,
    /// Consume events from this NATS server (JetStream), at least once.
    #[arg(long, env = "WEIQUAN_NATS", value_name = "URL")]
    pub nats: Option<String>,
    /// NATS subject carrying events [default: weiquan.events].
    #[arg(long, env = "WEIQUAN_NATS_SUBJECT", value_name = "S")]
    pub nats_subject: Option<String>,
    /// Rulebook overrides (see `weiquan rules`).
    #[arg(long, env = "WEIQUAN_RULES", value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Requests per second per API key [default: 200].
    #[arg(long, env = "WEIQUAN_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Log format [default: text].
    #[arg(long, env = "WEIQUAN_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Refuse events dated more than this many hours ahead of the server's clock,
    /// so that one mistyped year cannot fire every deadline; 0 turns it off [default: 24].
    #[arg(long, env = "WEIQUAN_MAX_FUTURE_HOURS", value_name = "HOURS")]
    pub max_future_hours: Option<u32>,
    /// Deliver consumers' pay-later switch-offs to this platform URL (POST, JSON,
    /// signed: see README, "Pay-later switch-off"); without it they wait in the outbox.
    #[arg(long, env = "WEIQUAN_PAYLATER_WEBHOOK", value_name = "URL")]
    pub paylater_webhook: Option<String>,
    /// File holding the secret the webhook's HMAC-SHA-256 signatures use (shared with the platform).
    #[arg(long, env = "WEIQUAN_PAYLATER_SECRET_FILE", value_name = "FILE")]
    pub paylater_secret_file: Option<PathBuf>,
    /// The platform's time zone as a UTC offset; the web console shows times in it [default: +08:00].
    #[arg(long, env = "WEIQUAN_TIME_ZONE", value_name = "OFFSET")]
    pub time_zone: Option<String>,
    /// Mark the web console's cookies `Secure` on every response, and name them
    /// with the `__Host-` prefix (no other host may set them): set this when
    /// users reach the console over HTTPS through a proxy (without it, they are
    /// `Secure` only when the proxy sends `X-Forwarded-Proto: https`).
    #[arg(long, env = "WEIQUAN_SECURE_COOKIES")]
    #[serde(default)]
    pub secure_cookies: bool,
    /// Folder of the sequencer's state snapshots [default: DATA/snapshots].
    #[arg(long, env = "WEIQUAN_SNAPSHOT_DIR", value_name = "DIR")]
    pub snapshot_dir: Option<PathBuf>,
    /// Snapshot the state every this many ledger leaves, so that a restart
    /// replays only the leaves after the newest snapshot; 0 turns it off
    /// [default: 1000000].
    #[arg(long, env = "WEIQUAN_SNAPSHOT_EVERY", value_name = "LEAVES")]
    pub snapshot_every: Option<u64>,
    /// A TOML file with any of the options above.
    #[arg(long, env = "WEIQUAN_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

/// Arguments of `weiquan demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Data folder (must not exist yet) [default: a new folder under the system's temp dir].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free one) [default: 127.0.0.1:8080, or a
    /// free port when a server already has it].
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Events per second streamed into the server.
    #[arg(long, default_value_t = 300)]
    pub rate: u32,
    /// Merchants on the simulated platform.
    #[arg(long, default_value_t = 40)]
    pub merchants: u32,
    /// Days of trading simulated.
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// Random seed of the simulation.
    #[arg(long, default_value_t = 11)]
    pub seed: u64,
    /// Stop once everything is streamed (instead of serving until Ctrl-C).
    #[arg(long)]
    pub exit_when_done: bool,
}

/// Arguments of `weiquan keys`.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    /// What to do.
    #[command(subcommand)]
    pub what: KeysCommand,
}

/// `weiquan keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key and print it (once: only its digest is stored).
    #[command(
        after_help = "Examples:\n  weiquan keys create --role platform\n  weiquan keys create --data ./weiquan-data --role merchant:m1"
    )]
    Create {
        /// platform, regulator, merchant:ID or consumer:ID.
        #[arg(long)]
        role: String,
        /// The key stops working this many days from now, 1 to 36,500 [default: never].
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
        expires_in_days: Option<u32>,
        /// Where the server keeps its keys.
        #[command(flatten)]
        store: KeyStoreArgs,
    },
    /// List API keys: id, role, expiry (never the keys themselves).
    #[command(after_help = "Example:\n  weiquan keys list --data ./weiquan-data")]
    List {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Where the server keeps its keys.
        #[command(flatten)]
        store: KeyStoreArgs,
    },
    /// Revoke an API key, given as the key or its id; a running server stops taking it within seconds.
    #[command(after_help = "Examples:\n  weiquan keys revoke 3f2a9c01d4e5b677\n  weiquan keys revoke wq_…")]
    Revoke {
        /// The key itself, or its id from `weiquan keys list`.
        key: String,
        /// Where the server keeps its keys.
        #[command(flatten)]
        store: KeyStoreArgs,
    },
}

/// Where a server keeps its database (keys, private side).
#[derive(Debug, clap::Args)]
pub struct KeyStoreArgs {
    /// Data folder of the server [default: ./weiquan-data].
    #[arg(long, env = "WEIQUAN_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// PostgreSQL URL, when the server uses one.
    #[arg(long, env = "WEIQUAN_DB", value_name = "URL")]
    pub db: Option<String>,
    /// PostgreSQL schema [default: weiquan].
    #[arg(long, env = "WEIQUAN_DB_SCHEMA", value_name = "SCHEMA")]
    pub db_schema: Option<String>,
}

/// Arguments of `weiquan erase`.
#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    /// The consumer's id, as the platform sent it.
    #[arg(long)]
    pub consumer: String,
    /// Where the server keeps its database.
    #[command(flatten)]
    pub store: KeyStoreArgs,
    /// Print JSON instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `weiquan backtest`.
#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// The ledger: a file from `weiquan audit --ledger`, or a server's `weiquan.db`.
    #[arg(long, value_name = "PATH")]
    pub ledger: PathBuf,
    /// The rules to try (merged over the built-in rulebook, as `--rules` everywhere).
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    /// Final clock of the replay, as the recorded run's `audit --as-of` (the
    /// ledger does not record it): deadlines before it are decided at the end.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub as_of: Option<weiquan_events::Time>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Language of the messages of added findings.
    #[arg(long, value_enum, default_value_t = LangArg::Zh)]
    pub lang: LangArg,
}

/// Arguments of `weiquan backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Data folder of the server.
    #[arg(long, env = "WEIQUAN_DATA", value_name = "DIR", default_value = "weiquan-data")]
    pub data: PathBuf,
    /// Signing key of the server [default: DIR/ledger.key].
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// PostgreSQL URL, when the server uses one (then the command says how to use pg_dump).
    #[arg(long, env = "WEIQUAN_DB", value_name = "URL")]
    pub db: Option<String>,
    /// PostgreSQL schema [default: weiquan].
    #[arg(long, env = "WEIQUAN_DB_SCHEMA", value_name = "SCHEMA")]
    pub db_schema: Option<String>,
    /// A new folder for the backup.
    pub out: PathBuf,
}

/// Arguments of `weiquan restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A folder written by `weiquan backup`.
    pub backup: PathBuf,
    /// The data folder to restore into (must hold no database yet).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
}

/// Arguments of `weiquan keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key (mode 0600); the public key goes to PATH.pub.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Key name, which is also the default checkpoint origin (no spaces or `+`).
    #[arg(long, default_value = "weiquan.local/ledger")]
    pub name: String,
}

/// Arguments of `weiquan verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// What to verify.
    #[command(subcommand)]
    pub what: VerifyCommand,
}

/// What `weiquan verify` checks.
#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// Recompute every hash of a ledger and check every checkpoint's signature and root.
    #[command(after_help = "Example:\n  weiquan verify log run.db --pub run.db.key.pub")]
    Log {
        /// The ledger (SQLite file).
        path: PathBuf,
        /// The log's public key (`name+id+base64`).
        #[arg(long = "pub", value_name = "KEY.pub")]
        public: PathBuf,
    },
    /// Check a receipt: the checkpoint's signature and the leaf's inclusion proof.
    #[command(after_help = "Example:\n  weiquan verify receipt receipt.json --pub run.db.key.pub")]
    Receipt {
        /// The receipt (JSON, from `weiquan ledger receipt`).
        file: PathBuf,
        /// The log's public key.
        #[arg(long = "pub", value_name = "KEY.pub")]
        public: PathBuf,
    },
    /// Recompute a lottery's draw from a ledger alone: fair or not, and why.
    #[command(
        after_help = "Example:\n  weiquan verify draw --ledger run.db --lottery l5 --pub run.db.key.pub\n\nThe algorithm is docs/draw.md (weiquan-draw-v1)."
    )]
    Draw {
        /// The ledger (SQLite file).
        #[arg(long)]
        ledger: PathBuf,
        /// Lottery id.
        #[arg(long)]
        lottery: String,
        /// The log's public key.
        #[arg(long = "pub", value_name = "KEY.pub")]
        public: PathBuf,
    },
    /// Check a cluster's logs: the top log and every partition log, hash by
    /// hash, and every partition root the top log records.
    #[command(
        after_help = "Example:\n  weiquan verify cluster --logs logs/ --cluster weiquan --pub cluster.key.pub\n  weiquan verify cluster --logs logs/ --cluster weiquan --pub cluster.key.pub --since top-yesterday.cp\n\nExit status: 0 when valid, 3 when not (the message names the log and the leaf or entry), 1 when a log cannot be read, 2 when the --since file is not a checkpoint signed with the key given."
    )]
    Cluster {
        /// Where the logs are kept (as `weiquan cluster --logs`).
        #[arg(long)]
        logs: String,
        /// The cluster's name.
        #[arg(long, default_value = "weiquan")]
        cluster: String,
        /// The logs' public key.
        #[arg(long = "pub", value_name = "KEY.pub")]
        public: PathBuf,
        /// A top log checkpoint kept from earlier (a signed note, as in a
        /// receipt's `top.checkpoint`): the top log must extend it, so not
        /// even the key's holder rewrote history since.
        #[arg(long, value_name = "CHECKPOINT")]
        since: Option<PathBuf>,
    },
    /// Check a cluster receipt: the top checkpoint, the top log entry, and the leaf in its partition's tree.
    #[command(
        after_help = "Example:\n  weiquan verify cluster-receipt receipt.json --pub cluster.key.pub\n\nExit status: 0 when valid, 3 when not (the message names the link that fails), 1 when the file cannot be read."
    )]
    ClusterReceipt {
        /// The receipt (JSON, from `weiquan cluster receipt`).
        file: PathBuf,
        /// The logs' public key.
        #[arg(long = "pub", value_name = "KEY.pub")]
        public: PathBuf,
    },
    /// Check a cluster's logs as a monitor does, over HTTP: every checkpoint
    /// and entry `weiquan cluster serve-logs` serves at URL, hashed again,
    /// and every partition root the top log records.
    #[command(
        after_help = "Example:\n  weiquan verify cluster-tiles http://127.0.0.1:8090 --pub cluster.key.pub\n\nNo database: only what the server serves and the cluster's public key.\nExit status: 0 when valid, 3 when not (the message says what differs), 1 when the logs cannot be fetched, 2 when the --since file is not a checkpoint signed with the key given."
    )]
    ClusterTiles {
        /// The base URL of `weiquan cluster serve-logs`.
        url: String,
        /// The logs' public key.
        #[arg(long = "pub", value_name = "KEY.pub")]
        public: PathBuf,
        /// A top log checkpoint kept from earlier (as for `verify cluster`):
        /// the top log must extend it.
        #[arg(long, value_name = "CHECKPOINT")]
        since: Option<PathBuf>,
    },
    /// Check that the tree of OLD_CHECKPOINT is a prefix of the tree of NEW_CHECKPOINT.
    #[command(
        after_help = "Example:\n  weiquan verify consistency old.cp new.cp --proof proof.json --pub run.db.key.pub"
    )]
    Consistency {
        /// The older signed checkpoint.
        old: PathBuf,
        /// The newer signed checkpoint.
        new: PathBuf,
        /// The consistency proof (JSON, from `weiquan ledger proof`).
        #[arg(long, value_name = "FILE")]
        proof: PathBuf,
        /// The log's public key.
        #[arg(long = "pub", value_name = "KEY.pub")]
        public: PathBuf,
    },
}

/// Arguments of `weiquan ledger`.
#[derive(Debug, clap::Args)]
pub struct LedgerArgs {
    /// What to read.
    #[command(subcommand)]
    pub what: LedgerCommand,
}

/// What `weiquan ledger` reads out of a ledger file.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Print a signed checkpoint (the newest, or the one for --size).
    #[command(after_help = "Example:\n  weiquan ledger checkpoint run.db > run.cp")]
    Checkpoint {
        /// The ledger (SQLite file).
        path: PathBuf,
        /// Tree size of an earlier checkpoint.
        #[arg(long)]
        size: Option<u64>,
    },
    /// Print a receipt for one leaf (JSON).
    #[command(after_help = "Example:\n  weiquan ledger receipt run.db 3 > receipt.json")]
    Receipt {
        /// The ledger (SQLite file).
        path: PathBuf,
        /// Leaf index.
        index: u64,
    },
    /// Print a consistency proof between two tree sizes (JSON).
    #[command(after_help = "Example:\n  weiquan ledger proof run.db --old 100 > proof.json")]
    Proof {
        /// The ledger (SQLite file).
        path: PathBuf,
        /// The older tree size.
        #[arg(long)]
        old: u64,
        /// The newer tree size (default: the current size).
        #[arg(long)]
        new: Option<u64>,
    },
}

/// Arguments of `weiquan check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// NDJSON event files; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
}

/// Simulation profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// Ordinary trading.
    Normal,
    /// Double Eleven: pre-sale period, midnight peak, heavy live-stream lotteries.
    Double11,
}

/// Arguments of `weiquan simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Number of merchants (1 to 1,000,000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub merchants: u32,
    /// Number of consumers (1 to 100,000,000).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub consumers: u32,
    /// Days of trading from 2026-11-01 (1 to 3,650).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3_650))]
    pub days: u32,
    /// Random seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of merchants and pay-later consumers that commit a violation (0 to 1).
    #[arg(long, default_value_t = 0.1, value_parser = parse_rate)]
    pub violation_rate: f64,
    /// Average orders per merchant per ordinary day (more than 0, at most 100,000).
    #[arg(long, default_value_t = 10.0, value_parser = parse_orders_per_day)]
    pub orders_per_day: f64,
    /// Ordinary trading or Double Eleven.
    #[arg(long, value_enum, default_value_t = ProfileArg::Normal)]
    pub profile: ProfileArg,
    /// Folder to write `events.ndjson` and `labels.json` into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("`{s}` is not a rate between 0 and 1")),
    }
}

fn parse_orders_per_day(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 100_000.0 => Ok(r),
        _ => Err(format!("`{s}` is not a number of orders above 0 and at most 100000")),
    }
}

/// Arguments of `weiquan rules`.
#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// A rulebook file to check and merge over the built-in one.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

fn parse_time(s: &str) -> Result<weiquan_events::Time, String> {
    weiquan_events::Time::parse(s)
}

/// Arguments of `weiquan cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// NATS server URLs, comma-separated (any reachable one will do).
    #[arg(long, env = "WEIQUAN_NATS", default_value = "nats://127.0.0.1:4222", global = true)]
    pub nats: String,
    /// The cluster's name: its streams and buckets are named after it.
    #[arg(long, default_value = "weiquan", global = true)]
    pub cluster: String,
    /// A file holding the cluster's secret (at least 16 bytes): batches and
    /// findings are sealed with it and refused without it. The same file on
    /// every door, worker and reader.
    #[arg(long, env = "WEIQUAN_CLUSTER_SECRET_FILE", global = true)]
    pub secret_file: Option<PathBuf>,
    /// Where the partition logs and the top log are kept: a PostgreSQL URL
    /// (a schema per log) or a folder (a SQLite file per log, one machine only).
    #[arg(long, env = "WEIQUAN_CLUSTER_LOGS", global = true)]
    pub logs: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub what: ClusterCommand,
}

/// What `weiquan cluster` does.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The front door: route event files, or a platform's NATS subject, into the partitions (creating the streams on first use).
    Route {
        /// Event files (NDJSON); `-` for standard input.
        #[arg(required_unless_present = "subject", conflicts_with = "subject")]
        files: Vec<String>,
        /// Read the platform's events from this NATS subject instead (its
        /// JetStream stream, as `weiquan serve --nats` names it, from the first
        /// message; one event or NDJSON a message), following it until stopped.
        #[arg(long)]
        subject: Option<String>,
        /// With --subject: stop at the stream's last message as of the start.
        #[arg(long)]
        until_caught_up: bool,
        /// Partitions (fixed once the cluster has events).
        #[arg(long, default_value_t = 6)]
        partitions: u32,
        /// Copies of every stream and bucket (3 on a 3-node cluster).
        #[arg(long, default_value_t = 1)]
        replicas: usize,
        /// Move idle partitions' clocks every this many events (and at the end).
        #[arg(long, default_value_t = 10_000)]
        advance_every: u64,
        /// Take over from a door that stopped: give the same FILES (or
        /// --subject) again. From the door's last snapshot when there is one
        /// (--snapshot-every; the input before it is passed over, its last
        /// event checked by id), else from the start; either way a partition
        /// is sent only what it does not hold yet. The old door must be gone.
        #[arg(long)]
        resume: bool,
        /// Share the partitions among N doors: this one (K, from 0) sends the
        /// partitions whose number is K modulo N. Every door of the N reads
        /// the same input; together they send what one door would.
        #[arg(long, value_name = "K/N")]
        shard: Option<weiquan_cluster::door::Shard>,
        /// Save the door's routing state every this many events (0: never):
        /// a door resumed later (--resume) starts from it, reading neither
        /// the input before it again nor what the partitions held then.
        #[arg(long, default_value_t = 1_000_000)]
        snapshot_every: u64,
        /// Threads that read the input beside the one that routes its
        /// events: with 1, it frames and parses the lines; with N > 1, one
        /// frames and N parse; with 0, one frames and the routing thread
        /// parses (the least CPU, for a door that shares its cores). Every
        /// door parses its whole input, so on a machine with cores to spare
        /// more threads let it read faster.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=64))]
        parse_threads: u16,
    },
    /// A worker: take partitions by lease and apply them until stopped (Ctrl-C or SIGTERM releases them).
    Work {
        /// This worker's name, unique in the cluster.
        #[arg(long)]
        name: String,
        /// Snapshot a partition once this many events have been applied since the last (between batches).
        #[arg(long, default_value_t = 100_000)]
        snapshot_every: u64,
        /// Lease length in milliseconds: how soon others take a dead worker's partitions.
        #[arg(long, default_value_t = 3000)]
        lease_ms: u64,
        /// A rulebook file whose keys override the built-in ones (the same on every worker).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// The key signing every log's checkpoints (from `weiquan keygen`; the
        /// same on every worker). Needed with --logs.
        #[arg(long, env = "WEIQUAN_CLUSTER_LOG_KEY", value_name = "KEY")]
        log_key: Option<PathBuf>,
        /// How often the top log records the partition logs, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        top_every_ms: u64,
    },
    /// Print a receipt for a leaf of a partition's log (JSON), with both
    /// proofs: the leaf in its partition's tree, that tree in the top log.
    #[command(
        after_help = "Example:\n  weiquan cluster --cluster demo findings --leaves | head -1   # a finding's partition and leaf\n  weiquan cluster --cluster demo --logs demo-logs receipt 1 4 > receipt.json\n  weiquan verify cluster-receipt receipt.json --pub cluster.key.pub"
    )]
    Receipt {
        /// The partition.
        partition: u32,
        /// The leaf's index in the partition's log (a finding's `leaf`).
        leaf: u64,
        /// Add the leaf's salt and the values behind its commitments (for the
        /// consumer it is about, or a regulator): without them the receipt
        /// proves the leaf, not whose it is.
        #[arg(long)]
        reveal: bool,
    },
    /// Erase a consumer's personal data from every partition log: the salts and
    /// values behind each leaf about them. The logs still verify.
    #[command(after_help = "Example:
  weiquan cluster --cluster demo --logs demo-logs erase --consumer u1024

The partition logs never held the consumer's id or text, only salted
commitments; this removes the salts and originals behind every leaf about them
(events naming them, findings on them), so not even the operator can open those
commitments again. Not touched: the events stream (it keeps what it received
for as long as its retention says), the findings stream and the partitions'
snapshots. Erase while the workers are quiet and serve-logs is stopped.")]
    Erase {
        /// The consumer's id, as the platform sent it.
        #[arg(long)]
        consumer: String,
    },
    /// Serve the cluster's logs to anyone, read-only, over HTTP: each log's
    /// signed checkpoint and its C2SP tlog-tiles (`/top/…`, `/p<n>/…`).
    #[command(after_help = "Example:
  weiquan cluster --cluster demo --logs demo-logs serve-logs --listen 127.0.0.1:8090
  curl http://127.0.0.1:8090/                  # the logs served, with their origins
  curl http://127.0.0.1:8090/p0/checkpoint     # partition 0's newest signed checkpoint
  curl http://127.0.0.1:8090/p0/tile/entries/000.p/12   # partition 0's leaves, at size 12 (its checkpoint's 2nd line)

The leaves hold personal data only as salted commitments, so the tiles are
public; nothing here needs a key or can write.")]
    ServeLogs {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
    },
    /// Print the cluster's findings once each, as `weiquan audit` prints them (NDJSON).
    Findings {
        /// The rulebook the messages come from.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Language of finding messages.
        #[arg(long, value_enum, default_value_t = LangArg::Zh)]
        lang: LangArg,
        /// Add each finding's place in the logs, `partition` and `leaf`
        /// (when the workers keep logs): what `cluster receipt` takes.
        #[arg(long)]
        leaves: bool,
    },
    /// Print each partition's last event applied and routed (advances count as events), its owner, and whether the workers have caught up.
    Status,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// `serve --help` lists every option a --config file takes: each flag but
    /// --config itself, by its TOML name.
    #[test]
    fn serve_help_names_every_config_key() {
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").expect("serve");
        let help = serve.get_after_help().map(|h| h.to_string()).unwrap_or_default();
        let listed = help.split("names, `-` written `_` (").nth(1).unwrap_or_default();
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "config" | "help") {
                continue;
            }
            let key = long.replace('-', "_");
            assert!(
                listed.split([',', ' ', '\n', ')', '.']).any(|k| k == key),
                "{key} is missing from serve's help: {listed}"
            );
        }
    }
}
