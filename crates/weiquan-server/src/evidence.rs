//! Complaints' evidence files: checked by their first bytes, limited in size
//! and number, kept content-addressed by SHA-256 outside the log and sealed
//! at rest (XChaCha20-Poly1305 under a key kept in the database, the hash as
//! associated data, so a sealed file cannot be passed off as another).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::RngCore;
use sha2::Digest;

/// Most files in one complaint.
pub const MAX_FILES: usize = 5;
/// Largest file, in bytes.
pub const MAX_FILE_BYTES: usize = 8 << 20;
/// Most bytes of evidence in one complaint.
pub const MAX_TOTAL_BYTES: usize = 20 << 20;

/// The name of the sealing key among the database's secrets.
pub const KEY_NAME: &str = "evidence_key";

/// What a file is, by its first bytes: an image, a PDF, a video, or plain
/// text (UTF-8 without control characters other than tab and line ends);
/// `None` for anything else.
pub fn kind_of(bytes: &[u8]) -> Option<&'static str> {
    const ALLOWED: [&str; 9] = [
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/heif",
        "application/pdf",
        "video/mp4",
        "video/quicktime",
        "video/webm",
    ];
    if let Some(t) = infer::get(bytes) {
        return ALLOWED.iter().find(|k| **k == t.mime_type()).copied();
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let plain = !text.is_empty() && !text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'));
    plain.then_some("text/plain")
}

/// Hex SHA-256 of `bytes`: the file's address, and what the log records.
pub fn address(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `bytes` sealed under `key`: a random nonce, then the ciphertext with its tag.
pub fn seal(key: &[u8; 32], sha256: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; 24];
    rand_core::OsRng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: bytes,
                aad: sha256.as_bytes(),
            },
        )
        .map_err(|_| "sealing failed".to_owned())?;
    Ok([&nonce[..], &sealed].concat())
}

/// The content of a sealed file, checked against its address.
pub fn open(key: &[u8; 32], sha256: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
    if sealed.len() < 24 {
        return Err("the sealed file is truncated".into());
    }
    let (nonce, body) = sealed.split_at(24);
    let cipher = XChaCha20Poly1305::new(key.into());
    let plain = cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: sha256.as_bytes(),
            },
        )
        .map_err(|_| "the sealed file does not open: altered, or sealed under another key".to_owned())?;
    if address(&plain) != sha256 {
        return Err("the file does not hash to its address".into());
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_known_by_their_first_bytes_not_their_names() {
        assert_eq!(kind_of(b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00"), Some("image/jpeg"));
        assert_eq!(kind_of(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"), Some("image/png"));
        assert_eq!(kind_of(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3"), Some("application/pdf"));
        assert_eq!(
            kind_of(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"),
            Some("video/mp4")
        );
        assert_eq!(kind_of("聊天记录：商家说不退款\n".as_bytes()), Some("text/plain"));
        assert_eq!(kind_of(b"MZ\x90\x00\x03\x00\x00\x00"), None, "a Windows program");
        assert_eq!(kind_of(b"PK\x03\x04\x14\x00"), None, "a zip");
        assert_eq!(kind_of(b"text with a \x00 in it"), None);
        assert_eq!(kind_of(b""), None);
    }

    #[test]
    fn a_sealed_file_opens_only_whole_under_its_key_and_address() {
        let key = [7u8; 32];
        let file = b"%PDF-1.7 evidence";
        let sha = address(file);
        let sealed = seal(&key, &sha, file).expect("seal");
        assert!(!sealed.windows(file.len()).any(|w| w == file), "not in the clear");
        assert_eq!(open(&key, &sha, &sealed).expect("open"), file);
        assert!(open(&[8u8; 32], &sha, &sealed).is_err(), "another key");
        assert!(open(&key, &address(b"other"), &sealed).is_err(), "another address");
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(open(&key, &sha, &flipped).is_err(), "altered");
        assert!(open(&key, &sha, &sealed[..10]).is_err(), "truncated");
        assert_ne!(seal(&key, &sha, file).expect("seal"), sealed, "a fresh nonce each time");
    }
}
