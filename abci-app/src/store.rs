//! RocksDB storage: column families, reads of committed state, the
//! [`WriteSet`] that one block (or genesis) accumulates and commits in a single
//! atomic, synced write batch, and the authenticated state tree (a Jellyfish
//! Merkle Tree whose root is the app hash) kept beside the records.
//!
//! A block's new tree nodes (most of its bytes) may be written ahead of its
//! Commit, while the validators vote ([`Store::prewrite_nodes`]): they are
//! keyed by the block's height, which no committed root reaches yet, so
//! until Commit's synced batch they are invisible, and after a crash the
//! replayed block writes them again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use jmt::storage::{LeafNode, Node, NodeKey, TreeReader};
use jmt::{KeyHash, OwnedValue, RootHash, Sha256Jmt};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use seqnet_proto::state_proof::{self, Space};

use crate::keys;

/// Column families; each owns one kind of record (see `keys`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cf {
    /// Chain metadata: chain id, parameters, last height and app hash, fee pool.
    Meta,
    /// `address(32)` → `pb::Account`.
    Accounts,
    /// `rollup_id(8 BE)` → `pb::Rollup`.
    Rollups,
    /// `rollup_id(8 BE) || height(8 BE)` → `pb::Batch` (without proof and root).
    Batches,
    /// `height(8 BE)` → `pb::BlockRecord`.
    Blocks,
    /// Forced-inclusion requests: `keys::forced_request`, `keys::forced_by_hash`.
    Forced,
    /// Proving: `keys::proof_job` (proven jobs), `keys::rollup_proving`.
    Proofs,
    /// `height(8 BE)` → the height's NMT root commitment (in the tree, so a
    /// batch is proven under the app hash through it).
    Roots,
    /// The state tree's nodes: borsh `NodeKey` → borsh `Node`, the latest
    /// version only (stale nodes are deleted in the commit that replaces them).
    TreeNodes,
    /// The state tree's leaf keys: `leaf key(32)` → `cf name || 0 || key`, so
    /// the tree finds a leaf's value in its column family.
    TreeKeys,
}

impl Cf {
    pub const ALL: [Cf; 10] = [
        Cf::Meta,
        Cf::Accounts,
        Cf::Rollups,
        Cf::Batches,
        Cf::Blocks,
        Cf::Forced,
        Cf::Proofs,
        Cf::Roots,
        Cf::TreeNodes,
        Cf::TreeKeys,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::Accounts => "accounts",
            Cf::Rollups => "rollups",
            Cf::Batches => "batches",
            Cf::Blocks => "blocks",
            Cf::Forced => "forced",
            Cf::Proofs => "proofs",
            Cf::Roots => "roots",
            Cf::TreeNodes => "tree_nodes",
            Cf::TreeKeys => "tree_keys",
        }
    }

    /// The column family that holds the records of `space`.
    pub fn of_space(space: Space) -> Cf {
        match space {
            Space::Meta => Cf::Meta,
            Space::Accounts => Cf::Accounts,
            Space::Rollups => Cf::Rollups,
            Space::Forced => Cf::Forced,
            Space::Proofs => Cf::Proofs,
            Space::Roots => Cf::Roots,
        }
    }

    fn from_name(name: &[u8]) -> Option<Cf> {
        Cf::ALL.into_iter().find(|cf| cf.name().as_bytes() == name)
    }

    /// The tree space of the record `(self, key)`, or `None` for what the app
    /// hash does not commit to directly: batch items (under their height's
    /// NMT root), block records and stored proofs (derived from the block),
    /// the tree itself, and the last height and app hash (written after the
    /// root is known).
    pub fn space(self, key: &[u8]) -> Option<Space> {
        match self {
            Cf::Meta
                if key == keys::META_LAST_HEIGHT
                    || key == keys::META_LAST_APP_HASH
                    || key == keys::META_TREE_VERSION
                    || key == keys::META_STALE_TREE_NODES =>
            {
                None
            }
            Cf::Meta => Some(Space::Meta),
            Cf::Accounts => Some(Space::Accounts),
            Cf::Rollups => Some(Space::Rollups),
            Cf::Forced => Some(Space::Forced),
            Cf::Proofs => Some(Space::Proofs),
            Cf::Roots => Some(Space::Roots),
            Cf::Batches | Cf::Blocks | Cf::TreeNodes | Cf::TreeKeys => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb at {path}: {source}")]
    Open {
        path: String,
        source: rocksdb::Error,
    },
    #[error("rocksdb {op} in column family {cf}: {source}")]
    Db {
        op: &'static str,
        cf: &'static str,
        source: rocksdb::Error,
    },
    #[error("corrupt {what} in store: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("state tree at version {version}: {detail}")]
    Tree { version: u64, detail: String },
}

/// A stored key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Pending writes, ordered so that their digest is deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSet {
    entries: BTreeMap<(Cf, Vec<u8>), Option<Vec<u8>>>,
}

