#!/usr/bin/env bash
# `make test` (and `make bench` with --bench): install and start what the tests need, run them,
# and stop what this script started.
#   - PostgreSQL server binaries from Debian's packages if missing, and a throwaway cluster;
#   - a real single-node Kafka per test worker on test ports (cached jars after the first fetch);
#   - Debian's Chromium for the browser tests (tests/browser), when missing and run as root.
# KAFKA_BOOTSTRAP_SERVERS or HELPDESK_TEST_POSTGRES_URL, when set, are used instead.
#
# The tests run in HELPDESK_TEST_WORKERS processes (pytest-xdist, default 2: the machines have
# two cores, and most of a test's time is spent waiting on a broker, a database or a service
# process), a test file per worker at a time. Each worker gets a broker of its own, so one
# worker's consumers never take part in the other's tests (poison messages, dead letters,
# consumer groups); the PostgreSQL cluster is shared, and every test makes databases of its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
KAFKA_FIRST_PORT="${HELPDESK_TEST_KAFKA_PORT:-39092}"
export PG_PORT="${HELPDESK_TEST_POSTGRES_PORT:-55432}"

bench=no
if [[ "${1:-}" == "--bench" ]]; then
  bench=yes
  shift
fi
workers="${HELPDESK_TEST_WORKERS:-2}"
[[ "$workers" =~ ^[1-9][0-9]?$ ]] ||
  { echo "test.sh: HELPDESK_TEST_WORKERS='$workers' is not a number from 1 to 99" >&2; exit 2; }
[[ "$bench" == no ]] || workers=1 # a benchmark measures one thing at a time

started_kafka_ports=()
started_postgres=no
cleanup() {
  for port in "${started_kafka_ports[@]}"; do
    KAFKA_PORT="$port" bash deploy/kafka/kafka.sh stop || true
  done
  if [[ "$started_postgres" == yes ]]; then
    bash deploy/postgres/pg.sh stop --purge || true
  fi
}
trap cleanup EXIT

if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  # One broker per worker, two ports apart (each broker's KRaft controller takes port + 1),
  # started side by side (a broker takes a few seconds to answer) once the jars are fetched.
  bash deploy/kafka/kafka.sh fetch
  brokers=()
  starting=()
  for ((worker = 0; worker < workers; worker++)); do
    port=$((KAFKA_FIRST_PORT + 2 * worker))
    KAFKA_PORT="$port" bash deploy/kafka/kafka.sh status >/dev/null 2>&1 ||
      started_kafka_ports+=("$port")
    log="$(mktemp)"
    KAFKA_PORT="$port" bash deploy/kafka/kafka.sh start >"$log" 2>&1 &
    starting+=("$!:$log")
  done
  for each in "${starting[@]}"; do
    pid="${each%%:*}"
    log="${each#*:}"
    if ! wait "$pid"; then
      cat "$log" >&2
      echo "test.sh: a test broker did not start (above)" >&2
      exit 1
    fi
    grep -v '^KAFKA_BOOTSTRAP_SERVERS=' "$log" || true
    brokers+=("$(tail -n 1 "$log" | cut -d= -f2-)")
    rm -f "$log"
  done
  KAFKA_BOOTSTRAP_SERVERS="${brokers[0]}"
  # tests/conftest.py gives worker N the Nth of these.
  export HELPDESK_TEST_KAFKA_BROKERS="${brokers[*]}"
  export KAFKA_BOOTSTRAP_SERVERS
fi
if [[ -z "${HELPDESK_TEST_POSTGRES_URL:-}" ]]; then
  bash deploy/postgres/pg.sh install >/dev/null
  (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null || started_postgres=yes
  HELPDESK_TEST_POSTGRES_URL="$(bash deploy/postgres/pg.sh start | tail -n 1)"
  export HELPDESK_TEST_POSTGRES_URL
fi

if [[ "$bench" == no ]] && ! command -v chromium >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]] &&
  command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser tests ..."
  apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null
fi

if [[ "$bench" == yes ]]; then
  "$BIN/python" -m tests.benchmarks "$@"
elif ((workers > 1)); then
  "$BIN/pytest" --numprocesses "$workers" --dist loadfile "$@"
else
  "$BIN/pytest" "$@"
fi
