//! The external-command back end end to end: `scripts/reference-prover.sh`
//! (the README's example) reads the job JSON (version 2: a span after an
//! unproven earlier span), proves it with `seqnet-prover prove-job` and
//! answers; the proof verifies with the verifying key `seqnet-prover setup`
//! wrote, and matches the reference back end's roots.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use seqnet_proto::groth16::{batch_commitment, span_commitment, PreparedKey, SpanStatement};
use seqnet_proto::pb;
use seqnet_prover::backend::{
    CommandBackend, JobInput, ProvingBackend, ReferenceBackend, VERIFYING_KEY_FILE,
};

const PROVER: &str = env!("CARGO_BIN_EXE_seqnet-prover");

fn setup(dir: &Path, k: u32) {
    let status = Command::new(PROVER)
        .args(["setup", "--size", &k.to_string(), "--out"])
        .arg(dir)
        .status()
        .expect("run seqnet-prover setup");
    assert!(status.success());
}

fn job() -> pb::Job {
    let items = vec![pb::BatchItem {
        tx_hash: vec![5; 32],
        signer: vec![6; 32],
        nonce: 0,
        action_index: 0,
        data: b"payload".to_vec(),
    }];
    let batch = batch_commitment(3, 17, &items);
    pb::Job {
        rollup_id: 3,
        from_height: 16,
        to_height: 18,
        span_commitment: span_commitment(3, 16, 18, &[(17, batch)]).to_vec(),
        proven_root: vec![0; 32],
        proven_height: 10,
        earlier: vec![pb::EarlierSpan {
            from_height: 11,
            to_height: 15,
            span_commitment: vec![9; 32],
            ..Default::default()
        }],
        deadline: 37,
        batches: vec![pb::JobBatch {
            height: 17,
            batch_commitment: batch.to_vec(),
            items,
        }],
        ..Default::default()
    }
}

#[test]
fn the_example_script_proves_a_job_that_verifies() {
    let keys = tempfile::tempdir().expect("tempdir");
    setup(keys.path(), 8);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference-prover.sh");
    let command = format!(
        "SEQNET_PROVER={PROVER} {} {}",
        script.display(),
        keys.path().display()
    );
    let backend = CommandBackend::new(command, Duration::from_secs(120));
    let job = job();
    let input = JobInput::from_job(&job);
    let out = backend.prove(&input).expect("the script proves");

    let vk = std::fs::read(keys.path().join(VERIFYING_KEY_FILE)).expect("vk");
    let key = PreparedKey::decode(&vk).expect("vk decodes");
    let statement = SpanStatement {
        rollup_id: job.rollup_id,
        from_height: job.from_height,
        to_height: job.to_height,
        commitment: job.span_commitment.clone().try_into().expect("32"),
        prev_root: out.prev_state_root,
        new_root: out.new_state_root,
    };
    // The previous root is the proven root carried through the earlier span.
    assert_eq!(
        out.prev_state_root,
        input.reference_prev_root().expect("replay")
    );
    assert_ne!(out.prev_state_root, [0; 32]);
    key.verify(&out.proof, &statement)
        .expect("the proof verifies");

    // The in-process back end reads k off the key and reaches the same root.
    let reference = ReferenceBackend::load(keys.path()).expect("load");
    assert_eq!(reference.size(), 8);
    let direct = reference.prove(&input).expect("proves");
    assert_eq!(direct.new_state_root, out.new_state_root);
    assert_eq!(direct.prev_state_root, out.prev_state_root);
    key.verify(&direct.proof, &statement)
        .expect("the reference proof verifies");
}

#[test]
fn a_missing_key_directory_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = ReferenceBackend::load(dir.path()).err().expect("no key");
    assert!(error.to_string().contains("proving_key.bin"), "{error}");
}
