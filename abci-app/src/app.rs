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
use seqnet_proto::nmt::{NamespacedMerkleTree, NmtNode, NmtRoot};
use seqnet_proto::{pb, Address, Code, RollupId};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci;

use crate::execute::{check_stateless, execute, Event, ExecError, SignatureCache};
use crate::genesis::Genesis;
use crate::keys;
use crate::params::ChainParams;
use crate::proposal::{Builder, ProposalFilter};
use crate::query::{QueryError, Reader};
use crate::state::StateDelta;
use crate::store::{Cf, Store, StoreError, WriteSet};

const APP_VERSION: u64 = 1;
const SIGNATURE_CACHE_SIZE: usize = 100_000;

/// What the node around the app wants to hear about (metrics, streams).
pub trait Observer: Send + Sync + 'static {
    fn check_tx(&self, _code: Code, _recheck: bool) {}
    fn proposal_rejected(&self, _height: u64, _reason: &str) {}
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
    pending: Option<PendingBlock>,
}

struct PendingBlock {
    height: u64,
    writes: WriteSet,
    summary: BlockSummary,
}

struct MempoolState {
    chain_id: String,
    params: ChainParams,
    delta: StateDelta,
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
        let consensus = ConsensusState {
            chain_id: chain_id.clone(),
            params: params.clone(),
            last_height: reader.last_height()?,
            last_app_hash: reader.last_app_hash()?,
            pending: None,
        };
        let mempool = MempoolState {
            chain_id,
            params,
            delta: StateDelta::new(store.clone()),
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

    pub fn reader(&self) -> Reader {
        Reader::new(self.shared.store.clone())
    }

    fn builder<'a>(&'a self, state: &'a ConsensusState, height: u64) -> Builder<'a> {
        Builder {
            params: &state.params,
            chain_id: &state.chain_id,
            signatures: &self.shared.signatures,
            height,
            censor: self.shared.censor.as_deref(),
        }
    }

    fn apply_genesis(&self, request: &abci::RequestInitChain) -> Result<Vec<u8>, String> {
        let genesis = Genesis::parse(&request.app_state_bytes).map_err(|e| e.to_string())?;
        let mut delta = StateDelta::new(self.shared.store.clone());
        delta.put_meta(keys::META_CHAIN_ID, request.chain_id.as_bytes().to_vec());
        delta.put_meta(keys::META_PARAMS, genesis.params.to_pb().encode_to_vec());
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
        let mut mempool = lock(&self.shared.mempool);
        mempool.chain_id = request.chain_id.clone();
        mempool.params = genesis.params;
        mempool.delta.reset();
        Ok(app_hash.to_vec())
    }

    fn finalize(&self, request: &abci::RequestFinalizeBlock) -> abci::ResponseFinalizeBlock {
        let height = u64::try_from(request.height).unwrap_or(0);
        let span = tracing::info_span!("finalize_block", height);
        let _guard = span.enter();
        let mut consensus = lock(&self.shared.consensus);
        if height != consensus.last_height + 1 {
            tracing::error!(
                last = consensus.last_height,
                "FinalizeBlock for an unexpected height; executing it anyway"
            );
        }
        let mut delta = StateDelta::new(self.shared.store.clone());
        let mut tx_results = Vec::with_capacity(request.txs.len());
        let mut batches: BTreeMap<RollupId, Vec<pb::BatchItem>> = BTreeMap::new();
        let mut summary = BlockSummary {
            height,
            tx_count: request.txs.len() as u64,
            ..BlockSummary::default()
        };
        for bytes in &request.txs {
            let result = check_stateless(
                bytes,
                &consensus.params,
                &consensus.chain_id,
                &self.shared.signatures,
            )
            .map_err(ExecError::from)
            .and_then(|tx| execute(&mut delta, &consensus.params, &tx, height));
            match result {
                Ok(outcome) => {
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
                Err(error) => {
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
            app_hash = %hex::encode(app_hash),
            "block executed"
        );
        consensus.pending = Some(PendingBlock {
            height,
            writes,
            summary,
        });
        abci::ResponseFinalizeBlock {
            events: vec![to_abci_event(Event {
                kind: "block",
                attributes: vec![
                    ("nmt_root", hex::encode(root.node.digest)),
                    ("leaves", root.leaf_count.to_string()),
                ],
            })],
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
        lock(&self.shared.mempool).delta.reset();
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
            ["status"] => reader.status()?.encode_to_vec(),
            ["params"] => reader.params()?.to_pb().encode_to_vec(),
            _ => {
                return Err(QueryError::BadRequest(format!(
                    "unknown path {path:?}; try /account/<hex>, /rollup/<id>, /batch/<rollup>/<height>, /block/<height>, /status, /params"
                )))
            }
        })
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

/// `H("seqnet/app/v1/genesis" || digest(genesis writes))`.
pub fn genesis_app_hash(writes: &WriteSet) -> [u8; 32] {
    let mut buf = b"seqnet/app/v1/genesis".to_vec();
    buf.extend_from_slice(&writes.digest());
    seqnet_proto::sha256(&buf)
}

/// `H("seqnet/app/v1/block" || previous app hash || height || NMT root || digest(state writes))`:
/// a chain over every state change since genesis, so equal hashes mean equal state.
pub fn block_app_hash(previous: &[u8], height: u64, root: &NmtRoot, writes: &WriteSet) -> [u8; 32] {
    let mut buf = b"seqnet/app/v1/block".to_vec();
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
            Err(reason) => panic!("invalid genesis app_state: {reason}"),
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
        } = &mut *mempool;
        let result = check_stateless(&request.tx, params, chain_id, &self.shared.signatures)
            .map_err(ExecError::from)
            .and_then(|tx| {
                // The height only feeds rollup statistics, which the mempool
                // overlay never commits.
                execute(delta, params, &tx, 0).map(|_| tx)
            });
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
        let height = u64::try_from(request.height).unwrap_or(0);
        let span = tracing::debug_span!("prepare_proposal", height);
        let _guard = span.enter();
        let consensus = lock(&self.shared.consensus);
        let txs: Vec<Vec<u8>> = request.txs.iter().map(|t| t.to_vec()).collect();
        let max_bytes = u64::try_from(request.max_tx_bytes).unwrap_or(0);
        let mut delta = StateDelta::new(self.shared.store.clone());
        let selected = self
            .builder(&consensus, height)
            .prepare(&mut delta, &txs, max_bytes);
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
        let height = u64::try_from(request.height).unwrap_or(0);
        let span = tracing::debug_span!("process_proposal", height);
        let _guard = span.enter();
        let consensus = lock(&self.shared.consensus);
        let txs: Vec<Vec<u8>> = request.txs.iter().map(|t| t.to_vec()).collect();
        let mut delta = StateDelta::new(self.shared.store.clone());
        let status = match self.builder(&consensus, height).process(&mut delta, &txs) {
            Ok(()) => abci::response_process_proposal::ProposalStatus::Accept,
            Err(error) => {
                tracing::warn!(%error, "rejecting proposal");
                self.shared
                    .observer
                    .proposal_rejected(height, &error.to_string());
                abci::response_process_proposal::ProposalStatus::Reject
            }
        };
        abci::ResponseProcessProposal {
            status: status as i32,
        }
    }

    fn finalize_block(&self, request: abci::RequestFinalizeBlock) -> abci::ResponseFinalizeBlock {
        self.finalize(&request)
    }
}
