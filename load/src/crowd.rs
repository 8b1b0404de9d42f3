//! A crowd of signed-up readers spread across a cluster's instances, racing for one event's
//! copies — all requests sent at once — and the totals read back. The multi-instance tests
//! use it; `nanum loadtest` and `nanum compare` measure with the load engine instead.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use anyhow::bail;
use futures::future::join_all;
use serde_json::Value;

use crate::api;

/// What a crowd race produced, read back through the API.
#[derive(Debug, Clone, Default)]
pub struct CrowdReport {
    /// Copies offered.
    pub copies: i64,
    /// Requests sent.
    pub requests: usize,
    /// HTTP status → count.
    pub statuses: BTreeMap<u16, usize>,
    /// Winners stored (admin list).
    pub winners: usize,
    /// Distinct readers among them.
    pub distinct_winners: usize,
    /// `remaining` afterwards.
    pub remaining: i64,
    /// Requests answered 202 `pending` (all settled before the report is returned).
    pub pending: usize,
    /// Wall time of the burst.
    pub elapsed: Duration,
}

impl CrowdReport {
    /// Exactly min(readers, copies) winners, nobody twice, stock consistent, only 201/202/409.
    pub fn holds(&self, readers: usize) -> bool {
        let expected = readers.min(usize::try_from(self.copies).unwrap_or(0));
        let only_expected = self.statuses.keys().all(|s| matches!(s, 201 | 202 | 409));
        self.winners == expected
            && self.distinct_winners == expected
            && self.remaining == self.copies - i64::try_from(expected).unwrap_or(0)
            && only_expected
    }

    /// More winners than copies.
    pub fn over_allocated(&self) -> bool {
        i64::try_from(self.winners).unwrap_or(i64::MAX) > self.copies
    }
}

/// Readers signed up across a cluster, plus the admin, ready to race.
#[derive(Debug)]
pub struct Crowd {
    client: reqwest::Client,
    addresses: Vec<String>,
    admin: String,
    tokens: Vec<String>,
}

impl Crowd {
    /// Signs up `readers` readers, spread round-robin over the instances, and logs in the
    /// admin (`admin_email` / `admin_password`).
    ///
    /// # Errors
    ///
    /// Any failed sign-up or login.
    pub async fn sign_up(addresses: &[String], readers: usize, admin: (&str, &str)) -> anyhow::Result<Self> {
        let client = api::client()?;
        let admin = api::login(&client, &addresses[0], admin.0, admin.1).await?;
        let hidden = indicatif::ProgressBar::hidden();
        let signed = api::sign_up(&client, addresses, readers, &hidden).await?;
        let tokens = signed.into_iter().map(|(_, token)| token).collect();
        Ok(Self { client, addresses: addresses.to_vec(), admin, tokens })
    }

    /// Readers signed up.
    pub fn readers(&self) -> usize {
        self.tokens.len()
    }

    /// A new open event of `copies`; every reader applies `attempts_each` times at once,
    /// request `i` going to instance `i % n`; then the totals are read back.
    ///
    /// # Errors
    ///
    /// Failures creating the event or reading the result (not the applications' answers,
    /// which are counted).
    pub async fn race(&self, copies: i64, attempts_each: usize) -> anyhow::Result<CrowdReport> {
        let base = &self.addresses[0];
        let event_id = api::open_event(&self.client, base, &self.admin, copies).await?;
        let requests: Vec<_> = (0..attempts_each).flat_map(|_| self.tokens.iter()).enumerate().collect();
        let started = Instant::now();
        let answers = join_all(requests.iter().map(|(i, token)| {
            let url =
                format!("{}/api/v1/events/{event_id}/applications", self.addresses[i % self.addresses.len()]);
            self.client.post(url).bearer_auth(token).send()
        }))
        .await;
        let elapsed = started.elapsed();
        let mut report = CrowdReport { copies, requests: answers.len(), elapsed, ..CrowdReport::default() };
        let mut pending = Vec::new();
        for answer in answers {
            let status = answer.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
            *report.statuses.entry(status).or_default() += 1;
            if status == 202
                && let Ok(response) = answer
                && let Ok(body) = response.json::<Value>().await
                && let Some(id) = body["application_id"].as_str()
            {
                pending.push(id.to_owned());
            }
        }
        report.pending = pending.len();
        self.wait_settled(&pending).await?;
        let outcome = api::outcome(&self.client, base, &self.admin, event_id).await?;
        report.winners = outcome.winners.len();
        report.distinct_winners = outcome.winners.iter().collect::<HashSet<_>>().len();
        report.remaining = outcome.remaining;
        Ok(report)
    }

    /// Polls every pending request until it has a final answer; bounded (60 s).
    ///
    /// # Errors
    ///
    /// A request still pending after the bound — an accepted application was lost.
    pub async fn wait_settled(&self, request_ids: &[String]) -> anyhow::Result<()> {
        let settled =
            api::settle(&self.client, &self.addresses[0], &self.admin, request_ids, Duration::from_secs(60))
                .await?;
        if let Some((id, _)) = settled.iter().find(|(_, status)| *status == "pending") {
            bail!("request {id} is still pending after 60 s");
        }
        Ok(())
    }
}
