//! API key and admin token format, checksum, hashing and masking.
//!
//! A key is `sk_live_` (or `sk_test_` for test mode) + 32 random base62 characters (about 190
//! bits) + a 6-character base62 CRC32 of everything before it. The checksum lets the API refuse
//! a mistyped or made-up key before any lookup. Only `HMAC-SHA256(pepper, key)` is stored.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::base62;

pub const LIVE_PREFIX: &str = "sk_live_";
pub const TEST_PREFIX: &str = "sk_test_";
pub const ADMIN_PREFIX: &str = "adm_";
/// Random characters in a newly made key.
pub const RANDOM_LEN: usize = 32;
pub const CHECKSUM_LEN: usize = 6;
/// Random characters in an admin token.
pub const ADMIN_RANDOM_LEN: usize = 40;
/// Longest key accepted for parsing: anything longer is refused without hashing.
pub const MAX_KEY_LEN: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    Live,
    Test,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyFormatError {
    #[error("the key does not start with sk_live_ or sk_test_")]
    Prefix,
    #[error("the key has the wrong length")]
    Length,
    #[error("the key has characters outside base62")]
    Charset,
    #[error("the key's checksum does not match")]
    Checksum,
}

/// A key that passed the format and checksum checks (not yet looked up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    pub raw: &'a str,
    pub mode: KeyMode,
}

fn checksum(payload: &str) -> String {
    base62::encode_fixed(u64::from(crc32fast::hash(payload.as_bytes())), CHECKSUM_LEN)
}

/// Whether `sum` is the base62 checksum of `payload`, without allocating.
fn checksum_matches(payload: &str, sum: &[u8]) -> bool {
    let mut value = u64::from(crc32fast::hash(payload.as_bytes()));
    if sum.len() != CHECKSUM_LEN {
        return false;
    }
    for &c in sum.iter().rev() {
        if base62::ALPHABET[(value % 62) as usize] != c {
            return false;
        }
        value /= 62;
    }
    true
}

/// Makes a new key of the given mode.
pub fn generate(mode: KeyMode) -> String {
    let prefix = match mode {
        KeyMode::Live => LIVE_PREFIX,
        KeyMode::Test => TEST_PREFIX,
    };
    let mut key = String::with_capacity(prefix.len() + RANDOM_LEN + CHECKSUM_LEN);
    key.push_str(prefix);
    key.push_str(&base62::random(RANDOM_LEN));
    let sum = checksum(&key);
    key.push_str(&sum);
    key
}

/// Checks prefix, length, alphabet and checksum, in that order, without any lookup.
pub fn parse(raw: &str) -> Result<ParsedKey<'_>, KeyFormatError> {
    let mode = if raw.starts_with(LIVE_PREFIX) {
        KeyMode::Live
    } else if raw.starts_with(TEST_PREFIX) {
        KeyMode::Test
    } else {
        return Err(KeyFormatError::Prefix);
    };
    if raw.len() < LIVE_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN || raw.len() > MAX_KEY_LEN {
        return Err(KeyFormatError::Length);
    }
    let body = &raw[LIVE_PREFIX.len()..];
    if !base62::is_base62(body) {
        return Err(KeyFormatError::Charset);
    }
    let (payload, sum) = raw.split_at(raw.len() - CHECKSUM_LEN);
    if !checksum_matches(payload, sum.as_bytes()) {
        return Err(KeyFormatError::Checksum);
    }
    Ok(ParsedKey { raw, mode })
}

/// The two stored parts of the masked form, `sk_live_7f9a2b` and `a3f1`.
pub fn mask_parts(key: &str) -> (String, String) {
    let head_len = (LIVE_PREFIX.len() + 6).min(key.len());
    let tail_start = key.len().saturating_sub(4);
    (key[..head_len].to_string(), key[tail_start..].to_string())
}

/// The masked form shown after creation: `sk_live_7f9a2b...a3f1`.
pub fn masked(head: &str, tail: &str) -> String {
    format!("{head}...{tail}")
}

