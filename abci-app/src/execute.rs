//! Transaction checks and execution, shared by CheckTx, PrepareProposal,
//! ProcessProposal and FinalizeBlock so that they cannot drift apart.
//!
//! [`check_stateless`] needs no state; [`execute`] checks a transaction
//! against a [`StateDelta`] and applies it only if every check passes: a
//! failing transaction leaves the delta untouched.

use std::collections::BTreeMap;
use std::sync::Mutex;

use seqnet_proto::{pb, Action, Address, Code, RollupId, Transaction, TxError};

use crate::params::ChainParams;
use crate::state::StateDelta;
use crate::store::StoreError;

/// An event emitted by a transaction or block (converted to ABCI events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: &'static str,
    pub attributes: Vec<(&'static str, String)>,
}

/// What a successful transaction did.
#[derive(Clone, Debug, Default)]
pub struct TxOutcome {
    pub events: Vec<Event>,
    /// Rollup data in action order, for the block's batches.
    pub items: Vec<(RollupId, pb::BatchItem)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error("nonce {got} of account {address} was already used (next nonce is {expected})")]
    NonceReplayed {
        address: Address,
        expected: u64,
        got: u64,
    },
    #[error("nonce {got} of account {address} skips ahead (next nonce is {expected})")]
    NonceGap {
        address: Address,
        expected: u64,
        got: u64,
    },
    #[error("fee {offered} is below the required {required}")]
    FeeTooLow { offered: u64, required: u64 },
    #[error("account {address} has balance {balance}, needs {needed}")]
    InsufficientBalance {
        address: Address,
        balance: u64,
        needed: u64,
    },
    #[error("rollup {0} is not registered")]
    UnknownRollup(RollupId),
    #[error("rollup {0} is already registered")]
    RollupExists(RollupId),
    #[error("{signer} is not the owner of rollup {rollup_id}")]
    NotOwner {
        signer: Address,
        rollup_id: RollupId,
    },
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0} would overflow")]
    Overflow(&'static str),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
}

impl ExecError {
    pub fn code(&self) -> Code {
        match self {
            ExecError::Tx(e) => e.code(),
            ExecError::NonceReplayed { .. } => Code::NonceReplayed,
            ExecError::NonceGap { .. } => Code::NonceGap,
            ExecError::FeeTooLow { .. } => Code::FeeTooLow,
            ExecError::InsufficientBalance { .. } => Code::InsufficientBalance,
            ExecError::UnknownRollup(_) => Code::UnknownRollup,
            ExecError::RollupExists(_) => Code::RollupExists,
            ExecError::NotOwner { .. } => Code::Unauthorized,
            ExecError::InvalidParameter(_) => Code::InvalidParameter,
            ExecError::Overflow(_) => Code::Overflow,
            ExecError::Store(_) => Code::Internal,
        }
    }
}

/// Hashes of transactions whose signatures verified, so the mempool's
/// recheck after every commit and the proposal checks skip ed25519. Bounded;
/// the oldest entries go first. Only ever a shortcut: a miss re-verifies.
pub struct SignatureCache {
    inner: Mutex<CacheInner>,
    capacity: usize,
}

#[derive(Default)]
struct CacheInner {
    set: std::collections::BTreeSet<[u8; 32]>,
    order: std::collections::VecDeque<[u8; 32]>,
}

impl SignatureCache {
    pub fn new(capacity: usize) -> SignatureCache {
        SignatureCache {
            inner: Mutex::new(CacheInner::default()),
            capacity,
        }
    }

    pub fn verify(&self, tx: &Transaction) -> Result<(), TxError> {
        let hash = tx.hash();
        if let Ok(inner) = self.inner.lock() {
            if inner.set.contains(&hash) {
                return Ok(());
            }
        }
        tx.verify_signature()?;
        if let Ok(mut inner) = self.inner.lock() {
            if inner.set.insert(hash) {
                inner.order.push_back(hash);
            }
            while inner.order.len() > self.capacity {
                if let Some(old) = inner.order.pop_front() {
                    inner.set.remove(&old);
                }
            }
        }
        Ok(())
    }
}

