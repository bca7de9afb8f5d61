#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests and local development.
#
#   pg.sh install            ensure server binaries exist; print their bin dir
#   pg.sh start              init (once) + start the cluster; last line = URL
#   pg.sh stop [--purge]     stop it; --purge also deletes the data dir
#   pg.sh restart [--immediate]  restart the running cluster; --immediate stops it without a
#                            checkpoint (as a crash would: recovery replays the WAL), for the
#                            fault tests (tests/faults)
#   pg.sh url                print the connection URL
#   pg.sh createdb NAME      create database NAME if it does not exist
#
# Env: PG_PORT (default 55432), PG_DATA_DIR (default /tmp/helpdesk-pg-$PG_PORT),
#      PG_DURABLE=yes for PostgreSQL's own durability settings (a commit survives a crash of
#      the server), which the fault tests that crash it need; by default they are off, for speed.
# Progress messages go to stderr, so `url=$(pg.sh start)` captures only the URL.
set -euo pipefail

PG_PORT="${PG_PORT:-55432}"
DATA="${PG_DATA_DIR:-/tmp/helpdesk-pg-$PG_PORT}"
DATA="${DATA%/}"
LOG="$DATA/server.log"
URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
PG_USER=postgres   # OS user that owns/runs the cluster when we are root

say() { echo "pg.sh: $*" >&2; }
die() { echo "pg.sh: ERROR: $*" >&2; exit 1; }

[[ "$PG_PORT" =~ ^[0-9]+$ ]] && (( PG_PORT > 0 && PG_PORT < 65536 )) \
  || die "PG_PORT='$PG_PORT' is not a valid TCP port; set PG_PORT to e.g. 55432."

# ---------------------------------------------------------------- binaries
find_bin() {
  # Newest major version wins (sort -V so 16 > 9).
  local ctl
  ctl=$(ls -1 /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n1 || true)
  [[ -n "$ctl" ]] && dirname "$ctl"
}

ensure_bin() {
  BIN=$(find_bin || true)
  if [[ -z "$BIN" ]]; then
    (( EUID == 0 )) || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin.
  Install them as root: apt-get update && apt-get install -y postgresql"
    say "PostgreSQL server binaries not found; running: apt-get update && apt-get install -y postgresql"
    # Note: the Debian package may also create (and try to start) its own
    # 'main' cluster on port 5432; it does not interfere with ours.
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2 || die "apt-get update failed (network/apt sources?); see output above."
    apt-get install -y postgresql >&2 || die "apt-get install -y postgresql failed; see output above."
    BIN=$(find_bin || true)
    [[ -n "$BIN" ]] || die "installed 'postgresql' but still no /usr/lib/postgresql/*/bin/pg_ctl."
  fi
}

# Run a server-side tool as the cluster owner. PostgreSQL refuses to run as
# root, so as root we drop to the 'postgres' OS user. `cd /` because that user
# usually cannot read our cwd (e.g. /root) and initdb/postgres complain.
# `9>&-` closes the lock fd (see lock()): otherwise the postmaster inherits
# it and holds the lock for as long as the server runs.
as_owner() {
  if (( EUID == 0 )); then
    (cd / && runuser -u "$PG_USER" -- "$@") 9>&-
  else
    "$@" 9>&-
  fi
}

# ---------------------------------------------------------------- probes
# pg_isready exit codes: 0 accepting, 1 rejecting (starting/stopping),
# 2 no response, 3 bad parameters.
isready() {
  local rc=0
  # -U/-d: without them it probes as the OS user and the server logs
  # 'FATAL: role "root" does not exist' on every check.
  "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 3 || rc=$?
  return "$rc"
}

port_open() {  # anything at all listening on 127.0.0.1:PORT?
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PG_PORT" 2>/dev/null
}

psql_() {  # psql against our cluster; never prompt for a password
  PGCONNECT_TIMEOUT=5 "$BIN/psql" -X -w -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@"
}

log_tail() {
  if [[ -r "$LOG" ]]; then
    echo "---- last lines of $LOG ----" >&2
    tail -n 25 "$LOG" >&2
    echo "----" >&2
  fi
}

# Serialise start/stop so parallel callers (e.g. several test jobs) don't
# race initdb or pg_ctl on the same data dir.
lock() {
  exec 9>"$DATA.lock" || die "cannot create lock file $DATA.lock; is $(dirname "$DATA") writable?"
  flock -w 120 9 || die "timed out waiting for lock $DATA.lock (another pg.sh start/stop stuck?)."
}

