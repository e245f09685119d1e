//! Where a stack's inventory is kept between passes: in its status (which survives restarts),
//! and in memory for the moments between a pass and the hub watch delivering the status it
//! wrote (a pass reading a status older than its own last write must not forget an object it
//! just created).

use std::collections::HashMap;
use std::sync::Mutex;

use stacksmith_api::CustomerStack;
use stacksmith_core::inventory::Inventory;

/// The last inventory each stack's pass decided, by stack uid.
#[derive(Debug, Default)]
pub(super) struct Inventories {
    latest: Mutex<HashMap<String, Inventory>>,
}

impl Inventories {
    /// The stack's inventory: what this process last decided for it, otherwise what its status
    /// records. Once the status shows what was decided, the copy kept here is dropped: the
    /// status (in the hub cache) holds it, and a copy per stack would double its memory.
    pub(super) fn of(&self, stack: &CustomerStack, uid: &str) -> Inventory {
        let recorded =
            Inventory::from_entries(stack.status.as_ref().map_or(&[][..], |s| &s.inventory));
        let mut latest = crate::locks::lock(&self.latest);
        match latest.get(uid) {
            Some(kept) if *kept == recorded => {
                latest.remove(uid);
                recorded
            }
            Some(kept) => kept.clone(),
            None => recorded,
        }
    }

    /// Keeps what a pass decided (its status write carries it to the hub).
    pub(super) fn keep(&self, uid: &str, inventory: &Inventory) {
        crate::locks::lock(&self.latest).insert(uid.to_owned(), inventory.clone());
    }

    /// Forgets a stack that is gone.
    pub(super) fn release(&self, uid: &str) {
        crate::locks::lock(&self.latest).remove(uid);
    }
}
