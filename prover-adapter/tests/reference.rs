//! Reference circuit: shape, satisfiability, and prove/verify round trips through
//! `seqnet_proto::groth16`, plus the CLI end to end.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::OnceLock;

use ark_bls12_381::{Bls12_381, Fr};
use ark_groth16::{ProvingKey, VerifyingKey};
use ark_relations::r1cs::{ConstraintSynthesizer, ConstraintSystem, SynthesisMode};
use seqnet_proto::groth16::{
    batch_commitment, root_from_bytes, root_to_bytes, span_commitment, PreparedKey, ProofError,
    SpanStatement, PROOF_LEN,
};
use seqnet_prover::circuit::{shape, ReferenceCircuit, ReferenceInputs};
use seqnet_prover::{
    decode_proving_key, encode_proving_key, encode_verifying_key, next_root, prove,
    reference_next_root, setup, JobStatement, ProverError,
};

const K: u32 = 8;

fn keys() -> &'static (ProvingKey<Bls12_381>, VerifyingKey<Bls12_381>) {
    static KEYS: OnceLock<(ProvingKey<Bls12_381>, VerifyingKey<Bls12_381>)> = OnceLock::new();
    KEYS.get_or_init(|| setup(K, 42).unwrap())
}

/// A one-block span of rollup 3 at `height`.
fn job(height: u64) -> JobStatement {
    JobStatement::single_batch(
        3,
        height,
        batch_commitment(3, height, &[]),
        root_to_bytes(Fr::from(1000 + height)),
    )
}

fn statement(job: &JobStatement, new_root: [u8; 32]) -> SpanStatement {
    job.with_new_root(new_root)
}

fn synthesize(circuit: ReferenceCircuit) -> ark_relations::r1cs::ConstraintSystemRef<Fr> {
    let cs = ConstraintSystem::<Fr>::new_ref();
    if circuit.inputs.is_none() {
        cs.set_mode(SynthesisMode::Setup);
    }
    circuit.generate_constraints(cs.clone()).unwrap();
    cs
}

#[test]
fn constraint_count_is_about_two_to_the_k() {
    for k in [8u32, 9, 10, 12] {
        let cs = synthesize(ReferenceCircuit::for_setup(k));
        let n = cs.num_constraints();
        assert!((1 << (k - 1)..=1 << k).contains(&n), "k={k}: {n}");
        assert_eq!(n + cs.num_instance_variables(), 1 << k);
        assert_eq!(cs.num_instance_variables(), 7);
        let s = shape(k).unwrap();
        assert_eq!(s.constraints, n);
        assert_eq!(s.witnesses, cs.num_witness_variables());
        assert_eq!(seqnet_prover::constraint_count(k).unwrap(), n);
    }
    assert!(shape(7).is_none());
    assert!(matches!(
        setup(7, 0),
        Err(ProverError::SizeOutOfRange { k: 7, .. })
    ));
}

#[test]
fn circuit_is_satisfied_only_by_the_reference_root() {
    let j = job(5);
    let prev = root_from_bytes(&j.prev_root).unwrap();
    let inputs =
        ReferenceInputs::for_job(j.rollup_id, j.from_height, j.to_height, j.commitment, prev);
    let cs = synthesize(ReferenceCircuit::new(K, inputs));
    assert!(cs.is_satisfied().unwrap());
    let wrong = ReferenceInputs {
        new_root: inputs.new_root + Fr::from(1u64),
        ..inputs
    };
    let cs = synthesize(ReferenceCircuit::new(K, wrong));
    assert!(!cs.is_satisfied().unwrap());
}

#[test]
fn next_root_depends_on_every_input() {
    let c = [7u8; 32];
    let base = reference_next_root(Fr::from(1u64), 2, 3, 5, &c);
    assert_ne!(base, reference_next_root(Fr::from(2u64), 2, 3, 5, &c));
    assert_ne!(base, reference_next_root(Fr::from(1u64), 3, 3, 5, &c));
    assert_ne!(base, reference_next_root(Fr::from(1u64), 2, 4, 5, &c));
    assert_ne!(base, reference_next_root(Fr::from(1u64), 2, 3, 6, &c));
    let mut c2 = c;
    c2[0] ^= 1;
    assert_ne!(base, reference_next_root(Fr::from(1u64), 2, 3, 5, &c2));
    let mut c3 = c;
    c3[31] ^= 1;
    assert_ne!(base, reference_next_root(Fr::from(1u64), 2, 3, 5, &c3));
    // Deterministic.
    assert_eq!(base, reference_next_root(Fr::from(1u64), 2, 3, 5, &c));
}

