//! A network for one machine: a userspace TCP proxy per hop that delays every byte by half a
//! round trip each way (with jitter), and can cut a hop and restore it while a run goes on.
//!
//! Kernel `netem` is not available on the machines nanum is measured on, and toxiproxy sets
//! latency in whole milliseconds, where a same-zone hop is a fraction of one — so the delay
//! comes from here. Each direction of a connection is a delay line: a reader stamps every
//! chunk it reads with `now + one-way delay ± jitter` (never earlier than the chunk before:
//! TCP does not reorder), and a writer sends it at that instant. The instant is kept by one
//! timer thread (tokio's timer has a 1 ms resolution, too coarse for a 0.1 ms half trip).
//!
//! # Layout
//!
//! - [`Profile`], [`PROFILES`]: the named networks (`loopback`, `lan`, `az`, `cross-az`);
//! - [`Hop`]: one proxied hop (listen, forward, delay, cut/restore, counters);
//! - [`Network`]: the hops of a comparison — one per backend, rewriting [`Backends`]'
//!   addresses, and one in front of every API instance;
//! - the timer thread at the bottom.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    fmt,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicI64, AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use rand::Rng;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{oneshot, watch},
    task::JoinHandle,
};

use crate::backends::{Backends, Database};

/// A named network: the round trip every proxied hop adds, and its jitter.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    /// `loopback`, `lan`, `az`, `cross-az`, or `custom`.
    pub name: &'static str,
    /// Round trip added per hop, in milliseconds (half of it each way).
    pub rtt_ms: f64,
    /// Jitter per chunk and direction, ± milliseconds (uniform).
    pub jitter_ms: f64,
    /// In words.
    pub description: &'static str,
}

/// The named profiles; `loopback` (no proxy at all) is the default.
pub const PROFILES: [Profile; 4] = [
    Profile { name: "loopback", rtt_ms: 0.0, jitter_ms: 0.0, description: "no proxy: loopback as it is" },
    Profile { name: "lan", rtt_ms: 0.2, jitter_ms: 0.02, description: "hosts on one switch" },
    Profile { name: "az", rtt_ms: 0.5, jitter_ms: 0.05, description: "hosts in one cloud availability zone" },
    Profile { name: "cross-az", rtt_ms: 1.5, jitter_ms: 0.15, description: "hosts in two zones of a region" },
];

impl Profile {
    /// The named profile, or a custom one from `--rtt` (ms; jitter a tenth of it).
    ///
    /// # Errors
    ///
    /// An unknown name (the message lists the known ones), or a negative or absurd RTT.
    pub fn pick(name: &str, rtt: Option<f64>) -> anyhow::Result<Self> {
        if let Some(rtt) = rtt {
            anyhow::ensure!(
                (0.0..=1000.0).contains(&rtt),
                "--rtt {rtt}: give milliseconds between 0 and 1000"
            );
            return Ok(Profile { name: "custom", rtt_ms: rtt, jitter_ms: rtt / 10.0, description: "--rtt" });
        }
        PROFILES.iter().find(|p| p.name == name).copied().ok_or_else(|| {
            let known: Vec<_> = PROFILES.iter().map(|p| p.name).collect();
            anyhow::anyhow!("--network {name}: not a profile; known: {}", known.join(", "))
        })
    }

    /// No hop is proxied.
    pub fn is_loopback(&self) -> bool {
        self.rtt_ms == 0.0 && self.name == "loopback"
    }

    /// The link every hop of this profile applies.
    pub fn link(&self) -> Link {
        Link {
            one_way: Duration::from_secs_f64(self.rtt_ms / 2000.0),
            jitter: Duration::from_secs_f64(self.jitter_ms / 1000.0),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rtt_ms == 0.0 {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{} ({} ms RTT ± {} ms per hop)", self.name, self.rtt_ms, self.jitter_ms)
        }
    }
}

/// What a hop does to every chunk, each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Link {
    /// Added to every chunk in each direction (half the round trip).
    pub one_way: Duration,
    /// Uniform ± around `one_way`, per chunk.
    pub jitter: Duration,
}

impl Link {
    fn delay(&self) -> Duration {
        if self.jitter.is_zero() {
            return self.one_way;
        }
        let j = self.jitter.as_secs_f64();
        let d = self.one_way.as_secs_f64() + rand::rng().random_range(-j..=j);
        Duration::from_secs_f64(d.max(0.0))
    }
}

