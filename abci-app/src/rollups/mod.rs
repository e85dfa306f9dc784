//! Rollups: registration and settings (`RegisterRollup`, `UpdateRollup`),
//! their ordered data (`RollupData`), and each block's batches
//! ([`batches`]: collection, fees per rollup, the namespaced Merkle tree,
//! storage and verified reads). Other components read a rollup's settings
//! (verifying key, windows, span length) through [`RollupsState`].

pub(crate) mod batches;

use std::collections::btree_map::Entry;

use seqnet_proto::tx::RollupSettings;
use seqnet_proto::{pb, Address, RollupId};

use crate::keys;
use crate::params::ChainParams;
use crate::state::{decode, StateDelta, StateRead, StateWrite};
use crate::store::{Cf, StoreError};
use crate::tx::{ActionHandler, Event, ExecError, TxContext, TxPlan};

/// Typed reads of rollup records.
pub(crate) trait RollupsState: StateRead {
    fn rollup(&self, id: RollupId) -> Result<Option<pb::Rollup>, StoreError>
    where
        Self: Sized,
    {
        self.message(Cf::Rollups, &keys::rollup(id), "rollup")
    }

    /// Every registered rollup, by id (committed records).
    fn rollups(&self) -> Result<Vec<pb::Rollup>, StoreError> {
        self.store()
            .scan_prefix(Cf::Rollups, &[], &[], usize::MAX)?
            .into_iter()
            .map(|(_, v)| decode("rollup", &v))
            .collect()
    }
}

impl<S: StateRead> RollupsState for S {}

/// Typed writes of rollup records.
pub(crate) trait RollupsWrite: StateWrite {
    fn put_rollup(&mut self, rollup: &pb::Rollup) {
        self.put(
            Cf::Rollups,
            keys::rollup(rollup.id),
            prost::Message::encode_to_vec(rollup),
        );
    }
}

impl<S: StateWrite> RollupsWrite for S {}

/// The planned record of rollup `id`, loaded from `state` on first use;
/// `None` when it is not registered (nor planned).
fn planned<'p>(
    state: &StateDelta,
    plan: &'p mut TxPlan,
    id: RollupId,
) -> Result<Option<&'p mut pb::Rollup>, ExecError> {
    if let Entry::Vacant(slot) = plan.rollups.entry(id) {
        match state.rollup(id)? {
            Some(r) => {
                slot.insert(r);
            }
            None => return Ok(None),
        }
    }
    Ok(plan.rollups.get_mut(&id))
}

/// A verifying key must decode (curve and subgroup checks) before a rollup
/// may register it: a key nobody can prove against would stall finality.
fn check_verifying_key(vk: &[u8]) -> Result<(), ExecError> {
    if vk.is_empty() {
        return Ok(());
    }
    seqnet_proto::PreparedKey::decode(vk)
        .map(|_| ())
        .map_err(|e| ExecError::InvalidParameter(format!("verifying key: {e}")))
}

fn check_windows(params: &ChainParams, proof: u64, inclusion: u64) -> Result<(), ExecError> {
    if proof > params.max_proof_window {
        return Err(ExecError::InvalidParameter(format!(
            "proof_window {proof} exceeds the chain's maximum {}",
            params.max_proof_window
        )));
    }
    if inclusion > params.max_inclusion_window {
        return Err(ExecError::InvalidParameter(format!(
            "inclusion_window {inclusion} exceeds the chain's maximum {}",
            params.max_inclusion_window
        )));
    }
    Ok(())
}

/// `RollupData { rollup_id, data }`: one ordered item of the rollup's batch.
pub(crate) struct RollupData<'a> {
    pub rollup_id: RollupId,
    pub data: &'a [u8],
}

