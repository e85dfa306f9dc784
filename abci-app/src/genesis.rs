//! The genesis `app_state` (JSON in CometBFT's genesis.json): accounts,
//! rollups and chain parameters. Format: docs/configuration.md.

use std::collections::BTreeSet;

use seqnet_proto::{pb, Address};
use serde::Deserialize;

use crate::params::ChainParams;

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("app_state is not valid JSON for seqnet: {0}")]
    Json(#[from] serde_json::Error),
    #[error("genesis account {index}: {reason}")]
    Account { index: usize, reason: String },
    #[error("genesis rollup {id}: {reason}")]
    Rollup { id: u64, reason: String },
    #[error("genesis params: {0}")]
    Params(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGenesis {
    #[serde(default)]
    params: ChainParams,
    #[serde(default)]
    accounts: Vec<RawAccount>,
    #[serde(default)]
    rollups: Vec<RawRollup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    address: String,
    balance: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollup {
    id: u64,
    name: String,
    owner: String,
    proof_window: u64,
    inclusion_window: u64,
    #[serde(default)]
    verifying_key: String,
    /// 0 (or absent): the chain's `default_span_blocks`.
    #[serde(default)]
    span_blocks: u64,
}

/// Validated genesis state.
#[derive(Debug, Clone)]
pub struct Genesis {
    pub params: ChainParams,
    pub accounts: Vec<pb::Account>,
    pub rollups: Vec<pb::Rollup>,
}

impl Genesis {
    /// Parses `app_state`; empty bytes mean an empty genesis with default params.
    pub fn parse(app_state: &[u8]) -> Result<Genesis, GenesisError> {
        let raw: RawGenesis = if app_state.iter().all(u8::is_ascii_whitespace) {
            serde_json::from_str("{}")?
        } else {
            serde_json::from_slice(app_state)?
        };
        raw.params.validate().map_err(GenesisError::Params)?;
        let mut seen = BTreeSet::new();
        let mut accounts = Vec::new();
        for (index, a) in raw.accounts.into_iter().enumerate() {
            let address = Address::from_hex(&a.address)
                .map_err(|reason| GenesisError::Account { index, reason })?;
            address.verifying_key().map_err(|_| GenesisError::Account {
                index,
                reason: format!("{address} is not an ed25519 public key"),
            })?;
            if !seen.insert(address) {
                return Err(GenesisError::Account {
                    index,
                    reason: format!("{address} listed twice"),
                });
            }
            accounts.push(pb::Account {
                address: address.0.to_vec(),
                balance: a.balance,
                nonce: 0,
                mempool_nonce: 0,
            });
        }
        let mut ids = BTreeSet::new();
        let mut rollups = Vec::new();
        for r in raw.rollups {
            let fail = |reason: String| GenesisError::Rollup { id: r.id, reason };
            if r.id == 0 || !ids.insert(r.id) {
                return Err(fail("id 0 is reserved and ids must be unique".into()));
            }
            let owner = Address::from_hex(&r.owner).map_err(fail)?;
            let verifying_key = hex::decode(&r.verifying_key)
                .map_err(|e| fail(format!("verifying_key is not hex: {e}")))?;
            if !verifying_key.is_empty() {
                seqnet_proto::groth16::PreparedKey::decode(&verifying_key)
                    .map_err(|e| fail(format!("verifying_key: {e}")))?;
            }
            if r.proof_window == 0 || r.proof_window > raw.params.max_proof_window {
                return Err(fail(format!(
                    "proof_window {} outside 1..={}",
                    r.proof_window, raw.params.max_proof_window
                )));
            }
            if r.inclusion_window == 0 || r.inclusion_window > raw.params.max_inclusion_window {
                return Err(fail(format!(
                    "inclusion_window {} outside 1..={}",
                    r.inclusion_window, raw.params.max_inclusion_window
                )));
            }
            let span_blocks = raw.params.span_blocks(r.span_blocks).map_err(fail)?;
            rollups.push(pb::Rollup {
                id: r.id,
                name: r.name,
                owner: owner.0.to_vec(),
                verifying_key,
                proof_window: r.proof_window,
                inclusion_window: r.inclusion_window,
                registered_height: 0,
                stats: Some(pb::RollupStats::default()),
                span_blocks,
            });
        }
        Ok(Genesis {
            params: raw.params,
            accounts,
            rollups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

    #[test]
    fn parses_accounts_rollups_and_default_params() {
        let json = format!(
            r#"{{"accounts":[{{"address":"{OWNER}","balance":5}}],
                "rollups":[{{"id":1,"name":"r1","owner":"{OWNER}","proof_window":5,"inclusion_window":3}}]}}"#
        );
        let g = Genesis::parse(json.as_bytes()).expect("valid");
        assert_eq!(g.accounts.len(), 1);
        assert_eq!(g.rollups[0].inclusion_window, 3);
        assert_eq!(g.params, ChainParams::default());
        assert!(Genesis::parse(b"").expect("empty ok").accounts.is_empty());
    }

    #[test]
    fn rejects_bad_entries_with_a_reason() {
        let dup = format!(
            r#"{{"accounts":[{{"address":"{OWNER}","balance":5}},{{"address":"{OWNER}","balance":1}}]}}"#
        );
        assert!(Genesis::parse(dup.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("listed twice"));
        assert!(Genesis::parse(br#"{"accounts":[{"address":"zz","balance":1}]}"#).is_err());
        assert!(Genesis::parse(br#"{"unknown":1}"#).is_err());
    }
}
