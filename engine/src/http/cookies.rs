//! A user's cookie jar (RFC 6265, the parts a load test meets): cookies
//! set by responses are sent back on later requests to the same origin
//! whose path matches, until they expire. Each user has its own jar, so
//! users never share a session.
//!
//! Cookies are kept per origin (the run resolves its origins before it
//! starts), host-only: a `Domain` attribute does not widen a cookie to
//! other origins, since requests only ever go to the run's origins.

use std::time::SystemTime;

use super::HeaderBlock;

/// Most cookies one jar keeps; the oldest go first beyond it.
const MAX_COOKIES: usize = 300;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Cookie {
    origin: u16,
    name: String,
    value: String,
    path: String,
    secure: bool,
    expires: Option<SystemTime>,
}

/// One user's cookies.
#[derive(Clone, Debug, Default)]
pub struct CookieJar {
    cookies: Vec<Cookie>,
}

impl CookieJar {
    /// True when the jar holds no cookie (the common case for scenarios
    /// without sessions: nothing to look up per request).
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// Stores the cookies `headers` set, for a response from `origin` to a
    /// request for `request_path`.
    pub fn store(&mut self, origin: u16, request_path: &str, headers: &HeaderBlock) {
        self.store_at(origin, request_path, headers, SystemTime::now());
    }

    fn store_at(
        &mut self,
        origin: u16,
        request_path: &str,
        headers: &HeaderBlock,
        now: SystemTime,
    ) {
        for value in headers.get_all("set-cookie") {
            let Ok(text) = std::str::from_utf8(value) else {
                continue;
            };
            if let Some(cookie) = parse_set_cookie(origin, request_path, text, now) {
                self.cookies.retain(|c| {
                    !(c.origin == origin && c.name == cookie.name && c.path == cookie.path)
                });
                // An expiry in the past deletes the cookie.
                if cookie.expires.is_none_or(|t| t > now) {
                    if self.cookies.len() >= MAX_COOKIES {
                        self.cookies.remove(0);
                    }
                    self.cookies.push(cookie);
                }
            }
        }
    }

    /// Writes the `Cookie` header value for a request to `origin` at `path`
    /// into `out` (cleared first); empty when no cookie applies.
    pub fn header_for(&mut self, origin: u16, secure: bool, path: &str, out: &mut String) {
        self.header_at(origin, secure, path, out, SystemTime::now());
    }

    fn header_at(
        &mut self,
        origin: u16,
        secure: bool,
        path: &str,
        out: &mut String,
        now: SystemTime,
    ) {
        out.clear();
        self.cookies.retain(|c| c.expires.is_none_or(|t| t > now));
        let path = path.split(['?', '#']).next().unwrap_or("/");
        // Longer paths first (RFC 6265 §5.4); the sort is stable, so
        // otherwise in the order they were set.
        let mut matching: Vec<&Cookie> = self
            .cookies
            .iter()
            .filter(|c| c.origin == origin && (secure || !c.secure) && path_matches(&c.path, path))
            .collect();
        matching.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        for cookie in matching {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(&cookie.name);
            out.push('=');
            out.push_str(&cookie.value);
        }
    }

    /// Removes every cookie.
    pub fn clear(&mut self) {
        self.cookies.clear();
    }

    /// Every cookie as (name, value), for scripts, for `origin`.
    pub fn get(&self, origin: u16, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|c| c.origin == origin && c.name == name)
            .map(|c| c.value.as_str())
    }
}

/// RFC 6265 §5.1.4: a cookie path matches a request path when equal, or a
/// prefix ending at a `/`.
fn path_matches(cookie_path: &str, path: &str) -> bool {
    path == cookie_path
        || (path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// RFC 6265 §5.1.4 default-path: the request path up to its last `/`.
fn default_path(request_path: &str) -> String {
    let path = request_path.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return "/".into();
    }
    match path.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => path[..i].to_string(),
    }
}

