//! The ABCI++ application: a thin dispatcher from CometBFT's calls to the
//! block runner ([`block`]), FinalizeBlock and Commit ([`finalize`]), the
//! mempool ([`mempool`]) and the read path ([`query`]).
//!
//! `tendermint-abci` clones the application once per connection (consensus,
//! mempool, query, snapshot) and serves each on its own thread. Consensus
//! state sits behind one lock that only the consensus connection holds for
//! long; CheckTx works on its own mempool overlay; queries read RocksDB.

pub(crate) mod block;
pub(crate) mod execute;
mod finalize;
pub(crate) mod mempool;
pub(crate) mod query;
mod retention;
mod state_sync;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use seqnet_proto::inclusion::{decode_inclusion_list, encode_inclusion_list};
use seqnet_proto::{pb, Address, Code, RollupId};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci;
use tendermint_proto::v0_38::crypto::public_key::Sum;

use crate::accounts::{AccountsState, AccountsWrite};
use crate::chain::{ChainState, ChainWrite};
use crate::genesis::Genesis;
use crate::params::ChainParams;
use crate::provers::VerifierCache;
use crate::rollups::batches::TreeCache;
use crate::rollups::RollupsWrite;
use crate::state::{Committed, StateDelta};
use crate::store::{Store, StoreError};
use crate::tx::{check_stateless, Event, SignatureCache};
use crate::validators::{ValidatorsState, ValidatorsWrite};
use block::{BlockContext, ProposalFilter};
use finalize::{PendingBlock, Processed};
use mempool::{MempoolState, DEFAULT_MEMPOOL_LIMIT, MAX_TRACKED_TXS};
use query::Reader;

const APP_VERSION: u64 = 1;
const SIGNATURE_CACHE_SIZE: usize = 100_000;

/// What the node around the app wants to hear about (metrics, streams).
pub trait Observer: Send + Sync + 'static {
    fn check_tx(&self, _code: Code, _recheck: bool) {}
    /// `kind`: `invalid_tx`, `missing_forced`, `bad_extended_commit`.
    fn proposal_rejected(&self, _height: u64, _kind: &str, _reason: &str) {}
    fn block_committed(&self, _summary: &BlockSummary) {}
}

/// An observer that ignores everything.
pub struct NoObserver;
impl Observer for NoObserver {}

/// What a committed block contained.
#[derive(Clone, Debug, Default)]
pub struct BlockSummary {
    pub height: u64,
    pub app_hash: Vec<u8>,
    pub tx_count: u64,
    pub failed_txs: u64,
    /// Per rollup: (items, bytes).
    pub rollups: BTreeMap<RollupId, (u64, u64)>,
    /// Forced requests opened in this block, by source name.
    pub forced_opened: BTreeMap<&'static str, u64>,
    /// Blocks from request to inclusion, per forced transaction included.
    pub forced_delays: Vec<u64>,
    pub forced_failed: u64,
    /// Forced requests still pending after this block.
    pub forced_pending: u64,
    /// Bytes of the injected extended commit (0: none).
    pub extended_commit_bytes: u64,
    /// Hashes of the block's transactions.
    pub tx_hashes: Vec<[u8; 32]>,
    /// Proof jobs (spans) opened, reassigned (deadline missed) and proven
    /// (their transitions linked) in this block.
    pub jobs_opened: u64,
    pub jobs_reassigned: u64,
    pub jobs_proven: u64,
    /// Proofs accepted as pending transitions by this block's transactions.
    pub proofs_accepted: u64,
    /// Pending transitions dropped because they did not link.
    pub transitions_dropped: u64,
    /// Proof jobs still unproven after this block (open or pending).
    pub jobs_open: u64,
    /// Of those, jobs with a verified proof waiting to link.
    pub jobs_pending: u64,
    /// Of those, jobs reassigned at least once (late).
    pub jobs_late: u64,
    /// Highest height whose jobs (and all below) are proven, after this block.
    pub proven_height: u64,
    /// The validator set that signs this height: its size and total power.
    pub validators: u64,
    pub validator_power: u64,
    /// Validators jailed for downtime and slashed for double-signing in
    /// this block.
    pub validators_jailed: u64,
    pub validators_slashed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Work the app has done since it opened: how often transactions were
/// decoded and executed, and how many FinalizeBlocks ran their block or took
/// over ProcessProposal's run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkCounts {
    pub decoded: u64,
    pub executed: u64,
    pub block_runs: u64,
    pub reused_runs: u64,
}