# ---------------------------------------------------------------- commands
cmd_install() {
  ensure_bin
  echo "$BIN"
}

init_cluster() {
  if (( EUID == 0 )); then
    id -u "$PG_USER" >/dev/null 2>&1 || die "OS user '$PG_USER' does not exist (the server refuses to run as root).
  Fix: apt-get install -y postgresql (creates it), or: useradd --system --home /var/lib/postgresql $PG_USER"
  fi
  mkdir -p "$DATA" || die "cannot create data dir $DATA; choose another PG_DATA_DIR."
  # Check before chown/chmod so we never take over someone else's directory.
  [[ -f "$DATA/PG_VERSION" || -z "$(ls -A "$DATA")" ]] || die "$DATA is not empty but is not a PostgreSQL data dir.
  Remove it or point PG_DATA_DIR somewhere else."
  if (( EUID == 0 )); then
    chown -R "$PG_USER:" "$DATA"
    runuser -u "$PG_USER" -- test -w "$DATA" || die "user '$PG_USER' cannot reach $DATA
  (a parent directory is not traversable, e.g. under /root). Use a PG_DATA_DIR under /tmp."
  fi
  chmod 700 "$DATA"   # initdb/postgres insist on 0700 (or 0750)

  if [[ ! -f "$DATA/PG_VERSION" ]]; then
    say "initdb $DATA"
    # --no-sync: throwaway cluster, no point fsyncing the fresh files.
    as_owner "$BIN/initdb" -D "$DATA" --auth=trust --username=postgres \
      --encoding=UTF8 --locale=C --no-sync >"$DATA.initdb.log" 2>&1 \
      || { cat "$DATA.initdb.log" >&2; die "initdb failed (output above). Fix the cause, then: $0 stop --purge && $0 start"; }
    rm -f "$DATA.initdb.log"
    echo "include_if_exists = 'helpdesk.conf'" >>"$DATA/postgresql.conf"
  fi

  local have want
  have=$(cat "$DATA/PG_VERSION"); want=$(basename "$(dirname "$BIN")")
  [[ "$have" == "$want" ]] || die "$DATA was initialised by PostgreSQL $have but the binaries are $want.
  It is a throwaway cluster: $0 stop --purge && $0 start"

  # Rewritten on every start so edits here take effect without a purge.
  # THROWAWAY TEST CLUSTER: durability is switched off for speed (unless PG_DURABLE=yes).
  # A crash can lose or corrupt data -- never use these settings for real data. Even
  # `pg_ctl restart -m immediate` loses the last commits with synchronous_commit off.
  local sockdir="${DATA//\'/\'\'}" durability=off
  [[ "${PG_DURABLE:-}" == yes ]] && durability=on
  cat >"$DATA/helpdesk.conf" <<EOF
# Written by deploy/postgres/pg.sh on every start; edits here are lost.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sockdir'
max_connections = 200
fsync = $durability
synchronous_commit = $durability
full_page_writes = $durability
EOF
  (( EUID == 0 )) && chown "$PG_USER:" "$DATA/helpdesk.conf"
  return 0
}

