//! Inbound consent keywords (`docs/consent.md`): the inbound messages of a batch are classified
//! against each account's opt-out / opt-in keywords (read once per batch for the batch's
//! accounts), the latest message per (account, phone) wins, and ONE statement applies them:
//! an opt-out upserts an `all` suppression (reason `opt_out`, source `inbound:<KEYWORD>`), an
//! opt-in deletes the phone's `opt_out` suppressions (`manual` and `bounced` ones stay).
//!
//! An opt-out meeting a `manual` or `bounced` row widens it to scope `all` and keeps its reason
//! and source, so that a later opt-in does not lift what the business or a bounce put there.
//! A batch without inbound messages costs nothing here.

use std::collections::HashMap;

use anyhow::Context;
use ezpulze_common::consent::{self, Keyword, Keywords};
use sqlx::PgPool;
use uuid::Uuid;

use super::fold::Inbound;

/// One phone's outcome in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub account_id: Uuid,
    pub phone: String,
    pub keyword: Keyword,
    /// The keyword as listed (uppercase).
    pub word: String,
}

/// The latest keyword message of each (account, phone) of `inbound`, classified with
/// `keywords` (an account missing from it has the defaults). Messages that are no keyword
/// are ignored (they do not cancel an earlier keyword). Pure; sorted by account and phone
/// (the statement's lock order).
pub fn changes(inbound: &[Inbound], keywords: &HashMap<Uuid, Keywords>) -> Vec<Change> {
    let defaults = Keywords::defaults();
    let mut latest: HashMap<(Uuid, &str), (i64, usize, Keyword, String)> = HashMap::new();
    for m in inbound {
        let lists = keywords.get(&m.account_id).unwrap_or(&defaults);
        let Some((keyword, word)) = m.texts.iter().find_map(|t| {
            lists
                .classify(t)
                .map(|k| (k, consent::normalize_keyword(t)))
        }) else {
            continue;
        };
        let slot = latest.entry((m.account_id, m.phone.as_str())).or_insert((
            m.at,
            m.seq,
            keyword,
            word.clone(),
        ));
        if (m.at, m.seq) >= (slot.0, slot.1) {
            *slot = (m.at, m.seq, keyword, word);
        }
    }
    let mut out: Vec<Change> = latest
        .into_iter()
        .map(|((account_id, phone), (_, _, keyword, word))| Change {
            account_id,
            phone: phone.to_string(),
            keyword,
            word,
        })
        .collect();
    out.sort_by(|a, b| (a.account_id, &a.phone).cmp(&(b.account_id, &b.phone)));
    out
}

const APPLY_SQL: &str = "
    WITH ev AS (
        SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bool[], $4::text[])
            AS e(acct, phone, opt_out, source)),
    stop AS (
        INSERT INTO suppressions AS s (account_id, phone, reason, scope, source)
        SELECT acct, phone, 'opt_out', 'all', source FROM ev WHERE opt_out ORDER BY acct, phone
        ON CONFLICT (account_id, phone) DO UPDATE
           SET scope = 'all',
               source = CASE WHEN s.reason = 'opt_out' THEN EXCLUDED.source ELSE s.source END
         WHERE s.scope <> 'all' OR (s.reason = 'opt_out' AND s.source <> EXCLUDED.source)
        RETURNING 1),
    start AS (
        DELETE FROM suppressions s USING ev
         WHERE NOT ev.opt_out AND s.account_id = ev.acct AND s.phone = ev.phone
           AND s.reason = 'opt_out'
        RETURNING 1)
    SELECT (SELECT count(*) FROM stop), (SELECT count(*) FROM start)";

/// Applies the batch's inbound keywords: one read of the accounts' keywords and one statement,
/// nothing at all without inbound messages. Returns (opt-outs, opt-ins) that changed a row.
pub async fn apply(db: &PgPool, inbound: &[Inbound]) -> anyhow::Result<(u64, u64)> {
    // Messages with no text (kept for the customer-service windows) are no keyword.
    if inbound.iter().all(|m| m.texts.is_empty()) {
        return Ok((0, 0));
    }
    let mut accounts: Vec<Uuid> = inbound
        .iter()
        .filter(|m| !m.texts.is_empty())
        .map(|m| m.account_id)
        .collect();
    accounts.sort_unstable();
    accounts.dedup();
    let keywords = consent::keywords_of(db, &accounts)
        .await
        .context("reading the accounts' consent keywords")?;
    let changes = changes(inbound, &keywords);
    if changes.is_empty() {
        return Ok((0, 0));
    }
    let accts: Vec<Uuid> = changes.iter().map(|c| c.account_id).collect();
    let phones: Vec<&str> = changes.iter().map(|c| c.phone.as_str()).collect();
    let opt_out: Vec<bool> = changes
        .iter()
        .map(|c| c.keyword == Keyword::OptOut)
        .collect();
    let sources: Vec<String> = changes
        .iter()
        .map(|c| consent::inbound_source(&c.word))
        .collect();
    let (stopped, started): (i64, i64) = sqlx::query_as(APPLY_SQL)
        .bind(&accts)
        .bind(&phones)
        .bind(&opt_out)
        .bind(&sources)
        .fetch_one(db)
        .await
        .context("applying inbound consent keywords")?;
    let (stopped, started) = (
        u64::try_from(stopped).unwrap_or(0),
        u64::try_from(started).unwrap_or(0),
    );
    record(stopped, started);
    Ok((stopped, started))
}

/// `ezpulze_consent_changes_total{change, source="inbound"}`.
fn record(stopped: u64, started: u64) {
    for (change, n) in [("opt_out", stopped), ("opt_in", started)] {
        if n > 0 {
            metrics::counter!("ezpulze_consent_changes_total", "change" => change, "source" => "inbound")
                .increment(n);
        }
    }
}

/// `ezpulze_consent_changes_total{change="opt_out", source="131050"}`: marketing suppressions
/// added for failure 131050.
pub fn record_stopped_marketing(n: i64) {
    if n > 0 {
        metrics::counter!("ezpulze_consent_changes_total", "change" => "opt_out", "source" => "131050")
            .increment(u64::try_from(n).unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(account: Uuid, phone: &str, text: &str, at: i64, seq: usize) -> Inbound {
        Inbound {
            account_id: account,
            phone: phone.into(),
            texts: vec![text.into()],
            at,
            seq,
        }
    }

    #[test]
    fn the_latest_keyword_per_phone_wins_and_other_texts_are_ignored() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let inbound = [
            msg(a, "+15550000001", "STOP", 100, 0),
            msg(a, "+15550000001", "start", 90, 1),
            msg(a, "+15550000001", "hello", 200, 2),
            msg(a, "+15550000002", "START", 100, 3),
            msg(a, "+15550000002", "stop", 100, 4),
            msg(b, "+15550000001", "BASTA", 100, 5),
            msg(b, "+15550000003", "STOP", 100, 6),
        ];
        let mut keywords = HashMap::new();
        keywords.insert(
            b,
            Keywords {
                opt_out: vec!["BASTA".into()],
                opt_in: vec!["VOLTA".into()],
            },
        );
        let got = changes(&inbound, &keywords);
        let summary: Vec<(Uuid, &str, Keyword, &str)> = got
            .iter()
            .map(|c| (c.account_id, c.phone.as_str(), c.keyword, c.word.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (a, "+15550000001", Keyword::OptOut, "STOP"),
                (a, "+15550000002", Keyword::OptOut, "STOP"),
                (b, "+15550000001", Keyword::OptOut, "BASTA"),
            ]
        );
    }
}
