#![no_main]
//! A state proof from a node (outside input to every verified read):
//! decoded and verified against a fixed root for a present and an absent
//! record; either refused or accepted, nothing panics, and a proof never
//! verifies both a value and its absence.
use libfuzzer_sys::fuzz_target;
use seqnet_proto::state_proof::{verify, Space};

fuzz_target!(|data: &[u8]| {
    let (root, rest) = data.split_at(data.len().min(32));
    let mut app_hash = [0u8; 32];
    app_hash[..root.len()].copy_from_slice(root);
    let present = verify(&app_hash, Space::Accounts, b"key", Some(b"value"), rest).is_ok();
    let absent = verify(&app_hash, Space::Accounts, b"key", None, rest).is_ok();
    assert!(!(present && absent));
});
