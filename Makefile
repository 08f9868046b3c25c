# Lattice: make help lists the targets.

GO            ?= go
STATICCHECK   ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME      ?= 30s
BENCHTIME     ?= 1x
BENCHCOUNT    ?= 1
BENCH         ?= .
BENCHPKGS     ?= ./...
TEST_TIMEOUT  ?= 20m
BIN           ?= bin/lattice
RUNS          ?= 20
CHECKS        ?= 20
SEED          ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/lattice
	$(GO) build -trimpath -o $(BIN) ./cmd/lattice

.PHONY: demo
demo: ## three sidecars beside three SQLite databases: conflicts resolved, databases converged
	$(GO) run ./cmd/lattice demo

.PHONY: demo-soak
demo-soak: build ## run the built demo RUNS times in a row (default 20), stopping at the first failure
	@out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	for i in $$(seq $(RUNS)); do \
	  if ! $(BIN) demo >"$$out" 2>&1; then \
	    echo "demo-soak: run $$i of $(RUNS) failed:"; cat "$$out"; exit 1; \
	  fi; \
	done; \
	echo "demo-soak: $(RUNS) runs in a row passed"

.PHONY: check
check: build ## run the randomized checker CHECKS times (default 20; SEED=N reruns from seed N; CHECK_POSTGRES=auto|off|N)
	$(BIN) bench --check $(CHECKS) $(if $(SEED),--seed $(SEED)) $(if $(CHECK_POSTGRES),--check-postgres $(CHECK_POSTGRES))

.PHONY: soak
soak: build ## run 1,000 randomized checker schedules (SEED=N to start from seed N; CHECK_POSTGRES=auto|off|N)
	$(BIN) bench --check 1000 $(if $(SEED),--seed $(SEED)) $(if $(CHECK_POSTGRES),--check-postgres $(CHECK_POSTGRES))

.PHONY: test
test: ## run the unit tests with the race detector (needs nothing but Go)
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

.PHONY: pocketbase
pocketbase: ## build the PocketBase server the http adapter's integration tests start (cached by source hash; minutes the first time)
	LATTICE_INTEGRATION=1 $(GO) test -count=1 -timeout 60m -run '^TestBuildPocketBase$$' ./adapters/http/apitest/

.PHONY: test-integration
test-integration: ## run the tests that start their own PostgreSQL / MariaDB servers
	LATTICE_INTEGRATION=1 $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -run 'Integration' ./...

.PHONY: cover
cover: ## test coverage of the crdt core
	$(GO) test -count=1 -coverprofile=cover.out ./crdt/...
	$(GO) tool cover -func=cover.out | tail -1

.PHONY: lint
lint: ## go vet and staticcheck (pinned)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

.PHONY: bench
bench: ## run the benchmarks (BENCH=regexp BENCHPKGS=./pkg BENCHTIME=1x BENCHCOUNT=1)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -count $(BENCHCOUNT) -benchmem $(BENCHPKGS)

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

.PHONY: cross
cross: ## build for 32-bit linux (386, arm) and compile the wire decoders' tests there
	@set -e; for arch in 386 arm; do \
	  echo "== linux/$$arch"; \
	  GOOS=linux GOARCH=$$arch $(GO) build ./...; \
	  for pkg in ./gossip ./crdt ./sidecar/store; do \
	    GOOS=linux GOARCH=$$arch $(GO) test -c -o /dev/null $$pkg; \
	  done; \
	done

.PHONY: check-deploy
check-deploy: ## check docs/alerts.yaml (promtool), the systemd unit (systemd-analyze) and the Kubernetes manifests (kubeconform)
	./deploy/check.sh

.PHONY: tidy-check
tidy-check: ## fail if go mod tidy would change go.mod or go.sum
	$(GO) mod tidy -diff
