//! The validator set of a running testnet: each node's consensus key (its
//! CometBFT `priv_validator_key.json`) is also its operator account, as for
//! genesis validators; the faucet funds it, and it stakes
//! (`RegisterValidator`) or unbonds (`UnbondValidator`) through a running
//! node. The set CometBFT runs with and the app's view of it are read back
//! for comparison.

use std::time::Duration;

use prost::Message;
use seqnet_proto::{pb, Action};
use seqnet_rollup_client::{keys, RollupClient, TxSigner};

use crate::error::{Result, TestnetError};
use crate::network::Testnet;

/// What a node's operator keeps on its account for fees.
const FEE_MARGIN: u64 = 10_000;

impl Testnet {
    /// A fault: starts a new node (block sync from genesis) that signs with
    /// node `of`'s consensus key, so two processes vote as one validator, as
    /// CometBFT's own end-to-end tests make a double-signer. The twin's
    /// proposals leave out rollup 1's data (a censor fault), so while that
    /// rollup has data waiting, the two propose different blocks when the
    /// validator's turn comes and each prevotes its own: the other
    /// validators report duplicate-vote evidence, and the app slashes and
    /// tombstones the validator. Returns the new node's index.
    pub async fn start_double_signer(&mut self, of: usize) -> Result<usize> {
        let index = self.add_joining(false).await?;
        let source = self
            .dir()
            .join(&self.node(of)?.cometbft_home)
            .join("config/priv_validator_key.json");
        let target = self
            .dir()
            .join(&self.node(index)?.cometbft_home)
            .join("config/priv_validator_key.json");
        std::fs::copy(&source, &target).map_err(|e| TestnetError::io(&target, e))?;
        self.set_censor(index, &["rollup:1".to_string()])?;
        self.start_node(index).await?;
        tracing::warn!(node = index, of, "double-signer started");
        Ok(index)
    }

    /// Node `index`'s consensus key.
    pub fn consensus_key(&self, index: usize) -> Result<ed25519_dalek::SigningKey> {
        let node = self.node(index)?;
        let path = self
            .dir()
            .join(&node.cometbft_home)
            .join("config/priv_validator_key.json");
        Ok(keys::load_consensus(&path)?)
    }

    /// A client of the first running node, and its index.
    fn any_client(&mut self) -> Result<(usize, RollupClient)> {
        let index = (0..self.node_count())
            .find(|i| self.is_running(*i))
            .ok_or_else(|| TestnetError::InvalidOption {
                name: "nodes",
                value: "none".into(),
                reason: "no node is running".into(),
            })?;
        Ok((index, self.client(index)?))
    }

    /// Signs `actions` with node `index`'s consensus key (its operator
    /// account), topping the account up from the faucet to `needed` plus a
    /// fee margin first, and waits until the transaction is committed (its
    /// nonce used: CheckTx refuses what would fail).
    async fn operator_tx(
        &mut self,
        index: usize,
        needed: u64,
        actions: impl FnOnce(&TxSigner) -> Vec<Action>,
        timeout: Duration,
    ) -> Result<()> {
        let (via, mut client) = self.any_client()?;
        let url = self.grpc_url(via)?;
        let grpc = |e| TestnetError::grpc(&url, e);
        let chain_id = self.manifest().chain_id.clone();
        let fees = self.manifest().fees.schedule();
        let operator = TxSigner::new(self.consensus_key(index)?, chain_id.clone()).with_fees(fees);
        let balance = client
            .account(operator.address())
            .await
            .map_err(grpc)?
            .balance;
        let wanted = needed.saturating_add(FEE_MARGIN);
        if balance < wanted {
            let faucet = self
                .key_path("faucet")
                .ok_or_else(|| TestnetError::KeyFile {
                    path: "faucet".into(),
                    reason: "not in the manifest".into(),
                })?;
            let mut signer = TxSigner::new(keys::load(&faucet)?, chain_id).with_fees(fees);
            signer.sync_nonce(&mut client).await.map_err(grpc)?;
            let tx = signer.transfer(operator.address(), wanted - balance, None);
            client.submit(&tx).await.map_err(grpc)?;
            client
                .wait_for_nonce(signer.address(), tx.body.nonce + 1, timeout)
                .await
                .map_err(grpc)?;
        }
        let mut operator = operator;
        operator.sync_nonce(&mut client).await.map_err(grpc)?;
        let actions = actions(&operator);
        let tx = operator.sign(actions, None);
        client.submit(&tx).await.map_err(grpc)?;
        client
            .wait_for_nonce(operator.address(), tx.body.nonce + 1, timeout)
            .await
            .map_err(grpc)?;
        Ok(())
    }

