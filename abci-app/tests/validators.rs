//! The staked validator set against a model of CometBFT: every block is
//! proposed with the extended commit of the previous height signed by the
//! set CometBFT holds for it, checked by ProcessProposal, and finalized with
//! that set's votes (some absent) and misbehaviour evidence. The model
//! applies each block's `validator_updates` from height H + 2, as CometBFT
//! does; after every block the app's own view of the set must equal it.

mod common;

use std::collections::BTreeMap;

use common::*;
use ed25519_dalek::Signer;
use seqnet_proto::inclusion::{
    encode_inclusion_list, validator_address, vote_extension_sign_bytes,
};
use seqnet_proto::{pb, Action, Address, Code};
use tendermint_abci::Application;
use tendermint_proto::v0_38::{abci, crypto};

/// The consensus key of the validator that stakes during the test.
const NEW_VALIDATOR: u8 = 21;
/// Its operator (a funded genesis account).
const OPERATOR: u8 = 1;
const EPOCH: u64 = 5;

/// address -> (seed, power): one height's set, as CometBFT holds it.
type Set = BTreeMap<Vec<u8>, (u8, i64)>;

fn consensus_address(seed: u8) -> Vec<u8> {
    validator_address(&key(seed).verifying_key().to_bytes())
}

struct Chain {
    node: Node,
    height: i64,
    nonces: BTreeMap<u8, u64>,
    /// CometBFT's validator set per height.
    comet: BTreeMap<i64, Set>,
    seeds: BTreeMap<Vec<u8>, u8>,
    /// Validators that do not vote from now on.
    absent: Vec<u8>,
}

impl Chain {
    fn new() -> Chain {
        let params = serde_json::json!({
            "epoch_length": EPOCH,
            "min_validator_stake": 5_000,
            "stake_per_power": 1_000,
            "downtime_window": 6,
            "downtime_max_missed": 3,
            "validator_jail_period": 4,
            "unbonding_period": 5,
            "double_sign_slash_bps": 500,
            "downtime_slash_bps": 100,
        });
        let node = new_node_with_genesis(1, genesis_with_params(params));
        let genesis: Set = VALIDATOR_SEEDS
            .iter()
            .map(|s| (consensus_address(*s), (*s, 10)))
            .collect();
        let seeds = VALIDATOR_SEEDS
            .iter()
            .chain(&[NEW_VALIDATOR])
            .map(|s| (consensus_address(*s), *s))
            .collect();
        Chain {
            node,
            height: 0,
            nonces: BTreeMap::new(),
            comet: BTreeMap::from([(1, genesis.clone()), (2, genesis)]),
            seeds,
            absent: Vec::new(),
        }
    }

    fn tx(&mut self, seed: u8, actions: Vec<Action>) -> Vec<u8> {
        let nonce = self.nonces.entry(seed).or_insert(0);
        let tx = signed(seed, *nonce, 10, actions);
        *nonce += 1;
        tx
    }

    /// A transaction CheckTx must refuse with `code` (uses no nonce).
    fn refused(&self, seed: u8, actions: Vec<Action>, code: Code) {
        let nonce = self.nonces.get(&seed).copied().unwrap_or(0);
        let response = check(&self.node, &signed(seed, nonce, 10, actions));
        assert_eq!(response.code, code.as_u32(), "{}", response.log);
    }

    fn voters(&self, height: i64) -> Vec<(u8, i64, bool)> {
        self.comet[&height]
            .values()
            .map(|(seed, power)| (*seed, *power, !self.absent.contains(seed)))
            .collect()
    }

