#!/usr/bin/env bash
# Installs the Debian packages the test suite starts for real (as root, on Debian 12):
# MariaDB for the SQL tests, Chromium for the console's browser tests, HAProxy and libfaketime for
# the cluster tests, python3 for the agent's task launcher (perl's, the other one, comes with
# every Debian system). PostgreSQL is installed and started by start-test-postgres.sh.
set -euo pipefail

need=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)
[ -x /usr/bin/chromium ] || need+=(chromium)
# HAProxy in front of a cluster of servers (server/test/haproxy.test.ts, deploy/haproxy.cfg).
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
# libfaketime runs one server of a cluster with its clock ahead (server/test/cluster-callback-clock.test.ts).
ls /usr/lib/*-linux-gnu/faketime/libfaketime.so.1 >/dev/null 2>&1 || need+=(libfaketime)
# The agent's preferred task launcher (agent/launcher/task-launcher.py); the tests run both.
command -v python3 >/dev/null 2>&1 || need+=(python3-minimal)

if [ ${#need[@]} -gt 0 ]; then
  echo "install-test-packages: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "install-test-packages: ready"
