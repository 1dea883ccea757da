//! Token signing keys: loaded from a file or secret, or generated once into `DATA_DIR`.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use users_core::token::{Jwks, KeySet, Signer};

use crate::config::KeyConfig;

/// The signer and every public key that verifies tokens.
#[derive(Debug)]
pub struct Keys {
    pub signer: Signer,
    pub verify: KeySet,
}

/// A base64url 32-byte key (padding tolerated).
pub(crate) fn parse_seed(text: &str) -> anyhow::Result<[u8; 32]> {
    let raw = URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(|_| anyhow::anyhow!("not base64url"))?;
    raw.try_into()
        .map_err(|_| anyhow::anyhow!("the seed must be 32 bytes"))
}

/// Writes a new file readable by its owner only (`0600`); fails if it exists.
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(contents.as_bytes())
}

/// Loads or creates the keys described by `cfg`.
pub fn load(cfg: &KeyConfig) -> anyhow::Result<Keys> {
    let seed = match &cfg.signing_key_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("SIGNING_KEY_FILE {}: {e}", path.display()))?;
            parse_seed(&text)
                .map_err(|e| anyhow::anyhow!("SIGNING_KEY_FILE {}: {e}", path.display()))?
        }
        None => {
            let path = cfg.data_dir.join("signing-key");
            if path.exists() {
                let text = std::fs::read_to_string(&path)?;
                parse_seed(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            } else {
                std::fs::create_dir_all(&cfg.data_dir)
                    .map_err(|e| anyhow::anyhow!("DATA_DIR {}: {e}", cfg.data_dir.display()))?;
                let mut seed = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut seed);
                write_private(&path, &URL_SAFE_NO_PAD.encode(seed))?;
                tracing::warn!(
                    path = %path.display(),
                    "no SIGNING_KEY_FILE configured: generated a new token signing key (fine for development; \
                     in production provide SIGNING_KEY_FILE from a secret)"
                );
                seed
            }
        }
    };
    let signer = Signer::from_seed(seed);
    let mut verify = KeySet::new();
    verify.insert(signer.public_key());
    if let Some(path) = &cfg.verify_keys_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("VERIFY_KEYS_FILE {}: {e}", path.display()))?;
        let jwks: Jwks = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("VERIFY_KEYS_FILE {}: not a JWKS: {e}", path.display()))?;
        verify.merge(KeySet::from_jwks(&jwks));
    }
    tracing::info!(
        kid = signer.kid(),
        verify_keys = verify.len(),
        "token keys loaded"
    );
    Ok(Keys { signer, verify })
}
