//! State snapshots for CometBFT's state sync: the state tree's records at a
//! committed height, read from one RocksDB snapshot and cut into chunks
//! ([`export`]), kept as files ([`SnapshotDir`]), and restored on a new node
//! ([`Restore`]): each chunk checked against the snapshot's chunk hashes as
//! it arrives, and the tree rebuilt from the records must have the app hash
//! the node's light client trusts before anything is written.
//!
//! Format 1. A chunk is a run of records `cf (u8: index in Cf::ALL) ||
//! u32 BE key length || key || u32 BE value length || value`, in strictly
//! increasing `(cf, key)` order across the whole snapshot, records of the
//! tree only (what [`Cf::space`] maps to a space). A chunk ends at a record
//! boundary once it holds [`CHUNK_BYTES`] or more. The snapshot's metadata is
//! the chunk hashes (SHA-256, 32 bytes each, in order); its hash is the
//! SHA-256 of the metadata. Nodes with the same state produce the same
//! chunks, so CometBFT can fetch them from several peers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use seqnet_proto::sha256;

use crate::keys;
use crate::store::{Cf, Store, StoreError, WriteSet};

/// The snapshot format this code writes and restores.
pub const FORMAT: u32 = 1;
/// Chunk size target, well under CometBFT's 16 MB chunk message.
pub const CHUNK_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("snapshot of height {want}: the store moved on to height {got} before it was read")]
    MovedOn { want: u64, got: u64 },
    #[error("snapshot file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot manifest {path}: {reason}")]
    Manifest { path: String, reason: String },
    #[error("snapshot format {got}: this node restores format {FORMAT}")]
    Format { got: u32 },
    #[error("snapshot metadata is {got} bytes, want {want} for {chunks} chunk hashes")]
    Metadata {
        got: usize,
        want: usize,
        chunks: u32,
    },
    #[error("snapshot hash {got} is not the hash of its metadata {want}")]
    Hash { got: String, want: String },
    #[error("chunk {got} offered, chunk {want} expected next")]
    OutOfOrder { want: u32, got: u32 },
    #[error("chunk {index}: hash {got}, the snapshot lists {want}")]
    ChunkHash {
        index: u32,
        got: String,
        want: String,
    },
    #[error("chunk {index}: {reason}")]
    Malformed { index: u32, reason: String },
    #[error("restored state's root {got} is not the trusted app hash {want}")]
    Root { got: String, want: String },
    #[error("the store already holds height {height}: state sync needs an empty node")]
    NotEmpty { height: u64 },
}

/// A snapshot's identity as CometBFT lists it: height and chunk hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub height: u64,
    pub chunk_hashes: Vec<[u8; 32]>,
}

impl Manifest {
    /// The chunk hashes, concatenated (CometBFT's `Snapshot.metadata`).
    pub fn metadata(&self) -> Vec<u8> {
        self.chunk_hashes.concat()
    }

    /// CometBFT's `Snapshot.hash`: SHA-256 of the metadata.
    pub fn hash(&self) -> [u8; 32] {
        sha256(&self.metadata())
    }

    pub fn chunks(&self) -> u32 {
        u32::try_from(self.chunk_hashes.len()).unwrap_or(u32::MAX)
    }

    /// The manifest of an offered snapshot, if it is one this node restores.
    pub fn from_offer(
        height: u64,
        format: u32,
        chunks: u32,
        hash: &[u8],
        metadata: &[u8],
    ) -> Result<Manifest, SnapshotError> {
        if format != FORMAT {
            return Err(SnapshotError::Format { got: format });
        }
        let want = usize::try_from(chunks)
            .unwrap_or(usize::MAX)
            .saturating_mul(32);
        if chunks == 0 || metadata.len() != want {
            return Err(SnapshotError::Metadata {
                got: metadata.len(),
                want,
                chunks,
            });
        }
        let manifest = Manifest {
            height,
            chunk_hashes: chunk_hashes(metadata),
        };
        if manifest.hash().as_slice() != hash {
            return Err(SnapshotError::Hash {
                got: hex::encode(hash),
                want: hex::encode(manifest.hash()),
            });
        }
        Ok(manifest)
    }
}

/// Concatenated 32-byte hashes (a whole number of them: checked by the
/// callers), split.
fn chunk_hashes(bytes: &[u8]) -> Vec<[u8; 32]> {
    bytes
        .chunks_exact(32)
        .filter_map(|h| <[u8; 32]>::try_from(h).ok())
        .collect()
}

