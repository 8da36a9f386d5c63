//! Meta's WABA-level webhook changes (`docs/whatsapp-events.md`): number quality and
//! throughput (`phone_number_quality_update`), account updates (`account_update`) and template
//! status, quality and category (`message_template_status_update`,
//! `message_template_quality_update`, `template_category_update`).
//!
//! Each change is scoped to the account its WABA's signature verified (`WebhookBody::wabas`):
//! a change in an entry whose WABA was not verified is dropped; a number or template another
//! account has is ignored and counted (`ezpulze_status_rejected_total{reason="other_account"}`).
//! Every value is checked before it reaches SQL; one that Meta does not send (a tier like
//! `TIER_1K`, an unknown event) changes nothing and is counted
//! (`ezpulze_whatsapp_events_total{field, outcome}`: bounded labels; a number no account has
//! is `unknown_number`).
//!
//! Effects, per batch (a statement for all number changes, one for the tiers, one for the
//! pauses, one for the resumes):
//! - a tier (`whatsapp_business_manager_messaging_limit`, `max_daily_conversations_per_business`
//!   or `current_limit`, the first of Meta's values) sets `accounts.messaging_tier`;
//! - `THROUGHPUT_UPGRADE` raises the number to 1,000 messages per second (`HIGH`), and the
//!   numbers' epoch is bumped so every worker reloads its number cache within
//!   `numbers::EPOCH_CHECK_EVERY`;
//! - `FLAGGED` pauses the number's dispatches going out (`pause_reason = 'number_flagged'`),
//!   `UNFLAGGED` resumes those and only those;
//! - `account_update` `ACCOUNT_RESTRICTION` pauses the account's dispatches
//!   (`account_restricted`); `DISABLED_UPDATE` with `ban_info.waba_ban_state` `DISABLE` (or
//!   none) and `ACCOUNT_DELETED` pause them (`account_disabled`), `REINSTATE` resumes the
//!   `account_disabled` ones; other account events are counted only;
//! - template changes go through `ezpulze_common::template_status::apply`.

use std::collections::HashMap;
use std::sync::LazyLock;

use anyhow::Context;
use ezpulze_common::hooks;
use ezpulze_common::jobs::{SendJob, WebhookBody};
use ezpulze_common::keyspace::Keyspace;
use ezpulze_common::redis_conn::RedisConn;
use ezpulze_common::template_status::{self, TemplateChange, TemplateStatus};
use ezpulze_runtime::send_lanes::SendLanes;
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// The rate of a number Meta upgraded (messages per second).
pub const HIGH_THROUGHPUT_MPS: i32 = 1000;
/// The tiers Meta uses (`accounts.messaging_tier`); any other value changes nothing.
pub const TIERS: [&str; 5] = [
    "TIER_250",
    "TIER_2K",
    "TIER_10K",
    "TIER_100K",
    "TIER_UNLIMITED",
];
/// `dispatches.pause_reason` of the dispatches of a flagged number.
pub const PAUSE_NUMBER_FLAGGED: &str = "number_flagged";
/// `dispatches.pause_reason` of the dispatches of a restricted account.
pub const PAUSE_ACCOUNT_RESTRICTED: &str = "account_restricted";
/// `dispatches.pause_reason` of the dispatches of a disabled (banned) account.
pub const PAUSE_ACCOUNT_DISABLED: &str = "account_disabled";

/// What the changes need besides Postgres: the lanes (the jobs of resumed dispatches) and
/// Redis (the numbers' epoch).
#[derive(Clone)]
pub struct Effects {
    pub db: PgPool,
    pub lanes: SendLanes,
    pub redis: RedisConn,
    pub keys: Keyspace,
}

impl ezpulze_common::dispatch::JobSink for Effects {
    async fn push_send(&self, jobs: &[SendJob]) -> anyhow::Result<()> {
        self.lanes.push(&self.db, jobs).await?;
        Ok(())
    }

