//! A scenario file: compiled, its top level run to declare user types, and
//! validated, once on the main thread before any load and again on each
//! shard (a Rhai engine cannot cross threads).

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use blast_engine::http::Origin;
use blast_engine::{ScenarioBuilder, ShardScenario};
use rhai::{AST, Engine, EvalAltResult, ParseError, Position, Scope};

use crate::http_api::HttpContext;
use crate::language::{UserType, new_engine};
use crate::user::ShardScript;

/// A scenario that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {reason}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The script does not compile, fails at its top level, or declares
    /// something invalid.
    #[error("{location}: {message}")]
    Script {
        /// `file:line:column`.
        location: String,
        /// What is wrong, with a hint when there is one.
        message: String,
    },
}

/// `file:line:column` of a script position (`file` alone when unknown).
pub(crate) fn location(file: &str, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(line), Some(col)) => format!("{file}:{line}:{col}"),
        (Some(line), None) => format!("{file}:{line}"),
        _ => file.to_string(),
    }
}

/// The innermost error of a script failure: its message (without the
/// position Rhai appends) and its position.
pub(crate) fn innermost(e: &EvalAltResult) -> (&EvalAltResult, String, Position) {
    let inner = e.unwrap_inner();
    let pos = inner.position();
    let message = match inner {
        EvalAltResult::ErrorRuntime(value, _) if value.is_string() => value.to_string(),
        other => {
            let text = other.to_string();
            let suffix = format!(" ({pos})");
            text.strip_suffix(&suffix)
                .map(str::to_string)
                .unwrap_or(text)
        }
    };
    // Errors raised inside a function may carry no position of their own
    // (a stack overflow has none): the innermost call site's is the best
    // there is.
    let pos = if pos.is_none() {
        deepest_position(e)
    } else {
        pos
    };
    (inner, message, pos)
}

/// The innermost known position along a chain of errors in function calls.
fn deepest_position(e: &EvalAltResult) -> Position {
    let mut deepest = e.position();
    let mut at = e;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = at {
        if !inner.position().is_none() {
            deepest = inner.position();
        }
        at = inner;
    }
    deepest
}

fn script_error(file: &str, message: String, pos: Position) -> ScenarioError {
    ScenarioError::Script {
        location: location(file, pos),
        message,
    }
}

fn parse_error(file: &str, e: ParseError) -> ScenarioError {
    let ParseError(kind, pos) = e;
    script_error(file, kind.to_string(), pos)
}

fn eval_error(file: &str, e: &EvalAltResult) -> ScenarioError {
    let (_, message, pos) = innermost(e);
    script_error(file, message, pos)
}

/// A compiled scenario on one thread.
pub(crate) struct Compiled {
    pub(crate) engine: Engine,
    pub(crate) ast: AST,
    pub(crate) users: Vec<UserType>,
}

impl Compiled {
    /// Where script function `name` (without parameters) is defined.
    pub(crate) fn function_position(&self, name: &str) -> Position {
        self.ast
            .iter_fn_def()
            .find(|f| f.name == name && f.params.is_empty())
            .map_or(Position::NONE, |f| f.body.start_position())
    }
}

/// Compiles `source`, runs its top level and validates what it declared.
pub(crate) fn compile(
    file: &str,
    source: &str,
    origins: Vec<(blast_engine::http::Scheme, String)>,
) -> Result<Compiled, ScenarioError> {
    let http = Rc::new(HttpContext {
        origins,
        discarded: RefCell::default(),
    });
    let users = Rc::new(RefCell::new(Vec::new()));
    let engine = new_engine(http.clone(), users.clone());
    let mut ast = engine.compile(source).map_err(|e| parse_error(file, e))?;
    ast.set_source(file);
    *http.discarded.borrow_mut() = crate::discard::discarded_calls(&ast, source);
    engine
        .run_ast_with_scope(&mut Scope::new(), &ast)
        .map_err(|e| eval_error(file, &e))?;
    let users = users.take();
    if users.is_empty() {
        return Err(script_error(
            file,
            "the scenario declares no user type: add user(\"Name\", #{ tasks: [Fn(\"task\")] })"
                .into(),
            Position::NONE,
        ));
    }
    for user in &users {
        for task in &user.tasks {
            let found = ast.iter_functions().find(|f| f.name == task.function);
            match found {
                Some(f) if f.params.is_empty() => {}
                Some(f) => {
                    return Err(script_error(
                        file,
                        format!(
                            "task function {}() takes {} parameter(s); tasks take none (use `this` for user state)",
                            task.function,
                            f.params.len()
                        ),
                        user.position,
                    ));
                }
                None => {
                    let known: Vec<String> = ast
                        .iter_functions()
                        .map(|f| format!("{}()", f.name))
                        .collect();
                    return Err(script_error(
                        file,
                        format!(
                            "user type {:?} names task function {:?}, which the script does not define (defined: {})",
                            user.name,
                            task.function,
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                        user.position,
                    ));
                }
            }
        }
    }
    Ok(Compiled { engine, ast, users })
}

/// A scenario, checked on this thread and ready to be built on each shard.
#[derive(Clone, Debug)]
pub struct Scenario {
    file: String,
    source: Arc<str>,
    users: Vec<UserType>,
}

impl Scenario {
    /// Reads, compiles and validates the scenario at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let source = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Scenario::from_source(&path.display().to_string(), &source)
    }

    /// Compiles and validates `source`, naming it `file` in messages.
    pub fn from_source(file: &str, source: &str) -> Result<Scenario, ScenarioError> {
        let compiled = compile(file, source, Vec::new())?;
        Ok(Scenario {
            file: file.to_string(),
            source: Arc::from(source),
            users: compiled.users,
        })
    }

    /// The file name used in messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The declared user types.
    pub fn users(&self) -> &[UserType] {
        &self.users
    }

    /// What builds this scenario on each shard, with requests going to
    /// `origins` and users' random choices seeded from `seed` when given.
    pub fn builder(&self, origins: &[Origin], seed: Option<u64>) -> ScenarioBuilder {
        let file = self.file.clone();
        let source = self.source.clone();
        let origins: Vec<_> = origins
            .iter()
            .map(|o| (o.scheme, o.host_header.clone()))
            .collect();
        let seed = seed.unwrap_or_else(|| {
            // A fresh seed per run, the same on every shard.
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Arc::new(move |_shard| {
            let compiled = compile(&file, &source, origins.clone()).map_err(|e| e.to_string())?;
            Ok(Box::new(ShardScript::new(&file, compiled, seed)) as Box<dyn ShardScenario>)
        })
    }
}
