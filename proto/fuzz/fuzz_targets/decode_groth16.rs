#![no_main]
//! Proof bytes of a `SubmitProof` and verifying-key bytes of a
//! `RegisterRollup`: either rejected, or (for proofs) decoded to points
//! whose encoding is exactly the input; nothing panics. Raw bytes, and a
//! valid proof encoding with the bytes the fuzzer names flipped.
use ark_groth16::Proof;
use libfuzzer_sys::fuzz_target;
use seqnet_proto::groth16::{decode_proof, encode_proof, PreparedKey};

#[path = "valid_points.rs"]
mod valid_points;
use valid_points::{pool, Input};

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = decode_proof(data) {
        assert_eq!(encode_proof(&proof), data);
    }
    let _ = PreparedKey::decode(data);

    let pool = pool();
    let mut input = Input::new(data);
    let proof = Proof {
        a: pool.g1[input.index()],
        b: pool.g2[input.index()],
        c: pool.g1[input.index()],
    };
    let mut bytes = encode_proof(&proof);
    let flipped = input.flip(&mut bytes);
    match decode_proof(&bytes) {
        Ok(decoded) => {
            assert_eq!(encode_proof(&decoded), bytes);
            if !flipped {
                assert_eq!(decoded, proof);
            }
        }
        Err(_) => assert!(flipped, "a valid proof encoding was rejected"),
    }
});
