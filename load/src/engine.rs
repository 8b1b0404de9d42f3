//! The load engine: `c` keep-alive HTTP/1.1 connections, opened before the clock starts,
//! each driven by one task that sends its requests one after another (wrk's model).
//!
//! - **Closed model** (no rate): every connection sends its next request as soon as the
//!   last one answered; latency is measured from the send. With `c` equal to the request
//!   count, every request goes out at once — the race's "100 readers press apply together".
//! - **Open model** (`rate`): request `i` is *intended* to leave at `start + i / rate`
//!   whatever happened before (wrk2's model). A request that has to wait for a free
//!   connection still has its latency measured from its intended time, so a server that
//!   stalls shows its queueing in the percentiles instead of hiding it by slowing the
//!   client down (coordinated omission).
//!
//! A connection the server closes (or that fails) is reopened for the next request, and
//! that reconnect is part of the next request's latency; [`Stats::connections_opened`]
//! says how often it happened. Latencies go into an HDR histogram in microseconds.

use std::{
    collections::BTreeMap,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Version,
    client::conn::http1::{Connection, SendRequest},
    header::{CONNECTION, HOST},
};
use hyper_util::rt::TokioIo;
use indicatif::ProgressBar;
use tokio::net::TcpStream;

use crate::target::{Fill, Reader, Target, WinRule};

/// Highest latency the histogram holds (1 hour, in µs); larger values are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// How much to send in one phase.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Requests to send (the phase ends at this count or the duration, whichever comes first).
    pub requests: Option<u64>,
    /// How long to send for.
    pub duration: Option<Duration>,
    /// Requests per second (open model); `None` = closed model.
    pub rate: Option<f64>,
    /// One request's bound; past it the request counts as an error and its connection is
    /// reopened.
    pub timeout: Duration,
}

/// One phase: warm-up (not recorded) or the measurement.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// How much.
    pub load: Load,
    /// What `{event}` stands for.
    pub event: Option<i64>,
    /// Request `i` is made by reader `(first_reader + i) % readers`.
    pub first_reader: usize,
    /// Record latencies and statuses (false for a warm-up).
    pub record: bool,
}

/// A kept answer (for statuses the caller asked to keep, e.g. nanum's `202 pending`).
#[derive(Debug, Clone)]
pub struct Kept {
    /// Index of the reader that sent it.
    pub reader: usize,
    /// Its status.
    pub status: u16,
    /// Its body.
    pub body: Bytes,
}

/// What a phase measured.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Requests that got an answer or failed.
    pub requests: u64,
    /// Status → count (answers only).
    pub statuses: BTreeMap<u16, u64>,
    /// Requests with no answer (connection refused or reset, timeout, bad header value).
    pub errors: u64,
    /// The first of those errors, in words.
    pub first_error: Option<String>,
    /// Answers the win rule accepted.
    pub wins: u64,
    /// From the start to the last answer.
    pub elapsed: Duration,
    /// Latency of every answered request, in µs.
    pub latency: Histogram<u64>,
    /// Answers with a kept status.
    pub kept: Vec<Kept>,
    /// Connections opened during the phase (reconnects; 0 when keep-alive held).
    pub connections_opened: u64,
}

impl Stats {
    pub(crate) fn empty(histogram: &Histogram<u64>) -> Self {
        Self {
            requests: 0,
            statuses: BTreeMap::new(),
            errors: 0,
            first_error: None,
            wins: 0,
            elapsed: Duration::ZERO,
            latency: histogram.clone(),
            kept: Vec::new(),
            connections_opened: 0,
        }
    }

    /// Several runs' figures as one (runs raced side by side: the longest one's time), or
    /// `None` for none.
    pub(crate) fn merged(all: impl IntoIterator<Item = Stats>) -> Option<Stats> {
        let mut all = all.into_iter();
        let mut total = all.next()?;
        for more in all {
            total.merge(more);
        }
        Some(total)
    }

    pub(crate) fn merge(&mut self, other: Stats) {
        self.requests += other.requests;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.wins += other.wins;
        self.elapsed = self.elapsed.max(other.elapsed);
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.kept.extend(other.kept);
        self.connections_opened += other.connections_opened;
    }

