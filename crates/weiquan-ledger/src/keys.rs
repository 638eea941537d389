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

/// Whether `signer` is the private half of `verifier`: same name and key id,
/// and a signature it makes verifies. A server whose key and public key do
/// not match signs checkpoints nobody can verify.
pub fn pair_matches(signer: &StandardSigner, verifier: &StandardVerifier) -> bool {
    use signed_note::{Signer, Verifier};
    let probe = b"weiquan: does this key pair match?\n";
    signer.name() == verifier.name()
        && signer.key_id() == verifier.key_id()
        && signer.sign(probe).is_ok_and(|sig| verifier.verify(probe, &sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pair made together matches; a private key with another pair's public one does not.
    #[test]
    fn only_the_two_halves_of_one_pair_match() {
        let (s1, v1) = generate_key("weiquan.test/a").expect("key");
        let (s2, v2) = generate_key("weiquan.test/a").expect("key");
        let load = |s: &str, v: &str| (load_signer(s).expect("signer"), load_verifier(v).expect("verifier"));
        let (a, b) = load(&s1, &v1);
        assert!(pair_matches(&a, &b));
        let (a, b) = load(&s1, &v2);
        assert!(!pair_matches(&a, &b));
        let (a, b) = load(&s2, &v1);
        assert!(!pair_matches(&a, &b));
    }
}
