#!/bin/sh
# The image's entrypoint: secrets mounted as files named after their variable
# (/run/secrets/HELPDESK_JWT_SECRET, as docker-compose.yml mounts them) become that environment
# variable, because the services read their settings from the environment only. A variable that
# is already set wins. Then the command runs (`python -m services.<name>`, `helpdesk ...`).
set -eu
for file in /run/secrets/*; do
  [ -f "$file" ] || continue
  name=${file##*/}
  case "$name" in
    "" | [0-9]* | *[!A-Z0-9_]*) continue ;;  # not a variable's name (e.g. postgres_password)
  esac
  if [ -z "$(printenv "$name" || true)" ]; then
    value=$(cat "$file")
    export "$name=$value"
  fi
done
exec "$@"
