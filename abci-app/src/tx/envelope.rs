//! The transaction envelope's rules, before any action: the nonce is the
//! account's next, the offered fee covers what the chain requires, and the
//! balance covers the fee plus everything the actions send away. Pure
//! functions over the signer's account; the caller reads and writes it.

use seqnet_proto::{pb, Action, Address, Transaction};

use super::ExecError;
use crate::params::ChainParams;

/// What the envelope check leaves: the signer's account after the fee and
/// the nonce, and the fee charged.
pub(crate) struct Envelope {
    pub account: pb::Account,
    pub fee: u64,
}

/// Checks `tx`'s nonce, fee and balance against `account` (the signer's,
/// before the transaction) and charges the fee.
pub(crate) fn check_envelope(
    params: &ChainParams,
    tx: &Transaction,
    mut account: pb::Account,
) -> Result<Envelope, ExecError> {
    let signer: Address = tx.signer;
    let body = &tx.body;
    if body.nonce < account.nonce {
        return Err(ExecError::NonceReplayed {
            address: signer,
            expected: account.nonce,
            got: body.nonce,
        });
    }
    if body.nonce > account.nonce {
        return Err(ExecError::NonceGap {
            address: signer,
            expected: account.nonce,
            got: body.nonce,
        });
    }
    let registrations = body
        .actions
        .iter()
        .filter(|a| matches!(a, Action::RegisterRollup { .. }))
        .count() as u64;
    // Forced transactions are stored on chain: their bytes are charged too.
    let charged_bytes = tx
        .forced_transactions()
        .map(|inner| inner.encoded_len() as u64)
        .try_fold(body.data_bytes(), u64::checked_add)
        .ok_or(ExecError::Overflow("charged bytes"))?;
    let required = params
        .required_fee(charged_bytes, registrations)
        .ok_or(ExecError::Overflow("required fee"))?;
    if body.fee < required {
        return Err(ExecError::FeeTooLow {
            offered: body.fee,
            required,
        });
    }
    let outgoing = body
        .actions
        .iter()
        .map(|a| match a {
            Action::Transfer { amount, .. } => *amount,
            Action::RegisterProver { stake } | Action::RegisterValidator { stake, .. } => *stake,
            _ => 0,
        })
        .try_fold(body.fee, u64::checked_add)
        .ok_or(ExecError::Overflow("fee plus transfers"))?;
    if account.balance < outgoing {
        return Err(ExecError::InsufficientBalance {
            address: signer,
            balance: account.balance,
            needed: outgoing,
        });
    }
    // Cannot saturate: the balance covers the fee and more (checked above).
    account.balance = account.balance.saturating_sub(body.fee);
    account.nonce = account
        .nonce
        .checked_add(1)
        .ok_or(ExecError::Overflow("nonce"))?;
    Ok(Envelope {
        account,
        fee: body.fee,
    })
}
