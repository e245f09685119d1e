//! The sections of the benchmark, run against fresh test beds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use stacksmith_api::{ClusterRole, CustomerStack, MemberCluster};
use stacksmith_core::ChildKind;
use stacksmith_core::member_status;
use stacksmith_testbed::simulator::status::{World, simulated_status};
use stacksmith_testbed::simulator::{OUTCOME_ANNOTATION, Outcome, api_resource};
use stacksmith_testbed::{ClusterSpec, PrometheusSide, TestBed, TestBedOptions};

use crate::observe::{WatchMap, is_ready, stack_ready};
use crate::operator_proc::{
    Counts, Memory, OperatorProcess, delta, describe, is_read, is_request, is_write, log_path,
    total, without_leases,
};
use crate::report::{Figure, Goal};
use crate::samples::SampleLog;
use crate::stats::{median, ms, percentile};
use crate::workload;

/// The sections, as `--only` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Section {
    /// 1: API calls to converge one new stack.
    Calls,
    /// 2: cold convergence of N stacks, and the raw-write floor.
    Cold,
    /// 3: requests while idle, and writes after a restart.
    Idle,
    /// 4: status propagation latency.
    Status,
    /// 5: spec propagation latency.
    Spec,
    /// 6: convergence on healthy clusters while another is down.
    Down,
    /// 7: operator memory.
    Memory,
    /// 8: replicas sharing the stacks through Leases: failover after a crash and after a
    /// graceful stop, the writes on takeover, throughput with 1, 2 and 3 replicas.
    Failover,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// N, the stacks of the cold convergence.
    pub stacks: usize,
    /// Samples of each propagation latency.
    pub samples: usize,
    /// Seconds of idle observation.
    pub idle_seconds: u64,
    /// Stacks converged in each half of the one-cluster-down section.
    pub down_stacks: usize,
    /// Stacks converged before the failovers, and per replica count of the throughput.
    pub failover_stacks: usize,
    /// The lease duration of section 8, in seconds.
    pub lease_seconds: u64,
    /// The shards of section 8's throughput.
    pub shards: u16,
    /// The sections to run.
    pub sections: Vec<Section>,
}

impl Options {
    pub(crate) fn wants(&self, section: Section) -> bool {
        self.sections.contains(&section)
    }
}

const S1: &str = "1 calls per new stack";
const S2: &str = "2 cold convergence";
const S3: &str = "3 idle";
const S4: &str = "4 status propagation";
const S5: &str = "5 spec propagation";
const S6: &str = "6 one cluster down";
const S7: &str = "7 memory";

/// Longest wait for anything the operator does per stack.
pub(crate) const STEP: Duration = Duration::from_secs(60);
/// Stacks used in rotation by the propagation samples.
const SAMPLE_STACKS: usize = 20;

/// One run: every selected section; the figures measured.
pub async fn run_once(options: &Options, run: usize) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let main_sections = [
        Section::Calls,
        Section::Cold,
        Section::Idle,
        Section::Status,
        Section::Spec,
        Section::Memory,
    ];
    if main_sections.iter().any(|s| options.wants(*s)) {
        main_bed(options, run, &mut figures).await?;
    }
    if options.wants(Section::Down) {
        down_bed(options, run, &mut figures).await?;
    }
    if options.wants(Section::Failover) {
        crate::failover::run(options, run, &mut figures).await?;
    }
    Ok(figures)
}

pub(crate) fn say(what: impl AsRef<str>) {
    eprintln!("  {}", what.as_ref());
}

/// The operator and what the bench watches on one test bed.
pub(crate) struct Bed {
    pub(crate) testbed: TestBed,
    pub(crate) hub: Client,
    pub(crate) stacks: WatchMap<Option<bool>>,
    operator: Option<OperatorProcess>,
}

