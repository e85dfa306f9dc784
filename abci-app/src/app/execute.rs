//! One transaction, checked and applied: the envelope (nonce, fee,
//! balance), then each action's handler (owned by its component) against the
//! state before the transaction and the plan so far, then each component's
//! `apply` of its part of the plan, in a fixed order. CheckTx, PrepareProposal,
//! ProcessProposal, FinalizeBlock and forced inclusion all come through here.

use seqnet_proto::{Action, Transaction};

use crate::params::ChainParams;
use crate::provers::VerifierCache;
use crate::state::StateDelta;
use crate::tx::{ActionHandler, ExecError, TxContext, TxOutcome, TxPlan};
use crate::{accounts, forced, provers, rollups, validators};

/// The handler of `action` (the component that owns it).
fn handler<'a>(action: &'a Action, verifier: &'a VerifierCache) -> Box<dyn ActionHandler + 'a> {
    match action {
        Action::RollupData { rollup_id, data } => Box::new(rollups::RollupData {
            rollup_id: *rollup_id,
            data,
        }),
        Action::Transfer { to, amount } => Box::new(accounts::Transfer {
            to: *to,
            amount: *amount,
        }),
        Action::RegisterRollup {
            rollup_id,
            name,
            settings,
        } => Box::new(rollups::RegisterRollup {
            rollup_id: *rollup_id,
            name,
            settings,
        }),
        Action::UpdateRollup {
            rollup_id,
            settings,
        } => Box::new(rollups::UpdateRollup {
            rollup_id: *rollup_id,
            settings,
        }),
        Action::ForceInclude { tx } => Box::new(forced::ForceInclude { inner: tx }),
        Action::RegisterProver { stake } => Box::new(provers::RegisterProver { stake: *stake }),
        Action::Unbond => Box::new(provers::Unbond),
        Action::Unjail => Box::new(provers::Unjail),
        Action::RegisterValidator {
            consensus_key,
            stake,
            ..
        } => Box::new(validators::RegisterValidator {
            consensus_key: *consensus_key,
            stake: *stake,
        }),
        Action::UnbondValidator => Box::new(validators::UnbondValidator),
        Action::UnjailValidator => Box::new(validators::UnjailValidator),
        Action::SubmitProof {
            rollup_id,
            from_height,
            proof,
            prev_state_root,
            new_state_root,
        } => Box::new(provers::SubmitProof {
            verifier,
            rollup_id: *rollup_id,
            from_height: *from_height,
            proof,
            prev_root: prev_state_root,
            new_root: new_state_root,
        }),
        Action::SubmitAggregate { entries, aggregate } => Box::new(provers::SubmitAggregate {
            verifier,
            entries,
            aggregate,
        }),
    }
}

/// Every check of `tx` against `state`, changing nothing; the plan of what
/// it will change.
pub(crate) fn check(
    state: &StateDelta,
    params: &ChainParams,
    verifier: &VerifierCache,
    tx: &Transaction,
    height: u64,
) -> Result<TxPlan, ExecError> {
    let mut plan = TxPlan::new(tx.signer, tx.body.fee, height);
    let envelope = TxContext {
        params,
        tx,
        index: 0,
    };
    accounts::check_envelope_into(state, &envelope, &mut plan)?;
    for (index, action) in tx.body.actions.iter().enumerate() {
        let ctx = TxContext { params, tx, index };
        let handler = handler(action, verifier);
        handler.check_stateless(&ctx)?;
        handler.check(state, &ctx, &mut plan)?;
    }
    Ok(plan)
}

/// Writes what [`check`] planned, component by component.
pub(crate) fn apply(state: &mut StateDelta, mut plan: TxPlan) -> Result<TxOutcome, ExecError> {
    accounts::apply(state, &plan)?;
    rollups::apply(state, &plan);
    forced::apply(state, &mut plan)?;
    provers::apply(state, &mut plan)?;
    validators::apply(state, &mut plan)?;
    Ok(plan.outcome)
}

/// Checks `tx` against `state` and, if every check passes, applies it: a
/// failing transaction leaves `state` untouched.
pub(crate) fn execute(
    state: &mut StateDelta,
    params: &ChainParams,
    verifier: &VerifierCache,
    tx: &Transaction,
    height: u64,
) -> Result<TxOutcome, ExecError> {
    let plan = check(state, params, verifier, tx, height)?;
    apply(state, plan)
}
