#!/usr/bin/env bash
# stack.sh fetches, starts, health-checks and stops the project's local stack without Docker:
# Kafka (KRaft, jars from Maven), Elasticsearch 8 (jars from Maven, started by
# scripts/stack/es/EsNode.java), Redis and Prometheus (Debian packages) and the MLflow server
# (project virtualenv). Everything lives under .cache/: downloads, data, and for each
# component a pid file and a log in .cache/run/<name>/. See docs/stack.md.
#
#   scripts/stack.sh fetch  [component...]   download/install what the components need
#   scripts/stack.sh up     [component...]   fetch if needed, start, wait until healthy
#   scripts/stack.sh down   [component...]   SIGTERM, wait, then SIGKILL
#   scripts/stack.sh status [component...]   print healthy/down per component
#   scripts/stack.sh env                     print export lines for the integration tests
#   scripts/stack.sh logs   component        print the tail of a component's log
#   scripts/stack.sh smoke                   exercise every component once (kcat, curl, redis-cli)
#   scripts/stack.sh kafka-topics ARGS...    Kafka's topic tool against the local broker
#                                            (e.g. --create --topic t --partitions 3)
#   scripts/stack.sh wipe-kafka              stop Kafka and delete its data: the next up starts
#                                            an empty broker (a long-lived one gathers test
#                                            topics; each partition costs broker heap)
#
# Components: kafka es redis mlflow prometheus (default: all). Every command is idempotent.
#
# Private instances: STACK_INSTANCE=NAME runs every command against a separate instance whose
# run and data directories are .cache/instances/NAME/ (downloads are shared). The ports of the
# components it uses must then be given (KAFKA_PORT, ES_PORT, REDIS_PORT, MLFLOW_PORT,
# PROM_PORT); the Kafka controller and ES transport ports default to KAFKA_PORT+1 and ES_PORT+1.
#   STACK_INSTANCE=outage KAFKA_PORT=19092 ES_PORT=19200 REDIS_PORT=16379 \
#     scripts/stack.sh up kafka es redis
#
# Security (docs/security.md), for private instances that test it; the shared stack stays open:
#   KAFKA_SECURITY=sasl_ssl   the client listener speaks SASL_SSL with SCRAM-SHA-512. Needs
#     KAFKA_TLS_DIR holding broker.pem (private key and certificate chain, PEM) and ca.pem, and
#     KAFKA_SASL_USER / KAFKA_SASL_PASSWORD (the user is created when the storage is formatted,
#     and is also the broker's own inter-broker login).
#   REDIS_PASSWORD=...        requirepass (the default user); REDIS_ACL_USER with
#     REDIS_ACL_PASSWORD adds an ACL user with every permission.
#   REDIS_TLS_DIR=DIR         Redis speaks TLS only (server.pem, server-key.pem, ca.pem in DIR;
#     clients need no certificate).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MLOPS_CACHE:-$ROOT/.cache}
INSTANCE=${STACK_INSTANCE:-}
# DATA holds run directories and component data: the cache itself for the default instance,
# .cache/instances/NAME for a private one. Jars, classes and Maven's repository stay in CACHE.
DATA=$CACHE
if [[ -n $INSTANCE ]]; then
  [[ $INSTANCE =~ ^[a-z0-9][a-z0-9_-]*$ ]] ||
    { echo "stack: error: STACK_INSTANCE '$INSTANCE' must match [a-z0-9][a-z0-9_-]*" >&2; exit 2; }
  DATA=$CACHE/instances/$INSTANCE
  # Which ports the caller gave, before the defaults below fill in the shared stack's.
  GIVEN_PORTS=" ${KAFKA_PORT:+kafka} ${ES_PORT:+es} ${REDIS_PORT:+redis} ${MLFLOW_PORT:+mlflow} ${PROM_PORT:+prometheus} "
  KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-${KAFKA_PORT:+$((KAFKA_PORT + 1))}}
  ES_TRANSPORT_PORT=${ES_TRANSPORT_PORT:-${ES_PORT:+$((ES_PORT + 1))}}
fi
RUN=$DATA/run
VENV=${MLOPS_VENV:-$ROOT/.venv}
STACK_DIR=$ROOT/scripts/stack

