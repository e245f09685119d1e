//! `stacksmith health -f FILE`: the verdict stacksmith gives a child object, offline.

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize as _;
use stacksmith_core::{ChildKind, Verdict, assess};

use crate::output::print_stdout;

/// Options of `stacksmith health`.
#[derive(Args, Debug)]
pub struct HealthArgs {
    /// The object(s) to judge: a YAML or JSON file (several YAML documents allowed), `-` for
    /// standard input.
    #[arg(short = 'f', long = "filename")]
    file: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// Output formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    /// One line per object: verdict, reason, message.
    Text,
    /// One JSON object per line: `{"verdict", "reason", "message"}`.
    Json,
}

/// Runs `stacksmith health`: exit 0 when every object is Healthy, 1 when one is not, 2 when the
/// input cannot be read.
pub fn run(args: &HealthArgs) -> anyhow::Result<ExitCode> {
    let text = if args.file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        text
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file))?
    };
    let objects = parse_objects(&text).with_context(|| format!("parsing {}", args.file))?;
    if objects.is_empty() {
        bail!("{}: no object found", args.file);
    }
    let mut all_healthy = true;
    for object in objects {
        let kind_name = object
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        let Some(kind) = ChildKind::from_kind(kind_name) else {
            bail!(
                "{}: kind {kind_name:?} is not a child kind stacksmith judges (expected one of {})",
                args.file,
                ChildKind::ALL.map(ChildKind::as_str).join(", ")
            );
        };
        let health = assess(kind, &object);
        all_healthy &= health.verdict == Verdict::Healthy;
        match args.output {
            Output::Text => print_stdout(&format!(
                "{:?}\t{}\t{}\n",
                health.verdict,
                health.reason.as_str(),
                health.message
            ))?,
            Output::Json => print_stdout(&format!(
                "{}\n",
                serde_json::json!({"verdict": health.verdict, "reason": health.reason.as_str(), "message": health.message})
            ))?,
        }
    }
    Ok(if all_healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every document of a YAML (or JSON) stream, skipping empty ones.
fn parse_objects(text: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(document)?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}
