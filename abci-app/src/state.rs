//! Typed access to state: a [`StateDelta`] reads through its own pending
//! writes to the committed store and records every change in a [`WriteSet`].
//! Blocks, proposals and the mempool each work on their own delta.

use std::sync::Arc;

use prost::Message;
use seqnet_proto::{pb, Address, RollupId};

use crate::keys;
use crate::store::{Cf, Store, StoreError, WriteSet};

pub struct StateDelta {
    store: Arc<Store>,
    writes: WriteSet,
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

impl StateDelta {
    pub fn new(store: Arc<Store>) -> StateDelta {
        StateDelta {
            store,
            writes: WriteSet::default(),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(cf, key) {
            Some(value) => Ok(value.cloned()),
            None => self.store.get(cf, key),
        }
    }

    /// The account, or a zero account if it never received anything.
    pub fn account(&self, address: &Address) -> Result<pb::Account, StoreError> {
        match self.get(Cf::Accounts, &keys::account(address))? {
            Some(bytes) => decode("account", &bytes),
            None => Ok(pb::Account {
                address: address.0.to_vec(),
                balance: 0,
                nonce: 0,
                mempool_nonce: 0,
            }),
        }
    }

    pub fn put_account(&mut self, account: &pb::Account) {
        let key = match Address::from_slice(&account.address) {
            Some(address) => keys::account(&address),
            None => account.address.clone(),
        };
        self.writes.put(Cf::Accounts, key, account.encode_to_vec());
    }

    pub fn rollup(&self, id: RollupId) -> Result<Option<pb::Rollup>, StoreError> {
        self.get(Cf::Rollups, &keys::rollup(id))?
            .map(|bytes| decode("rollup", &bytes))
            .transpose()
    }

    pub fn put_rollup(&mut self, rollup: &pb::Rollup) {
        self.writes
            .put(Cf::Rollups, keys::rollup(rollup.id), rollup.encode_to_vec());
    }

    pub fn put_batch(&mut self, batch: &pb::Batch) {
        self.writes.put(
            Cf::Batches,
            keys::batch(batch.rollup_id, batch.height),
            batch.encode_to_vec(),
        );
    }

    pub fn fee_pool(&self) -> Result<u64, StoreError> {
        Ok(self
            .get(Cf::Meta, keys::META_FEE_POOL)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    pub fn put_fee_pool(&mut self, value: u64) {
        self.writes.put(
            Cf::Meta,
            keys::META_FEE_POOL.to_vec(),
            value.to_be_bytes().to_vec(),
        );
    }

    pub fn forced_queue(&self) -> Result<pb::ForcedQueue, StoreError> {
        Ok(match self.get(Cf::Meta, keys::META_FORCED_QUEUE)? {
            Some(bytes) => decode("forced queue", &bytes)?,
            None => pb::ForcedQueue {
                pending: vec![],
                next_id: 1,
            },
        })
    }

    pub fn put_forced_queue(&mut self, queue: &pb::ForcedQueue) {
        self.writes.put(
            Cf::Meta,
            keys::META_FORCED_QUEUE.to_vec(),
            queue.encode_to_vec(),
        );
    }

    pub fn forced_by_hash(&self, hash: &[u8; 32]) -> Result<Option<pb::ForcedRequest>, StoreError> {
        let Some(id) = self.get(Cf::Forced, &keys::forced_by_hash(hash))? else {
            return Ok(None);
        };
        let id = <[u8; 8]>::try_from(id.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt {
                what: "forced index",
                detail: format!("id of {} bytes", id.len()),
            })?;
        self.get(Cf::Forced, &keys::forced_request(id))?
            .map(|b| decode("forced request", &b))
            .transpose()
    }

    /// Writes a request's latest status and its hash index.
    pub fn put_forced(&mut self, request: &pb::ForcedRequest) {
        self.writes.put(
            Cf::Forced,
            keys::forced_request(request.id),
            request.encode_to_vec(),
        );
        if let Ok(hash) = <[u8; 32]>::try_from(request.tx_hash.as_slice()) {
            self.writes.put(
                Cf::Forced,
                keys::forced_by_hash(&hash),
                request.id.to_be_bytes().to_vec(),
            );
        }
    }

    pub fn put_meta(&mut self, key: &[u8], value: Vec<u8>) {
        self.writes.put(Cf::Meta, key.to_vec(), value);
    }

    pub fn put_raw(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.writes.put(cf, key, value);
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
