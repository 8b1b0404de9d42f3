//! The OpenAPI document and the `/docs` page: served by the binary alone (no CDN), the
//! document lists exactly the routes the app registers, and its error answers are the
//! contract's (docs/API.md, `src/error.rs`).

use std::collections::BTreeSet;

use nanum::routes::openapi::{DOCS_PATH, ERRORS, OPENAPI_PATH, every_error};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let r = app.get(OPENAPI_PATH, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.expect("the OpenAPI document is JSON")
}

/// (method, path) of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                ops.insert((method.to_owned(), path.clone()));
            }
        }
    }
    ops
}

/// Every route attribute (`#[get("/books")]` …) in `src/`, as (method, path): the routes the
/// app registers. Routes added any other way must be one of `allowed_routes`.
fn route_attributes() -> (Vec<(String, String)>, Vec<String>) {
    let mut attributes = Vec::new();
    let mut other = Vec::new();
    let mut stack = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            // `src/web` serves the readers' HTML pages, not the API the document describes.
            if path.is_dir() && !path.ends_with("web") {
                stack.push(path);
                continue;
            }
            if path.is_dir() {
                continue;
            }
            // Whitespace dropped, so a call rustfmt splits over lines is still one string.
            let text: String =
                std::fs::read_to_string(&path).expect("read source").split_whitespace().collect();
            let literal_after = |at: usize| text[at..].split('"').next().unwrap_or_default().to_owned();
            for method in METHODS {
                let attribute = format!("#[{method}(\"");
                for (at, _) in text.match_indices(&attribute) {
                    attributes.push((method.to_owned(), literal_after(at + attribute.len())));
                }
            }
            for call in [".route(\"", "web::resource(\"", "Resource::new(\""] {
                for (at, _) in text.match_indices(call) {
                    other.push(literal_after(at + call.len()));
                }
            }
        }
    }
    (attributes, other)
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_the_app_registers_and_no_other() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let ops = operations(&doc);

    // App → document: every route attribute is an operation of the document, at its path
    // under whatever scope it is registered in, and there are as many of each.
    let (attributes, other) = route_attributes();
    assert!(!attributes.is_empty(), "no route attribute found under src/");
    for (method, route) in &attributes {
        assert!(
            ops.iter().any(|(m, p)| m == method && p.ends_with(route.as_str())),
            "{} {route} is registered but not in the OpenAPI document",
            method.to_uppercase()
        );
    }
    assert_eq!(attributes.len(), ops.len(), "routes in src/: {attributes:?}\ndocument: {ops:?}");
    // The documentation's own redirect is the only route registered another way.
    assert_eq!(other, ["/docs"], "routes registered without a documented handler");

    // Document → app: each operation is routed (the fallback answers 404 `route not found`).
    for (method, path) in &ops {
        let url = app.url(&path.replace("{id}", "1"));
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let r = app.client.request(method.clone(), url).send().await.expect("request");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or_default();
        assert!(
            !(status == StatusCode::NOT_FOUND && body["message"] == "route not found"),
            "{method} {path} is in the document but the app does not route it"
        );
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
}

#[tokio::test]
async fn every_operation_has_an_operation_id_and_its_error_answers() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let id = op["operationId"].as_str().expect("operationId").to_owned();
                assert!(ids.insert(id.clone()), "operationId {id} is used twice");
                let (_, codes) = ERRORS.iter().find(|(op, _)| *op == id).expect("an ERRORS entry");
                let responses = op["responses"].as_object().expect("responses");
                for code in *codes {
                    let listed = responses
                        .values()
                        .any(|r| r["content"]["application/json"]["examples"].get(code).is_some());
                    assert!(listed, "{id}: error {code} is not in its responses");
                }
            }
        }
    }
    let table: BTreeSet<_> = ERRORS.iter().map(|(op, _)| (*op).to_owned()).collect();
    assert_eq!(ids, table, "ERRORS and the document's operations differ");
}

