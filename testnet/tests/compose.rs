//! The docker compose path end to end: `compose-deps.sh` (docker.io, a
//! compose tool and debootstrap from Debian if missing, dockerd if none
//! runs, the base image from `debootstrap --variant=minbase bookworm` +
//! `docker import` if missing), `init --manifest ci.toml` (which writes
//! `docker-compose.yml`), `compose up` (the host's binaries copied into the
//! image), blocks on every container, the demo rollups' load from its own
//! container ordered, the invariant checker, `compose down`;
//! then the whole CI scenario (load, kill, pause, network disconnect, wipe,
//! a node joining by state sync in a container of its own) in containers,
//! through the checker.
//!
//! Runs only with `SEQNET_COMPOSE_TEST=1` (`make compose-test`, a separate
//! step of `.ci/run`): it installs packages and starts a daemon.

use std::fmt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use seqnet_rollup_client::RollupClient;
use seqnet_testnet::scenario::{self, Scenario};
use seqnet_testnet::{check, compose, Binaries, CometRpc};

/// A failure printed as its message chain, without a backtrace: CI keeps
/// only the last lines of a run, and they must say what went wrong.
struct Failure(String);

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_network_makes_blocks_and_passes_the_checker() -> Result<(), Failure> {
    if std::env::var("SEQNET_COMPOSE_TEST").as_deref() != Ok("1") {
        eprintln!("skipped: set SEQNET_COMPOSE_TEST=1 (make compose-test) to run the compose test");
        return Ok(());
    }
    compose_scenario()
        .await
        .map_err(|e| Failure(format!("compose test failed: {e:#}")))
}

async fn compose_scenario() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deps = Command::new(root.join("scripts/compose-deps.sh")).output()?;
    anyhow::ensure!(
        deps.status.success(),
        "compose-deps.sh failed: {}",
        String::from_utf8_lossy(&deps.stderr)
    );
    let base_image = String::from_utf8_lossy(&deps.stdout)
        .lines()
        .last()
        .unwrap_or("seqnet-base:bookworm")
        .trim()
        .to_string();

    // The CI scenario (load, forced requests, kill, pause, disconnect, wipe,
    // a node joining by state sync) with the validators in containers; its
    // stake runs in process mode only.
    let mut scenario = Scenario::load(&root.join("manifests/ci.toml"))?;
    scenario.perturbations.retain(|p| !p.kind.process_only());
    let tmp = tempfile::Builder::new()
        .prefix("seqnet-compose-")
        .tempdir()?;
    let dir = tmp.path().join("net");
    let binaries = Binaries::locate()?;
    // The joining node takes the next block of ports.
    let base_port = seqnet_testnet::pick_free_base_port(scenario.validators.len() + 1)?;
    let manifest = scenario::init(&dir, &scenario, Some(base_port), false, &binaries)?;
    assert!(dir.join(compose::COMPOSE_FILE).is_file());

    // Up, blocks on every container, down.
    let started = Instant::now();
    let up = compose::up(&dir, &binaries, &base_image, Duration::from_secs(300)).await;
    let result = async {
        up?;
        eprintln!(
            "compose: {} containers at height 2 in {:.1} s",
            manifest.nodes.len(),
            started.elapsed().as_secs_f64()
        );
        let mut first = Vec::new();
        for node in &manifest.nodes {
            first.push(CometRpc::new(node.rpc_addr()).status().await?.height);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        for (node, h0) in manifest.nodes.iter().zip(&first) {
            let h = CometRpc::new(node.rpc_addr()).status().await?.height;
            anyhow::ensure!(h > *h0, "{} stuck at height {h}", node.moniker);
        }
        // The demo rollups' load runs in its own container, and what it
        // submits through the nodes' container addresses gets ordered.
        let demo = format!(
            "{}-{}",
            compose::project_name(&manifest),
            compose::DEMO_ROLLUP
        );
        let running = Command::new("docker")
            .args(["inspect", "-f", "{{.State.Running}}", &demo])
            .output()?;
        anyhow::ensure!(
            String::from_utf8_lossy(&running.stdout).trim() == "true",
            "{demo} is not running: {}",
            String::from_utf8_lossy(&running.stderr)
        );
        let node = manifest.node(0)?;
        let mut client = RollupClient::new(vec![node.grpc_url()])?;
        let items = |r: &seqnet_proto::pb::Rollup| r.stats.as_ref().map_or(0, |s| s.items);
        let mut before = Vec::new();
        for rollup in &manifest.rollups {
            before.push(items(&client.rollup(rollup.id).await?));
        }
        let waited = Instant::now();
        loop {
            let mut grown = true;
            for (rollup, b) in manifest.rollups.iter().zip(&before) {
                grown &= items(&client.rollup(rollup.id).await?) > *b;
            }
            if grown {
                break;
            }
            anyhow::ensure!(
                waited.elapsed() < Duration::from_secs(60),
                "the demo rollups' data from {demo} was not ordered within 60 s"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        eprintln!(
            "compose: {demo} submits; every demo rollup's data ordered within {:.1} s",
            waited.elapsed().as_secs_f64()
        );
        let report = check::check(&dir, &manifest, None).await;
        eprintln!("{}", report.render());
        anyhow::ensure!(report.passed(), "checker:\n{}", report.render());
        anyhow::Ok(())
    }
    .await;
    let down_started = Instant::now();
    let down = compose::down(&dir);
    eprintln!(
        "compose down in {:.1} s",
        down_started.elapsed().as_secs_f64()
    );
    result?;
    down?;

    // The whole scenario in containers (compose up again on the same state).
    let report = scenario::run_compose(&dir, &scenario, &binaries, &base_image, false).await;
    if std::env::var_os("SEQNET_E2E_KEEP").is_some() {
        eprintln!("keeping {}", tmp.keep().display());
    }
    let report = report?;
    eprintln!("{}", report.render());
    anyhow::ensure!(
        report.passed(),
        "the scenario's checks:\n{}",
        report.render()
    );
    Ok(())
}
