//! Country calling codes (ITU-T E.164 assignments) by ISO 3166-1 alpha-2 code, and the turning
//! of a national number into E.164 for an import's `default_country`.
//!
//! Trunk prefixes (what a caller dials before a national number at home) are dropped:
//! * one leading `0` for every country, except Italy, San Marino and the Vatican (`IT`, `SM`,
//!   `VA`), whose national numbers themselves start with `0` (Rome is `06 …`, `+39 06 …`);
//! * North American Numbering Plan countries (calling code 1): a leading `1` of an 11-digit
//!   number (`1 650 555 0123`);
//! * Russia and Kazakhstan (calling code 7): a leading `8` of an 11-digit number
//!   (`8 912 345 67 89`);
//! * Hungary: the national prefix `06` (`06 30 123 4567`).
//!
//! Other national prefixes (such as Belarus's `8 0…`) are not recognised: write those numbers
//! in international form.

use ezpulze_payload::phone::PhoneError;
use ezpulze_payload::PhoneE164;

/// (ISO 3166-1 alpha-2, calling code without `+`), sorted by the ISO code. `XK` (Kosovo) is a
/// user-assigned code in common use.
#[rustfmt::skip]
const CALLING_CODES: &[(&str, &str)] = &[
    ("AD", "376"), ("AE", "971"), ("AF", "93"), ("AG", "1"), ("AI", "1"), ("AL", "355"),
    ("AM", "374"), ("AO", "244"), ("AQ", "672"), ("AR", "54"), ("AS", "1"), ("AT", "43"),
    ("AU", "61"), ("AW", "297"), ("AX", "358"), ("AZ", "994"), ("BA", "387"), ("BB", "1"),
    ("BD", "880"), ("BE", "32"), ("BF", "226"), ("BG", "359"), ("BH", "973"), ("BI", "257"),
    ("BJ", "229"), ("BL", "590"), ("BM", "1"), ("BN", "673"), ("BO", "591"), ("BQ", "599"),
    ("BR", "55"), ("BS", "1"), ("BT", "975"), ("BV", "47"), ("BW", "267"), ("BY", "375"),
    ("BZ", "501"), ("CA", "1"), ("CC", "61"), ("CD", "243"), ("CF", "236"), ("CG", "242"),
    ("CH", "41"), ("CI", "225"), ("CK", "682"), ("CL", "56"), ("CM", "237"), ("CN", "86"),
    ("CO", "57"), ("CR", "506"), ("CU", "53"), ("CV", "238"), ("CW", "599"), ("CX", "61"),
    ("CY", "357"), ("CZ", "420"), ("DE", "49"), ("DJ", "253"), ("DK", "45"), ("DM", "1"),
    ("DO", "1"), ("DZ", "213"), ("EC", "593"), ("EE", "372"), ("EG", "20"), ("EH", "212"),
    ("ER", "291"), ("ES", "34"), ("ET", "251"), ("FI", "358"), ("FJ", "679"), ("FK", "500"),
    ("FM", "691"), ("FO", "298"), ("FR", "33"), ("GA", "241"), ("GB", "44"), ("GD", "1"),
    ("GE", "995"), ("GF", "594"), ("GG", "44"), ("GH", "233"), ("GI", "350"), ("GL", "299"),
    ("GM", "220"), ("GN", "224"), ("GP", "590"), ("GQ", "240"), ("GR", "30"), ("GS", "500"),
    ("GT", "502"), ("GU", "1"), ("GW", "245"), ("GY", "592"), ("HK", "852"), ("HM", "672"),
    ("HN", "504"), ("HR", "385"), ("HT", "509"), ("HU", "36"), ("ID", "62"), ("IE", "353"),
    ("IL", "972"), ("IM", "44"), ("IN", "91"), ("IO", "246"), ("IQ", "964"), ("IR", "98"),
    ("IS", "354"), ("IT", "39"), ("JE", "44"), ("JM", "1"), ("JO", "962"), ("JP", "81"),
    ("KE", "254"), ("KG", "996"), ("KH", "855"), ("KI", "686"), ("KM", "269"), ("KN", "1"),
    ("KP", "850"), ("KR", "82"), ("KW", "965"), ("KY", "1"), ("KZ", "7"), ("LA", "856"),
    ("LB", "961"), ("LC", "1"), ("LI", "423"), ("LK", "94"), ("LR", "231"), ("LS", "266"),
    ("LT", "370"), ("LU", "352"), ("LV", "371"), ("LY", "218"), ("MA", "212"), ("MC", "377"),
    ("MD", "373"), ("ME", "382"), ("MF", "590"), ("MG", "261"), ("MH", "692"), ("MK", "389"),
    ("ML", "223"), ("MM", "95"), ("MN", "976"), ("MO", "853"), ("MP", "1"), ("MQ", "596"),
    ("MR", "222"), ("MS", "1"), ("MT", "356"), ("MU", "230"), ("MV", "960"), ("MW", "265"),
    ("MX", "52"), ("MY", "60"), ("MZ", "258"), ("NA", "264"), ("NC", "687"), ("NE", "227"),
    ("NF", "672"), ("NG", "234"), ("NI", "505"), ("NL", "31"), ("NO", "47"), ("NP", "977"),
    ("NR", "674"), ("NU", "683"), ("NZ", "64"), ("OM", "968"), ("PA", "507"), ("PE", "51"),
    ("PF", "689"), ("PG", "675"), ("PH", "63"), ("PK", "92"), ("PL", "48"), ("PM", "508"),
    ("PN", "64"), ("PR", "1"), ("PS", "970"), ("PT", "351"), ("PW", "680"), ("PY", "595"),
    ("QA", "974"), ("RE", "262"), ("RO", "40"), ("RS", "381"), ("RU", "7"), ("RW", "250"),
    ("SA", "966"), ("SB", "677"), ("SC", "248"), ("SD", "249"), ("SE", "46"), ("SG", "65"),
    ("SH", "290"), ("SI", "386"), ("SJ", "47"), ("SK", "421"), ("SL", "232"), ("SM", "378"),
    ("SN", "221"), ("SO", "252"), ("SR", "597"), ("SS", "211"), ("ST", "239"), ("SV", "503"),
    ("SX", "1"), ("SY", "963"), ("SZ", "268"), ("TC", "1"), ("TD", "235"), ("TF", "262"),
    ("TG", "228"), ("TH", "66"), ("TJ", "992"), ("TK", "690"), ("TL", "670"), ("TM", "993"),
    ("TN", "216"), ("TO", "676"), ("TR", "90"), ("TT", "1"), ("TV", "688"), ("TW", "886"),
    ("TZ", "255"), ("UA", "380"), ("UG", "256"), ("UM", "1"), ("US", "1"), ("UY", "598"),
    ("UZ", "998"), ("VA", "39"), ("VC", "1"), ("VE", "58"), ("VG", "1"), ("VI", "1"),
    ("VN", "84"), ("VU", "678"), ("WF", "681"), ("WS", "685"), ("XK", "383"), ("YE", "967"),
    ("YT", "262"), ("ZA", "27"), ("ZM", "260"), ("ZW", "263"),
];

