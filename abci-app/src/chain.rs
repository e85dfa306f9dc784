//! Chain metadata: the chain id, the parameters, and the last committed
//! height and app hash (what `Info` answers after a restart).

use prost::Message;

use crate::keys;
use crate::params::ChainParams;
use crate::state::{decode, StateRead, StateWrite};
use crate::store::{Cf, StoreError};

/// Typed reads of chain metadata.
pub(crate) trait ChainState: StateRead {
    fn chain_id(&self) -> Result<String, StoreError> {
        Ok(self
            .get(Cf::Meta, keys::META_CHAIN_ID)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default())
    }

    fn params(&self) -> Result<ChainParams, StoreError> {
        Ok(match self.get(Cf::Meta, keys::META_PARAMS)? {
            Some(bytes) => ChainParams::from_pb(&decode("params", &bytes)?),
            None => ChainParams::default(),
        })
    }

    fn last_height(&self) -> Result<u64, StoreError> {
        self.meta_u64(keys::META_LAST_HEIGHT)
    }

    fn last_app_hash(&self) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .get(Cf::Meta, keys::META_LAST_APP_HASH)?
            .unwrap_or_default())
    }
}

impl<S: StateRead> ChainState for S {}

/// Typed writes of chain metadata.
pub(crate) trait ChainWrite: StateWrite {
    fn put_chain_id(&mut self, chain_id: &str) {
        self.put_meta(keys::META_CHAIN_ID, chain_id.as_bytes().to_vec());
    }

    fn put_params(&mut self, params: &ChainParams) {
        self.put_meta(keys::META_PARAMS, params.to_pb().encode_to_vec());
    }

    fn put_last_block(&mut self, height: u64, app_hash: &[u8]) {
        self.put_meta_u64(keys::META_LAST_HEIGHT, height);
        self.put_meta(keys::META_LAST_APP_HASH, app_hash.to_vec());
    }
}

impl<S: StateWrite> ChainWrite for S {}
