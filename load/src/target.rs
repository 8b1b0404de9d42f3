//! What the load generator sends and what it counts as a win, independent of nanum: a URL,
//! method, header and body templates with `{user}`, `{token}`, `{event}` and `{i}`, and a
//! win rule over the status and/or a JSON field — so the same race can be run against any
//! service (a Spring app answering 200 for wins and rejections alike) and compared.

use std::fmt::Write as _;

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::{Method, header::HeaderName};
use serde_json::Value;

/// One reader: the id `{user}` stands for, and the access token `{token}` stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    /// User id.
    pub id: i64,
    /// Bearer token, when the readers were minted or signed up.
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    User,
    Token,
    Event,
    Index,
}

/// A string with placeholders: `{user}` (the reader's id), `{token}` (its access token),
/// `{event}` (the event raced for), `{i}` (the request's number, from 0). `{{` and `}}` are
/// literal braces, so JSON bodies can be written as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The values a template is filled with for one request.
#[derive(Debug, Clone, Copy)]
pub struct Fill<'a> {
    /// The request's reader.
    pub reader: &'a Reader,
    /// The event, when there is one.
    pub event: Option<i64>,
    /// The request's number.
    pub index: u64,
}

impl Template {
    /// Parses `text`. A lone `{` or `}` is literal too (JSON bodies with real braces work
    /// as long as they name no placeholder), so only the five names above are special.
    ///
    /// # Errors
    ///
    /// Never today; kept fallible so a stricter syntax needs no signature change.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while !rest.is_empty() {
            let placeholder = [
                ("{user}", Part::User),
                ("{token}", Part::Token),
                ("{event}", Part::Event),
                ("{i}", Part::Index),
            ]
            .into_iter()
            .find(|(name, _)| rest.starts_with(name));
            if let Some((name, part)) = placeholder {
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(part);
                rest = &rest[name.len()..];
            } else if rest.starts_with("{{") || rest.starts_with("}}") {
                literal.push_str(&rest[..1]);
                rest = &rest[2..];
            } else {
                let c = rest.chars().next().unwrap_or_default();
                literal.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { parts })
    }

    /// True when the template names `{token}`.
    pub fn uses_token(&self) -> bool {
        self.parts.contains(&Part::Token)
    }

    /// True when the template names `{event}`.
    pub fn uses_event(&self) -> bool {
        self.parts.contains(&Part::Event)
    }

    /// Appends the filled template to `out`.
    pub fn render_into(&self, fill: Fill<'_>, out: &mut String) {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::User => {
                    let _ = write!(out, "{}", fill.reader.id);
                }
                Part::Token => out.push_str(fill.reader.token.as_deref().unwrap_or_default()),
                Part::Event => {
                    if let Some(event) = fill.event {
                        let _ = write!(out, "{event}");
                    }
                }
                Part::Index => {
                    let _ = write!(out, "{}", fill.index);
                }
            }
        }
    }

    /// The filled template.
    pub fn render(&self, fill: Fill<'_>) -> String {
        let mut out = String::new();
        self.render_into(fill, &mut out);
        out
    }
}

/// Where requests go: `host:port` of each server, and the path template they share.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` per server; connection `j` goes to `authorities[j % n]`.
    pub authorities: Vec<String>,
    /// Method.
    pub method: Method,
    /// Path and query, e.g. `/api/v1/events/{event}/applications`.
    pub path: Template,
    /// Extra headers (the `Host` header is set from the authority).
    pub headers: Vec<(HeaderName, Template)>,
    /// Body, if any.
    pub body: Option<Template>,
}

