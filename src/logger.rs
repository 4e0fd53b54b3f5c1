//! Where log lines go: the script's `log()` and `print()` (info), Rhai's
//! `debug()` (debug), warnings and errors, from every crate through the
//! `log` facade. On stderr they look as they always have (a script's line
//! as it is, `warning: ...`); `--logfile` appends them to a file too, each
//! with its time and level, as Locust's does; `--loglevel` drops the lower
//! ones from both.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::cli::LogLevel;

/// The one logger of the process; [`configure`] sets where it writes.
struct Logger {
    file: Mutex<Option<File>>,
    /// Whether `file` holds one (read without the lock).
    has_file: AtomicBool,
}

static LOGGER: Logger = Logger {
    file: Mutex::new(None),
    has_file: AtomicBool::new(false),
};

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args();
        match record.level() {
            Level::Error => eprintln!("error: {message}"),
            Level::Warn => eprintln!("warning: {message}"),
            Level::Info | Level::Debug | Level::Trace => eprintln!("{message}"),
        }
        if self.has_file.load(Ordering::Relaxed) {
            // The line is made before the lock, and written with one call:
            // shards log from their own threads, so the lock is held only
            // for that write.
            let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
            let line = format!("[{now}] {}: {message}\n", level_name(record.level()));
            let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(file) = file.as_mut() {
                // A log line that cannot be written is not worth stopping a
                // run for; the file's trouble shows when it was opened.
                let _ = file.write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {
        if let Some(file) = self.file.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = file.flush();
        }
    }
}

/// Locust's name of a level.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug | Level::Trace => "DEBUG",
    }
}

/// The filter for `--loglevel`.
pub fn filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Warning => LevelFilter::Warn,
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Critical => LevelFilter::Off,
    }
}

/// Sends log lines at `level` and above to stderr and, when given, appended
/// to `file`. The logger is installed once per process; later calls (tests
/// run blast in-process) only change where it writes.
pub fn configure(level: LogLevel, file: Option<&Path>) -> anyhow::Result<()> {
    let file = match file {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("cannot open --logfile {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let _ = log::set_logger(&LOGGER);
    LOGGER.has_file.store(file.is_some(), Ordering::Relaxed);
    *LOGGER.file.lock().unwrap_or_else(|p| p.into_inner()) = file;
    log::set_max_level(filter(level));
    Ok(())
}
