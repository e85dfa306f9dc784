//! Chain parameters: set at genesis, read by every check.

use seqnet_proto::pb;
use serde::Deserialize;

/// Chain-wide rules. Defaults suit a local network.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainParams {
    pub max_tx_bytes: u64,
    pub max_actions_per_tx: u64,
    pub base_fee: u64,
    pub fee_per_byte: u64,
    pub rollup_block_share_bps: u32,
    pub max_inclusion_window: u64,
    pub max_proof_window: u64,
    pub register_rollup_fee: u64,
    pub default_inclusion_window: u64,
    pub inclusion_wait_blocks: u64,
    pub max_inclusion_list_txs: u64,
    pub max_inclusion_list_bytes: u64,
    pub max_pending_forced: u64,
    /// Blocks per prover epoch; the active set changes only at epoch boundaries.
    pub epoch_length: u64,
    pub min_prover_stake: u64,
    pub max_active_provers: u64,
    pub unbonding_period: u64,
    /// Share of its stake a prover loses per missed deadline.
    pub slash_bps: u32,
    /// Share of a slashed amount paid to the prover that proves instead.
    pub bounty_bps: u32,
    pub jail_after_misses: u64,
    pub jail_period: u64,
    /// Share of a batch's fees paid to its prover.
    pub prover_fee_share_bps: u32,
    /// Back-pressure: when ordered height minus proven height exceeds this,
    /// proposals carry only proof, prover-set and forced transactions. A
    /// safety bound against absent or too few provers, not a pacing rule:
    /// size it above `span_blocks + 2 * proof_window` (docs/provers.md,
    /// "Sizing") so honest slow provers pipeline without reaching it.
    pub max_unproven_blocks: u64,
    /// Share of each job's fees paid to the aggregator whose
    /// `SubmitAggregate` proves it (besides the prover's share).
    pub aggregator_fee_bps: u32,
    /// Hex of the aggregation verifier SRS (`seqnet-prover srs verifier-key`,
    /// 436 bytes); empty disables `SubmitAggregate`.
    pub aggregation_srs: String,
    /// Largest `span_blocks` a rollup may choose.
    pub max_span_blocks: u64,
    /// `span_blocks` of a rollup that names none.
    pub default_span_blocks: u64,
    /// A span also closes at the end of the block where its data reaches
    /// this many bytes.
    pub max_span_bytes: u64,
    /// Most validators in the set (the top stakes); the set changes at
    /// epoch boundaries (`epoch_length`).
    pub max_validators: u64,
    /// Least stake of a new validator and of one in the set.
    pub min_validator_stake: u64,
    /// Stake per unit of CometBFT voting power.
    pub stake_per_power: u64,
    /// Share of its stake a double-signing validator loses (it is
    /// tombstoned too).
    pub double_sign_slash_bps: u32,
    /// Share of its stake a validator loses when jailed for downtime.
    pub downtime_slash_bps: u32,
    /// Heights over which a validator's missed votes are counted.
    pub downtime_window: u64,
    /// A validator that missed more than this many heights of the window is
    /// jailed.
    pub downtime_max_missed: u64,
    /// Blocks a validator jailed for downtime waits before UnjailValidator.
    pub validator_jail_period: u64,
}

impl Default for ChainParams {
    fn default() -> Self {
        ChainParams {
            max_tx_bytes: 256 * 1024,
            max_actions_per_tx: 64,
            base_fee: 10,
            fee_per_byte: 1,
            rollup_block_share_bps: 5_000,
            max_inclusion_window: 1_000,
            max_proof_window: 1_000,
            register_rollup_fee: 1_000,
            default_inclusion_window: 10,
            inclusion_wait_blocks: 2,
            max_inclusion_list_txs: 8,
            max_inclusion_list_bytes: 16 * 1024,
            max_pending_forced: 256,
            epoch_length: 10,
            min_prover_stake: 1_000,
            max_active_provers: 32,
            unbonding_period: 20,
            slash_bps: 1_000,
            bounty_bps: 5_000,
            jail_after_misses: 3,
            jail_period: 20,
            prover_fee_share_bps: 5_000,
            max_unproven_blocks: 100,
            aggregator_fee_bps: 1_000,
            aggregation_srs: String::new(),
            max_span_blocks: 256,
            default_span_blocks: 5,
            max_span_bytes: 4 * 1024 * 1024,
            max_validators: 100,
            min_validator_stake: 10_000,
            stake_per_power: 1_000,
            double_sign_slash_bps: 500,
            downtime_slash_bps: 100,
            downtime_window: 100,
            downtime_max_missed: 50,
            validator_jail_period: 100,
        }
    }
}

