//! Forced inclusion: requests (from `ForceInclude` actions and from
//! inclusion lists in vote extensions), their deadlines, and how they resolve;
//! the `ForceInclude` action; the checks of an injected extended commit.
//!
//! A request for transaction T opened at height h is due at `h + W` (W: the
//! smallest `inclusion_window` of the rollups T writes to, else the chain's
//! default). T must be executed at a height `<= h + W`: from the deadline on,
//! a proposal that leaves T out while T would still execute after the
//! proposal's own transactions is rejected. T that can no longer execute
//! (its nonce was used, its signer cannot pay, ...) resolves as failed with
//! the reason, the same way on every node.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;
use seqnet_proto::inclusion::{decode_inclusion_list, verify_vote_extension};
use seqnet_proto::{pb, Action, Code, Transaction};

use crate::keys;
use crate::params::ChainParams;
use crate::rollups::RollupsState;
use crate::state::{StateDelta, StateRead, StateWrite};
use crate::store::{Cf, StoreError};
use crate::tx::{
    back_pressure_exempt, check_stateless, ActionHandler, Event, ExecError, SignatureCache,
    TxContext, TxPlan,
};

/// Checks whether a transaction would execute on a state (the app's own
/// transaction check; forced inclusion asks it about pending requests).
pub(crate) type TxCheck<'a> = dyn Fn(&StateDelta, &Transaction) -> Result<(), ExecError> + 'a;

/// Typed reads of forced requests.
pub(crate) trait ForcedState: StateRead {
    fn forced_queue(&self) -> Result<pb::ForcedQueue, StoreError>
    where
        Self: Sized,
    {
        Ok(self
            .message(Cf::Meta, keys::META_FORCED_QUEUE, "forced queue")?
            .unwrap_or(pb::ForcedQueue {
                pending: vec![],
                next_id: 1,
            }))
    }

    /// The request for the inner transaction `hash`, if any.
    fn forced_by_hash(&self, hash: &[u8; 32]) -> Result<Option<pb::ForcedRequest>, StoreError>
    where
        Self: Sized,
    {
        let Some(id) = self.get(Cf::Forced, &keys::forced_by_hash(hash))? else {
            return Ok(None);
        };
        let id = <[u8; 8]>::try_from(id.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt {
                what: "forced index",
                detail: format!("id of {} bytes", id.len()),
            })?;
        self.message(Cf::Forced, &keys::forced_request(id), "forced request")
    }
}

impl<S: StateRead> ForcedState for S {}

/// Typed writes of forced requests.
pub(crate) trait ForcedWrite: StateWrite {
    fn put_forced_queue(&mut self, queue: &pb::ForcedQueue) {
        self.put_meta(keys::META_FORCED_QUEUE, queue.encode_to_vec());
    }

    /// Writes a request's latest status and its hash index.
    fn put_forced(&mut self, request: &pb::ForcedRequest) {
        self.put(
            Cf::Forced,
            keys::forced_request(request.id),
            request.encode_to_vec(),
        );
        if let Ok(hash) = <[u8; 32]>::try_from(request.tx_hash.as_slice()) {
            self.put(
                Cf::Forced,
                keys::forced_by_hash(&hash),
                request.id.to_be_bytes().to_vec(),
            );
        }
    }
}

impl<S: StateWrite> ForcedWrite for S {}

/// `ForceInclude { tx }`: asks the chain to include `tx` within its window.
pub(crate) struct ForceInclude<'a> {
    pub inner: &'a Transaction,
}

impl ActionHandler for ForceInclude<'_> {
    fn check(
        &self,
        state: &StateDelta,
        ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError> {
        let hash = self.inner.hash();
        let duplicate = plan.forced.iter().any(|(t, _)| t.hash() == hash);
        if duplicate || state.forced_by_hash(&hash)?.is_some() {
            return Err(ExecError::ForcedKnown(hex::encode(hash)));
        }
        let queue = state.forced_queue()?;
        let open = queue.pending.len().saturating_add(plan.forced.len()) as u64;
        if open >= ctx.params.max_pending_forced {
            return Err(ExecError::ForcedQueueFull {
                limit: ctx.params.max_pending_forced,
            });
        }
        let window = window(state, ctx.params, self.inner)?;
        let deadline = plan
            .height
            .checked_add(window)
            .ok_or(ExecError::Overflow("deadline"))?;
        plan.forced.push((self.inner.clone(), deadline));
        Ok(())
    }
}

