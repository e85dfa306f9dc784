//! The external-command back end end to end: `scripts/reference-prover.sh`
//! (the README's example) reads the job JSON, proves it with
//! `seqnet-prover prove` and answers; the proof verifies with the
//! verifying key `seqnet-prover setup` wrote, and matches the reference
//! back end's new root.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use seqnet_proto::groth16::{batch_commitment, BatchStatement, PreparedKey};
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
    pb::Job {
        rollup_id: 3,
        height: 17,
        batch_commitment: batch_commitment(3, 17, &items).to_vec(),
        prev_state_root: vec![0; 32],
        deadline: 37,
        items,
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
    let statement = BatchStatement {
        rollup_id: job.rollup_id,
        height: job.height,
        commitment: job.batch_commitment.clone().try_into().expect("32"),
        prev_root: [0; 32],
        new_root: out.new_state_root,
    };
    key.verify(&out.proof, &statement)
        .expect("the proof verifies");

    // The in-process back end reads k off the key and reaches the same root.
    let reference = ReferenceBackend::load(keys.path()).expect("load");
    assert_eq!(reference.size(), 8);
    let direct = reference.prove(&input).expect("proves");
    assert_eq!(direct.new_state_root, out.new_state_root);
    key.verify(&direct.proof, &statement)
        .expect("the reference proof verifies");
}

#[test]
fn a_missing_key_directory_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = ReferenceBackend::load(dir.path()).err().expect("no key");
    assert!(error.to_string().contains("proving_key.bin"), "{error}");
}
