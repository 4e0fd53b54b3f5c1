//! blast's CSV files against the ones Locust 2.47 wrote
//! (`tests/fixtures/locust/`, README there): headers byte for byte, the
//! same number of columns, `\r\n` line ends, and every cell written the way
//! Locust writes that column (integers, Python floats, Locust's six-digit
//! rates, `N/A`, ISO-8601 timestamps, text).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::*;
use crate::blast_cli::{Scratch, exclusive, start_target};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/locust")
        .join(name)
}

/// How a cell is written.
fn kind(cell: &str) -> &'static str {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let iso = cell.len() == 20
        && cell.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if cell.is_empty() {
        "empty"
    } else if cell == "N/A" {
        "N/A"
    } else if digits(cell) {
        "integer"
    } else if iso {
        "timestamp"
    } else if let Some((whole, fraction)) = cell.split_once('.')
        && digits(whole)
        && digits(fraction)
    {
        "decimal"
    } else {
        "text"
    }
}

/// A decimal as Locust writes it: in the history's current rates, `%2f`'s
/// six decimals; elsewhere Python's `repr`, the shortest digits that read
/// back the same.
fn decimal_as_locust_writes_it(history: bool, column: &str, cell: &str) -> bool {
    if history && matches!(column, "Requests/s" | "Failures/s") {
        return cell.split_once('.').is_some_and(|(_, f)| f.len() == 6);
    }
    cell.parse::<f64>()
        .is_ok_and(|x| blast_control::csv::py_float(x) == cell)
}

/// The file's bytes and its records (the header first).
fn read(path: &Path) -> (Vec<u8>, Vec<Vec<String>>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (bytes, records(path))
}

/// Kinds of cell each column holds in `files` (all with one header), by
/// column header.
fn kinds_by_column(files: &[PathBuf]) -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut kinds: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for path in files {
        let (_, rows) = read(path);
        for row in &rows[1..] {
            for (header, cell) in rows[0].iter().zip(row) {
                kinds.entry(header.clone()).or_default().insert(kind(cell));
            }
        }
    }
    kinds
}

/// The history columns that hold what a stats column holds, so a kind
/// Locust writes in one may be written in the other (a median clamped to
/// the minimum is a float in both).
fn same_as_in_stats(history_header: &str) -> Option<&str> {
    Some(match history_header {
        "Total Request Count" => "Request Count",
        "Total Failure Count" => "Failure Count",
        "Total Median Response Time" => "Median Response Time",
        "Total Average Response Time" => "Average Response Time",
        "Total Min Response Time" => "Min Response Time",
        "Total Max Response Time" => "Max Response Time",
        "Total Average Content Size" => "Average Content Size",
        h if h.ends_with('%') => h,
        _ => return None,
    })
}

/// blast's four files at `prefix` are written as Locust's `{locust}_*`
/// files are (`full` or `aggregated`).
pub(super) fn assert_like_locusts(prefix: &Path, locust: &str) {
    let stats_fixtures: Vec<PathBuf> = ["full", "aggregated", "synthetic"]
        .iter()
        .map(|run| fixture(&format!("{run}_stats.csv")))
        .collect();
    let stats_kinds = kinds_by_column(&stats_fixtures);
    for suffix in [
        "_stats.csv",
        "_stats_history.csv",
        "_failures.csv",
        "_exceptions.csv",
    ] {
        let history = suffix == "_stats_history.csv";
        let theirs = fixture(&format!("{locust}{suffix}"));
        let ours = with_suffix(prefix, suffix);
        let (their_bytes, their_rows) = read(&theirs);
        let (our_bytes, our_rows) = read(&ours);
        // The header, byte for byte, with its line end.
        let header_end = |b: &[u8]| b.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        assert_eq!(
            String::from_utf8_lossy(&our_bytes[..header_end(&our_bytes)]),
            String::from_utf8_lossy(&their_bytes[..header_end(&their_bytes)]),
            "{suffix}: header"
        );
        // Every record ends in \r\n (none of these fields holds one).
        assert!(our_bytes.ends_with(b"\r\n"), "{suffix}");
        let crlf = our_bytes.windows(2).filter(|w| w == b"\r\n").count();
        assert_eq!(crlf, our_rows.len(), "{suffix}: a line end per record");
        assert!(our_rows.len() >= 2, "{suffix}: rows to compare");

        let mut kinds = kinds_by_column(std::slice::from_ref(&theirs));
        if suffix == "_stats.csv" {
            kinds = stats_kinds.clone();
        } else if history {
            for (header, set) in kinds.iter_mut() {
                if let Some(stats_header) = same_as_in_stats(header) {
                    set.extend(&stats_kinds[stats_header]);
                }
            }
        }
        let header = &their_rows[0];
        for row in &our_rows[1..] {
            assert_eq!(row.len(), header.len(), "{suffix}: {row:?}");
            for (column, cell) in header.iter().zip(row) {
                let ours = kind(cell);
                assert!(
                    kinds[column].contains(ours),
                    "{suffix}, {column}: {cell:?} is {ours}; Locust writes {:?} there",
                    kinds[column]
                );
                if ours == "decimal" {
                    assert!(
                        decimal_as_locust_writes_it(history, column, cell),
                        "{suffix}, {column}: {cell:?} is not written as Locust writes it"
                    );
                }
            }
        }
        // Locust's own decimals pass the same check (it is not vacuous).
        for row in &their_rows[1..] {
            for (column, cell) in header.iter().zip(row) {
                if kind(cell) == "decimal" {
                    assert!(
                        decimal_as_locust_writes_it(history, column, cell),
                        "{column}: {cell}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_aggregated_only_history_is_written_as_locusts() {
    let _one = exclusive();
    let target = start_target(None);
    let scratch = Scratch::new();
    let scenario = scratch.file("mixed.rhai", MIXED);
    let prefix = scratch.path("agg");
    let url = format!("http://{}", target.addr());
    let ran = blast_in(
        scratch.dir.path(),
        &[],
        &[
            "run",
            "-s",
            scenario.to_str().unwrap(),
            "-H",
            &url,
            "-u",
            "2",
            "-t",
            "3s",
            "--cores",
            "1",
            "--csv",
            prefix.to_str().unwrap(),
        ],
    );
    // MIXED fails on purpose: exit 1.
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert_like_locusts(&prefix, "aggregated");
}
