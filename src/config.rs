//! Settings for `blast run` from three places, with Locust's precedence:
//! a TOML file (`blast.toml` in the working directory, or `--config FILE`)
//! < `BLAST_*` environment variables < the command line.
//!
//! Every `run` flag has an environment variable, named from its long name
//! (`--spawn-rate` → `BLAST_SPAWN_RATE`), and a key in the file (the long
//! name: `spawn-rate = 10`, or `spawn_rate`). clap reads the command line
//! and the environment; a file value is used only for flags that neither
//! set: those are added to the command line before it is parsed again, so
//! every value goes through the same parser. `--print-config` prints the
//! merged settings as TOML, each with where it came from.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_FILE: &str = "blast.toml";

/// `run` arguments that have no environment variable and no file key.
const NOT_SETTINGS: [&str; 5] = ["help", "version", "print_config", "config", "user_types"];

/// What the command line asks for, once the file and environment are in.
#[derive(Debug)]
pub enum Invocation {
    /// Run a subcommand.
    Command(Box<Cli>),
    /// `run --print-config`: print this TOML and exit.
    PrintConfig(String),
}

/// Why the command line could not be read.
#[derive(Debug)]
pub enum ParseError {
    /// From the argument parser (usage errors, `--help`, `--version`).
    Clap(clap::Error),
    /// A bad config file: `file:line: what is wrong`.
    Config(String),
}

impl From<clap::Error> for ParseError {
    fn from(e: clap::Error) -> ParseError {
        ParseError::Clap(e)
    }
}

/// The environment variable of a `run` flag: `--spawn-rate` →
/// `BLAST_SPAWN_RATE`.
pub fn env_name(long: &str) -> String {
    format!("BLAST_{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// blast's command line, with a `BLAST_*` environment variable on every
/// `run` flag (and the built-in target's endpoints in `target --help`).
pub fn command() -> Command {
    let cli = Cli::command().mut_subcommand("target", |target| {
        target.after_help(blast_target::endpoints_help())
    });
    cli.mut_subcommand("run", |run| {
        let settings: Vec<(String, String)> = run
            .get_arguments()
            .filter(|a| !NOT_SETTINGS.contains(&a.get_id().as_str()))
            .filter_map(|a| Some((a.get_id().to_string(), env_name(a.get_long()?))))
            .collect();
        settings
            .into_iter()
            .fold(run, |run, (id, env)| run.mut_arg(id, |a| a.env(env)))
    })
}

/// The `run` subcommand of `cmd`.
fn run_command(cmd: &Command) -> &Command {
    cmd.find_subcommand("run")
        .expect("blast has a run subcommand")
}

/// Parses `args` (the first is the program name): the command line and the
/// environment, then, for `run`, the config file.
pub fn parse(args: &[OsString]) -> Result<Invocation, ParseError> {
    let cmd = command();
    let matches = cmd.clone().try_get_matches_from(args)?;
    let Some(run_matches) = matches.subcommand_matches("run") else {
        return Ok(Invocation::Command(Box::new(Cli::from_arg_matches(
            &matches,
        )?)));
    };
    let file = match run_matches.get_one::<PathBuf>("config") {
        Some(path) => Some(ConfigFile::load(path)?),
        None if Path::new(DEFAULT_FILE).is_file() => {
            Some(ConfigFile::load(Path::new(DEFAULT_FILE))?)
        }
        None => None,
    };
    let (args, from_file) = match &file {
        Some(file) => with_file_settings(&cmd, run_matches, file, args)?,
        None => (args.to_vec(), Vec::new()),
    };
    let matches = cmd.clone().try_get_matches_from(&args)?;
    let run_matches = matches
        .subcommand_matches("run")
        .expect("the same command line names run again");
    if run_matches.get_flag("print_config") {
        return Ok(Invocation::PrintConfig(print_config(
            run_command(&cmd),
            run_matches,
            file.as_ref()
                .map(|f| (f.name.as_str(), from_file.as_slice())),
        )));
    }
    Ok(Invocation::Command(Box::new(Cli::from_arg_matches(
        &matches,
    )?)))
}

/// A parsed config file.
struct ConfigFile {
    /// As the user named it, for messages.
    name: String,
    text: String,
    entries: BTreeMap<String, toml::Spanned<toml::Value>>,
}

impl ConfigFile {
    fn load(path: &Path) -> Result<ConfigFile, ParseError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ParseError::Config(format!("cannot read config file {name}: {e}")))?;
        let entries = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start));
            let at = line.map(|l| format!(":{l}")).unwrap_or_default();
            ParseError::Config(format!(
                "{name}{at}: not valid TOML: {}",
                e.message().trim_end()
            ))
        })?;
        Ok(ConfigFile {
            name,
            text,
            entries,
        })
    }

    fn line(&self, value: &toml::Spanned<toml::Value>) -> usize {
        line_of(&self.text, value.span().start)
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The `run` flag a file key names: its long name, with `_` or `-`, or its
/// field name (`thresholds` for `--threshold`).
fn find_setting<'a>(run: &'a Command, key: &str) -> Option<&'a Arg> {
    let dashed = key.replace('_', "-");
    run.get_arguments()
        .filter(|a| !NOT_SETTINGS.contains(&a.get_id().as_str()))
        .find(|a| a.get_long() == Some(dashed.as_str()) || a.get_id().as_str() == key)
}

