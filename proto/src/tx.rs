//! Transactions: validated domain types, canonical sign bytes and ed25519
//! signing. Nothing outside this module takes a raw `pb::SignedTransaction`:
//! [`Transaction::decode`] is the one door from bytes to a transaction, and it
//! enforces size caps, canonical encoding and per-action structure.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use prost::Message;

use crate::codes::Code;
use crate::pb;

/// Domain separator of transaction signatures.
pub const TX_SIGN_DOMAIN: &[u8] = b"seqnet/tx/v1";
/// No transaction is ever larger than this, whatever the chain parameters say.
pub const HARD_MAX_TX_BYTES: usize = 1 << 20;
/// No transaction carries more actions than this.
pub const HARD_MAX_ACTIONS: usize = 256;
pub const MAX_CHAIN_ID_LEN: usize = 64;
pub const MAX_ROLLUP_NAME_LEN: usize = 64;
pub const MAX_VERIFYING_KEY_BYTES: usize = 64 * 1024;
/// Domain separator of a consensus key's signature for its operator.
pub const VALIDATOR_KEY_SIGN_DOMAIN: &[u8] = b"seqnet/validator-key/v1";
/// Domain separator of a prover's signature over one aggregate entry.
pub const PROOF_ENTRY_SIGN_DOMAIN: &[u8] = b"seqnet/proof-entry/v2";
/// No `SubmitAggregate` covers more jobs than this (the chain's verifier SRS
/// may allow fewer).
pub const MAX_AGGREGATE_ENTRIES: usize = 1024;

/// A rollup's id; also its namespace in the block's namespaced Merkle tree.
/// Zero is reserved.
pub type RollupId = u64;

/// Everything that can be wrong with a transaction, with the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transaction of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("transaction does not decode: {0}")]
    Malformed(String),
    #[error("{what} is not canonically encoded")]
    NonCanonical { what: &'static str },
    #[error("signer is not a valid ed25519 public key: {0}")]
    BadSigner(String),
    #[error("signature does not verify for signer {signer}")]
    BadSignature { signer: Address },
    #[error("transaction is for chain {got:?}, this chain is {expected:?}")]
    WrongChainId { expected: String, got: String },
    #[error("action {index}: {reason}")]
    InvalidAction { index: usize, reason: String },
    #[error("transaction has {count} actions; allowed 1..={limit}")]
    ActionCount { count: usize, limit: usize },
    #[error("chain id of {len} bytes; allowed 1..={MAX_CHAIN_ID_LEN}")]
    ChainIdLength { len: usize },
    #[error("action {index}, entry {entry}: signature does not verify for prover {prover}")]
    BadEntrySignature {
        index: usize,
        entry: usize,
        prover: Address,
    },
    #[error("action {index}: the consensus key {key} did not sign for operator {operator}")]
    BadKeySignature {
        index: usize,
        key: String,
        operator: Address,
    },
}

impl TxError {
    pub fn code(&self) -> Code {
        match self {
            TxError::TooLarge { .. } => Code::TooLarge,
            TxError::Malformed(_) => Code::Malformed,
            TxError::NonCanonical { .. } => Code::NonCanonical,
            TxError::BadSigner(_)
            | TxError::BadSignature { .. }
            | TxError::BadEntrySignature { .. }
            | TxError::BadKeySignature { .. } => Code::BadSignature,
            TxError::WrongChainId { .. } => Code::WrongChainId,
            TxError::InvalidAction { .. }
            | TxError::ActionCount { .. }
            | TxError::ChainIdLength { .. } => Code::InvalidAction,
        }
    }
}

/// An account address: the account's ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 32]);

impl Address {
    pub fn from_slice(bytes: &[u8]) -> Option<Address> {
        <[u8; 32]>::try_from(bytes).ok().map(Address)
    }

    /// Parses 64 hex characters (an optional `0x` prefix is allowed).
    pub fn from_hex(text: &str) -> Result<Address, String> {
        let text = text.strip_prefix("0x").unwrap_or(text);
        let bytes = hex::decode(text).map_err(|e| format!("address {text:?} is not hex: {e}"))?;
        Address::from_slice(&bytes)
            .ok_or_else(|| format!("address {text:?} has {} bytes, want 32", bytes.len()))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn verifying_key(&self) -> Result<VerifyingKey, TxError> {
        VerifyingKey::from_bytes(&self.0).map_err(|e| TxError::BadSigner(e.to_string()))
    }
}

impl From<&VerifyingKey> for Address {
    fn from(key: &VerifyingKey) -> Self {
        Address(key.to_bytes())
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Address({})", hex::encode(self.0))
    }
}

/// Parameters a rollup registers with (or replaces with `UpdateRollup`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollupSettings {
    pub verifying_key: Vec<u8>,
    pub proof_window: u64,
    pub inclusion_window: u64,
    /// Blocks per proof span; 0: the chain's `default_span_blocks`.
    pub span_blocks: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    RollupData {
        rollup_id: RollupId,
        data: Vec<u8>,
    },
    Transfer {
        to: Address,
        amount: u64,
    },
    RegisterRollup {
        rollup_id: RollupId,
        name: String,
        settings: RollupSettings,
    },
    UpdateRollup {
        rollup_id: RollupId,
        settings: RollupSettings,
    },
    /// Asks the chain to include `tx` within its forced-inclusion window.
    ForceInclude {
        tx: Box<Transaction>,
    },
    /// Locks `stake` from the signer's balance as prover stake.
    RegisterProver {
        stake: u64,
    },
    /// Leaves the prover set; the stake returns after the unbonding period.
    Unbond,
    /// Ends a jail term.
    Unjail,
    /// Locks `stake` from the signer's (the operator's) balance as
    /// validator stake for `consensus_key`, which signed
    /// [`validator_key_sign_bytes`] for the operator (`key_signature`).
    RegisterValidator {
        consensus_key: [u8; 32],
        stake: u64,
        key_signature: Signature,
    },
    /// The signer's validator leaves the set; its stake returns after the
    /// unbonding period.
    UnbondValidator,
    /// Ends a validator's jail term for downtime.
    UnjailValidator,
    /// A validity proof of the span job of `rollup_id` starting at
    /// `from_height`: the transition `prev_state_root -> new_state_root`.
    SubmitProof {
        rollup_id: RollupId,
        from_height: u64,
        proof: Vec<u8>,
        prev_state_root: [u8; 32],
        new_state_root: [u8; 32],
    },
    /// One aggregate of the proofs of `entries` (strictly increasing
    /// `(rollup_id, from_height)`, the order of the proofs in the aggregate).
    SubmitAggregate {
        entries: Vec<ProofEntry>,
        aggregate: Vec<u8>,
    },
}