#[test]
fn prove_and_verify_round_trip() {
    let (pk, vk) = keys();
    let vk_bytes = encode_verifying_key(vk).unwrap();
    let key = PreparedKey::decode(&vk_bytes).unwrap();
    let j = job(1);
    let (proof, new_root) = prove(pk, K, &j).unwrap();
    assert_eq!(proof.len(), PROOF_LEN);
    let expected = reference_next_root(
        root_from_bytes(&j.prev_root).unwrap(),
        j.rollup_id,
        j.from_height,
        j.to_height,
        &j.commitment,
    );
    assert_eq!(new_root, root_to_bytes(expected));
    assert_eq!(next_root(&j).unwrap(), new_root);
    key.verify(&proof, &statement(&j, new_root)).unwrap();
    seqnet_proto::groth16::verify_batch_proof(&vk_bytes, &proof, &statement(&j, new_root)).unwrap();

    // The proof does not verify another statement.
    let other = job(2);
    let other_root = next_root(&other).unwrap();
    assert_eq!(
        key.verify(&proof, &statement(&other, other_root)),
        Err(ProofError::Invalid)
    );
    let moved = JobStatement {
        prev_root: root_to_bytes(Fr::from(1u64)),
        ..j
    };
    assert_eq!(
        key.verify(&proof, &statement(&moved, next_root(&moved).unwrap())),
        Err(ProofError::Invalid)
    );
    assert_eq!(
        key.verify(&proof, &statement(&j, other_root)),
        Err(ProofError::Invalid)
    );
    // And a chain of jobs verifies, each from the last root.
    let mut prev = new_root;
    for h in 2..4 {
        let step = JobStatement {
            prev_root: prev,
            ..job(h)
        };
        let (p, r) = prove(pk, K, &step).unwrap();
        key.verify(&p, &statement(&step, r)).unwrap();
        prev = r;
    }
    // A span of several blocks: the bounds are bound by the proof.
    let span = JobStatement {
        rollup_id: 3,
        from_height: 10,
        to_height: 14,
        commitment: span_commitment(3, 10, 14, &[(10, [1; 32]), (13, [2; 32])]),
        prev_root: prev,
    };
    let (p, r) = prove(pk, K, &span).unwrap();
    key.verify(&p, &statement(&span, r)).unwrap();
    let stretched = JobStatement {
        to_height: 15,
        ..span
    };
    assert_eq!(
        key.verify(&p, &statement(&stretched, r)),
        Err(ProofError::Invalid)
    );
}

#[test]
fn keys_round_trip_and_are_checked() {
    let (pk, vk) = keys();
    let pk2 = decode_proving_key(&encode_proving_key(pk).unwrap()).unwrap();
    assert_eq!(&pk2, pk);
    assert_eq!(&pk2.vk, vk);
    // Keys are deterministic in the seed.
    let (_, vk_same) = setup(K, 42).unwrap();
    assert_eq!(&vk_same, vk);
    // A key of another size is refused.
    assert!(matches!(
        prove(pk, K + 1, &job(1)),
        Err(ProverError::KeyMismatch { .. })
    ));
    // A non-canonical previous root is refused.
    let bad = JobStatement {
        prev_root: [0xff; 32],
        ..job(1)
    };
    assert!(matches!(
        prove(pk, K, &bad),
        Err(ProverError::Statement(ProofError::NonCanonicalRoot))
    ));
}

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seqnet-prover"))
}

