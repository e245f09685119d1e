//! Whether the operator is making progress, for `/healthz`: a reconcile that runs far past the
//! timeout every pass has, or a member supervisor that has not come round its loop for far
//! longer than its longest wait, means something is stuck, and a restart is the remedy a
//! liveness probe gives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a reconcile may run before the operator counts as stalled: twice the whole-pass
/// timeout every reconcile runs under.
pub const RECONCILE_STALL: Duration = Duration::from_secs(240);

/// Progress of the controller and the member supervisors.
#[derive(Clone, Debug, Default)]
pub struct Liveness {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Reconciles running, by stack, and since when.
    reconciles: Mutex<HashMap<String, Instant>>,
    /// Member supervisors, by member: their last turn and how long they may go without one.
    supervisors: Mutex<HashMap<String, (Instant, Duration)>>,
}

/// Ends a reconcile's entry when dropped (whatever way the reconcile ends).
#[derive(Debug)]
pub struct ReconcileRunning {
    liveness: Liveness,
    stack: String,
}

impl Drop for ReconcileRunning {
    fn drop(&mut self) {
        crate::locks::lock(&self.liveness.inner.reconciles).remove(&self.stack);
    }
}

impl Liveness {
    /// A reconcile of `stack` starts now; it ends when the returned guard is dropped.
    pub fn reconcile_started(&self, stack: &str) -> ReconcileRunning {
        crate::locks::lock(&self.inner.reconciles).insert(stack.to_owned(), Instant::now());
        ReconcileRunning {
            liveness: self.clone(),
            stack: stack.to_owned(),
        }
    }

    /// The supervisor of `member` came round its loop; it may take `allowed` until the next turn
    /// (its longest wait plus what its requests may take, from the member's request timeout).
    pub fn supervisor_turned(&self, member: &str, allowed: Duration) {
        crate::locks::lock(&self.inner.supervisors)
            .insert(member.to_owned(), (Instant::now(), allowed));
    }

    /// The supervisor of `member` ended (the member was removed).
    pub fn supervisor_ended(&self, member: &str) {
        crate::locks::lock(&self.inner.supervisors).remove(member);
    }

    /// What is stuck at `now`, if anything (`None`: healthy).
    pub fn stalled(&self, now: Instant) -> Option<String> {
        let reconciles = crate::locks::lock(&self.inner.reconciles).clone();
        let supervisors = crate::locks::lock(&self.inner.supervisors).clone();
        stall(&reconciles, &supervisors, now)
    }
}

/// The stall decision: the oldest reconcile past [`RECONCILE_STALL`], else the most overdue
/// supervisor past what it is allowed.
fn stall(
    reconciles: &HashMap<String, Instant>,
    supervisors: &HashMap<String, (Instant, Duration)>,
    now: Instant,
) -> Option<String> {
    let age = |since: &Instant| now.saturating_duration_since(*since);
    let stuck_reconcile = reconciles
        .iter()
        .map(|(stack, since)| (age(since), stack))
        .filter(|(age, _)| *age > RECONCILE_STALL)
        .max();
    if let Some((age, stack)) = stuck_reconcile {
        return Some(format!(
            "the reconcile of CustomerStack {stack} has run for {} s",
            age.as_secs()
        ));
    }
    supervisors
        .iter()
        .map(|(member, (since, allowed))| (age(since), *allowed, member))
        .filter(|(age, allowed, _)| age > allowed)
        .max()
        .map(|(age, _, member)| {
            format!(
                "the supervisor of member cluster {member} has not moved for {} s",
                age.as_secs()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stuck_reconcile_or_supervisor_is_named_and_a_busy_one_is_not() {
        let now = Instant::now() + Duration::from_secs(3600);
        let ago = |secs| now - Duration::from_secs(secs);
        let reconciles = HashMap::from([("team-a/acme".to_owned(), ago(30))]);
        let allowed = Duration::from_secs(420);
        let supervisors = HashMap::from([("prometheus-1".to_owned(), (ago(300), allowed))]);
        assert_eq!(
            stall(&reconciles, &supervisors, now),
            None,
            "busy, not stuck"
        );
        let stuck = HashMap::from([
            ("team-a/acme".to_owned(), ago(30)),
            ("team-b/globex".to_owned(), ago(600)),
        ]);
        assert_eq!(
            stall(&stuck, &supervisors, now).as_deref(),
            Some("the reconcile of CustomerStack team-b/globex has run for 600 s")
        );
        let late = HashMap::from([("prometheus-2".to_owned(), (ago(1000), allowed))]);
        assert_eq!(
            stall(&reconciles, &late, now).as_deref(),
            Some("the supervisor of member cluster prometheus-2 has not moved for 1000 s")
        );
    }

    #[test]
    fn a_finished_reconcile_leaves_nothing_behind() {
        let liveness = Liveness::default();
        {
            let _running = liveness.reconcile_started("team-a/acme");
            assert_eq!(crate::locks::lock(&liveness.inner.reconciles).len(), 1);
        }
        assert!(crate::locks::lock(&liveness.inner.reconciles).is_empty());
        liveness.supervisor_turned("prometheus-1", Duration::from_secs(1));
        liveness.supervisor_ended("prometheus-1");
        assert_eq!(liveness.stalled(Instant::now()), None);
    }
}
