//! The command tree. Words follow the Azure CLI so that scripts read the same.
//!
//! Flags that reach a server (`--server`, `--ca-file`) and the printing flags (`-o`,
//! `--query`) belong to the client commands only, so `serve --help` lists only what the
//! server takes. They may come before the command too (`mlgate --server URL login`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "mlgate",
    version,
    about = "Self-hosted identity, access control and model serving in the Azure CLI's words",
    after_help = "Start a server with 'mlgate serve', then sign in with 'mlgate login'. \
                  Exit codes: 0 success, 1 error, 2 usage error."
)]
pub struct Cli {
    // The client flags given before the command (hidden).
    #[command(flatten)]
    pub before: BeforeCommand,
    #[command(subcommand)]
    pub command: Command,
}

// The client flags accepted before the command name, for scripts written that way.
#[derive(Debug, Args, Clone, Default)]
pub struct BeforeCommand {
    #[arg(long = "server", hide = true, value_name = "URL")]
    pub server: Option<String>,
    #[arg(long = "ca-file", hide = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    #[arg(short = 'o', long = "output", hide = true, value_enum)]
    pub output: Option<OutputFormat>,
    #[arg(long = "query", hide = true, value_parser = crate::output::parse_query)]
    pub query: Option<String>,
}

// Where the server is, which CA to trust, and how to print: every client command takes these.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Global Arguments")]
pub struct ClientOpts {
    /// The mlgate server's URL (default: the active account's server, else
    /// https://127.0.0.1:8443).
    #[arg(long, env = "MLGATE_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// A PEM file of CA certificates to trust for the server (default: the active account's,
    /// else the local server's CA in its data directory, `{data-dir}/tls/ca.pem`).
    #[arg(long, env = "MLGATE_CA_FILE", global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub out: OutputOpts,
}

impl ClientOpts {
    /// These flags, completed by those given before the command.
    pub fn merged(mut self, before: &BeforeCommand) -> Self {
        self.server = self.server.or_else(|| before.server.clone());
        self.ca_file = self.ca_file.or_else(|| before.ca_file.clone());
        self.out = self.out.merged(before);
        self
    }
}

// How to print a result.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Global Arguments")]
pub struct OutputOpts {
    /// Output format.
    #[arg(short = 'o', long, value_enum, global = true)]
    pub output: Option<OutputFormat>,
    /// A JMESPath query (jmespath.org) applied to the result before it is printed, e.g.
    /// `--query "[].name"` or `--query id -o tsv`.
    #[arg(long, global = true, value_name = "JMESPATH", value_parser = crate::output::parse_query)]
    pub query: Option<String>,
}

impl OutputOpts {
    pub fn merged(mut self, before: &BeforeCommand) -> Self {
        self.output = self.output.or(before.output);
        self.query = self.query.or_else(|| before.query.clone());
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// JSON (the default).
    #[default]
    Json,
    /// Coloured JSON.
    Jsonc,
    /// A table of the command's main columns.
    Table,
    /// Tab-separated values, one line per item, for shell scripts.
    Tsv,
    /// YAML.
    Yaml,
    /// Nothing (only errors and the exit code).
    None,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (HTTPS on 127.0.0.1:8443, embedded SQLite store).
    Serve(ServeArgs),
    /// Sign in, as a person (browser, device code or -u/-p) or as a service principal; adds
    /// the account to the signed-in ones and makes it active.
    Login(LoginArgs),
    /// Sign out the active account (or the one named) and revoke its sign-in on the server.
    Logout(LogoutArgs),
    /// The signed-in accounts and their subscriptions.
    Account {
        #[command(flatten)]
        c: ClientOpts,
        #[command(subcommand)]
        cmd: AccountCommand,
    },
    /// The directory: service principals, users and tenants.
    Ad {
        #[command(flatten)]
        c: ClientOpts,
        #[command(subcommand)]
        cmd: AdCommand,
    },
    /// Token-signing keys (works on a server's data directory, on the server's machine).
    Keys {
        #[command(flatten)]
        out: OutputOpts,
        #[command(subcommand)]
        cmd: KeysCommand,
    },
    /// The local certificate authority that signs the server's certificate: trust it on this
    /// machine.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Resource groups: containers for workspaces.
    Group {
        #[command(flatten)]
        c: ClientOpts,
        #[command(subcommand)]
        cmd: GroupCommand,
    },
    /// Machine learning: workspaces, models and web services.
    Ml {
        #[command(flatten)]
        c: ClientOpts,
        #[command(subcommand)]
        cmd: MlCommand,
    },
    /// Role-based access control: assignments, definitions and access checks.
    Role {
        #[command(flatten)]
        c: ClientOpts,
        #[command(subcommand)]
        cmd: RoleCommand,
    },
    /// The server's store (works on databases, not through a server).
    Store {
        #[command(flatten)]
        out: OutputOpts,
        #[command(subcommand)]
        cmd: StoreCommand,
    },
    /// Copy a server's store, blobs and TLS files into one file while it runs (SQLite; a
    /// PostgreSQL store is backed up with pg_dump). The master key is left out unless
    /// --with-master-key wraps it under a passphrase.
    Backup(BackupArgs),
    /// Make a new data directory from a backup file (needs the master key: a copy of
    /// master.key, MLGATE_MASTER_KEY, or the passphrase of a --with-master-key backup).
    Restore(RestoreArgs),
    /// The activity log: who changed what, when (management writes, denials, key reads).
    Monitor {
        #[command(flatten)]
        c: ClientOpts,
        #[command(subcommand)]
        cmd: MonitorCommand,
    },
    /// Recovery on the server's machine (works on the data directory, not through a server).
    Admin {
        #[command(flatten)]
        out: OutputOpts,
        #[command(subcommand)]
        cmd: AdminCommand,
    },
    /// Writes reference documentation (docs/cli.md is made by `mlgate docs cli`).
    #[command(subcommand, hide = true)]
    Docs(DocsCommand),
}

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// The activity log.
    #[command(subcommand)]
    ActivityLog(ActivityLogCommand),
}

