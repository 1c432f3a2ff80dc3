#!/usr/bin/env bash
# bench-peers.sh runs make bench-peers: the platform against real peers on this machine, side by
# side in one run, and writes BENCHMARKS.md and loadtest/results/latest.json.
#
#   1. installs the peers into .cache/peers/venv (MLServer and its LightGBM runtime, pinned in
#      loadtest/peers/requirements.txt; a virtualenv of their own, idempotent);
#   2. runs loadtest/e2e TestBenchPeers on the real local stack (started by make up): the five
#      services as processes, sync Score vs MLServer vs a bare gRPC echo, model time vs
#      LightGBM's C API, GetOnlineFeatures vs a raw Redis read, the stream path (loadgen -ramp)
#      vs one kafka-go hop, peak RSS and CPU per 1,000 transactions per service;
#   3. runs loadtest/peers/drift_bench.py: driftstat vs Evidently (make bench-drift's data and
#      timings) with verdicts and peak memory;
#   4. writes the report (loadtest/peers/report.py).
#
# Everything talks to 127.0.0.1 only. Knobs (environment): BENCH_REPS (3), BENCH_DURATION (3s
# per load run), BENCH_RAMP (loadgen -ramp steps), BENCH_DRIFT_RUNS (3 driftstat runs),
# BENCH_EVIDENTLY_RUNS (1: a run takes minutes), BENCH_OUT (a directory that keeps the raw
# results; default: a temporary one), BENCH_PARTS (a subset of the harness's parts, e.g. "sync" or
# "stream,features", while working on one: it prints stack.json and writes no report),
# BENCH_SERVICE_ENV (settings for the services under test, to try their knobs:
# "KAFKA_BATCH_WAIT=5ms predlog:ES_REFRESH_INTERVAL=10s").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PEERS=$ROOT/.cache/peers
VENV=$PEERS/venv
REQ=$ROOT/loadtest/peers/requirements.txt
STAMP=$VENV/.requirements.sha256
PY=${PYTHON:-python3}

want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [[ ! -x $VENV/bin/mlserver || ! -f $STAMP || $(cat "$STAMP") != "$want" ]]; then
  echo "== installing the peers into $VENV"
  mkdir -p "$PEERS"
  [[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
  export PIP_CACHE_DIR=$ROOT/.cache/pip
  "$VENV/bin/python" -m pip install --quiet --upgrade pip wheel >/dev/null
  "$VENV/bin/python" -m pip install --quiet -r "$REQ"
  echo "$want" > "$STAMP"
fi
"$ROOT/scripts/venv.sh"

OUT=${BENCH_OUT:-}
if [[ -z $OUT ]]; then
  OUT=$(mktemp -d)
  trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT"
eval "$("$ROOT/scripts/stack.sh" env)"
export MLOPS_TEST_REQUIRE_STACK=1 MLOPS_BENCH_PEERS_OUT=$OUT MLOPS_BENCH_MLSERVER=$VENV/bin/mlserver
export MLOPS_BENCH_REPS=${BENCH_REPS:-3} MLOPS_BENCH_DURATION=${BENCH_DURATION:-3s}
[[ -n ${BENCH_RAMP:-} ]] && export MLOPS_BENCH_RAMP=$BENCH_RAMP
[[ -n ${BENCH_PARTS:-} ]] && export MLOPS_BENCH_PARTS=$BENCH_PARTS
[[ -n ${BENCH_SERVICE_ENV:-} ]] && export MLOPS_BENCH_SERVICE_ENV=$BENCH_SERVICE_ENV
started=$(date +%s)

echo "== platform vs peers (loadtest/e2e TestBenchPeers; log in $OUT/harness.log)"
(cd loadtest && go test -count=1 -timeout 45m -run '^TestBenchPeers$' -v ./e2e/) > "$OUT/harness.log" 2>&1 \
  || { tail -60 "$OUT/harness.log"; echo "bench-peers: the harness failed (log above)"; exit 1; }
grep -E '^(--- |ok|PASS)' "$OUT/harness.log" || true
if [[ -n ${BENCH_PARTS:-} ]]; then
  cat "$OUT/stack.json"
  echo "bench-peers: BENCH_PARTS=$BENCH_PARTS: no report written"
  exit 0
fi

echo "== driftstat vs Evidently (loadtest/peers/drift_bench.py)"
"$ROOT/.venv/bin/python" loadtest/peers/drift_bench.py --root "$ROOT" --out "$OUT/drift.json" --runs "${BENCH_DRIFT_RUNS:-3}" \
  --evidently-runs "${BENCH_EVIDENTLY_RUNS:-1}"

echo "== machine and versions"
{
  echo "{"
  echo "\"kernel\": \"$(uname -sr)\","
  echo "\"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\","
  echo "\"cores\": $(nproc),"
  echo "\"memory_gib\": $(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo),"
  echo "\"loadavg_at_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\","
  echo "\"go\": \"$(go env GOVERSION)\","
  echo "\"python\": \"$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')\","
  for p in mlserver mlserver-lightgbm uvloop lightgbm grpcio; do
    echo "\"$p\": \"$("$VENV/bin/python" -m pip show "$p" 2>/dev/null | awk '/^Version/ {print $2}')\","
  done
  echo "\"evidently\": \"$("$ROOT/.venv/bin/python" -m pip show evidently 2>/dev/null | awk '/^Version/ {print $2}')\","
  echo "\"kafka_go\": \"$(cd loadtest && go list -m -f '{{.Version}}' github.com/segmentio/kafka-go)\","
  echo "\"grpc_go\": \"$(cd loadtest && go list -m -f '{{.Version}}' google.golang.org/grpc)\","
  echo "\"kafka\": \"$(find .cache/kafka/libs -maxdepth 1 -name 'kafka_2.13-*' 2>/dev/null | sort | grep -m1 -oE 'kafka_2\.13-[0-9.]*[0-9]' | cut -d- -f2)\","
  echo "\"elasticsearch\": \"$(curl -s "$MLOPS_TEST_ES_URL/_nodes/_local?filter_path=nodes.*.version" | "$PY" -c 'import json,sys; print(next(iter(json.load(sys.stdin)["nodes"].values()))["version"])' 2>/dev/null)\","
  echo "\"redis\": \"$(redis-server --version 2>/dev/null | grep -oE 'v=[0-9.]+' | cut -d= -f2)\","
  echo "\"total_seconds\": $(( $(date +%s) - started ))"
  echo "}"
} > "$OUT/machine.json"

mkdir -p loadtest/results
"$PY" loadtest/peers/report.py --stack "$OUT/stack.json" --drift "$OUT/drift.json" --machine "$OUT/machine.json" \
  --json loadtest/results/latest.json --markdown BENCHMARKS.md
echo "bench-peers: wrote BENCHMARKS.md and loadtest/results/latest.json in $(( $(date +%s) - started )) s"
