//! Phone-number normalisation to E.164.
//!
//! Accepted input: an optional leading `+` or `00` (international prefix), then the full
//! international number (country code first). Spaces, dashes, dots, slashes and parentheses
//! are ignored. The result has 8 to 15 digits and does not start with `0`.
//!
//! A national trunk `0` written after the country code (`+44 (0) 20 7946 0958`,
//! `+49 030 1234567`) is dropped for the countries in [`TRUNK_ZERO`]: their numbering plans
//! dial a `0` before national numbers and have no national number that starts with one. Other
//! countries keep it (Italy's `+39 06 …` is a number that starts with `0`).
//!
//! ```
//! use ezpulze_payload::phone::PhoneE164;
//! let p = PhoneE164::parse("+1 (650) 555-1234").expect("valid");
//! assert_eq!(p.as_str(), "+16505551234");
//! assert_eq!(p.digits(), "16505551234");
//! assert_eq!(PhoneE164::parse("0044 20 7946 0958").expect("valid").as_str(), "+442079460958");
//! assert!(PhoneE164::parse("+1 650 CALL NOW").is_err());
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Fewest digits of an accepted number.
pub const MIN_DIGITS: usize = 8;
/// Most digits of an accepted number (E.164 maximum).
pub const MAX_DIGITS: usize = 15;

/// Country calling codes whose numbering plan has a trunk prefix `0` and no national number
/// beginning with `0`: a `0` right after one of them is the trunk prefix and is dropped.
/// (Country codes are prefix-free, so a number starting with one of these has that code.)
pub const TRUNK_ZERO: &[&str] = &[
    "20", "27", "31", "32", "33", "41", "43", "44", "46", "49", "51", "54", "58", "60", "61", "62",
    "63", "64", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98", "212",
    "213", "233", "234", "254", "255", "256", "263", "353", "358", "380", "381", "385", "386",
    "387", "880", "886", "961", "962", "963", "964", "966", "967", "971", "972", "977",
];

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Nothing but separators.
    #[error("phone number is empty")]
    Empty,
    /// A letter or other character that is neither a digit nor a separator.
    #[error("phone number contains an invalid character {0:?}")]
    InvalidCharacter(char),
    /// A `+` anywhere but at the start, or `+` followed by `00`.
    #[error("phone number has a misplaced '+'")]
    MisplacedPlus,
    /// The country code cannot start with 0.
    #[error("phone number must start with a country code (first digit cannot be 0)")]
    LeadingZero,
    /// Fewer than [`MIN_DIGITS`] digits.
    #[error("phone number has {0} digits; at least 8 are needed")]
    TooShort(usize),
    /// More than [`MAX_DIGITS`] digits.
    #[error("phone number has {0} digits; at most 15 are allowed")]
    TooLong(usize),
}

/// A phone number in E.164 form: `+` followed by 8-15 digits, the first not `0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneE164(String);

impl PhoneE164 {
    /// Normalises `input` (see the module docs for what is accepted).
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let mut out = String::with_capacity(MAX_DIGITS + 1);
        out.push('+');
        let mut seen_plus = false;
        let mut digits = 0usize;
        for c in input.chars() {
            match c {
                '0'..='9' => {
                    out.push(c);
                    digits += 1;
                }
                '+' => {
                    if seen_plus || digits > 0 {
                        return Err(PhoneError::MisplacedPlus);
                    }
                    seen_plus = true;
                }
                ' ' | '\u{a0}' | '\t' | '-' | '.' | '/' | '(' | ')' => {}
                other => return Err(PhoneError::InvalidCharacter(other)),
            }
        }
        if digits == 0 {
            return Err(PhoneError::Empty);
        }
        if out[1..].starts_with("00") {
            if seen_plus {
                return Err(PhoneError::MisplacedPlus);
            }
            out.replace_range(1..3, "");
            digits -= 2;
        }
        if out[1..].starts_with('0') {
            return Err(PhoneError::LeadingZero);
        }
        if let Some(cc) = TRUNK_ZERO
            .iter()
            .find(|cc| out[1..].starts_with(*cc) && out[1 + cc.len()..].starts_with('0'))
        {
            out.remove(1 + cc.len());
            digits -= 1;
        }
        if digits < MIN_DIGITS {
            return Err(PhoneError::TooShort(digits));
        }
        if digits > MAX_DIGITS {
            return Err(PhoneError::TooLong(digits));
        }
        Ok(PhoneE164(out))
    }

    /// The number with its leading `+` (`"+16505551234"`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits only, as the Graph API `to` field takes them (`"16505551234"`).
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// The owned E.164 string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Fast path used by expansion: `+` and 8-15 digits, first not 0, gives the digits borrowed.
pub(crate) fn canonical_digits(s: &str) -> Option<&str> {
    let d = s.strip_prefix('+')?;
    let b = d.as_bytes();
    if (MIN_DIGITS..=MAX_DIGITS).contains(&b.len())
        && b[0] != b'0'
        && b.iter().all(|c| c.is_ascii_digit())
    {
        Some(d)
    } else {
        None
    }
}

