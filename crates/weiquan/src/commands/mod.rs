//! One module per subcommand, plus what they share: opening inputs and the
//! error kinds that decide the exit status.

pub mod audit;
pub mod backtest;
pub mod backup;
pub mod check;
pub mod cluster;
pub mod demo;
pub mod draw_check;
pub mod keygen;
pub mod ledger;
pub mod rules;
pub mod serve;
pub mod simulate;
pub mod verify;

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use weiquan_engine::Rulebook;

/// An error in how weiquan was called (exit status 2), as opposed to a file
/// that cannot be read (exit status 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// One input stream with its display name and size (when known).
pub struct Input {
    /// File name as given; `None` for standard input.
    pub name: Option<String>,
    /// Buffered reader.
    pub reader: Box<dyn BufRead + Send>,
    /// Size in bytes, for progress; `None` for pipes.
    pub size: Option<u64>,
}

/// Opens every input before reading any, so that a missing file fails the run
/// before anything is printed.
pub fn open_inputs(files: &[String]) -> Result<Vec<Input>> {
    if files.iter().filter(|f| *f == "-").count() > 1 {
        return Err(UsageError("standard input (`-`) can be given only once".into()).into());
    }
    files
        .iter()
        .map(|f| {
            if f == "-" {
                return Ok(Input {
                    name: None,
                    reader: Box::new(BufReader::with_capacity(1 << 16, io::stdin())),
                    size: None,
                });
            }
            // A folder opens as a file on Unix and fails only at the first read, after
            // other inputs' findings were printed: refused here, before anything runs.
            if std::path::Path::new(f).is_dir() {
                return Err(UsageError(format!("{f} is a folder; give the event files in it")).into());
            }
            let file = File::open(f).with_context(|| format!("cannot read {f}: check the path and permissions"))?;
            let size = file.metadata().ok().map(|m| m.len());
            Ok(Input {
                name: Some(f.clone()),
                reader: Box::new(BufReader::with_capacity(1 << 16, file)),
                size,
            })
        })
        .collect()
}

/// The built-in rulebook, or the built-in one merged with the file at `path`.
pub fn load_rules(path: Option<&Path>) -> Result<Arc<Rulebook>> {
    let Some(path) = path else {
        return Ok(Arc::new(Rulebook::builtin()));
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read rules file {}", path.display()))?;
    Rulebook::with_overrides(&text)
        .map(Arc::new)
        .map_err(|e| UsageError(format!("rules file {}: {e}", path.display())).into())
}

/// The error and its causes, each said once, for the one line weiquan prints. Several
/// error types (the stores' among them) put their source's text in their own message
/// and also return it as `source()`, which `{:#}` would print twice.
pub fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_says_each_cause_once() {
        let io = std::io::Error::other("disk I/O error");
        let store = weiquan_ledger::StoreError::new("reading run.db", io);
        let e = anyhow::Error::from(store).context("cannot open the ledger");
        assert_eq!(format!("{e:#}").matches("disk I/O error").count(), 2, "{e:#}");
        assert_eq!(describe(&e), "cannot open the ledger: reading run.db: disk I/O error");
        // A cause its parent does not repeat is kept.
        let plain = anyhow::anyhow!("root cause").context("outer");
        assert_eq!(describe(&plain), "outer: root cause");
    }
}
