//! The open model's arrival schedule: a run-wide rate of iterations per
//! second that ramps linearly between set points, and the times at which a
//! shard's share of the arrivals is due.
//!
//! Every shard keeps the same schedule (the node sends each the same
//! commands, with the same start instants) and counts arrivals run-wide:
//! `count_at(t)` is how many iterations the whole run should have started
//! by `t`. Evenly spaced, arrival `i` is due when the count reaches `i`,
//! and shard `s` of `n` takes `i = s, s + n, s + 2n, ...`, so the shards
//! together start exactly the rate with no coordination. With Poisson
//! arrivals each shard runs its own Poisson process at `1/n` of the rate
//! (the next arrival is due `n · Exp(1)` further along the count), and the
//! sum of independent Poisson processes is a Poisson process at the full
//! rate.

use std::time::{Duration, Instant};

/// One piece of the rate: from `at`, the rate goes linearly from `from` to
/// `to` over `over` seconds, then stays at `to`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    at: Instant,
    /// Arrivals due run-wide before `at`.
    count: f64,
    from: f64,
    to: f64,
    over: f64,
}

impl Schedule {
    /// No arrivals until a rate is set.
    pub(crate) fn idle(at: Instant) -> Schedule {
        Schedule {
            at,
            count: 0.0,
            from: 0.0,
            to: 0.0,
            over: 0.0,
        }
    }

    /// The rate (per second) at `t`.
    pub(crate) fn rate_at(&self, t: Instant) -> f64 {
        let tau = t.saturating_duration_since(self.at).as_secs_f64();
        if tau >= self.over {
            self.to
        } else {
            self.from + (self.to - self.from) * tau / self.over
        }
    }

    /// Arrivals due run-wide by `t`.
    pub(crate) fn count_at(&self, t: Instant) -> f64 {
        let tau = t.saturating_duration_since(self.at).as_secs_f64();
        let ramp = tau.min(self.over);
        let slope = if self.over > 0.0 {
            (self.to - self.from) / self.over
        } else {
            0.0
        };
        self.count + self.from * ramp + slope * ramp * ramp / 2.0 + self.to * (tau - ramp)
    }

    /// The schedule after a change at `at`: from the rate at that time to
    /// `rate` over `over` (a step when `over` is zero). The count carries
    /// on, so no arrival is lost or repeated at the change.
    pub(crate) fn then(&self, rate: f64, over: Duration, at: Instant) -> Schedule {
        let over = over.as_secs_f64();
        Schedule {
            at,
            count: self.count_at(at),
            from: if over > 0.0 { self.rate_at(at) } else { rate },
            to: rate,
            over,
        }
    }

    /// When the run-wide count reaches `n`; `None` if it never does on
    /// this schedule (the rate falls to zero first).
    pub(crate) fn time_of(&self, n: f64) -> Option<Instant> {
        let need = n - self.count;
        if need <= 0.0 {
            return Some(self.at);
        }
        let slope = if self.over > 0.0 {
            (self.to - self.from) / self.over
        } else {
            0.0
        };
        let in_ramp = self.from * self.over + slope * self.over * self.over / 2.0;
        let tau = if need <= in_ramp {
            // Solve from·τ + slope·τ²/2 = need for the first τ ≥ 0, in the
            // form that stays exact when the slope is small or negative.
            let disc = (self.from * self.from + 2.0 * slope * need).max(0.0);
            2.0 * need / (self.from + disc.sqrt())
        } else if self.to > 0.0 {
            self.over + (need - in_ramp) / self.to
        } else {
            return None;
        };
        if !tau.is_finite() {
            return None;
        }
        self.at.checked_add(Duration::try_from_secs_f64(tau).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_constant_rate_spaces_arrivals_evenly() {
        let t0 = Instant::now();
        let s = Schedule::idle(t0).then(1000.0, Duration::ZERO, t0);
        assert_eq!(s.time_of(0.0), Some(t0));
        let t = s.time_of(500.0).unwrap() - t0;
        assert!((t.as_secs_f64() - 0.5).abs() < 1e-9, "{t:?}");
        assert!((s.count_at(t0 + secs(20.0)) - 20_000.0).abs() < 1e-6);
    }

    #[test]
    fn a_ramp_follows_the_integral_of_the_rate() {
        let t0 = Instant::now();
        // 0 → 100/s over 10 s: 500 arrivals during the ramp, then 100/s.
        let s = Schedule::idle(t0).then(100.0, secs(10.0), t0);
        assert!((s.count_at(t0 + secs(10.0)) - 500.0).abs() < 1e-6);
        assert!((s.count_at(t0 + secs(12.0)) - 700.0).abs() < 1e-6);
        // Half the ramp's arrivals come in its last 2.93 s (√0.5 of 10 s).
        let t = s.time_of(250.0).unwrap() - t0;
        assert!((t.as_secs_f64() - 50f64.sqrt()).abs() < 1e-6, "{t:?}");
        for n in [1.0, 10.0, 499.0, 500.0, 501.0, 5000.0] {
            let t = s.time_of(n).unwrap();
            assert!((s.count_at(t) - n).abs() < 1e-6, "{n}");
        }
    }

    #[test]
    fn ramping_down_to_zero_ends_arrivals() {
        let t0 = Instant::now();
        let s =
            Schedule::idle(t0)
                .then(100.0, Duration::ZERO, t0)
                .then(0.0, secs(2.0), t0 + secs(1.0));
        // 100 in the first second, 100 over the 2 s ramp down, then none.
        assert!((s.count_at(t0 + secs(10.0)) - 200.0).abs() < 1e-6);
        let t = s.time_of(150.0).unwrap();
        assert!((s.count_at(t) - 150.0).abs() < 1e-6);
        assert_eq!(s.time_of(200.5), None);
    }

    #[test]
    fn a_change_keeps_the_count() {
        let t0 = Instant::now();
        let a = Schedule::idle(t0).then(10.0, Duration::ZERO, t0);
        let b = a.then(1000.0, secs(5.0), t0 + secs(3.0));
        assert!((b.count_at(t0 + secs(3.0)) - 30.0).abs() < 1e-9);
        assert!((b.rate_at(t0 + secs(3.0)) - 10.0).abs() < 1e-9);
        assert!((b.rate_at(t0 + secs(8.0)) - 1000.0).abs() < 1e-9);
    }
}