/// HMAC-SHA256 of secrets (keys and tokens) under the server's pepper, with the key schedule
/// done once: hashing a secret on the authentication hot path costs only the message blocks.
#[derive(Clone)]
pub struct SecretHasher {
    prepared: Hmac<Sha256>,
}

impl SecretHasher {
    pub fn new(pepper: &[u8]) -> Self {
        let prepared = match <Hmac<Sha256> as Mac>::new_from_slice(pepper) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        Self { prepared }
    }

    pub fn hash(&self, secret: &str) -> [u8; 32] {
        let mut mac = self.prepared.clone();
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHasher(..)")
    }
}

/// A new account admin token, `adm_` + 40 base62 characters.
pub fn generate_admin_token() -> String {
    format!("{ADMIN_PREFIX}{}", base62::random(ADMIN_RANDOM_LEN))
}

/// Cheap shape check of an admin token before any lookup.
pub fn looks_like_admin_token(raw: &str) -> bool {
    raw.len() == ADMIN_PREFIX.len() + ADMIN_RANDOM_LEN
        && raw.starts_with(ADMIN_PREFIX)
        && base62::is_base62(&raw[ADMIN_PREFIX.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse() {
        for mode in [KeyMode::Live, KeyMode::Test] {
            let key = generate(mode);
            assert_eq!(key.len(), 8 + RANDOM_LEN + CHECKSUM_LEN);
            assert_eq!(parse(&key).map(|p| p.mode), Ok(mode));
        }
    }

    #[test]
    fn bad_keys_are_refused_by_shape() {
        let key = generate(KeyMode::Live);
        assert_eq!(parse("pk_live_abc"), Err(KeyFormatError::Prefix));
        assert_eq!(parse("sk_live_abc"), Err(KeyFormatError::Length));
        assert_eq!(
            parse(&format!("{key}{}", "a".repeat(100))),
            Err(KeyFormatError::Length)
        );
        let mut chars: Vec<char> = key.chars().collect();
        chars[12] = '-';
        let bad: String = chars.iter().collect();
        assert_eq!(parse(&bad), Err(KeyFormatError::Charset));
        // Change one random character: the checksum catches it.
        chars[12] = if key.as_bytes()[12] == b'a' { 'b' } else { 'a' };
        let bad: String = chars.into_iter().collect();
        assert_eq!(parse(&bad), Err(KeyFormatError::Checksum));
    }

    #[test]
    fn masking() {
        let (head, tail) = mask_parts("sk_live_7f9a2bXXXXXXXXXXXXXXXXXXXXXXXXXXa3f1");
        assert_eq!(masked(&head, &tail), "sk_live_7f9a2b...a3f1");
    }

    /// HMAC-SHA256 computed from scratch, the reference the prepared hasher must equal.
    fn plain_hmac(pepper: &[u8], secret: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper).expect("any key length");
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }

    #[test]
    fn hashing_depends_on_pepper() {
        let (a, b) = (SecretHasher::new(b"a"), SecretHasher::new(b"b"));
        assert_ne!(a.hash("k"), b.hash("k"));
        assert_eq!(a.hash("k"), a.hash("k"));
    }

    #[test]
    fn prepared_hasher_equals_plain_hmac() {
        let h = SecretHasher::new(b"pepper-pepper-pepper");
        assert_eq!(
            h.hash("sk_live_x"),
            plain_hmac(b"pepper-pepper-pepper", "sk_live_x")
        );
        // Reused: the prepared state is cloned, never consumed.
        assert_eq!(
            h.hash("adm_y"),
            plain_hmac(b"pepper-pepper-pepper", "adm_y")
        );
    }

    #[test]
    fn admin_tokens() {
        let t = generate_admin_token();
        assert!(looks_like_admin_token(&t));
        assert!(!looks_like_admin_token("adm_short"));
    }
}