#[tokio::test]
async fn the_documents_error_codes_are_the_contracts() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    // (status, code) of every error example in the document, checked against ApiError.
    let mut in_document = BTreeSet::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for method in METHODS {
            let Some(responses) = item.get(method).and_then(|op| op["responses"].as_object()) else {
                continue;
            };
            for (status, response) in responses {
                if let Some(examples) = response["content"]["application/json"]["examples"].as_object() {
                    for (code, example) in examples {
                        assert_eq!(example["value"]["error"], code.as_str());
                        in_document.insert((status.clone(), code.clone()));
                    }
                }
            }
        }
    }
    let from_code: BTreeSet<_> = every_error()
        .iter()
        .map(|e| (actix_web::ResponseError::status_code(e).as_u16().to_string(), e.code().to_owned()))
        .collect();
    // docs/API.md's error table: `| 409 | `sold_out` | … |`.
    let api_md =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/API.md")).expect("API.md");
    let from_contract: BTreeSet<_> = api_md
        .lines()
        .filter_map(|line| {
            let cells: Vec<_> = line.split('|').map(str::trim).collect();
            let status = cells.get(1)?;
            let code = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            let is_code = code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            (status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()) && is_code)
                .then(|| ((*status).to_owned(), code.to_owned()))
        })
        .collect();
    assert!(!from_contract.is_empty(), "no error table found in docs/API.md");
    // Answered by the HTTP codec itself, before any route (the vendored actix-http's JSON
    // bodies for a malformed request or oversized headers): no operation lists them.
    let from_codec = [("400", "bad_request"), ("431", "headers_too_large")];
    for (status, code) in from_codec {
        assert!(from_contract.contains(&(status.to_owned(), code.to_owned())), "docs/API.md lists {code}");
    }
    let from_contract: BTreeSet<_> = from_contract
        .into_iter()
        .filter(|(status, code)| !from_codec.contains(&(status.as_str(), code.as_str())))
        .collect();
    assert_eq!(from_code, from_contract, "src/error.rs and docs/API.md disagree");
    assert_eq!(in_document, from_contract, "the OpenAPI document and docs/API.md disagree");
}

#[tokio::test]
async fn every_reference_in_the_document_resolves() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                refs.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

/// The values of `attribute="…"` in `html`.
fn attribute_values(html: &str, attribute: &str) -> Vec<String> {
    let needle = format!("{attribute}=\"");
    html.match_indices(&needle)
        .filter_map(|(at, _)| html[at + needle.len()..].split('"').next().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_docs_page_and_every_asset_it_references_are_served_by_the_binary() {
    let app = spawn_app().await;
    // `/docs` redirects to the page.
    let page = app.get("/docs", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.url().path(), DOCS_PATH);
    assert!(page.headers()["content-type"].to_str().is_ok_and(|t| t.starts_with("text/html")));
    let html = page.text().await.expect("html");

    let mut assets: Vec<String> = attribute_values(&html, "src");
    assets.extend(attribute_values(&html, "href"));
    assert!(assets.len() >= 3, "expected scripts and styles, found {assets:?}");
    for asset in &assets {
        assert!(
            !asset.contains("//") && !asset.contains(':'),
            "{asset} is not served by the binary (an absolute URL)"
        );
        let path = format!("{DOCS_PATH}{}", asset.trim_start_matches("./"));
        let r = app.get(&path, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(!r.bytes().await.expect("asset").is_empty(), "{path} is empty");
    }
    // The page's script points Swagger UI at our document and at no online validator.
    let init = app.get(&format!("{DOCS_PATH}swagger-initializer.js"), None).await.text().await.expect("js");
    assert!(init.contains(OPENAPI_PATH), "{init}");
    assert!(!init.contains("http://") && !init.contains("https://"), "an absolute URL in {init}");
    let compact: String = init.split_whitespace().collect();
    assert!(compact.contains("\"validatorUrl\":\"none\""), "{init}");
}
