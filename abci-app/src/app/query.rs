//! Reads of committed state for ABCI `Query` and the node's gRPC services:
//! [`Reader`], a façade over each component's typed reads and queries on
//! the committed view (the same accessors consensus uses), and the ABCI
//! query paths.

use std::sync::Arc;

use prost::Message;
use seqnet_proto::state_proof::{Space, MAX_PROVEN_KEYS};
use seqnet_proto::{pb, Address, RollupId};

use crate::accounts::AccountsState;
use crate::chain::ChainState;
use crate::forced::ForcedState;
use crate::params::ChainParams;
use crate::provers::query::{self as prover_queries, ReadyJob};
use crate::provers::{ProversState, VerifierCache};
use crate::rollups::batches::{self, ReadError, TreeCache};
use crate::rollups::RollupsState;
use crate::state::{Committed, StateDelta, StateRead};
use crate::store::{Cf, Store, StoreError};
use crate::tx::{ExecError, Transition};
use crate::validators::ValidatorsState;

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
    #[error("height {height} is pruned on this node (it keeps heights from {retained} on; ask an archive node)")]
    Pruned { height: u64, retained: u64 },
    #[error("bad query: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored block {height} is inconsistent: {detail}")]
    Inconsistent { height: u64, detail: String },
}

impl From<ReadError> for QueryError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::FutureHeight { requested, last } => {
                QueryError::FutureHeight { requested, last }
            }
            ReadError::HeightZero => QueryError::HeightZero,
            ReadError::UnknownRollup(id) => QueryError::UnknownRollup(id),
            ReadError::MissingBlock(h) => QueryError::MissingBlock(h),
            ReadError::Pruned { height, retained } => QueryError::Pruned { height, retained },
            ReadError::Inconsistent { height, detail } => {
                QueryError::Inconsistent { height, detail }
            }
            ReadError::Store(e) => QueryError::Store(e),
        }
    }
}

/// Reads committed state; cheap to clone and safe to use from any thread.
#[derive(Clone)]
pub struct Reader {
    committed: Committed,
    verifier: Arc<VerifierCache>,
    trees: Arc<TreeCache>,
}

impl Reader {
    pub(crate) fn new(
        store: Arc<Store>,
        verifier: Arc<VerifierCache>,
        trees: Arc<TreeCache>,
    ) -> Reader {
        Reader {
            committed: Committed::new(store),
            verifier,
            trees,
        }
    }

    /// Runs `read` until no commit landed while it ran, so the answer is one
    /// committed state's.
    fn consistent<T, E: From<StoreError>>(
        &self,
        read: impl Fn(&Committed) -> Result<T, E>,
    ) -> Result<(u64, T), E> {
        loop {
            let before = self.last_height()?;
            let value = read(&self.committed)?;
            if self.last_height()? == before {
                return Ok((before, value));
            }
        }
    }

    pub fn last_height(&self) -> Result<u64, StoreError> {
        self.committed.last_height()
    }

    pub fn last_app_hash(&self) -> Result<Vec<u8>, StoreError> {
        self.committed.last_app_hash()
    }

    pub fn chain_id(&self) -> Result<String, StoreError> {
        self.committed.chain_id()
    }

    pub fn params(&self) -> Result<ChainParams, StoreError> {
        self.committed.params()
    }

    /// The validator set that signed the last committed height.
    pub fn validators(&self) -> Result<pb::ValidatorSet, StoreError> {
        self.committed.validators()
    }

    /// Every validator record (stake, status, missed votes), by operator.
    pub fn validator_registry(&self) -> Result<pb::ValidatorRegistry, StoreError> {
        self.committed.validator_registry()
    }

    /// Validator sets decided and not yet in effect.
    pub fn validator_schedule(&self) -> Result<pb::ValidatorSchedule, StoreError> {
        self.committed.validator_schedule()
    }

    /// `abci.vote_extensions_enable_height` from genesis (0: disabled).
    pub fn vote_extensions_height(&self) -> Result<u64, StoreError> {
        self.committed.vote_extensions_height()
    }

    /// The forced-inclusion request for the inner transaction `tx_hash`.
    pub fn forced_request(&self, tx_hash: &[u8; 32]) -> Result<pb::ForcedRequest, QueryError> {
        self.committed
            .forced_by_hash(tx_hash)?
            .ok_or_else(|| QueryError::UnknownForced(hex::encode(tx_hash)))
    }

    /// Forced requests not yet resolved.
    pub fn forced_pending(&self) -> Result<Vec<pb::ForcedRequest>, StoreError> {
        Ok(self.committed.forced_queue()?.pending)
    }

    pub fn account(&self, address: &Address) -> Result<pb::Account, StoreError> {
        self.committed.account(address)
    }

    pub fn rollup(&self, id: RollupId) -> Result<Option<pb::Rollup>, StoreError> {
        self.committed.rollup(id)
    }