HOST=127.0.0.1
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
ES_PORT=${ES_PORT:-9200}
ES_TRANSPORT_PORT=${ES_TRANSPORT_PORT:-9300}
REDIS_PORT=${REDIS_PORT:-6379}
MLFLOW_PORT=${MLFLOW_PORT:-5000}
PROM_PORT=${PROM_PORT:-9090}

# 1 GiB: at 512 MiB a developer's broker that had gathered ~7,600 partitions of test topics
# ran out of heap (old generation 99% full and most of a core in GC before that).
KAFKA_HEAP=${KAFKA_HEAP:-1g}
ES_HEAP=${ES_HEAP:-1g}
UP_TIMEOUT=${STACK_UP_TIMEOUT:-180}   # seconds to wait for one component to become healthy
STOP_TIMEOUT=${STACK_STOP_TIMEOUT:-30} # seconds between SIGTERM and SIGKILL

ALL=(kafka es redis mlflow prometheus)

KAFKA_HOME=$CACHE/kafka
ES_HOME_DIR=$CACHE/es
M2=$CACHE/m2
KAFKA_DATA=$DATA/kafka/data
ES_DATA=$DATA/es # data, tmp and (for a private instance) a home with its own config

log() { printf '%s stack: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# fetch

apt_ensure() { # apt_ensure cmd:package... installs the packages whose command is missing
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  ((${#missing[@]})) || return 0
  log "apt-get install ${missing[*]}"
  local sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

fetch_common() {
  # chromium: the drift report's browser test; fonts-liberation makes its screenshots legible.
  # make lint runs shellcheck on scripts/.
  apt_ensure curl:curl java:openjdk-17-jdk-headless javac:openjdk-17-jdk-headless \
    mvn:maven unzip:unzip kcat:kcat chromium:chromium shellcheck:shellcheck openssl:openssl
  if ! dpkg -s fonts-liberation >/dev/null 2>&1; then
    local sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends fonts-liberation >/dev/null
  fi
}

# mvn_copy POM OUTDIR: copies POM's runtime dependencies into OUTDIR unless the stamp says that
# OUTDIR already holds the result for this exact POM.
mvn_copy() {
  local pom=$1 out=$2 want
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -f $out/.stamp && $(cat "$out/.stamp") == "$want" ]]; then
    return 1
  fi
  log "maven: resolving $(basename "$(dirname "$pom")") dependencies into ${out#"$ROOT"/}"
  rm -rf "$out.tmp"
  mkdir -p "$(dirname "$out")"
  if ! mvn -B -q -Dstyle.color=never -f "$pom" -Dmaven.repo.local="$M2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$out.tmp" \
    >"$out.mvn.log" 2>&1; then
    cat "$out.mvn.log" >&2
    die "maven could not resolve $pom"
  fi
  rm -rf "$out"
  mv "$out.tmp" "$out"
  echo "$want" >"$out/.stamp"
  return 0
}

fetch_kafka() {
  mvn_copy "$STACK_DIR/kafka/pom.xml" "$KAFKA_HOME/libs" || true
}

fetch_es() {
  local libs=$ES_HOME_DIR/libs mod=$ES_HOME_DIR/home/modules/transport-netty4
  if mvn_copy "$STACK_DIR/es/pom.xml" "$libs" || [[ ! -f $mod/plugin-descriptor.properties ]]; then
    # Lay transport-netty4 out as a module bundle, as the distribution does: its jar, the netty
    # jars it depends on, and the descriptor it carries under META-INF/es-plugins/.
    rm -rf "$mod"
    mkdir -p "$mod"
    mv "$libs"/transport-netty4-*.jar "$libs"/netty-*.jar "$mod"/
    unzip -q -o -j "$mod"/transport-netty4-*.jar 'META-INF/es-plugins/transport-netty4/*' -d "$mod"
  fi
  mkdir -p "$ES_HOME_DIR/home/plugins" "$ES_HOME_DIR/classes"
  local src=$STACK_DIR/es/EsNode.java cls=$ES_HOME_DIR/classes/EsNode.class
  if [[ ! -f $cls || $src -nt $cls || $libs/.stamp -nt $cls ]]; then
    log "javac EsNode.java"
    javac -nowarn --module-path "$libs" --add-modules org.elasticsearch.server \
      -d "$ES_HOME_DIR/classes" "$src"
  fi
}

fetch_redis() { apt_ensure redis-server:redis-server redis-cli:redis-tools; }

fetch_mlflow() {
  # venv.sh is idempotent and fast when the requirements are already installed.
  "$ROOT/scripts/venv.sh" >&2
}

fetch_prometheus() {
  apt_ensure prometheus:prometheus promtool:prometheus
  # The Debian package enables a system service; this stack runs its own instance instead.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    log "note: a system prometheus service is running; it may hold port 9090"
  fi
}

# ---------------------------------------------------------------------------------------------
# process management

pidfile() { echo "$RUN/$1/pid"; }
logfile() { echo "$RUN/$1/log"; }

# running NAME: the component's process group (started by this script) is alive.
running() {
  local pf pid
  pf=$(pidfile "$1")
  [[ -f $pf ]] || return 1
  pid=$(cat "$pf")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null
}

# start_bg NAME CMD...: runs CMD in its own session (so down can signal its whole process group)
# with stdout/stderr appended to the component log, and records its pid.
start_bg() {
  local name=$1
  shift
  mkdir -p "$RUN/$name"
  printf '\n==== %s starting: %s\n' "$(date -Is)" "$*" >>"$(logfile "$name")"
  # 9>&- : the child must not inherit the lock descriptor, or it would hold the lock forever.
  setsid "$@" >>"$(logfile "$name")" 2>&1 </dev/null 9>&- &
  echo $! >"$(pidfile "$name")"
}

stop_component() {
  local name=$1 pf pid i t0=$SECONDS
  pf=$(pidfile "$name")
  if ! running "$name"; then
    rm -f "$pf"
    echo "$name: down"
    return 0
  fi
  pid=$(cat "$pf")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  # Children (e.g. MLflow's uvicorn workers) share the process group; give them a moment too.
  for ((i = 0; i < 50; i++)); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pf"
  echo "$name: stopped ($((SECONDS - t0))s)"
}

# ---------------------------------------------------------------------------------------------
# health checks (quiet; exit status only)

kafka_secured() { [[ ${KAFKA_SECURITY:-plaintext} == sasl_ssl ]]; }

healthy_kafka() {
  if kafka_secured; then
    # kcat (librdkafka) fails SCRAM-SHA-512 against this broker with credentials the Go client
    # authenticates with, so a secured broker is healthy when its last start logged
    # "Kafka Server started" and its TLS listener completes a handshake with the CA.
    awk '/^==== .* starting:/ { ok = 0 } /Kafka Server started/ { ok = 1 } END { exit !ok }' \
      "$(logfile kafka)" 2>/dev/null &&
      openssl s_client -connect "$HOST:$KAFKA_PORT" -CAfile "$KAFKA_TLS_DIR/ca.pem" \
        -verify_return_error </dev/null >/dev/null 2>&1
    return
  fi
  kcat -b "$HOST:$KAFKA_PORT" -L -m 3 2>/dev/null | grep -q ' 1 brokers:'
}
healthy_es() {
  curl -fsS -m 3 "http://$HOST:$ES_PORT/_cluster/health" 2>/dev/null |
    grep -Eq '"status":"(green|yellow)"'
}
# redis_cli ARGS...: redis-cli against the instance's Redis, with its TLS and password.
redis_cli() {
  local opts=()
  [[ -n ${REDIS_TLS_DIR:-} ]] && opts+=(--tls --cacert "$REDIS_TLS_DIR/ca.pem")
  if [[ -n ${REDIS_PASSWORD:-} ]]; then
    REDISCLI_AUTH=$REDIS_PASSWORD redis-cli "${opts[@]}" -h "$HOST" -p "$REDIS_PORT" "$@"
  else
    redis-cli "${opts[@]}" -h "$HOST" -p "$REDIS_PORT" "$@"
  fi
}
healthy_redis() {
  [[ $(redis_cli PING 2>/dev/null) == PONG ]]
}
healthy_mlflow() {
  [[ $(curl -fsS -m 3 "http://$HOST:$MLFLOW_PORT/health" 2>/dev/null) == OK ]]
}
healthy_prometheus() {
  curl -fsS -m 3 "http://$HOST:$PROM_PORT/-/ready" >/dev/null 2>&1
}

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# start

start_kafka() {
  local dir=$RUN/kafka data=$KAFKA_DATA cp="$KAFKA_HOME/libs/*" listener=PLAINTEXT scram=()
  mkdir -p "$dir" "$data"
  if kafka_secured; then
    [[ -f ${KAFKA_TLS_DIR:-}/broker.pem && -f ${KAFKA_TLS_DIR:-}/ca.pem && -n ${KAFKA_SASL_USER:-} && -n ${KAFKA_SASL_PASSWORD:-} ]] ||
      die "KAFKA_SECURITY=sasl_ssl needs KAFKA_TLS_DIR (broker.pem, ca.pem), KAFKA_SASL_USER and KAFKA_SASL_PASSWORD"
    listener=SASL_SSL
    scram=(--add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]")
  fi
  touch "$dir/server.properties"
  chmod 600 "$dir/server.properties" # it holds the broker's SASL password when secured
  cat >"$dir/server.properties" <<EOF
# Generated by scripts/stack.sh on each start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=$listener://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=$listener://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=$listener
listener.security.protocol.map=CONTROLLER:PLAINTEXT,$listener:$listener
log.dirs=$data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Convenient for development; the project's tests create their topics explicitly.
auto.create.topics.enable=true
delete.topic.enable=true
log.retention.hours=24
log.segment.bytes=67108864
EOF
  if kafka_secured; then
    cat >>"$dir/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_SASL_USER" password="$KAFKA_SASL_PASSWORD";
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_TLS_DIR/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_TLS_DIR/ca.pem
ssl.client.auth=none
EOF
  fi
  cat >"$dir/log4j2.properties" <<'EOF'
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.controller.name = state.change.logger
logger.controller.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
  local jvm=(-Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir")
  if [[ ! -f $data/meta.properties ]]; then
    # KRaft storage is formatted once with a fresh cluster id (22 chars of URL-safe base64). It
    # is passed as --cluster-id=ID: one in 64 ids starts with "-", which the tool would take for
    # an option if it came as a separate argument.
    local id
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    log "kafka: formatting KRaft storage (cluster id $id)"
    java "${jvm[@]}" -cp "$cp" kafka.tools.StorageTool format --cluster-id="$id" \
      -c "$dir/server.properties" "${scram[@]}" >>"$dir/log" 2>&1 9>&- ||
      { tail -n 30 "$dir/log" >&2; die "kafka storage format failed"; }
  fi
  start_bg kafka java "${jvm[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties"
}

start_es() {
  local home=$ES_HOME_DIR/home dir=$RUN/es cluster=mlops-dev
  if [[ -n $INSTANCE ]]; then
    # A home of its own (config), sharing the module bundles and plugins of the fetched one.
    home=$ES_DATA/home
    cluster=mlops-$INSTANCE
    mkdir -p "$home"
    ln -sfn "$ES_HOME_DIR/home/modules" "$home/modules"
    ln -sfn "$ES_HOME_DIR/home/plugins" "$home/plugins"
  fi
  mkdir -p "$home/config" "$ES_DATA/data" "$dir/logs" "$ES_DATA/tmp"
  cat >"$home/config/elasticsearch.yml" <<EOF
# Generated by scripts/stack.sh on each start; edit the script, not this file.
cluster.name: $cluster
node.name: es-dev
path.data: $ES_DATA/data
path.logs: $dir/logs
network.host: $HOST
http.port: $ES_PORT
transport.port: $ES_TRANSPORT_PORT
discovery.type: single-node
# A development machine's disk may be fuller than the production watermarks allow.
cluster.routing.allocation.disk.threshold_enabled: false
# Tests clean up with wildcard deletes (e.g. DELETE /predictions-test-*).
action.destructive_requires_name: false
EOF
  cat >"$home/config/log4j2.properties" <<'EOF'
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
logger.deprecation.name = org.elasticsearch.deprecation
logger.deprecation.level = error
EOF
  start_bg es java -Xms"$ES_HEAP" -Xmx"$ES_HEAP" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
    -Djava.io.tmpdir="$ES_DATA/tmp" -Djava.awt.headless=true -Dfile.encoding=UTF-8 \
    -Djava.locale.providers=CLDR -Dlog4j2.disable.jmx=true -Dlog4j.shutdownHookEnabled=false \
    -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true \
    -Dio.netty.recycler.maxCapacityPerThread=0 -Des.networkaddress.cache.ttl=60 \
    --module-path "$ES_HOME_DIR/libs" --add-modules ALL-MODULE-PATH \
    -cp "$ES_HOME_DIR/classes" EsNode "$home"
}

start_redis() {
  local dir=$RUN/redis
  mkdir -p "$dir"
  # No persistence by default (the shared development stack). REDIS_PERSIST=1 keeps an
  # append-only file in the run directory, so a down/up keeps the features' online state (what
  # a production Redis with persistence or replicas does; outage tests need it).
  local aof=no
  [[ ${REDIS_PERSIST:-0} == 1 ]] && aof=yes
  # Authentication and TLS go into a file (mode 600), not the command line where ps shows them.
  (
    umask 077
    : >"$dir/security.conf"
    if [[ -n ${REDIS_PASSWORD:-} ]]; then echo "requirepass \"$REDIS_PASSWORD\"" >>"$dir/security.conf"; fi
    if [[ -n ${REDIS_ACL_USER:-} ]]; then
      echo "user $REDIS_ACL_USER on >$REDIS_ACL_PASSWORD ~* &* +@all" >>"$dir/security.conf"
    fi
    if [[ -n ${REDIS_TLS_DIR:-} ]]; then
      printf '%s\n' "port 0" "tls-port $REDIS_PORT" "tls-cert-file $REDIS_TLS_DIR/server.pem" \
        "tls-key-file $REDIS_TLS_DIR/server-key.pem" "tls-ca-cert-file $REDIS_TLS_DIR/ca.pem" \
        "tls-auth-clients no" >>"$dir/security.conf"
    fi
  )
  local port=(--port "$REDIS_PORT")
  [[ -n ${REDIS_TLS_DIR:-} ]] && port=()
  start_bg redis redis-server "$dir/security.conf" --bind "$HOST" "${port[@]}" --protected-mode yes \
    --save '' --appendonly "$aof" --appendfsync everysec --dir "$dir" --daemonize no \
    --loglevel notice --logfile ''
}

start_mlflow() {
  local dir=$RUN/mlflow data=$DATA/mlflow
  mkdir -p "$dir" "$data/artifacts"
  # MLflow 3 rejects requests whose Host header is not allowed; permit loopback names on the
  # configured port so clients can use 127.0.0.1 or localhost.
  local hosts="$HOST:$MLFLOW_PORT,localhost:$MLFLOW_PORT,$HOST,localhost"
  # The server's background job runner (huey consumers for GenAI jobs such as scorers and
  # prompt optimisation) costs ~1.5 GB RSS in 7 processes; tracking and the model registry do
  # not need it.
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false} \
    start_bg mlflow "$VENV/bin/mlflow" server \
    --backend-store-uri "sqlite:///$data/mlflow.db" \
    --serve-artifacts --artifacts-destination "$data/artifacts" \
    --host "$HOST" --port "$MLFLOW_PORT" --workers 1 \
    --allowed-hosts "$hosts"
}

start_prometheus() {
  local dir=$RUN/prometheus
  mkdir -p "$dir" "$DATA/prometheus/data"
  start_bg prometheus prometheus \
    --config.file="$ROOT/deploy/prometheus/prometheus.yml" \
    --storage.tsdb.path="$DATA/prometheus/data" --storage.tsdb.retention.time=2d \
    --web.listen-address="$HOST:$PROM_PORT" --web.enable-lifecycle
}

port_of() {
  case $1 in
  kafka) echo "$KAFKA_PORT" ;; es) echo "$ES_PORT" ;; redis) echo "$REDIS_PORT" ;;
  mlflow) echo "$MLFLOW_PORT" ;; prometheus) echo "$PROM_PORT" ;;
  esac
}