impl WriteSet {
    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.entries.insert((cf, key), Some(value));
    }

    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.entries.insert((cf, key), None);
    }

    /// `Some(None)` means deleted in this set; `None` means untouched.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Option<Option<&Vec<u8>>> {
        self.entries
            .get(&(cf, key.to_vec()))
            .map(|value| value.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn extend(&mut self, other: WriteSet) {
        self.entries.extend(other.entries);
    }

    /// Every pending write in key order (`None`: a deletion).
    pub fn entries(&self) -> impl Iterator<Item = (Cf, &[u8], Option<&[u8]>)> {
        self.entries
            .iter()
            .map(|((cf, key), value)| (*cf, key.as_slice(), value.as_deref()))
    }
}

/// A record read from the committed state with its tree proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenRead {
    /// The committed height whose app hash the proof is under (checked
    /// against header `version + 1`).
    pub version: u64,
    pub value: Option<Vec<u8>>,
    /// `seqnet_proto::state_proof` wire form.
    pub proof: Vec<u8>,
}

/// What the app hash commits to.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppHashScheme {
    /// The state tree's root (the protocol).
    StateTree,
    /// SHA-256 over the block's writes, chained: the app hash before the
    /// state tree, kept only as the baseline the benches (`state_commit`,
    /// `block_commit`) measure the tree against in the same run. Proves
    /// nothing.
    WriteDigest,
}

/// The node's RocksDB. Reads see the last committed block only.
pub struct Store {
    db: DB,
    scheme: AppHashScheme,
    /// Tree nodes written ahead of Commit; the lock also orders those
    /// writes against Commit's.
    prewritten: Mutex<Prewritten>,
}

