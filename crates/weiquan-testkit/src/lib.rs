//! What weiquan's test suites share, as a crate (a dev-dependency of each
//! crate whose tests use it): whether PostgreSQL and NATS are here, what an
//! example case requires, a platform's webhook receiver, and where the
//! workspace is.

use std::path::PathBuf;

pub mod expected;
pub mod nats;
pub mod process;
pub mod services;
pub mod streams;
pub mod webhook;

pub use expected::{expected, expected_file, pairs};
pub use services::{available, nats_available, pg_url, postgres_available};

/// The value of the unlabelled metric `name` in a Prometheus text exposition
/// (`/metrics`), if it is there and a whole number.
pub fn gauge(metrics: &str, name: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A benchmark's setting: environment variable `name` as a `T`, or
/// `default` when it is unset or does not parse.
pub fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The workspace root (the cases, repros and docs are under it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A name no earlier run used (`prefix-<pid>-<nanos>`), for streams and
/// buckets on a shared server.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}
