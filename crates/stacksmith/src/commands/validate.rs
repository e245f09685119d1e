//! `stacksmith validate -f PATH...`: offline schema and semantic checks of stacksmith manifests.
//!
//! The checks are in [`crate::manifests::check`]; this is the command around them. What it
//! cannot check offline, it says: cluster references without `MemberCluster`s, and the rules
//! that compare an update with the object stored on the hub (`spec.customer` is immutable).
//! Exit codes:
//! 0 no problem, 1 problems found (YAML syntax errors included: they are problems of a file),
//! 2 a path cannot be read or the command line is wrong.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::json;

use crate::manifests::check::{Checked, check_all, not_checked_offline};
use crate::manifests::{Loaded, load};
use crate::output::print_stdout;

/// Options of `stacksmith validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Files or directories to check (directories are walked for *.yaml, *.yml, *.json;
    /// kustomization files are skipped). Repeat or list several.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    paths: Vec<PathBuf>,
    /// More files or directories holding the MemberClusters the stacks may refer to (they are
    /// checked too).
    #[arg(long, num_args = 1..)]
    clusters: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Also list the files skipped and the objects of other API groups that were not checked.
    #[arg(short = 'v', long)]
    verbose: bool,
}

/// Output formats of `validate`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    /// One line per problem (`FILE:LINE: KIND NAMESPACE/NAME: FIELD: message`), then a summary.
    Text,
    /// `{"problems": [...], "checked": {...}}`.
    Json,
    /// The same as `json`, in YAML.
    Yaml,
}

/// Runs `stacksmith validate`.
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(&args.paths)?;
    let clusters = load(&args.clusters)?;
    let checked = check_all(&[&loaded, &clusters]);
    if !checked.cluster_references_checked && !checked.stacks.is_empty() {
        eprintln!(
            "note: no MemberCluster given (in the paths or with --clusters): cluster references were not checked"
        );
    }
    let not_checked = not_checked(&checked);
    for rule in &not_checked {
        eprintln!("note: not checked offline (it needs the object stored on the hub): {rule}");
    }
    if args.verbose {
        print_skipped(&[&loaded, &clusters], &checked);
    }
    let files = loaded.files.len() + clusters.files.len();
    match args.output {
        Output::Text => {
            let mut out = String::new();
            for problem in &checked.problems {
                out.push_str(&format!("{problem}\n"));
            }
            out.push_str(&summary(&checked, files));
            out.push('\n');
            print_stdout(&out)?;
        }
        Output::Json | Output::Yaml => {
            let data = json!({
                "problems": checked.problems,
                "checked": {
                    "files": files,
                    "customerStacks": checked.stack_count,
                    "memberClusters": checked.member_count,
                    "tenantPolicies": checked.policy_count,
                    "ignored": checked.ignored.len(),
                    "clusterReferencesChecked": checked.cluster_references_checked,
                },
                "notCheckedOffline": not_checked,
            });
            if matches!(args.output, Output::Json) {
                print_stdout(&format!("{}\n", serde_json::to_string_pretty(&data)?))?;
            } else {
                print_stdout(&serde_yaml::to_string(&data)?)?;
            }
        }
    }
    Ok(if checked.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The rules of the kinds that were checked that need the stored object (transition rules).
fn not_checked(checked: &Checked) -> Vec<String> {
    let mut rules = Vec::new();
    for (kind, count) in [
        ("MemberCluster", checked.member_count),
        ("CustomerStack", checked.stack_count),
        ("TenantPolicy", checked.policy_count),
    ] {
        if count > 0 {
            rules.extend(not_checked_offline(kind));
        }
    }
    rules
}

fn summary(checked: &Checked, files: usize) -> String {
    // TenantPolicies are counted only when there are some.
    let policies = match checked.policy_count {
        0 => String::new(),
        n => format!("{n} TenantPolicy(s), "),
    };
    let counts = format!(
        "{} CustomerStack(s), {} MemberCluster(s), {policies}{} other object(s) in {files} file(s)",
        checked.stack_count,
        checked.member_count,
        checked.ignored.len()
    );
    match checked.problems.len() {
        0 => format!("ok: {counts}"),
        n => format!("{n} problem(s): {counts}"),
    }
}

fn print_skipped(loaded: &[&Loaded], checked: &Checked) {
    for (file, why) in loaded.iter().flat_map(|l| &l.skipped) {
        eprintln!("skipped {file}: {why}");
    }
    for manifest in &checked.ignored {
        eprintln!(
            "not checked {}: {} {} (not a stacksmith.io object)",
            manifest.origin,
            manifest.api_version(),
            manifest.kind()
        );
    }
}
