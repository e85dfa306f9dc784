//! Result codes of seqnet transactions: the one list that CheckTx, FinalizeBlock,
//! the gRPC services and the clients share. Numbers are stable; never reuse one.

/// Code returned for a transaction (ABCI `code`, gRPC metadata `seqnet-code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum Code {
    Ok = 0,
    /// The bytes do not decode as a seqnet transaction.
    Malformed = 1,
    /// The transaction is larger than the chain allows.
    TooLarge = 2,
    /// The encoding decodes but is not the canonical one.
    NonCanonical = 3,
    /// The signature does not verify for the signer's key.
    BadSignature = 4,
    /// The body names another chain.
    WrongChainId = 5,
    /// The nonce was already used by this account.
    NonceReplayed = 6,
    /// The nonce is ahead of the account's next nonce.
    NonceGap = 7,
    /// The account cannot pay the fee and amounts.
    InsufficientBalance = 8,
    /// No rollup with that id is registered.
    UnknownRollup = 9,
    /// A rollup with that id is already registered.
    RollupExists = 10,
    /// The signer may not do this (for example update someone else's rollup).
    Unauthorized = 11,
    /// An action is malformed (empty data, zero amount, bad address, ...).
    InvalidAction = 12,
    /// The offered fee is below what the chain requires.
    FeeTooLow = 13,
    /// A balance or counter would overflow.
    Overflow = 14,
    /// A parameter is outside what the chain allows.
    InvalidParameter = 15,
    /// The transaction is already forced (pending or resolved), or the queue is full.
    ForcedRejected = 16,
    /// The signer has no prover record.
    ProverUnknown = 17,
    /// The proof decodes but does not prove the job's statement.
    ProofRejected = 18,
    /// The proof or new state root is not a valid encoding (length, curve,
    /// subgroup, identity, non-canonical root).
    ProofMalformed = 19,
    /// The signer is not the prover currently assigned to the job.
    NotAssigned = 20,
    /// No open job for that rollup and span start.
    JobUnknown = 21,
    // 22 (out_of_order) is retired: since pipelined proving, jobs are
    // accepted in any order. Never reuse it.
    /// The stake is below the chain's minimum.
    StakeTooLow = 23,
    /// The prover is jailed (or not yet allowed to unjail).
    Jailed = 24,
    /// The prover is unbonding, or not in the state the action needs.
    ProverState = 25,
    /// The node's mempool is full; nothing is wrong with the transaction
    /// (retry later or elsewhere).
    MempoolFull = 26,
    /// The job already has a verified proof waiting to link (pending).
    JobPending = 27,
    /// The proof starts from a state root that can never link: the job is
    /// the rollup's next to prove and its proven root is another.
    RootMismatch = 28,
    /// The signer has no validator record.
    ValidatorUnknown = 29,
    /// The validator's record forbids the action (unbonding, not jailed,
    /// tombstoned, registered with another key, or the key is taken).
    ValidatorState = 30,
    /// The node failed internally (storage); not the transaction's fault.
    Internal = 99,
}

impl Code {
    pub const ALL: [Code; 31] = [
        Code::Ok,
        Code::Malformed,
        Code::TooLarge,
        Code::NonCanonical,
        Code::BadSignature,
        Code::WrongChainId,
        Code::NonceReplayed,
        Code::NonceGap,
        Code::InsufficientBalance,
        Code::UnknownRollup,
        Code::RollupExists,
        Code::Unauthorized,
        Code::InvalidAction,
        Code::FeeTooLow,
        Code::Overflow,
        Code::InvalidParameter,
        Code::ForcedRejected,
        Code::ProverUnknown,
        Code::ProofRejected,
        Code::ProofMalformed,
        Code::NotAssigned,
        Code::JobUnknown,
        Code::StakeTooLow,
        Code::Jailed,
        Code::ProverState,
        Code::MempoolFull,
        Code::JobPending,
        Code::RootMismatch,
        Code::ValidatorUnknown,
        Code::ValidatorState,
        Code::Internal,
    ];

    pub fn as_u32(self) -> u32 {
        self as u32
    }

    pub fn from_u32(value: u32) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_u32() == value)
    }

    /// Short stable name, used in logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::Malformed => "malformed",
            Code::TooLarge => "too_large",
            Code::NonCanonical => "non_canonical",
            Code::BadSignature => "bad_signature",
            Code::WrongChainId => "wrong_chain_id",
            Code::NonceReplayed => "nonce_replayed",
            Code::NonceGap => "nonce_gap",
            Code::InsufficientBalance => "insufficient_balance",
            Code::UnknownRollup => "unknown_rollup",
            Code::RollupExists => "rollup_exists",
            Code::Unauthorized => "unauthorized",
            Code::InvalidAction => "invalid_action",
            Code::FeeTooLow => "fee_too_low",
            Code::Overflow => "overflow",
            Code::InvalidParameter => "invalid_parameter",
            Code::ForcedRejected => "forced_rejected",
            Code::ProverUnknown => "prover_unknown",
            Code::ProofRejected => "proof_rejected",
            Code::ProofMalformed => "proof_malformed",
            Code::NotAssigned => "not_assigned",
            Code::JobUnknown => "job_unknown",
            Code::StakeTooLow => "stake_too_low",
            Code::Jailed => "jailed",
            Code::ProverState => "prover_state",
            Code::MempoolFull => "mempool_full",
            Code::JobPending => "job_pending",
            Code::RootMismatch => "root_mismatch",
            Code::ValidatorUnknown => "validator_unknown",
            Code::ValidatorState => "validator_state",
            Code::Internal => "internal",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.as_u32(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_u32()), "duplicate number for {code:?}");
            assert_eq!(Code::from_u32(code.as_u32()), Some(code));
        }
        assert_eq!(Code::from_u32(12345), None);
    }
}
