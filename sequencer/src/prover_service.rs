//! The gRPC `ProverService`: challenges, the authenticated job stream of one
//! prover, proof submission with a pre-check, and prover records.
//!
//! Only I/O lives here; the rules come from `seqnet-abci` (which job is ready
//! for whom, [`Reader::ready_jobs`]; every check of a `SubmitProof`,
//! [`Reader::check_proof`]) and `seqnet-proto` (auth sign bytes, Groth16).
//!
//! - **Challenges** are 32 random bytes from the OS, single use, valid for
//!   `ttl`; at most `capacity` are outstanding (expired ones are dropped
//!   first, then `RESOURCE_EXHAUSTED`), so memory stays bounded whatever
//!   clients do. A challenge is consumed by any `Jobs` call that names it,
//!   even one whose signature then fails.
//! - **Jobs** sends, after each committed block, every job assigned to the
//!   prover with a cursor above the last one sent (the client's
//!   `resume_after` on opening): a span's job goes out as soon as the span
//!   closes, with the rollup's proven root and its earlier unproven spans,
//!   whatever their state. Cursors come from committed state, so the same
//!   job has the same cursor on every node, and a prover resuming with its
//!   last cursor gets each delivery exactly once.
//! - **SubmitProof** decodes the transaction (size, canonical encoding,
//!   signature, chain id), requires only `SubmitProof` actions, runs the
//!   app's proof checks against committed state (the verifier shares the
//!   app's cache of prepared keys and verified proofs, so CheckTx does not
//!   pay for the pairings again), then broadcasts through CometBFT.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use seqnet_abci::ExecError;
use seqnet_abci::{Reader, ReadyJob, SeqnetApp};
use seqnet_proto::pb::prover_service_server::ProverService;
use seqnet_proto::prover::{verify_auth, AuthError, CHALLENGE_LEN};
use seqnet_proto::{pb, Action, Address, Code};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::grpc::{broadcast, internal, rejection};
use crate::metrics::Metrics;
use seqnet_rollup_client::cometbft::CometRpc;

/// How long a challenge stays valid.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(30);
/// Most challenges outstanding at once.
pub const MAX_CHALLENGES: usize = 4_096;
/// Jobs buffered per stream before the sender waits for the client.
const STREAM_BUFFER: usize = 64;

/// Why a challenge is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("challenge {0} is unknown to this node or was already used")]
    Unknown(String),
    #[error("challenge {challenge} expired {ago_ms} ms ago")]
    Expired { challenge: String, ago_ms: u128 },
    #[error("{0} challenges are outstanding; try again in a few seconds")]
    Full(usize),
}

/// Outstanding challenges and their expiry.
pub struct Challenges {
    ttl: Duration,
    capacity: usize,
    issued: Mutex<BTreeMap<[u8; CHALLENGE_LEN], Instant>>,
}

