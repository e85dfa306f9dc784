//! SnarkPack aggregation end to end: proofs of the reference circuit are
//! aggregated by `seqnet_prover::aggregate` (MSMs on the CPU back end) and
//! checked by `seqnet_proto::aggregate::verify_aggregate`.

use std::sync::OnceLock;

use ark_bls12_381::Bls12_381;
use ark_groth16::{Proof, ProvingKey};
use seqnet_proto::aggregate::{
    encoded_len, verify_aggregate, AggregateError, AggregateProof, VerifierSrs,
};
use seqnet_proto::groth16::{batch_commitment, decode_proof, PreparedKey, SpanStatement};
use seqnet_prover::aggregate::{aggregate_statements, AggregateProveError};
use seqnet_prover::msm::CpuMsm;
use seqnet_prover::srs::Srs;
use seqnet_prover::JobStatement;

const K: u32 = 8;

struct Fixture {
    pk: ProvingKey<Bls12_381>,
    key: PreparedKey,
    srs: Srs,
    /// 64 (statement, proof) pairs of rollup 1 at heights 1..=64.
    proofs: Vec<(SpanStatement, Proof<Bls12_381>)>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (pk, vk) = seqnet_prover::setup(K, 77).expect("setup");
        let key = PreparedKey::from_key(&vk).expect("key");
        let srs = Srs::generate_dev(64, 5).expect("srs");
        let proofs = (1..=64u64)
            .map(|height| {
                let job = JobStatement::single_batch(
                    1,
                    height,
                    batch_commitment(1, height, &[]),
                    [0; 32],
                );
                let (bytes, new_root) = seqnet_prover::prove(&pk, K, &job).expect("prove");
                let st = job.with_new_root(new_root);
                (st, decode_proof(&bytes).expect("proof"))
            })
            .collect();
        Fixture {
            pk,
            key,
            srs,
            proofs,
        }
    })
}

fn make(n: usize) -> (Vec<SpanStatement>, Vec<u8>) {
    let f = fixture();
    let (statements, proofs): (Vec<_>, Vec<_>) = f.proofs[..n].iter().cloned().unzip();
    let agg = aggregate_statements(&f.srs, &f.key, &proofs, &statements, &CpuMsm).expect("agg");
    (statements, agg.encode())
}

fn verify(statements: &[SpanStatement], bytes: &[u8]) -> Result<(), AggregateError> {
    let f = fixture();
    verify_aggregate(&f.srs.verifier(), &f.key, statements, bytes)
}

#[test]
fn round_trips_for_1_2_3_8_and_64_proofs() {
    for n in [1, 2, 3, 8, 64] {
        let (statements, bytes) = make(n);
        assert_eq!(bytes.len(), encoded_len(n), "n = {n}");
        verify(&statements, &bytes).unwrap_or_else(|e| panic!("n = {n}: {e}"));
        let decoded = AggregateProof::decode(&bytes).expect("decode");
        assert_eq!(decoded.encode(), bytes);
        assert_eq!(decoded.count as usize, n);
    }
}

#[test]
fn size_grows_with_log_n() {
    assert_eq!(encoded_len(2), encoded_len(1));
    assert_eq!(encoded_len(3), encoded_len(4));
    let step = encoded_len(4) - encoded_len(2);
    assert_eq!(encoded_len(1024) - encoded_len(512), step);
    assert!(encoded_len(1024) < 70_000);
}

