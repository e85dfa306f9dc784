//! Verified state reads: a record of the chain's state (an account, a
//! rollup, a height's NMT root, any record of docs/state-proofs.md) read
//! from a node with its proof, and returned only after the proof checked
//! against the app hash of a header the [`LightClient`] verified. A node
//! whose answer does not check is named in the error and the next node is
//! asked; "no such record" is proven the same way.

use std::time::Duration;

use prost::Message;
use seqnet_proto::state_proof::{self, Space, StateProofError, MAX_PROVEN_KEYS};
use seqnet_proto::{pb, Address, RollupId};

use crate::cometbft::{CometRpc, RpcError};
use crate::light::{LightClient, LightError};
use crate::verify::{verify_batch_for, VerifiedBatch, VerifyError};

/// How long to wait for the header that carries a fresh read's app hash
/// (it is committed one block after the read's height).
const NEXT_HEADER_WAIT: Duration = Duration::from_secs(10);
/// How far behind the newest verified header (brought up to the newest
/// height a node proves before each read) a read's state may be: older
/// answers are a node serving stale state (another height's balance).
pub const MAX_STALE_BLOCKS: u64 = 5;
/// Heights whose NMT roots [`VerifiedState::follow_batches`] reads at once.
pub const ROOTS_PER_READ: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("node {node}: {source}")]
    Rpc { node: String, source: Box<RpcError> },
    #[error("node {node} answered for {got_space}/{got_key} when asked for {space}/{key}")]
    WrongRecord {
        node: String,
        space: &'static str,
        key: String,
        got_space: String,
        got_key: String,
    },
    #[error("node {node} lied about {space}/{key} at height {version}: {source}")]
    BadProof {
        node: String,
        space: &'static str,
        key: String,
        version: u64,
        source: Box<StateProofError>,
    },
    #[error("node {node} served a batch that does not verify: {source}")]
    BadBatch {
        node: String,
        source: Box<VerifyError>,
    },
    #[error("node {node} lied about height {height}: its batch's NMT root is not the one the app hash commits to")]
    RootMismatch { node: String, height: u64 },
    #[error("node {node} answered {got} proofs for {asked} keys")]
    WrongCount {
        node: String,
        asked: usize,
        got: usize,
    },
    #[error("node {node} answered proofs of heights {first} and {other} in one read")]
    MixedVersions {
        node: String,
        first: u64,
        other: u64,
    },
    #[error("height {height} has no NMT root in the verified state (not committed yet?)")]
    NoRoot { height: u64 },
    #[error("node {node}: {what} does not decode: {detail}")]
    Decode {
        node: String,
        what: &'static str,
        detail: String,
    },
    #[error("node {node} served the state of height {version}, but header {trusted} is verified: more than {max} blocks old")]
    Stale {
        node: String,
        version: u64,
        trusted: u64,
        max: u64,
    },
    #[error("header {height} (the app hash of {version}): {source}")]
    Light {
        height: u64,
        version: u64,
        source: Box<LightError>,
    },
    #[error("no node gave a verified answer for {space}/{key}: {errors}")]
    AllNodesFailed {
        space: &'static str,
        key: String,
        errors: String,
    },
}

/// A value that checked against a verified header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified<T> {
    pub value: T,
    /// The committed height the value is of.
    pub version: u64,
    /// The verified header whose app hash the proof checked against
    /// (`version + 1`).
    pub header: u64,
    /// Share of the validators' power that signed that header, percent.
    pub signed_power_percent: u64,
    /// The node that served the value.
    pub node: String,
    /// Why the nodes asked before it were not believed.
    pub refused: Vec<String>,
}

impl<T> Verified<T> {
    /// "verified against header N, signed by P % of power".
    pub fn describe(&self) -> String {
        format!(
            "verified against header {}, signed by {} % of power (state of height {}, from {})",
            self.header, self.signed_power_percent, self.version, self.node
        )
    }

    fn map<U>(self, f: impl FnOnce(T) -> U) -> Verified<U> {
        Verified {
            value: f(self.value),
            version: self.version,
            header: self.header,
            signed_power_percent: self.signed_power_percent,
            node: self.node,
            refused: self.refused,
        }
    }
}

