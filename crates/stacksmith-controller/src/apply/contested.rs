//! Fields fought over: another writer keeps changing an object stacksmith restores.
//!
//! Each correction of a drift (an object of the stack, as planned a moment ago, changed by
//! someone else) is remembered per object (cluster, kind, namespace, name) for
//! [`CONTEST_WINDOW`]. The first correction is made at once, as an ordinary drift. When the same
//! object drifts again within the window after a correction, it is *contested*: the next
//! correction waits 15 s, the one after 30 s, doubling up to 5 min (the curve of a write that
//! keeps failing, [`crate::reconcile::retry_after`]); meanwhile the object is not written. The
//! episode is reported once, when it starts. It ends when the object stays as planned for the
//! window after a correction: then it is forgotten, and a later drift is an ordinary one again.
//!
//! The decision is pure ([`on_drift`], [`on_as_planned`], [`on_plan_written`]); [`Contests`]
//! keeps the memory. Only objects corrected within the window, or contested, are kept: an entry
//! goes once its window has passed, and when its stack is deleted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use stacksmith_core::inventory::ObjectKey;

/// How long after a correction a new drift of the same object makes it contested; and how long
/// a contested object must stay as planned after a correction for the episode to end.
pub const CONTEST_WINDOW: Duration = Duration::from_secs(60);

/// What is remembered of one object's corrections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Memory {
    /// When stacksmith last restored it (or, while a restore was due, found it restored by
    /// someone else).
    pub(crate) corrected_at: Instant,
    /// How many times in a row it drifted again within the window after a correction: 0 for
    /// an ordinary drift, 1 or more while contested.
    pub(crate) strikes: u32,
    /// While contested: when the next correction may be made.
    pub(crate) due: Option<Instant>,
}

/// What to do with an object that drifted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Restore it now.
    Restore,
    /// Leave it as it is for `left`, then restore it.
    Wait {
        /// How long until the next correction.
        left: Duration,
        /// Whether this drift started the contested episode (its one Event is published now).
        started: bool,
    },
}

/// The decision for an object found drifted at `now`, and the memory to keep: for a `Wait`
/// at once, for a `Restore` once the write succeeded (a failed write corrected nothing).
pub(crate) fn on_drift(memory: Option<Memory>, now: Instant) -> (Decision, Memory) {
    let Some(memory) = memory.filter(|m| !expired(m, now)) else {
        let first = Memory {
            corrected_at: now,
            strikes: 0,
            due: None,
        };
        return (Decision::Restore, first);
    };
    match memory.due {
        Some(due) if now < due => {
            let left = due.saturating_duration_since(now);
            let wait = Decision::Wait {
                left,
                started: false,
            };
            (wait, memory)
        }
        Some(_) => (
            Decision::Restore,
            Memory {
                corrected_at: now,
                due: None,
                ..memory
            },
        ),
        // Restored less than a window ago, and changed again: contested.
        None => {
            let strikes = memory.strikes.saturating_add(1);
            let wait = crate::reconcile::retry_after(strikes);
            let decision = Decision::Wait {
                left: wait,
                started: strikes == 1,
            };
            let memory = Memory {
                strikes,
                due: Some(now + wait),
                ..memory
            };
            (decision, memory)
        }
    }
}

/// The memory to keep of an object found as planned at `now` (`None`: forget it, the episode
/// is over). One that someone else put back while a restore was due needs no restore; the
/// window runs from now.
pub(crate) fn on_as_planned(memory: Memory, now: Instant) -> Option<Memory> {
    if expired(&memory, now) {
        return None;
    }
    Some(match memory.due {
        Some(_) => Memory {
            corrected_at: now,
            due: None,
            ..memory
        },
        None => memory,
    })
}

/// The memory to keep of an object written at `now` because the plan changed (written at
/// once, whatever the memory says): it counts as the latest correction, and no restore is due.
pub(crate) fn on_plan_written(memory: Memory, now: Instant) -> Option<Memory> {
    (!expired(&memory, now)).then_some(Memory {
        corrected_at: now,
        due: None,
        ..memory
    })
}

/// Whether the memory says nothing any more: no drift within the window after the last
/// correction, or a restore that was due a window ago and never came (the object is no longer
/// planned, or its stack is gone).
fn expired(memory: &Memory, now: Instant) -> bool {
    let since = memory.due.unwrap_or(memory.corrected_at);
    now.saturating_duration_since(since) >= CONTEST_WINDOW
}

/// Whether the object is in a contested episode.
fn contested(memory: &Memory, now: Instant) -> bool {
    memory.strikes > 0 && !expired(memory, now)
}