/// Where the broker's proxied listener is (`scripts/services-up kafka` adds it): a broker
/// answers metadata with the addresses of the listener a client came in on, so clients that
/// bootstrap through the hop on [`KAFKA_HOP`] are told to come back through it — every
/// produce and fetch crosses the hop, not only the first connection.
pub const KAFKA_PROXIED_LISTENER: &str = "127.0.0.1:9192";
/// The address the proxied listener advertises: the Kafka hop listens here.
pub const KAFKA_HOP: &str = "127.0.0.1:9292";

/// The hops of one comparison: one in front of every backend (their addresses rewritten in
/// [`Backends`]), and, per deployment, one in front of every API instance.
#[derive(Debug)]
pub struct Network {
    /// The profile every hop follows.
    pub profile: Profile,
    /// The backends' hops.
    pub hops: Vec<Hop>,
    /// A hop's round trip as measured when the network was set up.
    pub measured: Measured,
}

/// A hop's round trip, measured through a hop of the profile to an echo server: 1 byte each
/// way, one at a time — what a small statement and its answer pay.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Measured {
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Mean, ms: what a lock held across round trips pays on average, so the model's unit.
    #[serde(default)]
    pub mean_ms: f64,
    /// The same without any hop (loopback itself), median, ms.
    pub direct_p50_ms: f64,
}

impl Measured {
    /// Ping-pongs `n` bytes through a hop with `link` and straight to the echo server.
    ///
    /// # Errors
    ///
    /// Loopback sockets that cannot be opened.
    pub async fn take(link: Link, n: usize) -> anyhow::Result<Self> {
        let echo = TcpListener::bind("127.0.0.1:0").await?;
        let echo_addr = echo.local_addr()?.to_string();
        let server = tokio::spawn(async move {
            while let Ok((mut conn, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1];
                    while conn.read_exact(&mut b).await.is_ok() && conn.write_all(&b).await.is_ok() {}
                });
            }
        });
        let hop = Hop::start("probe", "127.0.0.1:0", &echo_addr, link).await?;
        // A first pass unmeasured: the timer learns its lateness from the wake-ups.
        ping_pong(&hop.addr.to_string(), n).await?;
        let proxied = ping_pong(&hop.addr.to_string(), n).await?;
        let direct = ping_pong(&echo_addr, n).await?;
        drop(hop);
        server.abort();
        Ok(Self { p50_ms: proxied.0, p99_ms: proxied.1, mean_ms: proxied.2, direct_p50_ms: direct.0 })
    }
}

/// (p50, p99, mean) in ms of `n` one-byte round trips after a warm-up.
async fn ping_pong(addr: &str, n: usize) -> anyhow::Result<(f64, f64, f64)> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.set_nodelay(true)?;
    let mut b = [7u8; 1];
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let t = Instant::now();
        conn.write_all(&b).await?;
        conn.read_exact(&mut b).await?;
        if i >= 100 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    let at =
        |q: f64| times.get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1))).copied();
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    Ok((at(0.5).unwrap_or(0.0), at(0.99).unwrap_or(0.0), mean))
}

impl Network {
    /// Puts a hop in front of every backend `backends` uses and points `backends` at them;
    /// a loopback profile changes nothing. A Kafka whose broker has no proxied listener is
    /// left out (with a note): Kafka strategies measured half on loopback would mislead.
    ///
    /// # Errors
    ///
    /// A backend address that cannot be read, or a hop that cannot listen.
    pub async fn apply(profile: Profile, backends: &mut Backends) -> anyhow::Result<()> {
        if profile.is_loopback() {
            return Ok(());
        }
        let link = profile.link();
        let mut hops = Vec::new();
        if let Database::MariaDb(server) = &backends.database {
            let (before, authority, after) = split_url(server)?;
            let hop = Hop::start("database", "127.0.0.1:0", authority, link).await?;
            backends.database = Database::MariaDb(format!("{before}{}{after}", hop.addr));
            hops.push(hop);
        } else {
            backends.notes.push("SQLite is a file: its hop has no network to cross".into());
        }
        if let Some(url) = backends.redis.clone() {
            let (before, authority, after) = split_url(&url)?;
            let hop = Hop::start("redis", "127.0.0.1:0", authority, link).await?;
            backends.redis = Some(format!("{before}{}{after}", hop.addr));
            hops.push(hop);
        }
        if let Some(brokers) = backends.kafka.take() {
            if TcpStream::connect(KAFKA_PROXIED_LISTENER).await.is_ok() {
                hops.push(Hop::start("kafka", KAFKA_HOP, KAFKA_PROXIED_LISTENER, link).await?);
                backends.kafka = Some(KAFKA_HOP.to_owned());
            } else {
                backends.notes.push(format!(
                    "kafka.brokers = {brokers}: no proxied listener on {KAFKA_PROXIED_LISTENER} \
                     (restart Kafka with scripts/services-up kafka), so Kafka is left out of a \
                     run over {}",
                    profile.name
                ));
            }
        }
        let measured = Measured::take(link, 500).await?;
        backends.network = Some(Arc::new(Network { profile, hops, measured }));
        Ok(())
    }

