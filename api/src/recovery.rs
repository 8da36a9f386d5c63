//! Operator recovery from the command line (`ezpulze-api issue-admin-token --account <id>`):
//! a new admin token for an account whose token is lost. The old one stops working, the
//! account's web UI sessions end, and running replicas learn of the new token the way they
//! learn of one made through the API (a recent-creation mark and the invalidation channel).

use anyhow::Context;
use ezpulze_common::{keys, keyspace::Keyspace, Config};
use uuid::Uuid;

use crate::auth::{key_cache, known};

/// Replaces `account`'s admin token; returns the new one.
pub async fn issue_admin_token(config: &Config, account: Uuid) -> anyhow::Result<String> {
    let stores = ezpulze_runtime::stores::open(config).await?;
    let token = keys::generate_admin_token();
    let hash = keys::SecretHasher::new(config.pepper()).hash(&token);
    let mut tx = stores.db.begin().await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1)")
        .bind(account)
        .fetch_one(&mut *tx)
        .await?;
    anyhow::ensure!(exists, "no account {account}");
    crate::routes::accounts::set_admin_token(&mut tx, account, &hash).await?;
    tx.commit().await?;
    let space = Keyspace::new(config.redis_prefix.clone());
    let mut redis = stores.redis;
    let sessions: Vec<String> = redis::cmd("SMEMBERS")
        .arg(space.account_sessions(&account))
        .query_async(&mut redis)
        .await
        .unwrap_or_default();
    let mut pipe = redis::pipe();
    for sid in &sessions {
        pipe.cmd("DEL").arg(space.session(sid)).ignore();
    }
    pipe.cmd("DEL")
        .arg(space.account_sessions(&account))
        .ignore();
    pipe.cmd("SET")
        .arg(space.recently_created(&hex::encode(hash)))
        .arg(1)
        .arg("EX")
        .arg(known::RECENT_SECS)
        .ignore();
    pipe.cmd("PUBLISH")
        .arg(key_cache::channel(&config.redis_prefix))
        .arg(known::created_message(&hash))
        .ignore();
    pipe.query_async::<()>(&mut redis)
        .await
        .context("ending the account's sessions and announcing the new token")?;
    Ok(token)
}
