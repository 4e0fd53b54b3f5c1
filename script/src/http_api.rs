//! The `http` module scripts call (`http::get(url, #{ ... })`) and the
//! response type they get back.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;

use blast_engine::http::{Origins, Request, Response, Scheme};
use blast_engine::{Resume, Step};
use blast_proto::Method;
use rhai::{Dynamic, EvalAltResult, ImmutableString, Map, Module, NativeCallContext, Position};

use crate::bridge;
use crate::user::with_ctx;

/// What the http functions of one shard need to know.
pub(crate) struct HttpContext {
    /// The node's origins; `None` where nothing is sent (the check on the
    /// main thread).
    pub(crate) origins: Option<Arc<Origins>>,
    /// `(scheme, authority, index)` of the origins this shard's scripts
    /// named by absolute URL: found again without a lock.
    pub(crate) named: RefCell<Vec<(Scheme, String, u16)>>,
    /// The scenario defines `on_request(req)`: requests are kept for it.
    pub(crate) on_request: std::cell::Cell<bool>,
    /// Positions of `http::` calls whose result the script discards: their
    /// bodies are counted and dropped, never kept.
    pub(crate) discarded: RefCell<HashSet<Position>>,
}

/// A response as a script sees it.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    inner: Rc<Response>,
    /// Its number among the user's requests, to tell whether it is still
    /// the latest (and so can be reclassified).
    seq: u64,
    /// Whether it counts as a success (after any reclassification).
    ok: bool,
}

fn err(message: impl Into<String>, pos: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        pos,
    ))
}

/// Request options a map given to an `http::` function may have.
pub(crate) const REQUEST_OPTIONS: &[&str] = &[
    "headers",
    "body",
    "json",
    "form",
    "query",
    "name",
    "timeout",
    "expect",
    "redirects",
];

/// Properties a response has (`r.status`).
pub(crate) const RESPONSE_PROPERTIES: &[&str] = &[
    "status",
    "ok",
    "error",
    "body",
    "body_len",
    "elapsed_ms",
    "headers",
    "data",
];

/// Methods a response has (`r.json()`).
pub(crate) const RESPONSE_METHODS: &[&str] = &["fail", "succeed", "header", "json", "to_string"];

/// `unknown request option "x" (did you mean y?)` or the list of known ones.
pub(crate) fn unknown_option(key: &str) -> String {
    match crate::scenario::did_you_mean(key, REQUEST_OPTIONS.iter().copied()) {
        Some(known) => format!("unknown request option {key:?} (did you mean {known}?)"),
        None => format!(
            "unknown request option {key:?} (known: {})",
            REQUEST_OPTIONS.join(", ")
        ),
    }
}

