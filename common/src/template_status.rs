//! A template's state as Meta sees it (`docs/templates.md`): the one place it changes. The
//! template sync (`POST /api/v1/templates/sync`, the scheduler's periodic one) and Meta's
//! template webhooks (`message_template_status_update`, `message_template_quality_update`,
//! `template_category_update`) all go through [`apply`].
//!
//! Effects on dispatches (in the same transaction as the template's change):
//! - `PAUSED` / `DISABLED`: the account's dispatches using the template that are still going
//!   out (`scheduled`, `queued`, `sending`) are paused with `pause_reason` `template_paused` /
//!   `template_disabled`, each with a `dispatch.paused` integrator event (the worker leaves
//!   the jobs of a paused dispatch). A `DISABLED` template also turns the `template_paused`
//!   pauses of its dispatches into `template_disabled` ones (they no longer end by
//!   themselves).
//! - `APPROVED`: the dispatches paused with `template_paused` (never those paused by hand or
//!   for another reason) resume: back to `scheduled` when their messages still wait for their
//!   time (the scheduler releases them), otherwise to `sending`, their `queued` messages'
//!   clocks restarted and their send jobs returned in [`Applied::jobs`] for the caller to push
//!   ([`push_resumed`]; a job not pushed is pushed by the outbox sweep after its timeout),
//!   each with a `dispatch.resumed` integrator event.

use std::sync::LazyLock;

use anyhow::Context;
use sqlx::PgPool;
use uuid::Uuid;

use crate::dispatch::JobSink;
use crate::hooks;
use crate::jobs::SendJob;

/// A template's status at Meta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateStatus {
    Pending,
    Approved,
    Rejected,
    Paused,
    Disabled,
}

impl TemplateStatus {
    pub const ALL: [TemplateStatus; 5] = [
        Self::Pending,
        Self::Approved,
        Self::Rejected,
        Self::Paused,
        Self::Disabled,
    ];

    /// Meta's spelling (also the stored one); `IN_APPEAL` and `PENDING_DELETION`, which Meta
    /// also uses, read as `PENDING` and `DISABLED`. Anything else: `None`.
    pub fn from_meta(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" | "IN_APPEAL" => Self::Pending,
            "APPROVED" => Self::Approved,
            "REJECTED" => Self::Rejected,
            "PAUSED" => Self::Paused,
            "DISABLED" | "PENDING_DELETION" => Self::Disabled,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Paused => "PAUSED",
            Self::Disabled => "DISABLED",
        }
    }

    /// The `pause_reason` its dispatches get, for the statuses that halt them.
    pub fn pause_reason(&self) -> Option<&'static str> {
        match self {
            Self::Paused => Some(PAUSE_TEMPLATE_PAUSED),
            Self::Disabled => Some(PAUSE_TEMPLATE_DISABLED),
            _ => None,
        }
    }
}

impl std::fmt::Display for TemplateStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `dispatches.pause_reason` of a dispatch halted because its template was paused (ends by
/// itself when the template is approved again).
pub const PAUSE_TEMPLATE_PAUSED: &str = "template_paused";
/// `dispatches.pause_reason` of a dispatch halted because its template was disabled.
pub const PAUSE_TEMPLATE_DISABLED: &str = "template_disabled";

/// Meta's template categories (a `template_category_update` gives one of them).
pub const CATEGORIES: [&str; 3] = ["MARKETING", "UTILITY", "AUTHENTICATION"];

/// What changed (`None`: unchanged).
#[derive(Debug, Default, Clone)]
pub struct TemplateChange {
    pub status: Option<TemplateStatus>,
    /// The status' reason (a rejection's). Stored with a status only; Meta's `NONE` or an
    /// empty text clears it.
    pub reason: Option<String>,
    /// Meta's quality rating (`GREEN`, `YELLOW`, `RED`, `UNKNOWN`).
    pub quality: Option<String>,
    /// The new category: one of [`CATEGORIES`].
    pub category: Option<String>,
    /// Meta's id of the template (digits).
    pub meta_template_id: Option<String>,
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Whether the account has the template (if not, nothing changed).
    pub found: bool,
    pub paused_dispatches: u64,
    pub resumed_dispatches: u64,
    /// The status before the change (when found).
    pub previous: Option<TemplateStatus>,
    /// The send jobs of the resumed dispatches' `queued` messages: push them
    /// ([`push_resumed`]).
    pub jobs: Vec<SendJob>,
}

/// Why a change cannot be applied (nothing was changed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadChange {
    #[error("unknown template category {0:?} (MARKETING, UTILITY or AUTHENTICATION)")]
    Category(String),
    #[error("a Meta template id is digits only")]
    MetaId,
    #[error("the reason or quality is longer than {0} characters")]
    TooLong(usize),
}