impl Bed {
    pub(crate) async fn start(name: String, remotes: Vec<ClusterSpec>) -> anyhow::Result<Bed> {
        let mut options = TestBedOptions::new(name);
        options.remotes = remotes;
        // At thousands of stacks the simulator plays both child operators (a real
        // prometheus-operator would run a StatefulSet per stack on two cores), and stacksmith
        // talks to the members directly: the figures compare against a floor measured the same
        // way, so a link delay would only add a constant to both.
        options.prometheus_side = PrometheusSide::Simulated;
        options.member_link = None;
        let started = Instant::now();
        let testbed = TestBed::start(options).await?;
        say(format!(
            "test bed {} ready in {:.1} s",
            testbed.name(),
            started.elapsed().as_secs_f64()
        ));
        let hub = testbed.hub()?.client().clone();
        stacksmith_testbed::simulator::create_shared_grafana(
            testbed.cluster("grafana-1")?.client(),
        )
        .await?;
        let stacks = WatchMap::start(
            Api::<CustomerStack>::all(hub.clone()),
            stack_ready,
            is_ready,
        );
        Ok(Bed {
            testbed,
            hub,
            stacks,
            operator: None,
        })
    }

    fn operator(&mut self) -> anyhow::Result<&mut OperatorProcess> {
        self.operator
            .as_mut()
            .context("the operator is not running")
    }

    /// Starts the operator and waits until every member is Ready and it has been quiet for
    /// `quiet`; returns its requests up to then.
    async fn start_operator(
        &mut self,
        run: usize,
        what: &str,
        quiet: Duration,
    ) -> anyhow::Result<Counts> {
        let log = log_path(run, what);
        let kubeconfig = self.testbed.hub()?.kubeconfig_path().to_path_buf();
        self.operator = Some(OperatorProcess::start(&kubeconfig, &log)?);
        self.wait_members_ready(&log.display().to_string()).await?;
        self.wait_quiet(quiet).await
    }

    /// Waits until every member is Ready (the operator, or the leader among replicas, wrote so);
    /// `log` names the operator's log in the error.
    pub(crate) async fn wait_members_ready(&self, log: &str) -> anyhow::Result<()> {
        let members: Api<MemberCluster> = Api::all(self.hub.clone());
        let deadline = Instant::now() + STEP;
        loop {
            let list = members.list(&Default::default()).await?;
            let ready = list.items.iter().all(|m| {
                m.status.as_ref().is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == member_status::condition_type::READY && c.status == "True"
                    })
                })
            });
            if ready && !list.items.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the members did not become Ready (operator log: {log})");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the operator has made no request but watches for `quiet`; returns its counts.
    async fn wait_quiet(&mut self, quiet: Duration) -> anyhow::Result<Counts> {
        let operator = self.operator()?;
        wait_quiet_all(&mut [operator], quiet, is_request)
            .await?
            .pop()
            .context("no counts")
    }

    async fn stop_operator(&mut self) -> anyhow::Result<()> {
        if let Some(operator) = self.operator.take() {
            operator.stop().await?;
        }
        Ok(())
    }

    pub(crate) async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop_operator().await?;
        drop(self.stacks);
        self.testbed.shutdown().await?;
        Ok(())
    }

    /// Creates `names` in `namespace` on `prometheus_cluster`; returns the time from the first
    /// write until the last of them was Ready.
    pub(crate) async fn converge(
        &self,
        namespace: &str,
        names: &[String],
        prometheus_cluster: &str,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        workload::create_stacks(&self.hub, namespace, names, prometheus_cluster).await?;
        let last = self
            .stacks
            .wait_count(namespace, names.len(), timeout)
            .await?;
        Ok(last.saturating_duration_since(started))
    }
}