    async fn push_release(
        &self,
        _job: ezpulze_common::jobs::ReleaseJob,
        _due: std::time::SystemTime,
    ) -> anyhow::Result<()> {
        // Template resumes hand back send jobs only; a scheduled dispatch's release is the
        // scheduler's (it scans due scheduled dispatches).
        Ok(())
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    value: Option<Value>,
}

/// One change of a verified WABA, its values checked.
#[derive(Debug, Clone)]
pub enum Event {
    /// `phone_number_quality_update`.
    Number {
        account_id: Uuid,
        /// `display_phone_number`, digits only.
        digits: String,
        /// Meta's event (`FLAGGED`, ...), when it is a plain code.
        event: Option<String>,
        /// A tier Meta uses.
        tier: Option<&'static str>,
    },
    /// `account_update` that pauses or resumes the account's dispatches.
    Account {
        account_id: Uuid,
        action: AccountAction,
    },
    /// A template's status, quality or category.
    Template {
        account_id: Uuid,
        field: &'static str,
        name: String,
        language: String,
        change: TemplateChange,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountAction {
    Pause(&'static str),
    Resume(&'static str),
}

/// The WABA-level changes of `jobs` the engine applies, in order.
pub fn events(jobs: &[&WebhookBody]) -> Vec<Event> {
    let mut out = Vec::new();
    for job in jobs {
        if job.wabas.is_empty() {
            continue;
        }
        let Ok(env) = serde_json::from_slice::<Envelope>(job.as_bytes()) else {
            continue;
        };
        if env.object.as_deref() != Some("whatsapp_business_account") {
            continue;
        }
        for entry in env.entry {
            let waba = match &entry.id {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            let account = job
                .wabas
                .iter()
                .find(|w| w.waba_id == waba)
                .map(|w| w.account_id);
            for change in entry.changes {
                let Some(value) = change.value.filter(|v| v.get("metadata").is_none()) else {
                    continue;
                };
                let Some(field) = change.field.as_deref() else {
                    continue;
                };
                let Some(account_id) = account else {
                    counted(field_label(field), "unverified_waba");
                    continue;
                };
                read_change(account_id, field, &value, &mut out);
            }
        }
    }
    out
}

fn field_label(field: &str) -> &'static str {
    ezpulze_common::jobs::WABA_FIELDS
        .iter()
        .find(|f| **f == field)
        .copied()
        .unwrap_or("other")
}

/// Counts a change by field and outcome (both bounded label sets).
fn counted(field: &'static str, outcome: &'static str) {
    metrics::counter!("ezpulze_whatsapp_events_total", "field" => field, "outcome" => outcome)
        .increment(1);
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).map(str::trim)
}

/// A plain code of Meta's (`FLAGGED`, `TIER_2K`): upper-case letters, digits, `_`.
fn code(s: &str) -> Option<String> {
    (!s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
    .then(|| s.to_string())
}

/// Digits of an id Meta sends as a string or a number.
fn id_digits(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

fn read_change(account_id: Uuid, field: &str, value: &Value, out: &mut Vec<Event>) {
    match field {
        "phone_number_quality_update" => {
            let label = "phone_number_quality_update";
            let digits: String = text(value, "display_phone_number")
                .unwrap_or("")
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            if digits.is_empty() || digits.len() > 20 {
                counted(label, "invalid");
                return;
            }
            // Meta's newest field first; `current_limit` is being removed.
            let given: Vec<&str> = [
                "whatsapp_business_manager_messaging_limit",
                "max_daily_conversations_per_business",
                "current_limit",
            ]
            .iter()
            .filter_map(|k| text(value, k))
            .collect();
            let tier = given
                .iter()
                .find_map(|t| TIERS.iter().find(|k| *k == t).copied());
            if tier.is_none() && !given.is_empty() {
                counted(label, "unknown_tier");
            }
            let event = text(value, "event").and_then(code);
            out.push(Event::Number {
                account_id,
                digits,
                event,
                tier,
            });
        }
        "account_update" => {
            let label = "account_update";
            let event = text(value, "event").unwrap_or("");
            let ban = value
                .get("ban_info")
                .and_then(|b| text(b, "waba_ban_state"))
                .unwrap_or("DISABLE");
            let action = match event {
                "ACCOUNT_RESTRICTION" => Some(AccountAction::Pause(PAUSE_ACCOUNT_RESTRICTED)),
                "ACCOUNT_DELETED" => Some(AccountAction::Pause(PAUSE_ACCOUNT_DISABLED)),
                "DISABLED_UPDATE" => match ban {
                    "DISABLE" => Some(AccountAction::Pause(PAUSE_ACCOUNT_DISABLED)),
                    "REINSTATE" => Some(AccountAction::Resume(PAUSE_ACCOUNT_DISABLED)),
                    _ => None,
                },
                _ => None,
            };
            match action {
                Some(action) => out.push(Event::Account { account_id, action }),
                None => counted(label, "ignored"),
            }
        }
        "message_template_status_update"
        | "message_template_quality_update"
        | "template_category_update" => {
            let label = field_label(field);
            let name = text(value, "message_template_name").unwrap_or("");
            let language = text(value, "message_template_language").unwrap_or("");
            if name.is_empty() || name.len() > 512 || language.is_empty() || language.len() > 15 {
                counted(label, "invalid");
                return;
            }
            let mut change = TemplateChange {
                meta_template_id: id_digits(value.get("message_template_id")),
                ..TemplateChange::default()
            };
            match field {
                "message_template_status_update" => {
                    let event = text(value, "event").unwrap_or("");
                    // A reinstated template is approved again.
                    let status = if event == "REINSTATED" {
                        Some(TemplateStatus::Approved)
                    } else {
                        TemplateStatus::from_meta(event)
                    };
                    let Some(status) = status else {
                        counted(label, "ignored");
                        return;
                    };
                    change.status = Some(status);
                    change.reason = text(value, "reason").map(|r| r.chars().take(200).collect());
                }
                "message_template_quality_update" => {
                    let Some(q) = text(value, "new_quality_score").and_then(code) else {
                        counted(label, "invalid");
                        return;
                    };
                    change.quality = Some(q);
                }
                _ => {
                    let Some(c) = text(value, "new_category").map(str::to_ascii_uppercase) else {
                        counted(label, "invalid");
                        return;
                    };
                    change.category = Some(c);
                }
            }
            if change.validate().is_err() {
                counted(label, "invalid");
                return;
            }
            out.push(Event::Template {
                account_id,
                field: label,
                name: name.to_string(),
                language: language.to_string(),
                change,
            });
        }
        _ => counted("other", "ignored"),
    }
}

/// The number changes of a batch, one per (account, number): the last flag, any upgrade,
/// the last event.
#[derive(Debug, Default, Clone, PartialEq)]
struct NumberChange {
    flagged: Option<bool>,
    upgrade: bool,
    event: Option<String>,
}

/// Applies the changes of `jobs`. `effects`: None in tests that have no lanes (resumed
/// dispatches' jobs are then left to the outbox sweep, and no epoch is bumped).
pub async fn apply(
    db: &PgPool,
    effects: Option<&Effects>,
    jobs: &[&WebhookBody],
) -> anyhow::Result<()> {
    let events = events(jobs);
    if events.is_empty() {
        return Ok(());
    }
    let mut numbers: Vec<((Uuid, String), NumberChange)> = Vec::new();
    let mut tiers: HashMap<Uuid, &'static str> = HashMap::new();
    let mut pauses: Vec<(Uuid, Option<String>, &'static str)> = Vec::new();
    let mut resumes: Vec<(Uuid, Option<String>, &'static str)> = Vec::new();
    let mut templates = Vec::new();
    for e in events {
        match e {
            Event::Number {
                account_id,
                digits,
                event,
                tier,
            } => {
                if let Some(t) = tier {
                    tiers.insert(account_id, t);
                }
                let key = (account_id, digits);
                let i = match numbers.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => {
                        numbers.push((key, NumberChange::default()));
                        numbers.len() - 1
                    }
                };
                let c = &mut numbers[i].1;
                match event.as_deref() {
                    Some("FLAGGED") => c.flagged = Some(true),
                    Some("UNFLAGGED") => c.flagged = Some(false),
                    Some("THROUGHPUT_UPGRADE") => c.upgrade = true,
                    _ => {}
                }
                if event.is_some() {
                    c.event = event;
                }
            }
            Event::Account { account_id, action } => {
                // The last action of an account's pause reason in the batch wins.
                let reason = match action {
                    AccountAction::Pause(r) | AccountAction::Resume(r) => r,
                };
                pauses.retain(|(a, n, r)| !(*a == account_id && n.is_none() && *r == reason));
                resumes.retain(|(a, n, r)| !(*a == account_id && n.is_none() && *r == reason));
                match action {
                    AccountAction::Pause(reason) => pauses.push((account_id, None, reason)),
                    AccountAction::Resume(reason) => resumes.push((account_id, None, reason)),
                }
            }
            t @ Event::Template { .. } => templates.push(t),
        }
    }
    let mut bump = false;
    if !tiers.is_empty() {
        let (ids, values): (Vec<Uuid>, Vec<&str>) = tiers.into_iter().unzip();
        let n = sqlx::query(
            "UPDATE accounts a SET messaging_tier = u.tier
               FROM UNNEST($1::uuid[], $2::text[]) AS u(id, tier)
              WHERE a.id = u.id AND a.messaging_tier IS DISTINCT FROM u.tier",
        )
        .bind(&ids)
        .bind(&values)
        .execute(db)
        .await
        .context("setting messaging tiers")?
        .rows_affected();
        metrics::counter!("ezpulze_messaging_tier_changes_total", "source" => "webhook")
            .increment(n);
    }
    if !numbers.is_empty() {
        let found = apply_numbers(db, &numbers).await?;
        for ((account, digits), change) in &numbers {
            let Some(ids) = found.get(&(*account, digits.clone())) else {
                continue;
            };
            bump |= change.upgrade;
            for id in ids {
                match change.flagged {
                    Some(true) => pauses.push((*account, Some(id.clone()), PAUSE_NUMBER_FLAGGED)),
                    Some(false) => resumes.push((*account, Some(id.clone()), PAUSE_NUMBER_FLAGGED)),
                    None => {}
                }
            }
        }
        // Any change of a number's rate or state: every worker reloads its numbers.
        bump |= !found.is_empty();
    }
    if !pauses.is_empty() {
        let paused = pause(db, &pauses).await?;
        if paused > 0 {
            tracing::warn!(
                dispatches = paused,
                "dispatches paused by Meta's number quality or account events"
            );
        }
    }
    let mut jobs_out = Vec::new();
    if !resumes.is_empty() {
        jobs_out.extend(resume(db, &resumes).await?);
    }
    for t in templates {
        let Event::Template {
            account_id,
            field,
            name,
            language,
            change,
        } = t
        else {
            continue;
        };
        let applied = template_status::apply(db, account_id, &name, &language, &change)
            .await
            .context("applying a template change")?;
        if applied.found {
            counted(field, "applied");
            jobs_out.extend(applied.jobs);
        } else {
            let elsewhere: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM templates
                                 WHERE account_id <> $1 AND name = $2 AND language = $3)",
            )
            .bind(account_id)
            .bind(&name)
            .bind(&language)
            .fetch_one(db)
            .await
            .context("looking for a template of another account")?;
            if elsewhere {
                other_account(field);
            } else {
                counted(field, "unknown_template");
            }
        }
    }
    if let Some(fx) = effects {
        if !jobs_out.is_empty() {
            if let Err(e) = fx.lanes.push(db, &jobs_out).await {
                // The rows are queued in Postgres: the outbox sweep pushes them.
                tracing::warn!(
                    error = format!("{e:#}"),
                    "pushing the jobs of resumed dispatches failed; the outbox sweep will"
                );
            }
        }
        if bump {
            if let Err(e) =
                ezpulze_common::number_epoch::bump(&mut fx.redis.clone(), &fx.keys).await
            {
                tracing::warn!(error = format!("{e:#}"), "bumping the numbers' epoch failed; workers see the change after their cache TTL");
            }
        }
    }
    Ok(())
}

fn other_account(field: &'static str) {
    counted(field, "other_account");
    metrics::counter!("ezpulze_status_rejected_total", "reason" => "other_account").increment(1);
}

/// Updates the numbers named (by display digits, within their account); returns the
/// phone_number_ids found for each. A number that is only another account's is counted.
async fn apply_numbers(
    db: &PgPool,
    numbers: &[((Uuid, String), NumberChange)],
) -> anyhow::Result<HashMap<(Uuid, String), Vec<String>>> {
    let accounts: Vec<Uuid> = numbers.iter().map(|((a, _), _)| *a).collect();
    let digits: Vec<&str> = numbers.iter().map(|((_, d), _)| d.as_str()).collect();
    let flagged: Vec<Option<bool>> = numbers.iter().map(|(_, c)| c.flagged).collect();
    let upgrade: Vec<bool> = numbers.iter().map(|(_, c)| c.upgrade).collect();
    let event: Vec<Option<&str>> = numbers.iter().map(|(_, c)| c.event.as_deref()).collect();
    let rows: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(&NUMBERS_SQL)
        .bind(&accounts)
        .bind(&digits)
        .bind(&flagged)
        .bind(&upgrade)
        .bind(&event)
        .fetch_all(db)
        .await
        .context("applying number quality events")?;
    let mut found: HashMap<(Uuid, String), Vec<String>> = HashMap::new();
    let mut elsewhere = std::collections::HashSet::new();
    for (account, digits, id) in rows {
        match id {
            Some(id) => found.entry((account, digits)).or_default().push(id),
            None => {
                other_account("phone_number_quality_update");
                elsewhere.insert((account, digits));
            }
        }
    }
    for ((account, d), c) in numbers {
        let key = (*account, d.clone());
        if !found.contains_key(&key) && !elsewhere.contains(&key) {
            counted("phone_number_quality_update", "unknown_number");
        }
        if found.contains_key(&key) {
            counted("phone_number_quality_update", "applied");
            if c.upgrade {
                metrics::counter!("ezpulze_whatsapp_throughput_upgrades_total").increment(1);
            }
            if c.flagged == Some(true) {
                metrics::counter!("ezpulze_whatsapp_numbers_flagged_total").increment(1);
            }
        }
    }
    Ok(found)
}

/// `$1` accounts, `$2` display digits, `$3` flagged (NULL: unchanged), `$4` upgrade, `$5`
/// event. Rows: each updated number (with its id), and each named number the account does
/// not have but another does (id NULL).
static NUMBERS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH u AS (
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bool[], $4::bool[], $5::text[])
                 AS u(account_id, digits, flagged, upgrade, event)),
         n AS (
             UPDATE phone_numbers p SET
                 quality_event = COALESCE(u.event, p.quality_event),
                 quality_changed_at = now(),
                 flagged = COALESCE(u.flagged, p.flagged),
                 throughput_level = CASE WHEN u.upgrade THEN 'HIGH' ELSE p.throughput_level END,
                 messages_per_second = CASE WHEN u.upgrade
                     THEN GREATEST(p.messages_per_second, {HIGH_THROUGHPUT_MPS})
                     ELSE p.messages_per_second END
               FROM u
              WHERE p.account_id = u.account_id
                AND regexp_replace(p.display_phone_number, '[^0-9]', '', 'g') = u.digits
             RETURNING p.account_id, u.digits, p.phone_number_id)
         SELECT account_id, digits, phone_number_id FROM n
         UNION ALL
         SELECT u.account_id, u.digits, NULL FROM u
          WHERE NOT EXISTS (SELECT 1 FROM phone_numbers p
                             WHERE p.account_id = u.account_id
                               AND regexp_replace(p.display_phone_number, '[^0-9]', '', 'g') = u.digits)
            AND EXISTS (SELECT 1 FROM phone_numbers p
                         WHERE p.account_id <> u.account_id
                           AND regexp_replace(p.display_phone_number, '[^0-9]', '', 'g') = u.digits)"
    )
});

/// Pauses the dispatches going out of each (account, number or the whole account) with its
/// reason, a `dispatch.paused` event each. Returns how many were paused.
async fn pause(
    db: &PgPool,
    targets: &[(Uuid, Option<String>, &'static str)],
) -> anyhow::Result<u64> {
    let accounts: Vec<Uuid> = targets.iter().map(|t| t.0).collect();
    let numbers: Vec<Option<&str>> = targets.iter().map(|t| t.1.as_deref()).collect();
    let reasons: Vec<&str> = targets.iter().map(|t| t.2).collect();
    let (n, created, paused_reasons): (i64, Option<Vec<i32>>, Option<Vec<String>>) =
        sqlx::query_as(&PAUSE_SQL)
            .bind(&accounts)
            .bind(&numbers)
            .bind(&reasons)
            .fetch_one(db)
            .await
            .context("pausing dispatches for quality or account events")?;
    hooks::record_created(&created.unwrap_or_default());
    for r in paused_reasons.unwrap_or_default() {
        // A bounded label: one of this module's reasons.
        if let Some(reason) = [
            PAUSE_NUMBER_FLAGGED,
            PAUSE_ACCOUNT_RESTRICTED,
            PAUSE_ACCOUNT_DISABLED,
        ]
        .into_iter()
        .find(|k| *k == r)
        {
            metrics::counter!("ezpulze_dispatches_paused_by_meta_total", "reason" => reason)
                .increment(1);
        }
    }
    Ok(u64::try_from(n).unwrap_or(0))
}

static PAUSE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH t AS (
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[])
                 AS t(account_id, phone_number_id, reason)),
         p AS (
             UPDATE dispatches d SET status = 'paused', pause_reason = t.reason, updated_at = now()
               FROM t
              WHERE d.account_id = t.account_id
                AND (t.phone_number_id IS NULL OR d.phone_number_id = t.phone_number_id)
                AND d.status IN ('queued', 'sending')
             RETURNING d.id, d.account_id, d.broadcast_id, d.key_id, d.test_mode, d.status,
                       d.total, d.pause_reason),
         {events}
         SELECT count(*), {created}, array_agg(pause_reason) FROM p",
        events = hooks::dispatch_events_cte("h", "p", "dispatch.paused"),
        created = hooks::created_counts_sql("h"),
    )
});

