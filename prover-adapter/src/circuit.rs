//! The reference rollup circuit: an R1CS state transition over the BLS12-381
//! scalar field with seqnet's six batch-proof public inputs, padded to about
//! `2^k` constraints so benchmarks can emulate heavier rollups.
//!
//! # The state transition
//!
//! `new_root = H(prev_root, rollup_id, bounds, c0, c1)` where `bounds` packs
//! the span's heights (`from * 2^64 + to`, see
//! [`seqnet_proto::groth16::span_bounds`]), `c0`, `c1` are the two halves of
//! the span commitment (see [`seqnet_proto::groth16::commitment_halves`]) and
//! `H` is a MiMC-style hash:
//!
//! - round constants `c_i = SHA-256("seqnet/reference-rollup/mimc5/v1/round" || i
//!   as u32 BE)` reduced mod `r`, for `i < ROUNDS`; the initial state
//!   `IV = SHA-256("seqnet/reference-rollup/mimc5/v1/iv")` mod `r`;
//! - the keyed permutation `E_k(x)`: `ROUNDS` times `x <- (x + k + c_i)^5`, then
//!   `+ k` (`x -> x^5` is a permutation of the field since `gcd(5, r - 1) = 1`);
//! - Miyaguchi–Preneel chaining: `s <- E_s(m) + m + s`, starting at `IV`, for each
//!   input `m` in the order above; `H` is the final `s`.
//!
//! `ROUNDS` is small ([`ROUNDS`] per absorbed input, so the whole circuit fits
//! in `2^8` constraints). `H` is a *reference* hash that exercises a realistic
//! proving shape; it is not a vetted collision-resistant hash (a full-strength
//! MiMC over a 255-bit field needs about 110 rounds per input). Real rollups
//! bring their own circuits and verifying keys.
//!
//! # Size
//!
//! The circuit has `15 * ROUNDS + 1` constraints for `H` and the root equality;
//! it then chains `w_{j+1} = w_j * (w_j + 1)` starting from the final state until
//! constraints plus instance variables (7: the constant one and six inputs) reach
//! exactly `2^k`, which is the evaluation domain size `ark-groth16` will use (it
//! adds one QAP row per instance variable).

use ark_bls12_381::Fr;
use ark_ff::{Field, PrimeField};
use ark_relations::lc;
use ark_relations::r1cs::{
    ConstraintSynthesizer, ConstraintSystemRef, LinearCombination, SynthesisError, Variable,
};
use seqnet_proto::groth16::{commitment_halves, span_bounds, PUBLIC_INPUTS};

/// MiMC rounds per absorbed input.
pub const ROUNDS: usize = 16;
/// Inputs absorbed by `H`.
pub const ABSORBED: usize = 5;
/// Constraints of `H` plus the `new_root` equality.
pub const BASE_CONSTRAINTS: usize = 3 * ROUNDS * ABSORBED + 1;
/// Instance variables: the constant one and the six public inputs.
pub const INSTANCE_VARIABLES: usize = PUBLIC_INPUTS + 1;
/// Smallest supported size `k`.
pub const MIN_SIZE: u32 = 8;
/// Largest supported size `k` (memory, not the field's two-adicity, is the limit).
pub const MAX_SIZE: u32 = 24;

const DOMAIN: &[u8] = b"seqnet/reference-rollup/mimc5/v1";

fn hash_to_field(parts: &[&[u8]]) -> Fr {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    Fr::from_be_bytes_mod_order(&h.finalize())
}

/// The round constants `c_i`.
pub fn round_constants() -> [Fr; ROUNDS] {
    let mut out = [Fr::from(0u64); ROUNDS];
    for (i, c) in out.iter_mut().enumerate() {
        *c = hash_to_field(&[DOMAIN, b"/round", &(i as u32).to_be_bytes()]);
    }
    out
}

/// The initial chaining state `IV`.
pub fn initial_state() -> Fr {
    hash_to_field(&[DOMAIN, b"/iv"])
}

fn pow5(t: Fr) -> Fr {
    let t2 = t.square();
    t2.square() * t
}

/// `H` computed natively: the new state root the reference circuit proves for
/// the span `from..=to` of `rollup_id` with span commitment `commitment`.
pub fn reference_next_root(
    prev_root: Fr,
    rollup_id: u64,
    from: u64,
    to: u64,
    commitment: &[u8; 32],
) -> Fr {
    let [c0, c1] = commitment_halves(commitment);
    let constants = round_constants();
    let mut s = initial_state();
    for m in [
        prev_root,
        Fr::from(rollup_id),
        span_bounds(from, to),
        c0,
        c1,
    ] {
        let mut x = m;
        for c in &constants {
            x = pow5(x + s + c);
        }
        s = x + s + m + s;
    }
    s
}

/// Constraints and witness variables of the circuit of size `k`; `None` unless
/// `k` is in `MIN_SIZE..=MAX_SIZE`.
pub fn shape(k: u32) -> Option<CircuitShape> {
    if !(MIN_SIZE..=MAX_SIZE).contains(&k) {
        return None;
    }
    let padding = (1usize << k) - INSTANCE_VARIABLES - BASE_CONSTRAINTS;
    Some(CircuitShape {
        constraints: BASE_CONSTRAINTS + padding,
        witnesses: 3 * ROUNDS * ABSORBED + padding,
        padding,
    })
}

