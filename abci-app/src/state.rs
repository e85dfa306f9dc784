//! State access: the [`StateRead`] and [`StateWrite`] seams every component's
//! typed accessors are built on, a [`StateDelta`] that reads through its own
//! pending writes to the committed store and records every change in a
//! [`WriteSet`], and [`Committed`], the read-only view of the last committed
//! block that queries use. Blocks, proposals and the mempool each work on
//! their own delta; one read path serves consensus and queries alike.

use std::sync::Arc;

use prost::Message;

use crate::store::{Cf, Store, StoreError, WriteSet};

/// Raw reads of state; components add typed accessors over it (their
/// `*State` extension traits, implemented for every `StateRead`).
pub(crate) trait StateRead {
    /// The value at `key` in `cf`, if any.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The store behind this view (for scans of committed records).
    fn store(&self) -> &Arc<Store>;

    /// A protobuf record at `key`, decoded; `None` when absent.
    fn message<M: Message + Default>(
        &self,
        cf: Cf,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<M>, StoreError>
    where
        Self: Sized,
    {
        self.get(cf, key)?
            .map(|bytes| decode(what, &bytes))
            .transpose()
    }

    /// A protobuf record in `Cf::Meta`, or its default when absent.
    fn meta_message<M: Message + Default>(
        &self,
        key: &[u8],
        what: &'static str,
    ) -> Result<M, StoreError>
    where
        Self: Sized,
    {
        Ok(self.message(Cf::Meta, key, what)?.unwrap_or_default())
    }

    /// A big-endian `u64` in `Cf::Meta`, 0 when absent.
    fn meta_u64(&self, key: &[u8]) -> Result<u64, StoreError> {
        Ok(self
            .get(Cf::Meta, key)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }
}

/// Raw writes of state, recorded for the block's app hash and commit.
pub(crate) trait StateWrite: StateRead {
    fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>);

    fn put_meta(&mut self, key: &[u8], value: Vec<u8>) {
        self.put(Cf::Meta, key.to_vec(), value);
    }

    fn put_meta_u64(&mut self, key: &[u8], value: u64) {
        self.put_meta(key, value.to_be_bytes().to_vec());
    }
}

pub(crate) fn decode<M: Message + Default>(
    what: &'static str,
    bytes: &[u8],
) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

/// Pending changes over the committed store.
pub struct StateDelta {
    store: Arc<Store>,
    writes: WriteSet,
}

impl StateDelta {
    pub fn new(store: Arc<Store>) -> StateDelta {
        StateDelta {
            store,
            writes: WriteSet::default(),
        }
    }

    pub fn writes(&self) -> &WriteSet {
        &self.writes
    }

    pub fn into_writes(self) -> WriteSet {
        self.writes
    }

    /// Forgets every pending write (the mempool does this after each commit).
    pub fn reset(&mut self) {
        self.writes = WriteSet::default();
    }
}

impl StateRead for StateDelta {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(cf, key) {
            Some(value) => Ok(value.cloned()),
            None => self.store.get(cf, key),
        }
    }

    fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

impl StateWrite for StateDelta {
    fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.writes.put(cf, key, value);
    }
}

/// The committed state of the last block: what queries and the node's gRPC
/// services read. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Committed {
    store: Arc<Store>,
}

impl Committed {
    pub(crate) fn new(store: Arc<Store>) -> Committed {
        Committed { store }
    }
}

impl StateRead for Committed {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(cf, key)
    }

    fn store(&self) -> &Arc<Store> {
        &self.store
    }
}
