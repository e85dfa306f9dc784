//! The vocabulary every component speaks, and nothing domain-specific: the
//! [`ActionHandler`] seam (stateless check, read-only check that adds to a
//! [`TxPlan`], and each component's `apply` of its part of the plan), the
//! transaction envelope's fee, nonce and balance rules, [`Event`],
//! [`ExecError`] with its result codes, transaction classes (what
//! back-pressure admits), and the signature cache. This module imports no
//! component; components import it.

mod classes;
mod envelope;
mod signatures;

use std::collections::BTreeMap;

use seqnet_proto::{pb, Address, Code, RollupId, Transaction, TxError};

use crate::params::ChainParams;
use crate::state::StateDelta;
use crate::store::StoreError;

pub use classes::matches_censor;
pub(crate) use classes::{back_pressure_exempt, carries_aggregate, rollups_of};
pub(crate) use envelope::check_envelope;
pub(crate) use signatures::{check_stateless, SignatureCache};

/// An event emitted by a transaction or block (converted to ABCI events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: &'static str,
    pub attributes: Vec<(&'static str, String)>,
}

/// What a successful transaction did.
#[derive(Clone, Debug)]
pub struct TxOutcome {
    pub signer: Address,
    /// Forced-inclusion requests this transaction opened.
    pub forced_opened: u64,
    pub events: Vec<Event>,
    /// Rollup data in action order, for the block's batches.
    pub items: Vec<(RollupId, pb::BatchItem)>,
    /// The fee the transaction paid.
    pub fee: u64,
    /// Proofs this transaction got accepted (as pending transitions).
    pub proofs: u64,
}

impl TxOutcome {
    pub(crate) fn new(signer: Address, fee: u64) -> TxOutcome {
        TxOutcome {
            signer,
            forced_opened: 0,
            events: Vec::new(),
            items: Vec::new(),
            fee,
            proofs: 0,
        }
    }
}

/// A proof that passed every check: the job `(rollup_id, from_height)`'s
/// transition `prev_root -> new_root` by its assigned `prover`, to record as
/// pending.
#[derive(Clone, Debug)]
pub struct Transition {
    pub rollup_id: RollupId,
    pub from_height: u64,
    pub prev_root: [u8; 32],
    pub new_root: [u8; 32],
    pub prover: Address,
    /// The proof as submitted, kept with the job for PROVEN streams; empty
    /// when an aggregate stands for it.
    pub proof: Vec<u8>,
}

/// What the actions of one transaction will change, built by their
/// handlers' read-only checks (each sees the changes planned by the actions
/// before it) and written by the components' `apply`, in component order.
/// A transaction whose check fails leaves no trace.
#[derive(Debug)]
pub(crate) struct TxPlan {
    pub outcome: TxOutcome,
    pub height: u64,
    /// Accounts as changed so far (the signer's, after the fee, first).
    pub accounts: BTreeMap<Address, pb::Account>,
    /// Rollups as changed so far.
    pub rollups: BTreeMap<RollupId, pb::Rollup>,
    /// `ForceInclude` requests to open: (inner transaction, deadline).
    pub forced: Vec<(Transaction, u64)>,
    /// The signer's prover record, once an action loaded it.
    pub prover: Option<Option<pb::Prover>>,
    /// The signer's validator record, once an action loaded it.
    pub validator: Option<Option<pb::ValidatorRecord>>,
    /// Accepted transitions, with the aggregate that carried each (an index
    /// into `aggregates`), if any.
    pub proofs: Vec<(Transition, Option<usize>)>,
    /// Accepted aggregates: the proofs each covers.
    pub aggregates: Vec<usize>,
}

impl TxPlan {
    pub(crate) fn new(signer: Address, fee: u64, height: u64) -> TxPlan {
        TxPlan {
            outcome: TxOutcome::new(signer, fee),
            height,
            accounts: BTreeMap::new(),
            rollups: BTreeMap::new(),
            forced: Vec::new(),
            prover: None,
            validator: None,
            proofs: Vec::new(),
            aggregates: Vec::new(),
        }
    }

