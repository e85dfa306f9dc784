//! Times every ABCI call of the consensus connection into
//! `seqnet_abci_seconds{method}`; the app itself keeps no clock.

use seqnet_abci::SeqnetApp;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci as pb;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct TimedApp {
    pub app: SeqnetApp,
    pub metrics: Metrics,
}

impl TimedApp {
    fn timed<T>(&self, method: &str, call: impl FnOnce() -> T) -> T {
        let _timer = self
            .metrics
            .abci_latency
            .with_label_values(&[method])
            .start_timer();
        call()
    }
}

impl Application for TimedApp {
    fn info(&self, request: pb::RequestInfo) -> pb::ResponseInfo {
        self.app.info(request)
    }

    fn init_chain(&self, request: pb::RequestInitChain) -> pb::ResponseInitChain {
        self.app.init_chain(request)
    }

    fn query(&self, request: pb::RequestQuery) -> pb::ResponseQuery {
        self.app.query(request)
    }

    fn check_tx(&self, request: pb::RequestCheckTx) -> pb::ResponseCheckTx {
        self.timed("check_tx", || self.app.check_tx(request))
    }

    fn commit(&self) -> pb::ResponseCommit {
        self.timed("commit", || self.app.commit())
    }

    fn prepare_proposal(&self, request: pb::RequestPrepareProposal) -> pb::ResponsePrepareProposal {
        self.timed("prepare_proposal", || self.app.prepare_proposal(request))
    }

    fn process_proposal(&self, request: pb::RequestProcessProposal) -> pb::ResponseProcessProposal {
        self.timed("process_proposal", || self.app.process_proposal(request))
    }

    fn extend_vote(&self, request: pb::RequestExtendVote) -> pb::ResponseExtendVote {
        self.timed("extend_vote", || self.app.extend_vote(request))
    }

    fn verify_vote_extension(
        &self,
        request: pb::RequestVerifyVoteExtension,
    ) -> pb::ResponseVerifyVoteExtension {
        self.timed("verify_vote_extension", || {
            self.app.verify_vote_extension(request)
        })
    }

    fn finalize_block(&self, request: pb::RequestFinalizeBlock) -> pb::ResponseFinalizeBlock {
        self.timed("finalize_block", || self.app.finalize_block(request))
    }

    // Every call is forwarded: one the trait defaults would answer empty.
    fn list_snapshots(&self) -> pb::ResponseListSnapshots {
        self.timed("list_snapshots", || self.app.list_snapshots())
    }

    fn offer_snapshot(&self, request: pb::RequestOfferSnapshot) -> pb::ResponseOfferSnapshot {
        self.timed("offer_snapshot", || self.app.offer_snapshot(request))
    }

    fn load_snapshot_chunk(
        &self,
        request: pb::RequestLoadSnapshotChunk,
    ) -> pb::ResponseLoadSnapshotChunk {
        self.timed("load_snapshot_chunk", || {
            self.app.load_snapshot_chunk(request)
        })
    }

    fn apply_snapshot_chunk(
        &self,
        request: pb::RequestApplySnapshotChunk,
    ) -> pb::ResponseApplySnapshotChunk {
        self.timed("apply_snapshot_chunk", || {
            self.app.apply_snapshot_chunk(request)
        })
    }
}
