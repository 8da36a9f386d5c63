//! A template's state changes (`ezpulze_common::template_status::apply`, the one place they
//! happen): a pause or disable halts the dispatches using it (with `dispatch.paused` events),
//! an approval resumes those its pause halted (not those paused by hand) and hands back their
//! jobs, a category change is stored in the row and the definition, an unknown template or
//! another account's changes nothing, and a bad change is refused with nothing changed.

mod support;

use ezpulze_common::template_status::{apply, TemplateChange, TemplateStatus};
use serde_json::json;
use sqlx::PgPool;
use support::{recipients, templates, Sender, TestApp};
use uuid::Uuid;

fn status(s: TemplateStatus) -> TemplateChange {
    TemplateChange {
        status: Some(s),
        ..Default::default()
    }
}

async fn dispatch_state(db: &PgPool, id: Uuid) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, pause_reason FROM dispatches WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .expect("dispatch")
}

async fn new_dispatch(app: &TestApp, s: &Sender, at: Option<&str>) -> Uuid {
    app.dispatch(s, recipients(3, 0), at)
        .await
        .parse()
        .expect("uuid")
}

#[tokio::test]
async fn pause_halts_and_approval_resumes_the_templates_dispatches() {
    let app = TestApp::spawn().await;
    let s = app.sender(templates::text(), json!({})).await;
    let db = app.pool().await;
    let account: Uuid = s.account.id.parse().expect("uuid");
    // An endpoint, so pauses create `dispatch.paused` deliveries.
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, account_id, url, secret_enc)
         VALUES (ezp_uuid7(), $1, 'https://hooks.example.com/x', '\\x00')",
    )
    .bind(account)
    .execute(&db)
    .await
    .expect("endpoint");

    let queued = new_dispatch(&app, &s, None).await;
    let at = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let scheduled = new_dispatch(&app, &s, Some(&at)).await;
    let by_hand = new_dispatch(&app, &s, None).await;
    sqlx::query("UPDATE dispatches SET status = 'paused' WHERE id = $1")
        .bind(by_hand)
        .execute(&db)
        .await
        .expect("pause by hand");
    let template: Uuid = s.template_id.parse().expect("uuid");
    let (t,): (Option<Uuid>,) = sqlx::query_as("SELECT template_id FROM dispatches WHERE id = $1")
        .bind(queued)
        .fetch_one(&db)
        .await
        .expect("dispatch");
    assert_eq!(t, Some(template), "a send records its template");

    let db_pool = &db;
    let a = apply(
        db_pool,
        account,
        "order_update",
        "en_US",
        &status(TemplateStatus::Paused),
    )
    .await
    .expect("pause");
    assert!(a.found);
    assert_eq!(a.paused_dispatches, 2);
    assert_eq!(a.previous, Some(TemplateStatus::Approved));
    for d in [queued, scheduled] {
        assert_eq!(
            dispatch_state(&db, d).await,
            ("paused".into(), Some("template_paused".into()))
        );
    }
    assert_eq!(dispatch_state(&db, by_hand).await, ("paused".into(), None));
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries WHERE account_id = $1 AND event_type = 'dispatch.paused'",
    )
    .bind(account)
    .fetch_one(&db)
    .await
    .expect("events");
    assert_eq!(events, 2, "one dispatch.paused event per paused dispatch");
    let (st,): (String,) = sqlx::query_as("SELECT status FROM templates WHERE id = $1")
        .bind(template)
        .fetch_one(&db)
        .await
        .expect("template");
    assert_eq!(st, "PAUSED");

    let a = apply(
        db_pool,
        account,
        "order_update",
        "en_US",
        &status(TemplateStatus::Approved),
    )
    .await
    .expect("approve");
    assert_eq!(a.resumed_dispatches, 2);
    assert_eq!(dispatch_state(&db, queued).await, ("sending".into(), None));
    assert_eq!(
        dispatch_state(&db, scheduled).await,
        ("scheduled".into(), None)
    );
    assert_eq!(dispatch_state(&db, by_hand).await, ("paused".into(), None));
    // The queued dispatch's three messages come back as jobs; the scheduled one waits.
    assert_eq!(a.jobs.len(), 3);
    assert!(a
        .jobs
        .iter()
        .all(|j| j.dispatch_id == queued && j.account_id == account));

    // A second approval changes nothing more.
    let a = apply(
        db_pool,
        account,
        "order_update",
        "en_US",
        &status(TemplateStatus::Approved),
    )
    .await
    .expect("approve again");
    assert_eq!((a.paused_dispatches, a.resumed_dispatches), (0, 0));
}