/// Decoding, chain id and signature: everything that needs no state.
pub fn check_stateless(
    bytes: &[u8],
    params: &ChainParams,
    chain_id: &str,
    signatures: &SignatureCache,
) -> Result<Transaction, TxError> {
    let tx = Transaction::decode(
        bytes,
        params.max_tx_bytes_usize(),
        params.max_actions_usize(),
    )?;
    tx.check_chain_id(chain_id)?;
    signatures.verify(&tx)?;
    Ok(tx)
}

/// Checks `tx` against `state` and, if every check passes, applies it.
pub fn execute(
    state: &mut StateDelta,
    params: &ChainParams,
    tx: &Transaction,
    height: u64,
) -> Result<TxOutcome, ExecError> {
    let signer = tx.signer;
    let body = &tx.body;
    let mut accounts: BTreeMap<Address, pb::Account> = BTreeMap::new();
    let mut rollups: BTreeMap<RollupId, pb::Rollup> = BTreeMap::new();
    let mut outcome = TxOutcome::default();
    let tx_hash = hex::encode(tx.hash());

    let mut account = state.account(&signer)?;
    if body.nonce < account.nonce {
        return Err(ExecError::NonceReplayed {
            address: signer,
            expected: account.nonce,
            got: body.nonce,
        });
    }
    if body.nonce > account.nonce {
        return Err(ExecError::NonceGap {
            address: signer,
            expected: account.nonce,
            got: body.nonce,
        });
    }
    let registrations = body
        .actions
        .iter()
        .filter(|a| matches!(a, Action::RegisterRollup { .. }))
        .count() as u64;
    let required = params
        .required_fee(body.data_bytes(), registrations)
        .ok_or(ExecError::Overflow("required fee"))?;
    if body.fee < required {
        return Err(ExecError::FeeTooLow {
            offered: body.fee,
            required,
        });
    }
    let outgoing = body
        .actions
        .iter()
        .map(|a| match a {
            Action::Transfer { amount, .. } => *amount,
            _ => 0,
        })
        .try_fold(body.fee, u64::checked_add)
        .ok_or(ExecError::Overflow("fee plus transfers"))?;
    if account.balance < outgoing {
        return Err(ExecError::InsufficientBalance {
            address: signer,
            balance: account.balance,
            needed: outgoing,
        });
    }
    account.balance -= body.fee;
    account.nonce = account
        .nonce
        .checked_add(1)
        .ok_or(ExecError::Overflow("nonce"))?;
    accounts.insert(signer, account);
    outcome.events.push(Event {
        kind: "tx",
        attributes: vec![
            ("hash", tx_hash.clone()),
            ("signer", signer.to_string()),
            ("nonce", body.nonce.to_string()),
            ("fee", body.fee.to_string()),
        ],
    });

    for (index, action) in body.actions.iter().enumerate() {
        match action {
            Action::RollupData { rollup_id, data } => {
                let rollup = load_rollup(state, &mut rollups, *rollup_id)?
                    .ok_or(ExecError::UnknownRollup(*rollup_id))?;
                let stats = rollup.stats.get_or_insert_with(Default::default);
                stats.items = stats
                    .items
                    .checked_add(1)
                    .ok_or(ExecError::Overflow("rollup items"))?;
                stats.bytes = stats
                    .bytes
                    .checked_add(data.len() as u64)
                    .ok_or(ExecError::Overflow("rollup bytes"))?;
                stats.last_height = height;
                outcome.items.push((
                    *rollup_id,
                    pb::BatchItem {
                        tx_hash: tx.hash().to_vec(),
                        signer: signer.0.to_vec(),
                        nonce: body.nonce,
                        action_index: index as u32,
                        data: data.clone(),
                    },
                ));
                outcome.events.push(Event {
                    kind: "rollup_data",
                    attributes: vec![
                        ("rollup_id", rollup_id.to_string()),
                        ("bytes", data.len().to_string()),
                        ("tx_hash", tx_hash.clone()),
                    ],
                });
            }
            Action::Transfer { to, amount } => {
                let from = accounts
                    .get_mut(&signer)
                    .ok_or(ExecError::Overflow("signer account"))?;
                from.balance =
                    from.balance
                        .checked_sub(*amount)
                        .ok_or(ExecError::InsufficientBalance {
                            address: signer,
                            balance: from.balance,
                            needed: *amount,
                        })?;
                if !accounts.contains_key(to) {
                    let recipient = state.account(to)?;
                    accounts.insert(*to, recipient);
                }
                let recipient = accounts
                    .get_mut(to)
                    .ok_or(ExecError::Overflow("recipient account"))?;
                recipient.balance = recipient
                    .balance
                    .checked_add(*amount)
                    .ok_or(ExecError::Overflow("recipient balance"))?;
                outcome.events.push(Event {
                    kind: "transfer",
                    attributes: vec![
                        ("from", signer.to_string()),
                        ("to", to.to_string()),
                        ("amount", amount.to_string()),
                    ],
                });
            }
            Action::RegisterRollup {
                rollup_id,
                name,
                settings,
            } => {
                if load_rollup(state, &mut rollups, *rollup_id)?.is_some() {
                    return Err(ExecError::RollupExists(*rollup_id));
                }
                check_windows(params, settings.proof_window, settings.inclusion_window)?;
                rollups.insert(
                    *rollup_id,
                    pb::Rollup {
                        id: *rollup_id,
                        name: name.clone(),
                        owner: signer.0.to_vec(),
                        verifying_key: settings.verifying_key.clone(),
                        proof_window: settings.proof_window,
                        inclusion_window: settings.inclusion_window,
                        registered_height: height,
                        stats: Some(pb::RollupStats::default()),
                    },
                );
                outcome.events.push(Event {
                    kind: "register_rollup",
                    attributes: vec![
                        ("rollup_id", rollup_id.to_string()),
                        ("owner", signer.to_string()),
                    ],
                });
            }
            Action::UpdateRollup {
                rollup_id,
                settings,
            } => {
                let rollup = load_rollup(state, &mut rollups, *rollup_id)?
                    .ok_or(ExecError::UnknownRollup(*rollup_id))?;
                if rollup.owner != signer.0 {
                    return Err(ExecError::NotOwner {
                        signer,
                        rollup_id: *rollup_id,
                    });
                }
                check_windows(params, settings.proof_window, settings.inclusion_window)?;
                rollup.verifying_key = settings.verifying_key.clone();
                rollup.proof_window = settings.proof_window;
                rollup.inclusion_window = settings.inclusion_window;
                outcome.events.push(Event {
                    kind: "update_rollup",
                    attributes: vec![("rollup_id", rollup_id.to_string())],
                });
            }
        }
    }

    // Every check passed: apply.
    let pool = state
        .fee_pool()?
        .checked_add(body.fee)
        .ok_or(ExecError::Overflow("fee pool"))?;
    state.put_fee_pool(pool);
    for account in accounts.values() {
        state.put_account(account);
    }
    for rollup in rollups.values() {
        state.put_rollup(rollup);
    }
    Ok(outcome)
}

fn load_rollup<'a>(
    state: &StateDelta,
    cache: &'a mut BTreeMap<RollupId, pb::Rollup>,
    id: RollupId,
) -> Result<Option<&'a mut pb::Rollup>, ExecError> {
    if let std::collections::btree_map::Entry::Vacant(slot) = cache.entry(id) {
        match state.rollup(id)? {
            Some(r) => {
                slot.insert(r);
            }
            None => return Ok(None),
        }
    }
    Ok(cache.get_mut(&id))
}

fn check_windows(params: &ChainParams, proof: u64, inclusion: u64) -> Result<(), ExecError> {
    if proof > params.max_proof_window {
        return Err(ExecError::InvalidParameter(format!(
            "proof_window {proof} exceeds the chain's maximum {}",
            params.max_proof_window
        )));
    }
    if inclusion > params.max_inclusion_window {
        return Err(ExecError::InvalidParameter(format!(
            "inclusion_window {inclusion} exceeds the chain's maximum {}",
            params.max_inclusion_window
        )));
    }
    Ok(())
}
