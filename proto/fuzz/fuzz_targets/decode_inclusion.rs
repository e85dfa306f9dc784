#![no_main]
//! A vote extension (another validator's inclusion list) and a proposal's
//! system transaction: either rejected or decoded, the inclusion list only
//! from its canonical encoding; nothing panics.
use libfuzzer_sys::fuzz_target;
use seqnet_proto::inclusion::{decode_inclusion_list, decode_system_tx, encode_inclusion_list};

fuzz_target!(|data: &[u8]| {
    if let Ok(txs) = decode_inclusion_list(data, 64, 1 << 20) {
        assert!(txs.iter().all(|tx| !tx.is_empty()));
        assert_eq!(encode_inclusion_list(txs), data);
    }
    let _ = decode_system_tx(data);
});
