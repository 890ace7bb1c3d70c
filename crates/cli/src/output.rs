//! Printing results: JSON by default, `-o table` for people.

use serde::Serialize;
use serde_json::Value;

use crate::cli::OutputFormat;

pub fn print<T: Serialize>(format: OutputFormat, value: &T) -> anyhow::Result<()> {
    let value = serde_json::to_value(value)?;
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        OutputFormat::Table => print!("{}", table(&value)),
    }
    Ok(())
}

fn cell(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Columns are the scalar fields of the rows (nested objects and arrays are left out, as the
/// Azure CLI's table output does).
pub fn table(value: &Value) -> String {
    let rows: Vec<&serde_json::Map<String, Value>> = match value {
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        Value::Object(o) => vec![o],
        other => return format!("{}\n", cell(other).unwrap_or_default()),
    };
    let Some(first) = rows.first() else { return String::new() };
    let columns: Vec<&String> =
        first.iter().filter(|(_, v)| cell(v).is_some()).map(|(k, _)| k).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| r.get(*c).and_then(cell).unwrap_or_default()).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).max(c.len()))
        .collect();
    let mut out = String::new();
    let line = |vals: Vec<String>| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    out += &line(columns.iter().map(|c| c.to_string()).collect());
    out += &line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in cells {
        out += &line(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_scalar_columns() {
        let v = serde_json::json!([{"name": "a", "n": 1, "nested": {"x": 1}}, {"name": "long", "n": 22}]);
        let t = table(&v);
        // serde_json orders keys alphabetically.
        assert_eq!(t, "n   name\n--  ----\n1   a\n22  long\n");
    }
}
