#![no_main]
//! A batch message from an untrusted node: decoding it and checking its
//! namespace proof must never panic, whatever the proof claims.
use libfuzzer_sys::fuzz_target;
use prost::Message;
use seqnet_proto::{nmt, pb};

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = pb::Batch::decode(data) else {
        return;
    };
    let (Some(root), Some(proof)) = (batch.root.as_ref(), batch.proof.as_ref()) else {
        return;
    };
    let (Ok(root), Ok(proof)) = (
        nmt::NmtRoot::try_from(root),
        nmt::NamespaceProof::try_from(proof),
    ) else {
        return;
    };
    let leaves: Vec<Vec<u8>> = batch.items.iter().map(|i| i.encode_to_vec()).collect();
    let _ = nmt::verify_namespace(&root, batch.rollup_id, &leaves, &proof);
});
