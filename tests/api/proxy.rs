//! A TCP proxy a test can cut and restore, to simulate a backend outage (a crashed
//! server: open connections drop, new ones are refused) without stopping the shared
//! service other tests use — or freeze and thaw (bytes held, connections kept open), to
//! stall a client exactly where a network stall or a pause would.

use std::sync::{Arc, Mutex};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::watch,
    task::JoinHandle,
};

/// Forwards 127.0.0.1:`port` to `target` until cut; can be restored on the same port.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    target: String,
    accept: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// `true` while frozen: every byte waits.
    frozen: watch::Sender<bool>,
}

impl Proxy {
    pub(crate) async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let mut proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            target: target.to_owned(),
            accept: None,
            connections: Arc::default(),
            frozen: watch::Sender::new(false),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target.clone();
        let connections = Arc::clone(&self.connections);
        let frozen = self.frozen.clone();
        self.accept = Some(tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let target = target.clone();
                let (up, down) = (frozen.subscribe(), frozen.subscribe());
                let conn = tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(&target).await {
                        let (from_client, to_client) = inbound.into_split();
                        let (from_server, to_server) = outbound.into_split();
                        tokio::join!(pipe(from_client, to_server, up), pipe(from_server, to_client, down));
                    }
                });
                connections.lock().unwrap().push(conn);
            }
        }));
    }

    /// Refuses new connections and drops every open one, like a crashed server.
    pub(crate) fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        for conn in self.connections.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    /// Holds every byte in both directions until [`Proxy::thaw`]; connections stay open.
    pub(crate) fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    pub(crate) fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    pub(crate) async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("re-bind proxy port");
        self.serve(listener);
    }
}

/// Copies one direction, waiting while frozen before each write.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut frozen: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || frozen.wait_for(|f| !*f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
