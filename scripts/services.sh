#!/usr/bin/env bash
# services.sh start|stop|status|endpoints — runs the project's service binaries (from bin/,
# built by `make build`) in the background against the local stack, one process each, with
# logs and pid files under .cache/run/services/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=$ROOT/.cache/run/services
BIN=$ROOT/bin
mkdir -p "$RUN"
# name admin-port grpc-port (- when the service serves no gRPC) [binary and arguments, when
# the name is not the binary]. Scoring runs one deployment per model family (docs/purchase.md):
# scoring serves the fraud model, scoring-purchase the purchase model, each in its own
# consumer group on features.v1, skipping the other family's vectors.
SERVICES=(
  "ingestion 8081 50051"
  "features 8082 50052"
  "scoring 8083 50053"
  "predlog 8084 -"
  "drift 8085 50055"
  "trainer 8086 50056"
  "scoring-purchase 8087 50057 scoring -model.name purchase -model.spec purchase -kafka.group scoring-purchase -model.cache-dir .cache/scoring-models-purchase -explain.sample-rate 0.1"
)

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_http() { # url timeout-seconds
  local url=$1 deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    (( SECONDS < deadline )) || return 1
    sleep 0.2
  done
}

start() {
  # shellcheck disable=SC1090
  eval "$("$ROOT/scripts/stack.sh" env)"
  export KAFKA_BROKERS=${MLOPS_TEST_KAFKA_BROKERS:-127.0.0.1:9092}
  export ES_URL=${MLOPS_TEST_ES_URL:-http://127.0.0.1:9200}
  export REDIS_ADDR=${MLOPS_TEST_REDIS_ADDR:-127.0.0.1:6379}
  export MLFLOW_URL=${MLOPS_TEST_MLFLOW_URL:-http://127.0.0.1:5000}
  export LIGHTGBM_LIB=${MLOPS_TEST_LIGHTGBM_LIB:-}
  # Development mode: the trainer starts without an admin credential (docs/security.md).
  export MLOPS_DEV=${MLOPS_DEV:-1}
  for row in "${SERVICES[@]}"; do
    read -r name admin grpc bin extra <<<"$row"
    bin=${bin:-$name}
    if pid_alive "$RUN/$name.pid"; then echo "$name already running (pid $(cat "$RUN/$name.pid"))"; continue; fi
    [[ -x $BIN/$bin ]] || { echo "missing $BIN/$bin: run make build" >&2; exit 1; }
    args=(-admin.addr "127.0.0.1:$admin")
    [[ $grpc == - ]] || args+=(-grpc.addr "127.0.0.1:$grpc")
    # scoring starts before a champion may exist (make demo trains one); it turns ready
    # when the model arrives through model.events or the alias poll.
    [[ $bin == scoring ]] && args+=(-model.required=false)
    # shellcheck disable=SC2206 # the extra arguments are words without spaces
    [[ -z ${extra:-} ]] || args+=($extra)
    nohup "$BIN/$bin" "${args[@]}" >"$RUN/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
  done
  for row in "${SERVICES[@]}"; do
    read -r name admin _ <<<"$row"
    if wait_http "http://127.0.0.1:$admin/healthz" 30; then
      echo "$name up (admin 127.0.0.1:$admin)"
    else
      echo "$name did not come up; last log lines:" >&2; tail -20 "$RUN/$name.log" >&2; exit 1
    fi
  done
}

wait_ready() {
  for row in "${SERVICES[@]}"; do
    read -r name admin _ <<<"$row"
    if ! wait_http "http://127.0.0.1:$admin/readyz" 120; then
      echo "$name is not ready after 120s: $(curl -s "http://127.0.0.1:$admin/readyz")" >&2; exit 1
    fi
  done
  echo "all services ready"
}

stop() {
  if pid_alive "$RUN/loadgen.pid"; then kill -TERM "$(cat "$RUN/loadgen.pid")"; echo "loadgen stopped"; fi
  rm -f "$RUN/loadgen.pid"
  for row in "${SERVICES[@]}"; do
    read -r name _ _ <<<"$row"
    local pf=$RUN/$name.pid
    if pid_alive "$pf"; then
      local pid; pid=$(cat "$pf")
      kill -TERM "$pid"
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then echo "$name ignored SIGTERM for 15s, killing" >&2; kill -KILL "$pid"; fi
      echo "$name stopped"
    fi
    rm -f "$pf"
  done
}

status() {
  for row in "${SERVICES[@]}"; do
    read -r name admin _ <<<"$row"
    if pid_alive "$RUN/$name.pid" && curl -fsS -o /dev/null "http://127.0.0.1:$admin/readyz" 2>/dev/null; then
      echo "$name: ready (pid $(cat "$RUN/$name.pid"))"
    elif pid_alive "$RUN/$name.pid"; then
      echo "$name: running, not ready (pid $(cat "$RUN/$name.pid"))"
    else
      echo "$name: down"
    fi
  done
}

endpoints() {
  cat <<EOT

Services (admin endpoints serve /metrics /healthz /readyz; /debug/pprof with ADMIN_PPROF=true):
$(for row in "${SERVICES[@]}"; do read -r n a g _ <<<"$row"; printf '  %-17s admin http://127.0.0.1:%s   grpc %s\n' "$n" "$a" "$([[ $g == - ]] && echo '-' || echo "127.0.0.1:$g")"; done)

Stack:
  Kafka          127.0.0.1:${KAFKA_PORT:-9092}     e.g. kcat -b 127.0.0.1:${KAFKA_PORT:-9092} -L
  Elasticsearch  http://127.0.0.1:${ES_PORT:-9200}
  Redis          127.0.0.1:${REDIS_PORT:-6379}
  MLflow UI      http://127.0.0.1:${MLFLOW_PORT:-5000}
  Prometheus     http://127.0.0.1:${PROM_PORT:-9090}

Try:  grpcurl -plaintext 127.0.0.1:50053 list
Logs: $RUN/<service>.log     Stop everything: make down
EOT
}

case ${1:-} in
  start) start ;;
  wait-ready) wait_ready ;;
  stop) stop ;;
  status) status ;;
  endpoints) endpoints ;;
  *) echo "usage: $0 start|wait-ready|stop|status|endpoints" >&2; exit 2 ;;
esac
