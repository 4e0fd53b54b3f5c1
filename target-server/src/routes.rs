//! What each path answers; [`crate::ENDPOINTS`] documents it, and its
//! tests try every entry.
//!
//! A number in a path that does not parse or is over its limit is a 400; a
//! known path with the wrong method a 405; anything else a 404.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};

use crate::body::ResponseBody;
use crate::items;
use crate::reply::{self, Reply};
use crate::service::Shared;
use crate::session;

/// The largest body `/bytes/N` sends.
const BYTES_MAX: usize = 64 << 20;

/// The longest wait `/delay/MS` does, in milliseconds.
const DELAY_MAX_MS: u64 = 60_000;

/// Paths under this prefix are the server's own controls, never counted.
pub(crate) const CONTROL_PREFIX: &str = "/_blast";

const ROOT_PAGE: &str = "<!doctype html>\n<html><head><title>blast target</title></head>\
<body><h1>blast target</h1><p>A target for load tests: try /bytes/1024, /delay/100, \
/status/503, /items, /echo.</p></body></html>\n";

/// Answers one request whose body has been read.
pub(crate) fn route(parts: &Parts, body: &Bytes, shared: &Shared) -> Reply {
    let method = &parts.method;
    let path = parts.uri.path();
    let response = match path {
        "/" => match *method {
            Method::GET | Method::HEAD => {
                reply::with_body(StatusCode::OK, reply::HTML, ResponseBody::full(ROOT_PAGE))
            }
            _ => reply::method_not_allowed("GET, HEAD"),
        },
        "/echo" => echo(parts, body),
        "/login" => match *method {
            Method::POST => shared.sessions.login(&parts.headers, body),
            _ => reply::method_not_allowed("POST"),
        },
        "/me" => match *method {
            Method::GET | Method::HEAD => session::me(&parts.headers),
            _ => reply::method_not_allowed("GET, HEAD"),
        },
        "/logout" => match *method {
            Method::POST => session::logout(),
            _ => reply::method_not_allowed("POST"),
        },
        "/items" => items::respond(method, None, body),
        "/_blast/counts" => match *method {
            Method::GET | Method::HEAD => reply::json(StatusCode::OK, &shared.counter.snapshot()),
            _ => reply::method_not_allowed("GET, HEAD"),
        },
        "/_blast/reset" => match *method {
            Method::POST => {
                shared.counter.reset();
                reply::empty(StatusCode::NO_CONTENT)
            }
            _ => reply::method_not_allowed("POST"),
        },
        _ => {
            if let Some(len) = path.strip_prefix("/bytes/") {
                bytes(method, len, parts.uri.query())
            } else if let Some(ms) = path.strip_prefix("/delay/") {
                return delay(ms);
            } else if let Some(code) = path.strip_prefix("/status/") {
                status(code)
            } else if let Some(id) = path.strip_prefix("/items/") {
                items::respond(method, Some(id), body)
            } else if let Some(hops) = path.strip_prefix("/redirect/") {
                redirect(hops)
            } else {
                reply::not_found()
            }
        }
    };
    Reply::Now(response)
}

/// `/redirect/N`: a 302 to `/redirect/N-1`, and `/redirect/0` to `/`, so
/// a client following redirects makes N + 2 requests in all.
fn redirect(hops: &str) -> Response<ResponseBody> {
    let Ok(hops) = hops.parse::<u32>() else {
        return reply::error(StatusCode::BAD_REQUEST, "redirect count must be a number\n");
    };
    let to = if hops == 0 {
        "/".to_string()
    } else {
        format!("/redirect/{}", hops - 1)
    };
    let mut response = reply::empty(StatusCode::FOUND);
    if let Ok(location) = hyper::header::HeaderValue::from_str(&to) {
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, location);
    }
    response
}

/// `/bytes/N[?chunked=1]`.
fn bytes(method: &Method, len: &str, query: Option<&str>) -> Response<ResponseBody> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return reply::method_not_allowed("GET, HEAD");
    }
    let len = match len.parse::<usize>() {
        Ok(len) if len <= BYTES_MAX => len,
        Ok(_) => return reply::error(StatusCode::BAD_REQUEST, "at most 67108864 bytes\n"),
        Err(_) => return reply::error(StatusCode::BAD_REQUEST, "byte count must be a number\n"),
    };
    let chunked = query
        .unwrap_or("")
        .split('&')
        .any(|pair| matches!(pair, "chunked=1" | "chunked=true"));
    let body = if chunked {
        ResponseBody::generated_chunked(len)
    } else {
        ResponseBody::generated(len)
    };
    reply::with_body(StatusCode::OK, reply::OCTETS, body)
}

/// `/delay/MS`.
fn delay(ms: &str) -> Reply {
    match ms.parse::<u64>() {
        Ok(ms) if ms <= DELAY_MAX_MS => Reply::After(
            Duration::from_millis(ms),
            reply::json(StatusCode::OK, &serde_json::json!({ "delay_ms": ms })),
        ),
        Ok(_) => reply::error(StatusCode::BAD_REQUEST, "at most 60000 ms\n").into(),
        Err(_) => reply::error(StatusCode::BAD_REQUEST, "delay must be a number\n").into(),
    }
}

