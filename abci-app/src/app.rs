//! The ABCI++ application: a thin dispatcher from CometBFT's calls to the
//! checks, execution and storage of this crate.
//!
//! `tendermint-abci` clones the application once per connection (consensus,
//! mempool, query, snapshot) and serves each on its own thread. Consensus
//! state sits behind one lock that only the consensus connection holds for
//! long; CheckTx works on its own mempool overlay; queries read RocksDB.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prost::Message;
use seqnet_proto::inclusion::{decode_inclusion_list, encode_inclusion_list, validator_address};
use seqnet_proto::nmt::{NamespacedMerkleTree, NmtNode, NmtRoot};
use seqnet_proto::{pb, Address, Code, RollupId};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci;
use tendermint_proto::v0_38::crypto::public_key::Sum;

use crate::execute::{check_stateless, execute, Event, ExecError, SignatureCache};
use crate::forced::source_name;
use crate::genesis::Genesis;
use crate::keys;
use crate::params::ChainParams;
use crate::proposal::{BlockContext, ProposalFilter, TxResult};
use crate::query::{QueryError, Reader};
use crate::state::StateDelta;
use crate::store::{Cf, Store, StoreError, WriteSet};

const APP_VERSION: u64 = 1;
const SIGNATURE_CACHE_SIZE: usize = 100_000;
/// Most mempool transactions tracked for inclusion lists (and the largest
/// [`SeqnetApp::set_mempool_limit`]).
pub const MAX_TRACKED_TXS: usize = 20_000;
/// Default [`SeqnetApp::set_mempool_limit`]: 10 % under CometBFT's default
/// `mempool.size` (5,000).
pub const DEFAULT_MEMPOOL_LIMIT: usize = 4_500;

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
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct ConsensusState {
    chain_id: String,
    params: ChainParams,
    last_height: u64,
    last_app_hash: Vec<u8>,
    validators: pb::ValidatorSet,
    vote_extensions_height: u64,
    pending: Option<PendingBlock>,
}

struct PendingBlock {
    height: u64,
    writes: WriteSet,
    summary: BlockSummary,
}

/// A transaction this node's mempool holds, for inclusion lists.
struct Waiting {
    first_seen: u64,
    /// Commit generation of the last CheckTx/Recheck that passed.
    generation: u64,
    bytes: Vec<u8>,
}

struct MempoolState {
    chain_id: String,
    params: ChainParams,
    delta: StateDelta,
    height: u64,
    generation: u64,
    waiting: BTreeMap<[u8; 32], Waiting>,
    /// New transactions are refused while `waiting` holds this many.
    limit: usize,
}

