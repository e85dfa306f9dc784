//! Typed access to the provers' state: the registry of prover records, the
//! epoch's active set, the proof queue (unproven jobs and collecting spans),
//! each rollup's proven root, proven jobs, and the chain's proven height.

use prost::Message;
use seqnet_proto::{pb, Address, RollupId};

use crate::keys;
use crate::state::{StateRead, StateWrite};
use crate::store::{Cf, StoreError};

/// Typed reads of the provers' state.
pub(crate) trait ProversState: StateRead {
    fn prover_registry(&self) -> Result<pb::ProverRegistry, StoreError>
    where
        Self: Sized,
    {
        self.meta_message(keys::META_PROVERS, "prover registry")
    }

    /// The record of `address`, if it has one.
    fn prover(&self, address: &Address) -> Result<Option<pb::Prover>, StoreError>
    where
        Self: Sized,
    {
        Ok(self
            .prover_registry()?
            .provers
            .into_iter()
            .find(|p| p.address == address.0))
    }

    fn prover_set(&self) -> Result<pb::ProverSet, StoreError>
    where
        Self: Sized,
    {
        self.meta_message(keys::META_PROVER_SET, "prover set")
    }

    fn proof_queue(&self) -> Result<pb::ProofQueue, StoreError>
    where
        Self: Sized,
    {
        self.meta_message(keys::META_PROOF_QUEUE, "proof queue")
    }

    /// Highest height whose spans (and all below) are proven.
    fn proven_height(&self) -> Result<u64, StoreError> {
        self.meta_u64(keys::META_PROVEN_HEIGHT)
    }

    /// The rollup's last proven span and root (zero root before any proof).
    fn rollup_proving(&self, id: RollupId) -> Result<pb::RollupProving, StoreError>
    where
        Self: Sized,
    {
        Ok(self
            .message(Cf::Proofs, &keys::rollup_proving(id), "rollup proving")?
            .unwrap_or(pb::RollupProving {
                rollup_id: id,
                proven_height: 0,
                proven_root: vec![0; 32],
                proven_from: 0,
            }))
    }

    /// A proven job by `(rollup, from_height)`.
    fn proof_job(&self, id: RollupId, from_height: u64) -> Result<Option<pb::ProofJob>, StoreError>
    where
        Self: Sized,
    {
        self.message(Cf::Proofs, &keys::proof_job(id, from_height), "proof job")
    }
}

impl<S: StateRead> ProversState for S {}

/// Typed writes of the provers' state.
pub(crate) trait ProversWrite: StateWrite + ProversState {
    fn put_prover_registry(&mut self, registry: &pb::ProverRegistry) {
        self.put_meta(keys::META_PROVERS, registry.encode_to_vec());
    }

    /// Writes (inserts or replaces) one prover record.
    fn put_prover(&mut self, record: pb::Prover) -> Result<(), StoreError>
    where
        Self: Sized,
    {
        let mut registry = self.prover_registry()?;
        match registry
            .provers
            .binary_search_by(|p| p.address.as_slice().cmp(record.address.as_slice()))
        {
            Ok(i) => registry.provers[i] = record,
            Err(i) => registry.provers.insert(i, record),
        }
        self.put_prover_registry(&registry);
        Ok(())
    }

    fn put_prover_set(&mut self, set: &pb::ProverSet) {
        self.put_meta(keys::META_PROVER_SET, set.encode_to_vec());
    }

    fn put_proof_queue(&mut self, queue: &pb::ProofQueue) {
        self.put_meta(keys::META_PROOF_QUEUE, queue.encode_to_vec());
    }

    fn put_proven_height(&mut self, height: u64) {
        self.put_meta_u64(keys::META_PROVEN_HEIGHT, height);
    }

    fn put_rollup_proving(&mut self, proving: &pb::RollupProving) {
        self.put(
            Cf::Proofs,
            keys::rollup_proving(proving.rollup_id),
            proving.encode_to_vec(),
        );
    }

    fn put_proof_job(&mut self, job: &pb::ProofJob) {
        self.put(
            Cf::Proofs,
            keys::proof_job(job.rollup_id, job.from_height),
            job.encode_to_vec(),
        );
    }
}

impl<S: StateWrite> ProversWrite for S {}