cmd_start() {
  ensure_bin
  lock

  # Reuse anything that already answers -- but only if we can get in as
  # postgres without a password, otherwise it is not a throwaway cluster.
  local rc=0
  isready || rc=$?
  if (( rc == 0 )); then
    psql_ -Atqc 'select 1' >/dev/null 2>&1 || die "a PostgreSQL server answers on 127.0.0.1:$PG_PORT but refuses
  passwordless login as 'postgres', so it is not our throwaway cluster.
  Fix: use another port (PG_PORT=...) or stop that server."
    local dir
    dir=$(psql_ -Atqc 'show data_directory' 2>/dev/null || true)
    say "reusing server already running on port $PG_PORT (data dir: ${dir:-unknown})"
    echo "$URL"; return 0
  elif (( rc == 1 )); then
    die "a PostgreSQL server on 127.0.0.1:$PG_PORT is rejecting connections (starting up or shutting down).
  Wait a few seconds and retry, or use another PG_PORT."
  elif port_open; then
    die "port $PG_PORT on 127.0.0.1 is in use by something that is not PostgreSQL.
  Find it with: ss -ltnp 'sport = :$PG_PORT'   then stop it, or set PG_PORT to a free port."
  fi

  (( ${#DATA} + 20 < 108 )) || die "PG_DATA_DIR '$DATA' is too long for a unix socket path (max ~100 chars); use a shorter one."

  init_cluster

  # Our cluster running but not answering on the port (e.g. port changed)?
  if [[ -f "$DATA/postmaster.pid" ]] && as_owner "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; then
    die "the cluster in $DATA is running but does not answer on 127.0.0.1:$PG_PORT.
  Fix: $0 stop   (same PG_DATA_DIR), then start again."
  fi

  say "starting PostgreSQL $(cat "$DATA/PG_VERSION") on 127.0.0.1:$PG_PORT (log: $LOG)"
  local t0=${EPOCHREALTIME/./}
  as_owner "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 60 -s \
    || { log_tail; die "server failed to start (log above). If the data dir is broken: $0 stop --purge && $0 start"; }
  isready || { log_tail; die "pg_ctl says started but nothing answers on 127.0.0.1:$PG_PORT (log above)."; }
  say "ready in $(( (${EPOCHREALTIME/./} - t0) / 1000 )) ms"
  echo "$URL"
}

cmd_stop() {
  local purge=0
  case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    *) die "unknown option '$1' for stop; usage: $0 stop [--purge]" ;;
  esac

  if [[ ! -d "$DATA" ]]; then
    say "no data dir $DATA; nothing to stop"
  else
    ensure_bin
    lock
    if [[ -f "$DATA/postmaster.pid" ]] && as_owner "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; then
      say "stopping server in $DATA"
      as_owner "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 -s \
        || { log_tail; die "pg_ctl stop failed (log above). Try: $0 stop again, or kill the postmaster PID in $DATA/postmaster.pid"; }
    else
      say "server in $DATA is not running"
    fi
    if (( purge )); then
      # Guard against PG_DATA_DIR pointing at something precious.
      [[ -f "$DATA/PG_VERSION" || -z "$(ls -A "$DATA")" ]] \
        || die "refusing to delete $DATA: it does not look like a PostgreSQL data dir."
      rm -rf -- "$DATA"
      say "removed $DATA"
    fi
  fi
  (( purge )) && rm -f -- "$DATA.lock" "$DATA.initdb.log"
  return 0
}

cmd_restart() {
  local mode=fast
  case "${1:-}" in
    "") ;;
    --immediate) mode=immediate ;;
    *) die "unknown option '$1' for restart; usage: $0 restart [--immediate]" ;;
  esac
  ensure_bin
  lock
  [[ -f "$DATA/postmaster.pid" ]] && as_owner "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1 \
    || die "no server runs in $DATA; start it with: $0 start"
  say "restarting the server in $DATA (-m $mode)"
  as_owner "$BIN/pg_ctl" restart -D "$DATA" -m "$mode" -l "$LOG" -w -t 60 -s \
    || { log_tail; die "pg_ctl restart failed (log above)."; }
  isready || { log_tail; die "restarted, but nothing answers on 127.0.0.1:$PG_PORT (log above)."; }
}

cmd_createdb() {
  local name="${1:-}"
  [[ -n "$name" ]] || die "usage: $0 createdb NAME"
  ensure_bin
  isready || die "no PostgreSQL answers on 127.0.0.1:$PG_PORT; run: $0 start"
  # Name goes in as a psql variable, quoted with %I / :'..', so any name is safe.
  local q="SELECT 1 FROM pg_database WHERE datname = :'dbname'" out
  if [[ "$(psql_ -Atq -v dbname="$name" <<<"$q")" == 1 ]]; then
    say "database '$name' already exists"; return 0
  fi
  if ! out=$(psql_ -Atq -v dbname="$name" 2>&1 <<<"SELECT format('CREATE DATABASE %I', :'dbname') \gexec"); then
    # A parallel caller may have created it between our check and CREATE.
    [[ "$(psql_ -Atq -v dbname="$name" <<<"$q" 2>/dev/null)" == 1 ]] \
      || die "could not create database '$name': $out"
    say "database '$name' already exists (created concurrently)"; return 0
  fi
  say "created database '$name'"
}

case "${1:-}" in
  install)  cmd_install ;;
  start)    cmd_start ;;
  stop)     shift; cmd_stop "$@" ;;
  restart)  shift; cmd_restart "$@" ;;
  url)      echo "$URL" ;;
  createdb) shift; cmd_createdb "$@" ;;
  *) die "usage: $0 {install|start|stop [--purge]|restart [--immediate]|url|createdb NAME}" ;;
esac