    pub(crate) fn signer(&self) -> Address {
        self.outcome.signer
    }

    /// The transitions accepted so far, without their aggregate index.
    pub(crate) fn transitions(&self) -> Vec<Transition> {
        self.proofs.iter().map(|(p, _)| p.clone()).collect()
    }
}

/// What every action's check may read besides state.
pub(crate) struct TxContext<'a> {
    pub params: &'a ChainParams,
    pub tx: &'a Transaction,
    /// The index of the action in its transaction.
    pub index: usize,
}

/// One action's rules, implemented by the component that owns the action.
/// CheckTx, PrepareProposal, ProcessProposal and FinalizeBlock all call the
/// same handlers through `crate::app::execute`, so they cannot drift apart.
pub(crate) trait ActionHandler {
    /// Checks that need no state. Decoding (`Transaction::decode`) already
    /// checked the action's structure; most handlers add nothing.
    fn check_stateless(&self, _ctx: &TxContext<'_>) -> Result<(), ExecError> {
        Ok(())
    }

    /// Every check against `state` (the state before the transaction) and
    /// the plan so far; on success, adds the action's changes to `plan`.
    /// Reads only: the components' `apply` write the plan.
    fn check(
        &self,
        state: &StateDelta,
        ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError>;
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
    #[error("transaction {0} is already forced")]
    ForcedKnown(String),
    #[error("{limit} forced requests are already pending")]
    ForcedQueueFull { limit: u64 },
    #[error("{0} has no prover record")]
    ProverUnknown(Address),
    #[error("prover {address}: {reason}")]
    ProverState { address: Address, reason: String },
    #[error("stake {stake} is below the minimum {min}")]
    StakeTooLow { stake: u64, min: u64 },
    #[error("{address} is jailed until height {until}")]
    Jailed { address: Address, until: u64 },
    #[error("{0} has no validator record")]
    ValidatorUnknown(Address),
    #[error("validator {operator}: {reason}")]
    ValidatorState { operator: Address, reason: String },
    #[error("no open proof job for rollup {rollup_id} starting at height {from_height}")]
    JobUnknown {
        rollup_id: RollupId,
        from_height: u64,
    },
    #[error("job {rollup_id}/{from_height} already has a verified proof waiting to link")]
    JobPending {
        rollup_id: RollupId,
        from_height: u64,
    },
    #[error("job {rollup_id}/{from_height} is assigned to {assigned}")]
    NotAssigned {
        rollup_id: RollupId,
        from_height: u64,
        assigned: String,
    },
    #[error(
        "job {rollup_id}/{from_height} is the rollup's next to prove: its proof must start at \
         the proven root {proven}, not {got}"
    )]
    RootMismatch {
        rollup_id: RollupId,
        from_height: u64,
        proven: String,
        got: String,
    },
    #[error("proof rejected: {0}")]
    ProofRejected(String),
    #[error("malformed proof: {0}")]
    ProofMalformed(String),
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
            ExecError::ForcedKnown(_) | ExecError::ForcedQueueFull { .. } => Code::ForcedRejected,
            ExecError::ProverUnknown(_) => Code::ProverUnknown,
            ExecError::ProverState { .. } => Code::ProverState,
            ExecError::StakeTooLow { .. } => Code::StakeTooLow,
            ExecError::Jailed { .. } => Code::Jailed,
            ExecError::ValidatorUnknown(_) => Code::ValidatorUnknown,
            ExecError::ValidatorState { .. } => Code::ValidatorState,
            ExecError::JobUnknown { .. } => Code::JobUnknown,
            ExecError::JobPending { .. } => Code::JobPending,
            ExecError::RootMismatch { .. } => Code::RootMismatch,
            ExecError::NotAssigned { .. } => Code::NotAssigned,
            ExecError::ProofRejected(_) => Code::ProofRejected,
            ExecError::ProofMalformed(_) => Code::ProofMalformed,
            ExecError::Store(_) => Code::Internal,
        }
    }
}
