#!/usr/bin/env bash
# scripts/test-services.sh COMMAND...: run COMMAND (`make test` runs smoke.sh and pytest this way) with the
# PostgreSQL and Redis the tests need, on any machine.
#
#   PostgreSQL: the server of BOUNTY_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test) when it
#     answers there; otherwise a throwaway cluster (initdb, trust auth, user postgres, a database `test`) in a
#     temporary folder, on a free loopback port, run as the `postgres` OS user when this runs as root (initdb
#     refuses root).
#   Redis: the server of BOUNTY_TEST_REDIS (default redis://127.0.0.1:6379) when it answers a PING; otherwise a
#     private redis-server on a free loopback port that keeps nothing on disk.
#   Missing server packages (postgresql, redis-server, pgbouncer) are installed with apt-get first.
#
# COMMAND sees BOUNTY_POSTGRES_URL, SMOKE_PG_HOST/PORT/USER, BOUNTY_TEST_REDIS and each database's URL of
# tests/redis_databases.py (SMOKE_REDIS_URL, BOUNTY_TEST_REDIS_URL, ...). A server that answered is used as it
# is and variables already set are kept; a private server replaces them all. Whatever this script started is
# stopped and its folder removed when COMMAND ends, fails or is interrupted (Ctrl-C); its exit status is
# COMMAND's. TEST_SERVICES_REPORT=FILE writes what was started (NAME=VALUE lines), for tests/deploy.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PY="$ROOT/.venv/bin/python"  # psycopg and redis, to probe as the tests connect
[ "$#" -gt 0 ] || {
    echo "usage: scripts/test-services.sh COMMAND..." >&2
    exit 2
}
[ -x "$PY" ] || {
    echo "test-services: no virtualenv at .venv: run make first" >&2
    exit 2
}

