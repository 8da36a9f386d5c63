//! Secrets at rest (WhatsApp access tokens, app secrets): AES-256-GCM under a key derived from
//! `EZPULZE_SECRETS_KEY`, stored as `nonce (12 bytes) || ciphertext+tag`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the stored secret is malformed or was sealed with another key")]
    Open,
    #[error("sealing failed")]
    Seal,
}

#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn new(key_material: &str) -> Self {
        let key = Sha256::digest(key_material.as_bytes());
        Self {
            cipher: Aes256Gcm::new(&key),
        }
    }

    pub fn seal(&self, plaintext: &str) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .map_err(|_| SecretError::Seal)?;
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<String, SecretError> {
        if sealed.len() < 12 + 16 {
            return Err(SecretError::Open);
        }
        let (nonce, ct) = sealed.split_at(12);
        let pt = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| SecretError::Open)?;
        String::from_utf8(pt).map_err(|_| SecretError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let s = Sealer::new("k1");
        let sealed = s.seal("EAAG-token").expect("seal");
        assert!(!sealed.windows(4).any(|w| w == b"EAAG"));
        assert_eq!(s.open(&sealed).expect("open"), "EAAG-token");
        assert!(Sealer::new("k2").open(&sealed).is_err());
        assert!(s.open(b"short").is_err());
    }
}
