//! Access control use cases: the authorization check every route makes, role definitions,
//! role assignments and `role check`'s explanations. The engine answers from memory; writes go
//! to the store first (one transaction each), then to the engine.

use std::sync::Arc;

use crate::changes::Change;
use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::Error;
use crate::ids::{ObjectId, RoleAssignmentId, RoleDefinitionId};
use crate::principal::Principal;
use crate::rbac::catalog::{
    ROLE_ASSIGNMENT_DELETE, ROLE_ASSIGNMENT_READ, ROLE_ASSIGNMENT_WRITE, ROLE_DEFINITION_WRITE,
    WORKSPACE_PROVIDER,
};
use crate::rbac::engine::Assignment;
use crate::rbac::role::{OWNER_ID, builtin_roles};
use crate::rbac::{Action, Engine, RoleDefinition, RoleDefinitionFile, Scope};
use crate::records::{CustomRoleRecord, PrincipalType, RoleAssignmentRecord};
use crate::store::{KeepOneAssignment, StoreError};

/// A role assignment as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentView {
    pub id: RoleAssignmentId,
    pub principal_id: ObjectId,
    pub principal_type: PrincipalType,
    pub role_definition_id: RoleDefinitionId,
    pub role_name: String,
    pub scope: String,
}

/// `role check`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub allowed: bool,
    pub principal_id: ObjectId,
    pub action: String,
    pub scope: String,
    /// The assignment that granted the action.
    pub decided_by: Option<AssignmentView>,
    /// Why each assignment that covers the scope did not grant it.
    pub considered: Vec<(AssignmentView, String)>,
}

pub struct Access {
    directory: Arc<Directory>,
    engine: Arc<Engine>,
    clock: Arc<dyn Clock>,
    /// Only benchmarks turn this off (to measure what enforcement costs); no flag or setting
    /// of the `mlgate` binary reaches it.
    enforce: bool,
}

fn action(name: &str) -> Result<Action, Error> {
    Action::new(name).map_err(Error::Internal)
}

impl Access {
    /// Loads built-in and custom roles and every assignment into the engine.
    pub async fn load(directory: Arc<Directory>, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let (roles, assignments) = Self::read_all(&directory).await?;
        let engine = Arc::new(Engine::new(roles, assignments));
        Ok(Self { directory, engine, clock, enforce: true })
    }

    /// Reads every role and assignment again and swaps them in whole (another node changed
    /// some; or the periodic reconciliation). Checks running meanwhile see the old set or the
    /// new one, never a mix.
    pub async fn reload(&self) -> Result<(), Error> {
        let (roles, assignments) = Self::read_all(&self.directory).await?;
        self.engine.replace(roles, assignments);
        Ok(())
    }

    async fn read_all(
        directory: &Directory,
    ) -> Result<(Vec<RoleDefinition>, Vec<Assignment>), Error> {
        let store = directory.store().clone();
        let mut roles = builtin_roles();
        for rec in store.custom_roles().await? {
            let parsed = serde_json::from_str::<RoleDefinitionFile>(&rec.definition_json)
                .map_err(|e| e.to_string())
                .and_then(|f| RoleDefinition::custom(&f, rec.id, rec.tenant_id));
            match parsed {
                Ok(r) => roles.push(r),
                Err(e) => {
                    tracing::error!(role = %rec.id, error = %e, "skipping an unreadable custom role")
                }
            }
        }
        let mut assignments = Vec::new();
        for a in store.role_assignments().await? {
            match Scope::parse(&a.scope) {
                Ok(scope) => assignments.push(Assignment {
                    id: a.id,
                    principal: a.principal_id,
                    principal_type: a.principal_type,
                    role: a.role_id,
                    scope,
                }),
                Err(e) => tracing::error!(assignment = %a.id, error = %e, "skipping an assignment"),
            }
        }
        Ok((roles, assignments))
    }

