//! Validators: the staked validator set CometBFT runs with. Records
//! (`RegisterValidator`, `UnbondValidator`, `UnjailValidator`), the set and
//! its changes through `validator_updates`, evidence (slash and tombstone)
//! and liveness (downtime jail), and the app's own view of the set, which
//! forced inclusion weighs inclusion lists with.
//!
//! CometBFT applies the updates of block `H` from height `H + 2`, and the
//! app's view follows the same rule: `validators()` after block `h` is the
//! set that signs height `h` (`set(h)`), which block `h + 1` uses to check
//! the injected extended commit of `h` and reads the votes of in its
//! `decided_last_commit`. A set decided at `H` waits in the schedule until
//! the end of block `H + 2`.
//!
//! Rules (all at the end of a block `h`, in [`end_block`], in this order):
//!
//! 1. Evidence: each misbehaviour (duplicate vote, light-client attack)
//!    against a registered, not yet tombstoned consensus address costs its
//!    validator `double_sign_slash_bps` of its stake (burned, rounded down,
//!    never more than the stake), and tombstones it: jailed for good, the key
//!    never registers again. Its stake stays slashable until it unbonds.
//! 2. Liveness: each vote of `decided_last_commit` (height `h - 1`) of a
//!    BONDED validator sets or clears its bit in its `downtime_window` of
//!    heights; one that missed more than `downtime_max_missed` of them is
//!    jailed until `h + validator_jail_period` and loses
//!    `downtime_slash_bps` of its stake. Its window starts empty again.
//! 3. Unbonding validators whose `unbond_at <= h` get their stake back; the
//!    record is removed (a tombstoned one stays, with stake 0, to keep its
//!    key taken).
//! 4. The set: at an epoch boundary (the provers' epochs: `(h - 1) %
//!    epoch_length == 0`) it is selected anew ([`rules::select_set`]);
//!    otherwise only validators that stopped being BONDED (unbonded,
//!    jailed, tombstoned) leave it at once. A change that would empty the
//!    set is not made. The updates go to CometBFT and the new set is
//!    scheduled for `h + 2`.
//! 5. Scheduled sets whose height has come (`<= h`) become `validators()`.
//!
//! Genesis validators (InitChain) get records with the consensus key as
//! operator (it signs that account's transactions too) and
//! `power * stake_per_power` as stake, locked from no account.

pub(crate) mod rules;

use std::collections::BTreeMap;

use prost::Message;
use seqnet_proto::inclusion::validator_address;
use seqnet_proto::{pb, Address};

use crate::accounts::{debit_signer, AccountsState, AccountsWrite};
use crate::keys;
use crate::params::ChainParams;
use crate::provers::rules::{epoch_at, slash_amount};
use crate::state::{StateDelta, StateRead, StateWrite};
use crate::store::StoreError;
use crate::tx::{ActionHandler, Event, ExecError, TxContext, TxPlan};

/// Typed reads of the validators' state.
pub(crate) trait ValidatorsState: StateRead {
    /// The set that signed the last committed height (see the module docs).
    fn validators(&self) -> Result<pb::ValidatorSet, StoreError>
    where
        Self: Sized,
    {
        self.meta_message(keys::META_VALIDATORS, "validators")
    }

    /// `abci.vote_extensions_enable_height` from genesis (0: disabled).
    fn vote_extensions_height(&self) -> Result<u64, StoreError> {
        self.meta_u64(keys::META_VOTE_EXTENSIONS_HEIGHT)
    }

    fn validator_registry(&self) -> Result<pb::ValidatorRegistry, StoreError>
    where
        Self: Sized,
    {
        self.meta_message(keys::META_VALIDATOR_REGISTRY, "validator registry")
    }

    /// Sets decided and not yet in effect.
    fn validator_schedule(&self) -> Result<pb::ValidatorSchedule, StoreError>
    where
        Self: Sized,
    {
        self.meta_message(keys::META_VALIDATOR_SCHEDULE, "validator schedule")
    }

    /// The record of `operator`, if it has one.
    fn validator_record(
        &self,
        operator: &Address,
    ) -> Result<Option<pb::ValidatorRecord>, StoreError>
    where
        Self: Sized,
    {
        Ok(self
            .validator_registry()?
            .validators
            .into_iter()
            .find(|v| v.operator == operator.0))
    }
}

