//! `api-kill-9-mid-expansion`: an audience send (docs/audiences.md) whose fan-out loses every
//! api process mid-way. The account holds [`Size::audience_contacts`] contacts (seeded in
//! Postgres in one statement, every fifth tagged `vip`), the broadcast goes to `tags_all:
//! ["vip"]` with its variables from each contact's name and `order_id` attribute; once the
//! first chunk is committed and the fan-out is still expanding, every api is killed
//! (`kill -9`) and restarted. The chunks the dead processes had under way must leave nothing,
//! the restarted ones take their slices over once the leases expire (`AUDIENCE_LEASE_SECS`, 5 s here), and the dispatch
//! must end with exactly the SQL ground truth's messages (every vip phone once, nothing else),
//! each with its own contact's values, its total equal to them, no rejection, and every
//! message sent once and final (the checks every scenario ends with).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::scenarios::{Fault, Outcome, Suite};

/// What the report says of the fan-out.
#[derive(Debug, Default, Clone)]
pub struct Fanout {
    /// Contacts of the account, and those tagged `vip` (the SQL ground truth).
    pub contacts: usize,
    pub audience: i64,
    /// Seconds to seed the contacts.
    pub seed_s: f64,
    /// Slices the fan-out was split into.
    pub slices: i64,
    /// Contacts passed (committed chunks) and messages when every api was dead, and the
    /// slices whose chunk died with them (leased at the kill).
    pub passed_at_kill: i64,
    pub messages_at_kill: i64,
    pub leased_at_kill: usize,
    /// From the request's commit to the last chunk's.
    pub fanout_s: f64,
}

impl Fanout {
    /// The report's words.
    pub fn describe(&self) -> String {
        format!(
            "audience {} of {} contacts (seeded in {:.1}s), {} slices; killed at {} passed ({:.0}%, {} chunks under way); fan-out {:.1}s",
            self.audience,
            self.contacts,
            self.seed_s,
            self.slices,
            self.passed_at_kill,
            100.0 * self.passed_at_kill as f64 / self.audience.max(1) as f64,
            self.leased_at_kill,
            self.fanout_s
        )
    }
}

/// The account's contacts in one statement: phones `+1555` and 7 digits, every fifth tagged
/// `vip`, each with its `order_id` (a number: the placeholder gives it as text), ids in
/// creation order (`ezp_uuid7()`), and the attribute's key (`variables_from` may only name
/// attributes the account has).
async fn seed(db: &PgPool, account: Uuid, n: usize) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO contacts (id, account_id, phone, name, attributes, tags)
         SELECT ezp_uuid7(), $1, '+1555' || lpad(i::text, 7, '0'), 'Contact ' || i,
                jsonb_build_object('order_id', 100000000 + i),
                CASE WHEN i % 5 = 0 THEN ARRAY['vip'] ELSE ARRAY[]::text[] END
           FROM generate_series(1, $2) AS i",
    )
    .bind(account)
    .bind(i32::try_from(n)?)
    .execute(db)
    .await
    .context("seeding the contacts")?;
    sqlx::query("INSERT INTO contact_attribute_keys (account_id, key) VALUES ($1, 'order_id')")
        .bind(account)
        .execute(db)
        .await?;
    // As autovacuum would after a bulk load: the audience's count and split see the data.
    sqlx::query("ANALYZE contacts").execute(db).await?;
    Ok(())
}

/// The fan-out's rows now: slice -> (passed, expanding, leased).
async fn slices(db: &PgPool, dispatch: Uuid) -> anyhow::Result<BTreeMap<i16, (i64, bool, bool)>> {
    let rows: Vec<(i16, i32, bool, bool)> = sqlx::query_as(
        "SELECT slice, passed, state = 'expanding', lease_token IS NOT NULL AND lease_until > now()
           FROM dispatch_audiences WHERE dispatch_id = $1",
    )
    .bind(dispatch)
    .fetch_all(db)
    .await
    .context("reading the fan-out")?;
    Ok(rows
        .into_iter()
        .map(|(s, p, e, l)| (s, (i64::from(p), e, l)))
        .collect())
}

fn passed(s: &BTreeMap<i16, (i64, bool, bool)>) -> i64 {
    s.values().map(|v| v.0).sum()
}

fn expanding(s: &BTreeMap<i16, (i64, bool, bool)>) -> bool {
    s.values().any(|v| v.1)
}

