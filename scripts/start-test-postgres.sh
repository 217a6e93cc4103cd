#!/usr/bin/env bash
# Makes a local PostgreSQL ready for Jobfleet's tests: installs it when absent (Debian/Ubuntu,
# as root), starts the newest installed cluster, and ensures the superuser role
# jobfleet/jobfleet. Safe to run again: every step checks before it acts.
#
# Afterwards:  export JOBFLEET_TEST_PG_URL=postgres://jobfleet:jobfleet@127.0.0.1:5432/postgres
set -euo pipefail

PG_PORT=5432
ROLE=jobfleet
PASSWORD=jobfleet

log() { printf 'start-test-postgres: %s\n' "$*" >&2; }

# Runs a command as the postgres OS user, from root or from a user with sudo.
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    sudo -u postgres "$@"
  fi
}

installed_version() {
  # The newest major version with a server binary, e.g. 15.
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ]; then basename "$(dirname "$(dirname "$dir")")"; fi
}

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(installed_version)" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "PostgreSQL is not installed; run this script as root or install the postgresql package"
    exit 1
  fi
  log "installing PostgreSQL"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends postgresql
fi

VERSION=$(installed_version)
if [ -z "$VERSION" ]; then
  log "no PostgreSQL server binary found under /usr/lib/postgresql"
  exit 1
fi

# The package creates the 'main' cluster; create it when it was removed or never made.
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main"' | grep -q .; then
  log "creating cluster $VERSION/main on port $PG_PORT"
  pg_createcluster --port "$PG_PORT" "$VERSION" main
fi

# pg_ctlcluster status: 0 running, 3 stopped.
if ! pg_ctlcluster "$VERSION" main status >/dev/null 2>&1; then
  log "starting cluster $VERSION/main"
  pg_ctlcluster "$VERSION" main start
fi

PORT=$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" { print $3 }')
if [ "$PORT" != "$PG_PORT" ]; then
  log "cluster $VERSION/main listens on port $PORT, not $PG_PORT; set JOBFLEET_TEST_PG_URL accordingly"
fi

for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p "$PORT" && break
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$PORT"

exists=$(as_postgres psql -p "$PORT" -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")
if [ "$exists" != "1" ]; then
  log "creating role $ROLE"
  as_postgres psql -p "$PORT" -v ON_ERROR_STOP=1 -c "CREATE ROLE $ROLE LOGIN SUPERUSER PASSWORD '$PASSWORD'"
fi

log "ready: postgres://$ROLE:$PASSWORD@127.0.0.1:$PORT/postgres"
