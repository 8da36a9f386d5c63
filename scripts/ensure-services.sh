#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432, trust auth for loopback) and Redis (127.0.0.1:6379)
# answer: uses them when running, starts them when installed, installs them with apt-get when
# missing (fresh Debian machine). Idempotent; quiet when all is well.
set -euo pipefail

log() { echo "[services] $*" >&2; }
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

pg_ok() { psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc 'SELECT 1' >/dev/null 2>&1; }
# Outputs are read whole before they are matched: `cmd | grep -q` under pipefail fails at
# random when grep exits first and the command dies of SIGPIPE.
redis_ok() { [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == *PONG* ]]; }

# --- PostgreSQL ---
if ! pg_ok; then
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql postgresql-client
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [[ -z $version ]]; then
    log "no PostgreSQL cluster found"; exit 1
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  for _ in $(seq 1 50); do pg_ok && break; sleep 0.2; done
  if ! pg_ok; then
    # A fresh Debian cluster uses peer/password auth: trust loopback, as the project expects.
    hba=/etc/postgresql/$version/main/pg_hba.conf
    if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
      sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null \
      || pg_ctlcluster --skip-systemctl-redirect "$version" main restart
    for _ in $(seq 1 50); do pg_ok && break; sleep 0.2; done
  fi
  pg_ok || { log "PostgreSQL does not answer on 127.0.0.1:5432"; exit 1; }
  log "PostgreSQL is up"
fi

# --- Redis ---
if ! redis_ok; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 50); do redis_ok && break; sleep 0.1; done
  redis_ok || { log "Redis does not answer on 127.0.0.1:6379"; exit 1; }
  log "Redis is up"
fi
