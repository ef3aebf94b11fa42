//! Quotas and where the service reads them: a [`QuotaSource`] its host provides
//! (`state serve`'s client list), asked when a write needs the client's quota.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

/// Limits on what one client may store. `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Most live records the client's bucket may hold.
    pub max_records: Option<u64>,
    /// Most bytes of keys plus values the client's bucket may hold.
    pub max_bytes: Option<u64>,
    /// Largest value the client may write, in bytes (the store's own maximum
    /// applies too).
    pub max_value_size: Option<u64>,
}

impl Quota {
    /// Whether the quota limits anything.
    pub fn is_unlimited(&self) -> bool {
        self.max_records.is_none() && self.max_bytes.is_none() && self.max_value_size.is_none()
    }

    /// Each limit of this quota, or `fallback`'s where this one sets none.
    pub fn or(self, fallback: Quota) -> Quota {
        Quota {
            max_records: self.max_records.or(fallback.max_records),
            max_bytes: self.max_bytes.or(fallback.max_bytes),
            max_value_size: self.max_value_size.or(fallback.max_value_size),
        }
    }
}

/// Where the service reads each client's quota. The service asks when a write
/// needs it (so a change in the source applies to the next write), never caches
/// it, and never writes to it.
pub trait QuotaSource: Send + Sync + std::fmt::Debug {
    /// `client`'s quota now ([`Quota::default`]: unlimited).
    fn quota(&self, client: &str) -> Quota;

    /// Whether any client may have a quota now. `false` lets every write skip the
    /// quota check and its lookup; the default is `true` (always look).
    fn limits_anyone(&self) -> bool {
        true
    }
}

/// No quotas: the source of a service made with [`crate::StateService::new`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

impl QuotaSource for Unlimited {
    fn quota(&self, _: &str) -> Quota {
        Quota::default()
    }

    fn limits_anyone(&self) -> bool {
        false
    }
}

/// A table of quotas set in code, for embedders without a client list of their
/// own (and tests).
#[derive(Debug, Default)]
pub struct QuotaTable {
    quotas: RwLock<HashMap<String, Quota>>,
    /// How many entries limit something: while none does, writes skip the table.
    limited: AtomicUsize,
}

impl QuotaTable {
    /// An empty table: everyone unlimited.
    pub fn new() -> QuotaTable {
        QuotaTable::default()
    }

    /// Sets `client`'s quota.
    pub fn set(&self, client: &str, quota: Quota) {
        let mut map = self.quotas.write();
        let old = map.insert(client.to_string(), quota).unwrap_or_default();
        // Counted under the map's lock, so the count always matches the map.
        match (old.is_unlimited(), quota.is_unlimited()) {
            (true, false) => {
                self.limited.fetch_add(1, Ordering::Release);
            }
            (false, true) => {
                self.limited.fetch_sub(1, Ordering::Release);
            }
            _ => {}
        }
    }
}

impl QuotaSource for QuotaTable {
    fn quota(&self, client: &str) -> Quota {
        self.quotas.read().get(client).copied().unwrap_or_default()
    }

    fn limits_anyone(&self) -> bool {
        self.limited.load(Ordering::Acquire) > 0
    }
}

impl<T: QuotaSource + ?Sized> QuotaSource for std::sync::Arc<T> {
    fn quota(&self, client: &str) -> Quota {
        (**self).quota(client)
    }

    fn limits_anyone(&self) -> bool {
        (**self).limits_anyone()
    }
}
