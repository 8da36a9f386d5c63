//! `GET|PUT /admin/v1/whatsapp`: the account's WhatsApp settings. Access tokens and the app
//! secret are write-only and sealed at rest; numbers not listed in a PUT are removed.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::contacts::fields::Errors;
use crate::auth::AdminAccount;
use crate::error::{ApiError, ApiResult};
use crate::extract::{double_option, ApiJson};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneNumberIn {
    phone_number_id: String,
    display_phone_number: String,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    messages_per_second: Option<i32>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettingsIn {
    phone_numbers: Option<Vec<PhoneNumberIn>>,
    #[serde(deserialize_with = "double_option")]
    app_secret: Option<Option<String>>,
    #[serde(deserialize_with = "double_option")]
    verify_token: Option<Option<String>>,
    /// The account's WhatsApp Business Account id (digits): templates are submitted to and
    /// synced from it, and Meta's WABA-level webhooks find the account by it. Null removes it.
    #[serde(deserialize_with = "double_option")]
    waba_id: Option<Option<String>>,
}

/// Read the WhatsApp settings
#[utoipa::path(get, path = "/whatsapp", operation_id = "getWhatsAppSettings")]
pub async fn get(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&state, account).await?))
}

async fn view(state: &AppState, account: Uuid) -> ApiResult<Value> {
    let numbers: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT phone_number_id, display_phone_number, messages_per_second FROM phone_numbers
         WHERE account_id = $1 ORDER BY position, phone_number_id",
    )
    .bind(account)
    .fetch_all(state.db())
    .await?;
    let settings: Option<(bool, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT app_secret_enc IS NOT NULL, verify_token, waba_id FROM whatsapp_settings WHERE account_id = $1",
    )
    .bind(account)
    .fetch_optional(state.db())
    .await?;
    let (secret_set, verify, waba_id) = settings.unwrap_or((false, None, None));
    Ok(json!({
        "phone_numbers": numbers.into_iter().map(|(id, display, mps)| json!({
            "phone_number_id": id, "display_phone_number": display, "messages_per_second": mps, "access_token_set": true,
        })).collect::<Vec<_>>(),
        "app_secret_set": secret_set,
        "verify_token": verify,
        "waba_id": waba_id,
    }))
}