#[test]
fn tampered_aggregates_are_rejected() {
    let (statements, bytes) = make(8);
    let good = AggregateProof::decode(&bytes).expect("decode");
    // Field by field: swap in another valid element of the same group.
    let mut cases: Vec<(&str, AggregateProof)> = Vec::new();
    let mut p = good.clone();
    p.z_ab = good.com_ab.0;
    cases.push(("z_ab", p));
    let mut p = good.clone();
    p.com_c.1 = good.com_c.0;
    cases.push(("com_c.U", p));
    let mut p = good.clone();
    p.z_cb = good.z_ab;
    cases.push(("z_cb", p));
    let mut p = good.clone();
    (p.z_a, p.z_c) = (good.z_c, good.z_a);
    cases.push(("z_a and z_c swapped", p));
    let mut p = good.clone();
    p.rounds[1].t_l = good.rounds[1].u_l;
    cases.push(("round 1 t_l", p));
    let mut p = good.clone();
    p.rounds[0].z_r = good.rounds[0].z_l;
    cases.push(("round 0 z_r", p));
    let mut p = good.clone();
    p.rounds[2].zd_r = good.rounds[2].zd_l;
    cases.push(("round 2 zd_r", p));
    let mut p = good.clone();
    p.final_d = good.z_a;
    cases.push(("final_d", p));
    let mut p = good.clone();
    p.final_v = (good.final_v.1, good.final_v.0);
    cases.push(("final_v", p));
    let mut p = good.clone();
    p.open_w.0 = good.open_w.1;
    cases.push(("open_w1", p));
    let mut p = good.clone();
    p.z_c = good.final_d;
    cases.push(("z_c", p));
    for (what, p) in cases {
        assert!(verify(&statements, &p.encode()).is_err(), "{what}");
    }
    // Byte flips are caught by decoding or by the checks.
    for at in [4, 700, bytes.len() / 2, bytes.len() - 10] {
        let mut b = bytes.clone();
        b[at] ^= 0x01;
        assert!(verify(&statements, &b).is_err(), "byte {at}");
    }
    // Wrong lengths and counts.
    assert!(matches!(
        verify(&statements, &bytes[..bytes.len() - 1]),
        Err(AggregateError::Length { .. })
    ));
    assert!(matches!(
        verify(&statements[..7], &bytes),
        Err(AggregateError::CountMismatch {
            aggregate: 8,
            statements: 7
        })
    ));
}

#[test]
fn an_invalid_proof_makes_the_aggregate_invalid() {
    let f = fixture();
    let (statements, mut proofs): (Vec<_>, Vec<_>) = f.proofs[..4].iter().cloned().unzip();
    proofs[2] = proofs[1].clone();
    let agg = aggregate_statements(&f.srs, &f.key, &proofs, &statements, &CpuMsm).expect("agg");
    assert_eq!(
        verify(&statements, &agg.encode()),
        Err(AggregateError::Invalid)
    );
}

/// Proofs omitted, duplicated or swapped in an aggregate whose statements
/// are in order, and an aggregate replayed for another `n`.
#[test]
fn proofs_omitted_duplicated_swapped_or_recounted_are_refused() {
    let f = fixture();
    let aggregate = |proofs: &[Proof<Bls12_381>], statements: &[SpanStatement]| {
        aggregate_statements(&f.srs, &f.key, proofs, statements, &CpuMsm)
            .expect("agg")
            .encode()
    };
    let (statements, proofs): (Vec<_>, Vec<_>) = f.proofs[..8].iter().cloned().unzip();
    // Omitted: an aggregate of 7 offered for 8 statements.
    let mut fewer = (statements.clone(), proofs.clone());
    fewer.0.remove(3);
    fewer.1.remove(3);
    assert_eq!(
        verify(&statements, &aggregate(&fewer.1, &fewer.0)),
        Err(AggregateError::CountMismatch {
            aggregate: 7,
            statements: 8
        })
    );
    // Duplicated: proof 4 in the place of proof 3 (its statement in order).
    let mut duplicated = proofs.clone();
    duplicated[3] = proofs[4].clone();
    assert_eq!(
        verify(&statements, &aggregate(&duplicated, &statements)),
        Err(AggregateError::Invalid)
    );
    // Swapped: proofs 2 and 5 trade places, the statements do not.
    let mut swapped = proofs.clone();
    swapped.swap(2, 5);
    assert_eq!(
        verify(&statements, &aggregate(&swapped, &statements)),
        Err(AggregateError::Invalid)
    );
    // Another n: the count rewritten to 7 (same padded length), and an
    // aggregate of 16 offered for its first 8 statements.
    let (_, bytes) = make(8);
    let mut recounted = bytes.clone();
    recounted[3] = 7;
    assert_eq!(
        verify(&statements[..7], &recounted),
        Err(AggregateError::InvalidMipp)
    );
    let (sixteen, bytes) = make(16);
    assert_eq!(
        verify(&sixteen[..8], &bytes),
        Err(AggregateError::CountMismatch {
            aggregate: 16,
            statements: 8
        })
    );
}