    /// One block: proposed with the previous height's extended commit,
    /// accepted by ProcessProposal, finalized with its votes and
    /// `evidence`, committed; CometBFT's model takes the updates.
    fn block(&mut self, mempool: &[Vec<u8>], evidence: &[u8]) -> abci::ResponseFinalizeBlock {
        self.height += 1;
        let h = self.height;
        let previous = if h > 1 { self.voters(h - 1) } else { vec![] };
        let extended = abci::ExtendedCommitInfo {
            round: 0,
            votes: previous
                .iter()
                .map(|(seed, power, signed)| {
                    let extension = encode_inclusion_list(vec![]);
                    let signature =
                        key(*seed).sign(&vote_extension_sign_bytes(CHAIN, h - 1, 0, &extension));
                    abci::ExtendedVoteInfo {
                        validator: Some(abci::Validator {
                            address: consensus_address(*seed).into(),
                            power: *power,
                        }),
                        vote_extension: if *signed {
                            extension.into()
                        } else {
                            Default::default()
                        },
                        extension_signature: if *signed {
                            signature.to_bytes().to_vec().into()
                        } else {
                            Default::default()
                        },
                        block_id_flag: if *signed { 2 } else { 1 },
                    }
                })
                .collect(),
        };
        let txs = propose(&self.node, h, mempool, (h > 1).then_some(extended));
        assert_eq!(
            txs.len(),
            mempool.len() + usize::from(h > 1),
            "block {h} dropped a tx"
        );
        assert!(
            accepts(&self.node, h, &txs),
            "block {h} rejected: the app's set is not CometBFT's"
        );
        let decided = abci::CommitInfo {
            round: 0,
            votes: previous
                .iter()
                .map(|(seed, power, signed)| abci::VoteInfo {
                    validator: Some(abci::Validator {
                        address: consensus_address(*seed).into(),
                        power: *power,
                    }),
                    block_id_flag: if *signed { 2 } else { 1 },
                })
                .collect(),
        };
        let misbehavior = evidence
            .iter()
            .map(|seed| abci::Misbehavior {
                r#type: abci::MisbehaviorType::DuplicateVote as i32,
                validator: Some(abci::Validator {
                    address: consensus_address(*seed).into(),
                    power: 10,
                }),
                height: h - 1,
                total_voting_power: 40,
                ..Default::default()
            })
            .collect();
        let response = self.node.app.finalize_block(abci::RequestFinalizeBlock {
            txs: txs.iter().cloned().map(Into::into).collect(),
            height: h,
            decided_last_commit: Some(decided),
            misbehavior,
            ..Default::default()
        });
        self.node.app.commit();
        for (i, r) in response.tx_results.iter().enumerate() {
            assert_eq!(r.code, 0, "block {h} tx {i}: {}", r.log);
        }
        // CometBFT: the updates of block h apply from h + 2.
        let mut next = self.comet[&(h + 1)].clone();
        for update in &response.validator_updates {
            let Some(crypto::public_key::Sum::Ed25519(key)) =
                update.pub_key.as_ref().and_then(|k| k.sum.as_ref())
            else {
                panic!("a non-ed25519 update");
            };
            let address = validator_address(key);
            if update.power == 0 {
                assert!(next.remove(&address).is_some(), "removing a non-member");
            } else {
                next.insert(address.clone(), (self.seeds[&address], update.power));
            }
        }
        self.comet.insert(h + 2, next);
        // The app's view after block h is the set that signs h.
        let view: Set = self
            .node
            .app
            .reader()
            .validators()
            .expect("read")
            .validators
            .iter()
            .map(|v| (v.address.clone(), (self.seeds[&v.address], v.power)))
            .collect();
        assert_eq!(
            view, self.comet[&h],
            "block {h}: the app's set is not CometBFT's"
        );
        response
    }

    fn record(&self, seed: u8) -> Option<pb::ValidatorRecord> {
        let address = consensus_address(seed);
        self.node
            .app
            .reader()
            .validator_registry()
            .expect("read")
            .validators
            .into_iter()
            .find(|v| v.consensus_address == address)
    }

    /// The seeds of CometBFT's set at `height`, sorted.
    fn members(&self, height: i64) -> Vec<u8> {
        let mut seeds: Vec<u8> = self.comet[&height].values().map(|(s, _)| *s).collect();
        seeds.sort();
        seeds
    }

    fn balance(&self, address: &Address) -> u64 {
        self.node
            .app
            .reader()
            .account(address)
            .expect("read")
            .balance
    }
}