const MAX_REASON: usize = 200;
const MAX_QUALITY: usize = 32;

impl TemplateChange {
    /// Checks the values against what Meta sends (so a bad event changes nothing).
    pub fn validate(&self) -> Result<(), BadChange> {
        if let Some(c) = &self.category {
            if !CATEGORIES.contains(&c.as_str()) {
                return Err(BadChange::Category(c.chars().take(40).collect()));
            }
        }
        if let Some(id) = &self.meta_template_id {
            if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BadChange::MetaId);
            }
        }
        if self
            .reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REASON)
        {
            return Err(BadChange::TooLong(MAX_REASON));
        }
        if self
            .quality
            .as_ref()
            .is_some_and(|q| q.chars().count() > MAX_QUALITY)
        {
            return Err(BadChange::TooLong(MAX_QUALITY));
        }
        Ok(())
    }

    /// The reason as stored: `NONE` and empty texts are no reason.
    fn stored_reason(&self) -> Option<&str> {
        self.reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty() && !r.eq_ignore_ascii_case("none"))
    }
}

/// Finds the template by (account, name, language), applies the change in one transaction.
/// An invalid change ([`TemplateChange::validate`]) is an error and changes nothing; an
/// unknown template is `found: false`.
pub async fn apply(
    db: &PgPool,
    account_id: Uuid,
    name: &str,
    language: &str,
    change: &TemplateChange,
) -> anyhow::Result<Applied> {
    change.validate()?;
    let mut tx = db.begin().await.context("template change: begin")?;
    let row: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT id, status FROM templates
          WHERE account_id = $1 AND name = $2 AND language = $3 FOR UPDATE",
    )
    .bind(account_id)
    .bind(name)
    .bind(language)
    .fetch_optional(&mut *tx)
    .await
    .context("template change: finding the template")?;
    let Some((template_id, previous)) = row else {
        return Ok(Applied::default());
    };
    let previous = TemplateStatus::from_meta(&previous);
    sqlx::query(
        "UPDATE templates SET
             status = COALESCE($2, status),
             status_reason = CASE WHEN $2 IS NULL THEN status_reason ELSE $3 END,
             status_updated_at = CASE WHEN $2 IS NOT NULL AND $2 IS DISTINCT FROM status
                                      THEN now() ELSE status_updated_at END,
             quality_score = COALESCE($4, quality_score),
             category = COALESCE($5, category),
             definition = CASE WHEN $5 IS NULL THEN definition
                               ELSE jsonb_set(definition, '{category}', to_jsonb($5::text)) END,
             meta_template_id = COALESCE($6, meta_template_id),
             updated_at = now()
          WHERE id = $1",
    )
    .bind(template_id)
    .bind(change.status.map(|s| s.as_str()))
    .bind(change.stored_reason())
    .bind(change.quality.as_deref())
    .bind(change.category.as_deref())
    .bind(change.meta_template_id.as_deref())
    .execute(&mut *tx)
    .await
    .context("template change: updating the template")?;

    let mut applied = Applied {
        found: true,
        previous,
        ..Applied::default()
    };
    match change.status {
        Some(s @ (TemplateStatus::Paused | TemplateStatus::Disabled)) => {
            let reason = s.pause_reason().unwrap_or(PAUSE_TEMPLATE_PAUSED);
            let (n, created): (i64, Option<Vec<i32>>) = sqlx::query_as(&PAUSE_SQL)
                .bind(account_id)
                .bind(template_id)
                .bind(reason)
                .fetch_one(&mut *tx)
                .await
                .context("template change: pausing its dispatches")?;
            tx.commit().await.context("template change: commit")?;
            hooks::record_created(&created.unwrap_or_default());
            applied.paused_dispatches = u64::try_from(n).unwrap_or(0);
        }
        Some(TemplateStatus::Approved) => {
            let (n, messages, dispatches, created): (i64, Vec<Uuid>, Vec<Uuid>, Option<Vec<i32>>) =
                sqlx::query_as(&RESUME_SQL)
                    .bind(account_id)
                    .bind(template_id)
                    .bind(PAUSE_TEMPLATE_PAUSED)
                    .fetch_one(&mut *tx)
                    .await
                    .context("template change: resuming its dispatches")?;
            tx.commit().await.context("template change: commit")?;
            hooks::record_created(&created.unwrap_or_default());
            applied.resumed_dispatches = u64::try_from(n).unwrap_or(0);
            applied.jobs = messages
                .into_iter()
                .zip(dispatches)
                .map(|(message_id, dispatch_id)| SendJob {
                    message_id,
                    dispatch_id,
                    account_id,
                })
                .collect();
        }
        _ => tx.commit().await.context("template change: commit")?,
    }
    if applied.paused_dispatches > 0 {
        metrics::counter!("ezpulze_template_dispatches_paused_total")
            .increment(applied.paused_dispatches);
    }
    if applied.resumed_dispatches > 0 {
        metrics::counter!("ezpulze_template_dispatches_resumed_total")
            .increment(applied.resumed_dispatches);
    }
    if let Some(s) = change.status.filter(|s| Some(*s) != previous) {
        metrics::counter!("ezpulze_template_status_changes_total", "status" => s.as_str())
            .increment(1);
    }
    Ok(applied)
}

