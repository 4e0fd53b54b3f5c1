//! Data files for `feed(file)`: CSV (first line: column names, unless
//! `header: false`) or JSON lines (one object per line), loaded once per
//! shard on first use.
//!
//! By default rows are dealt out fairly across shards and wrap: shard `s`
//! of `n` hands out rows `s, s + n, s + 2n, ...` in order, then starts over.
//! Users are spread over shards the same way (user `k` runs on shard
//! `k mod n`), so N users that each take one row of an N-row file get N
//! distinct rows, whatever the number of shards.
//!
//! With `cycle: false` a file runs out instead: every shard takes the next
//! row from one run-wide counter, so an N-row file hands out exactly N rows
//! in the whole run, each once, and then `()`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rhai::{Array, Dynamic, Map};

/// How a script reads a data file: `feed(file, #{ header, cycle })`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FeedOptions {
    /// The CSV file's first line names the columns (rows are maps); else
    /// every line is a row, given as an array.
    pub(crate) header: bool,
    /// Start over past the end; else the file runs out.
    pub(crate) cycle: bool,
}

impl Default for FeedOptions {
    fn default() -> FeedOptions {
        FeedOptions {
            header: true,
            cycle: true,
        }
    }
}

impl FeedOptions {
    /// Reads the options map of `feed(file, options)`.
    pub(crate) fn of(options: &Map) -> Result<FeedOptions, String> {
        let mut read = FeedOptions::default();
        for (key, value) in options {
            let flag = value
                .as_bool()
                .map_err(|t| format!("feed option {key} must be true or false, not {t}"));
            match key.as_str() {
                "header" => read.header = flag?,
                "cycle" => read.cycle = flag?,
                other => {
                    return Err(format!(
                        "unknown feed option {other:?} (known: header, cycle)"
                    ));
                }
            }
        }
        Ok(read)
    }
}

/// A data file as a script reads it: its path and options.
type FeedKey = (String, FeedOptions);

/// Where each file read with `cycle: false` is, shared by every shard of a
/// run.
#[derive(Clone, Default)]
pub(crate) struct RunCursors(Arc<Mutex<HashMap<FeedKey, Arc<AtomicUsize>>>>);

impl RunCursors {
    fn cursor(&self, key: &FeedKey) -> Arc<AtomicUsize> {
        let mut cursors = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cursors.entry(key.clone()).or_default().clone()
    }
}

struct Feed {
    rows: Vec<Dynamic>,
    /// This shard's next row (cycling feeds).
    next: usize,
    /// The run's next row (feeds that run out).
    cursor: Option<Arc<AtomicUsize>>,
}

/// The data files of one shard.
pub(crate) struct Feeds {
    dir: PathBuf,
    shard: usize,
    shards: usize,
    run: RunCursors,
    files: RefCell<HashMap<FeedKey, Feed>>,
}

impl Feeds {
    /// Feeds for `shard` of `shards`, with relative paths under `dir` (the
    /// scenario file's directory) and files that run out counted in `run`.
    pub(crate) fn new(dir: PathBuf, shard: usize, shards: usize, run: RunCursors) -> Feeds {
        Feeds {
            dir,
            shard,
            shards: shards.max(1),
            run,
            files: RefCell::new(HashMap::new()),
        }
    }

    /// Where a script's data file path points.
    pub(crate) fn resolve(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The next row of `file` for this shard; `()` once a file read with
    /// `cycle: false` has handed out all its rows.
    pub(crate) fn next(&self, file: &str, options: FeedOptions) -> Result<Dynamic, String> {
        let mut files = self.files.borrow_mut();
        let key = (file.to_string(), options);
        if !files.contains_key(&key) {
            let rows = load(&self.resolve(file), options.header)?;
            let cursor = (!options.cycle).then(|| self.run.cursor(&key));
            files.insert(
                key.clone(),
                Feed {
                    rows,
                    next: 0,
                    cursor,
                },
            );
        }
        let feed = files.get_mut(&key).expect("inserted above");
        let len = feed.rows.len();
        if let Some(cursor) = &feed.cursor {
            // Run-wide: each row once, whichever shard asks.
            let at = cursor.fetch_add(1, Ordering::Relaxed);
            return Ok(feed.rows.get(at).cloned().unwrap_or(Dynamic::UNIT));
        }
        // This shard's share: every `shards`-th row from its own index; a
        // file with fewer rows than shards is shared whole.
        let mine = if len >= self.shards {
            (len - self.shard).div_ceil(self.shards)
        } else {
            len
        };
        let at = feed.next % mine;
        feed.next += 1;
        let row = if len >= self.shards {
            self.shard + at * self.shards
        } else {
            (self.shard + at) % len
        };
        Ok(feed.rows[row].clone())
    }
}

/// Reads a data file: JSON lines when its name ends in `.jsonl` or
/// `.ndjson`, CSV otherwise (rows as maps named by the first line when
/// `header`, else as arrays). An empty file is an error.
pub(crate) fn load(path: &Path, header: bool) -> Result<Vec<Dynamic>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read data file {}: {e}", path.display()))?;
    let name = path.display().to_string();
    let rows: Vec<Dynamic> = if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        if !header {
            return Err(format!(
                "header: false is for CSV files; {name} is JSON lines, whose rows are objects"
            ));
        }
        json_lines(&text, &name)?
            .into_iter()
            .map(Dynamic::from_map)
            .collect()
    } else if header {
        csv(&text, &name)?
            .into_iter()
            .map(Dynamic::from_map)
            .collect()
    } else {
        csv_arrays(&text, &name)?
            .into_iter()
            .map(Dynamic::from_array)
            .collect()
    };
    if rows.is_empty() {
        return Err(format!("data file {name} has no rows"));
    }
    Ok(rows)
}

