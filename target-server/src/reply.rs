//! What a route answers, and the response shapes the routes share.

use std::time::Duration;

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::body::ResponseBody;

/// A route's answer: a response now, or one to send after a wait.
///
/// Routes are plain functions of the request; the wait is left to the
/// service so that routes stay synchronous and testable without a runtime.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Send this response.
    Now(Response<ResponseBody>),
    /// Sleep, then send this response.
    After(Duration, Response<ResponseBody>),
}

impl From<Response<ResponseBody>> for Reply {
    fn from(response: Response<ResponseBody>) -> Self {
        Reply::Now(response)
    }
}

pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub(crate) const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
pub(crate) const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
pub(crate) const OCTETS: HeaderValue = HeaderValue::from_static("application/octet-stream");

/// A response with this status, content type and body.
pub(crate) fn with_body(
    status: StatusCode,
    content_type: HeaderValue,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

/// A response with this status and no body.
pub(crate) fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = status;
    response
}

/// A JSON response. Serializing plain data into a `Vec` cannot fail; if it
/// somehow did, the client gets a 500 rather than the server a panic.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response<ResponseBody> {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_body(status, JSON, ResponseBody::full(bytes)),
        Err(_) => empty(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// A short plain-text error, saying what was wrong with the request.
pub(crate) fn error(status: StatusCode, message: &'static str) -> Response<ResponseBody> {
    with_body(status, TEXT, ResponseBody::full(message))
}

/// 405, listing the methods the path does take.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<ResponseBody> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// 404.
pub(crate) fn not_found() -> Response<ResponseBody> {
    error(StatusCode::NOT_FOUND, "not found\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_sets_the_content_type() {
        let response = json(StatusCode::CREATED, &serde_json::json!({"a": 1}));
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn method_not_allowed_lists_the_methods() {
        let response = method_not_allowed("GET, HEAD");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
    }
}