/// Waits until none of `operators` has made a request whose verb `counted` selects for `quiet`
/// (watches are never counted, nor the Lease renewals, which go on forever); returns the counts
/// of each, in order.
pub(crate) async fn wait_quiet_all(
    operators: &mut [&mut OperatorProcess],
    quiet: Duration,
    counted: fn(&str) -> bool,
) -> anyhow::Result<Vec<Counts>> {
    let deadline = Instant::now() + quiet + Duration::from_secs(120);
    let mut last = Vec::with_capacity(operators.len());
    for operator in operators.iter_mut() {
        last.push(operator.counts().await?);
    }
    let mut calm_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut now = Vec::with_capacity(operators.len());
        for operator in operators.iter_mut() {
            now.push(operator.counts().await?);
        }
        let busy = last.iter().zip(&now).any(|(before, after)| {
            total(&without_leases(&delta(before, after)), None, |v| {
                is_request(v) && counted(v)
            }) > 0
        });
        if busy {
            calm_since = Instant::now();
        }
        last = now;
        if calm_since.elapsed() >= quiet {
            return Ok(last);
        }
        if Instant::now() > deadline {
            bail!("the operator never went quiet for {quiet:?}");
        }
    }
}

pub(crate) fn light_layout() -> Vec<ClusterSpec> {
    TestBedOptions::new("layout").remotes
}

async fn main_bed(options: &Options, run: usize, figures: &mut Vec<Figure>) -> anyhow::Result<()> {
    let n = options.stacks;
    let mut bed = Bed::start(
        format!("bench-{}-{run}", std::process::id()),
        light_layout(),
    )
    .await?;
    let result = main_sections(options, run, n, &mut bed, figures).await;
    let shutdown = bed.shutdown().await;
    result.and(shutdown)
}

async fn main_sections(
    options: &Options,
    run: usize,
    n: usize,
    bed: &mut Bed,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    let members = workload::members(&bed.hub).await?;
    bed.start_operator(run, "operator", Duration::from_secs(2))
        .await?;
    let baseline = bed.operator()?.memory()?;
    say(format!(
        "operator running, {:.1} MiB resident with no stack",
        mib(baseline.rss)
    ));

    if options.wants(Section::Calls) {
        section_calls(bed, &members, figures).await?;
    }

    // 2: cold convergence of N stacks (also what sections 3–5 and 7 need).
    let cold = workload::names("cold", n);
    let needs_cold = [
        Section::Cold,
        Section::Idle,
        Section::Status,
        Section::Spec,
        Section::Memory,
    ]
    .iter()
    .any(|s| options.wants(*s));
    if !needs_cold {
        return Ok(());
    }
    let converged = cold_convergence(bed, n, &cold).await?;

    if options.wants(Section::Idle) {
        section_idle(options, run, bed, figures).await?;
    }
    if options.wants(Section::Status) {
        section_status(options, run, bed, &cold, figures).await?;
    }
    if options.wants(Section::Spec) {
        section_spec(options, run, bed, &cold, figures).await?;
    }
    let at_end = bed.operator()?.memory()?;
    if options.wants(Section::Memory) {
        memory_figures(options, n, baseline, converged.memory, at_end, figures);
    }

    if options.wants(Section::Cold) {
        section_cold(bed, n, &cold, &members, &converged, figures).await?;
    }
    Ok(())
}

/// What the cold convergence of N stacks leaves for the sections that report on it.
struct ColdRun {
    /// From the first stack written until the last was Ready.
    took: Duration,
    /// The operator's requests while converging (until quiet).
    requests: Counts,
    /// Per Prometheus, ms from its creation until the simulator wrote its status.
    simulator_lag: Vec<f64>,
    /// The operator's memory once converged.
    memory: Memory,
}

