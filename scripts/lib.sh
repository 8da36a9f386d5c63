# Helpers shared by the scripts: sourced (`. scripts/lib.sh`), never run on its own. The
# sourcing script defines log().

# apt_install PKG...: installs Debian packages quietly, with one `apt-get update` per run.
apt_install() {
  log "installing $* with apt-get"
  if [[ -z ${EZPULZE_APT_UPDATED:-} ]]; then
    apt-get update -qq >/dev/null
    export EZPULZE_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# create_test_db KIND: makes Postgres and Redis answer, then creates the empty database
# ezp_t_<KIND>_<random> for one run. Sets PG and REDIS_URL (the test services, from
# EZPULZE_TEST_PG / EZPULZE_TEST_REDIS) and NAME (the database, also the run's Redis prefix).
create_test_db() {
  bash scripts/ensure-services.sh
  PG=${EZPULZE_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}
  REDIS_URL=${EZPULZE_TEST_REDIS:-redis://127.0.0.1:6379/0}
  NAME=ezp_t_$1_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
  psql "$PG" -qc "CREATE DATABASE $NAME" >/dev/null
}

# start_api KIND BINARY: a private api (BINARY) on a fresh database and Redis prefix
# (create_test_db KIND) and a free port, logging to $LOG_DIR/api.log (LOG_DIR is set by the
# caller); returns once it is ready. Sets BASE (its URL), ROOT (its root token) and API_PID.
# stop_api stops it and removes its data: call it from the caller's EXIT trap.
start_api() {
  create_test_db "$1"
  local database_url port
  database_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$PG" "$NAME")
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  BASE=http://127.0.0.1:$port
  ROOT=$1-root-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  DATABASE_URL=$database_url REDIS_URL=$REDIS_URL REDIS_PREFIX=$NAME EZPULZE_ROOT_TOKEN=$ROOT \
    API_ADDR=127.0.0.1:$port DATABASE_MAX_CONNECTIONS=4 RUST_LOG=${API_LOG:-warn} \
    "$2" >"$LOG_DIR/api.log" 2>&1 &
  API_PID=$!
  for _ in $(seq 1 100); do curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fsS "$BASE/readyz" >/dev/null
}

# stop_api: stops the api of start_api (if it runs) and drops its database and Redis keys.
stop_api() {
  if [[ -n ${API_PID:-} ]]; then
    kill "$API_PID" 2>/dev/null || true
    wait "$API_PID" 2>/dev/null || true
    API_PID=
  fi
  [[ -n ${NAME:-} ]] || return 0
  psql "$PG" -qc "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS_URL" --scan --pattern "*$NAME*" 2>/dev/null | xargs -r redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1 || true
}

# provision_account NAME: on the api of start_api, an account NAME and a full-access key of it
# without hourly limit. Sets ADMIN_TOKEN and API_KEY.
provision_account() {
  ADMIN_TOKEN=$(curl -fsS -X POST "$BASE/admin/v1/accounts" -H "Authorization: Bearer $ROOT" \
    -H 'content-type: application/json' -d "{\"name\":\"$1\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["admin_token"])')
  API_KEY=$(curl -fsS -X POST "$BASE/admin/v1/api-keys" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'content-type: application/json' -d "{\"name\":\"$1\",\"scope_group\":\"full_access\",\"rate_limit_per_hour\":null}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
}