/// The state tree's records at committed `height`, in chunks. Fails with
/// [`SnapshotError::MovedOn`] when a later block committed before the read
/// began (take the next one).
pub fn export(store: &Store, height: u64) -> Result<(Manifest, Vec<Vec<u8>>), SnapshotError> {
    export_in(store, height, CHUNK_BYTES)
}

fn export_in(
    store: &Store,
    height: u64,
    chunk_bytes: usize,
) -> Result<(Manifest, Vec<Vec<u8>>), SnapshotError> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let version = store.export_tree_records(|cf, key, value| {
        push_record(&mut chunk, cf, key, value);
        if chunk.len() >= chunk_bytes {
            chunks.push(std::mem::take(&mut chunk));
        }
    })?;
    if version != Some(height) {
        return Err(SnapshotError::MovedOn {
            want: height,
            got: version.unwrap_or(0),
        });
    }
    if !chunk.is_empty() || chunks.is_empty() {
        chunks.push(chunk);
    }
    let manifest = Manifest {
        height,
        chunk_hashes: chunks.iter().map(|c| sha256(c)).collect(),
    };
    Ok((manifest, chunks))
}

fn push_record(out: &mut Vec<u8>, cf: Cf, key: &[u8], value: &[u8]) {
    let index = Cf::ALL.iter().position(|c| *c == cf).unwrap_or(0);
    out.push(u8::try_from(index).unwrap_or(u8::MAX));
    for part in [key, value] {
        // Keys and values are far below 4 GiB (transactions are bounded).
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part);
    }
}

/// Splits a chunk into its records, each checked: a known column family of
/// the tree, strictly after the record before it (`last`).
fn read_records(
    index: u32,
    mut chunk: &[u8],
    last: &mut Option<(Cf, Vec<u8>)>,
    mut record: impl FnMut(Cf, Vec<u8>, Vec<u8>),
) -> Result<(), SnapshotError> {
    let malformed = |reason: String| SnapshotError::Malformed { index, reason };
    let take = |chunk: &mut &[u8], len: usize, what: &str| -> Result<Vec<u8>, SnapshotError> {
        if chunk.len() < len {
            return Err(malformed(format!(
                "{what} of {len} bytes cut short ({} left)",
                chunk.len()
            )));
        }
        let (head, tail) = chunk.split_at(len);
        *chunk = tail;
        Ok(head.to_vec())
    };
    while !chunk.is_empty() {
        let cf_index = take(&mut chunk, 1, "column family")?[0];
        let cf = *Cf::ALL
            .get(usize::from(cf_index))
            .ok_or_else(|| malformed(format!("column family {cf_index} is unknown")))?;
        let mut field = |what: &str| -> Result<Vec<u8>, SnapshotError> {
            let len = take(&mut chunk, 4, "length")?;
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            take(&mut chunk, usize::try_from(len).unwrap_or(usize::MAX), what)
        };
        let key = field("key")?;
        let value = field("value")?;
        if cf.space(&key).is_none() {
            return Err(malformed(format!(
                "{} record {} is not part of the state tree",
                cf.name(),
                hex::encode(&key)
            )));
        }
        if last
            .as_ref()
            .is_some_and(|(c, k)| (*c, k.as_slice()) >= (cf, key.as_slice()))
        {
            return Err(malformed(format!(
                "{} record {} is out of order",
                cf.name(),
                hex::encode(&key)
            )));
        }
        *last = Some((cf, key.clone()));
        record(cf, key, value);
    }
    Ok(())
}

/// A restore in progress: the chunks applied so far, held in memory until
/// the last one, when the rebuilt root is checked and everything is written
/// in one synced batch (a refused snapshot leaves the store empty).
pub struct Restore {
    manifest: Manifest,
    app_hash: Vec<u8>,
    next: u32,
    records: WriteSet,
    last: Option<(Cf, Vec<u8>)>,
}

