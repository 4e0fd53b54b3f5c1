//! The live request counter behind [`crate::Counts`].

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use hyper::Method;

use crate::Counts;

/// Counts requests by path and method.
///
/// One uncontended lock and one hash lookup per request: the server runs one
/// worker thread by default, and the total lives under the same lock so that a
/// snapshot taken mid-run is consistent (`total` = sum of `by_path`). A path
/// is allocated only the first time it is seen.
#[derive(Debug, Default)]
pub(crate) struct RequestCounter {
    paths: Mutex<HashMap<String, PathTally>>,
}

#[derive(Debug, Default)]
struct PathTally {
    /// A handful of methods per path at most, so a list beats a map.
    by_method: Vec<(Method, u64)>,
}

impl PathTally {
    fn add(&mut self, method: &Method) {
        match self.by_method.iter_mut().find(|(m, _)| m == method) {
            Some((_, n)) => *n += 1,
            None => self.by_method.push((method.clone(), 1)),
        }
    }
}

impl RequestCounter {
    /// Counts one request.
    pub(crate) fn record(&self, method: &Method, path: &str) {
        let mut paths = self.lock();
        // Look up by `&str` first: `entry` would allocate the key every time.
        if let Some(tally) = paths.get_mut(path) {
            tally.add(method);
            return;
        }
        paths.entry(path.to_owned()).or_default().add(method);
    }

    /// What has been counted so far.
    pub(crate) fn snapshot(&self) -> Counts {
        let paths = self.lock();
        let mut counts = Counts::default();
        for (path, tally) in paths.iter() {
            let mut path_total = 0;
            for (method, n) in &tally.by_method {
                path_total += n;
                counts
                    .by_method_path
                    .insert((method.as_str().to_owned(), path.clone()), *n);
            }
            counts.by_path.insert(path.clone(), path_total);
            counts.total += path_total;
        }
        counts
    }

    /// Forgets everything counted.
    pub(crate) fn reset(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, PathTally>> {
        // The map holds plain numbers, so it is consistent even if a thread
        // panicked while holding the lock.
        self.paths.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_by_path_and_method() {
        let counter = RequestCounter::default();
        counter.record(&Method::GET, "/a");
        counter.record(&Method::GET, "/a");
        counter.record(&Method::POST, "/a");
        counter.record(&Method::GET, "/b");
        let counts = counter.snapshot();
        assert_eq!(counts.total, 4);
        assert_eq!(counts.path("/a"), 3);
        assert_eq!(counts.path("/b"), 1);
        assert_eq!(counts.method_path("GET", "/a"), 2);
        assert_eq!(counts.method_path("POST", "/a"), 1);
        assert_eq!(counts.by_method_path.len(), 3);
    }

    #[test]
    fn reset_forgets_everything() {
        let counter = RequestCounter::default();
        counter.record(&Method::GET, "/a");
        counter.reset();
        assert_eq!(counter.snapshot(), Counts::default());
        counter.record(&Method::GET, "/a");
        assert_eq!(counter.snapshot().total, 1);
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let counter = Arc::new(RequestCounter::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        counter.record(&Method::GET, if i % 2 == 0 { "/even" } else { "/odd" });
                        counter.record(&Method::PUT, &format!("/t{t}"));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let counts = counter.snapshot();
        assert_eq!(counts.total, 8000);
        assert_eq!(counts.path("/even"), 2000);
        assert_eq!(counts.path("/t3"), 1000);
    }
}