/// Finality as the verified state says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedFinality {
    /// Blocks ordered: the height whose state was read.
    pub ordered_height: u64,
    /// Highest height every span at or below which is proven.
    pub proven_height: u64,
    /// The rollup asked about: its last proven span's end and state root.
    pub rollup: Option<pb::RollupProving>,
}

/// The `meta` record of the chain's proven height (u64 big-endian).
const META_PROVEN_HEIGHT: &[u8] = b"proven_height";

/// Reads of state that trust the light client's headers, not the nodes.
pub struct VerifiedState {
    nodes: Vec<CometRpc>,
    light: LightClient,
}

impl VerifiedState {
    /// Reads through `nodes` (CometBFT RPC, `abci_query /state/...`),
    /// checked against headers `light` verifies.
    pub fn new(nodes: Vec<CometRpc>, light: LightClient) -> VerifiedState {
        VerifiedState { nodes, light }
    }

    /// Any record (`None`: proven absent).
    pub async fn record(
        &mut self,
        space: Space,
        key: &[u8],
    ) -> Result<Verified<Option<Vec<u8>>>, ReadError> {
        let read = self.records(space, &[key.to_vec()]).await?;
        Ok(read.map(|mut values| values.pop().flatten()))
    }

    /// Records of one space (at most [`MAX_PROVEN_KEYS`]), in the order
    /// asked, all of one state height and checked against one header
    /// (`None`: proven absent).
    pub async fn records(
        &mut self,
        space: Space,
        keys: &[Vec<u8>],
    ) -> Result<Verified<Vec<Option<Vec<u8>>>>, ReadError> {
        let describe = || {
            let first = keys.first().map(hex::encode).unwrap_or_default();
            match keys.len() {
                1 => first,
                n => format!("{first} and {} more", n - 1),
            }
        };
        if keys.is_empty() || keys.len() > MAX_PROVEN_KEYS {
            return Err(ReadError::AllNodesFailed {
                space: space.name(),
                key: describe(),
                errors: format!(
                    "{} keys asked for: 1 to {MAX_PROVEN_KEYS} per read",
                    keys.len()
                ),
            });
        }
        self.catch_up().await;
        let mut errors = Vec::new();
        for node in self.nodes.clone() {
            match self.records_from(&node, space, keys).await {
                Ok(mut verified) => {
                    errors.extend(self.light.take_refusals());
                    verified.refused = errors;
                    return Ok(verified);
                }
                Err(e) => {
                    tracing::warn!(node = node.addr(), "verified read refused: {e}");
                    errors.push(e.to_string());
                }
            }
        }
        Err(ReadError::AllNodesFailed {
            space: space.name(),
            key: describe(),
            errors: errors.join("; "),
        })
    }

    async fn records_from(
        &mut self,
        node: &CometRpc,
        space: Space,
        keys: &[Vec<u8>],
    ) -> Result<Verified<Vec<Option<Vec<u8>>>>, ReadError> {
        let name = node.addr().to_string();
        let path = keys.iter().map(hex::encode).collect::<Vec<_>>().join(",");
        let raw = node
            .abci_query(&format!("/state/{}/{path}", space.name()))
            .await
            .map_err(|source| ReadError::Rpc {
                node: name.clone(),
                source: Box::new(source),
            })?;
        let decode_error = |e: prost::DecodeError| ReadError::Decode {
            node: name.clone(),
            what: "state proof",
            detail: e.to_string(),
        };
        // One key is answered with a StateProof, several with StateProofs.
        let proofs = if keys.len() == 1 {
            vec![pb::StateProof::decode(raw.as_slice()).map_err(decode_error)?]
        } else {
            pb::StateProofs::decode(raw.as_slice())
                .map_err(decode_error)?
                .proofs
        };
        if proofs.len() != keys.len() {
            return Err(ReadError::WrongCount {
                node: name,
                asked: keys.len(),
                got: proofs.len(),
            });
        }
        let version = proofs.first().map_or(0, |p| p.version);
        for (proof, key) in proofs.iter().zip(keys) {
            if proof.space != space.name() || &proof.key != key {
                return Err(ReadError::WrongRecord {
                    node: name,
                    space: space.name(),
                    key: hex::encode(key),
                    got_space: proof.space.clone(),
                    got_key: hex::encode(&proof.key),
                });
            }
            if proof.version != version {
                return Err(ReadError::MixedVersions {
                    node: name,
                    first: version,
                    other: proof.version,
                });
            }
        }
        let trusted = self.light.trusted().height();
        if version.saturating_add(1).saturating_add(MAX_STALE_BLOCKS) < trusted {
            return Err(ReadError::Stale {
                node: name,
                version,
                trusted,
                max: MAX_STALE_BLOCKS,
            });
        }
        let header = self.header_after(version).await?;
        let mut values = Vec::with_capacity(proofs.len());
        for proof in proofs {
            state_proof::verify(
                header.app_hash(),
                space,
                &proof.key,
                proof.value.as_deref(),
                &proof.proof,
            )
            .map_err(|source| ReadError::BadProof {
                node: name.clone(),
                space: space.name(),
                key: hex::encode(&proof.key),
                version,
                source: Box::new(source),
            })?;
            values.push(proof.value);
        }
        Ok(Verified {
            value: values,
            version,
            header: header.height(),
            signed_power_percent: header.signed_power_percent(),
            node: name,
            refused: Vec::new(),
        })
    }