#[test]
fn wrong_srs_is_rejected() {
    let (statements, bytes) = make(8);
    let f = fixture();
    let other = Srs::generate_dev(64, 6).expect("srs");
    // The SRS is in the transcript: other challenges, and the MIPP
    // equation (the first checked) fails.
    assert_eq!(
        verify_aggregate(&other.verifier(), &f.key, &statements, &bytes),
        Err(AggregateError::InvalidMipp)
    );
    // Same trapdoors but a different declared size: a different transcript.
    let mut resized = f.srs.verifier();
    resized.max_proofs = 128;
    assert_eq!(
        verify_aggregate(&resized, &f.key, &statements, &bytes),
        Err(AggregateError::InvalidMipp)
    );
    // The verifier SRS round-trips through its encoding.
    let v = f.srs.verifier();
    assert_eq!(VerifierSrs::decode(&v.encode()).expect("decode"), v);
    // An aggregate larger than the SRS supports cannot be made.
    let small = Srs::generate_dev(4, 5).expect("srs");
    let (st, pr): (Vec<_>, Vec<_>) = f.proofs[..5].iter().cloned().unzip();
    assert!(matches!(
        aggregate_statements(&small, &f.key, &pr, &st, &CpuMsm),
        Err(AggregateProveError::Count { got: 5, max: 4 })
    ));
}

#[test]
fn reordered_public_inputs_are_rejected() {
    let (mut statements, bytes) = make(8);
    // Public inputs are in the transcript too.
    statements.swap(2, 5);
    assert_eq!(
        verify(&statements, &bytes),
        Err(AggregateError::InvalidMipp)
    );
    let (mut statements, bytes) = make(3);
    // One changed root.
    statements[1].new_root = statements[0].new_root;
    assert_eq!(
        verify(&statements, &bytes),
        Err(AggregateError::InvalidMipp)
    );
}

#[test]
fn another_verifying_key_is_rejected() {
    let (statements, bytes) = make(2);
    let (_, vk) = seqnet_prover::setup(K, 78).expect("setup");
    let other = PreparedKey::from_key(&vk).expect("key");
    let f = fixture();
    // The key's digest is in the transcript.
    assert_eq!(
        verify_aggregate(&f.srs.verifier(), &other, &statements, &bytes),
        Err(AggregateError::InvalidMipp)
    );
    // The fixture's proving key is the one that made the proofs.
    assert_eq!(
        PreparedKey::from_key(&f.pk.vk).expect("key").digest(),
        f.key.digest()
    );
}

/// A key whose trapdoor is known (alpha, beta, gamma, delta and the input
/// points' scalars), and a proof of `st` with the point `infinity` ("A",
/// "B", "C" or "none") at infinity; `valid` picks whether it satisfies the
/// pairing equation.
fn trapdoor_proof(
    st: &SpanStatement,
    infinity: &str,
    valid: bool,
) -> (PreparedKey, ark_groth16::Proof<Bls12_381>) {
    use ark_bls12_381::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
    use ark_ec::{AffineRepr, CurveGroup, PrimeGroup};
    use ark_ff::{One, Zero};
    let [alpha, beta, gamma, delta] = [3u64, 5, 7, 11].map(Fr::from);
    let ic: Vec<Fr> = (0..7u64).map(|i| Fr::from(13 + i)).collect();
    let g1 = G1Projective::generator();
    let g2 = G2Projective::generator();
    let vk = ark_groth16::VerifyingKey::<Bls12_381> {
        alpha_g1: (g1 * alpha).into_affine(),
        beta_g2: (g2 * beta).into_affine(),
        gamma_g2: (g2 * gamma).into_affine(),
        delta_g2: (g2 * delta).into_affine(),
        gamma_abc_g1: ic.iter().map(|x| (g1 * x).into_affine()).collect(),
    };
    let inputs = st.public_inputs().expect("inputs");
    let l = ic[0] + inputs.iter().zip(&ic[1..]).map(|(x, k)| *x * k).sum::<Fr>();
    // a * b = alpha * beta + l * gamma + c * delta when valid.
    let target = alpha * beta + l * gamma;
    let (a, b, mut c) = match infinity {
        "A" | "B" => (Fr::zero(), Fr::zero(), -target / delta),
        "C" => (target, Fr::one(), Fr::zero()),
        _ => (
            Fr::from(17u64),
            Fr::from(19u64),
            (Fr::from(17u64 * 19) - target) / delta,
        ),
    };
    if !valid {
        // Off by one in the exponent: the equation fails; with C at
        // infinity, A is moved instead (C must stay the identity).
        c += Fr::one();
    }
    let a_point = match (infinity, valid) {
        ("A", _) => G1Affine::zero(),
        ("C", false) => (g1 * (a + Fr::one())).into_affine(),
        _ => (g1 * a).into_affine(),
    };
    let proof = ark_groth16::Proof {
        a: a_point,
        b: if infinity == "B" {
            G2Affine::zero()
        } else {
            (g2 * b).into_affine()
        },
        c: if infinity == "C" {
            G1Affine::zero()
        } else {
            (g1 * c).into_affine()
        },
    };
    (PreparedKey::from_key(&vk).expect("key"), proof)
}