/// Writes the plan's part of forced inclusion: opens its requests.
pub(crate) fn apply(state: &mut StateDelta, plan: &mut TxPlan) -> Result<(), ExecError> {
    let requester = plan.signer().0.to_vec();
    for (inner, deadline) in std::mem::take(&mut plan.forced) {
        let request = open_request(
            state,
            &inner,
            pb::ForcedSource::Request,
            requester.clone(),
            plan.height,
            deadline,
        )?;
        plan.outcome.events.push(opened_event(&request));
        plan.outcome.forced_opened = plan.outcome.forced_opened.saturating_add(1);
    }
    Ok(())
}

/// Why an injected extended commit is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommitError {
    #[error("extended commit is for height {got}, expected {expected}")]
    Height { expected: i64, got: i64 },
    #[error("vote from unknown validator {0}")]
    UnknownValidator(String),
    #[error("validator {0} voted twice")]
    DuplicateVote(String),
    #[error("vote of validator {address}: {reason}")]
    BadVote { address: String, reason: String },
    #[error("extended commit carries {signed} of {total} voting power; more than 2/3 is required")]
    Underpowered { signed: i64, total: i64 },
}

/// One verified vote: the validator's power and its inclusion list.
pub(crate) type VotedList = (i64, Vec<Vec<u8>>);

/// The forced-inclusion window of `tx`.
pub(crate) fn window(
    state: &StateDelta,
    params: &ChainParams,
    tx: &Transaction,
) -> Result<u64, StoreError> {
    let mut window: Option<u64> = None;
    for action in &tx.body.actions {
        if let Action::RollupData { rollup_id, .. } = action {
            if let Some(rollup) = state.rollup(*rollup_id)? {
                window = Some(
                    window.map_or(rollup.inclusion_window, |w| w.min(rollup.inclusion_window)),
                );
            }
        }
    }
    Ok(window.unwrap_or(params.default_inclusion_window).max(1))
}

/// Opens a pending request for `inner` (the caller checked it is new).
pub(crate) fn open_request(
    state: &mut StateDelta,
    inner: &Transaction,
    source: pb::ForcedSource,
    requester: Vec<u8>,
    height: u64,
    deadline: u64,
) -> Result<pb::ForcedRequest, ExecError> {
    let mut queue = state.forced_queue()?;
    let request = pb::ForcedRequest {
        id: queue.next_id,
        tx: inner.to_bytes().to_vec(),
        tx_hash: inner.hash().to_vec(),
        source: source as i32,
        requester,
        requested_height: height,
        deadline,
        status: pb::ForcedStatus::Pending as i32,
        included_height: 0,
        failure: String::new(),
        failure_code: 0,
    };
    queue.next_id = queue
        .next_id
        .checked_add(1)
        .ok_or(ExecError::Overflow("forced request id"))?;
    queue.pending.push(request.clone());
    state.put_forced_queue(&queue);
    state.put_forced(&request);
    Ok(request)
}

pub(crate) fn opened_event(request: &pb::ForcedRequest) -> Event {
    Event {
        kind: "forced_request",
        attributes: vec![
            ("id", request.id.to_string()),
            ("tx_hash", hex::encode(&request.tx_hash)),
            ("deadline", request.deadline.to_string()),
            ("source", source_name(request.source).to_string()),
        ],
    }
}

pub(crate) fn source_name(source: i32) -> &'static str {
    match pb::ForcedSource::try_from(source) {
        Ok(pb::ForcedSource::Request) => "request",
        Ok(pb::ForcedSource::InclusionList) => "inclusion_list",
        _ => "unknown",
    }
}

