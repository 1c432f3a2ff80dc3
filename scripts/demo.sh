#!/usr/bin/env bash
# demo.sh — the platform's main job on the local stack: start every service, train and
# promote model version 1 when no champion exists, run the simulator at a modest rate for a
# bounded time, and print where to look. The trainer service trains on the prediction log
# (Elasticsearch), which is empty on a fresh stack, so version 1 is bootstrapped from a
# simulated history: loadtest/cmd/simulate writes a dataset file and a one-off trainer
# process (-data.source=file, its own ports) trains and promotes it, then exits. The same is
# done for the purchase model (a simulated session dataset), served by the scoring-purchase
# deployment (docs/purchase.md). Run through `make demo` (which starts the stack and builds
# bin/ first). `make down` stops everything.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/bin
RUN=$ROOT/.cache/run/services
RATE=${DEMO_RATE:-20}            # transactions per second
DURATION=${DEMO_DURATION:-30m}   # the load generator stops by itself after this
MODEL=${MLOPS_MODEL:-fraud}
PURCHASE_MODEL=${MLOPS_PURCHASE_MODEL:-purchase}

has_champion() { # model
  "$BIN/mlopsctl" models asof -model "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" 2>/dev/null | grep -q '^version '
}

# bootstrap_v1 model... trains and promotes version 1 of each given model from simulated
# dataset files with a one-off trainer on its own ports (the service's trainer keeps reading
# Elasticsearch).
bootstrap_v1() {
  local dir=$ROOT/.cache/run/demo
  local fraud=$dir/fraud-sim.csv.gz purchase=$dir/purchase-sim.csv.gz
  mkdir -p "$dir"
  (cd "$ROOT/loadtest" && go build -o "$BIN/simulate" ./cmd/simulate)
  [[ -f $fraud ]] || "$BIN/simulate" -dataset "$fraud" -n "${DEMO_SIM_ROWS:-200000}" -seed 1 -accounts 5000 -warmup 24h
  [[ -f $purchase ]] || "$BIN/simulate" -dataset "$purchase" -scenario purchase -n "${DEMO_SIM_SESSIONS:-100000}" -seed 1 -accounts 5000
  local data=$fraud,$purchase
  eval "$("$ROOT/scripts/stack.sh" env)"
  local grpc=127.0.0.1:50066 admin=127.0.0.1:8096
  KAFKA_BROKERS=${MLOPS_TEST_KAFKA_BROKERS:-127.0.0.1:9092} MLFLOW_URL=${MLOPS_TEST_MLFLOW_URL:-http://127.0.0.1:5000} \
    LIGHTGBM_LIB=${MLOPS_TEST_LIGHTGBM_LIB:-} MLOPS_DEV=1 "$BIN/trainer" -grpc.addr "$grpc" -admin.addr "$admin" \
    -model.fraud "$MODEL" -model.purchase "$PURCHASE_MODEL" \
    -data.source file -data.file "$data" -drift.consume=false -kafka.group trainer-demo-bootstrap \
    >"$dir/trainer-bootstrap.log" 2>&1 &
  local pid=$!
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "http://$admin/readyz" 2>/dev/null; do
    if (( SECONDS >= deadline )) || ! kill -0 "$pid" 2>/dev/null; then
      echo "bootstrap trainer not ready; log:" >&2; tail -20 "$dir/trainer-bootstrap.log" >&2
      kill -TERM "$pid" 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
  local rc=0 m
  for m in "$@"; do
    "$BIN/mlopsctl" train -trainer.addr "$grpc" -model "$m" -reason "demo: first version (simulated history)" || rc=$?
  done
  kill -TERM "$pid"
  wait "$pid" || true
  return "$rc"
}

"$ROOT/scripts/services.sh" start

missing=()
for m in "$MODEL" "$PURCHASE_MODEL"; do
  if has_champion "$m"; then
    echo "champion of $m exists: $("$BIN/mlopsctl" models asof -model "$m" "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
  else
    echo "no champion for $m yet: training version 1 on a simulated history"
    missing+=("$m")
  fi
done
(( ${#missing[@]} == 0 )) || bootstrap_v1 "${missing[@]}"

"$ROOT/scripts/services.sh" wait-ready

if [[ -f $RUN/loadgen.pid ]] && kill -0 "$(cat "$RUN/loadgen.pid")" 2>/dev/null; then
  echo "load generator already running (pid $(cat "$RUN/loadgen.pid"))"
else
  eval "$("$ROOT/scripts/stack.sh" env)"
  nohup "$BIN/loadgen" -kafka.brokers "$MLOPS_TEST_KAFKA_BROKERS" -rate "$RATE" -shop-rate "${DEMO_SHOP_RATE:-5}" -n 0 -duration "$DURATION" \
    >"$RUN/loadgen.log" 2>&1 &
  echo $! >"$RUN/loadgen.pid"
  echo "load generator: $RATE tx/s for $DURATION (log $RUN/loadgen.log)"
fi

"$ROOT/scripts/services.sh" endpoints
ES=http://127.0.0.1:${ES_PORT:-9200}
cat <<EOT
Flagged transactions (the analysts' view; Kibana objects in deploy/kibana):
  curl -s '$ES/predictions/_search?q=decision:alert&sort=score:desc&size=5' | python3 -m json.tool
Prediction count:      curl -s '$ES/predictions/_count'
Model registry:        bin/mlopsctl models list        (MLflow UI: http://127.0.0.1:${MLFLOW_PORT:-5000})
Fraud rate (PromQL):   mlops_scoring_fraud_detection_rate   at http://127.0.0.1:${PROM_PORT:-9090}
Stop everything:       make down
EOT
