//! The actions mlgate checks, in Azure's names. `docs/rbac.md` lists them for operators.

pub const SUBSCRIPTION_READ: &str = "Microsoft.Resources/subscriptions/read";
pub const RESOURCE_GROUP_READ: &str = "Microsoft.Resources/subscriptions/resourceGroups/read";
pub const RESOURCE_GROUP_WRITE: &str = "Microsoft.Resources/subscriptions/resourceGroups/write";
pub const RESOURCE_GROUP_DELETE: &str = "Microsoft.Resources/subscriptions/resourceGroups/delete";

pub const WORKSPACE_READ: &str = "Microsoft.MachineLearningServices/workspaces/read";
pub const WORKSPACE_WRITE: &str = "Microsoft.MachineLearningServices/workspaces/write";
pub const WORKSPACE_DELETE: &str = "Microsoft.MachineLearningServices/workspaces/delete";

pub const MODEL_READ: &str = "Microsoft.MachineLearningServices/workspaces/models/read";
pub const MODEL_WRITE: &str = "Microsoft.MachineLearningServices/workspaces/models/write";
pub const MODEL_DELETE: &str = "Microsoft.MachineLearningServices/workspaces/models/delete";

pub const SERVICE_READ: &str = "Microsoft.MachineLearningServices/workspaces/services/read";
pub const SERVICE_WRITE: &str = "Microsoft.MachineLearningServices/workspaces/services/write";
pub const SERVICE_DELETE: &str = "Microsoft.MachineLearningServices/workspaces/services/delete";
pub const SERVICE_LIST_KEYS: &str =
    "Microsoft.MachineLearningServices/workspaces/services/listKeys/action";
pub const SERVICE_REGENERATE_KEYS: &str =
    "Microsoft.MachineLearningServices/workspaces/services/regenerateKeys/action";
pub const SERVICE_SCORE: &str =
    "Microsoft.MachineLearningServices/workspaces/services/score/action";

// Online endpoints (Azure ML SDK v2): the same services, under Azure's names for them.
pub const ENDPOINT_READ: &str = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read";
pub const ENDPOINT_WRITE: &str =
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write";
pub const ENDPOINT_DELETE: &str =
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/delete";
pub const ENDPOINT_LIST_KEYS: &str =
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/listKeys/action";
pub const ENDPOINT_REGENERATE_KEYS: &str =
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/regenerateKeys/action";
pub const ENDPOINT_TOKEN: &str =
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/token/action";
pub const ENDPOINT_SCORE: &str =
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/score/action";
pub const DEPLOYMENT_READ: &str =
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/read";
pub const DEPLOYMENT_WRITE: &str =
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/write";
pub const DEPLOYMENT_DELETE: &str =
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/delete";
pub const DEPLOYMENT_LOGS: &str =
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments/getLogs/action";

// Code assets (the source folders of deployments).
pub const CODE_READ: &str = "Microsoft.MachineLearningServices/workspaces/codes/read";
pub const CODE_WRITE: &str = "Microsoft.MachineLearningServices/workspaces/codes/write";

pub const ROLE_ASSIGNMENT_READ: &str = "Microsoft.Authorization/roleAssignments/read";
pub const ROLE_ASSIGNMENT_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
pub const ROLE_ASSIGNMENT_DELETE: &str = "Microsoft.Authorization/roleAssignments/delete";
pub const ROLE_DEFINITION_READ: &str = "Microsoft.Authorization/roleDefinitions/read";
pub const ROLE_DEFINITION_WRITE: &str = "Microsoft.Authorization/roleDefinitions/write";

/// Reading the activity log (`az monitor activity-log list`); Reader has it through `*/read`.
pub const ACTIVITY_LOG_READ: &str = "Microsoft.Insights/eventtypes/values/read";

/// The provider path segment of workspaces in resource ids.
pub const WORKSPACE_PROVIDER: &str = "Microsoft.MachineLearningServices";
