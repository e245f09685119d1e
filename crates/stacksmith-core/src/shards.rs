//! Which replica reconciles which stack: shards, the Leases that hold them, and how many each
//! replica takes. Pure: the controller's `leases` module reads and writes the Leases.
//!
//! - A stack's shard is a pure function of its identity ([`shard_of`]): the same on every
//!   replica, across restarts, with no write to record it.
//! - A shard is held through a `coordination.k8s.io` Lease. [`lease_step`] decides, from the
//!   Lease as last seen and how long ago it last changed (by the observer's own clock, so clocks
//!   that disagree between replicas cannot shorten a lease), whether to take it, keep it, give it
//!   back or leave it alone.
//! - [`shards_wanted`] says how many and which shards a replica tries to hold: at most an even
//!   share (rounded up) of the live replicas, never one another live replica holds.
//!
//! Leader election with a warm standby is the case of one shard: its holder reconciles, the
//! others keep their caches filled and write nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The number of shards when nothing says otherwise: one (a leader and warm standbys).
pub const DEFAULT_SHARDS: u16 = 1;
/// The most shards an operator may be configured with.
pub const MAX_SHARDS: u16 = 256;

/// The shard of the stack `namespace/name` among `shards` (0 when `shards` is 0 or 1).
///
/// FNV-1a over the stack's hub identity: stable across processes, versions and platforms
/// (unlike Rust's `DefaultHasher`), and the uid is not used, so a stack re-created under the
/// same name stays where it was.
pub fn shard_of(namespace: &str, name: &str, shards: u16) -> u16 {
    if shards <= 1 {
        return 0;
    }
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = namespace
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(name.bytes())
        .fold(OFFSET, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        });
    u16::try_from(hash % u64::from(shards)).unwrap_or(0)
}