    /// Answered requests per second over the phase.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// An empty latency histogram: three significant figures from 1 µs to an hour.
///
/// # Errors
///
/// Never for these bounds; hdrhistogram checks them at run time.
pub fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?)
}

/// What every worker reads.
#[derive(Debug)]
struct Shared {
    target: Target,
    readers: Vec<Reader>,
    win: WinRule,
    keep: Vec<u16>,
    /// Empty, with the bounds every phase records into.
    histogram: Histogram<u64>,
}

/// hyper's half of a connection: it reads and writes the socket when polled.
type Driver = Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// The sending half and the driver of one open connection.
type Link = (SendRequest<Full<Bytes>>, Pin<Box<Driver>>);

/// One keep-alive connection, driven by the task that sends on it: no second task and no
/// cross-thread wake-up per request (that hop alone cost a quarter of wrk's rate).
struct Conn {
    authority: String,
    link: Option<Link>,
}

async fn open(authority: &str) -> anyhow::Result<Link> {
    let stream = TcpStream::connect(authority).await.with_context(|| format!("connect {authority}"))?;
    // Small request/response pairs: Nagle would add delayed-ACK stalls to every one.
    stream.set_nodelay(true)?;
    let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    Ok((sender, Box::pin(driver)))
}

impl Conn {
    /// Sends one request, reopening the connection first when the server closed it.
    async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
        opened: &mut u64,
    ) -> anyhow::Result<(u16, Bytes)> {
        // Reusable unless the server closed it: a close while idle ends the driver on this
        // poll (so it goes first); a `connection: close` answer makes `ready` fail once the
        // driver has shut the connection down.
        let reusable = match self.link.as_mut() {
            Some((sender, driver)) => tokio::select! {
                biased;
                _ = driver.as_mut() => false,
                ready = sender.ready() => ready.is_ok(),
            },
            None => false,
        };
        if !reusable {
            self.link = Some(open(&self.authority).await?);
            *opened += 1;
        }
        let (sender, driver) = self.link.as_mut().context("no connection")?;
        let exchange = async {
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            // The server says it closes after this answer: do not offer it another request
            // (hyper's side may not have seen the close yet).
            let closing = response
                .headers()
                .get(CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
                || response.version() < Version::HTTP_11;
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body, closing))
        };
        let answer = {
            let mut exchange = std::pin::pin!(exchange);
            tokio::select! {
                biased;
                answer = &mut exchange => answer,
                // The driver can read the answer and end (a server that closes after it) in
                // one poll: the answer then waits in its channel, and with the driver gone the
                // exchange can only finish, with the answer or with the connection's error.
                _ = driver.as_mut() => exchange.await,
            }
        };
        let (status, body, closing) = answer?;
        if closing {
            self.link = None;
        }
        Ok((status, body))
    }
}

/// Connections to a target, reused across phases.
pub struct Engine {
    shared: Arc<Shared>,
    conns: Vec<Conn>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("connections", &self.conns.len()).finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens `connections` connections, spread round-robin over the target's servers, all
    /// before any request is timed. Answers whose status is in `keep` are returned whole.
    ///
    /// # Errors
    ///
    /// No readers, or a connection that cannot be opened (the server is not listening).
    pub async fn connect(
        target: Target,
        readers: Vec<Reader>,
        win: WinRule,
        keep: Vec<u16>,
        connections: usize,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!readers.is_empty(), "no readers to send requests as");
        anyhow::ensure!(connections > 0, "concurrency must be at least 1");
        let authorities: Vec<String> =
            (0..connections).map(|j| target.authorities[j % target.authorities.len()].clone()).collect();
        let mut conns = Vec::with_capacity(connections);
        // A few hundred connects at once can overflow a small listen backlog; 64 at a time
        // is quick and never does.
        for chunk in authorities.chunks(64) {
            let opened = futures::future::join_all(chunk.iter().map(|a| open(a))).await;
            for (authority, sender) in chunk.iter().zip(opened) {
                conns.push(Conn { authority: authority.clone(), link: Some(sender?) });
            }
        }
        let histogram = new_histogram()?;
        Ok(Self { shared: Arc::new(Shared { target, readers, win, keep, histogram }), conns })
    }

    /// Connections held.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Runs one phase on every connection and returns what it measured; `progress`
    /// advances once per recorded request.
    pub async fn run(&mut self, phase: Phase, progress: &ProgressBar) -> Stats {
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let workers: Vec<_> = self
            .conns
            .drain(..)
            .map(|conn| {
                let shared = Arc::clone(&self.shared);
                let next = Arc::clone(&next);
                let progress = progress.clone();
                tokio::spawn(worker(conn, shared, next, phase, start, progress))
            })
            .collect();
        let mut total = Stats::empty(&self.shared.histogram);
        for worker in workers {
            match worker.await {
                Ok((conn, stats)) => {
                    self.conns.push(conn);
                    total.merge(stats);
                }
                Err(e) => {
                    // A panicking worker loses its connection; the others carry on.
                    total.errors += 1;
                    total.first_error.get_or_insert_with(|| format!("worker failed: {e}"));
                }
            }
        }
        total
    }
}

