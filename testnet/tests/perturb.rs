//! The CI scenario (`manifests/ci.toml`) in process mode: four validators,
//! two provers and an aggregator under open-loop load through node0; node1
//! killed (-9) and restarted, node2 paused and resumed, node3 disconnected
//! (its own network namespace when run as root) and reconnected, node1
//! restarted with wiped state (block sync), a 5th node joining by state
//! sync and staking as a validator. Every node must recover (the joined one: catch up), the
//! invariant checker must pass and the aggregator must have submitted
//! aggregates. Prints each perturbation's recovery time.

use std::path::Path;

use seqnet_testnet::scenario::{self, Scenario};
use seqnet_testnet::Binaries;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_scenario_recovers_and_passes_the_checker() -> anyhow::Result<()> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/ci.toml");
    let scenario = Scenario::load(&manifest)?;
    let kinds: Vec<_> = scenario.perturbations.iter().map(|p| p.kind).collect();
    for kind in [
        scenario::PerturbationKind::Kill,
        scenario::PerturbationKind::Pause,
        scenario::PerturbationKind::Disconnect,
        scenario::PerturbationKind::Join,
        scenario::PerturbationKind::Stake,
    ] {
        assert!(kinds.contains(&kind), "ci.toml lacks {kind:?}");
    }
    let tmp = tempfile::Builder::new()
        .prefix("seqnet-perturb-")
        .tempdir()?;
    let dir = tmp.path().join("net");
    let binaries = Binaries::locate()?;
    // The joining node takes the next block of ports.
    let base_port = seqnet_testnet::pick_free_base_port(scenario.validators.len() + 1)?;
    scenario::init(&dir, &scenario, Some(base_port), false, &binaries)?;
    let report = scenario::run(&dir, &scenario, binaries, false).await;
    if std::env::var_os("SEQNET_E2E_KEEP").is_some() {
        eprintln!("keeping {}", tmp.keep().display());
    }
    let report = report?;
    eprintln!("{}", report.render());
    assert_eq!(report.perturbations.len(), scenario.perturbations.len());
    assert!(report.passed(), "scenario failed:\n{}", report.render());
    let load = report.load.as_ref().expect("the scenario has load");
    assert!(load.acked > 0, "no load was acknowledged");
    Ok(())
}