#[test]
fn cli_setup_prove_verify() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli()
        .args([
            "setup",
            "--circuit",
            "reference",
            "--size",
            "8",
            "--seed",
            "5",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let note = std::fs::read_to_string(dir.path().join("SETUP.txt")).unwrap();
    assert!(note.contains("DEVELOPMENT SETUP"));
    assert!(dir.path().join("proving_key.bin").exists());

    let commitment = hex::encode(span_commitment(
        9,
        4,
        6,
        &[(4, batch_commitment(9, 4, &[]))],
    ));
    let prev = hex::encode(root_to_bytes(Fr::from(77u64)));
    let statement_args = [
        "--rollup",
        "9",
        "--from",
        "4",
        "--to",
        "6",
        "--commitment",
        &commitment,
        "--prev-root",
        &prev,
    ];
    let out = cli()
        .args(["prove", "--size", "8", "--keys"])
        .arg(dir.path())
        .args(statement_args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let proof = json["proof"].as_str().unwrap().to_string();
    let new_root = json["new_root"].as_str().unwrap().to_string();
    assert_eq!(proof.len(), 2 * PROOF_LEN, "hex");

    let verify = |root: &str| {
        cli()
            .args(["verify", "--keys"])
            .arg(dir.path())
            .args(statement_args)
            .args(["--proof", &proof, "--new-root", root])
            .output()
            .unwrap()
    };
    let ok = verify(&new_root);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let wrong = hex::encode(root_to_bytes(Fr::from(1u64)));
    let bad = verify(&wrong);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("INVALID"));
}

/// `prove-job`: a version 2 job whose span follows two unproven spans; the
/// previous root is replayed from the proven root through them, the proof
/// verifies, and a job whose items do not match its commitments is refused
/// before proving.
#[test]
fn cli_prove_job_replays_earlier_spans() {
    use seqnet_proto::pb;
    use seqnet_prover::backend::JobInput;

    let dir = tempfile::tempdir().unwrap();
    let (pk, vk) = keys();
    std::fs::write(
        dir.path().join("proving_key.bin"),
        encode_proving_key(pk).unwrap(),
    )
    .unwrap();
    let item = pb::BatchItem {
        tx_hash: vec![1; 32],
        signer: vec![2; 32],
        nonce: 0,
        action_index: 0,
        data: b"span data".to_vec(),
    };
    let batch = batch_commitment(5, 21, std::slice::from_ref(&item));
    let span = span_commitment(5, 20, 24, &[(21, batch)]);
    let proven = root_to_bytes(Fr::from(99u64));
    let earlier = [(10u64, 14u64, [3u8; 32]), (15, 19, [4u8; 32])];
    let job = pb::Job {
        rollup_id: 5,
        from_height: 20,
        to_height: 24,
        span_commitment: span.to_vec(),
        proven_root: proven.to_vec(),
        proven_height: 9,
        earlier: earlier
            .iter()
            .map(|(from, to, c)| pb::EarlierSpan {
                from_height: *from,
                to_height: *to,
                span_commitment: c.to_vec(),
                ..Default::default()
            })
            .collect(),
        batches: vec![pb::JobBatch {
            height: 21,
            batch_commitment: batch.to_vec(),
            items: vec![item.clone()],
        }],
        deadline: 40,
        ..Default::default()
    };
    let run = |job: &pb::Job| {
        let mut child = cli()
            .args(["prove-job", "--keys"])
            .arg(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let input = serde_json::to_vec(&JobInput::from_job(job)).unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &input).unwrap();
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    };
    let out = run(&job);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hex32 = |field: &str| -> [u8; 32] {
        hex::decode(json[field].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let mut root = Fr::from(99u64);
    for (from, to, c) in earlier {
        root = reference_next_root(root, 5, from, to, &c);
    }
    assert_eq!(hex32("prev_state_root"), root_to_bytes(root));
    let statement = SpanStatement {
        rollup_id: 5,
        from_height: 20,
        to_height: 24,
        commitment: span,
        prev_root: hex32("prev_state_root"),
        new_root: hex32("new_state_root"),
    };
    let key = PreparedKey::from_key(vk).unwrap();
    let proof = hex::decode(json["proof"].as_str().unwrap()).unwrap();
    key.verify(&proof, &statement).unwrap();

    // A node that lies about the items is caught before any proving.
    let mut lying = job.clone();
    lying.batches[0].items[0].data = b"other data".to_vec();
    let out = run(&lying);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("do not match its batch commitment"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
