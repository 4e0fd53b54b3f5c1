//! The closed model's ramps: moving a shard's users of a group from the
//! ones it actually runs to a run-wide count, one user every `1/rate`
//! seconds run-wide.
//!
//! A ramp is a [`RampLine`] per group: run-wide counts from `from` (where
//! the node reckons the users are when it starts) to `to`. Users carry
//! run-wide indices, and shard `s` of `n` owns the indices `k ≡ s (mod n)`:
//! going up, user `k` is spawned at step `k - from` of the line; going
//! down, user `k` is retired at step `from - 1 - k` (the newest first, as
//! Locust does). A new ramp may replace one still in progress, in either
//! direction, as often as a shape likes: the node starts the new line
//! where the old one had got to ([`RampLine::position`]), and each shard
//! plans from the users it actually has ([`plan`]), so a user the old line
//! had not reached yet, or had passed already on this shard (the command
//! arrives a moment after it was sent), is neither lost nor made twice.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How far off a change is that no clock can say: a century.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Run-wide user counts along a straight line: from `from` at `at`
/// towards `to`, one change every `1/rate` seconds, the first at `at`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RampLine {
    pub(crate) from: u64,
    pub(crate) to: u64,
    /// Changes per second; zero or not finite: all at `at`.
    pub(crate) rate: f64,
    pub(crate) at: Instant,
}

impl RampLine {
    /// When change number `step` (0 for the first) is due.
    pub(crate) fn due(&self, step: u64) -> Instant {
        if self.rate.is_finite() && self.rate > 0.0 {
            // A tiny rate (a shape's `spawn_rate: 1e-20`) puts a change past
            // any clock: then it is due in a century, that is never.
            Duration::try_from_secs_f64(step as f64 / self.rate)
                .ok()
                .and_then(|after| self.at.checked_add(after))
                .unwrap_or_else(|| self.at + NEVER)
        } else {
            self.at
        }
    }

    /// The run-wide count the line has reached at `t`: every change due
    /// by `t` is made (by the same arithmetic as [`RampLine::due`], so the
    /// node and its shards agree).
    pub(crate) fn position(&self, t: Instant) -> u64 {
        let changes = self.from.abs_diff(self.to);
        let mut done = if t < self.at {
            0
        } else if self.rate.is_finite() && self.rate > 0.0 {
            let estimate = t.duration_since(self.at).as_secs_f64() * self.rate;
            (estimate.floor() as u64).saturating_add(1).min(changes)
        } else {
            changes
        };
        // Settle float rounding at a step's edge against `due` itself.
        while done < changes && self.due(done) <= t {
            done += 1;
        }
        while done > 0 && self.due(done - 1) > t {
            done -= 1;
        }
        if self.to >= self.from {
            self.from + done
        } else {
            self.from - done
        }
    }

    /// Whether every change of the line is due by `t`.
    pub(crate) fn reached(&self, t: Instant) -> bool {
        self.position(t) == self.to
    }
}

/// What a shard does to one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Start the user with this index.
    Spawn(u64),
    /// Let the user with this index finish its task and stop.
    Retire(u64),
}