/// Sizes of the circuit for one `k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitShape {
    /// R1CS constraints (before `ark-groth16` adds one row per instance variable).
    pub constraints: usize,
    /// Witness (private) variables.
    pub witnesses: usize,
    /// Constraints of the padding chain.
    pub padding: usize,
}

/// Values of the six public inputs (roots as field elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferenceInputs {
    pub rollup_id: u64,
    pub from_height: u64,
    pub to_height: u64,
    /// The span commitment.
    pub commitment: [u8; 32],
    pub prev_root: Fr,
    pub new_root: Fr,
}

impl ReferenceInputs {
    /// Inputs for a span job, with `new_root` computed by
    /// [`reference_next_root`].
    pub fn for_job(
        rollup_id: u64,
        from_height: u64,
        to_height: u64,
        commitment: [u8; 32],
        prev_root: Fr,
    ) -> Self {
        Self {
            rollup_id,
            from_height,
            to_height,
            commitment,
            prev_root,
            new_root: reference_next_root(
                prev_root,
                rollup_id,
                from_height,
                to_height,
                &commitment,
            ),
        }
    }
}

/// The reference circuit of size `k`; `inputs` is `None` for the setup.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceCircuit {
    pub size: u32,
    pub inputs: Option<ReferenceInputs>,
}

impl ReferenceCircuit {
    /// The circuit without assignment, for key generation.
    pub fn for_setup(size: u32) -> Self {
        Self { size, inputs: None }
    }

    /// The circuit with an assignment. A `new_root` other than
    /// [`reference_next_root`] gives an unsatisfiable circuit.
    pub fn new(size: u32, inputs: ReferenceInputs) -> Self {
        Self {
            size,
            inputs: Some(inputs),
        }
    }
}

fn witness(cs: &ConstraintSystemRef<Fr>, v: Option<Fr>) -> Result<Variable, SynthesisError> {
    cs.new_witness_variable(|| v.ok_or(SynthesisError::AssignmentMissing))
}

fn input(cs: &ConstraintSystemRef<Fr>, v: Option<Fr>) -> Result<Variable, SynthesisError> {
    cs.new_input_variable(|| v.ok_or(SynthesisError::AssignmentMissing))
}

impl ConstraintSynthesizer<Fr> for ReferenceCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let shape = shape(self.size).ok_or(SynthesisError::Unsatisfiable)?;
        let vals = self.inputs.map(|i| {
            let [c0, c1] = commitment_halves(&i.commitment);
            [
                Fr::from(i.rollup_id),
                span_bounds(i.from_height, i.to_height),
                c0,
                c1,
                i.prev_root,
                i.new_root,
            ]
        });
        let val = |j: usize| vals.map(|v| v[j]);

        // Public inputs, in seqnet's order.
        let rollup_id = input(&cs, val(0))?;
        let bounds = input(&cs, val(1))?;
        let c0 = input(&cs, val(2))?;
        let c1 = input(&cs, val(3))?;
        let prev_root = input(&cs, val(4))?;
        let new_root = input(&cs, val(5))?;

        // H, tracking each linear combination's value alongside it.
        let constants = round_constants();
        let iv = initial_state();
        let mut s: LinearCombination<Fr> = lc!() + (iv, Variable::One);
        let mut s_val = vals.map(|_| iv);
        let absorbed = [
            (prev_root, val(4)),
            (rollup_id, val(0)),
            (bounds, val(1)),
            (c0, val(2)),
            (c1, val(3)),
        ];
        for (m, m_val) in absorbed {
            let mut x: LinearCombination<Fr> = lc!() + m;
            let mut x_val = m_val;
            for c in &constants {
                let t = x.clone() + &s + (*c, Variable::One);
                let t_val = x_val.zip(s_val).map(|(x, s)| x + s + c);
                let t2_val = t_val.map(|t| t.square());
                let t2 = witness(&cs, t2_val)?;
                cs.enforce_constraint(t.clone(), t.clone(), lc!() + t2)?;
                let t4_val = t2_val.map(|t2| t2.square());
                let t4 = witness(&cs, t4_val)?;
                cs.enforce_constraint(lc!() + t2, lc!() + t2, lc!() + t4)?;
                x_val = t4_val.zip(t_val).map(|(t4, t)| t4 * t);
                let x_var = witness(&cs, x_val)?;
                cs.enforce_constraint(lc!() + t4, t, lc!() + x_var)?;
                x = lc!() + x_var;
            }
            // s <- E_s(m) + m + s, with E_s(m) = x + s.
            s = x + &s + m + &s;
            s_val = x_val.zip(s_val).zip(m_val).map(|((x, s), m)| x + s + m + s);
        }
        cs.enforce_constraint(s.clone(), lc!() + Variable::One, lc!() + new_root)?;

        // Padding: w_{j+1} = w_j * (w_j + 1), from w_0 = s.
        let mut w = s;
        let mut w_val = s_val;
        for _ in 0..shape.padding {
            let next_val = w_val.map(|w| w * (w + Fr::from(1u64)));
            let next = witness(&cs, next_val)?;
            cs.enforce_constraint(w.clone(), w + Variable::One, lc!() + next)?;
            w = lc!() + next;
            w_val = next_val;
        }
        Ok(())
    }
}
