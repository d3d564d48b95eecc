#!/usr/bin/env bash
# `make run`: the bounty service on its embedded defaults, everything on this machine.
#   SQLite in var/, a private redis-server on a project-local port, the local ledger (mining a block every
#   LEDGER_BLOCK_INTERVAL seconds and serving its ARC-compatible HTTP endpoints), a Celery worker and beat,
#   and the web server on http://127.0.0.1:${PORT:-8000}. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PY="$ROOT/.venv/bin/python"
VAR="$ROOT/var"
mkdir -p "$VAR/log" "$VAR/redis"

export PORT="${PORT:-8000}"
export REDIS_PORT="${REDIS_PORT:-6391}"
export LEDGER_PORT="${LEDGER_PORT:-8765}"
export LEDGER_BLOCK_INTERVAL="${LEDGER_BLOCK_INTERVAL:-10}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:${REDIS_PORT}/0}"
export LEDGER_DIR="${LEDGER_DIR:-$VAR/ledger}"
export DJANGO_SETTINGS_MODULE=bounty.settings
export PYTHONUNBUFFERED=1

PIDS=()
stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping..."
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    echo "stopped."
    exit 0
}
trap stop INT TERM EXIT

start() {  # start NAME COMMAND...: run in the background, log to var/log/NAME.log
    local name="$1"
    shift
    "$@" >>"$VAR/log/$name.log" 2>&1 &
    PIDS+=("$!")
    echo "  $name (pid $!, log var/log/$name.log)"
}

wait_for() {  # wait_for WHAT COMMAND...: retry for up to 20 seconds
    local what="$1"
    shift
    for _ in $(seq 1 100); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "error: $what did not come up; see var/log/" >&2
    exit 1
}

if ! command -v redis-server >/dev/null; then
    echo "redis-server is missing: installing it with apt-get"
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server; else
        sudo apt-get update -qq && sudo apt-get install -y -qq redis-server; fi
fi

echo "starting:"
if [ -z "${REDIS_URL_EXTERNAL:-}" ]; then
    start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$VAR/redis" --save "" \
        --appendonly no --protected-mode yes
    wait_for "redis on port $REDIS_PORT" redis-cli -p "$REDIS_PORT" ping
fi
start ledger "$PY" -m contracts ledger serve --dev --data "$LEDGER_DIR" --port "$LEDGER_PORT" \
    --block-interval "$LEDGER_BLOCK_INTERVAL"
wait_for "the ledger on port $LEDGER_PORT" "$PY" -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$LEDGER_PORT/v1/policy', timeout=1)"

"$PY" manage.py migrate --noinput -v 0
"$PY" manage.py check --fail-level ERROR
"$PY" manage.py bootstrap
# /models/ serves plots drawn once, not on a request: queue the ones the active version lacks.
"$PY" -c "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'bounty.settings'); django.setup(); \
from bounty.retraining.tasks import render_plots; render_plots.delay()" \
    || echo "plots not queued: run .venv/bin/python manage.py render_plots"

start worker "$ROOT/.venv/bin/celery" -A bounty worker --loglevel INFO --concurrency 2 --hostname "local@%h"
start beat "$ROOT/.venv/bin/celery" -A bounty beat --loglevel INFO \
    --scheduler django_celery_beat.schedulers:DatabaseScheduler --pidfile "$VAR/celerybeat.pid"
start web "$ROOT/.venv/bin/gunicorn" bounty.wsgi --bind "127.0.0.1:$PORT" --workers 2 --access-logfile -
wait_for "the web server on port $PORT" "$PY" -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/', timeout=1)"

echo
echo "The bounty service is running: http://127.0.0.1:$PORT/   (admin: http://127.0.0.1:$PORT/admin/)"
echo "Press Ctrl-C to stop."
wait -n "${PIDS[@]}" || true
echo "a process exited; see var/log/" >&2