impl FromStr for PhoneE164 {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PhoneE164::parse(s)
    }
}

impl fmt::Display for PhoneE164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PhoneE164 {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for PhoneE164 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneE164 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        PhoneE164::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok = [
            ("+16505551234", "+16505551234"),
            ("16505551234", "+16505551234"),
            ("+1 (650) 555-1234", "+16505551234"),
            ("  +1 650.555.1234 ", "+16505551234"),
            ("0044 20 7946 0958", "+442079460958"),
            ("+44 (0)20 7946 0958", "+442079460958"),
            ("+44 (0) 20 7946 0958", "+442079460958"),
            ("+49 030 1234567", "+49301234567"),
            ("+91 098765 43210", "+919876543210"),
            ("+39 06 6982 1234", "+390669821234"),
            ("+55 11 91234-5678", "+5511912345678"),
            ("+49/30/1234567", "+49301234567"),
            ("+12345678", "+12345678"),
            ("+123456789012345", "+123456789012345"),
            ("00\u{a0}91 98765 43210", "+919876543210"),
        ];
        for (input, want) in ok {
            let got = PhoneE164::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(got.as_str(), want, "{input:?}");
            assert_eq!(got.digits(), &want[1..]);
        }
        let bad = [
            ("", PhoneError::Empty),
            ("  - () ", PhoneError::Empty),
            ("+1 650 CALL NOW", PhoneError::InvalidCharacter('C')),
            ("+1-650-555-1234 x12", PhoneError::InvalidCharacter('x')),
            ("1+6505551234", PhoneError::MisplacedPlus),
            ("++16505551234", PhoneError::MisplacedPlus),
            ("+0016505551234", PhoneError::MisplacedPlus),
            ("06505551234", PhoneError::LeadingZero),
            ("+06505551234", PhoneError::LeadingZero),
            ("000016505551234", PhoneError::LeadingZero),
            ("+1234567", PhoneError::TooShort(7)),
            ("0012345", PhoneError::TooShort(5)),
            ("+1234567890123456", PhoneError::TooLong(16)),
            ("+١٢٣٤٥٦٧٨٩", PhoneError::InvalidCharacter('١')),
        ];
        for (input, want) in bad {
            assert_eq!(PhoneE164::parse(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn canonical_fast_path_agrees() {
        for s in [
            "+16505551234",
            "+0123456789",
            "16505551234",
            "+1234567",
            "+1234a5678",
        ] {
            let fast = canonical_digits(s).map(|d| format!("+{d}"));
            if let Some(f) = fast {
                assert_eq!(PhoneE164::parse(s).map(|p| p.into_string()), Ok(f));
            }
        }
        assert_eq!(canonical_digits("+16505551234"), Some("16505551234"));
        assert_eq!(canonical_digits("+0123456789"), None);
    }

    #[test]
    fn serde_roundtrip() {
        let p: PhoneE164 = serde_json::from_str("\"+1 650 555 1234\"").expect("parse");
        assert_eq!(serde_json::to_string(&p).expect("ser"), "\"+16505551234\"");
        assert!(serde_json::from_str::<PhoneE164>("\"abc\"").is_err());
    }
}
