//! `/metrics` on its own address (`API_METRICS_ADDR`), so it need not be public.

mod support;

use support::TestApp;

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test]
async fn with_api_metrics_addr_metrics_are_served_only_there() {
    let addr = format!("127.0.0.1:{}", free_port());
    let app = TestApp::spawn_with(&[("API_METRICS_ADDR", &addr)]).await;
    // One request counted, so the rendering has the api's own metrics in it.
    assert_eq!(app.get("/ping", "").await.0, 200);

    let r = app.request("GET", "/metrics", "", None).await;
    assert_eq!(
        r.status(),
        404,
        "the public listener does not serve /metrics"
    );
    // The probes stay on the public listener too.
    assert_eq!(app.get("/healthz", "").await.0, 200);
    assert_eq!(app.get("/readyz", "").await.0, 200);

    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let r = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("the metrics listener answers");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    assert!(text.contains("ezpulze_http_requests_total"), "{text}");
    for probe in ["/healthz", "/readyz"] {
        let r = client
            .get(format!("http://{addr}{probe}"))
            .send()
            .await
            .expect("probe");
        assert_eq!(r.status(), 200, "{probe}");
    }
    // Only the operations endpoints are there: not the API.
    let r = client
        .get(format!("http://{addr}/api/v1/me"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn without_it_metrics_stay_on_the_public_listener() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/ping", "").await.0, 200);
    let r = app.request("GET", "/metrics", "", None).await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .expect("text")
        .contains("ezpulze_http_requests_total"));
}

#[tokio::test]
async fn readiness_names_a_stalled_postgres_within_its_own_timeout() {
    use ezpulze_testkit::stall::StallProxy;
    let (_name, url) = ezpulze_testkit::db::create().await;
    let (proxy, proxied) = StallProxy::for_url(&url, 5432).await;
    // The api migrates through the proxy, then Postgres stalls.
    let app = TestApp::spawn_with(&[("DATABASE_URL", proxied.as_str())]).await;
    assert_eq!(app.get("/readyz", "").await.0, 200);
    proxy.stall();
    let started = std::time::Instant::now();
    let (status, v) = app.get("/readyz", "").await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{v}");
    assert_eq!(
        v,
        serde_json::json!({"postgres": false, "redis": true,
                           "failed": ["postgres did not answer within 500 ms"]})
    );
    // Its own 500 ms, not the pool's 5 s acquire timeout.
    assert!(
        took < std::time::Duration::from_millis(1500),
        "answered after {took:?}"
    );
}
