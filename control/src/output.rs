//! Where a report file goes, and how it is written there without ever
//! replacing what the user named: `-` is standard output; a symbolic link
//! is followed, so the link stays and its target gets the report; a FIFO,
//! a character device or standard output itself is written to directly;
//! only a regular file (or a new one) is written through a temporary file
//! and a rename, so a reader never sees half a report.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::plan::RunPlan;

/// The path that means standard output (`--json -`), as in Locust.
pub const STDOUT_PATH: &str = "-";

/// How many links [`OutputFile::resolve`] follows before it gives up (as
/// Linux's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// Where one output goes, decided when it is about to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputFile {
    /// Standard output: `-`, or a path that names the file standard output
    /// already is (`/dev/stdout`, a tty, a file it was redirected to).
    Stdout,
    /// Something that is not a regular file (a FIFO, a character device):
    /// opened and written, never replaced.
    Special(PathBuf),
    /// A regular file, or none yet: this path (a link's final target) is
    /// replaced through `PATH.tmp` and a rename.
    Regular(PathBuf),
}

impl OutputFile {
    /// Decides where `path` goes (see [`OutputFile`]).
    pub fn resolve(path: &Path) -> io::Result<OutputFile> {
        if path.as_os_str() == STDOUT_PATH {
            return Ok(OutputFile::Stdout);
        }
        match std::fs::metadata(path) {
            Ok(meta) if is_stdout(&meta) => Ok(OutputFile::Stdout),
            Ok(meta) if !meta.is_file() => Ok(OutputFile::Special(path.to_path_buf())),
            // A regular file, through links or not: replace the file, not
            // the link to it.
            Ok(_) => Ok(OutputFile::Regular(std::fs::canonicalize(path)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Ok(OutputFile::Regular(final_target(path)?))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether a report rewritten as a run goes (the CSV tables) may be
    /// rewritten here; a stream gets it once, at the end.
    pub fn rewritable(&self) -> bool {
        matches!(self, OutputFile::Regular(_))
    }

    /// Writes `bytes` as the whole report.
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        match self {
            OutputFile::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            OutputFile::Special(path) => {
                OpenOptions::new().write(true).open(path)?.write_all(bytes)
            }
            OutputFile::Regular(path) => write_through_temp(path, bytes),
        }
    }
}

/// Writes `bytes` to `path` as [`OutputFile::resolve`] says.
pub fn write_output(path: &Path, bytes: &[u8]) -> io::Result<()> {
    OutputFile::resolve(path)?.write(bytes)
}

/// Whether `path` is standard output (then the human output goes to
/// standard error, to leave standard output to the report).
pub fn is_stdout_path(path: &Path) -> bool {
    matches!(OutputFile::resolve(path), Ok(OutputFile::Stdout))
}

/// Whether `plan` writes a report (`--json`, `--html`) to standard output:
/// then the live table, the summary and the verdicts go to standard error.
pub fn reports_on_stdout(plan: &RunPlan) -> bool {
    [plan.json.as_deref(), plan.outputs.html.as_deref()]
        .into_iter()
        .flatten()
        .any(is_stdout_path)
}

/// Prints human output (a table, a summary) where [`reports_on_stdout`]
/// leaves room for it.
pub fn print_human(reports_on_stdout: bool, text: &str) {
    if reports_on_stdout {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// Whether `meta` is the file this process's standard output is.
fn is_stdout(meta: &std::fs::Metadata) -> bool {
    let Ok(fd) = io::stdout().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(out) = File::from(fd).metadata() else {
        return false;
    };
    out.dev() == meta.dev() && out.ino() == meta.ino()
}

/// Where a path that does not exist yet will be: itself, or the last
/// target of the (dangling) links it starts.
fn final_target(path: &Path) -> io::Result<PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&at)?;
                at = match at.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            _ => return Ok(at),
        }
    }
    Err(io::Error::other(format!(
        "more than {MAX_LINKS} symbolic links from {}",
        path.display()
    )))
}

/// Writes `bytes` to `path` through `PATH.tmp` beside it (a rename stays
/// on one file system), creating the directory.
fn write_through_temp(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_stays_a_link_and_its_target_gets_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        std::fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        write_output(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert!(!dir.path().join("link.json.tmp").exists());
    }

    #[test]
    fn a_dangling_link_creates_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("sub/real.json", &link).unwrap();
        write_output(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sub/real.json")).unwrap(),
            "new"
        );
    }

    #[test]
    fn a_link_loop_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::os::unix::fs::symlink("b", &a).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("b")).unwrap();
        assert!(write_output(&a, b"x").is_err());
    }

    #[test]
    fn a_character_device_is_written_not_replaced() {
        let null = Path::new("/dev/null");
        // Unless this test's own standard output is /dev/null.
        let expected = if is_stdout(&std::fs::metadata(null).unwrap()) {
            OutputFile::Stdout
        } else {
            OutputFile::Special(null.to_path_buf())
        };
        assert_eq!(OutputFile::resolve(null).unwrap(), expected);
        write_output(null, b"gone").unwrap();
        assert!(!std::fs::metadata(null).unwrap().is_file());
    }

    #[test]
    fn a_new_or_regular_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/report.json");
        assert!(OutputFile::resolve(&path).unwrap().rewritable());
        write_output(&path, b"one, longer").unwrap();
        write_output(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(
            OutputFile::resolve(Path::new("-")).unwrap(),
            OutputFile::Stdout
        );
    }
}