/// One remembered object.
#[derive(Clone, Debug)]
struct Entry {
    memory: Memory,
    /// The uid of the stack that wrote it (forgotten with the stack).
    stack_uid: String,
    /// The other writers' field managers, as the API server named them when the episode began.
    managers: Vec<String>,
}

/// The memory of recent corrections, per object.
#[derive(Debug, Default)]
pub(crate) struct Contests {
    objects: Mutex<HashMap<ObjectKey, Entry>>,
}

impl Contests {
    fn with<T>(&self, now: Instant, f: impl FnOnce(&mut HashMap<ObjectKey, Entry>) -> T) -> T {
        let mut objects = crate::locks::lock(&self.objects);
        objects.retain(|_, entry| !expired(&entry.memory, now));
        f(&mut objects)
    }

    /// The decision for `key`, found drifted at `now`, with the memory to keep (see
    /// [`on_drift`]) and the other writers named when the episode began.
    pub(crate) fn drifted(&self, key: &ObjectKey, now: Instant) -> (Decision, Memory, Vec<String>) {
        let entry = self.with(now, |objects| objects.get(key).cloned());
        let (decision, memory) = on_drift(entry.as_ref().map(|e| e.memory), now);
        (
            decision,
            memory,
            entry.map(|e| e.managers).unwrap_or_default(),
        )
    }

    /// Keeps `memory` of `key`, written for the stack `stack_uid`.
    pub(crate) fn keep(
        &self,
        key: &ObjectKey,
        stack_uid: &str,
        memory: Memory,
        managers: Vec<String>,
        now: Instant,
    ) {
        self.with(now, |objects| {
            objects.insert(
                key.clone(),
                Entry {
                    memory,
                    stack_uid: stack_uid.to_owned(),
                    managers,
                },
            )
        });
    }

    /// `key` was found as planned at `now`.
    pub(crate) fn as_planned(&self, key: &ObjectKey, now: Instant) {
        self.update(key, now, on_as_planned);
    }

    /// `key` was written at `now` because the plan changed.
    pub(crate) fn plan_written(&self, key: &ObjectKey, now: Instant) {
        self.update(key, now, on_plan_written);
    }

    fn update(&self, key: &ObjectKey, now: Instant, f: fn(Memory, Instant) -> Option<Memory>) {
        self.with(now, |objects| {
            let Some(entry) = objects.get_mut(key) else {
                return;
            };
            match f(entry.memory, now) {
                Some(memory) => entry.memory = memory,
                None => {
                    objects.remove(key);
                }
            }
        });
    }

    /// Whether `key` is in a contested episode: its restores are reported by the episode's one
    /// Event, not one by one.
    pub(crate) fn is_contested(&self, key: &ObjectKey, now: Instant) -> bool {
        self.with(now, |objects| {
            objects
                .get(key)
                .is_some_and(|entry| contested(&entry.memory, now))
        })
    }

    /// Forgets every object of the stack `stack_uid` (it is being deleted).
    pub(crate) fn forget_stack(&self, stack_uid: &str, now: Instant) {
        self.with(now, |objects| {
            objects.retain(|_, entry| entry.stack_uid != stack_uid);
        });
    }

