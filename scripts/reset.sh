#!/usr/bin/env bash
# `make reset`: drops the local stack's data: its Postgres database, its Redis keys (the
# REDIS_PREFIX of the stack: queues and backlog included; the stack's own Redis is shut down)
# and .ezpulze/ (secrets, account, logs). Stops the stack first when it runs. Asks for a typed
# confirmation; `make reset CONFIRM=yes` does not ask. The next `make up` starts from nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${EZPULZE_DIR:-$root/.ezpulze}
[[ -d $dir ]] && dir=$(cd "$dir" && pwd)
rel=${dir#"$root"/}
log() { echo "[reset] $*" >&2; }

# What make up used (written by scripts/up.sh to data.env); make up's defaults otherwise.
DATABASE_URL= REDIS_URL= REDIS_PREFIX= OWN_REDIS_PORT=
# shellcheck disable=SC1091
[[ -f $dir/data.env ]] && source "$dir/data.env"
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ezpulze}
OWN_REDIS_PORT=${OWN_REDIS_PORT-${EZPULZE_REDIS_PORT:-6390}}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$OWN_REDIS_PORT/0}
REDIS_PREFIX=${REDIS_PREFIX:-ezp}
db_name=$(python3 -c 'import sys, urllib.parse as u; print(u.unquote(u.urlsplit(sys.argv[1]).path.lstrip("/")))' "$DATABASE_URL")
server_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/postgres")))' "$DATABASE_URL")
[[ $db_name =~ ^[A-Za-z0-9_]+$ ]] || { log "refusing to drop database '$db_name' (not a plain name)"; exit 1; }

echo "make reset drops: the Postgres database '$db_name', the Redis keys of prefix '$REDIS_PREFIX' on $REDIS_URL" \
  "(queued messages included), and $rel/ (secrets, default account, logs)." >&2
if [[ ${CONFIRM:-} != yes ]]; then
  if [[ ! -t 0 ]]; then
    log "not confirmed: run it in a terminal, or as make reset CONFIRM=yes"
    exit 1
  fi
  read -r -p "Type reset to go on: " answer
  [[ $answer == reset ]] || { log "not confirmed; nothing was changed"; exit 1; }
fi

bash scripts/down.sh
if psql "$server_url" -Atqc 'SELECT 1' >/dev/null 2>&1; then
  psql "$server_url" -qc "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" >/dev/null
  log "dropped the database $db_name"
else
  log "Postgres ($server_url) does not answer: the database $db_name was not dropped"
fi
if [[ $(redis-cli -u "$REDIS_URL" ping 2>/dev/null) == *PONG* ]]; then
  n=0
  for pattern in "$REDIS_PREFIX:*" "{$REDIS_PREFIX:*"; do
    keys=$(redis-cli -u "$REDIS_URL" --scan --pattern "$pattern" | wc -l)
    redis-cli -u "$REDIS_URL" --scan --pattern "$pattern" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
    n=$((n + keys))
  done
  log "deleted $n Redis keys of prefix $REDIS_PREFIX"
  # The stack's own Redis keeps its files in $rel/redis: shut it down before they go.
  if [[ -n $OWN_REDIS_PORT ]] && [[ $(redis-cli -p "$OWN_REDIS_PORT" config get dir 2>/dev/null) == *"$dir/redis"* ]]; then
    redis-cli -p "$OWN_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    log "shut down the stack's own Redis (port $OWN_REDIS_PORT)"
  fi
else
  log "Redis ($REDIS_URL) does not answer: its keys were not deleted (a Redis of make up's own keeps them in $rel/redis, removed now)"
fi
rm -rf "$dir"
log "removed $rel/; the next make up starts from nothing"