    /// A hop in front of each API base URL (`http://host:port`): the clients' side of the
    /// network. Returns the URLs to use instead, and the hops (dropped = closed).
    ///
    /// # Errors
    ///
    /// A URL without a host and port, or a hop that cannot listen.
    pub async fn front(&self, api: &[String]) -> anyhow::Result<(Vec<String>, Vec<Hop>)> {
        let mut urls = Vec::new();
        let mut hops = Vec::new();
        for (i, url) in api.iter().enumerate() {
            let (before, authority, after) = split_url(url)?;
            let hop = Hop::start(&format!("api-{i}"), "127.0.0.1:0", authority, self.profile.link()).await?;
            urls.push(format!("{before}{}{after}", hop.addr));
            hops.push(hop);
        }
        Ok((urls, hops))
    }
}

/// `scheme://user@host:port/rest` → (`scheme://user@`, `host:port`, `/rest`).
fn split_url(url: &str) -> anyhow::Result<(&str, &str, &str)> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let at = rest[..end].rfind('@').map_or(0, |i| i + 1);
    let authority = &rest[at..end];
    anyhow::ensure!(
        authority.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()),
        "`{url}`: give the address as host:port to put a network hop in front of it"
    );
    Ok((&url[..start + at], authority, &rest[end..]))
}

struct HopState {
    link: Mutex<Link>,
    /// `true` while cut: open connections are dropped, new ones closed at once.
    cut: watch::Sender<bool>,
    connections: AtomicU64,
    chunks: AtomicU64,
}

/// One proxied hop: listens on loopback, forwards to `target`.
pub struct Hop {
    /// Which hop (`database`, `redis`, `kafka`, `api-0`, …).
    pub name: String,
    /// Where clients connect instead of the target.
    pub addr: std::net::SocketAddr,
    /// Where the hop forwards.
    pub target: String,
    state: Arc<HopState>,
    accept: JoinHandle<()>,
}

impl fmt::Debug for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hop")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("target", &self.target)
            .finish()
    }
}

impl Hop {
    /// Listens on `listen` (e.g. `127.0.0.1:0`) and forwards every connection to `target`.
    ///
    /// # Errors
    ///
    /// The listening address is taken.
    pub async fn start(name: &str, listen: &str, target: &str, link: Link) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("hop {name}: cannot listen on {listen}"))?;
        let state = Arc::new(HopState {
            link: Mutex::new(link),
            cut: watch::Sender::new(false),
            connections: AtomicU64::new(0),
            chunks: AtomicU64::new(0),
        });
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(accept_loop(listener, target.to_owned(), Arc::clone(&state)));
        Ok(Self { name: name.to_owned(), addr, target: target.to_owned(), state, accept })
    }

    /// Changes the delay for every chunk read from now on.
    pub fn set_link(&self, link: Link) {
        *self.state.link.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = link;
    }

    /// The delay applied now.
    pub fn link(&self) -> Link {
        *self.state.link.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops every open connection and closes new ones at once, until [`Hop::restore`].
    pub fn cut(&self) {
        self.state.cut.send_replace(true);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.state.cut.send_replace(false);
    }

    /// Connections accepted and chunks forwarded (both ways) so far.
    pub fn counters(&self) -> (u64, u64) {
        (self.state.connections.load(Ordering::Relaxed), self.state.chunks.load(Ordering::Relaxed))
    }
}

impl Drop for Hop {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: String, state: Arc<HopState>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            // Out of descriptors, most likely: give the others a moment to close.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if *state.cut.borrow() {
            drop(inbound);
            continue;
        }
        state.connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(forward(inbound, target.clone(), Arc::clone(&state)));
    }
}