/// If `hash` is pending, marks it included at `height` and returns it.
pub(crate) fn mark_included(
    state: &mut StateDelta,
    hash: &[u8; 32],
    height: u64,
) -> Result<Option<pb::ForcedRequest>, StoreError> {
    let mut queue = state.forced_queue()?;
    let Some(position) = queue.pending.iter().position(|r| r.tx_hash == hash) else {
        return Ok(None);
    };
    let mut request = queue.pending.remove(position);
    request.status = pb::ForcedStatus::Included as i32;
    request.included_height = height;
    state.put_forced_queue(&queue);
    state.put_forced(&request);
    Ok(Some(request))
}

fn decode_pending(
    params: &ChainParams,
    request: &pb::ForcedRequest,
) -> Result<Transaction, ExecError> {
    Ok(Transaction::decode(
        &request.tx,
        params.max_tx_bytes_usize(),
        params.max_actions_usize(),
    )?)
}

/// Due requests (deadline `<= height`) whose transaction would still execute
/// on `state`: a proposal that leaves any of them out is censoring.
pub(crate) fn violations(
    state: &StateDelta,
    params: &ChainParams,
    height: u64,
    check: &TxCheck<'_>,
) -> Result<Vec<pb::ForcedRequest>, StoreError> {
    let mut found = Vec::new();
    for request in state.forced_queue()?.pending {
        if request.deadline > height {
            continue;
        }
        let executes = match decode_pending(params, &request) {
            Ok(tx) => match check(state, &tx) {
                Ok(()) => true,
                Err(ExecError::Store(e)) => return Err(e),
                Err(_) => false,
            },
            Err(_) => false,
        };
        if executes {
            found.push(request);
        }
    }
    Ok(found)
}

/// End of block: resolves as failed every pending request that is due, and
/// every one whose nonce is already used. Returns the newly failed ones.
pub(crate) fn settle(
    state: &mut StateDelta,
    params: &ChainParams,
    height: u64,
    check: &TxCheck<'_>,
) -> Result<Vec<pb::ForcedRequest>, StoreError> {
    let mut queue = state.forced_queue()?;
    let mut failed = Vec::new();
    let mut keep = Vec::new();
    for mut request in std::mem::take(&mut queue.pending) {
        let verdict = decode_pending(params, &request).and_then(|tx| check(state, &tx));
        let failure = match verdict {
            Err(ExecError::Store(e)) => return Err(e),
            Err(error @ ExecError::NonceReplayed { .. }) => Some((error.code(), error.to_string())),
            Err(error) if request.deadline <= height => Some((error.code(), error.to_string())),
            // Only reachable if a faulty majority accepted a censoring block.
            Ok(()) if request.deadline <= height => Some((
                Code::ForcedRejected,
                format!("not included by its deadline {}", request.deadline),
            )),
            _ => None,
        };
        match failure {
            Some((code, reason)) => {
                request.status = pb::ForcedStatus::Failed as i32;
                request.failure_code = code.as_u32();
                request.failure = reason;
                state.put_forced(&request);
                failed.push(request);
            }
            None => keep.push(request),
        }
    }
    if !failed.is_empty() {
        queue.pending = keep;
        state.put_forced_queue(&queue);
    }
    Ok(failed)
}

/// Checks an injected extended commit of height `expected_height` and
/// returns each verified vote's power and inclusion list.
pub(crate) fn verify_commit(
    commit: &pb::ExtendedCommit,
    validators: &pb::ValidatorSet,
    chain_id: &str,
    expected_height: i64,
    params: &ChainParams,
) -> Result<Vec<VotedList>, CommitError> {
    if commit.height != expected_height {
        return Err(CommitError::Height {
            expected: expected_height,
            got: commit.height,
        });
    }
    let by_address: BTreeMap<&[u8], &pb::Validator> = validators
        .validators
        .iter()
        .map(|v| (v.address.as_slice(), v))
        .collect();
    let total: i64 = validators
        .validators
        .iter()
        .map(|v| v.power.max(0))
        .fold(0, i64::saturating_add);
    let mut seen = BTreeSet::new();
    let mut signed: i64 = 0;
    let mut lists = Vec::new();
    for vote in &commit.votes {
        let address = hex::encode(&vote.validator_address);
        let validator = by_address
            .get(vote.validator_address.as_slice())
            .ok_or_else(|| CommitError::UnknownValidator(address.clone()))?;
        if !seen.insert(vote.validator_address.clone()) {
            return Err(CommitError::DuplicateVote(address));
        }
        verify_vote_extension(
            chain_id,
            commit.height,
            commit.round,
            vote,
            &validator.public_key,
        )
        .map_err(|e| CommitError::BadVote {
            address: address.clone(),
            reason: e.to_string(),
        })?;
        let txs = decode_inclusion_list(
            &vote.extension,
            usize::try_from(params.max_inclusion_list_txs).unwrap_or(usize::MAX),
            usize::try_from(params.max_inclusion_list_bytes).unwrap_or(usize::MAX),
        )
        .map_err(|e| CommitError::BadVote {
            address,
            reason: e.to_string(),
        })?;
        signed = signed.saturating_add(validator.power.max(0));
        lists.push((validator.power.max(0), txs));
    }
    if i128::from(signed).saturating_mul(3) <= i128::from(total).saturating_mul(2) {
        return Err(CommitError::Underpowered { signed, total });
    }
    Ok(lists)
}

