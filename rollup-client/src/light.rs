//! A light client of the chain's CometBFT headers: from a trust root (a
//! height and its header hash), it verifies later headers with skipping
//! verification (a header is accepted when validators holding more than the
//! trust threshold of the trusted set's power signed it, and more than 2/3
//! of its own set; otherwise it bisects), within a trusting period, fetching
//! signed headers and validator sets from any node's CometBFT RPC, and keeps
//! its trusted header on disk between runs. A node whose answer does not
//! verify is named in the error and the next node is asked.
//!
//! The verification itself is `tendermint-light-client-verifier` (the
//! tendermint-rs 0.41 family of `tendermint-abci`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tendermint::block::signed_header::SignedHeader;
use tendermint::validator::{Info, Set};
use tendermint::{Hash, Time};
use tendermint_light_client_verifier::errors::VerificationErrorDetail;
use tendermint_light_client_verifier::options::Options;
use tendermint_light_client_verifier::types::{
    TrustThreshold, TrustedBlockState, UntrustedBlockState,
};
use tendermint_light_client_verifier::{ProdVerifier, Verdict, Verifier};

use crate::cometbft::{CometRpc, RpcError};

/// Validators per `validators` RPC page (CometBFT's maximum).
const VALIDATORS_PER_PAGE: u64 = 100;
/// Bisection steps before giving up on one target.
const MAX_STEPS: usize = 64;
/// Verified headers kept besides the trusted one, so reads of a slightly
/// older state (a node a block behind) still find their header.
const RECENT_HEADERS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum LightError {
    #[error("no CometBFT RPC node was given")]
    NoNodes,
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("node {node}: {what} at height {height} does not decode: {detail}")]
    Decode {
        node: String,
        what: &'static str,
        height: u64,
        detail: String,
    },
    #[error("node {node} served height {got} when asked for {height}")]
    WrongHeight { node: String, height: u64, got: u64 },
    #[error(
        "trust root: header {height} from {node} has hash {got}, the configured root is {want}"
    )]
    RootMismatch {
        node: String,
        height: u64,
        got: String,
        want: String,
    },
    #[error("header {height} from {node} is of chain {got}, not {want}")]
    WrongChain {
        node: String,
        height: u64,
        got: String,
        want: String,
    },
    #[error("header {height} from {node} is not signed by enough of the trusted validators' power: {detail}")]
    Untrusted {
        node: String,
        height: u64,
        detail: String,
    },
    #[error("header {height} from {node} does not verify: {detail}")]
    Invalid {
        node: String,
        height: u64,
        detail: String,
    },
    #[error("the trusted header {height} expired at {expires_at} (now {now}): the trusting period is over; start again from a new trust root")]
    Expired {
        height: u64,
        expires_at: String,
        now: String,
    },
    #[error(
        "height {target} is below the trusted height {trusted}: a light client only moves forward"
    )]
    Backwards { target: u64, trusted: u64 },
    #[error("no node could prove header {height}: {errors}")]
    AllNodesFailed { height: u64, errors: String },
    #[error("light client state {path}: {detail}")]
    State { path: String, detail: String },
}

/// A header with its commit and the validator sets that signed it and
/// that sign the next height.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LightBlock {
    pub signed_header: SignedHeader,
    pub validators: Set,
    pub next_validators: Set,
}

impl LightBlock {
    pub fn height(&self) -> u64 {
        self.signed_header.header.height.value()
    }

    /// The app hash this header carries: the state after the previous height.
    pub fn app_hash(&self) -> &[u8] {
        self.signed_header.header.app_hash.as_bytes()
    }

    pub fn hash(&self) -> Hash {
        self.signed_header.header.hash()
    }

    pub fn time(&self) -> Time {
        self.signed_header.header.time
    }

    /// The share of its validators' power that signed this header's commit,
    /// in percent (for "signed by N % of power").
    pub fn signed_power_percent(&self) -> u64 {
        let total = self.validators.total_voting_power().value();
        let signed: u64 = self
            .signed_header
            .commit
            .signatures
            .iter()
            .filter_map(|s| s.validator_address())
            .filter_map(|a| self.validators.validator(a))
            .map(|v| v.power.value())
            .sum();
        signed.saturating_mul(100).checked_div(total).unwrap_or(0)
    }
}

