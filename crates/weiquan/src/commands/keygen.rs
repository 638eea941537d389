//! `weiquan keygen`: an Ed25519 signing key for a ledger.

use crate::cli::KeygenArgs;
use anyhow::Result;
use std::io::Write;
use std::path::Path;

pub use weiquan_store::keyfile::pub_path;

/// Writes a new key pair: `path` (mode 0600, never overwritten) and `path.pub`.
pub fn write_key_pair(path: &Path, name: &str) -> Result<()> {
    use weiquan_store::keyfile::KeyFileError;
    weiquan_store::keyfile::write_key_pair(path, name).map_err(|e| match e {
        KeyFileError::Key(k) => super::UsageError(k.to_string()).into(),
        KeyFileError::Io { path, source } => {
            let why = match source.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    "it exists, and keys are never overwritten; choose another path or move it away".to_owned()
                }
                std::io::ErrorKind::NotFound => "its folder does not exist; create the folder first".to_owned(),
                _ => source.to_string(),
            };
            anyhow::anyhow!("cannot create {}: {why}", path.display())
        }
    })
}

/// Runs `weiquan keygen`.
pub fn run(args: &KeygenArgs, err: &mut dyn Write) -> Result<()> {
    write_key_pair(&args.out, &args.name)?;
    writeln!(
        err,
        "wrote private key {} (keep it secret) and public key {}",
        args.out.display(),
        pub_path(&args.out).display()
    )?;
    Ok(())
}
