//! Stateless checks of a transaction: decoding within the size bounds, chain
//! id, and signatures (the envelope's, aggregate entries', and forced inner
//! transactions'), with a bounded cache of verified signatures.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;

use seqnet_proto::{Transaction, TxError};

use crate::params::ChainParams;

/// Hashes of transactions whose signatures verified, so the mempool's
/// recheck after every commit and the proposal checks skip ed25519. Bounded;
/// the oldest entries go first. Only ever a shortcut: a miss re-verifies.
pub(crate) struct SignatureCache {
    inner: Mutex<CacheInner>,
    capacity: usize,
}

#[derive(Default)]
struct CacheInner {
    set: BTreeSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl SignatureCache {
    pub(crate) fn new(capacity: usize) -> SignatureCache {
        SignatureCache {
            inner: Mutex::new(CacheInner::default()),
            capacity,
        }
    }

    pub(crate) fn verify(&self, tx: &Transaction) -> Result<(), TxError> {
        let hash = tx.hash();
        if let Ok(inner) = self.inner.lock() {
            if inner.set.contains(&hash) {
                return Ok(());
            }
        }
        tx.verify_signature()?;
        tx.verify_action_signatures()?;
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

/// Decoding, chain id and signatures: everything that needs no state.
pub(crate) fn check_stateless(
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
    for inner in tx.forced_transactions() {
        inner.check_chain_id(chain_id)?;
        signatures.verify(inner)?;
    }
    Ok(tx)
}