/// A Lease as an observer last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `spec.holderIdentity`; `None` or empty: released.
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds`.
    pub duration: Duration,
    /// How long ago, by the observer's clock, the observer first saw this holder and renewal
    /// (`spec.renewTime`) — not the renewal time itself, which another replica's clock wrote.
    pub unchanged_for: Duration,
}

impl LeaseRecord {
    /// The holder, if the Lease names one that has not let it run out.
    pub fn live_holder(&self) -> Option<&str> {
        match self.holder.as_deref() {
            Some(holder) if !holder.is_empty() && self.unchanged_for < self.duration => {
                Some(holder)
            }
            _ => None,
        }
    }
}

/// What a replica does about one Lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseStep {
    /// Create it (it does not exist) naming this replica.
    Create,
    /// Take it: released, or its holder let it run out.
    Acquire,
    /// It is this replica's: renew it.
    Renew,
    /// It is this replica's and it no longer wants it: give it back.
    Release,
    /// Leave it: another replica holds it, or nobody does and this replica does not want it.
    Leave,
}

/// What replica `me` does about a Lease last seen as `record` (`None`: none exists), wanting to
/// hold it or not.
pub fn lease_step(record: Option<&LeaseRecord>, me: &str, want: bool) -> LeaseStep {
    let Some(record) = record else {
        return if want {
            LeaseStep::Create
        } else {
            LeaseStep::Leave
        };
    };
    if record.holder.as_deref() == Some(me) {
        // Even one that ran out is still recorded as ours: renewing it is taking it back, which
        // nobody else did (they would have written their name).
        return if want {
            LeaseStep::Renew
        } else {
            LeaseStep::Release
        };
    }
    match (record.live_holder(), want) {
        (None, true) => LeaseStep::Acquire,
        _ => LeaseStep::Leave,
    }
}

/// The shards replica `me` tries to hold, given the live replicas (`me` among them or not) and
/// the live holder of each shard that has one.
///
/// Each replica holds at most `ceil(shards / replicas)`: it keeps the lowest of those it holds,
/// gives the rest back, and takes free shards (lowest first) up to that share. A shard another
/// live replica holds is never wanted. One shard and two replicas: whoever holds it keeps it.
pub fn shards_wanted(
    shards: u16,
    replicas: &BTreeSet<String>,
    holders: &BTreeMap<u16, String>,
    me: &str,
) -> BTreeSet<u16> {
    let live = replicas.len() + usize::from(!replicas.contains(me));
    let share = usize::from(shards).div_ceil(live.max(1));
    let mut wanted: BTreeSet<u16> = (0..shards)
        .filter(|shard| holders.get(shard).map(String::as_str) == Some(me))
        .take(share)
        .collect();
    let free = (0..shards).filter(|shard| !holders.contains_key(shard));
    for shard in free {
        if wanted.len() >= share {
            break;
        }
        wanted.insert(shard);
    }
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, unchanged_for: u64) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(str::to_owned),
            duration: Duration::from_secs(15),
            unchanged_for: Duration::from_secs(unchanged_for),
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_stack_keeps_its_shard_and_stacks_spread_over_all_shards() {
        assert_eq!(shard_of("acme", "stack", 1), 0);
        assert_eq!(shard_of("acme", "stack", 0), 0);
        // Stable: a fixed value, so a change of the function shows here.
        assert_eq!(shard_of("acme", "stack", 8), shard_of("acme", "stack", 8));
        assert_ne!(
            (0..64)
                .map(|i| shard_of("t", &format!("s{i}"), 8))
                .collect::<BTreeSet<_>>()
                .len(),
            1
        );
        let spread: BTreeSet<u16> = (0..200)
            .map(|i| shard_of(&format!("tenant-{i}"), "stack", 8))
            .collect();
        assert_eq!(spread, (0..8).collect());
        // The namespace and the name are not interchangeable.
        let swapped = (0..50)
            .filter(|i| shard_of(&format!("a{i}"), "b", 16) != shard_of("b", &format!("a{i}"), 16))
            .count();
        assert!(swapped > 0);
    }

    #[test]
    fn the_fnv_hash_is_the_documented_one() {
        // FNV-1a 64 of "a/b" by the reference algorithm.
        let hash: u64 = 0xe620_c319_0468_cf61;
        assert_eq!(u64::from(shard_of("a", "b", 7)), hash % 7);
        assert_eq!(u64::from(shard_of("a", "b", 100)), hash % 100);
    }

    #[test]
    fn a_lease_is_created_taken_renewed_released_or_left() {
        assert_eq!(lease_step(None, "r1", true), LeaseStep::Create);
        assert_eq!(lease_step(None, "r1", false), LeaseStep::Leave);
        let mine = lease(Some("r1"), 3);
        assert_eq!(lease_step(Some(&mine), "r1", true), LeaseStep::Renew);
        assert_eq!(lease_step(Some(&mine), "r1", false), LeaseStep::Release);
        let theirs = lease(Some("r2"), 3);
        assert_eq!(lease_step(Some(&theirs), "r1", true), LeaseStep::Leave);
        let expired = lease(Some("r2"), 15);
        assert_eq!(lease_step(Some(&expired), "r1", true), LeaseStep::Acquire);
        assert_eq!(lease_step(Some(&expired), "r1", false), LeaseStep::Leave);
        let released = lease(None, 0);
        assert_eq!(lease_step(Some(&released), "r1", true), LeaseStep::Acquire);
        let empty = lease(Some(""), 0);
        assert_eq!(lease_step(Some(&empty), "r1", true), LeaseStep::Acquire);
        // One of ours that ran out is taken back by renewing it.
        let mine_expired = lease(Some("r1"), 20);
        assert_eq!(
            lease_step(Some(&mine_expired), "r1", true),
            LeaseStep::Renew
        );
    }

    #[test]
    fn a_lease_runs_out_by_the_observers_clock() {
        assert_eq!(lease(Some("r2"), 14).live_holder(), Some("r2"));
        assert_eq!(lease(Some("r2"), 15).live_holder(), None);
        assert_eq!(lease(None, 0).live_holder(), None);
    }

    #[test]
    fn one_shard_stays_with_its_holder_and_a_standby_takes_it_when_free() {
        let replicas = set(&["a", "b"]);
        let held_by_b = BTreeMap::from([(0, "b".to_owned())]);
        assert_eq!(
            shards_wanted(1, &replicas, &held_by_b, "b"),
            BTreeSet::from([0])
        );
        assert!(shards_wanted(1, &replicas, &held_by_b, "a").is_empty());
        assert_eq!(
            shards_wanted(1, &replicas, &BTreeMap::new(), "a"),
            BTreeSet::from([0])
        );
    }

    #[test]
    fn a_new_replica_gets_whole_shards_from_one_that_holds_too_many() {
        let all: BTreeMap<u16, String> = (0..6).map(|s| (s, "a".to_owned())).collect();
        // "a" alone holds everything; "b" and "c" come: "a" keeps two, gives back four.
        let replicas = set(&["a", "b", "c"]);
        assert_eq!(
            shards_wanted(6, &replicas, &all, "a"),
            BTreeSet::from([0, 1])
        );
        // While "a" still holds them, the newcomers want none.
        assert!(shards_wanted(6, &replicas, &all, "b").is_empty());
        // Once given back, the first newcomer takes two, and the second the last two.
        let after: BTreeMap<u16, String> = [(0, "a"), (1, "a")]
            .into_iter()
            .map(|(s, r)| (s, r.to_owned()))
            .collect();
        assert_eq!(
            shards_wanted(6, &replicas, &after, "b"),
            BTreeSet::from([2, 3])
        );
        let later: BTreeMap<u16, String> = [(0, "a"), (1, "a"), (2, "b"), (3, "b")]
            .into_iter()
            .map(|(s, r)| (s, r.to_owned()))
            .collect();
        assert_eq!(
            shards_wanted(6, &replicas, &later, "c"),
            BTreeSet::from([4, 5])
        );
    }

    #[test]
    fn a_lost_replicas_shards_are_taken_by_the_survivors() {
        // "c" died: its lease ran out, so its shards have no live holder.
        let holders: BTreeMap<u16, String> = [(0, "a"), (1, "a"), (2, "b"), (3, "b")]
            .into_iter()
            .map(|(s, r)| (s, r.to_owned()))
            .collect();
        let replicas = set(&["a", "b"]);
        assert_eq!(
            shards_wanted(6, &replicas, &holders, "a"),
            BTreeSet::from([0, 1, 4])
        );
        assert_eq!(
            shards_wanted(6, &replicas, &holders, "b"),
            BTreeSet::from([2, 3, 4])
        );
        // Both want shard 4: the Lease's optimistic concurrency lets one of them have it; the
        // other then sees it held and wants shard 5.
        let after: BTreeMap<u16, String> =
            holders.into_iter().chain([(4, "a".to_owned())]).collect();
        assert_eq!(
            shards_wanted(6, &replicas, &after, "b"),
            BTreeSet::from([2, 3, 5])
        );
    }

    #[test]
    fn a_replica_not_yet_counted_counts_itself() {
        assert_eq!(
            shards_wanted(4, &BTreeSet::new(), &BTreeMap::new(), "a"),
            BTreeSet::from([0, 1, 2, 3])
        );
        assert_eq!(
            shards_wanted(4, &set(&["b"]), &BTreeMap::new(), "a"),
            BTreeSet::from([0, 1])
        );
    }
}