    /// Moves the light client to the newest header a node can prove. Without
    /// it, an answer's age would be judged against the last header this
    /// client happened to see, however old, and a node could serve the same
    /// old state forever. Heights are tried from the highest any node
    /// reports; one that no node proves (a liar's) is passed over.
    async fn catch_up(&mut self) {
        let trusted = self.light.trusted().height();
        let mut tips = Vec::new();
        for node in &self.nodes {
            match node.status().await {
                Ok(status) if status.height > trusted => tips.push(status.height),
                Ok(_) => {}
                Err(e) => tracing::debug!(node = node.addr(), "no status: {e}"),
            }
        }
        tips.sort_unstable_by(|a, b| b.cmp(a));
        tips.dedup();
        for tip in tips {
            match self.light.verify_to(tip).await {
                Ok(_) => return,
                Err(e) => tracing::warn!(height = tip, "reported tip does not verify: {e}"),
            }
        }
    }

    /// The verified header `version + 1` (waiting briefly for it to be
    /// committed). A version behind the light client's trusted header is
    /// refused: a light client only moves forward, and a node that serves
    /// old state is not answering the question.
    async fn header_after(&mut self, version: u64) -> Result<crate::light::LightBlock, ReadError> {
        let height = version.saturating_add(1);
        let started = tokio::time::Instant::now();
        loop {
            match self.light.verify_to(height).await {
                Ok(block) => return Ok(block.clone()),
                Err(LightError::AllNodesFailed { .. }) if started.elapsed() < NEXT_HEADER_WAIT => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(source) => {
                    return Err(ReadError::Light {
                        height,
                        version,
                        source: Box::new(source),
                    })
                }
            }
        }
    }

    /// An account (`None`: proven not to exist).
    pub async fn account(
        &mut self,
        address: &Address,
    ) -> Result<Verified<Option<pb::Account>>, ReadError> {
        let read = self.record(Space::Accounts, &address.0).await?;
        let node = read.node.clone();
        decode_in(read, &node, "account")
    }

    /// A rollup record (`None`: proven not registered).
    pub async fn rollup(
        &mut self,
        id: RollupId,
    ) -> Result<Verified<Option<pb::Rollup>>, ReadError> {
        let read = self.record(Space::Rollups, &id.to_be_bytes()).await?;
        let node = read.node.clone();
        decode_in(read, &node, "rollup")
    }

