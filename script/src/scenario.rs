//! A scenario file: compiled, its top level run to declare user types, and
//! validated, once on the main thread before any load and again on each
//! shard (a Rhai engine cannot cross threads).

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use blast_engine::http::Origins;
use blast_engine::{ScenarioBuilder, ShardScenario};
use rhai::{AST, ASTNode, Engine, EvalAltResult, Expr, ParseError, Position, Scope, Stmt};

use crate::data::{FeedOptions, Feeds, RunCursors};
use crate::declare::{Declared, TaskDef, TaskKind, UserType, WaitTime};
use crate::http_api::HttpContext;
use crate::language::{EngineContext, new_engine};
use crate::shape::{SHAPE_FUNCTION, Shape};
use crate::shared::{STORE_FUNCTIONS, SharedStore};
use crate::this_binding::{self, Renamed};
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
        EvalAltResult::ErrorUnboundThis(_) => "'this' not bound: only a user's functions \
            have `this` (its tasks, hooks and wait function, and the functions they call), \
            not the top level or shape()"
            .to_string(),
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
    /// User types the tag filter left without tasks, so dropped.
    pub(crate) dropped_users: Vec<String>,
    pub(crate) thresholds: Vec<String>,
    /// What `on_test_start` returned, for `test_data()`.
    pub(crate) test_data: Rc<RefCell<rhai::Dynamic>>,
    /// Functions renamed so that `this` reaches them (see `this_binding`).
    pub(crate) renamed: Renamed,
    /// The scenario defines `on_request(req)`.
    pub(crate) on_request: bool,
}

impl Compiled {
    /// Where script function `name` (without parameters) is defined.
    pub(crate) fn function_position(&self, name: &str) -> Position {
        let name = self.renamed.internal(name);
        self.ast
            .iter_fn_def()
            .find(|f| f.name == name && f.params.is_empty())
            .map_or(Position::NONE, |f| f.body.start_position())
    }
}

/// Where a compile happens: the run's origins (none on the main thread,
/// where nothing is sent), data files, and this shard's place.
pub(crate) struct CompileContext {
    pub(crate) origins: Option<Arc<Origins>>,
    pub(crate) dir: PathBuf,
    pub(crate) shard: usize,
    pub(crate) shards: usize,
    pub(crate) tags: TagFilter,
    /// Where the run's data files read with `cycle: false` are, shared by
    /// its shards.
    pub(crate) cursors: RunCursors,
    /// The node's `store::` (a throwaway one where nothing runs).
    pub(crate) shared: Arc<SharedStore>,
}

/// `--tags` / `--exclude-tags`, and the user types named on the command
/// line: what of the scenario runs.
#[derive(Clone, Debug, Default)]
pub struct TagFilter {
    /// Keep only tasks with one of these tags (all tasks when empty).
    pub include: Vec<String>,
    /// Drop tasks with one of these tags.
    pub exclude: Vec<String>,
    /// Keep only these user types (all when empty), with their weights and
    /// fixed counts (Locust's user classes on the command line).
    pub user_types: Vec<String>,
}

