//! A snapshot of what the server has counted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Requests answered so far, excluding the `/_blast/` control endpoints.
///
/// Paths exclude the query string and are as the client sent them (not
/// percent-decoded). `total` always equals the sum of `by_path`, which equals
/// the sum of `by_method_path` and the sum of `per_second`: all are read
/// under one lock.
///
/// In JSON (`GET /_blast/counts`) `by_method_path` is a list of
/// `{"method", "path", "count"}` objects, since JSON keys cannot be pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// All counted requests.
    pub total: u64,
    /// Requests by path.
    pub by_path: BTreeMap<String, u64>,
    /// Requests by (method, path), the method in upper case as sent.
    #[serde(with = "method_path_list")]
    pub by_method_path: BTreeMap<(String, String), u64>,
    /// Requests by the whole second they arrived in: index 0 is the second
    /// that starts when the first counted request (since start or the last
    /// reset) arrived, index 1 the one after, and so on; seconds without
    /// arrivals hold 0, and the list ends at the last second with one.
    ///
    /// A request is placed by its arrival but, like every count here, only
    /// appears once it is answered: mid-run, the last seconds may still miss
    /// requests in flight (a `/delay`, a [`crate::Stall`]). One held across a
    /// reset lands in second 0.
    #[serde(default)]
    pub per_second: Vec<u64>,
}

impl Counts {
    /// Requests to `path`, any method; 0 if none.
    pub fn path(&self, path: &str) -> u64 {
        self.by_path.get(path).copied().unwrap_or(0)
    }

    /// Requests with `method` to `path`; 0 if none.
    pub fn method_path(&self, method: &str, path: &str) -> u64 {
        self.by_method_path
            .get(&(method.to_owned(), path.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

mod method_path_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Entry<M, P> {
        method: M,
        path: P,
        count: u64,
    }

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<(String, String), u64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter().map(|((method, path), &count)| Entry {
            method,
            path,
            count,
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<(String, String), u64>, D::Error> {
        let entries = Vec::<Entry<String, String>>::deserialize(deserializer)?;
        Ok(entries
            .into_iter()
            .map(|e| ((e.method, e.path), e.count))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Counts {
        Counts {
            total: 3,
            by_path: BTreeMap::from([("/".to_owned(), 1), ("/items".to_owned(), 2)]),
            by_method_path: BTreeMap::from([
                (("GET".to_owned(), "/".to_owned()), 1),
                (("GET".to_owned(), "/items".to_owned()), 1),
                (("POST".to_owned(), "/items".to_owned()), 1),
            ]),
            per_second: vec![2, 0, 1],
        }
    }

    #[test]
    fn json_round_trips_with_a_list_of_method_path_entries() {
        let counts = sample();
        let json = serde_json::to_value(&counts).unwrap();
        assert_eq!(
            json["by_method_path"][2],
            serde_json::json!({"method": "POST", "path": "/items", "count": 1})
        );
        assert_eq!(json["per_second"], serde_json::json!([2, 0, 1]));
        let back: Counts = serde_json::from_value(json).unwrap();
        assert_eq!(back, counts);
    }

    #[test]
    fn json_without_per_second_still_reads() {
        let json = serde_json::json!({"total": 0, "by_path": {}, "by_method_path": []});
        let counts: Counts = serde_json::from_value(json).unwrap();
        assert_eq!(counts, Counts::default());
    }

    #[test]
    fn lookups_default_to_zero() {
        let counts = sample();
        assert_eq!(counts.path("/items"), 2);
        assert_eq!(counts.path("/nowhere"), 0);
        assert_eq!(counts.method_path("POST", "/items"), 1);
        assert_eq!(counts.method_path("DELETE", "/items"), 0);
    }
}
