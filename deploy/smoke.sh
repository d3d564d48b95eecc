#!/usr/bin/env bash
# Production-like smoke test (part of `make test`): the real process layout on loopback, end to end.
#
#   PostgreSQL (127.0.0.1:5432, user postgres; a throwaway database), Redis (the database "smoke" of
#   tests/redis_databases.py: 13 on BOUNTY_TEST_REDIS, default 127.0.0.1:6379),
#   the local ledger behind its ARC-compatible HTTP endpoints (CHAIN_BACKEND=arc: contracts.arc.ArcBackend is
#   the chain client, exactly as on testnet/mainnet), gunicorn, a Celery worker and beat started with the
#   commands of the systemd units, bounty.settings_production.
#
# It funds the operator wallet from the ledger's faucet, deploys a bounty (the bootstrap command's demo
# bounty), submits a real MNIST digit through the form over HTTP (CSRF and all) and waits for the paid,
# confirmed claim; checks /readyz and `manage.py health`; backs up, restores into a fresh database and
# compares submissions and transactions. Everything it starts is stopped on exit; what it created is removed.
# Overrides: SMOKE_PG_HOST/PORT/USER, SMOKE_REDIS_URL, SMOKE_KEEP=1 (keep the work folder and logs).
# `make test` runs it through scripts/test-services.sh, which sets them to private servers when none answer.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PY="$ROOT/.venv/bin/python"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, whatever the venv was installed from
BIN="$ROOT/.venv/bin"
STARTED_AT=$(date +%s)

PG_HOST="${SMOKE_PG_HOST:-127.0.0.1}"
PG_PORT="${SMOKE_PG_PORT:-5432}"
PG_USER="${SMOKE_PG_USER:-postgres}"
# The tests' table of Redis databases names smoke.sh's (SMOKE_REDIS_URL when set).
REDIS_URL_SMOKE="${SMOKE_REDIS_URL:-$("$PY" tests/redis_databases.py smoke 2>/dev/null || true)}"
DB="bounty_smoke_$$"
DB_RESTORED="${DB}_restored"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bounty-smoke.XXXXXX")"
PIDS=()
NAMES=()
DATABASES_CREATED=()

