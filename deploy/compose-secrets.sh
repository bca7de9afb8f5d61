#!/usr/bin/env bash
# Makes the secrets docker-compose.yml mounts: deploy/secrets/<NAME>, one random value each,
# kept when they exist already (run it again to add missing ones; delete one to renew it).
# The directory is private to you (0700); its files are readable (0644) because compose mounts
# them as they are and the services run as nobody inside their containers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
umask 077
mkdir -p secrets
chmod 700 secrets
random() { python3 -c 'import secrets; print(secrets.token_urlsafe(48))'; }
write() {  # NAME VALUE
  if [[ -s "secrets/$1" ]]; then echo "kept    deploy/secrets/$1"; return; fi
  printf '%s\n' "$2" >"secrets/$1"
  chmod 644 "secrets/$1"
  echo "created deploy/secrets/$1"
}
write HELPDESK_JWT_SECRET "$(random)"
write HELPDESK_INTERNAL_SECRETS "$(random)"
write postgres_password "$(random)"
password=$(cat secrets/postgres_password)
for db in ticket_core activity_log intake; do
  name=$(tr '[:lower:]' '[:upper:]' <<<"$db")_DATABASE_URL
  write "$name" "postgresql+asyncpg://helpdesk:$password@postgres/$db"
done
