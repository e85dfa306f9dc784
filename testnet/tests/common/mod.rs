//! What several end-to-end tests share.

use std::path::PathBuf;

use tempfile::TempDir;

/// A fresh directory for one test's testnet: removed when the guard drops,
/// kept (and printed) when `SEQNET_E2E_KEEP` is set, for a post-mortem.
pub fn test_dir(prefix: &str) -> std::io::Result<(Option<TempDir>, PathBuf)> {
    let dir = TempDir::with_prefix(prefix)?;
    Ok(if std::env::var_os("SEQNET_E2E_KEEP").is_some() {
        let path = dir.keep();
        eprintln!("keeping the testnet in {}", path.display());
        (None, path)
    } else {
        let path = dir.path().to_path_buf();
        (Some(dir), path)
    })
}
