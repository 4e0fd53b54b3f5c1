//! Data files for `feed(file)`: CSV (first line: column names) or JSON lines
//! (one object per line), loaded once per shard on first use.
//!
//! Rows are dealt out fairly across shards: shard `s` of `n` hands out rows
//! `s, s + n, s + 2n, ...` in order, then starts over. Users are spread over
//! shards the same way (user `k` runs on shard `k mod n`), so N users that
//! each take one row of an N-row file get N distinct rows, whatever the
//! number of shards.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rhai::{Dynamic, Map};

struct Feed {
    rows: Vec<Map>,
    next: usize,
}

/// The data files of one shard.
pub(crate) struct Feeds {
    dir: PathBuf,
    shard: usize,
    shards: usize,
    files: RefCell<HashMap<String, Feed>>,
}

impl Feeds {
    /// Feeds for `shard` of `shards`, with relative paths under `dir` (the
    /// scenario file's directory).
    pub(crate) fn new(dir: PathBuf, shard: usize, shards: usize) -> Feeds {
        Feeds {
            dir,
            shard,
            shards: shards.max(1),
            files: RefCell::new(HashMap::new()),
        }
    }

    /// Where a script's data file path points.
    pub(crate) fn resolve(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The next row of `file` for this shard.
    pub(crate) fn next(&self, file: &str) -> Result<Dynamic, String> {
        let mut files = self.files.borrow_mut();
        if !files.contains_key(file) {
            let rows = load(&self.resolve(file))?;
            files.insert(file.to_string(), Feed { rows, next: 0 });
        }
        let feed = files.get_mut(file).expect("inserted above");
        let len = feed.rows.len();
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
        Ok(Dynamic::from_map(feed.rows[row].clone()))
    }
}

/// Reads a data file: JSON lines when its name ends in `.jsonl` or
/// `.ndjson`, CSV otherwise. An empty file is an error.
pub(crate) fn load(path: &Path) -> Result<Vec<Map>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read data file {}: {e}", path.display()))?;
    let name = path.display().to_string();
    let rows = if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        json_lines(&text, &name)?
    } else {
        csv(&text, &name)?
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
            .map(|s| Feeds::new(dir.path().to_path_buf(), s, shards))
            .collect();
        // User k runs on shard k % shards and takes one row.
        for k in 0..10 {
            let row = feeds[k % shards].next("users.csv").unwrap().cast::<Map>();
            seen.push(row["id"].clone().into_string().unwrap());
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 10);
        // Past the end, a shard starts over with its own rows.
        let again = feeds[1].next("users.csv").unwrap().cast::<Map>();
        assert_eq!(again["id"].clone().into_string().unwrap(), "1");
    }

    #[test]
    fn json_lines_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(&path, "{\"a\": 1}\n\n{\"a\": 2}\n").unwrap();
        assert_eq!(load(&path).unwrap().len(), 2);
        std::fs::write(&path, "{\"a\": 1}\n[1]\n").unwrap();
        assert!(load(&path).unwrap_err().contains("d.jsonl:2"));
        let csv = dir.path().join("d.csv");
        std::fs::write(&csv, "a,b\n1\n").unwrap();
        assert!(load(&csv).unwrap_err().contains("d.csv:2"));
        std::fs::write(&csv, "a,b\n").unwrap();
        assert!(load(&csv).unwrap_err().contains("no rows"));
        assert!(load(&dir.path().join("missing.csv")).is_err());
    }
}