/// Resumes the dispatches paused with the given reason of each (account, number or the whole
/// account): back to `sending`, their queued and deferred messages' clocks restarted and their
/// jobs handed back (as the resume route does), a `dispatch.resumed` event each. Returns the
/// send jobs of those messages.
async fn resume(
    db: &PgPool,
    targets: &[(Uuid, Option<String>, &'static str)],
) -> anyhow::Result<Vec<SendJob>> {
    let accounts: Vec<Uuid> = targets.iter().map(|t| t.0).collect();
    let numbers: Vec<Option<&str>> = targets.iter().map(|t| t.1.as_deref()).collect();
    let reasons: Vec<&str> = targets.iter().map(|t| t.2).collect();
    let rows: Vec<ResumedRow> = sqlx::query_as(&RESUME_SQL)
        .bind(&accounts)
        .bind(&numbers)
        .bind(&reasons)
        .fetch_all(db)
        .await
        .context("resuming dispatches for quality or account events")?;
    let resumed = rows.first().map_or(0, |r| r.0);
    hooks::record_created(&rows.first().and_then(|r| r.1.clone()).unwrap_or_default());
    if resumed > 0 {
        metrics::counter!("ezpulze_dispatches_resumed_by_meta_total")
            .increment(u64::try_from(resumed).unwrap_or(0));
        tracing::info!(
            dispatches = resumed,
            "dispatches resumed by Meta's number quality or account events"
        );
    }
    Ok(rows
        .into_iter()
        .filter_map(|(_, _, m, d, a)| {
            Some(SendJob {
                message_id: m?,
                dispatch_id: d?,
                account_id: a?,
            })
        })
        .collect())
}

/// The count of resumed dispatches, the integrator events created, and one restarted message
/// (its id, dispatch, account) per row (NULLs when none).
type ResumedRow = (
    i64,
    Option<Vec<i32>>,
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
);

/// Resumes, with a `dispatch.resumed` event per resumed dispatch.
static RESUME_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH t AS (
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[])
                 AS t(account_id, phone_number_id, reason)),
         r AS (
             UPDATE dispatches d SET status = 'sending', pause_reason = NULL, updated_at = now()
               FROM t
              WHERE d.account_id = t.account_id
                AND (t.phone_number_id IS NULL OR d.phone_number_id = t.phone_number_id)
                AND d.status = 'paused' AND d.pause_reason = t.reason
             RETURNING d.id, d.account_id, d.broadcast_id, d.key_id, d.test_mode, d.status,
                       d.total),
         q AS (
             UPDATE messages m SET updated_at = now(), next_attempt_at = NULL
               FROM r
              WHERE m.dispatch_id = r.id AND m.status IN ('queued', 'deferred')
             RETURNING m.id, m.dispatch_id, r.account_id),
         {events}
         SELECT (SELECT count(*) FROM r), {created}, q.id, q.dispatch_id, q.account_id
           FROM (SELECT 1) one LEFT JOIN q ON true",
        events = hooks::dispatch_events_cte("h", "r", "dispatch.resumed"),
        created = hooks::created_counts_sql("h"),
    )
});

