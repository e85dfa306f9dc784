//! The committed aggregate test vectors (`testdata/aggregate-vectors.json`,
//! written by `prover-adapter/tests/aggregate.rs::write_vectors`): every
//! case gets the verdict recorded beside it, "ok" or the error's text. An
//! implementation in another language checks itself against the same file.

use std::collections::BTreeMap;

use proptest::prelude::*;

use seqnet_proto::aggregate::{verify_aggregate, AggregateError, VerifierSrs};
use seqnet_proto::groth16::{PreparedKey, SpanStatement};

fn bytes(value: &serde_json::Value, what: &str) -> Vec<u8> {
    hex::decode(
        value
            .as_str()
            .unwrap_or_else(|| panic!("{what}: not a string")),
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn array32(value: &serde_json::Value, what: &str) -> [u8; 32] {
    bytes(value, what)
        .try_into()
        .unwrap_or_else(|_| panic!("{what}: not 32 bytes"))
}

fn statement(value: &serde_json::Value) -> SpanStatement {
    let number = |key: &str| {
        value[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: not a number"))
    };
    SpanStatement {
        rollup_id: number("rollup_id"),
        from_height: number("from_height"),
        to_height: number("to_height"),
        commitment: array32(&value["commitment"], "commitment"),
        prev_root: array32(&value["prev_root"], "prev_root"),
        new_root: array32(&value["new_root"], "new_root"),
    }
}

fn vectors() -> (serde_json::Value, VerifierSrs, PreparedKey) {
    let file: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/aggregate-vectors.json"))
            .expect("vectors parse");
    let srs = VerifierSrs::decode(&bytes(&file["srs"], "srs")).expect("srs");
    let key = PreparedKey::decode(&bytes(&file["key"], "key")).expect("key");
    (file, srs, key)
}

fn statements(case: &serde_json::Value) -> Vec<SpanStatement> {
    case["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .map(statement)
        .collect()
}

#[test]
fn every_vector_gets_its_recorded_verdict() {
    let (file, srs, key) = vectors();
    let cases = file["cases"].as_array().expect("cases");
    assert!(cases.len() >= 10);
    let mut valid = 0;
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let statements = statements(case);
        let aggregate = bytes(&case["aggregate"], name);
        let verdict = match verify_aggregate(&srs, &key, &statements, &aggregate) {
            Ok(()) => {
                valid += 1;
                "ok".to_string()
            }
            Err(e) => e.to_string(),
        };
        assert_eq!(
            verdict,
            case["verdict"].as_str().expect("verdict"),
            "{name}"
        );
    }
    assert!(
        valid >= 1 && valid < cases.len(),
        "both verdicts are covered"
    );
}

/// The error's kind, without the field or values it names.
fn kind(error: &AggregateError) -> &'static str {
    match error {
        AggregateError::Count { .. } => "Count",
        AggregateError::CountMismatch { .. } => "CountMismatch",
        AggregateError::Length { .. } => "Length",
        AggregateError::Point { .. } => "Point",
        AggregateError::MalformedGt { .. } => "MalformedGt",
        AggregateError::NotCyclotomic { .. } => "NotCyclotomic",
        AggregateError::MalformedSrs { .. } => "MalformedSrs",
        AggregateError::Statement { .. } => "Statement",
        AggregateError::InvalidMipp => "InvalidMipp",
        AggregateError::Invalid => "Invalid",
    }
}

/// The valid 4-proof vector (12,388 bytes) with its statements.
fn valid_four() -> (VerifierSrs, PreparedKey, Vec<SpanStatement>, Vec<u8>) {
    let (file, srs, key) = vectors();
    let case = file["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == "valid, 4 proofs")
        .expect("the valid 4-proof vector");
    let statements = statements(case);
    let good = bytes(&case["aggregate"], "aggregate");
    assert_eq!(verify_aggregate(&srs, &key, &statements, &good), Ok(()));
    (srs, key, statements, good)
}

/// Every byte of a valid aggregate, flipped one at a time: each is
/// refused, none panics. Most are caught by decoding (off the curve, not
/// canonical, not cyclotomic), the rest by the equations.
#[test]
fn every_byte_flip_of_a_valid_aggregate_is_refused() {
    let (srs, key, statements, good) = valid_four();
    let mut verdicts: BTreeMap<&str, usize> = BTreeMap::new();
    for at in 0..good.len() {
        let mut flipped = good.clone();
        flipped[at] ^= 0x01;
        match verify_aggregate(&srs, &key, &statements, &flipped) {
            Ok(()) => panic!("byte {at} flipped still verifies"),
            Err(e) => *verdicts.entry(kind(&e)).or_default() += 1,
        }
    }
    eprintln!("{} one-bit flips refused: {verdicts:?}", good.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Any byte changed by any mask (flag bits included) is refused.
    #[test]
    fn any_changed_byte_is_refused(at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let (srs, key, statements, good) = valid_four();
        let mut changed = good.clone();
        let at = at.index(changed.len());
        changed[at] ^= mask;
        prop_assert!(verify_aggregate(&srs, &key, &statements, &changed).is_err());
    }
}
