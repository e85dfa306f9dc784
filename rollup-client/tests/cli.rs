//! The `seqnet` binary against an in-test node (a small `RollupService` on
//! 127.0.0.1): key files, signing and submission, batch verification and its
//! exit status, streams, and errors for bad input.

// A test harness: a failed set-up step should panic.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use prost::Message;
use seqnet_proto::nmt::{NamespacedMerkleTree, NmtNode};
use seqnet_proto::pb::rollup_service_server::{RollupService, RollupServiceServer};
use seqnet_proto::{pb, Action, Transaction};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

const BIN: &str = env!("CARGO_BIN_EXE_seqnet");

/// The batch of rollup 2 at `height` in a block shared with rollups 1 and 3.
fn batch(height: u64) -> pb::Batch {
    let item = |n: u64| pb::BatchItem {
        tx_hash: vec![n as u8; 32],
        signer: vec![1; 32],
        nonce: n,
        action_index: 0,
        data: format!("item {n} at {height}").into_bytes(),
    };
    let leaves = [(1, item(1)), (2, item(2)), (2, item(3)), (3, item(4))];
    let tree = NamespacedMerkleTree::from_leaves(
        leaves
            .iter()
            .map(|(ns, i)| NmtNode::leaf(*ns, &i.encode_to_vec()))
            .collect(),
    )
    .unwrap();
    pb::Batch {
        rollup_id: 2,
        height,
        items: leaves
            .iter()
            .filter(|(ns, _)| *ns == 2)
            .map(|(_, i)| i.clone())
            .collect(),
        proof: Some((&tree.prove_namespace(2)).into()),
        root: Some((&tree.root()).into()),
        proven: None,
    }
}

