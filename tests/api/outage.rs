//! A database outage, simulated by cutting a TCP proxy between the app and MariaDB: the
//! apply answers 503 `backend_unavailable`, nothing is written, readiness says so, and the
//! app recovers by itself when the connection comes back.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use strategies::{StrategyName, contract};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use crate::helpers::{assert_error, body, spawn_with};

/// Forwards 127.0.0.1:`port` to `target` until cut; can be restored on the same port.
struct Proxy {
    port: u16,
    target: String,
    accept: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let mut proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            target: target.to_owned(),
            accept: None,
            connections: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target.clone();
        let connections = Arc::clone(&self.connections);
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().unwrap().push(conn);
            }
        }));
    }

    /// Refuses new connections and drops every open one, like a crashed server.
    fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        for conn in self.connections.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("re-bind proxy port");
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_answers_503_changes_nothing_and_recovers_by_itself() {
    let Some(url) = contract::fresh_mariadb_url("outage").await else { return };
    let (prefix, rest) = url.split_once('@').expect("user@host in the test URL");
    let (server, database) = rest.split_once('/').expect("host/database");
    let mut proxy = Proxy::start(server).await;
    let app =
        spawn_with(&format!("{prefix}@127.0.0.1:{}/{database}", proxy.port), StrategyName::PessimisticLock)
            .await;
    let admin = app.admin_token().await;
    let event = app.open_event(&admin, 3).await;
    let (_, reader) = app.reader().await;

    proxy.cut();
    assert_error(
        app.apply(event, &reader, None).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "backend_unavailable",
    )
    .await;
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body(ready).await["database"], "unavailable");

    proxy.restore().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.get("/health/ready", None).await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "the app did not recover within 30 s of the database returning");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = body(app.get(&format!("/api/v1/events/{event}"), None).await).await;
    assert_eq!(e["remaining"], 3, "the failed apply must not have taken a copy");
    assert_eq!(
        app.apply(event, &reader, None).await.status(),
        StatusCode::CREATED,
        "the same reader can still win"
    );
    let winners = body(app.get(&format!("/api/v1/events/{event}/applications"), Some(&admin)).await).await;
    assert_eq!(winners["total"], 1);
}
