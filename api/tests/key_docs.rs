//! The per-key documentation page's `samples`: real values of the account for its examples.
//! The send requests the page builds from them (a recipient list, and an audience of the
//! account's most used tag with `variables_from`) are accepted as they are, for a broadcast of
//! every template kind, and the audience reaches exactly the tagged contacts, none rejected.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{templates, wait_until, TestApp};

async fn samples(app: &TestApp, admin: &str, key_id: &str) -> Value {
    let (s, d) = app
        .get(&format!("/admin/v1/api-keys/{key_id}/docs"), admin)
        .await;
    assert_eq!(s, 200, "{d}");
    d["samples"].clone()
}

#[tokio::test]
async fn an_account_without_broadcasts_or_tags_gets_empty_samples() {
    let app = TestApp::spawn().await;
    let acc = app.account("Empty").await;
    let (_, key_id) = app
        .key(
            &acc.admin,
            json!({"name": "k", "scope_group": "full_access"}),
        )
        .await;
    let s = samples(&app, &acc.admin, &key_id).await;
    assert_eq!(
        s,
        json!({"broadcast": null, "tags": [], "attributes": []}),
        "{s}"
    );
}

#[tokio::test]
async fn the_sample_requests_are_accepted_for_every_template_kind() {
    let app = TestApp::spawn().await;
    let acc = app.account("Samples").await;
    let (key, key_id) = app
        .key(
            &acc.admin,
            json!({"name": "k", "scope_group": "full_access", "rate_limit_per_hour": null}),
        )
        .await;
    // Three contacts with the most used tag, one without it; attributes recorded.
    for (i, tags) in [
        vec!["vip", "news"],
        vec!["vip"],
        vec!["vip", "beta"],
        vec!["news"],
    ]
    .into_iter()
    .enumerate()
    {
        let c = json!({"phone": format!("+1415555{i:04}"), "name": format!("C{i}"), "tags": tags,
            "attributes": {"order_id": format!("A-{i}")}});
        app.expect_status("POST", "/api/v1/contacts", &key, c, 201)
            .await;
    }
    let s = samples(&app, &acc.admin, &key_id).await;
    assert_eq!(s["broadcast"], Value::Null);
    assert_eq!(s["tags"], json!(["vip", "news", "beta"]), "{s}");
    assert_eq!(s["attributes"], json!(["order_id"]), "{s}");

    for (kind, template) in templates::all() {
        let t = app.create_template(&key, template).await;
        let b = app
            .create_broadcast(&key, kind, t["id"].as_str().expect("id"), Value::Null)
            .await;
        let id = b["id"].as_str().expect("id");
        let s = samples(&app, &acc.admin, &key_id).await;
        let sample = &s["broadcast"];
        assert_eq!(sample["id"], id, "{kind}: the latest broadcast: {s}");
        assert_eq!(sample["name"], kind);
        let path = format!("/api/v1/broadcasts/{id}/send");

        // The recipient-list example.
        let recipients =
            json!({"recipients": [{"to": "+14155550199", "variables": sample["variables"]}]});
        let sent = app.send_broadcast(&key, id, recipients).await;
        assert_eq!(sent["accepted"], 1, "{kind}: {sent}");

        // The audience example, as the page builds it.
        let mut audience = json!({"audience": {"tags_any": [s["tags"][0]]}});
        if !sample["variables_from"].is_null() {
            audience["variables_from"] = sample["variables_from"].clone();
        }
        let (st, v) = app.post(&path, &key, audience.clone()).await;
        assert_eq!(st, 202, "{kind}: {audience} -> {v}");
        let dp = format!(
            "/api/v1/dispatches/{}",
            v["dispatch_id"].as_str().expect("id")
        );
        wait_until("the fan-out to end", Duration::from_secs(60), || async {
            app.get(&dp, &key).await.1["audience"]["state"] != "expanding"
        })
        .await;
        let (_, d) = app.get(&dp, &key).await;
        assert_eq!(d["audience_total"], 3, "{kind}: {d}");
        assert_eq!(d["total"], 3, "{kind}: {d}");
        assert_eq!(d["rejected"], 0, "{kind}: {audience} -> {d}");
    }
    // The text template's body: the name, then the attribute with its example as default.
    let mut other = templates::text();
    other["name"] = json!("order_update_2");
    let t = app.create_template(&key, other).await;
    app.create_broadcast(&key, "last", t["id"].as_str().expect("id"), Value::Null)
        .await;
    let s = samples(&app, &acc.admin, &key_id).await;
    assert_eq!(
        s["broadcast"]["variables_from"]["body"],
        json!(["{{contact.name|there}}", "{{attributes.order_id|4721}}"]),
        "{s}"
    );
}