/// Splits a script's URL into (origin index, path and query).
fn resolve_target(
    ctx: &HttpContext,
    url: &str,
    pos: Position,
) -> Result<(u16, String), Box<EvalAltResult>> {
    if url.starts_with('/') {
        return Ok((with_ctx(|c| c.origin), url.to_string()));
    }
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return Err(err(
            format!("URL {url:?} must be a path starting with '/' or an absolute http(s) URL"),
            pos,
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let default_port = match scheme {
        Scheme::Http => ":80",
        Scheme::Https => ":443",
    };
    let authority = authority.strip_suffix(default_port).unwrap_or(authority);
    let named = ctx
        .named
        .borrow()
        .iter()
        .find(|(s, a, _)| *s == scheme && a.eq_ignore_ascii_case(authority))
        .map(|&(.., index)| index);
    if let Some(index) = named {
        return Ok((index, path.to_string()));
    }
    let Some(origins) = &ctx.origins else {
        // Nothing is sent here: the request fails as outside a task.
        return Ok((0, path.to_string()));
    };
    // A host new to the run is looked up off the shard thread; the request
    // waits for it in the engine.
    let index = origins
        .index_of(scheme, authority)
        .map_err(|e| err(e.to_string(), pos))?;
    ctx.named
        .borrow_mut()
        .push((scheme, authority.to_string(), index));
    Ok((index, path.to_string()))
}

/// The URL a script's request went to, for `on_request`: a path joined
/// to the user's origin.
fn request_url(ctx: &HttpContext, url: &str) -> String {
    if !url.starts_with('/') {
        return url.to_string();
    }
    let origin = with_ctx(|c| c.origin);
    match ctx.origins.as_ref().and_then(|o| o.ready(origin)) {
        Some(origin) => format!("{}{url}", origin.url()),
        None => url.to_string(),
    }
}

fn string_of(value: &Dynamic, what: &str, pos: Position) -> Result<String, Box<EvalAltResult>> {
    if value.is_string() {
        return Ok(value.clone().into_string().unwrap_or_default());
    }
    if value.is_int() || value.is_float() || value.is_bool() {
        return Ok(value.to_string());
    }
    Err(err(
        format!("{what} must be a string, not {}", value.type_name()),
        pos,
    ))
}

/// Appends `query` (a map) to `path`, percent-encoded.
fn append_query(path: &mut String, query: &Map, pos: Position) -> Result<(), Box<EvalAltResult>> {
    let mut first = !path.contains('?');
    for (key, value) in query {
        let value = string_of(value, &format!("query value {key:?}"), pos)?;
        path.push(if first { '?' } else { '&' });
        first = false;
        percent_encode(path, key);
        path.push('=');
        percent_encode(path, &value);
    }
    Ok(())
}

fn percent_encode(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Builds a request from a script's method, URL and options map.
fn build_request(
    ctx: &HttpContext,
    method: Method,
    url: &str,
    options: Option<Map>,
    pos: Position,
) -> Result<Request, Box<EvalAltResult>> {
    let (origin, mut path) = resolve_target(ctx, url, pos)?;
    let mut request = Request {
        method,
        origin,
        keep_body: !ctx.discarded.borrow().contains(&pos),
        ..Request::get("")
    };
    let mut name = None;
    for (key, value) in options.unwrap_or_default() {
        match key.as_str() {
            "headers" => {
                let headers = value
                    .try_cast::<Map>()
                    .ok_or_else(|| err("headers must be a map", pos))?;
                for (k, v) in headers {
                    let v = string_of(&v, &format!("header {k:?}"), pos)?;
                    request.headers.push((k.to_string(), v));
                }
            }
            "body" => {
                request.body = if value.is_blob() {
                    value.cast::<rhai::Blob>()
                } else {
                    string_of(&value, "body", pos)?.into_bytes()
                };
            }
            "json" => {
                let json: serde_json::Value = rhai::serde::from_dynamic(&value)
                    .map_err(|e| err(format!("json option cannot be encoded: {e}"), pos))?;
                request.body = serde_json::to_vec(&json)
                    .map_err(|e| err(format!("json option cannot be encoded: {e}"), pos))?;
                if !request
                    .headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                {
                    request
                        .headers
                        .push(("Content-Type".into(), "application/json".into()));
                }
            }
            "form" => {
                let form = value
                    .try_cast::<Map>()
                    .ok_or_else(|| err("form must be a map", pos))?;
                let mut body = String::new();
                for (key, value) in &form {
                    let value = string_of(value, &format!("form value {key:?}"), pos)?;
                    if !body.is_empty() {
                        body.push('&');
                    }
                    percent_encode(&mut body, key);
                    body.push('=');
                    percent_encode(&mut body, &value);
                }
                request.body = body.into_bytes();
                if !request
                    .headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                {
                    request.headers.push((
                        "Content-Type".into(),
                        "application/x-www-form-urlencoded".into(),
                    ));
                }
            }
            "expect" => {
                let codes: Vec<Dynamic> = if value.is_array() {
                    value.cast::<rhai::Array>()
                } else {
                    vec![value]
                };
                for code in codes {
                    match code.as_int() {
                        Ok(c) if (100..=999).contains(&c) => request.expect.push(c as u16),
                        _ => {
                            return Err(err(
                                "expect must be a status code or an array of status codes",
                                pos,
                            ));
                        }
                    }
                }
            }
            "redirects" => {
                request.follow_redirects = value
                    .as_bool()
                    .map_err(|_| err("redirects must be true or false", pos))?;
            }
            "query" => {
                let query = value
                    .try_cast::<Map>()
                    .ok_or_else(|| err("query must be a map", pos))?;
                append_query(&mut path, &query, pos)?;
            }
            "name" => name = Some(string_of(&value, "name", pos)?),
            "timeout" => {
                let seconds = value
                    .as_float()
                    .or_else(|_| value.as_int().map(|i| i as f64))
                    .map_err(|_| err("timeout must be a number of seconds", pos))?;
                if !(seconds > 0.0 && seconds.is_finite()) {
                    return Err(err("timeout must be a positive number of seconds", pos));
                }
                request.timeout = Some(crate::language::duration_of(seconds, "timeout", pos)?);
            }
            other => return Err(err(unknown_option(other), pos)),
        }
    }
    request.name = name.unwrap_or_else(|| path.clone());
    request.path = path;
    Ok(request)
}

/// Makes `request` a JSON API call (`http::rest`): it accepts JSON, says
/// its body is JSON unless told otherwise, and keeps the response's body
/// whatever the script does with it, since it is parsed.
fn as_rest(request: &mut Request) {
    let has = |request: &Request, name: &str| {
        request
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if !has(request, "accept") {
        request
            .headers
            .push(("Accept".into(), "application/json".into()));
    }
    if !request.body.is_empty() && !has(request, "content-type") {
        request
            .headers
            .push(("Content-Type".into(), "application/json".into()));
    }
    request.keep_body = true;
}

/// Why a `http::rest` response fails: a body that is not JSON (an empty one
/// is fine, as for a 204).
fn not_json(response: &Response) -> Option<String> {
    if response.failure.is_some() || response.body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(&response.body)
        .err()
        .map(|e| format!("response is not JSON: {e}"))
}

/// Sends a request through the engine and waits for its response.
fn send(
    ctx: &HttpContext,
    call: &NativeCallContext,
    method: Method,
    url: &str,
    options: Option<Map>,
    rest: bool,
) -> Result<HttpResponse, Box<EvalAltResult>> {
    let pos = call.call_position();
    let mut request = build_request(ctx, method, url, options, pos)?;
    if rest {
        as_rest(&mut request);
    }
    let expect = request.expect.clone();
    // The previous response's result is final once this request goes. A
    // scenario without `on_request` pays this one test.
    let hooked = ctx.on_request.get().then(|| {
        crate::request_hook::run_from(call);
        (request.name.clone(), request_url(ctx, url))
    });
    with_ctx(|c| c.pending_open = false);
    match bridge::suspend(Step::Request(Box::new(request))) {
        Some(Resume::Response(response)) => {
            let seq = with_ctx(|c| {
                c.requests += 1;
                c.pending_open = true;
                c.requests
            });
            let accepted = if expect.is_empty() {
                response.status < 400
            } else {
                expect.contains(&response.status)
            };
            if let Some((name, url)) = hooked {
                crate::request_hook::finished(|| crate::request_hook::RequestInfo {
                    method: method.as_str(),
                    name,
                    url,
                    status: response.status,
                    latency_ms: response.elapsed.as_secs_f64() * 1000.0,
                    size: response.body_len,
                    ok: response.failure.is_none() && accepted,
                    error: match response.failure {
                        Some(kind) => kind.to_string(),
                        None if !accepted => format!("HTTP {}", response.status),
                        None => String::new(),
                    },
                });
            }
            let mut response = HttpResponse {
                ok: response.failure.is_none() && accepted,
                inner: Rc::new(*response),
                seq,
            };
            // A failure of its own (HTTP 401, a refused connection) says more
            // than that its body is not JSON.
            if rest
                && response.ok
                && let Some(reason) = not_json(&response.inner)
            {
                reclassify(call, &mut response, Some(reason))?;
            }
            Ok(response)
        }
        Some(_) => Err(Box::new(EvalAltResult::ErrorTerminated(Dynamic::UNIT, pos))),
        None => Err(err(
            format!(
                "http requests can only be made inside a task or hook, not {}",
                bridge::outside_place()
            ),
            pos,
        )),
    }
}

/// `r.fail(reason)` / `r.succeed()`: changes how the latest response counts,
/// before the engine records it.
fn reclassify(
    call: &NativeCallContext,
    r: &mut HttpResponse,
    failure: Option<String>,
) -> Result<(), Box<EvalAltResult>> {
    let pos = call.call_position();
    let latest = with_ctx(|c| c.pending_open && c.requests == r.seq);
    if !latest {
        let what = if failure.is_some() { "fail" } else { "succeed" };
        return Err(err(
            format!(
                "r.{what}() must come before the user's next request or sleep: this response is already recorded"
            ),
            pos,
        ));
    }
    r.ok = failure.is_none();
    crate::request_hook::reclassified(failure.as_deref());
    match bridge::suspend(Step::Reclassify(failure)) {
        Some(Resume::Stopping) => Err(Box::new(EvalAltResult::ErrorTerminated(Dynamic::UNIT, pos))),
        _ => Ok(()),
    }
}

/// Builds the `http` module for one shard.
pub(crate) fn http_module(ctx: Rc<HttpContext>) -> Module {
    let mut module = Module::new();
    let methods = [
        ("get", Method::Get),
        ("post", Method::Post),
        ("put", Method::Put),
        ("delete", Method::Delete),
        ("head", Method::Head),
        ("patch", Method::Patch),
        ("options", Method::Options),
    ];
    for (fn_name, method) in methods {
        let c = ctx.clone();
        module.set_native_fn(fn_name, move |call: NativeCallContext, url: &str| {
            send(&c, &call, method, url, None, false)
        });
        let c = ctx.clone();
        module.set_native_fn(
            fn_name,
            move |call: NativeCallContext, url: &str, options: Map| {
                send(&c, &call, method, url, Some(options), false)
            },
        );
    }
    let c = ctx.clone();
    module.set_native_fn(
        "request",
        move |call: NativeCallContext, method: &str, url: &str, options: Map| {
            let m = Method::parse(method).ok_or_else(|| {
                err(
                    format!("unknown HTTP method {method:?}"),
                    call.call_position(),
                )
            })?;
            send(&c, &call, m, url, Some(options), false)
        },
    );
    let rest = |call: &NativeCallContext, c: &HttpContext, method: &str, url: &str, options| {
        let m = Method::parse(method).ok_or_else(|| {
            err(
                format!("unknown HTTP method {method:?}"),
                call.call_position(),
            )
        })?;
        send(c, call, m, url, options, true)
    };
    let c = ctx.clone();
    module.set_native_fn(
        "rest",
        move |call: NativeCallContext, method: &str, url: &str| rest(&call, &c, method, url, None),
    );
    module.set_native_fn(
        "rest",
        move |call: NativeCallContext, method: &str, url: &str, options: Map| {
            rest(&call, &ctx, method, url, Some(options))
        },
    );
    module
}

/// Registers the response type and its getters on `engine`.
pub(crate) fn register_response(engine: &mut rhai::Engine) {
    engine
        .register_type_with_name::<HttpResponse>("Response")
        .register_get("status", |r: &mut HttpResponse| i64::from(r.inner.status))
        .register_get("ok", |r: &mut HttpResponse| r.ok)
        .register_fn(
            "fail",
            |call: NativeCallContext, r: &mut HttpResponse, reason: &str| {
                reclassify(&call, r, Some(reason.to_string()))
            },
        )
        .register_fn(
            "succeed",
            |call: NativeCallContext, r: &mut HttpResponse| reclassify(&call, r, None),
        )
        .register_get("error", |r: &mut HttpResponse| {
            r.inner.failure.map(|f| f.to_string()).unwrap_or_default()
        })
        .register_get("body", |r: &mut HttpResponse| {
            ImmutableString::from(String::from_utf8_lossy(&r.inner.body).into_owned())
        })
        .register_get("body_len", |r: &mut HttpResponse| r.inner.body_len as i64)
        .register_get("elapsed_ms", |r: &mut HttpResponse| {
            r.inner.elapsed.as_secs_f64() * 1000.0
        })
        .register_get("headers", |r: &mut HttpResponse| {
            let mut map = Map::new();
            for (name, value) in r.inner.head.headers.iter() {
                let value = Dynamic::from(String::from_utf8_lossy(value).into_owned());
                map.insert(name.to_ascii_lowercase().into(), value);
            }
            map
        })
        .register_fn("header", |r: &mut HttpResponse, name: &str| -> Dynamic {
            match r.inner.head.headers.get(name) {
                Some(v) => Dynamic::from(String::from_utf8_lossy(v).into_owned()),
                None => Dynamic::UNIT,
            }
        })
        .register_fn(
            "json",
            |call: NativeCallContext,
             r: &mut HttpResponse|
             -> Result<Dynamic, Box<EvalAltResult>> {
                let value: serde_json::Value =
                    serde_json::from_slice(&r.inner.body).map_err(|e| {
                        err(
                            format!("response body is not JSON: {e}"),
                            call.call_position(),
                        )
                    })?;
                rhai::serde::to_dynamic(value)
            },
        )
        .register_get("data", |r: &mut HttpResponse| -> Dynamic {
            serde_json::from_slice::<serde_json::Value>(&r.inner.body)
                .ok()
                .and_then(|v| rhai::serde::to_dynamic(v).ok())
                .unwrap_or(Dynamic::UNIT)
        })
        .register_fn("to_string", |r: &mut HttpResponse| {
            format!("<Response {} ({} bytes)>", r.inner.status, r.inner.body_len)
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> HttpContext {
        let https = blast_engine::http::Origin {
            scheme: Scheme::Https,
            host: "example.test".into(),
            port: 443,
            addr: "127.0.0.1:443".parse().unwrap(),
            host_header: "example.test".into(),
            base_path: String::new(),
        };
        let origins = vec![
            blast_engine::http::Origin::resolve("http://127.0.0.1:8080").unwrap(),
            https,
        ];
        HttpContext {
            origins: Some(Arc::new(Origins::new(origins, false))),
            named: RefCell::default(),
            on_request: Default::default(),
            discarded: RefCell::default(),
        }
    }

    #[test]
    fn targets_resolve_to_known_origins_only() {
        let c = ctx();
        let p = Position::NONE;
        assert_eq!(
            resolve_target(&c, "/a?b=1", p).unwrap(),
            (0, "/a?b=1".into())
        );
        assert_eq!(
            resolve_target(&c, "http://127.0.0.1:8080/x", p).unwrap(),
            (0, "/x".into())
        );
        assert_eq!(
            resolve_target(&c, "https://example.test:443", p).unwrap(),
            (1, "/".into())
        );
        // A host new to the run gets the next index, the same each time.
        assert_eq!(
            resolve_target(&c, "http://other.invalid/a", p).unwrap(),
            (2, "/a".into())
        );
        assert_eq!(
            resolve_target(&c, "http://OTHER.invalid:80", p).unwrap(),
            (2, "/".into())
        );
        assert_eq!(
            resolve_target(&c, "https://other.invalid/", p).unwrap(),
            (3, "/".into())
        );
        let e = resolve_target(&c, "http://a b/", p).unwrap_err();
        assert!(e.to_string().contains("invalid URL"), "{e}");
        assert!(resolve_target(&c, "items", p).is_err());
    }

    #[test]
    fn options_build_the_request() {
        let c = ctx();
        let mut options = Map::new();
        let mut headers = Map::new();
        headers.insert("X-A".into(), Dynamic::from("1"));
        options.insert("headers".into(), Dynamic::from_map(headers));
        let mut query = Map::new();
        query.insert("q".into(), Dynamic::from("a b&c"));
        options.insert("query".into(), Dynamic::from_map(query));
        options.insert("name".into(), Dynamic::from("/search"));
        options.insert("timeout".into(), Dynamic::from_float(2.5));
        let r = build_request(&c, Method::Post, "/s", Some(options), Position::NONE).unwrap();
        assert_eq!(r.path, "/s?q=a%20b%26c");
        assert_eq!(r.name, "/search");
        assert_eq!(r.headers, vec![("X-A".to_string(), "1".to_string())]);
        assert_eq!(r.timeout, Some(std::time::Duration::from_millis(2500)));
        let mut bad = Map::new();
        bad.insert("header".into(), Dynamic::UNIT);
        let e = build_request(&c, Method::Get, "/", Some(bad), Position::NONE).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown request option \"header\" (did you mean headers?)"),
            "{e}"
        );
    }

    #[test]
    fn rest_requests_ask_for_json_and_other_bodies_fail() {
        let c = ctx();
        let mut options = Map::new();
        options.insert("json".into(), Dynamic::from_int(1));
        let mut r = build_request(&c, Method::Post, "/", Some(options), Position::NONE).unwrap();
        r.keep_body = false;
        as_rest(&mut r);
        assert_eq!(
            r.headers,
            vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("Accept".into(), "application/json".into()),
            ]
        );
        assert!(r.keep_body, "a rest body is parsed, so kept");
        // A header the script sets wins; no body, no Content-Type.
        let mut options = Map::new();
        let mut headers = Map::new();
        headers.insert("accept".into(), Dynamic::from("application/vnd.x+json"));
        options.insert("headers".into(), Dynamic::from_map(headers));
        let mut r = build_request(&c, Method::Get, "/", Some(options), Position::NONE).unwrap();
        as_rest(&mut r);
        assert_eq!(r.headers.len(), 1);
        let response = |body: &[u8]| Response {
            body: body.to_vec(),
            ..Response::default()
        };
        assert_eq!(not_json(&response(b"{\"a\": [1]}")), None);
        assert_eq!(not_json(&response(b"")), None);
        assert_eq!(not_json(&response(b" \r\n")), None);
        assert_eq!(
            not_json(&response(b"<html>")).as_deref(),
            Some("response is not JSON: expected value at line 1 column 1")
        );
    }

    /// The lists the typo check uses name every property and method a
    /// response has, and nothing else: a new getter left out of them would
    /// be reported as a typo.
    #[test]
    fn the_response_lists_match_what_is_registered() {
        let mut engine = rhai::Engine::new_raw();
        register_response(&mut engine);
        let mut properties = Vec::new();
        let mut methods = Vec::new();
        for signature in engine.gen_fn_signatures(false) {
            let name = signature.split('(').next().unwrap().to_string();
            match name.strip_prefix("get$") {
                Some(property) => properties.push(property.to_string()),
                None => methods.push(name),
            }
        }
        properties.sort();
        methods.sort();
        methods.dedup();
        let mut expected_properties: Vec<&str> = RESPONSE_PROPERTIES.to_vec();
        expected_properties.sort();
        let mut expected_methods: Vec<&str> = RESPONSE_METHODS.to_vec();
        expected_methods.sort();
        assert_eq!(properties, expected_properties);
        assert_eq!(methods, expected_methods);
    }
}
