//! docs/state-proofs.md is enough to verify a read: the independent
//! verifier written from it (`rollup-client/scripts/verify-state-proof.py`,
//! Python's standard library only) accepts the proofs of a real node's
//! state (present and absent records of every kind) and refuses altered ones,
//! exactly as `seqnet_proto::state_proof::verify` does.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use seqnet_proto::state_proof::{self, Space};

#[test]
fn the_documented_verifier_agrees_with_the_crate() {
    let node = new_node(0);
    let mut app_hash = Vec::new();
    for height in 1..=3u64 {
        let response = finalize(
            &node,
            height as i64,
            &[data_tx(1, height - 1, 1, format!("{height}").as_bytes())],
        );
        app_hash = response.app_hash.to_vec();
    }
    let reader = node.app.reader();
    let reads = [
        (Space::Accounts, address(1).0.to_vec()),
        (Space::Accounts, address(77).0.to_vec()),
        (Space::Rollups, 1u64.to_be_bytes().to_vec()),
        (Space::Rollups, 9u64.to_be_bytes().to_vec()),
        (Space::Roots, 2u64.to_be_bytes().to_vec()),
        (Space::Roots, 99u64.to_be_bytes().to_vec()),
        (Space::Meta, b"params".to_vec()),
        (Space::Meta, b"no_such_record".to_vec()),
    ];
    let mut cases = Vec::new();
    for (space, key) in reads {
        let read = reader.prove(space, &key).expect("prove");
        assert_eq!(read.version, 3);
        let mut wrong_value = read.value.clone().unwrap_or_default();
        wrong_value.push(0);
        let mut bent = read.proof.clone();
        if let Some(byte) = bent.last_mut() {
            *byte ^= 1;
        }
        let mut wrong_root = app_hash.clone();
        wrong_root[0] ^= 1;
        for (root, value, proof) in [
            (&app_hash, read.value.clone(), &read.proof),
            (&app_hash, Some(wrong_value), &read.proof),
            (&app_hash, read.value.clone(), &bent),
            (&wrong_root, read.value.clone(), &read.proof),
        ] {
            let expected = state_proof::verify(root, space, &key, value.as_deref(), proof).is_ok();
            cases.push((
                serde_json::json!({
                    "app_hash": hex::encode(root),
                    "space": space.name(),
                    "key": hex::encode(&key),
                    "value": value.as_ref().map(hex::encode),
                    "proof": hex::encode(proof),
                }),
                expected,
            ));
        }
    }
    // The first case of each read is the honest one.
    assert!(cases.iter().step_by(4).all(|(_, ok)| *ok));
    assert!(cases.iter().skip(1).step_by(4).all(|(_, ok)| !*ok));

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rollup-client/scripts/verify-state-proof.py");
    let mut child = match Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped the cross-language check: no python3 on PATH");
            return;
        }
        Err(e) => panic!("python3: {e}"),
    };
    let input: Vec<_> = cases.iter().map(|(case, _)| case.clone()).collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(&input).expect("json").as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("python3 runs");
    assert!(output.status.success(), "verifier failed");
    let verdicts: Vec<bool> = serde_json::from_slice(&output.stdout).expect("verdicts");
    let expected: Vec<bool> = cases.iter().map(|(_, ok)| *ok).collect();
    assert_eq!(verdicts, expected);
}
