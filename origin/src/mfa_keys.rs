//! The keys of second factors: they seal TOTP secrets (XChaCha20-Poly1305, the factor id as
//! associated data) and key the hashes of recovery codes (HMAC-SHA-256).
//!
//! `MFA_ENCRYPTION_KEY_FILE` holds one base64url 32-byte key per line, the current one first.
//! The current key seals; every key opens what it sealed (a sealed secret names its key by id),
//! and recovery codes are looked up under every key, so a new key can be put first without
//! locking anyone out. Unset: a key is generated once into `DATA_DIR`, like the signing key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::config::KeyConfig;
use crate::keys::{parse_seed, write_private};

const NONCE_LEN: usize = 24;

/// One key and its id (the first 8 bytes of its SHA-256, in hex).
struct MfaKey {
    id: String,
    key: [u8; 32],
}

/// The current key first, then older ones still accepted.
pub struct MfaKeys {
    keys: Vec<MfaKey>,
}

impl std::fmt::Debug for MfaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<_> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("MfaKeys").field("ids", &ids).finish()
    }
}

/// A secret sealed under the key `key_id`: nonce, then ciphertext and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

fn key_id(key: &[u8; 32]) -> String {
    Sha256::digest(key)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl MfaKeys {
    /// Keys from the text of a key file: one per line, blank lines and `#` comments skipped.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = parse_seed(line).map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
            keys.push(MfaKey {
                id: key_id(&key),
                key,
            });
        }
        if keys.is_empty() {
            anyhow::bail!("no key in it");
        }
        Ok(Self { keys })
    }

    /// A fresh random key, alone.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self {
            keys: vec![MfaKey {
                id: key_id(&key),
                key,
            }],
        }
    }

    /// The keys `cfg` names, or the development key in `DATA_DIR` (made on first use).
    pub fn load(cfg: &KeyConfig) -> anyhow::Result<Self> {
        if let Some(path) = &cfg.mfa_key_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("MFA_ENCRYPTION_KEY_FILE {}: {e}", path.display()))?;
            return Self::parse(&text)
                .map_err(|e| anyhow::anyhow!("MFA_ENCRYPTION_KEY_FILE {}: {e}", path.display()));
        }
        let path = cfg.data_dir.join("mfa-key");
        if path.exists() {
            let text = std::fs::read_to_string(&path)?;
            return Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
        }
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| anyhow::anyhow!("DATA_DIR {}: {e}", cfg.data_dir.display()))?;
        let keys = Self::generate();
        write_private(&path, &URL_SAFE_NO_PAD.encode(keys.keys[0].key))?;
        tracing::warn!(
            path = %path.display(),
            "no MFA_ENCRYPTION_KEY_FILE configured: generated a new key for second factors \
             (fine for development; in production provide MFA_ENCRYPTION_KEY_FILE from a secret)"
        );
        Ok(keys)
    }

    /// Seals `plain` under the current key, bound to `aad` (a sealed value moved to another
    /// row does not open).
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Sealed {
        let current = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new((&current.key).into());
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            .unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Sealed {
            key_id: current.id.clone(),
            bytes,
        }
    }

    /// What `sealed` holds, if a known key sealed it for `aad` and it is intact.
    pub fn open(&self, aad: &[u8], sealed: &Sealed) -> Option<Vec<u8>> {
        let key = self.keys.iter().find(|k| k.id == sealed.key_id)?;
        if sealed.bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.bytes.split_at(NONCE_LEN);
        XChaCha20Poly1305::new((&key.key).into())
            .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
            .ok()
    }

    fn mac(key: &[u8; 32], code: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The stored form of a recovery code: its HMAC under the current key.
    pub fn code_hash(&self, code: &str) -> Vec<u8> {
        Self::mac(&self.keys[0].key, code)
    }

    /// A number drawn from `input` under the current key for `purpose`: the same input
    /// draws the same number on every replica, and nobody without the key can tell which.
    pub fn draw(&self, purpose: &str, input: &str) -> u64 {
        let mac = Self::mac(&self.keys[0].key, &format!("{purpose}\0{input}"));
        let mut first = [0u8; 8];
        first.copy_from_slice(&mac[..8]);
        u64::from_be_bytes(first)
    }

    /// Its HMAC under every key, the current one first: what a stored code may be.
    pub fn code_hashes(&self, code: &str) -> Vec<Vec<u8>> {
        self.keys.iter().map(|k| Self::mac(&k.key, code)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_line() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        URL_SAFE_NO_PAD.encode(key)
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_row() {
        let keys = MfaKeys::generate();
        let sealed = keys.seal(b"factor-1", b"secret bytes");
        assert_ne!(sealed.bytes, b"secret bytes".to_vec());
        assert_eq!(keys.open(b"factor-1", &sealed).unwrap(), b"secret bytes");
        assert!(
            keys.open(b"factor-2", &sealed).is_none(),
            "bound to its row"
        );
        let mut tampered = sealed.clone();
        *tampered.bytes.last_mut().unwrap() ^= 1;
        assert!(keys.open(b"factor-1", &tampered).is_none());
        assert!(MfaKeys::generate().open(b"factor-1", &sealed).is_none());
        let again = keys.seal(b"factor-1", b"secret bytes");
        assert_ne!(again.bytes, sealed.bytes, "a fresh nonce each time");
    }

    #[test]
    fn a_rotated_key_file_still_opens_and_finds_what_the_old_key_made() {
        let (old, new) = (key_line(), key_line());
        let before = MfaKeys::parse(&format!("{old}\n")).unwrap();
        let sealed = before.seal(b"f", b"totp secret");
        let code_hash = before.code_hash("ABCD");
        let after = MfaKeys::parse(&format!("# current first\n{new}\n\n{old}\n")).unwrap();
        assert_eq!(after.open(b"f", &sealed).unwrap(), b"totp secret");
        assert!(after.code_hashes("ABCD").contains(&code_hash));
        assert_ne!(
            after.code_hash("ABCD"),
            code_hash,
            "the new key hashes new codes"
        );
        assert_ne!(after.seal(b"f", b"x").key_id, sealed.key_id);
    }

    #[test]
    fn bad_key_files_are_refused_and_keys_never_printed() {
        assert!(MfaKeys::parse("").is_err());
        assert!(MfaKeys::parse("not base64!").is_err());
        assert!(MfaKeys::parse("c2hvcnQ").is_err(), "too short");
        let line = key_line();
        let keys = MfaKeys::parse(&line).unwrap();
        assert!(!format!("{keys:?}").contains(&line));
    }

    #[test]
    fn the_development_key_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("mfa-keys-{}", uuid::Uuid::now_v7()));
        let cfg = KeyConfig {
            signing_key_file: None,
            verify_keys_file: None,
            mfa_key_file: None,
            data_dir: dir.clone(),
        };
        let first = MfaKeys::load(&cfg).unwrap();
        let second = MfaKeys::load(&cfg).unwrap();
        assert_eq!(first.keys[0].id, second.keys[0].id);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