async fn messages_of(db: &PgPool, dispatch: Uuid) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE dispatch_id = $1")
            .bind(dispatch)
            .fetch_one(db)
            .await?,
    )
}

impl Suite {
    pub(crate) async fn run_kill_mid_expansion(&mut self) -> anyhow::Result<Outcome> {
        let fault = Fault::ApiKillMidExpansion;
        let mut env = self.setup(fault, None).await?;
        let mut out = Outcome {
            scenario: fault.name(),
            ..Outcome::default()
        };
        let mut f = Fanout {
            contacts: self.size.audience_contacts,
            ..Fanout::default()
        };
        let t = env.tenants[0].clone();
        let db = env.db.clone();
        let broadcast: Uuid = t.broadcast.parse().context("broadcast id")?;
        let account: Uuid = sqlx::query_scalar("SELECT account_id FROM broadcasts WHERE id = $1")
            .bind(broadcast)
            .fetch_one(&db)
            .await?;
        let started = Instant::now();
        seed(&db, account, f.contacts).await?;
        f.seed_s = started.elapsed().as_secs_f64();

        // The template's body is "Hi {{1}}, your order {{2}} ...{{3}}." with a URL button.
        let body = json!({
            "audience": {"tags_all": ["vip"]},
            "variables_from": {
                "body": ["{{contact.name}}", "{{attributes.order_id}}", "Monday"],
                "buttons": [{"index": 0, "text": "{{attributes.order_id}}"}]
            }
        });
        let r = env
            .stack
            .http
            .post(format!(
                "{}/api/v1/broadcasts/{broadcast}/send",
                env.stack.apis[0].base
            ))
            .bearer_auth(&t.key)
            .json(&body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or_default();
        if status != 202 {
            bail!("the audience send was answered {status}: {v}");
        }
        let dispatch: Uuid = v["dispatch_id"]
            .as_str()
            .context("no dispatch_id in the 202")?
            .parse()?;

        // Under way: split into its slices (both sizes make several), a chunk committed, the
        // fan-out not over. (The first chunk commits beside the split's count, so a kill
        // right after it finds one slice and no split stored: the restarted api counts and
        // splits again, after that chunk's cursor.)
        let start = Instant::now();
        loop {
            let s = slices(&db, dispatch).await?;
            if s.len() > 1 && passed(&s) > 0 && expanding(&s) {
                break;
            }
            if !s.is_empty() && !expanding(&s) {
                bail!("the fan-out ended before the kill ({} passed)", passed(&s));
            }
            if start.elapsed() > Duration::from_secs(120) {
                bail!("no chunk committed within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for api in env.stack.apis.iter_mut() {
            api.kill()?;
        }
        let killed = Instant::now();
        let accepted_at_kill = env.stack.sim_accepted().await;
        // Nothing moves while every api is dead: this is what the fan-out had committed.
        let at_kill = slices(&db, dispatch).await?;
        f.slices = at_kill.len() as i64;
        f.passed_at_kill = passed(&at_kill);
        f.messages_at_kill = messages_of(&db, dispatch).await?;
        let leased: Vec<(i16, i64)> = at_kill
            .iter()
            .filter(|(_, v)| v.1 && v.2)
            .map(|(k, v)| (*k, v.0))
            .collect();
        f.leased_at_kill = leased.len();
        if f.messages_at_kill != f.passed_at_kill {
            out.problems.push(format!(
                "at the kill, {} contacts passed but {} messages exist (a chunk left a part)",
                f.passed_at_kill, f.messages_at_kill
            ));
        }
        for i in 0..env.stack.apis.len() {
            env.stack.restart_api(i).await?;
        }

        // Every slice whose chunk died moves again (its lease expired and was taken over),
        // then the fan-out ends. Meanwhile the workers go on sending what was committed.
        let bound = self.size.drain_bound;
        let mut resumed = None;
        loop {
            if resumed.is_none() && env.stack.sim_accepted().await > accepted_at_kill {
                resumed = Some(killed.elapsed().as_secs_f64());
            }
            let s = slices(&db, dispatch).await?;
            let taken_over = leased
                .iter()
                .all(|(k, p)| s.get(k).is_some_and(|v| v.0 > *p || !v.1));
            if taken_over && out.takeover_s.is_none() {
                out.takeover_s = Some(killed.elapsed().as_secs_f64());
            }
            if !expanding(&s) {
                break;
            }
            if killed.elapsed() > bound {
                out.problems.push(format!(
                    "the fan-out still expanding {bound:?} after the kill ({} passed)",
                    passed(&s)
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        f.fanout_s = sqlx::query_scalar(
            "SELECT extract(epoch FROM max(updated_at) - min(created_at))::float8
               FROM dispatch_audiences WHERE dispatch_id = $1",
        )
        .bind(dispatch)
        .fetch_one(&db)
        .await?;
        out.resumed_s = match resumed {
            Some(r) => r,
            None => crate::scenarios::resumed_after(&env.stack, killed).await,
        };
        let drained = self
            .drain(&env.db, &env.stack, &env.prefix, &mut out)
            .await?;

        // The ground truth: the account's contacts tagged vip, each once, nothing else.
        let (truth, rows, phones, missing, extra, total, rejected, counted): (
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = sqlx::query_as(
            "WITH truth AS (SELECT phone FROM contacts WHERE account_id = $1 AND tags @> ARRAY['vip']),
                  sent AS (SELECT to_phone FROM messages WHERE dispatch_id = $2)
             SELECT (SELECT count(*) FROM truth), (SELECT count(*) FROM sent),
                    (SELECT count(DISTINCT to_phone) FROM sent),
                    (SELECT count(*) FROM (SELECT phone FROM truth EXCEPT SELECT to_phone FROM sent) x),
                    (SELECT count(*) FROM (SELECT to_phone FROM sent EXCEPT SELECT phone FROM truth) x),
                    (SELECT total FROM dispatches WHERE id = $2)::bigint,
                    (SELECT count(*) FROM dispatch_rejections WHERE dispatch_id = $2),
                    (SELECT coalesce(sum(audience_total), 0) FROM dispatch_audiences WHERE dispatch_id = $2)::bigint",
        )
        .bind(account)
        .bind(dispatch)
        .fetch_one(&db)
        .await
        .context("comparing with the ground truth")?;
        f.audience = truth;
        let p = &mut out.problems;
        if rows != truth || phones != truth || missing != 0 || extra != 0 {
            p.push(format!(
                "{truth} vip contacts, {rows} messages to {phones} phones ({missing} missing, {extra} not in the audience)"
            ));
        }
        if total != truth || counted != truth || rejected != 0 {
            p.push(format!(
                "the dispatch's total {total}, audience counted {counted}, {rejected} rejections (expected {truth}, {truth}, 0)"
            ));
        }
        // Each message carries its own contact's values.
        let (wrong, sample): (i64, Option<String>) = sqlx::query_as(
            "SELECT count(*), min(m.to_phone || ': ' || m.payload::text)
               FROM messages m LEFT JOIN contacts c ON c.account_id = $1 AND c.phone = m.to_phone
              WHERE m.dispatch_id = $2 AND (c.id IS NULL
                 OR jsonb_path_query_array(m.payload::jsonb, '$.template.components[*] ? (@.type == \"body\").parameters[*].text')
                    IS DISTINCT FROM jsonb_build_array(c.name, c.attributes->>'order_id', 'Monday')
                 OR jsonb_path_query_array(m.payload::jsonb, '$.template.components[*] ? (@.type == \"button\").parameters[*].text')
                    IS DISTINCT FROM jsonb_build_array(c.attributes->>'order_id'))",
        )
        .bind(account)
        .bind(dispatch)
        .fetch_one(&db)
        .await
        .context("checking the messages' variables")?;
        if wrong > 0 {
            p.push(format!(
                "{wrong} messages without their contact's name and order_id, e.g. {}",
                sample.unwrap_or_default()
            ));
        }
        // The integrator's view agrees.
        let v: Value = env
            .stack
            .http
            .get(format!(
                "{}/api/v1/dispatches/{dispatch}",
                env.stack.apis[0].base
            ))
            .bearer_auth(&t.key)
            .send()
            .await?
            .json()
            .await?;
        if v["audience"]["state"] != "done"
            || v["total"].as_i64() != Some(truth)
            || v["rejected"].as_i64() != Some(0)
            || v["audience"]["passed"].as_i64() != Some(truth)
        {
            p.push(format!("GET /dispatches/{dispatch}: {v}"));
        }
        out.accepted = usize::try_from(truth).unwrap_or(0);
        out.fanout = Some(f);
        self.verify(
            fault,
            env,
            out,
            drained,
            1,
            usize::try_from(truth).unwrap_or(0),
        )
        .await
    }
}
