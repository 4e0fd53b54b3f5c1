//! Following redirects: where a 3xx response sends the next request, and
//! with which method, as browsers (and Python's requests, which Locust
//! uses) do.

use std::sync::Arc;

use blast_proto::{FailureKind, Method};

use super::{Origin, Origins, Request, Scheme};

/// Most redirects followed in a row before the request counts as failed.
pub const MAX_REDIRECTS: u32 = 10;

/// Whether `status` is a redirect this client follows.
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Turns `request` into the request a `status` redirect to `location`
/// asks for: the target resolved against the request's URL, the method
/// changed to GET (and the body dropped) for 303, and for 301/302 after a
/// POST. A target on a host new to the run is added to `origins`, to be
/// resolved on first use like any other; one that is not http(s) is a
/// failure.
pub fn follow(
    origins: &Arc<Origins>,
    request: &mut Request,
    status: u16,
    location: &str,
) -> Result<(), FailureKind> {
    let location = location.trim();
    let current = origins
        .ready(request.origin)
        .ok_or(FailureKind::InvalidRequest)?;
    let (origin, path) = if let Some(rest) = location.strip_prefix("//") {
        let scheme = current.scheme;
        absolute(origins, scheme, rest)?
    } else if let Some(rest) = strip_prefix_ignore_case(location, "http://") {
        absolute(origins, Scheme::Http, rest)?
    } else if let Some(rest) = strip_prefix_ignore_case(location, "https://") {
        absolute(origins, Scheme::Https, rest)?
    } else if location.starts_with('/') {
        (request.origin, location.to_string())
    } else if location.contains("://") {
        return Err(FailureKind::RedirectNotHttp);
    } else {
        // A relative reference: against the current path's directory.
        let full = full_path(&current, request);
        let dir_end = full
            .split(['?', '#'])
            .next()
            .and_then(|p| p.rfind('/'))
            .map_or(0, |i| i + 1);
        let base = if dir_end == 0 { "/" } else { &full[..dir_end] };
        (request.origin, format!("{base}{location}"))
    };
    let path = path.split('#').next().unwrap_or("/").to_string();
    let to_get = match status {
        303 => request.method != Method::Head,
        301 | 302 => request.method == Method::Post,
        _ => false,
    };
    if to_get {
        request.method = Method::Get;
        request.body.clear();
        request.headers.retain(|(name, _)| {
            !(name.eq_ignore_ascii_case("content-type")
                || name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding"))
        });
    }
    if origin != request.origin {
        // Credentials and an explicit Host belong to the first origin.
        request.headers.retain(|(name, _)| {
            !(name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("host"))
        });
    }
    request.origin = origin;
    request.path = if path.is_empty() { "/".into() } else { path };
    // The target is a full path on its origin: no base path goes before it.
    request.raw_path = true;
    Ok(())
}

/// The path the request went to on its origin, base path included.
fn full_path(origin: &Origin, request: &Request) -> String {
    if request.raw_path {
        request.path.clone()
    } else {
        format!("{}{}", origin.base_path, request.path)
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `authority/path` under `scheme`, on one of the run's origins (a new
/// one for a new host). An authority that is not a host is a malformed
/// answer.
fn absolute(
    origins: &Arc<Origins>,
    scheme: Scheme,
    rest: &str,
) -> Result<(u16, String), FailureKind> {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let index = origins
        .index_of(scheme, authority)
        .map_err(|_| FailureKind::Malformed)?;
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok((index, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins() -> Arc<Origins> {
        Arc::new(Origins::new(
            vec![
                Origin::resolve("http://127.0.0.1:8080/base").unwrap(),
                Origin::resolve("https://127.0.0.1").unwrap(),
            ],
            false,
        ))
    }

    fn request(method: Method, path: &str) -> Request {
        Request {
            method,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Authorization".into(), "Bearer x".into()),
            ],
            body: b"{}".to_vec(),
            name: "n".into(),
            keep_body: true,
            ..Request::get(path)
        }
    }

    #[test]
    fn targets_resolve_against_the_request() {
        let o = origins();
        let cases = [
            ("/next?a=1#frag", 0, "/next?a=1"),
            ("other", 0, "/base/dir/other"),
            ("http://127.0.0.1:8080/x", 0, "/x"),
            ("HTTPS://127.0.0.1:443", 1, "/"),
            ("//127.0.0.1:8080/y", 0, "/y"),
        ];
        for (location, origin, path) in cases {
            let mut r = request(Method::Get, "/dir/page");
            follow(&o, &mut r, 302, location).unwrap();
            assert_eq!(
                (r.origin, r.path.as_str(), r.raw_path),
                (origin, path, true),
                "{location}"
            );
        }
        // A new host joins the run's origins, once.
        for _ in 0..2 {
            let mut r = request(Method::Get, "/");
            follow(&o, &mut r, 302, "http://Elsewhere.invalid:80/z").unwrap();
            assert_eq!((r.origin, r.path.as_str()), (2, "/z"));
        }
        let mut r = request(Method::Get, "/");
        follow(&o, &mut r, 302, "https://127.0.0.1:8443/").unwrap();
        assert_eq!(r.origin, 3);
        assert_eq!(o.len(), 4);
        let mut r = request(Method::Get, "/");
        assert_eq!(
            follow(&o, &mut r, 302, "ftp://x/"),
            Err(FailureKind::RedirectNotHttp)
        );
        assert_eq!(
            follow(&o, &mut r, 302, "http://a b/"),
            Err(FailureKind::Malformed)
        );
    }

    #[test]
    fn methods_change_as_browsers_change_them() {
        let o = origins();
        for (method, status, after, body_kept) in [
            (Method::Post, 303, Method::Get, false),
            (Method::Post, 302, Method::Get, false),
            (Method::Post, 301, Method::Get, false),
            (Method::Post, 307, Method::Post, true),
            (Method::Put, 308, Method::Put, true),
            (Method::Put, 302, Method::Put, true),
            (Method::Head, 303, Method::Head, true),
        ] {
            let mut r = request(method, "/");
            follow(&o, &mut r, status, "/n").unwrap();
            assert_eq!(r.method, after, "{method} {status}");
            assert_eq!(!r.body.is_empty(), body_kept, "{method} {status}");
            let has_type = r.headers.iter().any(|(n, _)| n == "Content-Type");
            assert_eq!(has_type, body_kept, "{method} {status}");
        }
        let mut r = request(Method::Get, "/");
        follow(&o, &mut r, 302, "https://127.0.0.1/").unwrap();
        assert!(!r.headers.iter().any(|(n, _)| n == "Authorization"));
    }
}