fn json_lines(text: &str, name: &str) -> Result<Vec<Map>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{name}:{}: not JSON: {e}", i + 1))?;
        if !value.is_object() {
            return Err(format!("{name}:{}: each line must be a JSON object", i + 1));
        }
        let row: Dynamic = rhai::serde::to_dynamic(value).map_err(|e| e.to_string())?;
        rows.push(row.cast::<Map>());
    }
    Ok(rows)
}

fn csv(text: &str, name: &str) -> Result<Vec<Map>, String> {
    let records = parse_csv(text).map_err(|(line, e)| format!("{name}:{line}: {e}"))?;
    let mut records = records.into_iter();
    let Some((_, header)) = records.next() else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for (line, fields) in records {
        if fields.len() == 1 && fields[0].is_empty() {
            continue;
        }
        if fields.len() != header.len() {
            return Err(format!(
                "{name}:{line}: {} field(s) where the header has {}",
                fields.len(),
                header.len()
            ));
        }
        let mut row = Map::new();
        for (key, value) in header.iter().zip(fields) {
            row.insert(key.as_str().into(), Dynamic::from(value));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Every line of a CSV file without a header, as an array of its fields.
fn csv_arrays(text: &str, name: &str) -> Result<Vec<Array>, String> {
    let records = parse_csv(text).map_err(|(line, e)| format!("{name}:{line}: {e}"))?;
    Ok(records
        .into_iter()
        .filter(|(_, fields)| !(fields.len() == 1 && fields[0].is_empty()))
        .map(|(_, fields)| fields.into_iter().map(Dynamic::from).collect())
        .collect())
}

/// A CSV record: the line it starts on, and its fields.
type Record = (usize, Vec<String>);

/// RFC 4180 records with the line each starts on: fields separated by
/// commas, optionally double-quoted (`""` inside quotes is a quote),
/// records ended by LF or CRLF.
fn parse_csv(text: &str) -> Result<Vec<Record>, (usize, &'static str)> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut start_line = 1;
    let mut quoted = false;
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',' | '\n' | '\r')) {
                        return Err((line, "text after a closing quote"));
                    }
                }
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                quoted = true;
                at_field_start = false;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                records.push((start_line, std::mem::take(&mut fields)));
                line += 1;
                start_line = line;
                at_field_start = true;
            }
            _ => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if quoted {
        return Err((start_line, "a quoted field is not closed"));
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        records.push((start_line, fields));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records_with_quotes() {
        let records = parse_csv("a,b\r\n1,\"x, \"\"y\"\"\"\n\"multi\nline\",2\n").unwrap();
        let fields: Vec<Vec<String>> = records.iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(
            fields,
            vec![
                vec!["a".to_string(), "b".into()],
                vec!["1".into(), "x, \"y\"".into()],
                vec!["multi\nline".into(), "2".into()],
            ]
        );
        assert_eq!(records[2].0, 3);
        assert!(parse_csv("\"open").is_err());
        assert!(parse_csv("\"a\"b,c").is_err());
    }

    #[test]
    fn rows_are_dealt_across_shards_without_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let rows: String = (0..10).map(|i| format!("{i},user{i}\n")).collect();
        std::fs::write(dir.path().join("users.csv"), format!("id,name\n{rows}")).unwrap();
        let shards = 3;
        let mut seen = Vec::new();
        let feeds: Vec<Feeds> = (0..shards)
            .map(|s| Feeds::new(dir.path().to_path_buf(), s, shards, RunCursors::default()))
            .collect();
        // User k runs on shard k % shards and takes one row.
        for k in 0..10 {
            let row = feeds[k % shards]
                .next("users.csv", FeedOptions::default())
                .unwrap()
                .cast::<Map>();
            seen.push(row["id"].clone().into_string().unwrap());
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 10);
        // Past the end, a shard starts over with its own rows.
        let again = feeds[1]
            .next("users.csv", FeedOptions::default())
            .unwrap()
            .cast::<Map>();
        assert_eq!(again["id"].clone().into_string().unwrap(), "1");
    }

    #[test]
    fn json_lines_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(&path, "{\"a\": 1}\n\n{\"a\": 2}\n").unwrap();
        assert_eq!(load(&path, true).unwrap().len(), 2);
        std::fs::write(&path, "{\"a\": 1}\n[1]\n").unwrap();
        assert!(load(&path, true).unwrap_err().contains("d.jsonl:2"));
        let csv = dir.path().join("d.csv");
        std::fs::write(&csv, "a,b\n1\n").unwrap();
        assert!(load(&csv, true).unwrap_err().contains("d.csv:2"));
        std::fs::write(&csv, "a,b\n").unwrap();
        assert!(load(&csv, true).unwrap_err().contains("no rows"));
        assert!(load(&dir.path().join("missing.csv"), true).is_err());
    }

    #[test]
    fn a_file_that_does_not_cycle_hands_out_each_row_once_across_shards() {
        let dir = tempfile::tempdir().unwrap();
        let rows: String = (0..10).map(|i| format!("{i}\n")).collect();
        std::fs::write(dir.path().join("ids.csv"), format!("id\n{rows}")).unwrap();
        let run = RunCursors::default();
        let once = FeedOptions {
            header: true,
            cycle: false,
        };
        let feeds: Vec<Feeds> = (0..3)
            .map(|s| Feeds::new(dir.path().to_path_buf(), s, 3, run.clone()))
            .collect();
        // Shards ask unevenly: shard 0 far more often than the others.
        let mut seen = Vec::new();
        let mut ran_out = 0;
        for k in 0..30 {
            let row = feeds[[0, 0, 0, 1, 2][k % 5]].next("ids.csv", once).unwrap();
            if row.is_unit() {
                ran_out += 1;
            } else {
                seen.push(row.cast::<Map>()["id"].clone().into_string().unwrap());
            }
        }
        assert_eq!(ran_out, 20);
        seen.sort_by_key(|id| id.parse::<u32>().unwrap());
        let all: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        assert_eq!(seen, all);
        // Another run starts from the top.
        let fresh = Feeds::new(dir.path().to_path_buf(), 0, 1, RunCursors::default());
        assert!(!fresh.next("ids.csv", once).unwrap().is_unit());
    }

    #[test]
    fn a_csv_without_a_header_gives_arrays_and_options_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("creds.csv"), "alice,pw1\nbob,pw2,extra\n").unwrap();
        let feeds = Feeds::new(dir.path().to_path_buf(), 0, 1, RunCursors::default());
        let plain = FeedOptions {
            header: false,
            cycle: true,
        };
        let first = feeds.next("creds.csv", plain).unwrap().cast::<Array>();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].clone().into_string().unwrap(), "alice");
        let second = feeds.next("creds.csv", plain).unwrap().cast::<Array>();
        assert_eq!(second.len(), 3);
        // With a header, the same file is read as maps named by its first line.
        assert!(load(&dir.path().join("creds.csv"), true).is_err());
        let mut options = Map::new();
        options.insert("header".into(), Dynamic::FALSE);
        options.insert("cycle".into(), Dynamic::FALSE);
        assert_eq!(
            FeedOptions::of(&options),
            Ok(FeedOptions {
                header: false,
                cycle: false
            })
        );
        options.insert("cylce".into(), Dynamic::FALSE);
        assert_eq!(
            FeedOptions::of(&options).unwrap_err(),
            "unknown feed option \"cylce\" (known: header, cycle)"
        );
        let mut bad = Map::new();
        bad.insert("header".into(), Dynamic::from("no"));
        assert!(FeedOptions::of(&bad).unwrap_err().contains("true or false"));
        let jsonl = dir.path().join("d.jsonl");
        std::fs::write(&jsonl, "{\"a\": 1}\n").unwrap();
        assert!(load(&jsonl, false).unwrap_err().contains("CSV"));
    }
}
