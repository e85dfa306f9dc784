//! Read-only views of committed state for ABCI `Query` and the node's gRPC
//! services: accounts, rollups, blocks, batches with their namespace proofs,
//! provers, proof jobs and finality.

use std::collections::BTreeMap;
use std::sync::Arc;

use seqnet_proto::nmt::{NamespacedMerkleTree, NmtNode, NmtRoot};
use seqnet_proto::{pb, Address, RollupId};

use crate::keys;
use crate::params::ChainParams;
use crate::state::decode;
use crate::store::{Cf, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("height {requested} is not committed yet (last committed height is {last})")]
    FutureHeight { requested: u64, last: u64 },
    #[error("height 0 has no block")]
    HeightZero,
    #[error("rollup {0} is not registered")]
    UnknownRollup(RollupId),
    #[error("no forced-inclusion request for transaction {0}")]
    UnknownForced(String),
    #[error("no block record at height {0}")]
    MissingBlock(u64),
    #[error("bad query: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored block {height} is inconsistent: {detail}")]
    Inconsistent { height: u64, detail: String },
}

/// An OPEN job assigned to a prover, which it can prove at once: nothing
/// waits for earlier spans. Deliveries are ordered by `cursor()`, the same
/// on every node.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadyJob {
    /// The block at whose end the job was assigned to its current prover.
    pub ready_height: u64,
    pub job: pb::ProofJob,
    /// The rollup's last proven root (32 zero bytes before the first proof)
    /// and the last height it covers (0: none yet).
    pub proven_root: Vec<u8>,
    pub proven_height: u64,
    /// The rollup's unproven spans before the job's, in order, with the
    /// transitions their pending proofs claim.
    pub earlier: Vec<pb::EarlierSpan>,
}

impl ReadyJob {
    /// (ready_height, rollup_id, from_height): the job stream's resume cursor.
    pub fn cursor(&self) -> (u64, RollupId, u64) {
        (self.ready_height, self.job.rollup_id, self.job.from_height)
    }
}

/// Reads committed state; cheap to clone and safe to use from any thread.
#[derive(Clone)]
pub struct Reader {
    store: Arc<Store>,
}

impl Reader {
    pub fn new(store: Arc<Store>) -> Reader {
        Reader { store }
    }

    pub fn last_height(&self) -> Result<u64, StoreError> {
        Ok(self
            .store
            .get(Cf::Meta, keys::META_LAST_HEIGHT)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    pub fn last_app_hash(&self) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .store
            .get(Cf::Meta, keys::META_LAST_APP_HASH)?
            .unwrap_or_default())
    }

    pub fn chain_id(&self) -> Result<String, StoreError> {
        Ok(self
            .store
            .get(Cf::Meta, keys::META_CHAIN_ID)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default())
    }

    pub fn params(&self) -> Result<ChainParams, StoreError> {
        Ok(match self.store.get(Cf::Meta, keys::META_PARAMS)? {
            Some(bytes) => ChainParams::from_pb(&decode("params", &bytes)?),
            None => ChainParams::default(),
        })
    }

    pub fn validators(&self) -> Result<pb::ValidatorSet, StoreError> {
        Ok(match self.store.get(Cf::Meta, keys::META_VALIDATORS)? {
            Some(bytes) => decode("validators", &bytes)?,
            None => pb::ValidatorSet::default(),
        })
    }

