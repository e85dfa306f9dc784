# seqnet: build, run a local network, test.
#
#   make deps           install what the build and the tests need (idempotent)
#   make build          build every binary
#   make run            deps + build + a local 4-validator network with demo load
#   make test           deps + build + fmt check + clippy + all tests (end-to-end included)
#   make clean-testnet  stop and delete the local network in $(TESTNET_DIR)
#   make bench          kvstore vs seqnet on this machine, release build (writes bench.json)
#   make bench-proving  ordering with provers that need S seconds per proof, few and
#                       enough of them, against no proving (writes bench-proving.json)
#   make bench-state    what the state tree costs a block's commit (10 k, 100 k and 1 M
#                       accounts, against the old write digest: the tree's writes alone,
#                       then the real app's ProcessProposal, FinalizeBlock and Commit)
#                       and a verified read, and state-sync snapshots (writes
#                       bench-state.json, bench-block.json, bench-snapshot.json)
#   make compose-test   the docker compose testnet end to end (installs docker.io,
#                       docker-compose and debootstrap if missing, starts dockerd)
#   make fuzz           every fuzz target of proto/fuzz for FUZZ_SECS seconds each
#                       (installs a nightly toolchain and cargo-fuzz if missing)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

COMETBFT_VERSION := 0.38.25
# Shared across clones so the RocksDB/arkworks builds are paid once. Cargo
# compares modification times, not paths: after another clone built, touch
# the files you changed earlier in this one (or they are not rebuilt).
export CARGO_TARGET_DIR ?= $(HOME)/.cache/seqnet/target
GOBIN_DIR := $(shell go env GOPATH 2>/dev/null || echo $(HOME)/go)/bin
export PATH := $(GOBIN_DIR):$(HOME)/go/bin:$(HOME)/.cargo/bin:/usr/local/go/bin:$(PATH)
# Where the tests find seqnet-sequencer.
export SEQNET_BIN_DIR ?= $(CARGO_TARGET_DIR)/debug

CARGO ?= cargo
TESTNET_DIR ?= .testnet
# An aggregator beside the provers, so `make run` shows SubmitAggregate too.
DEMO_ARGS ?= --aggregator
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build run test clean-testnet bench bench-proving bench-state compose-deps compose-test fuzz

deps:
	@if ! command -v clang >/dev/null 2>&1 || ! { dpkg -s libclang-dev >/dev/null 2>&1 || ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so'; }; then \
	  echo "deps: installing clang and libclang-dev (RocksDB needs them)"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q clang libclang-dev; \
	else echo "deps: clang and libclang present"; fi
	@if [ "$$(cometbft version 2>/dev/null)" != "$(COMETBFT_VERSION)" ]; then \
	  command -v go >/dev/null 2>&1 || { echo "deps: Go >= 1.22 is needed to install CometBFT"; exit 1; }; \
	  echo "deps: installing cometbft v$(COMETBFT_VERSION)"; \
	  go install github.com/cometbft/cometbft/cmd/cometbft@v$(COMETBFT_VERSION); \
	  [ "$$(cometbft version)" = "$(COMETBFT_VERSION)" ] || { echo "deps: cometbft on PATH is $$(cometbft version), want $(COMETBFT_VERSION)"; exit 1; }; \
	else echo "deps: cometbft $(COMETBFT_VERSION) present"; fi
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "deps: no Rust toolchain (cargo); install one with rustup"; exit 1; }
	@if command -v rustup >/dev/null 2>&1; then \
	  for c in rustfmt clippy; do \
	    rustup component list --installed 2>/dev/null | grep -q "^$$c" || rustup component add $$c; \
	  done; \
	fi
	@echo "deps: $$($(CARGO) --version)"

build:
	$(CARGO) build --workspace --bins

run: deps build
	$(CARGO_TARGET_DIR)/debug/seqnet-testnet demo --dir $(TESTNET_DIR) $(DEMO_ARGS)

test: deps build
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace
	# The fuzz targets (their own workspace) must keep compiling.
	$(CARGO) check --manifest-path proto/fuzz/Cargo.toml --bins

clean-testnet:
	@if [ -f $(TESTNET_DIR)/testnet.json ] && [ -x $(CARGO_TARGET_DIR)/debug/seqnet-testnet ]; then \
	  $(CARGO_TARGET_DIR)/debug/seqnet-testnet down --dir $(TESTNET_DIR) || true; \
	fi
	rm -rf $(TESTNET_DIR)

BENCH_ARGS ?=
# Release binaries: a debug sequencer would be measured, not seqnet.
bench: deps
	$(CARGO) build --release -p seqnet-sequencer -p seqnet-testnet
	SEQNET_BIN_DIR=$(CARGO_TARGET_DIR)/release $(CARGO_TARGET_DIR)/release/seqnet-testnet bench --out bench.json $(BENCH_ARGS)

bench-proving: deps
	$(CARGO) build --release -p seqnet-sequencer -p seqnet-prover -p seqnet-testnet
	SEQNET_BIN_DIR=$(CARGO_TARGET_DIR)/release $(CARGO_TARGET_DIR)/release/seqnet-testnet bench-proving --out bench-proving.json $(BENCH_ARGS)

bench-state: deps
	SEQNET_BENCH_JSON=$(CURDIR)/bench-state.json $(CARGO) bench -p seqnet-abci --bench state_commit
	SEQNET_BENCH_JSON=$(CURDIR)/bench-block.json $(CARGO) bench -p seqnet-abci --bench block_commit
	SEQNET_BENCH_JSON=$(CURDIR)/bench-snapshot.json $(CARGO) bench -p seqnet-abci --bench snapshot

compose-deps:
	testnet/scripts/compose-deps.sh

# Not part of `make test` (it installs packages and starts dockerd); .ci/run
# runs it as a separate step.
compose-test: deps build compose-deps
	SEQNET_COMPOSE_TEST=1 $(CARGO) test -p seqnet-testnet --test compose -- --nocapture

FUZZ_SECS ?= 60
FUZZ_TARGETS := decode_transaction verify_batch decode_groth16 decode_inclusion decode_aggregate decode_state_proof
# libFuzzer needs a nightly compiler (sanitizer coverage); stable builds the rest.
fuzz: deps
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd proto && for t in $(FUZZ_TARGETS); do \
	  echo "fuzz: $$t for $(FUZZ_SECS) s"; \
	  cargo +nightly fuzz run -O $$t -- -max_total_time=$(FUZZ_SECS) -max_len=16384 || exit 1; \
	done