/// `/status/CODE`. Informational codes are refused: a 1xx is not a final
/// response, and a client would wait for the real one forever.
fn status(code: &str) -> Response<ResponseBody> {
    match code.parse::<u16>().ok().filter(|c| (200..=599).contains(c)) {
        Some(code) => match StatusCode::from_u16(code) {
            Ok(status) => reply::empty(status),
            Err(_) => reply::error(StatusCode::BAD_REQUEST, "status must be 200..=599\n"),
        },
        None => reply::error(StatusCode::BAD_REQUEST, "status must be 200..=599\n"),
    }
}

/// `/echo`: the request as the server saw it, its body included.
fn echo(parts: &Parts, body: &Bytes) -> Response<ResponseBody> {
    // Repeated headers are joined with ", ", as HTTP allows for most.
    let mut headers: BTreeMap<&str, String> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    reply::json(
        StatusCode::OK,
        &serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            // As text, invalid UTF-8 replaced: what a JSON reply can hold.
            "body": String::from_utf8_lossy(body),
            "body_len": body.len(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Request;
    use hyper::body::Body;

    fn parts(method: &str, uri: &str) -> Parts {
        let request = Request::builder().method(method).uri(uri).body(());
        request.expect("test request").into_parts().0
    }

    fn answer(method: &str, uri: &str, body: &str, shared: &Shared) -> Response<ResponseBody> {
        match route(&parts(method, uri), &Bytes::from(body.to_owned()), shared) {
            Reply::Now(response) => response,
            Reply::After(_, response) => response,
        }
    }

    #[test]
    fn statuses() {
        let shared = Shared::default();
        let table = [
            ("GET", "/", "", 200),
            ("HEAD", "/", "", 200),
            ("POST", "/", "", 405),
            ("GET", "/bytes/0", "", 200),
            ("GET", "/bytes/1024?chunked=1", "", 200),
            ("GET", "/bytes/67108864", "", 200),
            ("GET", "/bytes/67108865", "", 400),
            ("GET", "/bytes/99999999999999999999999", "", 400),
            ("GET", "/bytes/abc", "", 400),
            ("GET", "/bytes/", "", 400),
            ("GET", "/bytes/-1", "", 400),
            ("POST", "/bytes/1", "", 405),
            ("GET", "/bytes", "", 404),
            ("GET", "/delay/0", "", 200),
            ("POST", "/delay/60000", "", 200),
            ("GET", "/delay/60001", "", 400),
            ("GET", "/delay/1.5", "", 400),
            ("GET", "/status/200", "", 200),
            ("DELETE", "/status/503", "", 503),
            ("GET", "/status/599", "", 599),
            ("GET", "/status/204", "", 204),
            ("GET", "/status/101", "", 400),
            ("GET", "/status/100", "", 400),
            ("GET", "/status/600", "", 400),
            ("GET", "/status/70000", "", 400),
            ("GET", "/status/x", "", 400),
            ("POST", "/login", "user=a", 200),
            ("POST", "/login", "", 400),
            ("GET", "/login", "", 405),
            ("GET", "/me", "", 401),
            ("POST", "/logout", "", 200),
            ("GET", "/items", "", 200),
            ("GET", "/items/5", "", 200),
            ("PUT", "/echo", "xyz", 200),
            ("GET", "/_blast/counts", "", 200),
            ("POST", "/_blast/counts", "", 405),
            ("GET", "/_blast/reset", "", 405),
            ("GET", "/_blast/other", "", 404),
            ("GET", "/nowhere", "", 404),
        ];
        for (method, uri, body, want) in table {
            let got = answer(method, uri, body, &shared).status();
            assert_eq!(got.as_u16(), want, "{method} {uri}");
        }
    }

    #[test]
    fn bytes_sizes_and_framing() {
        let shared = Shared::default();
        let plain = answer("GET", "/bytes/1000", "", &shared);
        assert_eq!(plain.body().size_hint().exact(), Some(1000));
        let chunked = answer("GET", "/bytes/1000?x=y&chunked=1", "", &shared);
        assert_eq!(chunked.body().size_hint().exact(), None);
        let not_chunked = answer("GET", "/bytes/1000?chunked=0", "", &shared);
        assert_eq!(not_chunked.body().size_hint().exact(), Some(1000));
    }

    #[test]
    fn delay_waits_only_when_asked() {
        let shared = Shared::default();
        let reply = route(&parts("GET", "/delay/250"), &Bytes::new(), &shared);
        assert!(matches!(reply, Reply::After(d, _) if d == Duration::from_millis(250)));
        let reply = route(&parts("GET", "/delay/x"), &Bytes::new(), &shared);
        assert!(matches!(reply, Reply::Now(_)));
    }

    #[test]
    fn reset_zeroes_the_counter() {
        let shared = Shared::default();
        shared
            .counter
            .record(&Method::GET, "/", std::time::Instant::now());
        answer("POST", "/_blast/reset", "", &shared);
        assert_eq!(shared.counter.snapshot().total, 0);
    }
}
