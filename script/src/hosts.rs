//! Hosts a scenario names literally: string constants that are absolute
//! http(s) URLs (`http::get("http://api.local:8081/x")`, a `const`), and
//! interpolated strings whose literal start holds a whole host
//! (`` `http://api.local:8081/items/${id}` ``). They are resolved before
//! the run, so a first request to them does not wait for a lookup; any
//! other host a script reaches is resolved on its first use.

use rhai::{AST, ASTNode, Expr};

/// `scheme://authority` of every absolute http(s) URL written in `ast`, in
/// order of appearance, without repeats.
pub(crate) fn literal_hosts(ast: &AST) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let in_interpolation = path.len() >= 2
            && matches!(
                path[path.len() - 2],
                ASTNode::Expr(Expr::InterpolatedString(..))
            );
        let text = match path.last() {
            // A piece of an interpolated string is read with its whole.
            Some(ASTNode::Expr(Expr::StringConstant(..))) if in_interpolation => None,
            Some(ASTNode::Expr(Expr::StringConstant(s, _))) => Some(s.as_str()),
            Some(ASTNode::Expr(Expr::InterpolatedString(parts, _))) => match parts.first() {
                Some(Expr::StringConstant(s, _)) => Some(s.as_str()),
                _ => None,
            },
            _ => None,
        };
        let whole = matches!(path.last(), Some(ASTNode::Expr(Expr::StringConstant(..))));
        if let Some(host) = text.and_then(|t| origin_of(t, whole))
            && !hosts.iter().any(|h| h.eq_ignore_ascii_case(&host))
        {
            hosts.push(host);
        }
        true
    });
    hosts
}

/// `scheme://authority` of `url` when it is an absolute http(s) URL;
/// `whole` says the text is all of the string (else its authority must end
/// within it).
fn origin_of(url: &str, whole: bool) -> Option<String> {
    let lower = url.get(..8)?.to_ascii_lowercase();
    let skip = if lower.starts_with("http://") {
        7
    } else if lower.starts_with("https://") {
        8
    } else {
        return None;
    };
    let rest = &url[skip..];
    let end = match rest.find(['/', '?', '#']) {
        Some(end) => end,
        None if whole => rest.len(),
        None => return None,
    };
    let authority = &rest[..end];
    let valid = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
    valid.then(|| format!("{}{authority}", &url[..skip]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_urls_in_strings_name_their_hosts() {
        let engine = rhai::Engine::new();
        let ast = engine
            .compile(
                r#"
                const API = "http://api.local:8081/v1";
                fn t(id) {
                    get("https://Secure.local/a?b");
                    get(`http://items.local:9/items/${id}`);
                    get(`http://partial.local:${id}/x`);
                    get("http://api.local:8081/other");
                    get("/relative"); get("mailto:x@y"); get("http://");
                    get("http://bad host/");
                }
                "#,
            )
            .unwrap();
        assert_eq!(
            literal_hosts(&ast),
            [
                "http://api.local:8081",
                "https://Secure.local",
                "http://items.local:9",
            ]
        );
    }
}
