//! The authorization engine: role definitions and every role assignment, indexed by principal
//! in memory, so a check is a hash lookup plus a scan of that principal's few assignments and
//! never touches the store. Writers update the store first, then the engine, so a change takes
//! effect on the very next request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::action::Action;
use super::role::RoleDefinition;
use super::scope::Scope;
use crate::ids::{ObjectId, RoleAssignmentId, RoleDefinitionId, TenantId};
use crate::records::PrincipalType;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub id: RoleAssignmentId,
    pub principal: ObjectId,
    pub principal_type: PrincipalType,
    pub role: RoleDefinitionId,
    pub scope: Scope,
}

/// Which assignment granted the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub assignment: RoleAssignmentId,
    pub role: String,
    pub scope: Scope,
}

/// A denial that says who, what and where, in Azure's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "The client '{principal}' with object id '{principal}' does not have authorization to perform \
     action '{action}' over scope '{scope}' or the scope is invalid."
)]
pub struct Denied {
    pub principal: ObjectId,
    pub action: Action,
    pub scope: Scope,
}

#[derive(Default)]
struct Index {
    roles: HashMap<RoleDefinitionId, Arc<RoleDefinition>>,
    by_principal: HashMap<ObjectId, Vec<Assignment>>,
}

#[derive(Default)]
pub struct Engine {
    index: RwLock<Index>,
}

impl Engine {
    pub fn new(roles: Vec<RoleDefinition>, assignments: Vec<Assignment>) -> Self {
        let mut index = Index::default();
        for r in roles {
            index.roles.insert(r.id, Arc::new(r));
        }
        for a in assignments {
            index.by_principal.entry(a.principal).or_default().push(a);
        }
        Self { index: RwLock::new(index) }
    }

