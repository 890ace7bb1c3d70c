//! Printing results as the Azure CLI does: `-o json|jsonc|table|tsv|yaml|none`, after an optional
//! `--query` (JMESPath) has picked from the result.
//!
//! Tables show the columns each command chose (short names instead of ARM ids); with `--query`
//! they show the query result's scalar fields instead, as `az` does. TSV follows `az` (values
//! of an object in key order, a nested list as its length, a nested object as an empty cell)
//! except that null is an empty cell and booleans are `true`/`false`, as `jq -r @tsv` prints
//! them.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use crate::cli::{OutputFormat, OutputOpts};

/// How to print: the format and the query, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub format: OutputFormat,
    pub query: Option<String>,
}

impl From<&OutputOpts> for Output {
    fn from(o: &OutputOpts) -> Self {
        Self { format: o.output.unwrap_or_default(), query: o.query.clone() }
    }
}

/// A table column: `"Header=path"` or `"Header=path|filter"`, where `path` is a dotted path
/// into each row and `filter` is one of `name` (the last segment of an ARM id), `group` (the
/// resource group of an ARM id), `scope` (an RBAC scope in words), `len` (a list's length) or
/// `tags` (`k=v` pairs).
pub type Columns = &'static [&'static str];

/// Prints with the generic table (every scalar field).
pub fn print<T: Serialize>(out: &Output, value: &T) -> Result<()> {
    print_table(out, value, &[])
}

/// Prints with the command's own table columns.
pub fn print_table<T: Serialize>(out: &Output, value: &T, columns: Columns) -> Result<()> {
    let text = render(out, serde_json::to_value(value)?, columns)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Checks a `--query` when the command line is parsed, so a bad one is a usage error.
pub fn parse_query(q: &str) -> std::result::Result<String, String> {
    jmespath::compile(q).map(|_| q.to_string()).map_err(|e| format!("invalid JMESPath query: {e}"))
}

pub fn render(out: &Output, value: Value, columns: Columns) -> Result<String> {
    let (value, columns) = match &out.query {
        Some(q) => (query(q, &value)?, &[][..]),
        None => (value, columns),
    };
    Ok(match out.format {
        OutputFormat::Json => serde_json::to_string_pretty(&value)? + "\n",
        OutputFormat::Jsonc => {
            let mut s = String::new();
            pretty(&value, 0, true, &mut s);
            s + "\n"
        }
        OutputFormat::Table => table(&value, columns),
        OutputFormat::Tsv => tsv(&value),
        OutputFormat::Yaml => {
            if value.is_null() {
                "null\n".to_string()
            } else {
                serde_norway::to_string(&value)?
            }
        }
        OutputFormat::None => String::new(),
    })
}

fn query(q: &str, value: &Value) -> Result<Value> {
    let expr =
        jmespath::compile(q).map_err(|e| anyhow::anyhow!("invalid JMESPath query '{q}': {e}"))?;
    let found = expr.search(value).map_err(|e| anyhow::anyhow!("the query '{q}' failed: {e}"))?;
    Ok(serde_json::to_value(&*found)?)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn get<'a>(row: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(row, |v, k| v.get(k))
}

/// An ARM id's parts after `/subscriptions/{id}`, as (type, name) pairs.
fn arm_pairs(id: &str) -> Vec<(&str, &str)> {
    let parts: Vec<&str> =
        id.split('/').filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("providers")).collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i + 1 < parts.len() {
        // A provider namespace (`Microsoft.X`) stands alone before its type.
        if parts[i].contains('.') {
            i += 1;
            continue;
        }
        pairs.push((parts[i], parts[i + 1]));
        i += 2;
    }
    pairs
}

fn describe_scope(scope: &str) -> String {
    let pairs = arm_pairs(scope);
    let group = pairs.iter().find(|(t, _)| t.eq_ignore_ascii_case("resourceGroups"));
    match (pairs.last(), group) {
        (None, _) => "/".to_string(),
        (Some((t, id)), None) if t.eq_ignore_ascii_case("subscriptions") => {
            format!("subscription {}", id.get(..8).unwrap_or(id))
        }
        (Some((t, name)), Some((_, rg))) if t.eq_ignore_ascii_case("resourceGroups") => {
            let _ = rg;
            format!("group {name}")
        }
        (Some((t, name)), Some((_, rg))) => {
            let kind = t.trim_end_matches('s').to_ascii_lowercase();
            format!("{kind} {rg}/{name}")
        }
        (Some((t, name)), None) => format!("{t} {name}"),
    }
}