#[derive(Default)]
struct Node {
    submitted: Arc<Mutex<Vec<Transaction>>>,
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl RollupService for Node {
    async fn submit_transaction(
        &self,
        r: Request<pb::SubmitTransactionRequest>,
    ) -> Answer<pb::SubmitTransactionResponse> {
        let tx = Transaction::decode(&r.into_inner().tx, 1 << 20, 64)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        tx.verify_signature()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let hash = tx.hash().to_vec();
        self.submitted.lock().unwrap().push(tx);
        Ok(Response::new(pb::SubmitTransactionResponse {
            tx_hash: hash,
            code: 0,
            log: String::new(),
        }))
    }
    async fn get_batch(&self, r: Request<pb::GetBatchRequest>) -> Answer<pb::Batch> {
        let mut b = batch(r.into_inner().height);
        if b.height == 2 {
            b.items.pop(); // a node hiding an item
        }
        Ok(Response::new(b))
    }
    type StreamBatchesStream = ReceiverStream<Result<pb::Batch, Status>>;
    async fn stream_batches(
        &self,
        r: Request<pb::StreamBatchesRequest>,
    ) -> Answer<Self::StreamBatchesStream> {
        let from = r.into_inner().from_height.max(1);
        let (sender, receiver) = mpsc::channel(8);
        tokio::spawn(async move {
            for height in from..=from + 2 {
                if sender.send(Ok(batch(height))).await.is_err() {
                    return;
                }
            }
            sender.closed().await;
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
    async fn get_account(&self, r: Request<pb::GetAccountRequest>) -> Answer<pb::Account> {
        Ok(Response::new(pb::Account {
            address: r.into_inner().address,
            balance: 1_000,
            nonce: 3,
            mempool_nonce: 0,
        }))
    }
    async fn get_rollup(&self, r: Request<pb::GetRollupRequest>) -> Answer<pb::Rollup> {
        let id = r.into_inner().rollup_id;
        if id != 2 {
            return Err(Status::not_found(format!("rollup {id} is not registered")));
        }
        Ok(Response::new(pb::Rollup {
            id,
            name: "two".into(),
            owner: vec![1; 32],
            inclusion_window: 10,
            ..Default::default()
        }))
    }
    async fn get_status(&self, _: Request<pb::GetStatusRequest>) -> Answer<pb::NodeStatus> {
        Ok(Response::new(pb::NodeStatus {
            chain_id: "cli-test".into(),
            height: 5,
            app_hash: vec![7; 32],
            rollups: vec![],
            params: None,
        }))
    }
    async fn get_finality(&self, r: Request<pb::GetFinalityRequest>) -> Answer<pb::FinalityStatus> {
        let height = r.into_inner().height;
        Ok(Response::new(pb::FinalityStatus {
            ordered_height: 5,
            proven_height: 3,
            lag: 2,
            height,
            proven: height != 0 && height <= 3,
            ordered: height != 0 && height <= 5,
            open_jobs: 2,
            max_unproven_blocks: 100,
            pending_jobs: 1,
            held: true,
            hold_reason: pb::HoldReason::Stalled as i32,
            hold_detail: "rollup 1 span 4..=4 missed 1 deadline(s)".into(),
            live_provers: 2,
        }))
    }
    async fn force_include(
        &self,
        r: Request<pb::SubmitTransactionRequest>,
    ) -> Answer<pb::SubmitTransactionResponse> {
        self.submit_transaction(r).await
    }
    async fn prove_state(&self, _: Request<pb::ProveStateRequest>) -> Answer<pb::StateProofs> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn get_forced_request(
        &self,
        _: Request<pb::GetForcedRequestRequest>,
    ) -> Answer<pb::ForcedRequest> {
        Err(Status::not_found("no such request"))
    }
}

/// Starts a node on its own runtime; returns its URL and what it received.
fn start_node() -> (String, Arc<Mutex<Vec<Transaction>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let node = Node::default();
    let submitted = node.submitted.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .add_service(RollupServiceServer::new(node))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
    });
    (url, submitted)
}

fn seqnet(node: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["--node", node, "--attempts", "2"])
        .args(args)
        .env_remove("SEQNET_NODE")
        .env_remove("SEQNET_CHAIN_ID")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn new_key(node: &str, path: &Path) -> String {
    let out = seqnet(node, &["keys", "new", "--out", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn key_files_are_made_shown_and_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/alice.json");
    let address = new_key("http://127.0.0.1:1", &path);
    assert_eq!(address.len(), 64);
    let shown = seqnet(
        "http://127.0.0.1:1",
        &["keys", "show", path.to_str().unwrap()],
    );
    assert_eq!(stdout(&shown).trim(), address);
    let again = seqnet(
        "http://127.0.0.1:1",
        &["keys", "new", "--out", path.to_str().unwrap()],
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(stdout(&shown).trim(), address, "the file is unchanged");
}

#[test]
fn submit_signs_with_the_node_chain_id_nonce_and_required_fee() {
    let (url, submitted) = start_node();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.json");
    let address = new_key(&url, &key);
    let out = seqnet(
        &url,
        &[
            "submit",
            "--key",
            key.to_str().unwrap(),
            "--rollup",
            "2",
            "--data",
            "hello",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let txs = submitted.lock().unwrap().clone();
    assert_eq!(txs.len(), 1);
    let tx = &txs[0];
    assert_eq!(stdout(&out).trim(), hex::encode(tx.hash()));
    assert_eq!(tx.signer.to_string(), address);
    assert_eq!(tx.body.chain_id, "cli-test");
    assert_eq!(tx.body.nonce, 3);
    assert_eq!(tx.body.fee, 10 + 5);
    assert_eq!(
        tx.body.actions,
        vec![Action::RollupData {
            rollup_id: 2,
            data: b"hello".to_vec()
        }]
    );
}

#[test]
fn transfer_takes_a_key_file_as_recipient_and_an_explicit_chain_id_and_fee() {
    let (url, submitted) = start_node();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("a.json");
    let to = dir.path().join("b.json");
    new_key(&url, &key);
    let to_address = new_key(&url, &to);
    let out = seqnet(
        &url,
        &[
            "--json",
            "--chain-id",
            "other",
            "transfer",
            "--key",
            key.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
            "--amount",
            "7",
            "--fee",
            "99",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let tx = submitted.lock().unwrap()[0].clone();
    assert_eq!(printed["tx_hash"], hex::encode(tx.hash()));
    assert_eq!(tx.body.chain_id, "other");
    assert_eq!(tx.body.fee, 99);
    match &tx.body.actions[..] {
        [Action::Transfer { to, amount: 7 }] => assert_eq!(to.to_string(), to_address),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn batch_get_says_whether_the_proof_holds() {
    let (url, _) = start_node();
    let good = seqnet(&url, &["batch", "get", "--rollup", "2", "--height", "1"]);
    assert!(good.status.success(), "{}", stderr(&good));
    let text = stdout(&good);
    assert!(text.contains("2 items"), "{text}");
    assert!(text.contains("\"item 2 at 1\""), "{text}");
    assert!(
        text.contains("proof: verified (inclusion and completeness)"),
        "{text}"
    );
    let bad = seqnet(&url, &["batch", "get", "--rollup", "2", "--height", "2"]);
    assert!(!bad.status.success());
    assert!(stdout(&bad).contains("proof: FAILED"), "{}", stdout(&bad));
    let bad_json = seqnet(
        &url,
        &["--json", "batch", "get", "--rollup", "2", "--height", "2"],
    );
    assert!(!bad_json.status.success());
    let printed: serde_json::Value = serde_json::from_str(stdout(&bad_json).trim()).unwrap();
    assert_eq!(printed["verified"], false);
}

#[test]
fn batch_stream_prints_one_verified_line_per_batch() {
    let (url, _) = start_node();
    let mut child = Command::new(BIN)
        .args(["--node", &url, "--json", "batch", "stream", "--rollup", "2"])
        .args(["--from", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut heights = Vec::new();
    for _ in 0..3 {
        let line = lines.next().unwrap().unwrap();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["verified"], true, "{line}");
        heights.push(value["height"].as_u64().unwrap());
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(heights, vec![4, 5, 6]);
}

#[test]
fn bad_input_gets_a_clear_message() {
    let (url, _) = start_node();
    let cases: [(&[&str], &str); 5] = [
        (&["account", "xyz"], "is not hex"),
        (&["account", "abcd"], "has 2 bytes, want 32"),
        (
            &[
                "submit",
                "--key",
                "/nonexistent/k.json",
                "--rollup",
                "2",
                "--data",
                "x",
            ],
            "cannot read key file /nonexistent/k.json",
        ),
        (&["rollup", "show", "9"], "rollup 9 is not registered"),
        (&["forced", "beef"], "is not a 32-byte hex hash"),
    ];
    for (args, expected) in cases {
        let out = seqnet(&url, args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let shown = seqnet(&url, &["rollup", "show", "2"]);
    assert!(
        stdout(&shown).contains("rollup 2 \"two\""),
        "{}",
        stdout(&shown)
    );
    let status = seqnet(&url, &["status"]);
    assert!(
        stdout(&status).contains("chain cli-test height 5"),
        "{}",
        stdout(&status)
    );
}

#[test]
fn finality_and_prover_transactions() {
    let (url, submitted) = start_node();
    let out = seqnet(&url, &["finality", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("ordered height 5, proven height 3 (lag 2 of at most 100)"),
        "{text}"
    );
    assert!(text.contains("height 4: ordered, not yet proven"), "{text}");
    // Why ordering is held, in the node's words.
    assert!(
        text.contains(
            "ORDERING HELD (back-pressure): stalled span -- rollup 1 span 4..=4 missed 1 deadline(s)"
        ),
        "{text}"
    );
    assert!(
        text.contains("(1 with a proof waiting to link), 2 live provers"),
        "{text}"
    );
    let out = seqnet(&url, &["--json", "finality", "3"]);
    let value: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(value["proven"], true);
    assert_eq!(value["proven_height"], 3);
    assert_eq!(value["lag"], 2);
    assert_eq!(value["held"], true);
    assert_eq!(value["hold_reason"], "stalled span");

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("p.json");
    new_key(&url, &key);
    let key = key.to_str().unwrap();
    for args in [
        vec!["prover", "register", "--key", key, "--stake", "5000"],
        vec!["prover", "unjail", "--key", key],
        vec!["prover", "unbond", "--key", key],
    ] {
        let out = seqnet(&url, &args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let actions: Vec<Action> = submitted
        .lock()
        .unwrap()
        .iter()
        .flat_map(|tx| tx.body.actions.clone())
        .collect();
    assert_eq!(
        actions,
        vec![
            Action::RegisterProver { stake: 5000 },
            Action::Unjail,
            Action::Unbond
        ]
    );
    // `prover status` asks ProverService, which this node lacks.
    let out = seqnet(&url, &["prover", "status", key]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("error:"), "{}", stderr(&out));
}
