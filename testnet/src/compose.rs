//! docker compose: the same generated testnet, one container per validator.
//!
//! `init --manifest` writes, next to the process layout:
//!
//! ```text
//! D/docker-compose.yml   one service per validator (node0..) and prover (prover0..), the
//!                        aggregator (with one), the demo rollups' load (rollup-demo),
//!                        a private bridge network
//! D/image/Dockerfile     FROM ${BASE_IMAGE} (default debian:bookworm-slim), binaries copied in
//! D/image/seqnet-node    entrypoint: sequencer in the background, then CometBFT
//! D/image/bin/           filled by `compose up` with the host's cometbft, seqnet-sequencer,
//!                        seqnet-prover (with provers) and seqnet-testnet (with rollups)
//! ```
//!
//! `rollup-demo` runs `seqnet-testnet load --compose` (every demo rollup's
//! owner submits `RollupData` through its own node's gRPC at the node's
//! container address, [`DEMO_ROLLUP_RATE`] tx/s in all), as `demo` does for
//! processes.
//!
//! Every container mounts its own node directory (`D/node{i}` at
//! `/net/node{i}`): the CometBFT home, `sequencer.toml`, the state and the
//! logs are the files the process mode uses. Only the listeners change, by
//! flags and environment (which take precedence over the files): CometBFT's
//! p2p and RPC and the sequencer's gRPC and metrics listen on `0.0.0.0`,
//! the peers are the containers' fixed addresses on the compose network,
//! and each node's RPC, gRPC and metrics ports are published on the host's
//! 127.0.0.1 with the same numbers as in process mode. So `status`,
//! `check`, the load generator and `seqnet` work unchanged against a
//! compose network. Logs go to the node directories as in process mode.
//! [`start_joining`] adds a node (not a validator) to a running compose
//! testnet as a container of its own, by state sync or block sync.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use seqnet_rollup_client::cometbft::CometRpc;

use crate::binaries::Binaries;
use crate::error::{Result, TestnetError};
use crate::manifest::Manifest;

/// File names in the testnet directory.
pub const COMPOSE_FILE: &str = "docker-compose.yml";
pub const IMAGE_DIR: &str = "image";
/// Default base image for users online.
pub const DEFAULT_BASE_IMAGE: &str = "debian:bookworm-slim";

/// The compose network's subnet: `172.29.<third>.0/24`, from the base port
/// so two testnets with different ports get different subnets.
pub fn subnet_third_octet(base_port: u16) -> u16 {
    (base_port / 10) % 200 + 20
}

/// Container address of node `index`.
pub fn node_ip(manifest: &Manifest, index: usize) -> String {
    format!(
        "172.29.{}.{}",
        subnet_third_octet(manifest.base_port),
        10 + index
    )
}

/// The compose project name of a testnet (its chain id and base port).
pub fn project_name(manifest: &Manifest) -> String {
    let id: String = manifest
        .chain_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{id}-{}", manifest.base_port)
}

const DOCKERFILE: &str = r#"# seqnet validator image: CometBFT and seqnet-sequencer built on the host.
# The base image is a build argument: a stock slim Debian for users online;
# offline, any local image with glibc and libstdc++ (e.g. `debootstrap
# --variant=minbase bookworm` + `docker import`, see testnet/README.md).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
COPY bin/ /usr/local/bin/
COPY seqnet-node /usr/local/bin/seqnet-node
RUN chmod 0755 /usr/local/bin/seqnet-node /usr/local/bin/cometbft /usr/local/bin/seqnet-sequencer
ENTRYPOINT ["/usr/local/bin/seqnet-node"]
"#;

