# Sourced by .ci/test.sh: find (and under CI start) PostgreSQL and Redis on 127.0.0.1.

port_open() {
  "$PY" - "$1" <<'PYEOF'
import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PYEOF
}

wait_port() {  # port seconds
  for _ in $(seq 1 "$2"); do port_open "$1" && return 0; sleep 1; done
  return 1
}

start_postgres() {
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "Starting PostgreSQL ..."
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
}

start_redis() {
  if command -v redis-server >/dev/null 2>&1; then
    echo "Starting Redis ..."
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  fi
}

# Sets SERVICES_UP=1 when both are reachable. With CI=true a missing service is an error.
ensure_services() {
  SERVICES_UP=0
  if [ "${CI:-}" = "true" ]; then
    port_open 5432 || { start_postgres; wait_port 5432 30 || true; }
    port_open 6379 || { start_redis; wait_port 6379 15 || true; }
    port_open 5432 || { echo "ERROR: CI=true but PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started." >&2; return 1; }
    port_open 6379 || { echo "ERROR: CI=true but Redis is not reachable on 127.0.0.1:6379 and could not be started." >&2; return 1; }
  fi
  if port_open 5432 && port_open 6379; then SERVICES_UP=1; fi
  return 0
}
