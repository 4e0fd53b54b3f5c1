//! `--csv PREFIX`: Locust's four CSV files, with its headers, column order,
//! row order, `Aggregated` row, `N/A` and number formats, so that tools
//! built for Locust's CSV read blast's unchanged (checked against files
//! Locust 2.47 wrote, in `tests/fixtures/locust/`).
//!
//! - `PREFIX_stats.csv`: one row per entry and the `Aggregated` row,
//!   rewritten (through a temporary file and a rename) every
//!   [`REWRITE_INTERVAL`] and at the end, so a crash mid-run leaves data.
//! - `PREFIX_stats_history.csv`: appended once per report (every second):
//!   the `Aggregated` row, and every entry's row with `--csv-full-history`;
//!   the run's last report, within the same second as the one before,
//!   replaces that one's rows.
//! - `PREFIX_failures.csv`, `PREFIX_exceptions.csv`: failures (and
//!   dropped iterations, as one more row) and script errors (and, when the
//!   run stopped early, a row that says why), rewritten like the stats
//!   file.
//!
//! Numbers are written as Locust's writer (Python's `csv` module) writes
//! them: counts as integers; percentiles as Locust's integer buckets (whole
//! milliseconds below 100 ms, then two significant digits: 147.3 → 150);
//! the median the same, but never below the minimum nor above the maximum,
//! which it then is (`0.25`); averages, minimum, maximum and rates as
//! Python floats (`12.0`, `0.4133`); `N/A` percentiles for an entry
//! without requests; first and last seen as `2026-12-01T10:37:11Z`; lines
//! ending in `\r\n`. Unlike Locust's, the percentiles come from
//! full-precision histograms and are rounded only when written (the JSON
//! summary and the HTML report keep them unrounded).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use blast_proto::EntryDelta;

use crate::output::OutputFile;
use crate::stats::RunStats;
use crate::summary::{EndpointSummary, PERCENTILES, Summary, percentile_label};

/// How often the stats, failures and exceptions files are rewritten while
/// a run goes.
pub const REWRITE_INTERVAL: Duration = Duration::from_secs(2);

/// `PREFIX_stats.csv`'s header, as Locust writes it.
pub const STATS_HEADER: [&str; 22] = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
];

/// `PREFIX_stats_history.csv`'s header, as Locust writes it.
pub const HISTORY_HEADER: [&str; 24] = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
];

/// `PREFIX_failures.csv`'s header.
pub const FAILURES_HEADER: [&str; 6] = [
    "Method",
    "Name",
    "Error",
    "Occurrences",
    "First Seen",
    "Last Seen",
];

/// `PREFIX_exceptions.csv`'s header, as Locust writes it.
pub const EXCEPTIONS_HEADER: [&str; 4] = ["Count", "Message", "Traceback", "Nodes"];

/// The node name in the exceptions file's `Nodes` column for a local run.
const LOCAL_NODE: &str = "local";

/// A float as Python's `repr` writes it: the shortest digits that read back
/// the same, always with a `.` or an exponent (`12.0`, `0.25`, `3.3e-05`).
pub fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{x:e}");
        let (mantissa, exponent) = s.split_once('e').expect("{:e} has an exponent");
        let exponent: i32 = exponent.parse().expect("{:e} has a numeric exponent");
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let s = format!("{x}");
    if s.contains('.') { s } else { s + ".0" }
}

/// A response time as Locust rounds it into its histogram's buckets
/// (`bucket_response_time` in `locust/stats.py`), with Python's `round`
/// (halves to even): whole milliseconds below 100 ms, then tens, hundreds,
/// thousands. Locust's percentiles and median are these buckets.
pub fn locust_bucket(ms: f64) -> u64 {
    let step = if ms < 100.0 {
        1.0
    } else if ms < 1_000.0 {
        10.0
    } else if ms < 10_000.0 {
        100.0
    } else {
        1_000.0
    };
    ((ms / step).round_ties_even() * step) as u64
}

/// A percentile, as Locust writes one.
fn percentile_ms(ms: f64) -> String {
    locust_bucket(ms).to_string()
}