/// One job covered by a `SubmitAggregate`: the job, its transition, and
/// the assigned prover with its signature over [`proof_entry_sign_bytes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofEntry {
    pub rollup_id: RollupId,
    /// First height of the job's span.
    pub from_height: u64,
    pub prev_state_root: [u8; 32],
    pub new_state_root: [u8; 32],
    pub prover: Address,
    pub signature: Signature,
}

/// The bytes a prover signs to let an aggregator submit its proof of job
/// `(rollup_id, from_height)` with the transition `prev_root -> new_root`:
/// `"seqnet/proof-entry/v2" || u32_be(len(chain_id)) || chain_id ||
/// u64_be(rollup_id) || u64_be(from_height) || prev_root || new_root`.
pub fn proof_entry_sign_bytes(
    chain_id: &str,
    rollup_id: RollupId,
    from_height: u64,
    prev_root: &[u8; 32],
    new_root: &[u8; 32],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(PROOF_ENTRY_SIGN_DOMAIN.len() + 4 + chain_id.len() + 80);
    out.extend_from_slice(PROOF_ENTRY_SIGN_DOMAIN);
    out.extend_from_slice(&(chain_id.len() as u32).to_be_bytes());
    out.extend_from_slice(chain_id.as_bytes());
    out.extend_from_slice(&rollup_id.to_be_bytes());
    out.extend_from_slice(&from_height.to_be_bytes());
    out.extend_from_slice(prev_root);
    out.extend_from_slice(new_root);
    out
}

/// The bytes a consensus key signs to let `operator` stake for it:
/// `"seqnet/validator-key/v1" || u32_be(len(chain_id)) || chain_id || operator`.
pub fn validator_key_sign_bytes(chain_id: &str, operator: &Address) -> Vec<u8> {
    let mut out = Vec::with_capacity(VALIDATOR_KEY_SIGN_DOMAIN.len() + 4 + chain_id.len() + 32);
    out.extend_from_slice(VALIDATOR_KEY_SIGN_DOMAIN);
    out.extend_from_slice(&(chain_id.len() as u32).to_be_bytes());
    out.extend_from_slice(chain_id.as_bytes());
    out.extend_from_slice(&operator.0);
    out
}

impl Action {
    /// A `RegisterValidator` for the consensus key `consensus`, signed by it
    /// for `operator` on `chain_id`.
    pub fn register_validator(
        consensus: &SigningKey,
        chain_id: &str,
        operator: &Address,
        stake: u64,
    ) -> Action {
        Action::RegisterValidator {
            consensus_key: consensus.verifying_key().to_bytes(),
            stake,
            key_signature: consensus.sign(&validator_key_sign_bytes(chain_id, operator)),
        }
    }
}

impl ProofEntry {
    /// The entry for job `(rollup_id, from_height)` with the transition
    /// `prev_state_root -> new_state_root`, signed by the prover `key`.
    pub fn sign(
        key: &SigningKey,
        chain_id: &str,
        rollup_id: RollupId,
        from_height: u64,
        prev_state_root: [u8; 32],
        new_state_root: [u8; 32],
    ) -> ProofEntry {
        let signature = key.sign(&proof_entry_sign_bytes(
            chain_id,
            rollup_id,
            from_height,
            &prev_state_root,
            &new_state_root,
        ));
        ProofEntry {
            rollup_id,
            from_height,
            prev_state_root,
            new_state_root,
            prover: Address::from(&key.verifying_key()),
            signature,
        }
    }

    /// Strict ed25519 verification of the prover's signature for `chain_id`.
    pub fn verify(&self, chain_id: &str) -> Result<(), TxError> {
        let key = self.prover.verifying_key()?;
        key.verify_strict(
            &proof_entry_sign_bytes(
                chain_id,
                self.rollup_id,
                self.from_height,
                &self.prev_state_root,
                &self.new_state_root,
            ),
            &self.signature,
        )
        .map_err(|_| TxError::BadSignature {
            signer: self.prover,
        })
    }

    fn to_pb(&self) -> pb::AggregateEntry {
        pb::AggregateEntry {
            rollup_id: self.rollup_id,
            from_height: self.from_height,
            new_state_root: self.new_state_root.to_vec(),
            prover: self.prover.0.to_vec(),
            signature: self.signature.to_bytes().to_vec(),
            prev_state_root: self.prev_state_root.to_vec(),
        }
    }
}

/// Largest proof bytes a SubmitProof may carry (a Groth16 proof is 384).
pub const MAX_PROOF_BYTES: usize = 1024;

