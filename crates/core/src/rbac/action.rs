//! Actions (`Microsoft.MachineLearningServices/workspaces/read`) and the wildcard patterns of
//! role definitions, matched case-insensitively as Azure does. `*` matches any run of
//! characters, and `/*/` also matches a single `/`, so `workspaces/*/write` covers
//! `workspaces/write` (which is why Azure's built-in roles list it under NotActions).

use std::fmt;

/// An action name, kept as spelled (for messages) and lower-cased (for matching).
#[derive(Debug, Clone)]
pub struct Action {
    display: String,
    key: String,
}

impl PartialEq for Action {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Action {}

impl Action {
    pub fn new(name: &str) -> Result<Self, String> {
        let n = name.trim();
        let ok = !n.is_empty()
            && n.len() <= 256
            && n.contains('/')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || "./-_".contains(c));
        if ok {
            Ok(Self { display: n.to_string(), key: n.to_ascii_lowercase() })
        } else {
            Err(format!("'{name}' is not an action name"))
        }
    }

    /// The lower-cased form patterns match against.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// One entry of `Actions`/`NotActions`, compiled once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionPattern {
    text: String,
    /// Each variant is a list of literal pieces between `*`s.
    variants: Vec<Vec<String>>,
}

impl ActionPattern {
    pub fn new(pattern: &str) -> Result<Self, String> {
        let p = pattern.trim();
        let ok = !p.is_empty()
            && p.len() <= 256
            && p.chars().all(|c| c.is_ascii_alphanumeric() || "./-_*".contains(c))
            && (p == "*" || p.contains('/'));
        if !ok {
            return Err(format!("'{pattern}' is not an action or action pattern"));
        }
        let lower = p.to_ascii_lowercase();
        let mut texts = vec![lower.clone()];
        if lower.contains("/*/") {
            texts.push(lower.replace("/*/", "/"));
        }
        let variants = texts.iter().map(|t| t.split('*').map(str::to_string).collect()).collect();
        Ok(Self { text: p.to_string(), variants })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, action: &Action) -> bool {
        self.variants.iter().any(|pieces| glob(pieces, action.key()))
    }
}

/// Does `s` match the pieces of a pattern split on `*`?
fn glob(pieces: &[String], s: &str) -> bool {
    match pieces {
        [] => s.is_empty(),
        [only] => s == only,
        [first, middle @ .., last] => {
            if !s.starts_with(first.as_str()) || s.len() < first.len() + last.len() {
                return false;
            }
            let mut rest = &s[first.len()..s.len() - last.len()];
            if !s.ends_with(last.as_str()) {
                return false;
            }
            for piece in middle {
                match rest.find(piece.as_str()) {
                    Some(i) => rest = &rest[i + piece.len()..],
                    None => return false,
                }
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, a: &str) -> bool {
        ActionPattern::new(p).unwrap().matches(&Action::new(a).unwrap())
    }

    #[test]
    fn wildcards_match_as_in_azure() {
        assert!(m("*", "Microsoft.MachineLearningServices/workspaces/read"));
        assert!(m("*/read", "Microsoft.MachineLearningServices/workspaces/models/read"));
        assert!(!m("*/read", "Microsoft.MachineLearningServices/workspaces/write"));
        assert!(m(
            "Microsoft.MachineLearningServices/workspaces/*/read",
            "microsoft.machinelearningservices/workspaces/models/read"
        ));
        assert!(m(
            "Microsoft.MachineLearningServices/workspaces/*/write",
            "Microsoft.MachineLearningServices/workspaces/write"
        ));
        assert!(m(
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(!m(
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/roleAssignments/read"
        ));
        assert!(m(
            "Microsoft.MachineLearningServices/workspaces/read",
            "MICROSOFT.MACHINELEARNINGSERVICES/WORKSPACES/READ"
        ));
        assert!(!m(
            "Microsoft.MachineLearningServices/workspaces/read",
            "Microsoft.MachineLearningServices/workspaces/readx"
        ));
        assert!(m(
            "Microsoft.Resources/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read"
        ));
        assert!(!m("a/*b*c", "a/bxb"));
        assert!(m("a/*b*c", "a/xbyc"));
        assert!(ActionPattern::new("no slash").is_err());
        assert!(ActionPattern::new("bad\"char/x").is_err());
    }
}