fn events(response: &abci::ResponseFinalizeBlock, kind: &str) -> Vec<BTreeMap<String, String>> {
    response
        .events
        .iter()
        .filter(|e| e.r#type == kind)
        .map(|e| {
            e.attributes
                .iter()
                .map(|a| (a.key.clone(), a.value.clone()))
                .collect()
        })
        .collect()
}

fn register(seed: u8, operator: u8, stake: u64) -> Action {
    Action::register_validator(&key(seed), CHAIN, &address(operator), stake)
}

#[test]
fn the_set_follows_stake_evidence_and_downtime_and_the_app_view_stays_cometbft_s() {
    let mut chain = Chain::new();
    let (jailed, double_signer) = (VALIDATOR_SEEDS[3], VALIDATOR_SEEDS[2]);
    // Genesis validators are operators of their own keys: fund two of them.
    let fund = chain.tx(
        2,
        vec![
            Action::Transfer {
                to: Address::from(&key(jailed).verifying_key()),
                amount: 1_000,
            },
            Action::Transfer {
                to: Address::from(&key(double_signer).verifying_key()),
                amount: 10_000,
            },
        ],
    );
    let r = chain.block(&[fund], &[]);
    assert!(
        r.validator_updates.is_empty(),
        "epoch 0 selects the genesis set"
    );

    // Registration: only with the key's own signature for its operator,
    // enough stake, and a key nobody holds.
    let stolen = Action::register_validator(&key(NEW_VALIDATOR), CHAIN, &address(OPERATOR), 20_000);
    chain.refused(2, vec![stolen], Code::BadSignature);
    chain.refused(
        OPERATOR,
        vec![register(NEW_VALIDATOR, OPERATOR, 4_999)],
        Code::StakeTooLow,
    );
    // A genesis validator's key, signed for a new operator: still taken.
    chain.refused(
        2,
        vec![register(VALIDATOR_SEEDS[0], 2, 20_000)],
        Code::ValidatorState,
    );
    let before = chain.balance(&address(OPERATOR));
    let stake = chain.tx(OPERATOR, vec![register(NEW_VALIDATOR, OPERATOR, 20_000)]);
    let r = chain.block(&[stake], &[]);
    assert!(
        r.validator_updates.is_empty(),
        "joins wait for the epoch boundary"
    );
    assert_eq!(chain.balance(&address(OPERATOR)), before - 20_000 - 10);
    // The key is taken now, whoever signs for it.
    let taken = Action::register_validator(&key(NEW_VALIDATOR), CHAIN, &address(2), 20_000);
    chain.refused(2, vec![taken], Code::ValidatorState);

    // Validator 14 stops voting from height 3 (block 4 carries that commit).
    chain.block(&[], &[]);
    chain.absent.push(jailed);
    for _ in 4..=5 {
        chain.block(&[], &[]);
    }
    // Height 6 = epoch boundary: the new validator joins at 8.
    let r = chain.block(&[], &[]);
    assert_eq!(r.validator_updates.len(), 1, "{:?}", r.validator_updates);
    assert_eq!(r.validator_updates[0].power, 20);
    assert!(!chain.members(7).contains(&NEW_VALIDATOR));
    assert!(chain.members(8).contains(&NEW_VALIDATOR));
    // Block 7 counts height 6: four misses of a window of 6 > 3: jailed,
    // out at 9, 1 % of its stake slashed.
    let r = chain.block(&[], &[]);
    let jail = events(&r, "validator_jailed");
    assert_eq!(jail.len(), 1, "{:?}", r.events);
    assert_eq!(jail[0]["missed"], "4");
    assert_eq!(jail[0]["jailed_until"], "11");
    assert_eq!(r.validator_updates.len(), 1);
    assert_eq!(r.validator_updates[0].power, 0);
    let record = chain.record(jailed).expect("record");
    assert_eq!((record.stake, record.slashed), (9_900, 100));
    assert_eq!(record.status, pb::ValidatorStatus::Jailed as i32);
    chain.absent.clear();

    chain.block(&[], &[]); // 8: the new validator signs from here
    assert!(!chain.members(9).contains(&jailed));
    chain.refused(jailed, vec![Action::UnjailValidator], Code::Jailed);
    chain.block(&[], &[]); // 9

    // Block 10 carries evidence that 13 double-signed: slashed 5 %,
    // tombstoned, out at 12; it can never unjail, its key never returns.
    let r = chain.block(&[], &[double_signer]);
    let slash = events(&r, "validator_slashed");
    assert_eq!(slash.len(), 1);
    assert_eq!(slash[0]["slashed"], "500");
    assert_eq!(slash[0]["reason"], "duplicate_vote");
    let record = chain.record(double_signer).expect("record");
    assert!(record.tombstoned);
    assert_eq!(record.stake, 9_500);
    chain.refused(
        double_signer,
        vec![Action::UnjailValidator],
        Code::ValidatorState,
    );
    chain.refused(
        double_signer,
        vec![register(double_signer, double_signer, 5_000)],
        Code::ValidatorState,
    );
    // The same evidence again changes nothing.
    let r = chain.block(&[], &[double_signer]); // 11
    assert!(events(&r, "validator_slashed").is_empty());
    assert_eq!(chain.record(double_signer).expect("record").stake, 9_500);
    assert!(!chain.members(12).contains(&double_signer));

    // 12: the jail term is over; Unjail, and the epoch boundary at 16
    // brings it back with 9 900 stake (power 9).
    let unjail = chain.tx(jailed, vec![Action::UnjailValidator]);
    chain.block(&[unjail], &[]);
    for _ in 13..=15 {
        chain.block(&[], &[]);
    }
    let r = chain.block(&[], &[]); // 16
    assert_eq!(r.validator_updates.len(), 1);
    assert_eq!(r.validator_updates[0].power, 9);
    assert_eq!(chain.members(18).len(), 4);

    // 17: the new validator unbonds: out at 19, stake back at 22.
    let unbond = chain.tx(OPERATOR, vec![Action::UnbondValidator]);
    let r = chain.block(&[unbond], &[]);
    assert_eq!(r.validator_updates.len(), 1);
    assert!(!chain.members(19).contains(&NEW_VALIDATOR));
    let before = chain.balance(&address(OPERATOR));
    for _ in 18..=21 {
        chain.block(&[], &[]);
    }
    assert_eq!(chain.balance(&address(OPERATOR)), before);
    let r = chain.block(&[], &[]); // 22
    assert_eq!(events(&r, "validator_unbonded").len(), 1);
    assert_eq!(chain.balance(&address(OPERATOR)), before + 20_000);
    assert!(chain.record(NEW_VALIDATOR).is_none());
    // Nobody may unbond what it does not have.
    chain.refused(3, vec![Action::UnbondValidator], Code::ValidatorUnknown);
    for _ in 23..=26 {
        chain.block(&[], &[]);
    }
    assert_eq!(chain.members(26), vec![11, 12, 14]);
}

/// A restarted app reads the same set and schedule it committed.
#[test]
fn the_set_and_its_schedule_survive_a_restart() {
    let mut chain = Chain::new();
    chain.block(&[], &[]);
    let stake = chain.tx(OPERATOR, vec![register(NEW_VALIDATOR, OPERATOR, 20_000)]);
    chain.block(&[stake], &[]);
    for _ in 3..=6 {
        chain.block(&[], &[]);
    }
    let schedule = chain.node.app.reader().validator_schedule().expect("read");
    assert_eq!(schedule.scheduled.len(), 1);
    assert_eq!(schedule.scheduled[0].effective_height, 8);
    let Node { app, dir } = chain.node;
    drop(app);
    let reopened = open(dir);
    let view = reopened.app.reader().validators().expect("read");
    assert_eq!(view.validators.len(), 4);
    assert_eq!(
        reopened.app.reader().validator_schedule().expect("read"),
        schedule
    );
}