const ENTRYPOINT: &str = r#"#!/bin/sh
# Runs one validator: the sequencer in the background, then CometBFT.
# NODE (node dir under /net), ABCI, P2P, RPC, GRPC, METRICS (ports), PEERS.
set -eu
home="/net/$NODE"
export SEQNET_GRPC_LISTEN="0.0.0.0:$GRPC"
export SEQNET_METRICS_LISTEN="0.0.0.0:$METRICS"
seqnet-sequencer start --config "$home/sequencer.toml" >>"$home/sequencer.log" 2>&1 &
seq=$!
cmt=""
# Stop CometBFT first and wait for it, then the sequencer: an app that
# vanishes under a committing CometBFT makes it log a consensus failure.
stop() {
  [ -n "$cmt" ] && kill -TERM "$cmt" 2>/dev/null && wait "$cmt" 2>/dev/null
  kill -TERM "$seq" 2>/dev/null && wait "$seq" 2>/dev/null
  exit 0
}
trap stop TERM INT
# Give the sequencer a moment to open its ABCI port (CometBFT retries too).
sleep 1
cometbft start --home "$home/cometbft" \
  --proxy_app "tcp://127.0.0.1:$ABCI" \
  --p2p.laddr "tcp://0.0.0.0:$P2P" \
  --rpc.laddr "tcp://0.0.0.0:$RPC" \
  --p2p.persistent_peers "$PEERS" >>"$home/cometbft.log" 2>&1 &
cmt=$!
# Exit (and let the container stop) when either process ends.
while kill -0 "$seq" 2>/dev/null && kill -0 "$cmt" 2>/dev/null; do sleep 1; done
stop
"#;

/// Writes `docker-compose.yml` and `image/` for the testnet in `dir`.
pub fn write(dir: &Path, manifest: &Manifest) -> Result<()> {
    let image_dir = dir.join(IMAGE_DIR);
    std::fs::create_dir_all(image_dir.join("bin")).map_err(|e| TestnetError::io(&image_dir, e))?;
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|e| TestnetError::io(path, e))
    };
    write(image_dir.join("Dockerfile"), DOCKERFILE)?;
    write(image_dir.join("seqnet-node"), ENTRYPOINT)?;
    {
        use std::os::unix::fs::PermissionsExt;
        let path = image_dir.join("seqnet-node");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| TestnetError::io(path, e))?;
    }
    let third = subnet_third_octet(manifest.base_port);
    let mut yml = format!(
        "# Generated by seqnet-testnet init --manifest; `seqnet-testnet compose up|down --dir .`\n\
         # or `docker compose up -d` here (build arg BASE_IMAGE picks the base image).\n\
         version: \"3.8\"\n\
         x-node: &node\n  image: seqnet-node:{project}\n  build:\n    context: ./image\n    args:\n      BASE_IMAGE: ${{BASE_IMAGE:-debian:bookworm-slim}}\n  restart: \"no\"\n  stop_grace_period: 10s\n\
         services:\n",
        project = project_name(manifest)
    );
    for node in &manifest.nodes {
        let peers: Vec<String> = manifest
            .nodes
            .iter()
            .filter(|o| o.index != node.index)
            .map(|o| {
                format!(
                    "{}@{}:{}",
                    o.node_id,
                    node_ip(manifest, o.index),
                    o.ports.p2p
                )
            })
            .collect();
        let p = node.ports;
        yml.push_str(&format!(
            "  {name}:\n    <<: *node\n    container_name: {project}-{name}\n    hostname: {name}\n    environment:\n      NODE: {dir}\n      ABCI: \"{abci}\"\n      P2P: \"{p2p}\"\n      RPC: \"{rpc}\"\n      GRPC: \"{grpc}\"\n      METRICS: \"{metrics}\"\n      PEERS: \"{peers}\"\n    volumes:\n      - ./{dir}:/net/{dir}\n    ports:\n      - \"127.0.0.1:{rpc}:{rpc}\"\n      - \"127.0.0.1:{grpc}:{grpc}\"\n      - \"127.0.0.1:{metrics}:{metrics}\"\n    networks:\n      seqnet:\n        ipv4_address: {ip}\n",
            name = node.moniker,
            dir = node.dir.display(),
            abci = p.abci,
            p2p = p.p2p,
            rpc = p.rpc,
            grpc = p.grpc,
            metrics = p.metrics,
            peers = peers.join(","),
            ip = node_ip(manifest, node.index),
            project = project_name(manifest),
        ));
    }
    if let Some(aggregator) = &manifest.aggregator {
        yml.push_str(&aggregator_service(manifest, aggregator)?);
    }
    for prover in &manifest.provers {
        yml.push_str(&prover_service(manifest, prover)?);
    }
    if !manifest.rollups.is_empty() {
        yml.push_str(&demo_rollup_service(manifest));
    }
    yml.push_str(&format!(
        "networks:\n  seqnet:\n    name: {net}\n    driver: bridge\n    ipam:\n      config:\n        - subnet: 172.29.{third}.0/24\n",
        net = network_name(manifest)
    ));
    write(dir.join(COMPOSE_FILE), &yml)
}