// Long on purpose: the hot loop of the load client, one connection's send / read / record
// cycle with its reconnect path, kept in one body so the path every request takes reads in
// one place.
async fn worker(
    mut conn: Conn,
    shared: Arc<Shared>,
    next: Arc<AtomicU64>,
    phase: Phase,
    start: Instant,
    progress: ProgressBar,
) -> (Conn, Stats) {
    let mut stats = Stats::empty(&shared.histogram);
    let load = phase.load;
    let deadline = load.duration.map(|d| start + d);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if load.requests.is_some_and(|n| i >= n) {
            break;
        }
        let intended = match load.rate {
            Some(rate) => start + Duration::from_secs_f64(i as f64 / rate),
            None => Instant::now(),
        };
        if deadline.is_some_and(|d| intended >= d) {
            break;
        }
        // Only an open-model request that is early waits: tokio's timer rounds deadlines up
        // to the next millisecond, so even a sleep until "now" would cost each request up to
        // a millisecond (measured: a quarter of wrk's rate against /health/live).
        if load.rate.is_some() && intended > Instant::now() {
            tokio::time::sleep_until(intended.into()).await;
        }

        let reader_index = (phase.first_reader + usize::try_from(i).unwrap_or(0)) % shared.readers.len();
        let fill = Fill { reader: &shared.readers[reader_index], event: phase.event, index: i };
        let request = build(&shared.target, &conn.authority, fill);
        let answer = match request {
            Ok(request) => {
                match tokio::time::timeout(
                    load.timeout,
                    conn.exchange(request, &mut stats.connections_opened),
                )
                .await
                {
                    Ok(Ok(answer)) => Ok(answer),
                    Ok(Err(e)) => Err(format!("{e:#}")),
                    Err(_) => Err(format!("no answer within {:?}", load.timeout)),
                }
            }
            Err(e) => Err(format!("building the request: {e:#}")),
        };
        let done = Instant::now();
        if !phase.record {
            if answer.is_err() {
                conn.link = None;
            }
            continue;
        }
        stats.requests += 1;
        stats.elapsed = stats.elapsed.max(done - start);
        match answer {
            Ok((status, body)) => {
                let micros = u64::try_from((done - intended).as_micros()).unwrap_or(u64::MAX);
                stats.latency.saturating_record(micros.clamp(1, MAX_LATENCY_US));
                *stats.statuses.entry(status).or_default() += 1;
                if shared.win.wins(status, &body) {
                    stats.wins += 1;
                }
                if shared.keep.contains(&status) {
                    stats.kept.push(Kept { reader: reader_index, status, body });
                }
            }
            Err(e) => {
                // The connection's state is unknown after a failure: open a new one.
                conn.link = None;
                stats.errors += 1;
                stats.first_error.get_or_insert(e);
            }
        }
        progress.inc(1);
    }
    (conn, stats)
}

fn build(target: &Target, authority: &str, fill: Fill<'_>) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut request = Request::builder()
        .method(target.method.clone())
        .uri(target.path.render(fill))
        .header(HOST, authority);
    for (name, value) in &target.headers {
        request = request.header(name, value.render(fill));
    }
    let body = target.body.as_ref().map(|t| Bytes::from(t.render(fill))).unwrap_or_default();
    Ok(request.body(Full::new(body))?)
}