/// One rule set: a proof with A, B or C at infinity (or none) gets the same
/// verdict from single verification, batch verification and aggregation, valid
/// or not.
#[test]
fn single_batch_and_aggregate_agree_on_points_at_infinity() {
    let f = fixture();
    let statements: Vec<SpanStatement> = f.proofs[..2].iter().map(|(s, _)| *s).collect();
    for infinity in ["A", "B", "C", "none"] {
        for valid in [true, false] {
            let pairs: Vec<_> = statements
                .iter()
                .map(|st| trapdoor_proof(st, infinity, valid))
                .collect();
            // The key depends on nothing but the fixed trapdoor: one for all.
            let key = &pairs[0].0;
            let proofs: Vec<_> = pairs.iter().map(|(_, p)| p.clone()).collect();
            let bytes: Vec<Vec<u8>> = proofs
                .iter()
                .map(seqnet_proto::groth16::encode_proof)
                .collect();
            let single = statements
                .iter()
                .zip(&bytes)
                .all(|(st, b)| key.verify(b, st).is_ok());
            let items: Vec<_> = statements
                .iter()
                .zip(&bytes)
                .map(|(st, b)| seqnet_proto::batch_verify::BatchItem {
                    key,
                    proof: b,
                    statement: st,
                })
                .collect();
            let batch = seqnet_proto::batch_verify::verify_batch(&items).is_ok();
            let agg = aggregate_statements(&f.srs, key, &proofs, &statements, &CpuMsm)
                .expect("aggregate")
                .encode();
            let aggregate = verify_aggregate(&f.srs.verifier(), key, &statements, &agg).is_ok();
            assert_eq!(
                single, valid,
                "single, {infinity} at infinity, valid {valid}"
            );
            assert_eq!(batch, valid, "batch, {infinity} at infinity, valid {valid}");
            assert_eq!(
                aggregate, valid,
                "aggregate, {infinity} at infinity, valid {valid}"
            );
        }
    }
}

/// An element of the cyclotomic subgroup of Fq12 outside the pairing group:
/// its order divides the cyclotomic cofactor `(p^4 - p^2 + 1) / r`.
fn cyclotomic_cofactor_element() -> ark_bls12_381::Fq12 {
    use ark_ff::{Field, One, PrimeField, UniformRand};
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    loop {
        let x = ark_bls12_381::Fq12::rand(&mut rng);
        // x^{(p^6 - 1)(p^2 + 1)}: into the cyclotomic subgroup.
        let mut y = x;
        y.conjugate_in_place();
        let y = y * x.inverse().expect("nonzero");
        let mut z = y;
        z.frobenius_map_in_place(2);
        let z = z * y;
        // Then ^r: what is left has order dividing the cofactor.
        let w = z.pow(ark_bls12_381::Fr::MODULUS);
        if !w.is_one() {
            return w;
        }
    }
}