impl ActionHandler for RollupData<'_> {
    fn check(
        &self,
        state: &StateDelta,
        ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError> {
        let height = plan.height;
        let rollup = planned(state, plan, self.rollup_id)?
            .ok_or(ExecError::UnknownRollup(self.rollup_id))?;
        let stats = rollup.stats.get_or_insert_with(Default::default);
        stats.items = stats
            .items
            .checked_add(1)
            .ok_or(ExecError::Overflow("rollup items"))?;
        stats.bytes = stats
            .bytes
            .checked_add(self.data.len() as u64)
            .ok_or(ExecError::Overflow("rollup bytes"))?;
        stats.last_height = height;
        let tx = ctx.tx;
        let tx_hash = hex::encode(tx.hash());
        plan.outcome.items.push((
            self.rollup_id,
            pb::BatchItem {
                tx_hash: tx.hash().to_vec(),
                signer: tx.signer.0.to_vec(),
                nonce: tx.body.nonce,
                action_index: u32::try_from(ctx.index).unwrap_or(u32::MAX),
                data: self.data.to_vec(),
            },
        ));
        plan.outcome.events.push(Event {
            kind: "rollup_data",
            attributes: vec![
                ("rollup_id", self.rollup_id.to_string()),
                ("bytes", self.data.len().to_string()),
                ("tx_hash", tx_hash),
            ],
        });
        Ok(())
    }
}

/// `RegisterRollup { rollup_id, name, settings }`.
pub(crate) struct RegisterRollup<'a> {
    pub rollup_id: RollupId,
    pub name: &'a str,
    pub settings: &'a RollupSettings,
}

impl ActionHandler for RegisterRollup<'_> {
    fn check(
        &self,
        state: &StateDelta,
        ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError> {
        if planned(state, plan, self.rollup_id)?.is_some() {
            return Err(ExecError::RollupExists(self.rollup_id));
        }
        let settings = self.settings;
        check_windows(ctx.params, settings.proof_window, settings.inclusion_window)?;
        check_verifying_key(&settings.verifying_key)?;
        let span_blocks = ctx
            .params
            .span_blocks(settings.span_blocks)
            .map_err(ExecError::InvalidParameter)?;
        let owner: Address = plan.signer();
        plan.rollups.insert(
            self.rollup_id,
            pb::Rollup {
                id: self.rollup_id,
                name: self.name.to_string(),
                owner: owner.0.to_vec(),
                verifying_key: settings.verifying_key.clone(),
                proof_window: settings.proof_window,
                inclusion_window: settings.inclusion_window,
                registered_height: plan.height,
                stats: Some(pb::RollupStats::default()),
                span_blocks,
            },
        );
        plan.outcome.events.push(Event {
            kind: "register_rollup",
            attributes: vec![
                ("rollup_id", self.rollup_id.to_string()),
                ("owner", owner.to_string()),
            ],
        });
        Ok(())
    }
}

/// `UpdateRollup { rollup_id, settings }` (owner only; every field replaced).
pub(crate) struct UpdateRollup<'a> {
    pub rollup_id: RollupId,
    pub settings: &'a RollupSettings,
}

impl ActionHandler for UpdateRollup<'_> {
    fn check(
        &self,
        state: &StateDelta,
        ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError> {
        let signer = plan.signer();
        let rollup = planned(state, plan, self.rollup_id)?
            .ok_or(ExecError::UnknownRollup(self.rollup_id))?;
        if rollup.owner != signer.0 {
            return Err(ExecError::NotOwner {
                signer,
                rollup_id: self.rollup_id,
            });
        }
        let settings = self.settings;
        check_windows(ctx.params, settings.proof_window, settings.inclusion_window)?;
        check_verifying_key(&settings.verifying_key)?;
        rollup.span_blocks = ctx
            .params
            .span_blocks(settings.span_blocks)
            .map_err(ExecError::InvalidParameter)?;
        rollup.verifying_key = settings.verifying_key.clone();
        rollup.proof_window = settings.proof_window;
        rollup.inclusion_window = settings.inclusion_window;
        plan.outcome.events.push(Event {
            kind: "update_rollup",
            attributes: vec![("rollup_id", self.rollup_id.to_string())],
        });
        Ok(())
    }
}

/// Writes the plan's part of rollups: every changed record.
pub(crate) fn apply(state: &mut StateDelta, plan: &TxPlan) {
    for rollup in plan.rollups.values() {
        state.put_rollup(rollup);
    }
}