/// Transactions listed by validators holding more than 1/3 of `total_power`,
/// in hash order.
pub(crate) fn due_transactions(lists: &[VotedList], total_power: i64) -> Vec<Vec<u8>> {
    let mut power: BTreeMap<[u8; 32], (i64, &Vec<u8>)> = BTreeMap::new();
    for (vote_power, txs) in lists {
        let unique: BTreeMap<[u8; 32], &Vec<u8>> = txs
            .iter()
            .map(|tx| (seqnet_proto::sha256(tx), tx))
            .collect();
        for (hash, tx) in unique {
            let entry = power.entry(hash).or_insert((0, tx));
            entry.0 = entry.0.saturating_add(*vote_power);
        }
    }
    power
        .into_values()
        .filter(|(p, _)| i128::from(*p).saturating_mul(3) > i128::from(total_power))
        .map(|(_, tx)| tx.clone())
        .collect()
}

/// Opens a request for every due listed transaction that is valid and new.
/// With `hold_back` (the block is under back-pressure) only transactions that
/// back-pressure admits open requests: rollup data that proving holds back is
/// listed again once it lifts, and its inclusion window starts then.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open_from_lists(
    state: &mut StateDelta,
    params: &ChainParams,
    chain_id: &str,
    signatures: &SignatureCache,
    lists: &[VotedList],
    total_power: i64,
    height: u64,
    hold_back: bool,
    check: &TxCheck<'_>,
) -> Result<Vec<pb::ForcedRequest>, StoreError> {
    let mut opened = Vec::new();
    for bytes in due_transactions(lists, total_power) {
        let Ok(tx) = check_stateless(&bytes, params, chain_id, signatures) else {
            continue; // never executable: nothing to enforce
        };
        if hold_back && !back_pressure_exempt(&tx) {
            continue;
        }
        if state.forced_by_hash(&tx.hash())?.is_some() {
            continue;
        }
        // Listed just before it made it into the previous block: nothing to force.
        match check(state, &tx) {
            Err(ExecError::NonceReplayed { .. }) => continue,
            Err(ExecError::Store(e)) => return Err(e),
            _ => {}
        }
        if state.forced_queue()?.pending.len() as u64 >= params.max_pending_forced {
            break;
        }
        let deadline = height.saturating_add(window(state, params, &tx)?);
        match open_request(
            state,
            &tx,
            pb::ForcedSource::InclusionList,
            Vec::new(),
            height,
            deadline,
        ) {
            Ok(request) => opened.push(request),
            Err(ExecError::Store(e)) => return Err(e),
            Err(_) => continue,
        }
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_needs_more_than_a_third() {
        let a = vec![b"a".to_vec()];
        let ab = vec![b"a".to_vec(), b"b".to_vec(), b"b".to_vec()];
        // Power 10 each of 4 (total 40): "a" listed by 20 (> 13.3), "b" by 10.
        let due = due_transactions(&[(10, a), (10, ab), (10, vec![]), (10, vec![])], 40);
        assert_eq!(due, vec![b"a".to_vec()]);
        // Exactly 1/3 is not enough.
        let due = due_transactions(&[(1, vec![b"x".to_vec()]), (1, vec![]), (1, vec![])], 3);
        assert!(due.is_empty());
    }
}
