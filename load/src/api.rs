//! The few nanum API calls around a race — the control plane, not the measured requests:
//! sign-up and login, a fresh open event, settling `202 pending` answers, and reading the
//! winners and the stock back. The crowd, `nanum loadtest` and `nanum compare` share them.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures::future::join_all;
use serde_json::{Value, json};

/// A control-plane client: generous timeout (a busy 2-core machine), default pooling.
///
/// # Errors
///
/// Only when the TLS-less client cannot be built.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?)
}

/// POSTs JSON; a non-2xx answer is an error carrying its body.
///
/// # Errors
///
/// Transport errors and non-2xx answers.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<Value> {
    send(client.post(url).json(body), token, "POST", url).await
}

/// GETs JSON with a token.
///
/// # Errors
///
/// Transport errors, non-2xx answers, a body that is not JSON.
pub async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> anyhow::Result<Value> {
    send(client.get(url), token, "GET", url).await
}

/// Sends with the token, if any; a non-2xx answer is an error naming the call.
async fn send(
    mut req: reqwest::RequestBuilder,
    token: Option<&str>,
    method: &str,
    url: &str,
) -> anyhow::Result<Value> {
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let response = req.send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{method} {url} answered {status}: {body}");
    }
    Ok(body)
}

/// Logs in; returns the access token.
///
/// # Errors
///
/// Wrong credentials or an unreachable server.
pub async fn login(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let body = post(
        client,
        &format!("{base}/api/v1/auth/login"),
        None,
        &json!({"email": email, "password": password}),
    )
    .await?;
    body["access_token"].as_str().map(str::to_owned).context("no access_token in the login answer")
}

/// Signs up `readers` new accounts (spread round-robin over `bases`, 25 at a time) and logs
/// each in: `(user id, token)` in order. Two argon2 hashes per reader make this the slow
/// way; `nanum loadtest --jwt-secret` mints tokens instead.
///
/// # Errors
///
/// Any failed sign-up or login.
pub async fn sign_up(
    client: &reqwest::Client,
    bases: &[String],
    readers: usize,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<(i64, String)>> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut signed = Vec::with_capacity(readers);
    for chunk in (0..readers).collect::<Vec<_>>().chunks(25) {
        let batch = join_all(chunk.iter().map(|&i| {
            let base = &bases[i % bases.len()];
            let email = format!("reader{i}-{run}@crowd.test");
            async move {
                let user = post(
                    client,
                    &format!("{base}/api/v1/users"),
                    None,
                    &json!({"email": email, "password": "crowd-password", "name": format!("reader {i}")}),
                )
                .await?;
                let id = user["id"].as_i64().context("no id in the sign-up answer")?;
                let token = login(client, base, &email, "crowd-password").await?;
                progress.inc(1);
                anyhow::Ok((id, token))
            }
        }))
        .await;
        for reader in batch {
            signed.push(reader?);
        }
    }
    Ok(signed)
}

/// Creates a book and an event of `copies` that opened a minute ago; returns the event id.
///
/// # Errors
///
/// Any failed call (e.g. a token that is not an admin's).
pub async fn open_event(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    copies: i64,
) -> anyhow::Result<i64> {
    let book = post(
        client,
        &format!("{base}/api/v1/books"),
        Some(admin),
        &json!({"title": "나눔 도서", "author": "crowd"}),
    )
    .await?;
    let opens_at = chrono::Utc::now() - chrono::Duration::minutes(1);
    let event = post(
        client,
        &format!("{base}/api/v1/events"),
        Some(admin),
        &json!({"book_id": book["id"], "title": "crowd race", "quantity": copies, "opens_at": opens_at}),
    )
    .await?;
    event["id"].as_i64().context("no event id")
}

/// Polls each request id until it is no longer `pending`, up to `bound` in all; returns the
/// final status of each (`won`, `sold_out`, `already_applied`, or `pending` when the bound
/// ran out). `token` must be the requests' owner or an admin.
///
/// # Errors
///
/// A failed poll (not a request that stays pending: that is in the answer).
pub async fn settle(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    request_ids: &[String],
    bound: Duration,
) -> anyhow::Result<BTreeMap<String, String>> {
    let deadline = Instant::now() + bound;
    let mut settled = BTreeMap::new();
    for id in request_ids {
        loop {
            let body = get(client, &format!("{base}/api/v1/applications/{id}"), Some(token)).await?;
            let status = body["status"].as_str().unwrap_or("unknown").to_owned();
            if status != "pending" || Instant::now() > deadline {
                settled.insert(id.clone(), status);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(settled)
}

/// What the database holds after a race, read through the API.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The winners' user ids, in allocation order.
    pub winners: Vec<i64>,
    /// `remaining` of the event.
    pub remaining: i64,
}

/// Reads an event's winners (admin list) and its remaining stock.
///
/// # Errors
///
/// Failed calls or unexpected bodies.
pub async fn outcome(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    event_id: i64,
) -> anyhow::Result<Outcome> {
    let list = get(client, &format!("{base}/api/v1/events/{event_id}/applications"), Some(admin)).await?;
    let winners = list["items"]
        .as_array()
        .context("no items in the winners list")?
        .iter()
        .filter_map(|w| w["user_id"].as_i64())
        .collect();
    let event = get(client, &format!("{base}/api/v1/events/{event_id}"), None).await?;
    let remaining = event["remaining"].as_i64().context("no remaining in the event")?;
    Ok(Outcome { winners, remaining })
}