impl<S: StateRead> ValidatorsState for S {}

/// Typed writes of the validators' state.
pub(crate) trait ValidatorsWrite: StateWrite {
    fn put_validators(&mut self, set: &pb::ValidatorSet) {
        self.put_meta(keys::META_VALIDATORS, set.encode_to_vec());
    }

    fn put_vote_extensions_height(&mut self, height: u64) {
        self.put_meta_u64(keys::META_VOTE_EXTENSIONS_HEIGHT, height);
    }

    fn put_validator_registry(&mut self, registry: &pb::ValidatorRegistry) {
        self.put_meta(keys::META_VALIDATOR_REGISTRY, registry.encode_to_vec());
    }

    fn put_validator_schedule(&mut self, schedule: &pb::ValidatorSchedule) {
        self.put_meta(keys::META_VALIDATOR_SCHEDULE, schedule.encode_to_vec());
    }
}

impl<S: StateWrite> ValidatorsWrite for S {}

/// The total voting power of `set` (negative powers count as 0).
pub(crate) fn total_power(set: &pb::ValidatorSet) -> i64 {
    set.validators
        .iter()
        .map(|v| v.power.max(0))
        .fold(0, i64::saturating_add)
}

/// The genesis set (InitChain's validators: `(ed25519 key, power)`) and a
/// record for each, with the key as operator and `power *
/// stake_per_power` as stake.
pub(crate) fn genesis(
    validators: &[(Vec<u8>, i64)],
    params: &ChainParams,
) -> Result<(pb::ValidatorSet, pb::ValidatorRegistry), String> {
    let mut set = pb::ValidatorSet::default();
    let mut registry = BTreeMap::new();
    for (key, power) in validators {
        let operator = Address::from_slice(key)
            .ok_or_else(|| format!("validator key of {} bytes, want 32", key.len()))?;
        let stake = u64::try_from(*power)
            .ok()
            .and_then(|p| p.checked_mul(params.stake_per_power))
            .filter(|_| *power > 0 && *power <= rules::MAX_POWER)
            .ok_or_else(|| format!("genesis validator {operator}: power {power} out of range"))?;
        let address = validator_address(key);
        set.validators.push(pb::Validator {
            address: address.clone(),
            public_key: key.clone(),
            power: *power,
        });
        let record = pb::ValidatorRecord {
            operator: operator.0.to_vec(),
            consensus_key: key.clone(),
            consensus_address: address,
            stake,
            status: pb::ValidatorStatus::Bonded as i32,
            ..Default::default()
        };
        if registry.insert(operator, record).is_some() {
            return Err(format!("genesis validator {operator} appears twice"));
        }
    }
    set.validators.sort_by(|a, b| a.address.cmp(&b.address));
    Ok((
        set,
        pb::ValidatorRegistry {
            validators: registry.into_values().collect(),
        },
    ))
}

fn state_error(operator: Address, reason: impl Into<String>) -> ExecError {
    ExecError::ValidatorState {
        operator,
        reason: reason.into(),
    }
}

/// The signer's validator record as planned so far (loaded on first use).
fn planned_record<'p>(
    state: &StateDelta,
    plan: &'p mut TxPlan,
) -> Result<&'p mut Option<pb::ValidatorRecord>, ExecError> {
    if plan.validator.is_none() {
        plan.validator = Some(state.validator_record(&plan.signer())?);
    }
    plan.validator
        .as_mut()
        .ok_or(ExecError::Overflow("validator record"))
}

/// The signer's planned validator record, which must exist.
fn existing_record<'p>(
    state: &StateDelta,
    plan: &'p mut TxPlan,
) -> Result<&'p mut pb::ValidatorRecord, ExecError> {
    let operator = plan.signer();
    planned_record(state, plan)?
        .as_mut()
        .ok_or(ExecError::ValidatorUnknown(operator))
}

/// `RegisterValidator { consensus_key, stake }` (its key signature is
/// checked with the transaction's signatures): a new validator, or more
/// stake for one.
pub(crate) struct RegisterValidator {
    pub consensus_key: [u8; 32],
    pub stake: u64,
}

