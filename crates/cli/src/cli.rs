//! The command tree. Words follow the Azure CLI so that scripts read the same.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "mlgate", version, about = "Self-hosted identity and access for ML platforms")]
pub struct Cli {
    /// The mlgate server (default: the signed-in profile's, else https://127.0.0.1:8443).
    #[arg(long, env = "MLGATE_SERVER", global = true)]
    pub server: Option<String>,
    /// A PEM CA bundle to trust for the server (default: the profile's, else the local
    /// server's CA in its data directory).
    #[arg(long, env = "MLGATE_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Json, global = true)]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Json,
    Table,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (HTTPS on 127.0.0.1:8443, embedded SQLite store).
    Serve(ServeArgs),
    /// Sign in, as a user (-u/-p) or as a service principal.
    Login(LoginArgs),
    /// Forget the signed-in profile and its cached tokens.
    Logout,
    /// The signed-in account.
    #[command(subcommand)]
    Account(AccountCommand),
    /// The directory.
    #[command(subcommand)]
    Ad(AdCommand),
    /// Token-signing keys (operates on a server's data directory).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Resource groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Machine learning: workspaces.
    #[command(subcommand)]
    Ml(MlCommand),
    /// Role-based access control.
    #[command(subcommand)]
    Role(RoleCommand),
    /// The server's store (operates on databases, not through a server).
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every record of one store into another, empty one (a single node's SQLite into
    /// PostgreSQL), then compare the counts. Stop the server first; the target node needs the
    /// same master key (copy `master.key` or set MLGATE_MASTER_KEY).
    Migrate {
        /// The store to read: `sqlite://PATH` or a path (the data directory's `mlgate.db`).
        #[arg(long)]
        from: String,
        /// The store to fill: `postgres://...` (created tables, no rows).
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Args)]
pub struct SubscriptionArg {
    /// Subscription id (default: the signed-in account's).
    #[arg(long, global = true)]
    pub subscription: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    Create {
        #[arg(short = 'n', long)]
        name: String,
        #[arg(short = 'l', long)]
        location: Option<String>,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    Show {
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    List {
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    Delete {
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum MlCommand {
    /// Workspaces.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// The model registry.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Deployed web services.
    #[command(subcommand)]
    Service(ServiceCommand),
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    Show {
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    List {
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    Delete {
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    GetLogs {
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Update a service: a new model version, configuration or authentication. A change of
    /// authentication only takes effect at once, with the model left running.
    Update {
        #[arg(short = 'n', long)]
        name: String,
        /// The model to serve, NAME:VERSION.
        #[arg(short = 'm', long)]
        model: Option<String>,
        /// A new inference configuration (JSON file).
        #[arg(long = "ic", alias = "inference-config-file")]
        inference_config: Option<PathBuf>,
        /// A new deployment configuration (JSON file).
        #[arg(long = "dc", alias = "deploy-config-file")]
        deployment_config: Option<PathBuf>,
        /// Key auth on or off (`--ae` in the Azure CLI).
        #[arg(long = "auth-enabled", alias = "ae")]
        auth_enabled: Option<bool>,
        /// Token auth on or off (clusters only).
        #[arg(long = "token-auth-enabled", alias = "token-auth")]
        token_auth_enabled: Option<bool>,
        /// Return at once instead of waiting for the deployment to finish.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Show the service's primary and secondary keys (needs listKeys: Contributor or above).
    GetKeys {
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Replace one of the service's keys; the old one fails from the next request on.
    RegenKey {
        #[arg(short = 'n', long)]
        name: String,
        /// Primary or Secondary.
        #[arg(short = 'k', long = "key")]
        key: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Get a scoring token for a service with token auth (Reader is enough).
    GetToken {
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Send a scoring request to the service (JSON, or @file), with the credential its
    /// authentication mode asks for.
    Score {
        #[arg(short = 'n', long)]
        name: String,
        #[arg(long)]
        input_data: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
}

/// The workspace to act in: the flags, else `config.json` found from the current folder.
#[derive(Debug, Args)]
pub struct WorkspaceArgs {
    #[arg(short = 'w', long = "workspace-name")]
    pub workspace: Option<String>,
    #[arg(short = 'g', long = "resource-group")]
    pub resource_group: Option<String>,
    #[command(flatten)]
    pub sub: SubscriptionArg,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Register a file or a folder as the next version of a model.
    Register {
        #[arg(short = 'n', long)]
        name: String,
        #[arg(short = 'p', long)]
        path: std::path::PathBuf,
        /// `key=value`, repeatable.
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// The latest version of each model.
    List {
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    Show {
        #[arg(short = 'n', long)]
        name: String,
        /// Default: the latest.
        #[arg(long)]
        version: Option<i64>,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    Download {
        #[arg(short = 'n', long)]
        name: String,
        #[arg(long)]
        version: Option<i64>,
        #[arg(short = 't', long)]
        target_dir: std::path::PathBuf,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    Delete {
        #[arg(short = 'n', long)]
        name: String,
        #[arg(long)]
        version: i64,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Deploy a model version as a web service (`az ml model deploy`).
    Deploy {
        /// The service's name.
        #[arg(short = 'n', long)]
        name: String,
        /// NAME:VERSION of the model.
        #[arg(short = 'm', long)]
        model: String,
        /// Inference configuration file (JSON).
        #[arg(long = "ic")]
        inference_config: std::path::PathBuf,
        /// Deployment configuration file (JSON).
        #[arg(long = "dc")]
        deployment_config: Option<std::path::PathBuf>,
        /// Return at once instead of waiting for Healthy or Failed.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    Create {
        #[arg(short = 'w', long = "workspace-name", alias = "name")]
        workspace: String,
        #[arg(short = 'g', long = "resource-group")]
        resource_group: String,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    Show {
        #[arg(short = 'w', long = "workspace-name", alias = "name")]
        workspace: String,
        #[arg(short = 'g', long = "resource-group")]
        resource_group: String,
        /// Write config.json (into the given folder, default the current one).
        #[arg(long, num_args = 0..=1, default_missing_value = ".")]
        write_config: Option<std::path::PathBuf>,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    List {
        #[arg(short = 'g', long = "resource-group")]
        resource_group: Option<String>,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    Delete {
        #[arg(short = 'w', long = "workspace-name", alias = "name")]
        workspace: String,
        #[arg(short = 'g', long = "resource-group")]
        resource_group: String,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    /// Give a user or service principal a role on the workspace.
    Share {
        #[arg(short = 'w', long = "workspace-name", alias = "name")]
        workspace: String,
        #[arg(short = 'g', long = "resource-group")]
        resource_group: String,
        /// Object id, application id or user principal name.
        #[arg(long)]
        user: String,
        #[arg(long)]
        role: String,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    #[command(subcommand)]
    Assignment(AssignmentCommand),
    #[command(subcommand)]
    Definition(DefinitionCommand),
    /// Is an action allowed for a principal at a scope, and which assignment decides?
    Check {
        #[arg(long)]
        assignee: String,
        #[arg(long)]
        action: String,
        #[arg(long)]
        scope: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AssignmentCommand {
    Create {
        #[arg(long)]
        assignee: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        scope: String,
    },
    List {
        #[arg(long)]
        assignee: Option<String>,
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        include_inherited: bool,
    },
    /// Delete by id, or by assignee, role and scope.
    Delete {
        #[arg(long)]
        ids: Vec<String>,
        #[arg(long)]
        assignee: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        scope: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DefinitionCommand {
    /// From a file of Azure's role-definition JSON (or the JSON itself).
    Create {
        #[arg(long)]
        role_definition: String,
    },
    List {
        #[arg(long)]
        custom_role_only: bool,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the store, keys and certificates live.
    #[arg(long, env = "MLGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The store: `postgres://user:password@host:port/database` for several nodes on one
    /// PostgreSQL, `sqlite://PATH` or a path (default: SQLite in the data directory). The
    /// master key stays in the data directory or MLGATE_MASTER_KEY either way.
    #[arg(long, env = "MLGATE_STORE", hide_env_values = true)]
    pub store: Option<String>,
    #[arg(long, env = "MLGATE_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Serve plain HTTP (only behind a TLS-terminating proxy).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub insecure_http: bool,
    /// Your own PEM certificate chain (instead of the local CA's).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The URL clients use to reach this server (issuer and endpoints derive from it).
    #[arg(long, env = "MLGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The bootstrap tenant's domain name.
    #[arg(long, env = "MLGATE_DOMAIN", default_value = "mlgate.local")]
    pub domain: String,
    /// Access-token lifetime in seconds.
    #[arg(long, env = "MLGATE_TOKEN_LIFETIME", default_value_t = 3600,
          value_parser = clap::value_parser!(i64).range(300..=86_400))]
    pub token_lifetime: i64,
    /// Web-service token lifetime in seconds (`ml service get-token`).
    #[arg(long, env = "MLGATE_SERVICE_TOKEN_LIFETIME", default_value_t = 3600,
          value_parser = clap::value_parser!(i64).range(60..=86_400))]
    pub service_token_lifetime: i64,
    /// The Python interpreter (or a virtualenv's `bin/python`) that runs entry scripts.
    #[arg(long, env = "MLGATE_PYTHON", default_value = "python3")]
    pub python: PathBuf,
    /// Run entry scripts unconfined when this kernel cannot confine them (no Landlock).
    /// Not recommended: a deployed score.py could then read this server's keys.
    #[arg(long, env = "MLGATE_ALLOW_UNCONFINED_ENTRY_SCRIPTS")]
    pub allow_unconfined_entry_scripts: bool,
    /// A folder pip may install local wheels from (repeatable); requirements naming a local
    /// file elsewhere fail.
    #[arg(long = "wheelhouse")]
    pub wheelhouses: Vec<PathBuf>,
    /// Seconds a change to a client made on another node may take to be seen here.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(0..=300))]
    pub client_cache_ttl: i64,
    /// Extra accepted resources (token audiences).
    #[arg(long = "resource")]
    pub resources: Vec<String>,
    /// A proxy (address or CIDR block) whose `X-Forwarded-For` names the client; repeatable.
    /// Without one, the header is ignored and the peer's address is the client's.
    #[arg(long = "trusted-proxy", value_parser = mlgate_server::client_addr::parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Open connections at most (lowered to fit the descriptor limit); at the cap a new
    /// connection closes the one idle longest.
    #[arg(long, env = "MLGATE_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub max_connections: u32,
    /// Seconds a connection may sit with no request in flight before it is closed.
    #[arg(long, env = "MLGATE_IDLE_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout: u64,
    /// Seconds from accepting a connection to a finished TLS handshake.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub tls_handshake_timeout: u64,
    /// Seconds a client may take to send a request's headers (HTTP/1.1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_read_timeout: u64,
    #[arg(long, value_enum, env = "MLGATE_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// User name, or the application (client) id with --service-principal.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password, or the client secret with --service-principal.
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    #[arg(long)]
    pub service_principal: bool,
    /// Sign in on another device with a code instead of opening a browser here.
    #[arg(long)]
    pub use_device_code: bool,
    /// Tenant id or domain (required with --service-principal).
    #[arg(short = 't', long)]
    pub tenant: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// The signed-in account and its default subscription.
    Show,
    /// An access token for a resource.
    GetAccessToken {
        #[arg(long)]
        resource: Option<String>,
    },
    /// The subscriptions the signed-in account can use.
    List,
    /// Make a subscription the default.
    Set {
        #[arg(short = 's', long)]
        subscription: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdCommand {
    /// Service principals.
    #[command(subcommand)]
    Sp(SpCommand),
    /// Users (creating one needs a directory administrator).
    #[command(subcommand)]
    User(UserCommand),
    /// Tenants (directories) the signed-in user belongs to.
    #[command(subcommand)]
    Tenant(TenantCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    List,
    /// A new tenant with a default subscription (directory administrators).
    Create {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Add an existing user of another tenant to the signed-in tenant.
    AddMember {
        /// User principal name or object id.
        #[arg(long)]
        user: String,
        /// Make them a directory administrator of this tenant.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    Create {
        #[arg(long)]
        display_name: String,
        /// Read from MLGATE_NEW_USER_PASSWORD when not given, so it stays out of shell history.
        #[arg(long, env = "MLGATE_NEW_USER_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long)]
        user_principal_name: String,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum SpCommand {
    /// Create an application and its service principal with a secret.
    CreateForRbac {
        #[arg(short = 'n', long)]
        name: String,
        /// Print the JSON that Azure SDKs read (`--sdk-auth`).
        #[arg(long)]
        sdk_auth: bool,
        /// Lifetime of the secret in years (default 1).
        #[arg(long)]
        years: Option<u32>,
        /// A role to assign the new principal (needs --scopes).
        #[arg(long, requires = "scopes")]
        role: Option<String>,
        /// Scopes for --role.
        #[arg(long, num_args = 1.., requires = "role")]
        scopes: Vec<String>,
    },
    Show {
        /// Object id or application id.
        #[arg(long)]
        id: String,
    },
    List,
    /// Change a property: `--set accountEnabled=false`.
    Update {
        #[arg(long)]
        id: String,
        #[arg(long)]
        set: String,
    },
    Delete {
        #[arg(long)]
        id: String,
    },
    #[command(subcommand)]
    Credential(CredentialCommand),
}

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// A new secret; the old ones are removed unless --append.
    Reset {
        #[arg(long)]
        id: String,
        #[arg(long)]
        append: bool,
        #[arg(long)]
        years: Option<u32>,
        /// RFC 3339 end date of the new secret.
        #[arg(long)]
        end_date: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Promote the pre-published next key, publish a new next key, retire the active one.
    Rotate {
        #[arg(long, env = "MLGATE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The server's store when it is not the data directory's SQLite (`postgres://...`).
        #[arg(long, env = "MLGATE_STORE", hide_env_values = true)]
        store: Option<String>,
    },
    /// The signing keys and their states.
    List {
        #[arg(long, env = "MLGATE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The server's store when it is not the data directory's SQLite (`postgres://...`).
        #[arg(long, env = "MLGATE_STORE", hide_env_values = true)]
        store: Option<String>,
    },
}
