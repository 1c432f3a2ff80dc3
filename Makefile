# Single entry point of the project. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT     := $(abspath .)
MODULES  := $(shell go list -m -f '{{.Dir}}' 2>/dev/null)
SERVICES := ingestion features scoring predlog drift trainer
BIN      := $(ROOT)/bin
STACK    := $(ROOT)/scripts/stack.sh
GOTEST   := go test -race -shuffle=on -count=1
# Integration tests of a module may need more than the default 10 minutes on 2 cores: the
# end-to-end package plays two closed-loop scenarios, outages and a scale-out (about 15
# minutes on a quiet 2-core machine, more when it is shared).
TEST_TIMEOUT ?= 40m
# test-unit runs with no stack variables, so integration tests skip whatever the shell exports.
UNSET_STACK := $(foreach v,REQUIRE_STACK KAFKA_BROKERS ES_URL REDIS_ADDR MLFLOW_URL LIGHTGBM_LIB PYTHON PROMETHEUS_URL,-u MLOPS_TEST_$(v))

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# golangci-lint is built from the version pinned by the tool directive in tools/go.mod (a
# module of its own, outside go.work, so its dependencies stay out of the services' builds).
GOLANGCI := $(BIN)/golangci-lint

$(GOLANGCI): tools/go.mod tools/go.sum
	@mkdir -p $(BIN)
	GOWORK=off go -C tools build -o $(GOLANGCI) github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: deps
deps: $(GOLANGCI) ## download Go modules, golangci-lint, the stack's jars and packages (shellcheck too), and the Python virtualenv
	@for m in $(MODULES); do (cd $$m && go mod download); done
	$(STACK) fetch
	$(ROOT)/scripts/venv.sh

.PHONY: build
build: ## build one binary per service plus mlopsctl and the load generator into bin/
	@mkdir -p $(BIN)
	@for s in $(SERVICES) mlopsctl; do \
	  echo "go build $$s"; (cd services/$$s && go build -o $(BIN)/$$s ./cmd/$$s); done
	cd loadtest && go build -o $(BIN)/loadgen ./cmd/loadgen

.PHONY: up
up: ## start the real local stack without Docker (Kafka, Elasticsearch, Redis, MLflow, Prometheus)
	$(STACK) up

.PHONY: down
down: ## stop the project's services (if running) and the local stack
	$(ROOT)/scripts/services.sh stop || true
	$(STACK) down

.PHONY: status
status: ## show which stack components and services are running
	$(STACK) status
	$(ROOT)/scripts/services.sh status

.PHONY: proto
proto: ## regenerate proto/gen/go from the .proto files (offline)
	cd proto && rm -rf gen && go tool buf generate

