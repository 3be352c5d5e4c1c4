# shellcheck shell=bash disable=SC2034
# Shared settings and helpers for services.sh (sourced, not run).

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPTS_DIR/../.." && pwd)
STATE=${SLIPWAY_TEST_STATE:-$REPO_ROOT/.state}

BRIDGE=slw0
BRIDGE_IP=10.213.0.1
NET_PREFIX=10.213.0
REG_PORT=5443
REGISTRY=$BRIDGE_IP:$REG_PORT
FIXTURES=$REGISTRY/slipway-fixtures
REG_USER=slipway
DEPLOY_USER=deploy
NTARGETS=${SLIPWAY_TARGETS:-3}

REG_DIR=$STATE/registry
DOCKER_CFG=$STATE/docker-config   # docker login for services.sh only; root's ~/.docker is left alone
CERTS_D=/etc/docker/certs.d/$REGISTRY

# Docker 20.10 here: classic builder only.
export DOCKER_BUILDKIT=0

say() { printf 'services: %s\n' "$*"; }
warn() { printf 'services: %s\n' "$*" >&2; }
die() {
  printf 'services: ERROR: %s\n' "$*" >&2
  exit 1
}

now_ms() { date +%s%3N; }
fmt_ms() { printf '%d.%01ds' $(($1 / 1000)) $((($1 % 1000) / 100)); }

# step NAME FUNC...: runs FUNC, then prints one line with the function's NOTE
# and the duration.
NOTE=""
CURRENT_STEP=""
step() {
  local name=$1 t0
  shift
  CURRENT_STEP=$name
  NOTE=""
  t0=$(now_ms)
  "$@"
  printf 'services: %-18s %-52s (%s)\n' "$name" "$NOTE" "$(fmt_ms $(($(now_ms) - t0)))"
}

# pid_alive PIDFILE PATTERN: the pidfile names a live process whose command
# line contains PATTERN (guards against recycled pids after a reboot).
pid_alive() {
  local f=$1 pat=$2 pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pat"
}

# stop_pidfile PIDFILE PATTERN [SECONDS]: TERM, wait, then KILL.
stop_pidfile() {
  local f=$1 pat=$2 secs=${3:-20} pid i
  if pid_alive "$f" "$pat"; then
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
      [ -d "/proc/$pid" ] || break
      sleep 0.1
    done
    if [ -d "/proc/$pid" ]; then
      warn "$pat (pid $pid) did not stop in ${secs}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$f"
}

# start_bg LOG CMD...: a daemon detached from this shell. fd 9 (the state
# lock) is closed so the daemon does not hold the lock forever.
start_bg() {
  local log=$1
  shift
  setsid "$@" </dev/null >>"$log" 2>&1 9>&- &
  BG_PID=$!
}

# wait_until SECONDS DESCRIPTION CMD...: polls CMD every 0.2 s.
wait_until() {
  local secs=$1 what=$2 i
  shift 2
  for ((i = 0; i < secs * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  return 1
}

reg_password() { cat "$REG_DIR/password"; }

# reg_curl ARGS...: curl to the registry trusting the test CA, with the
# credentials passed on stdin (never in argv).
reg_curl() {
  printf 'user = "%s:%s"\n' "$REG_USER" "$(reg_password)" |
    curl -sS --max-time 10 --cacert "$REG_DIR/ca.crt" -K - "$@"
}

reg_code_anon() {
  curl -s --max-time 5 --cacert "$REG_DIR/ca.crt" -o /dev/null -w '%{http_code}' "https://$REGISTRY/v2/" || true
}

reg_code_auth() {
  reg_curl -o /dev/null -w '%{http_code}' "https://$REGISTRY/v2/" 2>/dev/null || true
}

registry_answers() {
  [ "$(reg_code_anon)" = 401 ] && [ "$(reg_code_auth)" = 200 ]
}

# registry_has REPO TAG: the fixture registry holds that manifest.
registry_has() {
  local code
  code=$(reg_curl -o /dev/null -w '%{http_code}' -I \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "https://$REGISTRY/v2/slipway-fixtures/$1/manifests/$2" 2>/dev/null) || true
  [ "$code" = 200 ]
}

dk() { DOCKER_CONFIG=$DOCKER_CFG docker "$@"; }

json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

target_names() {
  local i
  for ((i = 1; i <= NTARGETS; i++)); do printf 't%d\n' "$i"; done
}
target_ip() { printf '%s.%d' "$NET_PREFIX" $((10 + ${1#t})); }
target_dir() { printf '%s/targets/%s' "$STATE" "$1"; }
target_sock() { printf '%s/targets/%s/docker.sock' "$STATE" "$1"; }