/// What of one height's tree writes is on disk ahead of its Commit: the
/// proposals whose new nodes were written, in that order (block hash, node
/// keys), and whether the last committed block's stale nodes are deleted.
#[derive(Default)]
struct Prewritten {
    version: u64,
    proposals: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    stale_deleted: bool,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let cfs = Cf::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), Options::default()));
        let db =
            DB::open_cf_descriptors(&options, path, cfs).map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Store {
            db,
            scheme: AppHashScheme::StateTree,
            prewritten: Mutex::default(),
        })
    }

    /// Compacts every column family (benchmarks only: measure blocks on a
    /// settled store, not the compaction debt a bulk genesis leaves).
    #[doc(hidden)]
    pub fn compact(&self) -> Result<(), StoreError> {
        for cf in Cf::ALL {
            self.db
                .compact_range_cf(self.handle(cf)?, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// A store whose app hash is `scheme` (benchmarks only).
    #[doc(hidden)]
    pub fn open_with_scheme(path: &Path, scheme: AppHashScheme) -> Result<Store, StoreError> {
        let mut store = Store::open(path)?;
        store.scheme = scheme;
        Ok(store)
    }

    fn handle(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(cf.name()).ok_or(StoreError::Corrupt {
            what: "column family",
            detail: format!("{} is missing", cf.name()),
        })
    }

    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(self.handle(cf)?, key)
            .map_err(|source| StoreError::Db {
                op: "get",
                cf: cf.name(),
                source,
            })
    }

    /// Entries whose key starts with `prefix`, in key order, from `start` on.
    pub fn scan_prefix(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.handle(cf)?,
            rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(|source| StoreError::Db {
                op: "iterate",
                cf: cf.name(),
                source,
            })?;
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((key.to_vec(), value.to_vec()));
        }
        Ok(out)
    }

    /// The entry with the greatest key at or before `key` whose key starts
    /// with `prefix`, if any.
    pub fn last_at_or_before(
        &self,
        cf: Cf,
        prefix: &[u8],
        key: &[u8],
    ) -> Result<Option<Entry>, StoreError> {
        let mut iter = self.db.iterator_cf(
            self.handle(cf)?,
            rocksdb::IteratorMode::From(key, rocksdb::Direction::Reverse),
        );
        match iter.next() {
            Some(item) => {
                let (found, value) = item.map_err(|source| StoreError::Db {
                    op: "iterate",
                    cf: cf.name(),
                    source,
                })?;
                Ok(found
                    .starts_with(prefix)
                    .then(|| (found.to_vec(), value.to_vec())))
            }
            None => Ok(None),
        }
    }

    /// Writes `set` atomically and waits until it is on disk (with a tree
    /// update: deleting the nodes the last one replaced).
    pub fn commit(&self, set: &WriteSet) -> Result<(), StoreError> {
        self.commit_block(0, &[], set)
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(batch, &options)
            .map_err(|source| StoreError::Db {
                op: "write batch",
                cf: "all",
                source,
            })
    }

    /// Writes the new tree nodes among a block's `writes` (the block at
    /// `version`, hash `block`) ahead of its Commit: not part of any
    /// committed root yet, so invisible to reads, and on disk (WAL synced)
    /// before Commit, which then writes only the rest. Skipped (`false`)
    /// once that height is committed: a proposal's late background work
    /// must not overwrite the decided block's nodes.
    pub fn prewrite_nodes(
        &self,
        version: u64,
        block: &[u8],
        writes: &WriteSet,
    ) -> Result<bool, StoreError> {
        let mut prewritten = self.lock_prewritten();
        if self
            .tree_version()?
            .is_some_and(|committed| committed >= version)
        {
            return Ok(false);
        }
        if prewritten.version != version {
            *prewritten = Prewritten {
                version,
                ..Prewritten::default()
            };
        }
        let mut batch = WriteBatch::default();
        let mut node_keys = Vec::new();
        let handle = self.handle(Cf::TreeNodes)?;
        for ((cf, key), value) in &writes.entries {
            if let (Cf::TreeNodes, Some(value)) = (cf, value) {
                batch.put_cf(handle, key, value);
                node_keys.push(key.clone());
            }
        }
        if !prewritten.stale_deleted {
            for key in self.stale_deletes()? {
                batch.delete_cf(handle, key);
            }
        }
        let db_error = |op| {
            move |source| StoreError::Db {
                op,
                cf: Cf::TreeNodes.name(),
                source,
            }
        };
        if node_keys.is_empty() {
            return Ok(false);
        }
        self.db.write(batch).map_err(db_error("prewrite nodes"))?;
        self.db.flush_wal(true).map_err(db_error("sync WAL"))?;
        prewritten.stale_deleted = true;
        prewritten.proposals.retain(|(hash, _)| hash != block);
        prewritten.proposals.push((block.to_vec(), node_keys));
        Ok(true)
    }

    /// Commits the block at `version` (hash `block`; empty when unknown):
    /// `writes` in one synced batch, less its tree nodes when they were the
    /// last written ahead ([`Store::prewrite_nodes`]; an earlier proposal's
    /// may have been overwritten since), and less the nodes that other
    /// proposals of the height wrote ahead and this block does not have.
    /// A tree update's batch also deletes the nodes the last one replaced,
    /// unless a write ahead did.
    pub fn commit_block(
        &self,
        version: u64,
        block: &[u8],
        writes: &WriteSet,
    ) -> Result<(), StoreError> {
        let mut prewritten = self.lock_prewritten();
        let (proposals, stale_deleted) = if prewritten.version == version {
            (
                std::mem::take(&mut prewritten.proposals),
                prewritten.stale_deleted,
            )
        } else {
            (Vec::new(), false)
        };
        let nodes_on_disk =
            !block.is_empty() && proposals.last().is_some_and(|(hash, _)| hash == block);
        let mut batch = WriteBatch::default();
        for ((cf, key), value) in &writes.entries {
            let handle = self.handle(*cf)?;
            match value {
                Some(_) if nodes_on_disk && *cf == Cf::TreeNodes => {}
                Some(v) => batch.put_cf(handle, key, v),
                None => batch.delete_cf(handle, key),
            }
        }
        let nodes = self.handle(Cf::TreeNodes)?;
        let replaces_stale_record = writes.get(Cf::Meta, keys::META_STALE_TREE_NODES).is_some();
        if replaces_stale_record && !stale_deleted {
            for key in self.stale_deletes()? {
                batch.delete_cf(nodes, key);
            }
        }
        for (hash, node_keys) in &proposals {
            if hash == block {
                continue;
            }
            for key in node_keys {
                if writes.get(Cf::TreeNodes, key).is_none() {
                    batch.delete_cf(nodes, key);
                }
            }
        }
        self.write_synced(batch)?;
        *prewritten = Prewritten::default();
        Ok(())
    }

    fn lock_prewritten(&self) -> MutexGuard<'_, Prewritten> {
        // The guarded value is rebuilt whole at each step: a panic while
        // holding the lock leaves nothing half-changed.
        self.prewritten
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The node keys the last committed block's tree update replaced (its
    /// `META_STALE_TREE_NODES` record), for the next block's writes to
    /// delete. A block's record replaces the last one in the same synced
    /// batch that deletes its keys, or after a write ahead deleted them.
    fn stale_deletes(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let record = self
            .get(Cf::Meta, keys::META_STALE_TREE_NODES)?
            .unwrap_or_default();
        let corrupt = || StoreError::Corrupt {
            what: "stale tree nodes",
            detail: format!("record of {} bytes cut short", record.len()),
        };
        let mut keys = Vec::new();
        let mut rest = record.as_slice();
        while let Some((len, tail)) = rest.split_first_chunk::<2>() {
            let len = usize::from(u16::from_be_bytes(*len));
            let key = tail.get(..len).ok_or_else(corrupt)?;
            keys.push(key.to_vec());
            rest = &tail[len..];
        }
        if !rest.is_empty() {
            return Err(corrupt());
        }
        Ok(keys)
    }

    /// The committed state tree's version (the last committed height).
    pub(crate) fn tree_version(&self) -> Result<Option<u64>, StoreError> {
        TreeReads {
            store: self,
            snapshot: None,
            empty_below: None,
        }
        .tree_version()
    }

    /// Every record of the state tree, column family by column family in
    /// key order, read from one RocksDB snapshot; returns that snapshot's
    /// tree version (`None`: nothing committed).
    pub fn export_tree_records(
        &self,
        mut record: impl FnMut(Cf, &[u8], &[u8]),
    ) -> Result<Option<u64>, StoreError> {
        let snapshot = self.db.snapshot();
        let version = version_of(
            snapshot
                .get_cf(self.handle(Cf::Meta)?, keys::META_TREE_VERSION)
                .map_err(|source| StoreError::Db {
                    op: "get",
                    cf: Cf::Meta.name(),
                    source,
                })?,
        );
        for cf in Cf::ALL {
            for item in snapshot.iterator_cf(self.handle(cf)?, rocksdb::IteratorMode::Start) {
                let (key, value) = item.map_err(|source| StoreError::Db {
                    op: "iterate",
                    cf: cf.name(),
                    source,
                })?;
                if cf.space(&key).is_some() {
                    record(cf, &key, &value);
                }
            }
        }
        Ok(version)
    }

    /// Deletes the key ranges `[from, to)` and writes `record`, in one
    /// atomic write (not synced: pruning is redone after a crash). Only for
    /// column families outside the state tree.
    pub fn delete_ranges(
        &self,
        ranges: &[(Cf, Vec<u8>, Vec<u8>)],
        record: (Cf, &[u8], &[u8]),
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (cf, from, to) in ranges {
            batch.delete_range_cf(self.handle(*cf)?, from, to);
        }
        batch.put_cf(self.handle(record.0)?, record.1, record.2);
        self.db.write(batch).map_err(|source| StoreError::Db {
            op: "delete ranges",
            cf: "all",
            source,
        })
    }

    /// The state tree after `writes` at `version` (a block's height; genesis
    /// is the initial height less one): its root, which is the app hash, and
    /// the writes that store it (new nodes, the nodes they replace deleted,
    /// the leaf keys of new records). Reads the tree as last committed.
    pub fn tree_update(
        &self,
        version: u64,
        writes: &WriteSet,
    ) -> Result<([u8; 32], WriteSet), StoreError> {
        if self.scheme == AppHashScheme::WriteDigest {
            return self.write_digest(version, writes);
        }
        let tree_error = |e: anyhow::Error| StoreError::Tree {
            version,
            detail: format!("{e:#}"),
        };
        let mut leaves = Vec::new();
        let mut tree_writes = WriteSet::default();
        for (cf, key, value) in writes.entries() {
            let Some(space) = cf.space(key) else { continue };
            let leaf = state_proof::leaf_key(space, key);
            leaves.push((KeyHash(leaf), value.map(<[u8]>::to_vec)));
            if value.is_some() {
                let mut preimage = cf.name().as_bytes().to_vec();
                preimage.push(0);
                preimage.extend_from_slice(key);
                tree_writes.put(Cf::TreeKeys, leaf.to_vec(), preimage);
            }
        }
        let empty_below = match self.tree_version()? {
            None => version.checked_sub(1),
            Some(_) => None,
        };
        let reads = TreeReads {
            store: self,
            snapshot: None,
            empty_below,
        };
        let tree = Sha256Jmt::new(&reads);
        // Without deletions, the batch insert builds and hashes each touched
        // node once (one key at a time re-hashes the path per key: about 5×
        // slower for a block's writes); both give the same tree.
        let (root, update) = if !leaves.is_empty() && leaves.iter().all(|(_, v)| v.is_some()) {
            let puts = leaves
                .into_iter()
                .filter_map(|(key, value)| value.map(|v| (key, v)))
                .collect();
            tree.batch_put_value_sets(vec![puts], None, version)
                .map(|(roots, update)| {
                    let root = roots.first().copied();
                    (root.unwrap_or(RootHash(state_proof::EMPTY_ROOT)), update)
                })
                .map_err(tree_error)?
        } else {
            tree.put_value_set(leaves, version).map_err(tree_error)?
        };
        for (node_key, node) in update.node_batch.nodes() {
            let node = borsh::to_vec(node).map_err(|e| tree_error(e.into()))?;
            tree_writes.put(Cf::TreeNodes, encode_node_key(node_key), node);
        }
        // The nodes this version replaces are deleted with the next block's
        // tree writes (off Commit's synced batch; see `stale_deletes`): kept
        // here as one record, so a crash cannot lose the list.
        let mut stale = Vec::new();
        for entry in &update.stale_node_index_batch {
            let key = encode_node_key(&entry.node_key);
            if tree_writes.get(Cf::TreeNodes, &key).is_some() {
                continue; // written again by this version
            }
            let len = u16::try_from(key.len()).map_err(|_| StoreError::Tree {
                version,
                detail: format!("a node key of {} bytes", key.len()),
            })?;
            stale.extend_from_slice(&len.to_be_bytes());
            stale.extend_from_slice(&key);
        }
        tree_writes.put(Cf::Meta, keys::META_STALE_TREE_NODES.to_vec(), stale);
        tree_writes.put(
            Cf::Meta,
            keys::META_TREE_VERSION.to_vec(),
            version.to_be_bytes().to_vec(),
        );
        Ok((root.0, tree_writes))
    }

    /// [`AppHashScheme::WriteDigest`]: the previous digest and every write,
    /// hashed in key order.
    fn write_digest(
        &self,
        version: u64,
        writes: &WriteSet,
    ) -> Result<([u8; 32], WriteSet), StoreError> {
        use sha2::Digest;
        let previous = self
            .get(Cf::Meta, keys::META_LAST_APP_HASH)?
            .unwrap_or_default();
        let mut hasher = sha2::Sha256::new();
        hasher.update(previous);
        for (cf, key, value) in writes.entries() {
            hasher.update(cf.name().as_bytes());
            hasher.update((key.len() as u64).to_be_bytes());
            hasher.update(key);
            match value {
                None => hasher.update([0u8]),
                Some(v) => {
                    hasher.update([1u8]);
                    hasher.update((v.len() as u64).to_be_bytes());
                    hasher.update(v);
                }
            }
        }
        let mut out = WriteSet::default();
        out.put(
            Cf::Meta,
            keys::META_TREE_VERSION.to_vec(),
            version.to_be_bytes().to_vec(),
        );
        Ok((hasher.finalize().into(), out))
    }

    /// The committed value of `(cf, key)` and its proof under the last
    /// committed app hash, both read from one snapshot (a Commit between the
    /// reads cannot pull nodes away).
    pub fn prove(&self, cf: Cf, key: &[u8]) -> Result<ProvenRead, StoreError> {
        let mut reads = self.prove_many(&[(cf, key)])?;
        reads.pop().ok_or(StoreError::Corrupt {
            what: "state proof",
            detail: "none came back for one key".into(),
        })
    }

    /// Several records with their proofs, all under the same app hash (one
    /// snapshot), so that one verified header checks them all.
    pub fn prove_many(&self, records: &[(Cf, &[u8])]) -> Result<Vec<ProvenRead>, StoreError> {
        let reads = TreeReads {
            store: self,
            snapshot: Some(self.db.snapshot()),
            empty_below: None,
        };
        let version = reads.tree_version()?.ok_or(StoreError::Corrupt {
            what: "state tree version",
            detail: "absent: nothing committed yet".into(),
        })?;
        let tree = Sha256Jmt::new(&reads);
        records
            .iter()
            .map(|(cf, key)| {
                let space = cf.space(key).ok_or(StoreError::Tree {
                    version,
                    detail: format!(
                        "{}/{} is not in the state tree",
                        cf.name(),
                        hex::encode(key)
                    ),
                })?;
                let (value, proof) = tree
                    .get_with_proof(KeyHash(state_proof::leaf_key(space, key)), version)
                    .map_err(|e| StoreError::Tree {
                        version,
                        detail: format!("{e:#}"),
                    })?;
                Ok(ProvenRead {
                    version,
                    value,
                    proof: state_proof::encode(&proof),
                })
            })
            .collect()
    }
}