#[tokio::test]
async fn disabling_takes_over_a_pause_and_is_not_resumed() {
    let app = TestApp::spawn().await;
    let s = app.sender(templates::text(), json!({})).await;
    let db = app.pool().await;
    let account: Uuid = s.account.id.parse().expect("uuid");
    let d = new_dispatch(&app, &s, None).await;
    apply(
        &db,
        account,
        "order_update",
        "en_US",
        &status(TemplateStatus::Paused),
    )
    .await
    .expect("pause");
    let a = apply(
        &db,
        account,
        "order_update",
        "en_US",
        &status(TemplateStatus::Disabled),
    )
    .await
    .expect("disable");
    assert_eq!(a.paused_dispatches, 0, "already paused");
    assert_eq!(
        dispatch_state(&db, d).await,
        ("paused".into(), Some("template_disabled".into()))
    );
    let a = apply(
        &db,
        account,
        "order_update",
        "en_US",
        &status(TemplateStatus::Approved),
    )
    .await
    .expect("approve");
    assert_eq!(a.resumed_dispatches, 0);
    assert_eq!(dispatch_state(&db, d).await.0, "paused");
}

#[tokio::test]
async fn category_quality_reason_and_meta_id_are_stored() {
    let app = TestApp::spawn().await;
    let s = app.sender(templates::text(), json!({})).await;
    let db = app.pool().await;
    let account: Uuid = s.account.id.parse().expect("uuid");
    let change = TemplateChange {
        status: Some(TemplateStatus::Rejected),
        reason: Some("INVALID_FORMAT".into()),
        quality: Some("YELLOW".into()),
        category: Some("MARKETING".into()),
        meta_template_id: Some("987654321".into()),
    };
    let a = apply(&db, account, "order_update", "en_US", &change)
        .await
        .expect("apply");
    assert!(a.found);
    let row: (
        String,
        Option<String>,
        Option<String>,
        String,
        String,
        Option<String>,
        bool,
    ) = sqlx::query_as(
        "SELECT status, status_reason, quality_score, category, definition->>'category',
                    meta_template_id, status_updated_at IS NOT NULL
               FROM templates WHERE account_id = $1",
    )
    .bind(account)
    .fetch_one(&db)
    .await
    .expect("template");
    assert_eq!(
        row,
        (
            "REJECTED".into(),
            Some("INVALID_FORMAT".into()),
            Some("YELLOW".into()),
            "MARKETING".into(),
            "MARKETING".into(),
            Some("987654321".into()),
            true
        )
    );
    // Approval with Meta's `NONE` reason clears the reason.
    let change = TemplateChange {
        status: Some(TemplateStatus::Approved),
        reason: Some("NONE".into()),
        ..Default::default()
    };
    apply(&db, account, "order_update", "en_US", &change)
        .await
        .expect("approve");
    let reason: Option<String> =
        sqlx::query_scalar("SELECT status_reason FROM templates WHERE account_id = $1")
            .bind(account)
            .fetch_one(&db)
            .await
            .expect("reason");
    assert_eq!(reason, None);
}

