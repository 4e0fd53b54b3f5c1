//! `/login`, `/me` and `/logout`: a cookie session, to exercise a client's
//! cookie jar and per-user state.
//!
//! Sessions are stateless: the cookie carries the user (hex-encoded, so any
//! name is a valid cookie value) after a per-server sequence number, so two
//! logins of one user get different sessions and the server keeps no table
//! that a long run could grow.

use std::sync::atomic::{AtomicU64, Ordering};

use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Deserialize;

use crate::body::ResponseBody;
use crate::reply;

/// Longer user names are refused, to keep cookies well under the header
/// limits of clients.
const USER_MAX: usize = 256;

const COOKIE_NAME: &str = "session";

/// Hands out sessions.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    next: AtomicU64,
}

impl Sessions {
    /// `POST /login` with a JSON or form body holding `user`.
    pub(crate) fn login(&self, headers: &HeaderMap, body: &Bytes) -> Response<ResponseBody> {
        let user = match login_user(headers, body) {
            Ok(user) => user,
            Err(message) => return reply::error(StatusCode::BAD_REQUEST, message),
        };
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let session = format!("{seq:x}.{}", hex_encode(user.as_bytes()));
        let cookie = format!("{COOKIE_NAME}={session}; Path=/; HttpOnly");
        let mut response = reply::json(
            StatusCode::OK,
            &serde_json::json!({ "user": user, "token": format!("tok-{user}") }),
        );
        match HeaderValue::try_from(cookie) {
            Ok(cookie) => {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
                response
            }
            // Hex digits and dots are always a valid header value.
            Err(_) => reply::empty(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

/// `GET /me`: who the session cookie says the client is.
pub(crate) fn me(headers: &HeaderMap) -> Response<ResponseBody> {
    match session_cookie(headers) {
        Some(session) => reply::json(
            StatusCode::OK,
            &serde_json::json!({ "session": session, "user": session_user(session) }),
        ),
        None => reply::error(StatusCode::UNAUTHORIZED, "no session cookie\n"),
    }
}

/// `POST /logout`: tells the client to drop its session cookie.
pub(crate) fn logout() -> Response<ResponseBody> {
    let mut response = reply::json(StatusCode::OK, &serde_json::json!({ "logged_out": true }));
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("session=; Path=/; HttpOnly; Max-Age=0"),
    );
    response
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
}

/// The `user` field of a login body, JSON or form-encoded. Without a telling
/// `Content-Type`, a body that looks like a JSON object is read as JSON.
fn login_user(headers: &HeaderMap, body: &Bytes) -> Result<String, &'static str> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let is_json = if content_type.starts_with("application/json") {
        true
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        false
    } else {
        body.trim_ascii_start().starts_with(b"{")
    };
    let user = if is_json {
        serde_json::from_slice::<LoginForm>(body)
            .map_err(|_| "login body must be a JSON object with a string \"user\"\n")?
            .user
    } else {
        form_field(body, "user").ok_or("login form must have a \"user\" field\n")?
    };
    if user.is_empty() {
        return Err("user must not be empty\n");
    }
    if user.len() > USER_MAX {
        return Err("user is too long\n");
    }
    Ok(user)
}

/// The first `name` field of an `application/x-www-form-urlencoded` body,
/// decoded; `None` if absent or not valid UTF-8 once decoded.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    body.split(|&b| b == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &[][..]),
        };
        (form_decode(key)? == name).then(|| form_decode(value))?
    })
}

/// Form decoding: `+` is a space, `%XX` a byte. A `%` not followed by two hex
/// digits is kept as is, as browsers do.
fn form_decode(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex_value(raw.get(i + 1)), hex_value(raw.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_value(byte: Option<&u8>) -> Option<u8> {
    match byte? {
        b @ b'0'..=b'9' => Some(b - b'0'),
        b @ b'a'..=b'f' => Some(b - b'a' + 10),
        b @ b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The value of the first non-empty `session` cookie the request carries.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| name.trim() == COOKIE_NAME)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .find(|value| !value.is_empty())
}

/// The user a session of ours names; `None` for a cookie we did not make.
fn session_user(session: &str) -> Option<String> {
    let (_, hex) = session.split_once('.')?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = hex
        .as_bytes()
        .chunks(2)
        .map(|pair| Some(hex_value(pair.first())? << 4 | hex_value(pair.get(1))?))
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    header::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn login_user_from_json_and_forms() {
        let json = headers(&[("content-type", "application/json")]);
        let form = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        let none = HeaderMap::new();
        let table: &[(&HeaderMap, &str, Result<&str, ()>)] = &[
            (&json, r#"{"user":"alice","password":"x"}"#, Ok("alice")),
            (&json, r#"{"user":7}"#, Err(())),
            (&json, r#"{"name":"alice"}"#, Err(())),
            (&json, "user=alice", Err(())),
            (&form, "user=alice&password=x", Ok("alice")),
            (&form, "password=x&user=b%C3%B6b+the+2nd", Ok("böb the 2nd")),
            (&form, "user=100%", Ok("100%")),
            (&form, "user=%zz", Ok("%zz")),
            (&form, "user=%FF", Err(())),
            (&form, "user=", Err(())),
            (&form, "name=alice", Err(())),
            (&none, r#" {"user":"carol"}"#, Ok("carol")),
            (&none, "user=dave", Ok("dave")),
        ];
        for (headers, body, want) in table {
            let got = login_user(headers, &Bytes::from(body.to_string()));
            assert_eq!(got.as_deref().map_err(|_| ()), *want, "{body}");
        }
        let long = format!("user={}", "x".repeat(USER_MAX + 1));
        assert!(login_user(&form, &Bytes::from(long)).is_err());
    }

    #[test]
    fn login_sets_a_cookie_that_me_reads_back() {
        let sessions = Sessions::default();
        let body = Bytes::from_static(b"user=al%3Bice");
        let response = sessions.login(&HeaderMap::new(), &body);
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.ends_with("; Path=/; HttpOnly"), "{cookie}");
        let value = cookie.split(';').next().unwrap();
        let request = [(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=1; {value}")).unwrap(),
        )];
        let session = session_cookie(&request.into_iter().collect())
            .unwrap()
            .to_owned();
        assert_eq!(session_user(&session).as_deref(), Some("al;ice"));

        let again = sessions.login(&HeaderMap::new(), &body);
        assert_ne!(
            again.headers()[header::SET_COOKIE],
            cookie,
            "sessions differ"
        );
    }

    #[test]
    fn me_needs_a_session_cookie() {
        assert_eq!(me(&HeaderMap::new()).status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            me(&headers(&[("cookie", "other=1")])).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            me(&headers(&[("cookie", "session=")])).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            me(&headers(&[("cookie", "session=foreign")])).status(),
            StatusCode::OK
        );
        assert_eq!(session_user("foreign"), None);
        assert_eq!(session_user("0.zz"), None);
    }

    #[test]
    fn logout_expires_the_cookie() {
        let response = logout();
        let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.starts_with("session=;") && cookie.contains("Max-Age=0"));
    }
}
