//! The pages' defences against forged form posts, on top of `SameSite=Strict` cookies:
//!
//! - the CSRF token is an HMAC (server secret) of the visitor's random nonce (its own
//!   cookie) and of the session cookie, so only the server can make one, and one made for
//!   another session — or an invented "same value in cookie and form" pair — does not pass;
//! - a form post whose `Origin` (or, without one, `Referer`) names another host is refused.
//!   A post with neither is let through on the token alone: browsers send `Origin` on every
//!   cross-site POST, and some privacy settings strip both from same-site ones.

use actix_web::{HttpRequest, http::header};

use super::session;

/// The token a form of this visitor must carry.
pub(super) fn token(secret: &str, nonce: &str, session_cookie: &str) -> String {
    session::sign(secret, "csrf", &[nonce, session_cookie])
}

/// True unless `Origin` or `Referer` names a host other than the one this request was sent to.
pub(super) fn same_origin(req: &HttpRequest) -> bool {
    let claimed = req
        .headers()
        .get(header::ORIGIN)
        .or_else(|| req.headers().get(header::REFERER))
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    match claimed {
        None => true,
        Some(url) => host_of(url).is_some_and(|host| host.eq_ignore_ascii_case(req.connection_info().host())),
    }
}

/// `host[:port]` of an absolute `http(s)` URL (`Origin: null` and anything else: `None`).
fn host_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|h| !h.is_empty() && !h.contains('@'))
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_of_an_origin_or_referer() {
        assert_eq!(host_of("http://127.0.0.1:8080"), Some("127.0.0.1:8080"));
        assert_eq!(host_of("https://nanum.kr/events/1?x=2"), Some("nanum.kr"));
        assert_eq!(host_of("null"), None);
        assert_eq!(host_of("http://user@evil.example/"), None);
    }
}
