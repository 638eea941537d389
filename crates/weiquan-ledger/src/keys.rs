//! Signing keys in the signed-note encodings: a private signer key
//! (`PRIVATE+KEY+name+id+base64`) and a public verifier key (`name+id+base64`).

use signed_note::{StandardSigner, StandardVerifier};

/// A key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key name is not a valid signed-note name.
    #[error("key name `{0}` is not valid: use a non-empty name without spaces or `+`, like weiquan.example/log")]
    Name(String),
    /// Not a signer key.
    #[error("not a signed-note private key (expected PRIVATE+KEY+name+id+base64): {0}")]
    Signer(String),
    /// Not a verifier key.
    #[error("not a signed-note verifier key (expected name+id+base64): {0}")]
    Verifier(String),
}

/// A new Ed25519 key pair for `name`: `(signer key, verifier key)`.
pub fn generate_key(name: &str) -> Result<(String, String), KeyError> {
    if !signed_note::is_key_name_valid(name) {
        return Err(KeyError::Name(name.to_owned()));
    }
    Ok(signed_note::generate_key(&mut rand_core::OsRng, name))
}

/// Parses a signer key (surrounding whitespace ignored).
pub fn load_signer(text: &str) -> Result<StandardSigner, KeyError> {
    StandardSigner::new(text.trim()).map_err(|e| KeyError::Signer(e.to_string()))
}

/// Parses a verifier key (surrounding whitespace ignored).
pub fn load_verifier(text: &str) -> Result<StandardVerifier, KeyError> {
    StandardVerifier::new(text.trim()).map_err(|e| KeyError::Verifier(e.to_string()))
}
