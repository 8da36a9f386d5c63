#!/usr/bin/env bash
# `make up`: the whole stack in the foreground (API, workers, scheduler, WhatsApp simulator,
# Redis, Postgres) with a default account. Ctrl-C stops all of it.
# Uses DATABASE_URL / REDIS_URL when given and reachable; otherwise Postgres on 127.0.0.1:5432
# (started or installed when missing) and a Redis of its own on 127.0.0.1:${EZPULZE_REDIS_PORT:-6390}
# with the settings the engine relies on (noeviction, appendonly + everysec).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=$root/.ezpulze
mkdir -p "$dir"
log() { echo "[up] $*" >&2; }

api_port=${EZPULZE_API_PORT:-8080}
sim_port=${EZPULZE_SIM_PORT:-8090}
redis_port=${EZPULZE_REDIS_PORT:-6390}

pids=()
cleanup() {
  trap - INT TERM EXIT
  rm -f "$dir/stack.env"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n ${own_redis:-} ]]; then
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  fi
  log "stopped"
}
trap cleanup INT TERM EXIT

# --- Services ---
bash scripts/ensure-services.sh
if [[ -n ${DATABASE_URL:-} ]] && psql "$DATABASE_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; then
  log "using DATABASE_URL"
else
  export DATABASE_URL=postgres://postgres@127.0.0.1:5432/ezpulze
  psql postgres://postgres@127.0.0.1:5432/postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'ezpulze'" | grep -q 1 \
    || psql postgres://postgres@127.0.0.1:5432/postgres -qc 'CREATE DATABASE ezpulze' >/dev/null
fi
if [[ -n ${REDIS_URL:-} ]] && redis-cli -u "$REDIS_URL" ping 2>/dev/null | grep -q PONG; then
  log "using REDIS_URL"
else
  mkdir -p "$dir/redis"
  if ! redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG; then
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes \
      --appendfsync everysec --maxmemory-policy noeviction --save "" --daemonize yes \
      --logfile "$dir/redis/redis.log"
    own_redis=1
    for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  fi
  export REDIS_URL=redis://127.0.0.1:$redis_port/0
fi