impl ActionHandler for RegisterValidator {
    fn check(
        &self,
        state: &StateDelta,
        ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError> {
        let operator = plan.signer();
        debit_signer(state, plan, self.stake)?;
        let record = planned_record(state, plan)?;
        let updated = match record.take() {
            Some(mut existing) => {
                if existing.tombstoned {
                    return Err(state_error(operator, "is tombstoned (it double-signed)"));
                }
                if existing.status == pb::ValidatorStatus::Unbonding as i32 {
                    return Err(state_error(operator, "is unbonding; it cannot add stake"));
                }
                if existing.consensus_key != self.consensus_key {
                    return Err(state_error(
                        operator,
                        format!(
                            "is registered with consensus key {}, not {}",
                            hex::encode(&existing.consensus_key),
                            hex::encode(self.consensus_key)
                        ),
                    ));
                }
                existing.stake = existing
                    .stake
                    .checked_add(self.stake)
                    .ok_or(ExecError::Overflow("validator stake"))?;
                existing
            }
            None => {
                if self.stake < ctx.params.min_validator_stake {
                    return Err(ExecError::StakeTooLow {
                        stake: self.stake,
                        min: ctx.params.min_validator_stake,
                    });
                }
                let address = validator_address(&self.consensus_key);
                let registry = state.validator_registry()?;
                if let Some(holder) = registry
                    .validators
                    .iter()
                    .find(|v| v.consensus_address == address)
                {
                    return Err(state_error(
                        operator,
                        format!(
                            "consensus key {} is taken by operator {}",
                            hex::encode(self.consensus_key),
                            hex::encode(&holder.operator)
                        ),
                    ));
                }
                pb::ValidatorRecord {
                    operator: operator.0.to_vec(),
                    consensus_key: self.consensus_key.to_vec(),
                    consensus_address: address,
                    stake: self.stake,
                    status: pb::ValidatorStatus::Bonded as i32,
                    ..Default::default()
                }
            }
        };
        let event = Event {
            kind: "register_validator",
            attributes: vec![
                ("operator", operator.to_string()),
                ("consensus_address", hex::encode(&updated.consensus_address)),
                ("added", self.stake.to_string()),
                ("stake", updated.stake.to_string()),
            ],
        };
        *record = Some(updated);
        plan.outcome.events.push(event);
        Ok(())
    }
}

/// `UnbondValidator`: leaves the set at the end of the block; the stake
/// returns after the unbonding period.
pub(crate) struct UnbondValidator;

impl ActionHandler for UnbondValidator {
    fn check(
        &self,
        state: &StateDelta,
        ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError> {
        let (operator, height) = (plan.signer(), plan.height);
        let existing = existing_record(state, plan)?;
        if existing.status == pb::ValidatorStatus::Unbonding as i32 {
            return Err(state_error(
                operator,
                format!("is already unbonding (until {})", existing.unbond_at),
            ));
        }
        if existing.stake == 0 {
            return Err(state_error(operator, "has no stake left"));
        }
        existing.status = pb::ValidatorStatus::Unbonding as i32;
        existing.unbond_at = height
            .checked_add(ctx.params.unbonding_period)
            .ok_or(ExecError::Overflow("unbonding height"))?;
        let event = Event {
            kind: "unbond_validator",
            attributes: vec![
                ("operator", operator.to_string()),
                ("stake", existing.stake.to_string()),
                ("unbond_at", existing.unbond_at.to_string()),
            ],
        };
        plan.outcome.events.push(event);
        Ok(())
    }
}

/// `UnjailValidator`: ends a downtime jail term once it has passed.
pub(crate) struct UnjailValidator;

impl ActionHandler for UnjailValidator {
    fn check(
        &self,
        state: &StateDelta,
        _ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError> {
        let (operator, height) = (plan.signer(), plan.height);
        let existing = existing_record(state, plan)?;
        if existing.tombstoned {
            return Err(state_error(
                operator,
                "is tombstoned (it double-signed); it can never unjail",
            ));
        }
        if existing.status != pb::ValidatorStatus::Jailed as i32 {
            return Err(state_error(operator, "is not jailed"));
        }
        if height < existing.jailed_until {
            return Err(ExecError::Jailed {
                address: operator,
                until: existing.jailed_until,
            });
        }
        existing.status = pb::ValidatorStatus::Bonded as i32;
        existing.jailed_until = 0;
        plan.outcome.events.push(Event {
            kind: "unjail_validator",
            attributes: vec![("operator", operator.to_string())],
        });
        Ok(())
    }
}

/// Writes the plan's part of the validators: the signer's record.
pub(crate) fn apply(state: &mut StateDelta, plan: &mut TxPlan) -> Result<(), ExecError> {
    if let Some(Some(record)) = plan.validator.take() {
        let mut registry = state.validator_registry()?;
        match registry
            .validators
            .binary_search_by(|v| v.operator.as_slice().cmp(record.operator.as_slice()))
        {
            Ok(i) => registry.validators[i] = record,
            Err(i) => registry.validators.insert(i, record),
        }
        state.put_validator_registry(&registry);
    }
    Ok(())
}

/// Misbehaviour CometBFT reports in a block (`misbehavior`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Misbehaviour {
    /// `duplicate_vote` or `light_client_attack`.
    pub kind: &'static str,
    pub address: Vec<u8>,
    pub height: u64,
}

/// What a block says about its validators besides its transactions.
#[derive(Clone, Debug, Default)]
pub(crate) struct BlockVotes {
    pub misbehaviour: Vec<Misbehaviour>,
    /// `decided_last_commit`: each validator of the previous height, and
    /// whether its vote is in the commit.
    pub last_commit: Vec<(Vec<u8>, bool)>,
}

/// What the validators' block end did.
#[derive(Debug, Default)]
pub(crate) struct ValidatorBlock {
    /// For CometBFT's `validator_updates` (power 0: leaves).
    pub updates: Vec<pb::Validator>,
    /// `validators()` after this block: the set that signs this height.
    pub set: pb::ValidatorSet,
    /// Validators slashed for evidence, and jailed for downtime, here.
    pub slashed: u64,
    pub jailed: u64,
    pub events: Vec<Event>,
}

/// The validators' block end (rules 1–5 of the module docs).
pub(crate) fn end_block(
    state: &mut StateDelta,
    params: &ChainParams,
    height: u64,
    votes: &BlockVotes,
) -> Result<ValidatorBlock, StoreError> {
    let mut out = ValidatorBlock::default();
    let original = state.validator_registry()?;
    let mut registry: BTreeMap<Vec<u8>, pb::ValidatorRecord> = original
        .validators
        .iter()
        .map(|v| (v.operator.clone(), v.clone()))
        .collect();
    let by_address: BTreeMap<Vec<u8>, Vec<u8>> = registry
        .values()
        .map(|v| (v.consensus_address.clone(), v.operator.clone()))
        .collect();
    let mut changed = false;

    // 1. Evidence.
    for evidence in &votes.misbehaviour {
        let Some(record) = by_address
            .get(&evidence.address)
            .and_then(|operator| registry.get_mut(operator))
        else {
            continue;
        };
        if record.tombstoned {
            continue;
        }
        let slashed = slash_amount(record.stake, params.double_sign_slash_bps);
        record.stake = record.stake.saturating_sub(slashed);
        record.slashed = record.slashed.saturating_add(slashed);
        record.tombstoned = true;
        record.jailed_until = u64::MAX;
        if record.status == pb::ValidatorStatus::Bonded as i32 {
            record.status = pb::ValidatorStatus::Jailed as i32;
        }
        changed = true;
        out.slashed = out.slashed.saturating_add(1);
        out.events.push(Event {
            kind: "validator_slashed",
            attributes: vec![
                ("operator", hex::encode(&record.operator)),
                ("consensus_address", hex::encode(&record.consensus_address)),
                ("reason", evidence.kind.to_string()),
                ("evidence_height", evidence.height.to_string()),
                ("slashed", slashed.to_string()),
                ("stake", record.stake.to_string()),
                ("tombstoned", "true".into()),
            ],
        });
    }

    // 2. Liveness, over the previous height's votes.
    if let Some(voted) = height.checked_sub(1).filter(|h| *h > 0) {
        for (address, signed) in &votes.last_commit {
            let Some(record) = by_address
                .get(address)
                .and_then(|operator| registry.get_mut(operator))
            else {
                continue;
            };
            if record.status != pb::ValidatorStatus::Bonded as i32 {
                continue;
            }
            changed |= rules::record_vote(record, params.downtime_window, voted, *signed);
            if record.missed_count > params.downtime_max_missed {
                let slashed = slash_amount(record.stake, params.downtime_slash_bps);
                record.stake = record.stake.saturating_sub(slashed);
                record.slashed = record.slashed.saturating_add(slashed);
                record.status = pb::ValidatorStatus::Jailed as i32;
                record.jailed_until = height.saturating_add(params.validator_jail_period);
                let missed = record.missed_count;
                record.missed.clear();
                record.missed_count = 0;
                out.jailed = out.jailed.saturating_add(1);
                out.events.push(Event {
                    kind: "validator_jailed",
                    attributes: vec![
                        ("operator", hex::encode(&record.operator)),
                        ("consensus_address", hex::encode(&record.consensus_address)),
                        ("missed", missed.to_string()),
                        ("window", params.downtime_window.to_string()),
                        ("slashed", slashed.to_string()),
                        ("jailed_until", record.jailed_until.to_string()),
                    ],
                });
            }
        }
    }

    // 3. Matured unbondings.
    let matured: Vec<Vec<u8>> = registry
        .values()
        .filter(|v| v.status == pb::ValidatorStatus::Unbonding as i32 && v.unbond_at <= height)
        .map(|v| v.operator.clone())
        .collect();
    for operator in matured {
        let Some(mut record) = registry.remove(&operator) else {
            continue;
        };
        if let Some(address) = Address::from_slice(&operator) {
            let mut account = state.account(&address)?;
            // Saturating: a block end must never fail on arithmetic.
            account.balance = account.balance.saturating_add(record.stake);
            state.put_account(&account);
        }
        out.events.push(Event {
            kind: "validator_unbonded",
            attributes: vec![
                ("operator", hex::encode(&operator)),
                ("stake", record.stake.to_string()),
            ],
        });
        if record.tombstoned {
            record.stake = 0;
            record.status = pb::ValidatorStatus::Jailed as i32;
            registry.insert(operator, record);
        }
        changed = true;
    }

    // 4. The set CometBFT will run with.
    let mut schedule = state.validator_schedule()?;
    let mut current = state.validators()?;
    let target = schedule
        .scheduled
        .last()
        .and_then(|s| s.set.clone())
        .unwrap_or_else(|| current.clone());
    let next = if epoch_at(height, params.epoch_length).is_some() {
        rules::select_set(registry.values(), params)
    } else {
        let bonded = |address: &[u8]| {
            by_address
                .get(address)
                .and_then(|operator| registry.get(operator))
                .is_some_and(|r| r.status == pb::ValidatorStatus::Bonded as i32)
        };
        pb::ValidatorSet {
            validators: target
                .validators
                .iter()
                .filter(|v| bonded(&v.address))
                .cloned()
                .collect(),
        }
    };
    let updates = rules::set_updates(&target, &next);
    if !updates.is_empty() {
        if next.validators.is_empty() {
            out.events.push(Event {
                kind: "validator_set_kept",
                attributes: vec![("reason", "no eligible validator left".into())],
            });
        } else {
            let effective = height.saturating_add(2);
            out.events.push(Event {
                kind: "validator_set_changed",
                attributes: vec![
                    ("effective_height", effective.to_string()),
                    ("validators", next.validators.len().to_string()),
                    ("total_power", total_power(&next).to_string()),
                    ("updates", updates.len().to_string()),
                ],
            });
            schedule.scheduled.push(pb::ScheduledValidatorSet {
                effective_height: effective,
                set: Some(next),
            });
            out.updates = updates;
        }
    }

    // 5. Sets whose height has come.
    let due = schedule
        .scheduled
        .iter()
        .take_while(|s| s.effective_height <= height)
        .count();
    let schedule_changed = due > 0 || !out.updates.is_empty();
    for entry in schedule.scheduled.drain(..due) {
        current = entry.set.unwrap_or_default();
        state.put_validators(&current);
    }
    if schedule_changed {
        state.put_validator_schedule(&schedule);
    }
    if changed {
        state.put_validator_registry(&pb::ValidatorRegistry {
            validators: registry.into_values().collect(),
        });
    }
    out.set = current;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::store::Store;

    fn params() -> ChainParams {
        ChainParams {
            epoch_length: 5,
            min_validator_stake: 1_000,
            stake_per_power: 100,
            downtime_window: 4,
            downtime_max_missed: 1,
            validator_jail_period: 3,
            double_sign_slash_bps: 10_000,
            ..ChainParams::default()
        }
    }

    /// A store after genesis with validators of `seeds` (power 10 each).
    fn genesis_state(seeds: &[u8]) -> (tempfile::TempDir, StateDelta) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("open"));
        let keys: Vec<(Vec<u8>, i64)> = seeds
            .iter()
            .map(|s| {
                let key = ed25519_dalek::SigningKey::from_bytes(&[*s; 32]);
                (key.verifying_key().to_bytes().to_vec(), 10)
            })
            .collect();
        let (set, registry) = genesis(&keys, &params()).expect("genesis");
        let mut state = StateDelta::new(store);
        state.put_validators(&set);
        state.put_validator_registry(&registry);
        (dir, state)
    }

