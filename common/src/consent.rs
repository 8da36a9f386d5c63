//! Consent: the suppression list every send path consults, and the keywords by which an
//! inbound WhatsApp message opts its sender out or back in.
//!
//! A suppression is per account and phone. Its scope says what it blocks: `marketing` blocks
//! templates of category MARKETING, `all` blocks every template. A blocked recipient is never
//! queued: the send reports it as rejected with [`SUPPRESSED`] (never sent, never counted as
//! failed).

use std::collections::{HashMap, HashSet};

use sqlx::PgExecutor;
use uuid::Uuid;

/// The rejection code of a suppressed recipient.
pub const SUPPRESSED: &str = "suppressed";
/// Its message.
pub const SUPPRESSED_MESSAGE: &str = "this phone number is on the suppression list";

/// Inbound texts that opt the sender out, when the account has not set its own list.
pub const DEFAULT_OPT_OUT: &[&str] = &["STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "STOPALL"];
/// Inbound texts that opt the sender back in, when the account has not set its own list.
pub const DEFAULT_OPT_IN: &[&str] = &["START", "UNSTOP"];

/// The failure code WhatsApp gives when the user stopped marketing messages from the business.
pub const USER_STOPPED_MARKETING: i32 = 131050;

/// Why a phone is suppressed.
pub const REASONS: [&str; 3] = ["opt_out", "bounced", "manual"];
/// What a suppression blocks: `marketing` templates only, or `all` templates.
pub const SCOPES: [&str; 2] = ["marketing", "all"];
/// The most keywords in one list (opt-out or opt-in) of an account.
pub const MAX_KEYWORDS: usize = 50;
/// The longest keyword, in characters (an inbound text longer than this is never one).
pub const MAX_KEYWORD_CHARS: usize = 64;
/// The `source` of the `marketing` suppression a 131050 failure adds.
pub const MARKETING_STOP_SOURCE: &str = "whatsapp:131050";

/// The `source` of a suppression an inbound keyword added: `inbound:<KEYWORD>`.
pub fn inbound_source(keyword: &str) -> String {
    format!("inbound:{keyword}")
}

/// A keyword as stored and compared: trimmed and uppercased.
pub fn normalize_keyword(raw: &str) -> String {
    raw.trim().to_uppercase()
}

/// The E.164 phone (`+` and digits) of an inbound sender's `wa_id` / `from` (digits only, as
/// WhatsApp gives them); None unless it is 8 to 15 digits not starting with 0.
pub fn wa_id_phone(from: &str) -> Option<String> {
    let b = from.as_bytes();
    ((8..=15).contains(&b.len()) && b[0] != b'0' && b.iter().all(u8::is_ascii_digit))
        .then(|| format!("+{from}"))
}

/// An account's keyword lists (uppercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keywords {
    pub opt_out: Vec<String>,
    pub opt_in: Vec<String>,
}

impl Keywords {
    /// The lists of an account that has not set its own.
    pub fn defaults() -> Keywords {
        let own = |l: &[&str]| l.iter().map(|k| (*k).to_string()).collect();
        Keywords {
            opt_out: own(DEFAULT_OPT_OUT),
            opt_in: own(DEFAULT_OPT_IN),
        }
    }

    /// What `text` means for these lists.
    pub fn classify(&self, text: &str) -> Option<Keyword> {
        classify(text, &self.opt_out, &self.opt_in)
    }
}

/// The keyword lists of `accounts`, one statement; an account without its own row gets
/// [`Keywords::defaults`].
pub async fn keywords_of<'e, E: PgExecutor<'e>>(
    db: E,
    accounts: &[Uuid],
) -> sqlx::Result<HashMap<Uuid, Keywords>> {
    let rows: Vec<(Uuid, Vec<String>, Vec<String>)> = if accounts.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(
            "SELECT account_id, opt_out, opt_in FROM consent_keywords WHERE account_id = ANY($1)",
        )
        .bind(accounts)
        .fetch_all(db)
        .await?
    };
    let mut out: HashMap<Uuid, Keywords> = accounts
        .iter()
        .map(|a| (*a, Keywords::defaults()))
        .collect();
    for (account, opt_out, opt_in) in rows {
        out.insert(account, Keywords { opt_out, opt_in });
    }
    Ok(out)
}

