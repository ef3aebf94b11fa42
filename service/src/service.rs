//! [`StateService`]: the HiveOT state service's per-client API.
//!
//! Each client reaches exactly one bucket, named by its authenticated client id; no
//! method takes a bucket name, so a client can never address another client's state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use state_core::{Bucket, Cursor, Expiry, Store, Txn, Usage};

use crate::clients::Clients;
use crate::error::{Error, Result};
use crate::quota::{Quota, QuotaSource, Unlimited};

/// The state service: per-client buckets over one store, with per-client quotas
/// and server-side cursors. Cheap to clone; clones share quotas and cursors.
#[derive(Debug, Clone)]
pub struct StateService {
    store: Store,
    clients: Arc<Clients>,
    quotas: Arc<dyn QuotaSource>,
}

impl StateService {
    /// A service over `store`, without quotas.
    pub fn new(store: Store) -> StateService {
        StateService {
            store,
            clients: Arc::new(Clients::new()),
            quotas: Arc::new(Unlimited),
        }
    }

    /// This service reading each client's quota from `source` (asked at every
    /// quota-checked write; see [`QuotaSource`]). Writes through the service that
    /// would take a client's bucket over its quota fail with
    /// [`Error::QuotaExceeded`] and write nothing; deletes are always allowed.
    /// Clones made before this call keep their source.
    pub fn with_quotas(mut self, source: Arc<dyn QuotaSource>) -> StateService {
        self.quotas = source;
        self
    }

    /// `client`'s quota now, from the service's source (unlimited without one).
    pub fn quota(&self, client_id: &str) -> Quota {
        if self.quotas.limits_anyone() {
            self.quotas.quota(client_id)
        } else {
            Quota::default()
        }
    }

    /// Sets how long an unused server-side cursor lives (default
    /// [`crate::DEFAULT_CURSOR_LIFESPAN`]) and how many one client may hold (default
    /// [`crate::DEFAULT_MAX_CURSORS`]; at the limit, a new cursor evicts the client's
    /// least recently used one).
    pub fn set_cursor_limits(&self, lifespan: Duration, max_per_client: usize) {
        *self.clients.cursor_lifespan.lock() = lifespan;
        *self.clients.max_cursors.lock() = max_per_client.max(1);
    }

    /// The live records of `client`'s bucket and their key plus value bytes, counted
    /// now (O(records)) without the store's write lock: writers are not held up,
    /// and a count taken while the bucket changes is what a scan saw (each record
    /// counted at most once).
    ///
    /// # Errors
    /// *invalid argument* for a bad client id; store errors.
    pub fn usage(&self, client_id: &str) -> Result<Usage> {
        let mut u = Usage::default();
        self.client(client_id)?.scan(.., false, |k, v| {
            u.records += 1;
            u.bytes += (k.len() + v.len()) as u64;
            std::ops::ControlFlow::Continue(())
        })?;
        Ok(u)
    }