/// No chain allows spans longer than this: a job lists its span's batches,
/// and the list travels in every job record and delivery.
pub const MAX_SPAN_BLOCKS_LIMIT: u64 = 4_096;

/// No chain has more validators than this (CometBFT's votes, and every
/// extended commit, grow with the set).
pub const MAX_VALIDATORS_LIMIT: u64 = 1_000;

/// The downtime window is a bit per height in every validator's record.
pub const MAX_DOWNTIME_WINDOW: u64 = 100_000;

impl ChainParams {
    /// The span length of a rollup that asked for `requested` (0: the
    /// default), if the chain allows it.
    pub fn span_blocks(&self, requested: u64) -> Result<u64, String> {
        match requested {
            0 => Ok(self.default_span_blocks),
            n if n <= self.max_span_blocks => Ok(n),
            n => Err(format!(
                "span_blocks {n} exceeds the chain's maximum {}",
                self.max_span_blocks
            )),
        }
    }

    /// Checks that the parameters are usable; names the first that is not.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_tx_bytes == 0 || self.max_tx_bytes > seqnet_proto::tx::HARD_MAX_TX_BYTES as u64
        {
            return Err(format!(
                "max_tx_bytes {} must be in 1..={}",
                self.max_tx_bytes,
                seqnet_proto::tx::HARD_MAX_TX_BYTES
            ));
        }
        if self.max_actions_per_tx == 0
            || self.max_actions_per_tx > seqnet_proto::tx::HARD_MAX_ACTIONS as u64
        {
            return Err(format!(
                "max_actions_per_tx {} must be in 1..={}",
                self.max_actions_per_tx,
                seqnet_proto::tx::HARD_MAX_ACTIONS
            ));
        }
        if self.rollup_block_share_bps == 0 || self.rollup_block_share_bps > 10_000 {
            return Err(format!(
                "rollup_block_share_bps {} must be in 1..=10000",
                self.rollup_block_share_bps
            ));
        }
        if self.max_inclusion_window == 0 || self.max_proof_window == 0 {
            return Err("max_inclusion_window and max_proof_window must be at least 1".into());
        }
        if self.default_inclusion_window == 0
            || self.default_inclusion_window > self.max_inclusion_window
        {
            return Err(format!(
                "default_inclusion_window {} must be in 1..=max_inclusion_window ({})",
                self.default_inclusion_window, self.max_inclusion_window
            ));
        }
        if self.max_inclusion_list_txs > 1_000 || self.max_inclusion_list_bytes > 1 << 20 {
            return Err(format!(
                "inclusion lists of {} txs / {} bytes are too large for vote extensions",
                self.max_inclusion_list_txs, self.max_inclusion_list_bytes
            ));
        }
        if self.epoch_length == 0 {
            return Err("epoch_length must be at least 1".into());
        }
        if self.min_prover_stake == 0 {
            return Err("min_prover_stake must be at least 1".into());
        }
        if self.max_active_provers == 0 || self.max_active_provers > 1_000 {
            return Err(format!(
                "max_active_provers {} must be in 1..=1000",
                self.max_active_provers
            ));
        }
        if self.max_unproven_blocks == 0 {
            return Err("max_unproven_blocks must be at least 1".into());
        }
        if self.max_span_blocks == 0 || self.max_span_blocks > MAX_SPAN_BLOCKS_LIMIT {
            return Err(format!(
                "max_span_blocks {} must be in 1..={MAX_SPAN_BLOCKS_LIMIT}",
                self.max_span_blocks
            ));
        }
        if self.default_span_blocks == 0 || self.default_span_blocks > self.max_span_blocks {
            return Err(format!(
                "default_span_blocks {} must be in 1..=max_span_blocks ({})",
                self.default_span_blocks, self.max_span_blocks
            ));
        }
        if self.max_span_bytes == 0 {
            return Err("max_span_bytes must be at least 1".into());
        }
        if self.max_validators == 0 || self.max_validators > MAX_VALIDATORS_LIMIT {
            return Err(format!(
                "max_validators {} must be in 1..={MAX_VALIDATORS_LIMIT}",
                self.max_validators
            ));
        }
        if self.min_validator_stake == 0 || self.stake_per_power == 0 {
            return Err("min_validator_stake and stake_per_power must be at least 1".into());
        }
        if self.downtime_window == 0 || self.downtime_window > MAX_DOWNTIME_WINDOW {
            return Err(format!(
                "downtime_window {} must be in 1..={MAX_DOWNTIME_WINDOW}",
                self.downtime_window
            ));
        }
        if self.downtime_max_missed >= self.downtime_window {
            return Err(format!(
                "downtime_max_missed {} must be below downtime_window {}",
                self.downtime_max_missed, self.downtime_window
            ));
        }
        if self.jail_after_misses == 0 {
            return Err("jail_after_misses must be at least 1".into());
        }
        for (name, bps) in [
            ("slash_bps", self.slash_bps),
            ("bounty_bps", self.bounty_bps),
            ("prover_fee_share_bps", self.prover_fee_share_bps),
            ("aggregator_fee_bps", self.aggregator_fee_bps),
            ("double_sign_slash_bps", self.double_sign_slash_bps),
            ("downtime_slash_bps", self.downtime_slash_bps),
        ] {
            if bps > 10_000 {
                return Err(format!("{name} {bps} must be in 0..=10000"));
            }
        }
        if self
            .prover_fee_share_bps
            .saturating_add(self.aggregator_fee_bps)
            > 10_000
        {
            return Err(format!(
                "prover_fee_share_bps + aggregator_fee_bps ({} + {}) must be at most 10000",
                self.prover_fee_share_bps, self.aggregator_fee_bps
            ));
        }
        if !self.aggregation_srs.is_empty() {
            let bytes = hex::decode(&self.aggregation_srs)
                .map_err(|e| format!("aggregation_srs is not hex: {e}"))?;
            seqnet_proto::aggregate::VerifierSrs::decode(&bytes)
                .map_err(|e| format!("aggregation_srs: {e}"))?;
        }
        Ok(())
    }

    /// The least fee a transaction with `data_bytes` of rollup data and
    /// `registrations` RegisterRollup actions must offer; `None` on overflow.
    pub fn required_fee(&self, data_bytes: u64, registrations: u64) -> Option<u64> {
        self.fee_per_byte
            .checked_mul(data_bytes)?
            .checked_add(self.base_fee)?
            .checked_add(self.register_rollup_fee.checked_mul(registrations)?)
    }

    pub fn max_tx_bytes_usize(&self) -> usize {
        usize::try_from(self.max_tx_bytes).unwrap_or(usize::MAX)
    }

    pub fn max_actions_usize(&self) -> usize {
        usize::try_from(self.max_actions_per_tx).unwrap_or(usize::MAX)
    }

    pub fn to_pb(&self) -> pb::ChainParams {
        pb::ChainParams {
            max_tx_bytes: self.max_tx_bytes,
            max_actions_per_tx: self.max_actions_per_tx,
            base_fee: self.base_fee,
            fee_per_byte: self.fee_per_byte,
            rollup_block_share_bps: self.rollup_block_share_bps,
            max_inclusion_window: self.max_inclusion_window,
            max_proof_window: self.max_proof_window,
            register_rollup_fee: self.register_rollup_fee,
            default_inclusion_window: self.default_inclusion_window,
            inclusion_wait_blocks: self.inclusion_wait_blocks,
            max_inclusion_list_txs: self.max_inclusion_list_txs,
            max_inclusion_list_bytes: self.max_inclusion_list_bytes,
            max_pending_forced: self.max_pending_forced,
            epoch_length: self.epoch_length,
            min_prover_stake: self.min_prover_stake,
            max_active_provers: self.max_active_provers,
            unbonding_period: self.unbonding_period,
            slash_bps: self.slash_bps,
            bounty_bps: self.bounty_bps,
            jail_after_misses: self.jail_after_misses,
            jail_period: self.jail_period,
            prover_fee_share_bps: self.prover_fee_share_bps,
            max_unproven_blocks: self.max_unproven_blocks,
            aggregator_fee_bps: self.aggregator_fee_bps,
            aggregation_srs: hex::decode(&self.aggregation_srs).unwrap_or_default(),
            max_span_blocks: self.max_span_blocks,
            default_span_blocks: self.default_span_blocks,
            max_span_bytes: self.max_span_bytes,
            max_validators: self.max_validators,
            min_validator_stake: self.min_validator_stake,
            stake_per_power: self.stake_per_power,
            double_sign_slash_bps: self.double_sign_slash_bps,
            downtime_slash_bps: self.downtime_slash_bps,
            downtime_window: self.downtime_window,
            downtime_max_missed: self.downtime_max_missed,
            validator_jail_period: self.validator_jail_period,
        }
    }

    pub fn from_pb(p: &pb::ChainParams) -> ChainParams {
        ChainParams {
            max_tx_bytes: p.max_tx_bytes,
            max_actions_per_tx: p.max_actions_per_tx,
            base_fee: p.base_fee,
            fee_per_byte: p.fee_per_byte,
            rollup_block_share_bps: p.rollup_block_share_bps,
            max_inclusion_window: p.max_inclusion_window,
            max_proof_window: p.max_proof_window,
            register_rollup_fee: p.register_rollup_fee,
            default_inclusion_window: p.default_inclusion_window,
            inclusion_wait_blocks: p.inclusion_wait_blocks,
            max_inclusion_list_txs: p.max_inclusion_list_txs,
            max_inclusion_list_bytes: p.max_inclusion_list_bytes,
            max_pending_forced: p.max_pending_forced,
            epoch_length: p.epoch_length,
            min_prover_stake: p.min_prover_stake,
            max_active_provers: p.max_active_provers,
            unbonding_period: p.unbonding_period,
            slash_bps: p.slash_bps,
            bounty_bps: p.bounty_bps,
            jail_after_misses: p.jail_after_misses,
            jail_period: p.jail_period,
            prover_fee_share_bps: p.prover_fee_share_bps,
            max_unproven_blocks: p.max_unproven_blocks,
            aggregator_fee_bps: p.aggregator_fee_bps,
            aggregation_srs: hex::encode(&p.aggregation_srs),
            max_span_blocks: p.max_span_blocks,
            default_span_blocks: p.default_span_blocks,
            max_span_bytes: p.max_span_bytes,
            max_validators: p.max_validators,
            min_validator_stake: p.min_validator_stake,
            stake_per_power: p.stake_per_power,
            double_sign_slash_bps: p.double_sign_slash_bps,
            downtime_slash_bps: p.downtime_slash_bps,
            downtime_window: p.downtime_window,
            downtime_max_missed: p.downtime_max_missed,
            validator_jail_period: p.validator_jail_period,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_fees_add_up() {
        let p = ChainParams::default();
        p.validate().expect("defaults valid");
        assert_eq!(p.required_fee(100, 0), Some(110));
        assert_eq!(p.required_fee(0, 1), Some(1_010));
        assert_eq!(p.required_fee(u64::MAX, 0), None);
        assert_eq!(ChainParams::from_pb(&p.to_pb()), p);
    }

    /// The genesis example in docs/configuration.md lists the defaults.
    #[test]
    fn documented_defaults_match() {
        let doc = include_str!("../../docs/configuration.md");
        let start = doc.find("```json\n").expect("json block") + 8;
        let end = start + doc[start..].find("```").expect("block end");
        let example: serde_json::Value =
            serde_json::from_str(&doc[start..end]).expect("valid json");
        let params: ChainParams =
            serde_json::from_value(example["params"].clone()).expect("params parse");
        assert_eq!(params, ChainParams::default());
    }

    #[test]
    fn bad_params_are_named() {
        let p = ChainParams {
            rollup_block_share_bps: 20_000,
            ..ChainParams::default()
        };
        assert!(p.validate().unwrap_err().contains("rollup_block_share_bps"));
        let p = ChainParams {
            slash_bps: 10_001,
            ..ChainParams::default()
        };
        assert!(p.validate().unwrap_err().contains("slash_bps"));
        let p = ChainParams {
            epoch_length: 0,
            ..ChainParams::default()
        };
        assert!(p.validate().unwrap_err().contains("epoch_length"));
        let p = ChainParams {
            default_span_blocks: 300,
            ..ChainParams::default()
        };
        assert!(p.validate().unwrap_err().contains("default_span_blocks"));
        let p = ChainParams {
            max_span_blocks: 0,
            ..ChainParams::default()
        };
        assert!(p.validate().unwrap_err().contains("max_span_blocks"));
        let p = ChainParams::default();
        assert_eq!(p.span_blocks(0), Ok(5));
        assert_eq!(p.span_blocks(256), Ok(256));
        assert!(p.span_blocks(257).unwrap_err().contains("span_blocks 257"));
        let p = ChainParams {
            aggregator_fee_bps: 6_000,
            ..ChainParams::default()
        };
        assert!(p.validate().unwrap_err().contains("aggregator_fee_bps"));
        let p = ChainParams {
            aggregation_srs: "00".repeat(436),
            ..ChainParams::default()
        };
        assert!(p.validate().unwrap_err().contains("aggregation_srs"));
        let p = ChainParams {
            aggregation_srs: "zz".into(),
            ..ChainParams::default()
        };
        assert!(p.validate().unwrap_err().contains("aggregation_srs"));
        let p = ChainParams {
            downtime_max_missed: 100,
            ..ChainParams::default()
        };
        assert!(p.validate().unwrap_err().contains("downtime_max_missed"));
        let p = ChainParams {
            stake_per_power: 0,
            ..ChainParams::default()
        };
        assert!(p.validate().unwrap_err().contains("stake_per_power"));
        let p = ChainParams {
            double_sign_slash_bps: 10_001,
            ..ChainParams::default()
        };
        assert!(p.validate().unwrap_err().contains("double_sign_slash_bps"));
    }
}
