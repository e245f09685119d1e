//! `stacksmith status [NAME] [-n NS | -A] [--live]`: the aggregated status of stacks as a tree
//! (stack → cluster → child) or as data.
//!
//! Exit codes: 0 every stack shown is Ready (at its current generation) or there is none, 1 some
//! stack is not Ready, 2 usage or environment error (no hub, a named stack not found).

pub mod tree;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt as _};
use stacksmith_api::{CustomerStack, MemberCluster};
use stacksmith_controller::{HUB_TIMEOUT, api_error_summary, live_status, now};

use crate::output::print_stdout;
use tree::{Source, StackView};

/// Options of `stacksmith status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The CustomerStack to show; default: every stack of the namespace.
    name: Option<String>,
    /// The namespace; default: the kubeconfig context's namespace, else `default`.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with_all = ["namespace", "name"])]
    all_namespaces: bool,
    #[command(flatten)]
    hub: HubArgs,
    /// Output format: the tree, or the stacks' status as data.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    output: Output,
    /// When to colour the tree: `auto` colours only a terminal, and only without `NO_COLOR`.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Ask the member clusters directly (through the MemberClusters' kubeconfig Secrets)
    /// instead of reading the status the operator stored on the hub.
    #[arg(long)]
    live: bool,
}

/// Where the hub is, as kubectl finds it (shared by the commands that read the hub).
#[derive(Args, Debug)]
pub struct HubArgs {
    /// Kubeconfig of the hub; default: `KUBECONFIG` (a list of files, merged), else
    /// `~/.kube/config`, else the in-cluster configuration.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; default: its current context.
    #[arg(long)]
    context: Option<String>,
}

/// Output formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    /// The tree: stack → cluster → child, with verdict, reason, age and message.
    Table,
    /// `{"stacks": [...]}` with each stack's status, readiness and root cause.
    Json,
    /// The same as YAML.
    Yaml,
}

/// When to colour.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ColorChoice {
    /// Only when standard output is a terminal and `NO_COLOR` is unset or empty.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

/// Runs `stacksmith status`.
pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let config = args.hub.config().await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let hub = Client::try_from(config).context("building a client for the hub")?;
    let stacks = fetch_stacks(&hub, &args, &namespace).await?;
    let now = now();
    let views = if args.live {
        live_views(&hub, stacks, &now).await?
    } else {
        stacks
            .into_iter()
            .map(|s| view(s, Source::Hub, None))
            .collect()
    };
    if views.is_empty() && matches!(args.output, Output::Table) {
        if args.all_namespaces {
            eprintln!("No CustomerStacks found.");
        } else {
            eprintln!("No CustomerStacks found in namespace {namespace}.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.output {
        Output::Table => {
            let header = if args.live {
                "live: every child read from its member cluster just now\n"
            } else {
                ""
            };
            print_stdout(&format!(
                "{header}{}",
                tree::render_tree(&views, &now, args.color.enabled())
            ))?;
        }
        Output::Json => print_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&tree::data(&views))?
        ))?,
        Output::Yaml => print_stdout(&serde_yaml::to_string(&tree::data(&views))?)?,
    }
    Ok(if views.iter().all(StackView::is_ready) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

impl HubArgs {
    /// The hub's client configuration: the kubeconfig file and context given, else as kubectl
    /// finds them.
    pub async fn config(&self) -> anyhow::Result<Config> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .with_context(|| format!("using the kubeconfig {}", path.display()))
            }
            (None, Some(context)) => Config::from_kubeconfig(&options)
                .await
                .with_context(|| format!("using context {context} of the kubeconfig")),
            (None, None) => Config::infer()
                .await
                .context("no hub configuration (KUBECONFIG, ~/.kube/config or in-cluster)"),
        }
    }
}

/// The stacks asked for, sorted by namespace and name.
async fn fetch_stacks(
    hub: &Client,
    args: &StatusArgs,
    namespace: &str,
) -> anyhow::Result<Vec<CustomerStack>> {
    let api: Api<CustomerStack> = if args.all_namespaces {
        Api::all(hub.clone())
    } else {
        Api::namespaced(hub.clone(), namespace)
    };
    if let Some(name) = &args.name {
        let stack = hub_call(api.get_opt(name), "reading the CustomerStack").await?;
        return match stack {
            Some(stack) => Ok(vec![stack]),
            None => bail!("CustomerStack {namespace}/{name} not found"),
        };
    }
    let mut stacks = hub_call(api.list(&ListParams::default()), "listing CustomerStacks")
        .await?
        .items;
    stacks.sort_by_key(|s| (s.namespace().unwrap_or_default(), s.name_any()));
    Ok(stacks)
}

/// A hub request under [`HUB_TIMEOUT`], its error made readable (and free of credentials).
pub(crate) async fn hub_call<T>(
    call: impl Future<Output = Result<T, kube::Error>>,
    what: &str,
) -> anyhow::Result<T> {
    match tokio::time::timeout(HUB_TIMEOUT, call).await {
        Err(_) => bail!(
            "{what}: the hub did not answer within {} s",
            HUB_TIMEOUT.as_secs()
        ),
        Ok(Err(kube::Error::Api(status))) if status.code == 404 => bail!(
            "{what}: the hub does not serve CustomerStacks or MemberClusters (are stacksmith's CRDs installed?)"
        ),
        Ok(Err(err)) => bail!("{what}: {}", api_error_summary(&err)),
        Ok(Ok(value)) => Ok(value),
    }
}

fn view(stack: CustomerStack, source: Source, note: Option<String>) -> StackView {
    StackView {
        namespace: stack.namespace().unwrap_or_default(),
        name: stack.name_any(),
        generation: stack.metadata.generation,
        deleting: stack.metadata.deletion_timestamp.is_some(),
        status: stack.status,
        source,
        note,
    }
}

/// Every stack judged from its member clusters now (a stack being deleted keeps the hub's view:
/// its children are going away).
async fn live_views(
    hub: &Client,
    stacks: Vec<CustomerStack>,
    now: &Time,
) -> anyhow::Result<Vec<StackView>> {
    if stacks.is_empty() {
        return Ok(Vec::new());
    }
    let members = hub_call(
        Api::<MemberCluster>::all(hub.clone()).list(&ListParams::default()),
        "listing MemberClusters",
    )
    .await?
    .items;
    let mut views = Vec::new();
    for mut stack in stacks {
        if stack.metadata.deletion_timestamp.is_some() {
            let note = "being deleted: shown as stored on the hub".to_owned();
            views.push(view(stack, Source::Hub, Some(note)));
            continue;
        }
        match live_status(hub, &stack, &members, now).await {
            Ok(status) => {
                stack.status = Some(status);
                views.push(view(stack, Source::Live, None));
            }
            Err(err) => {
                let note = format!("live view unavailable ({err}): shown as stored on the hub");
                views.push(view(stack, Source::Hub, Some(note)));
            }
        }
    }
    Ok(views)
}
