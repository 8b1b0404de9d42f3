//! The login throttle from outside: strangers guessing at a known account from many
//! addresses cannot keep its owner out (the owner signs in from an address used before), yet
//! a guesser spread over many addresses is stopped — even when it guesses right. Each client
//! binds its own loopback address (127.0.0.x), which the server sees as the peer.

use std::net::IpAddr;

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// A client whose connections come from 127.0.0.`last`.
fn from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, last]))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn api_login(app: &TestApp, client: &reqwest::Client, email: &str, password: &str) -> StatusCode {
    let body = json!({ "email": email, "password": password });
    client.post(app.url("/api/v1/auth/login")).json(&body).send().await.expect("login").status()
}

/// Signs in through the form (a fresh CSRF cookie and token first): the answer's status.
async fn web_login(app: &TestApp, client: &reqwest::Client, email: &str, password: &str) -> StatusCode {
    let form = client.get(app.url("/login")).send().await.expect("GET /login");
    let cookies: Vec<String> = form
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let html = form.text().await.expect("form");
    let needle = "name=\"csrf\" value=\"";
    let start = html.find(needle).expect("a CSRF field") + needle.len();
    let csrf = html[start..].split('"').next().unwrap_or_default().to_owned();
    client
        .post(app.url("/login"))
        .header(header::COOKIE, cookies.join("; "))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(crate::web::form_body(&[("csrf", csrf.as_str()), ("email", email), ("password", password)]))
        .send()
        .await
        .expect("POST /login")
        .status()
}

/// `per_address` wrong passwords for `email` from each of 127.0.0.`addresses`.
async fn guess_from(app: &TestApp, email: &str, addresses: std::ops::RangeInclusive<u8>, per_address: u32) {
    for last in addresses {
        let client = from(last);
        for i in 0..per_address {
            let status = api_login(app, &client, email, &format!("guess-{last}-{i}")).await;
            assert!(
                matches!(status, StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS),
                "a guess answers 401 or 429: {status}"
            );
        }
    }
}

#[tokio::test]
async fn strangers_guessing_from_many_addresses_cannot_keep_the_admin_out_of_the_api_or_the_form() {
    let app = spawn_app().await;
    let (email, password) =
        (app.settings.auth.admin_email.clone(), app.settings.auth.admin_password.expose().to_owned());
    let owner = from(1);
    assert_eq!(api_login(&app, &owner, &email, &password).await, StatusCode::OK, "the admin's usual address");
    // The issue as reported: five wrong passwords from one address, then the right one.
    guess_from(&app, &email, 2..=2, app.settings.auth.login_max_failures).await;
    assert_eq!(api_login(&app, &owner, &email, &password).await, StatusCode::OK);
    // Then far more than the account's whole budget, spread over 30 addresses.
    guess_from(&app, &email, 3..=32, app.settings.auth.login_max_failures + 2).await;
    assert_eq!(api_login(&app, &owner, &email, &password).await, StatusCode::OK, "API");
    assert_eq!(web_login(&app, &owner, &email, &password).await, StatusCode::SEE_OTHER, "the web form");
}

#[tokio::test]
async fn a_guesser_spread_over_many_addresses_is_stopped_even_when_it_guesses_right() {
    let app = spawn_app().await;
    app.register("target@example.com", "correct horse").await;
    let budget = app.settings.auth.login_max_failures * nanum::throttle::ACCOUNT_FACTOR;
    let per_address = app.settings.auth.login_max_failures;
    let addresses = u8::try_from(budget.div_ceil(per_address)).expect("a few addresses");
    guess_from(&app, "target@example.com", 2..=1 + addresses, per_address).await;
    // A new address with the right password: the account's budget is spent.
    let fresh = from(2 + addresses);
    let api = api_login(&app, &fresh, "target@example.com", "correct horse").await;
    assert_eq!(api, StatusCode::TOO_MANY_REQUESTS, "API");
    let web = web_login(&app, &from(3 + addresses), "target@example.com", "correct horse").await;
    assert_eq!(web, StatusCode::TOO_MANY_REQUESTS, "the web form");
}

#[tokio::test]
async fn one_address_out_of_guesses_for_an_account_is_refused_even_the_right_password() {
    let app = spawn_app().await;
    app.register("mine@example.com", "correct horse").await;
    guess_from(&app, "mine@example.com", 5..=5, app.settings.auth.login_max_failures).await;
    let same = from(5);
    assert_eq!(
        api_login(&app, &same, "mine@example.com", "correct horse").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(api_login(&app, &from(6), "mine@example.com", "correct horse").await, StatusCode::OK);
}