/// A `META_TREE_VERSION` value (u64 BE).
fn version_of(bytes: Option<Vec<u8>>) -> Option<u64> {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_be_bytes)
}

fn encode_node_key(key: &NodeKey) -> Vec<u8> {
    // Writing into a Vec cannot fail.
    borsh::to_vec(key).unwrap_or_default()
}

/// The tree's view of the store: committed nodes, and a leaf's value read
/// from its record's column family through the leaf key's preimage.
struct TreeReads<'a> {
    store: &'a Store,
    snapshot: Option<rocksdb::Snapshot<'a>>,
    /// On a store without a tree: the version just below the first one
    /// written, whose root reads as the empty tree (jmt starts from an
    /// empty tree only at version 0 by itself; genesis at a later initial
    /// height and a restored snapshot start higher).
    empty_below: Option<u64>,
}

impl TreeReads<'_> {
    /// The tree's committed version as this view sees it.
    fn tree_version(&self) -> Result<Option<u64>, StoreError> {
        Ok(version_of(self.get(Cf::Meta, keys::META_TREE_VERSION)?))
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.snapshot {
            None => self.store.get(cf, key),
            Some(snapshot) => snapshot
                .get_cf(self.store.handle(cf)?, key)
                .map_err(|source| StoreError::Db {
                    op: "get",
                    cf: cf.name(),
                    source,
                }),
        }
    }
}

