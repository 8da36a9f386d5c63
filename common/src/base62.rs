//! Base62 alphabet (0-9, A-Z, a-z) used by API keys and admin tokens.

pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Encodes `value` in exactly `width` base62 digits (most significant first).
/// Digits beyond `width` are dropped, so callers pick a width that holds the value.
pub fn encode_fixed(mut value: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out.into_iter().map(char::from).collect()
}

/// `count` random base62 characters from the operating system's generator.
pub fn random(count: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..count)
        .map(|_| char::from(ALPHABET[rng.random_range(0..62)]))
        .collect()
}

pub fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_encoding() {
        assert_eq!(encode_fixed(0, 6), "000000");
        assert_eq!(encode_fixed(61, 2), "0z");
        assert_eq!(encode_fixed(62, 2), "10");
        assert_eq!(encode_fixed(u64::from(u32::MAX), 6).len(), 6);
    }

    #[test]
    fn random_is_base62() {
        let r = random(40);
        assert_eq!(r.len(), 40);
        assert!(is_base62(&r));
    }
}
