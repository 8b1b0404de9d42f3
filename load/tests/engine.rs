//! The load engine against a hand-written HTTP/1.1 server on loopback (no framework, so
//! what is counted is exactly what the server did): keep-alive, request counts, the open
//! model's latency from the intended send time, and reconnecting to a server that closes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use indicatif::ProgressBar;
use nanum_load::{
    engine::{Engine, Load, Phase},
    figures::Figures,
    readers,
    target::{Target, WinRule},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

/// What the server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// Answers every request `200 {"n": <count>}` after `delay`, handling one request at a
/// time per connection; closes each connection after `close_after` requests (0 = never).
async fn server(delay: Duration, close_after: usize) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Seen::default());
    let shared = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let seen = Arc::clone(&shared);
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut served = 0;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    stream.read_exact(&mut body).await.unwrap();
                    tokio::time::sleep(delay).await;
                    served += 1;
                    let n = seen.requests.fetch_add(1, Ordering::SeqCst);
                    let close = close_after > 0 && served >= close_after;
                    let body = format!("{{\"n\": {n}}}");
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n",
                        body.len(),
                        if close { "connection: close\r\n" } else { "" }
                    );
                    stream.get_mut().write_all(format!("{head}{body}").as_bytes()).await.unwrap();
                    if close {
                        return;
                    }
                }
            });
        }
    });
    (address, seen)
}

async fn run(address: &str, connections: usize, load: Load) -> Figures {
    let target = Target::new(&format!("http://{address}/x?u={{user}}"), &[], "GET", &[], None).unwrap();
    let win = WinRule::new(&[200], &[]).unwrap();
    let mut engine =
        Engine::connect(target, readers::numbered(1, 1000), win, vec![], connections).await.unwrap();
    let phase = Phase { load, event: None, first_reader: 0, record: true };
    let stats = engine.run(phase, &ProgressBar::hidden()).await;
    if let Some(error) = &stats.first_error {
        eprintln!("{} errors, the first: {error}", stats.errors);
    }
    Figures::from(&stats)
}

fn load(requests: u64) -> Load {
    Load { requests: Some(requests), duration: None, rate: None, timeout: Duration::from_secs(10) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_run_sends_exactly_n_over_c_kept_alive_connections() {
    let (address, seen) = server(Duration::ZERO, 0).await;
    let figures = run(&address, 8, load(400)).await;
    assert_eq!(figures.requests, 400);
    assert_eq!(figures.statuses.get(&200), Some(&400));
    assert_eq!(figures.wins, 400);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 400);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 8, "one connection per worker, kept alive");
    assert_eq!(figures.reconnects, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_is_reconnected_and_the_reconnects_are_counted() {
    let (address, seen) = server(Duration::ZERO, 10).await;
    let figures = run(&address, 4, load(200)).await;
    assert_eq!(figures.requests, 200);
    assert_eq!(figures.statuses.get(&200), Some(&200), "no request lost to a closed connection: {figures:?}");
    assert_eq!(figures.errors, 0);
    // 4 connections opened before the clock, then one more per 10 answers
    assert_eq!(seen.connections.load(Ordering::SeqCst) as u64, 4 + figures.reconnects);
    assert!(figures.reconnects >= 16, "{figures:?}");
}

/// A server that takes 50 ms per request behind one connection serves 20/s. Asked for
/// 100/s for one second, the open model must show the queue: the last request was meant to
/// leave at ~1 s and is answered at ~5 s, so the worst latency is ~4 s — where a closed
/// client (coordinated omission) would report ~50 ms for every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_measures_from_the_intended_send_time() {
    let (address, _) = server(Duration::from_millis(50), 0).await;
    let closed = run(&address, 1, load(20)).await;
    assert!(closed.p99_ms < 500.0, "closed model sees only the service time: {closed:?}");

    let open =
        Load { requests: Some(100), duration: None, rate: Some(100.0), timeout: Duration::from_secs(30) };
    let figures = run(&address, 1, open).await;
    assert_eq!(figures.requests, 100);
    assert!(figures.max_ms > 3_000.0, "the queue shows in the latency: {figures:?}");
    assert!(figures.p50_ms > 1_000.0, "{figures:?}");
    assert!(figures.seconds > 4.5, "20/s for 100 requests: {figures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_bounds_the_run() {
    let (address, _) = server(Duration::from_millis(5), 0).await;
    let bounded = Load {
        requests: None,
        duration: Some(Duration::from_millis(600)),
        rate: None,
        timeout: Duration::from_secs(5),
    };
    let started = std::time::Instant::now();
    let figures = run(&address, 2, bounded).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(figures.requests > 20 && figures.requests < 400, "{figures:?}");
}
