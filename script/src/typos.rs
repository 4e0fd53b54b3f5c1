//! Typos Rhai finds only when a user reaches them, found before the run:
//! unknown properties and methods of a response (`r.stauts`, `r.jsn()`),
//! methods no function defines, and unknown keys of a request-option map
//! written out in an `http::` call (`#{ header: ... }`).
//!
//! A property is checked only on a value known to be a response: the
//! result of an `http::` call, or a variable bound to one (`let r =
//! http::get(...)`) and never bound to anything else in the same function.
//! Maps (`this`, a data row) take any key, so their properties are not
//! checked.

use std::collections::{HashMap, HashSet};

use rhai::{AST, ASTNode, Expr, FnCallExpr, Map, Position, Stmt};

use crate::http_api::{REQUEST_OPTIONS, RESPONSE_METHODS, RESPONSE_PROPERTIES, unknown_option};
use crate::scenario::{HTTP_FUNCTIONS, did_you_mean};
use crate::this_binding::Bodies;

/// Methods Rhai gives every value.
const ANY_VALUE_METHODS: &[&str] = &["type_of", "to_string", "to_debug", "is_shared", "tag"];

/// A typo: what, and where.
pub(crate) type Typo = (String, Position);

/// Whether `call` is one of the `http::` request functions.
fn is_http_call(call: &FnCallExpr) -> bool {
    call.is_qualified()
        && call.namespace.root() == "http"
        && HTTP_FUNCTIONS.contains(&call.name.as_str())
}

fn is_http_expr(expr: &Expr) -> bool {
    matches!(expr, Expr::FnCall(call, _) if is_http_call(call))
}

fn variable_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Variable(v, _, _) => Some(v.1.as_str()),
        _ => None,
    }
}

/// Per function body (by index in [`Bodies`], `None` for the top level):
/// variables bound to a response, and variables bound to anything else.
#[derive(Default)]
struct Bindings {
    responses: HashMap<Option<usize>, HashSet<String>>,
    others: HashMap<Option<usize>, HashSet<String>>,
}

impl Bindings {
    fn bind(&mut self, body: Option<usize>, name: &str, value: Option<&Expr>) {
        let set = if value.is_some_and(is_http_expr) {
            &mut self.responses
        } else {
            &mut self.others
        };
        set.entry(body).or_default().insert(name.to_string());
    }

    fn is_response(&self, body: Option<usize>, name: &str) -> bool {
        self.responses
            .get(&body)
            .is_some_and(|names| names.contains(name))
            && !self
                .others
                .get(&body)
                .is_some_and(|names| names.contains(name))
    }
}

fn bindings(ast: &AST, bodies: &Bodies) -> Bindings {
    let mut bindings = Bindings::default();
    for (i, f) in ast.iter_fn_def().enumerate() {
        for param in &f.params {
            bindings.bind(Some(i), param, None);
        }
    }
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Stmt(stmt)) = path.last() else {
            return true;
        };
        let body = bodies.owner(stmt.position());
        match stmt {
            Stmt::Var(x, _, _) => bindings.bind(body, &x.0.name, Some(&x.1)),
            Stmt::Assignment(x) => {
                if let Some(name) = variable_name(&x.1.lhs) {
                    bindings.bind(body, name, Some(&x.1.rhs));
                }
            }
            Stmt::For(x, _) => {
                bindings.bind(body, &x.0.name, None);
                if let Some(counter) = &x.1 {
                    bindings.bind(body, &counter.name, None);
                }
            }
            Stmt::TryCatch(x, _) => {
                if let Some(name) = variable_name(&x.expr) {
                    bindings.bind(body, name, None);
                }
            }
            _ => {}
        }
        true
    });
    bindings
}

/// The first link of a property chain: `status` in `r.status.x[0]`.
fn first_link(expr: &Expr) -> Option<(bool, &str, Position)> {
    match expr {
        Expr::Property(p, pos) => Some((false, p.2.as_str(), *pos)),
        Expr::MethodCall(call, pos) => Some((true, call.name.as_str(), *pos)),
        Expr::Dot(x, _, _) | Expr::Index(x, _, _) => first_link(&x.lhs),
        _ => None,
    }
}

