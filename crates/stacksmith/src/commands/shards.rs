//! `stacksmith shards`: which operator replica holds which shard, and how many stacks each shard
//! has, read from the hub's Leases and stacks.
//!
//! Exit codes: 0 every shard has a live holder, 1 some shard has none (its stacks are not being
//! reconciled), 2 usage or environment error.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt as _};
use serde::Serialize;
use stacksmith_api::CustomerStack;
use stacksmith_controller::{LEASE_LABEL, SHARDS_ANNOTATION};
use stacksmith_core::shards::shard_of;

use crate::commands::status::{HubArgs, Output, hub_call};
use crate::output::print_stdout;

/// Options of `stacksmith shards`.
#[derive(Args, Debug)]
pub struct ShardsArgs {
    /// The hub namespace of the operator's Leases (the chart's release namespace).
    #[arg(long, default_value = "stacksmith-system")]
    lease_namespace: String,
    #[command(flatten)]
    hub: HubArgs,
    /// Output format: the table, or the view as data.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// One shard as the hub shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShardRow {
    /// The shard.
    pub shard: u16,
    /// The replica named in its Lease (`None`: released, or no Lease yet).
    pub holder: Option<String>,
    /// Seconds since the holder last renewed it, as the hub's clock and this machine's agree.
    pub renewed_seconds_ago: Option<i64>,
    /// Whether the renewal is within the Lease's duration.
    pub live: bool,
    /// How often it changed hands.
    pub transitions: i32,
    /// The hub's stacks in this shard.
    pub stacks: usize,
}

/// What `stacksmith shards` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShardsView {
    /// The shard count the Leases were written with (`None`: no shard Lease).
    pub shards: Option<u16>,
    /// One row per shard.
    pub rows: Vec<ShardRow>,
    /// The replicas counted as live (their replica Lease renewed within its duration).
    pub replicas: Vec<String>,
}

/// Builds the view from the Leases and the stacks' `(namespace, name)`, at `now`.
pub fn shards_view(leases: &[Lease], stacks: &[(String, String)], now: Timestamp) -> ShardsView {
    let age = |lease: &Lease| {
        let spec = lease.spec.as_ref()?;
        let renewed = spec.renew_time.as_ref()?.0;
        Some(now.as_second() - renewed.as_second())
    };
    let live = |lease: &Lease, age: Option<i64>| {
        let spec = lease.spec.as_ref();
        let holder = spec.and_then(|s| s.holder_identity.as_deref());
        let duration = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(0);
        holder.is_some_and(|h| !h.is_empty()) && age.is_some_and(|a| a <= i64::from(duration))
    };
    let is = |lease: &Lease, what: &str| {
        lease.labels().get(LEASE_LABEL).map(String::as_str) == Some(what)
    };
    let shard_leases: BTreeMap<u16, &Lease> = leases
        .iter()
        .filter(|l| is(l, "shard"))
        .filter_map(|l| {
            let index = l.name_any().rsplit('-').next()?.parse().ok()?;
            Some((index, l))
        })
        .collect();
    let shards = shard_leases
        .values()
        .filter_map(|l| l.annotations().get(SHARDS_ANNOTATION)?.parse::<u16>().ok())
        .max();
    let mut per_shard: BTreeMap<u16, usize> = BTreeMap::new();
    if let Some(count) = shards {
        for (namespace, name) in stacks {
            *per_shard
                .entry(shard_of(namespace, name, count))
                .or_default() += 1;
        }
    }
    let rows = (0..shards.unwrap_or(0))
        .map(|shard| {
            let lease = shard_leases.get(&shard);
            let renewed = lease.and_then(|l| age(l));
            ShardRow {
                shard,
                holder: lease
                    .and_then(|l| l.spec.as_ref()?.holder_identity.clone())
                    .filter(|h| !h.is_empty()),
                renewed_seconds_ago: renewed,
                live: lease.is_some_and(|l| live(l, renewed)),
                transitions: lease
                    .and_then(|l| l.spec.as_ref()?.lease_transitions)
                    .unwrap_or(0),
                stacks: per_shard.get(&shard).copied().unwrap_or(0),
            }
        })
        .collect();
    let mut replicas: Vec<String> = leases
        .iter()
        .filter(|l| is(l, "replica") && live(l, age(l)))
        .filter_map(|l| l.spec.as_ref()?.holder_identity.clone())
        .collect();
    replicas.sort();
    ShardsView {
        shards,
        rows,
        replicas,
    }
}