#[derive(Debug, Subcommand)]
pub enum ActivityLogCommand {
    /// Events of the active subscription, newest first (default: the last 7 days).
    List {
        /// Only events in this resource group.
        #[arg(short = 'g', long)]
        resource_group: Option<String>,
        /// Only events by this caller (user principal name, application id or object id).
        #[arg(long)]
        caller: Option<String>,
        /// The earliest time (ISO 8601, e.g. 2026-12-01T00:00:00Z).
        #[arg(long)]
        start_time: Option<String>,
        /// The latest time (ISO 8601; default: now).
        #[arg(long)]
        end_time: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 50)]
        max_events: usize,
        /// The subscription (default: the active account's).
        #[arg(short = 's', long)]
        subscription: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Set a new password for a user (a lost administrator password) directly in the store,
    /// enable the account and revoke its sign-ins; recorded in the activity log. Needs the
    /// data directory, so only someone on the server's machine can run it. The new password
    /// is read from the terminal, or generated and written to a 0600 file.
    ResetPassword {
        #[command(flatten)]
        dir: DataDir,
        /// The server's store when it is not the data directory's SQLite (`postgres://...`).
        #[arg(long, env = "MLGATE_STORE", hide_env_values = true)]
        store: Option<String>,
        /// The user: principal name (admin@domain) or object id.
        #[arg(long)]
        user: String,
        /// Generate the password (and write it to {data-dir}/reset-password-{user}) instead of
        /// asking for one.
        #[arg(long)]
        generate: bool,
        /// Make the user choose a new password at the next sign-in.
        #[arg(long)]
        force_change_password_next_sign_in: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DocsCommand {
    /// The command-line reference in Markdown, on stdout.
    Cli,
}

// Skips the confirmation question of a destructive command.
#[derive(Debug, Args, Clone, Copy)]
pub struct Yes {
    /// Do not ask for confirmation (needed when standard input is not a terminal).
    #[arg(short = 'y', long)]
    pub yes: bool,
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
    /// Subscription id or name (default: the active account's).
    #[arg(short = 's', long, global = true)]
    pub subscription: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a resource group (or update its location).
    Create {
        /// The resource group's name.
        #[arg(short = 'n', long)]
        name: String,
        /// The location to record (mlgate runs everything here; Azure's region names are kept).
        #[arg(short = 'l', long)]
        location: Option<String>,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    /// Show a resource group.
    Show {
        /// The resource group's name.
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    /// List the resource groups you can read.
    List {
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    /// Delete an empty resource group (one with web services is refused) and its role
    /// assignments.
    Delete {
        /// The resource group's name.
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        yes: Yes,
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
    /// Show a web service: state, model, scoring URI, authentication.
    Show {
        /// The service's name.
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// List the workspace's web services.
    List {
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Delete a web service: it stops scoring at once.
    Delete {
        /// The service's name.
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        yes: Yes,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Print the service's log: deployment steps, init() output and errors.
    GetLogs {
        /// The service's name.
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Update a service: a new model version, configuration or authentication. A change of
    /// authentication only takes effect at once, with the model left running.
    Update {
        /// The service's name.
        #[arg(short = 'n', long)]
        name: String,
        /// The model to serve, NAME:VERSION.
        #[arg(short = 'm', long)]
        model: Option<String>,
        /// A new inference configuration (JSON file; docs/configuration.md).
        #[arg(long = "ic", alias = "inference-config-file", value_name = "FILE")]
        inference_config: Option<PathBuf>,
        /// A new deployment configuration (JSON file; docs/configuration.md).
        #[arg(long = "dc", alias = "deploy-config-file", value_name = "FILE")]
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
        /// The service's name.
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Replace one of the service's keys; the old one fails from the next request on.
    RegenKey {
        /// The service's name.
        #[arg(short = 'n', long)]
        name: String,
        /// Which key: Primary or Secondary.
        #[arg(short = 'k', long = "key")]
        key: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Get a scoring token for a service with token auth (Reader is enough).
    GetToken {
        /// The service's name.
        #[arg(short = 'n', long)]
        name: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Send a scoring request to the service (JSON, or @file), with the credential its
    /// authentication mode asks for.
    Score {
        /// The service's name.
        #[arg(short = 'n', long)]
        name: String,
        /// The request body: JSON, or @FILE to read it from a file.
        #[arg(long)]
        input_data: String,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
}

// The workspace to act in: the flags, else `config.json` found from the current folder.
#[derive(Debug, Args)]
pub struct WorkspaceArgs {
    /// The workspace (default: from the nearest config.json, see `ml workspace show
    /// --write-config`).
    #[arg(short = 'w', long = "workspace-name")]
    pub workspace: Option<String>,
    /// The workspace's resource group (default: from the nearest config.json).
    #[arg(short = 'g', long = "resource-group")]
    pub resource_group: Option<String>,
    #[command(flatten)]
    pub sub: SubscriptionArg,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Register a file or a folder as the next version of a model.
    Register {
        /// The model's name.
        #[arg(short = 'n', long)]
        name: String,
        /// The model file or folder to upload.
        #[arg(short = 'p', long)]
        path: std::path::PathBuf,
        /// A tag, `key=value`; repeatable.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// A description of this version.
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
    /// Show one version of a model (default: the latest).
    Show {
        /// The model's name.
        #[arg(short = 'n', long)]
        name: String,
        /// The version (default: the latest).
        #[arg(long)]
        version: Option<i64>,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Download a model version's files into a folder.
    Download {
        /// The model's name.
        #[arg(short = 'n', long)]
        name: String,
        /// The version (default: the latest).
        #[arg(long)]
        version: Option<i64>,
        /// The folder to write the files into.
        #[arg(short = 't', long)]
        target_dir: std::path::PathBuf,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Delete one version of a model (refused while a service uses it).
    Delete {
        /// The model's name.
        #[arg(short = 'n', long)]
        name: String,
        /// The version to delete.
        #[arg(long)]
        version: i64,
        #[command(flatten)]
        yes: Yes,
        #[command(flatten)]
        ws: WorkspaceArgs,
    },
    /// Deploy a model version as a web service (`az ml model deploy`).
    Deploy {
        /// The service's name (unique on the server: it is part of the scoring URI).
        #[arg(short = 'n', long)]
        name: String,
        /// The model to serve, NAME:VERSION.
        #[arg(short = 'm', long)]
        model: String,
        /// The inference configuration (JSON file; docs/configuration.md).
        #[arg(long = "ic", alias = "inference-config-file", value_name = "FILE")]
        inference_config: std::path::PathBuf,
        /// The deployment configuration (JSON file; docs/configuration.md; default: one
        /// instance without authentication).
        #[arg(long = "dc", alias = "deploy-config-file", value_name = "FILE")]
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
    /// Create a workspace in a resource group.
    Create {
        /// The workspace's name.
        #[arg(short = 'w', long = "workspace-name", alias = "name")]
        workspace: String,
        /// The resource group to create it in.
        #[arg(short = 'g', long = "resource-group")]
        resource_group: String,
        /// A description.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    /// Show a workspace; --write-config also writes its config.json for the SDKs.
    Show {
        /// The workspace's name.
        #[arg(short = 'w', long = "workspace-name", alias = "name")]
        workspace: String,
        /// Its resource group.
        #[arg(short = 'g', long = "resource-group")]
        resource_group: String,
        /// Write config.json (into the given folder, default the current one).
        #[arg(long, num_args = 0..=1, default_missing_value = ".", value_name = "DIR")]
        write_config: Option<std::path::PathBuf>,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    /// List the workspaces you can read (in one resource group, or all).
    List {
        /// Only this resource group's.
        #[arg(short = 'g', long = "resource-group")]
        resource_group: Option<String>,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    /// Delete a workspace without web services, with its models and role assignments.
    Delete {
        /// The workspace's name.
        #[arg(short = 'w', long = "workspace-name", alias = "name")]
        workspace: String,
        /// Its resource group.
        #[arg(short = 'g', long = "resource-group")]
        resource_group: String,
        #[command(flatten)]
        yes: Yes,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
    /// Give a user or service principal a role on the workspace.
    Share {
        /// The workspace's name.
        #[arg(short = 'w', long = "workspace-name", alias = "name")]
        workspace: String,
        /// Its resource group.
        #[arg(short = 'g', long = "resource-group")]
        resource_group: String,
        /// Object id, application id or user principal name.
        #[arg(long)]
        user: String,
        /// The role's name (Owner, Contributor, Reader, "AzureML Data Scientist", a custom
        /// role) or id.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        sub: SubscriptionArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Role assignments: who holds which role at which scope.
    #[command(subcommand)]
    Assignment(AssignmentCommand),
    /// Role definitions: built-in and custom roles.
    #[command(subcommand)]
    Definition(DefinitionCommand),
    /// Is an action allowed for a principal at a scope, and which assignment decides?
    Check {
        /// Object id, application id or user principal name.
        #[arg(long)]
        assignee: String,
        /// The action, e.g. Microsoft.MachineLearningServices/workspaces/write.
        #[arg(long)]
        action: String,
        /// The scope, an ARM id (/subscriptions/.../workspaces/NAME).
        #[arg(long)]
        scope: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AssignmentCommand {
    /// Give a principal a role at a scope.
    Create {
        /// Object id, application id or user principal name.
        #[arg(long)]
        assignee: String,
        /// The role's name or id.
        #[arg(long)]
        role: String,
        /// The scope, an ARM id (/subscriptions/SUB, .../resourceGroups/RG, a workspace's id).
        #[arg(long)]
        scope: String,
    },
    /// List role assignments (yours to read), filtered by assignee and scope.
    List {
        /// Only this principal's (object id, application id or user principal name).
        #[arg(long)]
        assignee: Option<String>,
        /// Only at this scope (an ARM id).
        #[arg(long)]
        scope: Option<String>,
        /// Also the assignments at scopes above --scope that apply to it.
        #[arg(long)]
        include_inherited: bool,
    },
    /// Delete by id, or by assignee, role and scope.
    Delete {
        /// Assignment ids (names or full ARM ids); repeatable.
        #[arg(long)]
        ids: Vec<String>,
        /// With --role: the principal whose assignment goes.
        #[arg(long)]
        assignee: Option<String>,
        /// With --assignee: the role's name or id.
        #[arg(long)]
        role: Option<String>,
        /// With --assignee: only at this scope.
        #[arg(long)]
        scope: Option<String>,
        #[command(flatten)]
        yes: Yes,
    },
}

#[derive(Debug, Subcommand)]
pub enum DefinitionCommand {
    /// Create a custom role from Azure's role-definition JSON (a file, or the JSON itself).
    Create {
        /// A file of Azure's role-definition JSON (`@file` is accepted), or the JSON itself.
        #[arg(long)]
        role_definition: String,
    },
    /// List role definitions.
    List {
        /// Only custom roles.
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
    /// The address and port to listen on.
    #[arg(long, env = "MLGATE_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Serve plain HTTP (only behind a TLS-terminating proxy).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub insecure_http: bool,
    /// Your own PEM certificate chain (instead of the local CA's).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
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
    /// A file holding the bearer token that opens `/metrics` on the main listener (at least 16
    /// characters); without it the main listener serves no `/metrics`.
    #[arg(long, env = "MLGATE_METRICS_TOKEN_FILE", value_name = "FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// Also serve `/metrics` over plain HTTP on this address (keep it on loopback or a
    /// monitoring network; it requires the token too when --metrics-token-file is given).
    #[arg(long, env = "MLGATE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Days the activity log keeps its events (older ones are pruned hourly).
    #[arg(long, env = "MLGATE_ACTIVITY_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub activity_retention_days: i64,
    /// Days the sign-in log keeps its records.
    #[arg(long, env = "MLGATE_SIGNIN_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub signin_retention_days: i64,
    /// Record sign-ins and token grants (`off` only to measure what the log costs).
    #[arg(long, env = "MLGATE_SIGNIN_LOG", value_enum, default_value_t = Switch::On)]
    pub signin_log: Switch,
    /// The log's format (the filter is MLGATE_LOG, e.g. `info` or `mlgate_server=debug`).
    #[arg(long, value_enum, env = "MLGATE_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The user's name (admin@mlgate.local), or the application (client) id with
    /// --service-principal.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// The password, or the client secret with --service-principal. Left out with -u on a
    /// terminal, it is asked for without echo (so it stays out of shell history).
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Sign in as a service principal: -u APP_ID -p SECRET --tenant TENANT.
    #[arg(long)]
    pub service_principal: bool,
    /// Sign in on another device with a code instead of opening a browser here.
    #[arg(long)]
    pub use_device_code: bool,
    /// Tenant id or domain (required with --service-principal).
    #[arg(short = 't', long)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub c: ClientOpts,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The account to sign out (user name or application id; default: the active account).
    #[arg(long)]
    pub username: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// The active account and its default subscription.
    Show,
    /// An access token for a resource, for other tools (`Authorization: Bearer ...`).
    GetAccessToken {
        /// The resource (audience) the token is for (default: https://management.azure.com/;
        /// others: https://ml.azure.com, the server's URL, its --resource values).
        #[arg(long)]
        resource: Option<String>,
    },
    /// The subscriptions of every signed-in account.
    List,
    /// Make a subscription the default, and its account the active one.
    Set {
        /// Subscription id or name.
        #[arg(short = 's', long)]
        subscription: String,
    },
    /// Sign out every account.
    Clear,
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
    /// The sign-in log: every sign-in and token grant, with failures' AADSTS codes
    /// (directory administrators).
    #[command(subcommand)]
    Signin(SigninCommand),
}

#[derive(Debug, Subcommand)]
pub enum SigninCommand {
    /// Sign-ins, newest first.
    List {
        /// Only this user (principal name or object id).
        #[arg(long)]
        user: Option<String>,
        /// Only this application (client id).
        #[arg(long)]
        app: Option<String>,
        /// Only failed sign-ins.
        #[arg(long)]
        failures_only: bool,
        /// At most this many records.
        #[arg(long, default_value_t = 50)]
        top: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// The tenants the signed-in account belongs to.
    List,
    /// A new tenant with a default subscription (directory administrators).
    Create {
        /// The tenant's domain name (e.g. research.example).
        #[arg(long)]
        domain: String,
        /// A display name (default: the domain).
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
    /// Create a user in the signed-in tenant.
    Create {
        /// The name people see.
        #[arg(long)]
        display_name: String,
        /// The new user's password. Read from MLGATE_NEW_USER_PASSWORD when not given, so it
        /// stays out of shell history.
        #[arg(long, env = "MLGATE_NEW_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// The sign-in name, name@domain of the tenant.
        #[arg(long)]
        user_principal_name: String,
        /// Make the user choose a new password at the first sign-in.
        #[arg(long)]
        force_change_password_next_sign_in: bool,
    },
    /// The tenant's users.
    List,
    /// Show a user.
    Show {
        /// Object id or user principal name.
        #[arg(long)]
        id: String,
    },
    /// Change a user (directory administrators): display name, enabled, a new password.
    Update {
        /// Object id or user principal name.
        #[arg(long)]
        id: String,
        /// The name people see.
        #[arg(long)]
        display_name: Option<String>,
        /// Enable or disable sign-in (a disabled user is refused with AADSTS50057).
        #[arg(long)]
        account_enabled: Option<bool>,
        /// A new password (an administrator's reset; the user's sign-ins are revoked). Read
        /// from MLGATE_NEW_USER_PASSWORD when set.
        #[arg(long, env = "MLGATE_NEW_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Make the user choose a new password at the next sign-in (`true` when given alone).
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        force_change_password_next_sign_in: Option<bool>,
    },
    /// Delete a user with their memberships, role assignments and sign-ins.
    Delete {
        /// Object id or user principal name.
        #[arg(long)]
        id: String,
        #[command(flatten)]
        yes: Yes,
    },
    /// Change your own password (needs no sign-in: the current password is the proof, so a
    /// user who must change it can). Passwords are read from the terminal, or from
    /// MLGATE_CURRENT_PASSWORD and MLGATE_NEW_PASSWORD.
    ChangePassword {
        /// Your user principal name (default: the active account's).
        #[arg(long)]
        user_principal_name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpCommand {
    /// Create an application and its service principal with a secret.
    CreateForRbac {
        /// The application's display name.
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
        /// Scopes (ARM ids) for --role.
        #[arg(long, num_args = 1.., requires = "role")]
        scopes: Vec<String>,
    },
    /// Show a service principal (secrets' metadata only).
    Show {
        /// Object id or application id.
        #[arg(long)]
        id: String,
    },
    /// The tenant's service principals.
    List,
    /// Change a property: `--set accountEnabled=false`.
    Update {
        /// Object id or application id.
        #[arg(long)]
        id: String,
        /// The change, `accountEnabled=true|false`.
        #[arg(long)]
        set: String,
    },
    /// Delete a service principal, its application, secrets and role assignments.
    Delete {
        /// Object id or application id.
        #[arg(long)]
        id: String,
        #[command(flatten)]
        yes: Yes,
    },
    /// The principal's secrets.
    #[command(subcommand)]
    Credential(CredentialCommand),
}

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// A new secret; the old ones are removed unless --append.
    Reset {
        /// Object id or application id.
        #[arg(long)]
        id: String,
        /// Keep the existing secrets (rotation without downtime).
        #[arg(long)]
        append: bool,
        /// Lifetime of the new secret in years (default 1).
        #[arg(long)]
        years: Option<u32>,
        /// RFC 3339 end date of the new secret.
        #[arg(long)]
        end_date: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub dir: DataDir,
    /// The server's SQLite store when it is not the data directory's (`sqlite://PATH`).
    #[arg(long, env = "MLGATE_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// The backup file to write (must not exist; written with mode 0600).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Put the master key into the backup, wrapped under a passphrase (argon2id, AES-256-GCM).
    #[arg(long)]
    pub with_master_key: bool,
    /// A file holding the passphrase (else MLGATE_BACKUP_PASSPHRASE, else asked for).
    #[arg(long, value_name = "FILE", requires = "with_master_key")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file to read.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The new data directory (must not exist or be empty).
    #[command(flatten)]
    pub dir: DataDir,
    /// A copy of the backed-up server's master.key (else MLGATE_MASTER_KEY, else the
    /// backup's wrapped key and its passphrase).
    #[arg(long, value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// A file holding the passphrase of a --with-master-key backup (else
    /// MLGATE_BACKUP_PASSPHRASE, else asked for).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

// The server's data directory.
#[derive(Debug, Args)]
pub struct DataDir {
    /// The server's data directory (default: ~/.local/share/mlgate).
    #[arg(long, env = "MLGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Promote the pre-published next key, publish a new next key, retire the active one.
    Rotate {
        #[command(flatten)]
        dir: DataDir,
        /// The server's store when it is not the data directory's SQLite (`postgres://...`).
        #[arg(long, env = "MLGATE_STORE", hide_env_values = true)]
        store: Option<String>,
    },
    /// The signing keys and their states.
    List {
        #[command(flatten)]
        dir: DataDir,
        /// The server's store when it is not the data directory's SQLite (`postgres://...`).
        #[arg(long, env = "MLGATE_STORE", hide_env_values = true)]
        store: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Install the local CA into this machine's trust store (Debian/Ubuntu
    /// update-ca-certificates, or Fedora/RHEL update-ca-trust; needs root), and into an NSS
    /// database for Chromium and Firefox when certutil (libnss3-tools) is there.
    Trust {
        #[command(flatten)]
        dir: DataDir,
        /// The CA file to install (default: {data-dir}/tls/ca.pem).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Leave the system trust store alone (browsers only).
        #[arg(long)]
        no_system: bool,
        /// The NSS database for browsers (default: ~/.pki/nssdb, Chromium's on Linux).
        #[arg(long, value_name = "DIR")]
        nss_db: Option<PathBuf>,
        /// Leave the browsers' NSS database alone.
        #[arg(long)]
        no_nss: bool,
    },
    /// Issue a new server certificate under the local CA (clients keep trusting it); a
    /// running server picks it up on SIGHUP (`systemctl reload mlgate`).
    Renew {
        #[command(flatten)]
        dir: DataDir,
        /// A host name or address the certificate names besides localhost, 127.0.0.1 and ::1
        /// (the public URL's host).
        #[arg(long)]
        host: Option<String>,
    },
    /// Print how to trust the local CA, without changing anything.
    Show {
        #[command(flatten)]
        dir: DataDir,
    },
}