/// Where a light client starts: a header it trusts without checking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustRoot {
    pub height: u64,
    /// The header hash (hex, as CometBFT prints it).
    pub hash: String,
}

/// Light client settings.
#[derive(Clone, Debug)]
pub struct LightOptions {
    /// How long a trusted header may be used to verify later ones (shorter
    /// than the chain's unbonding period).
    pub trusting_period: Duration,
    /// How far a header's time may be ahead of this machine's clock.
    pub clock_drift: Duration,
}

impl Default for LightOptions {
    fn default() -> Self {
        LightOptions {
            trusting_period: Duration::from_secs(14 * 24 * 3600),
            clock_drift: Duration::from_secs(10),
        }
    }
}

pub struct LightClient {
    nodes: Vec<CometRpc>,
    /// Headers verified by this client (not persisted), by height.
    recent: std::collections::BTreeMap<u64, LightBlock>,
    chain_id: String,
    options: Options,
    trusted: LightBlock,
    state_path: Option<PathBuf>,
    verifier: ProdVerifier,
    /// Why answers were refused since the last `take_refusals` (a node that
    /// lies is named even when another node's answer then verified).
    refusals: Vec<String>,
}

impl LightClient {
    /// A light client of `chain_id` through `nodes` (CometBFT RPC). Starts
    /// from the trusted header saved at `state_path` when there is one (and
    /// it is at or past `root`), otherwise from `root`, checked against the
    /// first node that serves it: its hash must be the root's, and its
    /// commit signed by more than 2/3 of its validators.
    pub async fn open(
        nodes: Vec<CometRpc>,
        chain_id: &str,
        root: &TrustRoot,
        options: LightOptions,
        state_path: Option<&Path>,
    ) -> Result<LightClient, LightError> {
        if nodes.is_empty() {
            return Err(LightError::NoNodes);
        }
        let options = Options {
            trust_threshold: TrustThreshold::ONE_THIRD,
            trusting_period: options.trusting_period,
            clock_drift: options.clock_drift,
        };
        let saved = match state_path {
            Some(path) => load_state(path)?.filter(|b| b.height() >= root.height),
            None => None,
        };
        let trusted = match saved {
            Some(block) => block,
            None => fetch_root(&nodes, chain_id, root).await?,
        };
        let client = LightClient {
            trusted,
            nodes,
            recent: std::collections::BTreeMap::new(),
            chain_id: chain_id.to_string(),
            options,
            state_path: state_path.map(Path::to_path_buf),
            verifier: ProdVerifier::default(),
            refusals: Vec::new(),
        };
        client.check_chain("(trusted state)", &client.trusted)?;
        client.save()?;
        Ok(client)
    }

    /// The latest header this client verified.
    pub fn trusted(&self) -> &LightBlock {
        &self.trusted
    }

    /// The answers refused since the last call, each naming its node and
    /// why (a forged header, a replayed one, another chain's).
    pub fn take_refusals(&mut self) -> Vec<String> {
        std::mem::take(&mut self.refusals)
    }

    /// Verifies header `target` (and whatever bisection needs between the
    /// trusted header and it) and makes it the trusted header. A target at
    /// or below the trusted height is answered from the headers this client
    /// verified before, if it has it.
    pub async fn verify_to(&mut self, target: u64) -> Result<&LightBlock, LightError> {
        let trusted_height = self.trusted.height();
        if target < trusted_height {
            return self.recent.get(&target).ok_or(LightError::Backwards {
                target,
                trusted: trusted_height,
            });
        }
        let mut pending = vec![target];
        let mut steps = 0;
        while let Some(&height) = pending.last() {
            if height <= self.trusted.height() {
                pending.pop();
                continue;
            }
            steps += 1;
            if steps > MAX_STEPS {
                return Err(LightError::AllNodesFailed {
                    height: target,
                    errors: format!("no path of trust found in {MAX_STEPS} steps"),
                });
            }
            match self.verify_one(height).await? {
                Some(block) => {
                    let previous = std::mem::replace(&mut self.trusted, block);
                    self.recent.insert(previous.height(), previous);
                    while self.recent.len() > RECENT_HEADERS {
                        self.recent.pop_first();
                    }
                    self.save()?;
                    pending.pop();
                }
                None => {
                    let low = self.trusted.height();
                    let middle = low + (height - low) / 2;
                    if middle == low {
                        return Err(LightError::AllNodesFailed {
                            height,
                            errors: "adjacent header lacks trust".into(),
                        });
                    }
                    pending.push(middle);
                }
            }
        }
        Ok(&self.trusted)
    }