step() { printf '\n== %s (%ss)\n' "$*" "$(($(date +%s) - STARTED_AT))"; }
die() {
    echo "SMOKE FAILED: $*" >&2
    exit 1
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    echo
    echo "== cleaning up"
    local i
    for i in "${!PIDS[@]}"; do kill -TERM -- "-${PIDS[$i]}" 2>/dev/null; done
    for i in "${!PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "${PIDS[$i]}" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "${PIDS[$i]}" 2>/dev/null; then
            echo "  ${NAMES[$i]} did not stop in 10 s: killing it"
            kill -KILL -- "-${PIDS[$i]}" 2>/dev/null
        fi
        wait "${PIDS[$i]}" 2>/dev/null
        echo "  stopped ${NAMES[$i]} (pid ${PIDS[$i]})"
    done
    for db in "${DATABASES_CREATED[@]}"; do
        psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null && echo "  dropped database $db"
    done
    "$PY" -c "import redis, sys; redis.Redis.from_url(sys.argv[1]).flushdb()" "$REDIS_URL_SMOKE" 2>/dev/null &&
        echo "  flushed $REDIS_URL_SMOKE"
    if [ "$status" != 0 ]; then
        echo "---- last lines of each log (all in $WORK/log) ----"
        for log in "$WORK"/log/*.log; do
            [ -f "$log" ] || continue
            echo "---- $log"
            tail -n 30 "$log"
        done
        echo "SMOKE FAILED (exit $status) after $(($(date +%s) - STARTED_AT)) s" >&2
    fi
    if [ "${SMOKE_KEEP:-0}" = 1 ] || [ "$status" != 0 ]; then
        echo "  kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres "$@"; }

free_port() {
    "$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()"
}

start() {  # start NAME COMMAND...: in its own process group, output to $WORK/log/NAME.log
    local name="$1"
    shift
    setsid "$@" >>"$WORK/log/$name.log" 2>&1 &
    PIDS+=("$!")
    NAMES+=("$name")
    echo "  started $name (pid $!)"
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...
    local what="$1" seconds="$2"
    shift 2
    local deadline=$(($(date +%s) + seconds))
    until "$@" >/dev/null 2>&1; do
        for i in "${!PIDS[@]}"; do
            kill -0 "${PIDS[$i]}" 2>/dev/null || die "${NAMES[$i]} exited while waiting for $what"
        done
        [ "$(date +%s)" -lt "$deadline" ] || die "$what did not come up within $seconds s"
        sleep 0.3
    done
}

manage() { "$PY" manage.py "$@"; }

step "prerequisites"
[ -x "$PY" ] || die "no virtualenv at .venv: run make first"
[ -n "$REDIS_URL_SMOKE" ] || die "tests/redis_databases.py did not name smoke.sh's Redis database"
command -v psql >/dev/null || die "psql is missing (apt-get install postgresql-client)"
command -v setsid >/dev/null || die "setsid is missing (util-linux)"
psql_admin -c "SELECT 1" >/dev/null || die "PostgreSQL is not reachable at $PG_HOST:$PG_PORT as $PG_USER"
"$PY" -c "import redis, sys; redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2).ping()" \
    "$REDIS_URL_SMOKE" || die "Redis is not reachable at $REDIS_URL_SMOKE"
exec 9>"${TMPDIR:-/tmp}/bounty-smoke.lock"  # one smoke test at a time per machine: its Redis database is shared
flock -w 240 9 || die "another smoke test holds ${TMPDIR:-/tmp}/bounty-smoke.lock"
"$PY" -c "import redis, sys; redis.Redis.from_url(sys.argv[1]).flushdb()" "$REDIS_URL_SMOKE"
mkdir -p "$WORK/log" "$WORK/keys" "$WORK/media" "$WORK/static" "$WORK/ledger"
echo "  work folder $WORK, Redis $REDIS_URL_SMOKE, PostgreSQL $PG_HOST:$PG_PORT"

step "keys (0600 files, as on a server) and the environment file"
umask 077
for role in operator admin; do
    "$PY" -c "from contracts.keys import Key; print(Key.generate('regtest').wif)" >"$WORK/keys/$role.wif"
done
PAYOUT_ADDRESS=$("$PY" -c "from contracts.keys import Key; print(Key.generate('regtest').address)")
umask 022
LEDGER_PORT=$(free_port)
WEB_PORT=$(free_port)
[ "$LEDGER_PORT" != "$WEB_PORT" ] || WEB_PORT=$(free_port)
BASE="http://127.0.0.1:$WEB_PORT"
cat >"$WORK/env" <<ENV
DJANGO_SETTINGS_MODULE=bounty.settings_production
SECRET_KEY_FILE=$WORK/keys/secret_key
ALLOWED_HOSTS=127.0.0.1
CSRF_TRUSTED_ORIGINS=https://127.0.0.1:$WEB_PORT
DATABASE_URL=postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB
REDIS_URL=$REDIS_URL_SMOKE
VAR_DIR=$WORK/var
MEDIA_ROOT=$WORK/media
STATIC_ROOT=$WORK/static
NETWORK=regtest
CHAIN_BACKEND=arc
ARC_URL=http://127.0.0.1:$LEDGER_PORT
WOC_URL=http://127.0.0.1:$LEDGER_PORT/v1/bsv/regtest
FEE_RATE=100
OPERATOR_KEY_FILE=$WORK/keys/operator.wif
ADMIN_KEY_FILE=$WORK/keys/admin.wif
GENERATE_MISSING_KEYS=0
GUNICORN_BIND=127.0.0.1:$WEB_PORT
WEB_CONCURRENCY=2
CELERY_CONCURRENCY=2
STUCK_AFTER=30
DJANGO_ADMIN_USER=admin
DJANGO_ADMIN_PASSWORD=$("$PY" -c "import secrets; print(secrets.token_urlsafe(16))")
PYTHONUNBUFFERED=1
ENV
"$PY" -c "import secrets; print(secrets.token_urlsafe(50))" >"$WORK/keys/secret_key"
chmod 600 "$WORK/keys/secret_key"
set -a
# shellcheck disable=SC1091
. "$WORK/env"
set +a
echo "  settings $DJANGO_SETTINGS_MODULE, web $BASE, ledger http://127.0.0.1:$LEDGER_PORT (ARC + WhatsOnChain paths)"

step "nginx configuration (nginx -t on deploy/nginx with a throwaway certificate)"
if ! command -v nginx >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "  nginx is missing: installing nginx-light with apt-get"
    apt-get install -y -qq nginx-light >"$WORK/log/apt-nginx.log" 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq nginx-light >>"$WORK/log/apt-nginx.log" 2>&1; } ||
        die "could not install nginx (see $WORK/log/apt-nginx.log)"
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$NGINX" ] || die "nginx is missing: install nginx (or nginx-light) to test deploy/nginx"
mkdir -p "$WORK/nginx"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -keyout "$WORK/nginx/key.pem" \
    -out "$WORK/nginx/cert.pem" >/dev/null 2>&1 || die "openssl could not make a test certificate"
sed -e "s|/etc/letsencrypt/live/bounty.example.org/fullchain.pem|$WORK/nginx/cert.pem|" \
    -e "s|/etc/letsencrypt/live/bounty.example.org/privkey.pem|$WORK/nginx/key.pem|" \
    -e "s|/etc/nginx/bounty_proxy_params|$ROOT/deploy/nginx/bounty_proxy_params|" \
    -e "s|/var/log/nginx/|$WORK/log/nginx-|" deploy/nginx/bounty.conf >"$WORK/nginx/bounty.conf"
cat >"$WORK/nginx/nginx.conf" <<NGINX
pid $WORK/nginx/nginx.pid;
error_log $WORK/log/nginx-error.log;
events {}
http {
    include /etc/nginx/mime.types;
    include $WORK/nginx/bounty.conf;
}
NGINX
"$NGINX" -t -q -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" || die "nginx -t rejects deploy/nginx/bounty.conf"
echo "  nginx -t accepts deploy/nginx/bounty.conf and bounty_proxy_params"

step "database $DB"
psql_admin -c "CREATE DATABASE $DB"
DATABASES_CREATED+=("$DB")

step "local ledger behind its ARC-compatible HTTP endpoints"
start ledger "$PY" -m contracts ledger serve --data "$WORK/ledger" --port "$LEDGER_PORT" --block-interval 2 --dev
wait_for "the ledger's /v1/policy" 30 curl -fsS "http://127.0.0.1:$LEDGER_PORT/v1/policy"
echo "  policy: $(curl -fsS "http://127.0.0.1:$LEDGER_PORT/v1/policy")"

step "migrate, collectstatic, check --deploy, bootstrap"
manage migrate --noinput -v 0
echo "  migrated ($(($(date +%s) - STARTED_AT))s)"
manage collectstatic --noinput -v 0
[ -f "$WORK/static/staticfiles.json" ] || die "collectstatic wrote no manifest"
echo "  collected static files ($(($(date +%s) - STARTED_AT))s)"
manage check --deploy --fail-level ERROR
manage bootstrap --no-demo
manage health --only database --only redis --only chain

step "fund the operator wallet (ledger faucet) and deploy a bounty through ARC"
OPERATOR_ADDRESS=$(manage shell -v 0 -c "from bounty import chain; print(chain.operator_address())")
curl -fsS -X POST -H 'Content-Type: application/json' \
    -d "{\"address\": \"$OPERATOR_ADDRESS\", \"satoshis\": 5000000}" \
    "http://127.0.0.1:$LEDGER_PORT/ledger/fund" >/dev/null
BOUNTY_ID=$(manage shell -v 0 -c "
import io
from contextlib import redirect_stdout
from bounty.management.commands.bootstrap import Command
from bounty.models import Bounty
command = Command(stdout=io.StringIO())
command.demo_bounty(command.model_version(), 7, 2, 1000)
bounty = Bounty.objects.get()
assert bounty.state == 'active', bounty.state
print(bounty.pk)
")
echo "  bounty #$BOUNTY_ID is active: 2 slots x 1000 sat for a 7"

step "gunicorn, Celery worker and beat (the systemd units' commands)"
start web "$BIN/gunicorn" --config deploy/gunicorn.conf.py bounty.wsgi
start worker "$BIN/celery" -A bounty worker --loglevel INFO --hostname "worker-smoke@%h"
start beat "$BIN/celery" -A bounty beat --loglevel INFO \
    --scheduler django_celery_beat.schedulers:DatabaseScheduler
wait_for "gunicorn /healthz" 30 curl -fsS "$BASE/healthz"
manage health --wait 60 || die "not ready after 60 s"

step "a contributor submits a real MNIST digit through the form"
"$PY" deploy/smoke_client.py digit-png "$WORK/seven.png" 7
"$PY" deploy/smoke_client.py submit "$BASE" "$BOUNTY_ID" "$WORK/seven.png" "$PAYOUT_ADDRESS" 90 |
    tee "$WORK/submit.out"
CLAIM_TXID=$("$PY" -c "import json, sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])['txid'])" \
    "$WORK/submit.out")
PAID=$(curl -fsS "http://127.0.0.1:$LEDGER_PORT/v1/bsv/regtest/address/$PAYOUT_ADDRESS/unspent")
"$PY" -c "
import json, sys
rows = json.loads(sys.argv[1])
assert [r['tx_hash'] for r in rows] == [sys.argv[2]] and rows[0]['value'] == 1000, rows
print(f'  the ledger holds 1000 sat for the contributor in {sys.argv[2]}')
" "$PAID" "$CLAIM_TXID"

step "health: /readyz and manage.py health"
curl -fsS "$BASE/readyz" | "$PY" -c "
import json, sys
body = json.load(sys.stdin)
assert body['status'] == 'ready', body
print('  /readyz: ' + ', '.join(c['name'] + ' ' + ('ok' if c['ok'] else 'FAIL') for c in body['checks']))
"
manage health
grep -q '"request_id"' "$WORK/log/web.log" || die "the web log has no JSON lines with request ids"
grep -q '"task_id"' "$WORK/log/worker.log" || die "the worker log has no JSON lines with task ids"
for secret in "$(cat "$WORK/keys/operator.wif")" "$(cat "$WORK/keys/admin.wif")" "$(cat "$WORK/keys/secret_key")"; do
    if grep -rqF -- "$secret" "$WORK/log"; then die "a secret appears in the logs"; fi
done
echo "  logs are JSON with request and task ids; no key or SECRET_KEY in any log"

step "backup, then restore into a fresh database"
SNAPSHOT='
import json
from bounty.models import Submission, Transaction
print(json.dumps({
    "submissions": [[str(s.public_id), s.state, s.payout_address, s.claim_tx.txid if s.claim_tx else None,
                     s.original.name] for s in Submission.objects.order_by("public_id")],
    "transactions": [[t.txid, t.kind, t.raw_hex] for t in Transaction.objects.order_by("txid")],
}, sort_keys=True))
'
manage backup --output "$WORK/backup.tar.gz"
BEFORE=$(manage shell -v 0 -c "$SNAPSHOT")
psql_admin -c "CREATE DATABASE $DB_RESTORED"
DATABASES_CREATED+=("$DB_RESTORED")
mkdir -p "$WORK/media-restored"
DATABASE_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB_RESTORED" MEDIA_ROOT="$WORK/media-restored" \
    manage restore "$WORK/backup.tar.gz"
AFTER=$(DATABASE_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB_RESTORED" manage shell -v 0 -c "$SNAPSHOT")
[ "$BEFORE" = "$AFTER" ] || die "the restored database differs: before $BEFORE after $AFTER"
"$PY" -c "
import json, sys
from pathlib import Path
snapshot = json.loads(sys.argv[1])
assert len(snapshot['submissions']) == 1 and snapshot['submissions'][0][1] == 'confirmed', snapshot
assert {t[1] for t in snapshot['transactions']} == {'deploy', 'claim'}, snapshot
original = snapshot['submissions'][0][4]
assert (Path(sys.argv[2]) / original).read_bytes() == (Path(sys.argv[3]) / original).read_bytes()
print(f\"  restored: {len(snapshot['submissions'])} submission, {len(snapshot['transactions'])} transactions,\"
      f' the original image {original}')
" "$AFTER" "$WORK/media" "$WORK/media-restored"
DATABASE_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB_RESTORED" manage restore "$WORK/backup.tar.gz" \
    >"$WORK/log/restore-again.log" 2>&1 && die "restore into a database with data should refuse"
echo "  a second restore into the same database is refused"

step "passed in $(($(date +%s) - STARTED_AT)) s"
