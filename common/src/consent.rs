//! Consent: the suppression list every send path consults, and the keywords by which an
//! inbound WhatsApp message opts its sender out or back in.
//!
//! A suppression is per account and phone. Its scope says what it blocks: `marketing` blocks
//! templates of category MARKETING, `all` blocks every template. A blocked recipient is never
//! queued: the send reports it as rejected with [`SUPPRESSED`] (never sent, never counted as
//! failed).

use std::collections::HashSet;

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
    if t.is_empty() || t.len() > 64 {
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
    fn only_marketing_templates_are_blocked_by_marketing_scope() {
        assert!(marketing("MARKETING"));
        assert!(!marketing("UTILITY"));
        assert!(!marketing("AUTHENTICATION"));
    }
}