/// The changes shard `index` of `shards` makes for `line`, given the
/// indices of the group's users it runs now (`live`), in the order they
/// are due. Where the shard is not where the line starts (a replaced ramp
/// had not yet made, or had already made, a change here that the line
/// says is before or after its start) it catches up at once, at `at`:
/// every index of its own below both ends runs, none at or above both
/// does. Between the ends, it follows the line, skipping users already
/// there (going up) or already gone (going down).
///
/// Lazy: a ramp to a huge count (a typo in `-u`, a shape's big number)
/// costs memory and time only as its users come due, as users do.
pub(crate) fn changes(
    line: RampLine,
    live: BTreeSet<u64>,
    index: u64,
    shards: u64,
) -> impl Iterator<Item = (Instant, Change)> {
    let (low, high) = (line.from.min(line.to), line.from.max(line.to));
    let step = shards.max(1);
    let at = line.at;
    // Retire the newest first: those at or above both ends, at once.
    let above: Vec<u64> = live.range(high..).rev().copied().collect();
    let retire_above = above.into_iter().map(move |k| (at, Change::Retire(k)));
    let live = std::rc::Rc::new(live);
    let missing = live.clone();
    let below = live.clone();
    let spawn_below = (index..low)
        .step_by(step as usize)
        .filter(move |k| !below.contains(k))
        .map(move |k| (at, Change::Spawn(k)));
    // The shard's own indices in [low, high), from the first.
    let first = low + (index + step - low % step) % step;
    let up = line.to > line.from;
    // Going up, each index not yet running; going down, the users that
    // run there, the newest first (only as many as the shard has).
    let spawn_along = std::iter::successors((up && first < high).then_some(first), move |&k| {
        k.checked_add(step).filter(|&next| next < high)
    })
    .filter(move |k| !live.contains(k))
    .map(move |k| (line.due(k - line.from), Change::Spawn(k)));
    let retire_along: Vec<u64> = if up {
        Vec::new()
    } else {
        missing
            .range(first.min(high)..high)
            .rev()
            .filter(|&&k| k % step == index % step)
            .copied()
            .collect()
    };
    let retire_along = retire_along
        .into_iter()
        .map(move |k| (line.due(line.from - 1 - k), Change::Retire(k)));
    let along = spawn_along.chain(retire_along);
    retire_above.chain(spawn_below).chain(along)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_too_small_for_a_clock_is_never_due() {
        let t0 = Instant::now();
        let slow = line(0, 10, 1e-300, t0);
        assert_eq!(slow.due(0), t0);
        assert!(slow.due(1) > t0 + secs(1e9));
        assert_eq!(slow.position(t0 + secs(3600.0)), 1);
    }

    #[test]
    fn a_ramp_to_a_huge_count_is_planned_as_it_goes() {
        let t0 = Instant::now();
        // 10^12 users at 10/s: the first changes come at once, without
        // the rest being planned (which would take terabytes).
        let first: Vec<_> = changes(line(0, 1_000_000_000_000, 10.0, t0), BTreeSet::new(), 1, 2)
            .take(3)
            .collect();
        assert_eq!(
            first,
            [
                (t0 + secs(0.1), Change::Spawn(1)),
                (t0 + secs(0.3), Change::Spawn(3)),
                (t0 + secs(0.5), Change::Spawn(5)),
            ]
        );
        // Down from a huge position, only the users the shard runs.
        let live: BTreeSet<u64> = [0, 2, 4].into();
        let down: Vec<_> = changes(line(1_000_000_000_000, 0, 10.0, t0), live, 0, 2).collect();
        assert_eq!(
            down.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
            [Change::Retire(4), Change::Retire(2), Change::Retire(0)]
        );
    }

    /// [`changes`], all of them.
    fn plan(
        line: &RampLine,
        live: &BTreeSet<u64>,
        index: u64,
        shards: u64,
    ) -> Vec<(Instant, Change)> {
        changes(*line, live.clone(), index, shards).collect()
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn line(from: u64, to: u64, rate: f64, at: Instant) -> RampLine {
        RampLine { from, to, rate, at }
    }

    /// The shard's users after making `changes` (in order) to `live`.
    fn apply(live: &BTreeSet<u64>, changes: &[(Instant, Change)]) -> BTreeSet<u64> {
        let mut live = live.clone();
        for (_, change) in changes {
            match *change {
                Change::Spawn(k) => assert!(live.insert(k), "{k} spawned twice"),
                Change::Retire(k) => assert!(live.remove(&k), "{k} retired but not running"),
            }
        }
        live
    }

    #[test]
    fn the_position_counts_the_changes_due() {
        let t0 = Instant::now();
        let up = line(0, 40, 10.0, t0);
        assert_eq!(up.position(t0 - secs(0.5)), 0);
        assert_eq!(up.position(t0), 1, "the first change is due at once");
        assert_eq!(up.position(t0 + secs(0.95)), 10);
        assert_eq!(up.position(t0 + secs(1.0)), 11);
        assert_eq!(up.position(t0 + secs(60.0)), 40);
        let down = line(40, 10, 10.0, t0);
        assert_eq!(down.position(t0 + secs(1.05)), 29);
        assert_eq!(down.position(t0 + secs(9.0)), 10);
        assert!(down.reached(t0 + secs(2.95)) && !down.reached(t0 + secs(2.85)));
        // At every change's own due time, the line counts it made.
        for step in 0..30 {
            assert_eq!(down.position(down.due(step)), 40 - step - 1);
        }
        assert_eq!(line(5, 9, 0.0, t0).position(t0), 9, "rate 0: a step");
        assert_eq!(line(7, 7, 3.0, t0).position(t0 + secs(1.0)), 7);
    }

    /// Two shards together follow the line: every index below `to` runs
    /// on exactly one, and changes come one per `1/rate` run-wide.
    #[test]
    fn shards_together_follow_the_line() {
        let t0 = Instant::now();
        let up = line(0, 10, 5.0, t0);
        let mut all: Vec<(Instant, Change)> = Vec::new();
        for shard in 0..2 {
            let changes = plan(&up, &BTreeSet::new(), shard, 2);
            assert!(
                changes
                    .iter()
                    .all(|(_, c)| matches!(c, Change::Spawn(k) if k % 2 == shard))
            );
            all.extend(changes);
        }
        all.sort_by_key(|(due, _)| *due);
        let want: Vec<Change> = (0..10).map(Change::Spawn).collect();
        assert_eq!(all.iter().map(|(_, c)| *c).collect::<Vec<_>>(), want);
        for (step, (due, _)) in all.iter().enumerate() {
            assert_eq!(*due, t0 + secs(step as f64 / 5.0));
        }
    }

    /// The case: 40 → 10 at 10/s, then 5 one second later. The
    /// new line starts where the old got (29), not at its target (10),
    /// so the users between are stopped too.
    #[test]
    fn a_ramp_down_cut_short_then_lowered_stops_everyone_above() {
        let t0 = Instant::now();
        let all: BTreeSet<u64> = (0..40).collect();
        let first = line(40, 10, 10.0, t0);
        let at = t0 + secs(1.05);
        let done: Vec<_> = plan(&first, &all, 0, 1)
            .into_iter()
            .filter(|(due, _)| *due <= at)
            .collect();
        let live = apply(&all, &done);
        assert_eq!(live.len(), 29);
        let second = line(first.position(at), 5, 10.0, at);
        assert_eq!(second.from, 29);
        let live = apply(&live, &plan(&second, &live, 0, 1));
        assert_eq!(live, (0..5).collect());
    }

    /// 40 → 10 cut short → 40: the ramp up reuses no index still running
    /// and ends with exactly 40.
    #[test]
    fn a_ramp_down_cut_short_then_raised_spawns_only_the_missing() {
        let t0 = Instant::now();
        let all: BTreeSet<u64> = (0..40).collect();
        let down = line(40, 10, 10.0, t0);
        let at = t0 + secs(1.05);
        let done: Vec<_> = plan(&down, &all, 0, 1)
            .into_iter()
            .filter(|(due, _)| *due <= at)
            .collect();
        let live = apply(&all, &done);
        let up = line(down.position(at), 40, 10.0, at);
        let changes = plan(&up, &live, 0, 1);
        assert_eq!(changes.len(), 11);
        assert_eq!(apply(&live, &changes), all);
    }

    /// The shard is behind or ahead of where the node reckons the replaced
    /// line had got: it catches up at once, then follows the new line.
    #[test]
    fn a_shard_off_the_line_catches_up_at_the_start() {
        let t0 = Instant::now();
        // Going up: the node says 6 run; this shard (0 of 2) made only 0
        // and 2, and one beyond what the new target keeps.
        let live: BTreeSet<u64> = [0, 2, 12].into();
        let up = line(6, 10, 2.0, t0);
        let changes = plan(&up, &live, 0, 2);
        assert_eq!(
            changes,
            vec![
                (t0, Change::Retire(12)),
                (t0, Change::Spawn(4)),
                (t0, Change::Spawn(6)),
                (t0 + secs(1.0), Change::Spawn(8)),
            ]
        );
        // Going down with a user already retired on the way.
        let live: BTreeSet<u64> = [1, 3, 7, 9].into();
        let down = line(10, 2, 4.0, t0);
        let changes = plan(&down, &live, 1, 2);
        assert_eq!(
            changes,
            vec![
                (t0, Change::Retire(9)),
                (t0 + secs(0.5), Change::Retire(7)),
                (t0 + secs(1.5), Change::Retire(3)),
            ]
        );
        assert_eq!(apply(&live, &changes), [1].into());
    }

    /// A shape that reverses every half second, many times, on three
    /// shards: at every reversal the shards together run exactly the
    /// line's position, and no index is made twice or lost.
    #[test]
    fn reversals_in_both_directions_keep_the_count() {
        let t0 = Instant::now();
        let shards = 3;
        let mut live: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); shards as usize];
        let mut current = line(0, 0, 10.0, t0);
        let targets = [30, 5, 25, 0, 40, 12, 13, 2, 2, 50, 0];
        for (i, &to) in targets.iter().enumerate() {
            let at = t0 + secs(0.5 * i as f64);
            let next = line(current.position(at), to, 10.0, at);
            let until = at + secs(0.5);
            for (shard, users) in live.iter_mut().enumerate() {
                let done: Vec<_> = plan(&next, users, shard as u64, shards)
                    .into_iter()
                    .filter(|(due, _)| *due < until)
                    .collect();
                *users = apply(users, &done);
            }
            let running: BTreeSet<u64> = live.iter().flatten().copied().collect();
            let count = live.iter().map(BTreeSet::len).sum::<usize>() as u64;
            assert_eq!(count, running.len() as u64, "an index runs twice");
            let position = next.position(until - secs(1e-6));
            assert_eq!(count, position, "after target {to}");
            assert_eq!(running, (0..position).collect(), "after target {to}");
            current = next;
        }
    }
}
