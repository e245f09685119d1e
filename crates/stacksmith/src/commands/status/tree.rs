//! The aggregated status of stacks as a tree (stack → cluster → child) and as data: pure, no
//! client, no clock (the current time is passed in).
//!
//! The root cause is the child (or cluster) the stack's `Ready` message names: the aggregation
//! (`stacksmith_core::aggregate`) writes `<Kind> <namespace>/<name> on <cluster>: …`,
//! `… (on <cluster>)` or `cluster <name> unreachable: …`, and this module finds the line it
//! names. The unit tests below feed it the aggregation's real output, so the two cannot drift
//! apart unnoticed.

use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::Serialize;
use stacksmith_api::{ChildStatus, CustomerStackStatus, Verdict};
use stacksmith_core::aggregate::{condition_type, reason};

/// Where a stack's status comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// What the operator last wrote on the hub.
    Hub,
    /// Judged now from the member clusters.
    Live,
}

/// One stack to show.
#[derive(Clone, Debug)]
pub struct StackView {
    /// Its namespace on the hub.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its `metadata.generation`.
    pub generation: Option<i64>,
    /// Whether it is being deleted.
    pub deleting: bool,
    /// Its status (`None` before the operator's first pass).
    pub status: Option<CustomerStackStatus>,
    /// Where the status comes from.
    pub source: Source,
    /// Something the reader must know about this view (e.g. why the live view fell back).
    pub note: Option<String>,
}

/// Where in the tree the stack's root cause (`status.rootCause`) is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCause {
    /// Ready, or no status: nothing to point at.
    None,
    /// The stack itself (invalid spec, no children, deletion, a foreign namespace).
    Stack,
    /// A member cluster (unreachable).
    Cluster(String),
    /// A child: its index in `status.children`.
    Child(usize),
}

impl StackView {
    /// The `Ready` condition, if any.
    pub fn ready_condition(&self) -> Option<&Condition> {
        ready_condition(self.status.as_ref()?)
    }

    /// `(observedGeneration, generation)` when the status describes an older spec.
    pub fn stale(&self) -> Option<(i64, i64)> {
        let generation = self.generation?;
        let observed = self.status.as_ref()?.observed_generation.unwrap_or(0);
        (observed < generation).then_some((observed, generation))
    }

    /// Ready: `Ready=True` at the current generation.
    pub fn is_ready(&self) -> bool {
        self.stale().is_none() && self.ready_condition().is_some_and(|c| c.status == "True")
    }

    /// Where the stack's root cause is.
    pub fn root_cause(&self) -> RootCause {
        self.status.as_ref().map_or(RootCause::None, root_cause)
    }
}

fn ready_condition(status: &CustomerStackStatus) -> Option<&Condition> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == condition_type::READY)
}

/// `Kind namespace/name` (`Kind name` when cluster-scoped): how the aggregation names a child.
fn subject(child: &ChildStatus) -> String {
    if child.namespace.is_empty() {
        format!("{} {}", child.kind, child.name)
    } else {
        format!("{} {}/{}", child.kind, child.namespace, child.name)
    }
}

/// The root cause `status.rootCause` names, located in the status: a child (by its index in
/// `status.children`), a cluster, or the stack itself. A status without `rootCause` (Ready, or
/// written by an operator too old to write it) points at nothing.
pub fn root_cause(status: &CustomerStackStatus) -> RootCause {
    let ready = ready_condition(status).is_some_and(|c| c.status == "True");
    let Some(cause) = status.root_cause.as_ref().filter(|_| !ready) else {
        return RootCause::None;
    };
    if !cause.kind.is_empty() {
        let child = status.children.iter().position(|c| {
            c.cluster == cause.cluster
                && c.kind == cause.kind
                && c.namespace == cause.namespace
                && c.name == cause.name
        });
        if let Some(index) = child {
            return RootCause::Child(index);
        }
    }
    let cluster_listed = status.children.iter().any(|c| c.cluster == cause.cluster);
    if cause.kind.is_empty() && !cause.cluster.is_empty() && cluster_listed {
        return RootCause::Cluster(cause.cluster.clone());
    }
    RootCause::Stack
}