    /// Every registered rollup, by id.
    pub fn rollups(&self) -> Result<Vec<pb::Rollup>, StoreError> {
        self.committed.rollups()
    }

    pub fn block(&self, height: u64) -> Result<pb::BlockRecord, QueryError> {
        Ok(batches::block(
            &self.committed,
            self.last_height()?,
            height,
        )?)
    }

    /// The batch of `rollup_id` at `height` (possibly empty) with the proof
    /// of its inclusion and completeness against the block's NMT root.
    pub fn batch(&self, rollup_id: RollupId, height: u64) -> Result<pb::Batch, QueryError> {
        if self.rollup(rollup_id)?.is_none() {
            return Err(QueryError::UnknownRollup(rollup_id));
        }
        Ok(batches::batch(
            &self.committed,
            &self.trees,
            self.last_height()?,
            rollup_id,
            height,
        )?)
    }

    /// The items of `rollup_id`'s batch at `height` as stored (no proof: a
    /// committed height's data, for job deliveries).
    pub fn batch_items(
        &self,
        rollup_id: RollupId,
        height: u64,
    ) -> Result<Vec<pb::BatchItem>, StoreError> {
        batches::batch_items(&self.committed, rollup_id, height)
    }

    /// Heights at or above `from` where `rollup_id` has a non-empty batch,
    /// at most `limit` of them.
    pub fn batch_heights(
        &self,
        rollup_id: RollupId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<u64>, QueryError> {
        // A scan from a pruned height would skip it without a word.
        let retained = batches::retained_height(&self.committed)?;
        if from < retained {
            return Err(QueryError::Pruned {
                height: from,
                retained,
            });
        }
        Ok(batches::batch_heights(
            &self.committed,
            rollup_id,
            from,
            limit,
        )?)
    }

    /// The prover record of `address`, if it has one.
    pub fn prover(&self, address: &Address) -> Result<Option<pb::Prover>, StoreError> {
        self.committed.prover(address)
    }

    /// Every prover record, by address.
    pub fn provers(&self) -> Result<pb::ProverRegistry, StoreError> {
        self.committed.prover_registry()
    }

    /// The current epoch's active prover set.
    pub fn prover_set(&self) -> Result<pb::ProverSet, StoreError> {
        self.committed.prover_set()
    }

    /// The first height of the oldest span not yet proven (a job open or
    /// pending, or a span still collecting), if any: its batches are still
    /// needed by a prover.
    pub fn oldest_unproven_height(&self) -> Result<Option<u64>, StoreError> {
        let queue = self.committed.proof_queue()?;
        Ok(queue
            .open
            .iter()
            .map(|job| job.from_height)
            .chain(queue.collecting.iter().map(|span| span.from_height))
            .min())
    }

    /// Unproven proof jobs (open and pending) of every rollup, by (rollup,
    /// from_height).
    pub fn open_jobs(&self) -> Result<Vec<pb::ProofJob>, StoreError> {
        Ok(self.committed.proof_queue()?.open)
    }

    /// A job by (rollup, from_height): unproven, or proven (with prover and
    /// roots).
    pub fn proof_job(
        &self,
        rollup_id: RollupId,
        from_height: u64,
    ) -> Result<Option<pb::ProofJob>, StoreError> {
        prover_queries::job(&self.committed, rollup_id, from_height)
    }

    /// A rollup's last proven span and root, and its unproven jobs.
    pub fn rollup_jobs(&self, rollup_id: RollupId) -> Result<pb::RollupJobs, QueryError> {
        if self.rollup(rollup_id)?.is_none() {
            return Err(QueryError::UnknownRollup(rollup_id));
        }
        Ok(prover_queries::rollup_jobs(&self.committed, rollup_id)?)
    }

    /// OPEN jobs assigned to `prover` (see [`ReadyJob`]), by cursor, from one
    /// committed state (returned with its height).
    pub fn ready_jobs(&self, prover: &Address) -> Result<(u64, Vec<ReadyJob>), StoreError> {
        self.consistent(|c| prover_queries::ready_jobs(c, prover))
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
        earlier: &[Transition],
    ) -> Result<Transition, ExecError> {
        crate::provers::check_proof(
            &StateDelta::new(self.committed.store().clone()),
            &self.verifier,
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
    /// `height`, if that span is proven and the batch is one of its own.
    pub fn batch_proof(
        &self,
        rollup_id: RollupId,
        height: u64,
    ) -> Result<Option<pb::BatchProof>, StoreError> {
        prover_queries::batch_proof(&self.committed, rollup_id, height)
    }

    /// Highest height whose spans (and all below) are proven.
    pub fn proven_height(&self) -> Result<u64, StoreError> {
        self.committed.proven_height()
    }

    /// Ordered and proven heights, unproven jobs, the active set, and what
    /// holds proven finality, from one committed state.
    pub fn finality(&self) -> Result<pb::Finality, StoreError> {
        Ok(self.consistent(prover_queries::finality)?.1)
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

    /// The committed record `(space, key)` (or its absence) with its proof
    /// under the app hash of the last committed height.
    pub fn prove(&self, space: Space, key: &[u8]) -> Result<pb::StateProof, QueryError> {
        let mut proofs = self.prove_many(space, &[key.to_vec()])?.proofs;
        proofs.pop().ok_or_else(|| {
            QueryError::BadRequest(format!("{}/{}: no proof", space.name(), hex::encode(key)))
        })
    }

    /// Records of one space (at most [`MAX_PROVEN_KEYS`]), each with its
    /// proof, all under the app hash of one committed height.
    pub fn prove_many(
        &self,
        space: Space,
        keys: &[Vec<u8>],
    ) -> Result<pb::StateProofs, QueryError> {
        if keys.len() > MAX_PROVEN_KEYS {
            return Err(QueryError::BadRequest(format!(
                "{} keys asked for; at most {MAX_PROVEN_KEYS} per query",
                keys.len()
            )));
        }
        let cf = Cf::of_space(space);
        if let Some(key) = keys.iter().find(|key| cf.space(key).is_none()) {
            return Err(QueryError::BadRequest(format!(
                "{}/{} is not a record of the state tree (docs/state-proofs.md)",
                space.name(),
                hex::encode(key)
            )));
        }
        let records: Vec<(Cf, &[u8])> = keys.iter().map(|key| (cf, key.as_slice())).collect();
        let reads = self.committed.store().prove_many(&records)?;
        Ok(pb::StateProofs {
            proofs: keys
                .iter()
                .zip(reads)
                .map(|(key, read)| pb::StateProof {
                    version: read.version,
                    space: space.name().to_string(),
                    key: key.clone(),
                    value: read.value,
                    proof: read.proof,
                })
                .collect(),
        })
    }

    /// The answer to an ABCI query `path` (values are protobuf `seqnet.v1`
    /// messages; see the crate README for the paths).
    pub(crate) fn query(&self, path: &str) -> Result<Vec<u8>, QueryError> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let number = |text: &str, what: &str| {
            text.parse::<u64>()
                .map_err(|_| QueryError::BadRequest(format!("{what} {text:?} is not a number")))
        };
        Ok(match parts.as_slice() {
            ["account", address] => {
                let address = Address::from_hex(address).map_err(QueryError::BadRequest)?;
                self.account(&address)?.encode_to_vec()
            }
            ["rollup", id] => {
                let id = number(id, "rollup id")?;
                self.rollup(id)?
                    .ok_or(QueryError::UnknownRollup(id))?
                    .encode_to_vec()
            }
            ["batch", rollup, height] => self
                .batch(number(rollup, "rollup id")?, number(height, "height")?)?
                .encode_to_vec(),
            ["block", height] => self.block(number(height, "height")?)?.encode_to_vec(),
            ["forced", hash] => {
                let hash = hex::decode(hash)
                    .ok()
                    .and_then(|h| <[u8; 32]>::try_from(h).ok())
                    .ok_or_else(|| QueryError::BadRequest(format!("{hash:?} is not a 32-byte hex hash")))?;
                self.forced_request(&hash)?.encode_to_vec()
            }
            ["prover", address] => {
                let address = Address::from_hex(address).map_err(QueryError::BadRequest)?;
                self.prover(&address)?
                    .ok_or_else(|| QueryError::BadRequest(format!("{address} is not a prover")))?
                    .encode_to_vec()
            }
            ["jobs", rollup] => self
                .rollup_jobs(number(rollup, "rollup id")?)?
                .encode_to_vec(),
            ["validators"] => self.validators()?.encode_to_vec(),
            ["validator_registry"] => self.validator_registry()?.encode_to_vec(),
            ["finality"] => self.finality()?.encode_to_vec(),
            ["status"] => self.status()?.encode_to_vec(),
            ["params"] => self.params()?.to_pb().encode_to_vec(),
            ["state", space, keys] => {
                let space = Space::from_name(space).ok_or_else(|| {
                    QueryError::BadRequest(format!(
                        "unknown space {space:?}; want meta, accounts, rollups, forced, proofs or roots"
                    ))
                })?;
                let keys = keys
                    .split(',')
                    .map(|key| {
                        hex::decode(key)
                            .map_err(|_| QueryError::BadRequest(format!("key {key:?} is not hex")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                // One key: a StateProof; several (comma-separated): StateProofs.
                match keys.as_slice() {
                    [key] => self.prove(space, key)?.encode_to_vec(),
                    _ => self.prove_many(space, &keys)?.encode_to_vec(),
                }
            }
            _ => {
                return Err(QueryError::BadRequest(format!(
                    "unknown path {path:?}; try /account/<hex>, /rollup/<id>, /batch/<rollup>/<height>, /block/<height>, /forced/<tx hash>, /prover/<hex>, /jobs/<rollup>, /validators, /validator_registry, /finality, /status, /params, /state/<space>/<hex key>[,<hex key>...]"
                )))
            }
        })
    }
}
