#!/bin/sh
# An external back end for `seqnet-prover run --command`, as an example of
# the protocol (prover-adapter/README.md, "External back end"): reads one job
# as JSON on stdin, proves it with the reference circuit through
# `seqnet-prover prove`, answers {"proof": hex, "new_state_root": hex}.
#
#   seqnet-prover run --key p.json --node URL \
#       --command 'prover-adapter/scripts/reference-prover.sh KEYS_DIR'
#
# KEYS_DIR is a `seqnet-prover setup` output (its SETUP.txt names the size).
# SEQNET_PROVER names the seqnet-prover binary (default: on PATH).
set -eu
keys=${1:?usage: reference-prover.sh KEYS_DIR}
prover=${SEQNET_PROVER:-seqnet-prover}
job=$(cat)
field() { printf '%s' "$job" | sed -n "s/.*\"$1\":\"\{0,1\}\([0-9a-fA-F]*\)\"\{0,1\}[,}].*/\1/p"; }
size=$(sed -n 's/^size k: //p' "$keys/SETUP.txt")
rollup=$(field rollup_id)
height=$(field height)
commitment=$(field batch_commitment)
prev=$(field prev_state_root)
[ -n "$size" ] && [ -n "$rollup" ] && [ -n "$height" ] && [ -n "$commitment" ] && [ -n "$prev" ] \
    || { echo "reference-prover.sh: cannot read the job: $job" >&2; exit 2; }
out=$("$prover" prove --keys "$keys" --size "$size" --rollup "$rollup" --height "$height" \
    --commitment "$commitment" --prev-root "$prev")
# seqnet-prover prints {"new_root": ..., "proof": ...}; rename the field.
printf '%s\n' "$out" | sed 's/"new_root"/"new_state_root"/'
