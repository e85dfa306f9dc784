//! What the app remembers about proofs, so each pays its pairings once:
//! prepared verifying keys and aggregation SRSs, and the (key, statement,
//! proof) triples and aggregates that verified (by CheckTx, a block's batch
//! pre-verification, or an earlier run of the same block). One
//! [`VerifierCache`] per app, shared by its connections; a pure memo: a
//! miss verifies again, the verdict is the same.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use seqnet_proto::aggregate::{AggregateError, PreparedVerifierSrs, VerifierSrs};
use seqnet_proto::groth16::{PreparedKey, ProofError, SpanStatement};

/// Verifying keys kept prepared.
const KEY_CACHE_SIZE: usize = 64;
/// Aggregation SRSs kept prepared.
const SRS_CACHE_SIZE: usize = 8;
/// Verified triples and aggregates remembered.
const VERIFIED_CACHE_SIZE: usize = 4_096;

type Memo<T, E> = Mutex<BTreeMap<[u8; 32], Result<Arc<T>, E>>>;

/// The app's memo of verification work (see the module docs).
#[derive(Default)]
pub struct VerifierCache {
    keys: Memo<PreparedKey, ProofError>,
    srs: Memo<PreparedVerifierSrs, AggregateError>,
    verified: Mutex<BTreeSet<[u8; 32]>>,
    batch_verified: AtomicU64,
}

fn memoized<T, E: Clone>(
    memo: &Memo<T, E>,
    bytes: &[u8],
    capacity: usize,
    make: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Result<Arc<T>, E> {
    let hash = seqnet_proto::sha256(bytes);
    if let Some(found) = memo.lock().ok().and_then(|m| m.get(&hash).cloned()) {
        return found;
    }
    let result = make(bytes).map(Arc::new);
    if let Ok(mut map) = memo.lock() {
        if map.len() >= capacity {
            map.clear();
        }
        map.insert(hash, result.clone());
    }
    result
}

/// The memo key of a (verifying key, statement, proof) triple.
pub(crate) fn verified_id(vk: &[u8], proof: &[u8], statement: &SpanStatement) -> [u8; 32] {
    let mut buf = Vec::with_capacity(proof.len().saturating_add(152));
    buf.extend_from_slice(&seqnet_proto::sha256(vk));
    buf.extend_from_slice(&statement.to_bytes());
    buf.extend_from_slice(proof);
    seqnet_proto::sha256(&buf)
}

/// The memo key of a verified aggregate: SRS, key, every statement and the
/// aggregate bytes (in the same set as [`verified_id`], under its own domain).
pub(crate) fn aggregate_id(
    srs: &[u8],
    vk: &[u8],
    statements: &[SpanStatement],
    aggregate: &[u8],
) -> [u8; 32] {
    let mut buf = Vec::with_capacity(
        statements
            .len()
            .saturating_mul(120)
            .saturating_add(aggregate.len())
            .saturating_add(96),
    );
    buf.extend_from_slice(b"seqnet/aggregate-memo/v2");
    buf.extend_from_slice(&seqnet_proto::sha256(srs));
    buf.extend_from_slice(&seqnet_proto::sha256(vk));
    buf.extend_from_slice(&(statements.len() as u64).to_be_bytes());
    for s in statements {
        buf.extend_from_slice(&s.to_bytes());
    }
    buf.extend_from_slice(aggregate);
    seqnet_proto::sha256(&buf)
}

impl VerifierCache {
    /// The prepared form of an encoded verifying key.
    pub(crate) fn prepared_key(&self, vk: &[u8]) -> Result<Arc<PreparedKey>, ProofError> {
        memoized(&self.keys, vk, KEY_CACHE_SIZE, PreparedKey::decode)
    }

    /// The prepared form of an encoded verifier SRS.
    pub(crate) fn prepared_srs(
        &self,
        bytes: &[u8],
    ) -> Result<Arc<PreparedVerifierSrs>, AggregateError> {
        memoized(&self.srs, bytes, SRS_CACHE_SIZE, |b| {
            VerifierSrs::decode(b).map(PreparedVerifierSrs::from)
        })
    }

    /// Whether the triple or aggregate with memo key `id` verified before.
    pub(crate) fn is_verified(&self, id: &[u8; 32]) -> bool {
        self.verified.lock().is_ok_and(|set| set.contains(id))
    }

    /// Remembers that `id` verified (only ever after a successful check).
    pub(crate) fn remember(&self, id: [u8; 32]) {
        if let Ok(mut set) = self.verified.lock() {
            if set.len() >= VERIFIED_CACHE_SIZE {
                set.clear();
            }
            set.insert(id);
        }
    }

    /// Verifies `proof` of `statement` under `vk`, remembering successes.
    pub(crate) fn verify(
        &self,
        vk: &[u8],
        proof: &[u8],
        statement: &SpanStatement,
    ) -> Result<(), ProofError> {
        let id = verified_id(vk, proof, statement);
        if self.is_verified(&id) {
            return Ok(());
        }
        self.prepared_key(vk)?.verify(proof, statement)?;
        self.remember(id);
        Ok(())
    }

    /// Counts proofs verified in a block's batch pre-verification.
    pub(crate) fn count_batch_verified(&self, n: u64) {
        self.batch_verified.fetch_add(n, Ordering::Relaxed);
    }

    /// Proofs this app verified in batches so far (for tests and metrics).
    pub fn batch_verified_total(&self) -> u64 {
        self.batch_verified.load(Ordering::Relaxed)
    }
}
