//! Request data as metric labels and log fields: labels come from closed sets, log fields
//! are cut to a fixed length. A client chooses its method name, path and headers freely;
//! every distinct label value is a new series kept for the process's life (and written out
//! by every `/metrics` scrape), and every logged byte is disk.
//!
//! Where request data ends up, and what bounds it:
//!
//! - method: [`method`] — one of the nine standard names, else `other`;
//! - route: the matched route *template* from the route table, else `unmatched`;
//! - status: [`status`] — a registered code (the app's own answers), else its class (`4xx`);
//! - request id: `logging::request_id` (≤ 64 characters of a small alphabet, else generated);
//! - error causes written to the log: [`text`] cuts them to [`MAX_LOGGED`] bytes.

use std::borrow::Cow;

use actix_web::http::{Method, StatusCode};

/// Longest text taken into a log line from anything a request may have shaped.
pub const MAX_LOGGED: usize = 1024;

/// The method as a label: a standard name, or `other` for any extension method.
pub fn method(m: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    STANDARD.iter().find(|s| *s == m).map_or("other", Method::as_str)
}

/// The status as a label: a registered code as itself, anything else as its class.
pub fn status(s: StatusCode) -> Cow<'static, str> {
    if s.canonical_reason().is_some() {
        Cow::Owned(s.as_u16().to_string())
    } else {
        Cow::Borrowed(match s.as_u16() / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        })
    }
}

/// `raw` cut to at most `max` bytes (on a character boundary), with `…` when cut.
pub fn text(raw: &str, max: usize) -> Cow<'_, str> {
    if raw.len() <= max {
        return Cow::Borrowed(raw);
    }
    let mut end = max;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &raw[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_methods_share_one_label_and_standard_ones_keep_theirs() {
        assert_eq!(method(&Method::GET), "GET");
        assert_eq!(method(&Method::PATCH), "PATCH");
        let invented = Method::from_bytes(b"M000001XXXXXXXXXXXXXXXX").expect("a token");
        assert_eq!(method(&invented), "other");
        assert_eq!(method(&Method::from_bytes(b"get").expect("a token")), "other");
    }

    #[test]
    fn unregistered_statuses_are_labelled_by_class() {
        assert_eq!(status(StatusCode::NOT_FOUND), "404");
        assert_eq!(status(StatusCode::from_u16(499).expect("in range")), "4xx");
        assert_eq!(status(StatusCode::from_u16(599).expect("in range")), "5xx");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(text("short", 10), "short");
        let long = "가".repeat(100);
        let cut = text(&long, 10);
        assert!(cut.len() <= 10 + '…'.len_utf8(), "{cut}");
        assert!(cut.ends_with('…'));
    }
}