    /// Stakes `stake` for node `index` (registers it as a validator, or
    /// adds to its stake) and waits until that is committed; the node
    /// joins the set (or its power changes) at the next epoch boundary.
    pub async fn stake_validator(
        &mut self,
        index: usize,
        stake: u64,
        timeout: Duration,
    ) -> Result<()> {
        let consensus = self.consensus_key(index)?;
        let chain_id = self.manifest().chain_id.clone();
        self.operator_tx(
            index,
            stake,
            |operator| {
                vec![Action::register_validator(
                    &consensus,
                    &chain_id,
                    &operator.address(),
                    stake,
                )]
            },
            timeout,
        )
        .await?;
        tracing::info!(node = index, stake, "RegisterValidator committed");
        Ok(())
    }

    /// Node `index`'s validator unbonds: it leaves the set at once, its
    /// stake returns after the unbonding period.
    pub async fn unbond_validator(&mut self, index: usize, timeout: Duration) -> Result<()> {
        self.operator_tx(index, 0, |_| vec![Action::UnbondValidator], timeout)
            .await?;
        tracing::info!(node = index, "UnbondValidator committed");
        Ok(())
    }

    /// CometBFT's validator set at `height`, as node `via` reports it
    /// (none: the height after its last committed one, what `/validators`
    /// without a height answers): that height and each validator's
    /// (upper-case hex address, power), sorted.
    pub async fn cometbft_validators(
        &self,
        via: usize,
        height: Option<u64>,
    ) -> Result<(u64, Vec<(String, i64)>)> {
        let mut params = serde_json::json!({ "per_page": "100" });
        if let Some(height) = height {
            params["height"] = serde_json::json!(height.to_string());
        }
        let value = self
            .rpc(via)?
            .call("validators", params)
            .await
            .map_err(|e| self.rpc_error(via, "validators", e))?;
        let height = value
            .get("block_height")
            .and_then(serde_json::Value::as_str)
            .and_then(|h| h.parse().ok())
            .unwrap_or(0);
        let mut set: Vec<(String, i64)> = value
            .get("validators")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| {
                let address = v.get("address")?.as_str()?.to_uppercase();
                let power = v.get("voting_power")?.as_str()?.parse().ok()?;
                Some((address, power))
            })
            .collect();
        set.sort();
        Ok((height, set))
    }

    /// The app's view of the set on node `via` (ABCI query `/validators`),
    /// as CometBFT names it: (upper-case hex address, power), sorted.
    pub async fn app_validators(&self, via: usize) -> Result<Vec<(String, i64)>> {
        let bytes = self
            .rpc(via)?
            .abci_query("/validators")
            .await
            .map_err(|e| self.rpc_error(via, "abci_query /validators", e))?;
        let set = pb::ValidatorSet::decode(bytes.as_slice())
            .map_err(|e| self.rpc_error(via, "abci_query /validators", e))?;
        let mut set: Vec<(String, i64)> = set
            .validators
            .iter()
            .map(|v| (hex::encode_upper(&v.address), v.power))
            .collect();
        set.sort();
        Ok(set)
    }

    /// Every validator record on node `via` (ABCI query
    /// `/validator_registry`).
    pub async fn validator_registry(&self, via: usize) -> Result<pb::ValidatorRegistry> {
        let bytes = self
            .rpc(via)?
            .abci_query("/validator_registry")
            .await
            .map_err(|e| self.rpc_error(via, "abci_query /validator_registry", e))?;
        pb::ValidatorRegistry::decode(bytes.as_slice())
            .map_err(|e| self.rpc_error(via, "abci_query /validator_registry", e))
    }

    /// Node `index`'s validator record, as node `via` holds it.
    pub async fn validator_record(
        &self,
        via: usize,
        index: usize,
    ) -> Result<Option<pb::ValidatorRecord>> {
        let key = self.consensus_key(index)?.verifying_key().to_bytes();
        let address = seqnet_proto::inclusion::validator_address(&key);
        Ok(self
            .validator_registry(via)
            .await?
            .validators
            .into_iter()
            .find(|v| v.consensus_address == address))
    }

    /// Node `index`'s consensus address as CometBFT prints it.
    pub fn consensus_address(&self, index: usize) -> Result<String> {
        let key = self.consensus_key(index)?;
        Ok(hex::encode_upper(
            seqnet_proto::inclusion::validator_address(&key.verifying_key().to_bytes()),
        ))
    }

    /// Waits until CometBFT's set for the next height (as node `via`
    /// reports it) satisfies `done`, then until that height is committed;
    /// returns it.
    pub async fn wait_for_validators(
        &mut self,
        via: usize,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[(String, i64)]) -> bool,
    ) -> Result<(u64, Vec<(String, i64)>)> {
        let started = std::time::Instant::now();
        loop {
            let (height, set) = self.cometbft_validators(via, None).await?;
            if done(&set) {
                self.wait_node_height(via, height, timeout).await?;
                return Ok((height, set));
            }
            if started.elapsed() >= timeout {
                return Err(TestnetError::Timeout {
                    what: what.to_string(),
                    secs: timeout.as_secs(),
                    detail: format!("; the set at height {height}: {set:?}"),
                });
            }
            self.check_alive(what)?;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
