//! `stacksmith render -f STACK.yaml --clusters CLUSTERS.yaml`: the objects the operator would
//! apply, per member cluster, offline.
//!
//! The stacks are checked like `validate` does, then planned by the operator's own planner
//! (`stacksmith_core::plan::plan_stack_with_config_maps`, the reconcile's "plan" stage, with the
//! dashboard ConfigMaps found among the manifests), so what is printed is what the operator
//! applies. One thing only the hub knows: the stack's uid, written into the
//! `stacksmith.io/stack-uid` label. It is `metadata.uid` when the manifest has one, else
//! `uid-assigned-by-the-hub`. A stack without `metadata.namespace` is planned in `default`.
//!
//! Exit codes: 0 rendered, 1 problems found (printed on stderr, nothing on stdout), 2 a path
//! cannot be read, no `CustomerStack` or no `MemberCluster` was given.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, ValueEnum};
use serde_json::{Map, Value};
use stacksmith_core::plan::DesiredObject;

use crate::manifests::check::check_all;
use crate::manifests::load;
use crate::output::print_stdout;

/// Options of `stacksmith render`.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The CustomerStack(s): files or directories.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    paths: Vec<PathBuf>,
    /// The MemberClusters the stacks are planned against (a file may hold several).
    #[arg(long, num_args = 1..)]
    clusters: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Yaml)]
    output: Output,
}

/// Output formats of `render`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    /// Multi-document YAML, each cluster's objects after a `# cluster: NAME` comment, in the
    /// order they are created.
    Yaml,
    /// A JSON object keyed by cluster, each a list of objects in creation order.
    Json,
}

/// Runs `stacksmith render`.
pub fn run(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let stacks = load(&args.paths)?;
    let clusters = load(&args.clusters)?;
    let checked = check_all(&[&stacks, &clusters]);
    if checked.stacks.is_empty() && checked.problems.is_empty() {
        bail!("no CustomerStack found in the paths given with -f");
    }
    if checked.members.is_empty() {
        bail!("no MemberCluster given: render plans against the MemberClusters of --clusters");
    }
    if !checked.problems.is_empty() {
        for problem in &checked.problems {
            eprintln!("{problem}");
        }
        eprintln!("{} problem(s): nothing rendered", checked.problems.len());
        return Ok(ExitCode::from(1));
    }
    let mut groups: Vec<(String, String, Vec<&DesiredObject>)> = Vec::new();
    for stack in &checked.stacks {
        let key = format!("{}/{}", stack.identity.namespace, stack.identity.name);
        for object in stack.plan.iter().flat_map(|p| &p.objects) {
            match groups
                .iter_mut()
                .find(|(s, c, _)| *s == key && *c == object.cluster)
            {
                Some((_, _, objects)) => objects.push(object),
                None => groups.push((key.clone(), object.cluster.clone(), vec![object])),
            }
        }
    }
    match args.output {
        Output::Yaml => {
            let several = checked.stacks.len() > 1;
            let mut out = String::new();
            for (stack, cluster, objects) in &groups {
                if several {
                    out.push_str(&format!("# stack: {stack}\n"));
                }
                out.push_str(&format!("# cluster: {cluster}\n"));
                for object in objects {
                    out.push_str("---\n");
                    out.push_str(&serde_yaml::to_string(&object.manifest)?);
                }
            }
            print_stdout(&out)?;
        }
        Output::Json => {
            let mut by_cluster = Map::new();
            for (_, cluster, objects) in groups {
                let list = by_cluster
                    .entry(cluster)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = list {
                    list.extend(objects.into_iter().map(|o| o.manifest.clone()));
                }
            }
            print_stdout(&format!("{}\n", serde_json::to_string_pretty(&by_cluster)?))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
