//! Transaction classes: what a transaction is, for rules that treat classes
//! differently (back-pressure, proposal order, testnet faults).

use std::collections::BTreeSet;

use seqnet_proto::{Action, Address, RollupId, Transaction};

/// Whether `tx` may be included under back-pressure on its own account: every
/// action is a proof or a prover-set or validator-set change (and there is
/// at least one).
pub(crate) fn back_pressure_exempt(tx: &Transaction) -> bool {
    !tx.body.actions.is_empty()
        && tx.body.actions.iter().all(|a| {
            matches!(
                a,
                Action::SubmitProof { .. }
                    | Action::SubmitAggregate { .. }
                    | Action::RegisterProver { .. }
                    | Action::Unbond
                    | Action::Unjail
                    | Action::RegisterValidator { .. }
                    | Action::UnbondValidator
                    | Action::UnjailValidator
            )
        })
}

/// Whether `tx` carries a `SubmitAggregate` (proposers try those first).
pub(crate) fn carries_aggregate(tx: &Transaction) -> bool {
    tx.body
        .actions
        .iter()
        .any(|a| matches!(a, Action::SubmitAggregate { .. }))
}

/// The rollups `tx` writes data to.
pub(crate) fn rollups_of(tx: &Transaction) -> BTreeSet<RollupId> {
    tx.body
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::RollupData { rollup_id, .. } => Some(*rollup_id),
            _ => None,
        })
        .collect()
}

/// Whether a testnet censor matches `tx`: by signer or by rollup, also
/// through the transactions it forces.
pub fn matches_censor(tx: &Transaction, signers: &[Address], rollups: &[RollupId]) -> bool {
    let hit = |t: &Transaction| {
        signers.contains(&t.signer) || rollups_of(t).iter().any(|r| rollups.contains(r))
    };
    hit(tx) || tx.forced_transactions().any(hit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use seqnet_proto::TransactionBody;

    fn tx(actions: Vec<Action>) -> Transaction {
        TransactionBody {
            chain_id: "c".into(),
            nonce: 0,
            fee: 10,
            actions,
        }
        .sign(&SigningKey::from_bytes(&[3; 32]))
    }

    #[test]
    fn only_proof_and_prover_set_transactions_are_exempt() {
        assert!(back_pressure_exempt(&tx(vec![Action::RegisterProver {
            stake: 5
        }])));
        assert!(back_pressure_exempt(&tx(vec![
            Action::Unbond,
            Action::Unjail
        ])));
        assert!(!back_pressure_exempt(&tx(vec![])));
        assert!(!back_pressure_exempt(&tx(vec![
            Action::Unjail,
            Action::RollupData {
                rollup_id: 1,
                data: vec![1],
            },
        ])));
        let data = tx(vec![Action::RollupData {
            rollup_id: 4,
            data: vec![1],
        }]);
        assert_eq!(rollups_of(&data), BTreeSet::from([4]));
        assert!(matches_censor(&data, &[], &[4]));
        assert!(!matches_censor(&data, &[], &[5]));
        assert!(matches_censor(&data, &[data.signer], &[]));
    }
}