    /// One step: `Some` when `height` verifies against the trusted header
    /// through some node, `None` when no node's header does and at least one
    /// lacks only trust (bisection needs a header in between). Every node is
    /// asked before giving up on a height: a liar's header signed by keys
    /// outside the trusted set must not send the client bisecting while an
    /// honest node has the real one. Expiry ends the attempt.
    async fn verify_one(&mut self, height: u64) -> Result<Option<LightBlock>, LightError> {
        let mut errors = Vec::new();
        // Answers that were wrong, not merely unavailable (a node that has
        // not committed the height yet is not lying).
        let mut lies = Vec::new();
        let mut lacks_trust = false;
        for node in &self.nodes {
            let block = match fetch_block(node, height).await {
                Ok(block) => block,
                Err(e) => {
                    if !matches!(e, LightError::Rpc(_)) {
                        lies.push(e.to_string());
                    }
                    errors.push(e.to_string());
                    continue;
                }
            };
            if let Err(e) = self.check_chain(node.addr(), &block) {
                lies.push(e.to_string());
                errors.push(e.to_string());
                continue;
            }
            let verdict = self.verifier.verify_update_header(
                UntrustedBlockState {
                    signed_header: &block.signed_header,
                    validators: &block.validators,
                    next_validators: Some(&block.next_validators),
                },
                TrustedBlockState {
                    chain_id: &self.trusted.signed_header.header.chain_id,
                    header_time: self.trusted.time(),
                    height: self.trusted.signed_header.header.height,
                    next_validators: &self.trusted.next_validators,
                    next_validators_hash: self.trusted.signed_header.header.next_validators_hash,
                },
                &self.options,
                Time::now(),
            );
            let refused = match verdict {
                Verdict::Success => {
                    // A height has one header: whoever served another lied.
                    self.refusals.append(&mut lies);
                    return Ok(Some(block));
                }
                Verdict::NotEnoughTrust(detail) => {
                    lacks_trust = true;
                    LightError::Untrusted {
                        node: node.addr().to_string(),
                        height,
                        detail: detail.to_string(),
                    }
                }
                Verdict::Invalid(VerificationErrorDetail::NotWithinTrustPeriod(e)) => {
                    return Err(LightError::Expired {
                        height: self.trusted.height(),
                        expires_at: e.expires_at.to_string(),
                        now: e.now.to_string(),
                    })
                }
                Verdict::Invalid(detail) => LightError::Invalid {
                    node: node.addr().to_string(),
                    height,
                    detail: detail.to_string(),
                },
            };
            lies.push(refused.to_string());
            errors.push(refused.to_string());
        }
        // Not refusals: with every node lacking trust, the honest ones too,
        // the validators changed too much for one skip.
        if lacks_trust {
            return Ok(None);
        }
        Err(LightError::AllNodesFailed {
            height,
            errors: errors.join("; "),
        })
    }

    fn check_chain(&self, node: &str, block: &LightBlock) -> Result<(), LightError> {
        let got = block.signed_header.header.chain_id.as_str();
        if got != self.chain_id {
            return Err(LightError::WrongChain {
                node: node.to_string(),
                height: block.height(),
                got: got.to_string(),
                want: self.chain_id.clone(),
            });
        }
        Ok(())
    }

    fn save(&self) -> Result<(), LightError> {
        let Some(path) = &self.state_path else {
            return Ok(());
        };
        let state_error = |detail: String| LightError::State {
            path: path.display().to_string(),
            detail,
        };
        let bytes = serde_json::to_vec(&self.trusted).map_err(|e| state_error(e.to_string()))?;
        // Write aside, then rename: a crash leaves the old state or the new.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(|e| state_error(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| state_error(e.to_string()))
    }
}

