//! The router driven in-process with `tower::ServiceExt::oneshot`, over a
//! temporary data directory written like `overreach analyze` writes it.

mod common;

use axum::http::StatusCode;
use common::*;
use overreach_api::{app, AppState};
use overreach_model::DataDir;

#[tokio::test]
async fn healthz_says_ok() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(AppState::new(DataDir::new(dir.path())));
    let reply = get(&app, "/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn lists_identities_by_findings_then_subject() {
    let (_dir, data) = analysed();
    let app = app(AppState::new(data));
    let reply = get(&app, "/v1/identities").await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["run"]["events"], 1234);
    assert_eq!(body["run"]["detect"], "1d");
    assert_eq!(body["run"]["now"], "2023-01-28T00:00:00Z");
    assert_eq!(
        subjects(&body["identities"], "subject"),
        [ALICE, PAYMENTS, DEPLOYER]
    );
    assert_eq!(body["identities"][0]["trust_domain"], "cluster.local");
    assert_eq!(body["identities"][0]["findings"], 2);
}

#[tokio::test]
async fn identity_detail_takes_an_encoded_spiffe_id() {
    let (_dir, data) = analysed();
    let app = app(AppState::new(data));
    let reply = get(&app, &format!("/v1/identities/{ALICE_ENCODED}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["identity"]["subject"], ALICE);
    assert_eq!(body["identity"]["subject_kind"], "spiffe");
    let baseline = body["baseline"].as_array().unwrap();
    assert_eq!(baseline.len(), 2);
    // Busiest reach key first.
    assert_eq!(baseline[0]["resource_pattern"], "/v1/accounts/{id}");
    assert_eq!(baseline[0]["count"], 12);
    assert_eq!(
        subjects(&body["findings"], "id"),
        ["f-reach-script", "f-reach-old"]
    );
    assert_eq!(subjects(&body["suggestions"], "id"), ["s-high", "s-medium"]);

    // An ARN: colons and a slash in one segment.
    let reply = get(&app, &format!("/v1/identities/{DEPLOYER_ENCODED}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["identity"]["subject"], DEPLOYER);
    assert_eq!(body["baseline"].as_array().unwrap().len(), 1);
    assert_eq!(body["findings"].as_array().unwrap().len(), 0);
    assert_eq!(subjects(&body["suggestions"], "id"), ["s-low"]);
}

#[tokio::test]
async fn unknown_identity_is_a_json_404() {
    let (_dir, data) = analysed();
    let app = app(AppState::new(data));
    let reply = get(
        &app,
        "/v1/identities/spiffe%3A%2F%2Fcluster.local%2Fns%2Fnope%2Fsa%2Fx",
    )
    .await;
    let message = assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    assert!(
        message.contains("spiffe://cluster.local/ns/nope/sa/x"),
        "{message}"
    );

    // The unencoded form is a different route shape: no route, same shape.
    let reply = get(&app, "/v1/identities/spiffe://cluster.local/ns/a/sa/b").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn findings_filter_by_subject_kind_and_since() {
    let (_dir, data) = analysed();
    let app = app(AppState::new(data));
    let cases: &[(&str, &[&str])] = &[
        (
            "/v1/findings",
            &["f-reach-script", "f-identity", "f-reach-old"],
        ),
        (
            &format!("/v1/findings?subject={ALICE_ENCODED}"),
            &["f-reach-script", "f-reach-old"],
        ),
        (
            "/v1/findings?kind=new-reach",
            &["f-reach-script", "f-reach-old"],
        ),
        ("/v1/findings?kind=new-identity", &["f-identity"]),
        (
            "/v1/findings?since=2023-01-27T18:31:00Z",
            &["f-reach-script", "f-identity"],
        ),
        // The same instant with an offset ('+' encoded).
        (
            "/v1/findings?since=2023-01-27T20:31:00%2B02:00",
            &["f-reach-script", "f-identity"],
        ),
        // since is inclusive.
        ("/v1/findings?since=2023-01-27T19:00:00Z", &["f-identity"]),
        ("/v1/findings?since=2023-01-27T19:00:00.000001Z", &[]),
        (
            &format!(
                "/v1/findings?subject={ALICE_ENCODED}&since=2023-01-27T18:31:00Z&kind=new-reach"
            ),
            &["f-reach-script"],
        ),
        (
            &format!("/v1/findings?subject={ALICE_ENCODED}&kind=new-identity"),
            &[],
        ),
        (
            "/v1/findings?subject=&kind=&since=",
            &["f-reach-script", "f-identity", "f-reach-old"],
        ),
    ];
    for (uri, expected) in cases {
        let reply = get(&app, uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
        let body = reply.json();
        assert_eq!(body["count"], expected.len(), "{uri}");
        assert_eq!(subjects(&body["findings"], "id"), *expected, "{uri}");
    }
    // Rows come back whole.
    let body = get(&app, "/v1/findings?kind=new-identity").await.json();
    let finding = &body["findings"][0];
    assert_eq!(finding["subject"], PAYMENTS);
    assert_eq!(finding["score"], 60);
    assert_eq!(
        finding["sample_event_ids"],
        serde_json::json!(["ev-1", "ev-2"])
    );
    assert_eq!(finding["action"], serde_json::Value::Null);
}

#[tokio::test]
async fn bad_parameters_are_json_400s() {
    let (_dir, data) = analysed();
    let app = app(AppState::new(data));

    let message = assert_error(
        &get(&app, "/v1/findings?kind=lateral-movement").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert!(message.contains("\"lateral-movement\""), "{message}");
    assert!(
        message.contains("new-identity, new-reach, peer-rare"),
        "{message}"
    );

    let message = assert_error(
        &get(&app, "/v1/findings?since=2023-01-27").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert!(message.contains("since"), "{message}");
    assert!(message.contains("RFC 3339"), "{message}");
    assert!(message.contains("2023-01-27T18:31:00Z"), "{message}");

    let message = assert_error(
        &get(&app, "/v1/findings?severity=high").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert!(message.contains("unknown field `severity`"), "{message}");

    let message = assert_error(
        &get(&app, "/v1/recommendations?subjct=x").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert!(message.contains("subjct"), "{message}");

    assert_error(
        &get(&app, "/v1/identities?limit=3").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &get(&app, "/v1/findings?kind=new-reach&kind=new-identity").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
}

#[tokio::test]
async fn recommendations_filter_by_subject() {
    let (_dir, data) = analysed();
    let app = app(AppState::new(data));

    let body = get(&app, "/v1/recommendations").await.json();
    assert_eq!(body["count"], 3);
    // Riskiest first.
    assert_eq!(
        subjects(&body["recommendations"], "id"),
        ["s-high", "s-medium", "s-low"]
    );

    let body = get(
        &app,
        &format!("/v1/recommendations?subject={ALICE_ENCODED}"),
    )
    .await
    .json();
    assert_eq!(body["count"], 2);
    assert_eq!(
        subjects(&body["recommendations"], "subject"),
        [ALICE, ALICE]
    );

    let body = get(
        &app,
        &format!("/v1/recommendations?subject={DEPLOYER_ENCODED}"),
    )
    .await
    .json();
    assert_eq!(body["count"], 1);
    assert_eq!(body["recommendations"][0]["kind"], "narrow-wildcard");
    assert_eq!(
        body["recommendations"][0]["replacement"],
        serde_json::json!(["GET /v1/accounts/{id}"])
    );

    let body = get(&app, "/v1/recommendations?subject=nobody").await.json();
    assert_eq!(body["count"], 0);
    assert_eq!(body["recommendations"], serde_json::json!([]));
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_show_gauges() {
    let (_dir, data) = analysed();
    let app = app(AppState::new(data));
    for _ in 0..3 {
        assert_eq!(get(&app, "/v1/findings").await.status, StatusCode::OK);
    }
    assert_eq!(
        get(&app, "/v1/findings?kind=x").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&app, &format!("/v1/identities/{ALICE_ENCODED}"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, &format!("/v1/identities/{DEPLOYER_ENCODED}"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, "/no/such/page").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/another/one").await.status,
        StatusCode::NOT_FOUND
    );

    let reply = get(&app, "/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .content_type()
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        reply.content_type()
    );
    let text = reply.text();
    let lines: Vec<&str> = text.lines().collect();
    for expected in [
        "# HELP overreach_http_requests_total HTTP requests served, by route template and status code.",
        "# TYPE overreach_http_requests_total counter",
        r#"overreach_http_requests_total{route="/v1/findings",status="200"} 3"#,
        r#"overreach_http_requests_total{route="/v1/findings",status="400"} 1"#,
        // Route templates, never raw paths: label values stay bounded.
        r#"overreach_http_requests_total{route="/v1/identities/{subject}",status="200"} 2"#,
        r#"overreach_http_requests_total{route="unmatched",status="404"} 2"#,
        "# TYPE overreach_findings gauge",
        r#"overreach_findings{kind="new-reach"} 2"#,
        r#"overreach_findings{kind="new-identity"} 1"#,
        "# TYPE overreach_identities gauge",
        "overreach_identities 3",
        "# TYPE overreach_events gauge",
        "overreach_events 1234",
        "# TYPE overreach_suggestions gauge",
        "overreach_suggestions 3",
        "overreach_analysis_loaded 1",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("/no/such/page"), "{text}");
    assert!(!text.contains(ALICE), "{text}");

    // The scrape itself is counted, and shows on the next scrape.
    let text = get(&app, "/metrics").await.text();
    assert!(
        text.contains(r#"overreach_http_requests_total{route="/metrics",status="200"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn page_shows_identities_and_escaped_findings() {
    let (_dir, data) = analysed();
    let app = app(AppState::new(data));
    let reply = get(&app, "/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.content_type().starts_with("text/html"),
        "{}",
        reply.content_type()
    );
    let html = reply.text();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains(ALICE), "subject missing");
    assert!(
        html.contains(&format!("href=\"/v1/identities/{ALICE_ENCODED}\"")),
        "link missing"
    );
    assert!(html.contains(
        "GET /v1/secrets/&lt;script&gt;alert(1)&lt;/script&gt; was never seen in the 28d baseline"
    ));
    assert!(!html.contains("<script"), "unescaped markup in page");
    assert!(html.contains("no baseline for this identity"));
    assert!(html.contains("sev sev-high"));
    assert!(
        html.contains("2023-01-27T00:00:00Z"),
        "detection window start"
    );
    assert!(html.contains("<b>1234</b>events"), "event total");
    assert!(html.contains("remove-unused for spiffe://cluster.local/ns/a/sa/b"));
    // Self-contained: no external assets.
    assert!(!html.contains("http://") && !html.contains("https://"));
}

#[tokio::test]
async fn before_analysis_data_endpoints_are_503_and_the_page_says_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let app = app(AppState::new(DataDir::new(dir.path())));
    let expected = format!(
        "no analysis results in {root}/analytics: run `overreach analyze --data {root}` first"
    );
    for uri in [
        "/v1/identities".to_owned(),
        format!("/v1/identities/{ALICE_ENCODED}"),
        "/v1/findings".to_owned(),
        "/v1/findings?kind=new-reach".to_owned(),
        "/v1/recommendations".to_owned(),
    ] {
        let message = assert_error(
            &get(&app, &uri).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "not_analyzed",
        );
        assert_eq!(message, expected, "{uri}");
    }
    // Bad parameters are still the caller's fault first.
    assert_error(
        &get(&app, "/v1/findings?kind=x").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );

    let reply = get(&app, "/").await;
    assert_eq!(reply.status, StatusCode::OK);
    let html = reply.text();
    assert!(
        html.contains(&format!("overreach analyze --data {root}")),
        "{html}"
    );

    let text = get(&app, "/metrics").await.text();
    assert!(
        text.lines().any(|l| l == "overreach_analysis_loaded 0"),
        "{text}"
    );
    assert!(!text.contains("overreach_events "), "{text}");
    assert!(
        text.contains(r#"overreach_http_requests_total{route="/v1/findings",status="503"} 2"#),
        "{text}"
    );

    // healthz and the OpenAPI document do not need data.
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/v1/openapi.json").await.status, StatusCode::OK);
}

#[tokio::test]
async fn reloads_when_run_json_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    let app = app(AppState::new(data.clone()));
    assert_error(
        &get(&app, "/v1/findings").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "not_analyzed",
    );

    // Analysis appears: served without a restart.
    write_analysis(&data, 1234, &findings_v1());
    let body = get(&app, "/v1/identities").await.json();
    assert_eq!(body["run"]["events"], 1234);
    assert_eq!(get(&app, "/v1/findings").await.json()["count"], 3);

    // Tables rewritten but run.json not yet: the loaded run stays.
    let mut findings = findings_v1();
    findings.push(finding(
        "f-new",
        "new-identity",
        DEPLOYER,
        "2023-01-28T00:00:00Z",
        90,
        "brand new",
    ));
    let tmp = data.tmp();
    overreach_model::table::write_rows_atomic(
        &data.findings(),
        &tmp,
        &overreach_model::results::finding_schema(),
        &findings,
        &[],
    )
    .unwrap();
    assert_eq!(get(&app, "/v1/findings").await.json()["count"], 3);

    // A new analysis finishes (run.json written last): the new run shows.
    write_analysis(&data, 999, &findings);
    let body = get(&app, "/v1/identities").await.json();
    assert_eq!(body["run"]["events"], 999);
    let body = get(&app, "/v1/findings").await.json();
    assert_eq!(body["count"], 4);
    assert_eq!(body["findings"][0]["id"], "f-new");
    let text = get(&app, "/metrics").await.text();
    assert!(text.lines().any(|l| l == "overreach_events 999"), "{text}");
    assert!(
        text.lines()
            .any(|l| l == r#"overreach_findings{kind="new-identity"} 2"#),
        "{text}"
    );

    // Results removed: back to 503.
    std::fs::remove_file(data.run_info()).unwrap();
    assert_error(
        &get(&app, "/v1/findings").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "not_analyzed",
    );
}

#[tokio::test]
async fn broken_results_are_an_opaque_500() {
    let (dir, data) = analysed();
    let app = app(AppState::new(data.clone()));
    // run.json exists but a table is gone.
    std::fs::remove_file(data.suggestions()).unwrap();
    let reply = get(&app, "/v1/findings").await;
    let message = assert_error(&reply, StatusCode::INTERNAL_SERVER_ERROR, "internal");
    assert_eq!(message, "internal error");
    assert!(!reply.text().contains(&dir.path().display().to_string()));

    // A corrupt run.json too.
    std::fs::write(data.run_info(), "{not json").unwrap();
    let message = assert_error(
        &get(&app, "/v1/identities").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
    );
    assert_eq!(message, "internal error");
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_shape() {
    let (_dir, data) = analysed();
    let app = app(AppState::new(data));
    let message = assert_error(
        &get(&app, "/v2/findings").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert!(message.contains("/v2/findings"), "{message}");
    assert_error(
        &request(&app, "POST", "/v1/findings").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_error(
        &request(&app, "DELETE", &format!("/v1/identities/{ALICE_ENCODED}")).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn serves_an_openapi_document_for_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(AppState::new(DataDir::new(dir.path())));
    let reply = get(&app, "/v1/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert_eq!(doc["openapi"], "3.0.3");
    for path in overreach_api::paths::DOCUMENTED {
        assert!(doc["paths"][path]["get"].is_object(), "{path}");
    }
    let kinds = &doc["paths"]["/v1/findings"]["get"]["parameters"][1]["schema"]["enum"];
    assert_eq!(kinds, &serde_json::json!(overreach_api::FINDING_KINDS));
    assert!(doc["components"]["schemas"]["Error"].is_object());
}

#[tokio::test]
async fn an_analysis_without_findings_serves_empty_lists() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    write_analysis(&data, 5, &[]);
    let app = app(AppState::new(data));
    let body = get(&app, "/v1/findings").await.json();
    assert_eq!(body, serde_json::json!({"findings": [], "count": 0}));
    let html = get(&app, "/").await.text();
    assert!(
        html.contains("No findings in the detection window."),
        "{html}"
    );
    let text = get(&app, "/metrics").await.text();
    assert!(
        text.lines()
            .any(|l| l == r#"overreach_findings{kind="new-reach"} 0"#),
        "{text}"
    );
}
