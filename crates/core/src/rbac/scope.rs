//! ARM scopes. A scope is kept in its caller's spelling for display and in lower case for
//! comparison, since ARM matches resource ids case-insensitively.

use std::fmt;

use crate::ids::SubscriptionId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{scope}' is not a valid scope: {reason}")]
pub struct ScopeError {
    pub scope: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone)]
pub struct Scope {
    display: String,
    key: String,
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Scope {}
impl std::hash::Hash for Scope {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// A resource-group name as ARM allows it.
pub fn valid_resource_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 90
        && !name.ends_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c))
}

/// A resource (or child resource) name: no separators, no control characters.
fn valid_resource_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 260
        && name.chars().all(|c| !c.is_control() && !"/\\?#%&<>*:".contains(c))
}

impl Scope {
    /// The root scope `/`, above every subscription.
    pub fn root() -> Self {
        Self { display: "/".into(), key: "/".into() }
    }

    pub fn subscription(id: SubscriptionId) -> Self {
        let display = format!("/subscriptions/{id}");
        Self { key: display.to_ascii_lowercase(), display }
    }

    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        let err = |reason| ScopeError { scope: text.chars().take(300).collect(), reason };
        let t = text.trim();
        if t == "/" {
            return Ok(Self::root());
        }
        if !t.starts_with('/') || t.len() > 1024 {
            return Err(err("a scope starts with '/subscriptions/'"));
        }
        let segs: Vec<&str> = t.trim_end_matches('/').split('/').skip(1).collect();
        if segs.len() < 2 || !segs[0].eq_ignore_ascii_case("subscriptions") {
            return Err(err("a scope starts with '/subscriptions/{id}'"));
        }
        if segs[1].parse::<SubscriptionId>().is_err() {
            return Err(err("the subscription id is not a GUID"));
        }
        let mut canonical = vec!["subscriptions".to_string(), segs[1].to_ascii_lowercase()];
        let rest = &segs[2..];
        if !rest.is_empty() {
            if rest.len() < 2 || !rest[0].eq_ignore_ascii_case("resourceGroups") {
                return Err(err("expected 'resourceGroups/{name}' after the subscription"));
            }
            if !valid_resource_group_name(rest[1]) {
                return Err(err("invalid resource group name"));
            }
            canonical.push("resourceGroups".into());
            canonical.push(rest[1].to_string());
            let deeper = &rest[2..];
            if !deeper.is_empty() {
                // providers/{Namespace}/{type}/{name}[/{type}/{name}]...
                if deeper.len() < 4 || !deeper[0].eq_ignore_ascii_case("providers") {
                    return Err(err("expected 'providers/{namespace}/{type}/{name}'"));
                }
                if !deeper[1].contains('.')
                    || !deeper[1].chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
                {
                    return Err(err("invalid provider namespace"));
                }
                if !deeper[2..].len().is_multiple_of(2) {
                    return Err(err("resource types and names come in pairs"));
                }
                canonical.push("providers".into());
                canonical.push(deeper[1].to_string());
                for pair in deeper[2..].chunks(2) {
                    if !pair[0].chars().all(|c| c.is_ascii_alphanumeric()) || pair[0].is_empty() {
                        return Err(err("invalid resource type"));
                    }
                    if !valid_resource_name(pair[1]) {
                        return Err(err("invalid resource name"));
                    }
                    canonical.push(pair[0].to_string());
                    canonical.push(pair[1].to_string());
                }
            }
        }
        let display = format!("/{}", canonical.join("/"));
        Ok(Self { key: display.to_ascii_lowercase(), display })
    }

    /// The caller's spelling (segment keywords normalised).
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The lower-case form compared and stored as key.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn is_root(&self) -> bool {
        self.key == "/"
    }

    /// Is `self` equal to `ancestor` or below it?
    pub fn is_within(&self, ancestor: &Scope) -> bool {
        ancestor.is_root()
            || self.key == ancestor.key
            || (self.key.len() > ancestor.key.len()
                && self.key.starts_with(&ancestor.key)
                && self.key.as_bytes()[ancestor.key.len()] == b'/')
    }

    /// The subscription this scope lies in (`None` for the root).
    pub fn subscription_id(&self) -> Option<SubscriptionId> {
        self.key.split('/').nth(2).and_then(|s| s.parse().ok())
    }

    /// The resource group's name, in the caller's spelling, if the scope is at or below one.
    pub fn resource_group(&self) -> Option<&str> {
        self.display.split('/').nth(4)
    }

    /// Is this exactly a subscription scope?
    pub fn is_subscription(&self) -> bool {
        self.key.split('/').count() == 3 && !self.is_root()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "/subscriptions/6f1a2b3c-0000-4000-8000-00000000000a";

    #[test]
    fn scopes_parse_compare_case_insensitively_and_nest() {
        let ws = Scope::parse(&format!(
            "{SUB}/resourcegroups/RG1/providers/Microsoft.MachineLearningServices/workspaces/ws"
        ))
        .unwrap();
        let rg = Scope::parse(&format!(
            "{}/resourceGroups/rg1",
            SUB.to_uppercase().replace("SUBSCRIPTIONS", "subscriptions")
        ))
        .unwrap();
        let other_rg = Scope::parse(&format!("{SUB}/resourceGroups/rg10")).unwrap();
        let sub = Scope::parse(SUB).unwrap();
        assert!(ws.is_within(&rg));
        assert!(ws.is_within(&sub));
        assert!(ws.is_within(&Scope::root()));
        assert!(!ws.is_within(&other_rg), "rg1 is not a prefix-sibling of rg10");
        assert!(!rg.is_within(&ws));
        assert_eq!(ws.resource_group(), Some("RG1"));
        assert!(ws.as_str().contains("/resourceGroups/RG1/"));
        assert!(sub.is_subscription() && !rg.is_subscription());
        assert_eq!(rg, Scope::parse(&format!("{SUB}/RESOURCEGROUPS/RG1/")).unwrap());
        for bad in [
            "",
            "subscriptions/x",
            "/subscriptions/not-a-guid",
            &format!("{SUB}/resourceGroups"),
            &format!("{SUB}/resourceGroups/bad name"),
            &format!("{SUB}/resourceGroups/rg/providers/Microsoft.X/workspaces"),
            &format!("{SUB}/resourceGroups/rg/providers/NoDot/workspaces/w"),
            &format!("{SUB}/somethingElse/x"),
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad} parsed");
        }
    }
}