impl Challenges {
    pub fn new(ttl: Duration, capacity: usize) -> Challenges {
        Challenges {
            ttl,
            capacity,
            issued: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<[u8; CHALLENGE_LEN], Instant>> {
        // The map stays consistent whatever a panicking holder did.
        self.issued.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh random challenge and its expiry.
    pub fn issue(&self, now: Instant) -> Result<([u8; CHALLENGE_LEN], Instant), ChallengeError> {
        let mut issued = self.lock();
        if issued.len() >= self.capacity {
            issued.retain(|_, expiry| *expiry > now);
        }
        if issued.len() >= self.capacity {
            return Err(ChallengeError::Full(issued.len()));
        }
        let mut challenge = [0u8; CHALLENGE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut challenge);
        let expiry = now + self.ttl;
        issued.insert(challenge, expiry);
        Ok((challenge, expiry))
    }

    /// Consumes `challenge`: accepted once, before its expiry.
    pub fn take(&self, challenge: &[u8], now: Instant) -> Result<(), ChallengeError> {
        let unknown = || ChallengeError::Unknown(hex::encode(challenge));
        let key = <[u8; CHALLENGE_LEN]>::try_from(challenge).map_err(|_| unknown())?;
        let expiry = self.lock().remove(&key).ok_or_else(unknown)?;
        if expiry <= now {
            return Err(ChallengeError::Expired {
                challenge: hex::encode(challenge),
                ago_ms: now.duration_since(expiry).as_millis(),
            });
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn outstanding(&self) -> usize {
        self.lock().len()
    }
}

pub struct ProverServer {
    pub app: SeqnetApp,
    pub reader: Reader,
    pub rpc: CometRpc,
    pub metrics: Arc<Metrics>,
    pub committed: watch::Receiver<u64>,
    pub challenges: Arc<Challenges>,
}

type Cursor = (u64, u64, u64);

fn cursor_of(raw: Option<pb::JobCursor>) -> Option<Cursor> {
    raw.map(|c| (c.ready_height, c.rollup_id, c.from_height))
}

/// The wire job for one ready job, with its span's batches and their items.
fn job_message(reader: &Reader, ready: ReadyJob) -> Result<pb::Job, Status> {
    let (ready_height, rollup_id, from_height) = ready.cursor();
    let job = ready.job;
    let mut batches = Vec::with_capacity(job.batches.len());
    for batch in &job.batches {
        batches.push(pb::JobBatch {
            height: batch.height,
            batch_commitment: batch.commitment.clone(),
            items: reader
                .batch_items(rollup_id, batch.height)
                .map_err(internal)?,
        });
    }
    Ok(pb::Job {
        cursor: Some(pb::JobCursor {
            ready_height,
            rollup_id,
            from_height,
        }),
        rollup_id,
        from_height,
        to_height: job.to_height,
        span_commitment: job.span_commitment,
        proven_root: ready.proven_root,
        proven_height: ready.proven_height,
        earlier: ready.earlier,
        deadline: job.deadline,
        rank: job.assigned_index,
        reassignments: job.reassignments,
        batches,
        bounty: job.bounty,
        prover: job.assigned,
    })
}

/// gRPC status of a refused `SubmitProof` action: what is wrong with the
/// request itself is INVALID_ARGUMENT, what committed state refuses is
/// FAILED_PRECONDITION; both carry the seqnet code.
fn proof_status(index: usize, error: ExecError) -> Status {
    let code = error.code();
    let message = format!("{}: action {index}: {error}", code.name());
    match code {
        Code::Internal => internal(message),
        Code::ProofMalformed | Code::Malformed | Code::InvalidAction => {
            rejection(Status::invalid_argument, code, message)
        }
        _ => rejection(Status::failed_precondition, code, message),
    }
}

fn auth_status(error: AuthError) -> Status {
    match error {
        AuthError::PublicKeyLength(_)
        | AuthError::ChallengeLength(_)
        | AuthError::SignatureLength(_) => Status::invalid_argument(error.to_string()),
        AuthError::PublicKeyInvalid(_) | AuthError::BadSignature(_) => {
            Status::unauthenticated(error.to_string())
        }
    }
}

#[tonic::async_trait]
impl ProverService for ProverServer {
    async fn get_challenge(
        &self,
        _request: Request<pb::GetChallengeRequest>,
    ) -> Result<Response<pb::Challenge>, Status> {
        let _timer = self.metrics.grpc_timer("GetChallenge");
        let now = Instant::now();
        let (challenge, expiry) = self
            .challenges
            .issue(now)
            .map_err(|e| Status::resource_exhausted(e.to_string()))?;
        let expires_at = SystemTime::now() + expiry.saturating_duration_since(now);
        let expires_at_unix_ms = expires_at
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Ok(Response::new(pb::Challenge {
            challenge: challenge.to_vec(),
            expires_at_unix_ms,
            chain_id: self.reader.chain_id().map_err(internal)?,
        }))
    }

    type JobsStream = ReceiverStream<Result<pb::Job, Status>>;

    async fn jobs(
        &self,
        request: Request<pb::JobsRequest>,
    ) -> Result<Response<Self::JobsStream>, Status> {
        let req = request.into_inner();
        if req.challenge.len() != CHALLENGE_LEN {
            return Err(auth_status(AuthError::ChallengeLength(req.challenge.len())));
        }
        self.challenges
            .take(&req.challenge, Instant::now())
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        let chain_id = self.reader.chain_id().map_err(internal)?;
        let key = verify_auth(&chain_id, &req.challenge, &req.public_key, &req.signature)
            .map_err(auth_status)?;
        let prover = Address::from(&key);
        let mut after = cursor_of(req.resume_after);
        tracing::info!(%prover, ?after, "prover job stream opened");

        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let reader = self.reader.clone();
        let metrics = self.metrics.clone();
        let mut committed = self.committed.clone();
        let span = tracing::info_span!("prover_jobs", %prover);
        let follow = async move {
            metrics.prover_streams.inc();
            loop {
                // Marks the current height seen before reading, so a commit
                // during the read wakes the next round.
                committed.borrow_and_update();
                let ready = match reader.ready_jobs(&prover) {
                    Ok((_, ready)) => ready,
                    Err(e) => {
                        let _ = sender.send(Err(internal(e))).await;
                        break;
                    }
                };
                for job in ready {
                    if after.is_some_and(|a| job.cursor() <= a) {
                        continue;
                    }
                    let cursor = job.cursor();
                    let message = job_message(&reader, job);
                    let failed = message.is_err();
                    if sender.send(message).await.is_err() || failed {
                        metrics.prover_streams.dec();
                        return;
                    }
                    tracing::debug!(?cursor, "job delivered");
                    metrics.jobs_delivered.inc();
                    after = Some(cursor);
                }
                tokio::select! {
                    changed = committed.changed() => if changed.is_err() { break },
                    _ = sender.closed() => break,
                }
            }
            metrics.prover_streams.dec();
            tracing::info!("prover job stream closed");
        };
        tokio::spawn(follow.instrument(span));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn submit_proof(
        &self,
        request: Request<pb::SubmitProofRequest>,
    ) -> Result<Response<pb::SubmitProofResponse>, Status> {
        let _timer = self.metrics.grpc_timer("SubmitProof");
        let bytes = request.into_inner().tx;
        let outcome = self.check_and_broadcast(&bytes).await;
        let label = match &outcome {
            Ok(_) => "ok".to_string(),
            Err(status) => status
                .metadata()
                .get(crate::grpc::CODE_METADATA)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .and_then(Code::from_u32)
                .map(|c| c.name().to_string())
                .unwrap_or_else(|| format!("{:?}", status.code()).to_lowercase()),
        };
        self.metrics
            .proof_submissions
            .with_label_values(&[&label])
            .inc();
        outcome.map(Response::new)
    }

    async fn get_prover(
        &self,
        request: Request<pb::GetProverRequest>,
    ) -> Result<Response<pb::ProverInfo>, Status> {
        let _timer = self.metrics.grpc_timer("GetProver");
        let raw = request.into_inner().address;
        let address = Address::from_slice(&raw).ok_or_else(|| {
            Status::invalid_argument(format!("address has {} bytes, want 32", raw.len()))
        })?;
        loop {
            let as_of_height = self.reader.last_height().map_err(internal)?;
            let prover = self
                .reader
                .prover(&address)
                .map_err(internal)?
                .ok_or_else(|| Status::not_found(format!("{address} has no prover record")))?;
            let set = self.reader.prover_set().map_err(internal)?;
            let assigned_jobs = self
                .reader
                .open_jobs()
                .map_err(internal)?
                .into_iter()
                .filter(|j| j.assigned == address.0)
                .collect();
            if self.reader.last_height().map_err(internal)? != as_of_height {
                continue; // a commit landed between the reads
            }
            return Ok(Response::new(pb::ProverInfo {
                prover: Some(prover),
                active: set.active.iter().any(|p| p.address == address.0),
                epoch: set.epoch,
                assigned_jobs,
                as_of_height,
            }));
        }
    }
}

impl ProverServer {
    async fn check_and_broadcast(&self, bytes: &[u8]) -> Result<pb::SubmitProofResponse, Status> {
        let tx = self
            .app
            .check_stateless(bytes)
            .map_err(|e| rejection(Status::invalid_argument, e.code(), e.to_string()))?;
        let hash = tx.hash();
        let span =
            tracing::debug_span!("submit_proof", tx = %hex::encode(hash), prover = %tx.signer);
        let guard = span.enter();
        if tx.body.actions.is_empty()
            || !tx
                .body
                .actions
                .iter()
                .all(|a| matches!(a, Action::SubmitProof { .. }))
        {
            return Err(rejection(
                Status::invalid_argument,
                Code::InvalidAction,
                "SubmitProof takes a transaction whose actions are all SubmitProof; use \
                 RollupService.SubmitTransaction for others"
                    .into(),
            ));
        }
        let mut accepted = Vec::new();
        for (index, action) in tx.body.actions.iter().enumerate() {
            let Action::SubmitProof {
                rollup_id,
                from_height,
                proof,
                prev_state_root,
                new_state_root,
            } = action
            else {
                continue;
            };
            let started = Instant::now();
            let result = self.reader.check_proof(
                tx.signer,
                *rollup_id,
                *from_height,
                proof,
                prev_state_root,
                new_state_root,
                &accepted,
            );
            self.metrics
                .proof_verification
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(proof) => accepted.push(proof),
                Err(error) => {
                    tracing::debug!(%error, rollup_id, from_height, "proof refused before broadcast");
                    return Err(proof_status(index, error));
                }
            }
        }
        drop(guard);
        broadcast(&self.rpc, &self.metrics, &hash, bytes)
            .instrument(span)
            .await?;
        Ok(pb::SubmitProofResponse {
            tx_hash: hash.to_vec(),
            code: 0,
            log: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    //! Real gRPC servers on ephemeral loopback ports over an app on its own
    //! RocksDB; blocks are driven through the ABCI methods. The only stand-in
    //! is CometBFT's `broadcast_tx_sync`: a loopback HTTP server that runs
    //! the app's CheckTx and keeps the transaction for the test's next block.

    use std::collections::BTreeSet;
    use std::net::SocketAddr;
    use std::sync::OnceLock;

    use ark_bls12_381::Bls12_381;
    use ark_groth16::ProvingKey;
    use base64::Engine;
    use ed25519_dalek::SigningKey;
    use seqnet_abci::Store;
    use seqnet_proto::pb::prover_service_client::ProverServiceClient;
    use seqnet_proto::pb::prover_service_server::ProverServiceServer;
    use seqnet_proto::pb::rollup_service_client::RollupServiceClient;
    use seqnet_proto::pb::rollup_service_server::RollupServiceServer;
    use seqnet_proto::prover::{auth_sign_bytes, sign_auth};
    use seqnet_proto::TransactionBody;
    use tendermint_abci::Application;
    use tendermint_proto::v0_38::{abci, crypto};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tonic::transport::Channel;
    use tonic::Streaming;

    use super::*;
    use crate::grpc::{RollupServer, CODE_METADATA};
    use crate::metrics::NodeObserver;

    const CHAIN: &str = "seqnet-prover-service-test";
    const K: u32 = 8;
    const ROLLUP: u64 = 1;
    const WINDOW: u64 = 2;
    const USER: u8 = 1;
    const P1: u8 = 21;
    const P2: u8 = 22;
    const QUIET: Duration = Duration::from_millis(300);

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn address(seed: u8) -> Address {
        Address::from(&key(seed).verifying_key())
    }

    fn keys() -> &'static (ProvingKey<Bls12_381>, Vec<u8>) {
        static KEYS: OnceLock<(ProvingKey<Bls12_381>, Vec<u8>)> = OnceLock::new();
        KEYS.get_or_init(|| {
            let (pk, vk) = seqnet_prover::setup(K, 77).expect("setup");
            (pk, seqnet_prover::encode_verifying_key(&vk).expect("vk"))
        })
    }

    struct TestNode {
        app: SeqnetApp,
        height: i64,
        nonces: BTreeMap<u8, u64>,
        /// Transactions broadcast through the stand-in, for the next block.
        broadcast: Arc<Mutex<Vec<Vec<u8>>>>,
        prover: ProverServiceClient<Channel>,
        rollup: RollupServiceClient<Channel>,
        metrics: Arc<Metrics>,
        challenges: Arc<Challenges>,
        _dir: tempfile::TempDir,
    }

    /// Answers `broadcast_tx_sync` with the app's CheckTx verdict.
    async fn serve_rpc(
        listener: tokio::net::TcpListener,
        app: SeqnetApp,
        kept: Arc<Mutex<Vec<Vec<u8>>>>,
    ) {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut raw = Vec::new();
            let mut buf = [0u8; 8192];
            let body = loop {
                let Ok(n) = socket.read(&mut buf).await else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                raw.extend_from_slice(&buf[..n]);
                let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if raw.len() >= split + 4 + length {
                    break Some(raw[split + 4..split + 4 + length].to_vec());
                }
            };
            let Some(body) = body else { continue };
            let request: serde_json::Value = serde_json::from_slice(&body).expect("json");
            let tx = base64::engine::general_purpose::STANDARD
                .decode(request["params"]["tx"].as_str().expect("tx"))
                .expect("base64");
            let verdict = app.check_tx(abci::RequestCheckTx {
                tx: tx.clone().into(),
                r#type: abci::CheckTxType::New as i32,
            });
            if verdict.code == 0 {
                kept.lock().expect("lock").push(tx);
            }
            let answer = serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {
                "code": verdict.code, "log": verdict.log, "hash": ""}})
            .to_string();
            let response = format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    }

    /// Rollup 1 proven with the reference circuit (`window`, one-block
    /// spans), epochs of one block, `provers` registered in block 1.
    async fn start(ttl: Duration, provers: &[u8], window: u64) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let (committed_tx, committed) = watch::channel(0u64);
        let observer = Arc::new(NodeObserver {
            metrics: (*metrics).clone(),
            committed: committed_tx,
        });
        let app = SeqnetApp::new(store, observer).expect("app");
        let accounts: Vec<serde_json::Value> = [USER, P1, P2]
            .iter()
            .map(|s| serde_json::json!({"address": address(*s).to_string(), "balance": 1_000_000u64}))
            .collect();
        let genesis = serde_json::json!({
            "params": {"epoch_length": 1},
            "accounts": accounts,
            "rollups": [
                {"id": ROLLUP, "name": "proven", "owner": address(USER).to_string(),
                 "proof_window": window, "inclusion_window": 5,
                 "verifying_key": hex::encode(&keys().1), "span_blocks": 1},
            ]
        });
        app.init_chain(abci::RequestInitChain {
            chain_id: CHAIN.into(),
            app_state_bytes: genesis.to_string().into_bytes().into(),
            initial_height: 1,
            validators: vec![abci::ValidatorUpdate {
                pub_key: Some(crypto::PublicKey {
                    sum: Some(crypto::public_key::Sum::Ed25519(
                        key(11).verifying_key().to_bytes().to_vec(),
                    )),
                }),
                power: 10,
            }],
            ..Default::default()
        });
        let broadcast = Arc::new(Mutex::new(Vec::new()));
        let rpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind rpc");
        let rpc_addr = rpc_listener.local_addr().expect("addr");
        tokio::spawn(serve_rpc(rpc_listener, app.clone(), broadcast.clone()));
        let rpc = CometRpc::new(rpc_addr.to_string());
        let challenges = Arc::new(Challenges::new(ttl, 64));
        let reader = app.reader();
        let provers_server = ProverServer {
            app: app.clone(),
            reader: reader.clone(),
            rpc: rpc.clone(),
            metrics: metrics.clone(),
            committed: committed.clone(),
            challenges: challenges.clone(),
        };
        let rollups_server = RollupServer {
            app: app.clone(),
            reader,
            rpc,
            metrics: metrics.clone(),
            committed,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind grpc");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ProverServiceServer::new(provers_server))
                .add_service(RollupServiceServer::new(rollups_server))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let endpoint = format!("http://{addr}");
        let mut node = TestNode {
            app,
            height: 0,
            nonces: BTreeMap::new(),
            broadcast,
            prover: ProverServiceClient::connect(endpoint.clone())
                .await
                .expect("connect"),
            rollup: RollupServiceClient::connect(endpoint)
                .await
                .expect("connect"),
            metrics,
            challenges,
            _dir: dir,
        };
        let registrations: Vec<Vec<u8>> = provers
            .iter()
            .map(|p| node.tx(*p, vec![Action::RegisterProver { stake: 10_000 }]))
            .collect();
        node.block(registrations);
        node
    }

    impl TestNode {
        fn tx(&mut self, seed: u8, actions: Vec<Action>) -> Vec<u8> {
            let nonce = self.nonces.entry(seed).or_insert(0);
            let tx = TransactionBody {
                chain_id: CHAIN.into(),
                nonce: *nonce,
                fee: 1_000,
                actions,
            }
            .sign(&key(seed))
            .to_bytes()
            .to_vec();
            *nonce += 1;
            tx
        }

        /// One block with `txs` and whatever was broadcast since the last.
        fn block(&mut self, mut txs: Vec<Vec<u8>>) {
            txs.extend(std::mem::take(&mut *self.broadcast.lock().expect("lock")));
            self.height += 1;
            let response = self.app.finalize_block(abci::RequestFinalizeBlock {
                txs: txs.into_iter().map(Into::into).collect(),
                height: self.height,
                ..Default::default()
            });
            for (i, r) in response.tx_results.iter().enumerate() {
                assert_eq!(r.code, 0, "block {} tx {i}: {}", self.height, r.log);
            }
            self.app.commit();
        }

        fn data_block(&mut self, payload: &str) {
            let tx = self.tx(
                USER,
                vec![Action::RollupData {
                    rollup_id: ROLLUP,
                    data: payload.as_bytes().to_vec(),
                }],
            );
            self.block(vec![tx]);
        }

        /// The job whose span starts at `from`.
        fn job(&self, from: u64) -> seqnet_proto::pb::ProofJob {
            self.app
                .reader()
                .proof_job(ROLLUP, from)
                .expect("read")
                .expect("job")
        }

        fn assigned(&self, from: u64) -> u8 {
            let job = self.job(from);
            [P1, P2]
                .into_iter()
                .find(|p| job.assigned == address(*p).0)
                .expect("assigned to a test prover")
        }

        fn statement(&self, from: u64, prev_root: [u8; 32]) -> seqnet_prover::JobStatement {
            let job = self.job(from);
            seqnet_prover::JobStatement {
                rollup_id: ROLLUP,
                from_height: job.from_height,
                to_height: job.to_height,
                commitment: job.span_commitment.as_slice().try_into().expect("32 bytes"),
                prev_root,
            }
        }

        /// A real proof of job `from` from `prev_root`.
        fn proof(&self, from: u64, prev_root: [u8; 32]) -> (Vec<u8>, [u8; 32]) {
            seqnet_prover::prove(&keys().0, K, &self.statement(from, prev_root)).expect("prove")
        }

        /// The state before job `from`, as a prover replays it: the proven
        /// root through the rollup's earlier unproven spans.
        fn replayed_root(&self, from: u64) -> [u8; 32] {
            let open = self.app.reader().rollup_jobs(ROLLUP).expect("jobs").open;
            let mut root = self.proven_root();
            for job in open.iter().filter(|j| j.from_height < from) {
                root = seqnet_prover::next_root(&self.statement(job.from_height, root))
                    .expect("next root");
            }
            root
        }

        fn proven_root(&self) -> [u8; 32] {
            let proving = self
                .app
                .reader()
                .rollup_jobs(ROLLUP)
                .expect("jobs")
                .proving
                .expect("proving");
            let mut root = proving.proven_root;
            root.resize(32, 0);
            root.try_into().expect("32")
        }

        async fn submit(
            &mut self,
            seed: u8,
            from: u64,
            proof: Vec<u8>,
            prev: [u8; 32],
            root: [u8; 32],
        ) -> Result<pb::SubmitProofResponse, Status> {
            let tx = self.tx(
                seed,
                vec![Action::SubmitProof {
                    rollup_id: ROLLUP,
                    from_height: from,
                    proof,
                    prev_state_root: prev,
                    new_state_root: root,
                }],
            );
            let answer = self
                .prover
                .submit_proof(pb::SubmitProofRequest { tx })
                .await
                .map(|r| r.into_inner());
            if answer.is_err() {
                // Refused before broadcast: the nonce was not used.
                *self.nonces.entry(seed).or_insert(1) -= 1;
            }
            answer
        }

        /// Proves job `from` with its assigned prover over gRPC, from the
        /// replayed root; the proof lands in the next block.
        async fn prove_next(&mut self, from: u64) -> [u8; 32] {
            let prover = self.assigned(from);
            let prev = self.replayed_root(from);
            let (proof, root) = self.proof(from, prev);
            self.submit(prover, from, proof, prev, root)
                .await
                .expect("accepted");
            root
        }

        async fn open(
            &mut self,
            seed: u8,
            after: Option<pb::JobCursor>,
        ) -> Result<Streaming<pb::Job>, Status> {
            let challenge = self
                .prover
                .get_challenge(pb::GetChallengeRequest {})
                .await
                .expect("challenge")
                .into_inner();
            assert_eq!(challenge.chain_id, CHAIN);
            let signature = sign_auth(&key(seed), CHAIN, &challenge.challenge);
            self.prover
                .jobs(pb::JobsRequest {
                    public_key: address(seed).0.to_vec(),
                    challenge: challenge.challenge,
                    signature: signature.to_vec(),
                    resume_after: after,
                })
                .await
                .map(|r| r.into_inner())
        }
    }

    fn code_of(status: &Status) -> Option<Code> {
        status
            .metadata()
            .get(CODE_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .and_then(Code::from_u32)
    }

    async fn next_job(stream: &mut Streaming<pb::Job>) -> pb::Job {
        tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a job within 10 s")
            .expect("stream ok")
            .expect("stream open")
    }

    async fn assert_quiet(stream: &mut Streaming<pb::Job>) {
        if let Ok(message) = tokio::time::timeout(QUIET, stream.message()).await {
            panic!("unexpected delivery: {message:?}");
        }
    }

    async fn next_batch(stream: &mut Streaming<pb::Batch>) -> pb::Batch {
        tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a batch within 10 s")
            .expect("stream ok")
            .expect("stream open")
    }

    fn cursor(job: &pb::Job) -> (u64, u64, u64) {
        let c = job.cursor.expect("cursor");
        (c.ready_height, c.rollup_id, c.from_height)
    }

    #[test]
    fn challenges_are_single_use_expire_and_stay_bounded() {
        let challenges = Challenges::new(Duration::from_secs(10), 2);
        let now = Instant::now();
        let (a, _) = challenges.issue(now).expect("a");
        let (b, _) = challenges.issue(now).expect("b");
        assert_ne!(a, b);
        assert!(matches!(
            challenges.issue(now),
            Err(ChallengeError::Full(2))
        ));
        assert_eq!(challenges.take(&a, now), Ok(()));
        assert!(matches!(
            challenges.take(&a, now),
            Err(ChallengeError::Unknown(_))
        ));
        assert!(matches!(
            challenges.take(&[0; 32], now),
            Err(ChallengeError::Unknown(_))
        ));
        let later = now + Duration::from_secs(11);
        assert!(matches!(
            challenges.take(&b, later),
            Err(ChallengeError::Expired { .. })
        ));
        // Expired ones make room.
        let (_c, _) = challenges.issue(now).expect("c");
        let (_d, _) = challenges.issue(now).expect("d");
        assert!(challenges.issue(later).is_ok());
        assert_eq!(challenges.outstanding(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_stream_authentication() {
        let mut node = start(Duration::from_millis(300), &[P1], WINDOW).await;
        let pk = address(P1).0.to_vec();
        let request = |challenge: Vec<u8>, signature: Vec<u8>| pb::JobsRequest {
            public_key: pk.clone(),
            challenge,
            signature,
            resume_after: None,
        };
        // A challenge this node never issued.
        let forged = [5u8; 32];
        let sig = sign_auth(&key(P1), CHAIN, &forged).to_vec();
        let status = node
            .prover
            .jobs(request(forged.to_vec(), sig))
            .await
            .expect_err("unknown challenge");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");

        // Signed by another key: refused, and the challenge is used up.
        let challenge = node
            .prover
            .get_challenge(pb::GetChallengeRequest {})
            .await
            .expect("challenge")
            .into_inner();
        assert!(challenge.expires_at_unix_ms > 0);
        let wrong = sign_auth(&key(P2), CHAIN, &challenge.challenge).to_vec();
        let status = node
            .prover
            .jobs(request(challenge.challenge.clone(), wrong))
            .await
            .expect_err("bad signature");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains("signature"), "{status:?}");
        let good = sign_auth(&key(P1), CHAIN, &challenge.challenge).to_vec();
        let status = node
            .prover
            .jobs(request(challenge.challenge.clone(), good))
            .await
            .expect_err("reused challenge");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains("already used"), "{status:?}");

        // Signed for another chain.
        let challenge = node
            .prover
            .get_challenge(pb::GetChallengeRequest {})
            .await
            .expect("challenge")
            .into_inner();
        let other_chain = sign_auth(&key(P1), "other-chain", &challenge.challenge).to_vec();
        let status = node
            .prover
            .jobs(request(challenge.challenge, other_chain))
            .await
            .expect_err("other chain");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);

        // Malformed lengths.
        let challenge = node
            .prover
            .get_challenge(pb::GetChallengeRequest {})
            .await
            .expect("challenge")
            .into_inner();
        let status = node
            .prover
            .jobs(request(challenge.challenge, vec![1; 63]))
            .await
            .expect_err("short signature");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);

        // Expired.
        let challenge = node
            .prover
            .get_challenge(pb::GetChallengeRequest {})
            .await
            .expect("challenge")
            .into_inner();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let good = sign_auth(&key(P1), CHAIN, &challenge.challenge).to_vec();
        let status = node
            .prover
            .jobs(request(challenge.challenge, good))
            .await
            .expect_err("expired");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(status.message().contains("expired"), "{status:?}");

        // The sign bytes are the documented ones, and a fresh challenge works.
        let challenge = node
            .prover
            .get_challenge(pb::GetChallengeRequest {})
            .await
            .expect("challenge")
            .into_inner();
        let bytes = auth_sign_bytes(CHAIN, &challenge.challenge, &address(P1).0);
        let signature = ed25519_dalek::Signer::sign(&key(P1), &bytes);
        node.prover
            .jobs(request(challenge.challenge, signature.to_bytes().to_vec()))
            .await
            .expect("authenticated");
        assert!(node.challenges.outstanding() <= 1);
        assert!(node.open(P1, None).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_stream_resumes_without_loss_or_duplication() {
        // A long window: no deadline passes here.
        let mut node = start(CHALLENGE_TTL, &[P1], 50).await;
        let mut seen: BTreeSet<(u64, u64, u64)> = BTreeSet::new();
        let mut record = |job: &pb::Job| assert!(seen.insert(cursor(job)), "duplicate {job:?}");
        // Blocks 2, 3, 4 open jobs 2, 3, 4, all assigned to P1 at once and
        // all delivered at once: nothing waits for an earlier span.
        node.data_block("batch 2");
        node.data_block("batch 3");
        node.data_block("batch 4");
        let mut stream = node.open(P1, None).await.expect("open");
        let job2 = next_job(&mut stream).await;
        record(&job2);
        assert_eq!((job2.from_height, job2.to_height), (2, 2));
        assert_eq!((job2.rank, job2.reassignments), (0, 0));
        assert_eq!(cursor(&job2), (2, ROLLUP, 2));
        assert_eq!(job2.proven_root, vec![0; 32]);
        assert!(job2.earlier.is_empty());
        assert_eq!(job2.batches.len(), 1);
        assert_eq!(job2.batches[0].items[0].data, b"batch 2");
        assert_eq!(job2.span_commitment, node.job(2).span_commitment);
        assert_eq!(job2.deadline, 2 + 50);
        assert_eq!(job2.prover, address(P1).0.to_vec());
        let job3 = next_job(&mut stream).await;
        record(&job3);
        assert_eq!(cursor(&job3), (3, ROLLUP, 3));
        // One window per job the prover already holds.
        assert_eq!(job3.deadline, 3 + 2 * 50);
        let earlier: Vec<u64> = job3.earlier.iter().map(|e| e.from_height).collect();
        assert_eq!(earlier, vec![2]);
        let job4 = next_job(&mut stream).await;
        record(&job4);
        assert_eq!(cursor(&job4), (4, ROLLUP, 4));
        assert_eq!(job4.earlier.len(), 2);
        assert_quiet(&mut stream).await;
        drop(stream);

        // While disconnected: job 4 is proven first (block 5, pending), and
        // block 6 opens job 6.
        let root4 = node.prove_next(4).await;
        node.block(vec![]);
        node.data_block("batch 6");
        // Resuming after job 2 gives job 3 again (never confirmed), not job
        // 4 (it has a proof now), then job 6, which names the pending
        // transition of span 4 among its earlier spans.
        let mut stream = node
            .open(P1, job2.cursor)
            .await
            .expect("resume after job 2");
        assert_eq!(next_job(&mut stream).await, job3);
        let job6 = next_job(&mut stream).await;
        record(&job6);
        assert_eq!(cursor(&job6), (6, ROLLUP, 6));
        let span4 = job6
            .earlier
            .iter()
            .find(|e| e.from_height == 4)
            .expect("span 4");
        assert_eq!(span4.claimed_new_root, root4.to_vec());
        assert!(job6
            .earlier
            .iter()
            .all(|e| e.from_height == 4 || e.claimed_new_root.is_empty()));
        assert_quiet(&mut stream).await;
        drop(stream);

        // Resuming after job 6 gives nothing new; proving 2 and 3 links
        // 2, 3 and 4 without a delivery.
        let mut stream = node.open(P1, job6.cursor).await.expect("resume");
        assert_quiet(&mut stream).await;
        node.prove_next(2).await;
        node.block(vec![]);
        node.prove_next(3).await;
        node.block(vec![]);
        assert_eq!(node.proven_root(), root4);
        assert_quiet(&mut stream).await;
        // A stream without a cursor starts with what is open now.
        let mut fresh = node.open(P1, None).await.expect("fresh");
        assert_eq!(next_job(&mut fresh).await.from_height, 6);
        assert_eq!(seen.len(), 4);
        let text = String::from_utf8(node.metrics.render()).expect("utf8");
        assert!(
            text.contains("seqnet_prover_jobs_delivered_total"),
            "{text}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn back_up_receives_a_reassigned_job() {
        let mut node = start(CHALLENGE_TTL, &[P1, P2], WINDOW).await;
        node.data_block("batch 2");
        let primary = node.assigned(2);
        let backup = if primary == P1 { P2 } else { P1 };
        let mut stream = node.open(backup, None).await.expect("open");
        assert_quiet(&mut stream).await;
        // Nobody proves: the deadline (2 + WINDOW) passes at the end of 4.
        node.block(vec![]);
        node.block(vec![]);
        let job = next_job(&mut stream).await;
        assert_eq!((job.from_height, job.reassignments), (2, 1));
        assert!(job.rank > 0, "a back-up's rank: {job:?}");
        assert_eq!(cursor(&job), (4, ROLLUP, 2));
        assert_eq!(job.deadline, 4 + WINDOW);
        assert_eq!(job.prover, address(backup).0.to_vec());
        let text = String::from_utf8(node.metrics.render()).expect("utf8");
        assert!(
            text.contains("seqnet_proof_jobs_reassigned_total 1"),
            "{text}"
        );
        assert!(text.contains("seqnet_proof_jobs_late 1"), "{text}");
        // GetProver shows the job and the missed deadline.
        let info = node
            .prover
            .get_prover(pb::GetProverRequest {
                address: address(backup).0.to_vec(),
            })
            .await
            .expect("prover")
            .into_inner();
        assert!(info.active);
        assert_eq!(info.assigned_jobs.len(), 1);
        let missed = node
            .prover
            .get_prover(pb::GetProverRequest {
                address: address(primary).0.to_vec(),
            })
            .await
            .expect("prover")
            .into_inner();
        assert_eq!(missed.prover.expect("record").misses, 1);
        let status = node
            .prover
            .get_prover(pb::GetProverRequest {
                address: address(USER).0.to_vec(),
            })
            .await
            .expect_err("not a prover");
        assert_eq!(status.code(), tonic::Code::NotFound);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn submit_proof_refusals_are_precise() {
        let mut node = start(CHALLENGE_TTL, &[P1, P2], WINDOW).await;
        node.data_block("batch 2");
        let assigned = node.assigned(2);
        let other = if assigned == P1 { P2 } else { P1 };
        let (proof, root) = node.proof(2, [0; 32]);

        let refused = |status: Status, grpc: tonic::Code, code: Code| {
            assert_eq!(status.code(), grpc, "{status:?}");
            assert_eq!(code_of(&status), Some(code), "{status:?}");
        };
        // Garbage bytes.
        let status = node
            .submit(assigned, 2, vec![7; 192], [0; 32], root)
            .await
            .expect_err("garbage");
        refused(status, tonic::Code::InvalidArgument, Code::ProofMalformed);
        // Proven from another previous root: job 2 is the rollup's next to
        // link, so that transition could never link.
        let mut prev = [0u8; 32];
        prev[31] = 1;
        let (wrong_proof, wrong_root) = node.proof(2, prev);
        let status = node
            .submit(assigned, 2, wrong_proof, prev, wrong_root)
            .await
            .expect_err("wrong prev root");
        refused(status, tonic::Code::FailedPrecondition, Code::RootMismatch);
        // Wrong public input: a new root the proof does not prove.
        let status = node
            .submit(assigned, 2, proof.clone(), [0; 32], prev)
            .await
            .expect_err("wrong new root");
        refused(status, tonic::Code::FailedPrecondition, Code::ProofRejected);
        // A valid proof from a prover the job is not assigned to.
        let status = node
            .submit(other, 2, proof.clone(), [0; 32], root)
            .await
            .expect_err("not assigned");
        refused(status, tonic::Code::FailedPrecondition, Code::NotAssigned);
        // No such job.
        let status = node
            .submit(assigned, 9, proof.clone(), [0; 32], root)
            .await
            .expect_err("unknown job");
        refused(status, tonic::Code::FailedPrecondition, Code::JobUnknown);
        // Not a proof transaction; a broken signature.
        let transfer = node.tx(
            assigned,
            vec![Action::Transfer {
                to: address(USER),
                amount: 1,
            }],
        );
        *node.nonces.entry(assigned).or_insert(1) -= 1;
        let status = node
            .prover
            .submit_proof(pb::SubmitProofRequest { tx: transfer })
            .await
            .expect_err("not a proof");
        refused(status, tonic::Code::InvalidArgument, Code::InvalidAction);
        let mut forged = node.tx(
            assigned,
            vec![Action::SubmitProof {
                rollup_id: ROLLUP,
                from_height: 2,
                proof: proof.clone(),
                prev_state_root: [0; 32],
                new_state_root: root,
            }],
        );
        *node.nonces.entry(assigned).or_insert(1) -= 1;
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let status = node
            .prover
            .submit_proof(pb::SubmitProofRequest { tx: forged })
            .await
            .expect_err("bad signature");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        // Nothing reached the mempool stand-in so far; the right one does.
        assert!(node.broadcast.lock().expect("lock").is_empty());
        let answer = node
            .submit(assigned, 2, proof, [0; 32], root)
            .await
            .expect("accepted");
        assert_eq!(answer.code, 0);
        assert_eq!(answer.tx_hash.len(), 32);
        node.block(vec![]);
        assert_eq!(node.proven_root(), root);
        let text = String::from_utf8(node.metrics.render()).expect("utf8");
        assert!(
            text.contains("seqnet_proof_submissions_total{result=\"proof_rejected\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("seqnet_proof_submissions_total{result=\"root_mismatch\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("seqnet_proof_verification_seconds_count"),
            "{text}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finality_and_proven_batch_streams() {
        let mut node = start(CHALLENGE_TTL, &[P1], WINDOW).await;
        node.data_block("batch 2");
        node.data_block("batch 3");
        let finality = node
            .rollup
            .get_finality(pb::GetFinalityRequest { height: 2 })
            .await
            .expect("finality")
            .into_inner();
        assert_eq!(
            (
                finality.ordered_height,
                finality.proven_height,
                finality.lag
            ),
            (3, 1, 2)
        );
        assert!(finality.ordered && !finality.proven);
        assert_eq!(finality.open_jobs, 2);
        assert_eq!(finality.max_unproven_blocks, 100);
        // One prover, two open jobs: not held, but the line says why proven
        // finality trails.
        assert!(!finality.held);
        assert_eq!(finality.hold_reason, pb::HoldReason::Capacity as i32);
        assert!(
            finality
                .hold_detail
                .contains("2 open jobs for 1 live provers; oldest is rollup 1 span 2..=2"),
            "{}",
            finality.hold_detail
        );
        assert_eq!(finality.live_provers, 1);

        let mut proven = node
            .rollup
            .stream_batches(pb::StreamBatchesRequest {
                rollup_id: ROLLUP,
                from_height: 1,
                skip_empty: false,
                finality: pb::FinalityLevel::FinalityProven as i32,
            })
            .await
            .expect("stream")
            .into_inner();
        let first = next_batch(&mut proven).await;
        assert_eq!(first.height, 1);
        assert!(first.proven.is_none());
        // Height 2 waits for its proof.
        assert!(
            tokio::time::timeout(QUIET, proven.message()).await.is_err(),
            "height 2 is not proven yet"
        );
        node.prove_next(2).await;
        node.block(vec![]);
        let second = next_batch(&mut proven).await;
        assert_eq!(second.height, 2);
        let proof = second.proven.expect("carries its proof");
        assert_eq!(proof.proof.len(), seqnet_proto::groth16::PROOF_LEN);
        assert_eq!((proof.from_height, proof.to_height), (2, 2));
        assert_eq!(proof.batch_heights, vec![2]);
        assert_eq!(proof.span_commitment, node.job(2).span_commitment);
        assert_eq!(proof.prev_state_root, vec![0; 32]);
        assert_eq!(proof.new_state_root, node.proven_root().to_vec());
        assert_eq!(proof.prover, address(P1).0.to_vec());
        assert_eq!(proof.proven_at, 4);
        let finality = node
            .rollup
            .get_finality(pb::GetFinalityRequest { height: 2 })
            .await
            .expect("finality")
            .into_inner();
        assert!(finality.proven);
        assert_eq!(finality.proven_height, 2);
        let status = node
            .rollup
            .stream_batches(pb::StreamBatchesRequest {
                rollup_id: ROLLUP,
                from_height: 1,
                skip_empty: false,
                finality: 7,
            })
            .await
            .expect_err("unknown finality");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