    /// `abci.vote_extensions_enable_height` from genesis (0: disabled).
    pub fn vote_extensions_height(&self) -> Result<u64, StoreError> {
        Ok(self
            .store
            .get(Cf::Meta, keys::META_VOTE_EXTENSIONS_HEIGHT)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// The forced-inclusion request for the inner transaction `tx_hash`.
    pub fn forced_request(&self, tx_hash: &[u8; 32]) -> Result<pb::ForcedRequest, QueryError> {
        crate::state::StateDelta::new(self.store.clone())
            .forced_by_hash(tx_hash)?
            .ok_or_else(|| QueryError::UnknownForced(hex::encode(tx_hash)))
    }

    /// Forced requests not yet resolved.
    pub fn forced_pending(&self) -> Result<Vec<pb::ForcedRequest>, StoreError> {
        Ok(crate::state::StateDelta::new(self.store.clone())
            .forced_queue()?
            .pending)
    }

    pub fn account(&self, address: &Address) -> Result<pb::Account, StoreError> {
        Ok(
            match self.store.get(Cf::Accounts, &keys::account(address))? {
                Some(bytes) => decode("account", &bytes)?,
                None => pb::Account {
                    address: address.0.to_vec(),
                    balance: 0,
                    nonce: 0,
                    mempool_nonce: 0,
                },
            },
        )
    }

    pub fn rollup(&self, id: RollupId) -> Result<Option<pb::Rollup>, StoreError> {
        self.store
            .get(Cf::Rollups, &keys::rollup(id))?
            .map(|b| decode("rollup", &b))
            .transpose()
    }

    /// Every registered rollup, by id.
    pub fn rollups(&self) -> Result<Vec<pb::Rollup>, StoreError> {
        self.store
            .scan_prefix(Cf::Rollups, &[], &[], usize::MAX)?
            .into_iter()
            .map(|(_, v)| decode("rollup", &v))
            .collect()
    }

    pub fn block(&self, height: u64) -> Result<pb::BlockRecord, QueryError> {
        self.check_height(height)?;
        let bytes = self
            .store
            .get(Cf::Blocks, &keys::block(height))?
            .ok_or(QueryError::MissingBlock(height))?;
        Ok(decode("block record", &bytes)?)
    }

    fn check_height(&self, height: u64) -> Result<(), QueryError> {
        if height == 0 {
            return Err(QueryError::HeightZero);
        }
        let last = self.last_height()?;
        if height > last {
            return Err(QueryError::FutureHeight {
                requested: height,
                last,
            });
        }
        Ok(())
    }

    /// The batch of `rollup_id` at `height` (possibly empty) with the proof
    /// of its inclusion and completeness against the block's NMT root.
    pub fn batch(&self, rollup_id: RollupId, height: u64) -> Result<pb::Batch, QueryError> {
        if self.rollup(rollup_id)?.is_none() {
            return Err(QueryError::UnknownRollup(rollup_id));
        }
        let record = self.block(height)?;
        let items = match self
            .store
            .get(Cf::Batches, &keys::batch(rollup_id, height))?
        {
            Some(bytes) => decode::<pb::Batch>("batch", &bytes)?.items,
            None => Vec::new(),
        };
        let leaves = record
            .leaves
            .iter()
            .map(NmtNode::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueryError::Inconsistent {
                height,
                detail: e.to_string(),
            })?;
        let tree =
            NamespacedMerkleTree::from_leaves(leaves).map_err(|e| QueryError::Inconsistent {
                height,
                detail: e.to_string(),
            })?;
        let root: NmtRoot = tree.root();
        let proof = tree.prove_namespace(rollup_id);
        Ok(pb::Batch {
            rollup_id,
            height,
            items,
            proof: Some((&proof).into()),
            root: Some((&root).into()),
            proven: None,
        })
    }

    /// The items of `rollup_id`'s batch at `height` as stored (no proof: a
    /// committed height's data, for job deliveries).
    pub fn batch_items(
        &self,
        rollup_id: RollupId,
        height: u64,
    ) -> Result<Vec<pb::BatchItem>, StoreError> {
        Ok(
            match self
                .store
                .get(Cf::Batches, &keys::batch(rollup_id, height))?
            {
                Some(bytes) => decode::<pb::Batch>("batch", &bytes)?.items,
                None => Vec::new(),
            },
        )
    }

    /// Heights at or above `from` where `rollup_id` has a non-empty batch,
    /// at most `limit` of them.
    pub fn batch_heights(
        &self,
        rollup_id: RollupId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let prefix = rollup_id.to_be_bytes();
        let entries =
            self.store
                .scan_prefix(Cf::Batches, &prefix, &keys::batch(rollup_id, from), limit)?;
        Ok(entries
            .iter()
            .filter_map(|(k, _)| k.get(8..16).and_then(|h| <[u8; 8]>::try_from(h).ok()))
            .map(u64::from_be_bytes)
            .collect())
    }

    fn delta(&self) -> crate::state::StateDelta {
        crate::state::StateDelta::new(self.store.clone())
    }

    /// The prover record of `address`, if it has one.
    pub fn prover(&self, address: &Address) -> Result<Option<pb::Prover>, StoreError> {
        crate::provers::prover(&self.delta(), address)
    }

    /// Every prover record, by address.
    pub fn provers(&self) -> Result<pb::ProverRegistry, StoreError> {
        self.delta().prover_registry()
    }

    /// The current epoch's active prover set.
    pub fn prover_set(&self) -> Result<pb::ProverSet, StoreError> {
        self.delta().prover_set()
    }

    /// Unproven proof jobs (open and pending) of every rollup, by (rollup,
    /// from_height).
    pub fn open_jobs(&self) -> Result<Vec<pb::ProofJob>, StoreError> {
        Ok(self.delta().proof_queue()?.open)
    }

    /// A job by (rollup, from_height): unproven, or proven (with prover and
    /// roots).
    pub fn proof_job(
        &self,
        rollup_id: RollupId,
        from_height: u64,
    ) -> Result<Option<pb::ProofJob>, StoreError> {
        let delta = self.delta();
        if let Some(job) = delta
            .proof_queue()?
            .open
            .into_iter()
            .find(|j| j.rollup_id == rollup_id && j.from_height == from_height)
        {
            return Ok(Some(job));
        }
        delta.proof_job(rollup_id, from_height)
    }

    /// The proven job whose span covers `height` of `rollup_id`, if any.
    pub fn proven_span_at(
        &self,
        rollup_id: RollupId,
        height: u64,
    ) -> Result<Option<pb::ProofJob>, StoreError> {
        let key = keys::proof_job(rollup_id, height);
        let prefix = &key[..9];
        let Some((_, bytes)) = self.store.last_at_or_before(Cf::Proofs, prefix, &key)? else {
            return Ok(None);
        };
        let job: pb::ProofJob = decode("proof job", &bytes)?;
        Ok((job.to_height >= height).then_some(job))
    }

    /// A rollup's last proven height and root, and its open jobs.
    pub fn rollup_jobs(&self, rollup_id: RollupId) -> Result<pb::RollupJobs, QueryError> {
        if self.rollup(rollup_id)?.is_none() {
            return Err(QueryError::UnknownRollup(rollup_id));
        }
        let delta = self.delta();
        Ok(pb::RollupJobs {
            proving: Some(delta.rollup_proving(rollup_id)?),
            open: delta
                .proof_queue()?
                .open
                .into_iter()
                .filter(|j| j.rollup_id == rollup_id)
                .collect(),
        })
    }

    /// OPEN jobs assigned to `prover` (see [`ReadyJob`]), by cursor. A read
    /// straddling a commit is retried, so the answer is one committed
    /// state's (returned with its height).
    pub fn ready_jobs(&self, prover: &Address) -> Result<(u64, Vec<ReadyJob>), StoreError> {
        loop {
            let before = self.last_height()?;
            let delta = self.delta();
            let open = delta.proof_queue()?.open;
            let mut proving: BTreeMap<RollupId, pb::RollupProving> = BTreeMap::new();
            let mut ready = Vec::new();
            for job in &open {
                if job.assigned != prover.0 || job.status != pb::JobStatus::Open as i32 {
                    continue;
                }
                if let std::collections::btree_map::Entry::Vacant(slot) =
                    proving.entry(job.rollup_id)
                {
                    slot.insert(delta.rollup_proving(job.rollup_id)?);
                }
                let rollup = &proving[&job.rollup_id];
                let mut proven_root = rollup.proven_root.clone();
                proven_root.resize(32, 0);
                let earlier = open
                    .iter()
                    .filter(|e| e.rollup_id == job.rollup_id && e.from_height < job.from_height)
                    .map(|e| {
                        let pending = e.status == pb::JobStatus::Pending as i32;
                        pb::EarlierSpan {
                            from_height: e.from_height,
                            to_height: e.to_height,
                            span_commitment: e.span_commitment.clone(),
                            claimed_prev_root: if pending { e.prev_root.clone() } else { vec![] },
                            claimed_new_root: if pending { e.new_root.clone() } else { vec![] },
                        }
                    })
                    .collect();
                ready.push(ReadyJob {
                    ready_height: job.assigned_height,
                    job: job.clone(),
                    proven_root,
                    proven_height: rollup.proven_height,
                    earlier,
                });
            }
            if self.last_height()? == before {
                ready.sort_by_key(ReadyJob::cursor);
                return Ok((before, ready));
            }
        }
    }

    /// Every check of a `SubmitProof` action by `signer` against committed
    /// state (job, assignment, previous root, proof), as CheckTx and
    /// FinalizeBlock apply it; `earlier` are the accepted actions before it
    /// in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn check_proof(
        &self,
        signer: Address,
        rollup_id: RollupId,
        from_height: u64,
        proof: &[u8],
        prev_root: &[u8; 32],
        new_root: &[u8; 32],
        earlier: &[crate::provers::AcceptedProof],
    ) -> Result<crate::provers::AcceptedProof, crate::execute::ExecError> {
        crate::provers::check_proof(
            &self.delta(),
            signer,
            rollup_id,
            from_height,
            proof,
            prev_root,
            new_root,
            earlier,
        )
    }

    /// The linked proof of the span that covers the batch of `rollup_id` at
    /// `height`, if that span is proven and the batch is one of its own
    /// (non-empty) batches.
    pub fn batch_proof(
        &self,
        rollup_id: RollupId,
        height: u64,
    ) -> Result<Option<pb::BatchProof>, StoreError> {
        Ok(self
            .proven_span_at(rollup_id, height)?
            .filter(|j| j.status == pb::JobStatus::Proven as i32)
            .filter(|j| j.batches.iter().any(|b| b.height == height))
            .map(|j| pb::BatchProof {
                // SubmitProof always carries proof bytes; SubmitAggregate
                // records none for the jobs it covers.
                by_aggregate: j.proof.is_empty(),
                proof: j.proof,
                prev_state_root: j.prev_root,
                new_state_root: j.new_root,
                span_commitment: j.span_commitment,
                prover: j.prover,
                proven_at: j.proven_height,
                from_height: j.from_height,
                to_height: j.to_height,
                batch_heights: j.batches.iter().map(|b| b.height).collect(),
            }))
    }

    /// Highest height whose spans (and all below) are proven.
    pub fn proven_height(&self) -> Result<u64, StoreError> {
        self.delta().proven_height()
    }

    /// Ordered and proven heights, unproven jobs, the active set, and what
    /// holds proven finality (see [`crate::provers::hold`]). A read
    /// straddling a commit is retried.
    pub fn finality(&self) -> Result<pb::Finality, StoreError> {
        loop {
            let ordered = self.last_height()?;
            let delta = self.delta();
            let queue = delta.proof_queue()?;
            let set = delta.prover_set()?;
            let hold = crate::provers::hold(
                &queue,
                &delta.prover_registry()?,
                &set,
                &self.params()?,
                ordered,
            );
            let finality = pb::Finality {
                ordered_height: ordered,
                proven_height: delta.proven_height()?,
                open_jobs: queue.open.len() as u64,
                pending_jobs: queue
                    .open
                    .iter()
                    .filter(|j| j.status == pb::JobStatus::Pending as i32)
                    .count() as u64,
                prover_set: Some(set),
                held: hold.held,
                hold_reason: hold.reason as i32,
                hold_detail: hold.detail,
                live_provers: hold.live_provers,
            };
            if self.last_height()? == ordered {
                return Ok(finality);
            }
        }
    }

    pub fn status(&self) -> Result<pb::NodeStatus, StoreError> {
        Ok(pb::NodeStatus {
            chain_id: self.chain_id()?,
            height: self.last_height()?,
            app_hash: self.last_app_hash()?,
            rollups: self.rollups()?,
            params: Some(self.params()?.to_pb()),
        })
    }
}