/// Creates the `cold` stacks and waits until they are Ready and the operator is quiet.
async fn cold_convergence(bed: &mut Bed, n: usize, cold: &[String]) -> anyhow::Result<ColdRun> {
    let before = bed.operator()?.counts().await?;
    let simulator_watch = WatchMap::start(
        Api::<DynamicObject>::all_with(
            bed.testbed.cluster("prometheus-1")?.client().clone(),
            &api_resource(ChildKind::Prometheus),
        ),
        status_written,
        |written: &bool| *written,
    );
    say(format!("creating {n} stacks"));
    let took = bed
        .converge("bench-cold", cold, "prometheus-1", STEP * 30)
        .await?;
    say(format!("{n} stacks Ready in {:.2} s", took.as_secs_f64()));
    let requests = delta(&before, &bed.wait_quiet(Duration::from_secs(2)).await?);
    let simulator_lag: Vec<f64> = simulator_watch
        .all()
        .iter()
        .filter(|s| s.value)
        .map(|s| ms(s.since.saturating_duration_since(s.first_seen)))
        .collect();
    drop(simulator_watch);
    let memory = bed.operator()?.memory()?;
    Ok(ColdRun {
        took,
        requests,
        simulator_lag,
        memory,
    })
}

/// Section 7: the peak, the empty RSS and the bytes per child.
fn memory_figures(
    options: &Options,
    n: usize,
    baseline: Memory,
    after_cold: Memory,
    at_end: Memory,
    figures: &mut Vec<Figure>,
) {
    // The process that converged the stacks (before any restart), else the current one.
    let peak = after_cold.peak.max(if options.wants(Section::Idle) {
        0
    } else {
        at_end.peak
    });
    let children = (n * 6) as f64;
    figures.push(Figure::new(
        S7,
        &format!("peak RSS at {n} stacks"),
        mib(peak),
        "MiB",
    ));
    figures.push(Figure::new(
        S7,
        "RSS with no stack",
        mib(baseline.rss),
        "MiB",
    ));
    figures.push(
        Figure::new(
            S7,
            "bytes per child (peak − empty) / children",
            peak.saturating_sub(baseline.rss) as f64 / children,
            "B",
        )
        .goal(Goal::AtMost(2048.0))
        .note(format!(
            "{n} stacks × 6 children; the goal is stated at 10,000 stacks; steady RSS after convergence {:.1} MiB",
            mib(after_cold.rss)
        )),
    );
}

/// Section 2: the operator stopped, the floor measured, the cold convergence compared to it.
async fn section_cold(
    bed: &mut Bed,
    n: usize,
    cold: &[String],
    members: &[stacksmith_core::plan::MemberInfo],
    converged: &ColdRun,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    bed.stop_operator().await?;
    let budget = write_budget(&converged.requests);
    let (floor_writes, floor) = measure_floor(bed, n, cold, members, &budget).await?;
    cold_figures(n, converged, floor_writes, floor, &budget, figures);
    simulator_lag_figure(&converged.simulator_lag, figures);
    Ok(())
}

/// The operator's writes per cluster: what the floor issues.
fn write_budget(requests: &Counts) -> workload::WriteBudget {
    let mut budget: BTreeMap<String, u64> = BTreeMap::new();
    for ((cluster, verb, _), count) in requests {
        if is_write(verb) {
            *budget.entry(cluster.clone()).or_insert(0) += count;
        }
    }
    budget
}

/// Runs the floor for N new stacks with `budget`; returns its writes and how long it took.
async fn measure_floor(
    bed: &Bed,
    n: usize,
    cold: &[String],
    members: &[stacksmith_core::plan::MemberInfo],
    budget: &workload::WriteBudget,
) -> anyhow::Result<(u64, Duration)> {
    let status_template = serde_json::to_value(
        Api::<CustomerStack>::namespaced(bed.hub.clone(), "bench-cold")
            .get(&cold[0])
            .await?
            .status,
    )?;
    let mut clients = BTreeMap::new();
    for cluster in bed.testbed.clusters() {
        clients.insert(cluster.name().to_owned(), cluster.client().clone());
    }
    say("the floor: the same writes from a tight client, operator stopped");
    let floor_names = workload::names("floor", n);
    let started = Instant::now();
    let floor_writes = workload::floor(
        &clients,
        &floor_names,
        "prometheus-1",
        members,
        budget,
        &status_template,
    )
    .await?;
    let floor = started.elapsed();
    say(format!(
        "floor: {floor_writes} writes in {:.2} s",
        floor.as_secs_f64()
    ));
    Ok((floor_writes, floor))
}

