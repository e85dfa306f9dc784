//! Building and signing transactions for one account, with sequential nonces
//! and the fee the chain requires (see docs/configuration.md, "Fees").

use ed25519_dalek::SigningKey;
use seqnet_proto::tx::RollupSettings;
use seqnet_proto::{pb, Action, Address, Transaction, TransactionBody};

use crate::client::{ClientError, RollupClient};

/// The chain's fee parameters (genesis `params`); defaults match the chain's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeeSchedule {
    pub base_fee: u64,
    pub fee_per_byte: u64,
    pub register_rollup_fee: u64,
}

impl Default for FeeSchedule {
    fn default() -> Self {
        FeeSchedule {
            base_fee: 10,
            fee_per_byte: 1,
            register_rollup_fee: 1_000,
        }
    }
}

impl From<&pb::ChainParams> for FeeSchedule {
    fn from(p: &pb::ChainParams) -> Self {
        FeeSchedule {
            base_fee: p.base_fee,
            fee_per_byte: p.fee_per_byte,
            register_rollup_fee: p.register_rollup_fee,
        }
    }
}

impl FeeSchedule {
    /// `base_fee + fee_per_byte * data_bytes + register_rollup_fee *
    /// registrations` (saturating), as docs/configuration.md states it.
    pub fn required_fee(&self, data_bytes: u64, registrations: u64) -> u64 {
        self.base_fee
            .saturating_add(self.fee_per_byte.saturating_mul(data_bytes))
            .saturating_add(self.register_rollup_fee.saturating_mul(registrations))
    }

    /// The least fee for `actions`: base + per byte of rollup data and of
    /// forced transactions + per rollup registration (saturating).
    pub fn required(&self, actions: &[Action]) -> u64 {
        actions.iter().fold(self.base_fee, |fee, action| {
            let extra = match action {
                Action::RollupData { data, .. } => {
                    self.fee_per_byte.saturating_mul(data.len() as u64)
                }
                Action::ForceInclude { tx } => {
                    self.fee_per_byte.saturating_mul(tx.encoded_len() as u64)
                }
                Action::RegisterRollup { .. } => self.register_rollup_fee,
                Action::Transfer { .. }
                | Action::UpdateRollup { .. }
                | Action::RegisterProver { .. }
                | Action::Unbond
                | Action::Unjail
                | Action::RegisterValidator { .. }
                | Action::UnbondValidator
                | Action::UnjailValidator
                | Action::SubmitProof { .. }
                | Action::SubmitAggregate { .. } => 0,
            };
            fee.saturating_add(extra)
        })
    }
}

/// Signs transactions for one account.
pub struct TxSigner {
    pub key: SigningKey,
    pub chain_id: String,
    pub fees: FeeSchedule,
    /// Nonce of the next transaction.
    pub next_nonce: u64,
}

impl TxSigner {
    pub fn new(key: SigningKey, chain_id: impl Into<String>) -> TxSigner {
        TxSigner {
            key,
            chain_id: chain_id.into(),
            fees: FeeSchedule::default(),
            next_nonce: 0,
        }
    }

    /// Uses `fees` (the chain's genesis parameters) instead of the defaults.
    pub fn with_fees(mut self, fees: FeeSchedule) -> TxSigner {
        self.fees = fees;
        self
    }

    pub fn address(&self) -> Address {
        Address::from(&self.key.verifying_key())
    }

    /// Reads the account's next nonce from the node, counting transactions
    /// still in its mempool.
    pub async fn sync_nonce(&mut self, client: &mut RollupClient) -> Result<u64, ClientError> {
        let account = client.account(self.address()).await?;
        self.next_nonce = account.nonce.max(account.mempool_nonce);
        Ok(self.next_nonce)
    }

    /// Signs `actions` with the next nonce (consumed) and `fee`, or the
    /// required fee when `fee` is `None`.
    pub fn sign(&mut self, actions: Vec<Action>, fee: Option<u64>) -> Transaction {
        let fee = fee.unwrap_or_else(|| self.fees.required(&actions));
        let tx = TransactionBody {
            chain_id: self.chain_id.clone(),
            nonce: self.next_nonce,
            fee,
            actions,
        }
        .sign(&self.key);
        self.next_nonce += 1;
        tx
    }

    pub fn rollup_data(&mut self, rollup_id: u64, data: Vec<u8>, fee: Option<u64>) -> Transaction {
        self.sign(vec![Action::RollupData { rollup_id, data }], fee)
    }

    pub fn transfer(&mut self, to: Address, amount: u64, fee: Option<u64>) -> Transaction {
        self.sign(vec![Action::Transfer { to, amount }], fee)
    }

    pub fn register_rollup(
        &mut self,
        rollup_id: u64,
        name: String,
        settings: RollupSettings,
        fee: Option<u64>,
    ) -> Transaction {
        self.sign(
            vec![Action::RegisterRollup {
                rollup_id,
                name,
                settings,
            }],
            fee,
        )
    }

    /// Replaces the settings of a rollup the key owns.
    pub fn update_rollup(
        &mut self,
        rollup_id: u64,
        settings: RollupSettings,
        fee: Option<u64>,
    ) -> Transaction {
        self.sign(
            vec![Action::UpdateRollup {
                rollup_id,
                settings,
            }],
            fee,
        )
    }