/// Write the WhatsApp settings
#[utoipa::path(put, path = "/whatsapp", operation_id = "putWhatsAppSettings")]
pub async fn put(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    ApiJson(body): ApiJson<SettingsIn>,
) -> ApiResult<Json<Value>> {
    let sealer = state.config().sealer();
    let mut errors = Errors::default();
    if let Some(numbers) = &body.phone_numbers {
        let mut seen = std::collections::HashSet::new();
        for (i, n) in numbers.iter().enumerate() {
            if n.phone_number_id.is_empty()
                || n.phone_number_id.len() > 32
                || !n.phone_number_id.bytes().all(|b| b.is_ascii_digit())
            {
                errors.push(
                    format!("phone_numbers[{i}].phone_number_id"),
                    "digits only, up to 32",
                );
            }
            if !seen.insert(n.phone_number_id.as_str()) {
                errors.push(
                    format!("phone_numbers[{i}].phone_number_id"),
                    "listed twice",
                );
            }
            if n.display_phone_number.trim().is_empty() || n.display_phone_number.len() > 32 {
                errors.push(
                    format!("phone_numbers[{i}].display_phone_number"),
                    "1 to 32 characters",
                );
            }
            if n.access_token
                .as_ref()
                .is_some_and(|t| t.is_empty() || t.len() > 4096)
            {
                errors.push(
                    format!("phone_numbers[{i}].access_token"),
                    "1 to 4096 characters",
                );
            }
            if n.messages_per_second
                .is_some_and(|m| !(1..=10_000).contains(&m))
            {
                errors.push(
                    format!("phone_numbers[{i}].messages_per_second"),
                    "between 1 and 10000",
                );
            }
        }
    }
    if let Some(Some(s)) = &body.app_secret {
        if s.is_empty() || s.len() > 512 {
            errors.push("app_secret", "1 to 512 characters");
        }
    }
    if let Some(Some(v)) = &body.verify_token {
        if v.is_empty() || v.len() > 256 {
            errors.push("verify_token", "1 to 256 characters");
        }
    }
    if let Some(Some(w)) = &body.waba_id {
        if w.is_empty() || w.len() > 32 || !w.bytes().all(|b| b.is_ascii_digit()) {
            errors.push("waba_id", "digits only, up to 32");
        }
    }
    errors.finish()?;
    let mut tx = state.db().begin().await?;
    sqlx::query("INSERT INTO whatsapp_settings (account_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(account)
        .execute(&mut *tx)
        .await?;
    if let Some(secret) = &body.app_secret {
        let sealed = secret
            .as_deref()
            .map(|s| sealer.seal(s))
            .transpose()
            .map_err(|e| ApiError::Internal(e.into()))?;
        sqlx::query("UPDATE whatsapp_settings SET app_secret_enc = $2, updated_at = now() WHERE account_id = $1")
            .bind(account)
            .bind(sealed)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(waba) = &body.waba_id {
        sqlx::query(
            "UPDATE whatsapp_settings SET waba_id = $2, updated_at = now() WHERE account_id = $1",
        )
        .bind(account)
        .bind(waba)
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.constraint() == Some("whatsapp_settings_waba") => {
                ApiError::Conflict(
                    "this WhatsApp Business Account id belongs to another account".into(),
                )
            }
            _ => e.into(),
        })?;
    }
    if let Some(verify) = &body.verify_token {
        let sql = "UPDATE whatsapp_settings SET verify_token = $2, updated_at = now() WHERE account_id = $1";
        sqlx::query(sql)
            .bind(account)
            .bind(verify)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(numbers) = &body.phone_numbers {
        let ids: Vec<&str> = numbers.iter().map(|n| n.phone_number_id.as_str()).collect();
        let removed: Vec<String> = sqlx::query_scalar(
            "DELETE FROM phone_numbers WHERE account_id = $1 AND NOT (phone_number_id = ANY($2))
             RETURNING phone_number_id",
        )
        .bind(account)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        cancel_dispatches_of_removed(&mut tx, account, &removed).await?;
        for (pos, n) in numbers.iter().enumerate() {
            let token = n
                .access_token
                .as_deref()
                .map(|t| sealer.seal(t))
                .transpose()
                .map_err(|e| ApiError::Internal(e.into()))?;
            let res: Option<(bool,)> = sqlx::query_as(
                "INSERT INTO phone_numbers (phone_number_id, account_id, display_phone_number, access_token_enc, messages_per_second, position)
                 VALUES ($1, $2, $3, COALESCE($4, ''::bytea), COALESCE($5, 80), $6)
                 ON CONFLICT (phone_number_id) DO UPDATE SET
                     display_phone_number = EXCLUDED.display_phone_number,
                     access_token_enc = COALESCE($4, phone_numbers.access_token_enc),
                     messages_per_second = COALESCE($5, phone_numbers.messages_per_second),
                     position = EXCLUDED.position
                 WHERE phone_numbers.account_id = $2
                 RETURNING length(access_token_enc) > 0",
            )
            .bind(&n.phone_number_id)
            .bind(account)
            .bind(n.display_phone_number.trim())
            .bind(token)
            .bind(n.messages_per_second)
            .bind(pos as i32)
            .fetch_optional(&mut *tx)
            .await?;
            match res {
                None => {
                    return Err(ApiError::Conflict(format!(
                        "phone number {} belongs to another account",
                        n.phone_number_id
                    )))
                }
                Some((false,)) => {
                    return Err(ApiError::field(
                        format!("phone_numbers[{pos}].access_token"),
                        "required for a new number",
                    ))
                }
                Some((true,)) => {}
            }
        }
    }
    tx.commit().await?;
    state.webhook_secrets().clear();
    if let Some(numbers) = &body.phone_numbers {
        let ids: Vec<&str> = numbers.iter().map(|n| n.phone_number_id.as_str()).collect();
        // Retried in the background if it fails (webhooks for a new number may meet 404 on
        // other replicas until then; Meta retries them).
        let _ = crate::auth::key_cache::publish_numbers(
            state.key_cache(),
            &mut state.redis(),
            &state.config().redis_prefix,
            &ids,
        )
        .await;
        // A rate set by hand is in force in every worker within about a second (their number
        // caches reload when the numbers' epoch moves); otherwise after the cache's TTL.
        if let Err(e) =
            ezpulze_common::number_epoch::bump(&mut state.redis(), state.keyspace()).await
        {
            tracing::warn!(error = format!("{e:#}"), "bumping the numbers' epoch failed; workers see the new rates after their cache TTL");
        }
    }
    Ok(Json(view(&state, account).await?))
}

/// What a removed number leaves behind: the account's dispatches still meant to go out from
/// it are cancelled, their unsent messages with a reason, so that none of them can ever be
/// sent with the credentials of whoever registers the number next.
async fn cancel_dispatches_of_removed(
    tx: &mut sqlx::PgConnection,
    account: Uuid,
    removed: &[String],
) -> ApiResult<()> {
    if removed.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE messages m SET status = 'cancelled',
                error_title = 'the dispatch''s phone number was removed from the account',
                updated_at = now()
           FROM dispatches d
          WHERE m.dispatch_id = d.id AND d.account_id = $1 AND d.phone_number_id = ANY($2)
            AND d.status NOT IN ('completed', 'cancelled')
            AND m.status IN ('scheduled', 'queued', 'deferred')",
    )
    .bind(account)
    .bind(removed)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE dispatches SET status = 'cancelled', updated_at = now()
          WHERE account_id = $1 AND phone_number_id = ANY($2) AND status NOT IN ('completed', 'cancelled')",
    )
    .bind(account)
    .bind(removed)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