/// An age the way kubectl prints one (`45s`, `3m12s`, `2h`, `4d`).
pub fn human_age(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    let seconds = seconds.max(0);
    let minutes = seconds / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    let years = days / 365;
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if days < 365 * 8 {
        match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        }
    } else {
        format!("{years}y")
    }
}

fn age(time: Option<&Time>, now: &Time) -> String {
    time.map_or_else(
        || "-".to_owned(),
        |t| human_age(now.0.as_second() - t.0.as_second()),
    )
}

/// Colours (ANSI SGR), or none.
#[derive(Clone, Copy, Debug)]
enum Paint {
    Green,
    Yellow,
    Red,
    Magenta,
    Dim,
    /// Bold red: the root cause.
    Alarm,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Green => "32",
            Paint::Yellow => "33",
            Paint::Red => "31",
            Paint::Magenta => "35",
            Paint::Dim => "2",
            Paint::Alarm => "1;31",
        }
    }
}

fn verdict_paint(verdict: Verdict) -> Paint {
    match verdict {
        Verdict::Healthy => Paint::Green,
        Verdict::Progressing | Verdict::Suspended => Paint::Yellow,
        Verdict::Degraded => Paint::Red,
        Verdict::Unknown => Paint::Magenta,
    }
}

/// The marker at the end of the root cause's line.
pub const ROOT_CAUSE_MARKER: &str = "← root cause";

/// One line of the table before padding: plain text, the colours applied at the end.
struct Row {
    tree: String,
    label: String,
    verdict: String,
    verdict_paint: Option<Paint>,
    reason: String,
    age: String,
    message: String,
    root_cause: bool,
}

enum Line {
    Row(Row),
    /// A line outside the columns (a note under a stack).
    Note(String, Paint),
    Blank,
}