fn parse_set_cookie(
    origin: u16,
    request_path: &str,
    text: &str,
    now: SystemTime,
) -> Option<Cookie> {
    let mut parts = text.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let value = value.trim().trim_matches('"');
    let mut cookie = Cookie {
        origin,
        name: name.to_string(),
        value: value.to_string(),
        path: default_path(request_path),
        secure: false,
        expires: None,
    };
    let mut max_age = None;
    for attribute in parts {
        let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
        let (key, val) = (key.trim(), val.trim());
        if key.eq_ignore_ascii_case("path") {
            if val.starts_with('/') {
                cookie.path = val.to_string();
            }
        } else if key.eq_ignore_ascii_case("secure") {
            cookie.secure = true;
        } else if key.eq_ignore_ascii_case("max-age") {
            if let Ok(seconds) = val.parse::<i64>() {
                max_age = Some(seconds);
            }
        } else if key.eq_ignore_ascii_case("expires")
            && let Ok(at) = httpdate::parse_http_date(val)
        {
            cookie.expires = Some(at);
        }
    }
    // Max-Age wins over Expires.
    if let Some(seconds) = max_age {
        cookie.expires = Some(if seconds <= 0 {
            SystemTime::UNIX_EPOCH
        } else {
            now + std::time::Duration::from_secs(seconds as u64)
        });
    }
    Some(cookie)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::http::{Limits, ResponseParser};
    use blast_proto::Method;

    fn headers(set_cookies: &[&str]) -> HeaderBlock {
        let mut head = String::from("HTTP/1.1 200 OK\r\n");
        for c in set_cookies {
            head.push_str(&format!("Set-Cookie: {c}\r\n"));
        }
        head.push_str("Content-Length: 0\r\n\r\n");
        let mut parser = ResponseParser::new(Limits::default());
        parser.reset(Method::Get);
        parser.parse_head(head.as_bytes()).unwrap().unwrap();
        parser.take_head().headers
    }

    fn header(
        jar: &mut CookieJar,
        origin: u16,
        secure: bool,
        path: &str,
        now: SystemTime,
    ) -> String {
        let mut out = String::new();
        jar.header_at(origin, secure, path, &mut out, now);
        out
    }

    #[test]
    fn cookies_go_back_to_their_origin_and_path() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut jar = CookieJar::default();
        jar.store_at(
            0,
            "/login",
            &headers(&[
                "session=abc; Path=/; HttpOnly",
                "pref=\"x\"",
                "api=1; Path=/api",
            ]),
            now,
        );
        assert_eq!(
            header(&mut jar, 0, false, "/me?x=1", now),
            "session=abc; pref=x"
        );
        assert_eq!(
            header(&mut jar, 0, false, "/api/items", now),
            "api=1; session=abc; pref=x"
        );
        assert_eq!(
            header(&mut jar, 0, false, "/apix", now),
            "session=abc; pref=x"
        );
        assert_eq!(header(&mut jar, 1, false, "/", now), "");
        assert_eq!(jar.get(0, "session"), Some("abc"));
    }

    #[test]
    fn cookies_are_replaced_expire_and_respect_secure() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut jar = CookieJar::default();
        jar.store_at(
            0,
            "/",
            &headers(&["a=1", "s=1; Secure", "t=1; Max-Age=10"]),
            now,
        );
        assert_eq!(header(&mut jar, 0, false, "/", now), "a=1; t=1");
        assert_eq!(header(&mut jar, 0, true, "/", now), "a=1; s=1; t=1");
        jar.store_at(0, "/", &headers(&["a=2"]), now);
        assert_eq!(header(&mut jar, 0, false, "/", now), "t=1; a=2");
        let later = now + Duration::from_secs(11);
        assert_eq!(header(&mut jar, 0, false, "/", later), "a=2");
        jar.store_at(0, "/", &headers(&["a=gone; Max-Age=0"]), later);
        assert_eq!(header(&mut jar, 0, false, "/", later), "");
        jar.store_at(
            0,
            "/",
            &headers(&["old=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT"]),
            later,
        );
        assert_eq!(header(&mut jar, 0, true, "/", later), "s=1");
        jar.store_at(0, "/", &headers(&["=novalue", "noequals", "ok=1"]), later);
        assert_eq!(header(&mut jar, 0, false, "/", later), "ok=1");
    }

    #[test]
    fn default_path_is_the_request_directory() {
        assert_eq!(default_path("/a/b/c?x"), "/a/b");
        assert_eq!(default_path("/a"), "/");
        assert_eq!(default_path(""), "/");
        assert!(path_matches("/a", "/a/b"));
        assert!(path_matches("/a/", "/a/b"));
        assert!(!path_matches("/a", "/ab"));
    }
}