/// A G1 point of order 3 (G1's cofactor has the factor 3).
fn g1_order_3() -> ark_bls12_381::G1Affine {
    use ark_bls12_381::{Fq, Fr, G1Affine};
    use ark_ec::{AffineRepr, CurveGroup};
    use ark_ff::PrimeField;
    // r * (h / 3) for the cofactor h = 0x396c8c005555e1568c00aaab0000aaab.
    let h_third: [u64; 2] = [0x2eaae38e55558e39, 0x13242eaac71ca072];
    for x in 1u64.. {
        let Some(p) = G1Affine::get_point_from_x_unchecked(Fq::from(x), false) else {
            continue;
        };
        let t = p
            .mul_bigint(Fr::MODULUS)
            .into_affine()
            .mul_bigint(h_third)
            .into_affine();
        if !t.is_zero() {
            assert!((t + t + t).into_affine().is_zero(), "order 3");
            return t;
        }
    }
    unreachable!("the curve has points")
}

/// The adversarial inputs of a careful attacker, none panicking:
/// target-group elements moved out of the pairing group by the cyclotomic
/// cofactor (they pass decoding, which checks the cyclotomic subgroup only,
/// and the equations refuse them), and G1 points plus a point of order 3
/// (refused at decoding, by name, where the subgroup is checked; by the MIPP
/// equation where it is not).
#[test]
fn cofactor_components_are_refused() {
    let (statements, bytes) = make(8);
    let good = AggregateProof::decode(&bytes).expect("decode");
    let z = cyclotomic_cofactor_element();
    let mut gt_cases: Vec<(&str, AggregateProof)> = Vec::new();
    let mut p = good.clone();
    p.com_ab.0 *= z;
    gt_cases.push(("com_ab.T", p));
    let mut p = good.clone();
    p.com_c.1 *= z;
    gt_cases.push(("com_c.U", p));
    let mut p = good.clone();
    p.z_ab *= z;
    gt_cases.push(("z_ab", p));
    let mut p = good.clone();
    p.z_cb *= z;
    gt_cases.push(("z_cb", p));
    let mut p = good.clone();
    p.rounds[0].z_l *= z;
    gt_cases.push(("round 0 z_l", p));
    let mut p = good.clone();
    p.rounds[2].u_r *= z;
    gt_cases.push(("round 2 u_r", p));
    for (what, p) in gt_cases {
        let encoded = p.encode();
        // Cyclotomic, so it decodes; the equations refuse it (the first one
        // to fail depends on the challenges the changed transcript draws).
        assert!(AggregateProof::decode(&encoded).is_ok(), "{what}");
        let verdict = verify(&statements, &encoded);
        assert!(
            matches!(
                verdict,
                Err(AggregateError::Invalid | AggregateError::InvalidMipp)
            ),
            "{what}: {verdict:?}"
        );
    }

    let t = g1_order_3();
    // Points without the subgroup check: the MIPP equation refuses them.
    let mut linear: Vec<(&str, AggregateProof)> = Vec::new();
    let mut p = good.clone();
    p.z_a = (p.z_a + t).into();
    linear.push(("z_a", p));
    let mut p = good.clone();
    p.rounds[1].zd_l = (p.rounds[1].zd_l + t).into();
    linear.push(("round 1 zd_l", p));
    let mut p = good.clone();
    p.rounds[2].zd_r = (p.rounds[2].zd_r + t).into();
    linear.push(("round 2 zd_r", p));
    for (what, p) in linear {
        assert_eq!(
            verify(&statements, &p.encode()),
            Err(AggregateError::InvalidMipp),
            "{what}"
        );
    }
    // Points with it: refused at decoding, named.
    let mut checked: Vec<(&str, AggregateProof)> = Vec::new();
    let mut p = good.clone();
    p.z_c = (p.z_c + t).into();
    checked.push(("z_c", p));
    let mut p = good.clone();
    p.final_d = (p.final_d + t).into();
    checked.push(("final_d", p));
    let mut p = good.clone();
    p.final_w.0 = (p.final_w.0 + t).into();
    checked.push(("final_w1", p));
    let mut p = good.clone();
    p.open_w.1 = (p.open_w.1 + t).into();
    checked.push(("open_w2", p));
    for (what, p) in checked {
        let verdict = verify(&statements, &p.encode());
        assert!(
            matches!(&verdict, Err(AggregateError::Point { field, .. }) if field == what),
            "{what}: {verdict:?}"
        );
    }
}

