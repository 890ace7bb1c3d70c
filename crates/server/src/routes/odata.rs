//! The small part of OData `$filter` that Microsoft's clients send to ARM and Graph: terms
//! joined by `and`, each `field eq 'value'`, `startswith(field, 'prefix')`,
//! `collection/any(x:x eq 'value')` or a call such as `atScope()` / `assignedTo('id')`.
//! Anything else is refused (400) rather than half-understood.

use crate::error::ApiError;

/// A filter is at most this long and has at most this many terms.
pub const MAX_FILTER: usize = 2048;
const MAX_TERMS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// `field eq 'value'`
    Eq(String, String),
    /// `startswith(field, 'prefix')`
    StartsWith(String, String),
    /// `collection/any(x:x eq 'value')`
    AnyEq(String, String),
    /// `name()` or `name('arg', ...)`, e.g. `atScope()`, `assignedTo('{oid}')`.
    Call(String, Vec<String>),
}

fn bad(what: &str) -> ApiError {
    ApiError::Coded {
        status: axum::http::StatusCode::BAD_REQUEST,
        code: "InvalidFilterInQueryString",
        message: format!("Invalid $filter: {what}."),
    }
}

/// Splits on `sep` (compared case-insensitively) outside single-quoted strings.
fn split_outside_quotes<'a>(s: &'a str, sep: &str) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let bytes = s.as_bytes();
    let (mut start, mut i, mut quoted) = (0, 0, false);
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            quoted = !quoted;
        } else if !quoted
            && s.get(i..i + sep.len()).is_some_and(|w| w.eq_ignore_ascii_case(sep))
            && s.is_char_boundary(i)
        {
            parts.push(&s[start..i]);
            i += sep.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(&s[start..]);
    parts
}

/// A single-quoted OData string (`''` is a quote).
fn string(s: &str) -> Result<String, ApiError> {
    let s = s.trim();
    let inner = s
        .strip_prefix('\'')
        .and_then(|x| x.strip_suffix('\''))
        .ok_or_else(|| bad("a value must be a quoted string"))?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return Err(bad("a quote inside a string must be doubled"));
        }
        out.push(c);
    }
    Ok(out)
}

fn ident(s: &str) -> Result<String, ApiError> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad("expected a property name"));
    }
    Ok(s.to_string())
}

fn term(t: &str) -> Result<Term, ApiError> {
    let t = t.trim();
    // collection/any(x:x eq 'value'): a slash before any quoted value.
    let slash = t.find('/').filter(|i| t.find('\'').is_none_or(|q| *i < q));
    if let Some((coll, rest)) = slash.map(|i| (&t[..i], &t[i + 1..])) {
        let inner = rest
            .trim()
            .strip_prefix("any(")
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| bad("expected 'collection/any(x:x eq ...)'"))?;
        let (var, cond) = inner.split_once(':').ok_or_else(|| bad("expected 'any(x:...)'"))?;
        let var = ident(var)?;
        let parts = split_outside_quotes(cond, " eq ");
        if parts.len() != 2 || ident(parts[0])? != var {
            return Err(bad("expected 'any(x:x eq ...)'"));
        }
        return Ok(Term::AnyEq(ident(coll)?, string(parts[1])?));
    }
    // name(args)
    if let Some(open) = t.find('(').filter(|_| t.ends_with(')')) {
        let name = ident(&t[..open])?;
        let inner = &t[open + 1..t.len() - 1];
        let args: Vec<&str> =
            if inner.trim().is_empty() { Vec::new() } else { split_outside_quotes(inner, ",") };
        if name.eq_ignore_ascii_case("startswith") {
            if args.len() != 2 {
                return Err(bad("startswith takes a property and a string"));
            }
            return Ok(Term::StartsWith(ident(args[0])?, string(args[1])?));
        }
        let args = args.into_iter().map(string).collect::<Result<_, _>>()?;
        return Ok(Term::Call(name, args));
    }
    let parts = split_outside_quotes(t, " eq ");
    if parts.len() == 2 {
        return Ok(Term::Eq(ident(parts[0])?, string(parts[1])?));
    }
    Err(bad("only 'eq', 'startswith', 'any' and 'and' are supported"))
}

/// Parses a `$filter`; an absent or empty one is no term at all.
pub fn parse(filter: Option<&str>) -> Result<Vec<Term>, ApiError> {
    let Some(f) = filter.map(str::trim).filter(|f| !f.is_empty()) else { return Ok(Vec::new()) };
    if f.len() > MAX_FILTER {
        return Err(bad("too long"));
    }
    let terms: Vec<&str> = split_outside_quotes(f, " and ");
    if terms.len() > MAX_TERMS {
        return Err(bad("too many terms"));
    }
    terms.into_iter().map(term).collect()
}

/// The value of `field eq '...'` among the terms (property names compare case-insensitively).
pub fn eq<'a>(terms: &'a [Term], field: &str) -> Option<&'a str> {
    terms.iter().find_map(|t| match t {
        Term::Eq(f, v) if f.eq_ignore_ascii_case(field) => Some(v.as_str()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_the_clients_send_parse() {
        let t = parse(Some("atScope() and assignedTo('ab-c')")).unwrap();
        assert_eq!(
            t,
            vec![
                Term::Call("atScope".into(), vec![]),
                Term::Call("assignedTo".into(), vec!["ab-c".into()])
            ]
        );
        let t = parse(Some("servicePrincipalNames/any(c:c eq 'x y')")).unwrap();
        assert_eq!(t, vec![Term::AnyEq("servicePrincipalNames".into(), "x y".into())]);
        let t = parse(Some("startswith(displayName,'ml-auth')")).unwrap();
        assert_eq!(t, vec![Term::StartsWith("displayName".into(), "ml-auth".into())]);
        let t = parse(Some("resourceGroup eq 'rg' AND resourceType eq 'A.B/c'")).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(eq(&t, "resourcegroup"), Some("rg"));
        assert_eq!(eq(&t, "resourceType"), Some("A.B/c"));
        let t = parse(Some("displayName eq 'it''s and more'")).unwrap();
        assert_eq!(eq(&t, "displayName"), Some("it's and more"));
        assert!(parse(None).unwrap().is_empty());
        for badf in [
            "name ne 'x'",
            "name eq x",
            "name eq 'x",
            "a/any(c:d eq 'x')",
            "name eq 'a' or name eq 'b'",
            "drop table; eq 'x'",
            &"a eq 'x' and ".repeat(20),
        ] {
            assert!(parse(Some(badf)).is_err(), "{badf}");
        }
        assert!(parse(Some(&format!("name eq '{}'", "x".repeat(MAX_FILTER)))).is_err());
    }
}