/// Renders `stacks` as a tree: a header, then per stack its line, its clusters and their
/// children, with the root cause marked. ANSI colours only when `color` is true.
pub fn render_tree(stacks: &[StackView], now: &Time, color: bool) -> String {
    let mut lines = Vec::new();
    for (i, stack) in stacks.iter().enumerate() {
        if i > 0 {
            lines.push(Line::Blank);
        }
        stack_lines(stack, now, &mut lines);
    }
    let header = Row {
        tree: String::new(),
        label: "STACK / CLUSTER / CHILD".to_owned(),
        verdict: "VERDICT".to_owned(),
        verdict_paint: None,
        reason: "REASON".to_owned(),
        age: "AGE".to_owned(),
        message: "MESSAGE".to_owned(),
        root_cause: false,
    };
    let rows = || {
        std::iter::once(&header).chain(lines.iter().filter_map(|l| match l {
            Line::Row(row) => Some(row),
            _ => None,
        }))
    };
    let width = |f: &dyn Fn(&Row) -> usize| rows().map(f).max().unwrap_or(0);
    let label_w = width(&|r| r.tree.chars().count() + r.label.chars().count());
    let verdict_w = width(&|r| r.verdict.chars().count());
    let reason_w = width(&|r| r.reason.chars().count());
    let age_w = width(&|r| r.age.chars().count());
    let paint = |text: &str, paint: Option<Paint>| match paint {
        Some(p) if color && !text.is_empty() => format!("\x1b[{}m{text}\x1b[0m", p.code()),
        _ => text.to_owned(),
    };
    let pad = |text: &str, w: usize| " ".repeat(w.saturating_sub(text.chars().count()));
    let mut out = String::new();
    let format_row = |row: &Row| -> String {
        let alarm = row.root_cause.then_some(Paint::Alarm);
        let label_pad = pad(&row.label, label_w.saturating_sub(row.tree.chars().count()));
        let mut line = format!(
            "{}{}{label_pad}  {}{}  {}{}  {}{}  ",
            paint(&row.tree, Some(Paint::Dim)),
            paint(&row.label, alarm),
            paint(&row.verdict, alarm.or(row.verdict_paint)),
            pad(&row.verdict, verdict_w),
            paint(&row.reason, alarm),
            pad(&row.reason, reason_w),
            pad(&row.age, age_w),
            row.age,
        );
        line.push_str(&paint(&row.message, alarm));
        if row.root_cause {
            line.push_str("  ");
            line.push_str(&paint(ROOT_CAUSE_MARKER, alarm));
        }
        line.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", format_row(&header));
    for line in &lines {
        match line {
            Line::Row(row) => {
                let _ = writeln!(out, "{}", format_row(row));
            }
            Line::Note(text, p) => {
                let _ = writeln!(out, "{}", paint(text, Some(*p)));
            }
            Line::Blank => out.push('\n'),
        }
    }
    out
}

fn stack_lines(stack: &StackView, now: &Time, lines: &mut Vec<Line>) {
    let root = stack.root_cause();
    let label = format!("{}/{}", stack.namespace, stack.name);
    let Some(status) = stack.status.as_ref() else {
        lines.push(Line::Row(no_status_row(label)));
        push_notes(stack, lines);
        return;
    };
    lines.push(Line::Row(stack_row(status, label, &root, now)));
    push_notes(stack, lines);
    let clusters = clusters_in_order(status);
    for (c, cluster) in clusters.iter().enumerate() {
        let last_cluster = c + 1 == clusters.len();
        cluster_lines(status, cluster, last_cluster, &root, now, lines);
    }
}

/// The line of a stack the operator has not reconciled yet.
fn no_status_row(label: String) -> Row {
    Row {
        tree: String::new(),
        label,
        verdict: "Unknown".to_owned(),
        verdict_paint: Some(Paint::Magenta),
        reason: "NoStatus".to_owned(),
        age: "-".to_owned(),
        message: "no status yet: the operator has not reconciled this stack".to_owned(),
        root_cause: false,
    }
}

/// The stack's own line: its `Ready` condition, with the children's counts after its label.
fn stack_row(status: &CustomerStackStatus, label: String, root: &RootCause, now: &Time) -> Row {
    let ready = ready_condition(status);
    let (verdict, paint) = match ready.map(|c| c.status.as_str()) {
        Some("True") => ("Ready", Paint::Green),
        Some("False") => ("NotReady", Paint::Red),
        _ => ("Unknown", Paint::Magenta),
    };
    let label = match &status.children_ready {
        Some(counts) => format!("{label} ({counts})"),
        None => label,
    };
    Row {
        tree: String::new(),
        label,
        verdict: verdict.to_owned(),
        verdict_paint: Some(paint),
        reason: ready.map(|c| c.reason.clone()).unwrap_or_default(),
        age: age(ready.map(|c| &c.last_transition_time), now),
        message: ready.map(|c| c.message.clone()).unwrap_or_default(),
        root_cause: *root == RootCause::Stack,
    }
}

/// The clusters of the children, in the order they first appear.
fn clusters_in_order(status: &CustomerStackStatus) -> Vec<&str> {
    let mut clusters: Vec<&str> = Vec::new();
    for child in &status.children {
        if !clusters.contains(&child.cluster.as_str()) {
            clusters.push(&child.cluster);
        }
    }
    clusters
}

/// A cluster's line, then the lines of its children.
fn cluster_lines(
    status: &CustomerStackStatus,
    cluster: &str,
    last_cluster: bool,
    root: &RootCause,
    now: &Time,
    lines: &mut Vec<Line>,
) {
    let children: Vec<(usize, &ChildStatus)> = status
        .children
        .iter()
        .enumerate()
        .filter(|(_, child)| child.cluster == cluster)
        .collect();
    lines.push(Line::Row(cluster_row(
        cluster,
        &children,
        last_cluster,
        root,
    )));
    for (k, (index, child)) in children.iter().enumerate() {
        let last_child = k + 1 == children.len();
        let tree = format!(
            "{}{}",
            if last_cluster { "   " } else { "│  " },
            if last_child { "└─ " } else { "├─ " }
        );
        let root_cause = *root == RootCause::Child(*index);
        lines.push(Line::Row(child_row(child, tree, root_cause, now)));
    }
}

/// A cluster's line: reachable or not, and how many of its children are healthy.
fn cluster_row(
    cluster: &str,
    children: &[(usize, &ChildStatus)],
    last_cluster: bool,
    root: &RootCause,
) -> Row {
    let unreachable = children
        .iter()
        .all(|(_, child)| child.reason == reason::CLUSTER_UNREACHABLE);
    let healthy = children
        .iter()
        .filter(|(_, child)| child.verdict == Verdict::Healthy)
        .count();
    Row {
        tree: if last_cluster { "└─ " } else { "├─ " }.to_owned(),
        label: cluster.to_owned(),
        verdict: if unreachable {
            "Unreachable"
        } else {
            "Reachable"
        }
        .to_owned(),
        verdict_paint: Some(if unreachable {
            Paint::Magenta
        } else {
            Paint::Green
        }),
        reason: if unreachable {
            reason::CLUSTER_UNREACHABLE.to_owned()
        } else {
            String::new()
        },
        age: String::new(),
        message: format!("{healthy}/{} children Healthy", children.len()),
        root_cause: *root == RootCause::Cluster(cluster.to_owned()),
    }
}

/// A child's line; an `Unknown` verdict says what it was last known to be.
fn child_row(child: &ChildStatus, tree: String, root_cause: bool, now: &Time) -> Row {
    let verdict = match child.last_known_verdict {
        Some(known) if child.verdict == Verdict::Unknown => {
            format!("Unknown (was {})", known.as_str())
        }
        _ => child.verdict.as_str().to_owned(),
    };
    Row {
        tree,
        label: subject(child),
        verdict,
        verdict_paint: Some(verdict_paint(child.verdict)),
        reason: child.reason.clone(),
        age: age(child.last_observed.as_ref(), now),
        message: child.message.clone(),
        root_cause,
    }
}

fn push_notes(stack: &StackView, lines: &mut Vec<Line>) {
    if let Some((observed, generation)) = stack.stale() {
        lines.push(Line::Note(
            format!(
                "   STALE: this status describes generation {observed}; the spec is at generation {generation} (not reconciled yet)"
            ),
            Paint::Yellow,
        ));
    }
    if stack.deleting {
        lines.push(Line::Note("   being deleted".to_owned(), Paint::Yellow));
    }
    if let Some(note) = &stack.note {
        lines.push(Line::Note(format!("   {note}"), Paint::Yellow));
    }
}

/// A root cause as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootCauseData {
    /// The member cluster (absent when the stack itself is the cause).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The child's kind (absent for a stack or cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The child's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The child's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One stack as data (`-o json` / `-o yaml`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StackData<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// `metadata.generation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Hub or live.
    pub source: Source,
    /// `Ready=True` at the current generation.
    pub ready: bool,
    /// The status describes an older generation.
    pub stale: bool,
    /// Being deleted.
    pub deleting: bool,
    /// What the `Ready` message names (absent when Ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<RootCauseData>,
    /// A note about this view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'a str>,
    /// The status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'a CustomerStackStatus>,
}