.PHONY: proto-check
proto-check: proto ## fail when the committed generated code is stale
	@git diff --exit-code --stat -- proto/gen || { echo "proto/gen is stale: run make proto and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- proto/gen)" || { git status --porcelain -- proto/gen; echo "proto/gen has untracked files: run make proto and commit"; exit 1; }

.PHONY: lint
lint: $(GOLANGCI) ## gofmt, go vet, golangci-lint (.golangci.yml), shellcheck, buf lint/format/breaking, promtool rule tests
	@bad=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^proto/gen/')); \
	  if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	@for m in $(MODULES); do echo "go vet $$m"; (cd $$m && go vet ./...); done
	@failed=""; for m in $(MODULES); do echo "golangci-lint $$m"; \
	  (cd $$m && $(GOLANGCI) run ./...) || failed="$$failed $$m"; done; \
	  if [ -n "$$failed" ]; then echo "golangci-lint failed in:$$failed"; exit 1; fi
	cd proto && go tool buf lint && go tool buf format -d --exit-code
	$(ROOT)/proto/scripts/buf-breaking.sh
	$(STACK) fetch prometheus
	shopt -s globstar && shellcheck scripts/**/*.sh proto/scripts/*.sh
	promtool check config deploy/prometheus/prometheus.yml
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml

.PHONY: test-unit
test-unit: ## unit tests in every module, no services needed (integration tests skip)
	@failed=""; for m in $(MODULES); do echo "== $$m"; \
	  (cd $$m && env $(UNSET_STACK) $(GOTEST) ./...) || failed="$$failed $$m"; done; \
	  if [ -n "$$failed" ]; then echo "FAILED modules:$$failed"; exit 1; fi

.PHONY: test
test: proto-check lint ## what CI runs: lint, proto check, unit, integration and end-to-end tests on the real stack
	$(STACK) up
	$(ROOT)/scripts/venv.sh
	@eval "$$($(STACK) env)"; export MLOPS_TEST_REQUIRE_STACK=1; failed=""; \
	  for m in $(MODULES); do echo "== $$m"; \
	    (cd $$m && $(GOTEST) -timeout $(TEST_TIMEOUT) ./...) || failed="$$failed $$m"; done; \
	  if [ -n "$$failed" ]; then echo "FAILED modules:$$failed"; exit 1; fi
	$(MAKE) build
	$(ROOT)/scripts/smoke.sh

.PHONY: demo
demo: up build ## the stack, every service, model v1 if none, simulated traffic; prints where to look
	$(ROOT)/scripts/venv.sh
	$(ROOT)/scripts/demo.sh

.PHONY: demo-drift
demo-drift: up build ## the closed loop narrated: clean traffic, drift, retraining, shadow, promotion (a few minutes; own processes)
	$(ROOT)/scripts/venv.sh
	cd loadtest && go build -o $(BIN)/demodrift ./cmd/demodrift
	@eval "$$($(STACK) env)"; KAFKA_BROKERS=$$MLOPS_TEST_KAFKA_BROKERS ES_URL=$$MLOPS_TEST_ES_URL REDIS_ADDR=$$MLOPS_TEST_REDIS_ADDR \
	  MLFLOW_URL=$$MLOPS_TEST_MLFLOW_URL LIGHTGBM_LIB=$$MLOPS_TEST_LIGHTGBM_LIB $(BIN)/demodrift -bin $(BIN) -dir $(ROOT)/.cache/run/demo-drift

.PHONY: bench
BENCH_COUNT ?= 5
BENCH_TIME ?= 1s
bench: up ## every benchmark (the stack-backed ones on the real stack), -count 5, into bench.out for benchstat
	@eval "$$($(STACK) env)"; \
	  for m in $(MODULES); do (cd $$m && go test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) -benchtime $(BENCH_TIME) ./... ) ; done | tee $(ROOT)/bench.out

.PHONY: bench-drift
bench-drift: ## driftstat vs Evidently's data-drift preset (PSI+KS+JS, 16 features x 1M rows a side): medians of 3 runs, ratio
	$(ROOT)/scripts/venv.sh
	@dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; cd $(ROOT)/services/platform; \
	  MLOPS_DRIFT_BENCH_DIR=$$dir go test -count=1 -run '^TestWriteBenchData$$' ./driftstat/ >/dev/null; \
	  echo "== driftstat: BenchmarkDriftStats1M, 3 runs"; \
	  out=$$(go test -run '^$$' -bench '^BenchmarkDriftStats1M$$' -benchtime 1x -count 3 ./driftstat/); echo "$$out"; \
	  ours=$$(echo "$$out" | awk '$$1 ~ /^BenchmarkDriftStats1M/ {print $$3 / 1e9}' | sort -g | sed -n 2p); \
	  echo "== Evidently: driftstat/testdata/evidently_bench.py, 3 runs"; \
	  out=$$($(ROOT)/.venv/bin/python driftstat/testdata/evidently_bench.py --dir $$dir --runs 3); echo "$$out"; \
	  theirs=$$(echo "$$out" | awk '$$1 == "median" {print $$2}'); \
	  awk -v o="$$ours" -v t="$$theirs" 'BEGIN {printf "median of 3: driftstat %.2f s, Evidently %.2f s, ratio %.0fx\n", o, t, t / o}'

.PHONY: bench-peers
bench-peers: up ## the platform vs real peers (MLServer, LightGBM's C API, Redis, kafka-go, Evidently) in one run: BENCHMARKS.md, loadtest/results/latest.json
	$(ROOT)/scripts/bench-peers.sh

.PHONY: docker
docker: ## build one image per service (needs a Docker engine)
	@for s in $(SERVICES); do docker build -f services/$$s/Dockerfile -t mlops/$$s:dev . ; done