    /// For benchmarks only: serve without authorization checks.
    #[doc(hidden)]
    pub fn without_enforcement(mut self) -> Self {
        tracing::warn!("AUTHORIZATION IS OFF: every authenticated caller may do anything");
        self.enforce = false;
        self
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The one authorization function of the management API.
    pub fn authorize(
        &self,
        caller: &Principal,
        action_name: &str,
        scope: &Scope,
    ) -> Result<(), Error> {
        if !self.enforce {
            return Ok(());
        }
        self.engine
            .authorize(caller.object_id, &action(action_name)?, scope)
            .map(|_| ())
            .map_err(|denied| Error::Forbidden(denied.to_string()))
    }

    /// Gives every directory administrator Owner on every subscription of their tenant when no
    /// assignment exists yet (first start, or a store made before RBAC existed).
    pub async fn ensure_bootstrap_owners(&self) -> Result<(), Error> {
        let store = self.directory.store();
        if !store.role_assignments().await?.is_empty() {
            return Ok(());
        }
        let owner: RoleDefinitionId =
            OWNER_ID.parse().map_err(|_| Error::Internal("owner id".into()))?;
        let mut records = Vec::new();
        for tenant in self.directory.tenants().iter() {
            let admins: Vec<_> =
                store.list_users(tenant.id).await?.into_iter().filter(|u| u.is_admin).collect();
            for sub in store.list_subscriptions(tenant.id).await? {
                for admin in &admins {
                    records.push(RoleAssignmentRecord {
                        id: RoleAssignmentId::new_random(),
                        tenant_id: tenant.id,
                        principal_id: admin.object_id,
                        principal_type: PrincipalType::User,
                        role_id: owner,
                        scope: Scope::subscription(sub.id).as_str().to_string(),
                        created_at: self.clock.now(),
                        created_by: None,
                    });
                }
            }
        }
        store.insert_role_assignments(&records).await?;
        if !records.is_empty() {
            self.directory.publish(Change::Rbac).await;
        }
        for r in records {
            let scope = Scope::parse(&r.scope).map_err(|e| Error::Internal(e.to_string()))?;
            self.engine.add_assignment(Assignment {
                id: r.id,
                principal: r.principal_id,
                principal_type: r.principal_type,
                role: r.role_id,
                scope,
            });
        }
        Ok(())
    }

    fn view(&self, a: &Assignment) -> AssignmentView {
        AssignmentView {
            id: a.id,
            principal_id: a.principal,
            principal_type: a.principal_type,
            role_definition_id: a.role,
            role_name: self.engine.role(a.role).map(|r| r.name.clone()).unwrap_or_default(),
            scope: a.scope.as_str().to_string(),
        }
    }

    pub fn parse_scope(text: &str) -> Result<Scope, Error> {
        Scope::parse(text).map_err(|e| Error::InvalidInput(e.to_string()))
    }

    /// The scope must name things that exist in the caller's directory.
    async fn ensure_scope_exists(&self, caller: &Principal, scope: &Scope) -> Result<(), Error> {
        let store = self.directory.store();
        let Some(sub) = scope.subscription_id() else {
            return Err(Error::InvalidInput(
                "roles cannot be assigned at the root scope '/'".into(),
            ));
        };
        match store.subscription(sub).await? {
            Some(s) if s.tenant_id == caller.tenant_id => {}
            _ => {
                return Err(Error::NotFound(format!(
                    "The subscription '{sub}' could not be found."
                )));
            }
        }
        if let Some(rg) = scope.resource_group() {
            if store.resource_group(sub, rg).await?.is_none() {
                return Err(Error::NotFound(format!("Resource group '{rg}' could not be found.")));
            }
            let segs: Vec<&str> = scope.as_str().split('/').collect();
            // /subscriptions/s/resourceGroups/rg/providers/NS/workspaces/NAME[/...]
            if segs.len() >= 9
                && segs[6].eq_ignore_ascii_case(WORKSPACE_PROVIDER)
                && segs[7].eq_ignore_ascii_case("workspaces")
                && store.workspace(sub, rg, segs[8]).await?.is_none()
            {
                return Err(Error::NotFound(format!(
                    "Workspace '{}' could not be found.",
                    segs[8]
                )));
            }
        }
        Ok(())
    }

    /// A user or service principal by object id, application id or user principal name.
    pub async fn resolve_principal(
        &self,
        caller: &Principal,
        assignee: &str,
    ) -> Result<(ObjectId, PrincipalType), Error> {
        let store = self.directory.store();
        let t = caller.tenant_id;
        let not_found = || {
            Error::InvalidInput(format!(
                "Principal '{}' does not exist in the directory '{t}'.",
                assignee.chars().take(100).collect::<String>()
            ))
        };
        if let Ok(guid) = assignee.trim().parse::<uuid::Uuid>() {
            if let Some(u) = self.directory.member(t, ObjectId(guid)).await? {
                return Ok((u.object_id, PrincipalType::User));
            }
            if let Some(sp) = store.service_principal(t, ObjectId(guid)).await? {
                return Ok((sp.object_id, PrincipalType::ServicePrincipal));
            }
            if let Some(sp) = store.service_principal_by_app_id(t, crate::ids::AppId(guid)).await? {
                return Ok((sp.object_id, PrincipalType::ServicePrincipal));
            }
            return Err(not_found());
        }
        match self.directory.user_for_sign_in(t, assignee).await? {
            Some(u) => Ok((u.object_id, PrincipalType::User)),
            None => Err(not_found()),
        }
    }

    pub async fn create_assignment(
        &self,
        caller: &Principal,
        assignee: &str,
        role: &str,
        scope: &str,
    ) -> Result<AssignmentView, Error> {
        self.put_assignment(caller, RoleAssignmentId::new_random(), assignee, role, scope).await
    }

    /// ARM's `PUT {scope}/providers/Microsoft.Authorization/roleAssignments/{id}`: the client
    /// chooses the id. Putting the same assignment under the same id again is a no-op.
    pub async fn put_assignment(
        &self,
        caller: &Principal,
        id: RoleAssignmentId,
        assignee: &str,
        role: &str,
        scope: &str,
    ) -> Result<AssignmentView, Error> {
        let scope = Self::parse_scope(scope)?;
        self.authorize(caller, ROLE_ASSIGNMENT_WRITE, &scope)?;
        self.ensure_scope_exists(caller, &scope).await?;
        let role = self.engine.find_role(caller.tenant_id, role).ok_or_else(|| {
            Error::InvalidInput(format!(
                "The role definition '{}' does not exist.",
                role.chars().take(128).collect::<String>()
            ))
        })?;
        if !role.assignable_at(&scope) {
            return Err(Error::InvalidInput(format!(
                "The role '{}' is not available to be assigned at scope '{scope}': it is outside \
                 the role's AssignableScopes.",
                role.name
            )));
        }
        let (principal, principal_type) = self.resolve_principal(caller, assignee).await?;
        if let Some(same) = self.engine.assignments(|a| a.id == id).into_iter().next() {
            if same.principal == principal && same.role == role.id && same.scope == scope {
                return Ok(self.view(&same));
            }
            return Err(Error::Conflict(format!(
                "The role assignment '{id}' already exists with other properties; role                  assignments cannot be changed, delete it first."
            )));
        }
        let record = RoleAssignmentRecord {
            id,
            tenant_id: caller.tenant_id,
            principal_id: principal,
            principal_type,
            role_id: role.id,
            scope: scope.as_str().to_string(),
            created_at: self.clock.now(),
            created_by: Some(caller.object_id),
        };
        self.directory.store().insert_role_assignment(&record).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::Conflict(format!(
                "The role assignment already exists: '{principal}' already has '{}' at '{scope}'.",
                role.name
            )),
            other => other.into(),
        })?;
        let a = Assignment { id: record.id, principal, principal_type, role: role.id, scope };
        self.engine.add_assignment(a.clone());
        self.directory.publish(Change::Rbac).await;
        Ok(self.view(&a))
    }

    /// Assignments the caller may read; with a scope, those at or below it (and above it with
    /// `include_inherited`); with an assignee, only theirs.
    pub async fn list_assignments(
        &self,
        caller: &Principal,
        scope: Option<&str>,
        assignee: Option<&str>,
        include_inherited: bool,
    ) -> Result<Vec<AssignmentView>, Error> {
        let scope = scope.map(Self::parse_scope).transpose()?;
        let principal = match assignee {
            Some(a) => Some(self.resolve_principal(caller, a).await?.0),
            None => None,
        };
        let read = action(ROLE_ASSIGNMENT_READ)?;
        let mut out: Vec<AssignmentView> = self
            .engine
            .assignments(|a| {
                principal.is_none_or(|p| a.principal == p)
                    && scope.as_ref().is_none_or(|s| {
                        a.scope.is_within(s) || (include_inherited && s.is_within(&a.scope))
                    })
                    && self.engine.authorize(caller.object_id, &read, &a.scope).is_ok()
            })
            .iter()
            .map(|a| self.view(a))
            .collect();
        out.sort_by(|a, b| {
            (a.scope.to_ascii_lowercase(), &a.role_name)
                .cmp(&(b.scope.to_ascii_lowercase(), &b.role_name))
        });
        Ok(out)
    }

    pub async fn delete_assignment(
        &self,
        caller: &Principal,
        id: &str,
    ) -> Result<AssignmentView, Error> {
        let not_found = || Error::NotFound(format!("The role assignment '{id}' does not exist."));
        let id: RoleAssignmentId = id.trim().parse().map_err(|_| not_found())?;
        let found =
            self.engine.assignments(|a| a.id == id).into_iter().next().ok_or_else(not_found)?;
        self.authorize(caller, ROLE_ASSIGNMENT_DELETE, &found.scope)?;
        let owner: RoleDefinitionId =
            OWNER_ID.parse().map_err(|_| Error::Internal("owner id".into()))?;
        let keep = (found.role == owner && found.scope.is_subscription())
            .then(|| KeepOneAssignment { role: owner, scope_key: found.scope.key().to_string() });
        self.directory.store().delete_role_assignment(id, keep.as_ref()).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::Conflict(format!(
                "Cannot remove the last Owner of subscription scope '{}': assign another Owner first.",
                found.scope
            )),
            StoreError::NotFound => not_found(),
            other => other.into(),
        })?;
        self.engine.remove_assignment(found.principal, id);
        self.directory.publish(Change::Rbac).await;
        Ok(self.view(&found))
    }

    pub fn role_definitions(&self, caller: &Principal) -> Vec<Arc<RoleDefinition>> {
        self.engine.roles_for(caller.tenant_id)
    }

    /// The roles that can be assigned at `scope` or below it: the built-ins and the tenant's
    /// custom roles whose assignable scopes cover or lie under it (ARM's listing at a scope).
    pub fn role_definitions_at(
        &self,
        caller: &Principal,
        scope: &Scope,
    ) -> Vec<Arc<RoleDefinition>> {
        self.engine
            .roles_for(caller.tenant_id)
            .into_iter()
            .filter(|r| {
                r.assignable_scopes.iter().any(|a| scope.is_within(a) || a.is_within(scope))
            })
            .collect()
    }

    /// ARM's assignment listing at a scope: the assignments at it, above it and (unless
    /// `at_scope_only`, `$filter=atScope()`) below it, optionally of one principal, among those
    /// the caller may read.
    pub fn assignments_at(
        &self,
        caller: &Principal,
        scope: &Scope,
        at_scope_only: bool,
        principal: Option<ObjectId>,
    ) -> Vec<AssignmentView> {
        let read = match action(ROLE_ASSIGNMENT_READ) {
            Ok(a) => a,
            Err(_) => return Vec::new(),
        };
        let mut out: Vec<AssignmentView> = self
            .engine
            .assignments(|a| {
                principal.is_none_or(|p| a.principal == p)
                    && (scope.is_within(&a.scope) || (!at_scope_only && a.scope.is_within(scope)))
                    && (!self.enforce
                        || self.engine.authorize(caller.object_id, &read, &a.scope).is_ok())
            })
            .iter()
            .map(|a| self.view(a))
            .collect();
        out.sort_by(|a, b| {
            (a.scope.to_ascii_lowercase(), &a.role_name, a.id).cmp(&(
                b.scope.to_ascii_lowercase(),
                &b.role_name,
                b.id,
            ))
        });
        out
    }

    /// One assignment by id, if the caller may read it.
    pub fn assignment(
        &self,
        caller: &Principal,
        id: RoleAssignmentId,
    ) -> Result<AssignmentView, Error> {
        let not_found = || Error::NotFound(format!("The role assignment '{id}' is not found."));
        let found =
            self.engine.assignments(|a| a.id == id).into_iter().next().ok_or_else(not_found)?;
        self.authorize(caller, ROLE_ASSIGNMENT_READ, &found.scope)?;
        Ok(self.view(&found))
    }

    /// `az role definition create`: Azure's JSON, verbatim.
    pub async fn create_role_definition(
        &self,
        caller: &Principal,
        file: &RoleDefinitionFile,
    ) -> Result<Arc<RoleDefinition>, Error> {
        self.create_role_definition_with_id(caller, RoleDefinitionId::new_random(), file).await
    }

    /// ARM's `PUT .../roleDefinitions/{id}`: the client chooses the id.
    pub async fn create_role_definition_with_id(
        &self,
        caller: &Principal,
        id: RoleDefinitionId,
        file: &RoleDefinitionFile,
    ) -> Result<Arc<RoleDefinition>, Error> {
        let role =
            RoleDefinition::custom(file, id, caller.tenant_id).map_err(Error::InvalidInput)?;
        for scope in &role.assignable_scopes {
            self.ensure_scope_exists(caller, scope).await?;
            self.authorize(caller, ROLE_DEFINITION_WRITE, scope)?;
        }
        if self.engine.role(id).is_some() {
            return Err(Error::Conflict(format!(
                "A role definition with id '{id}' already exists; it cannot be changed here."
            )));
        }
        if self.engine.find_role(caller.tenant_id, &role.name).is_some() {
            return Err(Error::Conflict(format!(
                "A role definition named '{}' already exists.",
                role.name
            )));
        }
        let json =
            serde_json::to_string(&role.to_file()).map_err(|e| Error::Internal(e.to_string()))?;
        let record = CustomRoleRecord {
            id: role.id,
            tenant_id: caller.tenant_id,
            name: role.name.clone(),
            definition_json: json,
            created_at: self.clock.now(),
        };
        self.directory.store().insert_custom_role(&record).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                Error::Conflict(format!("A role definition named '{}' already exists.", role.name))
            }
            other => other.into(),
        })?;
        self.engine.put_role(role.clone());
        self.directory.publish(Change::Rbac).await;
        self.engine.role(role.id).ok_or_else(|| Error::Internal("role vanished".into()))
    }

    /// `role check`: may `assignee` perform `action` at `scope`, and which assignment decided?
    pub async fn check(
        &self,
        caller: &Principal,
        assignee: &str,
        action_name: &str,
        scope: &str,
    ) -> Result<CheckResult, Error> {
        let scope = Self::parse_scope(scope)?;
        let act = Action::new(action_name).map_err(Error::InvalidInput)?;
        let (principal, _) = self.resolve_principal(caller, assignee).await?;
        if principal != caller.object_id {
            self.authorize(caller, ROLE_ASSIGNMENT_READ, &scope)?;
        }
        let decided = self.engine.authorize(principal, &act, &scope).ok();
        let all = self.engine.assignments_of(principal);
        let decided_by = decided
            .as_ref()
            .and_then(|d| all.iter().find(|a| a.id == d.assignment))
            .map(|a| self.view(a));
        let mut considered = Vec::new();
        for a in all.iter().filter(|a| Some(a.id) != decided.as_ref().map(|d| d.assignment)) {
            let why = if !scope.is_within(&a.scope) {
                format!("its scope '{}' does not contain '{scope}'", a.scope)
            } else {
                match self.engine.role(a.role) {
                    Some(r) if r.actions.iter().any(|p| p.matches(&act)) => {
                        format!("'{}' excludes it through NotActions", r.name)
                    }
                    Some(r) => format!("'{}' does not grant it", r.name),
                    None => "its role no longer exists".to_string(),
                }
            };
            considered.push((self.view(a), why));
        }
        Ok(CheckResult {
            allowed: decided.is_some(),
            principal_id: principal,
            action: act.to_string(),
            scope: scope.as_str().to_string(),
            decided_by,
            considered,
        })
    }

    /// A new tenant (directory) with a default subscription; the creating administrator becomes
    /// a member administrator of it and Owner of the subscription.
    pub async fn create_tenant(
        &self,
        caller: &Principal,
        domain: &str,
        display_name: &str,
    ) -> Result<(crate::records::Tenant, crate::records::Subscription), Error> {
        self.directory.ensure_admin(caller).await?;
        let domain = domain.trim().to_ascii_lowercase();
        crate::directory::validate_domain(&domain)?;
        let display_name = display_name.trim();
        if display_name.is_empty() || display_name.len() > 120 {
            return Err(Error::InvalidInput("the display name must be 1 to 120 characters".into()));
        }
        let tenant = crate::records::Tenant {
            id: crate::ids::TenantId::new_random(),
            domain: domain.clone(),
            display_name: display_name.to_string(),
        };
        let subscription = crate::records::Subscription {
            id: crate::ids::SubscriptionId::new_random(),
            tenant_id: tenant.id,
            display_name: format!("{display_name} subscription"),
        };
        let owner: RoleDefinitionId =
            OWNER_ID.parse().map_err(|_| Error::Internal("owner id".into()))?;
        let scope = Scope::subscription(subscription.id);
        let record = RoleAssignmentRecord {
            id: RoleAssignmentId::new_random(),
            tenant_id: tenant.id,
            principal_id: caller.object_id,
            principal_type: PrincipalType::User,
            role_id: owner,
            scope: scope.as_str().to_string(),
            created_at: self.clock.now(),
            created_by: Some(caller.object_id),
        };
        self.directory
            .store()
            .create_tenant(
                &tenant,
                &subscription,
                &crate::directory::cli_application(tenant.id, self.clock.now())?,
                caller.object_id,
                &record,
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    Error::Conflict(format!("the domain '{domain}' is already taken"))
                }
                other => other.into(),
            })?;
        self.directory.reload_tenants().await?;
        self.engine.add_assignment(Assignment {
            id: record.id,
            principal: caller.object_id,
            principal_type: PrincipalType::User,
            role: owner,
            scope,
        });
        self.directory.publish(Change::Tenants).await;
        self.directory.publish(Change::Rbac).await;
        Ok((tenant, subscription))
    }

    /// A deleted principal loses its assignments (the store drops them in the same transaction).
    pub fn forget_principal(&self, principal: ObjectId) {
        for a in self.engine.assignments_of(principal) {
            self.engine.remove_assignment(principal, a.id);
        }
    }
}
