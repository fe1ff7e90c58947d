//! The HTTP side: who may ask (the token, the `Host` header), GET only, and how each reply is
//! written (content type, no caching of the API, a content security policy for the page).
//!
//! Bound to 127.0.0.1, the server answers requests whose `Host` is this loopback address or
//! `localhost` (a web page elsewhere cannot reach it through DNS rebinding). Bound elsewhere
//! (`--host`), every request needs the token printed at start: `?token=` (which also sets a
//! cookie, so the page's own requests carry it), an `X-Clusterlab-Token` header, an
//! `Authorization: Bearer` header or that cookie.

use std::io::Read;

use super::routes::{route, Reply, PAGE};
use super::Ui;

/// Name of the cookie that carries the token.
const COOKIE: &str = "clusterlab_token";

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("header names and values are ASCII")
}

fn request_header<'a>(req: &'a tiny_http::Request, name: &str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Equal strings, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The token a request presents, and whether it came in the query (then a cookie is set).
fn presented<'a>(req: &'a tiny_http::Request, query: &'a str) -> Option<(String, bool)> {
    let from_query = query
        .split('&')
        .find_map(|p| p.strip_prefix("token="))
        .and_then(|v| super::paths::decode(v, true).ok());
    if let Some(t) = from_query {
        return Some((t, true));
    }
    if let Some(t) = request_header(req, "X-Clusterlab-Token") {
        return Some((t.to_string(), false));
    }
    if let Some(t) = request_header(req, "Authorization").and_then(|a| a.strip_prefix("Bearer ")) {
        return Some((t.to_string(), false));
    }
    request_header(req, "Cookie").and_then(|c| {
        c.split(';')
            .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .map(|t| (t.to_string(), false))
    })
}

/// Why a request is refused before routing, if it is.
fn refuse(ui: &Ui, req: &tiny_http::Request, query: &str) -> Option<(u16, String)> {
    if !matches!(
        req.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    ) {
        return Some((405, "only GET".into()));
    }
    match &ui.token {
        Some(token) => match presented(req, query) {
            Some((t, _)) if same(&t, token) => None,
            _ => Some((
                401,
                "token required: open the URL `clusterlab ui` printed at start (?token=…)".into(),
            )),
        },
        None => {
            let host = request_header(req, "Host").unwrap_or("");
            let port = ui.port;
            let ok = [
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ];
            (!ok.iter().any(|h| h == host)).then(|| (403, format!("unexpected Host {host:?}")))
        }
    }
}

/// Answers one request.
pub fn handle(ui: &Ui, mut req: tiny_http::Request) {
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    // A GET has no body worth reading; drain what a client sent anyway.
    let _ = std::io::copy(&mut req.as_reader().take(1 << 16), &mut std::io::sink());
    let t = std::time::Instant::now();
    tracing::debug!("{path} ←");
    let reply = match refuse(ui, &req, query) {
        Some((code, msg)) => Reply::Error(code, msg),
        // A panic while answering one request must not take this worker thread (and, after
        // a few, the whole server) with it: it becomes a 500 naming what went wrong.
        None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| route(ui, path, query)))
            .unwrap_or_else(|p| {
                let what = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                tracing::error!("{path}: {what}");
                Reply::Error(500, format!("internal error answering {path}: {what}"))
            }),
    };
    let set_cookie = ui.token.as_ref().and_then(|tok| {
        presented(&req, query)
            .filter(|(t, from_query)| *from_query && same(t, tok))
            .map(|_| format!("{COOKIE}={tok}; Path=/; HttpOnly; SameSite=Strict"))
    });
    let (code, ctype, body) = match reply {
        Reply::Page => (200, "text/html; charset=utf-8", PAGE.as_bytes().to_vec()),
        Reply::Json(j) => (
            200,
            "application/json",
            serde_json::to_vec(&j).unwrap_or_default(),
        ),
        Reply::Png(b) => (200, "image/png", b),
        Reply::Error(code, msg) => (
            code,
            "application/json",
            serde_json::to_vec(&serde_json::json!({"error": msg})).unwrap_or_default(),
        ),
    };
    tracing::debug!(
        "{} {path} → {code} ({} bytes, {:.1} ms)",
        req.method(),
        body.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut resp = tiny_http::Response::from_data(body)
        .with_status_code(code)
        .with_header(header("Content-Type", ctype))
        .with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"))
        .with_header(header("Referrer-Policy", "no-referrer"))
        .with_header(header(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'",
        ));
    if let Some(c) = set_cookie {
        resp = resp.with_header(header("Set-Cookie", &c));
    }
    if let Err(e) = req.respond(resp) {
        tracing::debug!("{path}: reply not sent: {e}");
    }
}
