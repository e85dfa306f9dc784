//! The Groth16 prover with its multi-scalar multiplications routed through an
//! [`MsmBackend`]: arkworks synthesizes the circuit and computes the QAP witness
//! (`h`), the back end computes the five MSMs (`h`, `l`, `a`, `b` in G1, `b` in G2).
//! The arithmetic around them follows `ark-groth16` 0.5 step by step, so with the
//! same `r`, `s` the proof is bit-identical to arkworks' own prover (tested).

use ark_bls12_381::{Bls12_381, Fr, G1Affine, G1Projective, G2Projective};
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::Zero;
use ark_groth16::r1cs_to_qap::{LibsnarkReduction, R1CSToQAP};
use ark_groth16::{Proof, ProvingKey};
use ark_poly::GeneralEvaluationDomain;
use ark_relations::r1cs::{
    ConstraintSynthesizer, ConstraintSystem, OptimizationGoal, SynthesisError,
};

use crate::msm::{to_reprs, MsmBackend, MsmError, ScalarRepr};

/// Why a proof could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum Groth16Error {
    #[error("groth16 synthesis: {0}")]
    Synthesis(#[from] SynthesisError),
    #[error(transparent)]
    Msm(#[from] MsmError),
    /// The proving key's query vectors do not fit the circuit's assignment.
    #[error("proving key has {query} {name} entries, the circuit needs {needed}")]
    KeyShape {
        name: &'static str,
        query: usize,
        needed: usize,
    },
}

/// Proves `circuit` under `pk` with blinding `r`, `s`, MSMs through `msm`.
pub fn create_proof<C: ConstraintSynthesizer<Fr>>(
    circuit: C,
    pk: &ProvingKey<Bls12_381>,
    r: Fr,
    s: Fr,
    msm: &dyn MsmBackend,
) -> Result<Proof<Bls12_381>, Groth16Error> {
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_optimization_goal(OptimizationGoal::Constraints);
    circuit.generate_constraints(cs.clone())?;
    cs.finalize();
    let h = LibsnarkReduction::witness_map::<Fr, GeneralEvaluationDomain<Fr>>(cs.clone())?;
    let prover = cs.borrow().ok_or(SynthesisError::MissingCS)?;
    prove_with_assignment(
        pk,
        r,
        s,
        &h,
        &prover.instance_assignment[1..],
        &prover.witness_assignment,
        msm,
    )
}

fn check_len(name: &'static str, query: usize, needed: usize) -> Result<(), Groth16Error> {
    if query == needed {
        Ok(())
    } else {
        Err(Groth16Error::KeyShape {
            name,
            query,
            needed,
        })
    }
}

fn prove_with_assignment(
    pk: &ProvingKey<Bls12_381>,
    r: Fr,
    s: Fr,
    h: &[Fr],
    input_assignment: &[Fr],
    aux_assignment: &[Fr],
    msm: &dyn MsmBackend,
) -> Result<Proof<Bls12_381>, Groth16Error> {
    // arkworks' witness map returns the full domain; the key holds domain - 1
    // h-query points and msm_bigint uses the shorter length, as we do here.
    let h_len = pk.h_query.len().min(h.len());
    let h_acc = msm.msm_g1(&pk.h_query[..h_len], &to_reprs(&h[..h_len]))?;

    let aux = to_reprs(aux_assignment);
    check_len("l_query", pk.l_query.len(), aux.len())?;
    let l_aux_acc = msm.msm_g1(&pk.l_query, &aux)?;
    let r_s_delta_g1 = pk.delta_g1 * (r * s);

    let assignment: Vec<ScalarRepr> = [to_reprs(input_assignment), aux].concat();
    let needed = assignment.len() + 1;
    check_len("a_query", pk.a_query.len(), needed)?;
    check_len("b_g1_query", pk.b_g1_query.len(), needed)?;
    check_len("b_g2_query", pk.b_g2_query.len(), needed)?;

    let r_g1 = pk.delta_g1 * r;
    let g_a = coeff_g1(r_g1, &pk.a_query, pk.vk.alpha_g1, &assignment, msm)?;
    let s_g_a = g_a * s;

    let g1_b = if r.is_zero() {
        G1Projective::zero()
    } else {
        let s_g1 = pk.delta_g1 * s;
        coeff_g1(s_g1, &pk.b_g1_query, pk.beta_g1, &assignment, msm)?
    };

    let s_g2 = pk.vk.delta_g2 * s;
    let g2_b = {
        let acc = msm.msm_g2(&pk.b_g2_query[1..], &assignment)?;
        let mut res: G2Projective = s_g2;
        res += &pk.b_g2_query[0];
        res += acc;
        res += &pk.vk.beta_g2;
        res
    };
    let r_g1_b = g1_b * r;

    let mut g_c = s_g_a;
    g_c += r_g1_b;
    g_c -= r_s_delta_g1;
    g_c += l_aux_acc;
    g_c += h_acc;

    Ok(Proof {
        a: g_a.into_affine(),
        b: g2_b.into_affine(),
        c: g_c.into_affine(),
    })
}

fn coeff_g1(
    initial: G1Projective,
    query: &[G1Affine],
    vk_param: G1Affine,
    assignment: &[ScalarRepr],
    msm: &dyn MsmBackend,
) -> Result<G1Projective, Groth16Error> {
    let acc = msm.msm_g1(&query[1..], assignment)?;
    let mut res = initial;
    res += &query[0];
    res += acc;
    res += &vk_param.into_group();
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit::{ReferenceCircuit, ReferenceInputs};
    use crate::msm::CpuMsm;
    use ark_ff::UniformRand;
    use ark_groth16::Groth16;
    use rand::SeedableRng;

    #[test]
    fn identical_to_arkworks_prover() {
        let k = 9;
        let (pk, _vk) = crate::setup(k, 42).expect("setup");
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        for _ in 0..2 {
            let (r, s) = (Fr::rand(&mut rng), Fr::rand(&mut rng));
            let inputs = ReferenceInputs::for_job(5, 77, 79, [9u8; 32], Fr::from(11u64));
            let ours = create_proof(ReferenceCircuit::new(k, inputs), &pk, r, s, &CpuMsm)
                .expect("our prover");
            let theirs = Groth16::<Bls12_381>::create_proof_with_reduction(
                ReferenceCircuit::new(k, inputs),
                &pk,
                r,
                s,
            )
            .expect("arkworks prover");
            assert_eq!(ours, theirs);
        }
        // r = 0 takes the branch without B in G1.
        let inputs = ReferenceInputs::for_job(1, 2, 2, [0u8; 32], Fr::from(0u64));
        let s = Fr::from(5u64);
        let ours = create_proof(
            ReferenceCircuit::new(k, inputs),
            &pk,
            Fr::zero(),
            s,
            &CpuMsm,
        )
        .expect("our prover");
        let theirs = Groth16::<Bls12_381>::create_proof_with_reduction(
            ReferenceCircuit::new(k, inputs),
            &pk,
            Fr::zero(),
            s,
        )
        .expect("arkworks prover");
        assert_eq!(ours, theirs);
    }
}
