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
