//! End-to-end tests: real `seqnet-sequencer` and `cometbft` processes on
//! loopback, each test on its own free ports and temporary directory.
//!
//! They need the binaries: `make test` builds them first (`seqnet-sequencer`
//! is found through `SEQNET_BIN_DIR` or next to this test executable,
//! `cometbft` through `COMETBFT_BIN`, `PATH` or `$HOME/go/bin`). Tests run
//! one at a time (a 4-validator network is all a 2-core machine takes).
//! Set `SEQNET_E2E_KEEP=1` to keep the testnet directories for inspection.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prost::Message;
use seqnet_proto::{pb, Action, Address, Code, TransactionBody};
use seqnet_rollup_client::{keys, verify_batch, ClientError, RollupClient, TxSigner};
use seqnet_testnet::{Binaries, InitOptions, Testnet};

/// One network at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const START_TIMEOUT: Duration = Duration::from_secs(300);
const INCLUDE_TIMEOUT: Duration = Duration::from_secs(600);

struct Net {
    net: Testnet,
    _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for Net {
    type Target = Testnet;
    fn deref(&self) -> &Testnet {
        &self.net
    }
}

impl std::ops::DerefMut for Net {
    fn deref_mut(&mut self) -> &mut Testnet {
        &mut self.net
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// Generates and starts a network of `validators` nodes with `rollups` demo rollups.
async fn start_network(validators: usize, rollups: u64) -> anyhow::Result<Net> {
    init_tracing();
    let binaries = Binaries::locate()?;
    let dir = tempfile::Builder::new().prefix("seqnet-e2e-").tempdir()?;
    let base_port = seqnet_testnet::pick_free_base_port(validators)?;
    let opts = InitOptions {
        validators,
        rollups,
        base_port,
        chain_id: "seqnet-e2e".into(),
        ..InitOptions::default()
    };
    let mut net = Testnet::init(&dir.path().join("net"), &opts, binaries)?;
    eprintln!(
        "testnet in {} (base port {base_port}), starting {validators} validators",
        net.dir().display()
    );
    let started = Instant::now();
    net.start(START_TIMEOUT).await?;
    eprintln!(
        "network at height 2 after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let dir = if std::env::var_os("SEQNET_E2E_KEEP").is_some() {
        eprintln!("keeping {}", dir.keep().display());
        None
    } else {
        Some(dir)
    };
    Ok(Net { net, _dir: dir })
}

fn signer_for(net: &Testnet, key_name: &str) -> anyhow::Result<TxSigner> {
    let path = net
        .key_path(key_name)
        .ok_or_else(|| anyhow::anyhow!("no key {key_name} in the manifest"))?;
    let m = net.manifest();
    let mut signer = TxSigner::new(keys::load(&path)?, m.chain_id.clone());
    signer.fees = m.fees.schedule();
    Ok(signer)
}

/// A client of one node.
fn connect(url: &str) -> anyhow::Result<RollupClient> {
    Ok(RollupClient::new(vec![url.to_string()])?)
}

/// The account as the node knows it (`None` if it does not).
async fn find_account(
    c: &mut RollupClient,
    address: Address,
) -> anyhow::Result<Option<pb::Account>> {
    match c.account(address).await {
        Ok(account) => Ok(Some(account)),
        Err(ClientError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A transaction the node acknowledged.
#[derive(Clone, Debug)]
struct Acked {
    tx_hash: Vec<u8>,
    nonce: u64,
    data: Vec<u8>,
}

/// Submits `count` RollupData transactions for `rollup_id` through `url`,
/// one after another, each with the next nonce; every one must be accepted
/// with the hash the transaction has. The client retries transport hiccups
/// on a loaded machine with the same bytes (a duplicate would come back as
/// "already in the mempool" and fail the test).
async fn submit_sequence(
    url: String,
    mut signer: TxSigner,
    rollup_id: u64,
    count: usize,
    pause: Duration,
) -> anyhow::Result<Vec<Acked>> {
    let mut c = connect(&url)?;
    let mut acked = Vec::with_capacity(count);
    for _ in 0..count {
        let nonce = signer.next_nonce;
        let data = seqnet_testnet::load::payload(rollup_id, nonce, 200);
        let tx = signer.rollup_data(rollup_id, data.clone(), None);
        let answer = c
            .submit_bytes(tx.to_bytes().to_vec())
            .await
            .map_err(|e| anyhow::anyhow!("rollup {rollup_id} nonce {nonce} via {url}: {e}"))?;
        anyhow::ensure!(
            answer.tx_hash == tx.hash(),
            "node reported hash {} for tx {}",
            hex::encode(&answer.tx_hash),
            hex::encode(tx.hash())
        );
        acked.push(Acked {
            tx_hash: tx.hash().to_vec(),
            nonce,
            data,
        });
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(acked)
}

/// Rollup stats (`items`) as one node reports them.
async fn rollup_items(url: &str) -> anyhow::Result<BTreeMap<u64, u64>> {
    let status = connect(url)?.status().await?;
    Ok(status
        .rollups
        .iter()
        .map(|r| (r.id, r.stats.map_or(0, |s| s.items)))
        .collect())
}

/// Waits until every node in `nodes` reports at least `want[rollup]` items.
async fn wait_for_items(
    net: &mut Testnet,
    nodes: &[usize],
    want: &BTreeMap<u64, u64>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut last_print = Instant::now();
    loop {
        net.check_alive("waiting for transactions to be ordered")?;
        let mut done = true;
        let mut seen = Vec::new();
        for &i in nodes {
            let items = rollup_items(&net.grpc_url(i)?).await.unwrap_or_default();
            done &= want
                .iter()
                .all(|(id, n)| items.get(id).copied().unwrap_or(0) >= *n);
            seen.push(items);
        }
        if done {
            return Ok(());
        }
        anyhow::ensure!(
            start.elapsed() < timeout,
            "timed out after {timeout:?}: want {want:?}, nodes report {seen:?}"
        );
        if last_print.elapsed() > Duration::from_secs(10) {
            eprintln!("waiting for items {want:?}: {seen:?}");
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Lowest height every node in `nodes` has reached.
async fn common_height(net: &Testnet, nodes: &[usize]) -> anyhow::Result<u64> {
    let heights = net.heights().await;
    nodes
        .iter()
        .map(|&i| heights.get(i).copied().flatten())
        .collect::<Option<Vec<u64>>>()
        .and_then(|h| h.into_iter().min())
        .ok_or_else(|| anyhow::anyhow!("a node does not answer: heights {heights:?}"))
}

/// Every node has the same block hash and app hash at every height 1..=top.
async fn assert_same_chain(net: &Testnet, nodes: &[usize], top: u64) -> anyhow::Result<()> {
    let mut reference = None;
    for &i in nodes {
        let headers = net.rpc(i)?.headers(1, top).await?;
        anyhow::ensure!(
            headers.len() as u64 == top,
            "node{i} returned {} headers for 1..={top}",
            headers.len()
        );
        for h in &headers {
            anyhow::ensure!(
                !h.app_hash.is_empty() || h.height == 1,
                "node{i} height {} has no app hash",
                h.height
            );
        }
        match &reference {
            None => reference = Some((i, headers)),
            Some((r, ref_headers)) => {
                for (a, b) in ref_headers.iter().zip(&headers) {
                    anyhow::ensure!(
                        a == b,
                        "node{r} and node{i} differ at height {}: {a:?} vs {b:?}",
                        a.height
                    );
                }
            }
        }
    }
    eprintln!("app hash and block hash agree on nodes {nodes:?} for heights 1..={top}");
    Ok(())
}

/// The app hash a node's gRPC `GetStatus` reports for its last height is the
/// one CometBFT's next header commits to.
async fn assert_status_matches_chain(net: &mut Testnet, nodes: &[usize]) -> anyhow::Result<()> {
    for &i in nodes {
        let status = net.client(i)?.status().await?;
        anyhow::ensure!(
            status.chain_id == net.manifest().chain_id,
            "node{i} chain id {:?}",
            status.chain_id
        );
        net.wait_node_height(i, status.height + 1, INCLUDE_TIMEOUT)
            .await?;
        let headers = net
            .rpc(i)?
            .headers(status.height + 1, status.height + 1)
            .await?;
        let header = headers
            .first()
            .ok_or_else(|| anyhow::anyhow!("node{i} has no header {}", status.height + 1))?;
        anyhow::ensure!(
            header
                .app_hash
                .eq_ignore_ascii_case(&hex::encode(&status.app_hash)),
            "node{i}: GetStatus app hash {} at height {}, header {} commits to {}",
            hex::encode(&status.app_hash),
            status.height,
            header.height,
            header.app_hash
        );
    }
    Ok(())
}

/// Reads every batch of `rollup_id` for heights 1..=top from every node,
/// checks they are identical across nodes and that each proof verifies
/// (inclusion and completeness); returns the items in order.
async fn read_batches(
    net: &Testnet,
    nodes: &[usize],
    rollup_id: u64,
    top: u64,
) -> anyhow::Result<(Vec<pb::BatchItem>, Option<pb::Batch>)> {
    let mut clients = Vec::new();
    for &i in nodes {
        clients.push((i, net.client(i)?));
    }
    let mut items = Vec::new();
    let mut sample = None;
    for height in 1..=top {
        let mut first: Option<(usize, pb::Batch)> = None;
        for (i, c) in clients.iter_mut() {
            let batch = c.raw_batch(rollup_id, height).await?;
            verify_batch(&batch).map_err(|e| {
                anyhow::anyhow!(
                    "node{i} rollup {rollup_id} height {height}: proof does not verify: {e}"
                )
            })?;
            anyhow::ensure!(
                batch.rollup_id == rollup_id && batch.height == height,
                "node{i} answered batch ({}, {}) for ({rollup_id}, {height})",
                batch.rollup_id,
                batch.height
            );
            match &first {
                None => first = Some((*i, batch)),
                Some((r, reference)) => anyhow::ensure!(
                    reference == &batch,
                    "rollup {rollup_id} height {height}: node{r} and node{i} serve different batches"
                ),
            }
        }
        if let Some((_, batch)) = first {
            if !batch.items.is_empty()
                && sample
                    .as_ref()
                    .is_none_or(|s: &pb::Batch| s.items.len() < batch.items.len())
            {
                sample = Some(batch.clone());
            }
            items.extend(batch.items);
        }
    }
    Ok((items, sample))
}

/// Removing any one item from a batch must make its proof fail, whether or
/// not the proof's range is shrunk to match.
fn assert_removal_detected(batch: &pb::Batch) -> anyhow::Result<()> {
    for skip in 0..batch.items.len() {
        let mut partial = batch.clone();
        partial.items.remove(skip);
        anyhow::ensure!(
            verify_batch(&partial).is_err(),
            "batch at height {} verified with item {skip} removed",
            batch.height
        );
        if let Some(proof) = partial.proof.as_mut() {
            proof.end -= 1;
        }
        anyhow::ensure!(
            verify_batch(&partial).is_err(),
            "batch at height {} verified with item {skip} removed and the proof range shrunk",
            batch.height
        );
    }
    Ok(())
}

/// The ordered items of a rollup are exactly the acknowledged transactions,
/// in submission order.
fn assert_items_match(
    rollup_id: u64,
    items: &[pb::BatchItem],
    acked: &[Acked],
    signer: &[u8],
) -> anyhow::Result<()> {
    anyhow::ensure!(
        items.len() == acked.len(),
        "rollup {rollup_id}: {} items ordered, {} acknowledged",
        items.len(),
        acked.len()
    );
    for (k, (item, ack)) in items.iter().zip(acked).enumerate() {
        anyhow::ensure!(
            item.tx_hash == ack.tx_hash && item.nonce == ack.nonce && item.data == ack.data,
            "rollup {rollup_id} item {k}: ordered nonce {} tx {}, submitted nonce {} tx {}",
            item.nonce,
            hex::encode(&item.tx_hash),
            ack.nonce,
            hex::encode(&ack.tx_hash)
        );
        anyhow::ensure!(
            item.signer == signer,
            "rollup {rollup_id} item {k}: unexpected signer"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_order_1000_txs_consistently() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut net = start_network(4, 3).await?;
    let all: Vec<usize> = (0..4).collect();
    let counts = [334usize, 333, 333];

    let submit_start = Instant::now();
    let start_height = common_height(&net, &all).await?;
    let mut tasks = tokio::task::JoinSet::new();
    let mut owners = BTreeMap::new();
    for (k, count) in counts.iter().enumerate() {
        let rollup_id = k as u64 + 1;
        let signer = signer_for(&net, &format!("rollup-{rollup_id}"))?;
        owners.insert(rollup_id, signer.address().0.to_vec());
        // Each rollup through a different node.
        let url = net.grpc_url(k)?;
        let count = *count;
        tasks.spawn(async move {
            submit_sequence(url, signer, rollup_id, count, Duration::ZERO)
                .await
                .map(|acked| (rollup_id, acked))
        });
    }
    let mut acked = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (rollup_id, list) = joined??;
        acked.insert(rollup_id, list);
    }
    let submitted_in = submit_start.elapsed();
    eprintln!(
        "1000 transactions acknowledged in {:.1}s",
        submitted_in.as_secs_f64()
    );

    let want: BTreeMap<u64, u64> = acked.iter().map(|(id, l)| (*id, l.len() as u64)).collect();
    wait_for_items(&mut net, &all, &want, INCLUDE_TIMEOUT).await?;
    let ordered_in = submit_start.elapsed();
    let top = common_height(&net, &all).await?;
    let blocks = top.saturating_sub(start_height);
    eprintln!(
        "all 1000 ordered after {:.1}s: {blocks} blocks ({:.2} blocks/s), {:.1} txs/s",
        ordered_in.as_secs_f64(),
        blocks as f64 / ordered_in.as_secs_f64(),
        1000.0 / ordered_in.as_secs_f64()
    );

    assert_same_chain(&net, &all, top).await?;
    assert_status_matches_chain(&mut net, &all).await?;
    for (rollup_id, list) in &acked {
        let (items, sample) = read_batches(&net, &all, *rollup_id, top).await?;
        assert_items_match(*rollup_id, &items, list, &owners[rollup_id])?;
        let sample =
            sample.ok_or_else(|| anyhow::anyhow!("rollup {rollup_id} has no non-empty batch"))?;
        assert_removal_detected(&sample)?;
        eprintln!(
            "rollup {rollup_id}: {} items identical on all nodes, in nonce order, all proofs verify; largest batch {} items at height {}",
            items.len(),
            sample.items.len(),
            sample.height
        );
    }
    net.stop();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_validator_recovers_and_loses_nothing() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut net = start_network(4, 3).await?;
    let all: Vec<usize> = (0..4).collect();
    let survivors: Vec<usize> = (0..3).collect();
    let victim = 3;
    let per_rollup = 150;

    // Load through nodes 0..2 (the victim serves no submissions, so nothing
    // it acknowledged can be lost with its mempool).
    let mut tasks = tokio::task::JoinSet::new();
    let mut owners = BTreeMap::new();
    for k in 0..3usize {
        let rollup_id = k as u64 + 1;
        let signer = signer_for(&net, &format!("rollup-{rollup_id}"))?;
        owners.insert(rollup_id, signer.address().0.to_vec());
        let url = net.grpc_url(k)?;
        tasks.spawn(async move {
            submit_sequence(
                url,
                signer,
                rollup_id,
                per_rollup,
                Duration::from_millis(40),
            )
            .await
            .map(|acked| (rollup_id, acked))
        });
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = common_height(&net, &all).await?;
    eprintln!("kill -9 node{victim} at height {before}");
    net.kill_node(victim)?;
    // The other three (30 of 40 voting power) keep committing.
    let target = common_height(&net, &survivors).await? + 3;
    for &i in &survivors {
        net.wait_node_height(i, target, INCLUDE_TIMEOUT).await?;
    }
    eprintln!("survivors reached height {target} without node{victim}; restarting it");
    net.start_node(victim).await?;

    let mut acked = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (rollup_id, list) = joined??;
        acked.insert(rollup_id, list);
    }
    let want: BTreeMap<u64, u64> = acked.iter().map(|(id, l)| (*id, l.len() as u64)).collect();
    wait_for_items(&mut net, &all, &want, INCLUDE_TIMEOUT).await?;
    let top = common_height(&net, &all).await?;
    let leader = common_height(&net, &survivors).await?;
    net.wait_node_height(victim, leader, INCLUDE_TIMEOUT)
        .await?;
    eprintln!("node{victim} caught up to height {leader}");

    assert_same_chain(&net, &all, top).await?;
    assert_status_matches_chain(&mut net, &[victim]).await?;
    let status = net.rpc(victim)?.status().await?;
    anyhow::ensure!(
        !status.catching_up || status.height >= leader,
        "node{victim} still catching up: {status:?}"
    );
    for (rollup_id, list) in &acked {
        // Read from the restarted node as well as the others.
        let (items, _) = read_batches(&net, &all, *rollup_id, top).await?;
        assert_items_match(*rollup_id, &items, list, &owners[rollup_id])?;
        eprintln!(
            "rollup {rollup_id}: all {} acknowledged txs ordered, identical on node{victim}",
            list.len()
        );
    }
    net.stop();
    Ok(())
}

/// A bad-input case: the transaction bytes for each path, the code it must
/// get and a word its message must contain.
struct BadCase {
    name: &'static str,
    grpc_tx: Vec<u8>,
    rpc_tx: Vec<u8>,
    code: Code,
    keyword: &'static str,
}

fn flip_signature(tx: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut envelope = pb::SignedTransaction::decode(tx)?;
    envelope.signature[0] ^= 0x01;
    Ok(envelope.encode_to_vec())
}

/// Signs `actions` with `nonce` (whatever the signer's next nonce is) and
/// `fee`, or the required fee.
fn sign(signer: &TxSigner, nonce: u64, fee: Option<u64>, actions: Vec<Action>) -> Vec<u8> {
    let fee = fee.unwrap_or_else(|| signer.fees.required(&actions));
    TransactionBody {
        chain_id: signer.chain_id.clone(),
        nonce,
        fee,
        actions,
    }
    .sign(&signer.key)
    .to_bytes()
    .to_vec()
}

fn data(rollup_id: u64, text: &str) -> Vec<Action> {
    vec![Action::RollupData {
        rollup_id,
        data: text.as_bytes().to_vec(),
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_with_precise_codes() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let mut net = start_network(2, 1).await?;
    let all = [0usize, 1];
    let mut grpc = net.client(0)?;
    let rpc = net.rpc(1)?;

    // One good transaction first, so that nonce 0 is used.
    let mut signer = signer_for(&net, "user-1")?;
    let address = signer.address();
    let good = signer.rollup_data(1, b"first".to_vec(), None);
    grpc.submit_bytes(good.to_bytes().to_vec())
        .await
        .map_err(|e| anyhow::anyhow!("good tx: {e}"))?;
    let deadline = Instant::now() + INCLUDE_TIMEOUT;
    loop {
        let account = find_account(&mut grpc, address).await?;
        if account.is_some_and(|a| a.nonce == 1) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "good tx not committed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Let both nodes commit it.
    let h0 = common_height(&net, &all).await? + 1;
    net.wait_for_height(h0, INCLUDE_TIMEOUT).await?;

    let snapshot = |net: &Testnet| {
        let net_urls: Vec<String> = all.iter().filter_map(|&i| net.grpc_url(i).ok()).collect();
        async move {
            let mut out = Vec::new();
            for url in net_urls {
                let mut c = connect(&url)?;
                let account = find_account(&mut c, address).await?;
                let status = c.status().await?;
                out.push((account, status.rollups));
            }
            anyhow::Ok(out)
        }
    };
    let before = snapshot(&net).await?;
    let balance = before[0].0.as_ref().map_or(0, |a| a.balance);
    let start_height = common_height(&net, &all).await?;

    let max_tx = net.manifest().fees.max_tx_bytes as usize;
    let random = |seed: u8| {
        use rand::RngCore;
        let mut bytes = vec![0u8; 64];
        rand::thread_rng().fill_bytes(&mut bytes);
        // Field number 0 is never valid protobuf: the bytes cannot decode.
        bytes[0] = 0x07;
        bytes[1] = seed;
        bytes
    };
    let cases = vec![
        BadCase {
            name: "bad signature",
            grpc_tx: flip_signature(&sign(&signer, 1, None, data(1, "sig-grpc")))?,
            rpc_tx: flip_signature(&sign(&signer, 1, None, data(1, "sig-rpc")))?,
            code: Code::BadSignature,
            keyword: "signature",
        },
        BadCase {
            name: "replayed nonce",
            grpc_tx: sign(&signer, 0, None, data(1, "replay-grpc")),
            rpc_tx: sign(&signer, 0, None, data(1, "replay-rpc")),
            code: Code::NonceReplayed,
            keyword: "nonce",
        },
        BadCase {
            name: "skipped nonce",
            grpc_tx: sign(&signer, 5, None, data(1, "gap-grpc")),
            rpc_tx: sign(&signer, 5, None, data(1, "gap-rpc")),
            code: Code::NonceGap,
            keyword: "nonce",
        },
        BadCase {
            name: "fee above balance",
            grpc_tx: sign(&signer, 1, Some(balance + 1), data(1, "fee-grpc")),
            rpc_tx: sign(&signer, 1, Some(balance + 2), data(1, "fee-rpc")),
            code: Code::InsufficientBalance,
            keyword: "balance",
        },
        BadCase {
            name: "unknown rollup",
            grpc_tx: sign(&signer, 1, None, data(999, "unknown-grpc")),
            rpc_tx: sign(&signer, 1, None, data(999, "unknown-rpc")),
            code: Code::UnknownRollup,
            keyword: "999",
        },
        BadCase {
            name: "oversized",
            grpc_tx: sign(
                &signer,
                1,
                None,
                vec![Action::RollupData {
                    rollup_id: 1,
                    data: vec![1; max_tx + 1000],
                }],
            ),
            rpc_tx: sign(
                &signer,
                1,
                None,
                vec![Action::RollupData {
                    rollup_id: 1,
                    data: vec![2; max_tx + 1000],
                }],
            ),
            code: Code::TooLarge,
            keyword: "bytes",
        },
        BadCase {
            name: "random bytes",
            grpc_tx: random(1),
            rpc_tx: random(2),
            code: Code::Malformed,
            keyword: "decode",
        },
    ];
    signer.next_nonce = 1;

    let mut failures = Vec::new();
    for case in &cases {
        // Rejections are not retried: this is the node's one answer.
        let (code, message, verdict) = match grpc.submit_bytes(case.grpc_tx.clone()).await {
            Ok(answer) => (
                Some(Code::Ok),
                String::new(),
                format!("accepted {}", hex::encode(&answer.tx_hash)),
            ),
            Err(ClientError::Rejected { code, message }) => {
                let name = code.map_or_else(|| "no code".to_string(), |c| c.to_string());
                let verdict = format!("rejected {name}: {message}");
                (code, message, verdict)
            }
            Err(e) => return Err(e.into()),
        };
        eprintln!("gRPC {:<18} -> {verdict}", case.name);
        if code != Some(case.code) || !message.to_lowercase().contains(case.keyword) {
            failures.push(format!(
                "gRPC {}: want {} with a message naming {:?}, got {verdict}",
                case.name, case.code, case.keyword
            ));
        }
        let result = rpc.broadcast_tx_sync(&case.rpc_tx).await?;
        eprintln!(
            "RPC  {:<18} -> code {} log {:?}",
            case.name, result.code, result.log
        );
        if result.code != case.code.as_u32() || !result.log.to_lowercase().contains(case.keyword) {
            failures.push(format!(
                "RPC broadcast_tx_sync {}: want {} with a log naming {:?}, got code {} log {:?}",
                case.name, case.code, case.keyword, result.code, result.log
            ));
        }
    }

    // Nothing may have changed: wait a few blocks, then compare.
    let end_height = common_height(&net, &all).await? + 3;
    net.wait_for_height(end_height, INCLUDE_TIMEOUT).await?;
    let after = snapshot(&net).await?;
    if before != after {
        failures.push(format!("state changed: before {before:?}, after {after:?}"));
    }
    // The app hash chains every height, so "unchanged" means: no block since
    // carried a user transaction (only the injected extended commit, when
    // vote extensions are on), and every node computed the same app hashes.
    let rpc0 = net.rpc(0)?;
    for height in start_height + 1..=end_height {
        for tx in rpc0.block_txs(height).await? {
            if !tx.starts_with(seqnet_proto::inclusion::SYSTEM_TX_PREFIX) {
                failures.push(format!(
                    "block {height} carried a user transaction {}",
                    hex::encode(seqnet_proto::sha256(&tx))
                ));
            }
        }
    }
    assert_same_chain(&net, &all, end_height).await?;
    assert_status_matches_chain(&mut net, &all).await?;
    net.stop();
    anyhow::ensure!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}
