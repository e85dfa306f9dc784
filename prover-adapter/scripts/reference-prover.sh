#!/bin/sh
# An external back end for `seqnet-prover run --command`, as an example of
# the protocol (prover-adapter/README.md, "External back end"): reads one job
# as JSON (version 2) on stdin and proves it with the reference circuit
# through `seqnet-prover prove-job`, which checks the span's batches against
# their commitments, replays the state through the earlier unproven spans
# and answers {"proof": hex, "prev_state_root": hex, "new_state_root": hex}.
#
#   seqnet-prover run --key p.json --node URL \
#       --command 'prover-adapter/scripts/reference-prover.sh KEYS_DIR'
#
# KEYS_DIR is a `seqnet-prover setup` output. SEQNET_PROVER names the
# seqnet-prover binary (default: on PATH). A slow prover for tests:
#   --command 'sleep 3 && prover-adapter/scripts/reference-prover.sh KEYS_DIR'
set -eu
keys=${1:?usage: reference-prover.sh KEYS_DIR}
exec "${SEQNET_PROVER:-seqnet-prover}" prove-job --keys "$keys"
