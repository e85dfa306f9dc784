#![no_main]
//! The aggregate of a `SubmitAggregate` and a verifier SRS: either rejected,
//! or decoded to elements whose encoding is exactly the input; nothing
//! panics. Raw bytes, and a valid aggregate encoding (of 1 to 8 proofs) with
//! the bytes the fuzzer names flipped.
use libfuzzer_sys::fuzz_target;
use seqnet_proto::aggregate::{padded_size, AggregateProof, GipaRound, VerifierSrs};

#[path = "valid_points.rs"]
mod valid_points;
use valid_points::{pool, Input};

fuzz_target!(|data: &[u8]| {
    if let Ok(aggregate) = AggregateProof::decode(data) {
        assert_eq!(aggregate.encode(), data);
    }
    if let Ok(srs) = VerifierSrs::decode(data) {
        assert_eq!(srs.encode(), data);
    }

    let pool = pool();
    let mut input = Input::new(data);
    let count = u32::from(input.byte() % 8) + 1;
    let rounds = padded_size(count as usize).trailing_zeros() as usize;
    let mut gt = || pool.gt[input.index()];
    let com_ab = (gt(), gt());
    let com_c = (gt(), gt());
    let z_ab = gt();
    let z_cb = gt();
    let mut round_gts: Vec<[ark_bls12_381::Fq12; 6]> = Vec::new();
    for _ in 0..rounds {
        round_gts.push(std::array::from_fn(|_| gt()));
    }
    let g1 = |i: &mut Input| pool.g1[i.index()];
    let g2 = |i: &mut Input| pool.g2[i.index()];
    let rounds: Vec<GipaRound> = round_gts
        .into_iter()
        .map(|f| GipaRound {
            t_l: f[0],
            u_l: f[1],
            t_r: f[2],
            u_r: f[3],
            z_l: f[4],
            z_r: f[5],
            zd_l: g1(&mut input),
            zd_r: g1(&mut input),
        })
        .collect();
    let aggregate = AggregateProof {
        count,
        com_ab,
        com_c,
        z_ab,
        z_cb,
        z_a: g1(&mut input),
        z_c: g1(&mut input),
        rounds,
        final_d: g1(&mut input),
        final_b: g2(&mut input),
        final_v: (g2(&mut input), g2(&mut input)),
        final_w: (g1(&mut input), g1(&mut input)),
        open_v: (g2(&mut input), g2(&mut input)),
        open_w: (g1(&mut input), g1(&mut input)),
    };
    let mut bytes = aggregate.encode();
    let flipped = input.flip(&mut bytes);
    match AggregateProof::decode(&bytes) {
        Ok(decoded) => {
            assert_eq!(decoded.encode(), bytes);
            if !flipped {
                assert_eq!(decoded, aggregate);
            }
        }
        Err(e) => assert!(flipped, "a valid aggregate encoding was rejected: {e}"),
    }
});