/// A file value as command-line values.
fn values_of(key: &str, arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "{key} takes a string or a number, not {}",
            other.type_str()
        )),
    };
    match (arg.get_action(), value) {
        (ArgAction::SetTrue, toml::Value::Boolean(b)) => {
            Ok(if *b { vec![String::new()] } else { vec![] })
        }
        (ArgAction::SetTrue, other) => Err(format!(
            "{key} is a switch: write {key} = true or false, not {}",
            other.type_str()
        )),
        (ArgAction::Append, toml::Value::Array(items)) => items.iter().map(scalar).collect(),
        (_, toml::Value::Array(_)) => Err(format!("{key} takes one value, not a list")),
        (_, v) => Ok(vec![scalar(v)?]),
    }
}

/// The first line of a clap error, without its `error: `.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// `args` with the file's settings for every flag the command line and the
/// environment left unset; and the long names of those flags.
fn with_file_settings(
    cmd: &Command,
    run_matches: &ArgMatches,
    file: &ConfigFile,
    args: &[OsString],
) -> Result<(Vec<OsString>, Vec<String>), ParseError> {
    let run = run_command(cmd);
    let mut tokens: Vec<OsString> = Vec::new();
    let mut from_file = Vec::new();
    for (key, value) in &file.entries {
        let line = file.line(value);
        let at = format!("{}:{line}", file.name);
        let Some(arg) = find_setting(run, key) else {
            let hint = if key == "config" || key == "print-config" || key == "print_config" {
                format!("{key} cannot be set in a config file")
            } else {
                format!(
                    "unknown key {key:?}: keys are the long names of `blast run` flags, such as users, spawn-rate, run-time, host, csv, threshold"
                )
            };
            return Err(ParseError::Config(format!("{at}: {hint}")));
        };
        let id = arg.get_id().as_str();
        if matches!(
            run_matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let long = arg.get_long().expect("settings have long names");
        let values = values_of(key, arg, value.get_ref())
            .map_err(|m| ParseError::Config(format!("{at}: {m}")))?;
        for v in values {
            let token = if v.is_empty() && matches!(arg.get_action(), ArgAction::SetTrue) {
                format!("--{long}")
            } else {
                format!("--{long}={v}")
            };
            // Each value alone through the real parser, so a bad one is
            // reported at its line.
            if let Err(e) = cmd
                .clone()
                .try_get_matches_from(["blast", "run", token.as_str()])
            {
                return Err(ParseError::Config(format!(
                    "{at}: {key}: {}",
                    clap_message(&e)
                )));
            }
            tokens.push(token.into());
        }
        from_file.push(long.to_string());
    }
    let run_at = args
        .iter()
        .skip(1)
        .position(|a| a == "run")
        .map_or(args.len(), |i| i + 2);
    let mut merged = args[..run_at].to_vec();
    merged.extend(tokens);
    merged.extend_from_slice(&args[run_at..]);
    Ok((merged, from_file))
}

/// A command-line value as TOML: numbers bare, anything else a string.
fn toml_scalar(value: &str) -> String {
    let number = value.parse::<i64>().is_ok()
        || (value.parse::<f64>().is_ok_and(f64::is_finite)
            && value
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-'));
    if number {
        value.to_string()
    } else {
        toml::Value::String(value.to_string()).to_string()
    }
}

/// The merged settings as TOML: every `run` flag with its value and where
/// it came from; flags with no value as comments.
fn print_config(run: &Command, matches: &ArgMatches, file: Option<(&str, &[String])>) -> String {
    let mut out =
        String::from("# blast run settings: config file < BLAST_* environment < command line\n");
    if let Some((name, _)) = file {
        let _ = writeln!(out, "# config file: {name}");
    }
    for arg in run
        .get_arguments()
        .filter(|a| !NOT_SETTINGS.contains(&a.get_id().as_str()))
    {
        let Some(long) = arg.get_long() else { continue };
        let id = arg.get_id().as_str();
        let origin = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => match file {
                Some((name, keys)) if keys.iter().any(|k| k == long) => name.to_string(),
                _ => "command line".to_string(),
            },
            Some(ValueSource::EnvVariable) => env_name(long),
            Some(ValueSource::DefaultValue) => "default".to_string(),
            Some(_) | None => {
                let _ = writeln!(out, "# {long} is not set");
                continue;
            }
        };
        let value = if matches!(arg.get_action(), ArgAction::SetTrue) {
            matches.get_flag(id).to_string()
        } else {
            let raw: Vec<String> = matches
                .get_raw(id)
                .into_iter()
                .flatten()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            if matches!(arg.get_action(), ArgAction::Append) {
                let items: Vec<String> = raw.iter().map(|v| toml_scalar(v)).collect();
                format!("[{}]", items.join(", "))
            } else {
                match raw.first() {
                    Some(v) => toml_scalar(v),
                    None => {
                        let _ = writeln!(out, "# {long} is not set");
                        continue;
                    }
                }
            }
        };
        let line = format!("{long} = {value}");
        let _ = writeln!(out, "{line:<40} # {origin}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn every_run_flag_has_an_environment_variable() {
        let cmd = command();
        let run = run_command(&cmd);
        for arg in run.get_arguments() {
            let id = arg.get_id().as_str();
            if NOT_SETTINGS.contains(&id) {
                assert!(arg.get_env().is_none(), "{id}");
                continue;
            }
            let long = arg.get_long().unwrap();
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(env_name(long).as_str()),
                "{id}"
            );
        }
        assert_eq!(env_name("spawn-rate"), "BLAST_SPAWN_RATE");
    }

    #[test]
    fn file_keys_name_run_flags() {
        let cmd = command();
        let run = run_command(&cmd);
        for key in [
            "users",
            "spawn-rate",
            "spawn_rate",
            "run-time",
            "threshold",
            "thresholds",
            "csv-full-history",
        ] {
            assert!(find_setting(run, key).is_some(), "{key}");
        }
        for key in ["userz", "config", "print-config", "help"] {
            assert!(find_setting(run, key).is_none(), "{key}");
        }
    }

    #[test]
    fn file_values_become_command_line_values() {
        let cmd = command();
        let run = run_command(&cmd);
        let value = |text: &str| -> toml::Value {
            let t: toml::Table = toml::from_str(&format!("v = {text}")).unwrap();
            t["v"].clone()
        };
        let users = find_setting(run, "users").unwrap();
        assert_eq!(values_of("users", users, &value("100")).unwrap(), ["100"]);
        let rate = find_setting(run, "spawn-rate").unwrap();
        assert_eq!(
            values_of("spawn-rate", rate, &value("2.5")).unwrap(),
            ["2.5"]
        );
        let tags = find_setting(run, "tags").unwrap();
        assert_eq!(
            values_of("tags", tags, &value("[\"a\", \"b\"]")).unwrap(),
            ["a", "b"]
        );
        let insecure = find_setting(run, "insecure").unwrap();
        assert_eq!(
            values_of("insecure", insecure, &value("true")).unwrap(),
            [""]
        );
        assert!(
            values_of("insecure", insecure, &value("false"))
                .unwrap()
                .is_empty()
        );
        assert!(
            values_of("insecure", insecure, &value("\"yes\""))
                .unwrap_err()
                .contains("is a switch")
        );
        assert!(
            values_of("users", users, &value("[1, 2]"))
                .unwrap_err()
                .contains("one value")
        );
        assert!(
            values_of("users", users, &value("{ a = 1 }"))
                .unwrap_err()
                .contains("not table")
        );
    }

    #[test]
    fn toml_scalars() {
        assert_eq!(toml_scalar("100"), "100");
        assert_eq!(toml_scalar("2.5"), "2.5");
        assert_eq!(toml_scalar("30s"), "\"30s\"");
        assert_eq!(toml_scalar("inf"), "\"inf\"");
        for text in ["a \"b\"", "it's", "back\\slash", "x = 1\ny"] {
            let parsed: toml::Table =
                toml::from_str(&format!("v = {}", toml_scalar(text))).unwrap();
            assert_eq!(parsed["v"].as_str(), Some(text));
        }
    }

    #[test]
    fn file_tags_leave_the_user_types_on_the_command_line_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.toml");
        std::fs::write(&file, "tags = [\"a\", \"b\"]\nexclude-tags = \"c\"\n").unwrap();
        let file = file.to_str().unwrap();
        let Invocation::Command(cli) =
            parse(&os(&["blast", "run", "--config", file, "Shopper", "Admin"])).unwrap()
        else {
            panic!("a command");
        };
        let crate::cli::Command::Run(args) = cli.command else {
            panic!("run");
        };
        assert_eq!(args.tags.tags, ["a", "b"]);
        assert_eq!(args.tags.exclude_tags, ["c"]);
        assert_eq!(args.user_types, ["Shopper", "Admin"]);
    }

    #[test]
    fn other_subcommands_parse_as_before() {
        match parse(&os(&["blast", "check", "-s", "x.rhai"])).unwrap() {
            Invocation::Command(cli) => {
                assert!(matches!(cli.command, crate::cli::Command::Check(_)))
            }
            other => panic!("{other:?}"),
        }
    }
}
