//! `nanum loadtest` against a service that is not nanum: a stub in the style of a Spring
//! app, answering 200 to everyone with `{"isSuccess": true}` for the first K requests and
//! `false` after. The load generator must count the wins by the JSON rule alone and agree
//! with the stub's own count, send each reader once, and keep its connections alive.

use std::{
    collections::HashSet,
    net::TcpListener,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// What the stub saw.
#[derive(Default)]
struct Stub {
    requests: AtomicUsize,
    wins: AtomicUsize,
    users: Mutex<HashSet<i64>>,
    copies: usize,
}

#[derive(serde::Deserialize)]
struct Apply {
    #[serde(rename = "userId")]
    user_id: i64,
}

async fn apply(stub: web::Data<Stub>, event: web::Path<i64>, body: web::Json<Apply>) -> HttpResponse {
    assert_eq!(*event, 7, "the {{event}} placeholder");
    stub.users.lock().unwrap().insert(body.user_id);
    let n = stub.requests.fetch_add(1, Ordering::SeqCst);
    let won = n < stub.copies;
    if won {
        stub.wins.fetch_add(1, Ordering::SeqCst);
    }
    // Like the team's Spring app: 200 either way, the verdict in the body.
    HttpResponse::Ok().json(json!({ "isSuccess": won, "code": if won { "WON" } else { "SOLD_OUT" } }))
}

fn start_stub(copies: usize) -> (String, Arc<Stub>) {
    let stub = web::Data::new(Stub { copies, ..Stub::default() });
    let shared = stub.clone().into_inner();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new().app_data(stub.clone()).route("/events/{event}/apply", web::post().to(apply))
    })
    .workers(2)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (address, shared)
}

async fn loadtest(args: &[&str]) -> Value {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_nanum"))
        .arg("loadtest")
        .args(args)
        .arg("--json")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run nanum loadtest");
    assert!(output.status.success(), "nanum loadtest failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("--json prints JSON")
}

/// `nanum loadtest` arguments for a JSON `POST` of `body` to `url`, then `rest`.
fn json_post<'a>(url: &'a str, body: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![url, "-X", "POST", "-H", "content-type: application/json", "--body", body];
    args.extend_from_slice(rest);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_win_rule_counts_what_a_non_nanum_service_decided() {
    const REQUESTS: usize = 600;
    const COPIES: usize = 37;
    let (address, stub) = start_stub(COPIES);
    let url = format!("{address}/events/{{event}}/apply");
    let body = r#"{"userId": {user}, "eventId": {event}}"#;
    let report = loadtest(&json_post(
        &url,
        body,
        &["--event", "7", "-n", "600", "-c", "24", "--win-json", "isSuccess=true"],
    ))
    .await;

    let figures = &report["figures"];
    assert_eq!(figures["requests"], REQUESTS, "{report:#}");
    assert_eq!(figures["statuses"]["200"], REQUESTS, "every answer is a 200: {report:#}");
    assert_eq!(figures["errors"], 0);
    // The generator's count, the stub's count and the copies agree.
    assert_eq!(figures["wins"], COPIES, "wins by the JSON rule: {report:#}");
    assert_eq!(stub.wins.load(Ordering::SeqCst), COPIES);
    assert_eq!(stub.requests.load(Ordering::SeqCst), REQUESTS);
    // {user} made every request a different reader, 1..=600.
    let users = stub.users.lock().unwrap();
    assert_eq!(users.len(), REQUESTS);
    assert_eq!((users.iter().min(), users.iter().max()), (Some(&1), Some(&600)));
    // Keep-alive held: the 24 connections opened before the clock started were enough.
    assert_eq!(figures["reconnects"], 0, "{report:#}");
    assert!(figures["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(figures["max_ms"].as_f64().unwrap() >= figures["p99_ms"].as_f64().unwrap());
    assert_eq!(report["win_rule"], "isSuccess = true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_rule_alone_cannot_tell_a_200_loser_from_a_winner() {
    let (address, stub) = start_stub(5);
    let url = format!("{address}/events/7/apply");
    let report =
        loadtest(&json_post(&url, r#"{"userId": {user}}"#, &["-n", "50", "-c", "5", "--win-status", "200"]))
            .await;
    // Every 200 counts under a status rule; the body said only 5 won.
    assert_eq!(report["figures"]["wins"], 50, "{report:#}");
    assert_eq!(stub.wins.load(Ordering::SeqCst), 5);
}