impl Action {
    /// Name used in events and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::RollupData { .. } => "rollup_data",
            Action::Transfer { .. } => "transfer",
            Action::RegisterRollup { .. } => "register_rollup",
            Action::UpdateRollup { .. } => "update_rollup",
            Action::ForceInclude { .. } => "force_include",
            Action::RegisterProver { .. } => "register_prover",
            Action::Unbond => "unbond",
            Action::Unjail => "unjail",
            Action::RegisterValidator { .. } => "register_validator",
            Action::UnbondValidator => "unbond_validator",
            Action::UnjailValidator => "unjail_validator",
            Action::SubmitProof { .. } => "submit_proof",
            Action::SubmitAggregate { .. } => "submit_aggregate",
        }
    }

    fn from_pb(
        index: usize,
        action: pb::Action,
        max_bytes: usize,
        max_actions: usize,
    ) -> Result<Action, TxError> {
        let invalid = |reason: String| TxError::InvalidAction { index, reason };
        let kind = action
            .kind
            .ok_or_else(|| invalid("action has no kind".into()))?;
        let action = match kind {
            pb::action::Kind::RollupData(d) => {
                if d.rollup_id == 0 {
                    return Err(invalid("rollup id 0 is reserved".into()));
                }
                if d.data.is_empty() {
                    return Err(invalid(format!("empty data for rollup {}", d.rollup_id)));
                }
                Action::RollupData {
                    rollup_id: d.rollup_id,
                    data: d.data,
                }
            }
            pb::action::Kind::Transfer(t) => {
                let to = Address::from_slice(&t.to).ok_or_else(|| {
                    invalid(format!("recipient has {} bytes, want 32", t.to.len()))
                })?;
                to.verifying_key()
                    .map_err(|_| invalid(format!("recipient {to} is not an ed25519 public key")))?;
                if t.amount == 0 {
                    return Err(invalid("transfer of amount 0".into()));
                }
                Action::Transfer {
                    to,
                    amount: t.amount,
                }
            }
            pb::action::Kind::RegisterRollup(r) => {
                if r.rollup_id == 0 {
                    return Err(invalid("rollup id 0 is reserved".into()));
                }
                let name_ok = !r.name.is_empty()
                    && r.name.len() <= MAX_ROLLUP_NAME_LEN
                    && r.name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
                if !name_ok {
                    return Err(invalid(format!(
                        "rollup name {:?} must be 1..={MAX_ROLLUP_NAME_LEN} characters of [A-Za-z0-9._-]",
                        r.name
                    )));
                }
                Action::RegisterRollup {
                    rollup_id: r.rollup_id,
                    name: r.name,
                    settings: settings(
                        index,
                        r.verifying_key,
                        r.proof_window,
                        r.inclusion_window,
                        r.span_blocks,
                    )?,
                }
            }
            pb::action::Kind::UpdateRollup(u) => {
                if u.rollup_id == 0 {
                    return Err(invalid("rollup id 0 is reserved".into()));
                }
                Action::UpdateRollup {
                    rollup_id: u.rollup_id,
                    settings: settings(
                        index,
                        u.verifying_key,
                        u.proof_window,
                        u.inclusion_window,
                        u.span_blocks,
                    )?,
                }
            }
            pb::action::Kind::ForceInclude(f) => {
                let inner = Transaction::decode(&f.tx, max_bytes, max_actions)
                    .map_err(|e| invalid(format!("forced transaction: {e}")))?;
                if inner
                    .body
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::ForceInclude { .. }))
                {
                    return Err(invalid("a forced transaction may not force another".into()));
                }
                Action::ForceInclude {
                    tx: Box::new(inner),
                }
            }
            pb::action::Kind::RegisterProver(r) => {
                if r.stake == 0 {
                    return Err(invalid("prover stake of 0".into()));
                }
                Action::RegisterProver { stake: r.stake }
            }
            pb::action::Kind::Unbond(pb::Unbond {}) => Action::Unbond,
            pb::action::Kind::Unjail(pb::Unjail {}) => Action::Unjail,
            pb::action::Kind::RegisterValidator(r) => {
                if r.stake == 0 {
                    return Err(invalid("validator stake of 0".into()));
                }
                let consensus_key =
                    <[u8; 32]>::try_from(r.consensus_key.as_slice()).map_err(|_| {
                        invalid(format!(
                            "consensus key has {} bytes, want 32",
                            r.consensus_key.len()
                        ))
                    })?;
                VerifyingKey::from_bytes(&consensus_key).map_err(|_| {
                    invalid(format!(
                        "consensus key {} is not an ed25519 public key",
                        hex::encode(consensus_key)
                    ))
                })?;
                let key_signature = Signature::from_slice(&r.key_signature).map_err(|_| {
                    invalid(format!(
                        "key signature has {} bytes, want 64",
                        r.key_signature.len()
                    ))
                })?;
                Action::RegisterValidator {
                    consensus_key,
                    stake: r.stake,
                    key_signature,
                }
            }
            pb::action::Kind::UnbondValidator(pb::UnbondValidator {}) => Action::UnbondValidator,
            pb::action::Kind::UnjailValidator(pb::UnjailValidator {}) => Action::UnjailValidator,
            pb::action::Kind::SubmitProof(p) => {
                if p.rollup_id == 0 {
                    return Err(invalid("rollup id 0 is reserved".into()));
                }
                if p.from_height == 0 {
                    return Err(invalid("height 0 has no batch".into()));
                }
                if p.proof.is_empty() || p.proof.len() > MAX_PROOF_BYTES {
                    return Err(invalid(format!(
                        "proof of {} bytes; allowed 1..={MAX_PROOF_BYTES}",
                        p.proof.len()
                    )));
                }
                Action::SubmitProof {
                    rollup_id: p.rollup_id,
                    from_height: p.from_height,
                    proof: p.proof,
                    prev_state_root: root32(&p.prev_state_root, "previous state root")
                        .map_err(invalid)?,
                    new_state_root: root32(&p.new_state_root, "new state root").map_err(invalid)?,
                }
            }
            pb::action::Kind::SubmitAggregate(a) => submit_aggregate(index, a)?,
        };
        Ok(action)
    }

    fn to_pb(&self) -> pb::Action {
        use pb::action::Kind;
        let kind = match self {
            Action::RollupData { rollup_id, data } => Kind::RollupData(pb::RollupData {
                rollup_id: *rollup_id,
                data: data.clone(),
            }),
            Action::Transfer { to, amount } => Kind::Transfer(pb::Transfer {
                to: to.0.to_vec(),
                amount: *amount,
            }),
            Action::RegisterRollup {
                rollup_id,
                name,
                settings,
            } => Kind::RegisterRollup(pb::RegisterRollup {
                rollup_id: *rollup_id,
                name: name.clone(),
                verifying_key: settings.verifying_key.clone(),
                proof_window: settings.proof_window,
                inclusion_window: settings.inclusion_window,
                span_blocks: settings.span_blocks,
            }),
            Action::UpdateRollup {
                rollup_id,
                settings,
            } => Kind::UpdateRollup(pb::UpdateRollup {
                rollup_id: *rollup_id,
                verifying_key: settings.verifying_key.clone(),
                proof_window: settings.proof_window,
                inclusion_window: settings.inclusion_window,
                span_blocks: settings.span_blocks,
            }),
            Action::ForceInclude { tx } => Kind::ForceInclude(pb::ForceInclude {
                tx: tx.to_bytes().to_vec(),
            }),
            Action::RegisterProver { stake } => {
                Kind::RegisterProver(pb::RegisterProver { stake: *stake })
            }
            Action::Unbond => Kind::Unbond(pb::Unbond {}),
            Action::Unjail => Kind::Unjail(pb::Unjail {}),
            Action::RegisterValidator {
                consensus_key,
                stake,
                key_signature,
            } => Kind::RegisterValidator(pb::RegisterValidator {
                consensus_key: consensus_key.to_vec(),
                stake: *stake,
                key_signature: key_signature.to_bytes().to_vec(),
            }),
            Action::UnbondValidator => Kind::UnbondValidator(pb::UnbondValidator {}),
            Action::UnjailValidator => Kind::UnjailValidator(pb::UnjailValidator {}),
            Action::SubmitProof {
                rollup_id,
                from_height,
                proof,
                prev_state_root,
                new_state_root,
            } => Kind::SubmitProof(pb::SubmitProof {
                rollup_id: *rollup_id,
                from_height: *from_height,
                proof: proof.clone(),
                new_state_root: new_state_root.to_vec(),
                prev_state_root: prev_state_root.to_vec(),
            }),
            Action::SubmitAggregate { entries, aggregate } => {
                Kind::SubmitAggregate(pb::SubmitAggregate {
                    entries: entries.iter().map(ProofEntry::to_pb).collect(),
                    aggregate: aggregate.clone(),
                })
            }
        };
        pb::Action { kind: Some(kind) }
    }
}