    /// How many objects are remembered.
    #[cfg(test)]
    fn len(&self, now: Instant) -> usize {
        self.with(now, |objects| objects.len())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use stacksmith_api::CustomerStackStatus;
    use stacksmith_core::ChildKind;
    use stacksmith_core::events::{EventInput, StackEvent, event_reason, stack_events};
    use stacksmith_core::observe::{Contest, NotWrittenReason, WriteOutcome};
    use stacksmith_core::plan::{DesiredObject, ObjectKind};

    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn wait(left: Duration, started: bool) -> Decision {
        Decision::Wait { left, started }
    }

    /// A fight: the object drifts again right after each correction. Returns every decision.
    fn fight(start: Instant, drifts: &[Duration]) -> Vec<Decision> {
        let mut memory = None;
        let mut decisions = Vec::new();
        for at in drifts {
            let now = start + *at;
            let (decision, kept) = on_drift(memory, now);
            memory = Some(kept);
            decisions.push(decision);
        }
        decisions
    }

    #[test]
    fn the_first_drift_is_restored_at_once() {
        let now = Instant::now();
        let (decision, memory) = on_drift(None, now);
        assert_eq!(decision, Decision::Restore);
        assert_eq!(
            memory,
            Memory {
                corrected_at: now,
                strikes: 0,
                due: None
            }
        );
    }

    #[test]
    fn a_second_drift_within_the_window_waits_15_s_and_starts_the_episode() {
        let t0 = Instant::now();
        let (_, restored) = on_drift(None, t0);
        let (decision, memory) = on_drift(Some(restored), t0 + 2 * S);
        assert_eq!(decision, wait(15 * S, true));
        assert_eq!(memory.due, Some(t0 + 17 * S));
        // Looked at again while waiting: the same wait, shorter, and not a new episode.
        let (decision, same) = on_drift(Some(memory), t0 + 10 * S);
        assert_eq!(decision, wait(7 * S, false));
        assert_eq!(same, memory);
        // Due: restored.
        let (decision, restored) = on_drift(Some(memory), t0 + 17 * S);
        assert_eq!(decision, Decision::Restore);
        assert_eq!(
            restored,
            Memory {
                corrected_at: t0 + 17 * S,
                strikes: 1,
                due: None
            }
        );
    }

    #[test]
    fn the_waits_double_up_to_5_min() {
        let t0 = Instant::now();
        let mut memory = None;
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            // Restored (at once the first time, then when due), changed again 1 s later.
            let (decision, restored) = on_drift(memory, now);
            assert_eq!(decision, Decision::Restore);
            now += S;
            let (decision, waiting) = on_drift(Some(restored), now);
            let Decision::Wait { left, started } = decision else {
                unreachable!("a drift 1 s after a correction waits")
            };
            assert_eq!(
                started,
                waits.is_empty(),
                "only the first wait starts the episode"
            );
            waits.push(left.as_secs());
            memory = Some(waiting);
            now += left;
        }
        assert_eq!(waits, [15, 30, 60, 120, 240, 300, 300, 300]);
    }

    #[test]
    fn a_quiet_window_ends_the_episode() {
        let t0 = Instant::now();
        let decisions = fight(t0, &[Duration::ZERO, S * 2, S * 17, S * 18]);
        assert_eq!(
            decisions,
            [
                Decision::Restore,
                wait(15 * S, true),
                Decision::Restore,
                wait(30 * S, false)
            ]
        );
        // Restored at 48 s; as planned at 60 s and still at 108 s: the episode is over.
        let (_, restored) = on_drift(
            Some(Memory {
                corrected_at: t0 + 17 * S,
                strikes: 2,
                due: Some(t0 + 48 * S),
            }),
            t0 + 48 * S,
        );
        let kept = on_as_planned(restored, t0 + 60 * S).map(|m| (m.strikes, m.due));
        assert_eq!(kept, Some((2, None)), "within the window: kept as it is");
        assert_eq!(on_as_planned(restored, t0 + 108 * S), None, "forgotten");
        // A drift after the quiet window is an ordinary one again: restored at once.
        let (decision, memory) = on_drift(Some(restored), t0 + 108 * S);
        assert_eq!(decision, Decision::Restore);
        assert_eq!(memory.strikes, 0);
        // A drift 59 s after a correction still counts.
        let (decision, _) = on_drift(Some(restored), t0 + 106 * S);
        assert_eq!(decision, wait(60 * S, false));
    }

