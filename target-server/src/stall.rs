//! Stop-the-world pauses, for testing how a load generator corrects for
//! coordinated omission.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::TargetError;

/// A pause of `length` every `every`, like a garbage collector's: `blast
/// target --stall LENGTH/EVERY`.
///
/// Time counts from when the server started listening. The first `every` is
/// calm; then for every k ≥ 1 the window `[k·every, k·every + length)` is a
/// pause: a counted request whose response is ready during a window (because
/// it arrived there, or because its handling ended there) is held until the
/// window ends. Requests answered outside windows are not held, and the
/// `/_blast/` controls never are. Held requests wait on timers: the server
/// keeps accepting, reading and holding requests on other connections.
///
/// `length` must be shorter than `every`, and neither may be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// Time from the start of one pause to the start of the next.
    pub every: Duration,
    /// How long each pause lasts.
    pub length: Duration,
}

impl Stall {
    /// Reads `LENGTH/EVERY`, e.g. `1s/5s` (pause 1 s in every 5 s) or
    /// `250ms/2s`.
    ///
    /// Each duration is a whole number and a unit, `ms`, `s`, `m` or `h`,
    /// with no space between: `1500ms`, not `1.5s`. LENGTH must be more than
    /// zero and shorter than EVERY.
    pub fn parse(text: &str) -> Result<Stall, TargetError> {
        let refuse = |why: String| TargetError::Stall {
            given: text.to_owned(),
            why,
        };
        let (length, every) = text
            .split_once('/')
            .ok_or_else(|| refuse("no '/' between LENGTH and EVERY".to_owned()))?;
        let length = parse_duration(length.trim()).map_err(&refuse)?;
        let every = parse_duration(every.trim()).map_err(&refuse)?;
        let stall = Stall { every, length };
        stall.check().map_err(|why| refuse(why.to_owned()))?;
        Ok(stall)
    }

    /// Why this stall cannot be served, if it cannot.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        if self.length.is_zero() {
            Err("LENGTH must be more than zero")
        } else if self.length >= self.every {
            Err("LENGTH must be shorter than EVERY")
        } else {
            Ok(())
        }
    }

    /// If `elapsed` (since the server started) falls in a pause, when that
    /// pause ends, also counted since the server started.
    pub(crate) fn pause_end(&self, elapsed: Duration) -> Option<Duration> {
        let every = self.every.as_nanos();
        if every == 0 {
            return None;
        }
        let elapsed = elapsed.as_nanos();
        let start = elapsed - elapsed % every;
        let end = start + self.length.as_nanos();
        // The first `every` (k = 0) is calm.
        if start == 0 || elapsed >= end {
            return None;
        }
        // `end` is at most `elapsed + length`, which fits back in a Duration
        // unless the server has run for half a trillion years.
        let secs = u64::try_from(end / 1_000_000_000).ok()?;
        Some(Duration::new(secs, (end % 1_000_000_000) as u32))
    }
}

impl FromStr for Stall {
    type Err = TargetError;

    /// As [`Stall::parse`].
    fn from_str(text: &str) -> Result<Stall, TargetError> {
        Stall::parse(text)
    }
}

impl fmt::Display for Stall {
    /// `LENGTH/EVERY`, in the form [`Stall::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            DurationText(self.length),
            DurationText(self.every)
        )
    }
}

/// A duration in the coarsest of `parse_duration`'s units that shows it
/// exactly; durations finer than a millisecond fall back to `Debug`'s form.
struct DurationText(Duration);

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        for (unit, size) in UNITS.iter().rev() {
            if nanos.is_multiple_of(*size) {
                return write!(f, "{}{unit}", nanos / size);
            }
        }
        write!(f, "{:?}", self.0)
    }
}

/// The units a stall's durations may be written in, finest first, with their
/// size in nanoseconds.
const UNITS: [(&str, u128); 4] = [
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// `250ms`, `1s`, `2m`, `1h`: a whole number and a unit.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let not_a_duration = || format!("{text:?} is not a duration like 250ms, 1s or 2m");
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| not_a_duration())?;
    let (_, size) = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .ok_or_else(not_a_duration)?;
    let nanos = u128::from(number) * size;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| not_a_duration())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_length_over_every() {
        let table = [
            ("1s/5s", ms(1000), ms(5000)),
            ("250ms/2s", ms(250), ms(2000)),
            ("1500ms/1m", ms(1500), ms(60_000)),
            ("59m/1h", ms(59 * 60_000), ms(3_600_000)),
            (" 1s / 5s ", ms(1000), ms(5000)),
        ];
        for (text, length, every) in table {
            assert_eq!(
                Stall::parse(text).unwrap(),
                Stall { every, length },
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_with_a_reason() {
        let table = [
            ("1s", "no '/' between LENGTH and EVERY"),
            ("", "no '/' between LENGTH and EVERY"),
            ("1s/", "\"\" is not a duration like 250ms, 1s or 2m"),
            ("1.5s/5s", "\"1.5s\" is not a duration like 250ms, 1s or 2m"),
            ("1/5s", "\"1\" is not a duration like 250ms, 1s or 2m"),
            ("1s/5x", "\"5x\" is not a duration like 250ms, 1s or 2m"),
            ("-1s/5s", "\"-1s\" is not a duration like 250ms, 1s or 2m"),
            (
                "1s/5s/9s",
                "\"5s/9s\" is not a duration like 250ms, 1s or 2m",
            ),
            ("0s/5s", "LENGTH must be more than zero"),
            ("0ms/0s", "LENGTH must be more than zero"),
            ("1s/0s", "LENGTH must be shorter than EVERY"),
            ("5s/5s", "LENGTH must be shorter than EVERY"),
            ("5s/1s", "LENGTH must be shorter than EVERY"),
        ];
        for (text, why) in table {
            let err = Stall::parse(text).expect_err(text);
            assert_eq!(
                err.to_string(),
                format!("--stall wants LENGTH/EVERY like 1s/5s, got {text:?}: {why}"),
            );
        }
        assert!(Stall::parse("99999999999999999999h/1s").is_err());
        assert!(Stall::parse("1s/18446744073709551615h").is_err());
    }

    #[test]
    fn displays_as_it_parses() {
        for text in ["1s/5s", "250ms/2s", "1500ms/1m", "59m/1h"] {
            let stall: Stall = text.parse().unwrap();
            assert_eq!(stall.to_string(), text);
        }
        let odd = Stall {
            every: ms(5),
            length: Duration::from_micros(1500),
        };
        assert_eq!(odd.to_string(), "1.5ms/5ms");
    }

    #[test]
    fn pauses_start_after_the_first_period() {
        let stall = Stall {
            every: ms(1000),
            length: ms(300),
        };
        let table = [
            (0, None),
            (299, None),
            (999, None),
            (1000, Some(1300)),
            (1150, Some(1300)),
            (1299, Some(1300)),
            (1300, None),
            (1999, None),
            (2000, Some(2300)),
            (7250, Some(7300)),
            (7300, None),
        ];
        for (elapsed, end) in table {
            assert_eq!(stall.pause_end(ms(elapsed)), end.map(ms), "at {elapsed} ms");
        }
        let nanos = Duration::from_nanos(1_299_999_999);
        assert_eq!(stall.pause_end(nanos), Some(ms(1300)));
    }

    #[test]
    fn a_zero_period_never_pauses() {
        let stall = Stall {
            every: Duration::ZERO,
            length: Duration::ZERO,
        };
        assert_eq!(stall.pause_end(ms(5)), None);
    }
}
