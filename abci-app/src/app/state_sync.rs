//! State sync: snapshots taken after Commit every `interval` blocks on a
//! thread of their own (block production never waits for one), listed and
//! served to peers from files, and a snapshot offered to a new node restored
//! chunk by chunk ([`crate::snapshot`]). CometBFT drives it: it checks the
//! offered snapshot's app hash against its light client before offering.

use std::sync::Arc;
use std::time::Instant;

use tendermint_proto::v0_38::abci;

use super::{lock, SeqnetApp};
use crate::snapshot::{self, Manifest, Restore, SnapshotDir, SnapshotError};

/// A snapshot is listed only once this many blocks are committed above it.
/// A node restored from the snapshot at `S` block-syncs from `S + 1` and
/// needs blocks `S + 1` and `S + 2` (the second's commit checks the first)
/// before CometBFT lets it switch to consensus; CometBFT's block pool knows
/// its peers' heights only as of connecting (it asks again every 10 s), so a
/// snapshot at the peers' height then cost a joining node a 10 s wait. Three
/// leaves a block of slack for a peer that committed one more meanwhile.
pub(super) const LIST_AFTER_BLOCKS: u64 = 3;

/// Where and how often this node takes snapshots.
pub(super) struct SnapshotSettings {
    pub dir: SnapshotDir,
    /// Blocks between snapshots (a snapshot at every multiple).
    pub interval: u64,
    /// Snapshots kept on disk (older ones are deleted, unless a peer
    /// listed or fetched from them within [`snapshot::SERVED_GRACE`]).
    pub keep_recent: usize,
}

impl SeqnetApp {
    /// Takes a snapshot of the state after every `interval`-th block into
    /// `dir`, keeping the `keep_recent` latest (at least 1), for peers that
    /// state-sync. `interval` 0 takes none. A local choice: it never changes
    /// the app hash.
    pub fn set_snapshots(&self, dir: std::path::PathBuf, interval: u64, keep_recent: usize) {
        *lock(&self.shared.snapshots) = (interval > 0).then(|| {
            Arc::new(SnapshotSettings {
                dir: SnapshotDir::new(dir),
                interval,
                keep_recent: keep_recent.max(1),
            })
        });
    }