# wait_healthy NAME: polls the health check until it passes, the process dies, or UP_TIMEOUT.
wait_healthy() {
  local name=$1 deadline=$((SECONDS + UP_TIMEOUT))
  while ((SECONDS < deadline)); do
    if "healthy_$name"; then
      return 0
    fi
    if ! running "$name"; then
      log "$name: process exited during startup; last log lines:"
      tail -n 40 "$(logfile "$name")" >&2
      return 1
    fi
    sleep 0.5
  done
  log "$name: not healthy after ${UP_TIMEOUT}s; last log lines:"
  tail -n 40 "$(logfile "$name")" >&2
  return 1
}

# ---------------------------------------------------------------------------------------------
# commands

components() { # validates and echoes the requested components (default: all)
  local c
  if (($# == 0)); then
    # A private instance's default is the components whose ports were given.
    if [[ -n $INSTANCE && ($CMD == up || $CMD == status) ]]; then
      local list=()
      for c in "${ALL[@]}"; do given "$c" && list+=("$c"); done
      ((${#list[@]})) || die "STACK_INSTANCE=$INSTANCE: set the ports of its components (e.g. KAFKA_PORT)"
      echo "${list[@]}"
      return
    fi
    echo "${ALL[@]}"
    return
  fi
  for c in "$@"; do
    [[ " ${ALL[*]} " == *" $c "* ]] || die "unknown component '$c' (known: ${ALL[*]})"
  done
  echo "$@"
}

lock() {
  mkdir -p "$RUN"
  exec 9>"$RUN/stack.lock"
  flock 9
}

cmd_fetch() {
  local c
  fetch_common
  for c in "$@"; do "fetch_$c"; done
  if [[ " $* " == *" prometheus "* ]]; then
    promtool check config "$ROOT/deploy/prometheus/prometheus.yml" >/dev/null
  fi
}

# need_ports NAME...: a private instance must not fall back to the shared stack's ports, or
# `up` would find the shared component healthy and `env` would point tests at it.
need_ports() {
  [[ -n $INSTANCE ]] || return 0
  local c
  for c in "$@"; do
    [[ $GIVEN_PORTS == *" $c "* ]] ||
      die "STACK_INSTANCE=$INSTANCE: set the port of $c (a private instance has no default ports)"
  done
}

# given COMPONENT: outside a private instance always true; inside, whether its port was given.
given() { [[ -z $INSTANCE || $GIVEN_PORTS == *" $1 "* ]]; }

cmd_up() {
  local c started=() failed=0 t0=$SECONDS
  need_ports "$@"
  cmd_fetch "$@"
  for c in "$@"; do
    if "healthy_$c"; then
      echo "$c: already healthy"
      continue
    fi
    if running "$c"; then
      log "$c: process running but not healthy yet; waiting"
      started+=("$c")
      continue
    fi
    if port_busy "$(port_of "$c")"; then
      die "$c: port $(port_of "$c") is in use by another process (not started by this script)"
    fi
    log "$c: starting"
    "start_$c"
    started+=("$c")
  done
  for c in "${started[@]}"; do
    if wait_healthy "$c"; then
      echo "$c: healthy ($((SECONDS - t0))s)"
    else
      failed=1
    fi
  done
  ((failed == 0)) || die "some components did not become healthy (logs: ${RUN#"$ROOT"/}/<name>/log)"
}

cmd_down() {
  local c list=() i
  for c in "$@"; do list=("$c" "${list[@]}"); done # reverse order
  for c in "${list[@]}"; do stop_component "$c"; done
}

cmd_status() {
  local c rc=0 pid
  need_ports "$@"
  for c in "$@"; do
    pid=-
    running "$c" && pid=$(cat "$(pidfile "$c")")
    if "healthy_$c"; then
      printf '%-11s healthy  port=%-5s pid=%s\n' "$c" "$(port_of "$c")" "$pid"
    else
      printf '%-11s down     port=%-5s pid=%s\n' "$c" "$(port_of "$c")" "$pid"
      rc=1
    fi
  done
  return $rc
}

cmd_env() {
  local lib py=$VENV/bin/python
  lib=$(find "$VENV"/lib -path '*/site-packages/lightgbm/lib/lib_lightgbm.so' 2>/dev/null | head -n 1 || true)
  # A private instance exports only the components whose ports were given.
  given kafka && echo "export MLOPS_TEST_KAFKA_BROKERS=$HOST:$KAFKA_PORT"
  given es && echo "export MLOPS_TEST_ES_URL=http://$HOST:$ES_PORT"
  given redis && echo "export MLOPS_TEST_REDIS_ADDR=$HOST:$REDIS_PORT"
  given mlflow && echo "export MLOPS_TEST_MLFLOW_URL=http://$HOST:$MLFLOW_PORT"
  given prometheus && echo "export MLOPS_TEST_PROMETHEUS_URL=http://$HOST:$PROM_PORT"
  if [[ -n $lib ]]; then
    echo "export MLOPS_TEST_LIGHTGBM_LIB=$lib"
  else
    log "warning: lib_lightgbm.so not found under $VENV (run scripts/venv.sh)"
  fi
  if [[ -x $py ]]; then
    echo "export MLOPS_TEST_PYTHON=$py"
  else
    log "warning: $py not found (run scripts/venv.sh)"
  fi
}

# cmd_smoke does one real round trip per component and fails loudly on the first mismatch.
cmd_smoke() {
  local id topic got es=http://$HOST:$ES_PORT
  id=smoke-$(date +%s)-$$
  topic=stack.$id
  kcat -b "$HOST:$KAFKA_PORT" -P -t "$topic" -K: <<<"k1:$id" ||
    die "kafka: produce to $topic failed"
  got=$(kcat -b "$HOST:$KAFKA_PORT" -C -t "$topic" -o beginning -c 1 -e -q -f '%k=%s' 2>&1)
  [[ $got == "k1=$id" ]] || die "kafka: consumed '$got', want 'k1=$id'"
  echo "kafka: produced and consumed one record on $topic"

  curl -fsS -XPUT "$es/stack-smoke/_doc/$id?refresh=true" -H 'content-type: application/json' \
    -d "{\"msg\":\"$id\"}" >/dev/null || die "es: index failed"
  got=$(curl -fsS "$es/stack-smoke/_search?q=_id:$id" | grep -o "\"msg\":\"$id\"" || true)
  [[ -n $got ]] || die "es: document $id not found by search"
  echo "es: indexed and found stack-smoke/$id"

  got=$(redis-cli -h "$HOST" -p "$REDIS_PORT" SET "$id" ok EX 60 2>&1 || true)
  [[ $got == OK && $(redis-cli -h "$HOST" -p "$REDIS_PORT" GET "$id" 2>/dev/null || true) == ok ]] ||
    die "redis: SET/GET failed"
  echo "redis: SET/GET ok"

  got=$(curl -fsS -XPOST "http://$HOST:$MLFLOW_PORT/api/2.0/mlflow/experiments/create" \
    -H 'content-type: application/json' -d "{\"name\":\"$id\"}") || die "mlflow: create failed"
  [[ $got == *experiment_id* ]] || die "mlflow: unexpected answer $got"
  echo "mlflow: created experiment $id"

  curl -fsS "http://$HOST:$PROM_PORT/-/ready" >/dev/null || die "prometheus: not ready"
  got=$(curl -fsS "http://$HOST:$PROM_PORT/api/v1/rules")
  [[ $got == *FeatureDriftPSI* ]] || die "prometheus: rules not loaded"
  echo "prometheus: ready, rules loaded"
}

usage() {
  sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  (($# >= 1)) || usage
  local cmd=$1 list comps=()
  shift
  CMD=$cmd
  case $cmd in
  fetch | up | down | status | logs)
    list=$(components "$@") || exit 2
    read -ra comps <<<"$list"
    ;;
  esac
  case $cmd in
  fetch) lock; cmd_fetch "${comps[@]}" ;;
  up) lock; cmd_up "${comps[@]}" ;;
  down) lock; cmd_down "${comps[@]}" ;;
  status) cmd_status "${comps[@]}" ;;
  env) cmd_env ;;
  smoke) cmd_smoke ;;
  logs)
    (($# == 1)) || usage
    tail -n "${LINES_TAIL:-80}" "$(logfile "$1")"
    ;;
  kafka-topics)
    [[ -d $KAFKA_HOME/libs ]] || die "run '$0 fetch kafka' first"
    exec java -Xmx256m -Dlog4j2.level=WARN -Dlog4j2.configurationFile="$STACK_DIR/kafka/tools-log4j2.properties" \
      -cp "$KAFKA_HOME/libs/*" org.apache.kafka.tools.TopicCommand \
      --bootstrap-server "$HOST:$KAFKA_PORT" "$@"
    ;;
  wipe-kafka)
    lock
    stop_component kafka
    [[ -n $KAFKA_DATA && -d $KAFKA_DATA ]] && rm -rf "$KAFKA_DATA"
    log "kafka: data deleted; 'up' starts an empty broker"
    ;;
  -h | --help | help) usage ;;
  *) usage ;;
  esac
}

main "$@"
