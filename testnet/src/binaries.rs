//! Finding the programs a testnet runs: `cometbft` and `seqnet-sequencer`.
//!
//! - `cometbft`: `$COMETBFT_BIN`, else `cometbft` on `PATH`, else
//!   `$HOME/go/bin/cometbft`.
//! - `seqnet-sequencer`: `$SEQNET_BIN_DIR/seqnet-sequencer`, else next to the
//!   running executable (`target/debug/`, also from `target/debug/deps/` where
//!   test executables live), else on `PATH`.
//! - `seqnet-prover` (only for testnets with provers) and `seqnet-testnet`
//!   (only for the compose demo-rollup container): the same places as
//!   `seqnet-sequencer`.

use std::path::{Path, PathBuf};

use crate::error::{Result, TestnetError};

pub const COMETBFT: &str = "cometbft";
pub const SEQUENCER: &str = "seqnet-sequencer";
pub const PROVER: &str = "seqnet-prover";
pub const TESTNET: &str = "seqnet-testnet";

/// Paths of the programs a testnet runs.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub cometbft: PathBuf,
    pub sequencer: PathBuf,
    /// `None` when it is not built (testnets without provers do not need it).
    pub prover: Option<PathBuf>,
}

impl Binaries {
    /// Finds both programs (see the module docs for the search order).
    pub fn locate() -> Result<Binaries> {
        Ok(Binaries {
            cometbft: locate_cometbft()?,
            sequencer: locate_sequencer()?,
            prover: locate_prover().ok(),
        })
    }

    /// The prover binary, or why it is missing.
    pub fn prover(&self) -> Result<PathBuf> {
        match &self.prover {
            Some(path) => Ok(path.clone()),
            None => locate_prover(),
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Finds `cometbft`.
pub fn locate_cometbft() -> Result<PathBuf> {
    let mut searched = Vec::new();
    if let Some(bin) = std::env::var_os("COMETBFT_BIN") {
        let bin = PathBuf::from(bin);
        if is_executable(&bin) {
            return Ok(bin);
        }
        searched.push(format!("$COMETBFT_BIN={}", bin.display()));
    }
    if let Some(bin) = on_path(COMETBFT) {
        return Ok(bin);
    }
    searched.push("PATH".into());
    if let Some(home) = std::env::var_os("HOME") {
        let bin = PathBuf::from(home).join("go/bin").join(COMETBFT);
        if is_executable(&bin) {
            return Ok(bin);
        }
        searched.push(bin.display().to_string());
    }
    Err(TestnetError::BinaryMissing {
        name: COMETBFT,
        searched: searched.join(", "),
        hint: "install it with `make deps` (go install github.com/cometbft/cometbft/cmd/cometbft@v0.38.25) or set COMETBFT_BIN",
    })
}

/// Finds `seqnet-sequencer`.
pub fn locate_sequencer() -> Result<PathBuf> {
    locate_seqnet(SEQUENCER)
}

/// Finds `seqnet-prover`.
pub fn locate_prover() -> Result<PathBuf> {
    locate_seqnet(PROVER)
}

/// Finds `seqnet-testnet` (the compose demo-rollup container runs it).
pub fn locate_testnet() -> Result<PathBuf> {
    locate_seqnet(TESTNET)
}

/// Finds one of seqnet's own binaries (see the module docs).
fn locate_seqnet(name: &'static str) -> Result<PathBuf> {
    let mut searched = Vec::new();
    if let Some(dir) = std::env::var_os("SEQNET_BIN_DIR") {
        let bin = PathBuf::from(dir).join(name);
        if is_executable(&bin) {
            return Ok(bin);
        }
        searched.push(format!("$SEQNET_BIN_DIR ({})", bin.display()));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/debug/seqnet-testnet -> target/debug/;
        // target/debug/deps/e2e-<hash> -> target/debug/deps/, then target/debug/.
        for dir in exe.ancestors().skip(1).take(2) {
            let bin = dir.join(name);
            if is_executable(&bin) {
                return Ok(bin);
            }
            searched.push(bin.display().to_string());
        }
    }
    if let Some(bin) = on_path(name) {
        return Ok(bin);
    }
    searched.push("PATH".into());
    Err(TestnetError::BinaryMissing {
        name,
        searched: searched.join(", "),
        hint: "build it with `make build` (cargo build --workspace --bins) or set SEQNET_BIN_DIR",
    })
}

/// Runs `cometbft version` and returns its output.
pub fn cometbft_version(cometbft: &Path) -> Result<String> {
    let out = crate::process::run_checked(std::process::Command::new(cometbft).arg("version"))?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}