/// Pushes the jobs of the dispatches [`apply`] resumed. A failure is logged: the rows are
/// `queued` in Postgres and the outbox sweep pushes them after its timeout.
pub async fn push_resumed<S: JobSink>(sink: &S, applied: &Applied) {
    if applied.jobs.is_empty() {
        return;
    }
    if let Err(e) = sink.push_send(&applied.jobs).await {
        tracing::warn!(error = format!("{e:#}"),
            "pushing the jobs of dispatches resumed by their template failed; the outbox sweep will");
    }
}

/// Pauses the template's dispatches that are going out (`$1` account, `$2` template, `$3`
/// reason), with a `dispatch.paused` event each; a `template_disabled` pause also takes over
/// the `template_paused` ones. Returns the count of newly paused dispatches and the events.
static PAUSE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH p AS (
             UPDATE dispatches SET status = 'paused', pause_reason = $3, updated_at = now()
              WHERE account_id = $1 AND template_id = $2
                AND status IN ('scheduled', 'queued', 'sending')
             RETURNING {columns}),
         relabel AS (
             UPDATE dispatches SET pause_reason = $3, updated_at = now()
              WHERE $3 = '{disabled}' AND account_id = $1 AND template_id = $2
                AND status = 'paused' AND pause_reason = '{paused}'
             RETURNING id),
         {events}
         SELECT (SELECT count(*) FROM p), {created}",
        columns = hooks::DISPATCH_EVENT_COLUMNS,
        events = hooks::dispatch_events_cte("h", "p", "dispatch.paused"),
        created = hooks::created_counts_sql("h"),
        disabled = PAUSE_TEMPLATE_DISABLED,
        paused = PAUSE_TEMPLATE_PAUSED,
    )
});