impl Restore {
    /// Starts restoring `manifest` into `store`, whose root must come out as
    /// `app_hash` (the trusted app hash of the snapshot's height).
    pub fn new(
        store: &Store,
        manifest: Manifest,
        app_hash: &[u8],
    ) -> Result<Restore, SnapshotError> {
        if let Some(height) = store.tree_version()? {
            return Err(SnapshotError::NotEmpty { height });
        }
        Ok(Restore {
            manifest,
            app_hash: app_hash.to_vec(),
            next: 0,
            records: WriteSet::default(),
            last: None,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Applies chunk `index` (they come in order); after the last one,
    /// checks the root and writes the state. Returns whether it was the last.
    pub fn apply(
        &mut self,
        store: &Store,
        index: u32,
        chunk: &[u8],
    ) -> Result<bool, SnapshotError> {
        if index != self.next {
            return Err(SnapshotError::OutOfOrder {
                want: self.next,
                got: index,
            });
        }
        let want = self
            .manifest
            .chunk_hashes
            .get(usize::try_from(index).unwrap_or(usize::MAX))
            .ok_or(SnapshotError::OutOfOrder {
                want: self.next,
                got: index,
            })?;
        let got = sha256(chunk);
        if &got != want {
            return Err(SnapshotError::ChunkHash {
                index,
                got: hex::encode(got),
                want: hex::encode(want),
            });
        }
        let records = &mut self.records;
        read_records(index, chunk, &mut self.last, |cf, key, value| {
            records.put(cf, key, value)
        })?;
        self.next = self.next.saturating_add(1);
        if self.next < self.manifest.chunks() {
            return Ok(false);
        }
        self.finish(store)?;
        Ok(true)
    }

    fn finish(&mut self, store: &Store) -> Result<(), SnapshotError> {
        let height = self.manifest.height;
        let (root, tree_writes) = store.tree_update(height, &self.records)?;
        if root.as_slice() != self.app_hash.as_slice() {
            return Err(SnapshotError::Root {
                got: hex::encode(root),
                want: hex::encode(&self.app_hash),
            });
        }
        let mut writes = std::mem::take(&mut self.records);
        writes.extend(tree_writes);
        // As `ChainWrite::put_last_block` writes them.
        writes.put(
            Cf::Meta,
            keys::META_LAST_HEIGHT.to_vec(),
            height.to_be_bytes().to_vec(),
        );
        writes.put(Cf::Meta, keys::META_LAST_APP_HASH.to_vec(), root.to_vec());
        // No block below the snapshot is here: reads below it say so.
        writes.put(
            Cf::Blocks,
            keys::LOCAL_RETAIN_HEIGHT.to_vec(),
            height.saturating_add(1).to_be_bytes().to_vec(),
        );
        store.commit(&writes)?;
        Ok(())
    }
}

/// How long a snapshot a peer listed or fetched from is kept past its
/// turn: a joining node lists snapshots, picks one after CometBFT's
/// discovery time and fetches its chunks one by one; deleting it meanwhile
/// would leave that node asking for chunks nobody has.
pub const SERVED_GRACE: Duration = Duration::from_secs(60);

/// Snapshots kept as files: `<dir>/<height>/chunk-<i>` and
/// `<dir>/<height>/manifest` (`height u64 BE || chunk hashes`), each
/// snapshot written under a temporary name and renamed when complete.
pub struct SnapshotDir {
    root: PathBuf,
    /// When a peer last listed or fetched from each snapshot (local
    /// bookkeeping, never part of the state).
    served: std::sync::Mutex<std::collections::BTreeMap<u64, Instant>>,
    grace: Duration,
}

impl SnapshotDir {
    pub fn new(root: impl Into<PathBuf>) -> SnapshotDir {
        SnapshotDir::with_grace(root, SERVED_GRACE)
    }

    /// As [`SnapshotDir::new`], keeping served snapshots for `grace`.
    pub fn with_grace(root: impl Into<PathBuf>, grace: Duration) -> SnapshotDir {
        SnapshotDir {
            root: root.into(),
            served: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            grace,
        }
    }

    /// Marks the snapshot at `height` as in use by a peer now.
    pub fn served(&self, height: u64) {
        if let Ok(mut served) = self.served.lock() {
            served.insert(height, Instant::now());
        }
    }

    /// Whether a peer listed or fetched from the snapshot at `height`
    /// within the grace period.
    fn in_use(&self, height: u64) -> bool {
        self.served
            .lock()
            .ok()
            .and_then(|served| served.get(&height).copied())
            .is_some_and(|at| at.elapsed() < self.grace)
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
        move |source| SnapshotError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Writes a snapshot; keeps only the `keep_recent` highest, and older
    /// ones a peer listed or fetched from within the grace period.
    pub fn save(
        &self,
        manifest: &Manifest,
        chunks: &[Vec<u8>],
        keep_recent: usize,
    ) -> Result<(), SnapshotError> {
        let partial = self.root.join(format!("{}.partial", manifest.height));
        let done = self.root.join(manifest.height.to_string());
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(Self::io(&partial))?;
        }
        std::fs::create_dir_all(&partial).map_err(Self::io(&partial))?;
        for (index, chunk) in chunks.iter().enumerate() {
            let path = partial.join(format!("chunk-{index}"));
            std::fs::write(&path, chunk).map_err(Self::io(&path))?;
        }
        let mut bytes = manifest.height.to_be_bytes().to_vec();
        bytes.extend_from_slice(&manifest.metadata());
        let path = partial.join("manifest");
        std::fs::write(&path, bytes).map_err(Self::io(&path))?;
        if done.exists() {
            std::fs::remove_dir_all(&done).map_err(Self::io(&done))?;
        }
        std::fs::rename(&partial, &done).map_err(Self::io(&done))?;
        let mut heights: Vec<u64> = self.list()?.iter().map(|m| m.height).collect();
        heights.sort_unstable_by(|a, b| b.cmp(a));
        for old in heights.into_iter().skip(keep_recent.max(1)) {
            if self.in_use(old) {
                continue;
            }
            let path = self.root.join(old.to_string());
            std::fs::remove_dir_all(&path).map_err(Self::io(&path))?;
            if let Ok(mut served) = self.served.lock() {
                served.remove(&old);
            }
        }
        Ok(())
    }

    /// Every complete snapshot, highest first.
    pub fn list(&self) -> Result<Vec<Manifest>, SnapshotError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&self.root)(e)),
        };
        let mut manifests = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Self::io(&self.root))?;
            let name = entry.file_name();
            let Some(height) = name.to_str().and_then(|n| n.parse::<u64>().ok()) else {
                continue; // partial or foreign
            };
            let path = entry.path().join("manifest");
            let bytes = std::fs::read(&path).map_err(Self::io(&path))?;
            let bad = |reason: &str| SnapshotError::Manifest {
                path: path.display().to_string(),
                reason: reason.into(),
            };
            let (head, hashes) = bytes
                .split_first_chunk::<8>()
                .ok_or_else(|| bad("shorter than its height"))?;
            if u64::from_be_bytes(*head) != height || hashes.is_empty() || hashes.len() % 32 != 0 {
                return Err(bad("height or chunk hashes do not match its directory"));
            }
            manifests.push(Manifest {
                height,
                chunk_hashes: chunk_hashes(hashes),
            });
        }
        manifests.sort_by_key(|m| std::cmp::Reverse(m.height));
        Ok(manifests)
    }

    /// Chunk `index` of the snapshot at `height`, if it is kept.
    pub fn chunk(&self, height: u64, index: u32) -> Result<Option<Vec<u8>>, SnapshotError> {
        let path = self
            .root
            .join(height.to_string())
            .join(format!("chunk-{index}"));
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io(&path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use seqnet_proto::state_proof::{self, Space};

    /// A store with records in several spaces over three versions.
    fn source() -> (tempfile::TempDir, Store, [u8; 32]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut root = [0; 32];
        for version in 0..3u64 {
            let mut set = WriteSet::default();
            for i in 0..40u8 {
                set.put(Cf::Accounts, vec![i; 32], vec![i, version as u8]);
            }
            set.put(Cf::Rollups, vec![version as u8; 8], b"rollup".to_vec());
            set.put(Cf::Meta, b"fee_pool".to_vec(), vec![version as u8; 8]);
            set.put(Cf::Roots, (version + 1).to_be_bytes().to_vec(), vec![7; 40]);
            // Outside the tree: not in a snapshot.
            set.put(
                Cf::Blocks,
                version.to_be_bytes().to_vec(),
                b"block".to_vec(),
            );
            if version == 2 {
                set.delete(Cf::Accounts, vec![5; 32]);
            }
            let (new_root, tree) = store.tree_update(version, &set).expect("tree");
            set.extend(tree);
            set.put(
                Cf::Meta,
                keys::META_LAST_HEIGHT.to_vec(),
                version.to_be_bytes().to_vec(),
            );
            set.put(
                Cf::Meta,
                keys::META_LAST_APP_HASH.to_vec(),
                new_root.to_vec(),
            );
            store.commit(&set).expect("commit");
            root = new_root;
        }
        (dir, store, root)
    }

    fn empty() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        (dir, store)
    }

    fn restore(
        store: &Store,
        manifest: &Manifest,
        root: &[u8],
        chunks: &[Vec<u8>],
    ) -> Result<bool, SnapshotError> {
        let mut restore = Restore::new(store, manifest.clone(), root)?;
        let mut done = false;
        for (index, chunk) in chunks.iter().enumerate() {
            done = restore.apply(store, index as u32, chunk)?;
        }
        Ok(done)
    }

    /// Restored, the state is the original's record for record and root for
    /// root: its own snapshot is byte for byte the same, proofs verify
    /// under the original root, and blocks below the height read as pruned.
    #[test]
    fn snapshot_round_trips_byte_for_byte_and_root_for_root() {
        let (_src_dir, src, root) = source();
        let (manifest, chunks) = export_in(&src, 2, 200).expect("export");
        assert!(chunks.len() > 5, "{} chunks", chunks.len());
        let (_dst_dir, dst) = empty();
        assert!(restore(&dst, &manifest, &root, &chunks).expect("restore"));
        let (again, again_chunks) = export_in(&dst, 2, 200).expect("export restored");
        assert_eq!(again, manifest);
        assert_eq!(again_chunks, chunks);
        assert_eq!(
            dst.get(Cf::Meta, keys::META_LAST_APP_HASH).expect("get"),
            Some(root.to_vec())
        );
        for i in [0u8, 5, 39] {
            let read = dst.prove(Cf::Accounts, &[i; 32]).expect("prove");
            let value = (i != 5).then(|| vec![i, 2]);
            state_proof::verify(
                &root,
                Space::Accounts,
                &[i; 32],
                value.as_deref(),
                &read.proof,
            )
            .expect("proof under the original root");
        }
        assert_eq!(dst.get(Cf::Blocks, &1u64.to_be_bytes()).expect("get"), None);
        assert_eq!(
            dst.get(Cf::Blocks, keys::LOCAL_RETAIN_HEIGHT).expect("get"),
            Some(3u64.to_be_bytes().to_vec())
        );
        // One chunk or many: the same records.
        let (one, one_chunk) = export(&src, 2).expect("export");
        assert_eq!((one.chunks(), one_chunk.concat()), (1, chunks.concat()));
    }

    #[test]
    fn corrupted_reordered_or_forged_chunks_are_refused_and_nothing_is_written() {
        let (_src_dir, src, root) = source();
        let (manifest, chunks) = export_in(&src, 2, 200).expect("export");
        let (_dst_dir, dst) = empty();
        // A flipped byte: the chunk's hash is wrong, named by index.
        let mut corrupted = chunks.clone();
        corrupted[3][10] ^= 1;
        assert!(matches!(
            restore(&dst, &manifest, &root, &corrupted),
            Err(SnapshotError::ChunkHash { index: 3, .. })
        ));
        // Two chunks swapped.
        let mut swapped = chunks.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            restore(&dst, &manifest, &root, &swapped),
            Err(SnapshotError::ChunkHash { index: 1, .. })
        ));
        let mut restore_state = Restore::new(&dst, manifest.clone(), &root).expect("restore");
        assert!(matches!(
            restore_state.apply(&dst, 1, &chunks[1]),
            Err(SnapshotError::OutOfOrder { want: 0, got: 1 })
        ));
        // A snapshot whose chunks match its own hashes but whose state is
        // not the trusted one: refused at the root.
        let mut forged = chunks.clone();
        let at = forged[0].len() - 1;
        forged[0][at] ^= 1; // the last byte of a value
        let forged_manifest = Manifest {
            height: 2,
            chunk_hashes: forged.iter().map(|c| sha256(c)).collect(),
        };
        assert!(matches!(
            restore(&dst, &forged_manifest, &root, &forged),
            Err(SnapshotError::Root { .. })
        ));
        // Records out of order, or outside the tree, in a self-consistent
        // snapshot: refused by name.
        let mut out_of_order = Vec::new();
        push_record(&mut out_of_order, Cf::Accounts, &[2; 32], b"x");
        push_record(&mut out_of_order, Cf::Accounts, &[1; 32], b"x");
        let mut outside = Vec::new();
        push_record(&mut outside, Cf::Blocks, &[1; 8], b"x");
        for (chunk, what) in [(out_of_order, "out of order"), (outside, "not part of")] {
            let m = Manifest {
                height: 2,
                chunk_hashes: vec![sha256(&chunk)],
            };
            let verdict = restore(&dst, &m, &root, &[chunk]);
            assert!(
                matches!(&verdict, Err(SnapshotError::Malformed { index: 0, reason }) if reason.contains(what)),
                "{verdict:?}"
            );
        }
        // After all that, the store is still empty and takes the real one.
        assert_eq!(dst.tree_version().expect("version"), None);
        assert!(restore(&dst, &manifest, &root, &chunks).expect("restore"));
        // A node with state refuses a restore.
        assert!(matches!(
            Restore::new(&dst, manifest, &root),
            Err(SnapshotError::NotEmpty { height: 2 })
        ));
    }

    #[test]
    fn offers_are_checked_and_exports_name_a_moved_store() {
        let (_src_dir, src, _) = source();
        let (manifest, _) = export_in(&src, 2, 200).expect("export");
        let offer = |format, chunks, hash: &[u8], metadata: &[u8]| {
            Manifest::from_offer(2, format, chunks, hash, metadata)
        };
        let (hash, metadata) = (manifest.hash(), manifest.metadata());
        assert_eq!(
            offer(FORMAT, manifest.chunks(), &hash, &metadata).expect("offer"),
            manifest
        );
        assert!(matches!(
            offer(2, manifest.chunks(), &hash, &metadata),
            Err(SnapshotError::Format { got: 2 })
        ));
        assert!(matches!(
            offer(FORMAT, manifest.chunks() + 1, &hash, &metadata),
            Err(SnapshotError::Metadata { .. })
        ));
        assert!(matches!(
            offer(FORMAT, manifest.chunks(), &[0; 32], &metadata),
            Err(SnapshotError::Hash { .. })
        ));
        assert!(matches!(
            export(&src, 1),
            Err(SnapshotError::MovedOn { want: 1, got: 2 })
        ));
    }

    #[test]
    fn snapshot_files_keep_the_most_recent() {
        let (_src_dir, src, _) = source();
        let (manifest, chunks) = export_in(&src, 2, 200).expect("export");
        let dir = tempfile::tempdir().expect("tempdir");
        let files = SnapshotDir::new(dir.path().join("snapshots"));
        assert_eq!(files.list().expect("list"), vec![]);
        for height in [2, 4, 6] {
            let m = Manifest {
                height,
                ..manifest.clone()
            };
            files.save(&m, &chunks, 2).expect("save");
        }
        let kept: Vec<u64> = files
            .list()
            .expect("list")
            .iter()
            .map(|m| m.height)
            .collect();
        assert_eq!(kept, vec![6, 4]);
        assert_eq!(files.chunk(6, 3).expect("chunk"), Some(chunks[3].clone()));
        assert_eq!(files.chunk(2, 0).expect("chunk"), None);
        assert_eq!(files.chunk(6, 999).expect("chunk"), None);
    }

    /// A snapshot a peer is restoring from outlives its turn for the grace
    /// period, then goes like the others.
    #[test]
    fn a_served_snapshot_is_kept_while_a_peer_may_need_it() {
        let (_src_dir, src, _) = source();
        let (manifest, chunks) = export_in(&src, 2, 200).expect("export");
        let dir = tempfile::tempdir().expect("tempdir");
        let at = |height| Manifest {
            height,
            ..manifest.clone()
        };
        let heights = |files: &SnapshotDir| -> Vec<u64> {
            files
                .list()
                .expect("list")
                .iter()
                .map(|m| m.height)
                .collect()
        };
        let files = SnapshotDir::with_grace(dir.path().join("kept"), Duration::from_secs(3600));
        files.save(&at(2), &chunks, 1).expect("save");
        files.served(2);
        files.save(&at(4), &chunks, 1).expect("save");
        files.save(&at(6), &chunks, 1).expect("save");
        assert_eq!(heights(&files), vec![6, 2]);
        let files = SnapshotDir::with_grace(dir.path().join("expired"), Duration::ZERO);
        files.save(&at(2), &chunks, 1).expect("save");
        files.served(2);
        files.save(&at(4), &chunks, 1).expect("save");
        assert_eq!(heights(&files), vec![4]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Records in order encode and read back unchanged; any truncation
        /// is refused, never a panic.
        #[test]
        fn records_round_trip(
            keys in proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 1..40), 1..20),
            value in proptest::collection::vec(any::<u8>(), 0..60),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut chunk = Vec::new();
            for key in &keys {
                push_record(&mut chunk, Cf::Accounts, key, &value);
            }
            let mut read = Vec::new();
            read_records(0, &chunk, &mut None, |cf, k, v| read.push((cf, k, v))).expect("read");
            let want: Vec<_> = keys.iter().map(|k| (Cf::Accounts, k.clone(), value.clone())).collect();
            prop_assert_eq!(read, want);
            let cut = cut.index(chunk.len());
            if cut > 0 {
                let _ = read_records(0, &chunk[..cut], &mut None, |_, _, _| {});
            }
        }
    }
}