impl TagFilter {
    fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Refuses a tag that is no task's but a user type's name: `-T a b
    /// Shopper` takes every word up to the next flag as a tag (as Locust's
    /// does), so a user type meant to be run alone lands there.
    fn check_words(&self, users: &[UserType]) -> Result<(), String> {
        fn has_tag(tasks: &[TaskDef], tag: &str) -> bool {
            tasks.iter().any(|t| {
                t.tags.iter().any(|x| x == tag)
                    || matches!(&t.kind, TaskKind::Group(g) if has_tag(&g.tasks, tag))
            })
        }
        let words = self.include.iter().chain(&self.exclude);
        match words
            .filter(|w| users.iter().any(|u| &u.name == *w))
            .find(|w| !users.iter().any(|u| has_tag(&u.tasks, w)))
        {
            Some(word) => Err(format!(
                "--tags/--exclude-tags took {word:?}, a user type and no task's tag: to run only that type, name it before -T/-E or after `--`"
            )),
            None => Ok(()),
        }
    }

    /// Keeps the user types named in `user_types`, returning the names of
    /// the others; an unknown name is an error that lists the known ones.
    fn keep_user_types(&self, users: &mut Vec<UserType>) -> Result<Vec<String>, String> {
        if self.user_types.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(unknown) = self
            .user_types
            .iter()
            .find(|name| !users.iter().any(|u| &u.name == *name))
        {
            let known: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
            return Err(format!(
                "no user type {unknown:?} (named on the command line); the scenario's user types are {}",
                known.join(", ")
            ));
        }
        let dropped = users
            .iter()
            .filter(|u| !self.user_types.contains(&u.name))
            .map(|u| u.name.clone())
            .collect();
        users.retain(|u| self.user_types.contains(&u.name));
        Ok(dropped)
    }

    /// Filters `tasks` as Locust does: a task is kept when it (or a group it
    /// is in) has an included tag, or no include list is given, and none of
    /// its tags is excluded. Groups left empty go.
    fn apply(&self, tasks: &[TaskDef], included_above: bool) -> Vec<TaskDef> {
        let mut kept = Vec::new();
        for task in tasks {
            if task.tags.iter().any(|t| self.exclude.contains(t)) {
                continue;
            }
            let included = included_above
                || self.include.is_empty()
                || task.tags.iter().any(|t| self.include.contains(t));
            match &task.kind {
                TaskKind::Function(_) => {
                    if included {
                        kept.push(task.clone());
                    }
                }
                TaskKind::Group(group) => {
                    let inner = self.apply(&group.tasks, included);
                    if !inner.is_empty() {
                        let mut group = (**group).clone();
                        group.tasks = inner;
                        kept.push(TaskDef {
                            kind: TaskKind::Group(Arc::new(group)),
                            ..task.clone()
                        });
                    }
                }
            }
        }
        kept
    }
}

/// Names the language gives scripts besides registered functions.
const KEYWORD_FUNCTIONS: &[&str] = &[
    "Fn",
    "call",
    "curry",
    "type_of",
    "print",
    "debug",
    "is_def_fn",
    "is_def_var",
    "is_shared",
    "eval",
];

/// Functions of the `http::` module.
pub(crate) const HTTP_FUNCTIONS: &[&str] = &[
    "get", "post", "put", "delete", "head", "patch", "options", "request", "rest",
];

/// The closest of `known` to `name`, when close enough to be a typo.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    known: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    known
        .map(|k| (edit_distance(name, k), k))
        .filter(|&(d, k)| d <= 2.max(k.len() / 4) && d < name.len())
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Every function name a script can call: blast's, Rhai's and its own.
fn known_functions(engine: &Engine, ast: &AST) -> HashSet<String> {
    let mut known: HashSet<String> = engine
        .gen_fn_signatures(true)
        .iter()
        .filter_map(|sig| {
            let sig = sig.strip_prefix("pub ").unwrap_or(sig);
            let sig = sig.strip_prefix("fn ").unwrap_or(sig);
            sig.split('(').next().map(str::to_string)
        })
        .collect();
    known.extend(ast.iter_functions().map(|f| f.name.to_string()));
    known.extend(KEYWORD_FUNCTIONS.iter().map(|s| s.to_string()));
    known
}

/// Calls of functions neither the script nor blast defines: found before
/// any load, not when a user first reaches them.
fn check_calls(file: &str, known: &HashSet<String>, ast: &AST) -> Result<(), ScenarioError> {
    let mut unknown: Option<(String, Position)> = None;
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => Some((call, *pos)),
            Some(ASTNode::Expr(Expr::FnCall(call, pos))) => Some((call, *pos)),
            _ => None,
        };
        if let Some((call, pos)) = call
            && call.op_token.is_none()
            && unknown.is_none()
        {
            let name = call.name.as_str();
            let missing = if call.is_qualified() {
                (call.namespace.root() == "http" && !HTTP_FUNCTIONS.contains(&name))
                    || (call.namespace.root() == "store" && !STORE_FUNCTIONS.contains(&name))
            } else {
                !known.contains(name)
                    && name
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_alphabetic() || c == '_')
            };
            if missing {
                let qualified = if call.is_qualified() {
                    format!("{}::{name}", call.namespace.root())
                } else {
                    name.to_string()
                };
                unknown = Some((qualified, pos));
            }
        }
        unknown.is_none()
    });
    let Some((name, pos)) = unknown else {
        return Ok(());
    };
    let hint = match (name.strip_prefix("http::"), name.strip_prefix("store::")) {
        (Some(short), _) => did_you_mean(short, HTTP_FUNCTIONS.iter().copied())
            .map(|k| format!(" (did you mean http::{k}?)")),
        (_, Some(short)) => did_you_mean(short, STORE_FUNCTIONS.iter().copied())
            .map(|k| format!(" (did you mean store::{k}?)")),
        _ => did_you_mean(&name, known.iter().map(String::as_str))
            .map(|k| format!(" (did you mean {k}?)")),
    }
    .unwrap_or_else(|| {
        " (define it with `fn`, or see docs/scenario.md for blast's functions)".into()
    });
    Err(script_error(
        file,
        format!("unknown function {name}(){hint}"),
        pos,
    ))
}