# --- Secrets, made once and kept in .ezpulze/secrets.env ---
rand() { head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$1"; }
touch "$dir/secrets.env"
chmod 600 "$dir/secrets.env"
add_secret() { grep -q "^$1=" "$dir/secrets.env" || echo "$1=$2" >>"$dir/secrets.env"; }
add_secret EZPULZE_ROOT_TOKEN "root_$(rand 32)"
add_secret EZPULZE_KEY_PEPPER "$(rand 40)"
add_secret EZPULZE_SECRETS_KEY "$(rand 32)"
add_secret SIM_APP_SECRET "$(rand 32)"
add_secret EZPULZE_SIM_TOKEN "EAAsim$(rand 40)"
set -a
# shellcheck disable=SC1091
source "$dir/secrets.env"
set +a

# --- Build ---
log "building (release)"
cargo build --release --bins --quiet
bin=${CARGO_TARGET_DIR:-$root/target}/release

export API_ADDR=127.0.0.1:$api_port
export PUBLIC_BASE_URL=http://127.0.0.1:$api_port
export GRAPH_API_BASE=http://127.0.0.1:$sim_port
"$bin/ezpulze-api" migrate

# A role binary that is built and describes itself (so not a placeholder).
# The help text is read whole before it is searched: `--help | grep -q` under pipefail lets the
# binary die of SIGPIPE when grep stops early, and the check then fails at random.
has_bin() {
  local out
  [[ -x $bin/$1 ]] && out=$("$bin/$1" --help 2>&1) && [[ $out == *"$1"* ]]
}

start() { # name, command...
  local name=$1; shift
  "$@" >"$dir/$name.log" 2>&1 &
  pids+=($!)
  log "started $name (log: .ezpulze/$name.log)"
}

metrics_urls="http://127.0.0.1:$api_port/metrics"
# The simulated WhatsApp business number of the default account.
sim_number=106540352242922
sim_display=15550783881
if has_bin ezpulze-simulator; then
  SIM_LISTEN=127.0.0.1:$sim_port SIM_WEBHOOK_URL=http://127.0.0.1:$api_port/webhooks/whatsapp \
    SIM_NUMBERS="$sim_number:$sim_display:$EZPULZE_SIM_TOKEN" SIM_SANDBOX_TOKEN=ezpulze-sandbox \
    start simulator "$bin/ezpulze-simulator"
  metrics_urls+=" http://127.0.0.1:$sim_port/metrics"
fi
MIGRATE_ON_START=false start api "$bin/ezpulze-api"
if has_bin ezpulze-worker; then
  for i in 1 2; do
    WORKER_METRICS_ADDR=127.0.0.1:$((9100 + 2 * i - 1)) MIGRATE_ON_START=false start "worker-$i" "$bin/ezpulze-worker"
    metrics_urls+=" http://127.0.0.1:$((9100 + 2 * i - 1))/metrics"
  done
fi
if has_bin ezpulze-scheduler; then
  SCHEDULER_METRICS_ADDR=127.0.0.1:9102 MIGRATE_ON_START=false start scheduler "$bin/ezpulze-scheduler"
  metrics_urls+=" http://127.0.0.1:9102/metrics"
fi

api=http://127.0.0.1:$api_port
for _ in $(seq 1 100); do
  curl -fsS "$api/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$api/readyz" >/dev/null || { log "the API did not become ready; see .ezpulze/api.log"; exit 1; }

# --- Default account and a full-access key, kept in .ezpulze/account.env while they work ---
ADMIN_TOKEN= API_KEY=
[[ -f $dir/account.env ]] && source "$dir/account.env"
if [[ -z $ADMIN_TOKEN ]] || ! curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$api/admin/v1/api-keys" >/dev/null 2>&1; then
  ADMIN_TOKEN=$(curl -fsS -X POST "$api/admin/v1/accounts" -H "Authorization: Bearer $EZPULZE_ROOT_TOKEN" \
    -H 'content-type: application/json' -d '{"name":"Default account"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["admin_token"])')
  API_KEY=
fi
if [[ -z $API_KEY ]] || ! curl -fsS -H "Authorization: Bearer $API_KEY" "$api/api/v1/me" >/dev/null 2>&1; then
  API_KEY=$(curl -fsS -X POST "$api/admin/v1/api-keys" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'content-type: application/json' -d '{"name":"Default full-access key","scope_group":"full_access","rate_limit_per_hour":null}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
fi
umask 077
printf 'ADMIN_TOKEN=%s\nAPI_KEY=%s\n' "$ADMIN_TOKEN" "$API_KEY" >"$dir/account.env"
# Wire the default account to the simulator (its number, token and app secret), and give a
# newcomer a template and a broadcast to send right away.
auth=(-H "Authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json')
curl -fsS -X PUT "$api/admin/v1/whatsapp" "${auth[@]}" -d "{\"phone_numbers\":[{\"phone_number_id\":\"$sim_number\",\"display_phone_number\":\"$sim_display\",\"access_token\":\"$EZPULZE_SIM_TOKEN\"}],\"app_secret\":\"$SIM_APP_SECRET\",\"verify_token\":\"ezpulze-local\"}" >/dev/null
broadcast=$(curl -fsS "$api/admin/v1/broadcasts" "${auth[@]}" | python3 -c 'import json,sys; i=json.load(sys.stdin)["items"]; print(i[0]["id"] if i else "")')
if [[ -z $broadcast ]]; then
  template=$(curl -fsS -X POST "$api/api/v1/templates" "${auth[@]}" -d '{"name":"order_update","language":"en_US","category":"UTILITY","components":[{"type":"HEADER","format":"IMAGE","example":{"header_handle":["https://picsum.photos/seed/ezpulze/600/300"]}},{"type":"BODY","text":"Hi {{1}}, your order {{2}} has shipped.","example":{"body_text":[["Maria","4721"]]}},{"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"Stop updates"},{"type":"URL","text":"Track","url":"https://shop.example.com/track/{{1}}","example":["https://shop.example.com/track/4721"]}]}]}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  broadcast=$(curl -fsS -X POST "$api/api/v1/broadcasts" "${auth[@]}" -d "{\"name\":\"Order shipped\",\"template_id\":\"$template\",\"variables\":{\"header\":{\"type\":\"image\",\"link\":\"https://picsum.photos/seed/ezpulze/600/300\"}}}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
fi
cat >"$dir/stack.env" <<ENV
API_URL=$api
SIM_URL=http://127.0.0.1:$sim_port
ROOT_TOKEN=$EZPULZE_ROOT_TOKEN
ADMIN_TOKEN=$ADMIN_TOKEN
API_KEY=$API_KEY
METRICS_URLS="$metrics_urls"
ENV

cat <<MSG

  EzPulze is running.
    Web UI and API:  $api/         (sign in with the admin token below)
    Admin token:     $ADMIN_TOKEN
    API key:         $API_KEY   (full access)
    Simulator:       http://127.0.0.1:$sim_port/_sim/stats
    Try a send:      curl -s -X POST $api/api/v1/broadcasts/$broadcast/send -H "Authorization: Bearer \$API_KEY" \\
                       -H 'content-type: application/json' -d '{"recipients":[{"to":"+14155550123","variables":{"body":["Ann","4721"],"buttons":[{"index":0,"payload":"stop"},{"index":1,"text":"4721"}]}}]}'
                     then: curl -s -H "Authorization: Bearer \$ADMIN_TOKEN" $api/admin/v1/api-keys  (usage per key in the UI)
    Metrics:         $metrics_urls
    Settings for scripts and k6: source .ezpulze/stack.env
  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}" || true
log "a process exited; stopping the stack"