#[tokio::test]
async fn unknown_templates_other_accounts_and_bad_changes_change_nothing() {
    let app = TestApp::spawn().await;
    let s = app.sender(templates::text(), json!({})).await;
    let other = app.account("Other").await;
    let db = app.pool().await;
    let account: Uuid = s.account.id.parse().expect("uuid");
    let other: Uuid = other.id.parse().expect("uuid");
    let d = new_dispatch(&app, &s, None).await;
    let pause = status(TemplateStatus::Paused);

    let a = apply(&db, other, "order_update", "en_US", &pause)
        .await
        .expect("other account");
    assert!(!a.found);
    let a = apply(&db, account, "order_update", "pt_BR", &pause)
        .await
        .expect("other language");
    assert!(!a.found);
    let a = apply(&db, account, "no_such", "en_US", &pause)
        .await
        .expect("other name");
    assert!(!a.found);
    assert_eq!(dispatch_state(&db, d).await.0, "queued");

    let bad = TemplateChange {
        status: Some(TemplateStatus::Paused),
        category: Some("PROMOTIONAL".into()),
        ..Default::default()
    };
    assert!(apply(&db, account, "order_update", "en_US", &bad)
        .await
        .is_err());
    assert_eq!(dispatch_state(&db, d).await.0, "queued");
    let (st, cat): (String, String) =
        sqlx::query_as("SELECT status, category FROM templates WHERE account_id = $1")
            .bind(account)
            .fetch_one(&db)
            .await
            .expect("template");
    assert_eq!((st.as_str(), cat.as_str()), ("APPROVED", "UTILITY"));
}

/// Every path that sends a template refuses one Meta has not approved (409
/// `template_not_approved` naming the status, nothing recorded): a recipient list, an audience
/// and a chatbot flow's trigger; once approved they go. An edit of a template submitted to
/// Meta is refused (`template_submitted`).
#[tokio::test]
async fn every_send_path_refuses_a_template_that_is_not_approved() {
    let app = TestApp::spawn().await;
    let s = app.sender(templates::text(), json!({})).await;
    let db = app.pool().await;
    let account: Uuid = s.account.id.parse().expect("uuid");
    sqlx::query(
        "INSERT INTO contacts (id, account_id, phone, name) VALUES (ezp_uuid7(), $1, '+15550001111', 'Ann')",
    )
    .bind(account)
    .execute(&db)
    .await
    .expect("contact");
    let (code, flow) = app
        .post(
            "/admin/v1/chatbot-flows",
            &s.account.admin,
            json!({"name": "Welcome", "template_id": s.template_id, "variables": {"body": ["friend", "0000"]}}),
        )
        .await;
    assert_eq!(code, 201, "{flow}");
    let trigger = format!(
        "/api/v1/chatbot-flows/{}/webhook",
        flow["id"].as_str().expect("id")
    );
    let send = format!("/api/v1/broadcasts/{}/send", s.broadcast_id);
    let list = json!({"recipients": recipients(2, 0)});
    let audience = json!({"audience": {"all": true},
        "variables_from": {"body": ["{{contact.name|there}}", "x"]}});
    let to = json!({"to": "+15550002222"});

    for st in [
        TemplateStatus::Pending,
        TemplateStatus::Rejected,
        TemplateStatus::Paused,
        TemplateStatus::Disabled,
    ] {
        apply(&db, account, "order_update", "en_US", &status(st))
            .await
            .expect("status");
        for (path, body, bearer) in [
            (&send, &list, &s.key),
            (&send, &audience, &s.key),
            (&trigger, &to, &s.account.admin),
        ] {
            let (code, v) = app.post(path, bearer, body.clone()).await;
            support::assert_error(code, &v, 409, "template_not_approved");
            let message = v["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(st.as_str()), "{message}");
        }
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatches")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(n, 0, "a refused send records nothing");

    apply(
        &db,
        account,
        "order_update",
        "en_US",
        &status(TemplateStatus::Approved),
    )
    .await
    .expect("approve");
    for (path, body, bearer, want) in [
        (&send, &list, &s.key, 202),
        (&send, &audience, &s.key, 202),
        (&trigger, &to, &s.account.admin, 202),
    ] {
        let (code, v) = app.post(path, bearer, body.clone()).await;
        assert_eq!(code, want, "{path}: {v}");
    }

    // A template submitted to Meta (it has Meta's id) is not edited here.
    let change = TemplateChange {
        meta_template_id: Some("1234567".into()),
        ..Default::default()
    };
    apply(&db, account, "order_update", "en_US", &change)
        .await
        .expect("meta id");
    let (code, v) = app
        .patch(
            &format!("/api/v1/templates/{}", s.template_id),
            &s.key,
            json!({"category": "MARKETING"}),
        )
        .await;
    support::assert_error(code, &v, 409, "template_submitted");
}
