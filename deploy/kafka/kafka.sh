#!/usr/bin/env bash
# Run a real single-node Apache Kafka (KRaft, combined broker+controller) for
# development and CI, from the official jars on Maven Central. No Docker and
# no download of the Kafka tarball: Maven fetches org.apache.kafka:kafka_2.13.
#
#   deploy/kafka/kafka.sh fetch      download the jars into the cache (once)
#   deploy/kafka/kafka.sh start      start (or reuse) a broker, wait until ready;
#                                    last stdout line: KAFKA_BOOTSTRAP_SERVERS=...
#   deploy/kafka/kafka.sh stop       stop the broker this script started
#   deploy/kafka/kafka.sh status     exit 0 and print "up" if it answers, else 1
#   deploy/kafka/kafka.sh bootstrap  print the bootstrap address
#
# Environment (all optional):
#   KAFKA_BOOTSTRAP_SERVERS  use this existing Kafka; start runs nothing
#   KAFKA_VERSION            default 4.1.1
#   KAFKA_PORT               PLAINTEXT port on 127.0.0.1, default 9092
#   KAFKA_CONTROLLER_PORT    KRaft controller port, default KAFKA_PORT+1
#   KAFKA_DATA_DIR           default <repo>/var/kafka-$KAFKA_PORT
#   KAFKA_START_TIMEOUT      seconds to wait for readiness, default 90
#   KAFKA_HEAP_OPTS          default "-Xms256m -Xmx768m"
#   HELPDESK_CACHE_DIR       default ${XDG_CACHE_HOME:-$HOME/.cache}/helpdesk
#
# A broker that authenticates and authorises (KAFKA_SASL=scram): the client listener is
# SASL_PLAINTEXT with SCRAM-SHA-512, ACLs are enforced (StandardAuthorizer, nothing allowed
# without an ACL), the admin is the only super user, and each service gets its own user with
# only the ACLs it needs (the table in write_access_spec below). Users and ACLs are applied
# on every start, through the admin client of the cached jars (KafkaAccess.java).
#   KAFKA_SASL                 "scram" for the above; unset or "none": PLAINTEXT
#   KAFKA_SASL_ADMIN_USER      the super user, default admin
#   KAFKA_SASL_ADMIN_PASSWORD  its password; fixed when the data dir is formatted
#   KAFKA_SASL_<SERVICE>_PASSWORD  (SERVICE: TICKET_CORE, ACTIVITY_LOG, INTAKE, GATEWAY)
#                              the services' passwords (user names: ticket-core, ...)
#   Passwords not given are made up once and kept, with the given ones, in
#   $KAFKA_DATA_DIR/sasl-credentials.env (mode 600). Letters, digits, '-' and '_' only.
#   A data dir is formatted for one mode; switching needs a new KAFKA_DATA_DIR.
#
# Human-readable progress goes to stderr; stdout carries only what callers
# parse (the KAFKA_BOOTSTRAP_SERVERS= line, the address, "up"), so both
# `kafka.sh start | tail -1` and `$(kafka.sh bootstrap)` work.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
# Validated here, before the arithmetic below would choke on e.g. "abc".
if ! [[ "$KAFKA_PORT" =~ ^[0-9]{1,5}$ ]] || ((10#$KAFKA_PORT < 1 || 10#$KAFKA_PORT > 65534)); then
  echo "kafka: ERROR: KAFKA_PORT='$KAFKA_PORT' is not a usable TCP port; set e.g. KAFKA_PORT=9092" >&2
  exit 1
fi
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((10#$KAFKA_PORT + 1))}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
READY_PY="$SCRIPT_DIR/kafka_ready.py"

# The cache lives outside the repository so that fresh clones (CI) and
# `git clean` don't throw away ~40 MB of jars.
CACHE_ROOT="${HELPDESK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/helpdesk}"
KAFKA_HOME="$CACHE_ROOT/kafka-$KAFKA_VERSION"
LIBS_DIR="$KAFKA_HOME/libs"
FETCH_MARKER="$KAFKA_HOME/fetch.complete"
# A private Maven local repository inside the cache rather than ~/.m2: the
# cache dir then fully owns what was downloaded (deleting it resets
# everything), a broken or half-written ~/.m2 can't interfere, and we don't
# fill a developer's ~/.m2 with Kafka's dependency tree. It is shared by all
# Kafka versions, so a version bump downloads only what changed. The price is
# one extra download of maven-dependency-plugin (a few MB) on first fetch.
MAVEN_REPO="$CACHE_ROOT/m2-repository"

DATA_DIR="${KAFKA_DATA_DIR:-$REPO_ROOT/var/kafka-$KAFKA_PORT}"
# Derived paths (absolute once ensure_data_dir has run).
set_data_paths() {
  SERVER_PROPS="$DATA_DIR/server.properties"
  LOG4J_CONF="$DATA_DIR/log4j2.properties"
  BROKER_LOG="$DATA_DIR/kafka.log"
  PID_FILE="$DATA_DIR/kafka.pid"
  LOG_DIRS="$DATA_DIR/data"
  MODE_FILE="$DATA_DIR/listener.mode"
  CREDENTIALS_FILE="$DATA_DIR/sasl-credentials.env"
  TOOLS_LOG4J_CONF="$DATA_DIR/log4j2-tools.properties"
}
set_data_paths

say() { echo "kafka: $*" >&2; }
die() { echo "kafka: ERROR: $*" >&2; exit 1; }

case "${KAFKA_SASL:-none}" in
  none | "") LISTENER_MODE=plaintext ;;
  scram) LISTENER_MODE=sasl-scram ;;
  *) die "KAFKA_SASL='$KAFKA_SASL' is not known; use KAFKA_SASL=scram (SASL_PLAINTEXT, SCRAM-SHA-512) or leave it unset (PLAINTEXT)" ;;
esac
SASL_MECHANISM=SCRAM-SHA-512
SASL_SERVICES=(ticket-core activity-log intake gateway)
# The readiness probe speaks SASL's first step to a SASL listener (see kafka_ready.py).
PROBE_ARGS=()
if [[ "$LISTENER_MODE" == sasl-scram ]]; then PROBE_ARGS=(--sasl "$SASL_MECHANISM"); fi

# ---------------------------------------------------------------- checks ----

require_java() {
  command -v java >/dev/null 2>&1 ||
    die "java not found. Kafka $KAFKA_VERSION needs Java 17+: apt-get install openjdk-17-jre-headless"
  local major
  major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -n1)"
  if [[ -n "$major" && "$major" -lt 17 ]]; then
    die "java is version $major; Kafka $KAFKA_VERSION needs Java 17+: apt-get install openjdk-17-jre-headless (and select it with update-alternatives --config java)"
  fi
}

