//! `ezpulze-api issue-admin-token`: an operator replaces a lost admin token; the running api
//! (which never saw the new token made) takes it at once, and the old one stops working.

mod support;

use support::*;

#[tokio::test]
async fn a_new_admin_token_works_at_once_and_the_old_one_stops() {
    let (app, acc) = acme().await;
    let (s, _) = app.get("/admin/v1/api-keys", &acc.admin).await;
    assert_eq!(s, 200);
    let account = acc.id.parse().expect("account id");
    let token = ezpulze_api::recovery::issue_admin_token(&app.config(), account)
        .await
        .expect("issued");
    let (s, v) = app.get("/admin/v1/api-keys", &token).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = app.get("/admin/v1/api-keys", &acc.admin).await;
    assert_error(s, &v, 401, "invalid_api_key");
    let unknown = uuid::Uuid::now_v7();
    assert!(
        ezpulze_api::recovery::issue_admin_token(&app.config(), unknown)
            .await
            .is_err()
    );
}
