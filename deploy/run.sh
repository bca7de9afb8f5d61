#!/usr/bin/env bash
# `make run`: start Kafka (unless one is configured or already up), create the topics, migrate
# every service's database (SQLite files under ./var by default), then run the four services
# in the foreground under `helpdesk run`, which restarts a service that exits. Ctrl-C or SIGTERM
# stops the services and the Kafka broker this script started. Arguments go to `helpdesk run`
# (`make run REPLICAS=2` passes `--replicas 2`, which needs PostgreSQL URLs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin

# A developer's machine: the services accept the built-in secrets (they refuse them in
# production, the default). `helpdesk run` says so when it starts them.
export HELPDESK_ENV="${HELPDESK_ENV:-development}"

started_kafka=no
stop_kafka() {
  if [[ "$started_kafka" == yes ]]; then
    echo "stopping the Kafka broker started by make run ..."
    bash deploy/kafka/kafka.sh stop || true
  fi
}
trap stop_kafka EXIT
trap 'exit 130' INT TERM

if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]] && ! bash deploy/kafka/kafka.sh status >/dev/null 2>&1; then
  started_kafka=yes
fi
KAFKA_BOOTSTRAP_SERVERS="$(bash deploy/kafka/kafka.sh start | tail -n 1 | cut -d= -f2-)"
export KAFKA_BOOTSTRAP_SERVERS

"$BIN/helpdesk" topics
"$BIN/helpdesk" migrate
# In the background, so that this script's traps run at once on a signal (bash runs them only
# after a foreground command ends) and hand it to `helpdesk run`, which stops its services.
"$BIN/helpdesk" run "$@" &
run_pid=$!
trap 'kill -TERM "$run_pid" 2>/dev/null || true' INT TERM
status=0
while kill -0 "$run_pid" 2>/dev/null; do
  wait "$run_pid" || status=$?
done
exit "$status"
