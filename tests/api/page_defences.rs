//! The pages' defences beyond `SameSite`: an `Origin` check, CSRF tokens only the server can
//! make (bound to the session), the security headers on every HTML answer, a sign-out that
//! ends the session on the server, a `next` that can never break the redirect, and a
//! request page that is 404 for a request never made.

use reqwest::{StatusCode, header};

use crate::{
    helpers::spawn_app,
    web::{Browser, Page},
};

/// A form post with one extra header (`Origin` or `Referer`).
async fn post_with(
    browser: &mut Browser,
    base: &str,
    path: &str,
    fields: &[(&str, &str)],
    extra: (&str, &str),
) -> Page {
    let response = browser
        .client
        .post(format!("{base}{path}"))
        .header(header::COOKIE, browser.cookie_header())
        .header(extra.0, extra.1)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(crate::web::form_body(fields))
        .send()
        .await
        .expect("POST");
    browser.read(response).await
}

#[tokio::test]
async fn control_characters_in_next_send_the_visitor_home_instead_of_a_500() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    for next in ["/\r\nX-Injected: y", "/a\u{0}b", "/\u{7f}", "/a b", "/\u{2028}"] {
        // a fresh form each time: the last round signed in, and tokens follow the session
        let csrf = browser.get("/signup").await.field("csrf");
        let email = format!("next-{}@example.com", uuid::Uuid::new_v4().simple());
        let fields = [
            ("csrf", csrf.as_str()),
            ("email", &email),
            ("name", "독자"),
            ("password", "correct horse"),
            ("next", next),
        ];
        let signed_up = browser.post("/signup", &fields).await;
        assert_eq!(signed_up.status, StatusCode::SEE_OTHER, "{next:?}: {}", signed_up.html);
        assert_eq!(signed_up.location.as_deref(), Some("/"), "{next:?}");
        let csrf = browser.get("/login").await.field("csrf");
        let fields =
            [("csrf", csrf.as_str()), ("email", &email), ("password", "correct horse"), ("next", next)];
        let signed_in = browser.post("/login", &fields).await;
        assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{next:?}: {}", signed_in.html);
        assert_eq!(signed_in.location.as_deref(), Some("/"), "{next:?}");
    }
    let form = browser.get("/login?next=%2F%0D%0AX%3A%20y").await;
    assert_eq!(form.field("next"), "/", "the form does not carry it either");
}

#[tokio::test]
async fn the_page_of_a_request_never_made_is_404_like_the_api() {
    let app = spawn_app().await;
    let email = format!("req-{}@example.com", uuid::Uuid::new_v4().simple());
    let id = app.register(&email, "correct horse").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&email, "correct horse").await.status, StatusCode::SEE_OTHER);
    let page = browser.get(&format!("/requests/u{id}:never-sent")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.html);
    assert!(!page.html.contains("data-poll"), "no page that refreshes forever");
}

#[tokio::test]
async fn a_form_posted_from_another_site_is_refused_even_with_a_valid_token() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let csrf = browser.get("/signup").await.field("csrf");
    let fields = |email: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("email", email.to_owned()),
            ("name", "x".into()),
            ("password", "correct horse".into()),
        ]
    };
    let as_pairs =
        |f: &[(&'static str, String); 4]| f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    for (name, value, email) in [
        ("Origin", "http://evil.example", "origin@example.com"),
        ("Origin", "null", "null@example.com"),
        ("Referer", "http://evil.example/page", "referer@example.com"),
    ] {
        let pairs = as_pairs(&fields(email));
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = post_with(&mut browser, &app.address, "/signup", &refs, (name, value)).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{name}: {value}");
        let login = app
            .post(
                "/api/v1/auth/login",
                None,
                &serde_json::json!({"email": email, "password": "correct horse"}),
            )
            .await;
        assert_eq!(login.status(), StatusCode::UNAUTHORIZED, "no account was created");
    }
    let pairs = as_pairs(&fields("same-site@example.com"));
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = post_with(&mut browser, &app.address, "/signup", &refs, ("Origin", &app.address)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "this site's own origin: {}", page.html);
}

#[tokio::test]
async fn an_invented_csrf_pair_is_refused() {
    let app = spawn_app().await;
    let email = format!("pair-{}@example.com", uuid::Uuid::new_v4().simple());
    app.register(&email, "correct horse").await;
    let mut forger = Browser::new(&app);
    let invented = "0123456789abcdef0123456789abcdef";
    forger.cookies.insert("nanum_csrf".into(), invented.into());
    let page =
        forger.post("/login", &[("csrf", invented), ("email", &email), ("password", "correct horse")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.html);
    assert!(!forger.cookies.contains_key("nanum_session"));
}

#[tokio::test]
async fn a_csrf_token_made_before_signing_in_does_not_pass_for_the_new_session() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let email = browser.sign_up().await;
    let before = browser.get("/me/applications").await.field("csrf");
    let out = browser.post("/logout", &[("csrf", &before)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let anonymous = browser.get("/login").await.field("csrf");
    let signed = browser
        .post("/login", &[("csrf", &anonymous), ("email", &email), ("password", "correct horse")])
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    let stale = browser.post("/logout", &[("csrf", &anonymous)]).await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "the token of the signed-out visitor");
    let fresh = browser.get("/me/applications").await;
    assert_eq!(fresh.status, StatusCode::OK, "still signed in");
    assert_ne!(fresh.field("csrf"), anonymous);
}

#[tokio::test]
async fn every_html_answer_carries_the_security_headers() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let mut answers = Vec::new();
    for path in ["/", "/login", "/signup", "/search?q=x", "/events/999999", "/admin", "/me/applications"] {
        answers.push((path, browser.client.get(app.url(path)).send().await.expect("GET")));
    }
    let csrf = browser.get("/login").await.field("csrf");
    let wrong = browser
        .client
        .post(app.url("/login"))
        .header(header::COOKIE, browser.cookie_header())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(crate::web::form_body(&[
            ("csrf", csrf.as_str()),
            ("email", "nobody@example.com"),
            ("password", "wrong password"),
        ]))
        .send()
        .await
        .expect("POST");
    answers.push(("POST /login (401 page)", wrong));
    for (path, r) in answers {
        let h = r.headers();
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(get("content-type").starts_with("text/html"), "{path}");
        assert!(get("content-security-policy").contains("frame-ancestors 'none'"), "{path}: {h:?}");
        assert!(get("content-security-policy").contains("script-src 'self'"), "{path}");
        assert_eq!(get("x-frame-options"), "DENY", "{path}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(get("referrer-policy"), "same-origin", "{path}");
    }
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server_and_the_cookie_is_no_api_token() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    browser.sign_up().await;
    let session = browser.cookies.get("nanum_session").cloned().expect("a session");
    let api = app.get("/api/v1/events/1/applications", Some(&session)).await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED, "the page session is not a bearer token");
    let csrf = browser.get("/me/applications").await.field("csrf");
    assert_eq!(browser.post("/logout", &[("csrf", &csrf)]).await.status, StatusCode::SEE_OTHER);
    // The old cookie, kept by someone who copied it before the sign-out:
    let replayed = browser
        .client
        .get(app.url("/me/applications"))
        .header(header::COOKIE, format!("nanum_session={session}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
}