    /// Finality, verified: the ordered height (the state's height), the
    /// chain's proven height, and for `rollup` its last proven height and
    /// state root (`None`: proven not registered). Read from the `meta`
    /// and `proofs` records (docs/state-proofs.md).
    pub async fn finality(
        &mut self,
        rollup: Option<RollupId>,
    ) -> Result<Verified<VerifiedFinality>, ReadError> {
        let proven = self.record(Space::Meta, META_PROVEN_HEIGHT).await?;
        let proven_height = match proven.value.as_deref() {
            None => 0,
            Some(bytes) => decode_u64(bytes, &proven.node, "proven height")?,
        };
        let mut refused = proven.refused.clone();
        let rollup_proving = match rollup {
            None => None,
            Some(id) => {
                let read = self
                    .record(
                        Space::Proofs,
                        &[b"r".as_slice(), &id.to_be_bytes()].concat(),
                    )
                    .await?;
                refused.extend(read.refused.iter().cloned());
                let node = read.node.clone();
                Some(decode_in::<pb::RollupProving>(read, &node, "rollup proving")?.value)
            }
        };
        let ordered_height = proven.version;
        let mut verified = proven.map(|_| VerifiedFinality {
            ordered_height,
            proven_height,
            rollup: rollup_proving.flatten(),
        });
        verified.refused = refused;
        Ok(verified)
    }

    /// The forced-inclusion request for inner transaction `tx_hash`, with
    /// its latest status (`None`: proven never requested).
    pub async fn forced_request(
        &mut self,
        tx_hash: &[u8; 32],
    ) -> Result<Verified<Option<pb::ForcedRequest>>, ReadError> {
        let by_hash = self
            .record(Space::Forced, &[b"h".as_slice(), tx_hash].concat())
            .await?;
        let Some(raw_id) = by_hash.value.clone() else {
            return Ok(by_hash.map(|_| None));
        };
        let id = decode_u64(&raw_id, &by_hash.node, "forced request id")?;
        let read = self
            .record(
                Space::Forced,
                &[b"r".as_slice(), &id.to_be_bytes()].concat(),
            )
            .await?;
        let node = read.node.clone();
        let mut request = decode_in::<pb::ForcedRequest>(read, &node, "forced request")?;
        // Proven records of the same chain agree; a mismatch is a broken
        // state, not a lie any node could tell.
        if request
            .value
            .as_ref()
            .is_some_and(|r| r.tx_hash.as_slice() != tx_hash.as_slice())
        {
            return Err(ReadError::Decode {
                node,
                what: "forced request",
                detail: format!("request {id} is of another transaction"),
            });
        }
        let mut refused = by_hash.refused;
        refused.append(&mut request.refused);
        request.refused = refused;
        Ok(request)
    }

    /// Rollup `rollup_id`'s batch at `height` (all of its items, in order;
    /// none is a proven absence of data): the namespace proof checks against
    /// the batch's NMT root, and that root against the `roots` record proven
    /// under a verified header. A node that serves other items or another
    /// tree is named and the next one asked.
    pub async fn batch(
        &mut self,
        rollup_id: RollupId,
        height: u64,
    ) -> Result<Verified<VerifiedBatch>, ReadError> {
        let root = self.nmt_root(height).await?;
        let committed = root.value.clone().ok_or(ReadError::NoRoot { height })?;
        self.batch_under(rollup_id, height, &committed, root.map(|_| ()))
            .await
    }

    /// The batch checked against `committed`, the height's NMT root
    /// commitment as read (`read`: where and under which header).
    async fn batch_under(
        &mut self,
        rollup_id: RollupId,
        height: u64,
        committed: &[u8],
        read: Verified<()>,
    ) -> Result<Verified<VerifiedBatch>, ReadError> {
        let mut errors = read.refused.clone();
        for node in self.nodes.clone() {
            let name = node.addr().to_string();
            let answer = match node
                .abci_query(&format!("/batch/{rollup_id}/{height}"))
                .await
            {
                Ok(raw) => pb::Batch::decode(raw.as_slice()).map_err(|e| ReadError::Decode {
                    node: name.clone(),
                    what: "batch",
                    detail: e.to_string(),
                }),
                Err(source) => Err(ReadError::Rpc {
                    node: name.clone(),
                    source: Box::new(source),
                }),
            }
            .and_then(|batch| {
                verify_batch_for(&batch, rollup_id, height).map_err(|source| ReadError::BadBatch {
                    node: name.clone(),
                    source: Box::new(source),
                })
            })
            .and_then(|verified| {
                if verified.root.commitment_bytes() == committed {
                    Ok(verified)
                } else {
                    Err(ReadError::RootMismatch {
                        node: name.clone(),
                        height,
                    })
                }
            });
            match answer {
                Ok(batch) => {
                    return Ok(Verified {
                        value: batch,
                        version: read.version,
                        header: read.header,
                        signed_power_percent: read.signed_power_percent,
                        node: name,
                        refused: errors,
                    })
                }
                Err(e) => {
                    tracing::warn!(node = %name, "verified batch refused: {e}");
                    errors.push(e.to_string());
                }
            }
        }
        Err(ReadError::AllNodesFailed {
            space: "batch",
            key: format!("{rollup_id}/{height}"),
            errors: errors.join("; "),
        })
    }