#[derive(Default)]
pub(crate) struct AppCounters {
    decoded: AtomicU64,
    executed: AtomicU64,
    block_runs: AtomicU64,
    reused_runs: AtomicU64,
}

impl AppCounters {
    pub(crate) fn decoded(&self, count: usize) {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        self.decoded.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn executed(&self, count: usize) {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        self.executed.fetch_add(count, Ordering::Relaxed);
    }

    fn block_runs(&self) {
        self.block_runs.fetch_add(1, Ordering::Relaxed);
    }

    fn reused_runs(&self) {
        self.reused_runs.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> WorkCounts {
        WorkCounts {
            decoded: self.decoded.load(Ordering::Relaxed),
            executed: self.executed.load(Ordering::Relaxed),
            block_runs: self.block_runs.load(Ordering::Relaxed),
            reused_runs: self.reused_runs.load(Ordering::Relaxed),
        }
    }
}

struct ConsensusState {
    chain_id: String,
    params: ChainParams,
    last_height: u64,
    last_app_hash: Vec<u8>,
    validators: pb::ValidatorSet,
    vote_extensions_height: u64,
    /// The last accepted ProcessProposal run, for FinalizeBlock to take over.
    processed: Option<Processed>,
    /// The finalized block, for Commit.
    pending: Option<PendingBlock>,
}

struct Shared {
    store: Arc<Store>,
    /// Blocks of data this node keeps (0: all); see `retention`.
    block_retention: std::sync::atomic::AtomicU64,
    /// Snapshots this node takes and serves (none: state sync off); see
    /// `state_sync`.
    snapshots: Mutex<Option<Arc<state_sync::SnapshotSettings>>>,
    /// A snapshot is being taken.
    snapshotting: std::sync::atomic::AtomicBool,
    /// The snapshot being restored on this (new) node.
    restore: Mutex<Option<crate::snapshot::Restore>>,
    consensus: Mutex<ConsensusState>,
    mempool: Mutex<MempoolState>,
    signatures: SignatureCache,
    /// Proof verification memo and prepared keys: the app's, shared by every
    /// connection and the read path.
    verifier: Arc<VerifierCache>,
    trees: Arc<TreeCache>,
    counters: AppCounters,
    observer: Arc<dyn Observer>,
    censor: Option<Box<ProposalFilter>>,
}

/// seqnet's ABCI++ application.
#[derive(Clone)]
pub struct SeqnetApp {
    shared: Arc<Shared>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves state we cannot trust either way;
    // carrying on with it is what CometBFT's replay would do after a restart.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The consensus state as last committed in `store` (at start, and after
/// a snapshot is restored).
fn load_consensus(store: &Arc<Store>) -> Result<ConsensusState, AppError> {
    let committed = Committed::new(store.clone());
    Ok(ConsensusState {
        chain_id: committed.chain_id()?,
        params: committed.params()?,
        last_height: committed.last_height()?,
        last_app_hash: committed.last_app_hash()?,
        validators: committed.validators()?,
        vote_extensions_height: committed.vote_extensions_height()?,
        processed: None,
        pending: None,
    })
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl SeqnetApp {
    /// Opens the app over `store`, resuming from its last committed block.
    pub fn new(store: Arc<Store>, observer: Arc<dyn Observer>) -> Result<SeqnetApp, AppError> {
        Self::with_censor(store, observer, None)
    }

    /// As [`SeqnetApp::new`], with a fault for testnets: this node's proposals
    /// leave out every transaction `censor` matches.
    pub fn with_censor(
        store: Arc<Store>,
        observer: Arc<dyn Observer>,
        censor: Option<Box<ProposalFilter>>,
    ) -> Result<SeqnetApp, AppError> {
        let consensus = load_consensus(&store)?;
        let (chain_id, params, last_height) = (
            consensus.chain_id.clone(),
            consensus.params.clone(),
            consensus.last_height,
        );
        let mempool = MempoolState {
            chain_id,
            params,
            delta: StateDelta::new(store.clone()),
            height: last_height,
            generation: 0,
            waiting: BTreeMap::new(),
            limit: DEFAULT_MEMPOOL_LIMIT,
        };
        Ok(SeqnetApp {
            shared: Arc::new(Shared {
                store,
                block_retention: std::sync::atomic::AtomicU64::new(0),
                snapshots: Mutex::new(None),
                snapshotting: std::sync::atomic::AtomicBool::new(false),
                restore: Mutex::new(None),
                consensus: Mutex::new(consensus),
                mempool: Mutex::new(mempool),
                signatures: SignatureCache::new(SIGNATURE_CACHE_SIZE),
                verifier: Arc::new(VerifierCache::default()),
                trees: Arc::new(TreeCache::default()),
                counters: AppCounters::default(),
                observer,
                censor,
            }),
        })
    }

    /// Refuses new transactions (code `mempool_full`) while this node's
    /// mempool holds `max_txs` that passed CheckTx since the last block
    /// (capped at [`MAX_TRACKED_TXS`]); proof and prover-set transactions
    /// (those back-pressure admits) are always let in. Keep it under
    /// CometBFT's `mempool.size` by more than the CheckTx calls in flight at
    /// once: CometBFT answers "ok" to the client when the app accepts a
    /// transaction, then drops it without a word if its mempool filled up
    /// meanwhile.
    pub fn set_mempool_limit(&self, max_txs: usize) {
        lock(&self.shared.mempool).limit = max_txs.clamp(1, MAX_TRACKED_TXS);
    }

    /// Keeps the block data (block records, namespace proofs, rollup
    /// batches) of the last `blocks` heights, and of every height still in
    /// an unproven span, pruning the rest after each Commit and telling
    /// CometBFT to prune its block store alike; 0 keeps everything (an
    /// archive node). A local choice: it never changes the app hash.
    pub fn set_block_retention(&self, blocks: u64) {
        self.shared
            .block_retention
            .store(blocks, std::sync::atomic::Ordering::Relaxed);
    }

    /// After Commit of `height`: prunes below the retained height and
    /// returns it for CometBFT (0: nothing to prune). Pruning is local, so a
    /// failure is logged and retried at the next Commit, never fatal.
    fn prune_after_commit(&self, height: u64) -> u64 {
        let retention = self
            .shared
            .block_retention
            .load(std::sync::atomic::Ordering::Relaxed);
        if retention == 0 {
            return 0;
        }
        let reader = self.reader();
        let pruned = reader.oldest_unproven_height().and_then(|oldest| {
            let retain = retention::retain_height(height, retention, oldest);
            let rollups: Vec<_> = reader.rollups()?.iter().map(|r| r.id).collect();
            retention::prune(&self.shared.store, &rollups, retain)?;
            Ok(retain)
        });
        match pruned {
            Ok(retain) => retain,
            Err(error) => {
                tracing::warn!(height, %error, "pruning failed; retried after the next block");
                0
            }
        }
    }

    /// Decoding, chain id and signature of `bytes`, as CheckTx does them first
    /// (and with the same signature cache, so CheckTx then skips ed25519).
    pub fn check_stateless(
        &self,
        bytes: &[u8],
    ) -> Result<seqnet_proto::Transaction, seqnet_proto::TxError> {
        let mempool = lock(&self.shared.mempool);
        let (params, chain_id) = (mempool.params.clone(), mempool.chain_id.clone());
        drop(mempool);
        self.shared.counters.decoded(1);
        check_stateless(bytes, &params, &chain_id, &self.shared.signatures)
    }

    /// The account's next nonce counting what this node's mempool holds.
    pub fn mempool_nonce(&self, address: &Address) -> Result<u64, StoreError> {
        Ok(lock(&self.shared.mempool).delta.account(address)?.nonce)
    }

    /// Reads of committed state, sharing this app's verifier and tree caches.
    pub fn reader(&self) -> Reader {
        Reader::new(
            self.shared.store.clone(),
            self.shared.verifier.clone(),
            self.shared.trees.clone(),
        )
    }

    /// Decodes, executions and block runs so far (see [`WorkCounts`]).
    pub fn work_counts(&self) -> WorkCounts {
        self.shared.counters.snapshot()
    }

    /// Proofs this app has verified in batches (pre-verification of blocks).
    pub fn batch_verified_total(&self) -> u64 {
        self.shared.verifier.batch_verified_total()
    }

    fn context<'a>(&'a self, state: &'a ConsensusState, height: u64) -> BlockContext<'a> {
        BlockContext {
            params: &state.params,
            chain_id: &state.chain_id,
            signatures: &self.shared.signatures,
            verifier: &self.shared.verifier,
            counters: &self.shared.counters,
            height,
            validators: &state.validators,
            vote_extensions_height: state.vote_extensions_height,
            censor: self.shared.censor.as_deref(),
        }
    }

    fn apply_genesis(&self, request: &abci::RequestInitChain) -> Result<Vec<u8>, String> {
        let genesis = Genesis::parse(&request.app_state_bytes).map_err(|e| e.to_string())?;
        let mut initial = Vec::new();
        for update in &request.validators {
            match update.pub_key.as_ref().and_then(|k| k.sum.as_ref()) {
                Some(Sum::Ed25519(key)) => initial.push((key.to_vec(), update.power)),
                _ => return Err("only ed25519 validator keys are supported".into()),
            }
        }
        let (validators, registry) = crate::validators::genesis(&initial, &genesis.params)?;
        let vote_extensions_height = request
            .consensus_params
            .as_ref()
            .and_then(|p| p.abci.as_ref())
            .map(|a| to_u64(a.vote_extensions_enable_height))
            .unwrap_or(0);
        let mut delta = StateDelta::new(self.shared.store.clone());
        delta.put_chain_id(&request.chain_id);
        delta.put_params(&genesis.params);
        delta.put_validators(&validators);
        delta.put_validator_registry(&registry);
        delta.put_vote_extensions_height(vote_extensions_height);
        for account in &genesis.accounts {
            delta.put_account(account);
        }
        for rollup in &genesis.rollups {
            delta.put_rollup(rollup);
        }
        delta.put_fee_pool(0);
        // The tree's genesis version sits just below the first block's height.
        let version = to_u64(request.initial_height.max(1)).saturating_sub(1);
        let (app_hash, tree_writes) = self
            .shared
            .store
            .tree_update(version, delta.writes())
            .map_err(|e| e.to_string())?;
        delta.put_last_block(0, &app_hash);
        let mut writes = delta.into_writes();
        writes.extend(tree_writes);
        self.shared
            .store
            .commit(&writes)
            .map_err(|e| e.to_string())?;
        let mut consensus = lock(&self.shared.consensus);
        consensus.chain_id = request.chain_id.clone();
        consensus.params = genesis.params.clone();
        consensus.last_height = 0;
        consensus.last_app_hash = app_hash.to_vec();
        consensus.validators = validators;
        consensus.vote_extensions_height = vote_extensions_height;
        let mut mempool = lock(&self.shared.mempool);
        mempool.chain_id = request.chain_id.clone();
        mempool.params = genesis.params;
        mempool.delta.reset();
        Ok(app_hash.to_vec())
    }
}

fn to_abci_event(event: Event) -> abci::Event {
    abci::Event {
        r#type: event.kind.to_string(),
        attributes: event
            .attributes
            .into_iter()
            .map(|(key, value)| abci::EventAttribute {
                key: key.to_string(),
                value,
                index: true,
            })
            .collect(),
    }
}

impl Application for SeqnetApp {
    fn info(&self, _request: abci::RequestInfo) -> abci::ResponseInfo {
        let consensus = lock(&self.shared.consensus);
        abci::ResponseInfo {
            data: "seqnet".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            app_version: APP_VERSION,
            last_block_height: i64::try_from(consensus.last_height).unwrap_or(i64::MAX),
            last_block_app_hash: consensus.last_app_hash.clone().into(),
        }
    }

    fn init_chain(&self, request: abci::RequestInitChain) -> abci::ResponseInitChain {
        if lock(&self.shared.consensus).last_height > 0 {
            // CometBFT only calls InitChain on an empty app; anything else is a
            // mismatched home directory and must not be papered over.
            panic!(
                "InitChain called on an app that already committed blocks: wrong data directory?"
            );
        }
        match self.apply_genesis(&request) {
            Ok(app_hash) => {
                tracing::info!(chain_id = %request.chain_id, app_hash = %hex::encode(&app_hash), "genesis applied");
                abci::ResponseInitChain {
                    consensus_params: None,
                    validators: vec![],
                    app_hash: app_hash.into(),
                }
            }
            // A node cannot run with a genesis it cannot read.
            Err(reason) => panic!("invalid genesis: {reason}"),
        }
    }

    fn query(&self, request: abci::RequestQuery) -> abci::ResponseQuery {
        let reader = self.reader();
        let height = reader.last_height().unwrap_or(0);
        let height = i64::try_from(height).unwrap_or(i64::MAX);
        match reader.query(&request.path) {
            Ok(value) => abci::ResponseQuery {
                value: value.into(),
                height,
                ..Default::default()
            },
            Err(error) => abci::ResponseQuery {
                // 2: pruned here (ask an archive node); 1: anything else.
                code: if matches!(error, query::QueryError::Pruned { .. }) {
                    2
                } else {
                    1
                },
                log: error.to_string(),
                codespace: "seqnet".into(),
                height,
                ..Default::default()
            },
        }
    }

    fn check_tx(&self, request: abci::RequestCheckTx) -> abci::ResponseCheckTx {
        self.mempool_check(&request)
    }

    fn commit(&self) -> abci::ResponseCommit {
        let retain_height = match self.commit_pending() {
            Ok(Some(summary)) => {
                tracing::debug!(height = summary.height, "committed");
                self.shared.observer.block_committed(&summary);
                self.snapshot_after_commit(summary.height);
                self.prune_after_commit(summary.height)
            }
            Ok(None) => {
                tracing::warn!("Commit without a finalized block");
                0
            }
            // Acknowledging a block we could not persist would lose it.
            Err(error) => panic!("cannot persist block: {error}"),
        };
        abci::ResponseCommit {
            retain_height: i64::try_from(retain_height).unwrap_or(i64::MAX),
        }
    }

    fn prepare_proposal(
        &self,
        request: abci::RequestPrepareProposal,
    ) -> abci::ResponsePrepareProposal {
        let height = to_u64(request.height);
        let span = tracing::debug_span!("prepare_proposal", height);
        let _guard = span.enter();
        let consensus = lock(&self.shared.consensus);
        let txs: Vec<Vec<u8>> = request.txs.iter().map(|t| t.to_vec()).collect();
        let max_bytes = to_u64(request.max_tx_bytes);
        let mut delta = StateDelta::new(self.shared.store.clone());
        let selected = match self.context(&consensus, height).prepare(
            &mut delta,
            &txs,
            max_bytes,
            request.local_last_commit.as_ref(),
        ) {
            Ok(selected) => selected,
            Err(error) => panic!("cannot build proposal for {height}: {error}"),
        };
        tracing::debug!(
            offered = txs.len(),
            selected = selected.len(),
            "proposal built"
        );
        abci::ResponsePrepareProposal {
            txs: selected.into_iter().map(Into::into).collect(),
        }
    }

    fn process_proposal(
        &self,
        request: abci::RequestProcessProposal,
    ) -> abci::ResponseProcessProposal {
        let height = to_u64(request.height);
        let span = tracing::debug_span!("process_proposal", height);
        let _guard = span.enter();
        let mut consensus = lock(&self.shared.consensus);
        let txs: Vec<Vec<u8>> = request.txs.iter().map(|t| t.to_vec()).collect();
        let mut delta = StateDelta::new(self.shared.store.clone());
        let outcome = {
            let context = self.context(&consensus, height);
            context.process(&mut delta, &txs).and_then(|mut run| {
                context.finish_accepted(&mut delta, &mut run)?;
                Ok(run)
            })
        };
        let status = match outcome {
            Ok(run) => {
                // Without the block's hash FinalizeBlock could not tell the
                // block is this one: nothing to finish early.
                consensus.processed = if request.hash.is_empty() {
                    None
                } else {
                    let hash = request.hash.to_vec();
                    let input = finalize::BlockInput {
                        txs,
                        votes: finalize::block_votes(
                            &request.misbehavior,
                            request.proposed_last_commit.as_ref(),
                        ),
                    };
                    self.finish_in_background(&consensus, height, hash.clone(), input, delta, run)
                        .map(|finished| Processed {
                            hash,
                            height,
                            finished,
                        })
                };
                abci::response_process_proposal::ProposalStatus::Accept
            }
            Err(error) => {
                tracing::warn!(%error, proposer = %hex::encode(&request.proposer_address), "rejecting proposal");
                self.shared
                    .observer
                    .proposal_rejected(height, error.kind(), &error.to_string());
                abci::response_process_proposal::ProposalStatus::Reject
            }
        };
        abci::ResponseProcessProposal {
            status: status as i32,
        }
    }

    fn extend_vote(&self, request: abci::RequestExtendVote) -> abci::ResponseExtendVote {
        let list = self.inclusion_list(to_u64(request.height));
        tracing::debug!(
            height = request.height,
            listed = list.len(),
            "vote extension"
        );
        abci::ResponseExtendVote {
            vote_extension: encode_inclusion_list(list).into(),
        }
    }

    fn verify_vote_extension(
        &self,
        request: abci::RequestVerifyVoteExtension,
    ) -> abci::ResponseVerifyVoteExtension {
        // Structure and bounds only: never state, so it cannot hurt liveness.
        let params = lock(&self.shared.consensus).params.clone();
        let verdict = decode_inclusion_list(
            &request.vote_extension,
            usize::try_from(params.max_inclusion_list_txs).unwrap_or(usize::MAX),
            usize::try_from(params.max_inclusion_list_bytes).unwrap_or(usize::MAX),
        );
        let status = match verdict {
            Ok(_) => abci::response_verify_vote_extension::VerifyStatus::Accept,
            Err(error) => {
                tracing::warn!(%error, validator = %hex::encode(&request.validator_address), "rejecting vote extension");
                abci::response_verify_vote_extension::VerifyStatus::Reject
            }
        };
        abci::ResponseVerifyVoteExtension {
            status: status as i32,
        }
    }

    fn finalize_block(&self, request: abci::RequestFinalizeBlock) -> abci::ResponseFinalizeBlock {
        self.finalize(&request)
    }

    fn list_snapshots(&self) -> abci::ResponseListSnapshots {
        self.snapshots_listed()
    }

    fn offer_snapshot(&self, request: abci::RequestOfferSnapshot) -> abci::ResponseOfferSnapshot {
        self.snapshot_offered(&request)
    }

    fn load_snapshot_chunk(
        &self,
        request: abci::RequestLoadSnapshotChunk,
    ) -> abci::ResponseLoadSnapshotChunk {
        self.snapshot_chunk(&request)
    }

    fn apply_snapshot_chunk(
        &self,
        request: abci::RequestApplySnapshotChunk,
    ) -> abci::ResponseApplySnapshotChunk {
        self.snapshot_chunk_applied(&request)
    }
}