/// `feed("literal")` calls whose file does not exist or cannot be read as
/// their options (when written out) say, or whose options are wrong.
fn check_data_files(file: &str, ast: &AST, feeds: &Feeds) -> Result<(), ScenarioError> {
    let mut missing: Option<(String, Position)> = None;
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::FnCall(call, pos)) | ASTNode::Stmt(Stmt::FnCall(call, pos))) =
            path.last()
            && call.name == "feed"
            && !call.is_qualified()
            && let Some(Expr::StringConstant(data, _)) = call.args.first()
            && missing.is_none()
        {
            let path = feeds.resolve(data);
            let checked = match call.args.get(1) {
                None => crate::data::load(&path, FeedOptions::default().header).map(drop),
                Some(Expr::DynamicConstant(value, _)) => match value.read_lock::<rhai::Map>() {
                    Some(map) => FeedOptions::of(&map)
                        .and_then(|options| crate::data::load(&path, options.header))
                        .map(drop),
                    None => Ok(()),
                },
                // Options known only at run time: how to read the file is
                // theirs to say, so only that it can be read is checked.
                Some(_) => std::fs::File::open(&path)
                    .map(drop)
                    .map_err(|e| format!("cannot read data file {}: {e}", path.display())),
            };
            if let Err(e) = checked {
                missing = Some((e, *pos));
            }
        }
        missing.is_none()
    });
    match missing {
        Some((message, pos)) => Err(script_error(file, message, pos)),
        None => Ok(()),
    }
}