/// The median as Locust writes it (`StatsEntry.median_response_time`): the
/// bucket, unless that is above the maximum or below the minimum, which it
/// then is.
fn median_field(e: &EndpointSummary) -> String {
    let median = locust_bucket(e.percentiles_ms.get("50").copied().unwrap_or(0.0));
    if median as f64 > e.max_ms {
        py_float(e.max_ms)
    } else if (median as f64) < e.min_ms {
        py_float(e.min_ms)
    } else {
        median.to_string()
    }
}

/// Milliseconds since the Unix epoch as Locust writes a failure's first or
/// last seen: `%Y-%m-%dT%H:%M:%SZ`, UTC, whole seconds.
pub fn utc_timestamp(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_secs(ms / 1000);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn new_writer<W: io::Write>(w: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(w)
}

fn csv_error(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// Request Count ... Average Content Size, as the stats file and the
/// history's totals write them.
fn totals_fields(e: &EndpointSummary) -> [String; 7] {
    if e.requests == 0 {
        return [
            "0".into(),
            e.failures.to_string(),
            "0".into(),
            "0.0".into(),
            "0".into(),
            "0".into(),
            "0".into(),
        ];
    }
    [
        e.requests.to_string(),
        e.failures.to_string(),
        median_field(e),
        py_float(e.avg_ms),
        py_float(e.min_ms),
        py_float(e.max_ms),
        py_float(e.avg_content_size),
    ]
}

fn percentile_fields(e: &EndpointSummary) -> Vec<String> {
    PERCENTILES
        .iter()
        .map(|&p| {
            if e.requests == 0 {
                "N/A".to_string()
            } else {
                percentile_ms(
                    e.percentiles_ms
                        .get(&percentile_label(p))
                        .copied()
                        .unwrap_or(0.0),
                )
            }
        })
        .collect()
}

/// Entries in Locust's order: by name, then method.
fn locust_order(endpoints: &[EndpointSummary]) -> Vec<&EndpointSummary> {
    let mut sorted: Vec<&EndpointSummary> = endpoints.iter().collect();
    sorted.sort_by(|a, b| (&a.name, &a.method).cmp(&(&b.name, &b.method)));
    sorted
}

/// `PREFIX_stats.csv` for `summary`.
pub fn stats_csv(summary: &Summary) -> Vec<u8> {
    let mut w = new_writer(Vec::new());
    let mut write = || -> csv::Result<()> {
        w.write_record(STATS_HEADER)?;
        for e in locust_order(&summary.endpoints)
            .into_iter()
            .chain(std::iter::once(&summary.total))
        {
            let [count, failures, median, avg, min, max, size] = totals_fields(e);
            let mut row = vec![
                e.method.clone(),
                e.name.clone(),
                count,
                failures,
                median,
                avg,
                min,
                max,
                size,
                py_float(e.rps),
                py_float(e.failures_per_s),
            ];
            row.extend(percentile_fields(e));
            w.write_record(&row)?;
        }
        Ok(())
    };
    write().expect("writing CSV to memory cannot fail");
    w.into_inner().expect("flushing to memory cannot fail")
}

/// The failures file's `Name` for open-model iterations that were dropped.
pub const DROPPED_NAME: &str = "dropped iterations";

/// The failures file's `Error` for dropped iterations.
pub const DROPPED_ERROR: &str = "no user came free in time (open model)";

/// The exceptions file's `Message` for a run that stopped early, before
/// its reason.
pub const STOPPED_EARLY_PREFIX: &str = "run stopped early: ";

/// `PREFIX_failures.csv` for `summary`: failures grouped by method, name
/// and error, and dropped iterations (empty method, name
/// [`DROPPED_NAME`]), most frequent first; first and last seen as
/// [`utc_timestamp`].
pub fn failures_csv(summary: &Summary) -> Vec<u8> {
    let mut rows: Vec<(u64, [String; 6])> = summary
        .failures
        .iter()
        .map(|f| {
            (
                f.occurrences,
                [
                    f.method.clone(),
                    f.name.clone(),
                    f.error.clone(),
                    f.occurrences.to_string(),
                    utc_timestamp(f.first_seen_ms),
                    utc_timestamp(f.last_seen_ms),
                ],
            )
        })
        .collect();
    let dropped = &summary.iterations;
    if dropped.dropped > 0 {
        // Drops are counted per report: first and last seen are the cuts
        // of the first and last report that held one.
        let (first, last) = dropped
            .dropped_seen_ms
            .unwrap_or((summary.started_at_ms, summary.ended_at_ms));
        rows.push((
            dropped.dropped,
            [
                String::new(),
                DROPPED_NAME.to_string(),
                DROPPED_ERROR.to_string(),
                dropped.dropped.to_string(),
                utc_timestamp(first),
                utc_timestamp(last),
            ],
        ));
        // Stable: failures keep their order among themselves.
        rows.sort_by_key(|row| std::cmp::Reverse(row.0));
    }
    let mut w = new_writer(Vec::new());
    let mut write = || -> csv::Result<()> {
        w.write_record(FAILURES_HEADER)?;
        for (_, row) in &rows {
            w.write_record(row)?;
        }
        Ok(())
    };
    write().expect("writing CSV to memory cannot fail");
    w.into_inner().expect("flushing to memory cannot fail")
}

/// `PREFIX_exceptions.csv` for `summary`: script errors, with their
/// `file:line:column` as the traceback; then, when the run stopped early,
/// a row that says why.
pub fn exceptions_csv(summary: &Summary) -> Vec<u8> {
    let mut w = new_writer(Vec::new());
    let mut write = || -> csv::Result<()> {
        w.write_record(EXCEPTIONS_HEADER)?;
        for e in &summary.errors {
            w.write_record([
                e.count.to_string(),
                e.message.clone(),
                e.location.clone(),
                LOCAL_NODE.to_string(),
            ])?;
        }
        if summary.stopped_early {
            w.write_record([
                "1".to_string(),
                format!("{STOPPED_EARLY_PREFIX}{}", summary.stop_reason),
                String::new(),
                LOCAL_NODE.to_string(),
            ])?;
        }
        Ok(())
    };
    write().expect("writing CSV to memory cannot fail");
    w.into_inner().expect("flushing to memory cannot fail")
}

/// One history row: current rates (the live table's window), percentiles,
/// and the entry's totals so far.
fn history_row(
    stats: &RunStats,
    timestamp: u64,
    entry: &EntryDelta,
    method: &str,
    current: bool,
) -> Vec<String> {
    let key = (!method.is_empty()).then_some(&entry.key);
    let (rps, window) = stats.current(key);
    let failures_per_s = stats.current_failures(key);
    let totals = EndpointSummary::of(entry, method, 1.0);
    let mut row = vec![
        timestamp.to_string(),
        stats.users().to_string(),
        method.to_string(),
        totals.name.clone(),
        format!("{rps:.6}"),
        format!("{failures_per_s:.6}"),
    ];
    if entry.requests == 0 {
        row.extend(PERCENTILES.iter().map(|_| "N/A".to_string()));
    } else if current {
        // As Locust: with the full history, the percentiles are the current
        // ones (0 when the window holds no request).
        row.extend(PERCENTILES.iter().map(|&p| {
            if window.is_empty() {
                "0".to_string()
            } else {
                percentile_ms(window.value_at_quantile(p / 100.0) as f64 / 1000.0)
            }
        }));
    } else {
        // As Locust: the aggregated-only history has the run's percentiles
        // so far.
        row.extend(percentile_fields(&totals));
    }
    row.extend(totals_fields(&totals));
    row
}

/// The four files of one `--csv PREFIX`.
pub struct CsvReport {
    /// The stats, failures and exceptions files.
    tables: [OutputFile; 3],
    full_history: bool,
    history: csv::Writer<File>,
    /// The second of the last history rows written and the offset where
    /// they start, in a history file that can be cut back (a regular
    /// file): the run's last report, within their second, replaces them.
    last_rows: Option<(u64, u64)>,
}

/// `PREFIX` + `suffix` (`out/run` + `_stats.csv`).
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(prefix.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

impl CsvReport {
    /// The files `prefix` names: stats, history, failures, exceptions.
    pub fn paths(prefix: &Path) -> [PathBuf; 4] {
        [
            "_stats.csv",
            "_stats_history.csv",
            "_failures.csv",
            "_exceptions.csv",
        ]
        .map(|suffix| with_suffix(prefix, suffix))
    }

    /// Creates the four files (and the prefix's directory), each with its
    /// header. A table file that is not a regular file (a FIFO, a device)
    /// gets its table once, at the end; a link is followed, never replaced.
    pub fn create(prefix: &Path, full_history: bool) -> io::Result<CsvReport> {
        let [stats, history, failures, exceptions] = Self::paths(prefix);
        if let Some(dir) = stats.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tables = [
            OutputFile::resolve(&stats)?,
            OutputFile::resolve(&failures)?,
            OutputFile::resolve(&exceptions)?,
        ];
        for (file, header) in
            tables
                .iter()
                .zip([&STATS_HEADER[..], &FAILURES_HEADER, &EXCEPTIONS_HEADER])
        {
            if file.rewritable() {
                let mut w = new_writer(Vec::new());
                w.write_record(header).map_err(csv_error)?;
                let bytes = w
                    .into_inner()
                    .map_err(|e| io::Error::other(e.to_string()))?;
                file.write(&bytes)?;
            }
        }
        // Appended to as the run goes: opened once, through any link.
        let mut history = new_writer(File::create(&history)?);
        history.write_record(HISTORY_HEADER).map_err(csv_error)?;
        history.flush()?;
        Ok(CsvReport {
            tables,
            full_history,
            history,
            last_rows: None,
        })
    }

    /// Appends the history rows for the report cut at `at_ms`. The run's
    /// `last` report (cut when it stops, often within the second of the one
    /// before) takes the place of the rows of that second rather than write
    /// a second row for it; any other report gets rows of its own, even
    /// when jitter puts two in one Unix second, since each is a second of
    /// the run.
    pub fn append_history(&mut self, stats: &RunStats, at_ms: u64, last: bool) -> io::Result<()> {
        let timestamp = at_ms / 1000;
        // Flushed after every report: the writer holds no bytes.
        let mut file: &File = self.history.get_ref();
        let start = match self.last_rows {
            Some((second, start)) if last && second == timestamp => {
                file.set_len(start)?;
                file.seek(SeekFrom::Start(start))?;
                Some(start)
            }
            // A FIFO or a device has no position: rows are only appended.
            _ if file.metadata()?.is_file() => Some(file.stream_position()?),
            _ => None,
        };
        self.last_rows = start.map(|start| (timestamp, start));
        if self.full_history {
            let mut entries: Vec<&EntryDelta> = stats.totals().collect();
            entries.sort_by(|a, b| {
                (&a.key.name, a.key.method.as_str()).cmp(&(&b.key.name, b.key.method.as_str()))
            });
            for e in entries {
                let row = history_row(stats, timestamp, e, e.key.method.as_str(), true);
                self.history.write_record(&row).map_err(csv_error)?;
            }
        }
        let total = stats.aggregated();
        let row = history_row(stats, timestamp, &total, "", self.full_history);
        self.history.write_record(&row).map_err(csv_error)?;
        self.history.flush()
    }

    /// Rewrites the stats, failures and exceptions files from `summary`;
    /// the ones that are not regular files only when `last`.
    pub fn write_tables(&self, summary: &Summary, last: bool) -> io::Result<()> {
        let [stats, failures, exceptions] = &self.tables;
        for (file, bytes) in [
            (stats, stats_csv(summary)),
            (failures, failures_csv(summary)),
            (exceptions, exceptions_csv(summary)),
        ] {
            if last || file.rewritable() {
                file.write(&bytes)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "csv_tests.rs"]
mod tests;