async fn forward(inbound: TcpStream, target: String, state: Arc<HopState>) {
    let mut cut = state.cut.subscribe();
    let Ok(outbound) = TcpStream::connect(&target).await else { return };
    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
    let (from_client, to_client) = inbound.into_split();
    let (from_server, to_server) = outbound.into_split();
    let up = delay_line(from_client, to_server, Arc::clone(&state));
    let down = delay_line(from_server, to_client, Arc::clone(&state));
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
}

/// One direction: chunks read now are written `delay` later, in order.
async fn delay_line(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<HopState>,
) {
    // Bounded: a slow reader on the far side holds the near side back, as TCP would.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(256);
    let reader = {
        let state = Arc::clone(&state);
        async move {
            let mut last = Instant::now();
            loop {
                // Not zeroed: `read_buf` fills spare capacity.
                let mut buf = Vec::with_capacity(16 * 1024);
                match from.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let link = *state.link.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let due = (Instant::now() + link.delay()).max(last);
                last = due;
                if tx.send((due, buf)).await.is_err() {
                    break;
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, buf)) = rx.recv().await {
            sleep_until(due).await;
            if to.write_all(&buf).await.is_err() {
                return;
            }
            state.chunks.fetch_add(1, Ordering::Relaxed);
        }
        // The reader saw end of stream and everything read is delivered: pass the half-close on.
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// How much earlier than `due` to ask the timer thread (ns), learned from how late the
/// wake-ups arrive: the thread's own timer slack plus waking the task's worker thread —
/// about 0.1 ms on these machines, as much as a `lan` hop's whole half trip.
static EARLY_NS: AtomicI64 = AtomicI64::new(0);

/// How much earlier than the instant the timer is asked today (the learned lateness).
pub fn timer_lead() -> Duration {
    Duration::from_nanos(u64::try_from(EARLY_NS.load(Ordering::Relaxed)).unwrap_or(0))
}

/// Waits until `due`: the timer thread is asked for `due` less the learned lateness, and
/// every wake-up moves it 5 µs towards its error, so tasks run at `due` in the median.
async fn sleep_until(due: Instant) {
    let early = Duration::from_nanos(u64::try_from(EARLY_NS.load(Ordering::Relaxed)).unwrap_or(0));
    let asked = due.checked_sub(early).unwrap_or(due);
    if asked > Instant::now() {
        let (tx, rx) = oneshot::channel();
        if timer().send((asked, tx)).is_ok() {
            let _ = rx.await;
        }
    }
    // Track the median lateness, not the mean: a few wake-ups a whole scheduling slice late
    // (a busy machine) would teach a mean to send everything else early.
    let step = if Instant::now() > due { 5_000 } else { -5_000 };
    let old = EARLY_NS.load(Ordering::Relaxed);
    EARLY_NS.store((old + step).clamp(0, 300_000), Ordering::Relaxed);
}

type Wake = (Instant, oneshot::Sender<()>);

/// The timer thread's inbox, started on first use (a `Sender` is `Sync`: no lock, no clone
/// per chunk).
fn timer() -> &'static mpsc::Sender<Wake> {
    static TIMER: OnceLock<mpsc::Sender<Wake>> = OnceLock::new();
    TIMER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Wake>();
        std::thread::Builder::new()
            .name("nanum-net-timer".into())
            .spawn(move || timer_thread(&rx))
            .expect("spawn the network timer thread");
        tx
    })
}

/// Fires every wake whose instant has come; sleeps in `recv_timeout` until the next one.
fn timer_thread(rx: &mpsc::Receiver<Wake>) {
    struct Entry(Instant, u64, oneshot::Sender<()>);
    impl PartialEq for Entry {
        fn eq(&self, other: &Self) -> bool {
            (self.0, self.1) == (other.0, other.1)
        }
    }
    impl Eq for Entry {}
    impl PartialOrd for Entry {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Entry {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            (self.0, self.1).cmp(&(other.0, other.1))
        }
    }
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|Reverse(e)| e.0 <= now) {
            if let Some(Reverse(Entry(_, _, tx))) = heap.pop() {
                let _ = tx.send(());
            }
        }
        let next = match heap.peek() {
            Some(Reverse(e)) => rx.recv_timeout(e.0.saturating_duration_since(now)),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match next {
            Ok((due, tx)) => {
                seq += 1;
                heap.push(Reverse(Entry(due, seq, tx)));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}