/// Container address of prover `index`.
pub fn prover_ip(manifest: &Manifest, index: usize) -> String {
    format!(
        "172.29.{}.{}",
        subnet_third_octet(manifest.base_port),
        100 + index
    )
}

/// Container address of the demo-rollup container.
pub fn demo_rollup_ip(manifest: &Manifest) -> String {
    format!("172.29.{}.200", subnet_third_octet(manifest.base_port))
}

/// Compose service (and, with the project prefix, container) of the demo
/// rollups' load.
pub const DEMO_ROLLUP: &str = "rollup-demo";

/// Transactions per second the demo-rollup container sends over all rollups.
pub const DEMO_ROLLUP_RATE: f64 = 5.0;

/// The demo rollups' load in its own container: `seqnet-testnet load
/// --compose`, with the manifest and keys mounted read-only, submitting to
/// each rollup's node at its container address.
fn demo_rollup_service(manifest: &Manifest) -> String {
    format!(
        "  {DEMO_ROLLUP}:\n    <<: *node\n    container_name: {project}-{DEMO_ROLLUP}\n    hostname: {DEMO_ROLLUP}\n    entrypoint: [\"seqnet-testnet\", \"load\", \"--dir\", \"/net\", \"--compose\", \"--rate\", \"{DEMO_ROLLUP_RATE}\"]\n    volumes:\n      - ./{manifest_file}:/net/{manifest_file}:ro\n      - ./keys:/net/keys:ro\n    networks:\n      seqnet:\n        ipv4_address: {ip}\n",
        project = project_name(manifest),
        manifest_file = crate::manifest::MANIFEST_FILE,
        ip = demo_rollup_ip(manifest),
    )
}

/// ` --node http://<container address>:<grpc>` for each of `nodes`, in order.
fn node_args(manifest: &Manifest, nodes: &[usize]) -> Result<String> {
    let mut args = String::new();
    for &index in nodes {
        let node = manifest.node(index)?;
        args.push_str(&format!(
            " --node http://{}:{}",
            node_ip(manifest, index),
            node.ports.grpc
        ));
    }
    Ok(args)
}

/// Container address of the aggregator.
pub fn aggregator_ip(manifest: &Manifest) -> String {
    format!("172.29.{}.90", subnet_third_octet(manifest.base_port))
}

/// Compose service (and, with the project prefix, container) of the aggregator.
pub const AGGREGATOR: &str = "aggregator";

