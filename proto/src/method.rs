//! The request type column of every statistics table.

use serde::{Deserialize, Serialize};

/// What kind of request an entry counts: an HTTP method, or a custom
/// timing a script records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `HEAD`
    Head,
    /// `PATCH`
    Patch,
    /// `OPTIONS`
    Options,
    /// Not HTTP: a custom timing a script records with `metric(name, ms)`,
    /// reported as its own entry type.
    Metric,
}

impl Method {
    /// The method as it is written on the wire and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Metric => "METRIC",
        }
    }

    /// Parses an HTTP method name, case-insensitively (never `Metric`).
    pub fn parse(s: &str) -> Option<Method> {
        const ALL: [Method; 7] = [
            Method::Get,
            Method::Post,
            Method::Put,
            Method::Delete,
            Method::Head,
            Method::Patch,
            Method::Options,
        ];
        ALL.into_iter().find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_every_method() {
        for m in ["GET", "post", "Put", "DELETE", "head", "PATCH", "options"] {
            let parsed = Method::parse(m).unwrap();
            assert!(parsed.as_str().eq_ignore_ascii_case(m));
        }
        assert_eq!(Method::parse("FETCH"), None);
        assert_eq!(Method::parse("METRIC"), None);
    }
}