/// A country an import's national numbers belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country {
    pub iso: &'static str,
    pub calling_code: &'static str,
}

impl Country {
    /// The country of an ISO 3166-1 alpha-2 code (any case), if it is one.
    pub fn from_iso(code: &str) -> Option<Country> {
        let upper = code.trim().to_ascii_uppercase();
        CALLING_CODES
            .binary_search_by(|(iso, _)| (*iso).cmp(upper.as_str()))
            .ok()
            .map(|i| Country {
                iso: CALLING_CODES[i].0,
                calling_code: CALLING_CODES[i].1,
            })
    }

    /// A national number (digits and separators, no `+`/`00` prefix) of this country in E.164:
    /// its trunk prefix dropped (module docs), the calling code put in front.
    pub fn national_to_e164(&self, raw: &str) -> Result<PhoneE164, PhoneError> {
        let mut digits = String::with_capacity(raw.len());
        for c in raw.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '\u{a0}' | '\t' | '-' | '.' | '/' | '(' | ')' => {}
                other => return Err(PhoneError::InvalidCharacter(other)),
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        let national = match (self.calling_code, self.iso) {
            (_, "IT" | "SM" | "VA") => digits.as_str(),
            ("1", _) if digits.len() == 11 && digits.starts_with('1') => &digits[1..],
            ("7", _) if digits.len() == 11 && digits.starts_with('8') => &digits[1..],
            ("36", _) if digits.starts_with("06") => &digits[2..],
            _ => digits.strip_prefix('0').unwrap_or(&digits),
        };
        if national.is_empty() {
            return Err(PhoneError::Empty);
        }
        PhoneE164::parse(&format!("+{}{national}", self.calling_code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_unique_and_well_formed() {
        for w in CALLING_CODES.windows(2) {
            assert!(w[0].0 < w[1].0, "{:?} before {:?}", w[0], w[1]);
        }
        for (iso, cc) in CALLING_CODES {
            assert!(iso.len() == 2 && iso.chars().all(|c| c.is_ascii_uppercase()));
            assert!(!cc.is_empty() && cc.len() <= 3 && !cc.starts_with('0'));
            assert!(cc.chars().all(|c| c.is_ascii_digit()));
        }
        assert!(CALLING_CODES.len() >= 249);
    }

    #[test]
    fn national_numbers() {
        let e164 = |iso: &str, raw: &str| {
            Country::from_iso(iso)
                .expect("country")
                .national_to_e164(raw)
                .map(PhoneE164::into_string)
        };
        assert_eq!(e164("pt", "912 345 678").as_deref(), Ok("+351912345678"));
        assert_eq!(e164("GB", "020 7946 0958").as_deref(), Ok("+442079460958"));
        assert_eq!(e164("GB", "07700 900123").as_deref(), Ok("+447700900123"));
        assert_eq!(e164("DE", "030 1234567").as_deref(), Ok("+49301234567"));
        assert_eq!(e164("IT", "06 6982 1234").as_deref(), Ok("+390669821234"));
        assert_eq!(e164("US", "(650) 555-0123").as_deref(), Ok("+16505550123"));
        assert_eq!(e164("US", "1 650 555 0123").as_deref(), Ok("+16505550123"));
        assert_eq!(e164("RU", "8 912 345 67 89").as_deref(), Ok("+79123456789"));
        assert_eq!(e164("HU", "06 30 123 4567").as_deref(), Ok("+36301234567"));
        assert_eq!(
            e164("BR", "011 91234 5678").as_deref(),
            Ok("+5511912345678")
        );
        assert!(e164("PT", "91x").is_err());
        assert!(e164("PT", "0").is_err());
        assert!(e164("PT", "12").is_err());
        assert_eq!(Country::from_iso("ZZ"), None);
        assert_eq!(Country::from_iso("PRT"), None);
    }
}