fn load_state(path: &Path) -> Result<Option<LightBlock>, LightError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LightError::State {
                path: path.display().to_string(),
                detail: format!("does not decode: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LightError::State {
            path: path.display().to_string(),
            detail: e.to_string(),
        }),
    }
}

/// The trust root from the first node that serves it as configured.
async fn fetch_root(
    nodes: &[CometRpc],
    chain_id: &str,
    root: &TrustRoot,
) -> Result<LightBlock, LightError> {
    let verifier = ProdVerifier::default();
    let mut errors = Vec::new();
    for node in nodes {
        let block = match fetch_block(node, root.height).await {
            Ok(block) => block,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let got = block.hash().to_string();
        if !got.eq_ignore_ascii_case(&root.hash) {
            errors.push(
                LightError::RootMismatch {
                    node: node.addr().to_string(),
                    height: root.height,
                    got,
                    want: root.hash.clone(),
                }
                .to_string(),
            );
            continue;
        }
        if block.signed_header.header.chain_id.as_str() != chain_id {
            errors.push(format!(
                "trust root from {} is of chain {}, not {chain_id}",
                node.addr(),
                block.signed_header.header.chain_id
            ));
            continue;
        }
        let untrusted = UntrustedBlockState {
            signed_header: &block.signed_header,
            validators: &block.validators,
            next_validators: Some(&block.next_validators),
        };
        let sets = verifier.verify_validator_sets(&untrusted);
        let commit = verifier.verify_commit(&untrusted);
        match (sets, commit) {
            (Verdict::Success, Verdict::Success) => return Ok(block),
            (Verdict::Success, other) | (other, _) => errors.push(
                LightError::Invalid {
                    node: node.addr().to_string(),
                    height: root.height,
                    detail: format!("{other:?}"),
                }
                .to_string(),
            ),
        }
    }
    Err(LightError::AllNodesFailed {
        height: root.height,
        errors: errors.join("; "),
    })
}

/// Header `height` with its commit, its validators and the next height's.
pub async fn fetch_block(node: &CometRpc, height: u64) -> Result<LightBlock, LightError> {
    let decode = |what: &'static str, detail: String| LightError::Decode {
        node: node.addr().to_string(),
        what,
        height,
        detail,
    };
    let commit = node
        .call("commit", json!({ "height": height.to_string() }))
        .await?;
    let signed_header: SignedHeader = serde_json::from_value(
        commit
            .get("signed_header")
            .cloned()
            .ok_or_else(|| decode("commit", "no signed_header".into()))?,
    )
    .map_err(|e| decode("signed header", e.to_string()))?;
    let got = signed_header.header.height.value();
    if got != height {
        return Err(LightError::WrongHeight {
            node: node.addr().to_string(),
            height,
            got,
        });
    }
    Ok(LightBlock {
        validators: fetch_validators(node, height).await?,
        next_validators: fetch_validators(node, height + 1).await?,
        signed_header,
    })
}

async fn fetch_validators(node: &CometRpc, height: u64) -> Result<Set, LightError> {
    let mut validators: Vec<Info> = Vec::new();
    for page in 1u64.. {
        let answer = node
            .call(
                "validators",
                json!({
                    "height": height.to_string(),
                    "page": page.to_string(),
                    "per_page": VALIDATORS_PER_PAGE.to_string(),
                }),
            )
            .await?;
        let list: Vec<Info> = serde_json::from_value(
            answer.get("validators").cloned().unwrap_or_default(),
        )
        .map_err(|e| LightError::Decode {
            node: node.addr().to_string(),
            what: "validators",
            height,
            detail: e.to_string(),
        })?;
        let total: u64 = answer
            .get("total")
            .and_then(|t| t.as_str())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let fetched = list.len();
        validators.extend(list);
        if fetched == 0 || validators.len() as u64 >= total {
            break;
        }
    }
    Ok(Set::without_proposer(validators))
}
