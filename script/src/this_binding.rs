//! Makes `this` reach helper functions: a function a task calls with the
//! ordinary call syntax (`helper(x)`) sees the same `this` as the task.
//!
//! Rhai binds `this` only for method calls (`this.helper(x)`); an ordinary
//! call leaves it unbound ("'this' not bound"). Rhai's AST cannot be
//! rewritten from outside (function bodies are not reachable), so each
//! function that uses `this` (itself or through functions it calls) and is
//! called the ordinary way is renamed, and a native function with its old
//! name and arity calls the renamed one as a method on the running user's
//! `this`. The user's `this` is a shared value, so the task and its helpers
//! change the same map. Where no user runs (the shape, the top level), the
//! helper is called without `this`, as before. Positions are untouched: the
//! renamed function keeps its body.

use std::any::TypeId;
use std::collections::{HashMap, HashSet};

use rhai::{AST, ASTNode, Dynamic, Engine, Expr, Module, Position, Stmt};

use crate::request_hook::ON_REQUEST;
use crate::shape::SHAPE_FUNCTION;
use crate::user::with_ctx;

/// A script function: its name and number of parameters.
type FnKey = (String, usize);

/// What renaming did: old name and arity to new name.
#[derive(Default)]
pub(crate) struct Renamed(HashMap<FnKey, String>);

impl Renamed {
    /// The name function `name` (without parameters) has in the AST now.
    pub(crate) fn internal<'a>(&'a self, name: &'a str) -> &'a str {
        self.0
            .get(&(name.to_string(), 0))
            .map_or(name, String::as_str)
    }
}

/// The ranges of a script's function bodies, to tell which function a
/// node belongs to.
pub(crate) struct Bodies {
    ranges: Vec<(Position, Position, FnKey)>,
}

impl Bodies {
    pub(crate) fn of(ast: &AST) -> Bodies {
        Bodies {
            ranges: ast
                .iter_fn_def()
                .map(|f| {
                    // A closure without braces (`|r| r.id`) has no end
                    // position: its body ends at its last node.
                    let end = if f.body.end_position().is_none() {
                        last_position(f)
                    } else {
                        f.body.end_position()
                    };
                    (
                        f.body.start_position(),
                        end,
                        (f.name.to_string(), f.params.len()),
                    )
                })
                .collect(),
        }
    }

    /// The index (in `ast.iter_fn_def()` order) of the function whose body
    /// holds `pos`; `None` at the top level. Closures are functions whose
    /// body is inside another's: a node belongs to the innermost.
    pub(crate) fn owner(&self, pos: Position) -> Option<usize> {
        self.ranges
            .iter()
            .enumerate()
            .filter(|(_, (start, end, _))| *start <= pos && pos <= *end)
            .max_by_key(|(_, (start, _, _))| *start)
            .map(|(i, _)| i)
    }
}

/// The furthest position of any node in function `f`'s body (its start
/// when it has none): walked as an AST of its own, since a body cannot be
/// reached otherwise.
fn last_position(f: &rhai::ScriptFuncDef) -> Position {
    let mut last = f.body.start_position();
    let mut module = Module::new();
    module.set_script_fn(f.clone());
    AST::new(Vec::new(), module).walk(&mut |nodes: &[ASTNode]| {
        if let Some(pos) = nodes.last().map(ASTNode::position)
            && !pos.is_none()
            && (last.is_none() || pos > last)
        {
            last = pos;
        }
        true
    });
    last
}

/// Whether a function's body uses `this`, and the functions it calls the
/// ordinary way.
type Uses = (bool, HashSet<FnKey>);

/// The functions `ast` defines, each with what it uses; and every function
/// called the ordinary way anywhere.
fn survey(ast: &AST) -> (HashMap<FnKey, Uses>, HashSet<FnKey>) {
    let bodies = Bodies::of(ast);
    let ranges = &bodies.ranges;
    let owner = |pos: Position| bodies.owner(pos).map(|i| &ranges[i].2);
    let mut functions: HashMap<FnKey, Uses> = ranges
        .iter()
        .map(|(_, _, key)| (key.clone(), (false, HashSet::new())))
        .collect();
    let mut called = HashSet::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::ThisPtr(pos))) => {
                if let Some(key) = owner(*pos)
                    && let Some(f) = functions.get_mut(key)
                {
                    f.0 = true;
                }
            }
            Some(
                ASTNode::Expr(Expr::FnCall(call, pos)) | ASTNode::Stmt(Stmt::FnCall(call, pos)),
            ) if !call.is_qualified() && call.op_token.is_none() && !call.capture_parent_scope => {
                let key = (call.name.to_string(), call.args.len());
                if let Some(owner) = owner(*pos)
                    && let Some(f) = functions.get_mut(owner)
                {
                    f.1.insert(key.clone());
                }
                called.insert(key);
            }
            _ => {}
        }
        true
    });
    (functions, called)
}