/// Section 2's figures: the operator's time, the floor's, their ratio and the throughput.
fn cold_figures(
    n: usize,
    converged: &ColdRun,
    floor_writes: u64,
    floor: Duration,
    budget: &workload::WriteBudget,
    figures: &mut Vec<Figure>,
) {
    let (took, cold_writes) = (converged.took, &converged.requests);
    let operator_writes = total(cold_writes, None, is_write);
    figures.push(
        Figure::new(S2, &format!("operator: {n} stacks Ready"), took.as_secs_f64(), "s")
            .note(format!(
                "the operator's requests while converging {n} stacks: {} ({} writes, {} GET/LIST); plus {n} stack creations by the bench",
                describe(cold_writes),
                operator_writes,
                total(cold_writes, None, is_read)
            )),
    );
    figures.push(
        Figure::new(S2, "floor: the same writes, tight client", floor.as_secs_f64(), "s")
            .note(format!(
                "{floor_writes} writes by an admin client, server-side apply of the planned objects ({} stacks at a time), stack creation, finalizer and status patches on the hub; per cluster: {}",
                workload::FLOOR_CONCURRENCY,
                budget
                    .iter()
                    .map(|(c, b)| format!("{c} {b}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
    );
    figures.push(
        Figure::new(
            S2,
            "operator / floor",
            took.as_secs_f64() / floor.as_secs_f64().max(1e-9),
            "x",
        )
        .goal(Goal::AtMost(1.5)),
    );
    figures.push(Figure::new(
        S2,
        "throughput",
        n as f64 / took.as_secs_f64().max(1e-9),
        "stacks/s",
    ));
}

/// The simulator's lag (Prometheus created → status written), when there is a sample.
fn simulator_lag_figure(simulator_lag: &[f64], figures: &mut Vec<Figure>) {
    if let (Some(p50), Some(p99)) = (
        percentile(simulator_lag, 50.0),
        percentile(simulator_lag, 99.0),
    ) {
        figures.push(
            Figure::new(S2, "simulator: Prometheus created → status written, p50", p50, "ms")
                .note(format!(
                    "the simulator's lag (one serial worker per cluster); p99 {p99:.1} ms over {} Prometheus objects",
                    simulator_lag.len()
                )),
        );
    }
}

/// Whether the simulator (or anyone) wrote a status with conditions for the current generation.
fn status_written(object: &DynamicObject) -> bool {
    let generation = object.metadata.generation;
    object
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            !conditions.is_empty()
                && conditions
                    .iter()
                    .all(|c| c.get("observedGeneration").and_then(Value::as_i64) == generation)
        })
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn section_calls(
    bed: &mut Bed,
    members: &[stacksmith_core::plan::MemberInfo],
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    say("1: one new stack");
    let before = bed.wait_quiet(Duration::from_secs(2)).await?;
    let names = workload::names("one", 1);
    bed.converge("bench-one", &names, "prometheus-1", STEP)
        .await?;
    let converging = delta(&before, &bed.wait_quiet(Duration::from_secs(2)).await?);
    let planned = workload::plan_objects(&names[0], "prometheus-1", members)?;
    let planned_on = |c: &str| planned.iter().filter(|o| o.cluster == c).count() as f64;
    let floor = planned.len() as f64 + 2.0;
    for cluster in ["prometheus-1", "grafana-1"] {
        figures.push(
            Figure::new(
                S1,
                &format!("writes on {cluster}"),
                total(&converging, Some(cluster), is_write) as f64,
                "requests",
            )
            .goal(Goal::AtMost(planned_on(cluster))),
        );
    }
    figures.push(
        Figure::new(
            S1,
            "writes on the hub",
            total(&converging, Some("hub"), is_write) as f64,
            "requests",
        )
        .goal(Goal::AtMost(2.0))
        .note("floor on the hub: the finalizer and one status write"),
    );
    figures.push(
        Figure::new(
            S1,
            "writes in all",
            total(&converging, None, is_write) as f64,
            "requests",
        )
        .goal(Goal::AtMost(floor))
        .note(format!(
            "by cluster and verb: {}; floor: {} planned objects + 2 hub writes",
            describe(&converging),
            planned.len()
        )),
    );
    figures.push(
        Figure::new(
            S1,
            "GET/LIST while converging",
            total(&converging, None, is_read) as f64,
            "requests",
        )
        .goal(Goal::AtMost(0.0)),
    );
    Ok(())
}

async fn section_idle(
    options: &Options,
    run: usize,
    bed: &mut Bed,
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    say(format!("3: idle for {} s", options.idle_seconds));
    let before = bed.wait_quiet(Duration::from_secs(2)).await?;
    tokio::time::sleep(Duration::from_secs(options.idle_seconds)).await;
    let idle = delta(&before, &bed.operator()?.counts().await?);
    figures.push(
        Figure::new(
            S3,
            &format!("writes in {} s idle", options.idle_seconds),
            total(&idle, None, is_write) as f64,
            "requests",
        )
        .goal(Goal::AtMost(0.0)),
    );
    figures.push(
        Figure::new(
            S3,
            &format!("reads in {} s idle", options.idle_seconds),
            total(&idle, None, |v| is_request(v) && !is_write(v)) as f64,
            "requests",
        )
        .goal(Goal::AtMost(0.0))
        .note(format!(
            "idle requests (watches excluded): {}",
            describe(&idle)
        )),
    );
    say("3: restart");
    bed.stop_operator().await?;
    let started = Instant::now();
    let after_restart = bed
        .start_operator(run, "operator-restarted", Duration::from_secs(10))
        .await?;
    let settled = started.elapsed();
    figures.push(
        Figure::new(
            S3,
            "writes after a restart",
            total(&after_restart, None, is_write) as f64,
            "requests",
        )
        .goal(Goal::AtMost(0.0))
        .note(format!(
            "from start until synced and quiet 10 s ({:.1} s): {}",
            settled.as_secs_f64(),
            describe(&after_restart)
        )),
    );
    Ok(())
}

fn key(name: &str) -> String {
    format!("bench-cold/{name}")
}

async fn section_status(
    options: &Options,
    run: usize,
    bed: &mut Bed,
    cold: &[String],
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    say(format!("4: {} status flips", options.samples));
    let prometheus = bed.testbed.cluster("prometheus-1")?.client().clone();
    let used: Vec<&String> = cold.iter().take(SAMPLE_STACKS).collect();
    let objects = stop_simulating(&prometheus, &used).await?;
    let mut degraded = vec![false; used.len()];
    let mut samples = Vec::new();
    let log = SampleLog::from_env();
    for i in 0..options.samples {
        let slot = i % used.len();
        let (api, object) = &objects[slot];
        let to_degraded = !degraded[slot];
        let (wall, at) = flip_status(bed, api, object, used[slot], to_degraded).await?;
        samples.push(ms(at));
        log.record(run, 4, &key(used[slot]), wall, ms(at));
        degraded[slot] = to_degraded;
    }
    push_latencies(
        figures,
        S4,
        &samples,
        "a Prometheus' status patched on prometheus-1 (alternately Available=False / True) → the stack's Ready flips in the bench's hub watch",
    );
    // Leave the stacks healthy.
    for (slot, name) in used.iter().enumerate() {
        if degraded[slot] {
            let (api, object) = &objects[slot];
            if let Some(status) = simulated_prometheus_status(object, Outcome::Healthy) {
                api.patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": status })),
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Makes the simulator stop writing the status of the Prometheus of each stack in `used` (so it
/// does not fight the flips); returns each one's API and the object as patched.
async fn stop_simulating(
    prometheus: &Client,
    used: &[&String],
) -> anyhow::Result<Vec<(Api<DynamicObject>, Value)>> {
    let mut objects = Vec::new();
    for name in used {
        let api: Api<DynamicObject> = Api::namespaced_with(
            prometheus.clone(),
            &format!("customer-{name}"),
            &api_resource(ChildKind::Prometheus),
        );
        let patch =
            json!({"metadata": {"annotations": {OUTCOME_ANNOTATION: Outcome::Never.as_str()}}});
        let object = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        objects.push((api, serde_json::to_value(&object)?));
    }
    Ok(objects)
}

/// Patches the status of the Prometheus `name` to Degraded (or back to Healthy) and waits until
/// the stack's Ready follows; returns when it was patched (wall clock) and how long that took.
async fn flip_status(
    bed: &Bed,
    api: &Api<DynamicObject>,
    object: &Value,
    name: &str,
    to_degraded: bool,
) -> anyhow::Result<(k8s_openapi::jiff::Timestamp, Duration)> {
    let outcome = if to_degraded {
        Outcome::Degraded
    } else {
        Outcome::Healthy
    };
    let status = simulated_prometheus_status(object, outcome).context("no simulated status")?;
    let wall = k8s_openapi::jiff::Timestamp::now();
    let started = Instant::now();
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    let at = bed
        .stacks
        .wait_object(&key(name), STEP, |ready| *ready == Some(!to_degraded))
        .await?;
    Ok((wall, at.saturating_duration_since(started)))
}

/// The status the simulator would write now for the Prometheus `object` with `outcome`.
fn simulated_prometheus_status(object: &Value, outcome: Outcome) -> Option<Value> {
    let world = World {
        grafanas: &[],
        prometheuses: &[],
        status_for_configuration_resources: true,
    };
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    simulated_status(ChildKind::Prometheus, object, outcome, &world, &now)
}

fn push_latencies(figures: &mut Vec<Figure>, section: &str, samples: &[f64], what: &str) {
    let (p50, p99) = (percentile(samples, 50.0), percentile(samples, 99.0));
    let (p999, max) = (percentile(samples, 99.9), percentile(samples, 100.0));
    let note = format!(
        "{what}; {} samples, median {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        samples.len(),
        median(samples).unwrap_or(0.0),
        p999.unwrap_or(0.0),
        max.unwrap_or(0.0)
    );
    match (p50, p99, p999, max) {
        (Some(p50), Some(p99), Some(p999), Some(max)) => {
            figures.push(Figure::new(section, "p50", p50, "ms").goal(Goal::AtMost(250.0)));
            figures.push(
                Figure::new(section, "p99", p99, "ms")
                    .goal(Goal::AtMost(250.0))
                    .note(note),
            );
            // Below 1000 samples the p99.9 is the maximum (nearest rank).
            figures.push(Figure::new(section, "p99.9", p999, "ms"));
            figures.push(Figure::new(section, "max", max, "ms"));
        }
        _ => figures.push(Figure::missing(section, "p99", "ms", "no sample")),
    }
}

async fn section_spec(
    options: &Options,
    run: usize,
    bed: &mut Bed,
    cold: &[String],
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    say(format!("5: {} spec changes", options.samples));
    let prometheus = bed.testbed.cluster("prometheus-1")?.client().clone();
    let replicas = WatchMap::start(
        Api::<DynamicObject>::all_with(prometheus, &api_resource(ChildKind::Prometheus)),
        |o: &DynamicObject| o.data.pointer("/spec/replicas").and_then(Value::as_i64),
        |_: &Option<i64>| false,
    );
    // Other stacks than section 4's, whose Prometheus the simulator still plays.
    let used: Vec<&String> = cold
        .iter()
        .skip(SAMPLE_STACKS)
        .take(SAMPLE_STACKS)
        .collect();
    let used = if used.is_empty() {
        cold.iter().take(1).collect()
    } else {
        used
    };
    let stacks: Api<CustomerStack> = Api::namespaced(bed.hub.clone(), "bench-cold");
    let mut current = vec![2i64; used.len()];
    let mut samples = Vec::new();
    let log = SampleLog::from_env();
    for i in 0..options.samples {
        let slot = i % used.len();
        let name = used[slot];
        let remote = format!("customer-{name}/{name}");
        let want = if current[slot] == 2 { 3 } else { 2 };
        // The previous change of this stack has settled: Ready at its generation.
        bed.stacks
            .wait_object(&key(name), STEP, |ready| *ready == Some(true))
            .await?;
        replicas
            .wait_object(&remote, STEP, |r| *r == Some(current[slot]))
            .await?;
        let wall = k8s_openapi::jiff::Timestamp::now();
        let started = Instant::now();
        stacks
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"metrics": {"replicas": want}}})),
            )
            .await?;
        let at = replicas
            .wait_object(&remote, STEP, |r| *r == Some(want))
            .await?;
        let latency = ms(at.saturating_duration_since(started));
        samples.push(latency);
        log.record(run, 5, &key(name), wall, latency);
        current[slot] = want;
    }
    push_latencies(
        figures,
        S5,
        &samples,
        "a stack's spec.metrics.replicas patched on the hub (2 ↔ 3) → the Prometheus on prometheus-1 has it, in the bench's watch of prometheus-1",
    );
    Ok(())
}

async fn down_bed(options: &Options, run: usize, figures: &mut Vec<Figure>) -> anyhow::Result<()> {
    let m = options.down_stacks;
    let mut remotes = light_layout();
    remotes.insert(
        1,
        ClusterSpec {
            name: "prometheus-2".into(),
            roles: vec![ClusterRole::Prometheus],
        },
    );
    let mut bed = Bed::start(format!("bench-down-{}-{run}", std::process::id()), remotes).await?;
    let result = async {
        bed.start_operator(run, "operator-down", Duration::from_secs(2))
            .await?;
        say("6: stacks on prometheus-2 that will be cut off");
        let on_2 = workload::names("p2", 20.min(m.max(1)));
        bed.converge("bench-p2", &on_2, "prometheus-2", STEP * 5)
            .await?;
        say(format!("6: baseline, {m} stacks on prometheus-1"));
        let baseline = bed
            .converge(
                "bench-base",
                &workload::names("base", m),
                "prometheus-1",
                STEP * 30,
            )
            .await?;
        bed.wait_quiet(Duration::from_secs(2)).await?;
        say("6: prometheus-2's API server stopped");
        bed.testbed
            .cluster("prometheus-2")?
            .stop_apiserver()
            .await?;
        let deadline = Instant::now() + STEP;
        while bed.stacks.count("bench-p2") > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let noticed = bed.stacks.count("bench-p2") == 0;
        say(format!(
            "6: {m} stacks on prometheus-1 while prometheus-2 is down"
        ));
        let degraded = bed
            .converge(
                "bench-degr",
                &workload::names("degr", m),
                "prometheus-1",
                STEP * 30,
            )
            .await?;
        let slowdown = (degraded.as_secs_f64() / baseline.as_secs_f64().max(1e-9) - 1.0) * 100.0;
        figures.push(Figure::new(
            S6,
            &format!("{m} stacks on prometheus-1, all up"),
            baseline.as_secs_f64(),
            "s",
        ));
        figures.push(Figure::new(
            S6,
            &format!("{m} stacks on prometheus-1, prometheus-2 down"),
            degraded.as_secs_f64(),
            "s",
        ));
        let mut slow = Figure::new(S6, "slowdown", slowdown, "%").goal(Goal::AtMost(10.0));
        if !noticed {
            slow = slow.note(
                "the stacks on prometheus-2 still said Ready a minute after its API server stopped",
            );
        }
        figures.push(slow);
        anyhow::Ok(())
    }
    .await;
    let shutdown = bed.shutdown().await;
    result.and(shutdown)
}
