//! Criterion benchmark of verification: N single Groth16 verifications, one
//! batch verification and one SnarkPack aggregate verification (all on one
//! core, decoding included), and aggregation (all cores), for N in
//! `SEQNET_BENCH_AGG_SIZES` (default `8,64`; `seqnet-prover bench-aggregate`
//! prints the full table up to 1,024).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use seqnet_proto::aggregate::{verify_aggregate_prepared, PreparedVerifierSrs};
use seqnet_proto::batch_verify::{verify_batch, BatchItem};
use seqnet_proto::groth16::{batch_commitment, decode_proof, PreparedKey, SpanStatement};
use seqnet_prover::aggregate::aggregate_statements;
use seqnet_prover::msm::CpuMsm;
use seqnet_prover::srs::Srs;
use seqnet_prover::JobStatement;

const K: u32 = 8;

fn sizes() -> Vec<usize> {
    std::env::var("SEQNET_BENCH_AGG_SIZES")
        .unwrap_or_else(|_| "8,64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|n| *n > 0)
        .collect()
}

fn proofs(count: usize) -> (PreparedKey, Vec<SpanStatement>, Vec<Vec<u8>>) {
    let (pk, vk) = seqnet_prover::setup(K, 1).expect("setup");
    let key = PreparedKey::from_key(&vk).expect("key");
    let mut statements = Vec::new();
    let mut encoded = Vec::new();
    for height in 1..=count as u64 {
        let job = JobStatement::single_batch(1, height, batch_commitment(1, height, &[]), [0; 32]);
        let (proof, new_root) = seqnet_prover::prove(&pk, K, &job).expect("prove");
        statements.push(job.with_new_root(new_root));
        encoded.push(proof);
    }
    (key, statements, encoded)
}

fn bench(c: &mut Criterion) {
    let sizes = sizes();
    let max = sizes.iter().copied().max().unwrap_or(8);
    let (key, statements, encoded) = proofs(max);
    let decoded: Vec<_> = encoded
        .iter()
        .map(|p| decode_proof(p).expect("proof"))
        .collect();
    let srs = Srs::generate_dev(max.max(2).next_power_of_two(), 1).expect("srs");
    let verifier: PreparedVerifierSrs = srs.verifier().into();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let mut group = c.benchmark_group("verify");
    group.sample_size(10);
    for &n in &sizes {
        let st = &statements[..n];
        let pr = &encoded[..n];
        let agg = aggregate_statements(&srs, &key, &decoded[..n], st, &CpuMsm)
            .expect("aggregate")
            .encode();
        let items: Vec<BatchItem<'_>> = st
            .iter()
            .zip(pr)
            .map(|(statement, proof)| BatchItem {
                key: &key,
                proof,
                statement,
            })
            .collect();
        group.bench_with_input(BenchmarkId::new("singles_1core", n), &n, |b, _| {
            b.iter(|| {
                one.install(|| {
                    for (s, p) in st.iter().zip(pr) {
                        key.verify(p, s).expect("valid");
                    }
                })
            })
        });
        group.bench_with_input(BenchmarkId::new("batch_1core", n), &n, |b, _| {
            b.iter(|| one.install(|| verify_batch(&items).expect("valid")))
        });
        group.bench_with_input(BenchmarkId::new("aggregate_1core", n), &n, |b, _| {
            b.iter(|| {
                one.install(|| verify_aggregate_prepared(&verifier, &key, st, &agg).expect("valid"))
            })
        });
        group.bench_with_input(BenchmarkId::new("aggregation_all_cores", n), &n, |b, _| {
            b.iter(|| aggregate_statements(&srs, &key, &decoded[..n], st, &CpuMsm).expect("agg"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
