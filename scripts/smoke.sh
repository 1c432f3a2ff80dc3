#!/usr/bin/env bash
# smoke.sh — end-to-end check of every service binary on the real stack: each one starts,
# answers /healthz, /readyz and /metrics, and exits 0 within its drain timeout on SIGTERM.
# scoring runs for a model that has no champion: it must stay alive and report itself not
# ready because of the model (the state of a fresh stack before `mlopsctl train`), once as
# the fraud deployment and once as the purchase deployment (-model.spec purchase, its own
# consumer group; docs/purchase.md).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/bin
LOGS=$ROOT/.cache/run/smoke
mkdir -p "$LOGS"
# shellcheck disable=SC1090
eval "$("$ROOT/scripts/stack.sh" env)"
export KAFKA_BROKERS=$MLOPS_TEST_KAFKA_BROKERS ES_URL=$MLOPS_TEST_ES_URL REDIS_ADDR=$MLOPS_TEST_REDIS_ADDR
export MLFLOW_URL=$MLOPS_TEST_MLFLOW_URL LIGHTGBM_LIB=$MLOPS_TEST_LIGHTGBM_LIB
# The trainer refuses to start without an admin credential outside development mode; the smoke
# test runs it as production would, with a throwaway token.
MLOPS_ADMIN_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export MLOPS_ADMIN_TOKEN
passed=0 failed=0
port=18181
check() { # name[:deployment] [extra args...]
  local name=${1%%:*} admin=127.0.0.1:$port grpc=127.0.0.1:$((port + 1000)) log=$LOGS/${1/:/-}.log
  local label=$1
  shift
  port=$((port + 1))
  local args=(-admin.addr "$admin" "$@")
  [[ $name == predlog ]] || args+=(-grpc.addr "$grpc")
  "$BIN/$name" "${args[@]}" >"$log" 2>&1 &
  local pid=$! ok=1 deadline=$((SECONDS + 60)) want_ready=200 why=""
  # On a fresh stack no champion exists: scoring must then be alive but not ready.
  [[ $name == scoring ]] && want_ready=503
  until [[ $(curl -s -o "$LOGS/${label/:/-}.readyz" -w '%{http_code}' "http://$admin/readyz" 2>/dev/null) == "$want_ready" ]]; do
    if ! kill -0 $pid 2>/dev/null || (( SECONDS >= deadline )); then ok=0; why="readyz never answered $want_ready"; break; fi
    sleep 0.2
  done
  if (( ok )) && [[ $name == scoring ]] && ! grep -q 'model' "$LOGS/${label/:/-}.readyz"; then
    ok=0; why="scoring is unready for another reason: $(cat "$LOGS/${label/:/-}.readyz")"
  fi
  if (( ok )); then
    curl -fsS "http://$admin/healthz" >/dev/null || { ok=0; why="healthz failed"; }
    local metrics
    metrics=$(curl -fsS "http://$admin/metrics") || { ok=0; why="metrics failed"; }
    [[ $metrics == *"mlops_build_info{service=\"$name\""* ]] || { ok=0; why="metrics lack mlops_build_info"; }
  fi
  kill -TERM $pid 2>/dev/null || true
  local rc=0
  wait $pid || rc=$?
  if (( ok )) && (( rc == 0 )) && grep -q '"msg":"stopped"' "$log"; then
    echo "ok   $label: alive, readyz $want_ready, /metrics served, clean exit on SIGTERM"
    passed=$((passed + 1))
  else
    echo "FAIL $label (exit=$rc${why:+, $why}); log:"; tail -20 "$log"
    failed=$((failed + 1))
  fi
}
for s in ingestion features predlog drift trainer; do check "$s"; done
check scoring -model.required=false -model.cache-dir "$LOGS/scoring-cache" -model.name "smoke-absent-$$"
check scoring:purchase -model.required=false -model.cache-dir "$LOGS/scoring-purchase-cache" -model.name "smoke-absent-purchase-$$" \
  -model.spec purchase -kafka.group "smoke-scoring-purchase-$$"
echo "smoke: $passed passed, $failed failed"
(( failed == 0 ))
