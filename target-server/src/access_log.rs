//! The optional access log: one `METHOD PATH STATUS` line per counted request.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use hyper::{Method, StatusCode};

use crate::TargetError;

/// An append-only, buffered access log.
///
/// Lines reach the file when the buffer fills and when the server stops, so
/// the log is complete only after [`crate::Target::stop`].
#[derive(Debug)]
pub(crate) struct AccessLog {
    file: Mutex<BufWriter<File>>,
}

impl AccessLog {
    /// Opens `path` for appending, creating it if needed.
    pub(crate) fn open(path: &Path) -> Result<Self, TargetError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|reason| TargetError::AccessLog {
                path: path.to_owned(),
                reason,
            })?;
        Ok(AccessLog {
            file: Mutex::new(BufWriter::with_capacity(64 * 1024, file)),
        })
    }

    /// Appends one line. A write error (disk full) is dropped: the log must
    /// not fail the request it describes, and the counts stay exact anyway.
    pub(crate) fn record(&self, method: &Method, path: &str, status: StatusCode) {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(file, "{} {} {}", method, path, status.as_u16());
    }

    /// Writes out what is buffered.
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_lines_and_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "GET /old 200\n").unwrap();
        let log = AccessLog::open(&path).unwrap();
        log.record(&Method::GET, "/a", StatusCode::OK);
        log.record(&Method::POST, "/items", StatusCode::CREATED);
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "GET /old 200\nGET /a 200\nPOST /items 201\n");
    }

    #[test]
    fn open_failure_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("access.log");
        let err = AccessLog::open(&path).unwrap_err();
        assert!(matches!(err, TargetError::AccessLog { .. }));
        assert!(err.to_string().contains("missing-dir"), "{err}");
    }
}