require_python() {
  command -v python3 >/dev/null 2>&1 ||
    die "python3 not found (needed for the readiness check): apt-get install python3"
}

require_controller_port() {
  if ! [[ "$KAFKA_CONTROLLER_PORT" =~ ^[0-9]{1,5}$ ]] ||
    ((10#$KAFKA_CONTROLLER_PORT < 1 || 10#$KAFKA_CONTROLLER_PORT > 65535)); then
    die "KAFKA_CONTROLLER_PORT='$KAFKA_CONTROLLER_PORT' is not a TCP port; unset it (default KAFKA_PORT+1) or pick a free port"
  fi
  [[ "$KAFKA_CONTROLLER_PORT" != "$KAFKA_PORT" ]] ||
    die "KAFKA_CONTROLLER_PORT equals KAFKA_PORT ($KAFKA_PORT); they must differ"
}

# Serialise start/stop on one data dir (fd 9). Bounded, so a stuck holder
# gives an explanation instead of a silent hang.
lock_data_dir() {
  exec 9>"$DATA_DIR/start-stop.lock"
  flock -w 150 9 ||
    die "another kafka.sh start/stop has held $DATA_DIR/start-stop.lock for 150s. If none is running, a process still has the lock file open: find it with 'fuser -v $DATA_DIR/start-stop.lock' and stop that process"
}

# ----------------------------------------------------------------- fetch ----

# The marker holds a fingerprint of the pom, so editing the pom (e.g. adding
# a jar) refetches instead of silently running with the old jar set.
fetch_fingerprint() { sha256sum "$SCRIPT_DIR/pom.xml" | cut -c1-16; }

fetch_is_complete() {
  [[ -f "$FETCH_MARKER" && -d "$LIBS_DIR" ]] &&
    [[ "$(cat "$FETCH_MARKER")" == "$(fetch_fingerprint)" ]]
}

# Maven prints a "Downloading"+"Downloaded" pair for every pom and jar,
# including ~50 jars of the dependency plugin itself: hundreds of lines. Show
# the Kafka jars by name, a running count for the rest, and a total.
filter_maven_progress() {
  awk '
    function mb(s,   v) { v = s + 0; if (s ~ /kB/) v /= 1024; else if (s ~ /[0-9] B/) v /= 1048576; return v }
    /^\[INFO\] Downloaded from .*\.jar \(/ {
      n++
      name = $0; sub(/ \(.*/, "", name); sub(/.*\//, "", name)
      size = $0; sub(/.*\.jar \(/, "", size); sub(/ at .*/, "", size); sub(/\)$/, "", size)
      total += mb(size)
      if ($0 ~ /\/org\/apache\/kafka\//) printf "kafka:   downloaded %s (%s)\n", name, size
      if (n % 20 == 0) printf "kafka:   ... %d jars downloaded so far\n", n
      fflush()
    }
    END { if (n) printf "kafka:   downloaded %d jars (%.1f MB) (Kafka plus the Maven plugin itself)\n", n, total }
  ' >&2
}

cmd_fetch() {
  if fetch_is_complete; then
    say "Kafka $KAFKA_VERSION jars already cached in $LIBS_DIR"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 ||
    die "mvn not found; it downloads the Kafka jars from Maven Central: apt-get install maven"
  mkdir -p "$KAFKA_HOME" "$MAVEN_REPO"
  # Two concurrent fetches (e.g. two data dirs) must not interleave.
  exec 8>"$KAFKA_HOME/.fetch.lock"
  flock 8
  if fetch_is_complete; then
    say "Kafka $KAFKA_VERSION jars were fetched meanwhile by another run"
    return 0
  fi
  run_maven_fetch
  exec 8>&-
}

run_maven_fetch() {
  local tmp="$KAFKA_HOME/libs.partial" mvn_log="$KAFKA_HOME/fetch.log" started=$SECONDS
  rm -rf "$tmp" "$LIBS_DIR" "$FETCH_MARKER"
  say "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_HOME; cached for later runs"
  # Jars go straight into the cache; with packaging=pom and only this goal
  # Maven writes nothing (no target/) next to the pom in the repository.
  if ! (cd "$KAFKA_HOME" && mvn -B -f "$SCRIPT_DIR/pom.xml" \
        -Dmaven.repo.local="$MAVEN_REPO" -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp") \
        2>&1 | tee "$mvn_log" | filter_maven_progress; then
    tail -n 25 "$mvn_log" >&2 || true
    die "Maven could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (full log: $mvn_log). Check network access to Maven Central and that KAFKA_VERSION=$KAFKA_VERSION exists, then rerun: $0 fetch"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] ||
    die "Maven succeeded but $tmp has no kafka_2.13-$KAFKA_VERSION.jar (see $mvn_log); rerun: $0 fetch"
  mv "$tmp" "$LIBS_DIR"
  # Written last: a fetch interrupted before this line is redone next time.
  fetch_fingerprint >"$FETCH_MARKER"
  say "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars in $((SECONDS - started))s"
}

# ---------------------------------------------------------------- broker ----

bootstrap_address() { echo "${KAFKA_BOOTSTRAP_SERVERS:-localhost:$KAFKA_PORT}"; }

# Sets PROBE_RC to kafka_ready.py's verdict: 0 up, 1 nothing listening,
# 2 something that is not Kafka, 3 Kafka still starting. Any other code means
# the checker itself could not run (e.g. a broken python3), which must not
# be mistaken for "broker down".
probe() {
  PROBE_RC=0
  python3 "$READY_PY" --quiet --timeout "${2:-3}" "${PROBE_ARGS[@]}" "$1" || PROBE_RC=$?
  ((PROBE_RC <= 3)) ||
    die "the readiness check '$READY_PY' failed to run (exit $PROBE_RC); check that 'python3 --version' works here"
}

# A pid counts as "ours" only if it is alive AND is a kafka.Kafka JVM running
# this data dir's server.properties: protects against stale pid files whose
# number the kernel has since given to an unrelated process.
our_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmdline" == *kafka.Kafka*"$SERVER_PROPS"* ]] || return 1
  echo "$pid"
}

ensure_data_dir() {
  mkdir -p "$DATA_DIR" ||
    die "cannot create KAFKA_DATA_DIR=$DATA_DIR; set KAFKA_DATA_DIR to a writable directory"
  DATA_DIR="$(cd "$DATA_DIR" && pwd)"  # server.properties needs absolute paths
  set_data_paths
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_server_properties() {
  # It holds the admin's password in SASL mode: readable by this user only.
  (umask 077 && : >"$SERVER_PROPS")
  cat >"$SERVER_PROPS" <<EOF
# Written by deploy/kafka/kafka.sh on every start; edits are overwritten.
# Single node: one process is both KRaft controller and broker.
node.id=1
process.roles=broker,controller
controller.quorum.voters=1@localhost:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
log.dirs=$LOG_DIRS
$(listener_properties)

# Topics are created explicitly by the application, never by a typo.
auto.create.topics.enable=false
num.partitions=1
# One broker: internal topics cannot have more than one replica.
offsets.topic.replication.factor=1
# One node: a single partition for committed offsets makes the first group join fast.
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests join consumer groups constantly; don't wait 3s for more members.
group.initial.rebalance.delay.ms=0
# The system's one maximum message size (KAFKA_MAX_MESSAGE_BYTES, as the producers use).
message.max.bytes=${KAFKA_MAX_MESSAGE_BYTES:-1048576}
EOF
}

listener_properties() {
  if [[ "$LISTENER_MODE" == plaintext ]]; then
    cat <<EOF
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://localhost:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
EOF
    return
  fi
  # Clients: SCRAM-SHA-512. The controller listener uses PLAIN with the admin alone, because
  # a KRaft controller cannot use SCRAM (its credentials live in the metadata it serves).
  cat <<EOF
listeners=SASL_PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://localhost:$KAFKA_PORT
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=$SASL_MECHANISM
sasl.mechanism.inter.broker.protocol=$SASL_MECHANISM
listener.name.sasl_plaintext.sasl.enabled.mechanisms=$SASL_MECHANISM
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$ADMIN_USER" password="$ADMIN_PASSWORD";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$ADMIN_USER" password="$ADMIN_PASSWORD" user_$ADMIN_USER="$ADMIN_PASSWORD";
# Nothing is allowed without an ACL; the admin is the only super user.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:$ADMIN_USER
EOF
}

# ------------------------------------------------------------------ SASL ----

random_password() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }

service_variable() { local upper="${1^^}"; echo "KAFKA_SASL_${upper//-/_}_PASSWORD"; }

stored_credential() {
  [[ -f "$CREDENTIALS_FILE" ]] || return 0
  sed -n "s/^$1=//p" "$CREDENTIALS_FILE" | tail -n 1
}

# Sets ADMIN_USER, ADMIN_PASSWORD and SERVICE_PASSWORDS (service -> password) from the
# environment, else from the credentials file, else new random ones; writes the file.
load_sasl_credentials() {
  local stored_admin formatted=no name variable value
  [[ -f "$LOG_DIRS/meta.properties" ]] && formatted=yes
  ADMIN_USER="${KAFKA_SASL_ADMIN_USER:-$(stored_credential KAFKA_SASL_ADMIN_USER)}"
  ADMIN_USER="${ADMIN_USER:-admin}"
  stored_admin="$(stored_credential KAFKA_SASL_ADMIN_PASSWORD)"
  ADMIN_PASSWORD="${KAFKA_SASL_ADMIN_PASSWORD:-${stored_admin:-$(random_password)}}"
  if [[ "$formatted" == yes && -n "$stored_admin" && "$ADMIN_PASSWORD" != "$stored_admin" ]]; then
    die "KAFKA_SASL_ADMIN_PASSWORD differs from the one $DATA_DIR was formatted with (in $CREDENTIALS_FILE); unset it, or stop the broker and delete $DATA_DIR to start over"
  fi
  declare -gA SERVICE_PASSWORDS=()
  for name in "${SASL_SERVICES[@]}"; do
    variable="$(service_variable "$name")"
    value="${!variable:-$(stored_credential "$variable")}"
    SERVICE_PASSWORDS[$name]="${value:-$(random_password)}"
  done
  # Quoted into JAAS and properties lines as they are, so only a safe alphabet.
  [[ "$ADMIN_USER" =~ ^[A-Za-z0-9_-]{1,100}$ ]] ||
    die "KAFKA_SASL_ADMIN_USER='$ADMIN_USER': use 1 to 100 letters, digits, '-' or '_'"
  for value in "$ADMIN_PASSWORD" "${SERVICE_PASSWORDS[@]}"; do
    [[ "$value" =~ ^[A-Za-z0-9_-]{16,200}$ ]] ||
      die "a Kafka SASL password (KAFKA_SASL_ADMIN_PASSWORD or KAFKA_SASL_<SERVICE>_PASSWORD) is not 16 to 200 letters, digits, '-' or '_'; make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
  done
  (
    umask 077
    {
      echo "# Written by deploy/kafka/kafka.sh: the local SASL broker's users (SCRAM-SHA-512)."
      echo "KAFKA_SASL_ADMIN_USER=$ADMIN_USER"
      echo "KAFKA_SASL_ADMIN_PASSWORD=$ADMIN_PASSWORD"
      for name in "${SASL_SERVICES[@]}"; do
        echo "$(service_variable "$name")=${SERVICE_PASSWORDS[$name]}"
      done
    } >"$CREDENTIALS_FILE.new"
    mv -f "$CREDENTIALS_FILE.new" "$CREDENTIALS_FILE"
  )
}

# What each service may do, and nothing more (the README's ACL table). Consumer groups are
# prefixed by the service's consumer group setting (default: its name), e.g. ticket-core's
# `ticket-core.ticket.commands.v1`. Writing a topic also implies idempotent writes since
# Kafka 3.0; IdempotentWrite on the cluster is granted anyway, for older brokers.
write_access_spec() {
  local name
  for name in "${SASL_SERVICES[@]}"; do
    echo "user $name ${SERVICE_PASSWORDS[$name]}"
  done
  cat <<'EOF'
#     user         operation        resource  pattern   name
allow ticket-core  Read             Topic     literal   ticket.commands.v1
allow ticket-core  Read             Topic     literal   intake.conversations.v1
allow ticket-core  Read             Group     prefixed  ticket-core
allow ticket-core  Write            Topic     literal   ticket.events.v1
allow ticket-core  Write            Topic     literal   ticket.command-results.v1
allow ticket-core  Write            Topic     literal   ticket.commands.v1.dlq
allow ticket-core  Write            Topic     literal   intake.conversations.v1.dlq
allow ticket-core  IdempotentWrite  Cluster   literal   kafka-cluster
allow intake       Read             Topic     literal   widget.ticket-requests.v1
allow intake       Read             Topic     literal   ticket.command-results.v1
allow intake       Read             Group     prefixed  intake
allow intake       Write            Topic     literal   ticket.commands.v1
allow intake       Write            Topic     literal   intake.request-outcomes.v1
allow intake       Write            Topic     literal   intake.conversations.v1
allow intake       Write            Topic     literal   intake.assistants.v1
allow intake       Write            Topic     literal   widget.ticket-requests.v1.dlq
allow intake       Write            Topic     literal   ticket.command-results.v1.dlq
allow intake       IdempotentWrite  Cluster   literal   kafka-cluster
allow activity-log Read             Topic     literal   ticket.events.v1
allow activity-log Read             Group     prefixed  activity-log
allow activity-log Write            Topic     literal   ticket.events.v1.dlq
allow activity-log IdempotentWrite  Cluster   literal   kafka-cluster
allow gateway      Read             Topic     literal   ticket.events.v1
EOF
}

write_tools_log4j_config() {
  cat >"$TOOLS_LOG4J_CONF" <<'EOF'
# Written by deploy/kafka/kafka.sh: the admin client's own log, warnings only, on stderr.
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = kafka: admin client: %p %m%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
}

apply_sasl_access() {
  local spec rc=0
  write_tools_log4j_config
  spec="$(umask 077 && mktemp "$DATA_DIR/access.XXXXXX")"
  write_access_spec >"$spec"
  say "applying the SCRAM users (${SASL_SERVICES[*]}) and their ACLs as $ADMIN_USER"
  # A single-file Java program run from source (needs the jdk.compiler module, which
  # Debian's openjdk-17-jre-headless has): the admin client is in kafka-clients.
  KAFKA_ACCESS_ADMIN_PASSWORD="$ADMIN_PASSWORD" java -Xmx256m -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$TOOLS_LOG4J_CONF" -cp "$LIBS_DIR/*" \
    "$SCRIPT_DIR/KafkaAccess.java" "localhost:$KAFKA_PORT" "$ADMIN_USER" "$spec" \
    "$KAFKA_START_TIMEOUT" </dev/null >&2 || rc=$?
  rm -f "$spec"
  ((rc == 0)) ||
    die "could not apply the users and ACLs (exit $rc, messages above). If java says 'module jdk.compiler not found', install a full JDK 17 (apt-get install openjdk-17-jdk-headless)"
  say "SASL_PLAINTEXT $SASL_MECHANISM on localhost:$KAFKA_PORT; users: $ADMIN_USER (super user), ${SASL_SERVICES[*]}; passwords in $CREDENTIALS_FILE"
}

# A data dir holds one cluster, formatted for one listener mode (a SASL cluster has the
# admin's SCRAM credential in its metadata from the start).
check_listener_mode() {
  [[ -f "$LOG_DIRS/meta.properties" ]] || return 0
  local formatted_for
  formatted_for="$(cat "$MODE_FILE" 2>/dev/null || echo plaintext)"
  [[ "$formatted_for" == "$LISTENER_MODE" ]] ||
    die "$DATA_DIR was formatted for a $formatted_for listener, not $LISTENER_MODE; use another KAFKA_DATA_DIR (and KAFKA_PORT), or stop the broker and delete $DATA_DIR"
}

write_log4j_config() {
  # The JVM's stdout is redirected to kafka.log, so a console appender at
  # INFO ends up in the log file, never on the caller's terminal.
  cat >"$LOG4J_CONF" <<'EOF'
# Written by deploy/kafka/kafka.sh.
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
# One line per request at DEBUG/TRACE: far too chatty.
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

# Sets JAVA_CMD (an array, so paths with spaces and the literal 'libs/*'
# classpath wildcard, which java expands itself, survive intact).
set_java_cmd() {
  local heap
  read -r -a heap <<<"$KAFKA_HEAP_OPTS"
  JAVA_CMD=(java "${heap[@]}" -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$LOG4J_CONF" -cp "$LIBS_DIR/*")
}

format_storage_once() {
  if [[ -f "$LOG_DIRS/meta.properties" ]]; then
    return 0
  fi
  local cluster_id
  # Kafka cluster ids are 16 random bytes, base64url without padding; like
  # Kafka's own Uuid.randomUuid, avoid a leading '-' (looks like an option).
  cluster_id="$(python3 -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"): print(s); break')"
  say "formatting $LOG_DIRS (cluster id $cluster_id)"
  local scram=()
  if [[ "$LISTENER_MODE" == sasl-scram ]]; then
    scram=(--add-scram "$SASL_MECHANISM=[name=$ADMIN_USER,password=$ADMIN_PASSWORD]")
  fi
  "${JAVA_CMD[@]}" kafka.tools.StorageTool format --ignore-formatted \
    -t "$cluster_id" -c "$SERVER_PROPS" "${scram[@]}" >>"$BROKER_LOG" 2>&1 || {
    tail -n 30 "$BROKER_LOG" >&2
    die "formatting $LOG_DIRS failed (log above, full log $BROKER_LOG). If the directory holds data from another cluster, stop the broker and delete $DATA_DIR"
  }
  echo "$LISTENER_MODE" >"$MODE_FILE"
}

launch_broker() {
  # Keep the previous run's log for post-mortems, start the new one empty.
  if [[ -f "$BROKER_LOG" ]]; then mv -f "$BROKER_LOG" "$BROKER_LOG.1"; fi
  set_java_cmd
  format_storage_once
  # setsid: own session, so the broker survives this script, its terminal
  # (no SIGHUP) and Ctrl-C in the caller's shell. The inner shell writes its
  # own pid and then exec's java, so the pid file holds the JVM's pid.
  # 8>&- 9>&-: the broker must not inherit our flock fds, or it would hold
  # the start/stop lock for its whole life and the next start would hang.
  # shellcheck disable=SC2016
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" "${JAVA_CMD[@]}" \
    kafka.Kafka "$SERVER_PROPS" </dev/null >>"$BROKER_LOG" 2>&1 8>&- 9>&- &
  # Wait for the pid file, then keep it for stop.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    [[ -s "$PID_FILE" ]] && break
    sleep 0.2
  done
  say "started broker pid $(cat "$PID_FILE" 2>/dev/null || echo '?'), log: $BROKER_LOG"
}

wait_until_ready() {
  local address="localhost:$KAFKA_PORT" started=$SECONDS
  printf 'kafka: waiting for %s to answer Metadata ' "$address" >&2
  while ((SECONDS - started < KAFKA_START_TIMEOUT)); do
    probe "$address" 2
    if ((PROBE_RC == 0)); then
      printf ' ready after %ss\n' "$((SECONDS - started))" >&2
      return 0
    fi
    if ! our_pid >/dev/null; then
      printf ' broker exited\n' >&2
      fail_start "the broker process exited during startup"
    fi
    printf '.' >&2
    sleep 1
  done
  printf ' timeout\n' >&2
  fail_start "no Kafka answer on $address after ${KAFKA_START_TIMEOUT}s (broker still running; '$0 stop' ends it, KAFKA_START_TIMEOUT raises the limit)"
}

fail_start() {
  # The tail is often the end of a stack trace; the first ERROR says why.
  echo "----- first errors in $BROKER_LOG -----" >&2
  grep -m 3 -A 1 -E '\] (ERROR|FATAL) |^Error|Exception in thread' "$BROKER_LOG" >&2 || true
  echo "----- last 30 lines of $BROKER_LOG -----" >&2
  tail -n 30 "$BROKER_LOG" >&2 || true
  echo "-----" >&2
  die "$1. See the log above; common fixes: free ports $KAFKA_PORT/$KAFKA_CONTROLLER_PORT or pick others with KAFKA_PORT=..., or delete a corrupt $DATA_DIR after '$0 stop'"
}

# Refuse (with a fix) when the ports are taken by something we can't use.
check_ports_free() {
  if port_in_use "$KAFKA_PORT"; then
    die "port $KAFKA_PORT is in use by something that does not answer like Kafka; stop it or choose another port, e.g. KAFKA_PORT=19092 $0 start"
  fi
  if port_in_use "$KAFKA_CONTROLLER_PORT"; then
    die "controller port $KAFKA_CONTROLLER_PORT is already in use; stop what uses it or set KAFKA_CONTROLLER_PORT (or KAFKA_PORT) to a free port"
  fi
}

print_bootstrap_line() { echo "KAFKA_BOOTSTRAP_SERVERS=$1"; }

cmd_start() {
  if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
    say "KAFKA_BOOTSTRAP_SERVERS is set; using the Kafka at $KAFKA_BOOTSTRAP_SERVERS and starting nothing"
    print_bootstrap_line "$KAFKA_BOOTSTRAP_SERVERS"
    return 0
  fi
  require_controller_port
  require_python
  ensure_data_dir
  lock_data_dir
  check_listener_mode
  if [[ "$LISTENER_MODE" == sasl-scram ]]; then load_sasl_credentials; fi

  local address="localhost:$KAFKA_PORT" pid
  probe "$address"
  pid="$(our_pid || true)"
  case "$PROBE_RC" in
    0)
      if [[ -n "$pid" ]]; then say "reusing the broker already running at $address (pid $pid, started by this script)"
      else say "reusing the Kafka broker already answering at $address (not started by this script; stop won't touch it)"; fi
      if [[ "$LISTENER_MODE" == sasl-scram ]]; then require_java; cmd_fetch; apply_sasl_access; fi
      print_bootstrap_line "$address"
      return 0 ;;
    2) die "port $KAFKA_PORT is in use by something that does not answer like Kafka${PROBE_ARGS[0]:+ with SASL $SASL_MECHANISM} (a broker of the other listener mode? KAFKA_SASL selects it); stop it or choose another port, e.g. KAFKA_PORT=19092 $0 start" ;;
  esac

  if [[ -n "$pid" || "$PROBE_RC" == 3 ]]; then
    say "a broker is already starting on $address${pid:+ (pid $pid)}; waiting for it"
  else
    rm -f "$PID_FILE"  # stale: its process is gone
    require_java
    cmd_fetch
    check_ports_free
    write_server_properties
    write_log4j_config
    launch_broker
  fi
  wait_until_ready
  if [[ "$LISTENER_MODE" == sasl-scram ]]; then apply_sasl_access; fi
  print_bootstrap_line "$address"
}

cmd_stop() {
  [[ -d "$DATA_DIR" ]] || { say "nothing to stop (no $DATA_DIR)"; return 0; }
  require_python
  ensure_data_dir
  lock_data_dir
  local pid
  if ! pid="$(our_pid)"; then
    rm -f "$PID_FILE"
    probe "localhost:$KAFKA_PORT" 1
    if ((PROBE_RC == 0)); then
      say "a Kafka broker answers on localhost:$KAFKA_PORT but was not started by this script for $DATA_DIR; leaving it alone"
    else
      say "no broker started by this script is running (data dir $DATA_DIR)"
    fi
    return 0
  fi
  say "stopping broker pid $pid (SIGTERM; controlled shutdown)"
  kill -TERM "$pid" 2>/dev/null || true
  if wait_for_exit "$pid" 30; then
    say "stopped"
  else
    say "still running after 30s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_for_exit "$pid" 5 || die "pid $pid survived SIGKILL; check it with: ps -fp $pid"
    say "killed"
  fi
  rm -f "$PID_FILE"
}

# Poll (not `wait`: the broker is not our child after setsid) until gone.
wait_for_exit() {
  local pid="$1" deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

cmd_status() {
  require_python
  # Check the first address if several are configured.
  local address
  address="$(bootstrap_address)"
  address="${address%%,*}"
  probe "$address"
  if ((PROBE_RC == 0)); then
    echo "up ($address)"
    return 0
  fi
  echo "down ($address)"
  return 1
}

cmd_bootstrap() { bootstrap_address; }

usage() {
  cat >&2 <<EOF
usage: $0 fetch|start|stop|status|bootstrap
  fetch      download Apache Kafka $KAFKA_VERSION jars into $KAFKA_HOME (once)
  start      start a single-node KRaft broker on localhost:$KAFKA_PORT (or reuse one)
  stop       stop the broker this script started
  status     print "up" and exit 0 if Kafka answers, else exit 1
  bootstrap  print the bootstrap address
EOF
}

main() {
  case "${1:-}" in
    fetch) require_java; cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    bootstrap) cmd_bootstrap ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