impl Target {
    /// A target from `url`: absolute (`http://host:port/path`) or, when `bases` are given
    /// (spawned servers), a path sent to each base in turn.
    ///
    /// # Errors
    ///
    /// `https://` (the race is measured on loopback; no TLS), a placeholder in the host, a
    /// relative URL without bases, a header without `:`, an unknown method.
    pub fn new(
        url: &str,
        bases: &[String],
        method: &str,
        headers: &[String],
        body: Option<&str>,
    ) -> anyhow::Result<Self> {
        let (authorities, path) = if let Some(rest) = url.strip_prefix("http://") {
            let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
            if authority.contains('{') || authority.is_empty() {
                bail!("`{url}`: the host part must be a literal host:port");
            }
            let authority =
                if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
            (vec![authority], path.to_owned())
        } else if url.starts_with("https://") {
            bail!("`{url}`: https is not supported (the load generator measures plain HTTP on loopback)");
        } else if url.starts_with('/') {
            if bases.is_empty() {
                bail!(
                    "`{url}` is a path: give a full http://host:port/… URL, or --spawn servers to send it to"
                );
            }
            let authorities = bases
                .iter()
                .map(|b| b.strip_prefix("http://").map(|a| a.trim_end_matches('/').to_owned()))
                .collect::<Option<Vec<_>>>()
                .context("spawned servers must have http:// addresses")?;
            (authorities, url.to_owned())
        } else {
            bail!("`{url}`: write http://host:port/path (or a /path with --spawn)");
        };
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("`{method}` is not an HTTP method"))?;
        let headers = headers
            .iter()
            .map(|h| {
                let (name, value) = h.split_once(':').with_context(|| format!("header `{h}` has no `:`"))?;
                let name = HeaderName::from_bytes(name.trim().as_bytes())
                    .with_context(|| format!("header name `{}`", name.trim()))?;
                Ok((name, Template::parse(value.trim())?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let body = body.map(Template::parse).transpose()?;
        Ok(Self { authorities, method, path: Template::parse(&path)?, headers, body })
    }

    /// True when any part of the request names `{token}`.
    pub fn uses_token(&self) -> bool {
        self.path.uses_token()
            || self.headers.iter().any(|(_, t)| t.uses_token())
            || self.body.as_ref().is_some_and(Template::uses_token)
    }

    /// True when any part of the request names `{event}`.
    pub fn uses_event(&self) -> bool {
        self.path.uses_event()
            || self.headers.iter().any(|(_, t)| t.uses_event())
            || self.body.as_ref().is_some_and(Template::uses_event)
    }
}

/// What counts as a win: a status in the list (any, when empty) and every JSON field equal
/// to its value. Both parts must hold.
#[derive(Debug, Clone, Default)]
pub struct WinRule {
    statuses: Vec<u16>,
    fields: Vec<(Vec<String>, Value)>,
}

impl WinRule {
    /// From `--win-status` values and `--win-json path=value` pairs (`path` is dotted, an
    /// array index is a number: `result.items.0.ok`; `value` is JSON when it parses —
    /// `true`, `1`, `"x"` — and a plain string otherwise). With neither, any 2xx wins.
    ///
    /// # Errors
    ///
    /// A `--win-json` without `=`.
    pub fn new(statuses: &[u16], json: &[String]) -> anyhow::Result<Self> {
        let fields = json
            .iter()
            .map(|pair| {
                let (path, value) =
                    pair.split_once('=').with_context(|| format!("--win-json `{pair}`: write path=value"))?;
                let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
                Ok((path.split('.').map(str::to_owned).collect(), value))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { statuses: statuses.to_vec(), fields })
    }

    /// True when the rule looks into bodies (so they must be parsed).
    pub fn reads_body(&self) -> bool {
        !self.fields.is_empty()
    }

    /// Whether this answer is a win.
    pub fn wins(&self, status: u16, body: &Bytes) -> bool {
        let status_ok = if !self.statuses.is_empty() {
            self.statuses.contains(&status)
        } else if self.fields.is_empty() {
            (200..300).contains(&status)
        } else {
            // only the JSON decides (a service answering 200 to wins and losers alike)
            true
        };
        if !status_ok {
            return false;
        }
        if self.fields.is_empty() {
            return true;
        }
        let Ok(json) = serde_json::from_slice::<Value>(body) else { return false };
        self.fields.iter().all(|(path, expected)| {
            path.iter()
                .try_fold(&json, |node, key| match key.parse::<usize>() {
                    Ok(i) if node.is_array() => node.get(i),
                    _ => node.get(key.as_str()),
                })
                .is_some_and(|found| found == expected)
        })
    }

    /// The rule in words, for reports.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.statuses.is_empty() {
            let list: Vec<_> = self.statuses.iter().map(u16::to_string).collect();
            parts.push(format!("status {}", list.join("|")));
        }
        for (path, value) in &self.fields {
            parts.push(format!("{} = {value}", path.join(".")));
        }
        if parts.is_empty() { "any 2xx".to_owned() } else { parts.join(" and ") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> Reader {
        Reader { id: 42, token: Some("tok".into()) }
    }

    #[test]
    fn templates_fill_every_placeholder_and_keep_json_braces() {
        let t = Template::parse(r#"{"userId": {user}, "e": {event}, "n": {i}, "t": "{token}"}"#).unwrap();
        let body = t.render(Fill { reader: &reader(), event: Some(7), index: 3 });
        assert_eq!(body, r#"{"userId": 42, "e": 7, "n": 3, "t": "tok"}"#);
        assert!(t.uses_token() && t.uses_event());
        assert_eq!(
            Template::parse("{{user}}").unwrap().render(Fill { reader: &reader(), event: None, index: 0 }),
            "{user}"
        );
    }

    #[test]
    fn targets_split_host_and_path() {
        let t = Target::new("http://127.0.0.1:9/a/{user}?x=1", &[], "post", &["X-Id: {user}".into()], None)
            .unwrap();
        assert_eq!(t.authorities, ["127.0.0.1:9"]);
        assert_eq!(t.method, Method::POST);
        let bases = ["http://127.0.0.1:1".to_owned(), "http://127.0.0.1:2/".to_owned()];
        let t = Target::new("/api/v1/events/{event}/applications", &bases, "POST", &[], None).unwrap();
        assert_eq!(t.authorities, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert!(t.uses_event() && !t.uses_token());
        assert!(Target::new("https://x/", &[], "GET", &[], None).is_err());
        assert!(Target::new("/relative", &[], "GET", &[], None).is_err());
        assert!(Target::new("http://{user}:1/", &[], "GET", &[], None).is_err());
        assert!(Target::new("http://h:1/", &[], "GET", &["no-colon".into()], None).is_err());
    }

    #[test]
    fn win_rules_combine_status_and_json() {
        let ok = Bytes::from_static(br#"{"isSuccess": true, "result": {"items": [{"ok": "yes"}]}}"#);
        let no = Bytes::from_static(br#"{"isSuccess": false}"#);
        let rule = WinRule::new(&[], &["isSuccess=true".into()]).unwrap();
        assert!(
            rule.wins(200, &ok) && !rule.wins(200, &no) && !rule.wins(200, &Bytes::from_static(b"<html>"))
        );
        let nested = WinRule::new(&[200], &["result.items.0.ok=yes".into()]).unwrap();
        assert!(nested.wins(200, &ok) && !nested.wins(201, &ok));
        let status = WinRule::new(&[201], &[]).unwrap();
        assert!(status.wins(201, &no) && !status.wins(409, &no));
        let default = WinRule::default();
        assert!(default.wins(204, &no) && !default.wins(409, &no));
        assert_eq!(nested.describe(), "status 200 and result.items.0.ok = \"yes\"");
    }
}