    /// Runs `f` as one atomic transaction on `client`'s bucket (see
    /// [`Bucket::transaction`]), refusing with *quota exceeded* (and writing nothing)
    /// if its changes would take the client over its quota.
    ///
    /// # Errors
    /// Whatever `f` returns; *quota exceeded*; store errors.
    pub fn transaction<T>(
        &self,
        client_id: &str,
        f: impl FnMut(&mut Txn<'_>) -> state_core::Result<T>,
    ) -> Result<T> {
        let bucket = self.client(client_id)?;
        self.transaction_in(&bucket, f)
    }

    /// [`StateService::transaction`] on a client's bucket already at hand (from
    /// [`StateService::client`]): the client is the bucket's name.
    ///
    /// # Errors
    /// As [`StateService::transaction`].
    pub fn transaction_in<T>(
        &self,
        bucket: &Bucket,
        f: impl FnMut(&mut Txn<'_>) -> state_core::Result<T>,
    ) -> Result<T> {
        let client_id = bucket.name();
        let quota = self.quota(client_id);
        // A refusal is the service's error, not the core's: the check keeps it
        // here and hands the core a stand-in that aborts the transaction (a check's
        // error is returned, never retried); the stand-in never leaves this function.
        let mut refused: Option<String> = None;
        let r = bucket.transaction_checked(f, |tx, d| {
            refused = None;
            match self.clients.check(client_id, quota, tx, d) {
                Ok(()) => Ok(()),
                Err(Error::Store(e)) => Err(e),
                Err(Error::QuotaExceeded(why)) => {
                    refused = Some(why);
                    Err(state_core::Error::TooLarge(
                        "over the client's quota".into(),
                    ))
                }
            }
        });
        r.map_err(|e| match refused.take() {
            Some(why) => Error::QuotaExceeded(why),
            None => Error::Store(e),
        })
    }

    /// Removes every record of `client`'s bucket. Returns how many live records it held.
    ///
    /// # Errors
    /// Store errors.
    pub fn clear(&self, client_id: &str) -> Result<u64> {
        let n = self.transaction(client_id, |tx| tx.clear())?;
        self.clients.forget_usage(client_id);
        Ok(n)
    }

    /// Whether `client` writes are quota-checked (a write path may skip the
    /// transaction when not).
    pub fn has_quota(&self, client_id: &str) -> bool {
        !self.quota(client_id).is_unlimited()
    }

    /// Sets `key` for `client` (optionally with a TTL), through the quota check when
    /// the client has a quota.
    ///
    /// # Errors
    /// As [`Bucket::set`]; *quota exceeded*.
    pub fn set(
        &self,
        client_id: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
        if !self.has_quota(client_id) {
            let b = self.client(client_id)?;
            return Ok(match ttl {
                Some(ttl) => b.set_with_ttl(key, value, ttl),
                None => b.set(key, value),
            }?);
        }
        self.transaction(client_id, |tx| {
            let expiry = match ttl {
                Some(ttl) => Expiry::At(state_core::deadline(tx.now_ms(), ttl)?),
                None => Expiry::Never,
            };
            tx.put(key, value.to_vec(), expiry)
        })
    }

    /// Sets several keys for `client` in one atomic batch, through the quota check
    /// when the client has a quota.
    ///
    /// # Errors
    /// As [`Bucket::set_multiple`]; *quota exceeded*.
    pub fn set_multiple(&self, client_id: &str, kv: &BTreeMap<String, Vec<u8>>) -> Result<()> {
        if !self.has_quota(client_id) {
            return Ok(self.client(client_id)?.set_multiple(kv)?);
        }
        self.transaction(client_id, |tx| {
            for (k, v) in kv {
                tx.put(k, v.clone(), Expiry::Never)?;
            }
            Ok(())
        })
    }

    /// A new server-side cursor over `client`'s bucket, positioned before the first
    /// key. Returns its id. The client's least recently used cursor is dropped if it
    /// already holds the maximum.
    ///
    /// # Errors
    /// *invalid argument* for a bad client id; *closed*.
    pub fn open_cursor(&self, client_id: &str) -> Result<u64> {
        let cursor = self.client(client_id)?.cursor()?;
        Ok(self.clients.add_cursor(client_id, cursor, self.now_ms()))
    }

    /// Runs `f` on `client`'s cursor `id`, which stays valid afterwards (its idle
    /// time starts again).
    ///
    /// # Errors
    /// *invalid argument* if there is no such cursor of this client (released,
    /// expired, evicted, or another client's: the message does not say which);
    /// whatever `f` returns.
    pub fn with_cursor<T>(
        &self,
        client_id: &str,
        id: u64,
        f: impl FnOnce(&mut Cursor) -> state_core::Result<T>,
    ) -> Result<T> {
        let mut cursor = self.clients.take_cursor(client_id, id, self.now_ms())?;
        let out = f(&mut cursor);
        self.clients.put_back(client_id, id, cursor, self.now_ms());
        Ok(out?)
    }

    /// Drops `client`'s cursor `id`. Returns whether it existed.
    pub fn release_cursor(&self, client_id: &str, id: u64) -> bool {
        self.clients.release_cursor(client_id, id)
    }

    /// How many server-side cursors `client` holds.
    pub fn cursor_count(&self, client_id: &str) -> usize {
        self.clients.cursor_count(client_id)
    }

    fn now_ms(&self) -> u64 {
        self.store.clock_now_ms()
    }

    /// The store behind the service.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The bucket of client `client_id`: the only bucket that client can reach.
    ///
    /// # Errors
    /// *invalid argument* if the id is not a valid bucket name (empty, over 255 bytes,
    /// control characters).
    pub fn client(&self, client_id: &str) -> Result<Bucket> {
        Ok(self.store.bucket(client_id)?)
    }
}