/// Renames the functions that need `this` and are called the ordinary way,
/// and registers on `engine` the functions that call them with `this`.
pub(crate) fn bind(engine: &mut Engine, ast: AST) -> (AST, Renamed) {
    let (functions, called) = survey(&ast);
    // Functions that use `this`, directly or through what they call.
    let mut uses_this: HashSet<FnKey> = functions
        .iter()
        .filter(|(_, (this, _))| *this)
        .map(|(key, _)| key.clone())
        .collect();
    loop {
        let more: Vec<FnKey> = functions
            .iter()
            .filter(|(key, (_, calls))| {
                !uses_this.contains(*key) && calls.iter().any(|c| uses_this.contains(c))
            })
            .map(|(key, _)| key.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        uses_this.extend(more);
    }
    let defined: HashSet<&str> = functions.keys().map(|(name, _)| name.as_str()).collect();
    let mut renamed = Renamed::default();
    for key in uses_this {
        // Every function that needs `this` is renamed, also those only
        // called as methods (`this.login()`): a method call holds `this`
        // borrowed for the whole call, so the helpers inside it must reach
        // the value through the method wrapper below, not through the
        // user's shared map. The hooks blast calls by name bind `this`
        // themselves (`request_hook`), so their names stay theirs.
        let _ = &called;
        if key.0 == SHAPE_FUNCTION || key.0 == ON_REQUEST {
            continue;
        }
        let mut internal = format!("blast_this__{}", key.0);
        while defined.contains(internal.as_str()) {
            internal.insert(0, '_');
        }
        renamed.0.insert(key, internal);
    }
    if renamed.0.is_empty() {
        return (ast, renamed);
    }
    let mut module = Module::new();
    for f in ast.iter_fn_def() {
        let mut def = (**f).clone();
        if let Some(internal) = renamed.0.get(&(def.name.to_string(), def.params.len())) {
            def.name = internal.into();
        }
        module.set_script_fn(def);
    }
    let arities: HashSet<FnKey> = functions.keys().cloned().collect();
    for ((name, arity), internal) in &renamed.0 {
        // `x.name(args)`: the method form, when no function of the script
        // takes one argument more under that name (Rhai could not tell
        // the two apart).
        if !arities.contains(&(name.clone(), arity + 1)) {
            let internal = internal.clone();
            engine.register_raw_fn(
                name.as_str(),
                vec![TypeId::of::<Dynamic>(); arity + 1],
                move |call, args| {
                    // The caller holds its `this` (often the user's shared
                    // map, locked for the call): move the value out into a
                    // map of its own, which the helpers called inside reach
                    // as the running `this`, and back when the call ends.
                    let Some((target, rest)) = args.split_first_mut() else {
                        return call.call_fn_raw(&internal, false, false, args);
                    };
                    let mut this = std::mem::take(&mut **target).into_shared();
                    let result = {
                        let _running = RunningThis::enter(this.clone());
                        let mut all: Vec<&mut Dynamic> = Vec::with_capacity(rest.len() + 1);
                        all.push(&mut this);
                        all.extend(rest.iter_mut().map(|a| &mut **a));
                        call.call_fn_raw(&internal, true, true, &mut all)
                    };
                    **target = this.flatten();
                    result
                },
            );
        }
        let internal = internal.clone();
        engine.register_raw_fn(
            name.as_str(),
            vec![TypeId::of::<Dynamic>(); *arity],
            move |call, args| match with_ctx(|c| c.this.clone()) {
                Some(mut this) => {
                    let mut all: Vec<&mut Dynamic> = Vec::with_capacity(args.len() + 1);
                    all.push(&mut this);
                    all.extend(args.iter_mut().map(|a| &mut **a));
                    call.call_fn_raw(&internal, true, true, &mut all)
                }
                None => call.call_fn_raw(&internal, false, false, args),
            },
        );
    }
    let source = ast.source().unwrap_or_default().to_string();
    let bound = AST::new_with_source(ast.statements().to_vec(), module, source);
    (bound, renamed)
}

/// While it lives, `value` is the running user's `this` for the helpers
/// called the ordinary way; the previous one is back when it drops (also
/// when a panic unwinds through it).
struct RunningThis(Option<Dynamic>);

impl RunningThis {
    fn enter(value: Dynamic) -> RunningThis {
        RunningThis(with_ctx(|c| c.this.replace(value)))
    }
}

impl Drop for RunningThis {
    fn drop(&mut self) {
        let previous = self.0.take();
        with_ctx(|c| c.this = previous);
    }
}

#[cfg(test)]
mod tests {
    use blast_engine::{Outcome, ShardScenario, Step, VirtualUser, Work};

    use crate::scenario::{CompileContext, ScenarioError, compile};
    use crate::user::ShardScript;

    fn shard(source: &str) -> Result<ShardScript, ScenarioError> {
        let context = CompileContext {
            origins: Some(std::sync::Arc::new(blast_engine::http::Origins::new(
                vec![blast_engine::http::Origin::resolve("http://127.0.0.1:1").unwrap()],
                false,
            ))),
            dir: std::path::PathBuf::new(),
            shard: 0,
            shards: 1,
            tags: crate::TagFilter::default(),
            cursors: crate::data::RunCursors::default(),
            shared: std::sync::Arc::default(),
        };
        let compiled = compile("t.rhai", source, context)?;
        Ok(ShardScript::new("t.rhai", compiled, 1, vec![0], 1))
    }

    fn first_path(user: &mut Box<dyn VirtualUser>, work: Work) -> String {
        match user.start(work) {
            Step::Request(request) => request.path,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn helpers_called_the_ordinary_way_see_the_tasks_this() {
        let shard = shard(
            "user(\"A\", #{ on_start: Fn(\"start\"), tasks: [Fn(\"t\")] });\n\
             fn start() { this.n = 10; bump(); }\n\
             fn count(by) { this.n += by; bump(); this.n }\n\
             fn bump() { this.bumps = if this.bumps == () { 1 } else { this.bumps + 1 }; }\n\
             fn plain(x) { x + 1 }\n\
             fn t() { let a = count(plain(1)); let b = [count(3)]; http::get(`/n/${a}/${b[0]}/${this.n}/${this.bumps}`); }\n",
        )
        .unwrap();
        let mut user = shard.new_user(0);
        // on_start's helper changed the user's own map, which the task sees.
        assert!(matches!(
            user.start(Work::OnStart),
            Step::Done(Outcome::Completed)
        ));
        assert_eq!(first_path(&mut user, Work::Task), "/n/12/15/15/3");
        // Another user has its own `this`.
        let mut other = shard.new_user(1);
        assert!(matches!(
            other.start(Work::OnStart),
            Step::Done(Outcome::Completed)
        ));
        assert_eq!(first_path(&mut other, Work::Task), "/n/12/15/15/3");
    }

    #[test]
    fn helpers_inside_a_method_call_on_this_see_the_same_this() {
        // `this.login()` holds the user's map for the call; `auth()` and
        // `remember()` inside it, a method call beside an ordinary one,
        // and a method call on another map all work, and what they change
        // stays in the user's map.
        let shard = shard(
            "user(\"A\", #{ on_start: Fn(\"start\"), tasks: [Fn(\"t\")] });\n\
             fn start() { this.login(); }\n\
             fn login() { this.token = \"tk\"; remember(1); this.remember(2); http::get(`/me/${auth()}`); }\n\
             fn auth() { `${this.token}-${this.last}` }\n\
             fn remember(n) { this.last = n; }\n\
             fn t() { let obj = #{ last: 0 }; obj.remember(3); http::get(`/t/${this.token}/${this.last}/${obj.last}`); }\n",
        )
        .unwrap();
        let mut user = shard.new_user(0);
        assert_eq!(first_path(&mut user, Work::OnStart), "/me/tk-2");
        assert!(matches!(
            user.resume(blast_engine::Resume::Response(Box::default())),
            Step::Done(Outcome::Completed)
        ));
        assert_eq!(first_path(&mut user, Work::Task), "/t/tk/2/3");
    }

    #[test]
    fn without_a_user_a_helper_that_needs_this_still_says_so() {
        let error = shard(
            "fn setup() { this.x = 1; }\n\
             fn t() { setup(); }\n\
             setup();\n\
             user(\"A\", #{ tasks: [Fn(\"t\")] });\n",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(error.starts_with("t.rhai:1:14:"), "{error}");
        assert!(
            error.ends_with(
                "'this' not bound: only a user's functions have `this` (its tasks, hooks and \
                 wait function, and the functions they call), not the top level or shape()"
            ),
            "{error}"
        );
    }
}