fn cell(row: &Value, spec: &str) -> (String, String) {
    let (header, rest) = spec.split_once('=').unwrap_or((spec, spec));
    let (path, filter) = rest.split_once('|').unwrap_or((rest, ""));
    let v = get(row, path);
    let text = match (filter, v) {
        (_, None) => String::new(),
        ("name", Some(Value::String(s))) => s.rsplit('/').next().unwrap_or(s).to_string(),
        ("group", Some(Value::String(s))) => arm_pairs(s)
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case("resourceGroups"))
            .map(|(_, n)| n.to_string())
            .unwrap_or_default(),
        ("scope", Some(Value::String(s))) => describe_scope(s),
        ("len", Some(Value::Array(a))) => a.len().to_string(),
        ("tags", Some(Value::Object(o))) => o
            .iter()
            .map(|(k, v)| format!("{k}={}", scalar(v).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" "),
        (_, Some(v)) => scalar(v).unwrap_or_default(),
    };
    (header.to_string(), text)
}

/// A table of the rows (a list, or one object). Without chosen columns, the scalar fields of
/// the first row, in key order (nested objects and lists are left out, as in `az`).
pub fn table(value: &Value, columns: Columns) -> String {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![value],
        Value::Null => return String::new(),
        other => return format!("{}\n", scalar(other).unwrap_or_default()),
    };
    let Some(first) = rows.first() else { return String::new() };
    let (headers, cells): (Vec<String>, Vec<Vec<String>>) = if !columns.is_empty() {
        let headers = columns.iter().map(|c| cell(first, c).0).collect();
        let cells = rows.iter().map(|r| columns.iter().map(|c| cell(r, c).1).collect()).collect();
        (headers, cells)
    } else if let Value::Object(o) = first {
        let keys: Vec<&String> =
            o.iter().filter(|(_, v)| scalar(v).is_some()).map(|(k, _)| k).collect();
        let headers = keys.iter().map(|k| header_of(k)).collect();
        let cells = rows
            .iter()
            .map(|r| keys.iter().map(|k| r.get(*k).and_then(scalar).unwrap_or_default()).collect())
            .collect();
        (headers, cells)
    } else {
        // A list of scalars (`--query "[].name"`): one column.
        let cells = rows.iter().map(|r| vec![scalar(r).unwrap_or_default()]).collect();
        (vec!["Result".to_string()], cells)
    };
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            cells.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).max(h.chars().count())
        })
        .collect();
    let line = |vals: &[String]| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(&headers);
    out += &line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for r in &cells {
        out += &line(r);
    }
    out
}

/// `az` capitalises the first letter of a key for a header (`displayName` -> `DisplayName`).
fn header_of(key: &str) -> String {
    let mut c = key.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn tsv_cell(v: &Value) -> String {
    match v {
        Value::Array(a) => a.len().to_string(),
        Value::Object(_) => String::new(),
        // A tab or newline inside a value would shift the columns.
        other => scalar(other).unwrap_or_default().replace(['\t', '\n'], " "),
    }
}

/// One line per item of a list (or one line for anything else).
pub fn tsv(value: &Value) -> String {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => return String::new(),
        other => vec![other],
    };
    let mut out = String::new();
    for row in rows {
        let line = match row {
            Value::Object(o) => o.values().map(tsv_cell).collect::<Vec<_>>().join("\t"),
            Value::Array(a) => a.iter().map(tsv_cell).collect::<Vec<_>>().join("\t"),
            other => tsv_cell(other),
        };
        out += &line;
        out.push('\n');
    }
    out
}

const KEY: &str = "\x1b[94m";
const STRING: &str = "\x1b[32m";
const LITERAL: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