struct Shared {
    store: Arc<Store>,
    consensus: Mutex<ConsensusState>,
    mempool: Mutex<MempoolState>,
    signatures: SignatureCache,
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
        let reader = Reader::new(store.clone());
        let chain_id = reader.chain_id()?;
        let params = reader.params()?;
        let last_height = reader.last_height()?;
        let consensus = ConsensusState {
            chain_id: chain_id.clone(),
            params: params.clone(),
            last_height,
            last_app_hash: reader.last_app_hash()?,
            validators: reader.validators()?,
            vote_extensions_height: reader.vote_extensions_height()?,
            pending: None,
        };
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
                consensus: Mutex::new(consensus),
                mempool: Mutex::new(mempool),
                signatures: SignatureCache::new(SIGNATURE_CACHE_SIZE),
                observer,
                censor,
            }),
        })
    }

    /// Refuses new transactions (code `mempool_full`) while this node's
    /// mempool holds `max_txs` that passed CheckTx since the last block
    /// (capped at 20,000); proof and prover-set transactions
    /// ([`crate::proposal::back_pressure_exempt`]) are always let in. Keep it under CometBFT's `mempool.size` by more
    /// than the CheckTx calls in flight at once: CometBFT answers "ok" to
    /// the client when the app accepts a transaction, then drops it without
    /// a word if its mempool filled up meanwhile.
    pub fn set_mempool_limit(&self, max_txs: usize) {
        lock(&self.shared.mempool).limit = max_txs.clamp(1, MAX_TRACKED_TXS);
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
        check_stateless(bytes, &params, &chain_id, &self.shared.signatures)
    }

    /// The account's next nonce counting what this node's mempool holds.
    pub fn mempool_nonce(&self, address: &Address) -> Result<u64, StoreError> {
        Ok(lock(&self.shared.mempool).delta.account(address)?.nonce)
    }

    pub fn reader(&self) -> Reader {
        Reader::new(self.shared.store.clone())
    }

    fn context<'a>(&'a self, state: &'a ConsensusState, height: u64) -> BlockContext<'a> {
        BlockContext {
            params: &state.params,
            chain_id: &state.chain_id,
            signatures: &self.shared.signatures,
            height,
            validators: &state.validators,
            vote_extensions_height: state.vote_extensions_height,
            censor: self.shared.censor.as_deref(),
        }
    }

    fn apply_genesis(&self, request: &abci::RequestInitChain) -> Result<Vec<u8>, String> {
        let genesis = Genesis::parse(&request.app_state_bytes).map_err(|e| e.to_string())?;
        let mut validators = pb::ValidatorSet::default();
        for update in &request.validators {
            match update.pub_key.as_ref().and_then(|k| k.sum.as_ref()) {
                Some(Sum::Ed25519(key)) => validators.validators.push(pb::Validator {
                    address: validator_address(key),
                    public_key: key.clone(),
                    power: update.power,
                }),
                _ => return Err("only ed25519 validator keys are supported".into()),
            }
        }
        let vote_extensions_height = request
            .consensus_params
            .as_ref()
            .and_then(|p| p.abci.as_ref())
            .map(|a| to_u64(a.vote_extensions_enable_height))
            .unwrap_or(0);
        let mut delta = StateDelta::new(self.shared.store.clone());
        delta.put_meta(keys::META_CHAIN_ID, request.chain_id.as_bytes().to_vec());
        delta.put_meta(keys::META_PARAMS, genesis.params.to_pb().encode_to_vec());
        delta.put_meta(keys::META_VALIDATORS, validators.encode_to_vec());
        delta.put_meta(
            keys::META_VOTE_EXTENSIONS_HEIGHT,
            vote_extensions_height.to_be_bytes().to_vec(),
        );
        for account in &genesis.accounts {
            delta.put_account(account);
        }
        for rollup in &genesis.rollups {
            delta.put_rollup(rollup);
        }
        delta.put_fee_pool(0);
        let app_hash = genesis_app_hash(delta.writes());
        delta.put_meta(keys::META_LAST_HEIGHT, 0u64.to_be_bytes().to_vec());
        delta.put_meta(keys::META_LAST_APP_HASH, app_hash.to_vec());
        self.shared
            .store
            .commit(&delta.into_writes())
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

    fn finalize(&self, request: &abci::RequestFinalizeBlock) -> abci::ResponseFinalizeBlock {
        let height = to_u64(request.height);
        let span = tracing::info_span!("finalize_block", height);
        let _guard = span.enter();
        let mut consensus = lock(&self.shared.consensus);
        if height != consensus.last_height + 1 {
            tracing::error!(
                last = consensus.last_height,
                "FinalizeBlock for an unexpected height; executing it anyway"
            );
        }
        let txs: Vec<Vec<u8>> = request.txs.iter().map(|t| t.to_vec()).collect();
        let mut delta = StateDelta::new(self.shared.store.clone());
        let run = match self
            .context(&consensus, height)
            .run(&mut delta, &txs, false)
        {
            Ok(run) => run,
            // Without storage there is no honest way to answer.
            Err(error) => panic!("cannot execute block {height}: {error}"),
        };
        let mut tx_results = Vec::with_capacity(txs.len());
        let mut batches: BTreeMap<RollupId, Vec<pb::BatchItem>> = BTreeMap::new();
        let mut paid: Vec<(u64, Vec<(RollupId, u64)>)> = Vec::new();
        let mut summary = BlockSummary {
            height,
            tx_count: txs.len() as u64,
            tx_hashes: txs.iter().map(|t| seqnet_proto::sha256(t)).collect(),
            ..BlockSummary::default()
        };
        for (bytes, result) in txs.iter().zip(run.results) {
            match result {
                TxResult::System { opened, votes } => {
                    summary.extended_commit_bytes = bytes.len() as u64;
                    let mut events = vec![Event {
                        kind: "extended_commit",
                        attributes: vec![
                            ("votes", votes.to_string()),
                            ("bytes", bytes.len().to_string()),
                            ("forced_opened", opened.len().to_string()),
                        ],
                    }];
                    for request in &opened {
                        *summary
                            .forced_opened
                            .entry(source_name(request.source))
                            .or_insert(0) += 1;
                        events.push(crate::forced::opened_event(request));
                    }
                    tx_results.push(abci::ExecTxResult {
                        code: Code::Ok.as_u32(),
                        events: events.into_iter().map(to_abci_event).collect(),
                        ..Default::default()
                    });
                }
                TxResult::Executed(outcome) => {
                    if outcome.forced_opened > 0 {
                        *summary.forced_opened.entry("request").or_insert(0) +=
                            outcome.forced_opened;
                    }
                    summary.proofs_accepted += outcome.proofs;
                    if !outcome.items.is_empty() {
                        paid.push((
                            outcome.fee,
                            outcome
                                .items
                                .iter()
                                .map(|(r, i)| (*r, i.data.len() as u64))
                                .collect(),
                        ));
                    }
                    for (rollup_id, item) in outcome.items {
                        let entry = summary.rollups.entry(rollup_id).or_insert((0, 0));
                        entry.0 += 1;
                        entry.1 += item.data.len() as u64;
                        batches.entry(rollup_id).or_default().push(item);
                    }
                    tx_results.push(abci::ExecTxResult {
                        code: Code::Ok.as_u32(),
                        events: outcome.events.into_iter().map(to_abci_event).collect(),
                        ..Default::default()
                    });
                }
                TxResult::Failed(error) => {
                    summary.failed_txs += 1;
                    tracing::warn!(%error, code = %error.code(), "tx failed in block");
                    tx_results.push(abci::ExecTxResult {
                        code: error.code().as_u32(),
                        log: error.to_string(),
                        codespace: "seqnet".into(),
                        ..Default::default()
                    });
                }
            }
        }
        let mut block_events = Vec::new();
        for request in &run.forced_included {
            summary
                .forced_delays
                .push(height.saturating_sub(request.requested_height));
            block_events.push(Event {
                kind: "forced_included",
                attributes: vec![
                    ("id", request.id.to_string()),
                    ("tx_hash", hex::encode(&request.tx_hash)),
                    ("requested_height", request.requested_height.to_string()),
                ],
            });
        }
        for request in &run.forced_failed {
            summary.forced_failed += 1;
            block_events.push(Event {
                kind: "forced_failed",
                attributes: vec![
                    ("id", request.id.to_string()),
                    ("tx_hash", hex::encode(&request.tx_hash)),
                    ("code", request.failure_code.to_string()),
                    ("reason", request.failure.clone()),
                ],
            });
        }
        let fees = crate::provers::batch_fees(&paid);
        let block_batches: Vec<crate::provers::BlockBatch<'_>> = batches
            .iter()
            .map(|(rollup_id, items)| crate::provers::BlockBatch {
                rollup_id: *rollup_id,
                items,
                fees: fees.get(rollup_id).copied().unwrap_or(0),
            })
            .collect();
        let proving = match crate::provers::end_block(
            &mut delta,
            &consensus.params,
            height,
            &consensus.last_app_hash,
            &block_batches,
        ) {
            Ok(proving) => proving,
            // Storage, or an overflow no honest chain reaches: every node fails alike.
            Err(error) => panic!("cannot settle proof jobs of block {height}: {error}"),
        };
        summary.jobs_opened = proving.jobs_opened;
        summary.jobs_reassigned = proving.jobs_reassigned;
        summary.jobs_proven = proving.jobs_proven;
        summary.transitions_dropped = proving.transitions_dropped;
        summary.jobs_open = proving.jobs_open;
        summary.jobs_pending = proving.jobs_pending;
        summary.jobs_late = proving.jobs_late;
        summary.proven_height = proving.proven_height;
        block_events.extend(proving.events);
        summary.forced_pending = delta
            .forced_queue()
            .map(|q| q.pending.len() as u64)
            .unwrap_or(0);
        // Leaves sorted by namespace, block order within one.
        let mut leaves = Vec::new();
        for (rollup_id, items) in &batches {
            for item in items {
                leaves.push(NmtNode::leaf(*rollup_id, &item.encode_to_vec()));
            }
            delta.put_batch(&pb::Batch {
                rollup_id: *rollup_id,
                height,
                items: items.clone(),
                proof: None,
                root: None,
                proven: None,
            });
        }
        let root = NamespacedMerkleTree::from_leaves(leaves.clone())
            .map(|t| t.root())
            .unwrap_or_else(|_| NmtRoot::empty());
        let app_hash = block_app_hash(&consensus.last_app_hash, height, &root, delta.writes());
        let record = pb::BlockRecord {
            height,
            nmt_root: Some((&root).into()),
            app_hash: app_hash.to_vec(),
            tx_count: summary.tx_count,
            leaves: leaves.iter().map(pb::NmtNode::from).collect(),
        };
        let mut writes = delta.into_writes();
        writes.put(Cf::Blocks, keys::block(height), record.encode_to_vec());
        writes.put(
            Cf::Meta,
            keys::META_LAST_HEIGHT.to_vec(),
            height.to_be_bytes().to_vec(),
        );
        writes.put(
            Cf::Meta,
            keys::META_LAST_APP_HASH.to_vec(),
            app_hash.to_vec(),
        );
        summary.app_hash = app_hash.to_vec();
        tracing::info!(
            txs = summary.tx_count,
            failed = summary.failed_txs,
            leaves = leaves.len(),
            forced_included = run.forced_included.len(),
            forced_failed = run.forced_failed.len(),
            app_hash = %hex::encode(app_hash),
            "block executed"
        );
        block_events.push(Event {
            kind: "block",
            attributes: vec![
                ("nmt_root", hex::encode(root.node.digest)),
                ("leaves", root.leaf_count.to_string()),
            ],
        });
        consensus.pending = Some(PendingBlock {
            height,
            writes,
            summary,
        });
        abci::ResponseFinalizeBlock {
            events: block_events.into_iter().map(to_abci_event).collect(),
            tx_results,
            validator_updates: vec![],
            consensus_param_updates: None,
            app_hash: app_hash.to_vec().into(),
        }
    }

    fn commit_pending(&self) -> Result<Option<BlockSummary>, StoreError> {
        let mut consensus = lock(&self.shared.consensus);
        let Some(pending) = consensus.pending.take() else {
            return Ok(None);
        };
        self.shared.store.commit(&pending.writes)?;
        consensus.last_height = pending.height;
        consensus.last_app_hash = pending.summary.app_hash.clone();
        // CometBFT holds the mempool lock across Commit and the recheck that
        // follows: reset the overlay so the recheck rebuilds it on new state.
        let mut mempool = lock(&self.shared.mempool);
        mempool.delta.reset();
        mempool.height = pending.height;
        for hash in &pending.summary.tx_hashes {
            mempool.waiting.remove(hash);
        }
        // Whatever was not rechecked since the last commit left the mempool.
        let generation = mempool.generation;
        mempool.waiting.retain(|_, w| w.generation >= generation);
        mempool.generation += 1;
        Ok(Some(pending.summary))
    }

    fn run_query(&self, path: &str) -> Result<Vec<u8>, QueryError> {
        let reader = self.reader();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let number = |text: &str, what: &str| {
            text.parse::<u64>()
                .map_err(|_| QueryError::BadRequest(format!("{what} {text:?} is not a number")))
        };
        Ok(match parts.as_slice() {
            ["account", address] => {
                let address = Address::from_hex(address).map_err(QueryError::BadRequest)?;
                reader.account(&address)?.encode_to_vec()
            }
            ["rollup", id] => {
                let id = number(id, "rollup id")?;
                reader
                    .rollup(id)?
                    .ok_or(QueryError::UnknownRollup(id))?
                    .encode_to_vec()
            }
            ["batch", rollup, height] => reader
                .batch(number(rollup, "rollup id")?, number(height, "height")?)?
                .encode_to_vec(),
            ["block", height] => reader.block(number(height, "height")?)?.encode_to_vec(),
            ["forced", hash] => {
                let hash = hex::decode(hash)
                    .ok()
                    .and_then(|h| <[u8; 32]>::try_from(h).ok())
                    .ok_or_else(|| QueryError::BadRequest(format!("{hash:?} is not a 32-byte hex hash")))?;
                reader.forced_request(&hash)?.encode_to_vec()
            }
            ["prover", address] => {
                let address = Address::from_hex(address).map_err(QueryError::BadRequest)?;
                reader
                    .prover(&address)?
                    .ok_or_else(|| QueryError::BadRequest(format!("{address} is not a prover")))?
                    .encode_to_vec()
            }
            ["jobs", rollup] => reader
                .rollup_jobs(number(rollup, "rollup id")?)?
                .encode_to_vec(),
            ["finality"] => reader.finality()?.encode_to_vec(),
            ["status"] => reader.status()?.encode_to_vec(),
            ["params"] => reader.params()?.to_pb().encode_to_vec(),
            _ => {
                return Err(QueryError::BadRequest(format!(
                    "unknown path {path:?}; try /account/<hex>, /rollup/<id>, /batch/<rollup>/<height>, /block/<height>, /forced/<tx hash>, /prover/<hex>, /jobs/<rollup>, /finality, /status, /params"
                )))
            }
        })
    }

    /// Transactions this node's mempool has held for at least the waiting
    /// threshold and that passed their last recheck, within the list bounds.
    fn inclusion_list(&self, height: u64) -> Vec<Vec<u8>> {
        let mempool = lock(&self.shared.mempool);
        let params = &mempool.params;
        let mut candidates: Vec<(&u64, &[u8; 32], &Vec<u8>)> = mempool
            .waiting
            .iter()
            .filter(|(_, w)| w.first_seen.saturating_add(params.inclusion_wait_blocks) <= height)
            .map(|(hash, w)| (&w.first_seen, hash, &w.bytes))
            .collect();
        candidates.sort();
        let mut list = Vec::new();
        let mut bytes: u64 = 0;
        for (_, _, tx) in candidates {
            if list.len() as u64 >= params.max_inclusion_list_txs {
                break;
            }
            if bytes.saturating_add(tx.len() as u64) > params.max_inclusion_list_bytes {
                continue;
            }
            bytes += tx.len() as u64;
            list.push(tx.clone());
        }
        list
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

/// `H("seqnet/app/v2/genesis" || digest(genesis writes))`.
///
/// v2: pipelined proving (spans, pending transitions) changed the state
/// layout and its rules; the version marks the break.
pub fn genesis_app_hash(writes: &WriteSet) -> [u8; 32] {
    let mut buf = b"seqnet/app/v2/genesis".to_vec();
    buf.extend_from_slice(&writes.digest());
    seqnet_proto::sha256(&buf)
}

/// `H("seqnet/app/v2/block" || previous app hash || height || NMT root || digest(state writes))`:
/// a chain over every state change since genesis, so equal hashes mean equal state.
pub fn block_app_hash(previous: &[u8], height: u64, root: &NmtRoot, writes: &WriteSet) -> [u8; 32] {
    let mut buf = b"seqnet/app/v2/block".to_vec();
    buf.extend_from_slice(&(previous.len() as u32).to_be_bytes());
    buf.extend_from_slice(previous);
    buf.extend_from_slice(&height.to_be_bytes());
    buf.extend_from_slice(&root.commitment_bytes());
    buf.extend_from_slice(&writes.digest());
    seqnet_proto::sha256(&buf)
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
        let height = self.reader().last_height().unwrap_or(0);
        match self.run_query(&request.path) {
            Ok(value) => abci::ResponseQuery {
                value: value.into(),
                height: i64::try_from(height).unwrap_or(i64::MAX),
                ..Default::default()
            },
            Err(error) => abci::ResponseQuery {
                code: 1,
                log: error.to_string(),
                codespace: "seqnet".into(),
                height: i64::try_from(height).unwrap_or(i64::MAX),
                ..Default::default()
            },
        }
    }

    fn check_tx(&self, request: abci::RequestCheckTx) -> abci::ResponseCheckTx {
        let recheck = request.r#type == abci::CheckTxType::Recheck as i32;
        let mut mempool = lock(&self.shared.mempool);
        let MempoolState {
            chain_id,
            params,
            delta,
            height,
            generation,
            waiting,
            limit,
        } = &mut *mempool;
        let stateless = check_stateless(&request.tx, params, chain_id, &self.shared.signatures);
        // Proof and prover-set transactions are never refused for room: the
        // gap to CometBFT's own limit is theirs, so a mempool full of rollup
        // data held back by back-pressure cannot keep out the proofs that
        // would end it.
        let room_needed = stateless
            .as_ref()
            .is_ok_and(|tx| !crate::proposal::back_pressure_exempt(tx));
        if !recheck && room_needed && waiting.len() >= *limit {
            let held = waiting.len();
            let limit = *limit;
            drop(mempool);
            self.shared.observer.check_tx(Code::MempoolFull, recheck);
            return abci::ResponseCheckTx {
                code: Code::MempoolFull.as_u32(),
                log: format!(
                    "{}: this node's mempool holds {held} transactions (limit {limit}); retry later",
                    Code::MempoolFull.name()
                ),
                codespace: "seqnet".into(),
                ..Default::default()
            };
        }
        let result = stateless.map_err(ExecError::from).and_then(|tx| {
            // The height only feeds rollup statistics and deadlines, which
            // the mempool overlay never commits.
            execute(delta, params, &tx, *height).map(|_| tx)
        });
        match &result {
            Ok(tx) => {
                if let Some(entry) = waiting.get_mut(&tx.hash()) {
                    entry.generation = *generation;
                } else if waiting.len() < MAX_TRACKED_TXS {
                    waiting.insert(
                        tx.hash(),
                        Waiting {
                            first_seen: *height,
                            generation: *generation,
                            bytes: request.tx.to_vec(),
                        },
                    );
                }
            }
            Err(_) => {
                waiting.remove(&seqnet_proto::sha256(&request.tx));
            }
        }
        drop(mempool);
        match result {
            Ok(tx) => {
                self.shared.observer.check_tx(Code::Ok, recheck);
                abci::ResponseCheckTx {
                    code: Code::Ok.as_u32(),
                    data: tx.hash().to_vec().into(),
                    gas_wanted: 1,
                    ..Default::default()
                }
            }
            Err(error) => {
                let code = error.code();
                self.shared.observer.check_tx(code, recheck);
                tracing::debug!(%error, %code, recheck, "CheckTx rejected");
                abci::ResponseCheckTx {
                    code: code.as_u32(),
                    log: format!("{}: {error}", code.name()),
                    codespace: "seqnet".into(),
                    ..Default::default()
                }
            }
        }
    }

    fn commit(&self) -> abci::ResponseCommit {
        match self.commit_pending() {
            Ok(Some(summary)) => {
                tracing::debug!(height = summary.height, "committed");
                self.shared.observer.block_committed(&summary);
            }
            Ok(None) => tracing::warn!("Commit without a finalized block"),
            // Acknowledging a block we could not persist would lose it.
            Err(error) => panic!("cannot persist block: {error}"),
        }
        abci::ResponseCommit { retain_height: 0 }
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
        let consensus = lock(&self.shared.consensus);
        let txs: Vec<Vec<u8>> = request.txs.iter().map(|t| t.to_vec()).collect();
        let mut delta = StateDelta::new(self.shared.store.clone());
        let status = match self.context(&consensus, height).process(&mut delta, &txs) {
            Ok(()) => abci::response_process_proposal::ProposalStatus::Accept,
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
}
