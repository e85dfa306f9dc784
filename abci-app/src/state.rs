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

    fn meta_message<M: prost::Message + Default>(
        &self,
        key: &[u8],
        what: &'static str,
    ) -> Result<M, StoreError> {
        Ok(match self.get(Cf::Meta, key)? {
            Some(bytes) => decode(what, &bytes)?,
            None => M::default(),
        })
    }

    pub fn prover_registry(&self) -> Result<pb::ProverRegistry, StoreError> {
        self.meta_message(keys::META_PROVERS, "prover registry")
    }

    pub fn put_prover_registry(&mut self, registry: &pb::ProverRegistry) {
        self.put_meta(keys::META_PROVERS, registry.encode_to_vec());
    }

    pub fn prover_set(&self) -> Result<pb::ProverSet, StoreError> {
        self.meta_message(keys::META_PROVER_SET, "prover set")
    }

    pub fn put_prover_set(&mut self, set: &pb::ProverSet) {
        self.put_meta(keys::META_PROVER_SET, set.encode_to_vec());
    }

    pub fn proof_queue(&self) -> Result<pb::ProofQueue, StoreError> {
        self.meta_message(keys::META_PROOF_QUEUE, "proof queue")
    }

    pub fn put_proof_queue(&mut self, queue: &pb::ProofQueue) {
        self.put_meta(keys::META_PROOF_QUEUE, queue.encode_to_vec());
    }

    pub fn proven_height(&self) -> Result<u64, StoreError> {
        Ok(self
            .get(Cf::Meta, keys::META_PROVEN_HEIGHT)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    pub fn put_proven_height(&mut self, height: u64) {
        self.put_meta(keys::META_PROVEN_HEIGHT, height.to_be_bytes().to_vec());
    }

    /// The rollup's last proven height and root (zero root before any proof).
    pub fn rollup_proving(&self, id: RollupId) -> Result<pb::RollupProving, StoreError> {
        Ok(match self.get(Cf::Proofs, &keys::rollup_proving(id))? {
            Some(bytes) => decode("rollup proving", &bytes)?,
            None => pb::RollupProving {
                rollup_id: id,
                proven_height: 0,
                proven_root: vec![0; 32],
                proven_from: 0,
            },
        })
    }

    pub fn put_rollup_proving(&mut self, proving: &pb::RollupProving) {
        self.writes.put(
            Cf::Proofs,
            keys::rollup_proving(proving.rollup_id),
            proving.encode_to_vec(),
        );
    }

    /// A proven job by `(rollup, from_height)`.
    pub fn proof_job(
        &self,
        id: RollupId,
        from_height: u64,
    ) -> Result<Option<pb::ProofJob>, StoreError> {
        self.get(Cf::Proofs, &keys::proof_job(id, from_height))?
            .map(|b| decode("proof job", &b))
            .transpose()
    }

    pub fn put_proof_job(&mut self, job: &pb::ProofJob) {
        self.writes.put(
            Cf::Proofs,
            keys::proof_job(job.rollup_id, job.from_height),
            job.encode_to_vec(),
        );
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