/// The aggregator's service: `seqnet-prover aggregate` with its key and the
/// development SRS mounted read-only, listening for the provers' proofs on
/// its container address, every node at its container address, its log in
/// its own directory, metrics published.
fn aggregator_service(
    manifest: &Manifest,
    aggregator: &crate::manifest::AggregatorManifest,
) -> Result<String> {
    let key = manifest.key_path(&aggregator.key)?;
    let all: Vec<usize> = manifest.nodes.iter().map(|n| n.index).collect();
    let nodes = node_args(manifest, &all)?;
    let dir = aggregator.dir.display();
    let command = format!(
        "exec seqnet-prover aggregate --key /net/{key} --srs /net/{srs} --listen 0.0.0.0:{listen} --max-proofs {max} --max-wait-ms {wait} --metrics 0.0.0.0:{metrics}{nodes} >>/net/{dir}/aggregator.log 2>&1",
        key = key.display(),
        srs = aggregator.srs.display(),
        listen = aggregator.listen_port,
        max = aggregator.max_proofs,
        wait = aggregator.max_wait_ms,
        metrics = aggregator.metrics_port,
    );
    Ok(format!(
        "  {AGGREGATOR}:\n    <<: *node\n    container_name: {project}-{AGGREGATOR}\n    hostname: {AGGREGATOR}\n    entrypoint: [\"/bin/sh\", \"-c\", {command:?}]\n    environment:\n      RUST_LOG: info\n    volumes:\n      - ./keys:/net/keys:ro\n      - ./{dir}:/net/{dir}\n    ports:\n      - \"127.0.0.1:{metrics}:{metrics}\"\n    networks:\n      seqnet:\n        ipv4_address: {ip}\n",
        project = project_name(manifest),
        metrics = aggregator.metrics_port,
        ip = aggregator_ip(manifest),
    ))
}

/// Container name of prover `index`.
pub fn prover_container(manifest: &Manifest, index: usize) -> String {
    format!("{}-prover{index}", project_name(manifest))
}