/// Every function a user type names exists and takes no parameters.
fn check_functions(file: &str, ast: &AST, user: &UserType) -> Result<(), ScenarioError> {
    let mut names: Vec<(&str, String)> = Vec::new();
    fn tasks<'a>(list: &'a [TaskDef], out: &mut Vec<(&'a str, String)>) {
        for task in list {
            match &task.kind {
                TaskKind::Function(name) => out.push(("task function", name.clone())),
                TaskKind::Group(group) => {
                    if let Some(f) = &group.on_start {
                        out.push(("group on_start function", f.clone()));
                    }
                    if let Some(f) = &group.on_stop {
                        out.push(("group on_stop function", f.clone()));
                    }
                    if let Some(WaitTime::Custom(f)) = group.wait {
                        out.push(("wait function", f.to_string()));
                    }
                    tasks(&group.tasks, out)
                }
            }
        }
    }
    tasks(&user.tasks, &mut names);
    if let WaitTime::Custom(f) = user.wait {
        names.push(("wait function", f.to_string()));
    }
    if let Some(f) = &user.on_start {
        names.push(("on_start function", f.clone()));
    }
    if let Some(f) = &user.on_stop {
        names.push(("on_stop function", f.clone()));
    }
    for (what, name) in names {
        if name == SHAPE_FUNCTION {
            return Err(script_error(
                file,
                format!(
                    "{SHAPE_FUNCTION}() is the run's load shape, called by the controller every second; it cannot be the {what} of user type {:?}",
                    user.name
                ),
                user.position,
            ));
        }
        let found = ast.iter_functions().find(|f| f.name == name);
        match found {
            Some(f) if f.params.is_empty() => {}
            Some(f) => {
                return Err(script_error(
                    file,
                    format!(
                        "{what} {name}() takes {} parameter(s); it must take none (use `this` for user state)",
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
                        "user type {:?} names {what} {name:?}, which the script does not define (defined: {})",
                        user.name,
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
    Ok(())
}

/// `shape`, when defined, takes one parameter or two (Rhai would accept
/// any number and fail only when the controller first calls it).
fn check_shape(file: &str, ast: &AST) -> Result<(), ScenarioError> {
    match ast
        .iter_fn_def()
        .find(|f| f.name == SHAPE_FUNCTION && !matches!(f.params.len(), 1 | 2))
    {
        Some(f) => Err(script_error(
            file,
            format!(
                "{SHAPE_FUNCTION}() takes {} parameter(s); it must take the seconds since the run started, and optionally ctx: fn {SHAPE_FUNCTION}(elapsed) {{ ... }} or fn {SHAPE_FUNCTION}(elapsed, ctx) {{ ... }}",
                f.params.len()
            ),
            f.body.start_position(),
        )),
        None => Ok(()),
    }
}

/// `on_spawning_complete`, when defined, takes the user count or nothing.
fn check_spawning_hook(file: &str, ast: &AST) -> Result<(), ScenarioError> {
    let name = crate::user::SPAWNING_COMPLETE;
    match ast
        .iter_fn_def()
        .find(|f| f.name == name && f.params.len() > 1)
    {
        Some(f) => Err(script_error(
            file,
            format!(
                "{name}() takes {} parameter(s); it takes one, the number of users: fn {name}(user_count) {{ ... }}",
                f.params.len()
            ),
            f.body.start_position(),
        )),
        None => Ok(()),
    }
}

/// Compiles `source`, runs its top level and validates what it declared.
pub(crate) fn compile(
    file: &str,
    source: &str,
    context: CompileContext,
) -> Result<Compiled, ScenarioError> {
    let http = Rc::new(HttpContext {
        origins: context.origins,
        named: RefCell::default(),
        on_request: Default::default(),
        discarded: RefCell::default(),
    });
    let feeds = Rc::new(Feeds::new(
        context.dir,
        context.shard,
        context.shards,
        context.cursors,
    ));
    let engine_context = EngineContext {
        http: http.clone(),
        declared: Rc::new(RefCell::new(Declared::default())),
        feeds: feeds.clone(),
        test_data: Rc::new(RefCell::new(rhai::Dynamic::UNIT)),
        shared: context.shared,
    };
    let mut engine = new_engine(&engine_context);
    let mut ast = engine.compile(source).map_err(|e| parse_error(file, e))?;
    ast.set_source(file);
    let known = known_functions(&engine, &ast);
    check_calls(file, &known, &ast)?;
    // Unoptimized, map literals keep their keys and positions.
    engine.set_optimization_level(rhai::OptimizationLevel::None);
    let literal = engine.compile(source).map_err(|e| parse_error(file, e))?;
    engine.set_optimization_level(rhai::OptimizationLevel::Simple);
    if let Some((message, pos)) = crate::typos::find(&literal, &known) {
        return Err(script_error(file, message, pos));
    }
    check_shape(file, &ast)?;
    let on_request = crate::request_hook::defined(file, &ast)?;
    http.on_request.set(on_request);
    check_spawning_hook(file, &ast)?;
    check_data_files(file, &ast, &feeds)?;
    *http.discarded.borrow_mut() = crate::discard::discarded_calls(&ast, source);
    let mut top = Scope::new();
    engine
        .run_ast_with_scope(&mut top, &ast)
        .map_err(|e| eval_error(file, &e))?;
    // Tasks are called without running the top level again, so its
    // constants reach them as `global::NAME` through a module of that name.
    let mut constants = rhai::Module::new();
    for (name, constant, value) in top.iter_raw() {
        if constant {
            constants.set_var(name, value.clone());
        }
    }
    engine.register_static_module("global", constants.into());
    let Declared {
        mut users,
        thresholds,
    } = engine_context.declared.take();
    if users.is_empty() {
        return Err(script_error(
            file,
            "the scenario declares no user type: add user(\"Name\", #{ tasks: [Fn(\"task\")] })"
                .into(),
            Position::NONE,
        ));
    }
    for user in &users {
        check_functions(file, &ast, user)?;
    }
    context
        .tags
        .check_words(&users)
        .map_err(|message| script_error(file, message, Position::NONE))?;
    let (ast, renamed) = this_binding::bind(&mut engine, ast);
    let mut dropped_users = context
        .tags
        .keep_user_types(&mut users)
        .map_err(|message| script_error(file, message, Position::NONE))?;
    if !context.tags.is_empty() {
        for user in &mut users {
            user.tasks = context.tags.apply(&user.tasks, false);
        }
        dropped_users.extend(
            users
                .iter()
                .filter(|u| u.tasks.is_empty())
                .map(|u| u.name.clone()),
        );
        users.retain(|u| !u.tasks.is_empty());
        if users.is_empty() {
            return Err(script_error(
                file,
                format!(
                    "no task is left after --tags {:?} / --exclude-tags {:?}",
                    context.tags.include, context.tags.exclude
                ),
                Position::NONE,
            ));
        }
    }
    if !users.iter().any(|u| u.fixed_count.is_none())
        && users.iter().all(|u| u.fixed_count == Some(0))
    {
        return Err(script_error(
            file,
            "every user type has fixed_count: 0, so no user would run".into(),
            Position::NONE,
        ));
    }
    Ok(Compiled {
        engine,
        ast,
        users,
        dropped_users,
        thresholds,
        test_data: engine_context.test_data,
        renamed,
        on_request,
    })
}

/// A scenario, checked on this thread and ready to be built on each shard.
#[derive(Clone, Debug)]
pub struct Scenario {
    file: String,
    source: Arc<str>,
    dir: PathBuf,
    users: Vec<UserType>,
    thresholds: Vec<String>,
    tags: TagFilter,
    has_test_start: bool,
    has_test_stop: bool,
    has_shape: bool,
    literal_hosts: Vec<String>,
}

impl Scenario {
    /// Reads, compiles and validates the scenario at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::load_with_tags(path, TagFilter::default())
    }

    /// Like [`Scenario::load`], keeping only the tasks `tags` selects.
    pub fn load_with_tags(path: &Path, tags: TagFilter) -> Result<Scenario, ScenarioError> {
        let source = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Scenario::compile_main(&path.display().to_string(), &source, dir, tags)
    }

    /// Compiles and validates `source`, naming it `file` in messages; data
    /// files are looked up from the working directory.
    pub fn from_source(file: &str, source: &str) -> Result<Scenario, ScenarioError> {
        Scenario::compile_main(file, source, PathBuf::new(), TagFilter::default())
    }

    fn compile_main(
        file: &str,
        source: &str,
        dir: PathBuf,
        tags: TagFilter,
    ) -> Result<Scenario, ScenarioError> {
        let compiled = compile(
            file,
            source,
            CompileContext {
                origins: None,
                dir: dir.clone(),
                shard: 0,
                shards: 1,
                tags: tags.clone(),
                cursors: RunCursors::default(),
                shared: Arc::default(),
            },
        )?;
        Ok(Scenario {
            file: file.to_string(),
            source: Arc::from(source),
            dir,
            has_test_start: !compiled.function_position("on_test_start").is_none(),
            has_test_stop: !compiled.function_position("on_test_stop").is_none(),
            has_shape: compiled.ast.iter_fn_def().any(|f| f.name == SHAPE_FUNCTION),
            literal_hosts: crate::hosts::literal_hosts(&compiled.ast),
            users: compiled.users,
            thresholds: compiled.thresholds,
            tags,
        })
    }

    /// The file name used in messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The declared user types (after tag filtering).
    pub fn users(&self) -> &[UserType] {
        &self.users
    }

    /// Thresholds the scenario declares with `thresholds([...])`.
    pub fn thresholds(&self) -> &[String] {
        &self.thresholds
    }

    /// Whether the scenario defines `on_test_start()` / `on_test_stop()`.
    pub fn test_hooks(&self) -> (bool, bool) {
        (self.has_test_start, self.has_test_stop)
    }

    /// Whether the scenario defines `shape(elapsed)`, a load shape that
    /// sets the load every second instead of `-u`/`-r`.
    pub fn has_shape(&self) -> bool {
        self.has_shape
    }

    /// The scenario's load shape, compiled on this thread (Locust's
    /// `LoadTestShape`), or `None` when it defines no `shape` function.
    pub fn shape(&self) -> Result<Option<Shape>, ScenarioError> {
        if !self.has_shape {
            return Ok(None);
        }
        let compiled = compile(
            &self.file,
            &self.source,
            CompileContext {
                origins: None,
                dir: self.dir.clone(),
                shard: 0,
                shards: 1,
                tags: self.tags.clone(),
                cursors: RunCursors::default(),
                shared: Arc::default(),
            },
        )?;
        Ok(Some(Shape::new(&self.file, compiled)))
    }

    /// Host URLs user types set with `host`, beyond the run's own, in order
    /// of first use: they must be resolved and given to [`Scenario::builder`]
    /// after the run's host.
    pub fn extra_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = Vec::new();
        for user in &self.users {
            if let Some(host) = &user.host
                && !hosts.contains(host)
            {
                hosts.push(host.clone());
            }
        }
        hosts
    }

    /// Hosts the script names in absolute URLs (`scheme://authority`, in
    /// order of appearance): resolve them before the run, after
    /// [`Scenario::extra_hosts`], so a first request does not wait for a
    /// lookup. Any other host is resolved on first use.
    pub fn literal_hosts(&self) -> &[String] {
        &self.literal_hosts
    }

    /// What builds this scenario on each of `shards` shards, with requests
    /// going to `origins` (the run's host first, then
    /// [`Scenario::extra_hosts`]; the node's own table, which hosts named
    /// during the run join) and users' random choices seeded from `seed`
    /// when given.
    pub fn builder(
        &self,
        origins: &Arc<Origins>,
        seed: Option<u64>,
        shards: usize,
    ) -> ScenarioBuilder {
        let file = self.file.clone();
        let source = self.source.clone();
        let dir = self.dir.clone();
        let tags = self.tags.clone();
        let extra = self.extra_hosts();
        // One store for the node: every shard's engine shares it.
        let store = Arc::new(SharedStore::default());
        let origins = origins.clone();
        let seed = seed.unwrap_or_else(|| {
            // A fresh seed per run, the same on every shard.
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        let cursors = RunCursors::default();
        Arc::new(move |shard| {
            let compiled = compile(
                &file,
                &source,
                CompileContext {
                    origins: Some(origins.clone()),
                    dir: dir.clone(),
                    shard,
                    shards,
                    tags: tags.clone(),
                    cursors: cursors.clone(),
                    shared: store.clone(),
                },
            )
            .map_err(|e| e.to_string())?;
            let type_origins = compiled
                .users
                .iter()
                .map(|u| {
                    u.host
                        .as_ref()
                        .and_then(|h| extra.iter().position(|e| e == h))
                        .map_or(0, |i| (i + 1) as u16)
                })
                .collect();
            Ok(Box::new(ShardScript::new(
                &file,
                compiled,
                seed,
                type_origins,
                shards,
            )) as Box<dyn ShardScenario>)
        })
    }
}