#[cfg(test)]
mod tests {
    use super::*;
    use ezpulze_common::jobs::VerifiedWaba;

    fn job(waba: &str, account: Uuid, body: Value) -> WebhookBody {
        WebhookBody {
            numbers: Some(Vec::new()),
            wabas: vec![VerifiedWaba {
                waba_id: waba.into(),
                account_id: account,
            }],
            body: serde_json::value::to_raw_value(&body).expect("raw"),
        }
    }

    fn dbg(e: Vec<Event>) -> String {
        format!("{e:?}")
    }

    fn change(waba: &str, field: &str, value: Value) -> Value {
        serde_json::json!({"object": "whatsapp_business_account",
            "entry": [{"id": waba, "changes": [{"field": field, "value": value}]}]})
    }

    #[test]
    fn number_events_are_read_leniently_and_checked() {
        let a = Uuid::now_v7();
        let j = job(
            "77",
            a,
            change(
                "77",
                "phone_number_quality_update",
                serde_json::json!({"display_phone_number": "+1 555-078-3881", "event": "THROUGHPUT_UPGRADE",
                    "current_limit": "TIER_1K", "max_daily_conversations_per_business": "TIER_2K", "extra": [1]}),
            ),
        );
        assert_eq!(
            dbg(events(&[&j])),
            dbg(vec![Event::Number {
                account_id: a,
                digits: "15550783881".into(),
                event: Some("THROUGHPUT_UPGRADE".into()),
                tier: Some("TIER_2K"),
            }])
        );
        // A tier Meta does not use: no tier; an entry whose WABA was not verified: nothing.
        let j = job(
            "77",
            a,
            serde_json::json!({"object": "whatsapp_business_account", "entry": [
                {"id": "77", "changes": [{"field": "phone_number_quality_update", "value": {"display_phone_number": "1555", "event": "UPGRADE", "current_limit": "TIER_1K"}}]},
                {"id": "88", "changes": [{"field": "phone_number_quality_update", "value": {"display_phone_number": "1555", "event": "FLAGGED"}}]}
            ]}),
        );
        assert_eq!(
            dbg(events(&[&j])),
            dbg(vec![Event::Number {
                account_id: a,
                digits: "1555".into(),
                event: Some("UPGRADE".into()),
                tier: None,
            }])
        );
    }