/// A prover's service: `seqnet-prover run` with its key and the
/// reference-circuit keys mounted read-only, its nodes at their container
/// addresses, its log in its own directory, metrics published.
fn prover_service(manifest: &Manifest, prover: &crate::manifest::ProverManifest) -> Result<String> {
    let proving = manifest
        .proving
        .as_ref()
        .ok_or_else(|| TestnetError::InvalidOption {
            name: "provers",
            value: manifest.provers.len().to_string(),
            reason: "the manifest has provers but no proving keys".into(),
        })?;
    let key = manifest.key_path(&prover.key)?;
    let mut nodes = node_args(manifest, &prover.nodes)?;
    if let Some(aggregator) = &manifest.aggregator {
        nodes.push_str(&format!(
            " --aggregator {}:{}",
            aggregator_ip(manifest),
            aggregator.listen_port
        ));
    }
    let dir = prover.dir.display();
    let backend = proving
        .backend_args(
            "seqnet-prover",
            &format!("/net/{}", proving.keys_dir.display()),
        )
        .into_iter()
        .map(|arg| {
            if arg.contains(' ') {
                format!("'{arg}'")
            } else {
                arg
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let command = format!(
        "exec seqnet-prover run --key /net/{key} {backend} --metrics 0.0.0.0:{port} --auto-unjail{nodes} >>/net/{dir}/prover.log 2>&1",
        key = key.display(),
        port = prover.metrics_port,
    );
    Ok(format!(
        "  prover{index}:\n    <<: *node\n    container_name: {container}\n    hostname: prover{index}\n    entrypoint: [\"/bin/sh\", \"-c\", {command:?}]\n    environment:\n      RUST_LOG: info\n    volumes:\n      - ./keys:/net/keys:ro\n      - ./{keys}:/net/{keys}:ro\n      - ./{dir}:/net/{dir}\n    ports:\n      - \"127.0.0.1:{port}:{port}\"\n    networks:\n      seqnet:\n        ipv4_address: {ip}\n",
        index = prover.index,
        container = prover_container(manifest, prover.index),
        keys = proving.keys_dir.display(),
        port = prover.metrics_port,
        ip = prover_ip(manifest, prover.index),
    ))
}

/// How many prover containers run.
pub fn provers_running(manifest: &Manifest) -> usize {
    manifest
        .provers
        .iter()
        .filter(|p| {
            Command::new("docker")
                .args(["inspect", "-f", "{{.State.Running}}"])
                .arg(prover_container(manifest, p.index))
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
        })
        .count()
}

/// The compose command here: `docker compose` (plugin) or `docker-compose`.
pub fn compose_command() -> Result<Vec<String>> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works("docker", &["compose", "version"]) {
        return Ok(vec!["docker".into(), "compose".into()]);
    }
    if works("docker-compose", &["version"]) {
        return Ok(vec!["docker-compose".into()]);
    }
    Err(TestnetError::BinaryMissing {
        name: "docker compose",
        searched: "`docker compose`, `docker-compose` on PATH".into(),
        hint: "install docker.io and docker-compose (make compose-deps) and start dockerd",
    })
}

fn run_compose(dir: &Path, manifest: &Manifest, args: &[&str], base_image: &str) -> Result<()> {
    let compose = compose_command()?;
    let mut command = Command::new(&compose[0]);
    command
        .args(&compose[1..])
        .arg("-p")
        .arg(project_name(manifest))
        .arg("-f")
        .arg(dir.join(COMPOSE_FILE))
        .args(args)
        .env("BASE_IMAGE", base_image)
        .current_dir(dir);
    tracing::info!(dir = %dir.display(), "{} {}", compose.join(" "), args.join(" "));
    crate::process::run_checked(&mut command).map(drop)
}

/// Copies the host's binaries into the image context, builds the image and
/// starts every container; waits until every node reports height 2.
pub async fn up(
    dir: &Path,
    binaries: &Binaries,
    base_image: &str,
    timeout: Duration,
) -> Result<()> {
    // Containers publish the nodes' ports on 127.0.0.1: undo a process
    // run's namespace layout.
    let manifest = crate::init::set_layout(dir, None)?;
    if !dir.join(COMPOSE_FILE).is_file() {
        write(dir, &manifest)?;
    }
    let bin = dir.join(IMAGE_DIR).join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| TestnetError::io(&bin, e))?;
    let mut copies = vec![
        (binaries.cometbft.clone(), crate::binaries::COMETBFT),
        (binaries.sequencer.clone(), crate::binaries::SEQUENCER),
    ];
    if !manifest.provers.is_empty() {
        copies.push((binaries.prover()?, crate::binaries::PROVER));
    }
    if !manifest.rollups.is_empty() {
        copies.push((crate::binaries::locate_testnet()?, crate::binaries::TESTNET));
    }
    for (src, name) in &copies {
        std::fs::copy(src, bin.join(name)).map_err(|e| TestnetError::io(src, e))?;
    }
    run_compose(dir, &manifest, &["build"], base_image)?;
    let mut up = vec!["up", "-d", "--no-build"];
    let nodes: Vec<&str> = manifest.nodes.iter().map(|n| n.moniker.as_str()).collect();
    up.extend(nodes.iter().copied());
    run_compose(dir, &manifest, &up, base_image)?;
    crate::bench::wait_all_height(&manifest, 2, timeout).await?;
    if !manifest.provers.is_empty() {
        // Stake them through the published gRPC ports, then start them.
        let mut net = crate::network::Testnet::open(dir)?;
        net.detach();
        net.register_provers(Duration::from_secs(60)).await?;
        let names: Vec<String> = manifest
            .provers
            .iter()
            .map(|p| format!("prover{}", p.index))
            .collect();
        let mut up = vec!["up", "-d", "--no-build"];
        // The aggregator first: the provers hand it their proofs.
        if manifest.aggregator.is_some() {
            up.push(AGGREGATOR);
        }
        up.extend(names.iter().map(String::as_str));
        run_compose(dir, &manifest, &up, base_image)?;
        net.wait_for_active_provers(manifest.provers.len(), Duration::from_secs(120))
            .await?;
    }
    if !manifest.rollups.is_empty() {
        run_compose(
            dir,
            &manifest,
            &["up", "-d", "--no-build", DEMO_ROLLUP],
            base_image,
        )?;
    }
    Ok(())
}

/// Adds a node that is not a validator ([`crate::init::add_node`]) to the
/// running compose testnet in `dir` and starts its container, without
/// waiting: with `state_sync` it restores the validators' latest snapshot,
/// trusting node 0's current header (light blocks from nodes 0 and 1 at
/// their container addresses), else it block-syncs from genesis. Returns its
/// index and when it started.
pub async fn start_joining(dir: &Path, state_sync: bool) -> Result<(usize, Instant)> {
    let manifest = Manifest::load(dir)?;
    let node0 = CometRpc::new(manifest.node(0)?.rpc_addr());
    node0
        .status()
        .await
        .map_err(|e| TestnetError::InvalidOption {
            name: "testnet",
            value: dir.display().to_string(),
            reason: format!(
                "node 0's container does not answer ({e}): join needs a running compose testnet \
                 (`seqnet-testnet compose up`)"
            ),
        })?;
    let trust = if state_sync {
        let servers = manifest
            .nodes
            .iter()
            .take(2)
            .map(|n| format!("http://{}:{}", node_ip(&manifest, n.index), n.ports.rpc))
            .collect();
        Some(crate::network::state_sync_trust(&node0, servers).await?)
    } else {
        None
    };
    let cometbft = Binaries::locate()?.cometbft;
    let node = crate::init::add_node(dir, &cometbft, trust.as_ref())?;
    let manifest = Manifest::load(dir)?;
    write(dir, &manifest)?;
    let started = Instant::now();
    run_compose(
        dir,
        &manifest,
        &["up", "-d", "--no-build", &node.moniker],
        DEFAULT_BASE_IMAGE,
    )?;
    Ok((node.index, started))
}

/// Waits until node `index` of a compose testnet has caught up: CometBFT
/// no longer catching up, at most a block behind node 0.
pub async fn wait_caught_up(
    manifest: &Manifest,
    index: usize,
    started: Instant,
    timeout: Duration,
) -> Result<Duration> {
    let joined = CometRpc::new(manifest.node(index)?.rpc_addr());
    let reference = CometRpc::new(manifest.node(0)?.rpc_addr());
    loop {
        // The new container's RPC needs a moment to come up.
        if let (Ok(status), Ok(tip)) = (joined.status().await, reference.status().await) {
            if crate::network::caught_up(&status, tip.height) {
                return Ok(started.elapsed());
            }
        }
        if started.elapsed() >= timeout {
            return Err(TestnetError::Timeout {
                what: format!("node{index}'s container to catch up"),
                secs: timeout.as_secs(),
                detail: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops and removes the containers and the network.
pub fn down(dir: &Path) -> Result<()> {
    let manifest = Manifest::load(dir)?;
    run_compose(
        dir,
        &manifest,
        &["down", "--timeout", "10"],
        DEFAULT_BASE_IMAGE,
    )
}

/// Container name of node `index` (`container_name` in the compose file).
pub fn container_name(manifest: &Manifest, index: usize) -> Result<String> {
    Ok(format!(
        "{}-{}",
        project_name(manifest),
        manifest.node(index)?.moniker
    ))
}

/// Name of the compose network.
pub fn network_name(manifest: &Manifest) -> String {
    format!("{}-net", project_name(manifest))
}

/// Runs `docker <args>`.
pub fn docker(args: &[&str]) -> Result<()> {
    tracing::info!("docker {}", args.join(" "));
    crate::process::run_checked(Command::new("docker").args(args)).map(drop)
}

/// Cuts node `index`'s container off the compose network (`docker network
/// disconnect`), or connects it again with its fixed address.
pub fn set_connected(manifest: &Manifest, index: usize, connected: bool) -> Result<()> {
    let container = container_name(manifest, index)?;
    let network = network_name(manifest);
    if connected {
        let ip = node_ip(manifest, index);
        docker(&["network", "connect", "--ip", &ip, &network, &container])
    } else {
        docker(&["network", "disconnect", "--force", &network, &container])
    }
}
