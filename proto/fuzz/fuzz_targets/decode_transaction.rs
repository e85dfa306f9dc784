#![no_main]
//! Any bytes from the network either decode to a transaction whose bytes
//! round-trip exactly, or are rejected; nothing panics.
use libfuzzer_sys::fuzz_target;
use seqnet_proto::Transaction;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = Transaction::decode(data, 1 << 20, 256) {
        assert_eq!(tx.to_bytes(), data);
        let _ = tx.verify_signature();
    }
});
