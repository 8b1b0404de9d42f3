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

use strategies::contract::Check;

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
    /// Readers told they won: 201s plus 202s that settled `won`.
    pub won_answers: usize,
    /// Readers told they lost: 409s plus 202s that settled `sold_out` / `already_applied`.
    pub lost_answers: usize,
    /// Wall time of the burst.
    pub elapsed: Duration,
}

impl CrowdReport {
    /// The race's books for the one contract check, `readers` distinct readers having
    /// applied.
    pub fn check(&self, readers: usize) -> Check {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let statuses = |f: &dyn Fn(u16) -> bool| {
            count(self.statuses.iter().filter(|(s, _)| f(**s)).map(|(_, n)| *n).sum())
        };
        Check {
            copies: self.copies,
            readers: count(readers),
            requests: count(self.requests),
            winners: count(self.winners),
            distinct_winners: count(self.distinct_winners),
            remaining: self.remaining,
            won_answers: count(self.won_answers),
            lost_answers: count(self.lost_answers),
            pending: count(self.pending),
            // the race waits every 202 out and fails if one stays pending
            unsettled: 0,
            server_errors: statuses(&|s| s >= 500),
            // 0 = no answer at all (refused, reset)
            unexpected: statuses(&|s| !matches!(s, 201 | 202 | 409) && s < 500),
        }
    }

    /// Whether the contract held ([`Check::violations`] is empty): exactly min(readers,
    /// copies) winners, nobody twice, every win told and stored, stock consistent, only
    /// 201/202/409 answers.
    pub fn holds(&self, readers: usize) -> bool {
        self.check(readers).violations().is_empty()
    }

    /// More winners than copies.
    pub fn over_allocated(&self) -> bool {
        self.check(0).over_allocated() > 0
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

    /// A crowd of already signed-in readers (their bearer tokens).
    pub(crate) fn new(
        client: reqwest::Client,
        addresses: Vec<String>,
        admin: String,
        tokens: Vec<String>,
    ) -> Self {
        Self { client, addresses, admin, tokens }
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
        let mut reports = self.race_events(1, copies, attempts_each).await?;
        reports.pop().ok_or_else(|| anyhow::anyhow!("no event was raced"))
    }

    /// As [`Crowd::race`] with `events` new events of `copies` each raced at once: every
    /// reader applies to every event `attempts_each` times, the requests of all events
    /// interleaved and spread round-robin over the instances; one report per event.
    ///
    /// # Errors
    ///
    /// As [`Crowd::race`].
    // Long on purpose: several events raced at once, then each checked: the race and its checks
    // share the readers and the clock.
    pub async fn race_events(
        &self,
        events: usize,
        copies: i64,
        attempts_each: usize,
    ) -> anyhow::Result<Vec<CrowdReport>> {
        let base = &self.addresses[0];
        let mut ids = Vec::with_capacity(events);
        for _ in 0..events {
            ids.push(api::open_event(&self.client, base, &self.admin, copies).await?);
        }
        let requests: Vec<(usize, &String)> = (0..attempts_each)
            .flat_map(|_| self.tokens.iter().flat_map(|token| (0..events).map(move |e| (e, token))))
            .collect();
        let started = Instant::now();
        let answers = join_all(requests.iter().enumerate().map(|(i, (e, token))| {
            let url = format!(
                "{}/api/v1/events/{}/applications",
                self.addresses[i % self.addresses.len()],
                ids[*e]
            );
            self.client.post(url).bearer_auth(token).send()
        }))
        .await;
        let elapsed = started.elapsed();
        let mut reports: Vec<CrowdReport> =
            ids.iter().map(|_| CrowdReport { copies, elapsed, ..CrowdReport::default() }).collect();
        let mut pending: Vec<Vec<String>> = vec![Vec::new(); events];
        for ((e, _), answer) in requests.iter().zip(answers) {
            let report = &mut reports[*e];
            report.requests += 1;
            let status = answer.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
            *report.statuses.entry(status).or_default() += 1;
            if status == 202
                && let Ok(response) = answer
                && let Ok(body) = response.json::<Value>().await
                && let Some(id) = body["application_id"].as_str()
            {
                pending[*e].push(id.to_owned());
            }
        }
        let all: Vec<String> = pending.iter().flatten().cloned().collect();
        let settled = self.wait_settled(&all).await?;
        for ((report, event_id), pending) in reports.iter_mut().zip(&ids).zip(&pending) {
            let settled_as = |names: &[&str]| {
                pending
                    .iter()
                    .filter(|id| settled.get(*id).is_some_and(|s| names.contains(&s.as_str())))
                    .count()
            };
            report.pending = pending.len();
            report.won_answers = report.statuses.get(&201).copied().unwrap_or(0) + settled_as(&["won"]);
            report.lost_answers = report.statuses.get(&409).copied().unwrap_or(0)
                + settled_as(&["sold_out", "already_applied"]);
            let outcome = api::outcome(&self.client, base, &self.admin, *event_id).await?;
            report.winners = outcome.winners.len();
            report.distinct_winners = outcome.winners.iter().collect::<HashSet<_>>().len();
            report.remaining = outcome.remaining;
        }
        Ok(reports)
    }

    /// Polls every pending request until it has a final answer; bounded (60 s).
    ///
    /// # Errors
    ///
    /// A request still pending after the bound — an accepted application was lost.
    pub async fn wait_settled(&self, request_ids: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
        let settled =
            api::settle(&self.client, &self.addresses[0], &self.admin, request_ids, Duration::from_secs(60))
                .await?;
        if let Some((id, _)) = settled.iter().find(|(_, status)| *status == "pending") {
            bail!("request {id} is still pending after 60 s");
        }
        Ok(settled)
    }
}