/// A 32-byte state root field, or why not (`what`: its name in the error).
fn root32(bytes: &[u8], what: &str) -> Result<[u8; 32], String> {
    <[u8; 32]>::try_from(bytes).map_err(|_| format!("{what} has {} bytes, want 32", bytes.len()))
}

/// Structure of a `SubmitAggregate`: 1..=[`MAX_AGGREGATE_ENTRIES`] entries
/// with well-formed fields in strictly increasing `(rollup_id, from_height)`
/// order, and an aggregate of exactly the encoded length for that count.
/// Signatures are checked by [`Transaction::verify_action_signatures`].
fn submit_aggregate(index: usize, a: pb::SubmitAggregate) -> Result<Action, TxError> {
    let invalid = |reason: String| TxError::InvalidAction { index, reason };
    if a.entries.is_empty() || a.entries.len() > MAX_AGGREGATE_ENTRIES {
        return Err(invalid(format!(
            "aggregate of {} entries; allowed 1..={MAX_AGGREGATE_ENTRIES}",
            a.entries.len()
        )));
    }
    let want = crate::aggregate::encoded_len(a.entries.len());
    if a.aggregate.len() != want {
        return Err(invalid(format!(
            "aggregate of {} bytes, want {want} for {} entries",
            a.aggregate.len(),
            a.entries.len()
        )));
    }
    let mut entries: Vec<ProofEntry> = Vec::with_capacity(a.entries.len());
    for (i, e) in a.entries.into_iter().enumerate() {
        let bad = |reason: String| invalid(format!("entry {i}: {reason}"));
        if e.rollup_id == 0 {
            return Err(bad("rollup id 0 is reserved".into()));
        }
        if e.from_height == 0 {
            return Err(bad("height 0 has no batch".into()));
        }
        let prev_state_root = root32(&e.prev_state_root, "previous state root").map_err(bad)?;
        let new_state_root = root32(&e.new_state_root, "new state root").map_err(bad)?;
        let prover = Address::from_slice(&e.prover)
            .ok_or_else(|| bad(format!("prover has {} bytes, want 32", e.prover.len())))?;
        prover
            .verifying_key()
            .map_err(|_| bad(format!("prover {prover} is not an ed25519 public key")))?;
        let signature = Signature::from_slice(&e.signature).map_err(|_| {
            bad(format!(
                "signature has {} bytes, want 64",
                e.signature.len()
            ))
        })?;
        if let Some(last) = entries.last() {
            if (last.rollup_id, last.from_height) >= (e.rollup_id, e.from_height) {
                return Err(bad(format!(
                    "job {}/{} does not follow {}/{}: entries must be in strictly increasing (rollup, from_height) order",
                    e.rollup_id, e.from_height, last.rollup_id, last.from_height
                )));
            }
        }
        entries.push(ProofEntry {
            rollup_id: e.rollup_id,
            from_height: e.from_height,
            prev_state_root,
            new_state_root,
            prover,
            signature,
        });
    }
    Ok(Action::SubmitAggregate {
        entries,
        aggregate: a.aggregate,
    })
}

fn settings(
    index: usize,
    verifying_key: Vec<u8>,
    proof_window: u64,
    inclusion_window: u64,
    span_blocks: u64,
) -> Result<RollupSettings, TxError> {
    let invalid = |reason: String| TxError::InvalidAction { index, reason };
    if verifying_key.len() > MAX_VERIFYING_KEY_BYTES {
        return Err(invalid(format!(
            "verifying key of {} bytes exceeds {MAX_VERIFYING_KEY_BYTES}",
            verifying_key.len()
        )));
    }
    if proof_window == 0 || inclusion_window == 0 {
        return Err(invalid(format!(
            "proof_window ({proof_window}) and inclusion_window ({inclusion_window}) must be at least 1"
        )));
    }
    Ok(RollupSettings {
        verifying_key,
        proof_window,
        inclusion_window,
        span_blocks,
    })
}

/// What a transaction's signer asks the chain to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionBody {
    pub chain_id: String,
    pub nonce: u64,
    pub fee: u64,
    pub actions: Vec<Action>,
}

impl TransactionBody {
    pub fn encode(&self) -> Vec<u8> {
        pb::TransactionBody {
            chain_id: self.chain_id.clone(),
            nonce: self.nonce,
            fee: self.fee,
            actions: self.actions.iter().map(Action::to_pb).collect(),
        }
        .encode_to_vec()
    }

    /// Bytes of rollup data the body carries (what per-byte fees are charged on).
    pub fn data_bytes(&self) -> u64 {
        self.actions
            .iter()
            .map(|a| match a {
                Action::RollupData { data, .. } => data.len() as u64,
                _ => 0,
            })
            .fold(0u64, u64::saturating_add)
    }

    pub fn sign(self, key: &SigningKey) -> Transaction {
        let body_bytes = self.encode();
        let signature = key.sign(&sign_bytes(&self.chain_id, &body_bytes));
        let signer = Address::from(&key.verifying_key());
        let bytes = pb::SignedTransaction {
            body: body_bytes.clone(),
            signer: signer.0.to_vec(),
            signature: signature.to_bytes().to_vec(),
        }
        .encode_to_vec();
        Transaction {
            hash: crate::sha256(&bytes),
            body: self,
            body_bytes,
            signer,
            signature,
            bytes,
        }
    }
}