    #[test]
    fn a_plan_change_is_written_at_once_and_an_object_put_back_needs_no_restore() {
        let t0 = Instant::now();
        let waiting = Memory {
            corrected_at: t0,
            strikes: 1,
            due: Some(t0 + 15 * S),
        };
        let written = on_plan_written(waiting, t0 + 5 * S);
        assert_eq!(
            written,
            Some(Memory {
                corrected_at: t0 + 5 * S,
                strikes: 1,
                due: None
            })
        );
        let put_back = on_as_planned(waiting, t0 + 6 * S);
        assert_eq!(
            put_back.map(|m| (m.corrected_at, m.due)),
            Some((t0 + 6 * S, None))
        );
        // A wait whose restore never came (the object left the plan) is forgotten a window on.
        assert_eq!(on_as_planned(waiting, t0 + 75 * S), None);
        assert!(expired(&waiting, t0 + 75 * S));
        assert!(!expired(&waiting, t0 + 74 * S));
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            cluster: "prom-1".into(),
            kind: ObjectKind::Child(ChildKind::Prometheus),
            namespace: "customer-acme".into(),
            name: name.into(),
        }
    }

    #[test]
    fn the_memory_keeps_only_recent_corrections_and_forgets_a_deleted_stack() {
        let contests = Contests::default();
        let t0 = Instant::now();
        for (name, uid) in [("a", "uid-1"), ("b", "uid-1"), ("c", "uid-2")] {
            let (_, memory, _) = contests.drifted(&key(name), t0);
            contests.keep(&key(name), uid, memory, Vec::new(), t0);
        }
        assert_eq!(contests.len(t0), 3);
        // "a" is contested; "b" and "c" were ordinary drifts.
        let (decision, memory, _) = contests.drifted(&key("a"), t0 + S);
        assert_eq!(decision, wait(15 * S, true));
        contests.keep(&key("a"), "uid-1", memory, vec!["fighter".into()], t0 + S);
        assert!(contests.is_contested(&key("a"), t0 + 2 * S));
        assert!(!contests.is_contested(&key("b"), t0 + 2 * S));
        // A window on, only the contested object is left.
        assert_eq!(contests.len(t0 + 61 * S), 1);
        let (decision, _, managers) = contests.drifted(&key("a"), t0 + 61 * S);
        assert_eq!(decision, Decision::Restore);
        assert_eq!(managers, ["fighter"]);
        contests.forget_stack("uid-1", t0 + 62 * S);
        assert_eq!(contests.len(t0 + 62 * S), 0);
    }

    #[test]
    fn as_planned_at_length_forgets() {
        let contests = Contests::default();
        let t0 = Instant::now();
        let (_, memory, _) = contests.drifted(&key("a"), t0);
        contests.keep(&key("a"), "uid-1", memory, Vec::new(), t0);
        contests.as_planned(&key("a"), t0 + 30 * S);
        assert_eq!(contests.len(t0 + 30 * S), 1);
        contests.as_planned(&key("a"), t0 + 60 * S);
        assert_eq!(contests.len(t0 + 60 * S), 0);
    }

    /// A fight as the reconcile sees it: each decision made into the pass's outcome, and the
    /// Events the pass would publish.
    fn events_of(decision: Decision, contested: bool) -> Vec<StackEvent> {
        let desired = DesiredObject {
            cluster: "prom-1".into(),
            kind: ObjectKind::Child(ChildKind::Prometheus),
            namespace: "customer-acme".into(),
            name: "acme".into(),
            manifest: json!({}),
        };
        let outcome = match decision {
            Decision::Restore => WriteOutcome::Updated,
            Decision::Wait { left, started } => WriteOutcome::NotWritten {
                existing: Some(Box::new(json!({}))),
                reason: NotWrittenReason::Contested(Contest {
                    fields: vec!["spec.replicas".into()],
                    managers: vec!["fighter".into()],
                    retry_in: left,
                    started,
                }),
            },
        };
        let status = CustomerStackStatus {
            observed_generation: Some(1),
            ..CustomerStackStatus::default()
        };
        let pass = (desired.clone(), outcome);
        let contested_keys = if contested {
            vec![ObjectKey::of(&desired)]
        } else {
            Vec::new()
        };
        stack_events(&EventInput {
            previous: Some(&status),
            status: &status,
            generation: Some(1),
            outcomes: &[&pass],
            ready_events: true,
            contested: &contested_keys,
        })
    }

    #[test]
    fn an_episode_is_reported_by_exactly_one_event() {
        let t0 = Instant::now();
        let mut memory = None;
        let mut now = t0;
        let mut published: Vec<String> = Vec::new();
        // Two episodes of a fighter that puts its value back 1 s after each restore, five
        // restores each, with a quiet window between them.
        for _ in 0..2 {
            for _ in 0..5 {
                let (decision, kept) = on_drift(memory, now);
                let in_episode = contested(&kept, now);
                published.extend(
                    events_of(decision, in_episode)
                        .into_iter()
                        .map(|e| e.reason),
                );
                memory = Some(kept);
                match decision {
                    Decision::Restore => now += S,
                    Decision::Wait { left, .. } => {
                        // Looked at again half-way: nothing more to say.
                        let (again, kept) = on_drift(memory, now + left / 2);
                        assert!(matches!(again, Decision::Wait { started: false, .. }));
                        let quiet = events_of(again, contested(&kept, now + left / 2));
                        assert!(quiet.is_empty(), "{quiet:?}");
                        now += left;
                    }
                }
            }
            // The fighter stops: as planned for a whole window.
            now += CONTEST_WINDOW;
            memory = memory.and_then(|m| on_as_planned(m, now));
            assert_eq!(memory, None);
        }
        let count = |reason: &str| published.iter().filter(|r| *r == reason).count();
        assert_eq!(count(event_reason::FIELD_CONTESTED), 2, "{published:?}");
        assert_eq!(count(event_reason::DRIFT_CORRECTED), 2, "{published:?}");
        assert_eq!(published.len(), 4, "{published:?}");
    }
}
