#!/usr/bin/env bash
# `make test` (and `make bench` with --bench): install and start what the tests need, run them,
# and stop what this script started.
#   - PostgreSQL server binaries from Debian's packages if missing, and a throwaway cluster;
#   - a real single-node Kafka on a test port (cached jars after the first fetch);
#   - Debian's Chromium for the browser tests (tests/browser), when missing and run as root;
# KAFKA_BOOTSTRAP_SERVERS or HELPDESK_TEST_POSTGRES_URL, when set, are used instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
export KAFKA_PORT="${HELPDESK_TEST_KAFKA_PORT:-39092}"
export PG_PORT="${HELPDESK_TEST_POSTGRES_PORT:-55432}"

started=()
cleanup() {
  for what in "${started[@]}"; do
    case "$what" in
      kafka) bash deploy/kafka/kafka.sh stop || true ;;
      postgres) bash deploy/postgres/pg.sh stop --purge || true ;;
    esac
  done
}
trap cleanup EXIT

if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  bash deploy/kafka/kafka.sh status >/dev/null 2>&1 || started+=(kafka)
  KAFKA_BOOTSTRAP_SERVERS="$(bash deploy/kafka/kafka.sh start | tail -n 1 | cut -d= -f2-)"
  export KAFKA_BOOTSTRAP_SERVERS
fi
if [[ -z "${HELPDESK_TEST_POSTGRES_URL:-}" ]]; then
  bash deploy/postgres/pg.sh install >/dev/null
  (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null || started+=(postgres)
  HELPDESK_TEST_POSTGRES_URL="$(bash deploy/postgres/pg.sh start | tail -n 1)"
  export HELPDESK_TEST_POSTGRES_URL
fi

if ! command -v chromium >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser tests ..."
  apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null
fi

if [[ "${1:-}" == "--bench" ]]; then
  shift
  "$BIN/python" -m tests.benchmarks "$@"
else
  "$BIN/pytest" "$@"
fi
