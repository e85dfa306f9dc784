//! RocksDB storage: column families, reads of committed state, and the
//! [`WriteSet`] that one block (or genesis) accumulates and commits in a single
//! atomic, synced write batch.

use std::collections::BTreeMap;
use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

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
}

impl Cf {
    pub const ALL: [Cf; 7] = [
        Cf::Meta,
        Cf::Accounts,
        Cf::Rollups,
        Cf::Batches,
        Cf::Blocks,
        Cf::Forced,
        Cf::Proofs,
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

    /// SHA-256 over every entry in key order:
    /// `cf || u32 len || key || (0 | 1 || u32 len || value)`.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        for ((cf, key), value) in &self.entries {
            hasher.update(cf.name().as_bytes());
            hasher.update((key.len() as u32).to_be_bytes());
            hasher.update(key);
            match value {
                None => hasher.update([0u8]),
                Some(v) => {
                    hasher.update([1u8]);
                    hasher.update((v.len() as u32).to_be_bytes());
                    hasher.update(v);
                }
            }
        }
        hasher.finalize().into()
    }
}

/// The node's RocksDB. Reads see the last committed block only.
pub struct Store {
    db: DB,
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
        Ok(Store { db })
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

    /// Writes `set` atomically and waits until it is on disk.
    pub fn commit(&self, set: &WriteSet) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for ((cf, key), value) in &set.entries {
            let handle = self.handle(*cf)?;
            match value {
                Some(v) => batch.put_cf(handle, key, v),
                None => batch.delete_cf(handle, key),
            }
        }
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

    #[test]
    fn digest_depends_on_content_not_insertion_order() {
        let mut a = WriteSet::default();
        a.put(Cf::Accounts, b"x".to_vec(), b"1".to_vec());
        a.put(Cf::Meta, b"y".to_vec(), b"2".to_vec());
        let mut b = WriteSet::default();
        b.put(Cf::Meta, b"y".to_vec(), b"2".to_vec());
        b.put(Cf::Accounts, b"x".to_vec(), b"1".to_vec());
        assert_eq!(a.digest(), b.digest());
        b.delete(Cf::Meta, b"y".to_vec());
        assert_ne!(a.digest(), b.digest());
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