export BOUNTY_POSTGRES_URL="${BOUNTY_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export BOUNTY_TEST_REDIS="${BOUNTY_TEST_REDIS:-redis://127.0.0.1:6379}"
WORK=""
PG_DATA=""
PG_BIN=""
PG_OWNER=""
REDIS_PID=""
COMMAND_RAN=""
REPORT="${TEST_SERVICES_REPORT:-}"

say() { echo "test-services: $*"; }

report() {  # report NAME VALUE: one line of TEST_SERVICES_REPORT
    if [ -n "$REPORT" ]; then echo "$1=$2" >>"$REPORT"; fi
}

as_owner() {  # run a PostgreSQL server program as the user who owns the private cluster
    if [ -n "$PG_OWNER" ]; then runuser -u "$PG_OWNER" -- "$@"; else "$@"; fi
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
        say "stopped the private PostgreSQL"
    fi
    if [ -n "$REDIS_PID" ]; then
        kill -TERM "$REDIS_PID" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$REDIS_PID" 2>/dev/null  # still there after 10 s
        wait "$REDIS_PID" 2>/dev/null
        say "stopped the private redis-server"
    fi
    if [ -n "$WORK" ]; then
        if [ "$status" != 0 ] && [ -z "$COMMAND_RAN" ]; then  # a server did not start: say why
            for log in "$WORK"/log/*.log; do
                [ -f "$log" ] || continue
                echo "---- last lines of $(basename "$log")"
                tail -n 20 "$log"
            done
        fi
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

install_packages() {  # install_packages PACKAGE...: as run-local.sh does, root or sudo
    say "installing $* with apt-get"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    fi
}

free_port() {
    "$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()"
}

work_folder() {  # the temporary folder of everything this script starts (readable by the postgres user)
    if [ -z "$WORK" ]; then
        WORK="$(mktemp -d "${TMPDIR:-/tmp}/bounty-test-services.XXXXXX")"
        chmod 755 "$WORK"
        mkdir -p "$WORK/log"
        report work "$WORK"
    fi
}

postgres_answers() {  # postgres_answers URL: a real connection, as the tests make it
    "$PY" -c "import psycopg, sys; psycopg.connect(sys.argv[1], connect_timeout=3).close()" "$1" 2>/dev/null
}

redis_answers() {  # redis_answers URL
    "$PY" -c "import redis, sys; redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2).ping()" "$1" \
        2>/dev/null
}

wait_until() {  # wait_until WHAT SECONDS COMMAND...
    local what="$1" seconds="$2"
    shift 2
    local deadline=$(($(date +%s) + seconds))
    until "$@"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            say "$what did not come up within $seconds s"
            return 1
        fi
        sleep 0.2
    done
}

postgres_bin() {  # the newest installed PostgreSQL server's programs (Debian keeps them off PATH)
    local dir
    dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$dir" ] && command -v pg_ctl >/dev/null; then dir="$(dirname "$(command -v pg_ctl)")"; fi
    echo "$dir"
}

start_postgres() {
    PG_BIN="$(postgres_bin)"
    if [ -z "$PG_BIN" ] || ! command -v psql >/dev/null; then
        install_packages postgresql postgresql-client
        PG_BIN="$(postgres_bin)"
    fi
    [ -x "$PG_BIN/initdb" ] || {
        say "no initdb after installing postgresql"
        exit 1
    }
    work_folder
    PG_DATA="$WORK/postgres"
    mkdir -p "$PG_DATA"
    if [ "$(id -u)" = 0 ]; then
        # initdb and postgres refuse to run as root: the cluster belongs to the postgres OS user.
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$WORK" --shell /usr/sbin/nologin postgres
        PG_OWNER=postgres
        chown "$PG_OWNER" "$PG_DATA"
    fi
    local port
    port="$(free_port)"
    as_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$WORK/log/initdb.log" 2>&1 || {
        cat "$WORK/log/initdb.log"
        exit 1
    }
    # Loopback only, the socket in the cluster's folder (not the system's), and no durability: the cluster
    # lives for one test run.
    as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_DATA -c fsync=off" \
        -o "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start >/dev/null || {
        cat "$PG_DATA/server.log"
        exit 1
    }
    as_owner "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres test
    export BOUNTY_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/test"
    export SMOKE_PG_HOST=127.0.0.1 SMOKE_PG_PORT="$port" SMOKE_PG_USER=postgres
    report postgres_port "$port"
    report postgres_data "$PG_DATA"
    say "started a private PostgreSQL on 127.0.0.1:$port ($PG_DATA)"
}

start_redis() {
    if ! command -v redis-server >/dev/null; then install_packages redis-server; fi
    work_folder
    mkdir -p "$WORK/redis"
    local port
    port="$(free_port)"
    # Its own session, so a Ctrl-C reaches the tests but not the server: cleanup stops it.
    setsid redis-server --port "$port" --bind 127.0.0.1 --dir "$WORK/redis" --save "" --appendonly no \
        --protected-mode yes >"$WORK/log/redis.log" 2>&1 &
    REDIS_PID=$!
    export BOUNTY_TEST_REDIS="redis://127.0.0.1:$port"
    wait_until "redis-server on port $port" 20 redis_answers "$BOUNTY_TEST_REDIS" || exit 1
    # Every database of the table on this server, whatever the variables said before.
    local line
    while IFS= read -r line; do export "${line?}"; done < <("$PY" tests/redis_databases.py --on "$BOUNTY_TEST_REDIS")
    report redis_port "$port"
    report redis_pid "$REDIS_PID"
    say "started a private redis-server on 127.0.0.1:$port (pid $REDIS_PID)"
}

if postgres_answers "$BOUNTY_POSTGRES_URL"; then
    say "PostgreSQL answers at $BOUNTY_POSTGRES_URL: using it"
    # smoke.sh's server is the tests' server unless told otherwise.
    read -r url_host url_port url_user < <("$PY" -c "
import sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
print(url.hostname or '127.0.0.1', url.port or 5432, url.username or 'postgres')" "$BOUNTY_POSTGRES_URL")
    export SMOKE_PG_HOST="${SMOKE_PG_HOST:-$url_host}" SMOKE_PG_PORT="${SMOKE_PG_PORT:-$url_port}"
    export SMOKE_PG_USER="${SMOKE_PG_USER:-$url_user}"
else
    say "no PostgreSQL answers at $BOUNTY_POSTGRES_URL"
    start_postgres
fi
if redis_answers "$BOUNTY_TEST_REDIS"; then
    say "Redis answers at $BOUNTY_TEST_REDIS: using it"
else
    say "no Redis answers at $BOUNTY_TEST_REDIS"
    start_redis
fi

# PgBouncer is a program the tests start themselves (tests/deploy/test_compose_topology.py runs compose's
# layout through it); only its package is needed.
if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then install_packages pgbouncer; fi

COMMAND_RAN=1
set +e
"$@"
status=$?
set -e
exit "$status"
