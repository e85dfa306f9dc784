//! A short `seqnet-testnet bench` run (kvstore, then seqnet, open and
//! closed loop, a few seconds each) writes its JSON report. The figures are
//! printed, not asserted: this machine is shared.

use std::process::Command;

#[test]
fn short_bench_writes_its_json() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("seqnet-bench-").tempdir()?;
    let out = dir.path().join("bench.json");
    let exe = env!("CARGO_BIN_EXE_seqnet-testnet");
    let output = Command::new(exe)
        .args([
            "bench",
            "--duration",
            "12",
            "--warmup",
            "2",
            "--drain",
            "15",
            "--rate",
            "50",
            "--open-workers",
            "4",
            "--closed-workers",
            "8",
            "--tx-bytes",
            "256",
            "--out",
        ])
        .arg(&out)
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}");
    anyhow::ensure!(
        output.status.success(),
        "bench failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    let results = report["results"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no results in {report}"))?;
    let apps: Vec<&str> = results.iter().filter_map(|r| r["app"].as_str()).collect();
    assert_eq!(apps, ["kvstore", "seqnet"]);
    for r in results {
        for phase in ["open", "closed"] {
            assert!(r[phase]["tps"].is_number(), "{phase} of {r}");
            assert!(r[phase]["p50_ms"].is_number(), "{phase} of {r}");
        }
    }
    assert!(report["ratio"]["closed_tps"].is_number(), "{report}");
    assert!(stdout.contains("seqnet/kvstore"), "{stdout}");
    Ok(())
}