/// SQL: a data-modifying CTE `name` adding a `marketing` suppression (reason `opt_out`,
/// source [`MARKETING_STOP_SOURCE`]) for each message row `s` of `source` (with `account_id`,
/// `dispatch_id`, `to_phone` and `error_code`) whose `error_code` is 131050 and for which
/// `condition` holds. Messages of test-mode dispatches (sent to the sandbox Graph API) add
/// nothing. An existing row for the phone (of either scope) is left as it is. Its rows count
/// the suppressions added.
pub fn stopped_marketing_cte(name: &str, source: &str, condition: &str) -> String {
    format!(
        "{name} AS (
             INSERT INTO suppressions (account_id, phone, reason, scope, source)
             SELECT DISTINCT s.account_id, s.to_phone, 'opt_out', 'marketing', '{MARKETING_STOP_SOURCE}'
               FROM {source} s
              WHERE s.error_code = {USER_STOPPED_MARKETING} AND ({condition})
                AND s.to_phone ~ '^\\+[1-9][0-9]{{7,14}}$'
                AND NOT EXISTS (SELECT 1 FROM dispatches d WHERE d.id = s.dispatch_id AND d.test_mode)
             ORDER BY 1, 2
             ON CONFLICT (account_id, phone) DO NOTHING
             RETURNING 1)"
    )
}

/// Whether a template of `category` (Meta's spelling: `MARKETING`, `UTILITY`,
/// `AUTHENTICATION`) is blocked by `marketing`-scope suppressions too (`all` blocks every one).
pub fn marketing(category: &str) -> bool {
    category.eq_ignore_ascii_case("MARKETING")
}

/// SQL condition: the suppression row `s` blocks a template whose "is marketing" flag is the
/// boolean expression `marketing`.
pub fn blocks_sql(s: &str, marketing: &str) -> String {
    format!("({s}.scope = 'all' OR {marketing})")
}

/// The phones of `phones` that the account's suppressions block for a template of `category`.
/// One statement (the primary key answers it).
pub async fn suppressed<'e, E: PgExecutor<'e>>(
    db: E,
    account_id: Uuid,
    phones: &[String],
    category: &str,
) -> sqlx::Result<HashSet<String>> {
    if phones.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "SELECT s.phone FROM suppressions s WHERE s.account_id = $1 AND s.phone = ANY($2) AND {}",
        blocks_sql("s", "$3")
    );
    let rows: Vec<String> = sqlx::query_scalar(&sql)
        .bind(account_id)
        .bind(phones)
        .bind(marketing(category))
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// What an inbound text means: the trimmed, uppercased text compared with the opt-out and
/// opt-in lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    OptOut,
    OptIn,
}

/// Classifies an inbound text against the lists (already uppercase).
pub fn classify<S: AsRef<str>>(text: &str, opt_out: &[S], opt_in: &[S]) -> Option<Keyword> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > MAX_KEYWORD_CHARS {
        return None;
    }
    let t = t.to_uppercase();
    if opt_out.iter().any(|k| k.as_ref() == t) {
        Some(Keyword::OptOut)
    } else if opt_in.iter().any(|k| k.as_ref() == t) {
        Some(Keyword::OptIn)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_whole_trimmed_case_insensitive_texts() {
        assert_eq!(
            classify(" stop\n", DEFAULT_OPT_OUT, DEFAULT_OPT_IN),
            Some(Keyword::OptOut)
        );
        assert_eq!(
            classify("Start", DEFAULT_OPT_OUT, DEFAULT_OPT_IN),
            Some(Keyword::OptIn)
        );
        assert_eq!(
            classify("please stop", DEFAULT_OPT_OUT, DEFAULT_OPT_IN),
            None
        );
        assert_eq!(classify("", DEFAULT_OPT_OUT, DEFAULT_OPT_IN), None);
    }

    #[test]
    fn inbound_senders_become_e164_phones() {
        assert_eq!(wa_id_phone("15551234567").as_deref(), Some("+15551234567"));
        for bad in [
            "",
            "0155512345",
            "1555",
            "1234567890123456",
            "+15551234567",
            "1555x234567",
        ] {
            assert_eq!(wa_id_phone(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_accounts_own_lists_replace_the_defaults() {
        let own = Keywords {
            opt_out: vec!["BASTA".into()],
            opt_in: vec!["VOLTA".into()],
        };
        assert_eq!(own.classify("basta"), Some(Keyword::OptOut));
        assert_eq!(own.classify("STOP"), None);
        assert_eq!(
            Keywords::defaults().classify("unstop"),
            Some(Keyword::OptIn)
        );
        assert_eq!(normalize_keyword("  arrêt "), "ARRÊT");
    }

    #[test]
    fn only_marketing_templates_are_blocked_by_marketing_scope() {
        assert!(marketing("MARKETING"));
        assert!(!marketing("UTILITY"));
        assert!(!marketing("AUTHENTICATION"));
    }
}