/// Unknown keys of a request-option map written out in the call.
fn option_typo(call: &FnCallExpr) -> Option<Typo> {
    let at = match call.name.as_str() {
        "request" | "rest" => 2,
        _ => 1,
    };
    match call.args.get(at)? {
        Expr::Map(map, _) => map
            .0
            .iter()
            .find(|(key, _)| !REQUEST_OPTIONS.contains(&key.name.as_str()))
            .map(|(key, _)| (unknown_option(&key.name), key.pos)),
        Expr::DynamicConstant(value, pos) => value
            .read_lock::<Map>()?
            .keys()
            .find(|key| !REQUEST_OPTIONS.contains(&key.as_str()))
            .map(|key| (unknown_option(key), *pos)),
        _ => None,
    }
}

fn hint<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    did_you_mean(name, known)
        .map(|k| format!(" (did you mean {k}?)"))
        .unwrap_or_default()
}

/// The first typo in `ast` (compiled without optimization, so that map
/// literals keep their keys' positions), given every function name a script
/// can call (`known`) and the script's own functions.
pub(crate) fn find(ast: &AST, known: &HashSet<String>) -> Option<Typo> {
    let bodies = Bodies::of(ast);
    let bindings = bindings(ast, &bodies);
    let script_functions: HashSet<&str> = ast.iter_fn_def().map(|f| f.name.as_str()).collect();
    // Names a map may hold a function under (`#{ f: Fn("g") }`, `o.f = ...`):
    // `o.f()` calls it, as Rhai's object maps allow.
    let mut members: HashSet<String> = HashSet::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::Map(map, _))) => {
                members.extend(map.0.iter().map(|(key, _)| key.name.to_string()));
            }
            Some(ASTNode::Expr(Expr::Property(property, _))) => {
                members.insert(property.2.to_string());
            }
            _ => {}
        }
        true
    });
    let mut found: Option<Typo> = None;
    ast.walk(&mut |path: &[ASTNode]| {
        let typo = match path.last() {
            Some(ASTNode::Expr(Expr::Dot(x, _, pos))) => {
                let body = bodies.owner(*pos);
                let response = is_http_expr(&x.lhs)
                    || variable_name(&x.lhs).is_some_and(|name| bindings.is_response(body, name));
                match first_link(&x.rhs) {
                    Some((false, property, pos))
                        if response && !RESPONSE_PROPERTIES.contains(&property) =>
                    {
                        Some((
                            format!(
                                "a response has no property {property:?}{}; it has: {}",
                                hint(property, RESPONSE_PROPERTIES.iter().copied()),
                                RESPONSE_PROPERTIES.join(", ")
                            ),
                            pos,
                        ))
                    }
                    Some((true, method, pos))
                        if response
                            && !RESPONSE_METHODS.contains(&method)
                            && !ANY_VALUE_METHODS.contains(&method)
                            && !script_functions.contains(method) =>
                    {
                        Some((
                            format!(
                                "a response has no method {method}(){}; it has: {}",
                                hint(method, RESPONSE_METHODS.iter().copied()),
                                RESPONSE_METHODS
                                    .iter()
                                    .map(|m| format!("{m}()"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            pos,
                        ))
                    }
                    _ => None,
                }
            }
            Some(ASTNode::Expr(Expr::MethodCall(call, pos)))
                if !known.contains(call.name.as_str()) && !members.contains(call.name.as_str()) =>
            {
                let name = call.name.as_str();
                let hint = hint(name, known.iter().map(String::as_str));
                Some((
                    format!(
                        "unknown method {name}(){hint}: neither the script nor blast defines it"
                    ),
                    *pos,
                ))
            }
            Some(ASTNode::Expr(Expr::FnCall(call, _)) | ASTNode::Stmt(Stmt::FnCall(call, _)))
                if is_http_call(call) =>
            {
                option_typo(call)
            }
            _ => None,
        };
        if typo.is_some() {
            found = typo;
        }
        found.is_none()
    });
    found
}

#[cfg(test)]
mod tests {
    use crate::Scenario;

    fn check(body: &str) -> Result<(), String> {
        let source = format!("user(\"U\", #{{ tasks: [Fn(\"t\")] }});\n{body}\n");
        Scenario::from_source("s.rhai", &source)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn typos_on_responses_and_request_options_are_found_with_their_position() {
        let cases = [
            (
                "fn t() { let r = http::get(\"/\"); r.jsn(); }",
                "s.rhai:2:36: a response has no method jsn() (did you mean json?)",
            ),
            (
                "fn t() { let r = http::get(\"/\"); if r.stauts == 200 {} }",
                "s.rhai:2:39: a response has no property \"stauts\" (did you mean status?)",
            ),
            (
                "fn t() {\n  let ok = http::post(\"/\", #{ json: 1 }).okk;\n}",
                "s.rhai:3:42: a response has no property \"okk\" (did you mean ok?)",
            ),
            (
                "fn t() { http::get(\"/\", #{ header: #{ a: \"1\" } }); }",
                "s.rhai:2:28: unknown request option \"header\" (did you mean headers?)",
            ),
            (
                "fn t() { http::request(\"GET\", \"/\", #{ name: \"x\", timout: 1 }); }",
                "s.rhai:2:50: unknown request option \"timout\" (did you mean timeout?)",
            ),
            (
                "fn t() { http::rest(\"GET\", \"/\", #{ jsn: 1 }); }",
                "s.rhai:2:36: unknown request option \"jsn\" (did you mean json?)",
            ),
            (
                // After a closure without braces, the function's own
                // statements are still its own.
                "fn t() { let r = http::get(\"/\"); let x = [1].map(|v| v + 1); r.stauts; }",
                "s.rhai:2:64: a response has no property \"stauts\"",
            ),
            (
                "fn t() { let row = #{}; row.to_jsno(); }",
                "s.rhai:2:29: unknown method to_jsno() (did you mean to_json?)",
            ),
        ];
        for (body, expected) in cases {
            let error = check(body).unwrap_err();
            assert!(error.starts_with(expected), "{body}\n{error}");
        }
    }

    #[test]
    fn maps_and_other_values_are_not_taken_for_responses() {
        for body in [
            "fn t() { this.stauts = 1; let x = this.stauts; }",
            "fn t() { let row = #{ name: 1 }; row.name; row.nmae; }",
            "fn t() { let r = http::get(\"/\"); r = #{ stauts: 1 }; r.stauts; }",
            "fn t() { let r = http::get(\"/\"); r.status; r.ok; r.error; r.body; r.body_len; r.elapsed_ms; r.headers; r.data; r.json(); r.header(\"a\"); r.to_string(); r.type_of(); }",
            "fn t() { let r = http::get(\"/\"); r.succeed(); r.fail(\"x\"); }",
            "fn t() { let r = http::get(\"/\"); r.mine(); }\nfn mine() { this.status }",
            "fn t() { let r = #{}; r.stauts; }\nfn u() { let r = http::get(\"/\"); }",
            "fn t() { let options = #{ header: 1 }; let r = http::get(\"/\", options); }",
            "fn t() { http::get(\"/\", #{ headers: #{ heder: 1 }, query: #{ nmae: 2 } }); }",
            "fn t() { for r in [1] { r.stauts; } let r = http::get(\"/\"); }",
            // A function kept in a map is called as its method, or with
            // call().
            "fn t() { let o = #{ f: Fn(\"g\") }; o.f(); call(o.f); }\nfn g() { }",
            "fn t() { let o = #{}; o.f = Fn(\"g\"); o.f(); }\nfn g() { }",
            // A closure without braces names its own parameter `r`.
            "fn t() { let r = http::get(\"/items\"); let ids = r.json().map(|r| r.id); }",
        ] {
            if let Err(e) = check(body) {
                panic!("{body}\n{e}");
            }
        }
    }
}
