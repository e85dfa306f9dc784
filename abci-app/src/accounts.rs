//! Accounts: balances, nonces and the fee pool, the `Transfer` action, and
//! the envelope of every transaction (fee and nonce charged to its signer).
//! Other components read and pay accounts through [`AccountsState`] and
//! [`AccountsWrite`].

use std::collections::btree_map::Entry;

use seqnet_proto::{pb, Address};

use crate::keys;
use crate::state::{StateDelta, StateRead, StateWrite};
use crate::store::{Cf, StoreError};
use crate::tx::{check_envelope, ActionHandler, Event, ExecError, TxContext, TxPlan};

/// Typed reads of accounts and the fee pool.
pub(crate) trait AccountsState: StateRead {
    /// The account, or a zero account if it never received anything.
    fn account(&self, address: &Address) -> Result<pb::Account, StoreError>
    where
        Self: Sized,
    {
        Ok(self
            .message(Cf::Accounts, &keys::account(address), "account")?
            .unwrap_or_else(|| pb::Account {
                address: address.0.to_vec(),
                balance: 0,
                nonce: 0,
                mempool_nonce: 0,
            }))
    }

    fn fee_pool(&self) -> Result<u64, StoreError> {
        self.meta_u64(keys::META_FEE_POOL)
    }
}

impl<S: StateRead> AccountsState for S {}

/// Typed writes of accounts and the fee pool.
pub(crate) trait AccountsWrite: StateWrite {
    fn put_account(&mut self, account: &pb::Account) {
        let key = match Address::from_slice(&account.address) {
            Some(address) => keys::account(&address),
            None => account.address.clone(),
        };
        self.put(Cf::Accounts, key, prost::Message::encode_to_vec(account));
    }

    fn put_fee_pool(&mut self, value: u64) {
        self.put_meta_u64(keys::META_FEE_POOL, value);
    }
}

impl<S: StateWrite> AccountsWrite for S {}

/// The envelope of `plan`'s transaction: nonce, fee and balance against the
/// signer's account; on success the plan starts with the charged account
/// and the transaction event.
pub(crate) fn check_envelope_into(
    state: &StateDelta,
    ctx: &TxContext<'_>,
    plan: &mut TxPlan,
) -> Result<(), ExecError> {
    let signer = ctx.tx.signer;
    let envelope = check_envelope(ctx.params, ctx.tx, state.account(&signer)?)?;
    plan.accounts.insert(signer, envelope.account);
    plan.outcome.events.push(Event {
        kind: "tx",
        attributes: vec![
            ("hash", hex::encode(ctx.tx.hash())),
            ("signer", signer.to_string()),
            ("nonce", ctx.tx.body.nonce.to_string()),
            ("fee", envelope.fee.to_string()),
        ],
    });
    Ok(())
}

/// The planned account of `address`, loaded from `state` on first use.
pub(crate) fn planned<'p>(
    state: &StateDelta,
    plan: &'p mut TxPlan,
    address: Address,
) -> Result<&'p mut pb::Account, ExecError> {
    Ok(match plan.accounts.entry(address) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => entry.insert(state.account(&address)?),
    })
}

/// Takes `amount` from the signer's planned account (it was charged the fee
/// already), or names the shortfall.
pub(crate) fn debit_signer(
    state: &StateDelta,
    plan: &mut TxPlan,
    amount: u64,
) -> Result<(), ExecError> {
    let signer = plan.signer();
    let from = planned(state, plan, signer)?;
    from.balance = from
        .balance
        .checked_sub(amount)
        .ok_or(ExecError::InsufficientBalance {
            address: signer,
            balance: from.balance,
            needed: amount,
        })?;
    Ok(())
}

/// `Transfer { to, amount }`.
pub(crate) struct Transfer {
    pub to: Address,
    pub amount: u64,
}

impl ActionHandler for Transfer {
    fn check(
        &self,
        state: &StateDelta,
        _ctx: &TxContext<'_>,
        plan: &mut TxPlan,
    ) -> Result<(), ExecError> {
        let signer = plan.signer();
        debit_signer(state, plan, self.amount)?;
        let recipient = planned(state, plan, self.to)?;
        recipient.balance = recipient
            .balance
            .checked_add(self.amount)
            .ok_or(ExecError::Overflow("recipient balance"))?;
        plan.outcome.events.push(Event {
            kind: "transfer",
            attributes: vec![
                ("from", signer.to_string()),
                ("to", self.to.to_string()),
                ("amount", self.amount.to_string()),
            ],
        });
        Ok(())
    }
}

/// Writes the plan's part of accounts: the fee into the pool, then every
/// changed account.
pub(crate) fn apply(state: &mut StateDelta, plan: &TxPlan) -> Result<(), ExecError> {
    let pool = state
        .fee_pool()?
        .checked_add(plan.outcome.fee)
        .ok_or(ExecError::Overflow("fee pool"))?;
    state.put_fee_pool(pool);
    for account in plan.accounts.values() {
        state.put_account(account);
    }
    Ok(())
}