    /// The ORDERED stream, verified: rollup `rollup_id`'s batch at every
    /// height from `from` on, in order, each checked as [`batch`] checks it
    /// (a height without data comes as an empty batch, proven empty), and
    /// handed to `on_batch` until it returns `false`. The NMT roots of up to
    /// [`ROOTS_PER_READ`] heights are read at once, under one header, so a
    /// client behind the tip catches up many heights per block and one at
    /// the tip trails it by about a block (the header that commits a
    /// height's state is the next one). A height not committed yet is
    /// proven absent like any record, so a node cannot hold the stream back
    /// by claiming it: it waits only for the chain.
    ///
    /// [`batch`]: VerifiedState::batch
    pub async fn follow_batches(
        &mut self,
        rollup_id: RollupId,
        from: u64,
        mut on_batch: impl FnMut(Verified<VerifiedBatch>) -> bool,
    ) -> Result<(), ReadError> {
        let mut height = from;
        loop {
            let window: Vec<Vec<u8>> = (0..ROOTS_PER_READ as u64)
                .map(|i| height.saturating_add(i).to_be_bytes().to_vec())
                .collect();
            let roots = self.records(Space::Roots, &window).await?;
            let committed: Vec<Vec<u8>> = roots.value.iter().map_while(Clone::clone).collect();
            if committed.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let read = roots.map(|_| ());
            for root in committed {
                let batch = self
                    .batch_under(rollup_id, height, &root, read.clone())
                    .await?;
                if !on_batch(batch) {
                    return Ok(());
                }
                height = height.saturating_add(1);
            }
        }
    }

    /// The PROVEN stream, verified: as [`follow_batches`], but a height is
    /// handed over only once the verified state says the chain's proven
    /// height has reached it (every span covering it has a validity proof
    /// the validators' state accepted, so the proof is not checked again
    /// here).
    ///
    /// [`follow_batches`]: VerifiedState::follow_batches
    pub async fn follow_proven_batches(
        &mut self,
        rollup_id: RollupId,
        from: u64,
        mut on_batch: impl FnMut(Verified<VerifiedBatch>) -> bool,
    ) -> Result<(), ReadError> {
        let mut next = from;
        loop {
            let proven = loop {
                let proven = self.finality(None).await?.value.proven_height;
                if proven >= next {
                    break proven;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            let mut more = true;
            self.follow_batches(rollup_id, next, |batch| {
                let height = batch.value.height;
                more = on_batch(batch);
                next = height.saturating_add(1);
                more && height < proven
            })
            .await?;
            if !more {
                return Ok(());
            }
        }
    }

    /// Height `height`'s namespaced Merkle root commitment (56 bytes, see
    /// docs/state-proofs.md), the root a batch of that height is checked
    /// against.
    pub async fn nmt_root(&mut self, height: u64) -> Result<Verified<Option<Vec<u8>>>, ReadError> {
        self.record(Space::Roots, &height.to_be_bytes()).await
    }
}

/// A u64 record (big-endian, 8 bytes).
fn decode_u64(bytes: &[u8], node: &str, what: &'static str) -> Result<u64, ReadError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| ReadError::Decode {
            node: node.to_string(),
            what,
            detail: format!("{} bytes, want 8", bytes.len()),
        })
}

fn decode_in<M: Message + Default>(
    read: Verified<Option<Vec<u8>>>,
    node: &str,
    what: &'static str,
) -> Result<Verified<Option<M>>, ReadError> {
    let decoded = read
        .value
        .as_deref()
        .map(M::decode)
        .transpose()
        .map_err(|e| ReadError::Decode {
            node: node.to_string(),
            what,
            detail: e.to_string(),
        })?;
    Ok(read.map(|_| decoded))
}