/// Pretty JSON as `serde_json::to_string_pretty` writes it, optionally coloured (`jsonc`).
fn pretty(v: &Value, indent: usize, color: bool, out: &mut String) {
    let paint = |out: &mut String, c: &str, text: &str| {
        if color {
            out.push_str(c);
            out.push_str(text);
            out.push_str(RESET);
        } else {
            out.push_str(text);
        }
    };
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Value::Object(o) if !o.is_empty() => {
            out.push_str("{\n");
            for (i, (k, val)) in o.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                paint(out, KEY, &Value::String(k.clone()).to_string());
                out.push_str(": ");
                pretty(val, indent + 1, color, out);
                if i + 1 < o.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        Value::Array(a) if !a.is_empty() => {
            out.push_str("[\n");
            for (i, val) in a.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                pretty(val, indent + 1, color, out);
                if i + 1 < a.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        Value::String(_) => paint(out, STRING, &v.to_string()),
        other => {
            if other.is_object() || other.is_array() {
                out.push_str(&other.to_string());
            } else {
                paint(out, LITERAL, &other.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn out(format: OutputFormat, query: Option<&str>) -> Output {
        Output { format, query: query.map(str::to_string) }
    }

    #[test]
    fn generic_tables_align_scalar_columns() {
        let v = json!([{"name": "a", "n": 1, "nested": {"x": 1}}, {"name": "long", "n": 22}]);
        assert_eq!(table(&v, &[]), "N   Name\n--  ----\n1   a\n22  long\n");
    }

    #[test]
    fn chosen_columns_keep_their_order_and_shorten_arm_ids() {
        let ws = "/subscriptions/0123456789ab/resourceGroups/ml-rg/providers/\
                  Microsoft.MachineLearningServices/workspaces/ml-ws";
        let v = json!([{"id": ws, "scope": ws, "role": {"name": "Owner"}, "files": [1, 2]}]);
        let t = table(
            &v,
            &[
                "Name=id|name",
                "Group=id|group",
                "Scope=scope|scope",
                "Role=role.name",
                "N=files|len",
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "Name   Group  Scope                  Role   N");
        assert_eq!(lines[2], "ml-ws  ml-rg  workspace ml-rg/ml-ws  Owner  2");
        assert_eq!(describe_scope("/subscriptions/0123456789ab"), "subscription 01234567");
        assert_eq!(describe_scope("/subscriptions/0123/resourceGroups/rg"), "group rg");
        assert_eq!(describe_scope("/"), "/");
    }

    #[test]
    fn the_query_runs_before_the_format() {
        let v = json!([{"name": "a", "id": "x"}, {"name": "b", "id": "y"}]);
        let r = render(&out(OutputFormat::Tsv, Some("[].name")), v.clone(), &[]).unwrap();
        assert_eq!(r, "a\nb\n");
        let r = render(&out(OutputFormat::Json, Some("[?name=='b'].id | [0]")), v, &[]).unwrap();
        assert_eq!(r, "\"y\"\n");
        assert!(parse_query("[?name==").is_err());
    }

    #[test]
    fn tsv_follows_az_with_jq_scalars() {
        let v = json!([{"b": true, "a": "x\ty", "l": [1, 2], "o": {"k": 1}, "n": null}]);
        assert_eq!(tsv(&v), "x y\ttrue\t2\t\t\n");
    }

    #[test]
    fn uncoloured_pretty_matches_serde_json() {
        let v = json!({"a": [1, {"b": null, "c": []}], "d": {}, "e": "s\"q", "f": 1.5});
        let mut s = String::new();
        pretty(&v, 0, false, &mut s);
        assert_eq!(s, serde_json::to_string_pretty(&v).unwrap());
        let c = render(&out(OutputFormat::Jsonc, None), v, &[]).unwrap();
        assert!(c.contains("\x1b[94m\"a\"\x1b[0m"), "{c}");
    }

    #[test]
    fn yaml_and_none() {
        let v = json!({"name": "a", "n": [1]});
        assert_eq!(
            render(&out(OutputFormat::Yaml, None), v.clone(), &[]).unwrap(),
            "n:\n- 1\nname: a\n"
        );
        assert_eq!(render(&out(OutputFormat::None, None), v, &[]).unwrap(), "");
    }
}