    /// Replaces every role and assignment at once (a reload from the store).
    pub fn replace(&self, roles: Vec<RoleDefinition>, assignments: Vec<Assignment>) {
        let fresh = Self::new(roles, assignments);
        let index = fresh.index.into_inner().unwrap_or_else(|p| p.into_inner());
        *self.write() = index;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// May `principal` perform `action` on `scope`? The one authorization function.
    pub fn authorize(
        &self,
        principal: ObjectId,
        action: &Action,
        scope: &Scope,
    ) -> Result<Allowed, Denied> {
        self.decide(principal, scope, |r| r.permits(action)).ok_or_else(|| Denied {
            principal,
            action: action.clone(),
            scope: scope.clone(),
        })
    }

    /// The same for data actions (`DataActions`/`NotDataActions`).
    pub fn authorize_data(
        &self,
        principal: ObjectId,
        action: &Action,
        scope: &Scope,
    ) -> Result<Allowed, Denied> {
        self.decide(principal, scope, |r| r.permits_data(action)).ok_or_else(|| Denied {
            principal,
            action: action.clone(),
            scope: scope.clone(),
        })
    }

    fn decide(
        &self,
        principal: ObjectId,
        scope: &Scope,
        permits: impl Fn(&RoleDefinition) -> bool,
    ) -> Option<Allowed> {
        let index = self.read();
        let assignments = index.by_principal.get(&principal)?;
        assignments.iter().find_map(|a| {
            if !scope.is_within(&a.scope) {
                return None;
            }
            let role = index.roles.get(&a.role)?;
            permits(role).then(|| Allowed {
                assignment: a.id,
                role: role.name.clone(),
                scope: a.scope.clone(),
            })
        })
    }

    /// Does the principal hold any assignment at or below `scope` (or above it)? Used to list
    /// the subscriptions a principal can see.
    pub fn has_any_access(&self, principal: ObjectId, scope: &Scope) -> bool {
        self.read().by_principal.get(&principal).is_some_and(|v| {
            v.iter().any(|a| a.scope.is_within(scope) || scope.is_within(&a.scope))
        })
    }

    pub fn add_assignment(&self, a: Assignment) {
        self.write().by_principal.entry(a.principal).or_default().push(a);
    }

    pub fn remove_assignment(&self, principal: ObjectId, id: RoleAssignmentId) {
        let mut index = self.write();
        if let Some(v) = index.by_principal.get_mut(&principal) {
            v.retain(|a| a.id != id);
            if v.is_empty() {
                index.by_principal.remove(&principal);
            }
        }
    }

    /// Drops every assignment at or below `scope` (the scope was deleted).
    pub fn remove_assignments_within(&self, scope: &Scope) {
        let mut index = self.write();
        for v in index.by_principal.values_mut() {
            v.retain(|a| !a.scope.is_within(scope));
        }
        index.by_principal.retain(|_, v| !v.is_empty());
    }

    pub fn put_role(&self, role: RoleDefinition) {
        self.write().roles.insert(role.id, Arc::new(role));
    }

    pub fn remove_role(&self, id: RoleDefinitionId) {
        self.write().roles.remove(&id);
    }

    pub fn role(&self, id: RoleDefinitionId) -> Option<Arc<RoleDefinition>> {
        self.read().roles.get(&id).cloned()
    }

    /// Built-in roles and the tenant's custom roles.
    pub fn roles_for(&self, tenant: TenantId) -> Vec<Arc<RoleDefinition>> {
        let mut roles: Vec<_> = self
            .read()
            .roles
            .values()
            .filter(|r| r.tenant.is_none() || r.tenant == Some(tenant))
            .cloned()
            .collect();
        roles.sort_by(|a, b| (a.is_custom, &a.name).cmp(&(b.is_custom, &b.name)));
        roles
    }

    /// A role by name (case-insensitive) or id, as `--role` takes it.
    pub fn find_role(&self, tenant: TenantId, name_or_id: &str) -> Option<Arc<RoleDefinition>> {
        let wanted = name_or_id.trim();
        let id = wanted.rsplit('/').next().and_then(|s| s.parse::<RoleDefinitionId>().ok());
        self.roles_for(tenant)
            .into_iter()
            .find(|r| Some(r.id) == id || r.name.eq_ignore_ascii_case(wanted))
    }

    pub fn assignments_of(&self, principal: ObjectId) -> Vec<Assignment> {
        self.read().by_principal.get(&principal).cloned().unwrap_or_default()
    }

    /// Every assignment matching `filter` (for listing; not on the hot path).
    pub fn assignments(&self, filter: impl Fn(&Assignment) -> bool) -> Vec<Assignment> {
        self.read().by_principal.values().flatten().filter(|a| filter(a)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::role::{READER_ID, builtin_roles};

    #[test]
    fn assignments_are_inherited_down_the_tree_and_denials_explain() {
        let sub = "/subscriptions/6f1a2b3c-0000-4000-8000-00000000000a";
        let rg = Scope::parse(&format!("{sub}/resourceGroups/rg")).unwrap();
        let ws = Scope::parse(&format!(
            "{sub}/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w"
        ))
        .unwrap();
        let other = Scope::parse(&format!("{sub}/resourceGroups/other")).unwrap();
        let p = ObjectId::new_random();
        let id = RoleAssignmentId::new_random();
        let engine = Engine::new(
            builtin_roles(),
            vec![Assignment {
                id,
                principal: p,
                principal_type: PrincipalType::User,
                role: READER_ID.parse().unwrap(),
                scope: rg.clone(),
            }],
        );
        let read = Action::new("Microsoft.MachineLearningServices/workspaces/read").unwrap();
        let write = Action::new("Microsoft.MachineLearningServices/workspaces/write").unwrap();
        assert_eq!(engine.authorize(p, &read, &ws).unwrap().assignment, id);
        assert!(engine.authorize(p, &read, &other).is_err());
        let denied = engine.authorize(p, &write, &ws).unwrap_err();
        let msg = denied.to_string();
        assert!(
            msg.contains(&p.to_string())
                && msg.contains("workspaces/write")
                && msg.contains("/workspaces/w"),
            "{msg}"
        );
        assert!(engine.authorize(ObjectId::new_random(), &read, &ws).is_err());
        engine.remove_assignment(p, id);
        assert!(engine.authorize(p, &read, &ws).is_err(), "revocation is immediate");
    }
}
