//! Signing-key files: the private key (mode 0600, never overwritten) and its
//! public half beside it as `PATH.pub`.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A key file that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The key name is not valid.
    #[error(transparent)]
    Key(#[from] weiquan_ledger::KeyError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `PATH.pub` beside `PATH`.
pub fn pub_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Writes a new key pair named `name`: `path` (mode 0600) and `path.pub`.
/// Neither may exist (a key, or a public key someone relies on, is never
/// overwritten), and a pair that cannot be written whole leaves no half behind.
pub fn write_key_pair(path: &Path, name: &str) -> Result<(), KeyFileError> {
    let (skey, vkey) = weiquan_ledger::generate_key(name)?;
    let new_file = |mode: u32| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        let _ = mode;
        options
    };
    let public = pub_path(path);
    let mut private = new_file(0o600).open(path).map_err(io(path))?;
    let written = new_file(0o644)
        .open(&public)
        .map_err(io(&public))
        .and_then(|mut f| writeln!(f, "{vkey}").map_err(io(&public)))
        .and_then(|()| writeln!(private, "{skey}").map_err(io(path)));
    if written.is_err() {
        // Only what this call created goes: the public half only when it was made here.
        let _ = std::fs::remove_file(path);
        if public.is_file() && std::fs::read_to_string(&public).is_ok_and(|t| t.trim() == vkey) {
            let _ = std::fs::remove_file(&public);
        }
    }
    written
}

/// Reads the signer at `path`, first creating a key pair named `name` there if there is none.
/// Returns the signer and whether it was created.
pub fn load_or_create(path: &Path, name: &str) -> Result<(signed_note::StandardSigner, bool), KeyFileError> {
    let created = !path.exists();
    if created {
        write_key_pair(path, name)?;
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    Ok((weiquan_ledger::load_signer(&text)?, created))
}
