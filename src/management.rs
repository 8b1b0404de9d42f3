//! The optional management listener, `server.management_port`: `/metrics`,
//! `/health/live` and `/health/ready` on a port of their own, so an orchestrator's probes
//! and Prometheus reach them on the internal network while the public port (behind the
//! load balancer) no longer serves `/metrics` (404 there). The health probes stay on the
//! public port too: load balancers check that one. Same host as `server.host`, the same
//! state as the public server; it stops when the public server stops.

use std::net::TcpListener;

use actix_web::{App, HttpServer, dev::Server, web};

use crate::{
    routes::{health, prometheus},
    state::AppState,
};

/// Marks the management listener's app: `/metrics` answers there whatever the settings.
#[derive(Debug, Clone, Copy)]
pub struct Listener;

/// A bound management server, not yet running.
pub struct Management {
    port: u16,
    server: Server,
}

impl Management {
    /// The bound port (useful when configured as 0).
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Binds the management listener when `server.management_port` is set.
///
/// # Errors
///
/// The port in use (the message names the setting).
pub fn bind(state: &web::Data<AppState>) -> anyhow::Result<Option<Management>> {
    let server = &state.settings.server;
    let Some(port) = server.management_port else {
        return Ok(None);
    };
    let listener = TcpListener::bind((server.host.as_str(), port)).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}:{port}: {e} (server.management_port / APP__SERVER__MANAGEMENT_PORT)",
            server.host
        )
    })?;
    let port = listener.local_addr()?.port();
    let state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(Listener)
            .service(health::live)
            .service(health::ready)
            .service(prometheus::metrics)
    })
    // Probes and scrapes: one worker is plenty, and it must not take a core per CPU.
    .workers(1)
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    Ok(Some(Management { port, server }))
}

/// Runs `public` with `management` beside it until `public` stops (a signal), then stops
/// the management server too.
///
/// # Errors
///
/// The public server's I/O errors.
pub async fn run_beside(public: Server, management: Option<Management>) -> std::io::Result<()> {
    let Some(management) = management else {
        return public.await;
    };
    let handle = management.server.handle();
    let task = tokio::spawn(management.server);
    let result = public.await;
    handle.stop(true).await;
    let _ = task.await;
    result
}
