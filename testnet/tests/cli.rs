//! The `seqnet-testnet` binary itself: init (and its refusal to overwrite),
//! up --detach, status, kill, start, down on a one-validator network.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_seqnet-testnet");

fn run(args: &[&str]) -> Output {
    let output = Command::new(BIN)
        .args(args)
        .env("SEQNET_TESTNET_LOG", "warn")
        .output()
        .expect("run seqnet-testnet");
    eprintln!(
        "$ seqnet-testnet {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stops the network even when an assertion fails.
struct Down<'a>(&'a str);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = run(&["down", "--dir", self.0]);
    }
}

#[test]
fn cli_init_up_status_kill_start_down() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("net");
    let dir_s = dir.to_str().expect("utf-8 path");
    let base = seqnet_testnet::pick_free_base_port(1).expect("free ports");
    let base_s = base.to_string();

    let init = run(&[
        "init",
        "--dir",
        dir_s,
        "--validators",
        "1",
        "--base-port",
        &base_s,
        "--rollups",
        "2",
    ]);
    assert!(init.status.success(), "init failed");
    for file in [
        "testnet.json",
        "keys/faucet.json",
        "keys/rollup-2.json",
        "node0/sequencer.toml",
        "node0/cometbft/config/genesis.json",
    ] {
        assert!(Path::new(&dir).join(file).is_file(), "{file} missing");
    }
    let again = run(&["init", "--dir", dir_s, "--validators", "1"]);
    assert!(!again.status.success(), "second init must refuse");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // Without a sequencer binary there is nothing more to check here.
    if seqnet_testnet::binaries::locate_sequencer().is_err() {
        eprintln!("seqnet-sequencer not built: skipping the running part (make test builds it)");
        return;
    }
    let _down = Down(dir_s);
    let up = run(&["up", "--dir", dir_s, "--detach", "--timeout", "300"]);
    assert!(up.status.success(), "up failed");
    let status = run(&["status", "--dir", dir_s]);
    assert!(status.status.success());
    let text = stdout(&status);
    assert!(text.contains("node0") && text.contains("up"), "{text}");
    assert!(text.contains("demo-2"), "{text}");

    let kill = run(&["kill", "--dir", dir_s, "--node", "0"]);
    assert!(kill.status.success());
    let status = stdout(&run(&["status", "--dir", dir_s]));
    assert!(status.contains("down"), "{status}");

    let start = run(&["start", "--dir", dir_s, "--node", "0", "--timeout", "300"]);
    assert!(start.status.success(), "restart failed");
    let down = run(&["down", "--dir", dir_s]);
    assert!(down.status.success());
    assert!(stdout(&down).contains("1 of 1"), "{}", stdout(&down));
}