/// Every stack as data: `{"stacks": [...]}`.
#[derive(Clone, Debug, Serialize)]
pub struct StatusData<'a> {
    /// The stacks, in the order shown.
    pub stacks: Vec<StackData<'a>>,
}

/// The data of `stacks`.
pub fn data(stacks: &[StackView]) -> StatusData<'_> {
    StatusData {
        stacks: stacks
            .iter()
            .map(|stack| {
                let status = stack.status.as_ref();
                let root_cause = match stack.root_cause() {
                    RootCause::None => None,
                    RootCause::Stack => Some(RootCauseData {
                        cluster: None,
                        kind: None,
                        namespace: None,
                        name: None,
                    }),
                    RootCause::Cluster(cluster) => Some(RootCauseData {
                        cluster: Some(cluster),
                        kind: None,
                        namespace: None,
                        name: None,
                    }),
                    RootCause::Child(index) => {
                        status
                            .and_then(|s| s.children.get(index))
                            .map(|child| RootCauseData {
                                cluster: Some(child.cluster.clone()),
                                kind: Some(child.kind.clone()),
                                namespace: Some(child.namespace.clone())
                                    .filter(|ns| !ns.is_empty()),
                                name: Some(child.name.clone()),
                            })
                    }
                };
                StackData {
                    namespace: &stack.namespace,
                    name: &stack.name,
                    generation: stack.generation,
                    source: stack.source,
                    ready: stack.is_ready(),
                    stale: stack.stale().is_some(),
                    deleting: stack.deleting,
                    root_cause,
                    note: stack.note.as_deref(),
                    status,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
