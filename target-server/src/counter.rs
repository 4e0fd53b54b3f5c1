//! The live request counter behind [`crate::Counts`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hyper::Method;

use crate::Counts;

/// Counts requests by path and method, and by second of arrival.
///
/// One uncontended lock and one hash lookup per request: the server runs one
/// worker thread by default, and the total lives under the same lock so that a
/// snapshot taken mid-run is consistent (`total` = sum of `by_path` = sum of
/// `per_second`). A path is allocated only the first time it is seen.
///
/// Requests are counted when answered but placed in seconds by arrival, so
/// the start of second 0 is fixed when the first one arrives
/// ([`RequestCounter::arrive`]): fixing it when the first one is answered
/// would let a slow first request shift every second's boundaries.
#[derive(Debug)]
pub(crate) struct RequestCounter {
    tally: Mutex<Tally>,
    /// What `origin` counts from.
    epoch: Instant,
    /// When second 0 starts, as nanoseconds after `epoch` plus one; 0 while
    /// nothing has arrived. An atomic, so that arriving costs no lock.
    origin: AtomicU64,
}

#[derive(Debug, Default)]
struct Tally {
    paths: HashMap<String, PathTally>,
    per_second: Vec<u64>,
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

impl Default for RequestCounter {
    fn default() -> Self {
        RequestCounter {
            tally: Mutex::default(),
            epoch: Instant::now(),
            origin: AtomicU64::new(0),
        }
    }
}

impl RequestCounter {
    /// Notes that a request to be counted arrived `at`: the first one fixes
    /// when second 0 starts.
    pub(crate) fn arrive(&self, at: Instant) {
        if self.origin.load(Ordering::Relaxed) == 0 {
            // Losing the race means another request arrived first: fine.
            let _ = self.origin.compare_exchange(
                0,
                self.origin_mark(at),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Counts one request, which arrived at `arrived`.
    pub(crate) fn record(&self, method: &Method, path: &str, arrived: Instant) {
        let mut tally = self.lock();
        tally.add_arrival(self.second_of(arrived));
        // Look up by `&str` first: `entry` would allocate the key every time.
        if let Some(path_tally) = tally.paths.get_mut(path) {
            path_tally.add(method);
            return;
        }
        tally.paths.entry(path.to_owned()).or_default().add(method);
    }

    /// What has been counted so far.
    pub(crate) fn snapshot(&self) -> Counts {
        let tally = self.lock();
        let mut counts = Counts {
            per_second: tally.per_second.clone(),
            ..Counts::default()
        };
        for (path, path_tally) in tally.paths.iter() {
            let mut path_total = 0;
            for (method, n) in &path_tally.by_method {
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

    /// Forgets everything counted, and when second 0 started.
    pub(crate) fn reset(&self) {
        let mut tally = self.lock();
        tally.paths.clear();
        tally.per_second.clear();
        self.origin.store(0, Ordering::Relaxed);
    }

    /// The second since second 0 that `arrived` falls in. Called under the
    /// lock, so that it cannot interleave with `reset`.
    fn second_of(&self, arrived: Instant) -> usize {
        // Unset only if a reset came while this request was in flight and
        // nothing has arrived since: then it opens the count.
        self.arrive(arrived);
        let mark = self.origin.load(Ordering::Relaxed);
        let origin = self.epoch + Duration::from_nanos(mark - 1);
        // A request that arrived before second 0 (one in flight across a
        // reset, or one that lost the race in `arrive`) counts in it.
        let second = arrived.saturating_duration_since(origin).as_secs();
        usize::try_from(second).unwrap_or(usize::MAX)
    }

    /// `at` as stored in `origin`.
    fn origin_mark(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        // u64 nanoseconds last 584 years.
        u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1
    }

    fn lock(&self) -> MutexGuard<'_, Tally> {
        // The tally holds plain numbers, so it is consistent even if a thread
        // panicked while holding the lock.
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Tally {
    fn add_arrival(&mut self, second: usize) {
        if second >= self.per_second.len() {
            self.per_second.resize(second + 1, 0);
        }
        self.per_second[second] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn counts_by_path_and_method() {
        let counter = RequestCounter::default();
        let now = Instant::now();
        counter.record(&Method::GET, "/a", now);
        counter.record(&Method::GET, "/a", now);
        counter.record(&Method::POST, "/a", now);
        counter.record(&Method::GET, "/b", now);
        let counts = counter.snapshot();
        assert_eq!(counts.total, 4);
        assert_eq!(counts.path("/a"), 3);
        assert_eq!(counts.path("/b"), 1);
        assert_eq!(counts.method_path("GET", "/a"), 2);
        assert_eq!(counts.method_path("POST", "/a"), 1);
        assert_eq!(counts.by_method_path.len(), 3);
        assert_eq!(counts.per_second, [4]);
    }

    #[test]
    fn seconds_count_from_the_first_arrival_not_the_first_answer() {
        let counter = RequestCounter::default();
        let first = Instant::now() + ms(10);
        // The first to arrive is answered last, as a `/delay` would be.
        counter.arrive(first);
        let answered = [
            (500, "/fast"),
            (999, "/fast"),
            (1000, "/fast"),
            (3999, "/fast"),
            (5000, "/fast"),
            (0, "/slow"),
        ];
        for (after, path) in answered {
            counter.arrive(first + ms(after));
            counter.record(&Method::GET, path, first + ms(after));
        }
        let counts = counter.snapshot();
        assert_eq!(counts.per_second, [3, 1, 0, 1, 0, 1]);
        assert_eq!(counts.total, counts.per_second.iter().sum::<u64>());
    }

    #[test]
    fn an_arrival_before_second_0_counts_in_it() {
        let counter = RequestCounter::default();
        let early = Instant::now() + ms(10);
        counter.arrive(early + ms(1500));
        counter.record(&Method::GET, "/", early);
        counter.record(&Method::GET, "/", early + ms(2600));
        assert_eq!(counter.snapshot().per_second, [1, 1]);
    }

    #[test]
    fn reset_forgets_everything() {
        let counter = RequestCounter::default();
        let start = Instant::now();
        counter.arrive(start);
        counter.record(&Method::GET, "/a", start + ms(2500));
        assert_eq!(counter.snapshot().per_second, [0, 0, 1]);
        counter.reset();
        assert_eq!(counter.snapshot(), Counts::default());
        // Second 0 starts afresh with the next arrival.
        counter.arrive(start + ms(3000));
        counter.record(&Method::GET, "/a", start + ms(3000));
        let counts = counter.snapshot();
        assert_eq!(counts.total, 1);
        assert_eq!(counts.per_second, [1]);
    }

    #[test]
    fn one_answered_after_a_reset_with_no_arrival_since_opens_the_count() {
        let counter = RequestCounter::default();
        let start = Instant::now();
        counter.arrive(start);
        counter.reset();
        counter.record(&Method::GET, "/held", start);
        counter.record(&Method::GET, "/next", start + ms(1200));
        assert_eq!(counter.snapshot().per_second, [1, 1]);
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let counter = Arc::new(RequestCounter::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        let now = Instant::now();
                        counter.arrive(now);
                        let path = if i % 2 == 0 { "/even" } else { "/odd" };
                        counter.record(&Method::GET, path, now);
                        counter.record(&Method::PUT, &format!("/t{t}"), now);
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
        assert_eq!(counts.per_second.iter().sum::<u64>(), 8000);
    }
}
