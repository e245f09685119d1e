//! How many reconciles may write to one member at once, and what happens once its writes stop
//! being answered.
//!
//! A member whose writes hang (a stuck admission webhook, an overloaded API server) holds every
//! reconcile that writes to it for a request timeout per write. Without a bound, the stacks of
//! that one member would take every reconcile slot, and stacks on healthy members would wait.
//! So each member has a gate:
//!
//! - at most `slots` reconciles write to it at once (by default half the reconcile slots); a
//!   reconcile that finds them all taken waits [`ENTRY_WAIT`] at most, then leaves this member's
//!   objects unwritten for the pass and looks again later;
//! - once a write to it got no answer within its request timeout, the member's writes are
//!   "timing out": one reconcile at a time tries (the trial), the others leave its objects
//!   unwritten at once, until a write is answered again.
//!
//! A pass also stops writing to a member at its first write that got no answer (see
//! `reconcile::write`), so a stack holds its slot for one request timeout, not one per object.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a reconcile waits for a write slot of a member before leaving that member's objects
/// for a later pass.
pub const ENTRY_WAIT: Duration = Duration::from_secs(1);

/// The write gate of one member.
#[derive(Debug)]
pub struct WriteGate {
    member: String,
    slots: Arc<Semaphore>,
    size: usize,
    trial: Arc<Semaphore>,
    /// While the member's writes time out: what the last one that did said.
    timing_out: Mutex<Option<String>>,
}

/// Why a reconcile may not write to a member in this pass (the text is shown in the status).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Held {
    /// Every write slot of the member is taken.
    #[error("{size} reconciles are writing to {member} already; looked at again shortly")]
    Busy {
        /// The member.
        member: String,
        /// How many may write at once.
        size: usize,
    },
    /// The member's writes time out, and another reconcile is trying one.
    #[error("writes to {member} are not answered ({why}); one stack at a time tries")]
    TimingOut {
        /// The member.
        member: String,
        /// What the last write that timed out said.
        why: String,
    },
}

/// Leave to write to a member for one pass; the slot is given back when it is dropped.
#[derive(Debug)]
pub struct WritePass {
    _slot: OwnedSemaphorePermit,
    _trial: Option<OwnedSemaphorePermit>,
}

impl WriteGate {
    /// A gate letting `slots` reconciles (at least one) write to `member` at once.
    pub fn new(member: &str, slots: usize) -> Self {
        let size = slots.max(1);
        WriteGate {
            member: member.to_owned(),
            slots: Arc::new(Semaphore::new(size)),
            size,
            trial: Arc::new(Semaphore::new(1)),
            timing_out: Mutex::new(None),
        }
    }

    /// Enters the gate for one pass: at once while the member's writes time out (the trial, or
    /// [`Held::TimingOut`]), else waiting at most `wait` for a slot ([`Held::Busy`]).
    pub async fn enter(&self, wait: Duration) -> Result<WritePass, Held> {
        let trial = match self.timing_out() {
            None => None,
            Some(why) => match Arc::clone(&self.trial).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    return Err(Held::TimingOut {
                        member: self.member.clone(),
                        why,
                    });
                }
            },
        };
        let slot = match tokio::time::timeout(wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            // Never closed; and a full gate is what `Busy` says.
            Ok(Err(_)) | Err(_) => {
                return Err(Held::Busy {
                    member: self.member.clone(),
                    size: self.size,
                });
            }
        };
        Ok(WritePass {
            _slot: slot,
            _trial: trial,
        })
    }

    /// A write to the member got no answer within its timeout (`why` says so).
    pub fn timed_out(&self, why: &str) {
        let mut timing_out = crate::locks::lock(&self.timing_out);
        if timing_out.is_none() {
            tracing::warn!(member = %self.member, %why, "writes to the member are not answered: one stack at a time tries until one is");
        }
        *timing_out = Some(why.to_owned());
    }

    /// A write to the member was answered (whatever the answer).
    pub fn answered(&self) {
        let mut timing_out = crate::locks::lock(&self.timing_out);
        if timing_out.take().is_some() {
            tracing::info!(member = %self.member, "writes to the member are answered again");
        }
    }

    /// What the last write that timed out said, while the member's writes time out.
    pub fn timing_out(&self) -> Option<String> {
        crate::locks::lock(&self.timing_out).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_WAIT: Duration = Duration::from_millis(10);

    #[tokio::test]
    async fn at_most_the_slots_write_at_once_and_a_slot_is_given_back() {
        let gate = WriteGate::new("m", 2);
        let first = gate.enter(NO_WAIT).await.expect("first");
        let _second = gate.enter(NO_WAIT).await.expect("second");
        assert_eq!(
            gate.enter(NO_WAIT).await.unwrap_err(),
            Held::Busy {
                member: "m".into(),
                size: 2
            }
        );
        drop(first);
        assert!(gate.enter(NO_WAIT).await.is_ok(), "a slot is given back");
    }

    #[tokio::test]
    async fn once_writes_time_out_one_pass_at_a_time_tries_until_one_is_answered() {
        let gate = WriteGate::new("m", 8);
        gate.timed_out("no answer within 10 s");
        let trial = gate.enter(NO_WAIT).await.expect("the trial");
        let held = gate.enter(NO_WAIT).await.unwrap_err();
        assert_eq!(
            held,
            Held::TimingOut {
                member: "m".into(),
                why: "no answer within 10 s".into()
            }
        );
        assert_eq!(
            held.to_string(),
            "writes to m are not answered (no answer within 10 s); one stack at a time tries"
        );
        drop(trial);
        let _next_trial = gate.enter(NO_WAIT).await.expect("the next trial");
        gate.answered();
        assert_eq!(gate.timing_out(), None);
        assert!(
            gate.enter(NO_WAIT).await.is_ok(),
            "answered again: every slot is open"
        );
    }

    #[test]
    fn a_gate_has_at_least_one_slot() {
        assert_eq!(WriteGate::new("m", 0).size, 1);
    }
}