impl TreeReader for TreeReads<'_> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        match self.get(Cf::TreeNodes, &encode_node_key(node_key))? {
            Some(bytes) => Ok(Some(borsh::from_slice(&bytes)?)),
            None if self.empty_below == Some(node_key.version())
                && node_key.nibble_path().num_nibbles() == 0 =>
            {
                Ok(Some(Node::Null))
            }
            None => Ok(None),
        }
    }

    /// Only the latest version is kept, so `max_version` is the last commit.
    fn get_value_option(
        &self,
        _max_version: jmt::Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let Some(preimage) = self.get(Cf::TreeKeys, &key_hash.0)? else {
            return Ok(None);
        };
        let split = preimage
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| anyhow::anyhow!("leaf key preimage without a separator"))?;
        let (name, key) = preimage.split_at(split);
        let cf = Cf::from_name(name)
            .ok_or_else(|| anyhow::anyhow!("leaf key preimage names no column family"))?;
        Ok(self.get(cf, key.get(1..).unwrap_or_default())?)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("the state tree keeps no rightmost-leaf index (restore is not supported)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_set_commits_atomically_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            let mut set = WriteSet::default();
            set.put(Cf::Accounts, b"a".to_vec(), b"1".to_vec());
            set.put(Cf::Rollups, b"r".to_vec(), b"2".to_vec());
            store.commit(&set).expect("commit");
            let mut set = WriteSet::default();
            set.delete(Cf::Accounts, b"a".to_vec());
            store.commit(&set).expect("commit");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.get(Cf::Accounts, b"a").expect("get"), None);
        assert_eq!(
            store.get(Cf::Rollups, b"r").expect("get"),
            Some(b"2".to_vec())
        );
    }

    /// Commits `set` with its tree update at `version`; returns the root.
    fn commit_with_tree(store: &Store, version: u64, set: &WriteSet) -> [u8; 32] {
        let (root, tree) = store.tree_update(version, set).expect("tree update");
        let mut all = set.clone();
        all.extend(tree);
        store.commit(&all).expect("commit");
        root
    }

    #[test]
    fn tree_root_depends_on_content_not_order_or_history() {
        let roots: Vec<[u8; 32]> = [false, true]
            .into_iter()
            .map(|two_blocks| {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = Store::open(dir.path()).expect("open");
                let mut a = WriteSet::default();
                a.put(Cf::Accounts, b"x".to_vec(), b"1".to_vec());
                let mut b = WriteSet::default();
                b.put(Cf::Meta, b"y".to_vec(), b"2".to_vec());
                if two_blocks {
                    commit_with_tree(&store, 0, &b);
                    commit_with_tree(&store, 1, &a)
                } else {
                    a.extend(b);
                    commit_with_tree(&store, 0, &a)
                }
            })
            .collect();
        assert_eq!(roots[0], roots[1]);
    }

    #[test]
    fn a_deletion_takes_the_key_at_a_time_path_to_the_same_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut base = WriteSet::default();
        for i in 0u8..40 {
            base.put(Cf::Accounts, vec![i; 4], vec![i]);
        }
        commit_with_tree(&store, 0, &base);
        // Batch path: puts only. Key-at-a-time path: a put and a deletion of
        // a key that was never there.
        let mut puts = WriteSet::default();
        puts.put(Cf::Accounts, vec![1; 4], vec![9]);
        let (batch_root, _) = store.tree_update(1, &puts).expect("update");
        let mut with_delete = puts.clone();
        with_delete.delete(Cf::Accounts, vec![200; 4]);
        let (single_root, _) = store.tree_update(1, &with_delete).expect("update");
        assert_eq!(batch_root, single_root);
        // And a real deletion changes the root back to the tree without it.
        let mut delete = WriteSet::default();
        delete.delete(Cf::Accounts, vec![39; 4]);
        let after_delete = commit_with_tree(&store, 1, &delete);
        let dir2 = tempfile::tempdir().expect("tempdir");
        let fresh = Store::open(dir2.path()).expect("open");
        let mut fewer = WriteSet::default();
        for i in 0u8..39 {
            fewer.put(Cf::Accounts, vec![i; 4], vec![i]);
        }
        assert_eq!(commit_with_tree(&fresh, 0, &fewer), after_delete);
    }

    #[test]
    fn records_outside_the_tree_leave_the_root_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut set = WriteSet::default();
        set.put(Cf::Accounts, b"x".to_vec(), b"1".to_vec());
        let root = commit_with_tree(&store, 0, &set);
        let mut outside = WriteSet::default();
        outside.put(Cf::Batches, b"b".to_vec(), b"items".to_vec());
        outside.put(Cf::Blocks, b"h".to_vec(), b"record".to_vec());
        outside.put(Cf::Meta, keys::META_LAST_APP_HASH.to_vec(), vec![9; 32]);
        assert_eq!(commit_with_tree(&store, 1, &outside), root);
        // And the tree goes on from a version without tree records.
        let mut next = WriteSet::default();
        next.put(Cf::Accounts, b"y".to_vec(), b"2".to_vec());
        assert_ne!(commit_with_tree(&store, 2, &next), root);
        let read = store.prove(Cf::Accounts, b"x").expect("prove");
        assert_eq!(read.version, 2);
    }

    #[test]
    fn proofs_of_present_and_absent_records_verify_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = {
            let store = Store::open(dir.path()).expect("open");
            let mut set = WriteSet::default();
            for i in 0u8..50 {
                set.put(Cf::Accounts, vec![i; 32], vec![i, 1]);
            }
            commit_with_tree(&store, 0, &set);
            let mut set = WriteSet::default();
            set.put(Cf::Accounts, vec![3; 32], vec![3, 2]);
            set.delete(Cf::Accounts, vec![4; 32]);
            commit_with_tree(&store, 1, &set)
        };
        let store = Store::open(dir.path()).expect("reopen");
        let read = store.prove(Cf::Accounts, &[3; 32]).expect("prove");
        assert_eq!(
            (read.version, read.value.as_deref()),
            (1, Some(&[3u8, 2][..]))
        );
        state_proof::verify(&root, Space::Accounts, &[3; 32], Some(&[3, 2]), &read.proof)
            .expect("present");
        // The old value, another key, another space: refused.
        assert!(
            state_proof::verify(&root, Space::Accounts, &[3; 32], Some(&[3, 1]), &read.proof)
                .is_err()
        );
        assert!(
            state_proof::verify(&root, Space::Accounts, &[5; 32], Some(&[3, 2]), &read.proof)
                .is_err()
        );
        assert!(
            state_proof::verify(&root, Space::Rollups, &[3; 32], Some(&[3, 2]), &read.proof)
                .is_err()
        );
        for absent in [[4u8; 32], [200; 32]] {
            let read = store.prove(Cf::Accounts, &absent).expect("prove");
            assert_eq!(read.value, None);
            state_proof::verify(&root, Space::Accounts, &absent, None, &read.proof)
                .expect("absent");
            assert!(state_proof::verify(
                &root,
                Space::Accounts,
                &absent,
                Some(&[4, 1]),
                &read.proof
            )
            .is_err());
        }
        // An absence proof cannot be passed off for a present record.
        let read = store.prove(Cf::Accounts, &[200; 32]).expect("prove");
        assert!(state_proof::verify(&root, Space::Accounts, &[7; 32], None, &read.proof).is_err());
        assert!(store.prove(Cf::Batches, b"b").is_err());
    }

    #[test]
    fn several_records_are_proven_under_one_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut set = WriteSet::default();
        for i in 0u8..20 {
            set.put(Cf::Roots, u64::from(i).to_be_bytes().to_vec(), vec![i; 56]);
        }
        let root = commit_with_tree(&store, 0, &set);
        let keys: Vec<[u8; 8]> = (18u64..23).map(u64::to_be_bytes).collect();
        let asked: Vec<(Cf, &[u8])> = keys.iter().map(|k| (Cf::Roots, k.as_slice())).collect();
        let reads = store.prove_many(&asked).expect("prove");
        assert_eq!(reads.len(), 5);
        for (key, read) in keys.iter().zip(&reads) {
            assert_eq!(read.version, 0);
            let height = u64::from_be_bytes(*key);
            let want = (height < 20).then(|| vec![height as u8; 56]);
            assert_eq!(read.value, want);
            state_proof::verify(&root, Space::Roots, key, want.as_deref(), &read.proof)
                .expect("verifies");
        }
        // Each proof is of its own key.
        assert!(state_proof::verify(
            &root,
            Space::Roots,
            &keys[0],
            reads[1].value.as_deref(),
            &reads[1].proof
        )
        .is_err());
    }

    /// A block's writes with its tree update at `version`, and its root.
    fn block_writes(store: &Store, version: u64, set: &WriteSet) -> ([u8; 32], WriteSet) {
        let (root, tree) = store.tree_update(version, set).expect("tree update");
        let mut all = set.clone();
        all.extend(tree);
        (root, all)
    }

    fn accounts(range: std::ops::Range<u8>, value: u8) -> WriteSet {
        let mut set = WriteSet::default();
        for i in range {
            set.put(Cf::Accounts, vec![i; 32], vec![i, value]);
        }
        set
    }

    fn tree_node_count(store: &Store) -> usize {
        store
            .scan_prefix(Cf::TreeNodes, &[], &[], usize::MAX)
            .expect("scan")
            .len()
    }

    /// Proves every key of `0..50` under `root` with the committed tree.
    fn assert_tree_proves(store: &Store, root: &[u8; 32], value_of: impl Fn(u8) -> u8) {
        for i in 0u8..50 {
            let read = store.prove(Cf::Accounts, &[i; 32]).expect("prove");
            state_proof::verify(
                root,
                Space::Accounts,
                &[i; 32],
                Some(&[i, value_of(i)]),
                &read.proof,
            )
            .unwrap_or_else(|e| panic!("account {i}: {e}"));
        }
    }

    /// Two proposals of height 1 write their nodes ahead; whichever is
    /// decided, the committed tree is that block's alone (the other's nodes
    /// deleted, not left behind), with or without its own nodes rewritten;
    /// a proposal's write ahead after the height is committed is skipped.
    #[test]
    fn nodes_written_ahead_leave_only_the_decided_block() {
        for (decided, written_last) in [(0usize, 0usize), (0, 1), (1, 1)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Store::open(dir.path()).expect("open");
            commit_with_tree(&store, 0, &accounts(0..50, 1));
            let proposals = [
                block_writes(&store, 1, &accounts(0..10, 2)),
                block_writes(&store, 1, &accounts(20..40, 3)),
            ];
            let hashes = [b"block A".to_vec(), b"block B".to_vec()];
            let order = if written_last == 0 { [1, 0] } else { [0, 1] };
            for i in order {
                assert!(store
                    .prewrite_nodes(1, &hashes[i], &proposals[i].1)
                    .expect("prewrite"));
            }
            let (root, writes) = &proposals[decided];
            store
                .commit_block(1, &hashes[decided], writes)
                .expect("commit");
            let (range, value) = if decided == 0 {
                (0..10, 2)
            } else {
                (20..40, 3)
            };
            assert_tree_proves(&store, root, |i| if range.contains(&i) { value } else { 1 });
            // The same history without writing ahead: the same nodes.
            let plain_dir = tempfile::tempdir().expect("tempdir");
            let plain = Store::open(plain_dir.path()).expect("open");
            commit_with_tree(&plain, 0, &accounts(0..50, 1));
            let plain_root = commit_with_tree(&plain, 1, &writes_less_tree(writes));
            assert_eq!(&plain_root, root);
            assert_eq!(
                tree_node_count(&store),
                tree_node_count(&plain),
                "decided {decided}, written last {written_last}"
            );
            // Late background work for the committed height changes nothing.
            let other = 1 - decided;
            assert!(!store
                .prewrite_nodes(1, &hashes[other], &proposals[other].1)
                .expect("prewrite"));
            assert_tree_proves(&store, root, |i| if range.contains(&i) { value } else { 1 });
        }
    }

    /// A crash after writing ahead, before Commit: reopened, the store still
    /// serves the last committed tree, and the replayed block commits (its
    /// nodes rewritten) to the same root as without the crash.
    #[test]
    fn nodes_written_ahead_survive_a_crash_before_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis_root;
        let (root, writes) = {
            let store = Store::open(dir.path()).expect("open");
            genesis_root = commit_with_tree(&store, 0, &accounts(0..50, 1));
            let (root, writes) = block_writes(&store, 1, &accounts(5..30, 4));
            assert!(store
                .prewrite_nodes(1, b"block", &writes)
                .expect("prewrite"));
            (root, writes)
        };
        let store = Store::open(dir.path()).expect("reopen");
        assert_tree_proves(&store, &genesis_root, |_| 1);
        store.commit_block(1, b"block", &writes).expect("commit");
        assert_tree_proves(&store, &root, |i| if (5..30).contains(&i) { 4 } else { 1 });
    }

    /// Ten blocks rewriting the same accounts, half of them written ahead:
    /// the store keeps the live tree and the last block's replaced nodes
    /// (deleted with the next block), nothing older.
    #[test]
    fn replaced_nodes_are_deleted_with_the_next_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        commit_with_tree(&store, 0, &accounts(0..50, 1));
        let mut root = [0; 32];
        for version in 1..=10u64 {
            let value = version as u8 + 1;
            let (new_root, writes) = block_writes(&store, version, &accounts(0..50, value));
            if version % 2 == 0 {
                assert!(store
                    .prewrite_nodes(version, b"b", &writes)
                    .expect("prewrite"));
            }
            store.commit_block(version, b"b", &writes).expect("commit");
            root = new_root;
        }
        assert_tree_proves(&store, &root, |_| 11);
        let fresh_dir = tempfile::tempdir().expect("tempdir");
        let fresh = Store::open(fresh_dir.path()).expect("open");
        commit_with_tree(&fresh, 0, &accounts(0..50, 11));
        let pending = store.stale_deletes().expect("stale").len();
        assert!(pending > 0);
        assert_eq!(tree_node_count(&store), tree_node_count(&fresh) + pending);
    }

    /// The records of a block's writes, without what its tree update added.
    fn writes_less_tree(writes: &WriteSet) -> WriteSet {
        let mut set = WriteSet::default();
        for (cf, key, value) in writes.entries() {
            if cf == Cf::Accounts {
                if let Some(value) = value {
                    set.put(cf, key.to_vec(), value.to_vec());
                }
            }
        }
        set
    }

    #[test]
    fn prefix_scan_stops_at_prefix_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut set = WriteSet::default();
        for k in [b"a1", b"a2", b"b1"] {
            set.put(Cf::Batches, k.to_vec(), k.to_vec());
        }
        store.commit(&set).expect("commit");
        let found = store
            .scan_prefix(Cf::Batches, b"a", b"a2", 10)
            .expect("scan");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, b"a2".to_vec());
    }
}
