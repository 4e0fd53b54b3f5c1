//! Which `http::` calls' responses a script never looks at.
//!
//! `http::get("/");` as a statement of its own throws its response away, so
//! the engine need not keep the body: it counts and drops it. A call is
//! taken as discarded only when it is a whole statement, ended by `;` and
//! followed by another statement in the same block; the last statement of a
//! block may be the block's value (a function's result), so it keeps its
//! body. When in doubt, keep: a wrongly dropped body would be silently
//! wrong, a wrongly kept one only costs a copy.

use std::collections::HashSet;

use rhai::{AST, ASTNode, Position, Stmt};

/// Positions of the `http::` calls whose responses are discarded.
pub(crate) fn discarded_calls(ast: &AST, source: &str) -> HashSet<Position> {
    let mut candidates = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) = path.last()
            && call.is_qualified()
            && call.namespace.root() == "http"
        {
            candidates.push(*pos);
        }
        true
    });
    let lines: Vec<&str> = source.split('\n').collect();
    candidates
        .into_iter()
        .filter(|pos| {
            offset_of(&lines, *pos).is_some_and(|at| followed_by_statement(&source[at..]))
        })
        .collect()
}

/// Byte offset of a (1-based line, 1-based character column) position.
fn offset_of(lines: &[&str], pos: Position) -> Option<usize> {
    let (line, col) = (pos.line()?, pos.position()?);
    let mut offset = 0;
    for l in lines.iter().take(line - 1) {
        offset += l.len() + 1;
    }
    let text = lines.get(line - 1)?;
    let within = text.char_indices().nth(col - 1).map(|(i, _)| i)?;
    Some(offset + within)
}

/// Given the source from the start of a call statement, whether the call is
/// closed, then `;`, then another statement (not the block's closing `}`).
fn followed_by_statement(text: &str) -> bool {
    let bytes = text.as_bytes();
    let Some(open) = text.find('(') else {
        return false;
    };
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    i += 1;
                    break;
                }
            }
            b'"' | b'\'' | b'`' => i = skip_quoted(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'/') || bytes.get(i + 1) == Some(&b'*') => {
                i = skip_comment(bytes, i)
            }
            _ => {}
        }
        i += 1;
    }
    if depth != 0 {
        return false;
    }
    let i = skip_blank(bytes, i);
    if bytes.get(i) != Some(&b';') {
        return false;
    }
    let i = skip_blank(bytes, i + 1);
    matches!(bytes.get(i), Some(b) if *b != b'}')
}

/// Index of the closing quote of the string starting at `start`.
fn skip_quoted(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b if b == quote => return i,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// Index of the last byte of the comment starting at `start`.
fn skip_comment(bytes: &[u8], start: usize) -> usize {
    if bytes[start + 1] == b'/' {
        bytes[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |n| start + n)
    } else {
        let mut i = start + 2;
        while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
            i += 1;
        }
        i + 1
    }
}

/// Skips whitespace and comments.
fn skip_blank(bytes: &[u8], mut i: usize) -> usize {
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) == Some(&b'/') && matches!(bytes.get(i + 1), Some(b'/') | Some(b'*')) {
            i = skip_comment(bytes, i) + 1;
        } else {
            return i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_statement_calls_followed_by_another_statement_discard() {
        let cases = [
            ("http::get(\"/\"); x();", true),
            ("http::get(\"/a)\", #{ h: [1, (2)] }) ; // c\n x();", true),
            ("http::get(\"/\");\n}", false),
            ("http::get(\"/\") }", false),
            ("http::get(\"/\")", false),
            ("http::get(\"/\"); /* end */ }", false),
            ("http::get(`/${a}`); y", true),
        ];
        for (text, want) in cases {
            assert_eq!(followed_by_statement(text), want, "{text}");
        }
    }

    #[test]
    fn walks_function_bodies_and_positions_match() {
        let source = "fn a() {\n    http::get(\"/\");\n    let r = http::get(\"/k\");\n    http::get(\"/v\")\n}\nfn b() { http::post(\"/\", #{}); 1 }\n";
        let engine = rhai::Engine::new_raw();
        let ast = engine.compile(source).unwrap();
        let found = discarded_calls(&ast, source);
        let mut lines: Vec<_> = found.iter().map(|p| p.line().unwrap()).collect();
        lines.sort();
        assert_eq!(lines, vec![2, 6]);
    }
}
