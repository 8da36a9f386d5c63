//! The periodic template sync (`ezpulze_scheduler::template_sync`) against the simulator:
//! a round visits the accounts with a WABA id one at a time, in id order; an account whose
//! sync fails (no access token) is passed over and the round goes on; a template that exists
//! at Meta only is registered with Meta's status; the next round waits for
//! `TEMPLATE_SYNC_SECS`; 0 turns the sync off.

use ezpulze_scheduler::template_sync::{Step, TemplateSync};
use ezpulze_testkit::app::TestApp;
use ezpulze_testkit::sim::SimClient;
use serde_json::{json, Value};
use uuid::Uuid;

const NUMBER: &str = "106540352247001";
const TOKEN: &str = "sync-token";
const WABA: &str = "4000000000000001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_syncs_each_account_once_and_registers_metas_templates() {
    let handle = ezpulze_simulator::spawn(ezpulze_simulator::SimConfig::default())
        .await
        .expect("simulator");
    let sim = SimClient::new(handle.url());
    sim.configure(
        &json!({"numbers": [{"phone_number_id": NUMBER, "display_phone_number": "1555",
        "access_token": TOKEN, "waba_id": WABA}]}),
    )
    .await;
    let app = TestApp::spawn_against(&handle.url(), &[("TEMPLATE_SYNC_SECS", "3600")]).await;
    let synced = app.account("Synced").await;
    let (status, v) = app
        .send(
            "PUT",
            "/admin/v1/whatsapp",
            &synced.admin,
            Some(
                json!({"phone_numbers": [{"phone_number_id": NUMBER, "display_phone_number": "1555",
                "access_token": TOKEN}], "waba_id": WABA}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // A WABA id but no number: its sync fails and the round goes on.
    let tokenless = app.account("Tokenless").await;
    let (status, v) = app
        .send(
            "PUT",
            "/admin/v1/whatsapp",
            &tokenless.admin,
            Some(json!({"waba_id": "4000000000000002"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // No WABA id: not visited.
    app.account("Local").await;

    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let r = http
        .post(format!("{}/_sim/templates", handle.url()))
        .json(&json!({"waba_id": WABA, "name": "made_at_meta", "language": "en",
            "category": "UTILITY", "status": "APPROVED",
            "components": [{"type": "BODY", "text": "Hello {{1}}", "example": {"body_text": [["Ann"]]}}]}))
        .send()
        .await
        .expect("seed");
    assert_eq!(r.status().as_u16(), 201);

    let config = app.config();
    let db = app.pool().await;
    let lanes = ezpulze_runtime::send_lanes::SendLanes::connect(
        &config,
        ezpulze_runtime::send_lanes::config(&config),
    )
    .await
    .expect("lanes");
    let mut syncer = TemplateSync::new(db.clone(), lanes.clone(), &config)
        .expect("syncer")
        .expect("on");
    let first: Uuid = synced.id.parse().expect("uuid");
    let second: Uuid = tokenless.id.parse().expect("uuid");
    assert_eq!(syncer.step().await.expect("step"), Step::Synced(first));
    assert_eq!(syncer.step().await.expect("step"), Step::Synced(second));
    assert_eq!(syncer.step().await.expect("step"), Step::RoundDone);
    assert_eq!(syncer.step().await.expect("step"), Step::Idle);

    let rows: Vec<(Uuid, String, String, Option<String>)> = sqlx::query_as(
        "SELECT account_id, name, status, meta_template_id FROM templates ORDER BY name",
    )
    .fetch_all(&db)
    .await
    .expect("templates");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].0, rows[0].1.as_str(), rows[0].2.as_str()),
        (first, "made_at_meta", "APPROVED")
    );
    assert!(rows[0].3.is_some());
    let stats: Value = sim.stats().await;
    assert_eq!(
        stats["templates"]["created"], 0,
        "a sync only reads: {stats}"
    );

    let mut off = config.clone();
    off.template_sync = None;
    assert!(TemplateSync::new(db, lanes, &off)
        .expect("syncer")
        .is_none());
}