    /// After Commit of `height`: starts a snapshot when one is due and none
    /// is being taken.
    pub(super) fn snapshot_after_commit(&self, height: u64) {
        let Some(settings) = lock(&self.shared.snapshots).clone() else {
            return;
        };
        if height == 0 || !height.is_multiple_of(settings.interval) {
            return;
        }
        if self
            .shared
            .snapshotting
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            tracing::warn!(
                height,
                "snapshot skipped: the last one is still being taken"
            );
            return;
        }
        let app = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("snapshot-{height}"))
            .spawn(move || {
                let started = Instant::now();
                let taken =
                    snapshot::export(&app.shared.store, height).and_then(|(manifest, chunks)| {
                        let bytes: usize = chunks.iter().map(Vec::len).sum();
                        settings
                            .dir
                            .save(&manifest, &chunks, settings.keep_recent)
                            .map(|()| (manifest.chunks(), bytes))
                    });
                match taken {
                    Ok((chunks, bytes)) => tracing::info!(
                        height,
                        chunks,
                        bytes,
                        ms = started.elapsed().as_millis() as u64,
                        "snapshot taken"
                    ),
                    Err(error) => tracing::warn!(height, %error, "snapshot not taken"),
                }
                app.shared
                    .snapshotting
                    .store(false, std::sync::atomic::Ordering::Release);
            });
        if let Err(error) = spawned {
            tracing::warn!(height, %error, "no thread to take a snapshot");
            self.shared
                .snapshotting
                .store(false, std::sync::atomic::Ordering::Release);
        }
    }

    /// The snapshots a peer may restore: every kept one at least
    /// [`LIST_AFTER_BLOCKS`] below the last committed height.
    pub(super) fn snapshots_listed(&self) -> abci::ResponseListSnapshots {
        let Some(settings) = lock(&self.shared.snapshots).clone() else {
            return abci::ResponseListSnapshots::default();
        };
        let last = lock(&self.shared.consensus).last_height;
        let manifests: Vec<Manifest> = settings
            .dir
            .list()
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot list snapshots");
                Vec::new()
            })
            .into_iter()
            .filter(|m| m.height.saturating_add(LIST_AFTER_BLOCKS) <= last)
            .collect();
        // A peer may pick any of them and fetch its chunks from us later.
        for m in &manifests {
            settings.dir.served(m.height);
        }
        abci::ResponseListSnapshots {
            snapshots: manifests
                .iter()
                .map(|m| abci::Snapshot {
                    height: m.height,
                    format: snapshot::FORMAT,
                    chunks: m.chunks(),
                    hash: m.hash().to_vec().into(),
                    metadata: m.metadata().into(),
                })
                .collect(),
        }
    }

    pub(super) fn snapshot_chunk(
        &self,
        request: &abci::RequestLoadSnapshotChunk,
    ) -> abci::ResponseLoadSnapshotChunk {
        let settings = lock(&self.shared.snapshots).clone();
        let chunk = match settings {
            Some(s) if request.format == snapshot::FORMAT => {
                s.dir.served(request.height);
                s.dir
                    .chunk(request.height, request.chunk)
                    .unwrap_or_else(|error| {
                        tracing::warn!(%error, "cannot read a snapshot chunk");
                        None
                    })
            }
            _ => None,
        };
        abci::ResponseLoadSnapshotChunk {
            chunk: chunk.unwrap_or_default().into(),
        }
    }

    pub(super) fn snapshot_offered(
        &self,
        request: &abci::RequestOfferSnapshot,
    ) -> abci::ResponseOfferSnapshot {
        use abci::response_offer_snapshot::Result as Verdict;
        let Some(offered) = &request.snapshot else {
            return abci::ResponseOfferSnapshot {
                result: Verdict::Reject as i32,
            };
        };
        let started = Manifest::from_offer(
            offered.height,
            offered.format,
            offered.chunks,
            &offered.hash,
            &offered.metadata,
        )
        .and_then(|manifest| Restore::new(&self.shared.store, manifest, &request.app_hash));
        let result = match started {
            Ok(restore) => {
                tracing::info!(
                    height = offered.height,
                    chunks = offered.chunks,
                    "restoring a snapshot"
                );
                *lock(&self.shared.restore) = Some(restore);
                Verdict::Accept
            }
            Err(error) => {
                tracing::warn!(height = offered.height, %error, "snapshot refused");
                match error {
                    SnapshotError::Format { .. } => Verdict::RejectFormat,
                    SnapshotError::NotEmpty { .. } => Verdict::Abort,
                    _ => Verdict::Reject,
                }
            }
        };
        abci::ResponseOfferSnapshot {
            result: result as i32,
        }
    }

    pub(super) fn snapshot_chunk_applied(
        &self,
        request: &abci::RequestApplySnapshotChunk,
    ) -> abci::ResponseApplySnapshotChunk {
        use abci::response_apply_snapshot_chunk::Result as Verdict;
        let mut restoring = lock(&self.shared.restore);
        let Some(restore) = restoring.as_mut() else {
            return abci::ResponseApplySnapshotChunk {
                result: Verdict::Abort as i32,
                ..Default::default()
            };
        };
        let height = restore.manifest().height;
        let refused = |result: Verdict, refetch: Vec<u32>| abci::ResponseApplySnapshotChunk {
            result: result as i32,
            refetch_chunks: refetch,
            reject_senders: vec![request.sender.clone()],
        };
        match restore.apply(&self.shared.store, request.index, &request.chunk) {
            Ok(false) => abci::ResponseApplySnapshotChunk {
                result: Verdict::Accept as i32,
                ..Default::default()
            },
            Ok(true) => {
                *restoring = None;
                drop(restoring);
                match self.reload() {
                    Ok(()) => {
                        tracing::info!(height, "snapshot restored");
                        abci::ResponseApplySnapshotChunk {
                            result: Verdict::Accept as i32,
                            ..Default::default()
                        }
                    }
                    // The state is written and checked; what cannot be
                    // read back is a broken store.
                    Err(error) => panic!("restored snapshot {height} cannot be read: {error}"),
                }
            }
            // A chunk that is not the listed one: fetch it again, elsewhere.
            Err(SnapshotError::ChunkHash { index, .. }) => {
                tracing::warn!(height, index, sender = %request.sender, "bad snapshot chunk");
                refused(Verdict::Retry, vec![index])
            }
            Err(SnapshotError::OutOfOrder { want, .. }) => refused(Verdict::Retry, vec![want]),
            // Chunks that match the listed hashes but not a valid state: the
            // snapshot itself is bad.
            Err(error @ (SnapshotError::Malformed { .. } | SnapshotError::Root { .. })) => {
                tracing::warn!(height, %error, sender = %request.sender, "bad snapshot");
                *restoring = None;
                refused(Verdict::RejectSnapshot, Vec::new())
            }
            Err(error) => {
                tracing::error!(height, %error, "snapshot restore failed");
                *restoring = None;
                abci::ResponseApplySnapshotChunk {
                    result: Verdict::Abort as i32,
                    ..Default::default()
                }
            }
        }
    }

    /// Reloads what the app keeps in memory from the store (after a
    /// restore), as on a restart.
    fn reload(&self) -> Result<(), super::AppError> {
        let loaded = super::load_consensus(&self.shared.store)?;
        let mut mempool = lock(&self.shared.mempool);
        mempool.chain_id = loaded.chain_id.clone();
        mempool.params = loaded.params.clone();
        mempool.height = loaded.last_height;
        mempool.delta.reset();
        drop(mempool);
        *lock(&self.shared.consensus) = loaded;
        Ok(())
    }
}