/// Resumes the dispatches paused with `$3` (`template_paused`) of the template (`$1` account,
/// `$2` template): `scheduled` when their messages still wait for their time, else `sending`
/// with their queued messages' clocks restarted (as the resume route does), a
/// `dispatch.resumed` event each. Returns the count, the restarted messages with their
/// dispatches, and the events created.
static RESUME_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH r AS (
             UPDATE dispatches d
                SET status = CASE WHEN EXISTS (SELECT 1 FROM messages m
                                                WHERE m.dispatch_id = d.id AND m.status = 'scheduled')
                                  THEN 'scheduled' ELSE 'sending' END,
                    pause_reason = NULL, updated_at = now()
              WHERE d.account_id = $1 AND d.template_id = $2 AND d.status = 'paused'
                AND d.pause_reason = $3
             RETURNING {columns}),
         q AS (
             UPDATE messages m SET updated_at = now(), next_attempt_at = NULL
               FROM r
              WHERE m.dispatch_id = r.id AND r.status = 'sending' AND m.status IN ('queued', 'deferred')
             RETURNING m.id, m.dispatch_id),
         {events}
         SELECT (SELECT count(*) FROM r),
                COALESCE((SELECT array_agg(id ORDER BY id) FROM q), '{{}}'::uuid[]),
                COALESCE((SELECT array_agg(dispatch_id ORDER BY id) FROM q), '{{}}'::uuid[]),
                {created}",
        columns = hooks::DISPATCH_EVENT_COLUMNS,
        events = hooks::dispatch_events_cte("h", "r", "dispatch.resumed"),
        created = hooks::created_counts_sql("h"),
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_spellings_round_trip() {
        for s in TemplateStatus::ALL {
            assert_eq!(TemplateStatus::from_meta(s.as_str()), Some(s));
        }
        assert_eq!(
            TemplateStatus::from_meta("IN_APPEAL"),
            Some(TemplateStatus::Pending)
        );
        assert_eq!(
            TemplateStatus::from_meta("PENDING_DELETION"),
            Some(TemplateStatus::Disabled)
        );
        assert_eq!(TemplateStatus::from_meta("approved"), None);
        assert_eq!(TemplateStatus::from_meta(""), None);
    }

    #[test]
    fn only_pauses_and_disables_halt_dispatches() {
        assert_eq!(
            TemplateStatus::Paused.pause_reason(),
            Some("template_paused")
        );
        assert_eq!(
            TemplateStatus::Disabled.pause_reason(),
            Some("template_disabled")
        );
        for s in [
            TemplateStatus::Pending,
            TemplateStatus::Approved,
            TemplateStatus::Rejected,
        ] {
            assert_eq!(s.pause_reason(), None);
        }
    }

    #[test]
    fn bad_changes_are_refused() {
        let c = TemplateChange {
            category: Some("PROMO".into()),
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(BadChange::Category(_))));
        let c = TemplateChange {
            meta_template_id: Some("12a".into()),
            ..Default::default()
        };
        assert_eq!(c.validate(), Err(BadChange::MetaId));
        let c = TemplateChange {
            reason: Some("x".repeat(201)),
            ..Default::default()
        };
        assert_eq!(c.validate(), Err(BadChange::TooLong(200)));
        let c = TemplateChange {
            status: Some(TemplateStatus::Rejected),
            reason: Some("INVALID_FORMAT".into()),
            category: Some("UTILITY".into()),
            meta_template_id: Some("1234567890".into()),
            quality: Some("GREEN".into()),
        };
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn none_is_no_reason() {
        let with = |r: &str| TemplateChange {
            reason: Some(r.into()),
            ..Default::default()
        };
        assert_eq!(with("NONE").stored_reason(), None);
        assert_eq!(with("  ").stored_reason(), None);
        assert_eq!(
            with("INVALID_FORMAT").stored_reason(),
            Some("INVALID_FORMAT")
        );
    }

    #[test]
    fn statements_name_their_reasons() {
        assert!(PAUSE_SQL.contains("dispatch.paused"));
        assert!(PAUSE_SQL.contains("'template_disabled'"));
        assert!(RESUME_SQL.contains("'sending'"));
    }
}
