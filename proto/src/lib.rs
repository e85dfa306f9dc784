#![doc = include_str!("../README.md")]

pub mod aggregate;
pub mod batch_verify;
pub mod codes;
pub mod groth16;
pub mod inclusion;
pub mod msm;
pub mod nmt;
pub mod prover;
pub mod state_proof;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod test_circuit;
pub mod transcript;
pub mod tx;

/// Generated prost messages and tonic services (package `seqnet.v1`).
#[allow(clippy::all, missing_docs, clippy::unwrap_used)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/seqnet.v1.rs"));

    /// Encoded `FileDescriptorSet` of every seqnet `.proto` file, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/seqnet_descriptor.bin"));
}

pub use codes::Code;
pub use groth16::{
    batch_commitment, span_commitment, verify_batch_proof, PreparedKey, ProofError, SpanStatement,
};
pub use nmt::{NamespaceProof, NmtError, NmtNode, NmtRoot};
pub use tx::{Action, Address, ProofEntry, RollupId, Transaction, TransactionBody, TxError};

/// A short label of a `pb::HoldReason` value (what holds proven finality),
/// for people: CLIs, status tables, benchmark reports.
pub fn hold_reason_label(reason: i32) -> &'static str {
    match pb::HoldReason::try_from(reason) {
        Ok(pb::HoldReason::None) => "none",
        Ok(pb::HoldReason::NoProver) => "no live prover",
        Ok(pb::HoldReason::Stalled) => "stalled span",
        Ok(pb::HoldReason::Capacity) => "capacity short",
        Ok(pb::HoldReason::Proving) => "proving",
        Ok(pb::HoldReason::Collecting) => "span collecting",
        Err(_) => "unknown",
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