/// The table.
pub fn render(view: &ShardsView, lease_namespace: &str) -> String {
    let Some(shards) = view.shards else {
        return format!(
            "No shard Leases in namespace {lease_namespace}: the operator is not running there, or runs with --no-leases.\n"
        );
    };
    let mut out = format!("{shards} shard(s); live replicas: {}\n", {
        if view.replicas.is_empty() {
            "none".to_owned()
        } else {
            view.replicas.join(", ")
        }
    });
    let header = ["SHARD", "HOLDER", "STACKS", "RENEWED", "TRANSITIONS"];
    let cells: Vec<[String; 5]> = view
        .rows
        .iter()
        .map(|row| {
            let holder = match (&row.holder, row.live) {
                (Some(holder), true) => holder.clone(),
                (Some(holder), false) => format!("{holder} (expired)"),
                (None, _) => "-".to_owned(),
            };
            [
                row.shard.to_string(),
                holder,
                row.stacks.to_string(),
                row.renewed_seconds_ago
                    .map_or_else(|| "-".to_owned(), |s| format!("{}s ago", s.max(0))),
                row.transitions.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|row| row[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    out.push_str(&line(header.to_vec()));
    for row in &cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Runs `stacksmith shards`.
pub async fn run(args: ShardsArgs) -> anyhow::Result<ExitCode> {
    let config = args.hub.config().await?;
    let hub = Client::try_from(config).context("building a client for the hub")?;
    let leases: Api<Lease> = Api::namespaced(hub.clone(), &args.lease_namespace);
    let leases = hub_call(
        leases.list(&ListParams::default().labels(LEASE_LABEL)),
        "listing the operator's Leases",
    )
    .await?
    .items;
    let stacks: Api<CustomerStack> = Api::all(hub);
    let stacks: Vec<(String, String)> = hub_call(
        stacks.list_metadata(&ListParams::default()),
        "listing CustomerStacks",
    )
    .await?
    .items
    .iter()
    .map(|s| (s.namespace().unwrap_or_default(), s.name_any()))
    .collect();
    let view = shards_view(&leases, &stacks, Timestamp::now());
    match args.output {
        Output::Table => print_stdout(&render(&view, &args.lease_namespace))?,
        Output::Json => print_stdout(&format!("{}\n", serde_json::to_string_pretty(&view)?))?,
        Output::Yaml => print_stdout(&serde_yaml::to_string(&view)?)?,
    }
    Ok(
        if view.rows.iter().all(|row| row.live) && view.shards.is_some() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    use super::*;

    fn lease(name: &str, what: &str, holder: Option<&str>, renewed: i64, now: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([(LEASE_LABEL.into(), what.into())])),
                annotations: (what == "shard")
                    .then(|| BTreeMap::from([(SHARDS_ANNOTATION.into(), "3".into())])),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(
                    Timestamp::from_second(now.as_second() - renewed).unwrap(),
                )),
                lease_transitions: Some(2),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn the_view_names_each_shards_holder_its_stacks_and_the_live_replicas() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let leases = [
            lease("stacksmith-shard-0", "shard", Some("pod-a"), 2, now),
            lease("stacksmith-shard-1", "shard", Some("pod-b"), 40, now),
            lease("stacksmith-shard-2", "shard", None, 1, now),
            lease("stacksmith-replica-pod-a", "replica", Some("pod-a"), 1, now),
            lease(
                "stacksmith-replica-pod-b",
                "replica",
                Some("pod-b"),
                60,
                now,
            ),
        ];
        let stacks: Vec<(String, String)> = (0..30)
            .map(|i| ("tenants".to_owned(), format!("s{i}")))
            .collect();
        let view = shards_view(&leases, &stacks, now);
        assert_eq!(view.shards, Some(3));
        assert_eq!(view.replicas, vec!["pod-a".to_owned()]);
        assert_eq!(view.rows.iter().map(|r| r.stacks).sum::<usize>(), 30);
        assert_eq!(view.rows[0].holder.as_deref(), Some("pod-a"));
        assert!(view.rows[0].live);
        assert!(!view.rows[1].live);
        assert_eq!(view.rows[2].holder, None);
        let table = render(&view, "stacksmith-system");
        assert!(
            table.starts_with("3 shard(s); live replicas: pod-a\n"),
            "{table}"
        );
        assert!(table.contains("pod-b (expired)"), "{table}");
        assert!(
            table.lines().nth(1).unwrap().starts_with("SHARD  HOLDER"),
            "{table}"
        );
    }

    #[test]
    fn no_lease_says_why() {
        let view = shards_view(&[], &[], Timestamp::now());
        assert!(render(&view, "ops").contains("No shard Leases in namespace ops"));
    }
}