    /// A lone validator that stops voting is jailed, but the set is never
    /// emptied: CometBFT cannot run without one.
    #[test]
    fn the_last_validator_is_jailed_but_never_removed() {
        let (_dir, mut state) = genesis_state(&[1]);
        let address = state.validators().expect("set").validators[0]
            .address
            .clone();
        let absent = BlockVotes {
            misbehaviour: vec![],
            last_commit: vec![(address, false)],
        };
        let mut kept = 0;
        for height in 2..=8 {
            let out = end_block(&mut state, &params(), height, &absent).expect("block end");
            assert!(out.updates.is_empty());
            assert_eq!(out.set.validators.len(), 1);
            kept += out
                .events
                .iter()
                .filter(|e| e.kind == "validator_set_kept")
                .count();
        }
        assert!(kept > 0);
        let registry = state.validator_registry().expect("registry");
        assert_eq!(
            registry.validators[0].status,
            pb::ValidatorStatus::Jailed as i32
        );
    }

    proptest! {
        /// Any mix of evidence and votes: stake plus slashed is conserved,
        /// the set never exceeds the cap nor empties, and scheduled sets are
        /// in height order, never more than two heights ahead.
        #[test]
        fn block_ends_conserve_stake_and_keep_a_set(
            blocks in proptest::collection::vec(
                (proptest::collection::vec(0usize..4, 0..2), proptest::collection::vec(any::<bool>(), 4)),
                1..30,
            ),
        ) {
            let (_dir, mut state) = genesis_state(&[1, 2, 3, 4]);
            let before: u64 = state.validator_registry().expect("registry").validators.iter().map(|v| v.stake).sum();
            for (i, (evidence, signed)) in blocks.iter().enumerate() {
                let height = i as u64 + 2;
                let set = state.validators().expect("set");
                let addresses: Vec<Vec<u8>> = state.validator_registry().expect("registry")
                    .validators.iter().map(|v| v.consensus_address.clone()).collect();
                let votes = BlockVotes {
                    misbehaviour: evidence.iter().map(|i| Misbehaviour {
                        kind: "duplicate_vote",
                        address: addresses[*i].clone(),
                        height: height - 1,
                    }).collect(),
                    last_commit: set.validators.iter().zip(signed).map(|(v, s)| (v.address.clone(), *s)).collect(),
                };
                let out = end_block(&mut state, &params(), height, &votes).expect("block end");
                prop_assert!(!out.set.validators.is_empty());
                let schedule = state.validator_schedule().expect("schedule");
                prop_assert!(schedule.scheduled.windows(2).all(|w| w[0].effective_height < w[1].effective_height));
                prop_assert!(schedule.scheduled.iter().all(|s| s.effective_height > height && s.effective_height <= height + 2));
                let registry = state.validator_registry().expect("registry");
                let after: u64 = registry.validators.iter().map(|v| v.stake + v.slashed).sum();
                prop_assert_eq!(after, before);
            }
        }
    }
}
