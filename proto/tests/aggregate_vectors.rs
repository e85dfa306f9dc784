//! The committed aggregate test vectors (`testdata/aggregate-vectors.json`,
//! written by `prover-adapter/tests/aggregate.rs::write_vectors`): every
//! case gets the verdict recorded beside it, "ok" or the error's text. An
//! implementation in another language checks itself against the same file.

use seqnet_proto::aggregate::{verify_aggregate, VerifierSrs};
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

#[test]
fn every_vector_gets_its_recorded_verdict() {
    let file: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/aggregate-vectors.json"))
            .expect("vectors parse");
    let srs = VerifierSrs::decode(&bytes(&file["srs"], "srs")).expect("srs");
    let key = PreparedKey::decode(&bytes(&file["key"], "key")).expect("key");
    let cases = file["cases"].as_array().expect("cases");
    assert!(cases.len() >= 10);
    let mut valid = 0;
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let statements: Vec<SpanStatement> = case["statements"]
            .as_array()
            .expect("statements")
            .iter()
            .map(statement)
            .collect();
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
