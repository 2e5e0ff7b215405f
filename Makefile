# rotation-agent — run `make help` for the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := $(CURDIR)/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/rotation-agent/rotation-agent/agent.Version=$(VERSION)
GOLANGCI_VERSION := v2.15.0
GOLANGCI  := $(BIN)/golangci-lint
# Packaging and deployment tools, installed into bin/ from the Go module proxy.
HELM_VERSION := v3.22.0
HELM      := $(BIN)/helm
NFPM_VERSION := v2.45.2
NFPM      := $(BIN)/nfpm
VAULT_BIN := $(CURDIR)/test/bin/vault
DIST      := $(CURDIR)/dist
GOARCH    ?= $(shell $(GO) env GOARCH)
# Package version: the latest v* tag without its v, else 0.0.0~git<commit> (sorts before any release).
PKG_VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null); if [ -n "$$v" ]; then echo "$${v#v}"; else echo "0.0.0~git$$(git rev-parse --short HEAD 2>/dev/null || echo dev)"; fi)
# Integration tests start real Vault cores and NATS servers; keep them one package at a time
# on small machines.
TEST_FLAGS ?= -count=1

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/rotation-agent.
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/rotation-agent ./cmd/rotation-agent

.PHONY: fmt-check
fmt-check: ## Fail if any Go file is not gofmt-ed.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## go vet both modules.
	$(GO) vet ./...
	cd test && $(GO) vet ./...

.PHONY: test
test: fmt-check vet lint test-unit test-systemd test-package test-integration test-demo ## Run every check and test (what CI runs).

.PHONY: test-unit
test-unit: ## Unit tests of the agent module.
	$(GO) test $(TEST_FLAGS) -race ./...

.PHONY: test-integration
test-integration: ## Integration tests against in-process Vault and NATS (first build: 10-15 minutes).
	cd test && ../hack/with-progress "compiling Vault core for the integration tests (first time 10-15 minutes, then cached)" $(GO) test -count=1 -run '^$$' ./... >/dev/null
	cd test && $(GO) test $(TEST_FLAGS) -timeout 20m ./...

FAULT_EVENTS ?= 200

.PHONY: test-faults
test-faults: ## Full fault suite ($(FAULT_EVENTS) changes per scenario, 15-25 minutes); writes docs/reliability.md.
	cd test && $(GO) test -count=1 -timeout 90m -run '^TestFaults$$' -v ./faults/ -faults.events=$(FAULT_EVENTS) -faults.report=$(CURDIR)/docs/reliability.md

$(GOLANGCI):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) hack/with-progress "installing golangci-lint" $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

$(HELM):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) hack/with-progress "installing helm $(HELM_VERSION)" $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.PHONY: helm
helm: $(HELM) ## Install helm into bin/ (used by the chart tests).

$(NFPM):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) hack/with-progress "installing nfpm $(NFPM_VERSION)" $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)

.PHONY: nfpm
nfpm: $(NFPM) ## Install nfpm into bin/ (used by make package).

.PHONY: lint
lint: $(GOLANGCI) ## Run golangci-lint on both modules.
	$(GOLANGCI) run --allow-parallel-runners ./...
	cd test && $(GOLANGCI) run --allow-parallel-runners ./...

$(VAULT_BIN):
	cd test && ../hack/with-progress "building the vault binary from the Vault module (first time 10-15 minutes, then about 2)" $(GO) build -o $(VAULT_BIN) github.com/hashicorp/vault

.PHONY: package
package: $(NFPM) ## Build dist/*.deb and dist/*.rpm: static binary, systemd unit, example env file, Vault policy.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/bin/rotation-agent ./cmd/rotation-agent
	@mkdir -p $(DIST) && rm -f $(DIST)/*.deb $(DIST)/*.rpm
	for p in deb rpm; do GOARCH=$(GOARCH) PKG_VERSION='$(PKG_VERSION)' $(NFPM) package --config packaging/nfpm.yaml --packager $$p --target $(DIST)/ || exit 1; done
	@ls -l $(DIST)/*.deb $(DIST)/*.rpm

.PHONY: test-chart
test-chart: $(HELM) ## helm lint and helm template assertions on charts/rotation-agent (also part of test-unit).
	HELM=$(HELM) $(GO) test $(TEST_FLAGS) ./charts/

.PHONY: test-systemd
test-systemd: ## Rate the systemd unit's hardening with systemd-analyze security (must be OK or better).
	hack/check-unit-security systemd/rotation-agent.service

.PHONY: test-package
test-package: package ## Install the .deb on this (root) machine, verify the installed unit, then purge it.
	hack/test-package $(DIST)

.PHONY: vault
vault: $(VAULT_BIN) ## Build the real vault binary (server and CLI) into test/bin/.

.PHONY: demo
demo: $(VAULT_BIN) ## Run the agent on an embedded NATS against a real Vault dev server, publish sample changes, print evidence.
	cd test && ../hack/with-progress "compiling the demo" $(GO) build -o bin/demo ./demo
	cd test && bin/demo -vault $(VAULT_BIN) -policy ../docs/vault-policy.hcl

.PHONY: test-demo
test-demo: demo ## Run the demo as a test: it exits non-zero unless every change got its evidence and Vault agrees.

.PHONY: clean
clean: ## Remove build output.
	rm -rf $(BIN) $(DIST) test/bin