/// The bytes an ed25519 signature covers:
/// `"seqnet/tx/v1" || u32_be(len(chain_id)) || chain_id || body`.
pub fn sign_bytes(chain_id: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TX_SIGN_DOMAIN.len() + 4 + chain_id.len() + body.len());
    out.extend_from_slice(TX_SIGN_DOMAIN);
    out.extend_from_slice(&(chain_id.len() as u32).to_be_bytes());
    out.extend_from_slice(chain_id.as_bytes());
    out.extend_from_slice(body);
    out
}

/// A decoded, structurally valid transaction. Its signature is checked by
/// [`Transaction::verify_signature`] (kept apart so callers can cache it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub body: TransactionBody,
    pub signer: Address,
    body_bytes: Vec<u8>,
    signature: Signature,
    bytes: Vec<u8>,
    hash: [u8; 32],
}

impl Transaction {
    /// Decodes `bytes` (what CometBFT carries) with the size cap `max_bytes`
    /// (clamped to [`HARD_MAX_TX_BYTES`]) and `max_actions` (clamped to
    /// [`HARD_MAX_ACTIONS`]), rejecting non-canonical encodings.
    pub fn decode(bytes: &[u8], max_bytes: usize, max_actions: usize) -> Result<Self, TxError> {
        let limit = max_bytes.min(HARD_MAX_TX_BYTES);
        if bytes.len() > limit {
            return Err(TxError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let envelope = pb::SignedTransaction::decode(bytes)
            .map_err(|e| TxError::Malformed(format!("envelope: {e}")))?;
        if envelope.encode_to_vec() != bytes {
            return Err(TxError::NonCanonical { what: "envelope" });
        }
        let signer = Address::from_slice(&envelope.signer).ok_or_else(|| {
            TxError::BadSigner(format!("{} bytes, want 32", envelope.signer.len()))
        })?;
        let signature = Signature::from_slice(&envelope.signature).map_err(|_| {
            TxError::Malformed(format!(
                "signature has {} bytes, want 64",
                envelope.signature.len()
            ))
        })?;
        let raw_body = pb::TransactionBody::decode(envelope.body.as_slice())
            .map_err(|e| TxError::Malformed(format!("body: {e}")))?;
        if raw_body.encode_to_vec() != envelope.body {
            return Err(TxError::NonCanonical { what: "body" });
        }
        if raw_body.chain_id.is_empty() || raw_body.chain_id.len() > MAX_CHAIN_ID_LEN {
            return Err(TxError::ChainIdLength {
                len: raw_body.chain_id.len(),
            });
        }
        let action_limit = max_actions.min(HARD_MAX_ACTIONS);
        if raw_body.actions.is_empty() || raw_body.actions.len() > action_limit {
            return Err(TxError::ActionCount {
                count: raw_body.actions.len(),
                limit: action_limit,
            });
        }
        let actions = raw_body
            .actions
            .into_iter()
            .enumerate()
            .map(|(index, action)| Action::from_pb(index, action, limit, action_limit))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Transaction {
            body: TransactionBody {
                chain_id: raw_body.chain_id,
                nonce: raw_body.nonce,
                fee: raw_body.fee,
                actions,
            },
            signer,
            body_bytes: envelope.body,
            signature,
            bytes: bytes.to_vec(),
            hash: crate::sha256(bytes),
        })
    }

    /// Transactions carried by ForceInclude actions.
    pub fn forced_transactions(&self) -> impl Iterator<Item = &Transaction> {
        self.body.actions.iter().filter_map(|a| match a {
            Action::ForceInclude { tx } => Some(tx.as_ref()),
            _ => None,
        })
    }

    /// Strict ed25519 verification (no weak keys, canonical `S`) of this
    /// transaction's signature; see [`Transaction::verify_all_signatures`].
    pub fn verify_signature(&self) -> Result<(), TxError> {
        let key = self.signer.verifying_key()?;
        key.verify_strict(
            &sign_bytes(&self.body.chain_id, &self.body_bytes),
            &self.signature,
        )
        .map_err(|_| TxError::BadSignature {
            signer: self.signer,
        })
    }

    /// The signatures actions carry (strict ed25519, for this transaction's
    /// chain id): the provers' over `SubmitAggregate` entries, and consensus
    /// keys' over their operator in `RegisterValidator`.
    pub fn verify_action_signatures(&self) -> Result<(), TxError> {
        for (index, action) in self.body.actions.iter().enumerate() {
            match action {
                Action::SubmitAggregate { entries, .. } => {
                    for (entry, e) in entries.iter().enumerate() {
                        e.verify(&self.body.chain_id)
                            .map_err(|_| TxError::BadEntrySignature {
                                index,
                                entry,
                                prover: e.prover,
                            })?;
                    }
                }
                Action::RegisterValidator {
                    consensus_key,
                    key_signature,
                    ..
                } => {
                    let bad = || TxError::BadKeySignature {
                        index,
                        key: hex::encode(consensus_key),
                        operator: self.signer,
                    };
                    VerifyingKey::from_bytes(consensus_key)
                        .map_err(|_| bad())?
                        .verify_strict(
                            &validator_key_sign_bytes(&self.body.chain_id, &self.signer),
                            key_signature,
                        )
                        .map_err(|_| bad())?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// This transaction's signature, its actions' signatures and those of
    /// the transactions it forces (and their actions').
    pub fn verify_all_signatures(&self) -> Result<(), TxError> {
        self.verify_signature()?;
        self.verify_action_signatures()?;
        self.forced_transactions().try_for_each(|inner| {
            inner.verify_signature()?;
            inner.verify_action_signatures()
        })
    }

    pub fn check_chain_id(&self, expected: &str) -> Result<(), TxError> {
        if self.body.chain_id == expected {
            Ok(())
        } else {
            Err(TxError::WrongChainId {
                expected: expected.to_string(),
                got: self.body.chain_id.clone(),
            })
        }
    }

    /// SHA-256 of the transaction bytes (as CometBFT computes it).
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn body(actions: Vec<Action>) -> TransactionBody {
        TransactionBody {
            chain_id: "seqnet-test".into(),
            nonce: 7,
            fee: 100,
            actions,
        }
    }

    fn data(rollup_id: u64, bytes: &[u8]) -> Action {
        Action::RollupData {
            rollup_id,
            data: bytes.to_vec(),
        }
    }

    #[test]
    fn signed_transaction_round_trips_and_verifies() {
        let tx = body(vec![data(1, b"hello")]).sign(&key(1));
        let decoded = Transaction::decode(tx.to_bytes(), 4096, 16).expect("decodes");
        assert_eq!(decoded, tx);
        decoded.verify_signature().expect("signature verifies");
        assert_eq!(decoded.hash(), crate::sha256(tx.to_bytes()));
    }

    #[test]
    fn tampered_body_fails_signature() {
        let tx = body(vec![data(1, b"hello")]).sign(&key(1));
        let mut envelope = pb::SignedTransaction::decode(tx.to_bytes()).expect("decodes");
        envelope.body = body(vec![data(1, b"hellp")]).encode();
        let forged = Transaction::decode(&envelope.encode_to_vec(), 4096, 16).expect("decodes");
        assert!(matches!(
            forged.verify_signature(),
            Err(TxError::BadSignature { .. })
        ));
    }

    #[test]
    fn signature_is_bound_to_the_signer() {
        let tx = body(vec![data(1, b"x")]).sign(&key(1));
        let mut envelope = pb::SignedTransaction::decode(tx.to_bytes()).expect("decodes");
        envelope.signer = key(2).verifying_key().to_bytes().to_vec();
        let forged = Transaction::decode(&envelope.encode_to_vec(), 4096, 16).expect("decodes");
        assert_eq!(
            forged.verify_signature().unwrap_err().code(),
            Code::BadSignature
        );
    }

    #[test]
    fn limits_and_structure_are_enforced() {
        let tx = body(vec![data(1, &[0u8; 100])]).sign(&key(1));
        let err = Transaction::decode(tx.to_bytes(), 50, 16).unwrap_err();
        assert_eq!(err.code(), Code::TooLarge);
        let err = Transaction::decode(b"\xff\xff\xff", 4096, 16).unwrap_err();
        assert_eq!(err.code(), Code::Malformed);
        let tx = body(vec![]).sign(&key(1));
        assert!(matches!(
            Transaction::decode(tx.to_bytes(), 4096, 16),
            Err(TxError::ActionCount { count: 0, .. })
        ));
        let tx = body(vec![data(0, b"x")]).sign(&key(1));
        assert_eq!(
            Transaction::decode(tx.to_bytes(), 4096, 16)
                .unwrap_err()
                .code(),
            Code::InvalidAction
        );
        let tx = body(vec![data(3, b"")]).sign(&key(1));
        assert_eq!(
            Transaction::decode(tx.to_bytes(), 4096, 16)
                .unwrap_err()
                .code(),
            Code::InvalidAction
        );
        let tx = body(vec![Action::Transfer {
            to: Address([0; 32]),
            amount: 0,
        }])
        .sign(&key(1));
        assert_eq!(
            Transaction::decode(tx.to_bytes(), 4096, 16)
                .unwrap_err()
                .code(),
            Code::InvalidAction
        );
    }

    #[test]
    fn non_canonical_encodings_are_rejected() {
        let tx = body(vec![data(1, b"x")]).sign(&key(1));
        // An explicitly encoded default field (nonce = 0 written out) decodes
        // to the same message but is not canonical.
        let mut bytes = tx.to_bytes().to_vec();
        bytes.extend_from_slice(&[0x20, 0x00]); // unknown field 4, varint 0
        assert_eq!(
            Transaction::decode(&bytes, 4096, 16).unwrap_err(),
            TxError::NonCanonical { what: "envelope" }
        );
    }

    #[test]
    fn forced_transactions_are_decoded_and_verified() {
        let inner = body(vec![data(1, b"censored")]).sign(&key(2));
        let wrapper = body(vec![Action::ForceInclude {
            tx: Box::new(inner.clone()),
        }])
        .sign(&key(1));
        let decoded = Transaction::decode(wrapper.to_bytes(), 4096, 16).expect("decodes");
        assert_eq!(decoded.forced_transactions().next(), Some(&inner));
        decoded
            .verify_all_signatures()
            .expect("both signatures verify");
        // Nesting is refused.
        let nested = body(vec![Action::ForceInclude {
            tx: Box::new(wrapper),
        }])
        .sign(&key(3));
        assert_eq!(
            Transaction::decode(nested.to_bytes(), 4096, 16)
                .unwrap_err()
                .code(),
            Code::InvalidAction
        );
        // A forged inner signature is caught.
        let mut envelope = pb::SignedTransaction::decode(inner.to_bytes()).expect("decodes");
        envelope.signature[5] ^= 1;
        let mut forged = pb::TransactionBody::decode(
            pb::SignedTransaction::decode(decoded.to_bytes())
                .expect("outer")
                .body
                .as_slice(),
        )
        .expect("body");
        forged.actions[0].kind = Some(pb::action::Kind::ForceInclude(pb::ForceInclude {
            tx: envelope.encode_to_vec(),
        }));
        let outer = pb::SignedTransaction {
            body: forged.encode_to_vec(),
            signer: key(1).verifying_key().to_bytes().to_vec(),
            signature: key(1)
                .sign(&sign_bytes("seqnet-test", &forged.encode_to_vec()))
                .to_bytes()
                .to_vec(),
        };
        let tx = Transaction::decode(&outer.encode_to_vec(), 4096, 16).expect("decodes");
        tx.verify_signature().expect("outer is fine");
        assert!(tx.verify_all_signatures().is_err());
    }

    #[test]
    fn prover_actions_round_trip_and_are_validated() {
        let actions = vec![
            Action::RegisterProver { stake: 1_000 },
            Action::Unbond,
            Action::Unjail,
            Action::SubmitProof {
                rollup_id: 3,
                from_height: 9,
                proof: vec![7; 192],
                prev_state_root: [2; 32],
                new_state_root: [1; 32],
            },
        ];
        let tx = body(actions.clone()).sign(&key(1));
        let decoded = Transaction::decode(tx.to_bytes(), 4096, 16).expect("decodes");
        assert_eq!(decoded.body.actions, actions);
        assert_eq!(
            actions.iter().map(Action::kind).collect::<Vec<_>>(),
            ["register_prover", "unbond", "unjail", "submit_proof"]
        );
        for bad in [
            Action::RegisterProver { stake: 0 },
            Action::SubmitProof {
                rollup_id: 0,
                from_height: 1,
                proof: vec![1],
                prev_state_root: [0; 32],
                new_state_root: [0; 32],
            },
            Action::SubmitProof {
                rollup_id: 1,
                from_height: 0,
                proof: vec![1],
                prev_state_root: [0; 32],
                new_state_root: [0; 32],
            },
            Action::SubmitProof {
                rollup_id: 1,
                from_height: 1,
                proof: vec![],
                prev_state_root: [0; 32],
                new_state_root: [0; 32],
            },
        ] {
            let tx = body(vec![bad]).sign(&key(1));
            assert_eq!(
                Transaction::decode(tx.to_bytes(), 4096, 16)
                    .unwrap_err()
                    .code(),
                Code::InvalidAction
            );
        }
        // A root that is not 32 bytes, before or after.
        for (prev, new) in [(32, 31), (31, 32), (0, 32)] {
            let mut raw = pb::TransactionBody::decode(
                pb::SignedTransaction::decode(tx.to_bytes())
                    .expect("envelope")
                    .body
                    .as_slice(),
            )
            .expect("body");
            raw.actions = vec![pb::Action {
                kind: Some(pb::action::Kind::SubmitProof(pb::SubmitProof {
                    rollup_id: 1,
                    from_height: 1,
                    proof: vec![1],
                    new_state_root: vec![1; new],
                    prev_state_root: vec![1; prev],
                })),
            }];
            let bytes = raw.encode_to_vec();
            let outer = pb::SignedTransaction {
                body: bytes.clone(),
                signer: key(1).verifying_key().to_bytes().to_vec(),
                signature: key(1)
                    .sign(&sign_bytes("seqnet-test", &bytes))
                    .to_bytes()
                    .to_vec(),
            };
            let err = Transaction::decode(&outer.encode_to_vec(), 4096, 16).unwrap_err();
            assert_eq!(err.code(), Code::InvalidAction, "{err}");
            assert!(err.to_string().contains("state root"), "{err}");
        }
    }

    fn aggregate_action(entries: Vec<ProofEntry>) -> Action {
        let len = crate::aggregate::encoded_len(entries.len().max(1));
        Action::SubmitAggregate {
            entries,
            aggregate: vec![3; len],
        }
    }

    #[test]
    fn proof_entry_sign_bytes_are_pure_and_bind_every_field() {
        let (prev, root) = ([4u8; 32], [9u8; 32]);
        let bytes = proof_entry_sign_bytes("chain", 7, 11, &prev, &root);
        let mut want = b"seqnet/proof-entry/v2".to_vec();
        want.extend_from_slice(&5u32.to_be_bytes());
        want.extend_from_slice(b"chain");
        want.extend_from_slice(&7u64.to_be_bytes());
        want.extend_from_slice(&11u64.to_be_bytes());
        want.extend_from_slice(&prev);
        want.extend_from_slice(&root);
        assert_eq!(bytes, want);
        assert_eq!(bytes, proof_entry_sign_bytes("chain", 7, 11, &prev, &root));
        for other in [
            proof_entry_sign_bytes("chaim", 7, 11, &prev, &root),
            proof_entry_sign_bytes("chain", 8, 11, &prev, &root),
            proof_entry_sign_bytes("chain", 7, 12, &prev, &root),
            proof_entry_sign_bytes("chain", 7, 11, &[5; 32], &root),
            proof_entry_sign_bytes("chain", 7, 11, &prev, &[8; 32]),
            // Previous and new root swapped.
            proof_entry_sign_bytes("chain", 7, 11, &root, &prev),
        ] {
            assert_ne!(bytes, other);
        }
        // Not confusable with a transaction's sign bytes.
        assert!(!bytes.starts_with(TX_SIGN_DOMAIN));
    }

    #[test]
    fn submit_aggregate_round_trips_and_entry_signatures_verify() {
        let entries = vec![
            ProofEntry::sign(&key(2), "seqnet-test", 1, 4, [0; 32], [1; 32]),
            ProofEntry::sign(&key(3), "seqnet-test", 1, 5, [1; 32], [2; 32]),
            ProofEntry::sign(&key(2), "seqnet-test", 2, 1, [0; 32], [3; 32]),
        ];
        let action = aggregate_action(entries.clone());
        let tx = body(vec![action.clone()]).sign(&key(1));
        let decoded = Transaction::decode(tx.to_bytes(), HARD_MAX_TX_BYTES, 16).expect("decodes");
        assert_eq!(decoded.body.actions, vec![action]);
        assert_eq!(decoded.body.actions[0].kind(), "submit_aggregate");
        decoded
            .verify_all_signatures()
            .expect("all signatures verify");
        // An entry signed for another chain, or over another root, fails.
        for bad in [
            ProofEntry::sign(&key(3), "other-chain", 1, 5, [1; 32], [2; 32]),
            ProofEntry {
                new_state_root: [5; 32],
                ..entries[1].clone()
            },
            ProofEntry {
                prev_state_root: [5; 32],
                ..entries[1].clone()
            },
            ProofEntry {
                prover: Address::from(&key(4).verifying_key()),
                ..entries[1].clone()
            },
        ] {
            let mut forged = entries.clone();
            forged[1] = bad;
            let tx = body(vec![aggregate_action(forged)]).sign(&key(1));
            let decoded =
                Transaction::decode(tx.to_bytes(), HARD_MAX_TX_BYTES, 16).expect("decodes");
            decoded.verify_signature().expect("the envelope is fine");
            let err = decoded.verify_all_signatures().unwrap_err();
            assert!(
                matches!(
                    err,
                    TxError::BadEntrySignature {
                        index: 0,
                        entry: 1,
                        ..
                    }
                ),
                "{err:?}"
            );
            assert_eq!(err.code(), Code::BadSignature);
        }
    }

    #[test]
    fn submit_aggregate_structure_is_enforced() {
        let e = |rollup, height| {
            ProofEntry::sign(&key(2), "seqnet-test", rollup, height, [0; 32], [1; 32])
        };
        let rejected = |action: Action| {
            let tx = body(vec![action]).sign(&key(1));
            let err = Transaction::decode(tx.to_bytes(), HARD_MAX_TX_BYTES, 16).unwrap_err();
            assert_eq!(err.code(), Code::InvalidAction, "{err}");
            err.to_string()
        };
        // No entries.
        assert!(rejected(Action::SubmitAggregate {
            entries: vec![],
            aggregate: vec![3; crate::aggregate::encoded_len(1)],
        })
        .contains("entries"));
        // Out of order, duplicated, reserved rollup, height 0.
        assert!(rejected(aggregate_action(vec![e(1, 5), e(1, 4)])).contains("increasing"));
        assert!(rejected(aggregate_action(vec![e(2, 1), e(1, 9)])).contains("increasing"));
        assert!(rejected(aggregate_action(vec![e(1, 4), e(1, 4)])).contains("increasing"));
        assert!(rejected(aggregate_action(vec![e(0, 4)])).contains("reserved"));
        assert!(rejected(aggregate_action(vec![e(1, 0)])).contains("height 0"));
        // An aggregate of the wrong length for the count.
        assert!(rejected(Action::SubmitAggregate {
            entries: vec![e(1, 1), e(1, 2), e(1, 3)],
            aggregate: vec![3; crate::aggregate::encoded_len(8)],
        })
        .contains("bytes"));
        // Too many entries.
        let many: Vec<ProofEntry> = (1..=MAX_AGGREGATE_ENTRIES as u64 + 1)
            .map(|h| ProofEntry {
                from_height: h,
                ..e(1, 1)
            })
            .collect();
        let raw = pb::SubmitAggregate {
            entries: many.iter().map(ProofEntry::to_pb).collect(),
            aggregate: vec![],
        };
        assert!(submit_aggregate(0, raw).is_err());
        // A prover key of the wrong length, a short signature.
        let mut raw = pb::SubmitAggregate {
            entries: vec![e(1, 1).to_pb()],
            aggregate: vec![3; crate::aggregate::encoded_len(1)],
        };
        raw.entries[0].prover.pop();
        assert!(submit_aggregate(0, raw.clone())
            .unwrap_err()
            .to_string()
            .contains("prover"));
        raw.entries[0] = e(1, 1).to_pb();
        raw.entries[0].signature.pop();
        assert!(submit_aggregate(0, raw)
            .unwrap_err()
            .to_string()
            .contains("signature"));
    }

    #[test]
    fn validator_actions_round_trip_and_the_key_must_sign_for_its_operator() {
        let consensus = key(7);
        let operator = Address::from(&key(1).verifying_key());
        let register = Action::register_validator(&consensus, "seqnet-test", &operator, 5_000);
        let actions = vec![
            register.clone(),
            Action::UnbondValidator,
            Action::UnjailValidator,
        ];
        let tx = body(actions.clone()).sign(&key(1));
        let decoded = Transaction::decode(tx.to_bytes(), 4096, 16).expect("decodes");
        assert_eq!(decoded.body.actions, actions);
        decoded
            .verify_all_signatures()
            .expect("the key signed for key 1");
        assert_eq!(
            actions.iter().map(Action::kind).collect::<Vec<_>>(),
            ["register_validator", "unbond_validator", "unjail_validator"]
        );
        // Someone else sending the same registration: the key did not sign
        // for them.
        let stolen = body(vec![register]).sign(&key(2));
        let err = Transaction::decode(stolen.to_bytes(), 4096, 16)
            .expect("decodes")
            .verify_all_signatures()
            .unwrap_err();
        assert!(
            matches!(err, TxError::BadKeySignature { index: 0, .. }),
            "{err}"
        );
        assert_eq!(err.code(), Code::BadSignature);
        // Signed for another chain.
        let other = Action::register_validator(&consensus, "other-chain", &operator, 5_000);
        let err = Transaction::decode(body(vec![other]).sign(&key(1)).to_bytes(), 4096, 16)
            .expect("decodes")
            .verify_all_signatures()
            .unwrap_err();
        assert!(matches!(err, TxError::BadKeySignature { .. }), "{err}");
        // Structure: stake 0, a short key, a short signature.
        let bad_stake = Action::register_validator(&consensus, "seqnet-test", &operator, 0);
        let decoded = Transaction::decode(body(vec![bad_stake]).sign(&key(1)).to_bytes(), 4096, 16);
        assert!(decoded.unwrap_err().to_string().contains("stake of 0"));
        for (key_len, sig_len, what) in [(31, 64, "consensus key"), (32, 63, "key signature")] {
            let mut raw = pb::RegisterValidator {
                consensus_key: consensus.verifying_key().to_bytes().to_vec(),
                stake: 1,
                key_signature: vec![0; 64],
            };
            raw.consensus_key.truncate(key_len);
            raw.key_signature.truncate(sig_len);
            let body = pb::TransactionBody {
                chain_id: "seqnet-test".into(),
                nonce: 0,
                fee: 10,
                actions: vec![pb::Action {
                    kind: Some(pb::action::Kind::RegisterValidator(raw)),
                }],
            }
            .encode_to_vec();
            let envelope = pb::SignedTransaction {
                signature: key(1)
                    .sign(&sign_bytes("seqnet-test", &body))
                    .to_bytes()
                    .to_vec(),
                body,
                signer: key(1).verifying_key().to_bytes().to_vec(),
            };
            let err = Transaction::decode(&envelope.encode_to_vec(), 4096, 16).unwrap_err();
            assert!(err.to_string().contains(what), "{err}");
        }
    }

    #[test]
    fn sign_bytes_are_domain_separated_and_length_prefixed() {
        let a = sign_bytes("ab", b"c");
        let b = sign_bytes("a", b"bc");
        assert_ne!(a, b);
        assert!(a.starts_with(TX_SIGN_DOMAIN));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Transaction::decode(&bytes, 4096, 16);
        }

        #[test]
        fn encode_decode_round_trip(
            nonce in any::<u64>(),
            fee in any::<u64>(),
            items in proptest::collection::vec((1u64..1000, proptest::collection::vec(any::<u8>(), 1..64)), 1..8),
        ) {
            let tx = TransactionBody {
                chain_id: "c".into(),
                nonce,
                fee,
                actions: items.into_iter().map(|(id, d)| Action::RollupData { rollup_id: id, data: d }).collect(),
            }
            .sign(&key(9));
            let decoded = Transaction::decode(tx.to_bytes(), HARD_MAX_TX_BYTES, 16).expect("decodes");
            prop_assert!(decoded.verify_signature().is_ok());
            prop_assert_eq!(decoded, tx);
        }
    }
}