/// Writes `proto/testdata/aggregate-vectors.json`, the committed test
/// vectors an implementation in another language checks itself against
/// (valid and invalid aggregates with the verdict of
/// `seqnet_proto::aggregate::verify_aggregate`). Run when the format
/// changes: `SEQNET_WRITE_VECTORS=1 cargo test -p seqnet-prover --test
/// aggregate -- --ignored write_vectors`; `proto/tests/aggregate_vectors.rs`
/// checks the file in `make test`.
#[test]
#[ignore]
fn write_vectors() {
    if std::env::var_os("SEQNET_WRITE_VECTORS").is_none() {
        return;
    }
    let f = fixture();
    let statement_json = |st: &SpanStatement| {
        serde_json::json!({
            "rollup_id": st.rollup_id,
            "from_height": st.from_height,
            "to_height": st.to_height,
            "commitment": hex::encode(st.commitment),
            "prev_root": hex::encode(st.prev_root),
            "new_root": hex::encode(st.new_root),
        })
    };
    let verdict = |statements: &[SpanStatement], bytes: &[u8]| match verify(statements, bytes) {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    let mut cases = Vec::new();
    let mut case = |name: &str, statements: &[SpanStatement], bytes: &[u8]| {
        cases.push(serde_json::json!({
            "name": name,
            "statements": statements.iter().map(statement_json).collect::<Vec<_>>(),
            "aggregate": hex::encode(bytes),
            "verdict": verdict(statements, bytes),
        }));
    };
    for n in [1, 2, 3, 4] {
        let (statements, bytes) = make(n);
        case(&format!("valid, {n} proofs"), &statements, &bytes);
    }
    let (statements, bytes) = make(4);
    let mut flipped = bytes.clone();
    flipped[100] ^= 1;
    case("a byte of com_ab flipped", &statements, &flipped);
    let good = AggregateProof::decode(&bytes).expect("decode");
    let mut p = good.clone();
    p.z_ab = good.com_ab.0;
    case(
        "z_ab replaced by another target-group element",
        &statements,
        &p.encode(),
    );
    let mut p = good.clone();
    p.z_a = (p.z_a + g1_order_3()).into();
    case("z_a plus a point of order 3", &statements, &p.encode());
    let mut p = good.clone();
    p.com_c.0 *= cyclotomic_cofactor_element();
    case(
        "com_c.T times a cyclotomic cofactor element",
        &statements,
        &p.encode(),
    );
    let mut swapped = statements.clone();
    swapped.swap(0, 3);
    case("statements swapped", &swapped, &bytes);
    case("a statement missing", &statements[..3], &bytes);
    case("truncated", &statements, &bytes[..bytes.len() - 1]);
    let (_, proofs): (Vec<_>, Vec<_>) = f.proofs[..4].iter().cloned().unzip();
    let mut proofs = proofs;
    proofs[2] = proofs[1].clone();
    let agg = aggregate_statements(&f.srs, &f.key, &proofs, &statements, &CpuMsm).expect("agg");
    case("one proof of another statement", &statements, &agg.encode());
    let mut key = Vec::new();
    ark_serialize::CanonicalSerialize::serialize_compressed(&f.pk.vk, &mut key).expect("key");
    let file = serde_json::json!({
        "about": "seqnet SnarkPack aggregate test vectors: verify_aggregate(srs, key, statements, aggregate) and the verdict it gives (\"ok\" or the error). Formats: docs/aggregation.md.",
        "srs": hex::encode(f.srs.verifier().encode()),
        "key": hex::encode(key),
        "cases": cases,
    });
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../proto/testdata/aggregate-vectors.json"
    );
    std::fs::write(path, serde_json::to_string_pretty(&file).expect("json")).expect("write");
}
