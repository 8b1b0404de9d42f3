use reqwest::StatusCode;

use crate::helpers::{assert_error, body, spawn_app};

#[tokio::test]
async fn liveness_answers_200_while_the_process_runs() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health/live", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readiness_reports_the_database_ok() {
    let app = spawn_app().await;
    let r = app.get("/health/ready", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await["database"], "ok");
}

#[tokio::test]
async fn the_strategy_endpoint_names_the_configured_strategy_and_backends() {
    let app = spawn_app().await;
    let b = body(app.get("/api/v1/strategy", None).await).await;
    assert_eq!(b["strategy"], "pessimistic-lock");
    assert_eq!(b["instance"]["index"], 0);
    assert_eq!(b["backends"]["database"], "sqlite");
}

#[tokio::test]
async fn an_unknown_route_is_404_not_found_with_a_json_body() {
    let app = spawn_app().await;
    assert_error(app.get("/api/v1/nothing-here", None).await, StatusCode::NOT_FOUND, "not_found").await;
}
