//! `stacksmith demo`: the whole product on this machine.
//!
//! Starts a local test bed (a hub plus a Prometheus cluster and a Grafana cluster, with stand-in
//! child operators), registers the remote clusters as `MemberCluster`s, probes them and shows
//! their status as ops would see it.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use kube::Api;
use kube::api::ListParams;
use stacksmith_api::MemberCluster;
use stacksmith_controller::member_probe;
use stacksmith_testbed::{TestBed, TestBedOptions};

use crate::testbed_cmd::wait_for_stop_signal;

/// Options of `stacksmith demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the test bed running after the demo until Ctrl-C (prints how to reach it).
    #[arg(long)]
    keep: bool,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    step("Starting a local hub and two remote clusters (first run also builds the control plane: several minutes)");
    let started = std::time::Instant::now();
    let testbed = TestBed::start(TestBedOptions::new("demo")).await.context("starting the test bed")?;
    println!("  {} clusters ready in {:.1} s:", testbed.clusters().len(), started.elapsed().as_secs_f32());
    for cluster in testbed.clusters() {
        let roles: Vec<&str> = cluster.roles().iter().map(|r| r.as_str()).collect();
        let roles = if roles.is_empty() { "hub".to_owned() } else { roles.join(",") };
        println!("    {:<14} {:<12} {}", cluster.name(), roles, cluster.server_url());
    }

    let result = show_members(&testbed).await;
    if result.is_ok() && args.keep {
        step("The test bed stays up; point kubectl at it with:");
        for (key, value) in testbed.env() {
            println!("  export {key}={value}");
        }
        println!("  (Ctrl-C stops it)");
        wait_for_stop_signal().await?;
    }
    step("Stopping the test bed");
    testbed.shutdown().await.context("stopping the test bed")?;
    result
}

async fn show_members(testbed: &TestBed) -> anyhow::Result<ExitCode> {
    let hub = testbed.hub()?.client().clone();
    let members: Api<MemberCluster> = Api::all(hub.clone());
    step("Probing the registered member clusters through their kubeconfig Secrets");
    for member in members.list(&ListParams::default()).await? {
        member_probe::probe_and_record(&hub, &member).await?;
    }
    step("kubectl get memberclusters");
    let listed = members.list(&ListParams::default()).await?;
    println!("  {:<14} {:<11} {:<6} {:<8} {:<11} MESSAGE", "NAME", "ROLES", "READY", "VERSION", "REASON");
    let mut all_ready = true;
    for member in &listed {
        let status = member.status.clone().unwrap_or_default();
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
        all_ready &= ready.is_some_and(|c| c.status == "True");
        let roles: Vec<&str> = member.spec.roles.iter().map(|r| r.as_str()).collect();
        println!(
            "  {:<14} {:<11} {:<6} {:<8} {:<11} {}",
            member.metadata.name.as_deref().unwrap_or_default(),
            roles.join(","),
            ready.map_or("-", |c| c.status.as_str()),
            status.server_version.as_deref().unwrap_or("-"),
            ready.map_or("-", |c| c.reason.as_str()),
            ready.map_or("", |c| c.message.as_str()),
        );
    }
    Ok(if all_ready && !listed.items.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn step(text: &str) {
    println!("\n==> {text}");
}
