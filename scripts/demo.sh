#!/usr/bin/env bash
# demo.sh — the platform's main job on the local stack: start every service, train and
# promote model version 1 when no champion exists, run the simulator at a modest rate for a
# bounded time, and print where to look. Run through `make demo` (which starts the stack and
# builds bin/ first). `make down` stops everything.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/bin
RUN=$ROOT/.cache/run/services
RATE=${DEMO_RATE:-20}            # transactions per second
DURATION=${DEMO_DURATION:-30m}   # the load generator stops by itself after this
MODEL=${MLOPS_MODEL:-fraud}

"$ROOT/scripts/services.sh" start

if "$BIN/mlopsctl" models asof "$(date -u +%Y-%m-%dT%H:%M:%SZ)" 2>/dev/null | grep -q '^version '; then
  echo "champion of $MODEL exists: $("$BIN/mlopsctl" models asof "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
else
  echo "no champion for $MODEL yet: training version 1"
  "$BIN/mlopsctl" train -reason "demo: first version"
fi

"$ROOT/scripts/services.sh" wait-ready

if [[ -f $RUN/loadgen.pid ]] && kill -0 "$(cat "$RUN/loadgen.pid")" 2>/dev/null; then
  echo "load generator already running (pid $(cat "$RUN/loadgen.pid"))"
else
  eval "$("$ROOT/scripts/stack.sh" env)"
  nohup "$BIN/loadgen" -kafka.brokers "$MLOPS_TEST_KAFKA_BROKERS" -rate "$RATE" -n 0 -duration "$DURATION" \
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
