//! A tiny Groth16 circuit with the batch-proof public inputs, for tests:
//! `new_root = prev_root + rollup_id * bounds + c0 * c1` (bounds: `span_bounds`).

use ark_bls12_381::{Bls12_381, Fq, Fq2, Fr, G1Affine, G2Affine};
use ark_ff::One;
use ark_groth16::{Groth16, ProvingKey};
use ark_relations::lc;
use ark_relations::r1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError, Variable};
use ark_serialize::CanonicalSerialize;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::groth16::{
    batch_commitment, commitment_halves, root_from_bytes, root_to_bytes, span_bounds,
    span_commitment, PreparedKey, SpanStatement,
};

#[derive(Clone)]
struct Toy {
    inputs: Option<[Fr; 5]>,
}

impl ConstraintSynthesizer<Fr> for Toy {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let v = |i: usize| {
            self.inputs
                .map(|x| x[i])
                .ok_or(SynthesisError::AssignmentMissing)
        };
        let id = cs.new_input_variable(|| v(0))?;
        let h = cs.new_input_variable(|| v(1))?;
        let c0 = cs.new_input_variable(|| v(2))?;
        let c1 = cs.new_input_variable(|| v(3))?;
        let prev = cs.new_input_variable(|| v(4))?;
        let new = cs.new_input_variable(|| Ok(v(4)? + v(0)? * v(1)? + v(2)? * v(3)?))?;
        let p1 = cs.new_witness_variable(|| Ok(v(0)? * v(1)?))?;
        let p2 = cs.new_witness_variable(|| Ok(v(2)? * v(3)?))?;
        cs.enforce_constraint(lc!() + id, lc!() + h, lc!() + p1)?;
        cs.enforce_constraint(lc!() + c0, lc!() + c1, lc!() + p2)?;
        cs.enforce_constraint(lc!() + prev + p1 + p2, lc!() + Variable::One, lc!() + new)?;
        Ok(())
    }
}

/// Keys of the toy circuit from a seed.
pub struct ToyKeys {
    pub pk: ProvingKey<Bls12_381>,
    pub vk_bytes: Vec<u8>,
}

impl ToyKeys {
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let pk = Groth16::<Bls12_381>::generate_random_parameters_with_reduction(
            Toy { inputs: None },
            &mut rng,
        )
        .expect("toy setup");
        let mut vk_bytes = Vec::new();
        pk.vk.serialize_compressed(&mut vk_bytes).expect("vec");
        Self { pk, vk_bytes }
    }

    pub fn prepared(&self) -> PreparedKey {
        PreparedKey::decode(&self.vk_bytes).expect("valid key")
    }

    /// A true statement for the toy circuit: a one-block span at `height`.
    pub fn statement(rollup_id: u64, height: u64) -> SpanStatement {
        let commitment = span_commitment(
            rollup_id,
            height,
            height,
            &[(height, batch_commitment(rollup_id, height, &[]))],
        );
        let prev = Fr::from(1000 + height);
        let [c0, c1] = commitment_halves(&commitment);
        let new = prev + Fr::from(rollup_id) * span_bounds(height, height) + c0 * c1;
        SpanStatement {
            rollup_id,
            from_height: height,
            to_height: height,
            commitment,
            prev_root: root_to_bytes(prev),
            new_root: root_to_bytes(new),
        }
    }

    /// A proof of `st` (which need not be true: the proof then does not verify).
    pub fn prove(&self, st: &SpanStatement, seed: u64) -> Vec<u8> {
        let [c0, c1] = commitment_halves(&st.commitment);
        let circuit = Toy {
            inputs: Some([
                Fr::from(st.rollup_id),
                span_bounds(st.from_height, st.to_height),
                c0,
                c1,
                root_from_bytes(&st.prev_root).expect("canonical root"),
            ]),
        };
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let proof =
            Groth16::<Bls12_381>::create_random_proof_with_reduction(circuit, &self.pk, &mut rng)
                .expect("toy proof");
        crate::groth16::encode_proof(&proof)
    }
}

/// A G1 point on the curve but outside the prime-order subgroup.
pub fn g1_outside_subgroup() -> G1Affine {
    (1u64..)
        .find_map(|x| {
            G1Affine::get_point_from_x_unchecked(Fq::from(x), false)
                .filter(|p| !p.is_in_correct_subgroup_assuming_on_curve())
        })
        .expect("exists")
}

/// A G2 point on the curve but outside the prime-order subgroup.
pub fn g2_outside_subgroup() -> G2Affine {
    (1u64..)
        .find_map(|x| {
            G2Affine::get_point_from_x_unchecked(Fq2::new(Fq::from(x), Fq::one()), false)
                .filter(|p| !p.is_in_correct_subgroup_assuming_on_curve())
        })
        .expect("exists")
}
