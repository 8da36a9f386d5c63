//! The periodic template sync (`docs/templates.md`): every `TEMPLATE_SYNC_SECS` the leader
//! starts a round over the accounts with a WABA id, in account id order, and syncs one
//! account per step (`ezpulze_runtime::meta_templates::sync_account`: Meta's statuses,
//! reasons and categories through `template_status::apply`, templates that exist at Meta only
//! registered). A step is bounded by [`STEP_TIMEOUT`]; an account that fails (no token, Meta
//! refuses or does not answer) is logged and counted, and the round goes on with the next.
//! Runs beside the tick (its own task), so a slow Graph API never delays releases or sweeps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ezpulze_common::Config;
use ezpulze_runtime::meta_templates::{self, GraphTemplates};
use ezpulze_runtime::send_lanes::SendLanes;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The longest one account's sync may take (then it is abandoned until the next round).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between two accounts of a round.
const STEP_GAP: Duration = Duration::from_secs(1);

/// Where a round is.
pub struct TemplateSync {
    db: PgPool,
    lanes: SendLanes,
    config: Config,
    graph: GraphTemplates,
    every: Duration,
    /// The last account synced in the current round (None: no round running).
    cursor: Option<Uuid>,
    round_started: Option<Instant>,
}

/// What one step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// No round is due.
    Idle,
    /// This account was synced (or failed: counted and logged).
    Synced(Uuid),
    /// The round ended (no account left).
    RoundDone,
}

impl TemplateSync {
    /// None when `TEMPLATE_SYNC_SECS` is 0.
    pub fn new(db: PgPool, lanes: SendLanes, config: &Config) -> anyhow::Result<Option<Self>> {
        let Some(every) = config.template_sync else {
            return Ok(None);
        };
        Ok(Some(Self {
            db,
            lanes,
            config: config.clone(),
            graph: GraphTemplates::new(config)?,
            every,
            cursor: None,
            round_started: None,
        }))
    }

    /// One step: starts a round when one is due, then syncs the next account of the round.
    pub async fn step(&mut self) -> anyhow::Result<Step> {
        if self.cursor.is_none() {
            if self.round_started.is_some_and(|t| t.elapsed() < self.every) {
                return Ok(Step::Idle);
            }
            self.round_started = Some(Instant::now());
            self.cursor = Some(Uuid::nil());
        }
        let after = self.cursor.unwrap_or_else(Uuid::nil);
        let next: Option<Uuid> = sqlx::query_scalar(
            "SELECT account_id FROM whatsapp_settings
              WHERE waba_id IS NOT NULL AND account_id > $1 ORDER BY account_id LIMIT 1",
        )
        .bind(after)
        .fetch_optional(&self.db)
        .await?;
        let Some(account) = next else {
            self.cursor = None;
            metrics::counter!("ezpulze_template_sync_rounds_total").increment(1);
            return Ok(Step::RoundDone);
        };
        self.cursor = Some(account);
        let outcome = tokio::time::timeout(STEP_TIMEOUT, self.sync(account)).await;
        let result = match outcome {
            Ok(Ok(())) => "ok",
            Ok(Err(e)) => {
                tracing::warn!(%account, error = format!("{e:#}"), "template sync of an account failed");
                "failed"
            }
            Err(_) => {
                tracing::warn!(%account, "template sync of an account took too long; abandoned until the next round");
                "timeout"
            }
        };
        metrics::counter!("ezpulze_template_sync_accounts_total", "result" => result).increment(1);
        Ok(Step::Synced(account))
    }

    async fn sync(&self, account: Uuid) -> anyhow::Result<()> {
        let creds = meta_templates::credentials(&self.db, &self.config.sealer(), account).await?;
        let report = meta_templates::sync_account(&self.db, &self.graph, &creds, account).await?;
        if !report.jobs.is_empty() {
            if let Err(e) = self.lanes.push(&self.db, &report.jobs).await {
                tracing::warn!(error = format!("{e:#}"), "pushing the jobs of dispatches a template sync resumed failed; the outbox sweep will");
            }
        }
        if report.updated + report.registered > 0 {
            tracing::info!(%account, updated = report.updated, registered = report.registered,
                paused = report.paused_dispatches, resumed = report.resumed_dispatches,
                "templates synced with Meta");
        }
        Ok(())
    }

    /// Steps while this process leads (`leader`), until cancelled.
    pub async fn run(mut self, leader: Arc<AtomicBool>, cancel: CancellationToken) {
        loop {
            let wait = if leader.load(Ordering::Relaxed) {
                match self.step().await {
                    Ok(Step::Synced(_)) => STEP_GAP,
                    Ok(Step::Idle | Step::RoundDone) => Duration::from_secs(1),
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "template sync step failed");
                        Duration::from_secs(5)
                    }
                }
            } else {
                // A new leader starts its own round.
                self.cursor = None;
                self.round_started = None;
                Duration::from_secs(1)
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