    /// Locks `stake` from the balance as prover stake (registers the
    /// account as a prover, or adds to its stake).
    pub fn register_prover(&mut self, stake: u64, fee: Option<u64>) -> Transaction {
        self.sign(vec![Action::RegisterProver { stake }], fee)
    }

    /// Leaves the prover set; the stake returns after the unbonding period.
    pub fn unbond(&mut self, fee: Option<u64>) -> Transaction {
        self.sign(vec![Action::Unbond], fee)
    }

    /// Ends a jail term.
    pub fn unjail(&mut self, fee: Option<u64>) -> Transaction {
        self.sign(vec![Action::Unjail], fee)
    }

    /// Stakes `stake` from this account as the operator of the validator
    /// whose consensus key is `consensus` (which signs for this account).
    pub fn register_validator(
        &mut self,
        consensus: &SigningKey,
        stake: u64,
        fee: Option<u64>,
    ) -> Transaction {
        let operator = Address::from(&self.key.verifying_key());
        let action = Action::register_validator(consensus, &self.chain_id, &operator, stake);
        self.sign(vec![action], fee)
    }

    /// This account's validator leaves the set; its stake returns after the
    /// unbonding period.
    pub fn unbond_validator(&mut self, fee: Option<u64>) -> Transaction {
        self.sign(vec![Action::UnbondValidator], fee)
    }

    /// Ends this account's validator's jail term for downtime.
    pub fn unjail_validator(&mut self, fee: Option<u64>) -> Transaction {
        self.sign(vec![Action::UnjailValidator], fee)
    }

    /// Validity proofs of span jobs (any jobs, any order), each a
    /// [`SpanProof`].
    pub fn submit_proofs(&mut self, proofs: Vec<SpanProof>, fee: Option<u64>) -> Transaction {
        let actions = proofs
            .into_iter()
            .map(|p| Action::SubmitProof {
                rollup_id: p.rollup_id,
                from_height: p.from_height,
                proof: p.proof,
                prev_state_root: p.prev_state_root,
                new_state_root: p.new_state_root,
            })
            .collect();
        self.sign(actions, fee)
    }

    /// A transaction asking the chain to include `inner` within its window.
    pub fn force_include(&mut self, inner: Transaction, fee: Option<u64>) -> Transaction {
        self.sign(
            vec![Action::ForceInclude {
                tx: Box::new(inner),
            }],
            fee,
        )
    }
}

/// One `SubmitProof`: the proof of the span job `(rollup_id, from_height)`
/// for the transition `prev_state_root -> new_state_root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanProof {
    pub rollup_id: u64,
    pub from_height: u64,
    pub proof: Vec<u8>,
    pub prev_state_root: [u8; 32],
    pub new_state_root: [u8; 32],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_fee_is_base_plus_bytes_plus_registrations() {
        let defaults = FeeSchedule::default();
        assert_eq!(defaults.required_fee(0, 0), 10);
        assert_eq!(defaults.required_fee(256, 0), 266);
        assert_eq!(defaults.required_fee(5, 1), 1_015);
        let custom = FeeSchedule {
            base_fee: 3,
            fee_per_byte: 7,
            register_rollup_fee: 50,
        };
        assert_eq!(custom.required_fee(10, 2), 3 + 70 + 100);
        assert_eq!(custom.required_fee(u64::MAX, 0), u64::MAX);
        let from_params = FeeSchedule::from(&pb::ChainParams {
            base_fee: 1,
            fee_per_byte: 2,
            register_rollup_fee: 3,
            ..Default::default()
        });
        assert_eq!(from_params.required_fee(4, 1), 1 + 8 + 3);
        // Two data actions and a transfer: per byte of both payloads.
        let actions = vec![
            Action::RollupData {
                rollup_id: 1,
                data: vec![0; 40],
            },
            Action::RollupData {
                rollup_id: 2,
                data: vec![0; 2],
            },
            Action::Transfer {
                to: Address([1; 32]),
                amount: 5,
            },
        ];
        assert_eq!(custom.required(&actions), custom.required_fee(42, 0));
    }

    #[test]
    fn fees_follow_the_schedule_and_nonces_advance() {
        let mut signer = TxSigner::new(SigningKey::from_bytes(&[1; 32]), "c");
        let tx = signer.rollup_data(1, vec![0; 100], None);
        assert_eq!(tx.body.fee, 110);
        assert_eq!(tx.body.nonce, 0);
        let settings = RollupSettings {
            verifying_key: vec![],
            proof_window: 5,
            inclusion_window: 3,
            span_blocks: 0,
        };
        let reg = signer.register_rollup(2, "two".into(), settings, None);
        assert_eq!(reg.body.fee, 1_010);
        assert_eq!(reg.body.nonce, 1);
        let forced = signer.force_include(tx.clone(), None);
        assert_eq!(forced.body.fee, 10 + tx.encoded_len() as u64);
        assert_eq!(signer.transfer(Address([9; 32]), 1, Some(77)).body.fee, 77);
        assert_eq!(signer.next_nonce, 4);
    }
}