    #[test]
    fn account_and_template_events() {
        let a = Uuid::now_v7();
        let read = |field: &str, value: Value| events(&[&job("1", a, change("1", field, value))]);
        let account = |action| {
            dbg(vec![Event::Account {
                account_id: a,
                action,
            }])
        };
        assert_eq!(
            dbg(read(
                "account_update",
                serde_json::json!({"event": "ACCOUNT_RESTRICTION", "restriction_info": [{"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING"}]})
            )),
            account(AccountAction::Pause(PAUSE_ACCOUNT_RESTRICTED))
        );
        assert_eq!(
            dbg(read(
                "account_update",
                serde_json::json!({"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "REINSTATE"}})
            )),
            account(AccountAction::Resume(PAUSE_ACCOUNT_DISABLED))
        );
        assert!(read(
            "account_update",
            serde_json::json!({"event": "ACCOUNT_VIOLATION"})
        )
        .is_empty());
        let t = read(
            "message_template_status_update",
            serde_json::json!({"event": "PAUSED", "message_template_id": 123, "message_template_name": "promo", "message_template_language": "en_US", "reason": "NONE"}),
        );
        let Some(Event::Template { change, name, .. }) = t.first() else {
            panic!("{t:?}");
        };
        assert_eq!(name, "promo");
        assert_eq!(change.status, Some(TemplateStatus::Paused));
        assert_eq!(change.meta_template_id.as_deref(), Some("123"));
        assert!(read(
            "template_category_update",
            serde_json::json!({"message_template_name": "promo", "message_template_language": "en_US", "new_category": "PROMO"})
        )
        .is_empty());
        assert!(read("business_capability_update", serde_json::json!({})).is_empty());
    }
}
